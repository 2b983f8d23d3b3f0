use crate::jute::{int_enum_codec, record};
use crate::types::{int_enum, Id};

int_enum! {
    /// Quorum packet types (`Leader.java`).
    pub enum QuorumPacketType {
        /// Learner forwards a client write.
        Request = 1,
        /// Leader proposes a txn.
        Proposal = 2,
        /// Learner acknowledges a proposal (or NEWLEADER / UPTODATE).
        Ack = 3,
        /// Leader commits a zxid.
        Commit = 4,
        /// Liveness, both ways.
        Ping = 5,
        /// Session revalidation.
        Revalidate = 6,
        /// Reply to a forwarded sync.
        Sync = 7,
        /// Committed txn to an observer.
        Inform = 8,
        /// Commit of a reconfig.
        CommitAndActivate = 9,
        /// New leader announcement at the end of synchronization.
        NewLeader = 10,
        /// Follower's registration.
        FollowerInfo = 11,
        /// Learner may serve clients.
        UpToDate = 12,
        /// Followed by proposals the learner lacks.
        Diff = 13,
        /// Learner truncates its log.
        Trunc = 14,
        /// Followed by a snapshot.
        Snap = 15,
        /// Observer's registration.
        ObserverInfo = 16,
        /// Leader's epoch proposal.
        LeaderInfo = 17,
        /// Learner's epoch acknowledgement.
        AckEpoch = 18,
        /// Reconfig variant of INFORM.
        InformAndActivate = 19,
    }
}
int_enum_codec!(QuorumPacketType, "quorum packet type");

record! {
    /// A message between ensemble members (jute `QuorumPacket`).
    pub struct QuorumPacket {
        /// The [`QuorumPacketType`], raw.
        pub packet_type: i32,
        /// A zxid whose meaning depends on the type.
        pub zxid: i64,
        /// Type-specific payload.
        pub data: Option<Vec<u8>>,
        /// Identities of the client whose request is forwarded.
        pub auth_info: Vec<Id>,
    }
}

record! {
    /// The payload of FOLLOWERINFO / OBSERVERINFO.
    pub struct LearnerInfo {
        /// The learner's server id.
        pub server_id: i64,
        /// Protocol version (0x10000).
        pub protocol_version: i32,
        /// The learner's config version.
        pub config_version: i64,
    }
}
