//! The framework layer: [`Client`], its builder, retries, namespaces and connection states.

mod acl;
mod children;
mod create;
mod data;
mod delete;
mod misc;
pub(crate) mod state;
mod txn;
mod watches;

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;
use zk_proto::path::{prepend_chroot, strip_chroot, validate_path};
use zk_proto::{Acl, CreateMode};

pub use acl::{GetAclBuilder, SetAclBuilder};
pub use children::{
    GetChildrenBuilder, GetChildrenStatBuilder, WatchedGetChildren, WatchedGetChildrenStat,
};
pub use create::{CreateBuilder, Created};
pub use data::{ExistsBuilder, GetDataBuilder, SetDataBuilder, WatchedExists, WatchedGetData};
pub use delete::DeleteBuilder;
pub use misc::{
    GetAllChildrenNumberBuilder, GetEphemeralsBuilder, MultiReadBuilder, SyncBuilder, WhoAmIBuilder,
};
pub use state::{ConnectionState, ConnectionStates};
pub use txn::TransactionBuilder;
pub use watches::{AddWatchBuilder, RemoveWatchesBuilder};

use crate::error::{Error, Result};
use crate::retry::{ExponentialBackoffRetry, RetryPolicy};
use crate::session::{Session, SessionConfig, SessionState};

/// Supplies the ACL of nodes created without an explicit one (Curator's `ACLProvider`).
pub trait AclProvider: Send + Sync + fmt::Debug {
    /// The ACL for a new node at `path` (the full path, namespace included).
    fn acl_for_path(&self, path: &str) -> Vec<Acl>;
}

/// The default ACL provider: `OPEN_ACL_UNSAFE` (everything for everybody).
#[derive(Debug, Clone, Default)]
pub struct OpenAclProvider;

impl AclProvider for OpenAclProvider {
    fn acl_for_path(&self, _path: &str) -> Vec<Acl> {
        Acl::open_unsafe()
    }
}

/// An ACL provider that gives every node the same ACL.
#[derive(Debug, Clone)]
pub struct FixedAclProvider(pub Vec<Acl>);

impl AclProvider for FixedAclProvider {
    fn acl_for_path(&self, _path: &str) -> Vec<Acl> {
        self.0.clone()
    }
}

/// The future of every operation builder: await it (or the builder itself).
///
/// The request is queued when the future is first polled, so the requests of one client reach
/// the server in the order their futures were first polled.
#[must_use = "futures do nothing unless polled"]
pub struct ZkFuture<T>(Pin<Box<dyn Future<Output = Result<T>> + Send + 'static>>);

impl<T> ZkFuture<T> {
    pub(crate) fn new(
        name: &'static str,
        path: &str,
        fut: impl Future<Output = Result<T>> + Send + 'static,
    ) -> ZkFuture<T> {
        let span = tracing::debug_span!("zk", op = name, path = %path);
        ZkFuture(Box::pin(fut.instrument(span)))
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
                let path = self.span_path().to_owned();
                $crate::client::ZkFuture::new($name, &path, self.$run())
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
        }
    }
}

impl ClientBuilder {
    /// The servers: `host:port[,host:port…][/chroot]`.
    pub fn connect_string(mut self, connect_string: impl Into<String>) -> Self {
        self.connect_string = Some(connect_string.into());
        self
    }

    /// The session timeout to request (default 60 s; the server clamps it).
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// How long one call waits for a connection, once per call (default 15 s).
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

    /// Whether read-only servers are acceptable (default false).
    pub fn can_be_read_only(mut self, yes: bool) -> Self {
        self.can_be_read_only = yes;
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
            session.shared(),
            self.session_timeout,
        ));
        Ok(Client {
            inner: Arc::new(Inner {
                session,
                hub,
                retry: self.retry,
                connection_timeout: self.connection_timeout,
                acl_provider: self.acl_provider,
                ensured: Mutex::new(HashSet::new()),
            }),
            namespace: namespace.map(Arc::from),
        })
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
    ensured: Mutex<HashSet<String>>,
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
}

impl Client {
    /// A builder with Curator's defaults.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// Starts a client for `connect_string` with default settings.
    pub fn connect(connect_string: &str) -> Result<Client> {
        Client::builder().connect_string(connect_string).build()
    }

    /// A client for the same session whose paths are relative to `/namespace` (created lazily
    /// as a container on first use). An empty namespace means none.
    pub fn using_namespace(&self, namespace: &str) -> Result<Client> {
        Ok(Client {
            inner: self.inner.clone(),
            namespace: namespace_path(namespace)?.map(Arc::from),
        })
    }

    /// The namespace path (e.g. `/app`), if any.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The session layer underneath (raw operations, no retries, no namespace).
    pub fn session(&self) -> &Session {
        &self.inner.session
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

    /// Whether the client is connected now.
    pub fn is_connected(&self) -> bool {
        self.inner.session.state().is_connected()
    }

    /// Waits until connected, for at most `timeout`.
    ///
    /// # Notable errors
    /// [`Error::Connect`] on timeout; [`Error::AuthFailed`] or [`Error::Closed`].
    pub async fn block_until_connected(&self, timeout: Duration) -> Result<()> {
        let mut rx = self.inner.session.state_receiver();
        let wait = async {
            rx.wait_for(|s| s.is_connected() || s.is_terminal())
                .await
                .map(|s| *s)
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(SessionState::Connected { .. })) => Ok(()),
            Ok(_) => Err(self.closed_error()),
            Err(_) => Err(Error::Connect(format!("not connected within {timeout:?}"))),
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
    pub(crate) fn full_path(&self, path: &str) -> String {
        prepend_chroot(self.namespace.as_deref(), path)
    }

    /// The client path of a server path (namespace removed).
    pub(crate) fn unfixed_path(&self, path: &str) -> String {
        strip_chroot(self.namespace.as_deref(), path)
            .unwrap_or(path)
            .to_owned()
    }

    pub(crate) fn default_acl(&self, full_path: &str) -> Vec<Acl> {
        self.inner.acl_provider.acl_for_path(full_path)
    }

    /// Waits for a connection until `deadline`; connection loss after it.
    pub(crate) async fn wait_connected(&self, deadline: Instant) -> Result<()> {
        let session = &self.inner.session;
        let state = session.state();
        if state.is_connected() {
            return Ok(());
        }
        if state.is_terminal() {
            return Err(self.closed_error());
        }
        let mut rx = session.state_receiver();
        let wait = async {
            rx.wait_for(|s| s.is_connected() || s.is_terminal())
                .await
                .map(|s| *s)
        };
        match tokio::time::timeout_at(deadline, wait).await {
            Ok(Ok(SessionState::Connected { .. })) => Ok(()),
            Ok(_) => Err(self.closed_error()),
            Err(_) => Err(Error::ConnectionLoss),
        }
    }

    /// Runs `attempt` until it succeeds or the retry policy gives up. Each attempt first waits
    /// for a connection; the connection timeout bounds all those waits together, once.
    pub(crate) async fn retry<T, F, Fut>(&self, mut attempt: F) -> Result<T>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let start = Instant::now();
        let deadline = start + self.inner.connection_timeout;
        let mut retry_count = 0u32;
        loop {
            let result = match self.wait_connected(deadline).await {
                Ok(()) => attempt(retry_count).await,
                Err(e) => Err(e),
            };
            let err = match result {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if !self.inner.retry.allow_retry_on(&err) {
                return Err(err);
            }
            let Some(sleep) = self.inner.retry.allow_retry(retry_count, start.elapsed()) else {
                return Err(err);
            };
            tracing::debug!(%err, retry_count, ?sleep, "retrying");
            tokio::time::sleep(sleep).await;
            retry_count += 1;
        }
    }

    /// Creates the namespace root (as a container) once per client and namespace.
    pub(crate) async fn ensure_namespace(&self) -> Result<()> {
        let Some(ns) = self.namespace.clone() else {
            return Ok(());
        };
        if self
            .inner
            .ensured
            .lock()
            .map(|s| s.contains(&*ns))
            .unwrap_or(false)
        {
            return Ok(());
        }
        let root = Client {
            inner: self.inner.clone(),
            namespace: None,
        };
        let acl = root.default_acl(&ns);
        root.retry(|_| root.mkdirs(&ns, true, true, &acl, false))
            .await?;
        if let Ok(mut s) = self.inner.ensured.lock() {
            s.insert(ns.to_string());
        }
        Ok(())
    }

    /// Creates every missing node of `full_path` (including itself when `include_self`), as
    /// containers or persistent nodes, ignoring nodes that exist.
    pub(crate) async fn mkdirs(
        &self,
        full_path: &str,
        include_self: bool,
        containers: bool,
        acl: &[Acl],
        acl_for_all: bool,
    ) -> Result<()> {
        let session = &self.inner.session;
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
        let mode = if containers {
            CreateMode::Container
        } else {
            CreateMode::Persistent
        };
        for prefix in prefixes.iter().rev() {
            let acl = if acl_for_all {
                acl.to_vec()
            } else {
                self.default_acl(prefix)
            };
            match session.create(prefix, &[], &acl, mode, None).await {
                Ok(_) | Err(Error::NodeExists) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
