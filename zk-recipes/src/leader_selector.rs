//! [`LeaderSelector`]: Curator's `LeaderSelector` — leadership as an async closure run while
//! holding a [`Mutex`], cancelled when the connection makes leadership doubtful.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use zk_client::{Client, ConnectionState, ConnectionStateErrorPolicy};

use crate::leader_latch::{read_participants, Participant};
use crate::mutex::{LockState, Mutex, MutexGuard};
use crate::util::{became_true, lock};
use crate::{Error, Result};

/// Why leadership is being taken away (see [`LeadershipContext::cancelled`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CancelReason {
    /// The connection dropped (Curator's SUSPENDED), under
    /// [`ConnectionStateErrorPolicy::Standard`] only; or the client is on a read-only
    /// server (READ_ONLY), under either policy.
    Suspended,
    /// The session is lost, or the lock node is gone.
    Lost,
    /// [`LeaderSelector::interrupt_leadership`] was called.
    Interrupted,
    /// The selector is being closed.
    Closed,
}

/// What the take-leadership closure gets: the grant's fencing token and the cancellation
/// signal (Curator's `CancelLeadershipException` / thread interrupt, as a future).
#[derive(Clone)]
pub struct LeadershipContext {
    client: Client,
    id: String,
    fencing_token: i64,
    node_path: String,
    cancel: watch::Receiver<Option<CancelReason>>,
}

impl fmt::Debug for LeadershipContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeadershipContext")
            .field("id", &self.id)
            .field("fencing_token", &self.fencing_token)
            .field("node_path", &self.node_path)
            .field("cancel", &*self.cancel.borrow())
            .finish()
    }
}

impl LeadershipContext {
    /// The selector's client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// This participant's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The fencing token of this term of leadership: the `czxid` of the lock node (see
    /// [`MutexGuard::fencing_token`]); a later term, of any participant, has a larger one.
    pub fn fencing_token(&self) -> i64 {
        self.fencing_token
    }

    /// The lock node held during this term (client-relative).
    pub fn node_path(&self) -> &str {
        &self.node_path
    }

    /// Whether leadership is being taken away.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.borrow().is_some()
    }

    /// Resolves when leadership is being taken away, with the reason. After this the closure
    /// has the selector's grace period ([`LeaderSelectorBuilder::cancel_grace`]) to return
    /// before its future is dropped.
    ///
    /// # Cancellation safety
    /// Cancel-safe; resolves at once if the cancellation happened already.
    pub async fn cancelled(&self) -> CancelReason {
        let mut rx = self.cancel.clone();
        let reason = match rx.wait_for(|c| c.is_some()).await {
            Ok(c) => c.unwrap_or(CancelReason::Closed),
            // The selector is gone: so is leadership.
            Err(_) => CancelReason::Closed,
        };
        reason
    }
}

type TakeLeadership = dyn Fn(LeadershipContext) -> BoxFuture<'static, ()> + Send + Sync;

/// Builds a [`LeaderSelector`] (see [`LeaderSelector::builder`]).
#[must_use = "a builder does nothing until built"]
pub struct LeaderSelectorBuilder {
    client: Client,
    path: String,
    id: String,
    take_leadership: Arc<TakeLeadership>,
    auto_requeue: bool,
    policy: Option<ConnectionStateErrorPolicy>,
    grace: Duration,
}

impl fmt::Debug for LeaderSelectorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaderSelectorBuilder")
            .field("path", &self.path)
            .field("id", &self.id)
            .field("auto_requeue", &self.auto_requeue)
            .field("policy", &self.policy)
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

impl LeaderSelectorBuilder {
    /// The participant id, stored as the lock node's data (default: empty, as Curator).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Queue again for leadership whenever a term ends (Curator's `autoRequeue()`), also
    /// after a failed attempt; default off: one term per [`LeaderSelector::start`] /
    /// [`LeaderSelector::requeue`].
    pub fn auto_requeue(mut self) -> Self {
        self.auto_requeue = true;
        self
    }

    /// Which connection states cancel leadership (default: the client's
    /// [`connection_state_error_policy`](Client::connection_state_error_policy)).
    pub fn error_policy(mut self, policy: ConnectionStateErrorPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// How long a cancelled closure may take to return before its future is dropped
    /// (default 1 s). The lock is held (and no other participant leads) until the closure
    /// returned or was dropped.
    pub fn cancel_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The selector (not started).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an invalid path or the root.
    pub fn build(self) -> Result<LeaderSelector> {
        let mutex = Mutex::with_node_data(self.client.clone(), &self.path, self.id.as_bytes())?;
        let policy = self
            .policy
            .unwrap_or_else(|| self.client.connection_state_error_policy());
        Ok(LeaderSelector {
            inner: Arc::new(Inner {
                client: self.client,
                path: self.path,
                id: self.id,
                mutex,
                take_leadership: self.take_leadership,
                auto_requeue: AtomicBool::new(self.auto_requeue),
                policy,
                grace: self.grace,
                leader: watch::channel(false).0,
                queued: watch::channel(false).0,
                interrupt: watch::channel(0).0,
                closed: watch::channel(false).0,
                status: StdMutex::new(Status::Latent),
            }),
        })
    }
}

/// Leader election by a lock: Curator's `LeaderSelector`, layout-compatible with it.
///
/// Each participant queues on a [`Mutex`] at the path (nodes `<path>/_c_<uuid>-lock-N`,
/// data = participant id). The holder leads: the take-leadership closure runs, and
/// **leadership lasts until the closure's future completes**; then the lock is released
/// and, with [`LeaderSelectorBuilder::auto_requeue`], the participant queues again (at the
/// back, so others get their turn).
///
/// Leadership is cancelled — [`LeadershipContext::cancelled`] resolves — when the
/// connection makes it doubtful (per the [`ConnectionStateErrorPolicy`]; by default on SUSPENDED and LOST, as
/// Curator's `LeaderSelectorListenerAdapter`), when the lock node is deleted, on
/// [`LeaderSelector::interrupt_leadership`] and on [`LeaderSelector::close`]. The closure
/// should then stop and return; after the grace period
/// ([`LeaderSelectorBuilder::cancel_grace`]) its future is dropped (it runs in its own task,
/// which is aborted: code that blocks a thread without awaiting cannot be stopped). The lock
/// is released only after the closure's future is gone, so terms of participants in one
/// process never overlap; [`LeaderSelector::has_leadership`] turns false as soon as
/// cancellation starts. Across processes, fence the protected resource with
/// [`LeadershipContext::fencing_token`]: a leader cut off from ZooKeeper learns of it only
/// when its client does.
///
/// A panic in the closure ends the term like a return (it is logged). Differences from
/// Curator: the closure is async and gets a cancellation future instead of a thread
/// interrupt, cancelled closures are dropped after a grace period instead of being waited
/// for indefinitely, and [`LeaderSelector::current_leader`] returns `None` instead of a
/// dummy participant when nobody queues.
///
/// ```no_run
/// # async fn f(client: zk_client::Client) -> zk_recipes::Result<()> {
/// use zk_recipes::LeaderSelector;
///
/// let selector = LeaderSelector::builder(client, "/app/leader", |ctx| async move {
///     println!("leading with token {}", ctx.fencing_token());
///     tokio::select! {
///         reason = ctx.cancelled() => println!("leadership cancelled: {reason:?}"),
///         _ = async { /* lead, passing the token along */ } => {}
///     }
/// })
/// .id("host-1")
/// .auto_requeue()
/// .build()?;
/// selector.start()?;
/// // ...
/// selector.close().await?;
/// # Ok(()) }
/// ```
pub struct LeaderSelector {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    path: String,
    id: String,
    mutex: Mutex,
    take_leadership: Arc<TakeLeadership>,
    auto_requeue: AtomicBool,
    policy: ConnectionStateErrorPolicy,
    grace: Duration,
    leader: watch::Sender<bool>,
    /// Queued for (or holding) leadership.
    queued: watch::Sender<bool>,
    /// Bumped by `interrupt_leadership`.
    interrupt: watch::Sender<u64>,
    closed: watch::Sender<bool>,
    status: StdMutex<Status>,
}

enum Status {
    Latent,
    Started(JoinHandle<()>),
    Closed,
}

impl fmt::Debug for LeaderSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaderSelector")
            .field("path", &self.inner.path)
            .field("id", &self.inner.id)
            .field("leader", &*self.inner.leader.borrow())
            .finish_non_exhaustive()
    }
}

impl LeaderSelector {
    /// A selector on `path` for participant `id`, running `take_leadership` whenever it
    /// leads; with the defaults (no auto-requeue, the client's error policy, 1 s grace).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an invalid path or the root.
    pub fn new<F, Fut>(
        client: Client,
        path: &str,
        id: impl Into<String>,
        take_leadership: F,
    ) -> Result<LeaderSelector>
    where
        F: Fn(LeadershipContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        LeaderSelector::builder(client, path, take_leadership)
            .id(id)
            .build()
    }

    /// A builder for a selector on `path` running `take_leadership` whenever it leads.
    pub fn builder<F, Fut>(client: Client, path: &str, take_leadership: F) -> LeaderSelectorBuilder
    where
        F: Fn(LeadershipContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        LeaderSelectorBuilder {
            client,
            path: path.to_owned(),
            id: String::new(),
            take_leadership: Arc::new(move |ctx| take_leadership(ctx).boxed()),
            auto_requeue: false,
            policy: None,
            grace: Duration::from_secs(1),
        }
    }

    /// This participant's id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The election path.
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// Turns auto-requeue on or off (see [`LeaderSelectorBuilder::auto_requeue`]).
    pub fn set_auto_requeue(&self, on: bool) {
        self.inner.auto_requeue.store(on, Ordering::SeqCst);
    }

    /// Queues for leadership (in a background task). Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`Error::AlreadyStarted`], or [`Error::Closed`] after [`LeaderSelector::close`].
    pub fn start(&self) -> Result<()> {
        let mut status = lock(&self.inner.status);
        match *status {
            Status::Latent => {
                self.inner.queued.send_replace(true);
                *status = Status::Started(tokio::spawn(drive(self.inner.clone())));
                Ok(())
            }
            Status::Started(_) => Err(Error::AlreadyStarted),
            Status::Closed => Err(Error::Closed),
        }
    }

    /// Queues for leadership again after a term ended (Curator's `requeue`): `false` if
    /// already queued or leading.
    ///
    /// # Errors
    /// [`Error::Closed`] unless started.
    pub fn requeue(&self) -> Result<bool> {
        match *lock(&self.inner.status) {
            Status::Started(_) => Ok(self
                .inner
                .queued
                .send_if_modified(|q| !std::mem::replace(q, true))),
            Status::Latent | Status::Closed => Err(Error::Closed),
        }
    }

    /// Cancels the current term of leadership ([`CancelReason::Interrupted`]), or — while
    /// queued — the current attempt (Curator's `interruptLeadership`). With auto-requeue the
    /// participant queues again afterwards.
    pub fn interrupt_leadership(&self) {
        self.inner.interrupt.send_modify(|n| *n += 1);
    }

    /// Whether this participant leads now (its closure runs and has not been cancelled).
    pub fn has_leadership(&self) -> bool {
        *self.inner.leader.borrow()
    }

    /// Leadership as a watch channel: `true` while leading.
    pub fn leadership(&self) -> watch::Receiver<bool> {
        self.inner.leader.subscribe()
    }

    /// Every participant, in queue order (the leader first), with the ids stored in their
    /// nodes. Reads the server, so it can disagree briefly with
    /// [`LeaderSelector::has_leadership`].
    ///
    /// # Errors
    /// [`Error::Zk`] when a read fails.
    pub async fn participants(&self) -> Result<Vec<Participant>> {
        let names = self.inner.mutex.participant_nodes().await?;
        read_participants(&self.inner.client, &self.inner.path, names).await
    }

    /// The current leader (the first participant), if anyone queues.
    ///
    /// # Errors
    /// [`Error::Zk`] when a read fails.
    pub async fn current_leader(&self) -> Result<Option<Participant>> {
        Ok(self.participants().await?.into_iter().next())
    }

    /// Leaves the election: cancels leadership ([`CancelReason::Closed`]), waits for the
    /// closure to return (at most the grace period, then drops it), and releases the lock
    /// (if the connection is down the delete goes on in the background). Closing twice is
    /// harmless.
    ///
    /// # Errors
    /// None today; reserved.
    pub async fn close(&self) -> Result<()> {
        let task = match std::mem::replace(&mut *lock(&self.inner.status), Status::Closed) {
            Status::Started(task) => Some(task),
            Status::Latent | Status::Closed => None,
        };
        self.inner.closed.send_replace(true);
        if let Some(task) = task {
            let _ = task.await;
        }
        self.inner.leader.send_replace(false);
        Ok(())
    }
}

impl Drop for LeaderSelector {
    /// Closes as [`LeaderSelector::close`] does, without waiting: the background task
    /// (detached here, not aborted) cancels the leader, waits for its closure to stop (at
    /// most the grace period), and only then lets the lock node go, so no other participant
    /// leads while the closure still runs.
    fn drop(&mut self) {
        let status = std::mem::replace(&mut *lock(&self.inner.status), Status::Closed);
        self.inner.closed.send_replace(true);
        drop(status);
        self.inner.leader.send_replace(false);
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Resolves once `client` is connected to a read-only server.
async fn read_only(client: &Client) {
    // Subscribed before the current state is read, so no change falls between the two.
    let mut states = client.connection_states();
    if client.connection_state() == Some(ConnectionState::ReadOnly) {
        return;
    }
    while let Some(state) = states.next().await {
        if state == ConnectionState::ReadOnly {
            return;
        }
    }
    std::future::pending().await
}

/// Waits until `rx` changes; never resolves if its sender is gone.
async fn changed<T>(rx: &mut watch::Receiver<T>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The selector's background task: queue, lead, release, requeue.
async fn drive(inner: Arc<Inner>) {
    let mut queued = inner.queued.subscribe();
    let mut closed = inner.closed.subscribe();
    let mut interrupts = inner.interrupt.subscribe();
    let mut backoff = Duration::from_millis(50);
    loop {
        tokio::select! {
            biased;
            _ = became_true(&mut closed) => return,
            _ = became_true(&mut queued) => {}
        }
        // Interrupts from before this attempt do not count.
        interrupts.borrow_and_update();
        let acquired = tokio::select! {
            biased;
            _ = became_true(&mut closed) => return,
            _ = changed(&mut interrupts) => {
                tracing::debug!(path = %inner.path, "leadership attempt interrupted");
                None
            }
            r = inner.mutex.acquire() => Some(r),
        };
        match acquired {
            Some(Ok(guard)) => {
                backoff = Duration::from_millis(50);
                // Sets `queued` itself, when the term ends (before the release).
                lead(&inner, guard, &mut interrupts, &mut closed).await;
                if *closed.borrow() {
                    return;
                }
                continue;
            }
            Some(Err(e)) => {
                tracing::warn!(path = %inner.path, %e, "leadership attempt failed");
                if inner.auto_requeue.load(Ordering::SeqCst) {
                    tokio::select! {
                        biased;
                        _ = became_true(&mut closed) => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
            None => {}
        }
        if *closed.borrow() {
            return;
        }
        let again = inner.auto_requeue.load(Ordering::SeqCst);
        inner.queued.send_replace(again);
    }
}

/// One term: runs the closure until it returns or is cancelled, then releases the lock.
async fn lead(
    inner: &Inner,
    guard: MutexGuard,
    interrupts: &mut watch::Receiver<u64>,
    closed: &mut watch::Receiver<bool>,
) {
    let (cancel_tx, cancel_rx) = watch::channel(None);
    let ctx = LeadershipContext {
        client: inner.client.clone(),
        id: inner.id.clone(),
        fencing_token: guard.fencing_token(),
        node_path: guard.node_path().to_owned(),
        cancel: cancel_rx,
    };
    tracing::info!(path = %inner.path, id = %inner.id, "took leadership");
    inner.leader.send_replace(true);
    let mut task = AbortOnDrop(tokio::spawn((inner.take_leadership)(ctx)));
    let cancelled = tokio::select! {
        biased;
        r = &mut task.0 => {
            if let Err(e) = r {
                if e.is_panic() {
                    tracing::error!(path = %inner.path, id = %inner.id, "the leader panicked");
                }
            }
            None
        }
        reason = cancel_trigger(inner, &guard, interrupts, closed) => Some(reason),
    };
    if let Some(reason) = cancelled {
        tracing::info!(path = %inner.path, id = %inner.id, ?reason, "cancelling leadership");
        inner.leader.send_replace(false);
        cancel_tx.send_replace(Some(reason));
        if tokio::time::timeout(inner.grace, &mut task.0)
            .await
            .is_err()
        {
            tracing::warn!(path = %inner.path, id = %inner.id, "the leader ignored the cancellation; dropping it");
            task.0.abort();
            let _ = (&mut task.0).await;
        }
    }
    inner.leader.send_replace(false);
    drop(task);
    // The term is over: queued again only with auto-requeue (or by `requeue`, from now on).
    inner
        .queued
        .send_replace(inner.auto_requeue.load(Ordering::SeqCst));
    // Released in its own task: closing does not wait for a partitioned client.
    tokio::select! {
        biased;
        _ = guard.release() => {}
        _ = became_true(closed) => {}
    }
}

/// Resolves when leadership must end.
async fn cancel_trigger(
    inner: &Inner,
    guard: &MutexGuard,
    interrupts: &mut watch::Receiver<u64>,
    closed: &mut watch::Receiver<bool>,
) -> CancelReason {
    let policy = inner.policy;
    let connection = async {
        if policy.is_error_state(ConnectionState::Suspended) {
            match guard.at_risk().await {
                LockState::Suspended => CancelReason::Suspended,
                _ => CancelReason::Lost,
            }
        } else if policy.is_error_state(ConnectionState::ReadOnly) {
            // The lock's Suspended state does not tell a disconnection, which this policy
            // leads through, from a read-only server, which it does not.
            tokio::select! {
                () = guard.lost() => CancelReason::Lost,
                () = read_only(&inner.client) => CancelReason::Suspended,
            }
        } else {
            guard.lost().await;
            CancelReason::Lost
        }
    };
    tokio::select! {
        biased;
        _ = became_true(closed) => CancelReason::Closed,
        reason = connection => reason,
        _ = changed(interrupts) => CancelReason::Interrupted,
    }
}
