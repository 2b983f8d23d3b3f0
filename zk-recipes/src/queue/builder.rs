//! [`QueueBuilder`]: Curator's `QueueBuilder`, the builder of every distributed queue.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use zk_client::Client;

use super::consumer::{self, ConsumeFn};
use super::delay::DistributedDelayQueue;
use super::distributed::DistributedQueue;
use super::id::DistributedIdQueue;
use super::naming::Flavor;
use super::priority::DistributedPriorityQueue;
use super::serializer::{BoxError, QueueSerializer};
use super::ErrorMode;
use crate::nodes::check_base_path;
use crate::{Error, Result};

/// Builds a [`DistributedQueue`], [`DistributedPriorityQueue`], [`DistributedDelayQueue`] or
/// [`DistributedIdQueue`] (Curator's `QueueBuilder`).
///
/// A queue built without a [consumer](QueueBuilder::consumer) is producer-only. Puts are
/// always made in the foreground (the future completes when the item node exists), which is
/// Curator's `putInBackground(false)`.
pub struct QueueBuilder<T> {
    client: Client,
    path: String,
    serializer: Arc<dyn QueueSerializer<T>>,
    consumer: Option<ConsumeFn<T>>,
    lock_path: Option<String>,
    max_items: Option<usize>,
    error_mode: ErrorMode,
}

impl<T> fmt::Debug for QueueBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueBuilder")
            .field("path", &self.path)
            .field("consumer", &self.consumer.is_some())
            .field("lock_path", &self.lock_path)
            .field("max_items", &self.max_items)
            .field("error_mode", &self.error_mode)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> QueueBuilder<T> {
    /// A builder of a queue on `path` whose items `serializer` turns into bytes.
    pub fn new(client: Client, path: &str, serializer: impl QueueSerializer<T>) -> QueueBuilder<T> {
        QueueBuilder {
            client,
            path: path.to_owned(),
            serializer: Arc::new(serializer),
            consumer: None,
            lock_path: None,
            max_items: None,
            error_mode: ErrorMode::Requeue,
        }
    }

    /// The consumer: an async function called with each item, one item at a time, by the
    /// queue's consumer task. `Ok` means the item is done; `Err` (or a panic) means it failed
    /// (see [`QueueBuilder::error_mode`]). With a lock path the item stays locked — and in the
    /// queue — until the returned future completes.
    ///
    /// ```no_run
    /// # fn f(client: zk_client::Client) -> zk_recipes::Result<()> {
    /// use zk_recipes::queue::{BytesSerializer, DistributedQueue};
    ///
    /// let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    /// let queue = DistributedQueue::builder(client, "/app/queue", BytesSerializer)
    ///     .lock_path("/app/queue-locks")
    ///     // Done once the item was handed on; Err (the receiver is gone) requeues it.
    ///     .consumer(move |item: Vec<u8>| {
    ///         let tx = tx.clone();
    ///         async move { tx.send(item).await }
    ///     })
    ///     .build_queue()?;
    /// # Ok(()) }
    /// ```
    pub fn consumer<F, Fut, E>(mut self, consumer: F) -> QueueBuilder<T>
    where
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.consumer = Some(consumer::boxed(consumer));
        self
    }

    /// Makes items recoverable (Curator's `lockPath`): each item is locked by an EPHEMERAL
    /// node `<lock_path>/<item node name>` while it is processed and removed only after the
    /// consumer succeeded; an item whose consumer fails is requeued (or deleted, see
    /// [`QueueBuilder::error_mode`]) and one whose consumer dies goes to another consumer.
    /// Without a lock path items are removed before they are processed (at most once). The
    /// lock path must lie outside the queue path.
    pub fn lock_path(mut self, lock_path: &str) -> QueueBuilder<T> {
        self.lock_path = Some(lock_path.to_owned());
        self
    }

    /// Bounds the queue (Curator's `maxItems`): puts wait while the queue holds `max_items`
    /// items or more (`put_timeout` gives up after its timeout). The bound is approximate:
    /// producers racing for the last free place may all get it. Must be positive.
    pub fn max_items(mut self, max_items: usize) -> QueueBuilder<T> {
        self.max_items = Some(max_items);
        self
    }

    /// What happens to an item whose consumer fails, when the queue has a lock path
    /// (Curator's `setErrorMode`; default [`ErrorMode::Requeue`]). Without a lock path a
    /// failed item is lost whatever the mode.
    pub fn error_mode(mut self, error_mode: ErrorMode) -> QueueBuilder<T> {
        self.error_mode = error_mode;
        self
    }

    /// A FIFO [`DistributedQueue`] (Curator's `buildQueue`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an invalid queue or lock path, a lock path inside the
    /// queue path, or `max_items(0)`.
    pub fn build_queue(self) -> Result<DistributedQueue<T>> {
        self.build(Flavor::Plain)
    }

    /// A [`DistributedPriorityQueue`] (Curator's `buildPriorityQueue`): after
    /// `min_items_before_refresh` items of one listing, the consumer lists the queue again if
    /// it changed, so a more urgent item put meanwhile is taken sooner (0: after every item;
    /// every item the consumer removes changes the queue, so small values cost a listing per
    /// item).
    ///
    /// # Errors
    /// As [`QueueBuilder::build_queue`].
    pub fn build_priority_queue(
        self,
        min_items_before_refresh: usize,
    ) -> Result<DistributedPriorityQueue<T>> {
        Ok(DistributedPriorityQueue {
            queue: self.build(Flavor::Priority {
                min_items_before_refresh,
            })?,
        })
    }

    /// A [`DistributedDelayQueue`] (Curator's `buildDelayQueue`).
    ///
    /// # Errors
    /// As [`QueueBuilder::build_queue`].
    pub fn build_delay_queue(self) -> Result<DistributedDelayQueue<T>> {
        Ok(DistributedDelayQueue {
            queue: self.build(Flavor::Delay)?,
        })
    }

    /// A [`DistributedIdQueue`] (Curator's `buildIdQueue`).
    ///
    /// # Errors
    /// As [`QueueBuilder::build_queue`], and for a queue path containing `|` (Curator's
    /// check: the id separator).
    pub fn build_id_queue(self) -> Result<DistributedIdQueue<T>> {
        if self.path.contains('|') {
            return Err(Error::InvalidArgument(format!(
                "{}: an id queue's path cannot contain '|'",
                self.path
            )));
        }
        Ok(DistributedIdQueue {
            queue: self.build(Flavor::Id)?,
        })
    }

    fn build(self, flavor: Flavor) -> Result<DistributedQueue<T>> {
        check_base_path(&self.path)?;
        if let Some(lock_path) = &self.lock_path {
            check_base_path(lock_path)?;
            let inside = lock_path == &self.path
                || lock_path
                    .strip_prefix(self.path.as_str())
                    .is_some_and(|rest| rest.starts_with('/'));
            if inside {
                return Err(Error::InvalidArgument(format!(
                    "the lock path {lock_path} lies inside the queue path {}",
                    self.path
                )));
            }
        }
        if self.max_items == Some(0) {
            return Err(Error::InvalidArgument(
                "max_items must be positive".to_owned(),
            ));
        }
        Ok(DistributedQueue::from_parts(
            self.client,
            self.path,
            self.lock_path,
            self.serializer,
            self.max_items,
            self.error_mode,
            flavor,
            self.consumer,
        ))
    }
}
