//! Helpers shared by the recipes: waiting for a connection, deleting a node until it is gone,
//! and cleaning up a node whose owner gave up on it.

use std::time::Duration;

use zk_client::{Client, ConnectionState, Error as ZkError, SessionState};

/// Whether a connection in state `s` may count as holding a lock or leadership: connected to
/// a server that serves writes. A read-only server does not (although
/// [`ConnectionState::is_connected`] counts it), nor does a suspended or lost connection.
pub(crate) fn serves_writes(s: ConnectionState) -> bool {
    matches!(s, ConnectionState::Connected | ConnectionState::Reconnected)
}

/// Waits until the client is connected (to a server that serves writes when `read_write`);
/// false if the client was closed (or failed for good).
pub(crate) async fn wait_connected(client: &Client, read_write: bool) -> bool {
    let usable = |s: &SessionState| match s {
        SessionState::Connected { read_only } => !(read_write && *read_only),
        _ => false,
    };
    let mut rx = client.session().state_receiver();
    rx.wait_for(|s| usable(s) || s.is_terminal())
        .await
        .map(|s| usable(&s))
        .unwrap_or(false)
}

/// Deletes `path` (client-relative) until it is gone: across connection losses, session
/// changes (any session may delete an ephemeral node it may write) and read-only servers
/// (it waits for one that serves writes). Returns once the node no longer exists, or the
/// client was closed (closing the session removes its ephemerals), or a non-retryable error
/// (e.g. NOAUTH) says it never will be deleted by us.
pub(crate) async fn delete_until_gone(client: &Client, path: &str) -> Result<(), ZkError> {
    let mut backoff = RetryBackoff::default();
    loop {
        match client.delete(path).quietly().await {
            Ok(()) | Err(ZkError::Closed) => return Ok(()),
            Err(e) if is_connection_trouble(&e) => {
                tracing::debug!(%path, %e, "delete failed; retrying until the node is gone");
                if !backoff.wait(client, &e).await {
                    return Ok(());
                }
            }
            Err(e) => {
                tracing::warn!(%path, %e, "giving up deleting a recipe node");
                return Err(e);
            }
        }
    }
}

/// Whether `e` is connection trouble that retrying after a reconnect can get past (a lost
/// connection, a failed connect, a read-only server refusing a write).
pub(crate) fn is_connection_trouble(e: &ZkError) -> bool {
    e.is_retryable() || matches!(e, ZkError::Connect(_) | ZkError::NotReadOnly)
}

/// The pause between retries of a background operation: 20 ms, doubling up to 1 s.
#[derive(Debug)]
pub(crate) struct RetryBackoff(Duration);

impl Default for RetryBackoff {
    fn default() -> Self {
        RetryBackoff(Duration::from_millis(20))
    }
}

impl RetryBackoff {
    /// After connection trouble `e`: waits for a connection that can serve the retry (a
    /// read-write one after NOTREADONLY), then for the back-off; false if the client ended.
    pub(crate) async fn wait(&mut self, client: &Client, e: &ZkError) -> bool {
        if !wait_connected(client, *e == ZkError::NotReadOnly).await {
            return false;
        }
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Duration::from_secs(1));
        true
    }
}

/// The runtime to start background work of `client` on: the current one, or — from a plain
/// thread (a guard dropped outside any runtime) — the client's own.
pub(crate) fn runtime_for(client: &Client) -> tokio::runtime::Handle {
    tokio::runtime::Handle::try_current().unwrap_or_else(|_| client.runtime().clone())
}

/// Deletes `path` in the background until it is gone.
pub(crate) fn delete_in_background(client: &Client, path: String) {
    let client = client.clone();
    runtime_for(&client).spawn(async move {
        let _ = delete_until_gone(&client, &path).await;
    });
}

/// A node this recipe created and still owes a delete: deleted in the background when dropped
/// while armed (e.g. when an acquire future is cancelled mid-wait).
#[derive(Debug)]
pub(crate) struct OwnedNode {
    client: Client,
    path: Option<String>,
}

impl OwnedNode {
    pub(crate) fn new(client: &Client) -> OwnedNode {
        OwnedNode {
            client: client.clone(),
            path: None,
        }
    }

    pub(crate) fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    pub(crate) fn set(&mut self, path: String) {
        self.path = Some(path);
    }

    /// Forgets the node without deleting it (it was handed to a guard, or is gone).
    pub(crate) fn disarm(&mut self) -> Option<String> {
        self.path.take()
    }

    /// Deletes the node now and waits for the first attempt (bounded by the client's
    /// connection timeout and retry policy); if it fails, deleting goes on in the background.
    /// Runs in its own task, so cancelling this does not stop the delete.
    pub(crate) async fn delete_now(&mut self) {
        if let Some(path) = self.path.take() {
            let client = self.client.clone();
            let (tx, rx) = tokio::sync::oneshot::channel();
            tokio::spawn(async move {
                match client.delete(&path).quietly().await {
                    Ok(()) | Err(ZkError::Closed) => {
                        let _ = tx.send(());
                    }
                    Err(_) => {
                        let _ = tx.send(());
                        let _ = delete_until_gone(&client, &path).await;
                    }
                }
            });
            let _ = rx.await;
        }
    }

    /// Deletes the node in the background.
    pub(crate) fn delete_later(&mut self) {
        if let Some(path) = self.path.take() {
            delete_in_background(&self.client, path);
        }
    }
}

impl Drop for OwnedNode {
    fn drop(&mut self) {
        self.delete_later();
    }
}

/// Locks a std mutex, taking the data even if a panicking holder poisoned it (recipe state
/// stays usable; every update is a single assignment).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Resolves once the flag is true, or its sender is gone (a stop signal).
pub(crate) async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Resolves once the flag is true; never if its sender is gone.
pub(crate) async fn became_true(rx: &mut tokio::sync::watch::Receiver<bool>) {
    if rx.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The subscribers of a recipe's event stream: each gets every event from its subscription
/// on, unbounded (emitting never blocks the recipe); closing ends every stream.
#[derive(Debug)]
pub(crate) struct Listeners<T> {
    /// `None` once closed (later subscribers get an ended stream).
    senders: std::sync::Mutex<Option<Vec<tokio::sync::mpsc::UnboundedSender<T>>>>,
}

impl<T> Default for Listeners<T> {
    fn default() -> Self {
        Listeners {
            senders: std::sync::Mutex::new(Some(Vec::new())),
        }
    }
}

impl<T: Clone> Listeners<T> {
    /// A new subscriber; it sees every event from now on.
    pub(crate) fn subscribe(&self) -> tokio::sync::mpsc::UnboundedReceiver<T> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        if let Ok(mut senders) = self.senders.lock() {
            // Once closed, `tx` is dropped here and the stream ends at once.
            if let Some(list) = senders.as_mut() {
                list.push(tx);
            }
        }
        rx
    }

    /// Sends `event` to every subscriber still listening.
    pub(crate) fn emit(&self, event: T) {
        if let Ok(mut senders) = self.senders.lock() {
            if let Some(list) = senders.as_mut() {
                list.retain(|tx| tx.send(event.clone()).is_ok());
            }
        }
    }

    /// Ends every subscriber's stream.
    pub(crate) fn close(&self) {
        if let Ok(mut senders) = self.senders.lock() {
            *senders = None;
        }
    }
}

/// Raises a stop flag when dropped.
struct RaiseOnDrop(tokio::sync::watch::Sender<bool>);

impl Drop for RaiseOnDrop {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

/// A recipe's background task: started at most once, told to stop through a flag it watches,
/// and awaited when the recipe closes.
#[derive(Debug)]
pub(crate) struct Background {
    stop: tokio::sync::watch::Sender<bool>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Background {
    pub(crate) fn new() -> Background {
        Background {
            stop: tokio::sync::watch::channel(false).0,
            task: std::sync::Mutex::new(None),
        }
    }

    /// Spawns the task `make` builds from the stop flag (needs a tokio runtime).
    pub(crate) fn start<F>(
        &self,
        make: impl FnOnce(tokio::sync::watch::Receiver<bool>) -> F,
    ) -> crate::Result<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        if *self.stop.borrow() {
            return Err(crate::Error::Closed);
        }
        let mut slot = self.task.lock().map_err(|_| crate::Error::Closed)?;
        if slot.is_some() {
            return Err(crate::Error::AlreadyStarted);
        }
        let task = make(self.stop.subscribe());
        // A task that ends on its own (its client closed, or failed authentication; or it
        // panicked) raises the flag too: whoever waits for it (a cache's wait_initialized)
        // learns it is over.
        let ended = RaiseOnDrop(self.stop.clone());
        *slot = Some(tokio::spawn(async move {
            let _ended = ended;
            task.await;
        }));
        Ok(())
    }

    /// Whether the task was started and not told to stop.
    pub(crate) fn is_running(&self) -> bool {
        !*self.stop.borrow() && self.task.lock().map(|t| t.is_some()).unwrap_or(false)
    }

    /// The stop flag (true once stopping).
    pub(crate) fn stopped(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Tells the task to stop, without waiting (for `Drop`).
    pub(crate) fn signal_stop(&self) {
        self.stop.send_replace(true);
    }

    /// Tells the task to stop and waits until it ended.
    pub(crate) async fn stop(&self) {
        self.signal_stop();
        let handle = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(handle) = handle {
            let _ = handle.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_read_write_connections_serve_writes() {
        assert!(serves_writes(ConnectionState::Connected));
        assert!(serves_writes(ConnectionState::Reconnected));
        assert!(!serves_writes(ConnectionState::ReadOnly));
        assert!(!serves_writes(ConnectionState::Suspended));
        assert!(!serves_writes(ConnectionState::Lost));
    }
}
