//! What the client sends, seen frame by frame by a proxy: credentials replayed once each on a
//! new connection; and, against a server older than the client (3.5, before persistent
//! watches) that drops a connection carrying SetWatches2, the fallback to SetWatches.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use support::{next_state, PATIENCE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use zk::client::{ConnectionState, EventType};

macro_rules! env_or_skip {
    () => {
        match support::env().await {
            Some(env) => env,
            None => return,
        }
    };
}

/// SetWatches2's op code.
const SET_WATCHES2: i32 = 105;
/// The xid of auth packets.
const AUTH_XID: i32 = -4;

/// What the client sent on each connection.
type Frames = Arc<Mutex<Vec<Sent>>>;

/// What the client sent on one connection.
#[derive(Debug, Clone, Default)]
struct Sent {
    /// The ConnectRequest.
    handshake: Vec<u8>,
    /// The (xid, op code) of each request after it.
    requests: Vec<(i32, i32)>,
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

/// A proxy in front of a real server that records the client's frames and, once made old,
/// drops every connection on which the client sends SetWatches2, as a 3.5 server does with an
/// op code it does not know.
struct FrameProxy {
    addr: String,
    frames: Frames,
    old: Arc<AtomicBool>,
    dropped: Arc<AtomicUsize>,
    cut: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl FrameProxy {
    async fn start(upstream: &str) -> FrameProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let frames = Frames::default();
        let old = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicUsize::new(0));
        let (cut, cuts) = watch::channel(0);
        let upstream = upstream.split(',').next().unwrap().to_owned();
        let task = tokio::spawn({
            let (frames, old, dropped) = (frames.clone(), old.clone(), dropped.clone());
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
                        old: old.clone(),
                        dropped: dropped.clone(),
                    };
                    tokio::spawn(connection.serve(client, cuts.clone()));
                }
            }
        });
        FrameProxy {
            addr,
            frames,
            old,
            dropped,
            cut,
            task,
        }
    }

    /// Cuts the connections open now.
    fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }

    /// From now on, behave as a 3.5 server; and cut the connections open now.
    fn become_old(&self) {
        self.old.store(true, Ordering::SeqCst);
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
    old: Arc<AtomicBool>,
    dropped: Arc<AtomicUsize>,
}

impl Connection {
    /// Forwards the connection, frame by frame from the client; returns (closing both sides)
    /// on a cut, or on SetWatches2 once the proxy is old.
    async fn serve(self, client: TcpStream, mut cuts: watch::Receiver<u64>) -> std::io::Result<()> {
        let server = TcpStream::connect(&self.upstream).await?;
        let (mut from_client, mut to_client) = client.into_split();
        let (mut from_server, mut to_server) = server.into_split();
        let replies =
            tokio::spawn(async move { tokio::io::copy(&mut from_server, &mut to_client).await });
        cuts.borrow_and_update();
        let forward = async {
            // The first frame is the ConnectRequest; the others start with xid and op code.
            let mut handshake = true;
            loop {
                let mut head = [0u8; 4];
                from_client.read_exact(&mut head).await?;
                let mut frame = vec![0u8; u32::from_be_bytes(head).min(1 << 20) as usize];
                from_client.read_exact(&mut frame).await?;
                if handshake {
                    self.frames.lock().unwrap()[self.index].handshake = frame.clone();
                } else {
                    let int = |at: usize| {
                        frame
                            .get(at..at + 4)
                            .map_or(0, |b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                    };
                    let (xid, op) = (int(0), int(4));
                    self.frames.lock().unwrap()[self.index]
                        .requests
                        .push((xid, op));
                    if op == SET_WATCHES2 && self.old.load(Ordering::SeqCst) {
                        self.dropped.fetch_add(1, Ordering::SeqCst);
                        return Ok::<(), std::io::Error>(());
                    }
                }
                handshake = false;
                to_server.write_all(&head).await?;
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

#[tokio::test]
async fn persistent_watches_end_and_one_shot_watches_carry_on_without_set_watches2() {
    let env = env_or_skip!();
    let proxy = FrameProxy::start(env.connect_string()).await;
    let client = support::connected_client(&proxy.addr).await;
    let observer = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    observer.create(&root).await.unwrap();
    let mut persistent = client.add_watch(&format!("{root}/p")).await.unwrap();
    let q = format!("{root}/q");
    let (_, one_shot) = client.exists(&q).watched().await.unwrap();
    let session = client.session_id();
    let mut states = client.connection_states();

    proxy.become_old();
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
    // Dropped twice (a connection closed once could be anything), then SetWatches.
    assert_eq!(proxy.dropped.load(Ordering::SeqCst), 2);

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
    proxy.cut();
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    assert_eq!(next_state(&mut states).await, ConnectionState::Reconnected);
    client.exists("/").await.unwrap();
    let auths = proxy
        .latest_connection()
        .requests
        .iter()
        .filter(|(xid, _)| *xid == AUTH_XID)
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
    proxy.cut();
    assert_eq!(next_state(&mut states).await, ConnectionState::Suspended);
    assert_eq!(next_state(&mut states).await, ConnectionState::Reconnected);
    let (last_zxid, session) = proxy.latest_connection().last_zxid_and_session();
    assert_eq!(session, client.session_id());
    assert!(
        last_zxid >= written,
        "lastZxidSeen {last_zxid:#x} is behind the client's own write {written:#x}"
    );
    client.delete(&root).await.unwrap();
    client.close().await.unwrap();
}
