//! [`DistributedPriorityQueue`]: Curator's `DistributedPriorityQueue`.

use std::time::Duration;

use tokio::time::Instant;

use super::distributed::DistributedQueue;
use super::naming::priority_name;
use crate::{Error, Result};

/// A distributed queue whose items come out lowest priority first (FIFO within a priority):
/// Curator's `DistributedPriorityQueue`, layout-compatible with it.
///
/// Built by [`QueueBuilder::build_priority_queue`](super::QueueBuilder::build_priority_queue);
/// everything else — consumer, lock path, error mode, bounds — is as for
/// [`DistributedQueue`]. The priority is encoded in the node name as Curator does:
/// `queue-` + `1` (priority `>= 0`) or `0` (negative) + the priority's 32-bit two's
/// complement as 8 upper-case hex digits + the sequence, e.g. priority 5 →
/// `queue-100000005NNNNNNNNNN`, priority -1 → `queue-0FFFFFFFFNNNNNNNNNN`; names sort in
/// priority order.
///
/// A requeued item keeps its priority (Curator requeues it as a plain `queue-N` node).
///
/// As Curator warns, a priority queue performs far worse than a plain one: every change of
/// the queue makes consumers list all of it again.
///
/// ```no_run
/// # async fn f(client: zk_client::Client) -> zk_recipes::Result<()> {
/// use zk_recipes::queue::{DistributedQueue, Utf8Serializer};
///
/// let queue = DistributedQueue::builder(client, "/app/tasks", Utf8Serializer)
///     .consumer(|task: String| async move { println!("{task}"); Ok::<(), std::io::Error>(()) })
///     .build_priority_queue(0)?;
/// queue.start().await?;
/// queue.put("routine".to_owned(), 10).await?;
/// queue.put("urgent".to_owned(), -5).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DistributedPriorityQueue<T> {
    pub(crate) queue: DistributedQueue<T>,
}

impl<T: Send + 'static> DistributedPriorityQueue<T> {
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

    /// Puts `item` with `priority` (lower comes out first); returns the item node's path.
    /// Waits for room in a bounded queue.
    ///
    /// # Errors
    /// As [`DistributedQueue::put`].
    pub async fn put(&self, item: T, priority: i32) -> Result<String> {
        self.queue
            .put_items(&priority_name(priority), &[item], None)
            .await?
            .ok_or(Error::Closed)
    }

    /// As [`DistributedPriorityQueue::put`], waiting at most `timeout` for room in a bounded
    /// queue; `None` when the time ran out.
    ///
    /// # Errors
    /// As [`DistributedQueue::put`].
    pub async fn put_timeout(
        &self,
        item: T,
        priority: i32,
        timeout: Duration,
    ) -> Result<Option<String>> {
        self.queue
            .put_items(
                &priority_name(priority),
                &[item],
                Some(Instant::now() + timeout),
            )
            .await
    }

    /// Puts all `items` in one node with `priority` (see [`DistributedQueue::put_multi`]).
    ///
    /// # Errors
    /// As [`DistributedQueue::put`].
    pub async fn put_multi(
        &self,
        items: impl IntoIterator<Item = T>,
        priority: i32,
    ) -> Result<String> {
        let items: Vec<T> = items.into_iter().collect();
        self.queue
            .put_items(&priority_name(priority), &items, None)
            .await?
            .ok_or(Error::Closed)
    }

    /// The item nodes now in the queue, in the order consumers take them.
    ///
    /// # Errors
    /// As [`DistributedQueue::item_names`].
    pub async fn item_names(&self) -> Result<Vec<String>> {
        self.queue.item_names().await
    }
}
