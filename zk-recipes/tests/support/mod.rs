//! Shared helpers of the recipe tests: an embedded server, connected clients, and waits that
//! are driven by ZooKeeper watches (timeouts are liveness bounds only).

#![allow(dead_code, unreachable_pub, unused_imports, missing_docs)]

pub mod proxy;

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
pub use proxy::{Mode, Proxy};
use zk_client::{Client, ConnectionState, ConnectionStates, Error as ZkError, RetryNTimes};
use zk_server::TestingServer;

/// The session timeout the tests ask for.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(4);

/// A generous bound for things that should happen "soon" (liveness, not performance).
pub const PATIENCE: Duration = Duration::from_secs(30);

pub async fn server() -> TestingServer {
    TestingServer::start()
        .await
        .expect("start the testing server")
}

/// A testing server and a fault proxy in front of it.
pub async fn server_behind_a_proxy() -> (TestingServer, Proxy) {
    let server = server().await;
    let proxy = Proxy::start(&server.connect_string())
        .await
        .expect("proxy starts");
    (server, proxy)
}

pub fn client_builder(connect: &str) -> zk_client::ClientBuilder {
    Client::builder()
        .connect_string(connect)
        .session_timeout(SESSION_TIMEOUT)
        .connection_timeout(Duration::from_secs(10))
        .retry_policy(RetryNTimes::new(20, Duration::from_millis(50)))
}

pub async fn client(connect: &str) -> Client {
    let client = client_builder(connect).build().expect("build a client");
    client
        .block_until_connected(PATIENCE)
        .await
        .expect("connect");
    client
}

/// A connected client whose calls wait at most `timeout` for a connection.
pub async fn client_with_connection_timeout(connect: &str, timeout: Duration) -> Client {
    let client = client_builder(connect)
        .connection_timeout(timeout)
        .build()
        .expect("build a client");
    client
        .block_until_connected(PATIENCE)
        .await
        .expect("connect");
    client
}

/// Awaits `fut`, failing the test if it takes longer than [`PATIENCE`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    within_for(what, PATIENCE, fut).await
}

pub async fn within_for<T>(what: &str, limit: Duration, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?} waiting for: {what}"),
    }
}

/// Waits (on child watches) until `pred` holds for the children of `path` (a missing node
/// counts as no children).
pub async fn wait_children(client: &Client, path: &str, pred: impl Fn(&[String]) -> bool) {
    within(&format!("children of {path}"), async {
        loop {
            match client.get_children(path).watched().await {
                Ok((children, watch)) => {
                    if pred(&children) {
                        return;
                    }
                    watch.await;
                }
                Err(ZkError::NoNode) => {
                    if pred(&[]) {
                        return;
                    }
                    let (stat, watch) = client.exists(path).watched().await.expect("exists");
                    if stat.is_none() {
                        watch.await;
                    }
                }
                Err(e) => panic!("get_children {path}: {e}"),
            }
        }
    })
    .await
}

/// The next connection state, within [`PATIENCE`].
pub async fn next_state(states: &mut ConnectionStates) -> ConnectionState {
    within("a connection state", states.next())
        .await
        .expect("the state stream ended")
}

/// Waits for `wanted` on `states`.
pub async fn wait_state(states: &mut ConnectionStates, wanted: ConnectionState) {
    within(&format!("connection state {wanted:?}"), async {
        while let Some(s) = states.next().await {
            if s == wanted {
                return;
            }
        }
        panic!("the state stream ended before {wanted:?}");
    })
    .await
}

/// The server's count of watches (`wchs`).
pub async fn total_watches(server: &TestingServer) -> u64 {
    let text = server.four_letter_word("wchs").await.expect("wchs");
    text.lines()
        .find_map(|l| l.strip_prefix("Total watches:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("unexpected wchs output: {text}"))
}
