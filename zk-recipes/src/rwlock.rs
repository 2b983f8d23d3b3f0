//! [`ReadWriteLock`]: Curator's `InterProcessReadWriteLock`, with fencing tokens and lock-state
//! reporting on its guards.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use zk_client::Client;

use crate::lock_internals::{Internals, Kind, READ_NAME, WRITE_NAME};
use crate::mutex::{MutexGuard, WaitStats};
use crate::nodes::check_base_path;
use crate::{Error, Result};

/// The name of read nodes (as Curator): `<path>/_c_<uuid>-__READ__NNNNNNNNNN`.
pub const READ_LOCK_NAME: &str = READ_NAME;
/// The name of write nodes (as Curator): `<path>/_c_<uuid>-__WRIT__NNNNNNNNNN`.
pub const WRITE_LOCK_NAME: &str = WRITE_NAME;

/// A distributed, fair read-write lock: Curator's `InterProcessReadWriteLock`,
/// layout-compatible with it.
///
/// Both locks queue under one path: a read acquisition creates a protected
/// EPHEMERAL_SEQUENTIAL node `<path>/_c_<uuid>-__READ__N`, a write acquisition
/// `<path>/_c_<uuid>-__WRIT__N`; the queue is sorted on the sequence number (Curator strips
/// the name up to the last `__READ__`, then up to the last `__WRIT__`). A **writer** holds
/// the lock when its node is first and watches its immediate predecessor (of either kind)
/// otherwise. A **reader** holds the lock while no write node precedes it — so readers share
/// the lock, and a reader queued behind a waiting writer waits (no writer starvation) — and
/// otherwise watches the nearest preceding write node only.
///
/// Guards are [`MutexGuard`]s with the mutex's guarantees: a fencing token (the node's
/// `czxid`), connection-state reporting ([`MutexGuard::at_risk`], [`MutexGuard::lost`]),
/// explicit re-entrancy ([`MutexGuard::reenter`]), revocation requests, and a release that
/// deletes the node until it is gone before the handle forgets it.
///
/// The handle is the unit of ownership (Curator's thread): while a guard of one of its locks
/// is alive, another acquire of the *same* lock on this handle waits for it (use
/// [`MutexGuard::reenter`]), and
///
/// * **downgrade** works: while this handle holds the write lock, [`ReadLock::acquire`] is
///   granted at once; release the write guard afterwards and keep reading. (If another
///   writer queued between the two nodes, the read grant keeps the write node until the
///   read guard is released, so that writer cannot enter while this handle still reads.)
/// * **upgrade** is refused: [`WriteLock::acquire`] while this handle holds the read lock
///   fails with [`Error::WouldDeadlock`] (in Curator it waits forever).
///
/// ```no_run
/// # async fn f(client: zk_client::Client) -> zk_recipes::Result<()> {
/// use zk_recipes::ReadWriteLock;
///
/// let lock = ReadWriteLock::new(client, "/app/locks/config")?;
/// let write = lock.write_lock().acquire().await?;
/// // ... write, fenced by write.fencing_token() ...
/// let read = lock.read_lock().acquire().await?; // downgrade
/// write.release().await?;
/// // ... read ...
/// read.release().await?;
/// # Ok(()) }
/// ```
pub struct ReadWriteLock {
    read: ReadLock,
    write: WriteLock,
}

impl fmt::Debug for ReadWriteLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadWriteLock")
            .field("path", &self.write.writer.path)
            .finish_non_exhaustive()
    }
}

impl ReadWriteLock {
    /// A read-write lock on `path` (its nodes are `path`'s children). Nothing is sent until
    /// the first acquire.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an invalid path or the root.
    pub fn new(client: Client, path: &str) -> Result<ReadWriteLock> {
        ReadWriteLock::with_node_data(client, path, Vec::new())
    }

    /// As [`ReadWriteLock::new`], writing `data` into every lock node.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an invalid path or the root.
    pub fn with_node_data(
        client: Client,
        path: &str,
        data: impl Into<Vec<u8>>,
    ) -> Result<ReadWriteLock> {
        check_base_path(path)?;
        let data = data.into();
        let writer = Internals::new(client.clone(), path, data.clone(), Kind::Write);
        let reader = Internals::new(
            client,
            path,
            data,
            Kind::Read {
                writer: writer.clone(),
            },
        );
        Ok(ReadWriteLock {
            read: ReadLock {
                reader: reader.clone(),
            },
            write: WriteLock { writer, reader },
        })
    }

    /// The lock path.
    pub fn path(&self) -> &str {
        &self.write.writer.path
    }

    /// The read lock (shared).
    pub fn read_lock(&self) -> &ReadLock {
        &self.read
    }

    /// The write lock (exclusive).
    pub fn write_lock(&self) -> &WriteLock {
        &self.write
    }

    /// Every read and write node under the path, in queue order, as node names.
    ///
    /// # Errors
    /// [`Error::Zk`] when the listing fails.
    pub async fn participant_nodes(&self) -> Result<Vec<String>> {
        self.write.writer.queue().await
    }
}

/// The read side of a [`ReadWriteLock`] (shared between processes while no writer precedes).
/// A clone is the same handle (it shares the handle's grants), e.g. to put the read lock in
/// a [`MultiLock`](crate::MultiLock).
#[derive(Clone)]
pub struct ReadLock {
    reader: Arc<Internals>,
}

impl fmt::Debug for ReadLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadLock")
            .field("path", &self.reader.path)
            .finish_non_exhaustive()
    }
}

impl ReadLock {
    /// Acquires the read lock: waits while a write node precedes ours (at once while this
    /// handle holds the write lock: downgrade), and while a read guard of this handle is
    /// alive (use [`MutexGuard::reenter`] to share a read grant).
    ///
    /// # Errors
    /// [`Error::Zk`] when a ZooKeeper call fails after the client's retries (the node this
    /// attempt created, if any, is deleted).
    ///
    /// # Cancellation safety
    /// Dropping the future deletes the node it created (in the background).
    pub async fn acquire(&self) -> Result<MutexGuard> {
        match self.reader.acquire_until(None).await? {
            Some(guard) => Ok(guard),
            None => Err(Error::Closed),
        }
    }

    /// As [`ReadLock::acquire`], waiting at most `timeout` (the waits, not the requests: see
    /// [`Mutex::acquire_timeout`](crate::Mutex::acquire_timeout)); `None` when the time ran
    /// out (the node this attempt created is deleted).
    ///
    /// # Errors
    /// As [`ReadLock::acquire`].
    ///
    /// # Cancellation safety
    /// As [`ReadLock::acquire`].
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Option<MutexGuard>> {
        self.acquire_until(Some(Instant::now() + timeout)).await
    }

    /// As [`ReadLock::acquire_timeout`] with a deadline (`None`: no deadline).
    pub(crate) async fn acquire_until(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Option<MutexGuard>> {
        self.reader.acquire_until(deadline).await
    }

    /// The lock's path.
    pub fn path(&self) -> &str {
        &self.reader.path
    }

    /// Whether a guard of this handle holds the read lock now.
    pub fn is_acquired(&self) -> bool {
        self.reader.is_acquired()
    }

    /// The read nodes under the path, in queue order, as node names.
    ///
    /// # Errors
    /// [`Error::Zk`] when the listing fails.
    pub async fn participant_nodes(&self) -> Result<Vec<String>> {
        self.reader.participant_nodes().await
    }

    /// Wait counters of this lock, for tests.
    #[doc(hidden)]
    pub fn wait_stats(&self) -> watch::Receiver<WaitStats> {
        self.reader.wait_stats()
    }
}

/// The write side of a [`ReadWriteLock`] (exclusive against readers and writers). A clone is
/// the same handle (it shares the handle's grants).
#[derive(Clone)]
pub struct WriteLock {
    writer: Arc<Internals>,
    reader: Arc<Internals>,
}

impl fmt::Debug for WriteLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteLock")
            .field("path", &self.writer.path)
            .finish_non_exhaustive()
    }
}

impl WriteLock {
    /// Acquires the write lock: waits until our node is first (every earlier reader and
    /// writer is gone), and while a write guard of this handle is alive.
    ///
    /// # Errors
    /// [`Error::WouldDeadlock`] while this handle holds the read lock (no upgrade);
    /// [`Error::Zk`] when a ZooKeeper call fails after the client's retries (the node this
    /// attempt created, if any, is deleted).
    ///
    /// # Cancellation safety
    /// Dropping the future deletes the node it created (in the background).
    pub async fn acquire(&self) -> Result<MutexGuard> {
        self.check_no_upgrade()?;
        match self.writer.acquire_until(None).await? {
            Some(guard) => Ok(guard),
            None => Err(Error::Closed),
        }
    }

    /// As [`WriteLock::acquire`], waiting at most `timeout` (the waits, not the requests:
    /// see [`Mutex::acquire_timeout`](crate::Mutex::acquire_timeout)); `None` when the time
    /// ran out (the node this attempt created is deleted).
    ///
    /// # Errors
    /// As [`WriteLock::acquire`].
    ///
    /// # Cancellation safety
    /// As [`WriteLock::acquire`].
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Option<MutexGuard>> {
        self.acquire_until(Some(Instant::now() + timeout)).await
    }

    /// As [`WriteLock::acquire_timeout`] with a deadline (`None`: no deadline).
    pub(crate) async fn acquire_until(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Option<MutexGuard>> {
        self.check_no_upgrade()?;
        self.writer.acquire_until(deadline).await
    }

    /// The lock's path.
    pub fn path(&self) -> &str {
        &self.writer.path
    }

    fn check_no_upgrade(&self) -> Result<()> {
        if self.reader.has_guards() {
            return Err(Error::WouldDeadlock(format!(
                "{}: this handle holds the read lock; a read lock cannot be upgraded",
                self.writer.path
            )));
        }
        Ok(())
    }

    /// Whether a guard of this handle holds the write lock now.
    pub fn is_acquired(&self) -> bool {
        self.writer.is_acquired()
    }

    /// The write nodes under the path, in queue order, as node names.
    ///
    /// # Errors
    /// [`Error::Zk`] when the listing fails.
    pub async fn participant_nodes(&self) -> Result<Vec<String>> {
        self.writer.participant_nodes().await
    }

    /// Wait counters of this lock, for tests.
    #[doc(hidden)]
    pub fn wait_stats(&self) -> watch::Receiver<WaitStats> {
        self.writer.wait_stats()
    }
}
