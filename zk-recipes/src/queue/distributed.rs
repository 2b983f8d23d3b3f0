//! [`DistributedQueue`]: Curator's `DistributedQueue`, and the core its variants share.

use std::fmt;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use zk_client::{Client, CreateMode, Error as ZkError};

use super::builder::QueueBuilder;
use super::consumer::{self, ConsumeFn};
use super::envelope;
use super::naming::{Flavor, QUEUE_ITEM_NAME};
use super::serializer::QueueSerializer;
use super::ErrorMode;
use crate::nodes::join;
use crate::util::lock;
use crate::{Error, Result};

/// The lifecycle of a queue.
enum Status {
    Latent,
    Starting,
    Started(Option<JoinHandle<()>>),
    Closed,
}

/// Puts a queue whose start is under way back from `Starting` to `Latent` when dropped (the
/// start failed, or its future was dropped), unless disarmed once it is started.
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

/// Whether a call may use the queue now: [`Error::NotStarted`] before it is started,
/// [`Error::Closed`] after it was closed.
fn check_started(status: &StdMutex<Status>) -> Result<()> {
    match *lock(status) {
        Status::Started(_) => Ok(()),
        Status::Latent | Status::Starting => Err(Error::NotStarted),
        Status::Closed => Err(Error::Closed),
    }
}

/// What a queue handle and its consumer task share.
pub(crate) struct Core<T> {
    pub(crate) client: Client,
    pub(crate) path: String,
    pub(crate) lock_path: Option<String>,
    pub(crate) serializer: Arc<dyn QueueSerializer<T>>,
    pub(crate) max_items: Option<usize>,
    pub(crate) error_mode: ErrorMode,
    pub(crate) flavor: Flavor,
    consumer: Option<ConsumeFn<T>>,
    status: StdMutex<Status>,
    stop: watch::Sender<bool>,
}

/// A distributed FIFO queue: Curator's `DistributedQueue`, layout-compatible with it (Java and
/// Rust producers and consumers can share a queue path, given serializers with the same byte
/// format).
///
/// Built by a [`QueueBuilder`]. Each put creates one PERSISTENT_SEQUENTIAL node
/// `<path>/queue-NNNNNNNNNN` holding the item (or, for [`DistributedQueue::put_multi`], all
/// its items) in Curator's item envelope. A queue built with a consumer runs a consumer task
/// after [`DistributedQueue::start`]: it lists the queue (with a children watch), takes the
/// items in order and hands each to the consumer, one at a time; it waits on the watch while
/// the queue is empty.
///
/// # Delivery guarantees
///
/// * **With a lock path** ([`QueueBuilder::lock_path`]): before an item is processed the
///   consumer creates an EPHEMERAL lock node `<lockPath>/<item node name>` (Curator's
///   layout), so exactly one consumer processes it at a time. The item node is deleted only
///   after the consumer returned `Ok` (in one transaction with the lock node). If the consumer
///   fails (returns `Err` or panics), the item is requeued ([`ErrorMode::Requeue`], the
///   default: the failed item and any after it in a multi-item node go back at the end of the
///   queue in the same transaction) or dropped ([`ErrorMode::Delete`]). If the consumer's
///   process or session dies mid-item, the lock node vanishes with the session and another
///   consumer takes the item: delivery is *at least once*. Before deleting or requeueing, the
///   consumer asks the server whether its lock node is still its own; if the session was lost
///   meanwhile, the item is left to whoever holds it now (only a session expiring in the
///   instant between that check and the transaction can still make an item be processed
///   twice).
/// * **Without a lock path**: an item node is deleted *before* it is processed (Curator's
///   behaviour): delivery is *at most once*; an item whose consumer fails or dies is lost.
///   So is an item whose delete succeeded but whose reply was lost: the client retries the
///   delete, the retry finds the node gone (NONODE), and the consumer cannot tell that from
///   another consumer having taken the item, so it skips it — the item is then processed by
///   nobody (as in Curator).
///
/// Items come out in FIFO order for a single consumer; with several consumers each one sees
/// the items it takes in queue order, but processing overlaps (use a leader election to
/// nominate one consumer when global order matters).
///
/// Puts are at-least-once too: a create retried after a lost reply can enqueue an item twice
/// (sequential nodes cannot be recognised on retry, and protected names would break
/// Curator's layout).
///
/// ```no_run
/// # async fn f(client: zk_client::Client) -> zk_recipes::Result<()> {
/// use zk_recipes::queue::{DistributedQueue, Utf8Serializer};
///
/// let queue = DistributedQueue::builder(client, "/app/queue", Utf8Serializer)
///     .lock_path("/app/queue-locks")
///     .consumer(|job: String| async move {
///         println!("processing {job}");
///         Ok::<(), std::io::Error>(())
///     })
///     .build_queue()?;
/// queue.start().await?;
/// queue.put("job-1".to_owned()).await?;
/// // ...
/// queue.close().await;
/// # Ok(()) }
/// ```
pub struct DistributedQueue<T> {
    pub(crate) core: Arc<Core<T>>,
}

impl<T> fmt::Debug for DistributedQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DistributedQueue")
            .field("path", &self.core.path)
            .field("lock_path", &self.core.lock_path)
            .field("flavor", &self.core.flavor)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> DistributedQueue<T> {
    /// A builder of a queue on `path` whose items `serializer` turns into bytes (Curator's
    /// `QueueBuilder.builder`).
    pub fn builder(
        client: Client,
        path: &str,
        serializer: impl QueueSerializer<T>,
    ) -> QueueBuilder<T> {
        QueueBuilder::new(client, path, serializer)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_parts(
        client: Client,
        path: String,
        lock_path: Option<String>,
        serializer: Arc<dyn QueueSerializer<T>>,
        max_items: Option<usize>,
        error_mode: ErrorMode,
        flavor: Flavor,
        consumer: Option<ConsumeFn<T>>,
    ) -> DistributedQueue<T> {
        DistributedQueue {
            core: Arc::new(Core {
                client,
                path,
                lock_path,
                serializer,
                max_items,
                error_mode,
                flavor,
                consumer,
                status: StdMutex::new(Status::Latent),
                stop: watch::channel(false).0,
            }),
        }
    }

    /// The queue's path.
    pub fn path(&self) -> &str {
        &self.core.path
    }

    /// The lock path, if the queue has one.
    pub fn lock_path(&self) -> Option<&str> {
        self.core.lock_path.as_deref()
    }

    /// Starts the queue: creates the queue path and the lock path if missing (persistent
    /// nodes; missing parents become containers) and, if the queue has a consumer, starts the
    /// consumer task (must be called inside a tokio runtime). Puts fail until the queue is
    /// started.
    ///
    /// # Errors
    /// [`Error::AlreadyStarted`], [`Error::Closed`] after [`DistributedQueue::close`], or
    /// [`Error::Zk`] when a create fails (the queue may then be started again, as after a
    /// start cancelled by dropping its future).
    pub async fn start(&self) -> Result<()> {
        let core = &self.core;
        {
            let mut status = lock(&core.status);
            match *status {
                Status::Latent => *status = Status::Starting,
                Status::Starting | Status::Started(_) => return Err(Error::AlreadyStarted),
                Status::Closed => return Err(Error::Closed),
            }
        }
        // From here until the queue is started, a failure or a cancelled start (this future
        // dropped) puts it back to Latent, so it can be started again.
        let guard = StartGuard(&core.status);
        ensure_node(&core.client, &core.path).await?;
        if let Some(lock_path) = &core.lock_path {
            ensure_node(&core.client, lock_path).await?;
        }
        let mut status = lock(&core.status);
        match *status {
            Status::Starting => {
                let task = core.consumer.clone().map(|consume| {
                    tokio::spawn(consumer::run(core.clone(), consume, core.stop.subscribe()))
                });
                *status = Status::Started(task);
                drop(status);
                guard.disarm();
                Ok(())
            }
            _ => Err(Error::Closed),
        }
    }

    /// Closes the queue: puts fail from now on and the consumer task stops — after the item
    /// it is processing, if any, is finished (so this waits for the consumer to return).
    /// Closing twice is harmless. Dropping the queue instead aborts the consumer at once (an
    /// item it was processing under a lock stays in the queue and its lock node is deleted).
    pub async fn close(&self) {
        let task = match std::mem::replace(&mut *lock(&self.core.status), Status::Closed) {
            Status::Started(task) => task,
            _ => None,
        };
        self.core.stop.send_replace(true);
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Puts `item` at the end of the queue; returns the item node's path. With
    /// [`QueueBuilder::max_items`], waits (on a children watch) while the queue holds that
    /// many items or more.
    ///
    /// # Errors
    /// [`Error::NotStarted`] before [`DistributedQueue::start`]; [`Error::Closed`] after
    /// [`DistributedQueue::close`] (also when it interrupts a wait for room);
    /// [`Error::Serialization`] when the serializer fails;
    /// [`Error::Zk`] when a call fails after the client's retries (e.g. the item is larger
    /// than ZooKeeper's 1 MiB node limit).
    pub async fn put(&self, item: T) -> Result<String> {
        self.put_items(QUEUE_ITEM_NAME, &[item], None)
            .await?
            .ok_or(Error::Closed)
    }

    /// As [`DistributedQueue::put`], waiting at most `timeout` for room in a bounded queue;
    /// `None` when the time ran out (nothing was put).
    ///
    /// # Errors
    /// As [`DistributedQueue::put`].
    pub async fn put_timeout(&self, item: T, timeout: Duration) -> Result<Option<String>> {
        self.put_items(QUEUE_ITEM_NAME, &[item], Some(Instant::now() + timeout))
            .await
    }

    /// Puts all `items` in one node (Curator's `putMulti`): they are consumed together, in
    /// order, by one consumer; returns the node's path.
    ///
    /// # Errors
    /// As [`DistributedQueue::put`].
    pub async fn put_multi(&self, items: impl IntoIterator<Item = T>) -> Result<String> {
        let items: Vec<T> = items.into_iter().collect();
        self.put_items(QUEUE_ITEM_NAME, &items, None)
            .await?
            .ok_or(Error::Closed)
    }

    /// As [`DistributedQueue::put_multi`], waiting at most `timeout` for room in a bounded
    /// queue; `None` when the time ran out.
    ///
    /// # Errors
    /// As [`DistributedQueue::put`].
    pub async fn put_multi_timeout(
        &self,
        items: impl IntoIterator<Item = T>,
        timeout: Duration,
    ) -> Result<Option<String>> {
        let items: Vec<T> = items.into_iter().collect();
        self.put_items(QUEUE_ITEM_NAME, &items, Some(Instant::now() + timeout))
            .await
    }

    /// The names of the item nodes now in the queue, in the order consumers take them (for
    /// monitoring; the queue may change at once).
    ///
    /// # Errors
    /// [`Error::Zk`] when the listing fails.
    pub async fn item_names(&self) -> Result<Vec<String>> {
        match self.core.client.get_children(&self.core.path).await {
            Ok(children) => Ok(self.core.flavor.sorted(children)),
            Err(ZkError::NoNode) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// Puts `items` in one node named `name` + sequence, after waiting for room until
    /// `deadline` (if bounded); `None` when the time ran out.
    pub(crate) async fn put_items(
        &self,
        name: &str,
        items: &[T],
        deadline: Option<Instant>,
    ) -> Result<Option<String>> {
        let core = &self.core;
        check_started(&core.status)?;
        let serialized = items
            .iter()
            .map(|item| core.serializer.serialize(item))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Serialization(e.to_string()))?;
        let data = envelope::encode(&serialized);
        if let Some(max) = core.max_items {
            if !self.wait_for_room(max, deadline).await? {
                return Ok(None);
            }
            // Closed while waiting for room?
            check_started(&core.status)?;
        }
        let created = core
            .client
            .create(&join(&core.path, name))
            .mode(CreateMode::PersistentSequential)
            .creating_parent_containers_if_needed()
            .data(data)
            .await?;
        Ok(Some(created.path))
    }

    /// Waits while the queue holds `max` items or more; false when `deadline` passed first.
    /// Like Curator's bound this is approximate: producers racing for the last free place
    /// may all get it.
    ///
    /// # Errors
    /// [`Error::Closed`] when the queue is closed (or dropped) meanwhile; [`Error::Zk`] when
    /// the listing fails.
    async fn wait_for_room(&self, max: usize, deadline: Option<Instant>) -> Result<bool> {
        let client = &self.core.client;
        let mut stop = self.core.stop.subscribe();
        loop {
            if *stop.borrow_and_update() {
                return Err(Error::Closed);
            }
            let watch = match client.get_children(&self.core.path).watched().await {
                Ok((children, watch)) => {
                    let items = children
                        .iter()
                        .filter(|c| c.starts_with(QUEUE_ITEM_NAME))
                        .count();
                    if items < max {
                        return Ok(true);
                    }
                    watch
                }
                Err(ZkError::NoNode) => return Ok(true),
                Err(e) => return Err(e.into()),
            };
            // Whether the watch fired before the deadline.
            let changed = async {
                match deadline {
                    Some(d) => tokio::time::timeout_at(d, watch).await.is_ok(),
                    None => {
                        watch.await;
                        true
                    }
                }
            };
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return Err(Error::Closed),
                changed = changed => {
                    if !changed {
                        return Ok(false);
                    }
                }
            }
        }
    }

    /// Removes the item node `name` (as a consumer would take it: under its lock, if the
    /// queue has a lock path); whether this call removed it.
    pub(crate) async fn remove_item(&self, name: &str) -> Result<bool> {
        check_started(&self.core.status)?;
        Ok(consumer::remove(&self.core, name).await?)
    }
}

impl<T> Drop for DistributedQueue<T> {
    fn drop(&mut self) {
        self.core.stop.send_replace(true);
        if let Status::Started(Some(task)) =
            std::mem::replace(&mut *lock(&self.core.status), Status::Closed)
        {
            task.abort();
        }
    }
}

/// Creates `path` (persistent; parents as containers) unless it exists.
async fn ensure_node(client: &Client, path: &str) -> Result<(), ZkError> {
    match client
        .create(path)
        .creating_parent_containers_if_needed()
        .await
    {
        Ok(_) | Err(ZkError::NodeExists) => Ok(()),
        Err(e) => Err(e),
    }
}
