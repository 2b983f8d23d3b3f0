//! The consumer task of a [`DistributedQueue`](super::DistributedQueue) (Curator's `runLoop`,
//! `processNormally` and `processWithLockSafety`): lists the queue with a children watch,
//! takes the items in order — under a per-item lock node when the queue has a lock path — and
//! hands them to the consumer function, one at a time.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::watch;
use zk_client::{Client, CreateMode, Error as ZkError, WatchFuture};

use super::distributed::Core;
use super::envelope;
use super::naming::requeue_name;
use super::serializer::BoxError;
use super::ErrorMode;
use crate::nodes::join;
use crate::util::{is_connection_trouble, stopped, RetryBackoff};

/// The consumer function, boxed.
pub(crate) type ConsumeFn<T> =
    Arc<dyn Fn(T) -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync>;

/// Boxes a consumer function.
pub(crate) fn boxed<T, F, Fut, E>(f: F) -> ConsumeFn<T>
where
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<BoxError>,
{
    Arc::new(move |item| {
        let fut = f(item);
        Box::pin(async move { fut.await.map_err(Into::into) })
    })
}

const MIN_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// What became of one item node.
enum Outcome {
    /// We processed it (and removed it).
    Done,
    /// Its consumer failed and we put it back at the end of the queue.
    Requeued,
    /// It was gone when we got to it (another consumer took it).
    Gone,
    /// Another consumer holds its lock.
    Locked,
}

/// The children watch of the current listing.
enum QueueWatch {
    Pending(WatchFuture),
    Fired,
}

impl QueueWatch {
    /// Whether the watch has fired (the children changed since the listing).
    fn fired(&mut self) -> bool {
        if let QueueWatch::Pending(w) = self {
            if w.now_or_never().is_some() {
                *self = QueueWatch::Fired;
            }
        }
        matches!(self, QueueWatch::Fired)
    }
}

/// The consumer task: runs until the queue is closed or the client is.
pub(crate) async fn run<T: Send + 'static>(
    core: Arc<Core<T>>,
    consume: ConsumeFn<T>,
    mut stop: watch::Receiver<bool>,
) {
    let client = core.client.clone();
    let mut backoff = MIN_BACKOFF;
    // The pause after a pass whose only progress was requeued items (e.g. one poison item
    // failing again and again): doubles up to MAX_BACKOFF, back to MIN_BACKOFF on a success.
    let mut requeue_backoff = MIN_BACKOFF;
    loop {
        if *stop.borrow() {
            return;
        }
        let listed = tokio::select! {
            biased;
            _ = stopped(&mut stop) => return,
            r = client.get_children(&core.path).watched() => r,
        };
        let (children, watch) = match listed {
            Ok(l) => l,
            Err(ZkError::NoNode) => {
                // The queue node is gone (deleted, or a reaped container): wait for it.
                match client.exists(&core.path).watched().await {
                    Ok((None, w)) => {
                        if !wait(&mut stop, Some(QueueWatch::Pending(w)), None, None).await {
                            return;
                        }
                    }
                    Ok((Some(_), _)) => {}
                    Err(ZkError::Closed) => return,
                    Err(e) => {
                        tracing::debug!(path = %core.path, %e, "queue consumer: exists failed");
                        if !pause(&mut stop, &mut backoff).await {
                            return;
                        }
                    }
                }
                continue;
            }
            Err(ZkError::Closed) => return,
            Err(e) => {
                tracing::debug!(path = %core.path, %e, "queue consumer: listing failed; retrying");
                if !pause(&mut stop, &mut backoff).await {
                    return;
                }
                continue;
            }
        };
        backoff = MIN_BACKOFF;
        let mut watch = QueueWatch::Pending(watch);
        let items = core.flavor.sorted(children);
        let Some(first) = items.first() else {
            if !wait(&mut stop, Some(watch), None, None).await {
                return;
            }
            continue;
        };
        let delay = core.flavor.delay(first, now_ms());
        if !delay.is_zero() {
            // The earliest item is not due: sleep until it is, or until the queue changes.
            if !wait(&mut stop, Some(watch), None, Some(delay)).await {
                return;
            }
            continue;
        }

        let mut progressed = false;
        let mut requeued = false;
        let mut first_locked: Option<String> = None;
        let mut failed = false;
        // Delay queues: how long until the first item not due yet.
        let mut next_due: Option<Duration> = None;
        for (i, name) in items.iter().enumerate() {
            if *stop.borrow() {
                return;
            }
            if core.flavor.refresh_after().is_some_and(|min| i >= min) && watch.fired() {
                // Priority queues: the queue changed (maybe a more urgent item): list again.
                break;
            }
            let delay = core.flavor.delay(name, now_ms());
            if !delay.is_zero() {
                // Sorted by due time: the rest is not due either.
                next_due = Some(delay);
                break;
            }
            match process(&core, &consume, name).await {
                Ok(Outcome::Done) => progressed = true,
                Ok(Outcome::Requeued) => requeued = true,
                Ok(Outcome::Gone) => {}
                Ok(Outcome::Locked) => {
                    first_locked.get_or_insert_with(|| name.clone());
                }
                Err(ZkError::Closed) => return,
                // Connection trouble: the next items would fail alike.
                Err(e) if is_connection_trouble(&e) => {
                    tracing::debug!(path = %core.path, item = %name, %e, "queue consumer: processing an item failed; listing again");
                    failed = true;
                    break;
                }
                // This item's own failure (no permission, larger than the client accepts,
                // ...): skip it, as Curator's per-item catch does, and go on with the next;
                // it is tried again when the queue changes.
                Err(e) => {
                    tracing::warn!(path = %core.path, item = %name, %e, "queue consumer: processing an item failed; skipping it");
                }
            }
        }
        if failed {
            if !pause(&mut stop, &mut backoff).await {
                return;
            }
            continue;
        }
        if progressed {
            requeue_backoff = MIN_BACKOFF;
            continue;
        }
        if requeued {
            // Only failures: do not spin on an item that fails at once every time.
            if !pause(&mut stop, &mut requeue_backoff).await {
                return;
            }
            continue;
        }
        // Nothing taken: every item was gone or locked by other consumers. Wait for the queue
        // to change, for the first locked item's lock to go (its consumer finished or died:
        // the item may be back for the taking), or for the next item to come due.
        let lock_watch = match (&first_locked, &core.lock_path) {
            (Some(name), Some(lock_root)) => {
                match client.exists(&join(lock_root, name)).watched().await {
                    Ok((Some(_), w)) => Some(w),
                    // Released already: list again now.
                    Ok((None, _)) => continue,
                    Err(ZkError::Closed) => return,
                    Err(_) => None,
                }
            }
            _ => None,
        };
        if !wait(&mut stop, Some(watch), lock_watch, next_due).await {
            return;
        }
    }
}

/// Waits for the queue watch, the lock watch or `sleep` (whichever are given and comes
/// first); false when the queue was closed meanwhile.
async fn wait(
    stop: &mut watch::Receiver<bool>,
    queue_watch: Option<QueueWatch>,
    lock_watch: Option<WatchFuture>,
    sleep: Option<Duration>,
) -> bool {
    let queue_watch = async {
        match queue_watch {
            Some(QueueWatch::Pending(w)) => {
                w.await;
            }
            Some(QueueWatch::Fired) => {}
            None => std::future::pending::<()>().await,
        }
    };
    let lock_watch = async {
        match lock_watch {
            Some(w) => {
                w.await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    let sleep = async {
        match sleep {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        biased;
        _ = stopped(stop) => false,
        _ = queue_watch => true,
        _ = lock_watch => true,
        _ = sleep => true,
    }
}

/// Sleeps for the back-off (doubling it); false when the queue was closed meanwhile.
async fn pause(stop: &mut watch::Receiver<bool>, backoff: &mut Duration) -> bool {
    let d = *backoff;
    *backoff = (d * 2).min(MAX_BACKOFF);
    wait(stop, None, None, Some(d)).await
}

/// Milliseconds since the Unix epoch now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Takes and processes one item node.
async fn process<T: Send + 'static>(
    core: &Core<T>,
    consume: &ConsumeFn<T>,
    name: &str,
) -> Result<Outcome, ZkError> {
    match &core.lock_path {
        Some(lock_root) => process_locked(core, consume, lock_root, name).await,
        None => process_unlocked(core, consume, name).await,
    }
}

/// Without a lock path (Curator's `processNormally`): read, delete, then consume — at most
/// once.
async fn process_unlocked<T: Send + 'static>(
    core: &Core<T>,
    consume: &ConsumeFn<T>,
    name: &str,
) -> Result<Outcome, ZkError> {
    let client = &core.client;
    let item_path = join(&core.path, name);
    let (bytes, stat) = match client.get_data(&item_path).await {
        Ok(r) => r,
        Err(ZkError::NoNode) => return Ok(Outcome::Gone),
        Err(e) => return Err(e),
    };
    match client.delete(&item_path).version(stat.version).await {
        Ok(()) => {}
        // Another consumer got it.
        Err(ZkError::NoNode | ZkError::BadVersion) => return Ok(Outcome::Gone),
        Err(e) => return Err(e),
    }
    // Failures cannot be requeued: the item is gone already.
    let _ = consume_items(core, consume, name, &bytes, false).await;
    Ok(Outcome::Done)
}

/// With a lock path (Curator's `processWithLockSafety`): lock, read, consume, then delete the
/// item (or requeue it) and the lock in one transaction — at least once.
async fn process_locked<T: Send + 'static>(
    core: &Core<T>,
    consume: &ConsumeFn<T>,
    lock_root: &str,
    name: &str,
) -> Result<Outcome, ZkError> {
    let client = &core.client;
    let item_path = join(&core.path, name);
    let lock = match ItemLock::acquire(client, &item_path, lock_root, name).await? {
        Acquired::Locked(lock) => lock,
        Acquired::HeldByOther => return Ok(Outcome::Locked),
        Acquired::ItemGone => return Ok(Outcome::Gone),
    };
    let bytes = match client.get_data(&item_path).await {
        Ok((bytes, _)) => bytes,
        Err(ZkError::NoNode) => {
            // Removed by an operator since it was locked.
            lock.release().await;
            return Ok(Outcome::Gone);
        }
        Err(e) => {
            lock.release().await;
            return Err(e);
        }
    };
    let requeue = consume_items(core, consume, name, &bytes, true).await;
    if !lock.still_ours().await? {
        tracing::warn!(item = %item_path, "the item's lock was lost (session expired) while it was processed; leaving it to the consumer that holds it now");
        lock.forget();
        return Ok(Outcome::Done);
    }
    // Pinned to this session: our lock node (deleted by path) is only ours in it; sent again
    // in a new session, the transaction would delete the lock of the consumer that took the
    // item over.
    let mut txn = client
        .pinned_to_session()
        .transaction()
        .delete(&item_path, -1);
    if let Some(rest) = &requeue {
        txn = txn.create_with(
            &join(&core.path, &requeue_name(name)),
            &envelope::encode(rest),
            CreateMode::PersistentSequential,
            None,
        );
    }
    txn = txn.delete(&lock.path, -1);
    match txn.await {
        Ok(_) => {
            lock.forget();
            Ok(if requeue.is_some() {
                Outcome::Requeued
            } else {
                Outcome::Done
            })
        }
        // The item was removed meanwhile (e.g. by an operator).
        Err(ZkError::Transaction { index: 0, error }) if *error == ZkError::NoNode => {
            lock.release().await;
            Ok(Outcome::Done)
        }
        Err(e) => {
            lock.release().await;
            Err(e)
        }
    }
}

/// Hands the items of one node to the consumer, in order. With `requeue_on_error` and
/// [`ErrorMode::Requeue`], the first failure stops the node's processing and returns the
/// serialized items still to do (the failed one first); otherwise failures are logged.
async fn consume_items<T: Send + 'static>(
    core: &Core<T>,
    consume: &ConsumeFn<T>,
    name: &str,
    bytes: &[u8],
    requeue_on_error: bool,
) -> Option<Vec<Vec<u8>>> {
    let raw = match envelope::decode(bytes) {
        Ok(raw) => raw,
        Err(why) => {
            tracing::error!(path = %core.path, item = %name, %why, "corrupt queue item; dropped");
            return None;
        }
    };
    for (i, item_bytes) in raw.iter().enumerate() {
        // A panicking serializer is a corrupt item, not the end of the consumer task (with a
        // lock path, every consumer would take the item in turn and die of it).
        let deserialized =
            std::panic::catch_unwind(AssertUnwindSafe(|| core.serializer.deserialize(item_bytes)));
        let item = match deserialized {
            Ok(Ok(item)) => item,
            Ok(Err(e)) => {
                tracing::error!(path = %core.path, item = %name, %e, "queue item does not deserialize; dropped");
                continue;
            }
            Err(_) => {
                tracing::error!(path = %core.path, item = %name, "the queue serializer panicked on an item; dropped");
                continue;
            }
        };
        let outcome = AssertUnwindSafe(async { consume(item).await })
            .catch_unwind()
            .await;
        let failure = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e.to_string(),
            Err(_) => "the consumer panicked".to_owned(),
        };
        tracing::warn!(path = %core.path, item = %name, %failure, "queue consumer failed on an item");
        if requeue_on_error && core.error_mode == ErrorMode::Requeue {
            return raw.get(i..).map(<[Vec<u8>]>::to_vec);
        }
    }
    None
}

/// Removes the item node `name` as a consumer would take it, without consuming it (for
/// `DistributedIdQueue::remove`); whether this call removed it.
pub(crate) async fn remove<T>(core: &Core<T>, name: &str) -> Result<bool, ZkError> {
    let client = &core.client;
    let item_path = join(&core.path, name);
    let Some(lock_root) = &core.lock_path else {
        return match client.delete(&item_path).await {
            Ok(()) => Ok(true),
            Err(ZkError::NoNode) => Ok(false),
            Err(e) => Err(e),
        };
    };
    let lock = match ItemLock::acquire(client, &item_path, lock_root, name).await? {
        Acquired::Locked(lock) => lock,
        Acquired::HeldByOther | Acquired::ItemGone => return Ok(false),
    };
    // Pinned to this session, as in `process_locked`.
    match client
        .pinned_to_session()
        .transaction()
        .delete(&item_path, -1)
        .delete(&lock.path, -1)
        .await
    {
        Ok(_) => {
            lock.forget();
            Ok(true)
        }
        Err(ZkError::Transaction { index: 0, error }) if *error == ZkError::NoNode => {
            lock.release().await;
            Ok(false)
        }
        Err(e) => {
            lock.release().await;
            Err(e)
        }
    }
}

/// The outcome of trying to lock an item.
enum Acquired {
    /// We hold the item's lock.
    Locked(ItemLock),
    /// Another consumer holds it.
    HeldByOther,
    /// The item is gone.
    ItemGone,
}

/// The lock node of one item, owned by one session and told apart by a random token in its
/// data. It is armed before the node's create is sent: dropped while armed — also while
/// [`ItemLock::acquire`] is still waiting for the create's reply, e.g. when the queue is
/// dropped (aborting its consumer task) or `DistributedIdQueue::remove` is cancelled — it
/// deletes the node in the background if the node holds our token, so a cancelled acquire
/// leaves no lock behind (which would hide the item from every consumer until the session
/// ends).
struct ItemLock {
    client: Client,
    path: String,
    token: Vec<u8>,
    session: i64,
    armed: bool,
}

impl ItemLock {
    /// Creates the EPHEMERAL lock node `<lock_root>/<name>` for the item at `item_path`, in one
    /// transaction with a check that the item still exists (so an item another consumer just
    /// finished costs one round trip, not three).
    async fn acquire(
        client: &Client,
        item_path: &str,
        lock_root: &str,
        name: &str,
    ) -> Result<Acquired, ZkError> {
        // A token in the node tells our own node (whose create reply was lost and was
        // retried) from another consumer's, even one sharing our session. Armed from here:
        // if this future is dropped, whatever node the create made is deleted.
        let mut lock = ItemLock {
            client: client.clone(),
            path: join(lock_root, name),
            token: uuid::Uuid::new_v4().to_string().into_bytes(),
            session: client.session_id(),
            armed: true,
        };
        let mut made_root = false;
        loop {
            let session = client.session_id();
            let created = client
                .transaction()
                .check(item_path, -1)
                .create_with(&lock.path, &lock.token, CreateMode::Ephemeral, None)
                .await;
            lock.session = match created {
                Ok(_) if client.session_id() == session => session,
                // The session changed under the call: learn which session owns the node.
                Ok(_) => match lock.owner_if_ours().await? {
                    Some(owner) => owner,
                    None => {
                        lock.forget();
                        return Ok(Acquired::HeldByOther);
                    }
                },
                Err(ZkError::Transaction { index: 0, error }) if *error == ZkError::NoNode => {
                    lock.forget();
                    return Ok(Acquired::ItemGone);
                }
                Err(ZkError::Transaction { index: 1, error })
                    if *error == ZkError::NoNode && !made_root =>
                {
                    // The lock path is missing (deleted, or a reaped container).
                    made_root = true;
                    match client
                        .create(lock_root)
                        .creating_parent_containers_if_needed()
                        .await
                    {
                        Ok(_) | Err(ZkError::NodeExists) => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(ZkError::Transaction { index: 1, error }) if *error == ZkError::NodeExists => {
                    // Another consumer's — or ours, if a reply was lost and the call retried.
                    match lock.owner_if_ours().await? {
                        Some(owner) if owner == client.session_id() => owner,
                        // Ours, from a session the client has left: still armed, so it is
                        // deleted (it hides the item until that session ends otherwise).
                        Some(_) => return Ok(Acquired::HeldByOther),
                        None => {
                            lock.forget();
                            return Ok(Acquired::HeldByOther);
                        }
                    }
                }
                // The create may have been applied: still armed, so it is cleaned up.
                Err(e) => return Err(e),
            };
            return Ok(Acquired::Locked(lock));
        }
    }

    /// The owner session of the lock node if it holds our token.
    async fn owner_if_ours(&self) -> Result<Option<i64>, ZkError> {
        match self.client.get_data(&self.path).await {
            Ok((data, stat)) if data == self.token => Ok(Some(stat.ephemeral_owner)),
            Ok(_) | Err(ZkError::NoNode) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether the lock is still ours: the lock node exists and belongs to its session, which
    /// is still the client's. Asked of the server, not of the client's idea of its session:
    /// a client may not know yet that its session expired, and the transaction that follows
    /// would be retried on the new session (deleting an item — and a lock — another consumer
    /// now holds). What remains is the window between this read and that transaction.
    async fn still_ours(&self) -> Result<bool, ZkError> {
        if self.client.session_id() != self.session {
            return Ok(false);
        }
        Ok(self
            .client
            .exists(&self.path)
            .await?
            .is_some_and(|stat| stat.ephemeral_owner == self.session))
    }

    /// Deletes the lock node: waits for the first attempt (bounded by the client's
    /// connection timeout); on connection trouble the delete goes on in the background.
    async fn release(mut self) {
        self.armed = false;
        let (client, path, token) = (self.client.clone(), self.path.clone(), self.token.clone());
        let (first, attempted) = tokio::sync::oneshot::channel();
        tokio::spawn(async move { delete_lock(&client, &path, &token, Some(first)).await });
        let _ = attempted.await;
    }

    /// Forgets the lock node (it was deleted in a transaction, vanished with its session, or
    /// was never ours).
    fn forget(mut self) {
        self.armed = false;
    }
}

impl Drop for ItemLock {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (client, path) = (self.client.clone(), std::mem::take(&mut self.path));
        let token = std::mem::take(&mut self.token);
        crate::util::runtime_for(&client)
            .spawn(async move { delete_lock(&client, &path, &token, None).await });
    }
}

/// Deletes the lock node `path` if it holds our `token` (read, then a delete at the version
/// read), retrying until that is settled: a node at the same path without our token is
/// another consumer's (ours vanished with its session, or was never created). `first` is
/// told when the first attempt is over.
async fn delete_lock(
    client: &Client,
    path: &str,
    token: &[u8],
    mut first: Option<tokio::sync::oneshot::Sender<()>>,
) {
    let mut backoff = RetryBackoff::default();
    loop {
        let attempt = match client.get_data(path).await {
            Ok((data, stat)) if data == token => {
                client.delete(path).version(stat.version).quietly().await
            }
            Ok(_) => return,
            Err(e) => Err(e),
        };
        if let Some(first) = first.take() {
            let _ = first.send(());
        }
        match attempt {
            Ok(()) | Err(ZkError::Closed | ZkError::NoNode | ZkError::BadVersion) => return,
            Err(e) if is_connection_trouble(&e) => {
                if !backoff.wait(client, &e).await {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(%path, %e, "giving up deleting a queue item lock");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use zk_server::{FaultMode, FaultProxy, TestingServer};

    use super::*;

    /// Releasing an item lock while the server is unreachable waits for one attempt (until
    /// the client notices the dead connection: two thirds of the 4 s session timeout), not
    /// for the connection to come back; the lock is deleted once it does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn releasing_a_lock_during_an_outage_does_not_wait_for_the_outage() {
        let server = TestingServer::start().await.unwrap();
        let proxy = FaultProxy::start(&server.connect_string()).await.unwrap();
        let timeout = Duration::from_secs(1);
        let client = Client::builder()
            .connect_string(proxy.connect_string())
            .session_timeout(Duration::from_secs(4))
            .connection_timeout(timeout)
            .build()
            .unwrap();
        client
            .block_until_connected(Duration::from_secs(20))
            .await
            .unwrap();
        client
            .create("/q/item")
            .creating_parents_if_needed()
            .await
            .unwrap();
        let Ok(Acquired::Locked(lock)) =
            ItemLock::acquire(&client, "/q/item", "/locks", "item").await
        else {
            panic!("not locked");
        };
        proxy.set_mode(FaultMode::Blackhole);
        let started = tokio::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(20), lock.release())
            .await
            .expect("release returns during the outage");
        assert!(started.elapsed() < 10 * timeout, "{:?}", started.elapsed());
        proxy.set_mode(FaultMode::Forward);
        let observer = Client::builder()
            .connect_string(server.connect_string())
            .build()
            .unwrap();
        tokio::time::timeout(Duration::from_secs(20), async {
            while observer
                .exists("/locks/item")
                .await
                .ok()
                .flatten()
                .is_some()
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the lock is deleted once the server is back");
    }
}
