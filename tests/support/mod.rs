//! Shared helpers of the client integration tests (and of `recipes_*.rs`, `discovery_*.rs`).
//!
//! Every test runs against one target:
//! * Apache ZooKeeper (or any server) when `ZK_TEST_CONNECT=host:port` is set — shared by all
//!   tests, so each test works under its own unique root path;
//! * otherwise the embedded `zk_server::TestingServer`, one per test ([`start_embedded`]).
//!
//! Fault tests put a [`Proxy`] between the client and the server.

#![allow(dead_code, unreachable_pub, unused_imports)]

pub mod proxy;

use std::time::Duration;

use futures::StreamExt;
pub use proxy::Proxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zk::client::{
    Client, ConnectionState, ConnectionStates, Error, RetryNTimes, Session, SessionConfig,
};

/// The session timeout the tests ask for (Apache's minimum with tickTime 2000).
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(4);

/// A generous bound for things that should happen "soon" (liveness, not performance).
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The server a test talks to.
pub struct Env {
    connect: String,
    _embedded: Option<Box<dyn std::any::Any + Send>>,
    /// The external server's version, asked once.
    external_version: tokio::sync::OnceCell<Option<(u32, u32)>>,
}

impl Env {
    /// `host:port` of the server.
    pub fn connect_string(&self) -> &str {
        &self.connect
    }

    /// Whether the target is an external server (Apache ZooKeeper).
    pub fn is_external(&self) -> bool {
        self._embedded.is_none()
    }

    /// Whether the target is an external server older than `major.minor`, by the version its
    /// `srvr` four-letter word reports (unknown counts as older).
    pub async fn is_external_before(&self, major: u32, minor: u32) -> bool {
        if !self.is_external() {
            return false;
        }
        let version = self
            .external_version
            .get_or_init(|| srvr_version(&self.connect))
            .await;
        version.is_none_or(|v| v < (major, minor))
    }

    /// Awaits `op`, an operation Apache ZooKeeper has had since `major.minor`, and returns its
    /// value. On an older server it must fail with [`Error::Unimplemented`] (the clear error
    /// the client promises), and `None` is returned: the test then skips what depends on it.
    pub async fn since<T: std::fmt::Debug>(
        &self,
        (major, minor): (u32, u32),
        op: impl std::future::IntoFuture<Output = zk::client::Result<T>>,
    ) -> Option<T> {
        let result = op.await;
        if self.is_external_before(major, minor).await {
            assert!(
                matches!(result, Err(Error::Unimplemented { .. })),
                "a server older than {major}.{minor} answered {result:?}, not Unimplemented"
            );
            eprintln!("SKIPPED (server older than {major}.{minor}): the rest of this check");
            return None;
        }
        Some(result.unwrap_or_else(|e| panic!("an operation of {major}.{minor}: {e:?}")))
    }
}

/// `(major, minor)` from the `srvr` four-letter word's "Zookeeper version: 3.9.3-<commit>, …".
async fn srvr_version(connect: &str) -> Option<(u32, u32)> {
    let srvr = async {
        let mut socket = tokio::net::TcpStream::connect(connect).await.ok()?;
        socket.write_all(b"srvr").await.ok()?;
        let mut reply = String::new();
        socket.read_to_string(&mut reply).await.ok()?;
        Some(reply)
    };
    let reply = tokio::time::timeout(PATIENCE, srvr).await.ok().flatten()?;
    let v = reply.split("Zookeeper version: ").nth(1)?;
    let mut parts = v.split(|c: char| !c.is_ascii_digit());
    Some((
        parts.next()?.parse::<u32>().ok()?,
        parts.next()?.parse::<u32>().ok()?,
    ))
}

/// The test's target, or `None` (the test is skipped, loudly) when there is none.
pub async fn env() -> Option<Env> {
    if let Ok(connect) = std::env::var("ZK_TEST_CONNECT") {
        if !connect.trim().is_empty() {
            return Some(Env {
                connect: connect.trim().to_owned(),
                _embedded: None,
                external_version: Default::default(),
            });
        }
    }
    match start_embedded().await {
        Some((connect, guard)) => Some(Env {
            connect,
            _embedded: Some(guard),
            external_version: Default::default(),
        }),
        None => {
            eprintln!(
                "SKIPPED: no ZooKeeper target. Set ZK_TEST_CONNECT=host:port (scripts/interop.sh \
                 does) or wire the embedded server into tests/support::start_embedded."
            );
            None
        }
    }
}

/// Starts the embedded server for one test: its connect string and a guard that keeps it
/// running (the server stops when the guard is dropped). The one place where the embedded
/// target is wired in; `None` would skip the tests.
pub async fn start_embedded() -> Option<(String, Box<dyn std::any::Any + Send>)> {
    let server = zk::server::TestingServer::start()
        .await
        .expect("start the embedded zk_server::TestingServer");
    Some((server.connect_string(), Box::new(server)))
}

/// `127.0.0.1:<port>` where nothing listens (a port just bound and released): a listed
/// server that is down.
pub fn closed_address() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// A fresh root path for one test.
pub fn unique_root() -> String {
    format!("/t-{}", uuid::Uuid::new_v4().simple())
}

/// A client with test-friendly timeouts: 4 s sessions, 5 s connection timeout, a few retries.
pub fn client_builder(connect: &str) -> zk::client::ClientBuilder {
    Client::builder()
        .connect_string(connect)
        .session_timeout(SESSION_TIMEOUT)
        .connection_timeout(Duration::from_secs(5))
        .retry_policy(RetryNTimes::new(5, Duration::from_millis(200)))
}

/// A connected client.
pub async fn connected_client(connect: &str) -> Client {
    let client = client_builder(connect).build().expect("client");
    client
        .block_until_connected(PATIENCE)
        .await
        .expect("connected");
    client
}

/// Waits for the next state on `states`, with a bound.
pub async fn next_state(states: &mut ConnectionStates) -> ConnectionState {
    tokio::time::timeout(PATIENCE, states.next())
        .await
        .expect("a connection state within the patience bound")
        .expect("the state stream ended")
}

/// Expires a client's session the portable way: attaches to it from another connection
/// (directly to `connect`, not through the client's proxy) and closes it there, until a
/// further attach finds it expired. A client still connected re-attaches as soon as the
/// killer's attach takes its connection away, and may take the session back before the
/// killer's closeSession is read (that close then ends nothing): hence the check and the
/// rounds.
pub async fn expire_session(connect: &str, session_id: i64, password: &[u8]) {
    for _ in 0..20 {
        let config = SessionConfig::new(connect)
            .expect("connect string")
            .session_timeout(SESSION_TIMEOUT)
            .attach(session_id, password);
        match Session::connect(config, PATIENCE).await {
            Ok(killer) => {
                assert_eq!(
                    killer.session_id(),
                    session_id,
                    "attached to the same session"
                );
                // Ok also when the connection was taken back first: the next attach tells.
                let _ = killer.close().await;
            }
            Err(Error::SessionExpired) => return,
            Err(e) => panic!("attaching to session {session_id:#x}: {e}"),
        }
    }
    panic!("session {session_id:#x} outlived 20 closeSessions");
}

/// Deletes a test's root and everything below it (the end of most tests).
pub async fn remove_tree(client: &Client, root: &str) {
    client
        .delete(root)
        .deleting_children_if_needed()
        .await
        .expect("delete the test root");
}
