//! [`SharedValue`] and [`SharedCount`]: Curator's shared values, kept current by a watch.

use std::fmt;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use zk_client::{Client, ConnectionState, ConnectionStates, Error as ZkError, Stat, WatchFuture};

use crate::nodes::check_base_path;
use crate::util::lock;
use crate::write_once::{write_once, Written};
use crate::{Error, Result};

/// A value with the node version it was read at (Curator's `VersionedValue`). When the node
/// holds data the value cannot be decoded from (e.g. an operator's `set` of a count), the
/// version is that data's and the value the last one decoded: a compare-and-set against it
/// replaces the undecodable data (logged as a warning when read).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VersionedValue<T> {
    /// The node's data version (`-1` before the value was first read).
    pub version: i32,
    /// The zxid of the node's last modification (`mzxid`; `-1` before the first read). The
    /// cache only moves forward in this order, so a late reply never overwrites a newer value.
    pub zxid: i64,
    /// The value.
    pub value: T,
}

/// How a shared value's bytes map to its values.
trait Codec<T>: Send + Sync + 'static {
    fn decode(bytes: &[u8]) -> Option<T>;
}

struct Bytes;

impl Codec<Vec<u8>> for Bytes {
    fn decode(bytes: &[u8]) -> Option<Vec<u8>> {
        Some(bytes.to_vec())
    }
}

struct Count;

impl Codec<i32> for Count {
    fn decode(bytes: &[u8]) -> Option<i32> {
        <[u8; 4]>::try_from(bytes).ok().map(i32::from_be_bytes)
    }
}

enum Status {
    Latent,
    Starting,
    Started(JoinHandle<()>),
    Closed,
}

/// Puts a recipe whose start is under way back from `Starting` to `Latent` when dropped
/// (the start failed, or its future was dropped), unless disarmed once it is started.
struct StartGuard<'a>(&'a StdMutex<Status>);

impl StartGuard<'_> {
    /// The start is done: leave the status alone.
    fn disarm(self) {
        std::mem::forget(self);
    }
}

impl Drop for StartGuard<'_> {
    fn drop(&mut self) {
        let mut status = lock(self.0);
        if matches!(*status, Status::Starting) {
            *status = Status::Latent;
        }
    }
}

/// What a [`SharedValue`] and a [`SharedCount`] share.
struct Core<T> {
    client: Client,
    path: String,
    seed: Vec<u8>,
    decode: fn(&[u8]) -> Option<T>,
    value: watch::Sender<VersionedValue<T>>,
    status: StdMutex<Status>,
}

impl<T: Clone + Send + Sync + 'static> Core<T> {
    fn new<C: Codec<T>>(client: Client, path: &str, seed: Vec<u8>, initial: T) -> Result<Self> {
        check_base_path(path)?;
        Ok(Core {
            client,
            path: path.to_owned(),
            seed,
            decode: C::decode,
            value: watch::channel(VersionedValue {
                version: -1,
                zxid: -1,
                value: initial,
            })
            .0,
            status: StdMutex::new(Status::Latent),
        })
    }

    /// Takes `bytes` read (or written) at `stat` into the cache, unless the cache holds a
    /// later modification already. Bytes that do not decode (e.g. an operator's `set` of a
    /// count) keep the last value but take the version, as Curator's SharedValue does, so a
    /// compare-and-set against the cached version can replace them instead of failing
    /// forever.
    fn update(&self, stat: &Stat, bytes: &[u8]) {
        let value = (self.decode)(bytes);
        if value.is_none() {
            tracing::warn!(path = %self.path, len = bytes.len(), "shared value node holds undecodable data; keeping the last value");
        }
        self.value.send_if_modified(|cur| {
            if cur.zxid >= stat.mzxid {
                false
            } else {
                *cur = VersionedValue {
                    version: stat.version,
                    zxid: stat.mzxid,
                    value: value.unwrap_or_else(|| cur.value.clone()),
                };
                true
            }
        });
    }

    fn check_started(&self) -> Result<()> {
        match *lock(&self.status) {
            Status::Started(_) => Ok(()),
            Status::Latent | Status::Starting => Err(Error::NotStarted),
            Status::Closed => Err(Error::Closed),
        }
    }

    async fn start(self: &Arc<Self>) -> Result<()> {
        {
            let mut status = lock(&self.status);
            match *status {
                Status::Latent => *status = Status::Starting,
                Status::Starting | Status::Started(_) => return Err(Error::AlreadyStarted),
                Status::Closed => return Err(Error::Closed),
            }
        }
        // From here until the recipe is started, a failure or a cancelled start (this future
        // dropped) puts it back to Latent, so it can be started again.
        let guard = StartGuard(&self.status);
        // Subscribe before the first read, so no later state change is missed.
        let states = self.client.connection_states();
        let watch = async {
            match self
                .client
                .create(&self.path)
                .creating_parent_containers_if_needed()
                .data(self.seed.clone())
                .await
            {
                Ok(_) | Err(ZkError::NodeExists) => {}
                Err(e) => return Err(e),
            }
            let (data, stat, watch) = self.client.get_data(&self.path).watched().await?;
            self.update(&stat, &data);
            Ok(watch)
        }
        .await?;
        let mut status = lock(&self.status);
        match *status {
            Status::Starting => {
                let task = tokio::spawn(follow(self.clone(), states, Some(watch)));
                *status = Status::Started(task);
                drop(status);
                guard.disarm();
                Ok(())
            }
            // Closed while starting.
            _ => Err(Error::Closed),
        }
    }

    async fn set(&self, bytes: Vec<u8>) -> Result<()> {
        self.check_started()?;
        let stat = self.client.set_data(&self.path, bytes.clone()).await?;
        self.update(&stat, &bytes);
        Ok(())
    }

    async fn try_set(&self, bytes: Vec<u8>, expected_version: i32) -> Result<bool> {
        self.check_started()?;
        if expected_version < 0 {
            return Err(Error::InvalidArgument(format!(
                "try_set_value needs a version read from the node, not {expected_version}"
            )));
        }
        // Sent once: a re-sent write could not tell ours from another writer's identical one
        // (two increments from the same count), and one increment would be lost.
        match write_once(&self.client, &self.path, Some(expected_version), &bytes).await? {
            Written::Applied(stat) => {
                if let Some(stat) = stat {
                    self.update(&stat, &bytes);
                }
                Ok(true)
            }
            Written::NotApplied => {
                // Somebody else wrote first: refresh the cache now (the watch follows too).
                match self.client.get_data(&self.path).await {
                    Ok((data, stat)) => self.update(&stat, &data),
                    Err(ZkError::NoNode) => {}
                    Err(e) => return Err(e.into()),
                }
                Ok(false)
            }
        }
    }

    async fn close(&self) {
        let task = match std::mem::replace(&mut *lock(&self.status), Status::Closed) {
            Status::Started(task) => Some(task),
            _ => None,
        };
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    fn abort(&self) {
        if let Status::Started(task) = std::mem::replace(&mut *lock(&self.status), Status::Closed) {
            task.abort();
        }
    }
}

/// Keeps the cache current: re-reads (and re-watches) the node after every watch event, after
/// every CONNECTED/RECONNECTED (also with a new session after LOST), and waits for the node
/// to be created again if it was deleted. Ends when the client is closed.
async fn follow<T: Clone + Send + Sync + 'static>(
    core: Arc<Core<T>>,
    mut states: ConnectionStates,
    mut watch: Option<WatchFuture>,
) {
    let client = core.client.clone();
    let mut backoff = Duration::from_millis(50);
    loop {
        if let Some(w) = watch.as_mut() {
            tokio::select! {
                biased;
                s = states.next() => match s {
                    // Reconnected (maybe with a new session): the value may have changed
                    // meanwhile; read it again.
                    Some(ConnectionState::Connected | ConnectionState::Reconnected) => watch = None,
                    Some(_) => {}
                    None => return,
                },
                event = w => {
                    tracing::trace!(?event, path = %core.path, "shared value watch fired");
                    watch = None;
                }
            }
            continue;
        }
        let read = async {
            match client.get_data(&core.path).watched().await {
                Ok((data, stat, w)) => {
                    core.update(&stat, &data);
                    Ok(w)
                }
                // Deleted: wait for it to be created again.
                Err(ZkError::NoNode) => match client.exists(&core.path).watched().await {
                    Ok((None, w)) => Ok(w),
                    // Created meanwhile: a watch that is ready at once reads it again.
                    Ok((Some(_), _)) => Err(None),
                    Err(e) => Err(Some(e)),
                },
                Err(e) => Err(Some(e)),
            }
        };
        tokio::select! {
            biased;
            s = states.next() => if s.is_none() { return },
            r = read => match r {
                Ok(w) => {
                    backoff = Duration::from_millis(50);
                    watch = Some(w);
                }
                Err(None) => {}
                Err(Some(ZkError::Closed)) => return,
                Err(Some(e)) => {
                    tracing::debug!(path = %core.path, %e, "reading the shared value failed; retrying");
                    tokio::select! {
                        biased;
                        s = states.next() => if s.is_none() { return },
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            },
        }
    }
}

/// A shared byte value: Curator's `SharedValue`, layout-compatible with it (one node holding
/// the bytes).
///
/// [`SharedValue::start`] creates the node with the seed value if it is missing (parents are
/// containers) and reads it; from then on a background task keeps the cached value current —
/// it re-reads the node after every change, after every reconnect (RECONNECTED, or CONNECTED
/// with a new session after LOST) and waits for a deleted node to be created again.
/// [`SharedValue::try_set_value`] is a compare-and-set on the node's version.
///
/// ```no_run
/// # async fn f(client: zk_client::Client) -> zk_recipes::Result<()> {
/// use zk_recipes::SharedValue;
///
/// let shared = SharedValue::new(client, "/app/config/mode", b"normal".to_vec())?;
/// shared.start().await?;
/// let current = shared.versioned_value();
/// if !shared.try_set_value(b"maintenance".to_vec(), current.version).await? {
///     println!("someone else changed it first: {:?}", shared.value());
/// }
/// let mut changes = shared.values();
/// changes.changed().await.ok();
/// shared.close().await;
/// # Ok(()) }
/// ```
pub struct SharedValue {
    core: Arc<Core<Vec<u8>>>,
}

impl fmt::Debug for SharedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedValue")
            .field("path", &self.core.path)
            .field("value", &*self.core.value.borrow())
            .finish_non_exhaustive()
    }
}

impl SharedValue {
    /// A shared value on the node `path`, created with `seed` by [`SharedValue::start`] if
    /// missing. Until started, the cached value is the seed at version `-1`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an invalid path or the root.
    pub fn new(client: Client, path: &str, seed: Vec<u8>) -> Result<SharedValue> {
        let core = Core::new::<Bytes>(client, path, seed.clone(), seed)?;
        Ok(SharedValue {
            core: Arc::new(core),
        })
    }

    /// The node's path.
    pub fn path(&self) -> &str {
        &self.core.path
    }

    /// Creates the node with the seed value if it is missing, reads it, and starts following
    /// it (in a background task; must be called inside a tokio runtime).
    ///
    /// # Errors
    /// [`Error::AlreadyStarted`], [`Error::Closed`] after [`SharedValue::close`], or
    /// [`Error::Zk`] when the create or read fails (the value may then be started again, as
    /// after a start cancelled by dropping its future).
    pub async fn start(&self) -> Result<()> {
        self.core.start().await
    }

    /// The cached value.
    pub fn value(&self) -> Vec<u8> {
        self.core.value.borrow().value.clone()
    }

    /// The cached value with the version it was read at (pass the version to
    /// [`SharedValue::try_set_value`]).
    pub fn versioned_value(&self) -> VersionedValue<Vec<u8>> {
        self.core.value.borrow().clone()
    }

    /// The cached value as a watch channel: it always holds the latest value; changes that
    /// follow each other quickly are coalesced.
    pub fn values(&self) -> watch::Receiver<VersionedValue<Vec<u8>>> {
        self.core.value.subscribe()
    }

    /// Writes `value` whatever the node holds; the cache is updated on success.
    ///
    /// # Errors
    /// [`Error::NotStarted`] before [`SharedValue::start`], [`Error::Closed`] after
    /// [`SharedValue::close`]; [`Error::Zk`] when the write fails (e.g. NONODE: the
    /// node was deleted).
    pub async fn set_value(&self, value: Vec<u8>) -> Result<()> {
        self.core.set(value).await
    }

    /// Writes `value` only if the node is still at `expected_version` (from
    /// [`SharedValue::versioned_value`]): `true` if written (the cache is updated), `false` if
    /// someone else wrote first (the cache is refreshed from the node before returning).
    ///
    /// The write is sent once: if the connection drops before its reply, the node is read
    /// back; unchanged, or holding another writer's value at the next version, means `false`.
    /// When it holds this very value at the next version, it cannot tell whose write that
    /// was (two writers incrementing a count from the same value write the same bytes):
    /// the call fails with the connection error rather than guess (Curator re-sends the
    /// write and reports `false` even when it applied).
    ///
    /// # Errors
    /// [`Error::NotStarted`] before [`SharedValue::start`], [`Error::Closed`] after
    /// [`SharedValue::close`]; [`Error::InvalidArgument`] for a negative version
    /// (the value was never read); [`Error::Zk`] when a call fails, or with the write's
    /// connection error when its outcome is unknown (see above).
    pub async fn try_set_value(&self, value: Vec<u8>, expected_version: i32) -> Result<bool> {
        self.core.try_set(value, expected_version).await
    }

    /// Stops following the node. The cached value stays readable; writes fail with
    /// [`Error::Closed`]. Closing twice is harmless.
    pub async fn close(&self) {
        self.core.close().await;
    }
}

impl Drop for SharedValue {
    fn drop(&mut self) {
        self.core.abort();
    }
}

/// A shared counter: Curator's `SharedCount`, layout-compatible with it (one node holding the
/// count as a 4-byte big-endian integer).
///
/// The same machinery as [`SharedValue`]. Node data that is not exactly 4 bytes long is not a
/// count: it is logged and ignored (the cache keeps its last count).
///
/// ```no_run
/// # async fn f(client: zk_client::Client) -> zk_recipes::Result<()> {
/// use zk_recipes::SharedCount;
///
/// let count = SharedCount::new(client, "/app/limits/workers", 10)?;
/// count.start().await?;
/// loop {
///     let current = count.versioned_value();
///     if count.try_set_value(current.value + 1, current.version).await? {
///         break;
///     }
/// }
/// count.close().await;
/// # Ok(()) }
/// ```
pub struct SharedCount {
    core: Arc<Core<i32>>,
}

impl fmt::Debug for SharedCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedCount")
            .field("path", &self.core.path)
            .field("value", &*self.core.value.borrow())
            .finish_non_exhaustive()
    }
}

impl SharedCount {
    /// A shared count on the node `path`, created with `seed` by [`SharedCount::start`] if
    /// missing. Until started, the cached count is the seed at version `-1`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an invalid path or the root.
    pub fn new(client: Client, path: &str, seed: i32) -> Result<SharedCount> {
        let core = Core::new::<Count>(client, path, seed.to_be_bytes().to_vec(), seed)?;
        Ok(SharedCount {
            core: Arc::new(core),
        })
    }

    /// The node's path.
    pub fn path(&self) -> &str {
        &self.core.path
    }

    /// Creates the node with the seed count if it is missing, reads it, and starts following
    /// it (in a background task; must be called inside a tokio runtime).
    ///
    /// # Errors
    /// As [`SharedValue::start`].
    pub async fn start(&self) -> Result<()> {
        self.core.start().await
    }

    /// The cached count.
    pub fn value(&self) -> i32 {
        self.core.value.borrow().value
    }

    /// The cached count with the version it was read at.
    pub fn versioned_value(&self) -> VersionedValue<i32> {
        self.core.value.borrow().clone()
    }

    /// The cached count as a watch channel (latest value; quick changes are coalesced).
    pub fn values(&self) -> watch::Receiver<VersionedValue<i32>> {
        self.core.value.subscribe()
    }

    /// Writes `count` whatever the node holds; the cache is updated on success.
    ///
    /// # Errors
    /// As [`SharedValue::set_value`].
    pub async fn set_value(&self, count: i32) -> Result<()> {
        self.core.set(count.to_be_bytes().to_vec()).await
    }

    /// Writes `count` only if the node is still at `expected_version`: `true` if written,
    /// `false` if someone else wrote first (the cache is refreshed before returning).
    ///
    /// # Errors
    /// As [`SharedValue::try_set_value`].
    pub async fn try_set_value(&self, count: i32, expected_version: i32) -> Result<bool> {
        self.core
            .try_set(count.to_be_bytes().to_vec(), expected_version)
            .await
    }

    /// Stops following the node (see [`SharedValue::close`]).
    pub async fn close(&self) {
        self.core.close().await;
    }
}

impl Drop for SharedCount {
    fn drop(&mut self) {
        self.core.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_4_byte_big_endian() {
        assert_eq!(Count::decode(&[0, 0, 1, 2]), Some(258));
        assert_eq!(Count::decode(&(-2i32).to_be_bytes()), Some(-2));
        assert_eq!(Count::decode(&[0, 0, 1]), None);
        assert_eq!(Count::decode(&[0, 0, 0, 0, 1]), None);
    }
}
