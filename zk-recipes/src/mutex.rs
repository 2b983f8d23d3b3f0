//! [`Mutex`]: Curator's `InterProcessMutex`, with fencing tokens and lock-state reporting.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use zk_client::Client;

use crate::lock_internals::{Internals, Kind};
pub use crate::lock_internals::{LockState, LockStates, MutexGuard, WaitStats};
use crate::nodes::check_base_path;
use crate::{Error, Result};

/// The name of lock nodes (Curator's `InterProcessMutex` uses the same): a lock node is
/// `<path>/_c_<uuid>-lock-NNNNNNNNNN`.
pub const LOCK_NAME: &str = "lock-";

/// A distributed, reentrant, fair mutex: Curator's `InterProcessMutex`, layout-compatible with
/// it (Java and Rust processes can share one lock path).
///
/// Each acquisition creates a protected EPHEMERAL_SEQUENTIAL node `<path>/_c_<uuid>-lock-N`
/// (parents are created as containers, so empty lock paths are reaped by the server). The
/// lowest sequence number (sorted on the part after `lock-`, ignoring the protection prefix)
/// holds the lock; every other waiter watches only its immediate predecessor, so a release
/// wakes exactly one waiter (no herd effect). A waiter reads its own node (its
/// `ephemeralOwner` must be the current session) in the same round trip as the queue, leaving
/// a watch on it; the next in line takes the lock as soon as its predecessor's deletion
/// arrives, with no further read, when that watch shows its node unchanged (no node can be
/// created ahead of it), so a hand-off costs about one write round trip.
///
/// Mutual exclusion holds between handles *and* between tasks sharing one handle (e.g. through
/// an `Arc`): while a [`MutexGuard`] of this handle is alive, [`Mutex::acquire`] on the same
/// handle waits until that guard (and every guard re-entered from it) is released and the lock
/// node is gone, then queues for the lock like any other acquirer. Re-entrancy is explicit:
/// [`MutexGuard::reenter`] returns another guard for the same grant (same node, same fencing
/// token) at once; the node is deleted when the last of them is released.
///
/// A holder that loses its lock ([`LockState::Lost`]) still blocks further acquires on its
/// handle until its guard is released: it may still be inside the critical section.
///
/// Every lock is revocable (Curator's `makeRevocable`, always on): another process can ask
/// the holder to release by writing `__REVOKE__` into the holder's node
/// ([`Revoker::attempt_revoke`](crate::Revoker::attempt_revoke)); the holder learns of it
/// through [`MutexGuard::revocation_requested`] and decides what to do.
///
/// ```no_run
/// # async fn f(client: zk_client::Client) -> zk_recipes::Result<()> {
/// use zk_recipes::{LockState, Mutex};
///
/// let mutex = Mutex::new(client, "/app/locks/orders")?;
/// let guard = mutex.acquire().await?;
/// // Hand the token to the protected resource, which rejects any token lower than the
/// // highest it has seen.
/// let token = guard.fencing_token();
/// tokio::select! {
///     _ = guard.at_risk() => { /* SUSPENDED or LOST: stop working on the resource */ }
///     _ = async { /* critical section using `token` */ } => {}
/// }
/// guard.release().await?;
/// # Ok(()) }
/// ```
pub struct Mutex {
    inner: Arc<Internals>,
}

impl fmt::Debug for Mutex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mutex")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Mutex {
    /// A mutex on `path` (its lock nodes are `path`'s children). Nothing is sent until the
    /// first acquire.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an invalid path or the root.
    pub fn new(client: Client, path: &str) -> Result<Mutex> {
        Mutex::with_node_data(client, path, Vec::new())
    }

    /// As [`Mutex::new`], writing `data` into every lock node (e.g. a host name, so operators
    /// can see who holds or waits for the lock; Curator writes the local IP address).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an invalid path or the root.
    pub fn with_node_data(client: Client, path: &str, data: impl Into<Vec<u8>>) -> Result<Mutex> {
        check_base_path(path)?;
        Ok(Mutex {
            inner: Internals::new(
                client,
                path,
                data.into(),
                Kind::Exclusive {
                    lock_name: LOCK_NAME,
                },
            ),
        })
    }

    /// The lock path.
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// The client this mutex uses.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Acquires the lock, waiting as long as it takes — also for a guard of this very handle
    /// to be released (use [`MutexGuard::reenter`] for re-entrancy).
    ///
    /// # Errors
    /// [`Error::Zk`] when a ZooKeeper call fails after the client's retries (the node this
    /// attempt created, if any, is deleted).
    ///
    /// # Cancellation safety
    /// Dropping the future deletes the node it created (in the background).
    pub async fn acquire(&self) -> Result<MutexGuard> {
        match self.inner.acquire_until(None).await? {
            Some(guard) => Ok(guard),
            None => Err(Error::Closed),
        }
    }

    /// Acquires the lock, waiting at most `timeout`; `None` when the time ran out (the node
    /// this attempt created is deleted before returning, or — if the connection is down —
    /// handed to a background delete). As Curator's, the timeout bounds the wait for the
    /// lock, not the requests that take a place in the queue (those are bounded by the
    /// client's connection timeout and retry policy): `Duration::ZERO` is a try-lock.
    ///
    /// # Errors
    /// As [`Mutex::acquire`].
    ///
    /// # Cancellation safety
    /// As [`Mutex::acquire`].
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Option<MutexGuard>> {
        self.inner
            .acquire_until(Some(Instant::now() + timeout))
            .await
    }

    /// As [`Mutex::acquire_timeout`] with a deadline (`None`: no deadline).
    pub(crate) async fn acquire_until(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Option<MutexGuard>> {
        self.inner.acquire_until(deadline).await
    }

    /// Whether a guard of this handle holds the lock now (Curator's
    /// `isAcquiredInThisProcess`, per handle).
    pub fn is_acquired(&self) -> bool {
        self.inner.is_acquired()
    }

    /// The lock nodes under the path, in queue order (holder first), as node names.
    ///
    /// # Errors
    /// [`Error::Zk`] when the listing fails.
    pub async fn participant_nodes(&self) -> Result<Vec<String>> {
        self.inner.participant_nodes().await
    }

    /// Wait counters of this handle, for tests.
    #[doc(hidden)]
    pub fn wait_stats(&self) -> watch::Receiver<WaitStats> {
        self.inner.wait_stats()
    }
}
