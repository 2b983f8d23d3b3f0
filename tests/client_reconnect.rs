//! Fault tests: a TCP proxy between client and server cuts, refuses, blackholes and drops
//! replies; the client must keep its session, its watches and its promises.

mod support;

use std::future::IntoFuture;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use support::proxy::Mode;
use support::{next_state, Proxy, PATIENCE};
use zk::client::{
    Acl, ConnectionState, CreateMode, Error, EventType, Id, Perms, RetryNTimes, RetryOneTime,
    SessionFailedRetryPolicy, SessionState, WatcherType,
};

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
    let proxy = Proxy::start(env.connect_string())
        .await
        .expect("proxy starts");
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

    support::remove_tree(&client, &root).await;
    client.close().await.unwrap();
    observer.close().await.unwrap();
}

/// Once `block_until_connected` returns, `connection_state()` says so too (Curator's waits on
/// the connection-state manager): a recipe checking it right after must not see SUSPENDED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_until_connected_returns_once_the_connection_state_is_connected() {
    let env = env_or_skip!();
    let proxy = Proxy::start(env.connect_string())
        .await
        .expect("proxy starts");
    for _ in 0..5 {
        let client = support::client_builder(&proxy.connect_string())
            .build()
            .unwrap();
        client.block_until_connected(PATIENCE).await.unwrap();
        assert_eq!(client.connection_state(), Some(ConnectionState::Connected));
        let mut states = client.connection_states();
        for _ in 0..2 {
            proxy.cut();
            assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
            client.block_until_connected(PATIENCE).await.unwrap();
            assert_eq!(
                client.connection_state(),
                Some(ConnectionState::Reconnected)
            );
            assert_eq!(next_state(&mut states).await, ConnectionState::Reconnected);
        }
        client.close().await.unwrap();
    }
}

#[tokio::test]
async fn watches_set_before_a_disconnect_fire_for_changes_made_during_it() {
    let env = env_or_skip!();
    let proxy = Proxy::start(env.connect_string())
        .await
        .expect("proxy starts");
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
    support::remove_tree(&client, &root).await;
    client.close().await.unwrap();
    other.close().await.unwrap();
}

/// The same through a chroot: the re-registration sends the watches' server paths (chroot
/// included), and the events come back with the client's paths.
#[tokio::test]
async fn watches_under_a_chroot_fire_for_changes_made_during_a_disconnect() {
    let env = env_or_skip!();
    let proxy = Proxy::start(env.connect_string())
        .await
        .expect("proxy starts");
    let other = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    other.create(&root).await.unwrap();
    other.create(&format!("{root}/data")).await.unwrap();
    let client = support::connected_client(&format!("{}{root}", proxy.connect_string())).await;
    let (_, _, data_watch) = client.get_data("/data").watched().await.unwrap();
    let (_, exist_watch) = client.exists("/later").watched().await.unwrap();
    let (_, child_watch) = client.get_children("/").watched().await.unwrap();
    let mut states = client.connection_states();

    proxy.down();
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    other
        .set_data(&format!("{root}/data"), b"changed".to_vec())
        .await
        .unwrap();
    other.create(&format!("{root}/later")).await.unwrap();
    proxy.up();
    assert_eq!(next_state(&mut states).await, ConnectionState::Reconnected);

    let event = |e: zk::client::WatchedEvent| (e.event_type, e.path);
    assert_eq!(
        event(within(data_watch).await),
        (EventType::NodeDataChanged, "/data".to_owned())
    );
    assert_eq!(
        event(within(exist_watch).await),
        (EventType::NodeCreated, "/later".to_owned())
    );
    assert_eq!(
        event(within(child_watch).await),
        (EventType::NodeChildrenChanged, "/".to_owned())
    );
    client.close().await.unwrap();
    support::remove_tree(&other, &root).await;
    other.close().await.unwrap();
}

#[tokio::test]
async fn persistent_watches_are_registered_again_after_a_reconnect() {
    let env = env_or_skip!();
    let proxy = Proxy::start(env.connect_string())
        .await
        .expect("proxy starts");
    let client = support::connected_client(&proxy.connect_string()).await;
    let other = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    other.create(&root).await.unwrap();
    // Different paths: Apache 3.8 keeps one watch mode per (connection, path).
    let (p, r) = (format!("{root}/p"), format!("{root}/r"));
    other.create(&p).await.unwrap();
    other.create(&r).await.unwrap();
    let Some(mut exact) = env.since((3, 6), client.add_watch(&p)).await else {
        return;
    };
    let mut tree = client.add_watch(&r).recursive().await.unwrap();
    let session = client.session_id();
    let mut states = client.connection_states();

    proxy.down();
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    // Persistent watches are re-registered without catch-up (PROTOCOL.md §10): what
    // changes while the client is away is not delivered.
    other.set_data(&p, b"missed".to_vec()).await.unwrap();
    other.create(&format!("{r}/missed")).await.unwrap();
    proxy.up();
    assert_eq!(next_state(&mut states).await, ConnectionState::Reconnected);
    assert_eq!(client.session_id(), session);
    // One round trip: the server has taken the watches back before the changes below.
    client.exists(&root).await.unwrap();

    other.create(&format!("{p}/c")).await.unwrap();
    other.set_data(&r, b"after".to_vec()).await.unwrap();
    let e = within(exact.next()).await.expect("the exact watch goes on");
    assert_eq!(
        (e.event_type, e.path),
        (EventType::NodeChildrenChanged, p.clone())
    );
    let e = within(tree.next())
        .await
        .expect("the recursive watch goes on");
    assert_eq!(
        (e.event_type, e.path),
        (EventType::NodeDataChanged, r.clone())
    );

    drop((exact, tree));
    support::remove_tree(&client, &root).await;
    client.close().await.unwrap();
    other.close().await.unwrap();
}

#[tokio::test]
async fn session_expiry_is_lost_then_a_new_session_and_the_client_works() {
    let env = env_or_skip!();
    let proxy = Proxy::start(env.connect_string())
        .await
        .expect("proxy starts");
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
    support::remove_tree(&observer, &root).await;
    observer.close().await.unwrap();
}

/// Credentials — the builder's and those added later — are presented again on every
/// connection: after a reconnect of the same session, and in the new session after an expiry.
#[tokio::test]
async fn credentials_are_presented_again_after_a_reconnect_and_after_an_expiry() {
    let env = env_or_skip!();
    let (proxy, client) =
        client_behind_a_proxy(env.connect_string(), |b| b.digest_auth("alice", "secret")).await;
    client
        .session()
        .add_auth("digest", b"bob:pw")
        .await
        .unwrap();
    let observer = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    observer.create(&root).await.unwrap();
    let only = |user: &str, password: &str| vec![Acl::new(Perms::ALL, Id::digest(user, password))];
    let alices = format!("{root}/alice");
    let bobs = format!("{root}/bob");
    client
        .create(&alices)
        .acl(only("alice", "secret"))
        .await
        .unwrap();
    client.create(&bobs).acl(only("bob", "pw")).await.unwrap();
    assert_eq!(
        observer.set_data(&bobs, b"x".to_vec()).await,
        Err(Error::NoAuth)
    );
    // who_am_i is Apache 3.7's (an older server answers Unimplemented and drops the
    // connection, which would blur the states below; the ops tests check that answer).
    let has_who_am_i = !env.is_external_before(3, 7).await;
    let may_write_both = |round: &'static str| {
        let client = client.clone();
        let (alices, bobs) = (alices.clone(), bobs.clone());
        async move {
            client.set_data(&alices, round).await.expect(round);
            client.set_data(&bobs, round).await.expect(round);
            if has_who_am_i {
                let mut users: Vec<String> = client
                    .who_am_i()
                    .await
                    .unwrap()
                    .into_iter()
                    .filter(|c| c.auth_scheme == "digest")
                    .map(|c| c.user)
                    .collect();
                users.sort();
                assert_eq!(users, ["alice", "bob"], "{round}");
            }
        }
    };
    may_write_both("connected").await;

    let mut states = client.connection_states();
    proxy.down();
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    proxy.up();
    assert_eq!(next_state(&mut states).await, ConnectionState::Reconnected);
    may_write_both("reconnected").await;

    proxy.down();
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    support::expire_session(
        env.connect_string(),
        client.session_id(),
        &client.session_password(),
    )
    .await;
    proxy.up();
    assert_eq!(next_state(&mut states).await, ConnectionState::Lost);
    assert_eq!(next_state(&mut states).await, ConnectionState::Reconnected);
    may_write_both("new session").await;

    client.close().await.unwrap();
    support::remove_tree(&observer, &root).await;
    observer.close().await.unwrap();
}

/// Credentials added while disconnected: the call says ConnectionLoss at once (it does not
/// wait for a connection that may never come), and the credentials are presented on the next
/// connection all the same.
#[tokio::test]
async fn credentials_added_while_disconnected_fail_at_once_and_count_after_the_reconnect() {
    let env = env_or_skip!();
    let (proxy, client) = client_behind_a_proxy(env.connect_string(), |b| b).await;
    let observer = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    let carols = format!("{root}/carol");
    observer.create(&root).await.unwrap();
    observer
        .create(&carols)
        .acl(vec![Acl::new(Perms::ALL, Id::digest("carol", "pw"))])
        .await
        .unwrap();

    let mut states = client.connection_states();
    proxy.down();
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    // Well below the 5 s connection timeout a wait for a connection would take.
    let added = tokio::time::timeout(
        Duration::from_secs(3),
        client.session().add_auth("digest", b"carol:pw"),
    )
    .await
    .expect("add_auth answers while disconnected, without waiting for a connection");
    assert_eq!(added, Err(Error::ConnectionLoss));
    proxy.up();
    assert_eq!(next_state(&mut states).await, ConnectionState::Reconnected);
    client.set_data(&carols, b"x".to_vec()).await.unwrap();

    client.close().await.unwrap();
    support::remove_tree(&observer, &root).await;
    observer.close().await.unwrap();
}

#[tokio::test]
async fn lost_is_declared_when_the_session_timeout_elapses_while_suspended() {
    let env = env_or_skip!();
    let proxy = Proxy::start(env.connect_string())
        .await
        .expect("proxy starts");
    let client = support::connected_client(&proxy.connect_string()).await;
    let old_session = client.session_id();
    let negotiated = client.session().negotiated_timeout();
    let mut states = client.connection_states();
    proxy.down();
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    let suspended = std::time::Instant::now();
    // Nothing comes back: after the negotiated timeout the client declares LOST by itself
    // (Curator's rule: not before, and not much later).
    assert_eq!(next_state(&mut states).await, ConnectionState::Lost);
    let lost_after = suspended.elapsed();
    assert!(
        lost_after >= negotiated - Duration::from_millis(500) && lost_after < negotiated * 2,
        "LOST {lost_after:?} after SUSPENDED; the session timeout is {negotiated:?}"
    );
    proxy.up();
    assert_eq!(next_state(&mut states).await, ConnectionState::Reconnected);
    assert_ne!(client.session_id(), old_session);
    client.close().await.unwrap();
}

#[tokio::test]
async fn protected_mode_recovers_a_lost_create_reply_without_leaking_a_node() {
    let env = env_or_skip!();
    let (proxy, client) = retrying_client_behind_a_proxy(env.connect_string()).await;
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
    support::remove_tree(&observer, &root).await;
    observer.close().await.unwrap();
}

/// A versioned write whose reply is lost: retried (the builder's policy) it would conflict
/// with itself (BADVERSION); through a client view without retries it fails with
/// CONNECTIONLOSS, so the caller knows the outcome is unknown, and the node shows it applied.
#[tokio::test]
async fn a_write_without_retries_reports_a_lost_reply_as_connection_loss() {
    let env = env_or_skip!();
    let (proxy, client) = retrying_client_behind_a_proxy(env.connect_string()).await;
    let observer = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    observer.create(&root).await.unwrap();
    let (_, _, changed) = observer.get_data(&root).watched().await.unwrap();

    proxy.set_mode(Mode::DropReplies);
    let write = tokio::spawn({
        let once = client.with_retry_policy(RetryNTimes::new(0, Duration::ZERO));
        let root = root.clone();
        async move { once.set_data(&root, b"1".to_vec()).version(0).await }
    });
    within(changed).await;
    proxy.cut();
    proxy.set_mode(Mode::Forward);
    assert_eq!(within(write).await.unwrap(), Err(Error::ConnectionLoss));

    let (data, stat) = client.get_data(&root).await.unwrap();
    assert_eq!((data.as_slice(), stat.version), (&b"1"[..], 1));
    client.close().await.unwrap();
    observer.delete(&root).await.unwrap();
    observer.close().await.unwrap();
}

#[tokio::test]
async fn guaranteed_delete_completes_after_the_connection_returns() {
    let env = env_or_skip!();
    let (proxy, client) = client_behind_a_proxy(env.connect_string(), |b| {
        b.connection_timeout(Duration::from_millis(500))
            .retry_policy(RetryNTimes::new(1, Duration::from_millis(50)))
    })
    .await;
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

/// A guaranteed delete outlives a session expiry, even under a retry policy that gives up on
/// expiry for calls (Curator's SessionFailedRetryPolicy): the call fails with SESSIONEXPIRED,
/// and the node is deleted in the next session.
#[tokio::test]
async fn guaranteed_delete_completes_in_the_next_session() {
    let env = env_or_skip!();
    let (proxy, client) = client_behind_a_proxy(env.connect_string(), |b| {
        b.connection_timeout(PATIENCE)
            .retry_policy(SessionFailedRetryPolicy::new(RetryNTimes::new(
                3,
                Duration::from_millis(50),
            )))
    })
    .await;
    let observer = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    observer.create(&root).await.unwrap();
    let (_, deleted) = observer.exists(&root).watched().await.unwrap();
    let mut states = client.connection_states();

    proxy.down();
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    // Queued until the connection is back, which finds the session expired.
    let delete = tokio::spawn({
        let client = client.clone();
        let root = root.clone();
        async move { client.delete(&root).guaranteed().await }
    });
    support::expire_session(
        env.connect_string(),
        client.session_id(),
        &client.session_password(),
    )
    .await;
    proxy.up();
    assert_eq!(within(delete).await.unwrap(), Err(Error::SessionExpired));
    assert_eq!(within(deleted).await.event_type, EventType::NodeDeleted);
    client.close().await.unwrap();
    observer.close().await.unwrap();
}

/// The connection timeout bounds a call's wait for a connection, not its time on a
/// connection: a call that waited longer than it for a slow server, then lost the
/// connection, is still retried once the client reconnects (as Curator's retry loop does).
#[tokio::test]
async fn a_call_slower_than_the_connection_timeout_is_retried_after_a_connection_loss() {
    let env = env_or_skip!();
    let connection_timeout = Duration::from_millis(500);
    let (proxy, client) = client_behind_a_proxy(env.connect_string(), |b| {
        b.connection_timeout(connection_timeout)
            .retry_policy(RetryNTimes::new(1, Duration::from_millis(50)))
    })
    .await;
    let root = support::unique_root();
    let mut states = client.connection_states();

    // The server "stalls" (the create is swallowed) for longer than the connection timeout
    // but less than the read timeout, then the connection drops.
    proxy.set_mode(Mode::Blackhole);
    let create = tokio::spawn({
        let client = client.clone();
        let root = root.clone();
        async move { client.create(&root).await }
    });
    tokio::time::sleep(connection_timeout + Duration::from_millis(300)).await;
    proxy.set_mode(Mode::Forward);
    proxy.cut();
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    within(create)
        .await
        .unwrap()
        .expect("the create is retried on the next connection");
    client.close().await.unwrap();
    let observer = support::connected_client(env.connect_string()).await;
    support::remove_tree(&observer, &root).await;
    observer.close().await.unwrap();
}

/// A retry policy that records that it was consulted (the call met a retryable error and
/// is in its backoff).
#[derive(Debug)]
struct Consulted {
    inner: RetryNTimes,
    consulted: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl zk::client::RetryPolicy for Consulted {
    fn allow_retry(&self, retry_count: u32, elapsed: Duration) -> Option<Duration> {
        self.consulted
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.inner.allow_retry(retry_count, elapsed)
    }
}

/// Creates `path` with a client (pinned to its session when `pinned`) whose retry policy
/// allows `retries` after a 6 s backoff, and makes the session expire during that backoff:
/// the create is swallowed, its connection cut (CONNECTIONLOSS: the backoff starts), the
/// session expired from elsewhere and a new one made before the backoff ends. Returns the
/// create's outcome.
async fn create_across_an_expiry_in_the_backoff(
    connect: &str,
    path: &str,
    retries: u32,
    pinned: bool,
) -> zk::client::Result<()> {
    let consulted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let policy = Consulted {
        inner: RetryNTimes::new(retries, Duration::from_secs(6)),
        consulted: consulted.clone(),
    };
    let (proxy, client) = client_behind_a_proxy(connect, |b| {
        b.connection_timeout(PATIENCE).retry_policy(policy)
    })
    .await;
    let mut states = client.connection_states();
    consulted.store(false, std::sync::atomic::Ordering::SeqCst);
    proxy.set_mode(Mode::Blackhole);
    let create = tokio::spawn({
        let client = if pinned {
            client.pinned_to_session()
        } else {
            client.clone()
        };
        let path = path.to_owned();
        async move { client.create(&path).await.map(|_| ()) }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    proxy.down();
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    within(async {
        while !consulted.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    support::expire_session(connect, client.session_id(), &client.session_password()).await;
    proxy.up();
    assert_eq!(next_state(&mut states).await, ConnectionState::Lost);
    assert_eq!(next_state(&mut states).await, ConnectionState::Reconnected);
    assert!(
        !create.is_finished(),
        "the retry came before the test was ready"
    );
    let outcome = within(create).await.unwrap();
    client.close().await.unwrap();
    outcome
}

/// A client pinned to its session never sends a call again in the next session: a call whose
/// session expired during its backoff fails with SESSIONEXPIRED, and nothing is written.
#[tokio::test]
async fn a_call_pinned_to_its_session_is_not_sent_in_the_next() {
    let env = env_or_skip!();
    let observer = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    observer.create(&root).await.unwrap();
    let node = format!("{root}/only-in-its-session");
    assert_eq!(
        create_across_an_expiry_in_the_backoff(env.connect_string(), &node, 3, true).await,
        Err(Error::SessionExpired)
    );
    assert_eq!(observer.exists(&node).await.unwrap(), None);
    support::remove_tree(&observer, &root).await;
    observer.close().await.unwrap();
}

/// A call that met a connection loss is retried after its backoff; when the session expired
/// in between, the retry runs in the new session and the server's answer there is what the
/// caller gets: a definite error (here NODEEXISTS) is not passed off as the expiry (which
/// would make the retry policy send the call yet again, or give up with the wrong error).
#[tokio::test]
async fn a_definite_answer_in_the_next_session_is_not_reported_as_the_expiry() {
    let env = env_or_skip!();
    let observer = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    observer.create(&root).await.unwrap();
    assert_eq!(
        create_across_an_expiry_in_the_backoff(env.connect_string(), &root, 1, false).await,
        Err(Error::NodeExists)
    );
    support::remove_tree(&observer, &root).await;
    observer.close().await.unwrap();
}

#[tokio::test]
async fn guaranteed_watch_removal_completes_after_the_connection_returns() {
    let env = env_or_skip!();
    let (proxy, client) = client_behind_a_proxy(env.connect_string(), |b| {
        b.connection_timeout(Duration::from_millis(500))
            .retry_policy(RetryNTimes::new(1, Duration::from_millis(50)))
    })
    .await;
    let root = support::unique_root();
    let kept = format!("{root}/kept");
    client
        .create(&kept)
        .creating_parents_if_needed()
        .await
        .unwrap();
    let (_, removed) = client.exists(&root).watched().await.unwrap();
    let (_, not_removed) = client.exists(&kept).watched().await.unwrap();
    let mut states = client.connection_states();

    // Both removals fail on the connection; only the guaranteed one goes on.
    proxy.down();
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    let err = client.remove_watches(&root).guaranteed().await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let err = client.remove_watches(&kept).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    proxy.up();
    assert_eq!(
        within(removed).await.event_type,
        EventType::DataWatchRemoved
    );
    let check = |path: &str| {
        let (client, path) = (client.clone(), path.to_owned());
        async move {
            client
                .session()
                .check_watches(&path, WatcherType::Any)
                .await
        }
    };
    assert_eq!(check(&root).await, Err(Error::NoWatcher));
    // The other watch was registered again after the reconnect and still fires.
    assert_eq!(check(&kept).await, Ok(()));
    client.delete(&kept).await.unwrap();
    assert_eq!(within(not_removed).await.event_type, EventType::NodeDeleted);
    client.delete(&root).await.unwrap();
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_three_host_connect_string_fails_over_when_one_host_dies() {
    let env = env_or_skip!();
    let proxies = [
        Proxy::start(env.connect_string())
            .await
            .expect("proxy starts"),
        Proxy::start(env.connect_string())
            .await
            .expect("proxy starts"),
        Proxy::start(env.connect_string())
            .await
            .expect("proxy starts"),
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
    // The client names the server it uses.
    let server = client.connected_server().expect("connected");
    assert_eq!(server.to_string(), used[0].connect_string());
    used[0].down();
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    assert_eq!(next_state(&mut states).await, ConnectionState::Reconnected);
    assert_eq!(client.session_id(), session);
    assert_eq!(used[0].active_connections(), 0);
    let now = client.connected_server().expect("connected");
    assert_ne!(now, server);
    assert!(proxies
        .iter()
        .any(|p| p.connect_string() == now.to_string()));
    let root = support::unique_root();
    client.create(&root).await.unwrap();
    client.delete(&root).await.unwrap();
    client.close().await.unwrap();
}

/// Three proxies in front of `connect`, as three servers, and their addresses.
async fn three_proxies(connect: &str) -> (Vec<Proxy>, Vec<String>) {
    let mut proxies = Vec::new();
    for _ in 0..3 {
        proxies.push(Proxy::start(connect).await.expect("proxy starts"));
    }
    let address = proxies.iter().map(Proxy::connect_string).collect();
    (proxies, address)
}

#[tokio::test]
async fn an_updated_server_list_is_used_and_an_unlisted_server_is_left() {
    let env = env_or_skip!();
    let (_proxies, address) = three_proxies(env.connect_string()).await;
    let client = support::connected_client(&format!("{},{}", address[0], address[1])).await;
    let session = client.session_id();
    let mut states = client.connection_states();
    assert!(matches!(
        client.update_servers("127.0.0.1:1/chroot"),
        Err(Error::InvalidConnectString(_))
    ));
    let connected_to =
        |client: &zk::client::Client| client.connected_server().map(|s| s.to_string());
    let mine = connected_to(&client).expect("connected");

    // Still listed, and the list did not grow: the connection stays.
    client
        .update_servers(&format!("{mine},{}", address[2]))
        .unwrap();
    assert_eq!(client.servers().len(), 2);
    client.exists("/").await.unwrap();
    assert_eq!(connected_to(&client), Some(mine.clone()));

    // No longer listed: the client leaves it for a listed one, with its session.
    client.update_servers(&address[2]).unwrap();
    assert_eq!(
        client
            .servers()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [address[2].clone()]
    );
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    assert_eq!(next_state(&mut states).await, ConnectionState::Reconnected);
    assert_eq!(client.session_id(), session);
    assert_eq!(connected_to(&client), Some(address[2].clone()));
    client.close().await.unwrap();
}

/// A server list updated while a reconnection attempt is under way, no longer naming that
/// server: once re-attached there, the client moves on to a listed one with its session. (A
/// brand-new session stays where it was made: leaving would abandon it on the server.)
#[tokio::test]
async fn a_server_unlisted_during_the_handshake_is_left() {
    let env = env_or_skip!();
    let slow = Proxy::start(env.connect_string())
        .await
        .expect("proxy starts");
    let (_proxies, address) = three_proxies(env.connect_string()).await;
    let client = support::client_builder(&slow.connect_string())
        .session_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    client.block_until_connected(PATIENCE).await.unwrap();
    let session = client.session_id();
    let mut states = client.connection_states();
    slow.set_mode(Mode::Delay(Duration::from_millis(700)));
    slow.cut();
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    // The re-attach is under way through the slow proxy.
    tokio::time::sleep(Duration::from_millis(200)).await;
    client.update_servers(&address[0]).unwrap();
    within(async {
        while client.connected_server().map(|s| s.to_string()) != Some(address[0].clone()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    client.exists("/").await.unwrap();
    assert_eq!(client.session_id(), session);
    client.close().await.unwrap();
}

/// An observer, a client, and an ephemeral node of the client's under a new root: (observer,
/// client, root, the ephemeral's path).
async fn with_an_ephemeral(
    connect: &str,
) -> (zk::client::Client, zk::client::Client, String, String) {
    let observer = support::connected_client(connect).await;
    let client = support::connected_client(connect).await;
    let root = support::unique_root();
    let eph = format!("{root}/eph");
    observer.create(&root).await.unwrap();
    client
        .create(&eph)
        .mode(CreateMode::Ephemeral)
        .await
        .unwrap();
    (observer, client, root, eph)
}

/// A server list that drops the session's server while it is closing does not cut the
/// connection before closeSession is answered: the ephemerals go with the close, not a
/// session timeout later.
#[tokio::test]
async fn a_server_list_update_during_close_does_not_cut_the_close_short() {
    let env = env_or_skip!();
    let (observer, client, root, eph) = with_an_ephemeral(env.connect_string()).await;

    // The close is queued first, then the list without the session's server, before the
    // session task has run.
    let session = client.session().clone();
    let mut close = Box::pin(session.close());
    assert!((&mut close).now_or_never().is_none());
    session.update_servers("127.0.0.1:1").unwrap();
    within(close).await.unwrap();
    assert_eq!(
        observer.exists(&eph).await.unwrap(),
        None,
        "the closed session's ephemeral outlived its close"
    );

    support::remove_tree(&observer, &root).await;
    observer.close().await.unwrap();
}

/// A second close made while the first is in progress returns when the session is closed,
/// not before.
#[tokio::test]
async fn a_second_close_returns_when_the_session_is_closed() {
    let env = env_or_skip!();
    let (observer, client, root, eph) = with_an_ephemeral(env.connect_string()).await;

    let session = client.session().clone();
    let mut first = Box::pin(session.close());
    assert!((&mut first).now_or_never().is_none());
    within(session.close()).await.unwrap();
    assert_eq!(
        observer.exists(&eph).await.unwrap(),
        None,
        "the second close returned before the session was closed"
    );
    within(first).await.unwrap();

    support::remove_tree(&observer, &root).await;
    observer.close().await.unwrap();
}

/// When the server list grows from n to m servers, each client moves to a new server with
/// probability 1 - n/m, keeping its session (Apache's updateServerList): the new servers take
/// their share of the load.
#[tokio::test]
async fn a_grown_server_list_takes_its_share_of_the_clients() {
    let env = env_or_skip!();
    let (_proxies, address) = three_proxies(env.connect_string()).await;
    let two = format!("{},{}", address[0], address[1]);
    let mut clients = Vec::new();
    for _ in 0..60 {
        clients.push(support::connected_client(&two).await);
    }
    let sessions: Vec<i64> = clients.iter().map(|c| c.session_id()).collect();

    let three = address.join(",");
    for client in &clients {
        client.update_servers(&three).unwrap();
    }
    let mut moved = 0;
    for client in &clients {
        client.exists("/").await.unwrap();
        if client.connected_server().map(|s| s.to_string()).as_ref() == Some(&address[2]) {
            moved += 1;
        }
    }
    // Binomial(60, 1/3): 20 expected; outside 5..=36 in fewer than one run in 100,000. (It
    // tells "some move" from "none" or "all", not a third from a half.)
    assert!(
        (5..=36).contains(&moved),
        "{moved} of 60 moved to the new server"
    );
    let after: Vec<i64> = clients.iter().map(|c| c.session_id()).collect();
    assert_eq!(after, sessions, "the same sessions");
    for client in clients {
        client.close().await.unwrap();
    }
}

#[tokio::test]
async fn no_request_hangs_when_the_server_vanishes() {
    let env = env_or_skip!();
    let (proxy, client) = client_behind_a_proxy(env.connect_string(), |b| {
        b.connection_timeout(Duration::from_secs(1))
            .retry_policy(RetryNTimes::new(1, Duration::from_millis(100)))
    })
    .await;
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
    assert_eq!(client.connected_server(), None);
    let close = within(client.close()).await;
    assert!(close.is_ok());
}

/// While the server is unreachable, a call waits for a connection up to the connection
/// timeout, once: its retries do not each wait that long again.
#[tokio::test]
async fn the_connection_timeout_bounds_a_call_once_not_each_retry() {
    let env = env_or_skip!();
    let timeout = Duration::from_secs(2);
    let (proxy, client) = client_behind_a_proxy(env.connect_string(), |b| {
        b.connection_timeout(timeout)
            .retry_policy(RetryNTimes::new(100, Duration::from_millis(10)))
    })
    .await;
    let mut states = client.connection_states();
    proxy.down();
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    let started = std::time::Instant::now();
    assert_eq!(
        client.get_data("/").await.map(|_| ()),
        Err(Error::ConnectionLoss)
    );
    let took = started.elapsed();
    assert!(
        took >= timeout - Duration::from_millis(100),
        "it waited for a connection: {took:?}"
    );
    // One more wait for a connection would make it twice the timeout.
    assert!(took < timeout * 2, "{took:?}: the retries waited again");
    proxy.up();
    client.close().await.unwrap();
}

/// A server that takes the connection but never answers the handshake is given up after the
/// attempt's budget — the session timeout divided by the number of hosts, as the Java client
/// does — and the next host is tried.
#[tokio::test]
async fn a_handshake_never_answered_is_given_up_for_the_next_host() {
    let env = env_or_skip!();
    let silent = Proxy::start(env.connect_string())
        .await
        .expect("proxy starts");
    silent.set_mode(Mode::Blackhole);
    let server = env.connect_string().split(',').next().unwrap().to_owned();
    let config = zk::client::SessionConfig::new(&format!("{},{server}", silent.connect_string()))
        .unwrap()
        .session_timeout(Duration::from_secs(6))
        .shuffle_hosts(false);
    let started = std::time::Instant::now();
    let session = zk::client::Session::connect(config, PATIENCE)
        .await
        .unwrap();
    let took = started.elapsed();
    // Without the per-host budget, the silent host would hold the attempt for the whole
    // session timeout.
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_secs(6),
        "connected after {took:?}: the silent host's budget is 6 s / 2 hosts"
    );
    assert_eq!(
        session.connected_server().map(|h| h.to_string()),
        Some(server)
    );
    session.close().await.unwrap();
}

/// An idle client pings: its session outlives several session timeouts with no request made,
/// without a state change (no read timeout either: the pings are answered).
#[tokio::test]
async fn an_idle_session_is_kept_alive_by_pings() {
    let env = env_or_skip!();
    let client = support::connected_client(env.connect_string()).await;
    let observer = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    observer.create(&root).await.unwrap();
    let eph = format!("{root}/eph");
    client
        .create(&eph)
        .mode(CreateMode::Ephemeral)
        .await
        .unwrap();
    let session = client.session_id();
    let mut states = client.connection_states();

    tokio::time::sleep(support::SESSION_TIMEOUT * 2).await;
    assert_eq!(
        states.next().now_or_never(),
        None,
        "no state change while idle"
    );
    assert_eq!(client.session_id(), session);
    assert!(
        observer.exists(&eph).await.unwrap().is_some(),
        "the session lives"
    );
    client.close().await.unwrap();
    support::remove_tree(&observer, &root).await;
    observer.close().await.unwrap();
}

/// A server that stops answering (the network dead, the connection open) is noticed by the
/// read timeout, two thirds of the session timeout: SUSPENDED comes before the server could
/// expire the session, so a recipe can stop acting as owner in time.
#[tokio::test]
async fn a_silent_server_is_noticed_before_the_session_could_expire() {
    let env = env_or_skip!();
    // A long session leaves a wide margin between the read timeout (2/3) and the expiry.
    let (proxy, client) = client_behind_a_proxy(env.connect_string(), |b| {
        b.session_timeout(Duration::from_secs(9))
    })
    .await;
    let mut states = client.connection_states();
    let negotiated = client.session().negotiated_timeout();
    let silent = std::time::Instant::now();
    proxy.set_mode(Mode::Blackhole);
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    let noticed = silent.elapsed();
    assert!(
        noticed < negotiated,
        "SUSPENDED after {noticed:?}, the session timeout is {negotiated:?}"
    );
    // A reconnect attempt made while the proxy still swallowed everything waits out its
    // handshake budget: cut it so the next attempt goes through at once.
    proxy.set_mode(Mode::Forward);
    proxy.cut();
    assert_eq!(next_state(&mut states).await, ConnectionState::Reconnected);
    client.close().await.unwrap();
}

/// Polls a builder's future once (its request is queued on that first poll) and returns it.
async fn first_poll<B>(builder: B) -> B::IntoFuture
where
    B: std::future::IntoFuture,
    B::IntoFuture: Unpin,
{
    let mut fut = builder.into_future();
    assert!(
        futures::poll!(&mut fut).is_pending(),
        "not done at the first poll"
    );
    fut
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_pipelined_while_disconnected_reach_the_server_in_order() {
    let env = env_or_skip!();
    let (proxy, client) =
        client_behind_a_proxy(env.connect_string(), |b| b.connection_timeout(PATIENCE)).await;
    let root = support::unique_root();
    client.create(&root).await.unwrap();
    let node = format!("{root}/value");
    client.create(&node).await.unwrap();
    // A namespace used for the first time while disconnected: its root is created in the
    // same pipeline, ahead of the writes.
    let ns = client
        .using_namespace(&format!("{}/ns", &root[1..]))
        .unwrap();
    let mut states = client.connection_states();

    proxy.down();
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    // First polled in order while disconnected, then each finished by its own task (so wake-up
    // order cannot matter).
    let mut tasks = Vec::new();
    for i in 0..20u32 {
        let set = first_poll(client.set_data(&node, i.to_string().into_bytes())).await;
        tasks.push(tokio::spawn(set.map(|r| r.map(|_| ()))));
        let seq = first_poll(
            ns.create("/q-")
                .mode(CreateMode::PersistentSequential)
                .data(i.to_string().into_bytes()),
        )
        .await;
        tasks.push(tokio::spawn(seq.map(|r| r.map(|_| ()))));
    }
    proxy.up();
    for t in tasks {
        within(t).await.unwrap().expect("write after the reconnect");
    }
    assert_eq!(next_state(&mut states).await, ConnectionState::Reconnected);

    let (data, stat) = client.get_data(&node).await.unwrap();
    assert_eq!(data, b"19", "the last write wins");
    assert_eq!(stat.version, 20);
    let mut children = ns.get_children("/").await.unwrap();
    children.sort();
    assert_eq!(children.len(), 20);
    for (i, name) in children.iter().enumerate() {
        let (data, _) = ns.get_data(&format!("/{name}")).await.unwrap();
        assert_eq!(data, i.to_string().into_bytes(), "{name} holds write {i}");
    }
    support::remove_tree(&client, &root).await;
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_request_queued_across_an_expiry_fails_with_session_expired() {
    let env = env_or_skip!();
    let (proxy, client) = client_behind_a_proxy(env.connect_string(), |b| {
        b.connection_timeout(PATIENCE)
            .retry_policy(SessionFailedRetryPolicy::new(RetryNTimes::new(
                5,
                Duration::from_millis(100),
            )))
    })
    .await;
    let root = support::unique_root();
    client.create(&root).await.unwrap();
    let old_session = client.session_id();
    let mut states = client.connection_states();

    proxy.down();
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    let write = first_poll(client.set_data(&root, b"written in the old session".to_vec())).await;
    support::expire_session(
        env.connect_string(),
        old_session,
        &client.session_password(),
    )
    .await;
    proxy.up();
    // The write was queued for the old session: it must not run in the new one.
    assert!(matches!(within(write).await, Err(Error::SessionExpired)));
    assert_eq!(next_state(&mut states).await, ConnectionState::Lost);
    assert_eq!(next_state(&mut states).await, ConnectionState::Reconnected);
    assert_ne!(client.session_id(), old_session);
    let (data, _) = client.get_data(&root).await.unwrap();
    assert!(data.is_empty(), "the queued write was not applied");
    client.delete(&root).await.unwrap();
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_guaranteed_delete_goes_on_when_its_future_is_dropped() {
    let env = env_or_skip!();
    let proxy = Proxy::start(env.connect_string())
        .await
        .expect("proxy starts");
    let client = support::connected_client(&proxy.connect_string()).await;
    let observer = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    client.create(&root).await.unwrap();
    let (_, deleted) = observer.exists(&root).watched().await.unwrap();
    let mut states = client.connection_states();

    proxy.down();
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    let delete = first_poll(client.delete(&root).guaranteed()).await;
    drop(delete);
    proxy.up();
    assert_eq!(within(deleted).await.event_type, EventType::NodeDeleted);
    client.close().await.unwrap();
    observer.close().await.unwrap();
}

#[tokio::test]
async fn a_dropped_protected_create_leaves_no_node() {
    let env = env_or_skip!();
    let proxy = Proxy::start(env.connect_string())
        .await
        .expect("proxy starts");
    let client = support::connected_client(&proxy.connect_string()).await;
    let observer = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    observer.create(&root).await.unwrap();
    let (_, created_watch) = observer.get_children(&root).watched().await.unwrap();

    // The create reaches the server, its reply does not; the caller gives up.
    proxy.set_mode(Mode::DropReplies);
    let create = first_poll(
        client
            .create(&format!("{root}/job-"))
            .mode(CreateMode::PersistentSequential)
            .with_protection(),
    )
    .await;
    within(created_watch).await;
    // Dropped on a thread outside the runtime: the cleanup still starts (on the client's
    // runtime), and nothing panics.
    std::thread::spawn(move || drop(create))
        .join()
        .expect("dropping the future outside the runtime");
    let (children, gone) = observer.get_children(&root).watched().await.unwrap();
    assert_eq!(children.len(), 1);
    proxy.cut();
    proxy.set_mode(Mode::Forward);
    assert_eq!(
        within(gone).await.event_type,
        EventType::NodeChildrenChanged
    );
    assert!(observer.get_children(&root).await.unwrap().is_empty());
    client.close().await.unwrap();
    observer.delete(&root).await.unwrap();
    observer.close().await.unwrap();
}

#[tokio::test]
async fn a_failed_protected_create_does_not_keep_the_session_alive() {
    let env = env_or_skip!();
    let (proxy, client) = client_behind_a_proxy(env.connect_string(), |b| {
        b.connection_timeout(Duration::from_millis(500))
            .retry_policy(RetryOneTime::new(Duration::from_millis(50)))
    })
    .await;
    let mut session_state = client.session().state_receiver();
    let root = support::unique_root();
    let mut states = client.connection_states();

    proxy.down();
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    let err = within(
        client
            .create(&format!("{root}/x-"))
            .mode(CreateMode::EphemeralSequential)
            .with_protection(),
    )
    .await
    .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    // The cleanup task must not keep the client alive: with every handle gone the session
    // task ends, although no server is reachable.
    drop(client);
    within(session_state.wait_for(|s| *s == SessionState::Closed))
        .await
        .expect("the session task ended");
}

/// A proxy in front of `connect` and a connected client through it, with the test defaults
/// changed as `configure` says.
async fn client_behind_a_proxy(
    connect: &str,
    configure: impl FnOnce(zk::client::ClientBuilder) -> zk::client::ClientBuilder,
) -> (Proxy, zk::client::Client) {
    let proxy = Proxy::start(connect).await.expect("proxy starts");
    let client = configure(support::client_builder(&proxy.connect_string()))
        .build()
        .unwrap();
    client.block_until_connected(PATIENCE).await.unwrap();
    (proxy, client)
}

/// A proxy in front of `connect` and a connected client through it that retries 10 times.
async fn retrying_client_behind_a_proxy(connect: &str) -> (Proxy, zk::client::Client) {
    client_behind_a_proxy(connect, |b| {
        b.connection_timeout(PATIENCE)
            .retry_policy(RetryNTimes::new(10, Duration::from_millis(100)))
    })
    .await
}

#[tokio::test]
async fn idempotent_create_needs_version_zero() {
    let env = env_or_skip!();
    let (proxy, client) = retrying_client_behind_a_proxy(env.connect_string()).await;
    let observer = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    observer.create(&root).await.unwrap();
    let node = format!("{root}/n");
    let (_, created) = observer.exists(&node).watched().await.unwrap();

    proxy.set_mode(Mode::DropReplies);
    let create = tokio::spawn({
        let client = client.clone();
        let node = node.clone();
        async move {
            client
                .create(&node)
                .data(b"same".to_vec())
                .idempotent()
                .await
        }
    });
    within(created).await;
    // Somebody else rewrites the same data: version 1, no longer what this create made.
    observer.set_data(&node, b"same".to_vec()).await.unwrap();
    proxy.cut();
    proxy.set_mode(Mode::Forward);
    let result = within(create).await.unwrap();
    assert!(matches!(result, Err(Error::NodeExists)), "{result:?}");
    client.close().await.unwrap();
    support::remove_tree(&observer, &root).await;
    observer.close().await.unwrap();
}

/// Spawns `op` with its reply lost: once `client` is connected, the proxy drops replies
/// until `applied` (a watch of another session) shows the server executed the op, then cuts
/// the connection, so the op's retry runs on the next connection of the same session.
async fn with_a_lost_reply<T: Send + 'static>(
    client: &zk::client::Client,
    proxy: &Proxy,
    applied: impl std::future::Future<Output = zk::client::WatchedEvent>,
    op: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    client
        .exists("/")
        .await
        .expect("a round trip on a live connection");
    proxy.set_mode(Mode::DropReplies);
    let task = tokio::spawn(op);
    within(applied).await;
    // The other session may hear of the op before its reply reaches the proxy: let that
    // reply arrive (and be dropped) before forwarding resumes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.cut();
    proxy.set_mode(Mode::Forward);
    within(task).await.unwrap()
}

#[tokio::test]
async fn idempotent_set_data_and_delete_succeed_when_their_reply_is_lost() {
    let env = env_or_skip!();
    let (proxy, client) = retrying_client_behind_a_proxy(env.connect_string()).await;
    let observer = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    observer.create(&root).await.unwrap();
    let node = format!("{root}/n");
    observer.create(&node).data(b"v0".to_vec()).await.unwrap();

    // The retry of a versioned setData gets BADVERSION; idempotent, it finds its own data
    // at the next version and succeeds.
    let (_, _, changed) = observer.get_data(&node).watched().await.unwrap();
    let set = client
        .set_data(&node, b"v1".to_vec())
        .version(0)
        .idempotent();
    let stat = with_a_lost_reply(&client, &proxy, changed, set.into_future()).await;
    assert_eq!(stat.expect("idempotent setData").version, 1);
    // Not idempotent, the same loss surfaces as BADVERSION.
    let (_, _, changed) = observer.get_data(&node).watched().await.unwrap();
    let set = client.set_data(&node, b"v2".to_vec()).version(1);
    let result = with_a_lost_reply(&client, &proxy, changed, set.into_future()).await;
    assert!(matches!(result, Err(Error::BadVersion)), "{result:?}");
    assert_eq!(observer.get_data(&node).await.unwrap().0, b"v2");

    // The retry of a delete gets NONODE; idempotent, that is success.
    let (_, gone) = observer.exists(&node).watched().await.unwrap();
    let delete = client.delete(&node).idempotent();
    let result = with_a_lost_reply(&client, &proxy, gone, delete.into_future()).await;
    assert!(result.is_ok(), "{result:?}");
    observer.create(&node).await.unwrap();
    let (_, gone) = observer.exists(&node).watched().await.unwrap();
    let delete = client.delete(&node);
    let result = with_a_lost_reply(&client, &proxy, gone, delete.into_future()).await;
    assert!(matches!(result, Err(Error::NoNode)), "{result:?}");

    client.close().await.unwrap();
    support::remove_tree(&observer, &root).await;
    observer.close().await.unwrap();
}

#[tokio::test]
async fn a_server_that_drops_every_connection_is_not_hammered() {
    // A fake server: completes the handshake, then closes the connection.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let server = tokio::spawn({
        let accepted = accepted.clone();
        async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            use zk::proto::Encode;
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 1024];
                    let _ = socket.read(&mut buf).await;
                    let response = zk::proto::ConnectResponse {
                        protocol_version: 0,
                        timeout: 4000,
                        session_id: 0x1234,
                        passwd: vec![0; 16],
                        read_only: Some(false),
                    };
                    let mut out = bytes::BytesMut::new();
                    zk::proto::frame::write_frame(&mut out, |b| response.encode(b));
                    let _ = socket.write_all(&out).await;
                });
            }
        }
    });
    let session = zk::client::Session::start(
        zk::client::SessionConfig::new(&addr.to_string())
            .unwrap()
            .session_timeout(Duration::from_secs(4)),
    );
    let window = Duration::from_secs(2);
    tokio::time::sleep(window).await;
    let n = accepted.load(std::sync::atomic::Ordering::SeqCst);
    assert!(n >= 2, "it reconnects ({n})");
    assert!(n <= 20, "{n} connections in {window:?}: no backoff");
    session.close().await.unwrap();
    server.abort();
}

/// The connection-state stream ends when the client is closed, for a subscriber from before
/// the close and for one that subscribes after it.
#[tokio::test]
async fn the_state_stream_ends_at_close_even_for_a_late_subscriber() {
    let env = env_or_skip!();
    let client = support::connected_client(env.connect_string()).await;
    let mut early = client.connection_states();
    client.close().await.unwrap();
    let mut late = client.connection_states();
    for states in [&mut early, &mut late] {
        let end = tokio::time::timeout(PATIENCE, async { while states.next().await.is_some() {} });
        end.await.expect("the state stream ends after close");
    }
}

/// Credentials the server refuses (here an unknown scheme) end the session, as in Apache:
/// the failed add_auth reports AUTHFAILED, watches are told, the connection states end, and
/// every later call fails with AUTHFAILED instead of waiting for a session that cannot come.
#[tokio::test]
async fn refused_credentials_end_the_session_with_auth_failed() {
    let env = env_or_skip!();
    let client = support::connected_client(env.connect_string()).await;
    let mut session_state = client.session().state_receiver();
    let mut states = client.connection_states();
    let (_, watch) = client.exists("/").watched().await.unwrap();

    assert_eq!(
        within(client.session().add_auth("nosuchscheme", b"x")).await,
        Err(Error::AuthFailed)
    );
    within(session_state.wait_for(|s| *s == SessionState::AuthFailed))
        .await
        .expect("the session state");
    let event = within(watch).await;
    assert_eq!(
        (event.event_type, event.state),
        (EventType::None, zk::client::KeeperState::AuthFailed)
    );
    assert_eq!(within(states.next()).await, None, "the states end");
    assert_eq!(
        within(client.exists("/")).await.map(|_| ()),
        Err(Error::AuthFailed)
    );
    assert_eq!(
        within(client.block_until_connected(PATIENCE)).await,
        Err(Error::AuthFailed)
    );
}

/// A client (1 s sessions, `can_be_read_only` as given) of a server listed with a host that
/// is down, once it has seen five creates and the server lost its data (stopped, wiped,
/// restarted on the same port); and the client's connection states from before the loss.
async fn a_client_whose_server_lost_its_data(
    can_be_read_only: bool,
) -> (
    zk::server::TestingServer,
    zk::client::Client,
    zk::client::ConnectionStates,
) {
    let mut server = zk::server::TestingServer::builder()
        .tick_time_ms(200)
        .start()
        .await
        .expect("server");
    let connect = format!("{},{}", server.connect_string(), support::closed_address());
    let client = support::client_builder(&connect)
        .session_timeout(Duration::from_secs(1))
        .can_be_read_only(can_be_read_only)
        .build()
        .expect("client");
    client.block_until_connected(PATIENCE).await.unwrap();
    for i in 0..5 {
        client.create(&format!("/n{i}")).await.unwrap();
    }
    let states = client.connection_states();
    server.stop().await;
    let data = server.data_dir().to_owned();
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    server.restart().await.expect("restart on the same port");
    (server, client, states)
}

/// A server that went back (restarted without its data, or restored from an old backup)
/// refuses the handshake of a client that has seen newer zxids. Once the session is given
/// up and no server takes the new one either (a listed host that is down counts for none),
/// the client forgets its last zxid, as a new Curator handle does, rather than never
/// connecting again.
#[tokio::test]
async fn a_client_reconnects_to_a_server_that_lost_its_data() {
    let (_server, client, mut states) = a_client_whose_server_lost_its_data(false).await;
    let old_session = client.session_id();
    within(async {
        while next_state(&mut states).await != ConnectionState::Lost {}
        while next_state(&mut states).await != ConnectionState::Reconnected {}
    })
    .await;
    assert_ne!(client.session_id(), old_session);
    assert_eq!(client.exists("/n0").await, Ok(None), "the data is gone");
    client.create("/fresh").await.unwrap();
    client.close().await.unwrap();
}

/// A client that may use read-only servers forgets its last zxid only when every host
/// refused it: a read-only server cut off from its quorum and behind the client refuses it
/// just the same, and reading the past from it is what the zxid check prevents. With one
/// host refusing and the other down, it keeps trying rather than take the lower zxid.
#[tokio::test]
async fn a_read_only_capable_client_forgets_its_zxid_only_when_every_host_refuses() {
    let (_server, client, mut states) = a_client_whose_server_lost_its_data(true).await;
    within(async { while next_state(&mut states).await != ConnectionState::Lost {} }).await;
    // Many rounds of one refusal and one dead host: not connected to the server behind it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!client.is_connected());
    client.close().await.unwrap();
}
