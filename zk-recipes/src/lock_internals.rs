//! The machinery shared by the lock recipes — Curator's `LockInternals` and its drivers: one
//! protected EPHEMERAL_SEQUENTIAL node per acquisition, a queue sorted by Curator's rule, a
//! predicate deciding who holds the lock and which single node a waiter watches, and the
//! guard ([`MutexGuard`]) that reports the lock's state and deletes the node when released.
//!
//! Used by [`Mutex`](crate::Mutex) (exclusive, nodes `lock-N`), by the read and write locks
//! of [`ReadWriteLock`](crate::ReadWriteLock) (nodes `__READ__N` / `__WRIT__N`) and, through
//! `Mutex`, by the semaphores, the multi-lock and the leader selector.

use std::fmt;
use std::future::IntoFuture;
use std::pin::Pin;
use std::sync::{Arc, Mutex as StdMutex};
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, watch, Mutex as AsyncMutex};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use zk_client::{
    Client, ConnectionState, ConnectionStates, CreateMode, Error as ZkError, EventType, Stat,
    WatchFuture,
};

use crate::nodes::{join, node_name, sorted_children, sorted_children_by};
use crate::util::{delete_until_gone, lock, serves_writes, OwnedNode};
use crate::{Error, Result};

/// The name of a read-write lock's read nodes (as Curator's `InterProcessReadWriteLock`).
pub(crate) const READ_NAME: &str = "__READ__";
/// The name of a read-write lock's write nodes (as Curator's `InterProcessReadWriteLock`).
pub(crate) const WRITE_NAME: &str = "__WRIT__";

/// What a lock node holds when someone asks its holder to release it (Curator's
/// `LockInternals.REVOKE_MESSAGE`); see [`Revoker`](crate::Revoker).
pub(crate) const REVOKE_MESSAGE: &[u8] = b"__REVOKE__";

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

/// Counters of a lock handle's waits, for tests (no herd effect). Not a stable API.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WaitStats {
    /// Watches left on a predecessor node.
    pub watches_set: u64,
    /// Watch notifications received while waiting.
    pub wakeups: u64,
}

/// Which lock the internals implement: the node name and the predicate (Curator's
/// `LockInternalsDriver`).
pub(crate) enum Kind {
    /// One holder at a time; nodes `<lock_name>N` (Curator's `StandardLockInternalsDriver`
    /// with one lease). Every waiter watches its immediate predecessor.
    Exclusive {
        /// `lock-` for Curator's mutex.
        lock_name: &'static str,
    },
    /// A read-write lock's write side: exclusive against readers and writers; queued over
    /// both kinds of nodes, watching the immediate predecessor of either kind.
    Write,
    /// A read-write lock's read side: holds while no write node precedes it, watching the
    /// nearest preceding write node otherwise; granted at once while `writer` (the write side
    /// of the same handle) holds the write lock (downgrade).
    Read {
        /// The write side of the same handle.
        writer: Arc<Internals>,
    },
}

impl Kind {
    fn node_name(&self) -> &'static str {
        match self {
            Kind::Exclusive { lock_name } => lock_name,
            Kind::Write => WRITE_NAME,
            Kind::Read { .. } => READ_NAME,
        }
    }

    /// The queue: the lock's nodes sorted by Curator's rule.
    fn sort(&self, children: Vec<String>) -> Vec<String> {
        match self {
            Kind::Exclusive { lock_name } => sorted_children(children, lock_name),
            Kind::Write | Kind::Read { .. } => {
                sorted_children_by(children, &[READ_NAME, WRITE_NAME])
            }
        }
    }
}

/// The predicate's answer for one node.
enum Verdict {
    /// The node holds the lock. `pin`: a guard on this handle's write grant, kept by a
    /// downgraded read grant while a foreign write node precedes its read node.
    Acquired { pin: Option<MutexGuard> },
    /// Wait for this node (a name in the lock path) to change.
    Watch(String),
}

/// One lock handle's state: the lock path, the predicate, and the grant it holds.
pub(crate) struct Internals {
    pub(crate) client: Client,
    pub(crate) path: String,
    data: Vec<u8>,
    kind: Kind,
    /// Serialises acquisitions on this handle (a waiting acquire holds it, so later ones
    /// queue behind it in order).
    op: AsyncMutex<()>,
    /// The grant of this handle, while its node exists (cleared only after the node is gone).
    held: StdMutex<Option<Arc<Grant>>>,
    stats: watch::Sender<WaitStats>,
}

impl Internals {
    pub(crate) fn new(client: Client, path: &str, data: Vec<u8>, kind: Kind) -> Arc<Internals> {
        Arc::new(Internals {
            client,
            path: path.to_owned(),
            data,
            kind,
            op: AsyncMutex::new(()),
            held: StdMutex::new(None),
            stats: watch::channel(WaitStats::default()).0,
        })
    }

    /// Whether a live (not lost) guard of this handle holds the lock now.
    pub(crate) fn is_acquired(&self) -> bool {
        let held = lock(&self.held);
        held.as_ref()
            .is_some_and(|g| *lock(&g.count) > 0 && !g.state.get().is_final())
    }

    /// Whether a guard of this handle is alive (even a lost one). A grant whose guards are
    /// all gone, its node still being deleted, does not count.
    pub(crate) fn has_guards(&self) -> bool {
        lock(&self.held)
            .as_ref()
            .is_some_and(|g| *lock(&g.count) > 0)
    }

    pub(crate) fn wait_stats(&self) -> watch::Receiver<WaitStats> {
        self.stats.subscribe()
    }

    /// The lock's queue (both kinds of nodes for a read-write lock), as node names.
    pub(crate) async fn queue(&self) -> Result<Vec<String>> {
        match self.client.get_children(&self.path).await {
            Ok(children) => Ok(self.kind.sort(children)),
            Err(ZkError::NoNode) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// This kind's nodes only, in queue order (Curator's `getParticipantNodes`).
    pub(crate) async fn participant_nodes(&self) -> Result<Vec<String>> {
        let name = self.kind.node_name();
        let mut queue = self.queue().await?;
        queue.retain(|n| n.contains(name));
        Ok(queue)
    }

    /// Another guard on this handle's live grant, if it has one.
    fn reenter_held(self: &Arc<Self>) -> Option<MutexGuard> {
        let held = lock(&self.held);
        let grant = held.as_ref()?;
        let mut count = lock(&grant.count);
        if *count == 0 || grant.state.get().is_final() {
            return None;
        }
        *count += 1;
        Some(MutexGuard::new(self.clone(), grant.clone()))
    }

    /// Acquires until `deadline`; `None` when it passed. As Curator's, the deadline bounds
    /// the waits only (for the predecessor, or for another task of this handle): the node is
    /// created and the queue read first, so a free lock is taken even with a deadline already
    /// past (`acquire_timeout(Duration::ZERO)` is a try-lock); those requests are bounded by
    /// the client's connection timeout and retry policy. The node of a failed or timed-out
    /// attempt is deleted before returning (or handed to a background delete).
    pub(crate) async fn acquire_until(
        self: &Arc<Self>,
        deadline: Option<Instant>,
    ) -> Result<Option<MutexGuard>> {
        let mut own = OwnedNode::new(&self.client);
        match self.attempt(&mut own, deadline).await {
            Ok(Some(guard)) => Ok(Some(guard)),
            outcome => {
                own.delete_now().await;
                outcome
            }
        }
    }

    /// The predicate for our node at `index` of the queue `sorted`.
    fn verdict(&self, sorted: &[String], index: usize) -> Verdict {
        let before = sorted.get(..index).unwrap_or_default();
        match &self.kind {
            Kind::Exclusive { .. } | Kind::Write => match before.last() {
                None => Verdict::Acquired { pin: None },
                Some(predecessor) => Verdict::Watch(predecessor.clone()),
            },
            Kind::Read { writer } => {
                // This handle holds the write lock — its node is still in the queue ahead of
                // ours (a grant whose session just expired may not know it yet): the read
                // lock is granted at once (downgrade). A foreign write node between our write
                // node and our read node would take the write lock as soon as our write node
                // is deleted, while we still read: then the read grant keeps our write node
                // (through `pin`) until the read grant itself is released.
                if let Some(pin) = writer
                    .reenter_held()
                    .filter(|pin| before.iter().any(|n| n == node_name(pin.node_path())))
                {
                    let ours = node_name(pin.node_path()).to_owned();
                    let foreign_writer_before =
                        before.iter().any(|n| n.contains(WRITE_NAME) && *n != ours);
                    return Verdict::Acquired {
                        pin: foreign_writer_before.then_some(pin),
                    };
                }
                match before.iter().rev().find(|n| n.contains(WRITE_NAME)) {
                    None => Verdict::Acquired { pin: None },
                    // The nearest preceding writer: when it goes, every node before it is
                    // gone too (a writer holds only when first), or it gave up waiting.
                    Some(writer_node) => Verdict::Watch(writer_node.clone()),
                }
            }
        }
    }

    /// One acquisition; `None` when `deadline` passed while waiting.
    async fn attempt(
        self: &Arc<Self>,
        own: &mut OwnedNode,
        deadline: Option<Instant>,
    ) -> Result<Option<MutexGuard>> {
        let client = &self.client;
        let Some(_op) = until(deadline, self.op.lock()).await else {
            return Ok(None);
        };
        // Mutual exclusion between tasks sharing this handle: while a guard of this handle is
        // alive (even a lost one: its task may still be in the critical section), wait until
        // it is released and its node is gone — or this acquisition would queue behind our
        // own node. `held` is cleared before `Released` is sent.
        loop {
            let Some(grant) = lock(&self.held).clone() else {
                break;
            };
            let mut rx = grant.state.tx.subscribe();
            let released = async {
                let _ = rx.wait_for(|s| *s == LockState::Released).await;
            };
            if until(deadline, released).await.is_none() {
                return Ok(None);
            }
        }

        let lock_prefix = join(&self.path, self.kind.node_name());
        // Our node, verified to be ours, with a watch on it that has not fired. Notifications
        // arrive before the replies that follow them, so while that watch is pending after a
        // reply, our node was unchanged when the server sent the reply.
        let mut claim: Option<OwnNode> = None;
        loop {
            let our_path = match own.path() {
                Some(p) => p.to_owned(),
                None => {
                    claim = None;
                    let created = client
                        .create(&lock_prefix)
                        .mode(CreateMode::EphemeralSequential)
                        .creating_parent_containers_if_needed()
                        .with_protection()
                        .data(self.data.clone())
                        .await?;
                    own.set(created.path.clone());
                    created.path
                }
            };
            // The queue, and (in the same round trip) our node unless it is already verified.
            // The verifying read leaves the watch on our node that the grant follows (getData
            // sets no watch on a missing node: no leak).
            let children = match &claim {
                Some(_) => client.get_children(&self.path).await,
                None => {
                    let (children, ours) = futures::join!(
                        client.get_children(&self.path).into_future(),
                        client.get_data(&our_path).watched().into_future()
                    );
                    match ours {
                        Ok((data, stat, watch)) if stat.ephemeral_owner == client.session_id() => {
                            claim = Some(OwnNode {
                                path: our_path.clone(),
                                data,
                                stat,
                                watch,
                            });
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
                    children
                }
            };
            let children = match children {
                Ok(c) => c,
                Err(ZkError::NoNode) => Vec::new(),
                Err(e) => return Err(e.into()),
            };
            let Some(verified) = still_unchanged(&mut claim).await else {
                continue;
            };
            let sorted = self.kind.sort(children);
            let Some(index) = sorted.iter().position(|c| c == node_name(&our_path)) else {
                // Our node is gone (its session expired): queue again with a new one.
                tracing::debug!(path = %our_path, "lock node vanished; re-creating");
                own.disarm();
                continue;
            };
            let predecessor = match self.verdict(&sorted, index) {
                Verdict::Acquired { pin } => {
                    // Subscribed after the reply that made us the holder: a state change
                    // since then is either in the stream or in the current state.
                    let states = client.connection_states();
                    return Ok(Some(self.grant(own, verified, states, pin)));
                }
                Verdict::Watch(node) => node,
            };
            claim = Some(verified);
            // Watch only that one node; getData sets no watch on a missing node (no leak).
            let deleted = match client
                .get_data(&join(&self.path, &predecessor))
                .watched()
                .await
            {
                Ok((_, _, watch)) => {
                    self.stats.send_modify(|s| s.watches_set += 1);
                    let Some(event) = until(deadline, watch).await else {
                        return Ok(None);
                    };
                    self.stats.send_modify(|s| s.wakeups += 1);
                    tracing::trace!(?event, "lock predecessor changed");
                    event.event_type == EventType::NodeDeleted
                }
                Err(ZkError::NoNode) => true,
                Err(e) => return Err(e.into()),
            };
            // Next in line of an exclusive lock: no node is ever created ahead of ours
            // (sequence numbers only grow), so with the predecessor gone and our node
            // unchanged, the lock is ours without reading the queue again.
            let exclusive = !matches!(self.kind, Kind::Read { .. });
            if deleted && exclusive && index == 1 {
                if let Some(verified) = still_unchanged(&mut claim).await {
                    let states = client.connection_states();
                    return Ok(Some(self.grant(own, verified, states, None)));
                }
            }
        }
    }

    /// Turns our verified node into this handle's grant.
    fn grant(
        self: &Arc<Self>,
        own: &mut OwnedNode,
        claim: OwnNode,
        states: ConnectionStates,
        pin: Option<MutexGuard>,
    ) -> MutexGuard {
        own.disarm();
        // A revocation asked for while we waited counts too.
        let revoked = claim.data == REVOKE_MESSAGE && self.data != REVOKE_MESSAGE;
        let grant = Grant::start(
            &self.client,
            claim.path,
            claim.stat.czxid,
            claim.stat.ephemeral_owner,
            states,
            claim.watch,
            revoked,
            pin,
        );
        *lock(&self.held) = Some(grant.clone());
        MutexGuard::new(self.clone(), grant)
    }
}

/// `fut`'s output, or `None` if `deadline` (if any) passes first.
async fn until<F: std::future::Future>(deadline: Option<Instant>, fut: F) -> Option<F::Output> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d, fut).await.ok(),
        None => Some(fut.await),
    }
}

/// Our lock node as read when verifying it: its data, its Stat, and the watch the read left.
struct OwnNode {
    path: String,
    data: Vec<u8>,
    stat: Stat,
    watch: WatchFuture,
}

/// Takes the claim if its watch has not fired (our node unchanged up to the last reply);
/// drops it otherwise, so that the node is read again.
async fn still_unchanged(claim: &mut Option<OwnNode>) -> Option<OwnNode> {
    let mut c = claim.take()?;
    futures::poll!(&mut c.watch).is_pending().then_some(c)
}

/// One lock node and the guards sharing it.
struct Grant {
    node_path: String,
    czxid: i64,
    session_id: i64,
    /// Guards alive; 0 means the node is being deleted. Changed under `Internals::held`.
    count: StdMutex<usize>,
    state: Arc<StateCell>,
    /// Set when the node's data became [`REVOKE_MESSAGE`].
    revoke: watch::Sender<bool>,
    monitor: StdMutex<Option<JoinHandle<()>>>,
    /// A downgraded read grant's hold on its handle's write grant, released after this
    /// grant's node is gone.
    pin: StdMutex<Option<MutexGuard>>,
}

impl Grant {
    /// A grant on a verified lock node: `session_id` is the node's `ephemeralOwner` as read
    /// when verifying, `node_watch` the watch that read left on the node.
    #[allow(clippy::too_many_arguments)]
    fn start(
        client: &Client,
        node_path: String,
        czxid: i64,
        session_id: i64,
        states: ConnectionStates,
        node_watch: WatchFuture,
        revoked: bool,
        pin: Option<MutexGuard>,
    ) -> Arc<Grant> {
        let state = Arc::new(StateCell::new(initial_state(client)));
        if let Some(pin) = &pin {
            // A downgraded read grant is exclusive only while the write grant it pins holds:
            // if that is lost (its node deleted from outside, its session gone), so is this.
            let mut pinned = pin.states();
            let state = state.clone();
            tokio::spawn(async move {
                let _ = pinned.wait_for(|s| s.is_final()).await;
                // A no-op once this grant is released (before its pin is).
                state.set(LockState::Lost);
            });
        }
        let revoke = watch::channel(revoked).0;
        let monitor = tokio::spawn(monitor(
            client.clone(),
            node_path.clone(),
            session_id,
            state.clone(),
            revoke.clone(),
            states,
            Some(node_watch),
        ));
        Arc::new(Grant {
            node_path,
            czxid,
            session_id,
            count: StdMutex::new(1),
            state,
            revoke,
            monitor: StdMutex::new(Some(monitor)),
            pin: StdMutex::new(pin),
        })
    }
}

/// The [`LockState`] of a node a recipe holds outside a lock (a semaphore lease), followed as
/// a lock's: connection states, a watch on the node, its owner checked on every reconnect.
pub(crate) struct HeldNode {
    state: Arc<StateCell>,
    monitor: JoinHandle<()>,
}

impl HeldNode {
    /// Starts following `node_path`, which `session_id` must own (checked when the watch on
    /// it is first set). Must be called inside a tokio runtime.
    pub(crate) fn start(client: &Client, node_path: &str, session_id: i64) -> HeldNode {
        // Subscribed before the current state is read: no change falls between the two.
        let states = client.connection_states();
        let state = Arc::new(StateCell::new(initial_state(client)));
        let monitor = tokio::spawn(monitor(
            client.clone(),
            node_path.to_owned(),
            session_id,
            state.clone(),
            watch::channel(false).0,
            states,
            None,
        ));
        HeldNode { state, monitor }
    }

    pub(crate) fn get(&self) -> LockState {
        self.state.get()
    }

    pub(crate) fn states(&self) -> watch::Receiver<LockState> {
        self.state.tx.subscribe()
    }

    pub(crate) fn state_changes(&self) -> LockStates {
        self.state.subscribe_changes()
    }

    pub(crate) async fn at_risk(&self) -> LockState {
        self.state.at_risk().await
    }

    pub(crate) async fn lost(&self) {
        self.state.lost().await
    }

    /// The holder deletes the node: stop following it (its deletion is no loss).
    pub(crate) fn stop_following(&self) {
        self.monitor.abort();
    }

    /// The node is deleted: stop following it.
    pub(crate) fn released(&self) {
        self.stop_following();
        self.state.released();
    }
}

impl Drop for HeldNode {
    /// The holder let go of the node (its deletion, if any, goes on in the background):
    /// subscribers see `Released`, and their streams end.
    fn drop(&mut self) {
        self.released();
    }
}

/// The state of a node just verified as ours: `Suspended` unless the client can write now.
fn initial_state(client: &Client) -> LockState {
    match client.connection_state() {
        Some(s) if !serves_writes(s) => LockState::Suspended,
        _ => LockState::Held,
    }
}

/// A grant's state: the current value (a watch channel) and lossless subscribers.
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

    /// Resolves when the state leaves [`LockState::Held`]; returns the new state.
    async fn at_risk(&self) -> LockState {
        let mut rx = self.tx.subscribe();
        let state = match rx.wait_for(|s| *s != LockState::Held).await {
            Ok(s) => *s,
            Err(_) => LockState::Lost,
        };
        state
    }

    /// Resolves when the state is final.
    async fn lost(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|s| s.is_final()).await;
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
/// every event) for one lock node; a data change to [`REVOKE_MESSAGE`] sets `revoke`.
async fn monitor(
    client: Client,
    node_path: String,
    session_id: i64,
    state: Arc<StateCell>,
    revoke: watch::Sender<bool>,
    mut states: ConnectionStates,
    node_watch: Option<WatchFuture>,
) {
    let mut node_watch = node_watch;
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
                            // Data changed or the like: re-arm (and read the data) below.
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
                        Ok((data, stat, watch)) if stat.ephemeral_owner == session_id => {
                            if data == REVOKE_MESSAGE {
                                tracing::debug!(path = %node_path, "revocation requested");
                                revoke.send_replace(true);
                            }
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

/// Holds a lock: a [`Mutex`](crate::Mutex), or the read or write lock of a
/// [`ReadWriteLock`](crate::ReadWriteLock). Dropping it releases the lock (the node is
/// deleted in the background until it is gone); prefer [`MutexGuard::release`] to learn when
/// that happened.
#[must_use = "dropping the guard releases the lock at once"]
pub struct MutexGuard {
    inner: Arc<Internals>,
    grant: Arc<Grant>,
    armed: bool,
}

impl fmt::Debug for MutexGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MutexGuard")
            .field("node", &self.grant.node_path)
            .field("fencing_token", &self.grant.czxid)
            .field("state", &self.grant.state.get())
            .finish()
    }
}

impl MutexGuard {
    fn new(inner: Arc<Internals>, grant: Arc<Grant>) -> MutexGuard {
        MutexGuard {
            inner,
            grant,
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
    ///
    /// Read grants of a [`ReadWriteLock`](crate::ReadWriteLock) are shared, so their tokens
    /// order grants but do not identify a single holder: a resource fences readers against
    /// writers by rejecting a read token lower than the last write token it accepted.
    pub fn fencing_token(&self) -> i64 {
        self.grant.czxid
    }

    /// The lock node's path (client-relative).
    pub fn node_path(&self) -> &str {
        &self.grant.node_path
    }

    /// The id of the session that owns the lock node.
    pub fn session_id(&self) -> i64 {
        self.grant.session_id
    }

    /// Another guard for this same grant, at once (explicit re-entrancy): it shares the lock
    /// node, the fencing token and the state; the node is deleted when the last of the guards
    /// is released. Re-entering a lost guard gives a lost guard.
    pub fn reenter(&self) -> MutexGuard {
        {
            let _held = lock(&self.inner.held);
            // This guard is alive, so the count is at least 1 and the node not being deleted.
            *lock(&self.grant.count) += 1;
        }
        MutexGuard::new(self.inner.clone(), self.grant.clone())
    }

    /// The lock's state now.
    pub fn state(&self) -> LockState {
        self.grant.state.get()
    }

    /// The lock's state as a watch channel: it always holds the latest state, but changes
    /// that follow each other quickly are coalesced (a short [`LockState::Suspended`] can be
    /// missed). Use [`MutexGuard::state_changes`] to see every change.
    pub fn states(&self) -> watch::Receiver<LockState> {
        self.grant.state.tx.subscribe()
    }

    /// Every change of the lock's state from now on, in order and none coalesced; the stream
    /// ends after [`LockState::Released`] (at once if the guard's grant is released already).
    pub fn state_changes(&self) -> LockStates {
        self.grant.state.subscribe_changes()
    }

    /// Resolves when the lock may be lost: the state leaves [`LockState::Held`]
    /// ([`LockState::Suspended`] or [`LockState::Lost`]); returns that state.
    pub async fn at_risk(&self) -> LockState {
        self.grant.state.at_risk().await
    }

    /// Resolves when the lock is lost for good ([`LockState::Lost`]).
    pub async fn lost(&self) {
        self.grant.state.lost().await
    }

    /// Whether someone asked the holder to release this lock (Curator's revocation: the lock
    /// node's data was set to `__REVOKE__`, e.g. by [`Revoker::attempt_revoke`](crate::Revoker::attempt_revoke)).
    pub fn is_revocation_requested(&self) -> bool {
        *self.grant.revoke.borrow()
    }

    /// Resolves when someone asks the holder to release this lock (Curator's
    /// `RevocationListener`): the lock node's data was set to `__REVOKE__` (by
    /// [`Revoker::attempt_revoke`](crate::Revoker::attempt_revoke), or by a Java process's
    /// `Revoker.attemptRevoke`), before or after the lock was granted. Revocation is
    /// cooperative: the holder decides whether and when to release. Never resolves if no
    /// revocation comes (also after the lock is lost).
    ///
    /// # Cancellation safety
    /// Cancel-safe: nothing is consumed; a later call resolves at once if the request came.
    pub async fn revocation_requested(&self) {
        let mut rx = self.grant.revoke.subscribe();
        if rx.wait_for(|r| *r).await.is_err() {
            std::future::pending::<()>().await;
        }
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
        match release_one(&self.inner, &self.grant) {
            Some(task) => match task.await {
                Ok(r) => r.map_err(Error::from),
                Err(_) => Err(Error::Closed),
            },
            None => Ok(()),
        }
    }

    /// [`release`](Self::release), waited for at most one call's wait for a connection (the
    /// client's connection timeout): cut off from the server, the release goes on in the
    /// background (this handle's next acquire waits for it) and this returns `Ok`.
    pub(crate) async fn release_soon(self) -> Result<()> {
        let bound = self.inner.client.connection_timeout();
        tokio::time::timeout(bound, self.release())
            .await
            .unwrap_or(Ok(()))
    }
}

impl Drop for MutexGuard {
    fn drop(&mut self) {
        if self.armed {
            self.armed = false;
            let _ = release_one(&self.inner, &self.grant);
        }
    }
}

/// Drops one guard's share of `grant`; for the last one, spawns the node's deletion (and
/// then the release of a downgrade pin).
fn release_one(
    inner: &Arc<Internals>,
    grant: &Arc<Grant>,
) -> Option<JoinHandle<Result<(), ZkError>>> {
    {
        let _held = lock(&inner.held);
        let mut count = lock(&grant.count);
        *count = count.saturating_sub(1);
        if *count > 0 {
            return None;
        }
    }
    if let Some(m) = lock(&grant.monitor).take() {
        m.abort();
    }
    let rt = crate::util::runtime_for(&inner.client);
    let inner = inner.clone();
    let grant = grant.clone();
    Some(rt.spawn(async move {
        let result = delete_until_gone(&inner.client, &grant.node_path).await;
        {
            let mut held = lock(&inner.held);
            if held.as_ref().is_some_and(|g| Arc::ptr_eq(g, &grant)) {
                *held = None;
            }
        }
        grant.state.released();
        // Only now that our read node is gone may our write node go.
        let pin = lock(&grant.pin).take();
        if let Some(pin) = pin {
            let _ = pin.release().await;
        }
        result
    }))
}
