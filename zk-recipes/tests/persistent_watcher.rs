//! `PersistentWatcher` against the embedded server: subtree and single-node events, a reset
//! at start, after a reconnect and in a new session (where the watch is added again), and no
//! watch left on the server once closed.

mod support;

use futures::StreamExt;
use support::*;
use zk_client::{ConnectionState, WatchedEvent};
use zk_proto::EventType;
use zk_recipes::{PersistentWatcher, WatcherEvent, WatcherEvents};

async fn next(events: &mut WatcherEvents) -> WatcherEvent {
    within("a watcher event", events.next())
        .await
        .expect("the stream ended")
}

/// The next event, which must be a node event: its type and path.
async fn next_event(events: &mut WatcherEvents) -> (EventType, String) {
    match next(events).await {
        WatcherEvent::Event(WatchedEvent {
            event_type, path, ..
        }) => (event_type, path),
        other => panic!("expected a node event, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subtree_and_node_events_after_a_reset_and_no_watch_left_when_closed() {
    let server = server().await;
    let watching = client(&server.connect_string()).await;
    let other = client(&server.connect_string()).await;
    let tree = PersistentWatcher::new(watching.clone(), "/w", true).unwrap();
    let node = PersistentWatcher::new(watching.clone(), "/w", false).unwrap();
    let mut tree_events = tree.events();
    let mut node_events = node.events();
    tree.start().unwrap();
    node.start().unwrap();
    assert_eq!(next(&mut tree_events).await, WatcherEvent::Reset);
    assert_eq!(next(&mut node_events).await, WatcherEvent::Reset);
    assert!(matches!(
        tree.start(),
        Err(zk_recipes::Error::AlreadyStarted)
    ));

    other.create("/w").await.unwrap();
    other.create("/w/a").await.unwrap();
    other.set_data("/w/a", b"x".to_vec()).await.unwrap();
    other.delete("/w/a").await.unwrap();
    for expected in [
        (EventType::NodeCreated, "/w"),
        (EventType::NodeCreated, "/w/a"),
        (EventType::NodeDataChanged, "/w/a"),
        (EventType::NodeDeleted, "/w/a"),
    ] {
        let (t, p) = next_event(&mut tree_events).await;
        assert_eq!((t, p.as_str()), expected);
    }
    // Not recursive: the node's own events, its children as NodeChildrenChanged.
    for expected in [
        (EventType::NodeCreated, "/w"),
        (EventType::NodeChildrenChanged, "/w"),
        (EventType::NodeChildrenChanged, "/w"),
    ] {
        let (t, p) = next_event(&mut node_events).await;
        assert_eq!((t, p.as_str()), expected);
    }

    assert!(total_watches(&server).await >= 2);
    tree.close().await;
    drop(node);
    assert_eq!(within("the stream ends", tree_events.next()).await, None);
    assert_eq!(within("the stream ends", node_events.next()).await, None);
    within("the server-side watches removed", async {
        while total_watches(&server).await != 0 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(matches!(tree.start(), Err(zk_recipes::Error::Closed)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_after_a_reconnect_and_in_a_new_session_where_the_watch_is_back() {
    let mut server = server().await;
    let watching = client(&server.connect_string()).await;
    let other = client(&server.connect_string()).await;
    other.create("/w").await.unwrap();
    let watcher = PersistentWatcher::new(watching.clone(), "/w", true).unwrap();
    let mut events = watcher.events();
    watcher.start().unwrap();
    assert_eq!(next(&mut events).await, WatcherEvent::Reset);
    let mut states = watching.connection_states();

    // Same session after a server restart: the watch stays, and a reset says that changes
    // made meanwhile may be unseen.
    let session = watching.session_id();
    server.restart().await.unwrap();
    wait_state(&mut states, ConnectionState::Reconnected).await;
    assert_eq!(watching.session_id(), session);
    assert_eq!(next(&mut events).await, WatcherEvent::Reset);
    // The watch was registered again ahead of any later request of this session.
    watching.exists("/w").await.unwrap();
    other.create("/w/a").await.unwrap();
    assert_eq!(
        next_event(&mut events).await,
        (EventType::NodeCreated, "/w/a".to_owned())
    );

    // A new session: the client's watch ended with the old one; the watcher adds it again.
    assert!(server.expire_session(session).await);
    wait_state(&mut states, ConnectionState::Lost).await;
    wait_state(&mut states, ConnectionState::Reconnected).await;
    assert_ne!(watching.session_id(), session);
    assert_eq!(next(&mut events).await, WatcherEvent::Reset);
    watching.exists("/w").await.unwrap();
    other.create("/w/b").await.unwrap();
    assert_eq!(
        next_event(&mut events).await,
        (EventType::NodeCreated, "/w/b".to_owned())
    );
    watcher.close().await;
}
