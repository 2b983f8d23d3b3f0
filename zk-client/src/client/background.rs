//! Operations that go on in the background until they succeed: Curator's guaranteed delete
//! and guaranteed watch removal.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::Poll;
use std::time::Duration;

use super::{Client, Inner};
use crate::error::{Error, Result};
use crate::retry::RetryPolicy;
use crate::session::SessionState;

/// One attempt: `Ok` once the operation's goal holds (e.g. the node is gone).
pub(crate) type Attempt = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// A guaranteed operation: runs `first` (the call with its retries) in its own task, so that
/// dropping the caller's future does not stop it; if it fails on an error the retry policy
/// would retry, or on the connection timeout, `attempt` goes on in the background
/// ([`spawn_until_done`]). The caller still sees the first outcome.
///
/// `first` is polled once by the caller before it moves to its task: that poll queues its
/// request, so it keeps its place in the caller's order as every call's first poll does.
pub(crate) async fn guaranteed(
    client: Client,
    what: &'static str,
    full_path: String,
    first: impl Future<Output = Result<()>> + Send + 'static,
    attempt: impl FnMut(Arc<Inner>) -> Attempt + Send + 'static,
) -> Result<()> {
    let mut first = Box::pin(first);
    if let Poll::Ready(result) = futures::poll!(&mut first) {
        go_on_if_needed(&client, what, full_path, attempt, &result);
        return result;
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let result = first.await;
        go_on_if_needed(&client, what, full_path, attempt, &result);
        let _ = tx.send(result);
    });
    rx.await.unwrap_or(Err(Error::Closed))
}

/// After a guaranteed operation's call: goes on in the background if it failed on an error
/// that calls for it.
fn go_on_if_needed(
    client: &Client,
    what: &'static str,
    full_path: String,
    attempt: impl FnMut(Arc<Inner>) -> Attempt + Send + 'static,
    result: &Result<()>,
) {
    if let Err(e) = result {
        if goes_on_after(client.retry_policy(), e) {
            tracing::info!(path = %full_path, what, %e, "guaranteed operation continues in the background");
            spawn_until_done(client, what, full_path, attempt);
        }
    }
}

/// Whether a guaranteed operation goes on after failing with `e`: on what `policy` retries,
/// on connection trouble, on a session expiry whatever the policy says of calls (the
/// operation carries on in the next session), and on a read-only server (it carries on once
/// the client is back with the quorum).
fn goes_on_after(policy: &dyn RetryPolicy, e: &Error) -> bool {
    policy.allow_retry_on(e)
        || matches!(
            e,
            Error::Connect(_) | Error::SessionExpired | Error::NotReadOnly
        )
}

/// Waits until the client behind `inner` is connected, without keeping it alive meanwhile;
/// `None` once it is gone or closed for good.
pub(crate) async fn connected(inner: &Weak<Inner>) -> Option<Arc<Inner>> {
    connected_to(inner, false).await
}

/// [`connected`], to a read-write server when `read_write`.
async fn connected_to(inner: &Weak<Inner>, read_write: bool) -> Option<Arc<Inner>> {
    let mut states = inner.upgrade()?.session.state_receiver();
    let usable = |s: &SessionState| match s {
        SessionState::Connected { read_only } => !(read_write && *read_only),
        _ => false,
    };
    let connected = states
        .wait_for(|s| usable(s) || s.is_terminal())
        .await
        .map(|s| usable(&s))
        .unwrap_or(false);
    if connected {
        inner.upgrade()
    } else {
        None
    }
}

/// Runs `attempt` whenever the client is connected, with a backoff of 50 ms doubling up to
/// 2 s, until it succeeds, fails with an error the retry policy would not retry, or the
/// client is closed or dropped (the task does not keep it alive).
pub(crate) fn spawn_until_done(
    client: &Client,
    what: &'static str,
    path: String,
    mut attempt: impl FnMut(Arc<Inner>) -> Attempt + Send + 'static,
) {
    let inner = Arc::downgrade(&client.inner);
    let retry_policy = client.retry.clone();
    client.inner.runtime.spawn(async move {
        let mut delay = Duration::from_millis(50);
        let mut needs_read_write = false;
        loop {
            let Some(strong) = connected_to(&inner, needs_read_write).await else {
                return;
            };
            let result = attempt(strong).await;
            needs_read_write = matches!(result, Err(Error::NotReadOnly));
            match result {
                Ok(()) => {
                    tracing::debug!(%path, what, "guaranteed operation done");
                    return;
                }
                Err(e) if goes_on_after(&*retry_policy, &e) => {
                    tracing::debug!(%path, what, %e, "guaranteed operation failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                Err(e) => {
                    tracing::warn!(%path, what, %e, "guaranteed operation gave up");
                    return;
                }
            }
        }
    });
}
