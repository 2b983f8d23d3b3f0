//! The caches against the embedded server: a TreeCache mirrors random changes exactly, also
//! across a forced reconnect and a session expiry; the children and node caches see what they
//! should and nothing else.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use support::*;
use zk_client::{Client, CreateMode};
use zk_recipes::cache::{CacheEvent, CacheEvents, NodeCache, PathChildrenCache, TreeCache};

/// (data, czxid, mzxid) of every node of a subtree.
type Tree = BTreeMap<String, (Vec<u8>, i64, i64)>;

/// Reads the subtree at `root` directly from the server.
async fn read_tree(client: &Client, root: &str) -> Tree {
    let mut tree = Tree::new();
    let mut todo = vec![root.to_owned()];
    while let Some(path) = todo.pop() {
        let Ok((data, stat)) = client.get_data(&path).await else {
            continue;
        };
        tree.insert(path.clone(), (data, stat.czxid, stat.mzxid));
        if let Ok(children) = client.get_children(&path).await {
            todo.extend(children.iter().map(|c| format!("{path}/{c}")));
        }
    }
    tree
}

fn cached(cache: &TreeCache) -> Tree {
    cache
        .nodes()
        .iter()
        .map(|d| (d.path.clone(), (d.data.clone(), d.stat.czxid, d.stat.mzxid)))
        .collect()
}

/// Applies the events received so far to `mirror`, checking each against what it replaces.
fn drain_into(events: &mut CacheEvents, mirror: &mut Tree) {
    while let Some(Some(event)) = events.next().now_or_never() {
        match event {
            CacheEvent::Created(d) => {
                let prev =
                    mirror.insert(d.path.clone(), (d.data.clone(), d.stat.czxid, d.stat.mzxid));
                assert!(
                    prev.is_none(),
                    "Created for a node already there: {}",
                    d.path
                );
            }
            CacheEvent::Changed { old, new } => {
                let prev = mirror.insert(
                    new.path.clone(),
                    (new.data.clone(), new.stat.czxid, new.stat.mzxid),
                );
                assert_eq!(
                    prev,
                    Some((old.data.clone(), old.stat.czxid, old.stat.mzxid)),
                    "Changed's old value"
                );
                assert!(new.stat.mzxid > old.stat.mzxid);
            }
            CacheEvent::Deleted(d) => {
                assert!(
                    mirror.remove(&d.path).is_some(),
                    "Deleted for a node not there: {}",
                    d.path
                );
            }
            CacheEvent::Initialized => {}
            _ => {}
        }
    }
}

/// Waits until the cache holds exactly what the server holds and the events replayed into
/// `mirror` say the same.
async fn wait_mirrored(
    writer: &Client,
    cache: &TreeCache,
    events: &mut CacheEvents,
    mirror: &mut Tree,
    root: &str,
) {
    let truth = read_tree(writer, root).await;
    within("the cache to mirror the tree", async {
        loop {
            drain_into(events, mirror);
            if cached(cache) == truth && *mirror == truth {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

async fn remove_tree(client: &Client, root: &str) {
    client
        .delete(root)
        .deleting_children_if_needed()
        .quietly()
        .await
        .expect("remove the test tree");
}

/// A tiny deterministic generator (xorshift64*), so failures replay.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n.max(1)
    }
}

/// `n` random creates, sets and deletes (of leaves) under `root`.
async fn random_changes(writer: &Client, root: &str, rng: &mut Rng, n: usize, next_id: &mut usize) {
    let mut paths: Vec<String> = read_tree(writer, root).await.into_keys().collect();
    for _ in 0..n {
        let target = paths[rng.below(paths.len())].clone();
        *next_id += 1;
        match rng.below(3) {
            0 => {
                let path = format!("{target}/n{next_id}");
                writer
                    .create(&path)
                    .data(format!("v{next_id}"))
                    .await
                    .expect("create");
                paths.push(path);
            }
            1 => {
                writer
                    .set_data(&target, format!("s{next_id}"))
                    .await
                    .expect("set");
            }
            _ => {
                let prefix = format!("{target}/");
                if target != root && !paths.iter().any(|p| p.starts_with(&prefix)) {
                    writer.delete(&target).await.expect("delete");
                    paths.retain(|p| *p != target);
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_cache_mirrors_random_changes_across_reconnect_and_expiry() {
    mirror_random_changes(server().await, false).await;
}

/// The same against a server that behaves like ZooKeeper 3.5 (addWatch and the other 3.6+
/// opcodes answered UNIMPLEMENTED, the connection then closed): the cache falls back to
/// one-shot watches and mirrors just as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_cache_on_a_3_5_server_mirrors_on_one_shot_watches() {
    mirror_random_changes(server_3_5().await, true).await;
}

/// Random changes mirrored live, across a reconnect (changes made while disconnected) and
/// across a session expiry. `one_shot`: whether the cache must fall back to one-shot watches.
async fn mirror_random_changes(server: zk_server::TestingServer, one_shot: bool) {
    let writer = client(&server.connect_string()).await;
    let proxy = Proxy::start(&server.connect_string()).await.expect("proxy");
    let reader = client(&proxy.connect_string()).await;
    let root = "/tree";
    writer.create(root).await.expect("root");
    writer
        .create("/tree/pre")
        .data("before the cache")
        .await
        .expect("pre");

    let cache = TreeCache::new(reader.clone(), root).expect("cache");
    let mut events = cache.events();
    cache.start().expect("start");
    assert!(within("initialized", cache.wait_initialized()).await);
    assert_eq!(cache.uses_one_shot_watches(), one_shot);
    let mut mirror = Tree::new();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut id = 0;

    // Live changes, applied from the persistent watch.
    random_changes(&writer, root, &mut rng, 400, &mut id).await;
    if writer.exists("/tree/pre").await.expect("exists").is_none() {
        writer.create("/tree/pre").await.expect("pre again");
    }
    wait_mirrored(&writer, &cache, &mut events, &mut mirror, root).await;
    let pre_before = cache.get("/tree/pre").expect("cached");

    // Changes while the cache is disconnected (same session): no watch events, so only the
    // re-read after RECONNECTED can catch them — including a delete-and-recreate.
    let mut states = reader.connection_states();
    proxy.down();
    wait_state(&mut states, zk_client::ConnectionState::Suspended).await;
    random_changes(&writer, root, &mut rng, 300, &mut id).await;
    writer
        .delete("/tree/pre")
        .deleting_children_if_needed()
        .await
        .expect("delete pre");
    writer
        .create("/tree/pre")
        .data("re-created")
        .await
        .expect("re-create pre");
    // The cache still holds the old node: it has heard nothing.
    assert_eq!(
        cache.get("/tree/pre").map(|d| d.stat.czxid),
        Some(pre_before.stat.czxid)
    );
    proxy.up();
    wait_state(&mut states, zk_client::ConnectionState::Reconnected).await;
    wait_mirrored(&writer, &cache, &mut events, &mut mirror, root).await;
    let pre_after = cache.get("/tree/pre").expect("cached");
    assert_ne!(pre_before.stat.czxid, pre_after.stat.czxid);
    assert_eq!(pre_after.data, b"re-created");

    // A session expiry: the watch dies with the session; the cache re-adds it on the new one.
    assert!(server.expire_session(reader.session_id()).await);
    wait_state(&mut states, zk_client::ConnectionState::Lost).await;
    random_changes(&writer, root, &mut rng, 300, &mut id).await;
    wait_state(&mut states, zk_client::ConnectionState::Reconnected).await;
    wait_mirrored(&writer, &cache, &mut events, &mut mirror, root).await;

    // And live changes on the new session's watch.
    random_changes(&writer, root, &mut rng, 100, &mut id).await;
    wait_mirrored(&writer, &cache, &mut events, &mut mirror, root).await;

    // Closing ends the event stream (after what was still queued).
    cache.close().await;
    within("the event stream to end", async {
        while events.next().await.is_some() {}
    })
    .await;
    remove_tree(&writer, root).await;
}

#[tokio::test]
async fn children_cache_hides_the_parent_and_grandchildren() {
    children_cache_sees_children_only(server().await, false).await;
}

#[tokio::test]
async fn children_cache_on_a_3_5_server() {
    children_cache_sees_children_only(server_3_5().await, true).await;
}

async fn server_3_5() -> zk_server::TestingServer {
    zk_server::TestingServer::builder()
        .emulate_3_5(true)
        .start()
        .await
        .expect("start the testing server")
}

async fn children_cache_sees_children_only(server: zk_server::TestingServer, one_shot: bool) {
    let writer = client(&server.connect_string()).await;
    let reader = client(&server.connect_string()).await;
    let cache = PathChildrenCache::new(reader, "/svc").expect("cache");
    let mut events = cache.events();
    cache.start().expect("start");
    assert_eq!(
        within("init", events.next()).await,
        Some(CacheEvent::Initialized)
    );
    assert!(cache.current().is_empty());
    assert_eq!(cache.uses_one_shot_watches(), one_shot);

    writer.create("/svc").await.expect("parent");
    writer.create("/svc/a").data("1").await.expect("a");
    writer.create("/svc/a/deep").await.expect("grandchild");
    writer
        .set_data("/svc", "parent data")
        .await
        .expect("set parent");
    writer.set_data("/svc/a", "2").await.expect("set a");
    writer
        .delete("/svc/a/deep")
        .await
        .expect("delete grandchild");
    writer.delete("/svc/a").await.expect("delete a");

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let e = within("child events", events.next())
            .await
            .expect("stream open");
        seen.push(match e {
            CacheEvent::Created(d) => format!("+{}={}", d.name(), String::from_utf8_lossy(&d.data)),
            CacheEvent::Changed { new, .. } => {
                format!("~{}={}", new.name(), String::from_utf8_lossy(&new.data))
            }
            CacheEvent::Deleted(d) => format!("-{}", d.name()),
            other => format!("{other:?}"),
        });
    }
    // Created may already see "2" if the set landed before the read; either way one
    // creation, (maybe) one change, one deletion, and nothing about /svc or /svc/a/deep.
    assert!(seen[0] == "+a=1" || seen[0] == "+a=2", "{seen:?}");
    assert_eq!(seen.last().map(String::as_str), Some("-a"), "{seen:?}");
    assert!(cache.current().is_empty());
    assert!(cache.get("a").is_none());
    cache.close().await;
    remove_tree(&writer, "/svc").await;
}

#[tokio::test]
async fn node_cache_follows_one_node() {
    node_cache_follows(server().await, false).await;
}

#[tokio::test]
async fn node_cache_on_a_3_5_server() {
    node_cache_follows(server_3_5().await, true).await;
}

/// How many requests the server has received on the connection of session `sid` (`cons`).
async fn requests_from(server: &zk_server::TestingServer, sid: i64) -> u64 {
    let cons = server.four_letter_word("cons").await.expect("cons");
    let wanted = format!("sid=0x{sid:x})");
    cons.lines()
        .find(|l| l.contains(&wanted))
        .and_then(|l| l.split("recved=").nth(1))
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no connection of 0x{sid:x} in: {cons}"))
}

async fn node_cache_follows(server: zk_server::TestingServer, one_shot: bool) {
    let writer = client(&server.connect_string()).await;
    let reader = client(&server.connect_string()).await;
    writer.create("/cfg").data("a").await.expect("create");
    let cache = NodeCache::new(reader.clone(), "/cfg").expect("cache");
    cache.start().expect("start");
    assert!(within("init", cache.wait_initialized()).await);
    assert_eq!(cache.current().map(|d| d.data.clone()), Some(b"a".to_vec()));
    assert_eq!(cache.uses_one_shot_watches(), one_shot);

    let mut events = cache.events();
    writer.create("/cfg/child").await.expect("child");
    writer.set_data("/cfg", "b").await.expect("set");
    match within("change", events.next()).await {
        Some(CacheEvent::Changed { old, new }) => {
            assert_eq!(
                (old.data.as_slice(), new.data.as_slice()),
                (&b"a"[..], &b"b"[..])
            );
        }
        other => panic!("expected a change (the child is not watched), got {other:?}"),
    }
    // Children coming and going cost the cache nothing: no request from its client.
    let sid = reader.session_id();
    let before = requests_from(&server, sid).await;
    for i in 0..10 {
        writer.create(&format!("/cfg/c{i}")).await.expect("child");
    }
    writer.set_data("/cfg", "b2").await.expect("set");
    assert!(matches!(
        within("change", events.next()).await,
        Some(CacheEvent::Changed { .. })
    ));
    let after = requests_from(&server, sid).await;
    assert!(
        after - before <= 1,
        "the node cache sent {} requests while only children changed",
        after - before
    );
    writer
        .delete("/cfg")
        .deleting_children_if_needed()
        .await
        .expect("delete");
    assert!(matches!(
        within("delete", events.next()).await,
        Some(CacheEvent::Deleted(_))
    ));
    assert!(cache.current().is_none());
    writer
        .create("/cfg")
        .data("c")
        .mode(CreateMode::Persistent)
        .await
        .expect("re-create");
    assert!(matches!(
        within("create", events.next()).await,
        Some(CacheEvent::Created(_))
    ));
    assert_eq!(cache.current().map(|d| d.data.clone()), Some(b"c".to_vec()));
    cache.close().await;
    assert_eq!(writer.delete("/cfg").await, Ok(()));
}

#[tokio::test]
async fn waits_and_streams_of_an_unstarted_or_closed_cache_end() {
    let server = server().await;
    let c = client(&server.connect_string()).await;
    let cache = TreeCache::new(c.clone(), "/unstarted").expect("cache");
    // Not started: nothing will initialize it, so the wait ends at once.
    assert!(!within("wait on an unstarted cache", cache.wait_initialized()).await);
    cache.start().expect("start");
    assert!(within("initialized", cache.wait_initialized()).await);
    cache.close().await;
    // A stream subscribed after close ends at once.
    let mut late = cache.events();
    assert_eq!(within("a late stream ends", late.next()).await, None);
}

#[tokio::test]
async fn tree_cache_leaves_out_a_node_it_may_not_read() {
    leaves_out_an_unreadable_node(server().await, false).await;
}

#[tokio::test]
async fn tree_cache_on_a_3_5_server_leaves_out_a_node_it_may_not_read() {
    leaves_out_an_unreadable_node(server_3_5().await, true).await;
}

/// A node the cache's client may not read is left out, and holds nothing else back: the
/// cache initializes with the rest of the tree and follows it.
async fn leaves_out_an_unreadable_node(server: zk_server::TestingServer, one_shot: bool) {
    let writer = client(&server.connect_string()).await;
    let reader = client(&server.connect_string()).await;
    writer.create("/acl").await.expect("root");
    writer.create("/acl/a").data("a0").await.expect("a");
    writer
        .create("/acl/secret")
        .acl(vec![zk_client::Acl::new(
            zk_client::Perms::ALL,
            zk_client::Id::digest("alice", "pw"),
        )])
        .await
        .expect("secret");
    writer.create("/acl/b").data("b0").await.expect("b");
    let cache = TreeCache::new(reader, "/acl").expect("cache");
    cache.start().expect("start");
    assert!(within("init", cache.wait_initialized()).await);
    assert_eq!(cache.uses_one_shot_watches(), one_shot);
    let paths = |cache: &TreeCache| -> Vec<String> {
        let mut p: Vec<String> = cache.nodes().iter().map(|d| d.path.clone()).collect();
        p.sort();
        p
    };
    assert_eq!(paths(&cache), ["/acl", "/acl/a", "/acl/b"]);
    // A readable child of the left-out node stays out too (as a full read leaves it out),
    // although its creation is reported to the cache.
    let alice = client_builder(&server.connect_string())
        .digest_auth("alice", "pw")
        .build()
        .expect("client");
    alice
        .create("/acl/secret/kid")
        .await
        .expect("a readable child");
    writer.set_data("/acl/a", "a1").await.expect("set");
    within("the change", async {
        while cache.get("/acl/a").map(|d| d.data.clone()) != Some(b"a1".to_vec()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(paths(&cache), ["/acl", "/acl/a", "/acl/b"]);
    cache.close().await;
    alice.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_and_node_caches_catch_up_after_a_reconnect_and_an_expiry() {
    caches_catch_up(server().await, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_and_node_caches_catch_up_on_a_3_5_server() {
    caches_catch_up(server_3_5().await, true).await;
}

/// The children cache's view: name and data of each child.
fn children(cache: &PathChildrenCache) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = cache
        .current()
        .iter()
        .map(|d| {
            (
                d.name().to_owned(),
                String::from_utf8_lossy(&d.data).into_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Drains events until the children cache holds `want` and the node cache `node`; returns
/// the children events seen on the way, as "+name", "~name", "-name".
async fn caught_up(
    children_cache: &PathChildrenCache,
    children_events: &mut CacheEvents,
    node_cache: &NodeCache,
    node: &str,
    want: &[(&str, &str)],
) -> Vec<String> {
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(n, d)| ((*n).to_owned(), (*d).to_owned()))
        .collect();
    let mut seen = Vec::new();
    within("the caches to catch up", async {
        loop {
            while let Some(Some(e)) = children_events.next().now_or_never() {
                match e {
                    CacheEvent::Created(d) => seen.push(format!("+{}", d.name())),
                    CacheEvent::Changed { new, .. } => seen.push(format!("~{}", new.name())),
                    CacheEvent::Deleted(d) => seen.push(format!("-{}", d.name())),
                    _ => {}
                }
            }
            let node_now = node_cache.current().map(|d| d.data.clone());
            if children(children_cache) == want && node_now.as_deref() == Some(node.as_bytes()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    seen.sort();
    seen
}

/// Changes made while the caches' client is disconnected (same session) and while it has
/// no session at all reach both caches once it is back, each as its own event; and the
/// caches keep following live changes on the new session.
async fn caches_catch_up(server: zk_server::TestingServer, one_shot: bool) {
    let writer = client(&server.connect_string()).await;
    let proxy = Proxy::start(&server.connect_string()).await.expect("proxy");
    let reader = client(&proxy.connect_string()).await;
    writer.create("/svc").await.expect("parent");
    writer.create("/svc/a").data("1").await.expect("a");
    writer.create("/svc/b").data("1").await.expect("b");
    writer.create("/cfg").data("1").await.expect("cfg");
    let children_cache = PathChildrenCache::new(reader.clone(), "/svc").expect("cache");
    let mut children_events = children_cache.events();
    children_cache.start().expect("start");
    let node_cache = NodeCache::new(reader.clone(), "/cfg").expect("cache");
    node_cache.start().expect("start");
    assert!(within("init", children_cache.wait_initialized()).await);
    assert!(within("init", node_cache.wait_initialized()).await);
    assert_eq!(children_cache.uses_one_shot_watches(), one_shot);
    assert_eq!(node_cache.uses_one_shot_watches(), one_shot);
    caught_up(
        &children_cache,
        &mut children_events,
        &node_cache,
        "1",
        &[("a", "1"), ("b", "1")],
    )
    .await;

    let mut states = reader.connection_states();
    proxy.down();
    wait_state(&mut states, zk_client::ConnectionState::Suspended).await;
    writer.set_data("/svc/a", "2").await.expect("set a");
    writer.delete("/svc/b").await.expect("delete b");
    writer.create("/svc/c").data("1").await.expect("c");
    writer.set_data("/cfg", "2").await.expect("set cfg");
    proxy.up();
    wait_state(&mut states, zk_client::ConnectionState::Reconnected).await;
    let seen = caught_up(
        &children_cache,
        &mut children_events,
        &node_cache,
        "2",
        &[("a", "2"), ("c", "1")],
    )
    .await;
    assert_eq!(seen, ["+c", "-b", "~a"], "after the reconnect");

    assert!(server.expire_session(reader.session_id()).await);
    wait_state(&mut states, zk_client::ConnectionState::Lost).await;
    writer.delete("/svc/a").await.expect("delete a");
    writer.create("/svc/d").data("1").await.expect("d");
    writer.set_data("/cfg", "3").await.expect("set cfg");
    wait_state(&mut states, zk_client::ConnectionState::Reconnected).await;
    let seen = caught_up(
        &children_cache,
        &mut children_events,
        &node_cache,
        "3",
        &[("c", "1"), ("d", "1")],
    )
    .await;
    assert_eq!(seen, ["+d", "-a"], "after the expiry");

    // Live changes, on the new session's watches.
    writer.set_data("/svc/d", "2").await.expect("set d");
    writer.set_data("/cfg", "4").await.expect("set cfg");
    let seen = caught_up(
        &children_cache,
        &mut children_events,
        &node_cache,
        "4",
        &[("c", "1"), ("d", "2")],
    )
    .await;
    assert_eq!(seen, ["~d"], "live on the new session");

    children_cache.close().await;
    node_cache.close().await;
    remove_tree(&writer, "/svc").await;
    remove_tree(&writer, "/cfg").await;
}

#[tokio::test]
async fn a_cache_on_a_root_it_may_not_read_initializes_empty() {
    unreadable_root(server().await, false).await;
}

#[tokio::test]
async fn a_cache_on_a_3_5_server_on_a_root_it_may_not_read_initializes_empty() {
    unreadable_root(server_3_5().await, true).await;
}

/// A root the cache's client may not read is left out like any other node: the cache
/// initializes empty, does not spin re-reading it, and closes at once.
async fn unreadable_root(server: zk_server::TestingServer, one_shot: bool) {
    let writer = client(&server.connect_string()).await;
    let reader = client(&server.connect_string()).await;
    writer
        .create("/locked")
        .acl(vec![zk_client::Acl::new(
            zk_client::Perms::ALL,
            zk_client::Id::digest("alice", "pw"),
        )])
        .await
        .expect("locked");
    let cache = TreeCache::new(reader.clone(), "/locked").expect("cache");
    cache.start().expect("start");
    assert!(within("init", cache.wait_initialized()).await);
    assert_eq!(cache.uses_one_shot_watches(), one_shot);
    assert!(cache.nodes().is_empty());
    // (On 3.5 the refused addWatch cost the connection: one more read follows the reconnect.)
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sid = reader.session_id();
    let before = requests_from(&server, sid).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = requests_from(&server, sid).await;
    // A loop re-reading the root would send hundreds; a late re-read after the reconnect
    // (3 requests) and a ping are fine.
    assert!(
        after - before <= 4,
        "the cache sent {} requests while nothing changed",
        after - before
    );
    within_for("close", Duration::from_secs(2), cache.close()).await;
}

/// A cache whose client fails authentication (the session ends for good) stops: a wait for
/// its initialization returns, and its event stream ends.
#[tokio::test]
async fn a_cache_whose_client_fails_authentication_ends() {
    let server = server().await;
    let reader = client_builder(&server.connect_string())
        .auth("nosuchscheme", b"x")
        .build()
        .expect("client");
    let cache = TreeCache::new(reader, "/").expect("cache");
    let mut events = cache.events();
    cache.start().expect("start");
    assert!(!within("wait_initialized", cache.wait_initialized()).await);
    within("the events to end", async {
        while events.next().await.is_some() {}
    })
    .await;
}
