//! [`DistributedIdQueue`]: Curator's `DistributedIdQueue`.

use std::time::Duration;

use tokio::time::Instant;

use super::distributed::DistributedQueue;
use super::naming::{id_name, id_of};
use crate::{Error, Result};

/// A distributed FIFO queue whose items carry an id, so they can be removed before they are
/// consumed: Curator's `DistributedIdQueue`, layout-compatible with it.
///
/// Built by [`QueueBuilder::build_id_queue`](super::QueueBuilder::build_id_queue); everything
/// else is as for [`DistributedQueue`]. The id is encoded in the node name as Curator does:
/// `queue-|<id>|NNNNNNNNNN`, with `/` and `|` in the id replaced by `_` (so ids differing only
/// there are the same id). Order is FIFO on the sequence; the id takes no part in it. Ids need
/// not be unique: [`DistributedIdQueue::remove`] removes every item with the id.
///
/// ```no_run
/// # async fn f(client: zk_client::Client) -> zk_recipes::Result<()> {
/// use zk_recipes::queue::{DistributedQueue, Utf8Serializer};
///
/// let queue = DistributedQueue::builder(client, "/app/orders", Utf8Serializer)
///     .build_id_queue()?;
/// queue.start().await?;
/// queue.put("ship it".to_owned(), "order-17").await?;
/// assert_eq!(queue.remove("order-17").await?, 1); // cancelled before anyone took it
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DistributedIdQueue<T> {
    pub(crate) queue: DistributedQueue<T>,
}

impl<T: Send + 'static> DistributedIdQueue<T> {
    /// The queue's path.
    pub fn path(&self) -> &str {
        self.queue.path()
    }

    /// Starts the queue (see [`DistributedQueue::start`]).
    ///
    /// # Errors
    /// As [`DistributedQueue::start`].
    pub async fn start(&self) -> Result<()> {
        self.queue.start().await
    }

    /// Closes the queue (see [`DistributedQueue::close`]).
    pub async fn close(&self) {
        self.queue.close().await
    }

    /// Puts `item` with the id `id`; returns the item node's path. Waits for room in a bounded
    /// queue.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty id; otherwise as [`DistributedQueue::put`].
    pub async fn put(&self, item: T, id: &str) -> Result<String> {
        self.queue
            .put_items(&checked_id_name(id)?, &[item], None)
            .await?
            .ok_or(Error::Closed)
    }

    /// As [`DistributedIdQueue::put`], waiting at most `timeout` for room in a bounded queue;
    /// `None` when the time ran out.
    ///
    /// # Errors
    /// As [`DistributedIdQueue::put`].
    pub async fn put_timeout(
        &self,
        item: T,
        id: &str,
        timeout: Duration,
    ) -> Result<Option<String>> {
        self.queue
            .put_items(
                &checked_id_name(id)?,
                &[item],
                Some(Instant::now() + timeout),
            )
            .await
    }

    /// Removes every item with the id `id` that no consumer has taken yet (each as a consumer
    /// would take it: under its lock when the queue has a lock path, so an item being
    /// processed is not removed); returns how many this call removed.
    ///
    /// # Errors
    /// [`Error::NotStarted`] before the queue is started, [`Error::Closed`] after it was
    /// closed; [`Error::Zk`] when a call fails (items removed before the failure stay
    /// removed).
    pub async fn remove(&self, id: &str) -> Result<usize> {
        let wanted = fixed(id);
        let mut removed = 0;
        for name in self.matching(&wanted).await? {
            if self.queue.remove_item(&name).await? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Whether an item with the id `id` is in the queue now.
    ///
    /// # Errors
    /// [`Error::Zk`] when the listing fails.
    pub async fn is_queued(&self, id: &str) -> Result<bool> {
        Ok(!self.matching(&fixed(id)).await?.is_empty())
    }

    /// The item nodes now in the queue, in the order consumers take them.
    ///
    /// # Errors
    /// As [`DistributedQueue::item_names`].
    pub async fn item_names(&self) -> Result<Vec<String>> {
        self.queue.item_names().await
    }

    async fn matching(&self, fixed_id: &str) -> Result<Vec<String>> {
        let mut names = self.queue.item_names().await?;
        names.retain(|n| id_of(n) == Some(fixed_id));
        Ok(names)
    }
}

/// The id as it appears in node names.
fn fixed(id: &str) -> String {
    let name = id_name(id);
    id_of(&name).unwrap_or_default().to_owned()
}

fn checked_id_name(id: &str) -> Result<String> {
    if id.is_empty() {
        return Err(Error::InvalidArgument(
            "a queue item id cannot be empty".to_owned(),
        ));
    }
    Ok(id_name(id))
}
