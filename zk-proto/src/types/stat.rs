use crate::jute::record;

record! {
    #[derive(Default)]
    /// A node's metadata as clients see it (jute `Stat`, 68 bytes).
    pub struct Stat {
        /// zxid of the create.
        pub czxid: i64,
        /// zxid of the last data change (`czxid` until then).
        pub mzxid: i64,
        /// Create time, ms since the epoch, from the txn header.
        pub ctime: i64,
        /// Last modification time, ms since the epoch.
        pub mtime: i64,
        /// Data version.
        pub version: i32,
        /// Child version, as clients see it.
        pub cversion: i32,
        /// ACL version.
        pub aversion: i32,
        /// Owning session of an ephemeral node, else 0 (also 0 for containers and TTL nodes).
        pub ephemeral_owner: i64,
        /// Data length in bytes (0 for null data).
        pub data_length: i32,
        /// Number of direct children.
        pub num_children: i32,
        /// zxid of the last child create or delete (`czxid` until then).
        pub pzxid: i64,
    }
}

record! {
    #[derive(Default)]
    /// A node's metadata as servers persist it in snapshots (jute `StatPersisted`).
    pub struct StatPersisted {
        /// zxid of the create.
        pub czxid: i64,
        /// zxid of the last data change.
        pub mzxid: i64,
        /// Create time, ms since the epoch.
        pub ctime: i64,
        /// Last modification time, ms since the epoch.
        pub mtime: i64,
        /// Data version.
        pub version: i32,
        /// Stored child version: the number of child creations.
        pub cversion: i32,
        /// ACL version.
        pub aversion: i32,
        /// Stored owner: a session id, or a container/TTL marker.
        pub ephemeral_owner: i64,
        /// zxid of the last child create or delete.
        pub pzxid: i64,
    }
}
