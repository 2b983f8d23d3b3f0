//! A server older than the client (3.5, before persistent watches): it drops a connection that
//! carries SetWatches2. The client falls back to SetWatches: its persistent watches end (the
//! old server cannot hold them), its one-shot watches carry on, and the session survives.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

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

/// A proxy in front of a real server that, once made old, drops every connection on which the
/// client sends SetWatches2, as a 3.5 server does with an op code it does not know.
struct OldServerProxy {
    addr: String,
    old: Arc<AtomicBool>,
    dropped: Arc<AtomicUsize>,
    cut: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl OldServerProxy {
    async fn start(upstream: &str) -> OldServerProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let old = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicUsize::new(0));
        let (cut, cuts) = watch::channel(0);
        let upstream = upstream.split(',').next().unwrap().to_owned();
        let task = tokio::spawn({
            let (old, dropped) = (old.clone(), dropped.clone());
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let connection = serve(
                        client,
                        upstream.clone(),
                        old.clone(),
                        dropped.clone(),
                        cuts.clone(),
                    );
                    tokio::spawn(connection);
                }
            }
        });
        OldServerProxy {
            addr,
            old,
            dropped,
            cut,
            task,
        }
    }

    /// From now on, behave as a 3.5 server; and cut the connections open now.
    fn become_old(&self) {
        self.old.store(true, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }
}

impl Drop for OldServerProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Forwards one connection, frame by frame from the client; returns (closing both sides) on a
/// cut, or on SetWatches2 once the proxy is old.
async fn serve(
    client: TcpStream,
    upstream: String,
    old: Arc<AtomicBool>,
    dropped: Arc<AtomicUsize>,
    mut cuts: watch::Receiver<u64>,
) -> std::io::Result<()> {
    let server = TcpStream::connect(upstream).await?;
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let replies =
        tokio::spawn(async move { tokio::io::copy(&mut from_server, &mut to_client).await });
    cuts.borrow_and_update();
    let forward = async {
        // The first frame is the ConnectRequest; the op code is the second int of the others.
        let mut handshake = true;
        loop {
            let mut head = [0u8; 4];
            from_client.read_exact(&mut head).await?;
            let mut frame = vec![0u8; u32::from_be_bytes(head).min(1 << 20) as usize];
            from_client.read_exact(&mut frame).await?;
            let op = frame
                .get(4..8)
                .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            if !handshake && op == Some(SET_WATCHES2) && old.load(Ordering::SeqCst) {
                dropped.fetch_add(1, Ordering::SeqCst);
                return Ok::<(), std::io::Error>(());
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

#[tokio::test]
async fn persistent_watches_end_and_one_shot_watches_carry_on_without_set_watches2() {
    let env = env_or_skip!();
    let proxy = OldServerProxy::start(env.connect_string()).await;
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
