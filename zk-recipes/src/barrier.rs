//! [`Barrier`]: Curator's `DistributedBarrier`.

use std::fmt;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use zk_client::{Client, Error as ZkError};

use crate::mutex::WaitStats;
use crate::nodes::check_base_path;
use crate::Result;

/// A barrier: Curator's `DistributedBarrier`, layout-compatible with it.
///
/// The barrier is one node: while it exists, [`Barrier::wait_on_barrier`] blocks; once it is
/// deleted, every waiter proceeds. [`Barrier::set_barrier`] creates it (missing parents become
/// CONTAINER nodes), [`Barrier::remove_barrier`] deletes it.
///
/// A waiter passes only when it has *seen* the node missing: after every wake-up — a node
/// event (e.g. the node's data was changed), or the end of a watch with its session (expiry,
/// reconnect with a new session) — it checks again with a fresh watched `exists`, so a
/// spurious wake-up never releases it.
///
/// ```no_run
/// # async fn f(client: zk_client::Client) -> zk_recipes::Result<()> {
/// use std::time::Duration;
/// use zk_recipes::Barrier;
///
/// let barrier = Barrier::new(client, "/app/barriers/start")?;
/// barrier.set_barrier().await?;
/// // elsewhere, in many processes:
/// if !barrier.wait_on_barrier_timeout(Duration::from_secs(30)).await? {
///     println!("still set after 30 s");
/// }
/// // the coordinator releases everyone:
/// barrier.remove_barrier().await?;
/// # Ok(()) }
/// ```
pub struct Barrier {
    client: Client,
    path: String,
    stats: watch::Sender<WaitStats>,
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Barrier {
    /// A barrier on the node `path`. Nothing is sent until a call.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for an invalid path or the
    /// root.
    pub fn new(client: Client, path: &str) -> Result<Barrier> {
        check_base_path(path)?;
        Ok(Barrier {
            client,
            path: path.to_owned(),
            stats: watch::channel(WaitStats::default()).0,
        })
    }

    /// The barrier node's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Sets the barrier: creates the node (a persistent, empty node; missing parents become
    /// containers). Setting a barrier that is set already is not an error.
    ///
    /// # Errors
    /// [`Error::Zk`](crate::Error::Zk) when the create fails after the client's retries.
    pub async fn set_barrier(&self) -> Result<()> {
        match self
            .client
            .create(&self.path)
            .creating_parent_containers_if_needed()
            .await
        {
            Ok(_) | Err(ZkError::NodeExists) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the barrier: deletes the node, which releases every waiter. Removing a barrier
    /// that is not set is not an error.
    ///
    /// # Errors
    /// [`Error::Zk`](crate::Error::Zk) when the delete fails after the client's retries
    /// (e.g. NOTEMPTY: someone created a child of the barrier node).
    pub async fn remove_barrier(&self) -> Result<()> {
        self.client.delete(&self.path).quietly().await?;
        Ok(())
    }

    /// Whether the barrier is set now (its node exists).
    ///
    /// # Errors
    /// [`Error::Zk`](crate::Error::Zk) when the read fails.
    pub async fn is_set(&self) -> Result<bool> {
        Ok(self.client.exists(&self.path).await?.is_some())
    }

    /// Waits while the barrier is set, as long as it takes.
    ///
    /// # Errors
    /// [`Error::Zk`](crate::Error::Zk) when a check fails after the client's retries (e.g.
    /// the client was closed).
    ///
    /// # Cancellation safety
    /// Safe to drop: nothing is left behind but a watch, which fires with the node's next
    /// change.
    pub async fn wait_on_barrier(&self) -> Result<()> {
        self.wait_until(None).await.map(|_| ())
    }

    /// Waits at most `timeout` while the barrier is set: `true` once the node was seen
    /// missing, `false` when the time ran out first.
    ///
    /// # Errors
    /// As [`Barrier::wait_on_barrier`].
    pub async fn wait_on_barrier_timeout(&self, timeout: Duration) -> Result<bool> {
        self.wait_until(Some(Instant::now() + timeout)).await
    }

    /// Wait counters of this handle, for tests.
    #[doc(hidden)]
    pub fn wait_stats(&self) -> watch::Receiver<WaitStats> {
        self.stats.subscribe()
    }

    async fn wait_until(&self, deadline: Option<Instant>) -> Result<bool> {
        let wait = async {
            // The predicate is checked after every wake-up, whatever woke us.
            loop {
                let (stat, watch) = self.client.exists(&self.path).watched().await?;
                if stat.is_none() {
                    return Ok(true);
                }
                self.stats.send_modify(|s| s.watches_set += 1);
                let event = watch.await;
                self.stats.send_modify(|s| s.wakeups += 1);
                tracing::trace!(?event, path = %self.path, "barrier watch fired; checking again");
            }
        };
        match deadline {
            Some(d) => match tokio::time::timeout_at(d, wait).await {
                Ok(r) => r,
                Err(_) => Ok(false),
            },
            None => wait.await,
        }
    }
}
