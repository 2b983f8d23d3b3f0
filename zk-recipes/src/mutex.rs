//! [`Mutex`]: Curator's `InterProcessMutex`, with fencing tokens and lock-state reporting.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex as StdMutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, watch, Mutex as AsyncMutex};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use zk_client::{
    Client, ConnectionState, ConnectionStates, CreateMode, Error as ZkError, EventType, WatchFuture,
};

use crate::nodes::{check_base_path, join, node_name, sorted_children};
use crate::util::{delete_until_gone, serves_writes, OwnedNode};
use crate::{Error, Result};

/// The name of lock nodes (Curator's `InterProcessMutex` uses the same): a lock node is
/// `<path>/_c_<uuid>-lock-NNNNNNNNNN`.
pub const LOCK_NAME: &str = "lock-";

/// What a lock holder can tell about its lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LockState {
    /// The lock node exists, is owned by the current session, and the client is connected.
    Held,
    /// The connection dropped (Curator's SUSPENDED) or only a read-only server is reachable:
    /// the session — and with it the lock — may be gone without the client knowing yet.
    /// Stop touching the protected resource until the state is [`LockState::Held`] again.
    Suspended,
    /// The session is lost (expired, or the session timeout passed while suspended), or the
    /// lock node is gone: another process may hold the lock now. Final.
    Lost,
    /// The lock was released. Final.
    Released,
}

impl LockState {
    /// Whether the state is final ([`LockState::Lost`] or [`LockState::Released`]).
    pub fn is_final(self) -> bool {
        matches!(self, LockState::Lost | LockState::Released)
    }
}

/// Counters of a [`Mutex`]'s waits, for tests (no herd effect). Not a stable API.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WaitStats {
    /// Watches left on a predecessor node.
    pub watches_set: u64,
    /// Watch notifications received while waiting.
    pub wakeups: u64,
}

/// A distributed, reentrant, fair mutex: Curator's `InterProcessMutex`, layout-compatible with
/// it (Java and Rust processes can share one lock path).
///
/// Each acquisition creates a protected EPHEMERAL_SEQUENTIAL node `<path>/_c_<uuid>-lock-N`
/// (parents are created as containers, so empty lock paths are reaped by the server). The
/// lowest sequence number (sorted on the part after `lock-`, ignoring the protection prefix)
/// holds the lock; every other waiter watches only its immediate predecessor, so a release
/// wakes exactly one waiter (no herd effect). Before claiming the lock the node is re-read and
/// its `ephemeralOwner` must be the current session.
///
/// Mutual exclusion holds between handles *and* between tasks sharing one handle (e.g. through
/// an `Arc`): while a [`MutexGuard`] of this handle is alive, [`Mutex::acquire`] on the same
/// handle waits until that guard (and every guard re-entered from it) is released and the lock
/// node is gone, then queues for the lock like any other acquirer. Re-entrancy is explicit:
/// [`MutexGuard::reenter`] returns another guard for the same grant (same node, same fencing
/// token) at once; the node is deleted when the last of them is released.
///
/// A holder that loses its lock ([`LockState::Lost`]) still blocks further acquires on its
/// handle until its guard is released: it may still be inside the critical section.
///
/// ```no_run
/// # async fn f(client: zk_client::Client) -> zk_recipes::Result<()> {
/// use zk_recipes::{LockState, Mutex};
///
/// let mutex = Mutex::new(client, "/app/locks/orders")?;
/// let guard = mutex.acquire().await?;
/// // Hand the token to the protected resource, which rejects any token lower than the
/// // highest it has seen.
/// let token = guard.fencing_token();
/// tokio::select! {
///     _ = guard.at_risk() => { /* SUSPENDED or LOST: stop working on the resource */ }
///     _ = async { /* critical section using `token` */ } => {}
/// }
/// guard.release().await?;
/// # Ok(()) }
/// ```
pub struct Mutex {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    path: String,
    data: Vec<u8>,
    /// Serialises acquisitions on this handle (a waiting acquire holds it, so later ones
    /// queue behind it in order).
    op: AsyncMutex<()>,
    /// The lease of this handle, while its node exists (cleared only after the node is gone).
    held: StdMutex<Option<Arc<Lease>>>,
    stats: watch::Sender<WaitStats>,
}

/// One lock node and the guards sharing it.
struct Lease {
    node_path: String,
    czxid: i64,
    session_id: i64,
    /// Guards alive; 0 means the node is being deleted. Changed under `Inner::held`.
    count: StdMutex<usize>,
    state: Arc<StateCell>,
    monitor: StdMutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for Mutex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mutex")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Mutex {
    /// A mutex on `path` (its lock nodes are `path`'s children). Nothing is sent until the
    /// first acquire.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an invalid path or the root.
    pub fn new(client: Client, path: &str) -> Result<Mutex> {
        Mutex::with_node_data(client, path, Vec::new())
    }

    /// As [`Mutex::new`], writing `data` into every lock node (e.g. a host name, so operators
    /// can see who holds or waits for the lock; Curator writes the local IP address).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an invalid path or the root.
    pub fn with_node_data(client: Client, path: &str, data: impl Into<Vec<u8>>) -> Result<Mutex> {
        check_base_path(path)?;
        Ok(Mutex {
            inner: Arc::new(Inner {
                client,
                path: path.to_owned(),
                data: data.into(),
                op: AsyncMutex::new(()),
                held: StdMutex::new(None),
                stats: watch::channel(WaitStats::default()).0,
            }),
        })
    }

    /// The lock path.
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// Acquires the lock, waiting as long as it takes — also for a guard of this very handle
    /// to be released (use [`MutexGuard::reenter`] for re-entrancy).
    ///
    /// # Errors
    /// [`Error::Zk`] when a ZooKeeper call fails after the client's retries (the node this
    /// attempt created, if any, is deleted).
    ///
    /// # Cancellation safety
    /// Dropping the future deletes the node it created (in the background).
    pub async fn acquire(&self) -> Result<MutexGuard> {
        match self.acquire_until(None).await? {
            Some(guard) => Ok(guard),
            None => Err(Error::Closed),
        }
    }

    /// Acquires the lock, waiting at most `timeout`; `None` when the time ran out (the node
    /// this attempt created is deleted before returning, or — if the connection is down —
    /// handed to a background delete).
    ///
    /// # Errors
    /// As [`Mutex::acquire`].
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Option<MutexGuard>> {
        self.acquire_until(Some(Instant::now() + timeout)).await
    }

    /// Whether a guard of this handle holds the lock now (Curator's
    /// `isAcquiredInThisProcess`, per handle).
    pub fn is_acquired(&self) -> bool {
        let held = lock(&self.inner.held);
        held.as_ref()
            .is_some_and(|l| *lock(&l.count) > 0 && !l.state.get().is_final())
    }

    /// The lock nodes under the path, in queue order (holder first), as node names.
    ///
    /// # Errors
    /// [`Error::Zk`] when the listing fails.
    pub async fn participant_nodes(&self) -> Result<Vec<String>> {
        match self.inner.client.get_children(&self.inner.path).await {
            Ok(children) => Ok(sorted_children(children, LOCK_NAME)),
            Err(ZkError::NoNode) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// Wait counters of this handle, for tests.
    #[doc(hidden)]
    pub fn wait_stats(&self) -> watch::Receiver<WaitStats> {
        self.inner.stats.subscribe()
    }

    async fn acquire_until(&self, deadline: Option<Instant>) -> Result<Option<MutexGuard>> {
        let mut own = OwnedNode::new(&self.inner.client);
        let outcome = {
            let attempt = self.attempt(&mut own);
            match deadline {
                Some(d) => tokio::time::timeout_at(d, attempt).await.ok(),
                None => Some(attempt.await),
            }
        };
        match outcome {
            Some(Ok(guard)) => Ok(Some(guard)),
            Some(Err(e)) => {
                own.delete_now().await;
                Err(e)
            }
            None => {
                own.delete_now().await;
                Ok(None)
            }
        }
    }

    async fn attempt(&self, own: &mut OwnedNode) -> Result<MutexGuard> {
        let inner = &self.inner;
        let client = &inner.client;
        let _op = inner.op.lock().await;
        // Mutual exclusion between tasks sharing this handle: while a guard of this handle is
        // alive (even a lost one: its task may still be in the critical section), wait until
        // it is released and its node is gone — or this acquisition would queue behind our
        // own node. `held` is cleared before `Released` is sent.
        loop {
            let Some(lease) = lock(&inner.held).clone() else {
                break;
            };
            let mut rx = lease.state.tx.subscribe();
            let _ = rx.wait_for(|s| *s == LockState::Released).await;
        }

        let lock_prefix = join(&inner.path, LOCK_NAME);
        loop {
            let our_path = match own.path() {
                Some(p) => p.to_owned(),
                None => {
                    let created = client
                        .create(&lock_prefix)
                        .mode(CreateMode::EphemeralSequential)
                        .creating_parent_containers_if_needed()
                        .with_protection()
                        .data(inner.data.clone())
                        .await?;
                    own.set(created.path.clone());
                    created.path
                }
            };
            let children = match client.get_children(&inner.path).await {
                Ok(c) => c,
                Err(ZkError::NoNode) => Vec::new(),
                Err(e) => return Err(e.into()),
            };
            let sorted = sorted_children(children, LOCK_NAME);
            let our_name = node_name(&our_path);
            let Some(index) = sorted.iter().position(|c| c == our_name) else {
                // Our node is gone (its session expired): queue again with a new one.
                tracing::debug!(path = %our_path, "lock node vanished; re-creating");
                own.disarm();
                continue;
            };
            if index == 0 {
                // Subscribe before verifying, so no later state change can be missed. The
                // verifying read also leaves a watch on our node, so the guard learns of its
                // deletion (getData sets no watch on a missing node: no leak).
                let states = client.connection_states();
                match client.get_data(&our_path).watched().await {
                    Ok((_, stat, watch)) if stat.ephemeral_owner == client.session_id() => {
                        own.disarm();
                        let lease = Lease::start(
                            client,
                            our_path,
                            stat.czxid,
                            stat.ephemeral_owner,
                            states,
                            watch,
                        );
                        *lock(&inner.held) = Some(lease.clone());
                        return Ok(MutexGuard::new(inner.clone(), lease));
                    }
                    Ok(_) => {
                        // Left by an expired session of ours: not a valid claim.
                        own.delete_later();
                        continue;
                    }
                    Err(ZkError::NoNode) => {
                        own.disarm();
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            let Some(predecessor) = index.checked_sub(1).and_then(|i| sorted.get(i)) else {
                continue;
            };
            // Watch only the predecessor; getData sets no watch on a missing node (no leak).
            match client
                .get_data(&join(&inner.path, predecessor))
                .watched()
                .await
            {
                Ok((_, _, watch)) => {
                    inner.stats.send_modify(|s| s.watches_set += 1);
                    let event = watch.await;
                    inner.stats.send_modify(|s| s.wakeups += 1);
                    tracing::trace!(?event, "lock predecessor changed");
                }
                Err(ZkError::NoNode) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Lease {
    /// A lease on a verified lock node: `session_id` is the node's `ephemeralOwner` as read
    /// when verifying, `node_watch` the watch that read left on the node.
    fn start(
        client: &Client,
        node_path: String,
        czxid: i64,
        session_id: i64,
        states: ConnectionStates,
        node_watch: WatchFuture,
    ) -> Arc<Lease> {
        let initial = match client.connection_state() {
            Some(s) if !serves_writes(s) => LockState::Suspended,
            _ => LockState::Held,
        };
        let state = Arc::new(StateCell::new(initial));
        let monitor = tokio::spawn(monitor(
            client.clone(),
            node_path.clone(),
            session_id,
            state.clone(),
            states,
            node_watch,
        ));
        Arc::new(Lease {
            node_path,
            czxid,
            session_id,
            count: StdMutex::new(1),
            state,
            monitor: StdMutex::new(Some(monitor)),
        })
    }
}

/// A lease's state: the current value (a watch channel) and lossless subscribers.
struct StateCell {
    tx: watch::Sender<LockState>,
    /// Every change goes to each of these, in order; cleared after [`LockState::Released`]
    /// (the last state), which ends their streams.
    listeners: StdMutex<Vec<mpsc::UnboundedSender<LockState>>>,
}

impl StateCell {
    fn new(initial: LockState) -> StateCell {
        StateCell {
            tx: watch::channel(initial).0,
            listeners: StdMutex::new(Vec::new()),
        }
    }

    fn get(&self) -> LockState {
        *self.tx.borrow()
    }

    /// Moves to `next` unless the state is final already.
    fn set(&self, next: LockState) {
        let mut listeners = lock(&self.listeners);
        let changed = self.tx.send_if_modified(|s| {
            if s.is_final() || *s == next {
                false
            } else {
                *s = next;
                true
            }
        });
        if changed {
            listeners.retain(|l| l.send(next).is_ok());
        }
    }

    /// Moves to [`LockState::Released`] (from any state) and ends the subscribers' streams.
    fn released(&self) {
        let mut listeners = lock(&self.listeners);
        if self.tx.send_replace(LockState::Released) != LockState::Released {
            for l in listeners.iter() {
                let _ = l.send(LockState::Released);
            }
        }
        listeners.clear();
    }

    fn subscribe_changes(&self) -> LockStates {
        let mut listeners = lock(&self.listeners);
        let (tx, rx) = mpsc::unbounded_channel();
        if self.get() != LockState::Released {
            listeners.push(tx);
        }
        LockStates { rx }
    }
}

/// Every change of a guard's [`LockState`] after [`MutexGuard::state_changes`] was called, in
/// order and none coalesced; the stream ends after [`LockState::Released`].
#[derive(Debug)]
pub struct LockStates {
    rx: mpsc::UnboundedReceiver<LockState>,
}

impl Stream for LockStates {
    type Item = LockState;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<LockState>> {
        self.rx.poll_recv(cx)
    }
}

/// What the monitor does next.
enum Next {
    Continue,
    Stop,
}

/// Follows the connection states and the lock node itself (a watch on it, re-armed after
/// every event) for one lock node.
async fn monitor(
    client: Client,
    node_path: String,
    session_id: i64,
    state: Arc<StateCell>,
    mut states: ConnectionStates,
    node_watch: WatchFuture,
) {
    let mut node_watch = Some(node_watch);
    loop {
        match node_watch.as_mut() {
            Some(watch) => {
                tokio::select! {
                    biased;
                    s = states.next() => {
                        if let Next::Stop = on_state(&client, &node_path, session_id, &state, s).await {
                            return;
                        }
                    }
                    event = watch => {
                        node_watch = None;
                        match event.event_type {
                            // Deleted (by an operator, another client, ...): another process
                            // may get the lock now.
                            EventType::NodeDeleted => {
                                tracing::warn!(path = %node_path, "lock node deleted while held");
                                state.set(LockState::Lost);
                                return;
                            }
                            // The watch ended with the session (expired or closed).
                            EventType::None => {
                                state.set(LockState::Lost);
                                return;
                            }
                            // Data changed or the like: re-arm below.
                            _ => {}
                        }
                    }
                }
            }
            None => {
                // Re-arm the watch on our node (and check it still is ours).
                let rearm = client.get_data(&node_path).watched();
                tokio::select! {
                    biased;
                    s = states.next() => {
                        if let Next::Stop = on_state(&client, &node_path, session_id, &state, s).await {
                            return;
                        }
                    }
                    r = rearm => match r {
                        Ok((_, stat, watch)) if stat.ephemeral_owner == session_id => {
                            node_watch = Some(watch);
                        }
                        Ok(_) | Err(ZkError::NoNode) | Err(ZkError::Closed) => {
                            state.set(LockState::Lost);
                            return;
                        }
                        // Connection trouble: retry after the next state change.
                        Err(e) => {
                            tracing::debug!(path = %node_path, %e, "re-arming the lock node watch failed");
                            let s = states.next().await;
                            if let Next::Stop = on_state(&client, &node_path, session_id, &state, s).await {
                                return;
                            }
                        }
                    },
                }
            }
        }
    }
}

/// Applies one connection state (`None`: the client was closed) to the lock's state.
async fn on_state(
    client: &Client,
    node_path: &str,
    session_id: i64,
    state: &StateCell,
    s: Option<ConnectionState>,
) -> Next {
    match s {
        Some(ConnectionState::Suspended | ConnectionState::ReadOnly) => {
            state.set(LockState::Suspended);
        }
        Some(ConnectionState::Lost) => {
            state.set(LockState::Lost);
            return Next::Stop;
        }
        Some(ConnectionState::Connected | ConnectionState::Reconnected) => {
            if client.session_id() != session_id {
                state.set(LockState::Lost);
                return Next::Stop;
            }
            // Same session: re-check the node rather than assume.
            match client.exists(node_path).await {
                Ok(Some(stat)) if stat.ephemeral_owner == session_id => {
                    if client.connection_state().is_some_and(serves_writes) {
                        state.set(LockState::Held);
                    }
                }
                Ok(_) => {
                    state.set(LockState::Lost);
                    return Next::Stop;
                }
                // Connection trouble again: a later state decides.
                Err(_) => {}
            }
        }
        Some(_) => {}
        None => {
            // The client was closed: its session (and the node) is gone.
            state.set(LockState::Lost);
            return Next::Stop;
        }
    }
    Next::Continue
}

/// Holds a [`Mutex`]. Dropping it releases the lock (the node is deleted in the background
/// until it is gone); prefer [`MutexGuard::release`] to learn when that happened.
#[must_use = "dropping the guard releases the lock at once"]
pub struct MutexGuard {
    inner: Arc<Inner>,
    lease: Arc<Lease>,
    armed: bool,
}

impl fmt::Debug for MutexGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MutexGuard")
            .field("node", &self.lease.node_path)
            .field("fencing_token", &self.lease.czxid)
            .field("state", &self.lease.state.get())
            .finish()
    }
}

impl MutexGuard {
    fn new(inner: Arc<Inner>, lease: Arc<Lease>) -> MutexGuard {
        MutexGuard {
            inner,
            lease,
            armed: true,
        }
    }

    /// The fencing token of this grant: the `czxid` of the lock node, i.e. the zxid of the
    /// transaction that created it.
    ///
    /// Zxids are totally ordered over the ensemble's whole history, so a later grant of the
    /// same lock always has a larger token than every earlier one. Pass it along with every
    /// write to the protected resource and let the resource reject tokens lower than the
    /// highest it has accepted: a holder that was paused or partitioned past its session
    /// (and so lost the lock without knowing) is then refused. Guards re-entered from one
    /// another ([`MutexGuard::reenter`]) share the token.
    pub fn fencing_token(&self) -> i64 {
        self.lease.czxid
    }

    /// The lock node's path (client-relative).
    pub fn node_path(&self) -> &str {
        &self.lease.node_path
    }

    /// The id of the session that owns the lock node.
    pub fn session_id(&self) -> i64 {
        self.lease.session_id
    }

    /// Another guard for this same grant, at once (explicit re-entrancy): it shares the lock
    /// node, the fencing token and the state; the node is deleted when the last of the guards
    /// is released. Re-entering a lost guard gives a lost guard.
    pub fn reenter(&self) -> MutexGuard {
        {
            let _held = lock(&self.inner.held);
            // This guard is alive, so the count is at least 1 and the node not being deleted.
            *lock(&self.lease.count) += 1;
        }
        MutexGuard::new(self.inner.clone(), self.lease.clone())
    }

    /// The lock's state now.
    pub fn state(&self) -> LockState {
        self.lease.state.get()
    }

    /// The lock's state as a watch channel: it always holds the latest state, but changes
    /// that follow each other quickly are coalesced (a short [`LockState::Suspended`] can be
    /// missed). Use [`MutexGuard::state_changes`] to see every change.
    pub fn states(&self) -> watch::Receiver<LockState> {
        self.lease.state.tx.subscribe()
    }

    /// Every change of the lock's state from now on, in order and none coalesced; the stream
    /// ends after [`LockState::Released`] (at once if the guard's grant is released already).
    pub fn state_changes(&self) -> LockStates {
        self.lease.state.subscribe_changes()
    }

    /// Resolves when the lock may be lost: the state leaves [`LockState::Held`]
    /// ([`LockState::Suspended`] or [`LockState::Lost`]); returns that state.
    pub async fn at_risk(&self) -> LockState {
        let mut rx = self.lease.state.tx.subscribe();
        let state = match rx.wait_for(|s| *s != LockState::Held).await {
            Ok(s) => *s,
            Err(_) => LockState::Lost,
        };
        state
    }

    /// Resolves when the lock is lost for good ([`LockState::Lost`]).
    pub async fn lost(&self) {
        let mut rx = self.lease.state.tx.subscribe();
        let _ = rx.wait_for(|s| s.is_final()).await;
    }

    /// Releases this guard. If it was the grant's last guard the lock node is deleted —
    /// across connection losses until it is gone — and the handle's state is cleared only
    /// then. Runs in its own task: cancelling this future does not stop the release.
    ///
    /// # Errors
    /// [`Error::Zk`] when the server refuses the delete for good (e.g. NOAUTH); the handle
    /// then no longer considers itself the holder.
    pub async fn release(mut self) -> Result<()> {
        self.armed = false;
        match release_one(&self.inner, &self.lease) {
            Some(task) => match task.await {
                Ok(r) => r.map_err(Error::from),
                Err(_) => Err(Error::Closed),
            },
            None => Ok(()),
        }
    }
}

impl Drop for MutexGuard {
    fn drop(&mut self) {
        if self.armed {
            self.armed = false;
            let _ = release_one(&self.inner, &self.lease);
        }
    }
}

/// Drops one guard's share of `lease`; for the last one, spawns the node's deletion.
fn release_one(inner: &Arc<Inner>, lease: &Arc<Lease>) -> Option<JoinHandle<Result<(), ZkError>>> {
    {
        let _held = lock(&inner.held);
        let mut count = lock(&lease.count);
        *count = count.saturating_sub(1);
        if *count > 0 {
            return None;
        }
    }
    if let Some(m) = lock(&lease.monitor).take() {
        m.abort();
    }
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        // Nothing can run the delete: the node lives until its session ends. Do not leave
        // the handle waiting for a release that never comes.
        tracing::warn!(path = %lease.node_path, "lock guard dropped outside a tokio runtime");
        let mut held = lock(&inner.held);
        if held.as_ref().is_some_and(|l| Arc::ptr_eq(l, lease)) {
            *held = None;
        }
        lease.state.released();
        return None;
    };
    let inner = inner.clone();
    let lease = lease.clone();
    Some(rt.spawn(async move {
        let result = delete_until_gone(&inner.client, &lease.node_path).await;
        {
            let mut held = lock(&inner.held);
            if held.as_ref().is_some_and(|l| Arc::ptr_eq(l, &lease)) {
                *held = None;
            }
        }
        lease.state.released();
        result
    }))
}

/// Locks a std mutex, ignoring poisoning (the data stays consistent: no panics while held).
fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
