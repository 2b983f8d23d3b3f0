//! The node-keeping and watching recipes against the test target (the embedded server, or
//! Apache ZooKeeper with `ZK_TEST_CONNECT`, as the client suites; scripts/interop.sh runs them
//! against Apache 3.5 to 3.9): a `PersistentTtlNode` holds the data with a TTL child that
//! keeps being touched (the server takes its container and TTL modes: Apache needs extended
//! types enabled, as scripts/interop.sh does), and a recursive `PersistentWatcher` sees the changes
//! below its path and is put back in its client's new session after an expiry.

mod support;

use std::time::Duration;

use futures::StreamExt;
use support::PATIENCE;
use zk::client::{EventType, WatchedEvent};
use zk::recipes::{PersistentTtlNode, PersistentWatcher, WatcherEvent, WatcherEvents};

macro_rules! env_or_skip {
    () => {
        match support::env().await {
            Some(env) => env,
            None => return,
        }
    };
}

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

#[tokio::test]
async fn a_persistent_ttl_node_holds_its_data_with_a_touched_ttl_child() {
    let env = env_or_skip!();
    let client = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    let path = format!("{root}/alive");
    // Long enough that a touch delayed on a loaded machine does not let the child expire.
    let ttl = Duration::from_secs(3);
    let node = PersistentTtlNode::new(client.clone(), &path, ttl, b"up".to_vec()).unwrap();
    node.start().unwrap();
    assert!(node.wait_for_initial_create(PATIENCE).await.unwrap());

    let (data, stat) = client.get_data(&path).await.unwrap();
    assert_eq!(data, b"up");
    // Servers report 0 for containers and TTL nodes (Apache's DataNode.copyStat hides the
    // marker kept in ephemeralOwner): neither is an ephemeral.
    assert_eq!(stat.ephemeral_owner, 0);
    let child = node.child_path().to_owned();
    let first = within("the TTL child", async {
        loop {
            if let Some(stat) = client.exists(&child).await.unwrap() {
                return stat;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(first.ephemeral_owner, 0);
    // Touched every ttl / 2: its mzxid moves on.
    within("a touch of the child", async {
        loop {
            let stat = client.exists(&child).await.unwrap().expect("the child");
            if stat.mzxid > first.mzxid {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;

    node.set_data(b"busy".to_vec()).await.unwrap();
    assert_eq!(client.get_data(&path).await.unwrap().0, b"busy");
    // Closing leaves the node to its TTL (as Curator): it is still there right after.
    node.close().await;
    assert!(client.exists(&path).await.unwrap().is_some());

    support::remove_tree(&client, &root).await;
    client.close().await.unwrap();
}

/// The next event of the watcher that is not a reset.
async fn next_change(events: &mut WatcherEvents) -> (EventType, String) {
    loop {
        match within("a watcher event", events.next()).await {
            Some(WatcherEvent::Event(WatchedEvent {
                event_type, path, ..
            })) => return (event_type, path),
            Some(WatcherEvent::Reset) => continue,
            Some(other) => panic!("an event this test does not know: {other:?}"),
            None => panic!("the watcher's events ended"),
        }
    }
}

/// Waits for a reset of the watcher (its watch is in place), skipping node events.
async fn next_reset(events: &mut WatcherEvents) {
    loop {
        match within("a watcher reset", events.next()).await {
            Some(WatcherEvent::Reset) => return,
            Some(WatcherEvent::Event(_)) => continue,
            Some(other) => panic!("an event this test does not know: {other:?}"),
            None => panic!("the watcher's events ended"),
        }
    }
}

#[tokio::test]
async fn a_recursive_persistent_watcher_survives_its_clients_session_expiry() {
    let env = env_or_skip!();
    if env.is_external_before(3, 6).await {
        eprintln!("SKIPPED: persistent watches need Apache ZooKeeper 3.6");
        return;
    }
    let connect = env.connect_string();
    let (writer, watching) = (
        support::connected_client(connect).await,
        support::connected_client(connect).await,
    );
    let root = support::unique_root();
    writer.create(&root).await.unwrap();
    let watcher = PersistentWatcher::new(watching.clone(), &root, true).unwrap();
    let mut events = watcher.events();
    watcher.start().unwrap();
    next_reset(&mut events).await;

    let (a, b) = (format!("{root}/a"), format!("{root}/a/b"));
    writer.create(&a).await.unwrap();
    writer.create(&b).await.unwrap();
    writer.set_data(&b, b"1".to_vec()).await.unwrap();
    writer.delete(&b).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(next_change(&mut events).await);
    }
    assert_eq!(
        seen,
        [
            (EventType::NodeCreated, a.clone()),
            (EventType::NodeCreated, b.clone()),
            (EventType::NodeDataChanged, b.clone()),
            (EventType::NodeDeleted, b.clone()),
        ]
    );

    // A new session has no watches: the watcher must add its own again, then say so.
    support::expire_session(connect, watching.session_id(), &watching.session_password()).await;
    next_reset(&mut events).await;
    writer.set_data(&a, b"2".to_vec()).await.unwrap();
    assert_eq!(
        next_change(&mut events).await,
        (EventType::NodeDataChanged, a.clone())
    );

    watcher.close().await;
    support::remove_tree(&writer, &root).await;
    writer.close().await.unwrap();
    watching.close().await.unwrap();
}
