//! [`MultiLock`]: Curator's `InterProcessMultiLock` over [`Mutex`]es — all or nothing.

use std::fmt;
use std::time::Duration;

use futures::future::{select_all, FutureExt};
use tokio::time::Instant;
use zk_client::Client;

use crate::mutex::{LockState, Mutex, MutexGuard};
use crate::{Error, Result};

/// Several [`Mutex`]es taken as one: Curator's `InterProcessMultiLock` (each path keeps its
/// mutex layout, `<path>/_c_<uuid>-lock-N`).
///
/// [`MultiLock::acquire`] takes the locks one after the other in the given order; if one
/// fails (or the time runs out), the locks taken so far are released, in reverse order,
/// before returning — it holds all or none. Give every process the paths in the same order,
/// or two of them can each hold a part and wait for the other forever (with
/// [`MultiLock::acquire_timeout`] they both give up instead).
///
/// Differences from Curator: the timeout bounds the whole acquisition (Curator gives each
/// lock the full timeout), and only mutexes can be combined.
///
/// ```no_run
/// # async fn f(client: zk_client::Client) -> zk_recipes::Result<()> {
/// use std::time::Duration;
/// use zk_recipes::MultiLock;
///
/// let both = MultiLock::new(client, ["/app/locks/account-1", "/app/locks/account-2"])?;
/// if let Some(guard) = both.acquire_timeout(Duration::from_secs(5)).await? {
///     println!("tokens {:?}", guard.fencing_tokens());
///     guard.release().await?;
/// }
/// # Ok(()) }
/// ```
pub struct MultiLock {
    mutexes: Vec<Mutex>,
}

impl fmt::Debug for MultiLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let paths: Vec<&str> = self.mutexes.iter().map(Mutex::path).collect();
        f.debug_struct("MultiLock").field("paths", &paths).finish()
    }
}

impl MultiLock {
    /// A multi-lock of one [`Mutex`] per path, acquired in the order given.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for no paths, or an invalid path or the root.
    pub fn new<I, P>(client: Client, paths: I) -> Result<MultiLock>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<str>,
    {
        let mutexes = paths
            .into_iter()
            .map(|p| Mutex::new(client.clone(), p.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        MultiLock::from_mutexes(mutexes)
    }

    /// A multi-lock of these mutexes, acquired in the order given.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty list, or a path given twice (the second lock
    /// would wait forever behind the first).
    pub fn from_mutexes(mutexes: Vec<Mutex>) -> Result<MultiLock> {
        if mutexes.is_empty() {
            return Err(Error::InvalidArgument(
                "a multi-lock needs at least one lock".to_owned(),
            ));
        }
        let mut paths = std::collections::HashSet::new();
        if let Some(dup) = mutexes.iter().find(|m| !paths.insert(m.path().to_owned())) {
            return Err(Error::InvalidArgument(format!(
                "{} appears twice in the multi-lock",
                dup.path()
            )));
        }
        Ok(MultiLock { mutexes })
    }

    /// The mutexes, in acquisition order.
    pub fn mutexes(&self) -> &[Mutex] {
        &self.mutexes
    }

    /// Acquires every lock, in order, waiting as long as it takes.
    ///
    /// # Errors
    /// [`Error::Zk`] when acquiring one of the locks fails; the ones taken before are
    /// released first.
    ///
    /// # Cancellation safety
    /// Dropping the future releases the locks taken so far and deletes the node being
    /// waited on (in the background).
    pub async fn acquire(&self) -> Result<MultiLockGuard> {
        match self.acquire_until(None).await? {
            Some(guard) => Ok(guard),
            None => Err(Error::Closed),
        }
    }

    /// Acquires every lock within `timeout` (for all of them together); `None` when the time
    /// ran out — the locks taken so far are released before returning.
    ///
    /// # Errors
    /// As [`MultiLock::acquire`].
    ///
    /// # Cancellation safety
    /// As [`MultiLock::acquire`].
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Option<MultiLockGuard>> {
        self.acquire_until(Some(Instant::now() + timeout)).await
    }

    async fn acquire_until(&self, deadline: Option<Instant>) -> Result<Option<MultiLockGuard>> {
        let mut guards = Vec::with_capacity(self.mutexes.len());
        for mutex in &self.mutexes {
            match mutex.acquire_until(deadline).await {
                Ok(Some(guard)) => guards.push(guard),
                Ok(None) => {
                    // Failures to release are ignored, as Curator does; the nodes are deleted in the
                    // background regardless.
                    let _ = release_reversed(guards).await;
                    return Ok(None);
                }
                Err(e) => {
                    // Failures to release are ignored, as Curator does; the nodes are deleted in the
                    // background regardless.
                    let _ = release_reversed(guards).await;
                    return Err(e);
                }
            }
        }
        Ok(Some(MultiLockGuard { guards }))
    }

    /// Whether this multi-lock's guards hold every lock now (Curator's
    /// `isAcquiredInThisProcess`: all of them).
    pub fn is_acquired(&self) -> bool {
        self.mutexes.iter().all(Mutex::is_acquired)
    }
}

/// Releases `guards` in reverse order; the first error.
async fn release_reversed(mut guards: Vec<MutexGuard>) -> Result<()> {
    let mut first_error = None;
    while let Some(guard) = guards.pop() {
        if let Err(e) = guard.release().await {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Holds every lock of a [`MultiLock`]. Dropping it releases them all (in reverse order,
/// nodes deleted in the background); prefer [`MultiLockGuard::release`].
#[must_use = "dropping the guard releases the locks at once"]
#[derive(Debug)]
pub struct MultiLockGuard {
    guards: Vec<MutexGuard>,
}

impl MultiLockGuard {
    /// The guard of each lock, in acquisition order.
    pub fn guards(&self) -> &[MutexGuard] {
        &self.guards
    }

    /// The fencing token of each lock, in acquisition order.
    pub fn fencing_tokens(&self) -> Vec<i64> {
        self.guards.iter().map(MutexGuard::fencing_token).collect()
    }

    /// The worst state among the locks ([`LockState::Lost`] before
    /// [`LockState::Suspended`] before [`LockState::Held`]).
    pub fn state(&self) -> LockState {
        let states: Vec<LockState> = self.guards.iter().map(MutexGuard::state).collect();
        [LockState::Released, LockState::Lost, LockState::Suspended]
            .into_iter()
            .find(|s| states.contains(s))
            .unwrap_or(LockState::Held)
    }

    /// Resolves when one of the locks may be lost (see [`MutexGuard::at_risk`]); returns
    /// that lock's state.
    pub async fn at_risk(&self) -> LockState {
        let waits = self.guards.iter().map(|g| g.at_risk().boxed());
        select_all(waits).await.0
    }

    /// Releases every lock, in reverse order, each until its node is gone.
    ///
    /// # Errors
    /// The first error of the releases (all are attempted).
    pub async fn release(mut self) -> Result<()> {
        release_reversed(std::mem::take(&mut self.guards)).await
    }
}

impl Drop for MultiLockGuard {
    fn drop(&mut self) {
        while let Some(guard) = self.guards.pop() {
            drop(guard);
        }
    }
}
