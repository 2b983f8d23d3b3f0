//! [`DistributedAtomicValue`]: Curator's `DistributedAtomicValue`, a node updated
//! optimistically, with an optional promotion to a lock ([`PromotedToLock`]); the numeric
//! counters ([`DistributedAtomicLong`](crate::DistributedAtomicLong),
//! [`DistributedAtomicInteger`](crate::DistributedAtomicInteger)) are built on it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use zk_client::{Client, Error as ZkError, RetryNTimes, RetryPolicy};

use crate::mutex::Mutex;
use crate::nodes::check_base_path;
use crate::write_once::{write_once, Written};
use crate::{Error, Result};

/// The outcome of an operation on a [`DistributedAtomicValue`] or a numeric counter
/// (Curator's `AtomicValue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AtomicValue<T> {
    /// Whether the operation took effect. An optimistic operation fails when every attempt
    /// allowed by its retry policies met a concurrent change.
    pub succeeded: bool,
    /// The value the operation found (of its last attempt; empty bytes, or `0`, for a missing
    /// node).
    pub pre_value: T,
    /// The value the operation wrote; when it did not succeed, the value it found (unlike
    /// Curator, which reports `0` then).
    pub post_value: T,
    /// How the operation went.
    pub stats: AtomicStats,
}

/// Attempts and time spent by one operation (Curator's `AtomicStats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AtomicStats {
    /// Optimistic attempts (read, then a versioned write or a create).
    pub optimistic_tries: u32,
    /// Attempts made while holding the promotion lock.
    pub promoted_tries: u32,
    /// Time spent in the optimistic phase.
    pub optimistic_time: Duration,
    /// Time spent in the promoted phase (acquiring the lock included).
    pub promoted_time: Duration,
}

/// When the optimistic attempts are exhausted, take a lock and try again under it
/// (Curator's `PromotedToLock`).
///
/// Under the lock, other *promoted* updates cannot interfere; optimistic attempts of other
/// writers (which take no lock, as in Curator) and writers that do not use the lock still can,
/// so under contention give the promoted phase a retry policy of its own. The lock is a
/// [`Mutex`] on `lock_path` (Curator's `InterProcessMutex` layout).
#[derive(Debug, Clone)]
pub struct PromotedToLock {
    lock_path: String,
    max_lock_time: Option<Duration>,
    retry_policy: Arc<dyn RetryPolicy>,
}

impl PromotedToLock {
    /// Promotion to a lock on `lock_path`: wait for the lock as long as it takes, one attempt
    /// under the lock (Curator's defaults: no timeout, `RetryNTimes(0, 0)`).
    pub fn new(lock_path: &str) -> PromotedToLock {
        PromotedToLock {
            lock_path: lock_path.to_owned(),
            max_lock_time: None,
            retry_policy: Arc::new(RetryNTimes::new(0, Duration::ZERO)),
        }
    }

    /// Wait at most `max` for the lock; if it is not acquired in time the operation fails
    /// (`succeeded == false`).
    #[must_use]
    pub fn max_lock_time(mut self, max: Duration) -> PromotedToLock {
        self.max_lock_time = Some(max);
        self
    }

    /// The policy for attempts under the lock.
    #[must_use]
    pub fn retry_policy(mut self, policy: impl RetryPolicy + 'static) -> PromotedToLock {
        self.retry_policy = Arc::new(policy);
        self
    }

    /// The lock path.
    pub fn lock_path(&self) -> &str {
        &self.lock_path
    }
}

/// A node whose bytes are updated atomically: Curator's `DistributedAtomicValue`,
/// layout-compatible with it (one node holding the value; a missing node counts as empty;
/// parents are containers).
///
/// Every update is optimistic: read the node and its version, write the new value only at that
/// version (or create the node if it is missing); when another writer got there first, try
/// again as long as the retry policy allows (sleeping as it says). If a [`PromotedToLock`] is
/// given and the optimistic attempts are exhausted, the update is tried again while holding a
/// [`Mutex`]. An update that still fails returns `succeeded == false` — it is not an error.
///
/// # Connection loss
/// The versioned write (or create) of an attempt is sent once, never re-sent by the client's
/// retry policy: in Curator a re-sent write whose first send was applied meets a changed
/// version, and the update is attempted again, so it may be applied twice. Here, when the
/// connection drops after the write was sent, the node is read back (after a `sync`): if it
/// is unchanged, or holds another writer's value at the next version, the write did not
/// apply and the update goes on; otherwise the write may have applied and the call fails with
/// that error (e.g. [`zk_client::Error::ConnectionLoss`] or
/// [`zk_client::Error::SessionExpired`]): read the value to find out, as retrying could apply
/// the update twice. (Only a node deleted and re-created back to the same version while the
/// reply was lost could fool this.)
///
/// ```no_run
/// # async fn f(client: zk_client::Client) -> zk_recipes::Result<()> {
/// use std::time::Duration;
/// use zk_client::RetryNTimes;
/// use zk_recipes::DistributedAtomicValue;
///
/// let leader = DistributedAtomicValue::new(client, "/app/current-epoch", RetryNTimes::new(3, Duration::from_millis(10)))?;
/// let now = leader.get().await?.post_value;
/// let r = leader.compare_and_set(&now, b"epoch-2".to_vec()).await?;
/// println!("switched: {}", r.succeeded);
/// # Ok(()) }
/// ```
pub struct DistributedAtomicValue {
    client: Client,
    path: String,
    retry_policy: Arc<dyn RetryPolicy>,
    promotion: Option<(PromotedToLock, Mutex)>,
}

impl fmt::Debug for DistributedAtomicValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DistributedAtomicValue")
            .field("path", &self.path)
            .field("retry_policy", &self.retry_policy)
            .field("promotion", &self.promotion.as_ref().map(|(p, _)| p))
            .finish_non_exhaustive()
    }
}

/// The outcome of one attempt.
enum Attempt {
    /// Written: the value found and the value written.
    Done(Vec<u8>, Vec<u8>),
    /// Someone else changed the node first; the value found.
    Conflict(Vec<u8>),
}

impl DistributedAtomicValue {
    /// A value on the node `path`, retrying optimistic updates under `retry_policy`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an invalid path or the root.
    pub fn new(
        client: Client,
        path: &str,
        retry_policy: impl RetryPolicy + 'static,
    ) -> Result<DistributedAtomicValue> {
        check_base_path(path)?;
        Ok(DistributedAtomicValue {
            client,
            path: path.to_owned(),
            retry_policy: Arc::new(retry_policy),
            promotion: None,
        })
    }

    /// As [`DistributedAtomicValue::new`], promoting updates to a lock when the optimistic
    /// attempts are exhausted.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an invalid path (of the value or the lock) or the root.
    pub fn with_promotion(
        client: Client,
        path: &str,
        retry_policy: impl RetryPolicy + 'static,
        promotion: PromotedToLock,
    ) -> Result<DistributedAtomicValue> {
        let mutex = Mutex::new(client.clone(), &promotion.lock_path)?;
        let mut value = DistributedAtomicValue::new(client, path, retry_policy)?;
        value.promotion = Some((promotion, mutex));
        Ok(value)
    }

    /// The node's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The current value (empty if the node is missing); always `succeeded`, with
    /// `pre_value == post_value`.
    ///
    /// # Errors
    /// [`Error::Zk`] when the read fails.
    pub async fn get(&self) -> Result<AtomicValue<Vec<u8>>> {
        let (value, _) = self.read().await?;
        Ok(AtomicValue {
            succeeded: true,
            pre_value: value.clone(),
            post_value: value,
            stats: AtomicStats::default(),
        })
    }

    /// Sets the value (optimistically, with retries and promotion).
    ///
    /// # Errors
    /// [`Error::Zk`] when a call fails for another reason than a concurrent change.
    pub async fn try_set(&self, value: impl Into<Vec<u8>>) -> Result<AtomicValue<Vec<u8>>> {
        let value = value.into();
        self.update(move |_| Ok(value.clone())).await
    }

    /// Sets the value to `new` if it is `expected` now: one attempt, no retries, no promotion
    /// (Curator's `compareAndSet`). As in Curator, a missing node never matches (use
    /// [`initialize`](Self::initialize) first), and a concurrent change between the read and
    /// the versioned write makes it fail even if the value was `expected` again.
    ///
    /// # Errors
    /// As [`get`](Self::get); a write whose outcome is unknown fails as described under
    /// "Connection loss" on the type.
    pub async fn compare_and_set(
        &self,
        expected: &[u8],
        new: impl Into<Vec<u8>>,
    ) -> Result<AtomicValue<Vec<u8>>> {
        self.compare_and_set_if(|found| Ok(found == expected), new.into())
            .await
    }

    /// [`compare_and_set`](Self::compare_and_set) with the comparison given: `matches` decides
    /// on the value found (and may refuse it with an error).
    pub(crate) async fn compare_and_set_if(
        &self,
        matches: impl Fn(&[u8]) -> Result<bool>,
        new: Vec<u8>,
    ) -> Result<AtomicValue<Vec<u8>>> {
        let (pre, version) = self.read().await?;
        let mut result = AtomicValue {
            succeeded: false,
            pre_value: pre.clone(),
            post_value: pre,
            stats: AtomicStats {
                optimistic_tries: 1,
                ..AtomicStats::default()
            },
        };
        let Some(version) = version else {
            return Ok(result);
        };
        if !matches(&result.pre_value)? {
            return Ok(result);
        }
        match write_once(&self.client, &self.path, Some(version), &new).await {
            Ok(Written::Applied(_)) => {
                result.succeeded = true;
                result.post_value = new;
            }
            Ok(Written::NotApplied) | Err(Error::Zk(ZkError::NoNode)) => {}
            Err(e) => return Err(e),
        }
        Ok(result)
    }

    /// Sets the value whatever it is (creating the node if missing).
    ///
    /// # Errors
    /// [`Error::Zk`] when a call fails.
    pub async fn force_set(&self, value: impl Into<Vec<u8>>) -> Result<()> {
        let bytes = value.into();
        loop {
            match self.client.set_data(&self.path, bytes.clone()).await {
                Ok(_) => return Ok(()),
                Err(ZkError::NoNode) => {}
                Err(e) => return Err(e.into()),
            }
            match self
                .client
                .create(&self.path)
                .creating_parent_containers_if_needed()
                .data(bytes.clone())
                .await
            {
                Ok(_) => return Ok(()),
                // Created meanwhile: overwrite it.
                Err(ZkError::NodeExists) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Creates the node with `value` if it is missing: `true` if created, `false` if it
    /// existed (its value is left alone).
    ///
    /// # Errors
    /// [`Error::Zk`] when the create fails.
    pub async fn initialize(&self, value: impl Into<Vec<u8>>) -> Result<bool> {
        match self
            .client
            .create(&self.path)
            .creating_parent_containers_if_needed()
            .data(value)
            .await
        {
            Ok(_) => Ok(true),
            Err(ZkError::NodeExists) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The value and the node's version (`None`: no node, the value is empty).
    async fn read(&self) -> Result<(Vec<u8>, Option<i32>)> {
        match self.client.get_data(&self.path).await {
            Ok((data, stat)) => Ok((data, Some(stat.version))),
            Err(ZkError::NoNode) => Ok((Vec::new(), None)),
            Err(e) => Err(e.into()),
        }
    }

    /// One optimistic attempt: read, compute, write at the read version (or create).
    async fn attempt(&self, make: &impl Fn(&[u8]) -> Result<Vec<u8>>) -> Result<Attempt> {
        let (pre, version) = self.read().await?;
        let new = make(&pre)?;
        Ok(
            match write_once(&self.client, &self.path, version, &new).await {
                Ok(Written::Applied(_)) => Attempt::Done(pre, new),
                // Deleted since the read: the next attempt creates it.
                Ok(Written::NotApplied) | Err(Error::Zk(ZkError::NoNode)) => Attempt::Conflict(pre),
                Err(e) => return Err(e),
            },
        )
    }

    /// Attempts under `policy` until one succeeds or the policy gives up; counts each
    /// attempt with `count`.
    async fn attempts(
        &self,
        make: &impl Fn(&[u8]) -> Result<Vec<u8>>,
        policy: &dyn RetryPolicy,
        result: &mut AtomicValue<Vec<u8>>,
        count: fn(&mut AtomicStats),
    ) -> Result<()> {
        let started = Instant::now();
        let mut retry_count = 0u32;
        loop {
            count(&mut result.stats);
            match self.attempt(make).await? {
                Attempt::Done(pre, post) => {
                    result.succeeded = true;
                    result.pre_value = pre;
                    result.post_value = post;
                    return Ok(());
                }
                Attempt::Conflict(pre) => {
                    result.pre_value = pre.clone();
                    result.post_value = pre;
                }
            }
            match policy.allow_retry(retry_count, started.elapsed()) {
                Some(sleep) => {
                    retry_count = retry_count.saturating_add(1);
                    if !sleep.is_zero() {
                        tokio::time::sleep(sleep).await;
                    }
                }
                None => return Ok(()),
            }
        }
    }

    /// An optimistic update computing the new value from the value found (`make` may refuse
    /// it with an error, which ends the update), promoted to the lock if one is given.
    pub(crate) async fn update(
        &self,
        make: impl Fn(&[u8]) -> Result<Vec<u8>>,
    ) -> Result<AtomicValue<Vec<u8>>> {
        let mut result = AtomicValue {
            succeeded: false,
            pre_value: Vec::new(),
            post_value: Vec::new(),
            stats: AtomicStats::default(),
        };
        let started = Instant::now();
        self.attempts(&make, &*self.retry_policy, &mut result, |s| {
            s.optimistic_tries += 1
        })
        .await?;
        result.stats.optimistic_time = started.elapsed();
        if result.succeeded {
            return Ok(result);
        }
        let Some((promotion, mutex)) = &self.promotion else {
            return Ok(result);
        };
        let started = Instant::now();
        let guard = match promotion.max_lock_time {
            Some(max) => mutex.acquire_timeout(max).await?,
            None => Some(mutex.acquire().await?),
        };
        if let Some(guard) = guard {
            let outcome = self
                .attempts(&make, &*promotion.retry_policy, &mut result, |s| {
                    s.promoted_tries += 1
                })
                .await;
            if let Err(e) = guard.release().await {
                // The operation's outcome stands; the lock node is left to its session.
                tracing::warn!(path = %promotion.lock_path, %e, "releasing the promotion lock failed");
            }
            outcome?;
        }
        result.stats.promoted_time = started.elapsed();
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promoted_to_lock_defaults_are_curators() {
        let p = PromotedToLock::new("/locks/counter");
        assert_eq!(p.lock_path(), "/locks/counter");
        assert_eq!(p.max_lock_time, None);
        assert_eq!(p.retry_policy.allow_retry(0, Duration::ZERO), None);
    }
}
