use crate::jute::record;

record! {
    /// The header of a txn-log or snapshot file.
    pub struct FileHeader {
        /// [`FileHeader::TXNLOG_MAGIC`] or [`FileHeader::SNAPSHOT_MAGIC`].
        pub magic: i32,
        /// Format version (2).
        pub version: i32,
        /// Database id.
        pub dbid: i64,
    }
}

impl FileHeader {
    /// `ZKLG`, the txn-log magic.
    pub const TXNLOG_MAGIC: i32 = 0x5A4B_4C47;
    /// `ZKSN`, the snapshot magic.
    pub const SNAPSHOT_MAGIC: i32 = 0x5A4B_534E;
    /// The format version Apache ZooKeeper writes.
    pub const VERSION: i32 = 2;
}
