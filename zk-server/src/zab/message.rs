//! The messages ensemble members exchange (election notifications and the learner ↔ leader
//! protocol), before encoding.

use bytes::Bytes;

use super::{Entry, EpochSummary, ServerState, Vote, Zxid};

/// A message between two peers. The transport delivers a peer's messages to another peer in
/// order, or tells both sides the connection broke ([`Input::Disconnected`](super::Input)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// FastLeaderElection: the sender's state and current vote in its election round.
    Notification {
        /// What the sender is doing.
        state: ServerState,
        /// Its vote (its leader's, when settled).
        vote: Vote,
        /// Its election round (logical clock).
        election_epoch: u64,
    },
    /// Learner → leader (FOLLOWERINFO / OBSERVERINFO): who it is and what it holds.
    LearnerInfo {
        /// Whether it observes (does not vote).
        observer: bool,
        /// Its accepted epoch.
        accepted_epoch: u32,
        /// Its current epoch.
        current_epoch: u32,
        /// Its history.
        summary: EpochSummary,
    },
    /// Leader → learner (LEADERINFO): the proposed new epoch.
    LeaderInfo {
        /// The new epoch.
        new_epoch: u32,
    },
    /// Learner → leader (ACKEPOCH): it accepted the new epoch.
    AckEpoch {
        /// Its current epoch (before the new one); `None` (Apache's `-1`) when it had already
        /// accepted this epoch — for another leader's attempt at it — before: such an ack lets
        /// the leader sync it, but does not count toward the quorum that accepts the epoch
        /// (else two leaders could each gather one for the same epoch).
        current_epoch: Option<u32>,
        /// Its last logged zxid.
        last_zxid: Zxid,
    },
    /// Leader → learner (SNAP): the leader's state as of `zxid`; a [`Message::Diff`] with the
    /// txns after it follows.
    Snap {
        /// The last txn the state contains.
        zxid: Zxid,
        /// The state, encoded by the server around the peer.
        state: Bytes,
    },
    /// Leader → learner (TRUNC + DIFF): keep txns up to `common`, drop the rest, append
    /// `entries`.
    Diff {
        /// The last txn both hold.
        common: Zxid,
        /// The txns after it.
        entries: Vec<Entry>,
        /// The leader's commit point (txns up to it are committed).
        committed: Zxid,
    },
    /// Leader → learner (NEWLEADER): ack once everything synced is durable and the new epoch
    /// is the learner's current epoch.
    NewLeader {
        /// The new epoch.
        epoch: u32,
    },
    /// Learner → leader: NEWLEADER is acknowledged.
    AckNewLeader {
        /// The new epoch.
        epoch: u32,
    },
    /// Leader → learner (UPTODATE): serve clients; everything up to `committed` is committed.
    UpToDate {
        /// The leader's commit point.
        committed: Zxid,
    },
    /// Leader → follower: log this txn.
    Proposal(Entry),
    /// Follower → leader: every proposal up to `zxid` is durable here.
    Ack {
        /// The highest durable zxid.
        zxid: Zxid,
    },
    /// Leader → follower: every txn up to `zxid` is committed.
    Commit {
        /// The commit point.
        zxid: Zxid,
    },
    /// Leader → observer (INFORM): a committed txn.
    Inform(Entry),
    /// Leader → learner: liveness (and the commit point).
    Ping {
        /// The leader's commit point.
        committed: Zxid,
    },
    /// Learner → leader: liveness.
    PingReply,
    /// Learner → leader (REQUEST): a client write to prepare and propose.
    Request {
        /// The request, encoded by the server around the peer.
        data: Bytes,
    },
}
