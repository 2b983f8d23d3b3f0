//! [`StateMachine`]: what the replica applies committed txns to.

use bytes::Bytes;

use crate::zab::{Entry, Sid};

/// An error from [`StateMachine::restore`].
pub type RestoreError = Box<dyn std::error::Error + Send + Sync>;

/// The replicated state: committed txns are applied to it in zxid order, and a leader sends
/// it whole to a learner too far behind for a diff.
///
/// A replica starts from an empty state machine; the driver restores the storage's snapshot
/// into it, if there is one.
pub trait StateMachine: Send + 'static {
    /// Applies a committed txn. Called exactly once per txn, in zxid order.
    fn apply(&mut self, entry: &Entry);

    /// The state as of the last applied txn, encoded (sent to a learner as SNAP).
    fn snapshot(&self) -> Bytes;

    /// Replaces the whole state with one from [`snapshot`](Self::snapshot).
    ///
    /// # Errors
    /// The bytes are not a state this machine understands; the driver stops the replica.
    fn restore(&mut self, state: Bytes) -> Result<(), RestoreError>;

    /// As leader: turns a write a learner forwarded into a txn to propose, or `None` to drop
    /// it. By default the request is the txn (a server prepares it here instead).
    fn prepare_forwarded(&mut self, from: Sid, request: Bytes) -> Option<Bytes> {
        let _ = from;
        Some(request)
    }
}
