//! Read-only servers: a client that allows them connects to one while no server with a quorum
//! is reachable, reports READ_ONLY, and moves to a read-write server as soon as one answers.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use support::proxy::{Mode, Proxy};
use support::{next_state, PATIENCE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use zk::client::{ConnectionState, Error};
use zk::proto::frame::write_frame;
use zk::proto::{ConnectResponse, Encode, ReplyHeader};
use zk::server::TestingServer;

/// NOTREADONLY: what a read-only server answers to a write.
const NOT_READ_ONLY: i32 = -119;
/// NONODE: the stand-in's answer to every read (its tree is empty).
const NO_NODE: i32 = -101;
/// The op codes of exists, getData, getChildren and getChildren2; and of addWatch, which
/// the stand-in accepts.
const READS: [i32; 4] = [3, 4, 8, 12];
const ADD_WATCH: i32 = 106;

/// A stand-in for a server partitioned from its quorum in read-only mode, with an empty tree:
/// it accepts sessions as read-only, answers pings and addWatch, answers reads with NONODE,
/// refuses every other request with NOTREADONLY, and answers `isro` with `ro`. Counts the `isro`
/// probes it gets and the requests it refuses.
async fn read_only_server() -> (String, Arc<Counts>, tokio::task::JoinHandle<()>) {
    read_only_server_with_timeout(4000).await
}

/// What the read-only stand-in has seen.
#[derive(Default)]
struct Counts {
    /// `isro` probes.
    probes: AtomicUsize,
    /// Requests refused with NOTREADONLY.
    refused: AtomicUsize,
}

/// [`read_only_server`] negotiating a session timeout of `timeout_ms`.
async fn read_only_server_with_timeout(
    timeout_ms: i32,
) -> (String, Arc<Counts>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let counts = Arc::new(Counts::default());
    let task = tokio::spawn({
        let counts = counts.clone();
        async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve_read_only(socket, counts.clone(), timeout_ms));
            }
        }
    });
    (addr, counts, task)
}

async fn serve_read_only(
    mut socket: TcpStream,
    counts: Arc<Counts>,
    timeout_ms: i32,
) -> std::io::Result<()> {
    let mut head = [0u8; 4];
    socket.read_exact(&mut head).await?;
    if &head == b"isro" {
        counts.probes.fetch_add(1, Ordering::SeqCst);
        return socket.write_all(b"ro").await;
    }
    // The ConnectRequest: a session it presents is taken back (protocolVersion 4 bytes,
    // lastZxidSeen 8, timeOut 4, then the session id), otherwise a new one is made up.
    let mut request = vec![0u8; u32::from_be_bytes(head).min(4096) as usize];
    socket.read_exact(&mut request).await?;
    let presented = request
        .get(16..24)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, i64::from_be_bytes);
    let mut out = BytesMut::new();
    let response = ConnectResponse {
        protocol_version: 0,
        timeout: timeout_ms,
        session_id: if presented != 0 { presented } else { 0x5a5a },
        passwd: vec![0; 16],
        read_only: Some(true),
    };
    write_frame(&mut out, |b| response.encode(b));
    socket.write_all(&out).await?;
    loop {
        socket.read_exact(&mut head).await?;
        let mut frame = vec![0u8; u32::from_be_bytes(head).min(1 << 20) as usize];
        socket.read_exact(&mut frame).await?;
        let xid = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        let op = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
        let err = match (xid, op) {
            (-2, _) => 0,
            (_, op) if READS.contains(&op) => NO_NODE,
            (_, ADD_WATCH) => 0,
            _ => {
                counts.refused.fetch_add(1, Ordering::SeqCst);
                NOT_READ_ONLY
            }
        };
        out.clear();
        write_frame(&mut out, |b| ReplyHeader { xid, zxid: 0, err }.encode(b));
        socket.write_all(&out).await?;
    }
}

/// Waits until `client` is connected to a read-only server.
async fn wait_read_only(client: &zk::client::Client) {
    tokio::time::timeout(PATIENCE, async {
        while client.connection_state() != Some(ConnectionState::ReadOnly) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("on the read-only server");
}

/// Waits for the move to a read-write server: CONNECTED, as Curator reports the first
/// read-write connection; the new session is no loss (nothing but watches belonged to the
/// read-only one), so LOST must not come. (READ_ONLY again is fine: an Apache member that is
/// starting serves read-only until it has joined the quorum.)
async fn wait_until_connected(states: &mut zk::client::ConnectionStates) {
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match next_state(states).await {
                ConnectionState::Connected => return,
                ConnectionState::Suspended | ConnectionState::ReadOnly => {}
                other => panic!("{other:?} while moving to a read-write server"),
            }
        }
    })
    .await
    .expect("the client moves to a read-write server");
}

/// A client allowed read-only servers, with the stand-in `read_only` and `server` in its
/// connect string, once connected to `server` (read-write); and its connection states.
async fn on_the_read_write_server(
    server: &TestingServer,
    read_only: &str,
    session_timeout: Duration,
) -> (zk::client::Client, zk::client::ConnectionStates) {
    let client = support::client_builder(&format!("{read_only},{}", server.connect_string()))
        .session_timeout(session_timeout)
        .can_be_read_only(true)
        .build()
        .unwrap();
    let states = client.connection_states();
    tokio::time::timeout(PATIENCE, async {
        while client.connection_state() != Some(ConnectionState::Connected) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("on the read-write server");
    (client, states)
}

/// A client allowed read-only servers, on the stand-in, in READ_ONLY; `server` (stopped) is
/// the other host of its connect string. Returns the stand-in's probe count and task too.
async fn on_the_stand_in(
    server: &TestingServer,
) -> (
    zk::client::Client,
    zk::client::ConnectionStates,
    Arc<Counts>,
    tokio::task::JoinHandle<()>,
) {
    let (read_only, counts, fake) = read_only_server().await;
    let client = support::client_builder(&format!("{read_only},{}", server.connect_string()))
        .can_be_read_only(true)
        .build()
        .unwrap();
    let mut states = client.connection_states();
    assert_eq!(next_state(&mut states).await, ConnectionState::ReadOnly);
    (client, states, counts, fake)
}

#[tokio::test]
async fn a_client_on_a_read_only_server_moves_to_a_read_write_one_when_it_appears() {
    let mut server = TestingServer::start().await.unwrap();
    server.stop().await;
    let (client, mut states, counts, fake) = on_the_stand_in(&server).await;
    let err = client.create("/written").await.unwrap_err();
    assert!(matches!(err, Error::NotReadOnly), "{err:?}");
    let (stat, created) = client.exists("/written").watched().await.unwrap();
    assert_eq!(stat, None);

    // With the other server down, probes fail and the client stays where it is.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        futures::FutureExt::now_or_never(futures::StreamExt::next(&mut states)).is_none(),
        "no state change while no read-write server answers"
    );
    assert_eq!(
        counts.probes.load(Ordering::SeqCst),
        0,
        "it never probes its own server"
    );

    server.restart().await.unwrap();
    wait_until_connected(&mut states).await;
    client.create("/written").await.expect("writes work there");
    let event = tokio::time::timeout(PATIENCE, created)
        .await
        .expect("the watch set on the read-only server carried over");
    assert_eq!(
        (event.event_type, event.path.as_str()),
        (zk::proto::EventType::NodeCreated, "/written")
    );
    client.close().await.unwrap();
    fake.abort();
}

/// A new server list reaches the search for a read-write server: a server listed only after
/// the client landed on the read-only one is probed, and the client moves there.
#[tokio::test]
async fn a_read_write_server_listed_while_read_only_is_found() {
    let (read_only, _counts, fake) = read_only_server().await;
    let dead = support::closed_address();
    let client = support::client_builder(&format!("{read_only},{dead}"))
        .can_be_read_only(true)
        .build()
        .unwrap();
    let mut states = client.connection_states();
    assert_eq!(next_state(&mut states).await, ConnectionState::ReadOnly);
    let server = TestingServer::start().await.unwrap();
    // As many servers as before, the current one kept: the session stays where it is.
    client
        .update_servers(&format!("{read_only},{}", server.connect_string()))
        .unwrap();
    wait_until_connected(&mut states).await;
    client.create("/written").await.expect("writes work there");
    client.close().await.unwrap();
    fake.abort();
}

/// A cache that started on a read-only server (which did not know of a node) reads everything
/// again once the client reaches a read-write server: no watch fires for what the read-only
/// server never had.
#[tokio::test]
async fn a_cache_started_read_only_reads_again_on_a_read_write_server() {
    let mut server = TestingServer::start().await.unwrap();
    let writer = support::connected_client(&server.connect_string()).await;
    writer.create("/cached").data(b"rw").await.unwrap();
    writer.close().await.unwrap();
    server.stop().await;
    let (client, mut states, _, fake) = on_the_stand_in(&server).await;
    let cache = zk::recipes::TreeCache::new(client.clone(), "/cached").unwrap();
    cache.start().unwrap();
    assert!(tokio::time::timeout(PATIENCE, cache.wait_initialized())
        .await
        .unwrap());
    assert!(
        cache.get("/cached").is_none(),
        "the read-only server has no such node"
    );

    server.restart().await.unwrap();
    wait_until_connected(&mut states).await;
    tokio::time::timeout(PATIENCE, async {
        while cache.get("/cached").map(|c| c.data.clone()) != Some(b"rw".to_vec()) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the cache reads the read-write server's tree");
    drop(cache);
    client.close().await.unwrap();
    fake.abort();
}

/// A guaranteed delete refused by a read-only server goes on in the background and deletes
/// the node once the client reaches a read-write server (a lock node must not outlive a
/// partition because its release met a read-only server).
#[tokio::test]
async fn a_guaranteed_delete_refused_read_only_completes_on_a_read_write_server() {
    let mut server = TestingServer::start().await.unwrap();
    let writer = support::connected_client(&server.connect_string()).await;
    writer.create("/doomed").await.unwrap();
    writer.close().await.unwrap();
    server.stop().await;
    let (client, mut states, _, fake) = on_the_stand_in(&server).await;
    let err = client.delete("/doomed").guaranteed().await.unwrap_err();
    assert!(matches!(err, Error::NotReadOnly), "{err:?}");

    server.restart().await.unwrap();
    wait_until_connected(&mut states).await;
    tokio::time::timeout(PATIENCE, async {
        while client.exists("/doomed").await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the guaranteed delete completes on the read-write server");
    client.close().await.unwrap();
    fake.abort();
}

/// A lock released while the client is on a read-only server (which refuses the delete) is
/// released for real once the client is back on a read-write server: its node must not hold
/// the lock for the rest of the session.
#[tokio::test]
async fn a_lock_released_on_a_read_only_server_is_deleted_on_a_read_write_one() {
    let mut server = TestingServer::start().await.unwrap();
    let (read_only, counts, fake) = read_only_server().await;
    // A long session: the node must go by our delete, not by the session's expiry.
    let (client, mut states) =
        on_the_read_write_server(&server, &read_only, Duration::from_secs(30)).await;
    let lock = zk::recipes::Mutex::new(client.clone(), "/lock").unwrap();
    let guard = lock.acquire().await.unwrap();
    let observer = support::connected_client(&server.connect_string()).await;
    assert_eq!(observer.get_children("/lock").await.unwrap().len(), 1);
    observer.close().await.unwrap();

    server.stop().await;
    wait_read_only(&client).await;
    let refused_before = counts.refused.load(Ordering::SeqCst);
    let release = tokio::spawn(guard.release());
    // The read-only server refuses the delete before the read-write one comes back.
    tokio::time::timeout(PATIENCE, async {
        while counts.refused.load(Ordering::SeqCst) == refused_before {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the delete refused by the read-only server");
    server.restart().await.unwrap();
    wait_until_connected(&mut states).await;
    tokio::time::timeout(PATIENCE, release)
        .await
        .expect("the release completes on the read-write server")
        .unwrap()
        .unwrap();
    let observer = support::connected_client(&server.connect_string()).await;
    assert!(
        observer.get_children("/lock").await.unwrap().is_empty(),
        "the released lock's node is still there"
    );
    observer.close().await.unwrap();
    client.close().await.unwrap();
    fake.abort();
}

/// Under a namespace, a read of a missing node on a read-only server is NONODE, as anywhere
/// else: the namespace root the client cannot create there does not replace the answer.
#[tokio::test]
async fn a_missing_node_under_a_namespace_is_no_node_on_a_read_only_server() {
    let (read_only, _, fake) = read_only_server().await;
    let client = support::client_builder(&read_only)
        .namespace("app")
        .can_be_read_only(true)
        .build()
        .unwrap();
    let mut states = client.connection_states();
    assert_eq!(next_state(&mut states).await, ConnectionState::ReadOnly);
    for _ in 0..2 {
        assert_eq!(client.get_data("/missing").await, Err(Error::NoNode));
        assert_eq!(client.get_children("/missing").await, Err(Error::NoNode));
    }
    assert_eq!(
        client.create("/new").await.map(|_| ()),
        Err(Error::NotReadOnly)
    );
    client.close().await.unwrap();
    fake.abort();
}

/// A session only ever seen on read-only servers is local to the server that made it: no
/// other server can close it. Closing such a client while it is disconnected (and trying to
/// reconnect) returns at once, without waiting for a connection just to send closeSession.
#[tokio::test]
async fn closing_while_disconnected_from_a_read_only_session_needs_no_connection() {
    // A 20 s session: a connect attempt may take 10 s (the timeout over 2 hosts).
    let (read_only, _, fake) = read_only_server_with_timeout(20_000).await;
    let proxy = Proxy::start(&read_only).await.unwrap();
    // The other host takes connections and never answers a handshake.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let attempts = Arc::new(AtomicUsize::new(0));
    let holder = tokio::spawn({
        let attempts = attempts.clone();
        async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = silent.accept().await {
                attempts.fetch_add(1, Ordering::SeqCst);
                held.push(socket);
            }
        }
    });
    let client = support::client_builder(&format!("{},{silent_addr}", proxy.connect_string()))
        .can_be_read_only(true)
        .build()
        .unwrap();
    let mut states = client.connection_states();
    assert_eq!(next_state(&mut states).await, ConnectionState::ReadOnly);

    // Every host now swallows the handshake: a connect attempt waits out its timeout.
    proxy.set_mode(Mode::Blackhole);
    let attempts_before = attempts.load(Ordering::SeqCst);
    proxy.cut();
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    tokio::time::timeout(PATIENCE, async {
        while proxy.active_connections() == 0 && attempts.load(Ordering::SeqCst) == attempts_before
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the client tries to reconnect");
    let started = std::time::Instant::now();
    tokio::time::timeout(PATIENCE, client.close())
        .await
        .expect("close returns")
        .expect("close succeeds");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "close waited {took:?} for a connection it does not need"
    );
    holder.abort();
    fake.abort();
}

/// Apache ZooKeeper's read-only mode, end to end: one member of a three-member ensemble runs
/// alone with `readonlymode.enabled`; the test then starts the other two (with the command in
/// `ZK_TEST_READ_ONLY_QUORUM_UP`). As with Apache's own client and Curator: the session on the
/// read-only member serves reads and refuses writes, a client that does not allow read-only
/// servers is refused, and when the quorum forms the client moves to a read-write member —
/// READ_ONLY, then CONNECTED, never LOST — with its watches carried over to the new session.
/// Run by `scripts/interop.sh` (`read-only` step), which sets the environment.
#[tokio::test]
#[ignore = "needs one member of an Apache ZooKeeper ensemble in read-only mode: scripts/interop.sh read-only"]
async fn apache_read_only_member_then_the_quorum() {
    let connect = std::env::var("ZK_TEST_READ_ONLY_CONNECT")
        .expect("ZK_TEST_READ_ONLY_CONNECT: the ensemble's client addresses");
    let quorum_up = std::env::var("ZK_TEST_READ_ONLY_QUORUM_UP")
        .expect("ZK_TEST_READ_ONLY_QUORUM_UP: a shell command that starts the other members");

    // Long sessions (the script allows them): a slow election is no session loss.
    let builder = || support::client_builder(&connect).session_timeout(Duration::from_secs(20));
    let read_write_only = builder().build().unwrap();
    assert!(
        read_write_only
            .block_until_connected(Duration::from_secs(3))
            .await
            .is_err(),
        "a client that does not allow read-only servers is refused by one"
    );

    let client = builder().can_be_read_only(true).build().unwrap();
    let mut states = client.connection_states();
    assert_eq!(next_state(&mut states).await, ConnectionState::ReadOnly);
    let read_only_session = client.session_id();
    assert!(client.exists("/zookeeper").await.unwrap().is_some());
    let err = client.create("/read-only-write").await.unwrap_err();
    assert!(matches!(err, Error::NotReadOnly), "{err:?}");
    let node = format!("/read-only-{}", std::process::id());
    let (stat, created) = client.exists(&node).watched().await.unwrap();
    assert_eq!(stat, None);

    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(&quorum_up)
        .status()
        .expect("runs the quorum command");
    assert!(status.success(), "{quorum_up}: {status}");
    wait_until_connected(&mut states).await;
    assert_ne!(client.session_id(), read_only_session, "a new session");

    read_write_only
        .block_until_connected(PATIENCE)
        .await
        .expect("the quorum takes every client");
    read_write_only.create(&node).await.unwrap();
    let event = tokio::time::timeout(PATIENCE, created)
        .await
        .expect("the watch set on the read-only member fires");
    assert_eq!(
        (event.event_type, event.path.as_str()),
        (zk::proto::EventType::NodeCreated, node.as_str())
    );
    client.delete(&node).await.unwrap();
    client.close().await.unwrap();
    read_write_only.close().await.unwrap();
}

/// A leader whose client moves to a read-only server stops leading (under the Standard error
/// policy it cannot tell whether its session, and so its node, is still alive), and leads
/// again once its client is back on a read-write server.
#[tokio::test]
async fn a_leader_on_a_read_only_server_stops_leading_until_back_on_a_read_write_one() {
    let mut server = TestingServer::start().await.unwrap();
    let (read_only, _, fake) = read_only_server().await;
    let (client, mut states) =
        on_the_read_write_server(&server, &read_only, support::SESSION_TIMEOUT).await;
    let latch = zk::recipes::LeaderLatch::new(client.clone(), "/latch", "only").unwrap();
    latch.start().unwrap();
    tokio::time::timeout(PATIENCE, latch.await_leadership())
        .await
        .expect("leads")
        .unwrap();
    let mut leadership = latch.leadership();

    server.stop().await;
    tokio::time::timeout(PATIENCE, leadership.wait_for(|l| !*l))
        .await
        .expect("leadership ends when the connection goes")
        .unwrap();
    wait_read_only(&client).await;
    assert!(
        !latch.has_leadership(),
        "no leadership on a read-only server"
    );

    server.restart().await.unwrap();
    wait_until_connected(&mut states).await;
    tokio::time::timeout(PATIENCE, latch.await_leadership())
        .await
        .expect("leads again on the read-write server")
        .unwrap();
    latch.close().await.unwrap();
    client.close().await.unwrap();
    fake.abort();
}

/// Under the Session error policy a leader keeps its term through a disconnection, but not on
/// a read-only server: no LOST would ever come there while the quorum expires its session and
/// another process leads. Its closure is cancelled once its client is read-only.
#[tokio::test]
async fn a_session_policy_leader_on_a_read_only_server_is_cancelled() {
    let mut server = TestingServer::start().await.unwrap();
    let (read_only, _, fake) = read_only_server().await;
    let (client, _states) =
        on_the_read_write_server(&server, &read_only, support::SESSION_TIMEOUT).await;
    let (led_tx, mut led) = tokio::sync::mpsc::unbounded_channel();
    let (cancelled_tx, mut cancelled) = tokio::sync::mpsc::unbounded_channel();
    let selector = zk::recipes::LeaderSelector::builder(client.clone(), "/selector", move |ctx| {
        let (led_tx, cancelled_tx) = (led_tx.clone(), cancelled_tx.clone());
        async move {
            let _ = led_tx.send(());
            let reason = ctx.cancelled().await;
            let _ = cancelled_tx.send(reason);
        }
    })
    .error_policy(zk::client::ConnectionStateErrorPolicy::Session)
    .build()
    .unwrap();
    selector.start().unwrap();
    tokio::time::timeout(PATIENCE, led.recv())
        .await
        .expect("leads")
        .unwrap();

    server.stop().await;
    wait_read_only(&client).await;
    let reason = tokio::time::timeout(PATIENCE, cancelled.recv())
        .await
        .expect("the leader is cancelled on the read-only server")
        .unwrap();
    assert_eq!(reason, zk::recipes::CancelReason::Suspended);
    assert!(!selector.has_leadership());
    selector.close().await.unwrap();
    client.close().await.unwrap();
    fake.abort();
}

/// A persistent watcher tells its subscriber to read again when the client lands on a
/// read-only server in the same session (Curator resets on every connected state, READ_ONLY
/// included): what changed while it was away fired nothing.
#[tokio::test]
async fn a_persistent_watcher_resets_on_a_read_only_server() {
    use futures::StreamExt;
    use zk::recipes::{PersistentWatcher, WatcherEvent};
    let mut server = TestingServer::start().await.unwrap();
    let (read_only, _counts, fake) = read_only_server().await;
    let (client, mut states) =
        on_the_read_write_server(&server, &read_only, Duration::from_secs(30)).await;
    let watcher = PersistentWatcher::new(client.clone(), "/p", true).unwrap();
    let mut events = watcher.events();
    watcher.start().unwrap();
    for moment in ["at start", "on the read-only server"] {
        if moment != "at start" {
            server.stop().await;
            while next_state(&mut states).await != ConnectionState::ReadOnly {}
        }
        let event = tokio::time::timeout(PATIENCE, events.next())
            .await
            .unwrap_or_else(|_| panic!("an event {moment}"));
        assert!(matches!(event, Some(WatcherEvent::Reset)), "{moment}");
    }
    watcher.close().await;
    client.close().await.unwrap();
    fake.abort();
}
