//! [`SimpleDistributedQueue`]: Curator's `SimpleDistributedQueue` (ZooKeeper's own queue
//! recipe).

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;
use zk_client::{Client, CreateMode, Error as ZkError, WatchFuture};

use super::naming::SIMPLE_ITEM_NAME;
use crate::nodes::{check_base_path, join};
use crate::{Error, Result};

/// A FIFO queue of byte strings: Curator's `SimpleDistributedQueue`, data-compatible with it
/// and with ZooKeeper's own queue recipe (`org.apache.zookeeper.recipes.queue`).
///
/// Each item is a PERSISTENT_SEQUENTIAL node `<path>/qn-NNNNNNNNNN` holding the bytes as they
/// are (missing parents, including `path`, are created as CONTAINER nodes). Taking an item
/// reads the lowest node's data and deletes it; the taker whose delete succeeds owns the
/// item, so two takers never get the same one (a taker whose delete finds the node gone
/// tries the next node). Other children of `path` are ignored.
///
/// Taking is at-most-once: an item whose delete succeeded but whose reply was lost (the
/// connection dropped) is gone without being returned. Use
/// [`DistributedQueue`](super::DistributedQueue) with a lock path when items must survive
/// their consumer. ZooKeeper is a poor high-volume queue (see the [module docs](super)).
///
/// ```no_run
/// # async fn f(client: zk_client::Client) -> zk_recipes::Result<()> {
/// use std::time::Duration;
/// use zk_recipes::SimpleDistributedQueue;
///
/// let queue = SimpleDistributedQueue::new(client, "/app/jobs")?;
/// queue.offer(b"job-1".to_vec()).await?;
/// if let Some(job) = queue.take_timeout(Duration::from_secs(5)).await? {
///     println!("took {job:?}");
/// }
/// # Ok(()) }
/// ```
pub struct SimpleDistributedQueue {
    client: Client,
    path: String,
}

impl fmt::Debug for SimpleDistributedQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimpleDistributedQueue")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SimpleDistributedQueue {
    /// A queue whose items are the children of `path`. Nothing is sent until a call.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an invalid path or the root.
    pub fn new(client: Client, path: &str) -> Result<SimpleDistributedQueue> {
        check_base_path(path)?;
        Ok(SimpleDistributedQueue {
            client,
            path: path.to_owned(),
        })
    }

    /// The queue's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Appends `data` to the queue; returns the item node's path.
    ///
    /// # Errors
    /// [`Error::Zk`] when the create fails after the client's retries (e.g. the data exceeds
    /// ZooKeeper's 1 MiB limit). A create retried after a lost reply may enqueue the item
    /// twice (sequential nodes cannot be recognised on retry).
    pub async fn offer(&self, data: impl Into<Vec<u8>>) -> Result<String> {
        let created = self
            .client
            .create(&join(&self.path, SIMPLE_ITEM_NAME))
            .mode(CreateMode::PersistentSequential)
            .creating_parent_containers_if_needed()
            .data(data)
            .await?;
        Ok(created.path)
    }

    /// The head of the queue without removing it; `None` when the queue is empty.
    ///
    /// # Errors
    /// [`Error::Zk`] when a read fails.
    pub async fn peek(&self) -> Result<Option<Vec<u8>>> {
        Ok(self.head(false, false).await?.0)
    }

    /// The head of the queue without removing it.
    ///
    /// # Errors
    /// [`Error::QueueEmpty`] when the queue is empty; [`Error::Zk`] when a read fails.
    pub async fn element(&self) -> Result<Vec<u8>> {
        self.peek().await?.ok_or(Error::QueueEmpty)
    }

    /// Removes the head of the queue and returns it; `None` when the queue is empty.
    ///
    /// # Errors
    /// [`Error::Zk`] when a call fails.
    pub async fn poll(&self) -> Result<Option<Vec<u8>>> {
        Ok(self.head(true, false).await?.0)
    }

    /// Removes the head of the queue and returns it.
    ///
    /// # Errors
    /// [`Error::QueueEmpty`] when the queue is empty; [`Error::Zk`] when a call fails.
    pub async fn remove(&self) -> Result<Vec<u8>> {
        self.poll().await?.ok_or(Error::QueueEmpty)
    }

    /// Removes the head of the queue and returns it, waiting (on a children watch) as long as
    /// the queue is empty.
    ///
    /// # Errors
    /// [`Error::Zk`] when a call fails after the client's retries (e.g. the client was
    /// closed).
    ///
    /// # Cancellation safety
    /// Dropping the future while it waits is harmless; dropping it while a delete is in
    /// flight may remove an item without returning it.
    pub async fn take(&self) -> Result<Vec<u8>> {
        match self.take_until(None).await? {
            Some(item) => Ok(item),
            None => Err(Error::Closed),
        }
    }

    /// As [`SimpleDistributedQueue::take`], waiting at most `timeout` for an item; `None` when
    /// the time ran out. The time limit applies to waiting only: an attempt under way when it
    /// passes is completed, so no item is taken and then dropped.
    ///
    /// # Errors
    /// As [`SimpleDistributedQueue::take`].
    pub async fn take_timeout(&self, timeout: Duration) -> Result<Option<Vec<u8>>> {
        self.take_until(Some(Instant::now() + timeout)).await
    }

    async fn take_until(&self, deadline: Option<Instant>) -> Result<Option<Vec<u8>>> {
        loop {
            let (item, watch) = self.head(true, true).await?;
            if item.is_some() {
                return Ok(item);
            }
            let Some(watch) = watch else {
                // Changed between the calls: look again.
                continue;
            };
            match deadline {
                Some(d) => {
                    if tokio::time::timeout_at(d, watch).await.is_err() {
                        return Ok(None);
                    }
                }
                None => {
                    watch.await;
                }
            }
        }
    }

    /// The head of the queue (removed if `remove`); with `watched`, also a watch that fires
    /// when the queue changes (on the children, or on the queue node while it is missing).
    async fn head(
        &self,
        remove: bool,
        watched: bool,
    ) -> Result<(Option<Vec<u8>>, Option<WatchFuture>)> {
        let client = &self.client;
        let listed = if watched {
            client
                .get_children(&self.path)
                .watched()
                .await
                .map(|(c, w)| (c, Some(w)))
        } else {
            client.get_children(&self.path).await.map(|c| (c, None))
        };
        let (mut children, watch) = match listed {
            Ok(l) => l,
            Err(ZkError::NoNode) => {
                if !watched {
                    return Ok((None, None));
                }
                // Wait for the queue node to appear (its first offer creates it).
                return match client.exists(&self.path).watched().await? {
                    (None, watch) => Ok((None, Some(watch))),
                    (Some(_), _) => Ok((None, None)),
                };
            }
            Err(e) => return Err(e.into()),
        };
        children.retain(|c| c.starts_with(SIMPLE_ITEM_NAME));
        children.sort();
        for name in children {
            let item_path = join(&self.path, &name);
            let data = match client.get_data(&item_path).await {
                Ok((data, _)) => data,
                // Another taker got it first: try the next.
                Err(ZkError::NoNode) => continue,
                Err(e) => return Err(e.into()),
            };
            if remove {
                match client.delete(&item_path).await {
                    Ok(()) => {}
                    Err(ZkError::NoNode) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            return Ok((Some(data), watch));
        }
        Ok((None, watch))
    }
}
