//! [`MultiLock`]: Curator's `InterProcessMultiLock` over mutexes, semaphore mutexes and read
//! or write locks — all or nothing.

use std::fmt;
use std::time::Duration;

use futures::future::{select_all, FutureExt};
use tokio::time::Instant;
use zk_client::Client;

use crate::mutex::{LockState, Mutex, MutexGuard};
use crate::rwlock::{ReadLock, WriteLock};
use crate::semaphore::{SemaphoreMutex, SemaphoreMutexGuard};
use crate::{Error, Result};

/// One lock of a [`MultiLock`]: what Curator's `InterProcessLock` covers.
///
/// A part is a lock *handle*: a clone of a [`ReadLock`] or [`WriteLock`] is the same handle
/// as the original, so a guard the original holds counts for
/// [`MultiLock::is_acquired`], and acquiring waits while that guard lives (as acquiring the
/// original twice would).
#[derive(Debug)]
#[non_exhaustive]
pub enum MultiLockPart {
    /// A [`Mutex`].
    Mutex(Mutex),
    /// The read side of a [`ReadWriteLock`](crate::ReadWriteLock).
    Read(ReadLock),
    /// The write side of a [`ReadWriteLock`](crate::ReadWriteLock).
    Write(WriteLock),
    /// A [`SemaphoreMutex`].
    SemaphoreMutex(SemaphoreMutex),
}

impl MultiLockPart {
    /// The lock's path.
    pub fn path(&self) -> &str {
        match self {
            MultiLockPart::Mutex(m) => m.path(),
            MultiLockPart::Read(r) => r.path(),
            MultiLockPart::Write(w) => w.path(),
            MultiLockPart::SemaphoreMutex(s) => s.path(),
        }
    }

    /// Whether a guard of this handle holds the lock now.
    pub fn is_acquired(&self) -> bool {
        match self {
            MultiLockPart::Mutex(m) => m.is_acquired(),
            MultiLockPart::Read(r) => r.is_acquired(),
            MultiLockPart::Write(w) => w.is_acquired(),
            MultiLockPart::SemaphoreMutex(s) => s.is_acquired(),
        }
    }

    async fn acquire_until(&self, deadline: Option<Instant>) -> Result<Option<MultiLockPartGuard>> {
        Ok(match self {
            MultiLockPart::Mutex(m) => m
                .acquire_until(deadline)
                .await?
                .map(MultiLockPartGuard::Mutex),
            MultiLockPart::Read(r) => r
                .acquire_until(deadline)
                .await?
                .map(MultiLockPartGuard::Mutex),
            MultiLockPart::Write(w) => w
                .acquire_until(deadline)
                .await?
                .map(MultiLockPartGuard::Mutex),
            MultiLockPart::SemaphoreMutex(s) => s
                .acquire_until(deadline)
                .await?
                .map(MultiLockPartGuard::SemaphoreMutex),
        })
    }
}

impl From<Mutex> for MultiLockPart {
    fn from(m: Mutex) -> Self {
        MultiLockPart::Mutex(m)
    }
}

impl From<ReadLock> for MultiLockPart {
    fn from(r: ReadLock) -> Self {
        MultiLockPart::Read(r)
    }
}

impl From<WriteLock> for MultiLockPart {
    fn from(w: WriteLock) -> Self {
        MultiLockPart::Write(w)
    }
}

impl From<SemaphoreMutex> for MultiLockPart {
    fn from(s: SemaphoreMutex) -> Self {
        MultiLockPart::SemaphoreMutex(s)
    }
}

/// The grant of one part of a [`MultiLock`].
#[derive(Debug)]
#[non_exhaustive]
pub enum MultiLockPartGuard {
    /// A [`Mutex`]'s, or a read or write lock's.
    Mutex(MutexGuard),
    /// A [`SemaphoreMutex`]'s.
    SemaphoreMutex(SemaphoreMutexGuard),
}

impl MultiLockPartGuard {
    /// The fencing token of the lock's node: strictly increasing across grants of the lock.
    pub fn fencing_token(&self) -> i64 {
        match self {
            MultiLockPartGuard::Mutex(g) => g.fencing_token(),
            MultiLockPartGuard::SemaphoreMutex(g) => g.fencing_token(),
        }
    }

    /// The lock's state now.
    pub fn state(&self) -> LockState {
        match self {
            MultiLockPartGuard::Mutex(g) => g.state(),
            MultiLockPartGuard::SemaphoreMutex(g) => g.state(),
        }
    }

    /// Resolves when the lock may be lost; returns its state then.
    pub async fn at_risk(&self) -> LockState {
        match self {
            MultiLockPartGuard::Mutex(g) => g.at_risk().await,
            MultiLockPartGuard::SemaphoreMutex(g) => g.at_risk().await,
        }
    }

    /// The lock node's path (client-relative).
    pub fn node_path(&self) -> &str {
        match self {
            MultiLockPartGuard::Mutex(g) => g.node_path(),
            MultiLockPartGuard::SemaphoreMutex(g) => g.node_path(),
        }
    }

    /// Releases the lock, until its node is gone.
    async fn release(self) -> Result<()> {
        match self {
            MultiLockPartGuard::Mutex(g) => g.release().await,
            MultiLockPartGuard::SemaphoreMutex(g) => g.release().await,
        }
    }

    /// Releases, waiting at most one connection timeout (the rest goes on in the background).
    async fn release_soon(self) -> Result<()> {
        match self {
            MultiLockPartGuard::Mutex(g) => g.release_soon().await,
            MultiLockPartGuard::SemaphoreMutex(g) => g.release_soon().await,
        }
    }
}

/// Several locks taken as one: Curator's `InterProcessMultiLock` over [`Mutex`]es,
/// [`SemaphoreMutex`]es and the read or write sides of
/// [`ReadWriteLock`](crate::ReadWriteLock)s (each keeps its own layout).
///
/// [`MultiLock::acquire`] takes the locks one after the other in the given order; if one
/// fails (or the time runs out), the locks taken so far are released, in reverse order,
/// before returning — it holds all or none. Give every process the paths in the same order,
/// or two of them can each hold a part and wait for the other forever (with
/// [`MultiLock::acquire_timeout`] they both give up instead).
///
/// Differences from Curator: the timeout bounds the waits of the whole acquisition together
/// (Curator gives each lock the full timeout); a path may appear once.
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
    locks: Vec<MultiLockPart>,
}

impl fmt::Debug for MultiLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let paths: Vec<&str> = self.locks.iter().map(MultiLockPart::path).collect();
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
        MultiLock::from_locks(mutexes)
    }

    /// A multi-lock of these locks (mutexes, semaphore mutexes, read locks, write locks),
    /// acquired in the order given.
    ///
    /// ```no_run
    /// # async fn f(client: zk_client::Client) -> zk_recipes::Result<()> {
    /// use zk_recipes::{MultiLock, MultiLockPart, Mutex, ReadWriteLock};
    ///
    /// let config = ReadWriteLock::new(client.clone(), "/app/locks/config")?;
    /// let job = Mutex::new(client, "/app/locks/job-7")?;
    /// let both = MultiLock::from_locks([
    ///     MultiLockPart::from(config.read_lock().clone()),
    ///     MultiLockPart::from(job),
    /// ])?;
    /// let guard = both.acquire().await?;
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty list, or a path given twice (the second lock
    /// would wait forever behind the first, or upgrade a read lock).
    pub fn from_locks(
        locks: impl IntoIterator<Item = impl Into<MultiLockPart>>,
    ) -> Result<MultiLock> {
        let locks: Vec<MultiLockPart> = locks.into_iter().map(Into::into).collect();
        if locks.is_empty() {
            return Err(Error::InvalidArgument(
                "a multi-lock needs at least one lock".to_owned(),
            ));
        }
        let mut paths = std::collections::HashSet::new();
        if let Some(dup) = locks.iter().find(|l| !paths.insert(l.path().to_owned())) {
            return Err(Error::InvalidArgument(format!(
                "{} appears twice in the multi-lock",
                dup.path()
            )));
        }
        Ok(MultiLock { locks })
    }

    /// The locks, in acquisition order.
    pub fn locks(&self) -> &[MultiLockPart] {
        &self.locks
    }

    /// Acquires every lock, in order, waiting as long as it takes. A lock lost while a
    /// later one is waited for (its session expired) makes it give them all back and start
    /// over: the guard returned holds every lock.
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

    /// Acquires every lock, waiting at most `timeout` for all of them together (the waits,
    /// not the requests: see [`Mutex::acquire_timeout`](crate::Mutex::acquire_timeout));
    /// `None` when the time ran out — the locks taken so far are released before returning (cut off from the
    /// server, each release is waited for at most one connection timeout, and then goes on
    /// in the background).
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
        loop {
            let Some(guards) = self.acquire_each(deadline).await? else {
                return Ok(None);
            };
            // A lock taken first may have been lost while the later ones were waited for (its
            // session expired, and someone else may hold it now): the set is not held. Give
            // everything back and start over; Curator's InterProcessMultiLock returns it.
            if !guards.iter().any(|g| g.state().is_final()) {
                return Ok(Some(MultiLockGuard { guards }));
            }
            tracing::debug!("a lock was lost while the others were waited for; starting over");
            let _ = release_reversed(guards, true).await;
        }
    }

    /// Acquires each lock in turn; `None` (nothing held) when the time ran out.
    async fn acquire_each(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Option<Vec<MultiLockPartGuard>>> {
        let mut guards = Vec::with_capacity(self.locks.len());
        for lock in &self.locks {
            match lock.acquire_until(deadline).await {
                Ok(Some(guard)) => guards.push(guard),
                Ok(None) => {
                    // Failures to release are ignored, as Curator does; the nodes are deleted in the
                    // background regardless.
                    let _ = release_reversed(guards, true).await;
                    return Ok(None);
                }
                Err(e) => {
                    // Failures to release are ignored, as Curator does; the nodes are deleted in the
                    // background regardless.
                    let _ = release_reversed(guards, true).await;
                    return Err(e);
                }
            }
        }
        Ok(Some(guards))
    }

    /// Whether this multi-lock's guards hold every lock now (Curator's
    /// `isAcquiredInThisProcess`: all of them).
    pub fn is_acquired(&self) -> bool {
        self.locks.iter().all(MultiLockPart::is_acquired)
    }
}

/// Releases `guards` in reverse order, each until done or, when `soon`, for at most a
/// connection timeout ([`MultiLockPartGuard::release_soon`]); the first error.
async fn release_reversed(mut guards: Vec<MultiLockPartGuard>, soon: bool) -> Result<()> {
    let mut first_error = None;
    while let Some(guard) = guards.pop() {
        let released = if soon {
            guard.release_soon().await
        } else {
            guard.release().await
        };
        if let Err(e) = released {
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
    guards: Vec<MultiLockPartGuard>,
}

impl MultiLockGuard {
    /// The guard of each lock, in acquisition order.
    pub fn guards(&self) -> &[MultiLockPartGuard] {
        &self.guards
    }

    /// The fencing token of each lock, in acquisition order.
    pub fn fencing_tokens(&self) -> Vec<i64> {
        self.guards
            .iter()
            .map(MultiLockPartGuard::fencing_token)
            .collect()
    }

    /// The worst state among the locks ([`LockState::Lost`] before
    /// [`LockState::Suspended`] before [`LockState::Held`]).
    pub fn state(&self) -> LockState {
        let states: Vec<LockState> = self.guards.iter().map(MultiLockPartGuard::state).collect();
        [LockState::Released, LockState::Lost, LockState::Suspended]
            .into_iter()
            .find(|s| states.contains(s))
            .unwrap_or(LockState::Held)
    }

    /// Resolves when one of the locks may be lost (see [`MultiLockPartGuard::at_risk`]); returns
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
        release_reversed(std::mem::take(&mut self.guards), false).await
    }
}

impl Drop for MultiLockGuard {
    fn drop(&mut self) {
        while let Some(guard) = self.guards.pop() {
            drop(guard);
        }
    }
}
