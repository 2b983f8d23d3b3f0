//! The session task: the one owner of the TCP connection, the pending-request FIFO, the watch
//! registry and the ping timer. Handles talk to it over an unbounded channel.
//!
//! Ordering rules:
//! * requests are written in the order their commands arrive, with increasing xids;
//! * a request that arrives while there is no connection and carries a deadline (the
//!   framework layer's calls do) is kept, in arrival order, until the next connection, where
//!   it is written before anything that arrived later; it fails with CONNECTIONLOSS when its
//!   deadline passes first, with SESSIONEXPIRED when the session expires first;
//! * replies are matched against the FIFO head (a mismatch closes the connection);
//! * notifications are dispatched as they are read, so a watch fires before the reply to the
//!   write that triggered it, and before any later reply;
//! * auth replies (xid -4) are matched against their own FIFO, since the server answers them
//!   as soon as it reads them.
//!
//! Every await point of the task (connecting, pausing between attempts, serving a connection)
//! also serves commands, so a close, an abandon or a request is never stuck behind a connect.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{timeout, Instant};
use zk_proto::{
    frame, AddWatchMode, AuthPacket, ConnectRequest, ConnectResponse, Decode, Encode, EventType,
    FrameError, KeeperState, OpCode, ReplyHeader, RequestHeader, WatcherEvent, WatcherType,
};

use super::watch::{OneShotKind, Registry, SetWatchesBatch, WatchedEvent, SET_WATCHES_BATCH_BYTES};
use super::{rebalance, rw_search, SessionConfig, SessionEvent, SessionState, Shared};
use crate::connect_string::HostPort;
use crate::error::{Error, Result};

/// Replies to requests.
pub(crate) type ReplyTx = oneshot::Sender<Result<Bytes>>;

/// What a handle asks of the session task.
#[derive(Debug)]
pub(crate) enum Command {
    /// A request; its body is already encoded.
    Request(Request),
    /// Add credentials (replayed on every reconnect).
    AddAuth {
        scheme: String,
        auth: Vec<u8>,
        reply: oneshot::Sender<Result<()>>,
        /// Until when a caller made while disconnected waits for the next connection's check
        /// (as a request's deadline); without one it gets CONNECTIONLOSS at once.
        deadline: Option<Instant>,
    },
    /// A persistent watch stream was dropped.
    DropPersistent {
        path: String,
        id: u64,
        recursive: bool,
    },
    /// Remove watches locally only (no server call); the reply: whether there were any, and
    /// whether a persistent watch remains on the path.
    RemoveLocal {
        path: String,
        watcher_type: WatcherType,
        reply: oneshot::Sender<(bool, bool)>,
    },
    /// Close the session (closeSession, then wait for its reply).
    Close { reply: oneshot::Sender<Result<()>> },
    /// The framework layer gave up on the session (its timeout elapsed while suspended):
    /// expire it locally unless it is no longer the session (or the connection epoch) meant.
    Abandon { session_id: i64, epoch: u64 },
    /// Connect to these servers from the next connection attempt on.
    UpdateHosts(Vec<HostPort>),
}

/// One request.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) op: OpCode,
    pub(crate) body: BytesMut,
    pub(crate) reply: ReplyTx,
    pub(crate) action: Action,
    /// Keep the request while disconnected until this instant (None: fail it at once).
    pub(crate) deadline: Option<Instant>,
}

/// What the session task does with the watch registry when the reply arrives.
#[derive(Debug)]
pub(crate) enum Action {
    None,
    /// exists: data watch if the node exists, exist watch on NONODE.
    Exists {
        path: String,
        tx: oneshot::Sender<WatchedEvent>,
    },
    /// getData / getChildren: a data or child watch, only on success.
    OneShot {
        kind: OneShotKind,
        path: String,
        tx: oneshot::Sender<WatchedEvent>,
    },
    /// addWatch: register the stream on success.
    Persistent {
        path: String,
        mode: AddWatchMode,
        id: u64,
        tx: mpsc::UnboundedSender<WatchedEvent>,
    },
    /// removeWatches: remove the local watchers on success (or NOWATCHER).
    RemoveWatches {
        path: String,
        watcher_type: WatcherType,
    },
}

impl Action {
    /// Whether the reply will register a watch on `path` (server path).
    fn registers_on(&self, path: &str) -> bool {
        match self {
            Action::Exists { path: p, .. }
            | Action::OneShot { path: p, .. }
            | Action::Persistent { path: p, .. } => p == path,
            Action::None | Action::RemoveWatches { .. } => false,
        }
    }
}

struct Pending {
    xid: i32,
    op: OpCode,
    reply: Option<ReplyTx>,
    action: Action,
}

/// Why a connection ended.
enum ConnEnd {
    /// Lost: reconnect.
    Lost(String),
    /// The session is finished (closed, auth failed, all handles gone).
    Finished,
}

type AuthReply = oneshot::Sender<Result<()>>;

/// A connection that ends sooner than this after its handshake counts as short-lived: the
/// next attempt backs off (a server that accepts and then drops us is not hammered).
const SHORT_LIVED: Duration = Duration::from_secs(1);

/// The server's code for an operation it does not know.
const UNIMPLEMENTED: i32 = -6;

/// Everything one connect attempt needs (owned, so the task can serve commands meanwhile).
struct Hello {
    host: HostPort,
    budget: Duration,
    request: ConnectRequest,
    max_reply_len: usize,
}

pub(crate) struct Actor {
    config: SessionConfig,
    shared: Arc<Shared>,
    rx: mpsc::UnboundedReceiver<Command>,
    rx_done: bool,
    state: watch::Sender<SessionState>,
    events: Option<mpsc::UnboundedSender<SessionEvent>>,
    registry: Registry,
    hosts: Vec<HostPort>,
    next_host: usize,
    session_id: i64,
    passwd: Vec<u8>,
    negotiated: Duration,
    last_zxid: i64,
    next_xid: i32,
    auths: Vec<(String, Vec<u8>)>,
    /// Callers of add_auth made while disconnected, by index into `auths`, with their
    /// deadline: answered once the server has checked the credentials, with CONNECTIONLOSS
    /// when the deadline passes first, with SESSIONEXPIRED when the session expires first.
    auth_waiters: Vec<(usize, AuthReply, Instant)>,
    seen_rw_server: bool,
    closing: Option<oneshot::Sender<Result<()>>>,
    /// Later close calls made while closing: answered with the first.
    close_waiters: Vec<oneshot::Sender<Result<()>>>,
    /// Whether the one connect attempt allowed after a close while disconnected was made.
    close_attempted: bool,
    close_deadline: Option<Instant>,
    ever_connected: bool,
    /// Requests kept while disconnected, in arrival order.
    queue: VecDeque<Request>,
    /// Server-side persistent watches to remove once no pending reply may register a watch on
    /// the same path: (server path, recursive).
    deferred_removals: Vec<(String, bool)>,
    /// Set by a matching `Abandon`; acted upon by the connect loop.
    abandon_now: bool,
    /// Set when a new server list moves the session off its server (no longer listed, or
    /// the load is rebalanced): the connection ends and the next one uses the new list —
    /// unless the session is closing, which stays until its closeSession is answered.
    leave_server: bool,
    /// Set when the server list changes: a search for a read-write server starts over.
    hosts_updated: bool,
    /// Connected events emitted so far.
    epoch: u64,
    /// The server does not know SetWatches2: re-register with SetWatches, end persistent
    /// watches. Cleared when a server accepts an addWatch.
    no_set_watches2: bool,
    short_lived: u32,
    read_timeout: Duration,
}

/// The servers in the order they are tried: shuffled (spreading clients over the ensemble)
/// unless the session was configured not to.
fn ordered(mut hosts: Vec<HostPort>, shuffle: bool) -> Vec<HostPort> {
    if shuffle {
        use rand::seq::SliceRandom;
        hosts.shuffle(&mut rand::rng());
    }
    hosts
}

impl Actor {
    pub(crate) fn new(
        config: SessionConfig,
        shared: Arc<Shared>,
        rx: mpsc::UnboundedReceiver<Command>,
        state: watch::Sender<SessionState>,
        events: Option<mpsc::UnboundedSender<SessionEvent>>,
    ) -> Actor {
        let hosts = ordered(config.connect.hosts().to_vec(), config.shuffle_hosts);
        let (session_id, passwd) = match &config.attach {
            Some((id, pw)) => (*id, pw.clone()),
            None => (0, vec![0; 16]),
        };
        let auths = config.auth.clone();
        Actor {
            negotiated: config.session_timeout,
            read_timeout: config.session_timeout * 2 / 3,
            config,
            shared,
            rx,
            rx_done: false,
            state,
            events,
            registry: Registry::default(),
            hosts,
            next_host: 0,
            seen_rw_server: session_id != 0,
            session_id,
            passwd,
            last_zxid: 0,
            next_xid: 1,
            auths,
            auth_waiters: Vec::new(),
            closing: None,
            close_waiters: Vec::new(),
            close_attempted: false,
            close_deadline: None,
            ever_connected: false,
            queue: VecDeque::new(),
            deferred_removals: Vec::new(),
            abandon_now: false,
            leave_server: false,
            hosts_updated: false,
            epoch: 0,
            no_set_watches2: false,
            short_lived: 0,
        }
    }

    fn emit(&self, event: SessionEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(event);
        }
    }

    fn set_state(&self, state: SessionState) {
        if !state.is_connected() {
            if let Ok(mut server) = self.shared.server.lock() {
                *server = None;
            }
            if self.state.borrow().is_connected() {
                if let Ok(mut at) = self.shared.disconnected_at.lock() {
                    *at = Some(Instant::now());
                }
            }
        }
        self.state.send_replace(state);
    }

    fn next_xid(&mut self) -> i32 {
        let xid = self.next_xid;
        self.next_xid = if xid == i32::MAX { 1 } else { xid + 1 };
        xid
    }

    fn strip(&self, server_path: &str) -> String {
        client_path(self.config.connect.chroot(), server_path)
    }

    fn stripper(&self) -> impl Fn(&str) -> String {
        let chroot = self.config.connect.chroot().map(str::to_owned);
        move |p: &str| client_path(chroot.as_deref(), p)
    }

    /// Runs the session until it is closed, expires (without renewal) or fails authentication.
    pub(crate) async fn run(mut self) {
        let end = self.run_inner().await;
        let state = match &end {
            Error::SessionExpired => KeeperState::Expired,
            Error::AuthFailed => KeeperState::AuthFailed,
            _ => KeeperState::Closed,
        };
        let strip = self.stripper();
        self.registry.fail_all(state, &strip);
        if let Ok(mut t) = self.shared.terminal.lock() {
            *t = Some(end.clone());
        }
        self.set_state(match end {
            Error::SessionExpired => SessionState::Expired,
            Error::AuthFailed => SessionState::AuthFailed,
            _ => SessionState::Closed,
        });
        self.emit(match end {
            Error::SessionExpired => SessionEvent::Expired,
            Error::AuthFailed => SessionEvent::AuthFailed,
            _ => SessionEvent::Closed,
        });
        for reply in self
            .closing
            .take()
            .into_iter()
            .chain(self.close_waiters.drain(..))
        {
            let _ = reply.send(Ok(()));
        }
        // Fail whatever is still queued.
        for r in self.queue.drain(..) {
            let _ = r.reply.send(Err(end.clone()));
        }
        for (_, reply, _) in self.auth_waiters.drain(..) {
            let _ = reply.send(Err(end.clone()));
        }
        self.rx.close();
        while let Ok(cmd) = self.rx.try_recv() {
            self.reject(cmd, &end);
        }
        tracing::debug!(session_id = format_args!("{:#x}", self.session_id), reason = %end, "session task ended");
    }

    /// Answers a command once the session is over.
    fn reject(&mut self, cmd: Command, err: &Error) {
        match cmd {
            Command::Request(r) => {
                let _ = r.reply.send(Err(err.clone()));
            }
            Command::AddAuth { reply, .. } => {
                let _ = reply.send(Err(err.clone()));
            }
            Command::Close { reply } => {
                let _ = reply.send(Ok(()));
            }
            cmd @ (Command::DropPersistent { .. }
            | Command::RemoveLocal { .. }
            | Command::Abandon { .. }
            | Command::UpdateHosts(_)) => self.on_command_offline(Some(cmd)),
        }
    }

    /// Serves a command while there is no connection.
    fn on_command_offline(&mut self, cmd: Option<Command>) {
        let Some(cmd) = cmd else {
            // Every handle is gone: close the session (politely, if a connection comes).
            self.rx_done = true;
            if self.closing.is_none() {
                self.closing = Some(oneshot::channel().0);
                self.fail_queue(&Error::Closed);
            }
            return;
        };
        match cmd {
            Command::Request(r) => {
                if self.closing.is_some() {
                    let _ = r.reply.send(Err(Error::Closed));
                } else if r.deadline.is_some_and(|d| d > Instant::now()) {
                    self.queue.push_back(r);
                } else {
                    let _ = r.reply.send(Err(Error::ConnectionLoss));
                }
            }
            Command::AddAuth {
                scheme,
                auth,
                reply,
                deadline,
            } => {
                // Kept either way: sent once a connection is up. The caller waits for the
                // server's check until its deadline, as a request would.
                let index = self.remember_auth(scheme, auth);
                match deadline {
                    _ if self.closing.is_some() => {
                        let _ = reply.send(Err(Error::Closed));
                    }
                    Some(d) if d > Instant::now() => self.auth_waiters.push((index, reply, d)),
                    _ => {
                        let _ = reply.send(Err(Error::ConnectionLoss));
                    }
                }
            }
            Command::DropPersistent {
                path,
                id,
                recursive,
            } => {
                // Without a connection the server holds no watch for us; the next connection
                // re-registers only what is left.
                self.registry.remove_persistent(&path, recursive, id);
            }
            Command::RemoveLocal {
                path,
                watcher_type,
                reply,
            } => {
                let client_path = self.strip(&path);
                let removed = self
                    .registry
                    .remove_local(&path, watcher_type, &client_path);
                let _ = reply.send((removed, self.registry.has_persistent(&path)));
            }
            Command::Close { reply } => {
                if self.closing.is_none() {
                    self.closing = Some(reply);
                    self.fail_queue(&Error::Closed);
                } else {
                    self.close_waiters.push(reply);
                }
            }
            Command::Abandon { session_id, epoch } => {
                if session_id != 0 && session_id == self.session_id && epoch == self.epoch {
                    self.abandon_now = true;
                }
            }
            Command::UpdateHosts(hosts) => self.set_hosts(hosts),
        }
    }

    /// Replaces the server list (shuffled as the connect string's), and ends the current
    /// connection when the session should move to balance the load ([`rebalance`]).
    ///
    /// Never empty: [`Session::set_servers`](super::Session::set_servers) refuses that.
    fn set_hosts(&mut self, hosts: Vec<HostPort>) {
        let hosts = ordered(hosts, self.config.shuffle_hosts);
        let current = self.shared.server.lock().ok().and_then(|s| s.clone());
        let plan = rebalance::plan(&self.hosts, hosts, current.as_ref(), rand::random());
        tracing::info!(servers = ?plan.hosts, moves = plan.leave, "server list updated");
        self.leave_server = plan.leave;
        self.hosts_updated = true;
        self.next_host = plan.next;
        self.hosts = plan.hosts;
    }

    fn fail_queue(&mut self, err: &Error) {
        for r in self.queue.drain(..) {
            let _ = r.reply.send(Err(err.clone()));
        }
    }

    /// Fails queued requests and add_auth callers whose deadline passed; forgets cancelled
    /// ones.
    fn expire_queue(&mut self) {
        let now = Instant::now();
        for (index, reply, deadline) in std::mem::take(&mut self.auth_waiters) {
            if reply.is_closed() {
                continue;
            }
            if deadline <= now {
                let _ = reply.send(Err(Error::ConnectionLoss));
            } else {
                self.auth_waiters.push((index, reply, deadline));
            }
        }
        let queue = std::mem::take(&mut self.queue);
        for r in queue {
            if r.reply.is_closed() {
                continue;
            }
            if r.deadline.is_none_or(|d| d <= now) {
                let _ = r.reply.send(Err(Error::ConnectionLoss));
            } else {
                self.queue.push_back(r);
            }
        }
    }

    fn queue_wake(&self) -> Option<Instant> {
        let requests = self.queue.iter().filter_map(|r| r.deadline);
        requests.chain(self.auth_waiters.iter().map(|w| w.2)).min()
    }

    /// Waits for `fut` while serving commands and queue deadlines; `None` if the session was
    /// abandoned meanwhile, or closed and `stop_on_close` (`fut` is dropped, closing any
    /// socket it holds).
    async fn offline<F: std::future::Future>(
        &mut self,
        fut: F,
        stop_on_close: bool,
    ) -> Option<F::Output> {
        tokio::pin!(fut);
        loop {
            if self.abandon_now || (stop_on_close && self.closing.is_some()) {
                return None;
            }
            let wake = self.queue_wake();
            tokio::select! {
                r = &mut fut => return Some(r),
                cmd = self.rx.recv(), if !self.rx_done => self.on_command_offline(cmd),
                _ = sleep_until_opt(wake), if wake.is_some() => self.expire_queue(),
            }
        }
    }

    /// Sleeps for `pause` while serving commands; returns early on a close or an abandon.
    async fn pause(&mut self, pause: Duration) {
        let deadline = Instant::now() + pause;
        let _ = self.offline(tokio::time::sleep_until(deadline), true).await;
    }

    async fn run_inner(&mut self) -> Error {
        let mut attempts_without_success = 0usize;
        // Servers that closed a new session's handshake unanswered in the current round of
        // failed attempts (one per host): see below.
        let mut new_session_refusals = 0usize;
        loop {
            if self.abandon_now {
                self.abandon_now = false;
                if self.session_id != 0 {
                    tracing::info!(
                        session_id = format_args!("{:#x}", self.session_id),
                        "session abandoned after its timeout elapsed while disconnected"
                    );
                    self.expire_locally();
                    if !self.config.renew_on_expiry {
                        return Error::SessionExpired;
                    }
                }
            }
            if self.closing.is_some() {
                // One bounded connect to send closeSession, if there is a session to close.
                if !self.can_reattach() || self.close_attempted {
                    return Error::Closed;
                }
                self.close_attempted = true;
            }
            self.set_state(SessionState::Connecting);
            let host_index = self.next_host % self.hosts.len().max(1);
            let host = self.hosts.get(host_index).cloned();
            self.next_host = self.next_host.wrapping_add(1);
            let Some(host) = host else {
                return Error::InvalidConnectString("no host".to_owned());
            };
            let hello = self.hello(&host);
            // Without a session to re-attach there is nothing to close: a close ends the
            // attempt at once.
            let stop_on_close = !self.can_reattach();
            let outcome = self.offline(connect(hello), stop_on_close).await;
            if self.closing.is_some() {
                self.close_attempted = true;
            }
            let Some(outcome) = outcome else {
                continue;
            };
            match outcome {
                Ok((stream, response)) => {
                    attempts_without_success = 0;
                    new_session_refusals = 0;
                    if let Ok(mut last) = self.shared.last_connect_failure.lock() {
                        *last = None;
                    }
                    if response.timeout <= 0 {
                        tracing::info!(
                            session_id = format_args!("{:#x}", self.session_id),
                            "session expired"
                        );
                        if self.closing.is_some() {
                            return Error::Closed;
                        }
                        self.expire_locally();
                        if !self.config.renew_on_expiry {
                            return Error::SessionExpired;
                        }
                        continue;
                    }
                    if !self.hosts.contains(&host)
                        && self.closing.is_none()
                        && self.can_reattach()
                        && response.session_id == self.session_id
                    {
                        // The server list changed during the attempt and no longer names this
                        // server: move on with the session, as Java's updateServerList closes
                        // such a socket. (A session this handshake just made is taken on
                        // first, by staying: leaving would abandon it on the server.)
                        tracing::info!(%host, "connected to a server no longer listed: moving on");
                        continue;
                    }
                    let started = Instant::now();
                    match self.run_connection(stream, response, &host).await {
                        ConnEnd::Finished => {
                            return self
                                .shared
                                .terminal
                                .lock()
                                .ok()
                                .and_then(|t| t.clone())
                                .unwrap_or(Error::Closed)
                        }
                        ConnEnd::Lost(why) => {
                            tracing::info!(%host, %why, "connection lost");
                            self.set_state(SessionState::Disconnected);
                            self.emit(SessionEvent::Disconnected);
                            if self.closing.is_some() {
                                return Error::Closed;
                            }
                            if started.elapsed() < SHORT_LIVED {
                                // Back off, growing while connections keep dying young.
                                self.short_lived = self.short_lived.saturating_add(1);
                                let exp = self.short_lived.min(5);
                                let cap = Duration::from_millis(50u64 << exp)
                                    .min(self.negotiated / 4)
                                    .max(Duration::from_millis(20));
                                let ms = u64::try_from(cap.as_millis()).unwrap_or(1000).max(2);
                                let pause = Duration::from_millis(rand::random_range(ms / 2..=ms));
                                tracing::debug!(?pause, "short-lived connection: backing off");
                                self.pause(pause).await;
                            } else {
                                self.short_lived = 0;
                            }
                        }
                    }
                }
                Err(why) => {
                    tracing::debug!(%host, %why, "connect attempt failed");
                    if let Ok(mut last) = self.shared.last_connect_failure.lock() {
                        *last = Some(format!("{host}: {why}"));
                    }
                    attempts_without_success += 1;
                    if !self.can_reattach() && why.ends_with(HANDSHAKE_CLOSED) {
                        new_session_refusals += 1;
                    }
                    let hosts = self.hosts.len().max(1);
                    if attempts_without_success % hosts == 0 {
                        // A read-only server cut off from a quorum that is behind this client
                        // refuses it too: a client that may use one forgets only when every
                        // host refused, never to read the past from such a server.
                        let needed = if self.config.can_be_read_only {
                            hosts
                        } else {
                            1
                        };
                        let refused = std::mem::take(&mut new_session_refusals) >= needed;
                        if refused && self.last_zxid > 0 {
                            // A server closes the handshake of a client that has seen a
                            // newer zxid than it has. A new session refused so, with no
                            // server taking it (the others down or unreachable), means the
                            // ensemble went back (restored data, a test server restarted
                            // without its data): start over as a new client does (Curator
                            // builds a new handle), rather than never connect.
                            tracing::warn!(
                                last_zxid = format_args!("{:#x}", self.last_zxid),
                                "no server takes a new session: forgetting the last zxid seen"
                            );
                            self.last_zxid = 0;
                        }
                        // Every host failed: pause a little (still answering commands).
                        let pause = Duration::from_millis(rand::random_range(50..250));
                        self.pause(pause).await;
                    }
                }
            }
            if self.rx_done && self.closing.is_none() {
                return Error::Closed;
            }
        }
    }

    /// The session is gone (server said so, or the framework gave up on it). Requests kept or
    /// queued for it fail with SESSIONEXPIRED; they never reach a new session.
    fn expire_locally(&mut self) {
        let strip = self.stripper();
        self.registry.fail_all(KeeperState::Expired, &strip);
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
        self.session_id = 0;
        self.passwd = vec![0; 16];
        // last_zxid is kept: a new session must not go to a server that is behind what this
        // client has already seen (unless every server is: see `run_inner`).
        self.seen_rw_server = false;
        self.abandon_now = false;
        self.deferred_removals.clear();
        self.shared.session_id.store(0, Ordering::SeqCst);
        self.fail_queue(&Error::SessionExpired);
        for (_, reply, _) in self.auth_waiters.drain(..) {
            let _ = reply.send(Err(Error::SessionExpired));
        }
        while let Ok(cmd) = self.rx.try_recv() {
            match cmd {
                Command::Request(r) => {
                    let _ = r.reply.send(Err(Error::SessionExpired));
                }
                other => self.on_command_offline(Some(other)),
            }
        }
        self.set_state(SessionState::Expired);
        self.emit(SessionEvent::Expired);
    }

    /// The index of these credentials in the list replayed on every connection, added if new.
    /// Kept once, as Apache's client keeps a set: a caller that adds the same credentials on
    /// every reconnect must not grow the replay.
    fn remember_auth(&mut self, scheme: String, auth: Vec<u8>) -> usize {
        if let Some(i) = self.auths.iter().position(|a| a.0 == scheme && a.1 == auth) {
            return i;
        }
        self.auths.push((scheme, auth));
        self.auths.len() - 1
    }

    fn connect_timeout(&self) -> Duration {
        let per_host = self.negotiated / u32::try_from(self.hosts.len().max(1)).unwrap_or(1);
        self.config
            .connect_attempt_timeout
            .unwrap_or(per_host)
            .max(Duration::from_millis(100))
    }

    /// Whether a connection can carry on the current session. A read-only server's session is
    /// local to it: until a client has seen a read-write server, it asks each server for a new
    /// session (as Apache's client does), and has none to close from elsewhere.
    fn can_reattach(&self) -> bool {
        self.session_id != 0 && self.seen_rw_server
    }

    fn hello(&self, host: &HostPort) -> Hello {
        let session_id = if self.can_reattach() {
            self.session_id
        } else {
            0
        };
        let passwd = if session_id == 0 {
            vec![0; 16]
        } else {
            self.passwd.clone()
        };
        Hello {
            host: host.clone(),
            budget: self.connect_timeout(),
            request: ConnectRequest {
                protocol_version: 0,
                last_zxid_seen: self.last_zxid,
                timeout: i32::try_from(self.config.session_timeout.as_millis()).unwrap_or(i32::MAX),
                session_id,
                passwd,
                read_only: Some(self.config.can_be_read_only),
            },
            max_reply_len: self.config.max_reply_len,
        }
    }

    fn write_request(&mut self, out: &mut BytesMut, xid: i32, op: OpCode, body: &[u8]) {
        frame::write_frame(out, |b| {
            RequestHeader::new(xid, op).encode(b);
            b.extend_from_slice(body);
        });
    }

    async fn run_connection(
        &mut self,
        stream: TcpStream,
        response: ConnectResponse,
        host: &HostPort,
    ) -> ConnEnd {
        let new_session = response.session_id != self.session_id;
        // Until it has seen a read-write server, a client asks every server for a new session
        // (a read-only server's session is local to it). As in Apache's client, the change
        // of session is not an expiry: nothing but watches can belong to a read-only session,
        // and they carry over, re-registered below like a reconnect's.
        let carries_over = self.session_id != 0 && !self.can_reattach();
        if new_session && self.can_reattach() {
            // We asked to re-attach but got another session: the old one is gone.
            self.expire_locally();
        }
        let resumes = !new_session || carries_over;
        self.session_id = response.session_id;
        self.passwd = response.passwd.clone();
        let negotiated_ms = u64::try_from(response.timeout).unwrap_or(1).max(1);
        self.negotiated = Duration::from_millis(negotiated_ms);
        let read_only = response.read_only == Some(true);
        if !read_only {
            self.seen_rw_server = true;
        }
        self.shared
            .session_id
            .store(self.session_id, Ordering::SeqCst);
        if let Ok(mut pw) = self.shared.passwd.lock() {
            pw.clone_from(&self.passwd);
        }
        self.shared
            .negotiated_ms
            .store(negotiated_ms, Ordering::SeqCst);

        let (mut rd, mut wr) = stream.into_split();
        let mut out = BytesMut::with_capacity(64 * 1024);
        let mut inbuf = BytesMut::with_capacity(64 * 1024);
        let mut skip = 0usize;
        let mut pending: VecDeque<Pending> = VecDeque::new();
        let mut auth_pending: VecDeque<Vec<AuthReply>> = VecDeque::new();

        // Auth replay, then watch re-registration, then kept requests, then new ones.
        let mut waiters = std::mem::take(&mut self.auth_waiters);
        for (i, (scheme, auth)) in self.auths.clone().into_iter().enumerate() {
            let packet = AuthPacket {
                auth_type: 0,
                scheme,
                auth,
            };
            frame::write_frame(&mut out, |b| {
                RequestHeader::new(RequestHeader::AUTH_XID, OpCode::Auth).encode(b);
                packet.encode(b);
            });
            let (answered, others) = waiters.into_iter().partition(|w| w.0 == i);
            waiters = others;
            auth_pending.push_back(answered.into_iter().map(|w| w.1).collect());
        }
        if resumes {
            if self.no_set_watches2 {
                let strip = self.stripper();
                self.registry.end_persistent(&strip);
            }
            for batch in self
                .registry
                .set_watches_batches(self.last_zxid, SET_WATCHES_BATCH_BYTES)
            {
                let xid = self.next_xid();
                let (op, body) = match batch {
                    SetWatchesBatch::V1(sw) => (OpCode::SetWatches, sw.to_bytes()),
                    SetWatchesBatch::V2(sw) => (OpCode::SetWatches2, sw.to_bytes()),
                };
                self.write_request(&mut out, xid, op, &body);
                pending.push_back(Pending {
                    xid,
                    op,
                    reply: None,
                    action: Action::None,
                });
            }
        }

        tracing::info!(
            %host,
            session_id = format_args!("{:#x}", self.session_id),
            negotiated_ms,
            read_only,
            new_session,
            "connected"
        );
        if let Ok(mut server) = self.shared.server.lock() {
            *server = Some(host.clone());
        }
        self.set_state(SessionState::Connected { read_only });
        self.epoch += 1;
        self.emit(SessionEvent::Connected {
            session_id: self.session_id,
            read_only,
            new_session: new_session || !self.ever_connected,
            negotiated_timeout: self.negotiated,
        });
        self.ever_connected = true;

        self.read_timeout = self.negotiated * 2 / 3;
        let read_timeout = self.read_timeout;
        if self.closing.is_some() {
            // Closed while disconnected: this connection only carries the closeSession.
            self.write_close(&mut out, &mut pending);
        } else {
            for r in std::mem::take(&mut self.queue) {
                if r.reply.is_closed() {
                    continue;
                }
                let xid = self.next_xid();
                self.write_request(&mut out, xid, r.op, &r.body);
                pending.push_back(Pending {
                    xid,
                    op: r.op,
                    reply: Some(r.reply),
                    action: r.action,
                });
            }
        }

        let ping_every = (self.negotiated / 3).min(Duration::from_secs(10));
        let tick_period = (ping_every / 4).max(Duration::from_millis(10));
        let mut tick = tokio::time::interval(tick_period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_recv = Instant::now();
        let mut last_send = Instant::now();
        let search = |hosts: &[HostPort]| {
            Box::pin(rw_search::find_read_write_server(
                hosts.to_vec(),
                host.clone(),
            ))
        };
        let mut rw_search = read_only.then(|| search(&self.hosts));
        self.hosts_updated = false;

        // No `biased;`: every branch gets its turn, so a flood of replies cannot starve writes
        // (or the other way round).
        let end = loop {
            tokio::select! {
                r = rd.read_buf(&mut inbuf) => {
                    match r {
                        Ok(0) => break ConnEnd::Lost("server closed the connection".to_owned()),
                        Ok(_) => {
                            last_recv = Instant::now();
                            if let Some(end) = self.process_input(&mut inbuf, &mut skip, &mut pending, &mut auth_pending) {
                                break end;
                            }
                            if !self.deferred_removals.is_empty() {
                                self.flush_deferred(&mut out, &mut pending);
                            }
                        }
                        Err(e) => break ConnEnd::Lost(format!("read: {e}")),
                    }
                }
                r = wr.write_buf(&mut out), if !out.is_empty() => {
                    match r {
                        Ok(0) => break ConnEnd::Lost("write returned 0".to_owned()),
                        Ok(_) => last_send = Instant::now(),
                        Err(e) => break ConnEnd::Lost(format!("write: {e}")),
                    }
                }
                cmd = self.rx.recv(), if !self.rx_done => {
                    let Some(cmd) = cmd else {
                        // Every handle is gone: close the session politely.
                        self.rx_done = true;
                        let (tx, _rx) = oneshot::channel();
                        self.start_close(&mut out, &mut pending, tx);
                        continue;
                    };
                    self.handle_command(cmd, &mut out, &mut pending, &mut auth_pending);
                    // Batch whatever else is queued into the same write, after one yield
                    // even for a batch of one: the first caller woken by a burst of replies
                    // wakes this task (which the scheduler then runs next) before the other
                    // callers have queued their requests. Without the yield, writes carried
                    // 1.5 requests on average under load; with it, dozens (a yield costs
                    // about a microsecond when nothing else is ready).
                    let mut n = 0;
                    let mut yielded = false;
                    while n < 1024 && out.len() < 256 * 1024 {
                        let Ok(cmd) = self.rx.try_recv() else {
                            if yielded {
                                break;
                            }
                            yielded = true;
                            tokio::task::yield_now().await;
                            continue;
                        };
                        self.handle_command(cmd, &mut out, &mut pending, &mut auth_pending);
                        n += 1;
                    }
                    if std::mem::take(&mut self.leave_server) && self.closing.is_none() {
                        break ConnEnd::Lost(format!("leaving {host} for the updated server list"));
                    }
                    if std::mem::take(&mut self.hosts_updated) && rw_search.is_some() {
                        // Look among the servers listed now.
                        rw_search = Some(search(&self.hosts));
                    }
                }
                found = async {
                    match rw_search.as_mut() {
                        Some(search) => search.await,
                        None => std::future::pending().await,
                    }
                } => {
                    // The list may have changed since the search started.
                    if let Some(i) = self.hosts.iter().position(|h| *h == found) {
                        self.next_host = i;
                    }
                    tracing::info!(%host, to = %found, "read-write server found: leaving the read-only one");
                    break ConnEnd::Lost(format!("moving to read-write server {found}"));
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    if now.duration_since(last_recv) >= read_timeout {
                        break ConnEnd::Lost(format!("no reply from the server for {read_timeout:?}"));
                    }
                    if self.close_deadline.is_some_and(|d| now >= d) {
                        break ConnEnd::Lost(format!("no reply to closeSession within {read_timeout:?}"));
                    }
                    if out.is_empty() && now.duration_since(last_send) + tick_period >= ping_every {
                        frame::write_frame(&mut out, |b| {
                            RequestHeader::new(RequestHeader::PING_XID, OpCode::Ping).encode(b);
                        });
                    }
                }
            }
        };

        self.deferred_removals.clear();

        // Whatever was in flight has an unknown outcome.
        let err = match &end {
            ConnEnd::Finished => self
                .shared
                .terminal
                .lock()
                .ok()
                .and_then(|t| t.clone())
                .unwrap_or(Error::Closed),
            ConnEnd::Lost(_) => Error::ConnectionLoss,
        };
        for p in pending.drain(..) {
            if let Some(reply) = p.reply {
                let _ = reply.send(Err(err.clone()));
            }
        }
        for reply in auth_pending.into_iter().flatten() {
            let _ = reply.send(Err(err.clone()));
        }
        end
    }

    fn start_close(
        &mut self,
        out: &mut BytesMut,
        pending: &mut VecDeque<Pending>,
        reply: oneshot::Sender<Result<()>>,
    ) {
        if self.closing.is_some() {
            self.close_waiters.push(reply);
            return;
        }
        self.closing = Some(reply);
        self.write_close(out, pending);
    }

    fn write_close(&mut self, out: &mut BytesMut, pending: &mut VecDeque<Pending>) {
        let xid = self.next_xid();
        self.write_request(out, xid, OpCode::CloseSession, &[]);
        pending.push_back(Pending {
            xid,
            op: OpCode::CloseSession,
            reply: None,
            action: Action::None,
        });
        // Bounded: no reply within the read timeout ends the wait.
        self.close_deadline = Some(Instant::now() + self.read_timeout);
    }

    fn handle_command(
        &mut self,
        cmd: Command,
        out: &mut BytesMut,
        pending: &mut VecDeque<Pending>,
        auth_pending: &mut VecDeque<Vec<AuthReply>>,
    ) {
        if self.closing.is_some() {
            match cmd {
                Command::Request(r) => {
                    let _ = r.reply.send(Err(Error::Closed));
                }
                Command::AddAuth { reply, .. } => {
                    let _ = reply.send(Err(Error::Closed));
                }
                other => self.on_command_offline(Some(other)),
            }
            return;
        }
        match cmd {
            Command::Request(req) => {
                let xid = self.next_xid();
                self.write_request(out, xid, req.op, &req.body);
                pending.push_back(Pending {
                    xid,
                    op: req.op,
                    reply: Some(req.reply),
                    action: req.action,
                });
            }
            Command::AddAuth {
                scheme,
                auth,
                reply,
                deadline: _,
            } => {
                let packet = AuthPacket {
                    auth_type: 0,
                    scheme: scheme.clone(),
                    auth: auth.clone(),
                };
                frame::write_frame(out, |b| {
                    RequestHeader::new(RequestHeader::AUTH_XID, OpCode::Auth).encode(b);
                    packet.encode(b);
                });
                self.remember_auth(scheme, auth);
                auth_pending.push_back(vec![reply]);
            }
            Command::DropPersistent {
                path,
                id,
                recursive,
            } => {
                if self.registry.remove_persistent(&path, recursive, id) {
                    self.deferred_removals.push((path, recursive));
                    self.flush_deferred(out, pending);
                }
            }
            // Served as when offline: the connection is still up (a stale abandon is ignored).
            cmd @ (Command::RemoveLocal { .. }
            | Command::Abandon { .. }
            | Command::UpdateHosts(_)) => {
                if !matches!(cmd, Command::Abandon { .. }) {
                    self.on_command_offline(Some(cmd));
                }
            }
            Command::Close { reply } => self.start_close(out, pending, reply),
        }
    }

    /// Removes server-side persistent watches nobody holds any more, unless a pending reply may
    /// still register a watch on the same path (a removeWatches sent now would wipe that
    /// watch on the server while the registry keeps it): those wait for their replies.
    fn flush_deferred(&mut self, out: &mut BytesMut, pending: &mut VecDeque<Pending>) {
        for (path, recursive) in std::mem::take(&mut self.deferred_removals) {
            if pending.iter().any(|p| p.action.registers_on(&path)) {
                self.deferred_removals.push((path, recursive));
                continue;
            }
            if self.registry.has_persistent_mode(&path, recursive) {
                // Re-added meanwhile: the server-side watch is wanted again.
                continue;
            }
            // removeWatches(Any) would also drop the other watches on the path, so use the
            // exact type (3.9+) when others are left; older servers answer MARSHALLINGERROR
            // (an unknown watcher type) and the watch stays until the connection ends (its
            // events go nowhere).
            let watcher_type =
                if self.registry.has_one_shot(&path) || self.registry.has_persistent(&path) {
                    if recursive {
                        WatcherType::PersistentRecursive
                    } else {
                        WatcherType::Persistent
                    }
                } else {
                    WatcherType::Any
                };
            let body = zk_proto::RemoveWatchesRequest { path, watcher_type }.to_bytes();
            let xid = self.next_xid();
            self.write_request(out, xid, OpCode::RemoveWatches, &body);
            pending.push_back(Pending {
                xid,
                op: OpCode::RemoveWatches,
                reply: None,
                action: Action::None,
            });
        }
    }

    /// Splits and handles every complete frame; `Some` ends the connection. `skip` counts the
    /// bytes still to discard of a reply too large to accept.
    fn process_input(
        &mut self,
        inbuf: &mut BytesMut,
        skip: &mut usize,
        pending: &mut VecDeque<Pending>,
        auth_pending: &mut VecDeque<Vec<AuthReply>>,
    ) -> Option<ConnEnd> {
        loop {
            if *skip > 0 {
                let n = (*skip).min(inbuf.len());
                inbuf.advance(n);
                *skip -= n;
                if *skip > 0 {
                    return None;
                }
            }
            let body = match frame::split_frame(inbuf, self.config.max_reply_len) {
                Ok(Some(body)) => body.freeze(),
                Ok(None) => return None,
                Err(FrameError::TooLarge { len, max }) => {
                    // Its header names the request: fail that one alone, skip the body.
                    // `None` until the header has arrived.
                    let header = inbuf.get(frame::LENGTH_PREFIX_LEN..OVERSIZED_PEEK)?;
                    let header = match ReplyHeader::decode(&mut zk_proto::Reader::new(header)) {
                        Ok(h) => h,
                        Err(e) => return Some(ConnEnd::Lost(format!("bad reply header: {e}"))),
                    };
                    inbuf.advance(OVERSIZED_PEEK);
                    *skip = len.saturating_sub(<ReplyHeader as Decode>::MIN_LEN);
                    if let Some(end) = self.reject_oversized(header, len, max, pending) {
                        return Some(end);
                    }
                    continue;
                }
                Err(e) => return Some(ConnEnd::Lost(format!("bad frame from server: {e}"))),
            };
            if let Some(end) = self.handle_frame(body, pending, auth_pending) {
                return Some(end);
            }
        }
    }

    /// A reply of `len` bytes, over the `max` this client accepts, whose body is being
    /// skipped: its request fails with [`Error::ReplyTooLarge`] (the connection stays up). A
    /// notification that large ends the connection: its watch cannot be told.
    fn reject_oversized(
        &mut self,
        header: ReplyHeader,
        len: usize,
        max: usize,
        pending: &mut VecDeque<Pending>,
    ) -> Option<ConnEnd> {
        if header.xid < 0 {
            return Some(ConnEnd::Lost(format!(
                "frame of {len} bytes with xid {} exceeds the maximum of {max} bytes",
                header.xid
            )));
        }
        let p = match pop_pending(pending, header.xid) {
            Ok(p) => p,
            Err(end) => return Some(end),
        };
        // The highest seen: a reply's zxid never goes down on a connection with Apache, but a
        // lower one must not make a reconnect present less than this client has read.
        self.last_zxid = self.last_zxid.max(header.zxid);
        let result = if header.err == 0 {
            tracing::warn!(op = ?p.op, len, max, "reply too large; raise max_reply_len to accept it");
            // No watch is registered locally: the caller learns nothing of the node.
            Err(Error::ReplyTooLarge { len, max })
        } else {
            // An error reply with a body (servers send none): the error is what counts.
            self.apply_action(p.action, header.err);
            Err(Error::from_code(header.err, Some(p.op)))
        };
        if let Some(reply) = p.reply {
            let _ = reply.send(result);
        }
        None
    }

    fn handle_frame(
        &mut self,
        body: Bytes,
        pending: &mut VecDeque<Pending>,
        auth_pending: &mut VecDeque<Vec<AuthReply>>,
    ) -> Option<ConnEnd> {
        let mut reader = zk_proto::Reader::new(&body);
        let header = match ReplyHeader::decode(&mut reader) {
            Ok(h) => h,
            Err(e) => return Some(ConnEnd::Lost(format!("bad reply header: {e}"))),
        };
        let consumed = body.len() - reader.remaining();
        match header.xid {
            RequestHeader::NOTIFICATION_XID => {
                let event = match WatcherEvent::decode(&mut reader) {
                    Ok(e) => e,
                    Err(e) => return Some(ConnEnd::Lost(format!("bad notification: {e}"))),
                };
                // A path outside the chroot (the config node, read by getConfig at its
                // absolute path) is delivered as it is.
                let client_path = self.strip(&event.path);

                if event.event_type != EventType::None {
                    self.registry
                        .dispatch(event.event_type, &event.path, &client_path);
                }
                None
            }
            RequestHeader::PING_XID => None,
            RequestHeader::AUTH_XID => {
                let waiters = auth_pending.pop_front().unwrap_or_default();
                if header.err == 0 {
                    for reply in waiters {
                        let _ = reply.send(Ok(()));
                    }
                    None
                } else {
                    let err = Error::from_code(header.err, Some(OpCode::Auth));
                    for reply in waiters {
                        let _ = reply.send(Err(err.clone()));
                    }
                    tracing::warn!(%err, "authentication failed; the session is unusable");
                    if let Ok(mut t) = self.shared.terminal.lock() {
                        *t = Some(Error::AuthFailed);
                    }
                    Some(ConnEnd::Finished)
                }
            }
            xid => {
                let p = match pop_pending(pending, xid) {
                    Ok(p) => p,
                    Err(end) => match take_refused_ahead(pending, xid, header.err) {
                        Some(p) => p,
                        None => return Some(end),
                    },
                };
                self.last_zxid = self.last_zxid.max(header.zxid);
                // A 3.5 server answers an op it does not know UNIMPLEMENTED, then closes the
                // connection. A connection closed without that answer is no refusal: it may
                // be a 3.6+ server restarting, and persistent watches must outlive that.
                if p.op == OpCode::SetWatches2 && header.err == UNIMPLEMENTED {
                    tracing::warn!("the server does not know SetWatches2: persistent watches end, one-shot watches are re-registered with SetWatches");
                    self.no_set_watches2 = true;
                    return Some(ConnEnd::Lost(
                        "SetWatches2 unimplemented; re-registering with SetWatches".to_owned(),
                    ));
                }
                if p.op == OpCode::AddWatch && header.err == 0 && self.no_set_watches2 {
                    // A server that adds persistent watches knows SetWatches2 (the ensemble
                    // was upgraded member by member).
                    tracing::info!("the server adds persistent watches: SetWatches2 is used again");
                    self.no_set_watches2 = false;
                }
                let result = if header.err == 0 {
                    Ok(body.slice(consumed..))
                } else {
                    Err(Error::from_code(header.err, Some(p.op)))
                };
                self.apply_action(p.action, header.err);
                if p.op == OpCode::CloseSession {
                    if let Ok(mut t) = self.shared.terminal.lock() {
                        *t = Some(Error::Closed);
                    }
                    return Some(ConnEnd::Finished);
                }
                if let Some(reply) = p.reply {
                    let _ = reply.send(result);
                } else if let Err(e) = result {
                    tracing::debug!(op = ?p.op, %e, "internal request failed");
                }
                if header.err == UNIMPLEMENTED && p.op.added_after_3_5() {
                    // An op the server does not know: it closes the connection after this
                    // answer (Apache's UnimplementedRequestProcessor), and may apply requests
                    // it read before closing without answering them. Nothing more is sent on
                    // it (requests already sent share that risk). (An op it knows but has
                    // switched off, as createTTL without extended types, is answered
                    // UNIMPLEMENTED on a connection that stays open.)
                    return Some(ConnEnd::Lost(format!(
                        "the server does not know {:?} and closes the connection",
                        p.op
                    )));
                }
                None
            }
        }
    }

    fn apply_action(&mut self, action: Action, err: i32) {
        const NO_NODE: i32 = -101;
        const NO_WATCHER: i32 = -121;
        match action {
            Action::None => {}
            Action::Exists { path, tx } => match err {
                0 => self.registry.add_one_shot(OneShotKind::Data, path, tx),
                NO_NODE => self.registry.add_one_shot(OneShotKind::Exist, path, tx),
                _ => {}
            },
            Action::OneShot { kind, path, tx } => {
                if err == 0 {
                    self.registry.add_one_shot(kind, path, tx);
                }
            }
            Action::Persistent { path, mode, id, tx } => {
                let recursive = mode == AddWatchMode::PersistentRecursive;
                if err == 0 {
                    if tx.is_closed() {
                        // The caller went away before the reply: nobody will ever drop this
                        // watch, so remove it from the server now.
                        self.deferred_removals.push((path, recursive));
                    } else {
                        self.registry.add_persistent(path, recursive, id, tx);
                    }
                }
            }
            Action::RemoveWatches { path, watcher_type } => {
                if err == 0 || err == NO_WATCHER {
                    let client_path = self.strip(&path);
                    self.registry
                        .remove_local(&path, watcher_type, &client_path);
                }
            }
        }
    }
}

/// The length prefix and reply header of a frame (fixed-size: its `MIN_LEN` is its length):
/// what is read of a reply too large to accept.
const OVERSIZED_PEEK: usize = frame::LENGTH_PREFIX_LEN + <ReplyHeader as Decode>::MIN_LEN;

/// The pending request a reply with `xid` answers: the FIFO's head, or the connection ends.
fn pop_pending(pending: &mut VecDeque<Pending>, xid: i32) -> Result<Pending, ConnEnd> {
    let Some(p) = pending.pop_front() else {
        return Err(ConnEnd::Lost(format!(
            "reply with xid {xid} but nothing pending"
        )));
    };
    if p.xid != xid {
        let end = ConnEnd::Lost(format!("xid out of order: got {xid}, expected {}", p.xid));
        pending.push_front(p);
        return Err(end);
    }
    Ok(p)
}

/// The pending request with `xid` if its reply is an UNIMPLEMENTED refusal of an op an older
/// server does not know: Apache answers such an op as it arrives, ahead of the replies to the
/// requests before it (UnimplementedRequestProcessor runs at submit time), then closes the
/// connection. Taken out of order, it gets its clear error instead of a connection loss (and
/// a retry meeting the same race on every connection).
fn take_refused_ahead(pending: &mut VecDeque<Pending>, xid: i32, err: i32) -> Option<Pending> {
    if err != UNIMPLEMENTED {
        return None;
    }
    let at = pending
        .iter()
        .position(|p| p.xid == xid && p.op.added_after_3_5())?;
    pending.remove(at)
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// One connect attempt: resolve, TCP connect, handshake, within the attempt's budget.
async fn connect(hello: Hello) -> std::result::Result<(TcpStream, ConnectResponse), String> {
    let Hello {
        host,
        budget,
        request,
        max_reply_len,
    } = hello;
    let attempt = async {
        let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.host.as_str(), host.port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect();
        // As Apache's StaticHostProvider: a name resolved again at every attempt, its
        // addresses shuffled, so that one name for a whole ensemble spreads the clients and
        // does not hold them on one server.
        {
            use rand::seq::SliceRandom;
            addrs.shuffle(&mut rand::rng());
        }
        connect_any(&host, &addrs, &request, max_reply_len).await
    };
    match timeout(budget, attempt).await {
        Ok(r) => r,
        Err(_) => Err(format!("timed out after {budget:?}")),
    }
}

/// Connects to the first of `addrs` that completes the handshake: an address that refuses
/// the connection, or takes it and then fails the handshake (e.g. a server that closes it),
/// gives way to the next.
/// Why a handshake failed when the server closed the connection without answering.
const HANDSHAKE_CLOSED: &str = "server closed the connection during the handshake";

async fn connect_any(
    host: &HostPort,
    addrs: &[SocketAddr],
    request: &ConnectRequest,
    max_reply_len: usize,
) -> std::result::Result<(TcpStream, ConnectResponse), String> {
    let mut last_err = format!("{host} resolved to no address");
    for addr in addrs {
        let connected = match TcpStream::connect(addr).await {
            Ok(stream) => handshake(stream, request, max_reply_len).await,
            Err(e) => Err(e.to_string()),
        };
        match connected {
            Ok(done) => return Ok(done),
            Err(e) => last_err = format!("{addr}: {e}"),
        }
    }
    Err(last_err)
}

async fn handshake(
    mut stream: TcpStream,
    request: &ConnectRequest,
    max_reply_len: usize,
) -> std::result::Result<(TcpStream, ConnectResponse), String> {
    let _ = stream.set_nodelay(true);
    let mut out = BytesMut::with_capacity(64);
    frame::write_frame(&mut out, |b| request.encode(b));
    stream
        .write_all(&out)
        .await
        .map_err(|e| format!("write ConnectRequest: {e}"))?;
    let mut buf = BytesMut::with_capacity(64);
    loop {
        match frame::split_frame(&mut buf, max_reply_len) {
            Ok(Some(body)) => {
                let response = ConnectResponse::from_bytes(&body)
                    .map_err(|e| format!("bad ConnectResponse: {e}"))?;
                return Ok((stream, response));
            }
            Ok(None) => {}
            Err(e) => return Err(format!("bad ConnectResponse frame: {e}")),
        }
        let n = stream
            .read_buf(&mut buf)
            .await
            .map_err(|e| format!("read ConnectResponse: {e}"))?;
        if n == 0 {
            return Err(HANDSHAKE_CLOSED.to_owned());
        }
    }
}

/// The client's view of a server path: without the chroot; a path outside the chroot (the
/// config node, which getConfig reads at its absolute path) as it is.
fn client_path(chroot: Option<&str>, server_path: &str) -> String {
    zk_proto::path::strip_chroot(chroot, server_path)
        .unwrap_or(server_path)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::{client_path, ordered};
    use crate::HostPort;

    #[test]
    fn hosts_are_shuffled_unless_told_not_to() {
        let hosts: Vec<HostPort> = (1..=3)
            .map(|port| HostPort {
                host: "127.0.0.1".to_owned(),
                port,
            })
            .collect();
        assert_eq!(ordered(hosts.clone(), false), hosts);
        let mut first = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let order = ordered(hosts.clone(), true);
            let mut sorted = order.clone();
            sorted.sort_by_key(|h| h.port);
            assert_eq!(sorted, hosts, "a permutation");
            first.insert(order[0].port);
        }
        // Each host leads in a third of the orders; missing one in 200 is a 1e-35 event.
        assert_eq!(first.len(), 3, "every host comes first sometimes");
    }

    /// An address that takes the connection and closes it during the handshake (a server
    /// that refuses the session) gives way to the next address of the same name.
    #[tokio::test]
    async fn a_failed_handshake_falls_through_to_the_next_address() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use zk_proto::{ConnectRequest, ConnectResponse, Encode};

        let closing = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let serving = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addrs = [closing.local_addr().unwrap(), serving.local_addr().unwrap()];
        tokio::spawn(async move {
            while let Ok((socket, _)) = closing.accept().await {
                drop(socket);
            }
        });
        tokio::spawn(async move {
            let (mut socket, _) = serving.accept().await.unwrap();
            let mut head = [0u8; 4];
            socket.read_exact(&mut head).await.unwrap();
            let mut body = vec![0u8; u32::from_be_bytes(head) as usize];
            socket.read_exact(&mut body).await.unwrap();
            let response = ConnectResponse {
                protocol_version: 0,
                timeout: 4000,
                session_id: 0x77,
                passwd: vec![0; 16],
                read_only: Some(false),
            };
            let mut out = bytes::BytesMut::new();
            zk_proto::frame::write_frame(&mut out, |b| response.encode(b));
            socket.write_all(&out).await.unwrap();
            // Hold the connection until the test is done.
            let _ = socket.read(&mut head).await;
        });
        let request = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout: 4000,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: Some(false),
        };
        let host = HostPort {
            host: "zk.example".to_owned(),
            port: 2181,
        };
        let (_, response) = super::connect_any(&host, &addrs, &request, 1 << 20)
            .await
            .expect("the second address serves");
        assert_eq!(response.session_id, 0x77);
    }

    #[test]
    fn event_paths_lose_the_chroot_and_paths_outside_it_stay() {
        assert_eq!(client_path(Some("/app"), "/app/a/b"), "/a/b");
        assert_eq!(client_path(Some("/app"), "/app"), "/");
        assert_eq!(
            client_path(Some("/app"), "/zookeeper/config"),
            "/zookeeper/config"
        );
        // Not a prefix by name: "/apple" is outside "/app".
        assert_eq!(client_path(Some("/app"), "/apple"), "/apple");
        assert_eq!(client_path(None, "/a"), "/a");
    }
}
