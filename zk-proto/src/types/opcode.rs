use super::int_enum;

int_enum! {
    /// Request types (`ZooDefs.OpCode`), carried in `RequestHeader.type`, `MultiHeader.type` and
    /// `TxnHeader.type`.
    pub enum OpCode {
        /// Watch notification (xid -1); never sent as a request.
        Notification = 0,
        /// Create a node; replies with the path.
        Create = 1,
        /// Delete a node.
        Delete = 2,
        /// Stat a node (optionally setting a data/exist watch).
        Exists = 3,
        /// Read a node's data and stat.
        GetData = 4,
        /// Write a node's data.
        SetData = 5,
        /// Read a node's ACL.
        GetAcl = 6,
        /// Replace a node's ACL.
        SetAcl = 7,
        /// List children.
        GetChildren = 8,
        /// Flush the channel between this server and the leader.
        Sync = 9,
        /// Keep-alive (xid -2).
        Ping = 11,
        /// List children with the parent's stat.
        GetChildren2 = 12,
        /// Version check (inside multi).
        Check = 13,
        /// Atomic transaction.
        Multi = 14,
        /// Create a node; replies with path and stat.
        Create2 = 15,
        /// Dynamic reconfiguration.
        Reconfig = 16,
        /// Test whether a watch is registered.
        CheckWatches = 17,
        /// Remove watches.
        RemoveWatches = 18,
        /// Create a container node.
        CreateContainer = 19,
        /// Server-internal deletion of an empty container or expired TTL node.
        DeleteContainer = 20,
        /// Create a node with a time-to-live.
        CreateTtl = 21,
        /// Batched reads (3.6+).
        MultiRead = 22,
        /// Add authentication (xid -4).
        Auth = 100,
        /// Re-register watches after reconnect.
        SetWatches = 101,
        /// SASL token exchange.
        Sasl = 102,
        /// List this session's ephemerals (3.6+).
        GetEphemerals = 103,
        /// Count all descendants (3.6+).
        GetAllChildrenNumber = 104,
        /// Re-register watches including persistent ones (3.6+).
        SetWatches2 = 105,
        /// Add a persistent (recursive) watch (3.6+).
        AddWatch = 106,
        /// List the connection's authenticated identities (3.7+).
        WhoAmI = 107,
        /// Session creation txn.
        CreateSession = -10,
        /// Session close request and txn.
        CloseSession = -11,
        /// Error txn / error result inside multi.
        Error = -1,
    }
}

impl OpCode {
    /// Whether a ZooKeeper 3.5 server does not know this op: those added in 3.6 (multiRead,
    /// getEphemerals, getAllChildrenNumber, setWatches2, addWatch) and 3.7 (whoAmI). Such a
    /// server answers it UNIMPLEMENTED and closes the connection.
    pub const fn added_after_3_5(self) -> bool {
        matches!(
            self,
            OpCode::MultiRead
                | OpCode::GetEphemerals
                | OpCode::GetAllChildrenNumber
                | OpCode::SetWatches2
                | OpCode::AddWatch
                | OpCode::WhoAmI
        )
    }

    /// Whether this request changes the tree (and so goes through the txn log and the quorum).
    pub const fn is_write(self) -> bool {
        matches!(
            self,
            OpCode::Create
                | OpCode::Create2
                | OpCode::CreateContainer
                | OpCode::CreateTtl
                | OpCode::Delete
                | OpCode::DeleteContainer
                | OpCode::SetData
                | OpCode::SetAcl
                | OpCode::Check
                | OpCode::Multi
                | OpCode::Reconfig
                | OpCode::CreateSession
                | OpCode::CloseSession
        )
    }
}
