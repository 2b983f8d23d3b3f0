//! Fault tests: a TCP proxy between client and server cuts, refuses, blackholes and drops
//! replies; the client must keep its session, its watches and its promises.

mod support;

use std::time::Duration;

use support::proxy::Mode;
use support::{next_state, Proxy, PATIENCE};
use zk::client::{ConnectionState, CreateMode, Error, EventType, RetryNTimes};

macro_rules! env_or_skip {
    () => {
        match support::env().await {
            Some(env) => env,
            None => return,
        }
    };
}

async fn within<F: std::future::IntoFuture>(f: F) -> F::Output {
    tokio::time::timeout(PATIENCE, f)
        .await
        .expect("within the patience bound")
}

#[tokio::test]
async fn suspended_then_reconnected_keeps_the_session_and_its_ephemerals() {
    let env = env_or_skip!();
    let proxy = Proxy::start(env.connect_string()).await;
    let client = support::connected_client(&proxy.connect_string()).await;
    let observer = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    client.create(&root).await.unwrap();
    let eph = format!("{root}/eph");
    client
        .create(&eph)
        .mode(CreateMode::Ephemeral)
        .await
        .unwrap();
    let session = client.session_id();
    let mut states = client.connection_states();

    proxy.cut();
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    assert_eq!(next_state(&mut states).await, ConnectionState::Reconnected);
    assert_eq!(client.session_id(), session);
    let (_, stat) = observer.get_data(&eph).await.unwrap();
    assert_eq!(stat.ephemeral_owner, session);
    // The client works after the reconnect.
    client.set_data(&eph, b"still mine".to_vec()).await.unwrap();

    client
        .delete(&root)
        .deleting_children_if_needed()
        .await
        .unwrap();
    client.close().await.unwrap();
    observer.close().await.unwrap();
}

#[tokio::test]
async fn watches_set_before_a_disconnect_fire_for_changes_made_during_it() {
    let env = env_or_skip!();
    let proxy = Proxy::start(env.connect_string()).await;
    let client = support::connected_client(&proxy.connect_string()).await;
    let other = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    client.create(&root).await.unwrap();
    let data_node = format!("{root}/data");
    let missing = format!("{root}/later");
    client.create(&data_node).await.unwrap();
    let (_, _, data_watch) = client.get_data(&data_node).watched().await.unwrap();
    let (_, exist_watch) = client.exists(&missing).watched().await.unwrap();
    let (_, child_watch) = client.get_children(&root).watched().await.unwrap();
    let mut states = client.connection_states();

    proxy.down();
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    other
        .set_data(&data_node, b"changed".to_vec())
        .await
        .unwrap();
    other.create(&missing).await.unwrap();
    proxy.up();
    assert_eq!(next_state(&mut states).await, ConnectionState::Reconnected);

    assert_eq!(
        within(data_watch).await.event_type,
        EventType::NodeDataChanged
    );
    assert_eq!(within(exist_watch).await.event_type, EventType::NodeCreated);
    assert_eq!(
        within(child_watch).await.event_type,
        EventType::NodeChildrenChanged
    );
    client
        .delete(&root)
        .deleting_children_if_needed()
        .await
        .unwrap();
    client.close().await.unwrap();
    other.close().await.unwrap();
}

#[tokio::test]
async fn session_expiry_is_lost_then_a_new_session_and_the_client_works() {
    let env = env_or_skip!();
    let proxy = Proxy::start(env.connect_string()).await;
    let client = support::connected_client(&proxy.connect_string()).await;
    let observer = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    observer.create(&root).await.unwrap();
    let eph = format!("{root}/eph");
    client
        .create(&eph)
        .mode(CreateMode::Ephemeral)
        .await
        .unwrap();
    let (_, watch) = client
        .exists(&format!("{root}/never"))
        .watched()
        .await
        .unwrap();
    let old_session = client.session_id();
    let mut states = client.connection_states();

    proxy.down();
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    support::expire_session(
        env.connect_string(),
        old_session,
        &client.session_password(),
    )
    .await;
    assert_eq!(
        observer.exists(&eph).await,
        Ok(None),
        "ephemeral gone with the session"
    );
    proxy.up();
    assert_eq!(next_state(&mut states).await, ConnectionState::Lost);
    assert_eq!(next_state(&mut states).await, ConnectionState::Reconnected);
    assert_ne!(client.session_id(), old_session);
    assert_ne!(client.session_id(), 0);
    let e = within(watch).await;
    assert_eq!(
        (e.event_type, e.state),
        (EventType::None, zk::client::KeeperState::Expired)
    );
    // Usable with the new session.
    let created = client
        .create(&eph)
        .mode(CreateMode::Ephemeral)
        .await
        .unwrap();
    assert_eq!(created.stat.unwrap().ephemeral_owner, client.session_id());
    client.close().await.unwrap();
    observer
        .delete(&root)
        .deleting_children_if_needed()
        .await
        .unwrap();
    observer.close().await.unwrap();
}

#[tokio::test]
async fn lost_is_declared_when_the_session_timeout_elapses_while_suspended() {
    let env = env_or_skip!();
    let proxy = Proxy::start(env.connect_string()).await;
    let client = support::connected_client(&proxy.connect_string()).await;
    let old_session = client.session_id();
    let mut states = client.connection_states();
    proxy.down();
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    // Nothing comes back: after the negotiated timeout the client declares LOST by itself.
    assert_eq!(next_state(&mut states).await, ConnectionState::Lost);
    proxy.up();
    assert_eq!(next_state(&mut states).await, ConnectionState::Reconnected);
    assert_ne!(client.session_id(), old_session);
    client.close().await.unwrap();
}

#[tokio::test]
async fn protected_mode_recovers_a_lost_create_reply_without_leaking_a_node() {
    let env = env_or_skip!();
    let proxy = Proxy::start(env.connect_string()).await;
    let client = support::client_builder(&proxy.connect_string())
        .retry_policy(RetryNTimes::new(10, Duration::from_millis(100)))
        .build()
        .unwrap();
    client.block_until_connected(PATIENCE).await.unwrap();
    let observer = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    observer.create(&root).await.unwrap();
    let (_, created_watch) = observer.get_children(&root).watched().await.unwrap();

    // The create reaches the server, its reply does not.
    proxy.set_mode(Mode::DropReplies);
    let create = tokio::spawn({
        let client = client.clone();
        let prefix = format!("{root}/lock-");
        async move {
            client
                .create(&prefix)
                .mode(CreateMode::EphemeralSequential)
                .with_protection()
                .await
        }
    });
    within(created_watch).await;
    proxy.cut();
    proxy.set_mode(Mode::Forward);
    let created = within(create)
        .await
        .unwrap()
        .expect("protected create recovered");

    let children = observer.get_children(&root).await.unwrap();
    assert_eq!(children.len(), 1, "exactly one node: {children:?}");
    assert_eq!(created.path, format!("{root}/{}", children[0]));
    let (_, stat) = observer.get_data(&created.path).await.unwrap();
    assert_eq!(stat.ephemeral_owner, client.session_id());
    client.close().await.unwrap();
    observer
        .delete(&root)
        .deleting_children_if_needed()
        .await
        .unwrap();
    observer.close().await.unwrap();
}

#[tokio::test]
async fn guaranteed_delete_completes_after_the_connection_returns() {
    let env = env_or_skip!();
    let proxy = Proxy::start(env.connect_string()).await;
    let client = support::client_builder(&proxy.connect_string())
        .connection_timeout(Duration::from_millis(500))
        .retry_policy(RetryNTimes::new(1, Duration::from_millis(50)))
        .build()
        .unwrap();
    client.block_until_connected(PATIENCE).await.unwrap();
    let observer = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    client.create(&root).await.unwrap();
    let (_, deleted) = observer.exists(&root).watched().await.unwrap();
    let mut states = client.connection_states();

    proxy.down();
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    let err = client.delete(&root).guaranteed().await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(observer.exists(&root).await.unwrap().is_some());
    proxy.up();
    assert_eq!(within(deleted).await.event_type, EventType::NodeDeleted);
    client.close().await.unwrap();
    observer.close().await.unwrap();
}

#[tokio::test]
async fn a_three_host_connect_string_fails_over_when_one_host_dies() {
    let env = env_or_skip!();
    let proxies = [
        Proxy::start(env.connect_string()).await,
        Proxy::start(env.connect_string()).await,
        Proxy::start(env.connect_string()).await,
    ];
    let connect = proxies
        .iter()
        .map(Proxy::connect_string)
        .collect::<Vec<_>>()
        .join(",");
    let client = support::connected_client(&connect).await;
    let session = client.session_id();
    let mut states = client.connection_states();
    let used: Vec<&Proxy> = proxies
        .iter()
        .filter(|p| p.active_connections() > 0)
        .collect();
    assert_eq!(used.len(), 1, "one connection at a time");
    used[0].down();
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    assert_eq!(next_state(&mut states).await, ConnectionState::Reconnected);
    assert_eq!(client.session_id(), session);
    assert_eq!(used[0].active_connections(), 0);
    let root = support::unique_root();
    client.create(&root).await.unwrap();
    client.delete(&root).await.unwrap();
    client.close().await.unwrap();
}

#[tokio::test]
async fn no_request_hangs_when_the_server_vanishes() {
    let env = env_or_skip!();
    let proxy = Proxy::start(env.connect_string()).await;
    let client = support::client_builder(&proxy.connect_string())
        .connection_timeout(Duration::from_secs(1))
        .retry_policy(RetryNTimes::new(1, Duration::from_millis(100)))
        .build()
        .unwrap();
    client.block_until_connected(PATIENCE).await.unwrap();
    let root = support::unique_root();
    client.create(&root).await.unwrap();

    // Requests in flight when the network dies, and requests made afterwards.
    proxy.set_mode(Mode::Blackhole);
    let in_flight: Vec<_> = (0..20)
        .map(|i| {
            let client = client.clone();
            let path = format!("{root}/n{i}");
            tokio::spawn(async move { client.create(&path).await })
        })
        .collect();
    for task in in_flight {
        let result = within(task).await.unwrap();
        assert!(matches!(result, Err(Error::ConnectionLoss)), "{result:?}");
    }
    proxy.down();
    let later = within(client.get_data(&root)).await;
    assert_eq!(later, Err(Error::ConnectionLoss));
    let close = within(client.close()).await;
    assert!(close.is_ok());
}
