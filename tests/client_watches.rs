//! One-shot and persistent watches against a real server.

mod support;

use futures::{FutureExt, StreamExt};
use zk::client::{CreateMode, Error, EventType, KeeperState, WatcherType};

macro_rules! env_or_skip {
    () => {
        match support::env().await {
            Some(env) => env,
            None => return,
        }
    };
}

async fn within<F: std::future::IntoFuture>(f: F) -> F::Output {
    tokio::time::timeout(support::PATIENCE, f)
        .await
        .expect("within the patience bound")
}

#[tokio::test]
async fn one_shot_watches_fire_once_for_the_right_events() {
    let env = env_or_skip!();
    let client = support::connected_client(env.connect_string()).await;
    let other = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    client.create(&root).await.unwrap();
    let node = format!("{root}/n");

    // exists on a missing node: fires on create.
    let (stat, created) = client.exists(&node).watched().await.unwrap();
    assert_eq!(stat, None);
    other.create(&node).data(b"1").await.unwrap();
    let e = within(created).await;
    assert_eq!(
        (e.event_type, e.state, e.path.as_str()),
        (
            EventType::NodeCreated,
            KeeperState::SyncConnected,
            node.as_str()
        )
    );

    // getData: fires on data change.
    let (_, _, changed) = client.get_data(&node).watched().await.unwrap();
    let (_, children) = client.get_children(&root).watched().await.unwrap();
    other.set_data(&node, b"2".to_vec()).await.unwrap();
    assert_eq!(within(changed).await.event_type, EventType::NodeDataChanged);

    // getChildren: fires on a child create.
    other.create(&format!("{root}/m")).await.unwrap();
    let e = within(children).await;
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (EventType::NodeChildrenChanged, root.as_str())
    );

    // Delete fires data and child watches on the node.
    let (_, _, data_w) = client.get_data(&node).watched().await.unwrap();
    let (_, child_w) = client.get_children(&node).watched().await.unwrap();
    other.delete(&node).await.unwrap();
    assert_eq!(within(data_w).await.event_type, EventType::NodeDeleted);
    assert_eq!(within(child_w).await.event_type, EventType::NodeDeleted);

    // getData on a missing node leaves no watch.
    assert!(matches!(
        client.get_data(&node).watched().await,
        Err(Error::NoNode)
    ));

    support::remove_tree(&client, &root).await;
    client.close().await.unwrap();
    other.close().await.unwrap();
}

#[tokio::test]
async fn a_watch_fires_before_the_reply_to_the_write_that_triggered_it() {
    let env = env_or_skip!();
    let client = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    client.create(&root).await.unwrap();
    for i in 0..20 {
        let (_, _, watch) = client.get_data(&root).watched().await.unwrap();
        client.set_data(&root, vec![i]).await.unwrap();
        let event = watch
            .now_or_never()
            .expect("the notification is dispatched before the setData reply");
        assert_eq!(event.event_type, EventType::NodeDataChanged);
    }
    client.delete(&root).await.unwrap();
    client.close().await.unwrap();
}

#[tokio::test]
async fn watch_paths_are_relative_to_the_namespace() {
    let env = env_or_skip!();
    let root = support::unique_root();
    let client = support::client_builder(env.connect_string())
        .namespace(root.trim_start_matches('/'))
        .build()
        .unwrap();
    client
        .block_until_connected(support::PATIENCE)
        .await
        .unwrap();
    let (_, watch) = client.exists("/a").watched().await.unwrap();
    let Some(mut stream) = env.since((3, 6), client.add_watch("/").recursive()).await else {
        return;
    };
    client.create("/a").await.unwrap();
    assert_eq!(within(watch).await.path, "/a");
    let e = within(stream.next()).await.unwrap();
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (EventType::NodeCreated, "/a")
    );
    drop(stream);
    client
        .using_namespace("")
        .unwrap()
        .delete(&root)
        .deleting_children_if_needed()
        .await
        .unwrap();
    client.close().await.unwrap();
}

#[tokio::test]
async fn persistent_and_recursive_watches_are_streams_removed_on_drop() {
    let env = env_or_skip!();
    let client = support::connected_client(env.connect_string()).await;
    let other = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();

    other.create(&root).await.unwrap();
    // Different paths: Apache 3.8 keeps one watch mode per (connection, path), so a recursive
    // addWatch on the same path would replace the persistent one (fixed in 3.9).
    let p = format!("{root}/p");
    let r = format!("{root}/r");
    let Some(mut exact) = env.since((3, 6), client.add_watch(&p)).await else {
        return;
    };
    let mut tree = client.add_watch(&r).recursive().await.unwrap();
    assert!(tree.is_recursive());
    other.create(&p).await.unwrap();
    other.create(&format!("{p}/c")).await.unwrap();
    other.set_data(&p, b"x".to_vec()).await.unwrap();
    other.create(&r).await.unwrap();
    other.create(&format!("{r}/a")).await.unwrap();
    other
        .set_data(&format!("{r}/a"), b"x".to_vec())
        .await
        .unwrap();
    other.set_data(&r, b"y".to_vec()).await.unwrap();

    let mut seen = Vec::new();
    for _ in 0..3 {
        let e = within(exact.next()).await.unwrap();
        seen.push((e.event_type, e.path));
    }
    assert_eq!(
        seen,
        vec![
            (EventType::NodeCreated, p.clone()),
            (EventType::NodeChildrenChanged, p.clone()),
            (EventType::NodeDataChanged, p.clone()),
        ]
    );
    let mut seen = Vec::new();
    for _ in 0..4 {
        let e = within(tree.next()).await.unwrap();
        seen.push((e.event_type, e.path));
    }
    assert_eq!(
        seen,
        vec![
            (EventType::NodeCreated, r.clone()),
            (EventType::NodeCreated, format!("{r}/a")),
            (EventType::NodeDataChanged, format!("{r}/a")),
            (EventType::NodeDataChanged, r.clone()),
        ]
    );

    // Dropping the streams removes the server-side watches (removeWatches is queued before the
    // next request, so checkWatches sees the result).
    drop(exact);
    drop(tree);
    for path in [&p, &r] {
        assert_eq!(
            client.session().check_watches(path, WatcherType::Any).await,
            Err(Error::NoWatcher)
        );
    }
    support::remove_tree(&other, &root).await;
    client.close().await.unwrap();
    other.close().await.unwrap();
}

#[tokio::test]
async fn one_connection_holds_every_watch_mode_on_one_path() {
    let env = env_or_skip!();
    if env.is_external_before(3, 9).await {
        // Apache 3.6-3.8 keep one mode per (connection, path): a later addWatch replaces the
        // earlier one (ZOOKEEPER-4466, fixed in 3.9). Our server behaves as 3.9.
        eprintln!("SKIPPED: ZOOKEEPER-4466 is fixed in Apache 3.9");
        return;
    }
    let client = support::connected_client(env.connect_string()).await;
    let other = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    other.create(&root).data(b"0").await.unwrap();
    let mut exact = client.add_watch(&root).await.unwrap();
    let mut tree = client.add_watch(&root).recursive().await.unwrap();
    let (_, _, once) = client.get_data(&root).watched().await.unwrap();

    other.set_data(&root, b"1".to_vec()).await.unwrap();
    other.create(&format!("{root}/c")).await.unwrap();
    let fired = within(once).await;
    assert_eq!(fired.event_type, EventType::NodeDataChanged);
    assert_eq!(
        within(exact.next()).await.unwrap().event_type,
        EventType::NodeDataChanged
    );
    let e = within(exact.next()).await.unwrap();
    assert_eq!(
        (e.event_type, e.path),
        (EventType::NodeChildrenChanged, root.clone())
    );
    assert_eq!(
        within(tree.next()).await.unwrap().event_type,
        EventType::NodeDataChanged
    );
    let e = within(tree.next()).await.unwrap();
    assert_eq!(
        (e.event_type, e.path),
        (EventType::NodeCreated, format!("{root}/c"))
    );

    // The one-shot watch is spent; both persistent ones go on.
    other.set_data(&root, b"2".to_vec()).await.unwrap();
    assert_eq!(
        within(exact.next()).await.unwrap().event_type,
        EventType::NodeDataChanged
    );
    assert_eq!(
        within(tree.next()).await.unwrap().event_type,
        EventType::NodeDataChanged
    );
    drop((exact, tree));
    support::remove_tree(&other, &root).await;
    client.close().await.unwrap();
    other.close().await.unwrap();
}

#[tokio::test]
async fn remove_watches_tells_the_watchers() {
    let env = env_or_skip!();
    let client = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    client.create(&root).await.unwrap();
    let (_, _, data) = client.get_data(&root).watched().await.unwrap();
    let (_, child) = client.get_children(&root).watched().await.unwrap();
    client
        .remove_watches(&root)
        .of_type(WatcherType::Data)
        .await
        .unwrap();
    assert_eq!(within(data).await.event_type, EventType::DataWatchRemoved);
    client
        .remove_watches(&root)
        .of_type(WatcherType::Children)
        .locally()
        .await
        .unwrap();
    assert_eq!(within(child).await.event_type, EventType::ChildWatchRemoved);
    // As Java's `local` flag, the server was told as well.
    assert_eq!(
        client
            .session()
            .check_watches(&root, WatcherType::Children)
            .await,
        Err(Error::NoWatcher)
    );
    assert_eq!(
        client
            .remove_watches(&root)
            .of_type(WatcherType::Data)
            .await,
        Err(Error::NoWatcher)
    );
    client
        .remove_watches(&root)
        .of_type(WatcherType::Data)
        .quietly()
        .await
        .unwrap();
    client.delete(&root).await.unwrap();
    client.close().await.unwrap();
}

/// Removing a one-shot watch `locally()` leaves a persistent watch on the same path alone,
/// on 3.6-3.8 servers too (whose removeWatches ignores the watch's mode).
#[tokio::test]
async fn removing_a_one_shot_watch_locally_keeps_a_persistent_one() {
    let env = env_or_skip!();
    let client = support::connected_client(env.connect_string()).await;
    let other = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    client.create(&root).await.unwrap();
    let Some(mut persistent) = env.since((3, 6), client.add_watch(&root)).await else {
        return;
    };
    let (_, _, data) = client.get_data(&root).watched().await.unwrap();
    client
        .remove_watches(&root)
        .of_type(WatcherType::Data)
        .locally()
        .await
        .unwrap();
    assert_eq!(within(data).await.event_type, EventType::DataWatchRemoved);
    other.set_data(&root, b"x".to_vec()).await.unwrap();
    let event = within(persistent.next()).await.expect("an event");
    assert_eq!(event.event_type, EventType::NodeDataChanged);
    drop(persistent);
    client.delete(&root).await.unwrap();
    client.close().await.unwrap();
    other.close().await.unwrap();
}

#[tokio::test]
async fn watches_end_with_a_closed_event_when_the_client_closes() {
    let env = env_or_skip!();
    let client = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    let (_, watch) = client.exists(&root).watched().await.unwrap();
    let Some(mut stream) = env.since((3, 6), client.add_watch(&root)).await else {
        return;
    };
    client.close().await.unwrap();
    let e = within(watch).await;
    assert_eq!(
        (e.event_type, e.state),
        (EventType::None, KeeperState::Closed)
    );
    let e = within(stream.next()).await.unwrap();
    assert_eq!(
        (e.event_type, e.state),
        (EventType::None, KeeperState::Closed)
    );
    assert_eq!(within(stream.next()).await, None);
    let _ = CreateMode::Persistent;
}

#[tokio::test]
async fn dropping_a_persistent_watch_keeps_a_watch_still_being_set() {
    let env = env_or_skip!();
    let client = support::connected_client(env.connect_string()).await;
    let other = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    client.create(&root).await.unwrap();
    let persistent = client
        .add_watch(&root)
        .mode(zk::client::AddWatchMode::Persistent);
    let Some(persistent) = env.since((3, 6), persistent).await else {
        return;
    };
    // getData with a watch is queued (first poll), then the stream is dropped before the
    // reply arrives: the removal must not wipe the data watch on the server.
    let mut get = std::future::IntoFuture::into_future(client.get_data(&root).watched());
    assert!(futures::poll!(&mut get).is_pending());
    drop(persistent);
    let (_, _, data_watch) = within(get).await.unwrap();
    other.set_data(&root, b"changed".to_vec()).await.unwrap();
    let event = within(data_watch).await;
    assert_eq!(event.event_type, EventType::NodeDataChanged);
    client.delete(&root).await.unwrap();
    client.close().await.unwrap();
    other.close().await.unwrap();
}
