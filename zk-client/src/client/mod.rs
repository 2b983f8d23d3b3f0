//! The framework layer: [`Client`], its builder, retries, namespaces and connection states.

mod acl;
pub(crate) mod background;
mod children;
mod config;
mod create;
mod data;
mod delete;
mod ensemble_tracker;
mod misc;
pub(crate) mod state;
mod txn;
mod watches;

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;
use zk_proto::path::{into_client_path, prepend_chroot, validate_path};
use zk_proto::{Acl, CreateMode};

pub use acl::{GetAclBuilder, SetAclBuilder};
pub use children::{
    GetChildrenBuilder, GetChildrenStatBuilder, WatchedGetChildren, WatchedGetChildrenStat,
};
pub use config::{GetConfigBuilder, ReconfigBuilder, WatchedGetConfig};
pub use create::{CreateBuilder, CreateContainersBuilder, Created};
pub use data::{ExistsBuilder, GetDataBuilder, SetDataBuilder, WatchedExists, WatchedGetData};
pub use delete::DeleteBuilder;
pub use misc::{
    GetAllChildrenNumberBuilder, GetEphemeralsBuilder, MultiReadBuilder, SyncBuilder, WhoAmIBuilder,
};
pub use state::{ConnectionState, ConnectionStateErrorPolicy, ConnectionStates};
pub use txn::TransactionBuilder;
pub use watches::{AddWatchBuilder, RemoveWatchesBuilder};

use crate::compression::{CompressionProvider, GzipCompressionProvider};
use crate::error::{Error, Result};
use crate::retry::{ExponentialBackoffRetry, RetryPolicy};
use crate::session::{Session, SessionConfig, SessionState, QUEUE_UNTIL};

type BoxedResult = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// Supplies the ACL of nodes created without an explicit one (Curator's `ACLProvider`).
///
/// ```
/// use std::borrow::Cow;
/// use zk_client::{Acl, AclProvider, Id, Perms};
///
/// /// Nodes under /private are alice's; the others are open.
/// #[derive(Debug)]
/// struct Private;
///
/// impl AclProvider for Private {
///     fn acl_for_path(&self, path: &str) -> Cow<'_, [Acl]> {
///         if path.starts_with("/private") {
///             vec![Acl::new(Perms::ALL, Id::digest("alice", "secret"))].into()
///         } else {
///             Acl::open_unsafe().into()
///         }
///     }
/// }
/// ```
pub trait AclProvider: Send + Sync + fmt::Debug {
    /// The ACL for a new node at `path` (the full path, namespace included): borrowed when
    /// it is the same for many paths (nothing is copied per create), or owned.
    fn acl_for_path(&self, path: &str) -> Cow<'_, [Acl]>;
}

/// The default ACL provider: `OPEN_ACL_UNSAFE` (everything for everybody).
#[derive(Debug, Clone, Default)]
pub struct OpenAclProvider;

impl AclProvider for OpenAclProvider {
    fn acl_for_path(&self, _path: &str) -> Cow<'_, [Acl]> {
        static OPEN_ACL_UNSAFE: LazyLock<Vec<Acl>> = LazyLock::new(Acl::open_unsafe);
        Cow::Borrowed(&OPEN_ACL_UNSAFE)
    }
}

/// An ACL provider that gives every node the same ACL.
#[derive(Debug, Clone)]
pub struct FixedAclProvider(pub Vec<Acl>);

impl AclProvider for FixedAclProvider {
    fn acl_for_path(&self, _path: &str) -> Cow<'_, [Acl]> {
        Cow::Borrowed(&self.0)
    }
}

/// The future of every operation builder: await it (or the builder itself).
///
/// The request is queued when the future is first polled, even while disconnected (then it
/// waits in the session task, in order, for at most the connection timeout), so the requests
/// of one client reach the server in the order their futures were first polled. Requests
/// already sent when a connection drops are re-sent by the retry policy after independent
/// backoffs: their relative order is not kept (see [Ordering](crate#ordering)).
#[must_use = "futures do nothing unless polled"]
pub struct ZkFuture<T>(Pin<Box<dyn Future<Output = Result<T>> + Send + 'static>>);

impl<T> ZkFuture<T> {
    /// Runs `fut` in `span` (a `zk` span naming the operation and path).
    pub(crate) fn new(
        span: tracing::Span,
        fut: impl Future<Output = Result<T>> + Send + 'static,
    ) -> ZkFuture<T> {
        // A disabled span would only cost an enter and exit on every poll.
        if span.is_disabled() {
            ZkFuture(Box::pin(fut))
        } else {
            ZkFuture(Box::pin(fut.instrument(span)))
        }
    }
}

impl<T> fmt::Debug for ZkFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ZkFuture")
    }
}

impl<T> Future for ZkFuture<T> {
    type Output = Result<T>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        self.0.as_mut().poll(cx)
    }
}

/// Implements `IntoFuture` for a builder: `$run` is an `async fn(self) -> Result<$out>`.
macro_rules! awaitable {
    ($builder:ty, $out:ty, $name:literal, $run:ident) => {
        impl ::std::future::IntoFuture for $builder {
            type Output = $crate::error::Result<$out>;
            type IntoFuture = $crate::client::ZkFuture<$out>;
            fn into_future(self) -> Self::IntoFuture {
                let span = ::tracing::debug_span!("zk", op = $name, path = %self.span_path());
                $crate::client::ZkFuture::new(span, self.$run())
            }
        }
    };
}
pub(crate) use awaitable;

/// Builds a [`Client`] (Curator's `CuratorFrameworkFactory.builder()`).
#[must_use]
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    connect_string: Option<String>,
    session_timeout: Duration,
    connection_timeout: Duration,
    retry: Arc<dyn RetryPolicy>,
    namespace: Option<String>,
    auth: Vec<(String, Vec<u8>)>,
    acl_provider: Arc<dyn AclProvider>,
    can_be_read_only: bool,
    error_policy: ConnectionStateErrorPolicy,
    compression: Arc<dyn CompressionProvider>,
    compress_all: bool,
    ensemble_tracker: bool,
    max_reply_len: Option<usize>,
    max_request_len: Option<usize>,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            connect_string: None,
            session_timeout: Duration::from_secs(60),
            connection_timeout: Duration::from_secs(15),
            retry: Arc::new(ExponentialBackoffRetry::new(Duration::from_millis(100), 3)),
            namespace: None,
            auth: Vec::new(),
            acl_provider: Arc::new(OpenAclProvider),
            can_be_read_only: false,
            error_policy: ConnectionStateErrorPolicy::Standard,
            compression: Arc::new(GzipCompressionProvider::default()),
            compress_all: false,
            ensemble_tracker: false,
            max_reply_len: None,
            max_request_len: None,
        }
    }
}

impl ClientBuilder {
    /// The servers: `host:port[,host:port…][/chroot]`.
    pub fn connect_string(mut self, connect_string: impl Into<String>) -> Self {
        self.connect_string = Some(connect_string.into());
        self
    }

    /// The session timeout to request (default 60 s; the server clamps it; more than
    /// `i32::MAX` ms asks for that much).
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout.min(crate::session::MAX_SESSION_TIMEOUT);
        self
    }

    /// How long one call waits for a connection, once per call (default 15 s): counted from
    /// the call's start, or from when its connection dropped if that came later. Retries
    /// within it are the retry policy's.
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// The retry policy (default `ExponentialBackoffRetry(100 ms, 3)`).
    pub fn retry_policy(mut self, policy: impl RetryPolicy + 'static) -> Self {
        self.retry = Arc::new(policy);
        self
    }

    /// A namespace: every path is relative to `/namespace` (created lazily as a container).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Digest credentials (`user:password`), sent after every connect.
    pub fn digest_auth(self, user: &str, password: &str) -> Self {
        self.auth("digest", format!("{user}:{password}").as_bytes())
    }

    /// Credentials of any scheme, sent after every connect.
    pub fn auth(mut self, scheme: &str, auth: &[u8]) -> Self {
        self.auth.push((scheme.to_owned(), auth.to_vec()));
        self
    }

    /// The ACL provider for creates without an explicit ACL (default OPEN_ACL_UNSAFE).
    pub fn acl_provider(mut self, provider: impl AclProvider + 'static) -> Self {
        self.acl_provider = Arc::new(provider);
        self
    }

    /// Whether read-only servers are acceptable (default false); see
    /// [`SessionConfig::can_be_read_only`]. States, as Curator's: READ_ONLY while on one;
    /// when a read-write server is found, SUSPENDED, then CONNECTED (the first read-write
    /// connection) or RECONNECTED. The change of session is no LOST (watches carry over to
    /// the new one); LOST comes only as always, if no server answers within the session
    /// timeout after SUSPENDED.
    pub fn can_be_read_only(mut self, yes: bool) -> Self {
        self.can_be_read_only = yes;
        self
    }

    /// Which connection states the recipes treat as errors (default
    /// [`ConnectionStateErrorPolicy::Standard`]: a leader steps down on SUSPENDED).
    pub fn connection_state_error_policy(mut self, policy: ConnectionStateErrorPolicy) -> Self {
        self.error_policy = policy;
        self
    }

    /// The codec of `compressed()` writes and `decompressed()` reads (default gzip, as
    /// Curator's).
    pub fn compression_provider(mut self, provider: impl CompressionProvider + 'static) -> Self {
        self.compression = Arc::new(provider);
        self
    }

    /// Compress the data of every create, set_data and transaction, and decompress every
    /// get_data and multi-read, as if each were marked `compressed()` / `decompressed()`
    /// (Curator's `enableCompression()`). Recipes and caches read and write through the
    /// client, so their data is compressed too; every node they read must then hold
    /// compressed (or empty) data: a node with plain data fails its reads with
    /// [`Error::Compression`].
    pub fn enable_compression(mut self) -> Self {
        self.compress_all = true;
        self
    }

    /// Follow the ensemble's membership (Curator's `ensembleTracker`): read the configuration
    /// in `/zookeeper/config` once connected, whenever it changes and in every new session,
    /// and connect to its members' client addresses from then on (the chroot stays; see
    /// [`Session::update_servers`]). Off by default, unlike
    /// Curator: the addresses are the servers' own view, which clients behind NAT, a proxy
    /// or a port forward cannot reach — there a tracker would lead the client away from the
    /// addresses that work. A standalone server's configuration is empty and changes nothing.
    pub fn ensemble_tracker(mut self, on: bool) -> Self {
        self.ensemble_tracker = on;
        self
    }

    /// The largest reply to accept (default 4 MiB); see [`SessionConfig::max_reply_len`].
    /// Raise it to list the children of nodes with very many (the Apache client's
    /// `-Djute.maxbuffer`).
    pub fn max_reply_len(mut self, bytes: usize) -> Self {
        self.max_reply_len = Some(bytes);
        self
    }

    /// The largest request the servers accept (default 0xfffff, Apache's default
    /// `jute.maxbuffer`); see [`SessionConfig::max_request_len`]. Raise it to store larger
    /// nodes on servers started with a larger `jute.maxbuffer`.
    pub fn max_request_len(mut self, bytes: usize) -> Self {
        self.max_request_len = Some(bytes);
        self
    }

    /// Starts the client: the session connects in the background. Must be called inside a
    /// tokio runtime.
    ///
    /// # Notable errors
    /// [`Error::InvalidConnectString`], [`Error::InvalidPath`] for a bad namespace.
    pub fn build(self) -> Result<Client> {
        let connect = self
            .connect_string
            .ok_or_else(|| Error::InvalidConnectString("no connect string given".to_owned()))?;
        let mut config = SessionConfig::new(&connect)?
            .session_timeout(self.session_timeout)
            .renew_on_expiry(true)
            .can_be_read_only(self.can_be_read_only);
        for (scheme, auth) in &self.auth {
            config = config.auth(scheme, auth);
        }
        if let Some(bytes) = self.max_reply_len {
            config = config.max_reply_len(bytes);
        }
        if let Some(bytes) = self.max_request_len {
            config = config.max_request_len(bytes);
        }
        let namespace = match self.namespace {
            Some(ns) => namespace_path(&ns)?,
            None => None,
        };
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let session = Session::start_inner(config, Some(events_tx));
        let hub = state::StateHub::new();
        tokio::spawn(state::supervise(
            events_rx,
            hub.clone(),
            session.weak_commands(),
            self.session_timeout,
        ));
        let client = Client::from_inner(Arc::new(Inner {
            session,
            hub,
            retry: self.retry,
            connection_timeout: self.connection_timeout,
            acl_provider: self.acl_provider,
            error_policy: self.error_policy,
            compression: self.compression,
            compress_all: self.compress_all,
            ensured: Mutex::new(HashSet::new()),
            runtime: tokio::runtime::Handle::current(),
        }))
        .with_namespace(namespace.map(Arc::from));
        if self.ensemble_tracker {
            ensemble_tracker::spawn(Arc::downgrade(&client.inner));
        }
        Ok(client)
    }
}

fn namespace_path(ns: &str) -> Result<Option<String>> {
    let ns = ns.trim_matches('/');
    if ns.is_empty() {
        return Ok(None);
    }
    let path = format!("/{ns}");
    validate_path(&path)?;
    Ok(Some(path))
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) session: Session,
    hub: Arc<state::StateHub>,
    pub(crate) retry: Arc<dyn RetryPolicy>,
    connection_timeout: Duration,
    pub(crate) acl_provider: Arc<dyn AclProvider>,
    error_policy: ConnectionStateErrorPolicy,
    compression: Arc<dyn CompressionProvider>,
    compress_all: bool,
    ensured: Mutex<HashSet<String>>,
    /// The runtime the client was built on: background work started from a `Drop` (e.g. of a
    /// protected create's future) runs there, whichever thread drops.
    pub(crate) runtime: tokio::runtime::Handle,
}

/// A ZooKeeper client with Curator's semantics: a cheap `Clone` handle to one session task.
///
/// Every operation is a fluent builder to `.await`; see the [crate docs](crate) for an example.
/// Operations wait for a connection (at most the connection timeout, once per call), are
/// retried by the retry policy on connection loss and session expiry, and see paths relative
/// to the client's namespace.
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
    pub(crate) namespace: Option<Arc<str>>,
    pub(crate) retry: Arc<dyn RetryPolicy>,
}

impl Client {
    /// A builder with Curator's defaults.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// Starts a client for `connect_string` with default settings. Despite the name it does
    /// not wait for a connection (the session connects in the background; operations wait for
    /// it): use [`Client::block_until_connected`] to wait.
    pub fn connect(connect_string: &str) -> Result<Client> {
        Client::builder().connect_string(connect_string).build()
    }

    /// The client of `inner` with its builder's retry policy and no namespace.
    pub(crate) fn from_inner(inner: Arc<Inner>) -> Client {
        Client {
            retry: inner.retry.clone(),
            inner,
            namespace: None,
        }
    }

    fn with_namespace(mut self, namespace: Option<Arc<str>>) -> Client {
        self.namespace = namespace;
        self
    }

    /// A client for the same session whose paths are relative to `/namespace` (created lazily
    /// as a container on first use). An empty namespace means none.
    pub fn using_namespace(&self, namespace: &str) -> Result<Client> {
        Ok(self
            .clone()
            .with_namespace(namespace_path(namespace)?.map(Arc::from)))
    }

    /// A client for the same session (and namespace) whose operations retry under `policy`
    /// instead of the builder's.
    ///
    /// For a write that must not be sent twice, use no retries
    /// (`RetryNTimes::new(0, Duration::ZERO)`): when the connection drops after a request was
    /// sent, its outcome is unknown, and a retried non-idempotent write (an increment, a
    /// versioned compare-and-set) may then take effect twice or report a conflict with
    /// itself. Without retries the call fails with [`Error::ConnectionLoss`] instead, and the
    /// caller can read the node to find out what happened. Requests still wait for a
    /// connection (up to the connection timeout) before they are sent.
    pub fn with_retry_policy(&self, policy: impl RetryPolicy + 'static) -> Client {
        Client {
            retry: Arc::new(policy),
            ..self.clone()
        }
    }

    /// A client for the same session (and namespace) whose operations are never retried in
    /// another session: its retry policy wrapped in
    /// [`SessionFailedRetryPolicy`](crate::SessionFailedRetryPolicy). For writes decided on
    /// what this session holds (e.g. deleting a lock node only while it is ours): once the
    /// session expires, such a call fails with [`Error::SessionExpired`] instead of being
    /// sent again in the next session.
    pub fn pinned_to_session(&self) -> Client {
        self.with_retry_policy(crate::SessionFailedRetryPolicy::new(self.retry.clone()))
    }

    /// The retry policy of this client's operations.
    pub(crate) fn retry_policy(&self) -> &dyn RetryPolicy {
        &*self.retry
    }

    /// The namespace path (e.g. `/app`), if any.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The session layer underneath (raw operations, no retries, no namespace).
    pub fn session(&self) -> &Session {
        &self.inner.session
    }

    /// The tokio runtime the client was built on. Work a recipe must start where no runtime
    /// is current (a guard dropped on a plain thread) runs there.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.inner.runtime
    }

    /// The current session id (0 before the first connection).
    pub fn session_id(&self) -> i64 {
        self.inner.session.session_id()
    }

    /// The current session password.
    pub fn session_password(&self) -> Vec<u8> {
        self.inner.session.session_password()
    }

    /// The latest connection state (`None` before the first connection).
    pub fn connection_state(&self) -> Option<ConnectionState> {
        self.inner.hub.current()
    }

    /// A stream of connection-state changes from now on.
    pub fn connection_states(&self) -> ConnectionStates {
        self.inner.hub.subscribe()
    }

    /// The connection-state error policy the recipes consult (see
    /// [`ClientBuilder::connection_state_error_policy`]).
    pub fn connection_state_error_policy(&self) -> ConnectionStateErrorPolicy {
        self.inner.error_policy
    }

    /// Whether `state` is an error state under this client's policy.
    pub fn is_error_state(&self, state: ConnectionState) -> bool {
        self.inner.error_policy.is_error_state(state)
    }

    /// The servers this client connects to: its connect string's, unless
    /// [`update_servers`](Self::update_servers) or the
    /// [ensemble tracker](ClientBuilder::ensemble_tracker) changed them.
    pub fn servers(&self) -> Vec<crate::HostPort> {
        self.inner.session.servers()
    }

    /// Connects to these servers (`host:port,…`, no chroot) from the next connection
    /// attempt on; see [`Session::update_servers`].
    ///
    /// # Errors
    /// [`Error::InvalidConnectString`], [`Error::Closed`].
    pub fn update_servers(&self, servers: &str) -> Result<()> {
        self.inner.session.update_servers(servers)
    }

    /// The server this client is connected to now (as its connect string names it), `None`
    /// while disconnected.
    pub fn connected_server(&self) -> Option<crate::HostPort> {
        self.inner.session.connected_server()
    }

    /// How long one call waits for a connection (the builder's
    /// [`connection_timeout`](ClientBuilder::connection_timeout)).
    pub fn connection_timeout(&self) -> Duration {
        self.inner.connection_timeout
    }

    /// Whether the client is connected now.
    pub fn is_connected(&self) -> bool {
        self.inner.session.state().is_connected()
    }

    /// Waits until connected, for at most `timeout`. When it returns,
    /// [`connection_state`](Self::connection_state) is connected too (CONNECTED, RECONNECTED
    /// or READ_ONLY), as Curator's `blockUntilConnected`.
    ///
    /// # Notable errors
    /// [`Error::Connect`] on timeout; [`Error::AuthFailed`] or [`Error::Closed`].
    pub async fn block_until_connected(&self, timeout: Duration) -> Result<()> {
        let mut session = self.inner.session.state_receiver();
        let mut curator = self.inner.hub.receiver();
        let wait = async {
            loop {
                let state = *session.borrow_and_update();
                if state.is_terminal() {
                    return false;
                }
                let seen = curator
                    .borrow_and_update()
                    .is_some_and(ConnectionState::is_connected);
                if state.is_connected() && seen {
                    return true;
                }
                // The hub's sender lives as long as the client: only the session's can end.
                tokio::select! {
                    changed = session.changed() => if changed.is_err() { return false },
                    _ = curator.changed() => {}
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(self.closed_error()),
            Err(_) => Err(self.inner.session.shared().not_connected(timeout)),
        }
    }

    /// Closes the session (closeSession, waiting for the reply); the session's ephemeral nodes
    /// go with it. Other handles of this client fail with [`Error::Closed`] afterwards.
    pub async fn close(&self) -> Result<()> {
        self.inner.session.close().await
    }

    fn closed_error(&self) -> Error {
        match self.inner.session.state() {
            SessionState::AuthFailed => Error::AuthFailed,
            _ => Error::Closed,
        }
    }

    /// The server path of a client path (namespace prepended).
    pub(crate) fn full_path<'a>(&self, path: &'a str) -> Cow<'a, str> {
        match self.namespace.as_deref() {
            None => Cow::Borrowed(path),
            namespace => Cow::Owned(prepend_chroot(namespace, path)),
        }
    }

    /// The client path of a server path (namespace removed).
    pub(crate) fn unfixed_path(&self, path: String) -> String {
        into_client_path(self.namespace.as_deref(), path)
    }

    /// `data` as stored for a write at `path`: compressed when the call asked for it or the
    /// client compresses everything.
    pub(crate) fn stored_data(&self, asked: bool, path: &str, data: Vec<u8>) -> Result<Vec<u8>> {
        if !(asked || self.inner.compress_all) {
            return Ok(data);
        }
        self.inner
            .compression
            .compress(path, &data)
            .map_err(|e| Error::Compression(format!("compressing the data for {path}: {e}")))
    }

    /// Read data as the caller sees it: decompressed when the call asked for it or the
    /// client compresses everything.
    pub(crate) fn read_data(&self, asked: bool, path: &str, data: Vec<u8>) -> Result<Vec<u8>> {
        if !(asked || self.inner.compress_all) {
            return Ok(data);
        }
        self.inner
            .compression
            .decompress(path, &data)
            .map_err(|e| Error::Compression(format!("decompressing the data of {path}: {e}")))
    }

    pub(crate) fn default_acl(&self, full_path: &str) -> Cow<'_, [Acl]> {
        self.inner.acl_provider.acl_for_path(full_path)
    }

    /// Runs `attempt` until it succeeds or the retry policy gives up; see [`Client::retry_until`].
    pub(crate) async fn retry<T, F, Fut>(&self, attempt: F) -> Result<T>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        // One clock reading per call: the start is also the deadline's origin.
        let start = Instant::now();
        self.retry_from(start, start + self.connection_timeout(), false, attempt)
            .await
    }

    /// [`Client::retry`] for a call that creates nodes: NONODE may mean that the server reaped
    /// the (container) namespace root, which is then created again once.
    pub(crate) async fn retry_creating<T, F, Fut>(&self, attempt: F) -> Result<T>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let start = Instant::now();
        self.retry_from(start, start + self.connection_timeout(), true, attempt)
            .await
    }

    /// The deadline of a call starting now: the connection timeout, once per call.
    pub(crate) fn call_deadline(&self) -> Instant {
        Instant::now() + self.connection_timeout()
    }

    /// Runs `attempt` until it succeeds or the retry policy gives up.
    ///
    /// Requests an attempt submits are queued at once, even while disconnected: the session
    /// task keeps them in order until the next connection or until `deadline` (the connection
    /// timeout, which bounds the call's wait for a connection once: from its start, or from
    /// when its connection dropped if that came later — time connected is not waiting). A
    /// namespace root not yet known to exist is created in the same pipeline, ahead of the
    /// attempt's requests. A connection error after
    /// the session expired during the call is reported as [`Error::SessionExpired`] to the
    /// retry policy (so [`SessionFailedRetryPolicy`](crate::SessionFailedRetryPolicy) sees it).
    pub(crate) async fn retry_until<T, F, Fut>(&self, deadline: Instant, attempt: F) -> Result<T>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.retry_from(Instant::now(), deadline, false, attempt)
            .await
    }

    /// [`Client::retry_until`] for a call that started at `start` (the retry policy's
    /// elapsed time counts from there); `creates`: see [`Client::retry_creating`].
    async fn retry_from<T, F, Fut>(
        &self,
        start: Instant,
        mut deadline: Instant,
        creates: bool,
        mut attempt: F,
    ) -> Result<T>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let shared = self.inner.session.shared();
        let mut generation = shared.generation.load(Ordering::SeqCst);
        let mut retry_count = 0u32;
        // Only a create can fail for want of the namespace root: for any other call, NONODE
        // stands whether the root is there or not.
        let mut namespace_rechecked = !creates;
        loop {
            let attempt = &mut attempt;
            let (result, primed) = QUEUE_UNTIL
                .scope(deadline, async {
                    // Boxed, as the sleep below: rare paths kept out of every call's future.
                    let ns = match self.namespace_to_prime() {
                        Some(ns) => Some(Box::pin(self.prime_namespace(ns)).await),
                        None => None,
                    };
                    let primed = ns.is_some();
                    let result = attempt(retry_count).await;
                    let result = match ns {
                        Some(ns) => match (result, Box::pin(self.finish_namespace(ns)).await) {
                            // The operation failed because the namespace root is missing.
                            (Err(e), Some(ns_error)) if is_no_node(&e) => Err(ns_error),
                            (r, _) => r,
                        },
                        None => result,
                    };
                    (result, primed)
                })
                .await;
            let err = match result {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if is_no_node(&err) && !primed && !namespace_rechecked {
                if let Some(ns) = &self.namespace {
                    // The server may have reaped the (container) namespace root: if so,
                    // create it again and try once more. Read first: a create of a root that
                    // exists is a failed write (logged and fsynced) for nothing.
                    namespace_rechecked = true;
                    if let Ok(None) = self.inner.session.exists(ns).await {
                        self.forget_namespace_root();
                        continue;
                    }
                }
            }
            // A connection error of a call whose session expired meanwhile is the expiry's
            // (a server's definite answer is kept: the call must not be sent again).
            let now_generation = shared.generation.load(Ordering::SeqCst);
            let err = if now_generation != generation && err.is_retryable() {
                generation = now_generation;
                Error::SessionExpired
            } else {
                err
            };
            if !self.retry.allow_retry_on(&err) {
                return Err(err);
            }
            if Instant::now() >= deadline && !self.is_connected() {
                // The connection timeout bounds the call's wait once, not each retry; a
                // connection that dropped after the call started starts the wait afresh.
                let dropped = shared.disconnected_at.lock().ok().and_then(|at| *at);
                match dropped.map(|at| at + self.connection_timeout()) {
                    Some(d) if d > deadline && d > Instant::now() => deadline = d,
                    _ => return Err(err),
                }
            }
            let Some(sleep) = self.retry.allow_retry(retry_count, start.elapsed()) else {
                return Err(err);
            };
            tracing::debug!(%err, retry_count, ?sleep, "retrying");
            Box::pin(tokio::time::sleep(sleep)).await;
            if shared.generation.load(Ordering::SeqCst) != generation
                && !self.retry.allow_retry_on(&Error::SessionExpired)
            {
                // The session expired during the backoff: a policy that gives up on expiry
                // never sends the call again in the next session.
                return Err(Error::SessionExpired);
            }
            retry_count += 1;
        }
    }

    /// Makes the next call create the namespace root again (it was deleted or reaped).
    pub(crate) fn forget_namespace_root(&self) {
        if let (Some(ns), Ok(mut s)) = (self.namespace.as_deref(), self.inner.ensured.lock()) {
            s.remove(ns);
        }
    }

    /// The namespace root, unless there is none or it is known to exist.
    fn namespace_to_prime(&self) -> Option<&str> {
        let ns = self.namespace.as_deref()?;
        let known = self.inner.ensured.lock().map(|s| s.contains(ns));
        (!known.unwrap_or(false)).then_some(ns)
    }

    /// Submits the creates of the namespace root `ns` (and its ancestors) as containers; the
    /// caller's requests follow them in the same pipeline.
    async fn prime_namespace(&self, ns: &str) -> Vec<BoxedResult> {
        let mut levels = Vec::new();
        let mut p = ns;
        levels.push(p.to_owned());
        while let Some((parent, _)) = zk_proto::path::split_parent(p) {
            if parent == "/" {
                break;
            }
            levels.push(parent.to_owned());
            p = parent;
        }
        let mut primed = Vec::new();
        for level in levels.into_iter().rev() {
            let session = self.inner.session.clone();
            let acl = self.default_acl(&level).into_owned();
            let mut fut: BoxedResult = Box::pin(async move {
                session
                    .create(&level, &[], &acl, CreateMode::Container, None)
                    .await
                    .map(|_| ())
            });
            // The first poll queues the request.
            if let Poll::Ready(r) = futures::poll!(&mut fut) {
                fut = Box::pin(std::future::ready(r));
            }
            primed.push(fut);
        }
        primed
    }

    /// Collects the namespace creates: `None` when the root exists now.
    async fn finish_namespace(&self, primed: Vec<BoxedResult>) -> Option<Error> {
        let ns = self.namespace.as_deref()?;
        let mut last = Ok(());
        for fut in primed {
            last = fut.await;
        }
        let outcome = match last {
            Ok(()) | Err(Error::NodeExists) => None,
            // The server checks CREATE on the parent before NODEEXISTS.
            // So does a read-only server, which refuses every create: the root may exist.
            Err(refused @ (Error::NoAuth | Error::NotReadOnly)) => {
                match self.inner.session.exists(ns).await {
                    Ok(Some(_)) => None,
                    // Missing and not creatable here: a call's NONODE is then the truth.
                    Ok(None) if refused == Error::NotReadOnly => Some(Error::NoNode),
                    Ok(None) => Some(refused),
                    Err(e) => Some(e),
                }
            }
            Err(e) => Some(e),
        };
        if outcome.is_none() {
            if let Ok(mut s) = self.inner.ensured.lock() {
                s.insert(ns.to_owned());
            }
        }
        outcome
    }

    /// Creates every missing node of `full_path` (including itself when `include_self`), as
    /// containers or persistent nodes, ignoring nodes that exist.
    ///
    /// As Curator's `ZKPaths.mkdirs`, levels are read from the deepest up to the first that
    /// exists, and only the ones below it are created: a create that fails NODEEXISTS is
    /// still a write (logged, answered after an fsync, through the quorum), and reading
    /// upwards needs READ on no ancestor above the deepest existing one.
    pub(crate) async fn mkdirs(
        &self,
        full_path: &str,
        include_self: bool,
        containers: bool,
        acl: &[Acl],
        acl_for_all: bool,
    ) -> Result<()> {
        let session = &self.inner.session;
        // Deepest first.
        let mut prefixes = Vec::new();
        let mut p = full_path;
        if include_self {
            prefixes.push(p.to_owned());
        }
        while let Some((parent, _)) = zk_proto::path::split_parent(p) {
            if parent == "/" {
                break;
            }
            prefixes.push(parent.to_owned());
            p = parent;
        }
        let mut missing = 0;
        for prefix in &prefixes {
            match session.exists(prefix).await {
                Ok(None) => missing += 1,
                // The server answers NOAUTH to an `exists` only for a node that exists.
                Ok(Some(_)) | Err(Error::NoAuth) => break,
                Err(e) => return Err(e),
            }
        }
        let mode = if containers {
            CreateMode::Container
        } else {
            CreateMode::Persistent
        };
        for prefix in prefixes.iter().take(missing).rev() {
            let acl = if acl_for_all {
                Cow::Borrowed(acl)
            } else {
                self.default_acl(prefix)
            };
            match session.create(prefix, &[], &acl, mode, None).await {
                // NODEEXISTS: created concurrently.
                Ok(_) | Err(Error::NodeExists) => {}
                // The server checks CREATE on the parent before NODEEXISTS: a node created
                // concurrently under a restricted parent is fine.
                Err(Error::NoAuth) => match session.exists(prefix).await {
                    Ok(Some(_)) | Err(Error::NoAuth) => {}
                    Ok(None) => return Err(Error::NoAuth),
                    Err(e) => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// NONODE, also as the failing op of a transaction.
fn is_no_node(error: &Error) -> bool {
    error.code() == Some(zk_proto::ErrorCode::NoNode)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    use super::Client;
    use crate::Error;

    /// Records the name and fields of every span created, and which spans were entered.
    #[derive(Default, Clone)]
    struct SpanRecorder {
        spans: Arc<Mutex<Vec<String>>>,
        entered: Arc<Mutex<std::collections::BTreeSet<u64>>>,
    }

    struct Fields(String);

    impl Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0 += &format!(" {}={value:?}", field.name());
        }
    }

    impl Subscriber for SpanRecorder {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, span: &Attributes<'_>) -> Id {
            let mut fields = Fields(span.metadata().name().to_owned());
            span.record(&mut fields);
            let mut spans = self.spans.lock().unwrap();
            spans.push(fields.0);
            Id::from_u64(spans.len() as u64)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, _: &Event<'_>) {}
        fn enter(&self, span: &Id) {
            self.entered.lock().unwrap().insert(span.into_u64());
        }
        fn exit(&self, _: &Id) {}
    }

    #[tokio::test]
    async fn every_operation_runs_in_a_span_naming_it_and_its_path() {
        let recorder = SpanRecorder::default();
        let _guard = tracing::subscriber::set_default(recorder.clone());
        // No server: argument errors surface through the future, inside the span; the
        // operations without a path fail after the (short) connection timeout.
        let client = Client::builder()
            .connect_string("127.0.0.1:1")
            .connection_timeout(std::time::Duration::from_millis(100))
            .build()
            .unwrap();
        let bad = "relative";
        let invalid_path = |r: Result<(), Error>| {
            let err = r.unwrap_err();
            assert!(matches!(err, Error::InvalidPath(_)), "{err:?}");
        };
        invalid_path(client.create(bad).await.map(drop));
        invalid_path(client.create_containers(bad).await);
        invalid_path(client.get_data(bad).await.map(drop));
        invalid_path(client.get_data(bad).watched().await.map(drop));
        invalid_path(client.set_data(bad, b"x").await.map(drop));
        invalid_path(client.exists(bad).await.map(drop));
        invalid_path(client.exists(bad).watched().await.map(drop));
        invalid_path(client.delete(bad).await);
        invalid_path(client.get_children(bad).await.map(drop));
        invalid_path(client.get_children(bad).with_stat().await.map(drop));
        invalid_path(client.get_children(bad).watched().await.map(drop));
        let children = client.get_children(bad).with_stat().watched();
        invalid_path(children.await.map(drop));
        invalid_path(client.get_acl(bad).await.map(drop));
        invalid_path(client.set_acl(bad, Vec::new()).await.map(drop));
        invalid_path(client.sync(bad).await);
        invalid_path(client.get_all_children_number(bad).await.map(drop));
        invalid_path(client.add_watch(bad).await.map(drop));
        invalid_path(client.remove_watches(bad).await);
        let _ = client.get_ephemerals(bad).await;
        let _ = client.transaction().check("/t", 1).await;
        let _ = client.multi_read().get_data("/m").await;
        let _ = client.who_am_i().await;
        let _ = client.get_config().await;
        let _ = client.get_config().watched().await;
        let _ = client.reconfig().await;
        // One span per call, in call order, each entered (the call ran in it); the ones
        // without a path of their own name the first operation's path (transaction), the root
        // (multi-read, who am I) or the configuration node.
        let spans = recorder.spans.lock().unwrap().clone();
        let mut expected: Vec<String> = [
            "create",
            "create_containers",
            "get_data",
            "get_data",
            "set_data",
            "exists",
            "exists",
            "delete",
            "get_children",
            "get_children",
            "get_children",
            "get_children",
            "get_acl",
            "set_acl",
            "sync",
            "get_all_children_number",
            "add_watch",
            "remove_watches",
            "get_ephemerals",
        ]
        .iter()
        .map(|op| format!(r#"zk op="{op}" path={bad}"#))
        .collect();
        for (op, path) in [
            ("transaction", "/t"),
            ("multi_read", "/"),
            ("who_am_i", "/"),
            ("get_config", "/zookeeper/config"),
            ("get_config", "/zookeeper/config"),
            ("reconfig", "/zookeeper/config"),
        ] {
            expected.push(format!(r#"zk op="{op}" path={path}"#));
        }
        assert_eq!(spans, expected);
        let entered = recorder.entered.lock().unwrap().clone();
        assert_eq!(entered, (1..=spans.len() as u64).collect());
    }
}
