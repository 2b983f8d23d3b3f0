//! The recipes' caches against the test target (the embedded server, or Apache ZooKeeper with
//! `ZK_TEST_CONNECT`, as the client suites): on a server with persistent watches (Apache 3.6+,
//! ours) a `TreeCache` runs on one recursive watch; on Apache 3.5 it must fall back to one-shot
//! watches per node. Either way it mirrors live changes and the changes made while it was
//! disconnected. A `PathChildrenCache` and a `NodeCache` report each change as one event.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use support::{next_state, Proxy, PATIENCE};
use zk::client::{Client, ConnectionState};
use zk::recipes::cache::{CacheEvent, CacheEvents, NodeCache, PathChildrenCache, TreeCache};

macro_rules! env_or_skip {
    () => {
        match support::env().await {
            Some(env) => env,
            None => return,
        }
    };
}

/// (data, mzxid) of every node of a subtree.
type Tree = BTreeMap<String, (Vec<u8>, i64)>;

/// Reads the subtree at `root` from the server.
async fn read_tree(client: &Client, root: &str) -> Tree {
    let mut tree = Tree::new();
    let mut todo = vec![root.to_owned()];
    while let Some(path) = todo.pop() {
        let (data, stat) = client.get_data(&path).await.expect("read the tree");
        tree.insert(path.clone(), (data, stat.mzxid));
        let children = client.get_children(&path).await.expect("read the tree");
        todo.extend(children.iter().map(|c| format!("{path}/{c}")));
    }
    tree
}

/// Waits until the cache holds exactly what the server holds now.
async fn wait_mirrored(writer: &Client, cache: &TreeCache, root: &str, what: &str) {
    let truth = read_tree(writer, root).await;
    let cached = || -> Tree {
        cache
            .nodes()
            .iter()
            .map(|d| (d.path.clone(), (d.data.clone(), d.stat.mzxid)))
            .collect()
    };
    let mirrored = async {
        while cached() != truth {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    if tokio::time::timeout(PATIENCE, mirrored).await.is_err() {
        panic!(
            "{what}: the cache holds {:?}, the server {truth:?}",
            cached()
        );
    }
}

#[tokio::test]
async fn a_tree_cache_mirrors_changes_live_and_after_a_reconnect() {
    let env = env_or_skip!();
    let writer = support::connected_client(env.connect_string()).await;
    let proxy = Proxy::start(env.connect_string())
        .await
        .expect("proxy starts");
    let reader = support::connected_client(&proxy.connect_string()).await;
    let root = support::unique_root();
    writer.create(&root).data(b"root").await.unwrap();
    writer
        .create(&format!("{root}/a"))
        .data(b"a0")
        .await
        .unwrap();

    let cache = TreeCache::new(reader.clone(), &root).unwrap();
    cache.start().unwrap();
    assert!(tokio::time::timeout(PATIENCE, cache.wait_initialized())
        .await
        .expect("initialized in time"));
    assert_eq!(
        cache.uses_one_shot_watches(),
        env.is_external_before(3, 6).await,
        "one-shot watches exactly where the server lacks persistent ones"
    );
    wait_mirrored(&writer, &cache, &root, "initial").await;

    writer
        .set_data(&format!("{root}/a"), b"a1".to_vec())
        .await
        .unwrap();
    writer.create(&format!("{root}/b")).await.unwrap();
    writer
        .create(&format!("{root}/b/c"))
        .data(b"c0")
        .await
        .unwrap();
    wait_mirrored(&writer, &cache, &root, "live changes").await;
    writer
        .set_data(&format!("{root}/b/c"), b"c1".to_vec())
        .await
        .unwrap();
    writer.delete(&format!("{root}/a")).await.unwrap();
    wait_mirrored(&writer, &cache, &root, "more live changes").await;

    // Changes made while the cache's client is away: only its re-read after RECONNECTED (or
    // the watches re-registered with the last zxid seen) can catch them.
    let mut states = reader.connection_states();
    proxy.down();
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    writer
        .set_data(&format!("{root}/b/c"), b"c2".to_vec())
        .await
        .unwrap();
    writer
        .create(&format!("{root}/d"))
        .data(b"d0")
        .await
        .unwrap();
    writer.delete(&format!("{root}/b/c")).await.unwrap();
    proxy.up();
    assert_eq!(next_state(&mut states).await, ConnectionState::Reconnected);
    wait_mirrored(&writer, &cache, &root, "after the reconnect").await;

    cache.close().await;
    support::remove_tree(&writer, &root).await;
    reader.close().await.unwrap();
    writer.close().await.unwrap();
}

/// The next event as (kind, node path, node data), within the patience bound.
async fn next_event(events: &mut CacheEvents) -> (&'static str, String, Vec<u8>) {
    let event = tokio::time::timeout(PATIENCE, events.next())
        .await
        .expect("an event in time")
        .expect("the event stream ended");
    let kind = match &event {
        CacheEvent::Created(_) => "created",
        CacheEvent::Changed { .. } => "changed",
        CacheEvent::Deleted(_) => "deleted",
        CacheEvent::Initialized => return ("initialized", String::new(), Vec::new()),
        other => panic!("an event this test does not know: {other:?}"),
    };
    let node = event.node().expect("a node event");
    (kind, node.path.clone(), node.data.clone())
}

#[tokio::test]
async fn path_children_and_node_caches_report_each_change_as_one_event() {
    let env = env_or_skip!();
    let writer = support::connected_client(env.connect_string()).await;
    let reader = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    let (a, b) = (format!("{root}/a"), format!("{root}/b"));
    writer.create(&root).await.unwrap();
    writer.create(&a).data(b"a0").await.unwrap();

    let children = PathChildrenCache::new(reader.clone(), &root).unwrap();
    let node = NodeCache::new(reader.clone(), &b).unwrap();
    let (mut child_events, mut node_events) = (children.events(), node.events());
    children.start().unwrap();
    node.start().unwrap();
    let created = |path: &str, data: &[u8]| ("created", path.to_owned(), data.to_vec());
    assert_eq!(next_event(&mut child_events).await, created(&a, b"a0"));
    assert_eq!(next_event(&mut child_events).await.0, "initialized");
    // The node cache starts on a missing node: initialized, with nothing in it.
    assert_eq!(next_event(&mut node_events).await.0, "initialized");
    assert!(node.current().is_none());
    // Known once initialized: one-shot watches exactly where the server lacks persistent ones.
    let one_shot = env.is_external_before(3, 6).await;
    assert_eq!(children.uses_one_shot_watches(), one_shot);
    assert_eq!(node.uses_one_shot_watches(), one_shot);

    // Each change waits for its events, so a one-shot watch cannot fold two into one.
    writer.create(&b).data(b"b0").await.unwrap();
    assert_eq!(next_event(&mut child_events).await, created(&b, b"b0"));
    assert_eq!(next_event(&mut node_events).await, created(&b, b"b0"));
    writer.set_data(&b, b"b1".to_vec()).await.unwrap();
    let changed = ("changed", b.clone(), b"b1".to_vec());
    assert_eq!(next_event(&mut child_events).await, changed);
    assert_eq!(next_event(&mut node_events).await, changed);
    assert_eq!(node.current().expect("cached").data, b"b1");
    writer.delete(&b).await.unwrap();
    let deleted = ("deleted", b.clone(), b"b1".to_vec());
    assert_eq!(next_event(&mut child_events).await, deleted);
    assert_eq!(next_event(&mut node_events).await, deleted);
    assert!(node.current().is_none());
    let names: Vec<_> = children.current().iter().map(|d| d.path.clone()).collect();
    assert_eq!(names, [a]);

    children.close().await;
    node.close().await;
    support::remove_tree(&writer, &root).await;
    reader.close().await.unwrap();
    writer.close().await.unwrap();
}

/// A steady flow of changes does not hold back the re-read a reconnect calls for: a node
/// deleted while the cache's client was away (its persistent watch fires nothing for that)
/// leaves the cache although events keep coming faster than the cache reads them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_cache_still_reads_again_after_a_reconnect() {
    let env = env_or_skip!();
    if env.is_external_before(3, 6).await {
        return; // One-shot watches: no flow of events to fall behind.
    }
    let writer = support::connected_client(env.connect_string()).await;
    let proxy = Proxy::start(env.connect_string())
        .await
        .expect("proxy starts");
    let reader = support::connected_client(&proxy.connect_string()).await;
    let root = support::unique_root();
    let (hot, gone) = (format!("{root}/hot"), format!("{root}/gone"));
    writer.create(&root).await.unwrap();
    writer.create(&hot).await.unwrap();
    writer.create(&gone).await.unwrap();
    let cache = TreeCache::new(reader.clone(), &root).unwrap();
    cache.start().unwrap();
    assert!(tokio::time::timeout(PATIENCE, cache.wait_initialized())
        .await
        .expect("initialized in time"));
    // Each read of a changed node now takes a slow round trip; changes come much faster.
    let slow = support::proxy::Mode::Delay(Duration::from_millis(30));
    proxy.set_mode(slow);
    let busy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let (writer, hot, busy) = (writer.clone(), hot.clone(), busy.clone());
            tokio::spawn(async move {
                while busy.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = writer.set_data(&hot, b"x".to_vec()).await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut states = reader.connection_states();
    proxy.down();
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    writer.delete(&gone).await.unwrap();
    proxy.up();
    proxy.set_mode(slow);
    let left = tokio::time::timeout(Duration::from_secs(10), async {
        while cache.get(&gone).is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    busy.store(false, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    assert!(left.is_ok(), "the node deleted while away is still cached");
    cache.close().await;
    proxy.set_mode(support::proxy::Mode::Forward);
    support::remove_tree(&writer, &root).await;
    reader.close().await.unwrap();
    writer.close().await.unwrap();
}
