//! [`QuorumTransport`]: authenticated TCP connections between ensemble members, one per pair,
//! carrying framed [`Message`]s (election notifications and learner traffic alike).
//!
//! * **One connection per pair: the higher id dials.** Each member listens on its quorum
//!   address and keeps dialing (with back-off) every member with a lower id that it is not
//!   connected to; it accepts only members with a higher id. So two members never race to
//!   open two connections (Apache reaches the same end with "the higher sid keeps the
//!   connection": a lower sid's connection is dropped and dialed back).
//! * **Authenticated.** Every connection starts with the [`handshake`];
//!   unknown ids, the wrong direction, or a wrong secret are refused with a warning naming
//!   the remote address and the reason. Until the handshake succeeds the peer is not
//!   "connected": nothing it sends reaches the replica.
//! * **Inputs.** Received messages and broken connections are delivered as
//!   [`Input::Receive`] / [`Input::Disconnected`] into one channel, in order per peer. A
//!   `Disconnected` is delivered once for every connection that was established, after its
//!   last message; a member reconnecting replaces its old connection, whose `Disconnected`
//!   comes before the new connection's first message.
//! * **Sending** ([`QuorumTransport::send`]) queues a message for its peer's writer task. A
//!   message for a member that is not connected is dropped (the replica copes: it re-sends
//!   votes, and learners resync), except that the last election notification for each member
//!   is kept and sent first when a connection to it opens (as Apache's `lastMessageSent`), so
//!   an election does not wait for a re-send back-off. Each peer's queue is bounded: a peer
//!   that cannot keep up is disconnected, as ZooKeeper's `LearnerHandler` drops a learner that
//!   falls behind.
//! * **A bad frame** (see [`wire`]) closes that connection only.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Notify};

use super::handshake;
use super::wire::{self, FrameLimits};
use crate::config::{QuorumConfig, QuorumSecret};
use crate::zab::{Input, Message, Sid};

/// Where and how a member connects to the others.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// This member's id.
    pub me: Sid,
    /// Every member's quorum address (`host`, `port`), this one's included. Members with a
    /// lower id than `me` are dialed; the others may dial us.
    pub members: BTreeMap<Sid, (String, u16)>,
    /// The shared secret; `None` takes ids on trust (a warning is logged once).
    pub secret: Option<QuorumSecret>,
    /// The largest frames accepted.
    pub limits: FrameLimits,
    /// Messages queued per peer before it is considered unable to keep up (and is
    /// disconnected).
    pub queue_capacity: usize,
    /// Messages buffered towards the replica before readers wait (TCP back-pressure).
    pub inbound_capacity: usize,
    /// How long a dial plus handshake may take.
    pub handshake_timeout: Duration,
    /// The first pause before re-dialing a member that is down; it doubles.
    pub min_backoff: Duration,
    /// The longest pause between dials.
    pub max_backoff: Duration,
}

impl TransportConfig {
    /// Defaults for member `me` of `members`: 256 MiB SNAP/DIFF frames, 2 MiB others, 8192
    /// queued messages per peer, 5 s handshakes, re-dials from 50 ms up to 2 s.
    pub fn new(
        me: Sid,
        members: BTreeMap<Sid, (String, u16)>,
        secret: Option<QuorumSecret>,
    ) -> Self {
        TransportConfig {
            me,
            members,
            secret,
            limits: FrameLimits::default(),
            queue_capacity: 8192,
            inbound_capacity: 4096,
            handshake_timeout: Duration::from_secs(5),
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
        }
    }

    /// The configuration from `zoo.cfg`'s ensemble part (quorum addresses, `myid`, secret).
    pub fn from_quorum(quorum: &QuorumConfig) -> Self {
        let members = quorum
            .servers
            .iter()
            .map(|(sid, s)| (*sid, (s.quorum_addr.host.clone(), s.quorum_addr.port)))
            .collect();
        TransportConfig::new(quorum.my_id, members, quorum.secret.clone())
    }

    /// The address this member listens on (its own entry; the wildcard address when
    /// `listen_on_all_ips`).
    pub fn listen_addr(&self, listen_on_all_ips: bool) -> Option<(String, u16)> {
        let (host, port) = self.members.get(&self.me)?;
        Some(if listen_on_all_ips {
            ("0.0.0.0".to_owned(), *port)
        } else {
            (host.clone(), *port)
        })
    }
}

/// One established connection, as the registry sees it.
struct Conn {
    id: u64,
    /// `None` once a message to the peer was dropped: nothing after it may go out on this
    /// connection (the peer would take a stream with a gap for a whole one), which closes.
    queue: Option<mpsc::Sender<Bytes>>,
    close: Arc<Notify>,
}

impl Conn {
    /// Takes no more messages and closes the connection (messages still queued may be lost
    /// with it: the peer sees a prefix of the stream, never a gap).
    fn sever(&mut self) {
        self.queue = None;
        self.close.notify_one();
    }
}

struct Shared {
    config: TransportConfig,
    members: BTreeSet<Sid>,
    inbound: mpsc::Sender<Input>,
    conns: Mutex<HashMap<Sid, Conn>>,
    /// Members this one refuses to talk to (a simulated partition).
    blocked: Mutex<BTreeSet<Sid>>,
    /// Whether `blocked` is not empty: the message paths look at the set only then.
    any_blocked: AtomicBool,
    /// The last notification sent (or meant) for each member, replayed on connect.
    last_notification: Mutex<HashMap<Sid, Bytes>>,
    next_conn: AtomicU64,
    connected: watch::Sender<BTreeSet<Sid>>,
    shutdown: watch::Sender<bool>,
}

/// The quorum connections of one member. Cheap to clone; [`shutdown`](Self::shutdown) stops
/// every task and closes every socket (the listener too).
#[derive(Clone)]
pub struct QuorumTransport {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for QuorumTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuorumTransport")
            .field("me", &self.shared.config.me)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl QuorumTransport {
    /// Binds this member's quorum address (see [`TransportConfig::listen_addr`]) and starts.
    ///
    /// # Errors
    /// The address is not configured or cannot be bound.
    pub async fn bind(
        config: TransportConfig,
        listen_on_all_ips: bool,
    ) -> io::Result<(QuorumTransport, mpsc::Receiver<Input>)> {
        let (host, port) = config.listen_addr(listen_on_all_ips).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no address for this server id")
        })?;
        let listener = TcpListener::bind((host.as_str(), port)).await?;
        QuorumTransport::start(config, listener)
    }

    /// Starts on an already bound listener (tests bind `127.0.0.1:0` first to learn the
    /// ports). Returns the handle and the channel of [`Input::Receive`] /
    /// [`Input::Disconnected`] for the replica. Must be called within a tokio runtime.
    ///
    /// # Errors
    /// The listener's address cannot be read.
    pub fn start(
        config: TransportConfig,
        listener: TcpListener,
    ) -> io::Result<(QuorumTransport, mpsc::Receiver<Input>)> {
        let local_addr = listener.local_addr()?;
        if config.secret.is_none() {
            tracing::warn!(
                me = config.me,
                "no quorum secret: peer server ids are taken on trust (CVE-2023-44981)"
            );
        }
        let (inbound, rx) = mpsc::channel(config.inbound_capacity.max(1));
        let members = config.members.keys().copied().collect();
        let shared = Arc::new(Shared {
            members,
            inbound,
            conns: Mutex::new(HashMap::new()),
            blocked: Mutex::new(BTreeSet::new()),
            any_blocked: AtomicBool::new(false),
            last_notification: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            connected: watch::Sender::new(BTreeSet::new()),
            shutdown: watch::Sender::new(false),
            config,
        });
        tokio::spawn(until_shutdown(
            shared.clone(),
            accept_loop(shared.clone(), listener),
        ));
        let me = shared.config.me;
        for &peer in shared.members.range(..me) {
            tokio::spawn(until_shutdown(
                shared.clone(),
                dial_loop(shared.clone(), peer),
            ));
        }
        Ok((QuorumTransport { shared, local_addr }, rx))
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// This member's id.
    pub fn me(&self) -> Sid {
        self.shared.config.me
    }

    /// Queues `message` for `to`. Dropped when `to` is not connected (an election
    /// notification is kept and sent when it connects); when `to`'s queue is full or the
    /// message is over the frame limit, it is dropped and so is every later message on that
    /// connection, which closes: a peer never sees a stream with a message missing (a SNAP
    /// lost before its DIFF and NEWLEADER), as over one TCP stream in Apache.
    pub fn send(&self, to: Sid, message: &Message) {
        let frame = wire::encode_frame(message);
        let packet_len = wire::packet_len(&frame);
        let limit = match message {
            Message::Snap { .. } | Message::Diff { .. } => self.shared.config.limits.max_bulk,
            _ => self.shared.config.limits.max_message,
        };
        if packet_len > limit {
            tracing::error!(
                to,
                packet_len,
                limit,
                "a message exceeds the frame limit: dropped, disconnecting the peer"
            );
            if let Some(conn) = lock(&self.shared.conns).get_mut(&to) {
                conn.sever();
            }
            return;
        }
        if matches!(message, Message::Notification { .. }) {
            lock(&self.shared.last_notification).insert(to, frame.clone());
        }
        if self.shared.is_blocked(to) {
            // Partitioned: the connection may still be closing; nothing goes out meanwhile.
            return;
        }
        let mut conns = lock(&self.shared.conns);
        let Some(conn) = conns.get_mut(&to) else {
            tracing::trace!(to, "not connected: message dropped");
            return;
        };
        let Some(queue) = &conn.queue else {
            tracing::trace!(to, "connection closing: message dropped");
            return;
        };
        match queue.try_send(frame) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(to, "the peer cannot keep up with its queue: disconnecting");
                conn.sever();
            }
            // The writer ended: the connection is closing.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Closes the connection with `peer`, if any; an [`Input::Disconnected`] follows. The
    /// member is dialed again (or may dial again) later.
    pub fn disconnect(&self, peer: Sid) {
        if let Some(conn) = lock(&self.shared.conns).get(&peer) {
            conn.close.notify_one();
        }
    }

    /// Cuts this member off from `peers` (and reconnects the others): connections with them
    /// are closed and refused until a later call leaves them out — one side of a network
    /// partition, for tests.
    pub fn set_blocked(&self, peers: BTreeSet<Sid>) {
        *lock(&self.shared.blocked) = peers.clone();
        self.shared
            .any_blocked
            .store(!peers.is_empty(), Ordering::SeqCst);
        for peer in peers {
            self.disconnect(peer);
        }
    }

    /// The members connected now.
    pub fn connected(&self) -> BTreeSet<Sid> {
        self.shared.connected.borrow().clone()
    }

    /// Watches the set of connected members.
    pub fn watch_connected(&self) -> watch::Receiver<BTreeSet<Sid>> {
        self.shared.connected.subscribe()
    }

    /// Stops every task and closes the listener and every connection. Idempotent.
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }
}

async fn until_shutdown(shared: Arc<Shared>, task: impl std::future::Future<Output = ()>) {
    let mut stop = shared.shutdown.subscribe();
    drop(shared);
    tokio::select! {
        _ = stop.wait_for(|s| *s) => {}
        _ = task => {}
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "quorum accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let shared2 = shared.clone();
        tokio::spawn(until_shutdown(shared.clone(), async move {
            let mut stream = stream;
            let _ = stream.set_nodelay(true);
            let c = &shared2.config;
            match handshake::accept(
                &mut stream,
                c.me,
                &shared2.members,
                c.secret.as_ref(),
                c.handshake_timeout,
            )
            .await
            {
                Ok(peer) => {
                    tracing::info!(me = c.me, peer, %addr, "quorum peer connected (accepted)");
                    run_connection(shared2, peer, stream).await;
                }
                Err(e) if e.is_auth_failure() => {
                    tracing::warn!(me = c.me, %addr, error = %e, "refused a quorum connection");
                }
                Err(e) => {
                    tracing::debug!(me = c.me, %addr, error = %e, "quorum handshake failed");
                }
            }
        }));
    }
}

async fn dial_loop(shared: Arc<Shared>, peer: Sid) {
    let c = &shared.config;
    let Some((host, port)) = c.members.get(&peer).cloned() else {
        return;
    };
    let mut backoff = c.min_backoff;
    loop {
        let attempt = async {
            let mut stream = TcpStream::connect((host.as_str(), port))
                .await
                .map_err(handshake::HandshakeError::Io)?;
            let _ = stream.set_nodelay(true);
            handshake::dial(
                &mut stream,
                c.me,
                peer,
                c.secret.as_ref(),
                c.handshake_timeout,
            )
            .await?;
            Ok::<_, handshake::HandshakeError>(stream)
        };
        match tokio::time::timeout(c.handshake_timeout, attempt).await {
            Ok(Ok(stream)) => {
                tracing::info!(me = c.me, peer, "quorum peer connected (dialed)");
                backoff = c.min_backoff;
                run_connection(shared.clone(), peer, stream).await;
            }
            Ok(Err(e)) if e.is_auth_failure() => {
                tracing::warn!(me = c.me, peer, error = %e, "quorum handshake refused");
            }
            Ok(Err(e)) => tracing::debug!(me = c.me, peer, error = %e, "quorum dial failed"),
            Err(_) => tracing::debug!(me = c.me, peer, "quorum dial timed out"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(c.max_backoff);
    }
}

/// Runs one authenticated connection until it breaks, is closed, or is replaced.
async fn run_connection(shared: Arc<Shared>, peer: Sid, stream: TcpStream) {
    if shared.is_blocked(peer) {
        tracing::debug!(
            me = shared.config.me,
            peer,
            "partitioned: connection dropped"
        );
        return;
    }
    let (queue, queue_rx) = mpsc::channel(shared.config.queue_capacity.max(1));
    let close = Arc::new(Notify::new());
    let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let replaced = {
        let mut conns = lock(&shared.conns);
        let old = conns.insert(
            peer,
            Conn {
                id,
                queue: Some(queue.clone()),
                close: close.clone(),
            },
        );
        shared.connected.send_modify(|s| {
            s.insert(peer);
        });
        old
    };
    if let Some(old) = replaced {
        // The old connection will not report itself (it is no longer registered).
        old.close.notify_one();
        let _ = shared.inbound.send(Input::Disconnected { peer }).await;
    }
    // Replay the last election notification meant for this peer.
    if let Some(n) = lock(&shared.last_notification).get(&peer).cloned() {
        let _ = queue.try_send(n);
    }
    drop(queue);
    let (r, w) = stream.into_split();
    // Aborted when this future ends or is dropped (shutdown), closing both halves.
    let mut reader = AbortOnDrop(tokio::spawn(read_loop(shared.clone(), peer, r)));
    let mut writer = AbortOnDrop(tokio::spawn(write_loop(w, queue_rx)));
    tokio::select! {
        _ = &mut reader.0 => {}
        _ = &mut writer.0 => {}
        _ = close.notified() => {}
    }
    // Stop both halves (the socket closes once both tasks are gone).
    drop((reader, writer));
    let mine = {
        let mut conns = lock(&shared.conns);
        if conns.get(&peer).is_some_and(|c| c.id == id) {
            conns.remove(&peer);
            shared.connected.send_modify(|s| {
                s.remove(&peer);
            });
            true
        } else {
            false
        }
    };
    if mine {
        tracing::info!(me = shared.config.me, peer, "quorum peer disconnected");
        let _ = shared.inbound.send(Input::Disconnected { peer }).await;
    }
}

impl Shared {
    /// Whether messages to and from `peer` are dropped (a test's partition).
    fn is_blocked(&self, peer: Sid) -> bool {
        self.any_blocked.load(Ordering::Relaxed) && lock(&self.blocked).contains(&peer)
    }
}

/// Aborts its task when dropped (a dropped `JoinHandle` would leave the task running).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn read_loop(shared: Arc<Shared>, peer: Sid, mut r: OwnedReadHalf) {
    let limits = shared.config.limits;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        loop {
            match wire::decode_frame(&mut buf, &limits) {
                Ok(Some(message)) => {
                    if shared.is_blocked(peer) {
                        // Partitioned while this connection closes: nothing comes in either.
                        continue;
                    }
                    if shared
                        .inbound
                        .send(Input::Receive {
                            from: peer,
                            message,
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(
                        me = shared.config.me,
                        peer,
                        error = %e,
                        "bad frame from quorum peer: closing the connection"
                    );
                    return;
                }
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(64 * 1024);
        }
        match r.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

async fn write_loop(w: OwnedWriteHalf, mut queue: mpsc::Receiver<Bytes>) {
    let mut w = BufWriter::with_capacity(64 * 1024, w);
    while let Some(frame) = queue.recv().await {
        if w.write_all(&frame).await.is_err() {
            return;
        }
        // Batch what is already queued, then flush.
        while let Ok(frame) = queue.try_recv() {
            if w.write_all(&frame).await.is_err() {
                return;
            }
        }
        if w.flush().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transport of member 1 (of 1 and 2) with a stand-in connection to member 2 whose
    /// queue the test reads; member 2 is never dialed (it has the higher id).
    async fn with_a_connection_to_2(
        limits: FrameLimits,
        capacity: usize,
    ) -> (QuorumTransport, mpsc::Receiver<Bytes>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let members = [
            (1, ("127.0.0.1".to_owned(), port)),
            (2, ("127.0.0.1".to_owned(), 1)),
        ];
        let mut config = TransportConfig::new(1, members.into_iter().collect(), None);
        config.limits = limits;
        let (transport, _inputs) = QuorumTransport::start(config, listener).expect("start");
        let (queue, rx) = mpsc::channel(capacity);
        lock(&transport.shared.conns).insert(
            2,
            Conn {
                id: 0,
                queue: Some(queue),
                close: Arc::new(Notify::new()),
            },
        );
        (transport, rx)
    }

    /// The next frame queued, `None` once the queue is closed; waiting at most 5 s.
    async fn next(rx: &mut mpsc::Receiver<Bytes>) -> Option<Bytes> {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("the queue is closed or yields a frame")
    }

    /// Over one TCP stream nothing can follow a lost message; so here: once a message to a
    /// peer is dropped, nothing later goes out on that connection (a DIFF and NEWLEADER after
    /// a SNAP over the frame limit would make the peer take a sync with its state missing).
    #[tokio::test]
    async fn nothing_follows_a_message_dropped_for_its_size() {
        let limits = FrameLimits {
            max_bulk: 1024,
            max_message: 1024,
        };
        let (transport, mut rx) = with_a_connection_to_2(limits, 16).await;
        transport.send(2, &Message::NewLeader { epoch: 1 });
        transport.send(
            2,
            &Message::Snap {
                zxid: 7,
                state: Bytes::from(vec![0u8; 4096]),
            },
        );
        transport.send(2, &Message::NewLeader { epoch: 2 });
        assert!(rx.recv().await.is_some(), "queued before the drop");
        assert_eq!(next(&mut rx).await, None, "nothing after it");
        transport.shutdown();
    }

    /// The same when the peer's queue is full.
    #[tokio::test]
    async fn nothing_follows_a_message_dropped_on_a_full_queue() {
        let (transport, mut rx) = with_a_connection_to_2(FrameLimits::default(), 1).await;
        for epoch in 1..=3 {
            transport.send(2, &Message::NewLeader { epoch });
        }
        assert!(rx.recv().await.is_some());
        assert_eq!(next(&mut rx).await, None);
        transport.shutdown();
    }
}
