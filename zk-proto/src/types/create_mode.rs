use super::int_enum;

int_enum! {
    /// Node kinds, carried as the `flags` of a create request.
    pub enum CreateMode {
        /// Stays until deleted.
        Persistent = 0,
        /// Deleted when the creating session ends.
        Ephemeral = 1,
        /// Persistent, with a monotonically increasing 10-digit suffix.
        PersistentSequential = 2,
        /// Ephemeral, with a sequence suffix.
        EphemeralSequential = 3,
        /// Deleted by the server once it had children and has none left (opcode createContainer).
        Container = 4,
        /// Persistent, deleted when unmodified and childless for its TTL (opcode createTTL).
        PersistentWithTtl = 5,
        /// Sequential variant of `PersistentWithTtl`.
        PersistentSequentialWithTtl = 6,
    }
}

impl CreateMode {
    /// The `flags` value of a create request.
    pub const fn flags(self) -> i32 {
        self as i32
    }

    /// Parses create flags; `None` for any undefined value (the server answers BADARGUMENTS).
    pub fn from_flags(flags: i32) -> Option<CreateMode> {
        CreateMode::try_from(flags).ok()
    }

    /// Whether the node is deleted when its session ends.
    pub const fn is_ephemeral(self) -> bool {
        matches!(
            self,
            CreateMode::Ephemeral | CreateMode::EphemeralSequential
        )
    }

    /// Whether the server appends a sequence suffix.
    pub const fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl
        )
    }

    /// Whether this is a container node.
    pub const fn is_container(self) -> bool {
        matches!(self, CreateMode::Container)
    }

    /// Whether the node has a time-to-live.
    pub const fn is_ttl(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentWithTtl | CreateMode::PersistentSequentialWithTtl
        )
    }
}
