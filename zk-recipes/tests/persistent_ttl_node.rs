//! PersistentTtlNode against the embedded server (TTL nodes on, containers checked every
//! 100 ms): the node lives while it is kept, without watch events on it; it disappears about a
//! TTL after close, or after its owner is cut off, and comes back when the owner reconnects.

mod support;

use std::time::{Duration, Instant};

use support::*;
use zk_client::Client;
use zk_recipes::persistent_ttl_node::DEFAULT_CHILD_NAME;
use zk_recipes::{Error, PersistentTtlNode};
use zk_server::TestingServer;

const TTL: Duration = Duration::from_millis(1000);

async fn ttl_server() -> TestingServer {
    TestingServer::builder()
        .extended_types(true)
        .container_check_interval_ms(100)
        .start()
        .await
        .expect("start the testing server")
}

/// Waits (on watches) until `path` exists (or not).
async fn wait_exists(client: &Client, path: &str, present: bool) {
    within(&format!("{path} to exist: {present}"), async {
        loop {
            let (stat, watch) = client.exists(path).watched().await.expect("exists");
            if stat.is_some() == present {
                return;
            }
            watch.await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lives_while_kept_and_goes_a_ttl_after_close() {
    let server = ttl_server().await;
    let owner = client(&server.connect_string()).await;
    let observer = client(&server.connect_string()).await;
    let node = PersistentTtlNode::new(owner.clone(), "/ttl/a", TTL, b"v1".to_vec()).expect("build");
    node.start().expect("start");
    assert_eq!(node.start(), Err(Error::AlreadyStarted));
    assert!(node
        .wait_for_initial_create(PATIENCE)
        .await
        .expect("created"));
    assert_eq!(node.actual_path().as_deref(), Some("/ttl/a"));
    assert_eq!(node.child_path(), format!("/ttl/a/{DEFAULT_CHILD_NAME}"));
    wait_exists(&observer, "/ttl/a/touch", true).await;

    // Present for several TTLs, and the touches do not disturb watchers of the node.
    let (data, _, watch) = observer
        .get_data("/ttl/a")
        .watched()
        .await
        .expect("get data");
    assert_eq!(data, b"v1");
    assert!(
        tokio::time::timeout(TTL * 3, watch).await.is_err(),
        "the node changed (or vanished) while kept"
    );
    let (_, child) = observer.get_data("/ttl/a/touch").await.expect("the child");
    assert!(child.version > 0, "the child was never touched: {child:?}");

    // New data reaches the node.
    node.set_data(b"v2".to_vec()).await.expect("set data");
    assert_eq!(node.data(), b"v2");
    let (data, _) = observer.get_data("/ttl/a").await.expect("get data");
    assert_eq!(data, b"v2");

    // Closing does not delete the node; the server does, once the TTL passed without touches.
    node.close().await;
    let closed = Instant::now();
    assert!(observer.exists("/ttl/a").await.expect("exists").is_some());
    wait_exists(&observer, "/ttl/a", false).await;
    // The last touch came at most TTL/2 before the close.
    assert!(
        closed.elapsed() >= TTL / 2 - Duration::from_millis(50),
        "gone after {:?}, before its TTL could pass",
        closed.elapsed()
    );
    assert_eq!(node.start(), Err(Error::Closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goes_when_the_owner_is_cut_off_and_comes_back_with_it() {
    let server = ttl_server().await;
    let proxy = Proxy::start(&server.connect_string()).await.expect("proxy");
    let owner = client(&proxy.connect_string()).await;
    let observer = client(&server.connect_string()).await;
    let node = PersistentTtlNode::builder(owner.clone(), "/ttl/b", TTL, b"up".to_vec())
        .child_name("alive")
        .touch_factor(4)
        .build()
        .expect("build");
    node.start().expect("start");
    assert!(node
        .wait_for_initial_create(PATIENCE)
        .await
        .expect("created"));
    wait_exists(&observer, "/ttl/b/alive", true).await;

    // The owner cannot reach the server: nobody touches the child, the node goes.
    let mut states = owner.connection_states();
    proxy.down();
    wait_state(&mut states, zk_client::ConnectionState::Suspended).await;
    wait_exists(&observer, "/ttl/b", false).await;

    // Back: the node keeper re-creates the node, the touches resume.
    proxy.up();
    wait_exists(&observer, "/ttl/b/alive", true).await;
    let (data, _) = observer.get_data("/ttl/b").await.expect("get data");
    assert_eq!(data, b"up");
    node.close().await;
    wait_exists(&observer, "/ttl/b", false).await;
}

/// Gives the node itself an ACL without CREATE: its child can never be created.
#[derive(Debug)]
struct NoChildren;

impl zk_client::AclProvider for NoChildren {
    fn acl_for_path(&self, path: &str) -> std::borrow::Cow<'_, [zk_client::Acl]> {
        let perms = if path == "/ttl/childless" {
            zk_client::Perms::from_bits(
                zk_client::Perms::ALL.bits() & !zk_client::Perms::CREATE.bits(),
            )
        } else {
            zk_client::Perms::ALL
        };
        vec![zk_client::Acl::new(perms, zk_client::Id::anyone())].into()
    }
}

/// A node whose child was never created (here: its ACL refuses the child, as when the keeper
/// stops right after re-creating the node) still goes a TTL after close: the node is a TTL
/// node itself, not a container, which the server deletes only once it had a child
/// (CURATOR-1258).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_never_had_its_child_still_goes_after_close() {
    let server = ttl_server().await;
    let owner = client_builder(&server.connect_string())
        .acl_provider(NoChildren)
        .build()
        .unwrap();
    owner.block_until_connected(PATIENCE).await.unwrap();
    let observer = client(&server.connect_string()).await;
    let node =
        PersistentTtlNode::new(owner.clone(), "/ttl/childless", TTL, b"v".to_vec()).expect("build");
    node.start().expect("start");
    assert!(node
        .wait_for_initial_create(PATIENCE)
        .await
        .expect("created"));
    node.close().await;
    assert!(observer
        .get_children("/ttl/childless")
        .await
        .map_or(true, |c| c.is_empty()));
    wait_exists(&observer, "/ttl/childless", false).await;
}

#[tokio::test]
async fn bad_arguments_are_refused() {
    let client = zk_client::Client::builder()
        .connect_string("127.0.0.1:1")
        .build()
        .expect("client");
    for (ttl, factor, child) in [
        (Duration::ZERO, 2, "touch"),
        (Duration::from_millis(1 << 40), 2, "touch"),
        (TTL, 0, "touch"),
        (TTL, 2, ""),
        (TTL, 2, "a/b"),
    ] {
        assert!(matches!(
            PersistentTtlNode::builder(client.clone(), "/x", ttl, Vec::new())
                .touch_factor(factor)
                .child_name(child)
                .build(),
            Err(Error::InvalidArgument(_))
        ));
    }
    assert!(matches!(
        PersistentTtlNode::new(client, "/", TTL, Vec::new()),
        Err(Error::InvalidArgument(_))
    ));
}
