//! ZAB, ZooKeeper's atomic broadcast, as a deterministic state machine without I/O.
//!
//! A [`Peer`] is one ensemble member: FastLeaderElection, then discovery (a new epoch agreed by
//! a quorum), synchronization (TRUNC / DIFF / SNAP per learner, NEWLEADER, UPTODATE) and
//! broadcast (PROPOSAL → fsync → ACK → COMMIT in zxid order). It takes [`Input`]s — a message
//! from a peer, a tick of time, a storage completion, a write to propose — and emits
//! [`Action`]s: send a message, append or truncate the log, persist epochs, apply a committed
//! txn, change role. Production drives it with tokio (sockets, the storage thread); the tests
//! drive it with a seeded simulator (fake network and disk, crashes, partitions) and check
//! ZAB's invariants after every step.
//!
//! Txn payloads are opaque bytes here: preparing a request into a txn and applying it to the
//! tree belong to the server around the peer.
//!
//! # Durability rules the peer enforces
//!
//! * A follower ACKs a proposal only after the log holds it durably ([`Input::Persisted`]).
//! * A learner ACKs NEWLEADER only after every synced txn is durable *and* its new
//!   `currentEpoch` is persisted (ZOOKEEPER-3911 and relatives).
//! * Logged zxids are contiguous: a proposal that does not follow the last logged zxid sends the
//!   follower back to election instead of leaving a hole (ZOOKEEPER-4925).
//! * A leader proposes only after a quorum acked NEWLEADER, and commits in zxid order.

mod election;
mod history;
mod message;
mod peer;
#[cfg(test)]
mod peer_tests;
mod vote;

pub use election::ElectionTimers;
pub use history::{EpochSummary, History, NotContiguous, SyncPlan};
pub use message::Message;
pub use peer::{Action, Input, NotLeader, Peer, PeerConfig, PersistentState, Role};
pub use vote::Vote;
pub use zk_proto::ServerState;

/// A server id (`myid`, 1–255).
pub type Sid = u64;

/// A transaction id: `(epoch << 32) | counter`.
pub type Zxid = i64;

/// The epoch part of a zxid.
pub fn epoch_of(zxid: Zxid) -> u32 {
    (zxid >> 32) as u32
}

/// The counter part of a zxid.
pub fn counter_of(zxid: Zxid) -> u32 {
    zxid as u32
}

/// The zxid `(epoch << 32) | counter`.
pub fn make_zxid(epoch: u32, counter: u32) -> Zxid {
    ((epoch as i64) << 32) | counter as i64
}

/// One logged txn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its zxid.
    pub zxid: Zxid,
    /// The encoded txn (opaque to ZAB).
    pub txn: bytes::Bytes,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zxid_parts() {
        let z = make_zxid(3, 7);
        assert_eq!(z, 0x0000_0003_0000_0007);
        assert_eq!((epoch_of(z), counter_of(z)), (3, 7));
        assert_eq!(epoch_of(make_zxid(u32::MAX, 0)), u32::MAX);
    }
}
