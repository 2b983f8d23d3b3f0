//! [`DistributedDelayQueue`]: Curator's `DistributedDelayQueue`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use super::distributed::DistributedQueue;
use super::naming::delay_name;
use crate::{Error, Result};

/// A distributed queue whose items become available at a given time: Curator's
/// `DistributedDelayQueue`, layout-compatible with it.
///
/// Built by [`QueueBuilder::build_delay_queue`](super::QueueBuilder::build_delay_queue);
/// everything else is as for [`DistributedQueue`]. The due time (milliseconds since the Unix
/// epoch, rounded up) is encoded in the node name as Curator does:
/// `queue-|<epoch ms as %08X>|NNNNNNNNNN`. Consumers take due items in due-time order (FIFO
/// for equal times) and never before their time: while the earliest item is not due, the
/// consumer sleeps until it is, or until the queue changes (a new item may be due sooner).
///
/// Due times are compared with the consumer's clock: producers' and consumers' clocks must
/// agree.
///
/// ```no_run
/// # async fn f(client: zk_client::Client) -> zk_recipes::Result<()> {
/// use std::time::{Duration, SystemTime};
/// use zk_recipes::queue::{DistributedQueue, Utf8Serializer};
///
/// let queue = DistributedQueue::builder(client, "/app/reminders", Utf8Serializer)
///     .consumer(|r: String| async move { println!("{r}"); Ok::<(), std::io::Error>(()) })
///     .build_delay_queue()?;
/// queue.start().await?;
/// queue.put("in a minute".to_owned(), SystemTime::now() + Duration::from_secs(60)).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DistributedDelayQueue<T> {
    pub(crate) queue: DistributedQueue<T>,
}

impl<T: Send + 'static> DistributedDelayQueue<T> {
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

    /// Puts `item`, to be delivered not before `due`; returns the item node's path. Waits for
    /// room in a bounded queue.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a time before the Unix epoch; otherwise as
    /// [`DistributedQueue::put`].
    pub async fn put(&self, item: T, due: SystemTime) -> Result<String> {
        self.queue
            .put_items(&delay_name(epoch_ms_ceil(due)?), &[item], None)
            .await?
            .ok_or(Error::Closed)
    }

    /// As [`DistributedDelayQueue::put`], waiting at most `timeout` for room in a bounded
    /// queue; `None` when the time ran out.
    ///
    /// # Errors
    /// As [`DistributedDelayQueue::put`].
    pub async fn put_timeout(
        &self,
        item: T,
        due: SystemTime,
        timeout: Duration,
    ) -> Result<Option<String>> {
        self.queue
            .put_items(
                &delay_name(epoch_ms_ceil(due)?),
                &[item],
                Some(Instant::now() + timeout),
            )
            .await
    }

    /// Puts all `items` in one node due at `due` (see [`DistributedQueue::put_multi`]).
    ///
    /// # Errors
    /// As [`DistributedDelayQueue::put`].
    pub async fn put_multi(
        &self,
        items: impl IntoIterator<Item = T>,
        due: SystemTime,
    ) -> Result<String> {
        let items: Vec<T> = items.into_iter().collect();
        self.queue
            .put_items(&delay_name(epoch_ms_ceil(due)?), &items, None)
            .await?
            .ok_or(Error::Closed)
    }

    /// The item nodes now in the queue, in due-time order.
    ///
    /// # Errors
    /// As [`DistributedQueue::item_names`].
    pub async fn item_names(&self) -> Result<Vec<String>> {
        self.queue.item_names().await
    }
}

/// `t` in milliseconds since the Unix epoch, rounded up (so an item is never due early).
fn epoch_ms_ceil(t: SystemTime) -> Result<u64> {
    let d = t.duration_since(UNIX_EPOCH).map_err(|_| {
        Error::InvalidArgument("a delay queue's due time must be after the Unix epoch".to_owned())
    })?;
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    Ok(if d.subsec_nanos() % 1_000_000 == 0 {
        ms
    } else {
        ms.saturating_add(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_round_up_to_the_millisecond() {
        let t = UNIX_EPOCH + Duration::from_millis(1500);
        assert_eq!(epoch_ms_ceil(t).unwrap(), 1500);
        assert_eq!(epoch_ms_ceil(t + Duration::from_nanos(1)).unwrap(), 1501);
        assert!(epoch_ms_ceil(UNIX_EPOCH - Duration::from_secs(1)).is_err());
    }
}
