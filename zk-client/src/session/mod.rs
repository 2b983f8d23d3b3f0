//! The session layer: one ZooKeeper session over a sequence of TCP connections.
//!
//! A [`Session`] is a cheap `Clone` handle to a task that owns the connection (see `actor.rs`).
//! It speaks the raw operations, with no retries: a request made while disconnected, or whose
//! connection drops before the reply, fails with [`Error::ConnectionLoss`] (the framework
//! layer's calls instead wait, in order, for the next connection); after expiry every
//! request fails with [`Error::SessionExpired`]. The task reconnects by itself (to the next host,
//! with the same session id, password and last zxid), replays credentials and re-registers
//! every watch. The framework layer ([`Client`](crate::Client)) adds retries, namespaces and
//! Curator's connection states on top.

mod actor;
mod bodies;
pub(crate) mod ops;
mod rebalance;
mod rw_search;
pub(crate) mod watch;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot, watch as tokio_watch};
use zk_proto::frame::DEFAULT_MAX_FRAME_LEN;
use zk_proto::OpCode;

pub(crate) use actor::{Action, Command, Request};
pub use ops::{Op, OpResult, ReadOp, ReadResult};
pub use watch::{PersistentWatch, WatchFuture, WatchedEvent};

use crate::connect_string::{ConnectString, HostPort};
use crate::error::{Error, Result};

tokio::task_local! {
    /// Set by the framework layer around a call: requests submitted while it is set are kept
    /// by the session task while disconnected, until this instant, instead of failing at once.
    pub(crate) static QUEUE_UNTIL: tokio::time::Instant;
}

/// The smallest reply limit [`SessionConfig::max_reply_len`] takes: room for any handshake
/// or notification of a sane path.
const MIN_REPLY_LEN: usize = 1024;

/// The longest session timeout the handshake can carry: `i32::MAX` ms.
pub(crate) const MAX_SESSION_TIMEOUT: Duration = Duration::from_millis(i32::MAX as u64);

/// Settings of one session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub(crate) connect: ConnectString,
    pub(crate) session_timeout: Duration,
    pub(crate) connect_attempt_timeout: Option<Duration>,
    pub(crate) can_be_read_only: bool,
    pub(crate) auth: Vec<(String, Vec<u8>)>,
    pub(crate) renew_on_expiry: bool,
    pub(crate) attach: Option<(i64, Vec<u8>)>,
    pub(crate) max_reply_len: usize,
    pub(crate) max_request_len: usize,
    pub(crate) shuffle_hosts: bool,
}

impl SessionConfig {
    /// Settings for `connect_string` (`host:port[,host:port…][/chroot]`) with a 60 s requested
    /// session timeout.
    pub fn new(connect_string: &str) -> Result<SessionConfig> {
        Ok(SessionConfig {
            connect: connect_string.parse()?,
            session_timeout: Duration::from_secs(60),
            connect_attempt_timeout: None,
            can_be_read_only: false,
            auth: Vec::new(),
            renew_on_expiry: false,
            attach: None,
            max_reply_len: 4 * 1024 * 1024,
            max_request_len: DEFAULT_MAX_FRAME_LEN,
            shuffle_hosts: true,
        })
    }

    /// The session timeout to request (the server clamps it to [2, 20] × tickTime). More
    /// than the protocol can carry (`i32::MAX` ms, about 24.8 days) asks for that much.
    #[must_use]
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout.min(MAX_SESSION_TIMEOUT);
        self
    }

    /// How long one TCP connect + handshake may take (default: the session timeout divided by
    /// the number of hosts, as the Java client does).
    #[must_use]
    pub fn connect_attempt_timeout(mut self, timeout: Duration) -> Self {
        self.connect_attempt_timeout = Some(timeout);
        self
    }

    /// Whether read-only servers (partitioned from their quorum, in Apache's
    /// `readonlymode.enabled`) are acceptable. Connected to one, the session serves reads
    /// (writes fail with [`Error::NotReadOnly`]) and keeps asking the other hosts `isro`,
    /// from 100 ms apart up to a minute apart, and moves to the first that answers `rw`. A
    /// session created on a read-only server is local to it: until it has reached a
    /// read-write server, the client asks each server for a new session, and, as Apache's
    /// client does, carries its watches over to it (nothing else can belong to a read-only
    /// session). Apache's read-only members create sessions only with
    /// `localSessionsEnabled=true`.
    #[must_use]
    pub fn can_be_read_only(mut self, yes: bool) -> Self {
        self.can_be_read_only = yes;
        self
    }

    /// The largest reply frame to accept, in bytes (default 4 MiB, the Apache 3.5 client's
    /// `jute.maxbuffer`; at least 1 KiB). A larger reply — the children of a node with very
    /// many — fails its request alone with [`Error::ReplyTooLarge`]; the connection stays up.
    #[must_use]
    pub fn max_reply_len(mut self, bytes: usize) -> Self {
        self.max_reply_len = bytes.max(MIN_REPLY_LEN);
        self
    }

    /// The largest request the servers accept, in bytes: their `jute.maxbuffer` (default
    /// 0xfffff, 1 MiB − 1, Apache's default; at least 1 KiB). Node data and requests that
    /// would exceed it fail with [`Error::DataTooLarge`] or [`Error::RequestTooLarge`]
    /// before anything is sent (a server closes the connection on a request over its limit).
    /// Raise it only for servers started with a larger limit (Apache's
    /// `-Djute.maxbuffer=…`, zk-server's `jute.maxbuffer` in `zoo.cfg`). A raised limit
    /// also raises [`max_reply_len`](Self::max_reply_len) to at least this size plus 1 KiB,
    /// so that data written can be read back.
    #[must_use]
    pub fn max_request_len(mut self, bytes: usize) -> Self {
        self.max_request_len = bytes.max(MIN_REPLY_LEN);
        self
    }

    /// Credentials sent after every (re)connect, e.g. `("digest", b"user:password")`.
    #[must_use]
    pub fn auth(mut self, scheme: &str, auth: &[u8]) -> Self {
        self.auth.push((scheme.to_owned(), auth.to_vec()));
        self
    }

    /// Start a new session by itself after expiry instead of ending (what the framework layer
    /// does). Watches and pending requests still fail with the expiry.
    #[must_use]
    pub fn renew_on_expiry(mut self, yes: bool) -> Self {
        self.renew_on_expiry = yes;
        self
    }

    /// Attach to an existing session instead of creating one (e.g. to close another client's
    /// session in a test).
    #[must_use]
    pub fn attach(mut self, session_id: i64, password: &[u8]) -> Self {
        self.attach = Some((session_id, password.to_vec()));
        self
    }

    /// Whether to shuffle the hosts of the connect string (default true).
    #[must_use]
    pub fn shuffle_hosts(mut self, yes: bool) -> Self {
        self.shuffle_hosts = yes;
        self
    }
}

/// The session's connection state as the session layer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionState {
    /// Trying to (re)connect.
    Connecting,
    /// Connected; `read_only` when the server is a read-only server.
    Connected {
        /// Whether the server is read-only.
        read_only: bool,
    },
    /// The connection dropped; reconnecting.
    Disconnected,
    /// The session expired (a renewing session moves on to `Connecting`).
    Expired,
    /// The server rejected the credentials; the session is unusable.
    AuthFailed,
    /// The session was closed.
    Closed,
}

impl SessionState {
    /// Whether requests can be sent now.
    pub fn is_connected(self) -> bool {
        matches!(self, SessionState::Connected { .. })
    }

    /// Whether the session is finished for good.
    pub fn is_terminal(self) -> bool {
        matches!(self, SessionState::AuthFailed | SessionState::Closed)
    }
}

/// Transitions of the session, in order (consumed by the framework layer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SessionEvent {
    Connected {
        session_id: i64,
        read_only: bool,
        new_session: bool,
        negotiated_timeout: Duration,
    },
    Disconnected,
    Expired,
    AuthFailed,
    Closed,
}

/// State shared between the handles and the task.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) session_id: AtomicI64,
    pub(crate) passwd: Mutex<Vec<u8>>,
    pub(crate) negotiated_ms: AtomicU64,
    pub(crate) terminal: Mutex<Option<Error>>,
    /// Bumped every time a session expires (or is abandoned): a call that sees it change
    /// between its attempts waited across an expiry.
    pub(crate) generation: AtomicU64,
    /// Whether the task builds a new session after expiry.
    pub(crate) renews: bool,
    pub(crate) chroot: Option<String>,
    /// The server of the current connection, while connected.
    pub(crate) server: Mutex<Option<HostPort>>,
    /// When the last connection dropped (`None` before any did).
    pub(crate) disconnected_at: Mutex<Option<tokio::time::Instant>>,
    /// The servers the session connects to (the connect string's, until updated).
    pub(crate) hosts: Mutex<Vec<HostPort>>,
    /// Why the latest connection attempt failed ("host: reason"), for the error of a wait
    /// for a connection that never came.
    pub(crate) last_connect_failure: Mutex<Option<String>>,
    /// The servers' `jute.maxbuffer` ([`SessionConfig::max_request_len`]).
    pub(crate) max_request_len: usize,
}

impl Shared {
    /// The error of a wait for a connection that did not come within `timeout`: which
    /// servers were tried, and why the latest attempt failed.
    pub(crate) fn not_connected(&self, timeout: Duration) -> Error {
        let hosts = self
            .hosts
            .lock()
            .map(|h| {
                h.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let last = self
            .last_connect_failure
            .lock()
            .ok()
            .and_then(|f| f.clone())
            .map(|f| format!("; the latest attempt: {f}"))
            .unwrap_or_default();
        Error::Connect(format!(
            "no ZooKeeper server of {hosts} connected within {timeout:?}{last}"
        ))
    }
}

/// A handle to one ZooKeeper session (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct Session {
    tx: mpsc::UnboundedSender<Command>,
    state: tokio_watch::Receiver<SessionState>,
    shared: Arc<Shared>,
}

impl Session {
    /// Starts the session task and returns at once; the task connects in the background.
    /// Must be called inside a tokio runtime.
    pub fn start(config: SessionConfig) -> Session {
        Session::start_inner(config, None)
    }

    pub(crate) fn start_inner(
        mut config: SessionConfig,
        events: Option<mpsc::UnboundedSender<SessionEvent>>,
    ) -> Session {
        // With a raised request limit, data as large as the servers accept must come back in
        // a getData reply.
        if config.max_request_len > DEFAULT_MAX_FRAME_LEN {
            config.max_reply_len = config
                .max_reply_len
                .max(config.max_request_len.saturating_add(MIN_REPLY_LEN));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let (state_tx, state_rx) = tokio_watch::channel(SessionState::Connecting);
        let shared = Arc::new(Shared {
            session_id: AtomicI64::new(0),
            passwd: Mutex::new(vec![0; 16]),
            negotiated_ms: AtomicU64::new(
                u64::try_from(config.session_timeout.as_millis()).unwrap_or(u64::MAX),
            ),
            terminal: Mutex::new(None),
            generation: AtomicU64::new(0),
            renews: config.renew_on_expiry,
            chroot: config.connect.chroot().map(str::to_owned),
            server: Mutex::new(None),
            disconnected_at: Mutex::new(None),
            hosts: Mutex::new(config.connect.hosts().to_vec()),
            last_connect_failure: Mutex::new(None),
            max_request_len: config.max_request_len,
        });
        let actor = actor::Actor::new(config, shared.clone(), rx, state_tx, events);
        tokio::spawn(actor.run());
        Session {
            tx,
            state: state_rx,
            shared,
        }
    }

    /// Starts a session and waits until it is connected, for at most `timeout`.
    ///
    /// # Notable errors
    /// [`Error::Connect`] when no server answered in time; [`Error::SessionExpired`] when
    /// attaching to a session that is gone; [`Error::AuthFailed`].
    pub async fn connect(config: SessionConfig, timeout: Duration) -> Result<Session> {
        let session = Session::start(config);
        session.wait_connected(timeout).await?;
        Ok(session)
    }

    /// Waits until the session is connected, for at most `timeout`.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<()> {
        let mut rx = self.state.clone();
        let wait = async {
            // A renewing session passes through Expired on its way to a new session.
            let renews = self.shared.renews;
            rx.wait_for(|s| {
                s.is_connected() || s.is_terminal() || (!renews && *s == SessionState::Expired)
            })
            .await
            .map(|s| *s)
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(state)) => match state {
                SessionState::Connected { .. } => Ok(()),
                SessionState::Expired => Err(Error::SessionExpired),
                _ => Err(self.terminal_error()),
            },
            Ok(Err(_)) => Err(self.terminal_error()),
            Err(_) => Err(self.shared.not_connected(timeout)),
        }
    }

    /// The current state.
    pub fn state(&self) -> SessionState {
        *self.state.borrow()
    }

    /// A receiver of the state, to wait for changes.
    pub fn state_receiver(&self) -> tokio_watch::Receiver<SessionState> {
        self.state.clone()
    }

    /// The session id (0 until the first connection).
    pub fn session_id(&self) -> i64 {
        self.shared.session_id.load(Ordering::SeqCst)
    }

    /// The session password (16 zero bytes until the first connection).
    pub fn session_password(&self) -> Vec<u8> {
        self.shared
            .passwd
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default()
    }

    /// The servers this session connects to (the connect string's, unless updated).
    pub fn servers(&self) -> Vec<HostPort> {
        self.shared
            .hosts
            .lock()
            .map(|h| h.clone())
            .unwrap_or_default()
    }

    /// Connects to these servers (`host:port,host:port…`; a chroot, if given, must be the
    /// session's, as Curator's EnsembleTracker passes it) from the next connection attempt on, balancing the load as Apache's
    /// `updateServerList`: a connection to a server that is no longer listed ends (the session
    /// moves to a listed one, a new one if the list grew); when the list grew from `n` to `m`
    /// servers, a connection to a listed one ends with probability `1 - n/m` and the session
    /// moves to a new server; otherwise it stays, and its server is tried last.
    ///
    /// # Errors
    /// [`Error::InvalidConnectString`] for a bad list or one with another chroot;
    /// [`Error::Closed`].
    pub fn update_servers(&self, servers: &str) -> Result<()> {
        let parsed: ConnectString = servers.parse()?;
        if parsed.chroot().is_some() && parsed.chroot() != self.chroot() {
            return Err(Error::InvalidConnectString(format!(
                "{servers:?}: a server list cannot change the chroot ({:?})",
                self.chroot().unwrap_or("/")
            )));
        }
        self.set_servers(parsed.hosts().to_vec())
    }

    /// [`update_servers`](Self::update_servers) with the list parsed.
    pub(crate) fn set_servers(&self, servers: Vec<HostPort>) -> Result<()> {
        if servers.is_empty() {
            return Err(Error::InvalidConnectString("no server given".to_owned()));
        }
        // Sent and recorded under one lock: concurrent updates are applied by the session
        // task in the order they are recorded, so `servers()` shows the list in use.
        let mut hosts = self.shared.hosts.lock().map_err(|_| Error::Closed)?;
        self.send_command(Command::UpdateHosts(servers.clone()))?;
        *hosts = servers;
        Ok(())
    }

    /// The server of the current connection (as the connect string names it), `None` while
    /// disconnected.
    pub fn connected_server(&self) -> Option<HostPort> {
        self.shared.server.lock().ok().and_then(|s| s.clone())
    }

    /// The negotiated session timeout (the requested one until the first connection).
    pub fn negotiated_timeout(&self) -> Duration {
        Duration::from_millis(self.shared.negotiated_ms.load(Ordering::SeqCst))
    }

    /// The chroot of the connect string.
    pub fn chroot(&self) -> Option<&str> {
        self.shared.chroot.as_deref()
    }

    pub(crate) fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    fn terminal_error(&self) -> Error {
        self.shared
            .terminal
            .lock()
            .ok()
            .and_then(|t| t.clone())
            .unwrap_or(Error::Closed)
    }

    /// The largest node data a request may carry: the servers' `jute.maxbuffer`
    /// ([`SessionConfig::max_request_len`]).
    pub(crate) fn max_data_len(&self) -> usize {
        self.shared.max_request_len
    }

    /// Queues a request now (refused at once if longer than the servers accept); the
    /// returned future waits for the reply body.
    pub(crate) fn submit(&self, op: OpCode, body: BytesMut, action: Action) -> ReplyFuture {
        let body = match bodies::checked(body, self.shared.max_request_len) {
            Ok(body) => body,
            Err(e) => return ReplyFuture::Failed(Some(e)),
        };
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Request(Request {
            op,
            body,
            reply,
            action,
            deadline: QUEUE_UNTIL.try_with(|d| *d).ok(),
        });
        match self.tx.send(cmd) {
            Ok(()) => ReplyFuture::Waiting(rx, self.shared.clone()),
            Err(_) => ReplyFuture::Failed(Some(self.terminal_error())),
        }
    }

    pub(crate) fn weak_commands(&self) -> mpsc::WeakUnboundedSender<Command> {
        self.tx.downgrade()
    }

    pub(crate) fn send_command(&self, cmd: Command) -> Result<()> {
        self.tx.send(cmd).map_err(|_| self.terminal_error())
    }

    /// Adds credentials to the session (sent now and after every reconnect) and waits for the
    /// server to check them.
    ///
    /// # Notable errors
    /// [`Error::AuthFailed`]: the server rejected them and closed the session.
    /// [`Error::ConnectionLoss`]: there is no connection (or it dropped before the check);
    /// the credentials are kept all the same and sent on the next connection.
    pub async fn add_auth(&self, scheme: &str, auth: &[u8]) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.send_command(Command::AddAuth {
            scheme: scheme.to_owned(),
            auth: auth.to_vec(),
            reply,
            deadline: QUEUE_UNTIL.try_with(|d| *d).ok(),
        })?;
        rx.await.map_err(|_| self.terminal_error())?
    }

    /// Closes the session: sends closeSession and waits for the server's reply (the server
    /// then deletes the session's ephemeral nodes). Pending requests fail with
    /// [`Error::Closed`]; watches end with a `Closed` event.
    pub async fn close(&self) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::Close { reply }).is_err() {
            return Ok(());
        }
        rx.await.unwrap_or(Ok(()))
    }
}

/// A request's reply, as raw bytes after the reply header.
#[derive(Debug)]
pub(crate) enum ReplyFuture {
    Waiting(oneshot::Receiver<Result<Bytes>>, Arc<Shared>),
    Failed(Option<Error>),
}

impl std::future::Future for ReplyFuture {
    type Output = Result<Bytes>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<Bytes>> {
        use std::task::Poll;
        match &mut *self {
            ReplyFuture::Waiting(rx, shared) => match std::pin::Pin::new(rx).poll(cx) {
                Poll::Ready(Ok(r)) => Poll::Ready(r),
                Poll::Ready(Err(_)) => Poll::Ready(Err(shared
                    .terminal
                    .lock()
                    .ok()
                    .and_then(|t| t.clone())
                    .unwrap_or(Error::Closed))),
                Poll::Pending => Poll::Pending,
            },
            ReplyFuture::Failed(e) => Poll::Ready(Err(e.take().unwrap_or(Error::Closed))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Duration::MAX` as "never expire" asks for the longest timeout the protocol carries;
    /// the read timeout derived from it overflowed and panicked.
    #[tokio::test]
    async fn an_endless_session_timeout_asks_for_the_longest_one() {
        let config = SessionConfig::new("127.0.0.1:1")
            .expect("config")
            .session_timeout(Duration::MAX);
        assert_eq!(config.session_timeout, MAX_SESSION_TIMEOUT);
        let session = Session::start(config);
        assert_eq!(session.negotiated_timeout(), MAX_SESSION_TIMEOUT);
        let client = crate::Client::builder()
            .connect_string("127.0.0.1:1")
            .session_timeout(Duration::MAX)
            .build();
        assert!(client.is_ok());
    }

    /// A server list may repeat the session's chroot (Curator's EnsembleTracker passes it),
    /// but not name another.
    #[tokio::test]
    async fn a_server_list_may_repeat_the_chroot_but_not_change_it() {
        let session = Session::start(SessionConfig::new("127.0.0.1:1/app").expect("config"));
        assert_eq!(session.update_servers("127.0.0.1:2/app"), Ok(()));
        assert_eq!(session.update_servers("127.0.0.1:3"), Ok(()));
        assert!(matches!(
            session.update_servers("127.0.0.1:4/other"),
            Err(Error::InvalidConnectString(_))
        ));
        assert_eq!(session.servers().len(), 1);
        assert_eq!(session.servers()[0].port, 3);
    }
}
