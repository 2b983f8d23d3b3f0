//! [`Mutex`]: Curator's `InterProcessMutex`, with fencing tokens and lock-state reporting.

use std::fmt;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{watch, Mutex as AsyncMutex};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use zk_client::{Client, ConnectionState, ConnectionStates, CreateMode, Error as ZkError};

use crate::nodes::{check_base_path, join, node_name, sorted_children};
use crate::util::{delete_until_gone, OwnedNode};
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
/// The mutex is reentrant *per handle*: while a [`MutexGuard`] of this handle is alive,
/// [`Mutex::acquire`] returns another guard for the same node at once; the node is deleted
/// when the last guard is released. Concurrent acquires on one handle are serialised. Use one
/// handle per logical owner (e.g. per task) for mutual exclusion between them.
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
    /// Serialises acquisitions on this handle.
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
    state: Arc<watch::Sender<LockState>>,
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

    /// Acquires the lock, waiting as long as it takes.
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
            .is_some_and(|l| *lock(&l.count) > 0 && !l.state.borrow().is_final())
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
        // Reentrancy: another guard for the node this handle holds.
        loop {
            let releasing = {
                let mut held = lock(&inner.held);
                let Some(lease) = held.clone() else { break };
                let mut count = lock(&lease.count);
                if *count == 0 {
                    // Its last guard is gone and its node is being deleted: wait until it
                    // is, or this acquisition would queue behind our own node.
                    Some(lease.clone())
                } else if lease.state.borrow().is_final() {
                    // Lost with guards still alive: the node is gone with the session (their
                    // release deletes it quietly); this acquisition starts afresh.
                    drop(count);
                    *held = None;
                    break;
                } else {
                    *count += 1;
                    drop(count);
                    return Ok(MutexGuard::new(inner.clone(), lease));
                }
            };
            if let Some(lease) = releasing {
                let mut rx = lease.state.subscribe();
                let _ = rx.wait_for(|s| *s == LockState::Released).await;
            }
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
                // Subscribe before verifying, so no later state change can be missed.
                let states = client.connection_states();
                match client.exists(&our_path).await? {
                    Some(stat) if stat.ephemeral_owner == client.session_id() => {
                        own.disarm();
                        let lease = Lease::start(client, our_path, stat.czxid, states);
                        *lock(&inner.held) = Some(lease.clone());
                        return Ok(MutexGuard::new(inner.clone(), lease));
                    }
                    Some(_) => {
                        // Left by an expired session of ours: not a valid claim.
                        own.delete_later();
                        continue;
                    }
                    None => {
                        own.disarm();
                        continue;
                    }
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
    fn start(
        client: &Client,
        node_path: String,
        czxid: i64,
        states: ConnectionStates,
    ) -> Arc<Lease> {
        let session_id = client.session_id();
        let initial = match client.connection_state() {
            Some(s) if !s.is_connected() => LockState::Suspended,
            _ => LockState::Held,
        };
        let state = Arc::new(watch::channel(initial).0);
        let monitor = tokio::spawn(monitor(
            client.clone(),
            node_path.clone(),
            session_id,
            state.clone(),
            states,
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

/// Moves to `next` unless the state is final already.
fn set_state(state: &watch::Sender<LockState>, next: LockState) {
    state.send_if_modified(|s| {
        if s.is_final() || *s == next {
            false
        } else {
            *s = next;
            true
        }
    });
}

/// Follows the connection states for one lock node.
async fn monitor(
    client: Client,
    node_path: String,
    session_id: i64,
    state: Arc<watch::Sender<LockState>>,
    mut states: ConnectionStates,
) {
    while let Some(s) = states.next().await {
        match s {
            ConnectionState::Suspended | ConnectionState::ReadOnly => {
                set_state(&state, LockState::Suspended);
            }
            ConnectionState::Lost => {
                set_state(&state, LockState::Lost);
                return;
            }
            ConnectionState::Connected | ConnectionState::Reconnected => {
                if client.session_id() != session_id {
                    set_state(&state, LockState::Lost);
                    return;
                }
                // Same session: re-check the node rather than assume.
                match client.exists(&node_path).await {
                    Ok(Some(stat)) if stat.ephemeral_owner == session_id => {
                        if client
                            .connection_state()
                            .is_some_and(ConnectionState::is_connected)
                        {
                            set_state(&state, LockState::Held);
                        }
                    }
                    Ok(_) => {
                        set_state(&state, LockState::Lost);
                        return;
                    }
                    // Connection trouble again: a later state decides.
                    Err(_) => {}
                }
            }
            _ => {}
        }
    }
    // The client was closed: its session (and the node) is gone.
    set_state(&state, LockState::Lost);
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
            .field("state", &*self.lease.state.borrow())
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
    /// (and so lost the lock without knowing) is then refused. Reentrant guards of one
    /// handle share the token.
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

    /// The lock's state now.
    pub fn state(&self) -> LockState {
        *self.lease.state.borrow()
    }

    /// The lock's state as a watch channel (every change is observed).
    pub fn states(&self) -> watch::Receiver<LockState> {
        self.lease.state.subscribe()
    }

    /// Resolves when the lock may be lost: the state leaves [`LockState::Held`]
    /// ([`LockState::Suspended`] or [`LockState::Lost`]); returns that state.
    pub async fn at_risk(&self) -> LockState {
        let mut rx = self.lease.state.subscribe();
        let state = match rx.wait_for(|s| *s != LockState::Held).await {
            Ok(s) => *s,
            Err(_) => LockState::Lost,
        };
        state
    }

    /// Resolves when the lock is lost for good ([`LockState::Lost`]).
    pub async fn lost(&self) {
        let mut rx = self.lease.state.subscribe();
        let _ = rx.wait_for(|s| s.is_final()).await;
    }

    /// Releases this guard. If it was the handle's last guard the lock node is deleted —
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
        lease.state.send_replace(LockState::Released);
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
        lease.state.send_replace(LockState::Released);
        result
    }))
}

/// Locks a std mutex, ignoring poisoning (the data stays consistent: no panics while held).
fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
