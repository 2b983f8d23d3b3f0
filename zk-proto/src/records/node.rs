use crate::jute::record;
use crate::types::{Acl, Stat};

record! {
    /// Creates a node (opcodes create, create2, createContainer).
    pub struct CreateRequest {
        /// The path (for sequential modes, the prefix of the name).
        pub path: String,
        /// Initial data; `None` is null data.
        pub data: Option<Vec<u8>>,
        /// The node's ACL.
        pub acl: Vec<Acl>,
        /// The raw [`CreateMode`](crate::CreateMode) flags.
        pub flags: i32,
    }
}

record! {
    /// Creates a node with a time-to-live (opcode createTTL).
    pub struct CreateTtlRequest {
        /// The path.
        pub path: String,
        /// Initial data.
        pub data: Option<Vec<u8>>,
        /// The node's ACL.
        pub acl: Vec<Acl>,
        /// The raw [`CreateMode`](crate::CreateMode) flags (a TTL mode).
        pub flags: i32,
        /// Time to live, ms (1 ..= 2^40 - 1).
        pub ttl: i64,
    }
}

record! {
    /// Reply to create.
    pub struct CreateResponse {
        /// The created path (with the sequence suffix).
        pub path: String,
    }
}

record! {
    /// Reply to create2, createContainer and createTTL.
    pub struct Create2Response {
        /// The created path.
        pub path: String,
        /// The new node's stat.
        pub stat: Stat,
    }
}

record! {
    /// Deletes a node.
    pub struct DeleteRequest {
        /// The path.
        pub path: String,
        /// Expected version, or -1 for any.
        pub version: i32,
    }
}

record! {
    /// Stats a node, optionally leaving a data/exist watch.
    pub struct ExistsRequest {
        /// The path.
        pub path: String,
        /// Whether to set a watch (also set when the node is absent).
        pub watch: bool,
    }
}

record! {
    /// Reply to exists when the node exists.
    pub struct ExistsResponse {
        /// The node's stat.
        pub stat: Stat,
    }
}

record! {
    /// Reads a node's data.
    pub struct GetDataRequest {
        /// The path.
        pub path: String,
        /// Whether to set a data watch.
        pub watch: bool,
    }
}

record! {
    /// Reply to getData.
    pub struct GetDataResponse {
        /// The data; `None` for null data.
        pub data: Option<Vec<u8>>,
        /// The node's stat.
        pub stat: Stat,
    }
}

record! {
    /// Writes a node's data.
    pub struct SetDataRequest {
        /// The path.
        pub path: String,
        /// The new data.
        pub data: Option<Vec<u8>>,
        /// Expected version, or -1 for any.
        pub version: i32,
    }
}

record! {
    /// Reply to setData.
    pub struct SetDataResponse {
        /// The node's new stat.
        pub stat: Stat,
    }
}

record! {
    /// Reads a node's ACL.
    pub struct GetAclRequest {
        /// The path.
        pub path: String,
    }
}

record! {
    /// Reply to getACL.
    pub struct GetAclResponse {
        /// The ACL (digest ids masked without ADMIN permission).
        pub acl: Vec<Acl>,
        /// The node's stat.
        pub stat: Stat,
    }
}

record! {
    /// Replaces a node's ACL.
    pub struct SetAclRequest {
        /// The path.
        pub path: String,
        /// The new ACL.
        pub acl: Vec<Acl>,
        /// Expected ACL version (aversion), or -1 for any.
        pub version: i32,
    }
}

record! {
    /// Reply to setACL.
    pub struct SetAclResponse {
        /// The node's new stat.
        pub stat: Stat,
    }
}

record! {
    /// Checks a node's version (inside a multi).
    pub struct CheckVersionRequest {
        /// The path.
        pub path: String,
        /// Expected version, or -1 for any.
        pub version: i32,
    }
}

record! {
    /// Flushes the channel to the leader.
    pub struct SyncRequest {
        /// The path.
        pub path: String,
    }
}

record! {
    /// Reply to sync.
    pub struct SyncResponse {
        /// The path, echoed.
        pub path: String,
    }
}
