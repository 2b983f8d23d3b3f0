//! [`StateMachine`]: what the replica applies committed txns to, and the hooks through which
//! a server around the replica prepares and submits writes ([`ReplicaContext`]).

use bytes::Bytes;

use crate::zab::{Entry, NotLeader, Peer, Role, Sid, Zxid};

/// An error from [`StateMachine::restore`].
pub type RestoreError = Box<dyn std::error::Error + Send + Sync>;

/// What a [`StateMachine`] may ask of the replica it runs in, while one of its hooks runs.
/// Everything it submits is executed after the hook returns, in submission order.
#[derive(Debug)]
pub struct ReplicaContext<'a> {
    peer: &'a mut Peer,
}

impl<'a> ReplicaContext<'a> {
    pub(crate) fn new(peer: &'a mut Peer) -> Self {
        ReplicaContext { peer }
    }

    /// The replica's current role.
    pub fn role(&self) -> Role {
        self.peer.role()
    }

    /// As leader: its learners as (voters, voters synced, observers synced).
    pub fn learner_counts(&self) -> Option<(usize, usize, usize)> {
        self.peer.learner_counts()
    }

    /// As an established leader: the zxid the next [`propose`](Self::propose) assigns (a
    /// txn's header carries its zxid, so a server prepares it knowing the zxid).
    pub fn next_zxid(&self) -> Option<Zxid> {
        self.peer.next_zxid()
    }

    /// As an established leader: proposes `txn`; returns its zxid.
    ///
    /// # Errors
    /// [`NotLeader`] otherwise.
    pub fn propose(&mut self, txn: Bytes) -> Result<Zxid, NotLeader> {
        self.peer.propose(txn)
    }

    /// As a learner: forwards a write to the leader; false when there is no leader.
    pub fn forward(&mut self, data: Bytes) -> bool {
        self.peer.forward(data)
    }
}

/// The replicated state: committed txns are applied to it in zxid order, and a leader sends
/// it whole to a learner too far behind for a diff.
///
/// A replica starts from an empty state machine; the driver restores the storage's snapshot
/// into it, if there is one. Besides applying txns, a state machine can take part in the
/// replica's loop: it hears of role changes and ticks, receives the writes learners forward
/// (as leader), and handles [`Event`](Self::Event)s sent by the code around the replica (a
/// server's client connections) — all on the replica's task, so nothing it does races with a
/// commit.
pub trait StateMachine: Send + 'static {
    /// What the code around the replica sends to the state machine (see
    /// [`Replica::spawn_with_events`](super::Replica::spawn_with_events)); `()` when nothing.
    type Event: Send + 'static;

    /// Applies a committed txn. Called exactly once per txn, in zxid order.
    fn apply(&mut self, entry: &Entry, replica: &mut ReplicaContext<'_>);

    /// The state as of the last applied txn, encoded (sent to a learner as SNAP).
    fn snapshot(&self) -> Bytes;

    /// The state as of the last applied txn, captured now and encoded later by the returned
    /// function on another thread, so that a large state does not stall the replica (the
    /// periodic snapshots that compact the log use this). By default it encodes here.
    fn snapshot_job(&self) -> Box<dyn FnOnce() -> Bytes + Send> {
        let state = self.snapshot();
        Box::new(move || state)
    }

    /// Replaces the whole state with one from [`snapshot`](Self::snapshot).
    ///
    /// # Errors
    /// The bytes are not a state this machine understands; the driver stops the replica.
    fn restore(&mut self, state: Bytes) -> Result<(), RestoreError>;

    /// As leader: a learner forwarded a write. By default the request is the txn and is
    /// proposed as it is (a server prepares it into a txn instead).
    fn forwarded(&mut self, from: Sid, request: Bytes, replica: &mut ReplicaContext<'_>) {
        if let Err(e) = replica.propose(request) {
            tracing::debug!(from, error = %e, "forwarded write dropped");
        }
    }

    /// The replica's role changed (after the commits that came before the change were
    /// applied).
    fn role_changed(&mut self, role: Role, replica: &mut ReplicaContext<'_>) {
        let _ = (role, replica);
    }

    /// A tick of the replica's clock (every [`DriverConfig::tick_interval`](super::DriverConfig)).
    fn tick(&mut self, replica: &mut ReplicaContext<'_>) {
        let _ = replica;
    }

    /// An event from the code around the replica.
    fn event(&mut self, event: Self::Event, replica: &mut ReplicaContext<'_>) {
        let _ = (event, replica);
    }

    /// How many of the inputs the replica takes per loop turn, before acting on them, an
    /// event counts for: 1, unless one event carries several requests.
    fn event_weight(event: &Self::Event) -> usize {
        let _ = event;
        1
    }
}
