//! Watch rules (PROTOCOL.md §10): which events fire for which registration, once or
//! persistently, delivered before the reply to the write that fired them.

mod support;

use std::time::Duration;

use support::{event, RawClient};
use zk_proto::*;
use zk_server::TestingServer;

const QUIET: Duration = Duration::from_millis(150);

async fn setup() -> (TestingServer, RawClient, RawClient) {
    let server = TestingServer::start().await.unwrap();
    let watcher = RawClient::connect(&server.connect_string()).await;
    let writer = RawClient::connect(&server.connect_string()).await;
    (server, watcher, writer)
}

#[tokio::test]
async fn data_watch_fires_once_on_set() {
    let (_s, mut w, mut c) = setup().await;
    c.create("/d", b"1", CreateMode::Persistent).await.unwrap();
    w.get_data("/d", true).await.unwrap();
    c.set_data("/d", b"2", -1).await.unwrap();
    assert_eq!(
        w.next_event().await,
        Some(event(EventType::NodeDataChanged, "/d"))
    );
    c.set_data("/d", b"3", -1).await.unwrap();
    w.assert_no_event(QUIET).await;
}

#[tokio::test]
async fn exists_watch_on_a_missing_node_fires_on_create() {
    let (_s, mut w, mut c) = setup().await;
    assert_eq!(w.exists("/later", true).await, Err(ErrorCode::NoNode));
    c.create("/later", b"", CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(
        w.next_event().await,
        Some(event(EventType::NodeCreated, "/later"))
    );
}

#[tokio::test]
async fn get_data_on_a_missing_node_sets_no_watch() {
    let (_s, mut w, mut c) = setup().await;
    assert_eq!(w.get_data("/nope", true).await, Err(ErrorCode::NoNode));
    c.create("/nope", b"", CreateMode::Persistent)
        .await
        .unwrap();
    w.assert_no_event(QUIET).await;
}

#[tokio::test]
async fn child_watch_fires_on_child_create_and_delete_but_not_data() {
    let (_s, mut w, mut c) = setup().await;
    c.create("/p", b"", CreateMode::Persistent).await.unwrap();
    w.children("/p", true).await.unwrap();
    c.set_data("/p", b"x", -1).await.unwrap();
    c.create("/p/kid", b"", CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(
        w.next_event().await,
        Some(event(EventType::NodeChildrenChanged, "/p"))
    );
    w.children("/p", true).await.unwrap();
    c.delete("/p/kid", -1).await.unwrap();
    assert_eq!(
        w.next_event().await,
        Some(event(EventType::NodeChildrenChanged, "/p"))
    );
}

#[tokio::test]
async fn delete_fires_data_and_child_watches_as_one_event() {
    let (_s, mut w, mut c) = setup().await;
    c.create("/gone", b"", CreateMode::Persistent)
        .await
        .unwrap();
    w.get_data("/gone", true).await.unwrap();
    w.children("/gone", true).await.unwrap();
    c.delete("/gone", -1).await.unwrap();
    assert_eq!(
        w.next_event().await,
        Some(event(EventType::NodeDeleted, "/gone"))
    );
    w.assert_no_event(QUIET).await;
}

#[tokio::test]
async fn event_arrives_before_the_reply_to_the_write() {
    let server = TestingServer::start().await.unwrap();
    let mut c = RawClient::connect(&server.connect_string()).await;
    c.create("/self", b"", CreateMode::Persistent)
        .await
        .unwrap();
    c.get_data("/self", true).await.unwrap();
    c.set_data("/self", b"changed", -1).await.unwrap();
    // The notification was read (and queued) while waiting for the setData reply.
    assert_eq!(c.events.len(), 1, "event must precede the reply");
    let (zxid, e) = c.events.pop_front().unwrap();
    assert_eq!(e, event(EventType::NodeDataChanged, "/self"));
    assert!(zxid > 0, "notifications carry the txn's zxid");
}

#[tokio::test]
async fn persistent_watch_sees_every_change_of_its_node() {
    let (_s, mut w, mut c) = setup().await;
    w.add_watch("/pw", AddWatchMode::Persistent).await.unwrap();
    c.create("/pw", b"", CreateMode::Persistent).await.unwrap();
    c.set_data("/pw", b"1", -1).await.unwrap();
    c.create("/pw/k", b"", CreateMode::Persistent)
        .await
        .unwrap();
    c.set_data("/pw/k", b"1", -1).await.unwrap();
    c.delete("/pw/k", -1).await.unwrap();
    c.delete("/pw", -1).await.unwrap();
    for expected in [
        event(EventType::NodeCreated, "/pw"),
        event(EventType::NodeDataChanged, "/pw"),
        event(EventType::NodeChildrenChanged, "/pw"),
        event(EventType::NodeChildrenChanged, "/pw"),
        event(EventType::NodeDeleted, "/pw"),
    ] {
        assert_eq!(w.next_event().await, Some(expected));
    }
    w.assert_no_event(QUIET).await;
    w.check_watches("/pw", WatcherType::Persistent)
        .await
        .unwrap();
}

#[tokio::test]
async fn recursive_watch_covers_the_subtree_without_child_events() {
    let (_s, mut w, mut c) = setup().await;
    c.create("/r", b"", CreateMode::Persistent).await.unwrap();
    w.add_watch("/r", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    c.create("/r/a", b"", CreateMode::Persistent).await.unwrap();
    c.create("/r/a/b", b"", CreateMode::Persistent)
        .await
        .unwrap();
    c.set_data("/r/a/b", b"x", -1).await.unwrap();
    c.delete("/r/a/b", -1).await.unwrap();
    c.create("/rx", b"", CreateMode::Persistent).await.unwrap();
    for expected in [
        event(EventType::NodeCreated, "/r/a"),
        event(EventType::NodeCreated, "/r/a/b"),
        event(EventType::NodeDataChanged, "/r/a/b"),
        event(EventType::NodeDeleted, "/r/a/b"),
    ] {
        assert_eq!(w.next_event().await, Some(expected));
    }
    w.assert_no_event(QUIET).await;
}

#[tokio::test]
async fn remove_and_check_watches() {
    let (_s, mut w, mut c) = setup().await;
    c.create("/rw", b"", CreateMode::Persistent).await.unwrap();
    w.get_data("/rw", true).await.unwrap();
    w.check_watches("/rw", WatcherType::Data).await.unwrap();
    assert_eq!(
        w.check_watches("/rw", WatcherType::Children).await,
        Err(ErrorCode::NoWatcher)
    );
    w.remove_watches("/rw", WatcherType::Data).await.unwrap();
    assert_eq!(
        w.remove_watches("/rw", WatcherType::Data).await,
        Err(ErrorCode::NoWatcher)
    );
    c.set_data("/rw", b"x", -1).await.unwrap();
    w.assert_no_event(QUIET).await;

    w.add_watch("/rw", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    w.children("/rw", true).await.unwrap();
    w.remove_watches("/rw", WatcherType::Any).await.unwrap();
    c.create("/rw/k", b"", CreateMode::Persistent)
        .await
        .unwrap();
    w.assert_no_event(QUIET).await;
}

#[tokio::test]
async fn set_watches_delivers_what_changed_while_disconnected() {
    let server = TestingServer::start().await.unwrap();
    let mut c = RawClient::connect(&server.connect_string()).await;
    for path in ["/sw-data", "/sw-same", "/sw-deleted", "/sw-kids"] {
        c.create(path, b"", CreateMode::Persistent).await.unwrap();
    }
    let seen = c.last_zxid;
    c.set_data("/sw-data", b"changed", -1).await.unwrap();
    c.delete("/sw-deleted", -1).await.unwrap();
    c.create("/sw-kids/k", b"", CreateMode::Persistent)
        .await
        .unwrap();
    c.create("/sw-created", b"", CreateMode::Persistent)
        .await
        .unwrap();

    let mut w = RawClient::connect(&server.connect_string()).await;
    let request = SetWatches {
        relative_zxid: seen,
        data_watches: vec!["/sw-data".into(), "/sw-same".into(), "/sw-deleted".into()],
        exist_watches: vec!["/sw-created".into(), "/sw-absent".into()],
        child_watches: vec!["/sw-kids".into()],
    };
    let (h, _) = w.call(OpCode::SetWatches, &request).await;
    assert_eq!(h.err, 0);
    let mut got: Vec<WatcherEvent> = w.events.drain(..).map(|(_, e)| e).collect();
    got.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(
        got,
        vec![
            event(EventType::NodeCreated, "/sw-created"),
            event(EventType::NodeDataChanged, "/sw-data"),
            event(EventType::NodeDeleted, "/sw-deleted"),
            event(EventType::NodeChildrenChanged, "/sw-kids"),
        ]
    );
    // The unchanged and absent ones were re-armed.
    c.set_data("/sw-same", b"now", -1).await.unwrap();
    assert_eq!(
        w.next_event().await,
        Some(event(EventType::NodeDataChanged, "/sw-same"))
    );
    c.create("/sw-absent", b"", CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(
        w.next_event().await,
        Some(event(EventType::NodeCreated, "/sw-absent"))
    );
}

#[tokio::test]
async fn events_need_read_permission_at_delivery() {
    let (_s, mut w, mut c) = setup().await;
    c.add_digest("owner", "pw").await.unwrap();
    c.create("/sec", b"", CreateMode::Persistent).await.unwrap();
    w.add_watch("/sec", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    c.create_full(
        "/sec/private",
        Some(b"s"),
        vec![Acl::new(Perms::ALL, Id::digest("owner", "pw"))],
        CreateMode::Persistent,
    )
    .await
    .unwrap();
    c.create("/sec/public", b"", CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(
        w.next_event().await,
        Some(event(EventType::NodeCreated, "/sec/public"))
    );
    w.assert_no_event(QUIET).await;
}

#[tokio::test]
async fn watches_die_with_their_connection() {
    let server = TestingServer::start().await.unwrap();
    let mut c = RawClient::connect(&server.connect_string()).await;
    c.create("/w", b"", CreateMode::Persistent).await.unwrap();
    {
        let mut w = RawClient::connect(&server.connect_string()).await;
        w.get_data("/w", true).await.unwrap();
        w.add_watch("/", AddWatchMode::PersistentRecursive)
            .await
            .unwrap();
    }
    // Let the server notice the disconnect, then check its watch count.
    let deadline = std::time::Instant::now() + support::WAIT;
    loop {
        let wchs = server.four_letter_word("wchs").await.unwrap();
        if wchs.contains("Total watches:0") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "watches leaked: {wchs}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn set_watches2_reregisters_persistent_watches_without_catch_up_events() {
    let server = TestingServer::start().await.unwrap();
    let mut c = RawClient::connect(&server.connect_string()).await;
    c.create("/sw2", b"", CreateMode::Persistent).await.unwrap();
    let seen = c.last_zxid;
    c.set_data("/sw2", b"changed", -1).await.unwrap();

    let mut w = RawClient::connect(&server.connect_string()).await;
    let request = SetWatches2 {
        relative_zxid: seen,
        data_watches: vec![],
        exist_watches: vec![],
        child_watches: vec![],
        persistent_watches: vec!["/sw2".into()],
        persistent_recursive_watches: vec!["/sw2-tree".into()],
    };
    let (h, _) = w.call(OpCode::SetWatches2, &request).await;
    assert_eq!(h.err, 0);
    assert!(
        w.events.is_empty(),
        "persistent watches get no catch-up event: {:?}",
        w.events
    );
    c.set_data("/sw2", b"again", -1).await.unwrap();
    assert_eq!(
        w.next_event().await,
        Some(event(EventType::NodeDataChanged, "/sw2"))
    );
    c.create("/sw2-tree", b"", CreateMode::Persistent)
        .await
        .unwrap();
    c.create("/sw2-tree/leaf", b"", CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(
        w.next_event().await,
        Some(event(EventType::NodeCreated, "/sw2-tree"))
    );
    assert_eq!(
        w.next_event().await,
        Some(event(EventType::NodeCreated, "/sw2-tree/leaf"))
    );
    // Still registered: persistent watches survive firing.
    w.check_watches("/sw2", WatcherType::Persistent)
        .await
        .unwrap();
    w.check_watches("/sw2-tree", WatcherType::PersistentRecursive)
        .await
        .unwrap();
}
