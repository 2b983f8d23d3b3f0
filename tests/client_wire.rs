//! What the client sends and how it meets a server older than itself, seen frame by frame by
//! a proxy: the session and last zxid a reconnect presents, credentials replayed once each,
//! and, with the proxy acting as a 3.5 server (UNIMPLEMENTED, then the connection closed, for
//! every op code newer than 3.5), clear errors for newer operations and the fallback from
//! SetWatches2 to SetWatches. And, from a scripted server, replies over the client's size
//! limit however their bytes arrive.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use support::{next_state, PATIENCE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use zk::client::{ConnectionState, ConnectionStates, Error, EventType};
use zk::proto::OpCode;

macro_rules! env_or_skip {
    () => {
        match support::env().await {
            Some(env) => env,
            None => return,
        }
    };
}

/// The xids of auth packets and pings.
const AUTH_XID: i32 = -4;
const PING_XID: i32 = -2;
/// SetWatches' op code (SetWatches2 is in [`NEWER_THAN_3_5`]).
const SET_WATCHES: i32 = 101;

/// What the client sent on each connection.
type Frames = Arc<Mutex<Vec<Sent>>>;

/// What the client sent on one connection.
#[derive(Debug, Clone, Default)]
struct Sent {
    /// The ConnectRequest.
    handshake: Vec<u8>,
    /// Each request after it.
    requests: Vec<Request>,
}

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
struct Request {
    xid: i32,
    op: i32,
    /// The frame's length.
    len: usize,
    /// When the proxy read it.
    at: Instant,
}

impl Sent {
    /// The handshake's lastZxidSeen and session id (after the protocol version; the session
    /// id after the timeout).
    fn last_zxid_and_session(&self) -> (i64, i64) {
        let long = |at: usize| {
            self.handshake
                .get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, i64::from_be_bytes)
        };
        (long(4), long(16))
    }
}

/// Op codes a 3.5 server does not know: multiRead, getEphemerals, getAllChildrenNumber,
/// SetWatches2, addWatch, whoAmI.
const NEWER_THAN_3_5: [i32; 6] = [22, 103, 104, 105, 106, 107];
/// UNIMPLEMENTED.
const UNIMPLEMENTED: i32 = -6;

/// How the proxy answers a request a 3.5 server would not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Age {
    /// Forwarded: the server behind is current.
    Current,
    /// As a 3.5 server: UNIMPLEMENTED (after the replies to the requests before it), then
    /// the connection is closed.
    Unimplemented,
    /// The connection is closed without a reply (an older server, or a reply lost).
    Drop,
}

/// A proxy in front of a real server that records the client's frames and can pretend to be
/// a 3.5 server (see [`Age`]).
struct FrameProxy {
    addr: String,
    frames: Frames,
    age: watch::Sender<Age>,
    refused: Arc<AtomicUsize>,
    cut: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl FrameProxy {
    async fn start(upstream: &str) -> FrameProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let frames = Frames::default();
        let (age, ages) = watch::channel(Age::Current);
        let refused = Arc::new(AtomicUsize::new(0));
        let (cut, cuts) = watch::channel(0);
        let upstream = upstream.split(',').next().unwrap().to_owned();
        let task = tokio::spawn({
            let (frames, refused) = (frames.clone(), refused.clone());
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let connection = Connection {
                        upstream: upstream.clone(),
                        frames: frames.clone(),
                        index: {
                            let mut frames = frames.lock().unwrap();
                            frames.push(Sent::default());
                            frames.len() - 1
                        },
                        age: ages.clone(),
                        refused: refused.clone(),
                    };
                    tokio::spawn(connection.serve(client, cuts.clone()));
                }
            }
        });
        FrameProxy {
            addr,
            frames,
            age,
            refused,
            cut,
            task,
        }
    }

    /// Cuts the connections open now.
    fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }

    /// Cuts the client's connection and waits until it is back with its session.
    async fn reconnect(&self, states: &mut ConnectionStates) {
        self.cut();
        assert_eq!(next_state(states).await, ConnectionState::Suspended);
        assert_eq!(next_state(states).await, ConnectionState::Reconnected);
    }

    /// From now on, answer newer requests as `age` says; and cut the connections open now.
    fn act_as(&self, age: Age) {
        self.age.send_replace(age);
        self.cut();
    }

    /// What the client sent on the latest connection.
    fn latest_connection(&self) -> Sent {
        self.frames
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for FrameProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One proxied connection.
struct Connection {
    upstream: String,
    frames: Frames,
    index: usize,
    age: watch::Receiver<Age>,
    refused: Arc<AtomicUsize>,
}

/// Reads one length-prefixed frame.
async fn read_frame(from: &mut (impl AsyncReadExt + Unpin)) -> std::io::Result<Vec<u8>> {
    let mut head = [0u8; 4];
    from.read_exact(&mut head).await?;
    let mut frame = vec![0u8; u32::from_be_bytes(head).min(1 << 20) as usize];
    from.read_exact(&mut frame).await?;
    Ok(frame)
}

/// The big-endian int at `at` of a frame (0 if the frame is shorter).
fn int_at(frame: &[u8], at: usize) -> i32 {
    frame
        .get(at..at + 4)
        .map_or(0, |b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

impl Connection {
    /// Forwards the connection frame by frame; returns (closing both sides) on a cut, or
    /// after refusing a newer request (see [`Age`]).
    async fn serve(self, client: TcpStream, mut cuts: watch::Receiver<u64>) -> std::io::Result<()> {
        let server = TcpStream::connect(&self.upstream).await?;
        let (mut from_client, to_client) = client.into_split();
        let (mut from_server, mut to_server) = server.into_split();
        let to_client = Arc::new(tokio::sync::Mutex::new(to_client));
        // Replies to requests, counted (notifications, xid -1, are not replies).
        let (answered_tx, mut answered) = watch::channel(0usize);
        let replies = tokio::spawn({
            let to_client = to_client.clone();
            async move {
                let mut handshake = true;
                loop {
                    let frame = read_frame(&mut from_server).await?;
                    let mut out = to_client.lock().await;
                    out.write_all(&(frame.len() as u32).to_be_bytes()).await?;
                    out.write_all(&frame).await?;
                    if !handshake && int_at(&frame, 0) != -1 {
                        answered_tx.send_modify(|n| *n += 1);
                    }
                    handshake = false;
                }
                #[allow(unreachable_code)]
                Ok::<(), std::io::Error>(())
            }
        });
        cuts.borrow_and_update();
        let forward = async {
            // The first frame is the ConnectRequest; the others start with xid and op code.
            let mut handshake = true;
            let mut forwarded = 0usize;
            loop {
                let frame = read_frame(&mut from_client).await?;
                if handshake {
                    self.frames.lock().unwrap()[self.index].handshake = frame.clone();
                } else {
                    let (xid, op) = (int_at(&frame, 0), int_at(&frame, 4));
                    self.frames.lock().unwrap()[self.index]
                        .requests
                        .push(Request {
                            xid,
                            op,
                            len: frame.len(),
                            at: Instant::now(),
                        });
                    let age = *self.age.borrow();
                    if age != Age::Current && NEWER_THAN_3_5.contains(&op) {
                        self.refused.fetch_add(1, Ordering::SeqCst);
                        if age == Age::Unimplemented {
                            // In order: after the replies to the requests before it.
                            answered.wait_for(|n| *n >= forwarded).await.ok();
                            let mut reply = Vec::new();
                            reply.extend_from_slice(&16u32.to_be_bytes());
                            reply.extend_from_slice(&xid.to_be_bytes());
                            reply.extend_from_slice(&0i64.to_be_bytes());
                            reply.extend_from_slice(&UNIMPLEMENTED.to_be_bytes());
                            to_client.lock().await.write_all(&reply).await?;
                        }
                        return Ok::<(), std::io::Error>(());
                    }
                    forwarded += 1;
                }
                handshake = false;
                to_server
                    .write_all(&(frame.len() as u32).to_be_bytes())
                    .await?;
                to_server.write_all(&frame).await?;
            }
        };
        tokio::select! {
            r = forward => r?,
            _ = cuts.changed() => {}
        }
        replies.abort();
        Ok(())
    }
}

/// A 3.5 server answers SetWatches2 with UNIMPLEMENTED (and closes the connection): at once
/// the client re-registers its one-shot watches with SetWatches and ends its persistent ones.
#[tokio::test]
async fn without_set_watches2_persistent_watches_end_and_one_shot_ones_carry_on() {
    let env = env_or_skip!();
    let proxy = FrameProxy::start(env.connect_string()).await;
    let client = support::connected_client(&proxy.addr).await;
    let observer = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    observer.create(&root).await.unwrap();
    // The emulated refusal stands in front of a server that has persistent watches.
    let persistent = client.add_watch(&format!("{root}/p"));
    let Some(mut persistent) = env.since((3, 6), persistent).await else {
        return;
    };
    let q = format!("{root}/q");
    let (_, one_shot) = client.exists(&q).watched().await.unwrap();
    let session = client.session_id();
    let mut states = client.connection_states();

    proxy.act_as(Age::Unimplemented);
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    let removed = tokio::time::timeout(PATIENCE, persistent.next())
        .await
        .expect("the persistent watch ends within the patience bound")
        .expect("with an event");
    assert_eq!(removed.event_type, EventType::PersistentWatchRemoved);
    assert!(
        tokio::time::timeout(PATIENCE, persistent.next())
            .await
            .expect("the stream ends")
            .is_none(),
        "nothing after the removal"
    );
    assert_eq!(proxy.refused.load(Ordering::SeqCst), 1);

    observer.create(&q).await.unwrap();
    let event = tokio::time::timeout(PATIENCE, one_shot)
        .await
        .expect("the one-shot watch was registered again with SetWatches");
    assert_eq!(
        (event.event_type, event.path.as_str()),
        (EventType::NodeCreated, q.as_str())
    );
    assert_eq!(client.session_id(), session, "the same session throughout");
    assert!(client.is_connected());

    // The server turns out to know persistent watches after all (it was upgraded, or the
    // closes were something else): once it accepts an addWatch, SetWatches2 is used again
    // and persistent watches outlive reconnects.
    let mut states = client.connection_states();
    proxy.act_as(Age::Current);
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    assert_eq!(next_state(&mut states).await, ConnectionState::Reconnected);
    let r = format!("{root}/r");
    let mut persistent = client.add_watch(&r).await.unwrap();
    proxy.reconnect(&mut states).await;
    // A round trip after the reconnect: the watches re-registered before it are in place.
    client.exists(&root).await.unwrap();
    observer.create(&r).await.unwrap();
    let event = tokio::time::timeout(PATIENCE, persistent.next())
        .await
        .expect("the persistent watch was carried over with SetWatches2")
        .expect("an event");
    assert_eq!(
        (event.event_type, event.path.as_str()),
        (EventType::NodeCreated, r.as_str())
    );
    client.close().await.unwrap();
    support::remove_tree(&observer, &root).await;
    observer.close().await.unwrap();
}

/// A connection closed while SetWatches2 is pending, without the UNIMPLEMENTED a 3.5 server
/// answers first, is no refusal (a 3.6+ server restarting, say): persistent watches outlive
/// any number of such closes.
#[tokio::test]
async fn persistent_watches_outlive_connections_closed_during_set_watches2() {
    let env = env_or_skip!();
    let proxy = FrameProxy::start(env.connect_string()).await;
    let client = support::connected_client(&proxy.addr).await;
    let observer = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    observer.create(&root).await.unwrap();
    let p = format!("{root}/p");
    let Some(mut persistent) = env.since((3, 6), client.add_watch(&p)).await else {
        return;
    };

    proxy.act_as(Age::Drop);
    tokio::time::timeout(PATIENCE, async {
        while proxy.refused.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("SetWatches2 is sent again on every connection");
    proxy.act_as(Age::Current);
    tokio::time::timeout(PATIENCE, async {
        while client.exists(&root).await.is_err() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("connected again");
    observer.create(&p).await.unwrap();
    let event = tokio::time::timeout(PATIENCE, persistent.next())
        .await
        .expect("the persistent watch fires")
        .expect("an event");
    assert_eq!(
        (event.event_type, event.path.as_str()),
        (EventType::NodeCreated, p.as_str())
    );
    client.close().await.unwrap();
    support::remove_tree(&observer, &root).await;
    observer.close().await.unwrap();
}

/// Each credential is presented once on a new connection, however often it was added.
#[tokio::test]
async fn credentials_are_replayed_once_each() {
    let env = env_or_skip!();
    let proxy = FrameProxy::start(env.connect_string()).await;
    let client = support::client_builder(&proxy.addr)
        .digest_auth("alice", "secret")
        .build()
        .unwrap();
    client.block_until_connected(PATIENCE).await.unwrap();
    for _ in 0..3 {
        client
            .session()
            .add_auth("digest", b"bob:pw")
            .await
            .unwrap();
    }
    let mut states = client.connection_states();
    proxy.reconnect(&mut states).await;
    client.exists("/").await.unwrap();
    let auths = proxy
        .latest_connection()
        .requests
        .iter()
        .filter(|r| r.xid == AUTH_XID)
        .count();
    assert_eq!(auths, 2, "alice and bob, once each");
    client.close().await.unwrap();
}

/// A reconnect presents the session (id, and so its password) and the last zxid the client
/// has seen, so that no server behind what the client has seen takes it.
#[tokio::test]
async fn a_reconnect_presents_the_session_and_the_last_zxid_seen() {
    let env = env_or_skip!();
    let proxy = FrameProxy::start(env.connect_string()).await;
    let client = support::connected_client(&proxy.addr).await;
    assert_eq!(
        proxy.latest_connection().last_zxid_and_session(),
        (0, 0),
        "a new client: a new session, nothing seen"
    );
    let root = support::unique_root();
    let written = client.create(&root).await.unwrap().stat.unwrap().mzxid;
    let mut states = client.connection_states();
    proxy.reconnect(&mut states).await;
    let (last_zxid, session) = proxy.latest_connection().last_zxid_and_session();
    assert_eq!(session, client.session_id());
    assert!(
        last_zxid >= written,
        "lastZxidSeen {last_zxid:#x} is behind the client's own write {written:#x}"
    );
    client.delete(&root).await.unwrap();
    client.close().await.unwrap();
}

/// After an expiry the client's new session starts from scratch (no session id) but still
/// presents the last zxid it has seen, so no server behind what it has read takes it.
#[tokio::test]
async fn a_new_session_after_an_expiry_presents_the_last_zxid_seen() {
    let env = env_or_skip!();
    let proxy = FrameProxy::start(env.connect_string()).await;
    let client = support::connected_client(&proxy.addr).await;
    let root = support::unique_root();
    let written = client.create(&root).await.unwrap().stat.unwrap().mzxid;
    let old_session = client.session_id();
    let mut states = client.connection_states();
    support::expire_session(
        env.connect_string(),
        old_session,
        &client.session_password(),
    )
    .await;
    tokio::time::timeout(PATIENCE, async {
        while next_state(&mut states).await != ConnectionState::Lost {}
        assert_eq!(next_state(&mut states).await, ConnectionState::Reconnected);
    })
    .await
    .expect("LOST, then a new session");
    assert_ne!(client.session_id(), old_session);
    let (last_zxid, session) = proxy.latest_connection().last_zxid_and_session();
    assert_eq!(session, 0, "a new session is asked for");
    assert!(
        last_zxid >= written,
        "lastZxidSeen {last_zxid:#x} is behind the client's own write {written:#x}"
    );
    client.delete(&root).await.unwrap();
    client.close().await.unwrap();
}

/// Operations newer than the server give a clear error, not a hang or endless retries, and
/// the client carries on in the same session (a 3.5 server closes the connection after its
/// UNIMPLEMENTED).
#[tokio::test]
async fn operations_newer_than_the_server_fail_with_unimplemented() {
    let env = env_or_skip!();
    let proxy = FrameProxy::start(env.connect_string()).await;
    let client = support::connected_client(&proxy.addr).await;
    let session = client.session_id();
    proxy.act_as(Age::Unimplemented);
    client.exists("/").await.unwrap();

    let refused = [
        (
            client.add_watch("/").await.map(drop),
            OpCode::AddWatch,
            "3.6",
        ),
        (client.who_am_i().await.map(drop), OpCode::WhoAmI, "3.7"),
    ];
    for (result, op, version) in refused {
        match result {
            Err(e @ Error::Unimplemented { op: Some(named) }) if named == op => {
                let message = e.to_string();
                assert!(
                    message.contains(version),
                    "names the version needed: {message}"
                );
            }
            other => panic!("{op:?}: {other:?}"),
        }
    }
    assert!(client.exists("/").await.unwrap().is_some(), "still usable");
    assert_eq!(client.session_id(), session);
    assert_eq!(proxy.refused.load(Ordering::SeqCst), 2, "each sent once");
    client.close().await.unwrap();
}

/// The framework's retry loop, counted on the wire: a call whose connection is lost each
/// time is sent once plus once per retry the policy allows, then fails with the connection
/// error; a definite answer (NONODE) is never sent again.
#[tokio::test]
async fn a_call_is_sent_once_plus_once_per_allowed_retry() {
    let env = env_or_skip!();
    let proxy = FrameProxy::start(env.connect_string()).await;
    let client = support::client_builder(&proxy.addr)
        .retry_policy(zk::client::RetryNTimes::new(2, Duration::from_millis(10)))
        .build()
        .unwrap();
    client.block_until_connected(PATIENCE).await.unwrap();
    let sent = |op: OpCode| {
        proxy
            .frames
            .lock()
            .unwrap()
            .iter()
            .flat_map(|c| c.requests.iter())
            .filter(|r| r.op == op.as_i32())
            .count()
    };
    // Every getAllChildrenNumber costs its connection, without a reply (from the next
    // connection on: this one is cut).
    let mut states = client.connection_states();
    proxy.act_as(Age::Drop);
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    assert_eq!(next_state(&mut states).await, ConnectionState::Reconnected);
    let result = tokio::time::timeout(PATIENCE, client.get_all_children_number("/")).await;
    assert!(
        matches!(result, Ok(Err(ref e)) if e.is_retryable()),
        "{result:?}"
    );
    assert_eq!(
        sent(OpCode::GetAllChildrenNumber),
        3,
        "the call and 2 retries: {result:?}"
    );

    assert_eq!(
        client.get_data("/no-such-node").await.map(drop),
        Err(Error::NoNode)
    );
    assert_eq!(sent(OpCode::GetData), 1, "a definite answer is not retried");
    client.close().await.unwrap();
}

/// Many watches are registered again after a reconnect in SetWatches batches of at most/// Many watches are registered again after a reconnect in SetWatches batches of at most
/// 128 KB (a server refuses larger packets), and every one of them still fires.
#[tokio::test]
async fn many_watches_are_registered_again_in_bounded_batches() {
    let env = env_or_skip!();
    let proxy = FrameProxy::start(env.connect_string()).await;
    let client = support::connected_client(&proxy.addr).await;
    let observer = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    observer.create(&root).await.unwrap();
    // 1500 paths of about 250 bytes: some 370 KB of watches.
    let long = "n".repeat(240);
    let paths: Vec<String> = (0..1500).map(|i| format!("{root}/{long}-{i:04}")).collect();
    let watches = futures::future::join_all(
        paths
            .iter()
            .map(|p| std::future::IntoFuture::into_future(client.exists(p).watched())),
    )
    .await;
    let watches: Vec<_> = watches.into_iter().map(|r| r.unwrap().1).collect();

    let mut states = client.connection_states();
    proxy.reconnect(&mut states).await;
    client.exists("/").await.unwrap();
    let batches: Vec<usize> = proxy
        .latest_connection()
        .requests
        .iter()
        .filter(|r| r.op == SET_WATCHES || r.op == NEWER_THAN_3_5[3])
        .map(|r| r.len)
        .collect();
    assert!(batches.len() >= 3, "{batches:?}");
    assert!(batches.iter().all(|&len| len <= 128 * 1024), "{batches:?}");

    let creates = paths
        .iter()
        .map(|p| std::future::IntoFuture::into_future(observer.create(p)));
    for r in futures::future::join_all(creates).await {
        r.unwrap();
    }
    for (watch, path) in watches.into_iter().zip(&paths) {
        let event = tokio::time::timeout(PATIENCE, watch)
            .await
            .expect("every watch fires");
        assert_eq!(
            (event.event_type, &event.path),
            (EventType::NodeCreated, path)
        );
    }
    client.close().await.unwrap();
    support::remove_tree(&observer, &root).await;
    observer.close().await.unwrap();
}

/// An idle client pings every third of the negotiated session timeout T (as Apache's client:
/// half its read timeout of 2T/3), so the server hears from it well within T, and not much
/// more often. Judged by the gaps between pings: lateness only makes a gap longer, so one
/// gap of at most T/3 (plus a little) tells a third from a half, whatever the load.
#[tokio::test]
async fn an_idle_client_pings_a_few_times_per_session_timeout() {
    let env = env_or_skip!();
    let proxy = FrameProxy::start(env.connect_string()).await;
    let client = support::connected_client(&proxy.addr).await;
    let timeout = client.session().negotiated_timeout();
    tokio::time::sleep(timeout * 2).await;
    let pings: Vec<Instant> = proxy
        .latest_connection()
        .requests
        .iter()
        .filter(|r| r.xid == PING_XID)
        .map(|r| r.at)
        .collect();
    let gaps: Vec<Duration> = pings.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.len() >= 2,
        "{} pings in {:?}",
        pings.len(),
        timeout * 2
    );
    let (shortest, longest) = (gaps.iter().min().unwrap(), gaps.iter().max().unwrap());
    assert!(
        *shortest <= timeout / 3 + timeout / 40,
        "never a ping within a third of {timeout:?}: {gaps:?}"
    );
    assert!(*shortest >= timeout / 5, "pinging too often: {gaps:?}");
    assert!(*longest < timeout * 2 / 3, "a ping came late: {gaps:?}");
    client.close().await.unwrap();
}

/// A frame: the length prefix, then `body`.
fn framed(body: &[u8]) -> Vec<u8> {
    [(body.len() as u32).to_be_bytes().to_vec(), body.to_vec()].concat()
}

/// A reply frame: xid, a zxid, err, then `body`.
fn reply_frame(xid: i32, err: i32, body: &[u8]) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend(xid.to_be_bytes());
    r.extend(5i64.to_be_bytes());
    r.extend(err.to_be_bytes());
    r.extend(body);
    framed(&r)
}

/// A scripted server's next connection, with its handshake done: session `session_id`.
async fn accept_session(listener: &TcpListener, session_id: i64) -> TcpStream {
    let (mut socket, _) = listener.accept().await.unwrap();
    socket.set_nodelay(true).unwrap();
    read_frame(&mut socket).await.unwrap();
    // ConnectResponse: protocol version, timeout, session id, password, read-only.
    let mut hello = Vec::new();
    hello.extend(0i32.to_be_bytes());
    hello.extend(4000i32.to_be_bytes());
    hello.extend(session_id.to_be_bytes());
    hello.extend(16i32.to_be_bytes());
    hello.extend([7u8; 16]);
    hello.push(0);
    socket.write_all(&framed(&hello)).await.unwrap();
    socket
}

/// Answers every request with `err` (pings and closeSession with 0) until closeSession.
async fn answer_until_close(socket: &mut TcpStream, err: i32) {
    while let Ok(request) = read_frame(socket).await {
        let (xid, op) = (int_at(&request, 0), int_at(&request, 4));
        let err = if xid == PING_XID || op == -11 { 0 } else { err };
        socket.write_all(&reply_frame(xid, err, &[])).await.unwrap();
        if op == -11 {
            break;
        }
    }
}

/// A server of one connection for [`a_reply_over_the_limit_is_skipped_however_it_arrives`]:
/// a session, then replies to three requests — one too large, arriving a few bytes at a
/// time; one normal; one error carrying a body too large — then bare replies until
/// closeSession.
async fn serve_oversized_replies(listener: TcpListener, big: usize) {
    let mut socket = accept_session(&listener, 0x5e55).await;
    let get_data_body = |data: &[u8]| {
        let mut body = (data.len() as i32).to_be_bytes().to_vec();
        body.extend(data);
        body.extend([0u8; 68]); // the stat
        body
    };
    let mut xids = Vec::new();
    for _ in 0..3 {
        xids.push(int_at(&read_frame(&mut socket).await.unwrap(), 0));
    }
    // Over the limit, in pieces: the length prefix and header split across reads, then the
    // body across many.
    let oversized = reply_frame(xids[0], 0, &get_data_body(&vec![b'x'; big]));
    for piece in oversized.chunks(3) {
        socket.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_micros(300)).await;
    }
    let mut rest = reply_frame(xids[1], 0, &get_data_body(b"ok"));
    // NONODE, with a body a server would not send, over the limit.
    rest.extend(reply_frame(xids[2], -101, &vec![0u8; big]));
    socket.write_all(&rest).await.unwrap();
    answer_until_close(&mut socket, 0).await;
}

/// A reply over the client's limit fails its request alone however its bytes arrive (the
/// header split across reads, the body over hundreds), the replies after it are read as
/// usual, and an error reply over the limit reports its error.
#[tokio::test]
async fn a_reply_over_the_limit_is_skipped_however_it_arrives() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(serve_oversized_replies(listener, 1500));
    let client = support::client_builder(&addr)
        .max_reply_len(1024)
        .build()
        .unwrap();
    client.block_until_connected(PATIENCE).await.unwrap();
    let (big, small, gone) = tokio::join!(
        std::future::IntoFuture::into_future(client.get_data("/big")),
        std::future::IntoFuture::into_future(client.get_data("/small")),
        std::future::IntoFuture::into_future(client.exists("/gone")),
    );
    assert_eq!(
        big,
        Err(Error::ReplyTooLarge {
            len: 16 + 4 + 1500 + 68,
            max: 1024
        })
    );
    assert_eq!(small.unwrap().0, b"ok");
    assert_eq!(gone, Ok(None), "NONODE, not the size");
    assert_eq!(
        client.session_id(),
        0x5e55,
        "the same connection and session"
    );
    client.close().await.unwrap();
    tokio::time::timeout(PATIENCE, server)
        .await
        .expect("closeSession reached the server")
        .unwrap();
}

/// A scripted old server: answers every request on its first connection with UNIMPLEMENTED
/// but, unlike Apache, keeps the connection open, and reports whether the client sent
/// anything more on it; on the next connection it answers every request with NONODE.
async fn serve_unimplemented_then_no_node(listener: TcpListener) -> bool {
    let mut first = accept_session(&listener, 0x0bd0).await;
    let request = read_frame(&mut first).await.unwrap();
    first
        .write_all(&reply_frame(int_at(&request, 0), UNIMPLEMENTED, &[]))
        .await
        .unwrap();
    // Anything but pings after the refusal would be sent on a connection Apache closes.
    let sent_more = loop {
        match tokio::time::timeout(Duration::from_secs(2), read_frame(&mut first)).await {
            Ok(Ok(more)) if int_at(&more, 0) == PING_XID => continue,
            Ok(Ok(_)) => break true,
            Ok(Err(_)) | Err(_) => break false,
        }
    };
    drop(first);
    let mut second = accept_session(&listener, 0x0bd0).await;
    answer_until_close(&mut second, -101).await;
    sent_more
}

/// After an UNIMPLEMENTED answer the client sends nothing more on that connection: Apache
/// closes it, and may apply requests it read before closing without answering them (a create
/// sent right after would then fail with NODEEXISTS when retried). The next request goes on
/// a new connection.
#[tokio::test]
async fn nothing_more_is_sent_on_a_connection_after_unimplemented() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(serve_unimplemented_then_no_node(listener));
    let client = support::client_builder(&addr).build().unwrap();
    client.block_until_connected(PATIENCE).await.unwrap();
    assert!(matches!(
        client.who_am_i().await,
        Err(Error::Unimplemented { .. })
    ));
    assert_eq!(client.delete("/x").await, Err(Error::NoNode));
    client.close().await.unwrap();
    let sent_more = tokio::time::timeout(PATIENCE, server)
        .await
        .expect("the scripted server ends")
        .unwrap();
    assert!(!sent_more, "a request went out on the refusing connection");
}

/// An op the server knows but has switched off (a TTL create without extended types) is
/// answered UNIMPLEMENTED on a connection that stays open: the client keeps it.
#[tokio::test]
async fn a_switched_off_op_keeps_the_connection() {
    let server = zk::server::TestingServer::builder()
        .extended_types(false)
        .start()
        .await
        .unwrap();
    let client = support::connected_client(&server.connect_string()).await;
    let mut states = client.connection_states();
    let refused = client
        .create("/ttl")
        .mode(zk::client::CreateMode::PersistentWithTtl)
        .ttl(60_000)
        .await;
    assert!(
        matches!(refused, Err(Error::Unimplemented { .. })),
        "{refused:?}"
    );
    // In a transaction the error names the op refused, not the multi.
    let refused = client
        .transaction()
        .op(zk::client::Op::Create {
            path: "/ttl".to_owned(),
            data: Vec::new(),
            acl: zk::client::Acl::open_unsafe(),
            mode: zk::client::CreateMode::PersistentWithTtl,
            ttl: Some(60_000),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, Error::Transaction { index: 0, error }
            if **error == Error::Unimplemented { op: Some(OpCode::CreateTtl) }),
        "{refused:?}"
    );
    assert!(client.exists("/").await.unwrap().is_some());
    assert!(
        futures::FutureExt::now_or_never(states.next()).is_none(),
        "no connection state change"
    );
    client.close().await.unwrap();
}

/// A scripted 3.5-like server: on its first connection it reads two pipelined requests and
/// answers the second (an op it does not know) UNIMPLEMENTED at once, ahead of the first, as
/// Apache does, then closes; on the next connection it answers every request with NONODE.
async fn serve_refusal_ahead_then_no_node(listener: TcpListener) {
    let mut first = accept_session(&listener, 0x0bd1).await;
    let mut requests = Vec::new();
    while requests.len() < 2 {
        let request = read_frame(&mut first).await.unwrap();
        if int_at(&request, 0) != PING_XID {
            requests.push(int_at(&request, 0));
        }
    }
    first
        .write_all(&reply_frame(requests[1], UNIMPLEMENTED, &[]))
        .await
        .unwrap();
    drop(first);
    let mut second = accept_session(&listener, 0x0bd1).await;
    answer_until_close(&mut second, -101).await;
}

/// An op the server does not know, refused ahead of the replies to the requests sent before
/// it (Apache answers it as it arrives): the op gets its UNIMPLEMENTED error, and the others
/// are retried on the next connection. Before, the out-of-order reply was a connection loss
/// for all of them, and the retry met the same race again (an endless loop on 3.5 for a
/// group member creating its node while its cache added its watch).
#[tokio::test]
async fn an_unknown_op_refused_ahead_of_earlier_replies_gets_its_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(serve_refusal_ahead_then_no_node(listener));
    let client = support::client_builder(&addr).build().unwrap();
    client.block_until_connected(PATIENCE).await.unwrap();
    let (deleted, who) = tokio::join!(
        std::future::IntoFuture::into_future(client.delete("/x")),
        std::future::IntoFuture::into_future(client.who_am_i()),
    );
    assert!(matches!(who, Err(Error::Unimplemented { .. })), "{who:?}");
    assert_eq!(
        deleted,
        Err(Error::NoNode),
        "retried on the next connection"
    );
    client.close().await.unwrap();
    tokio::time::timeout(PATIENCE, server)
        .await
        .expect("the scripted server ends")
        .unwrap();
}
