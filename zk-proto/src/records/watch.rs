use crate::jute::{int_enum_codec, record};
use crate::types::{AddWatchMode, EventType, KeeperState, WatcherType};

record! {
    /// A watch notification, sent after `ReplyHeader { xid: -1, .. }`.
    pub struct WatcherEvent {
        /// What happened.
        pub event_type: EventType,
        /// The connection state (always SyncConnected from a server).
        pub state: KeeperState,
        /// The server-side path of the node.
        pub path: String,
    }
}

record! {
    /// Re-registers one-shot watches after a reconnect (opcode setWatches).
    pub struct SetWatches {
        /// The client's last seen zxid; changes after it fire at once.
        pub relative_zxid: i64,
        /// Paths with data watches.
        pub data_watches: Vec<String>,
        /// Paths with exist watches (node absent when set).
        pub exist_watches: Vec<String>,
        /// Paths with child watches.
        pub child_watches: Vec<String>,
    }
}

record! {
    /// Re-registers one-shot and persistent watches after a reconnect (opcode setWatches2, 3.6+).
    pub struct SetWatches2 {
        /// The client's last seen zxid.
        pub relative_zxid: i64,
        /// Paths with data watches.
        pub data_watches: Vec<String>,
        /// Paths with exist watches.
        pub exist_watches: Vec<String>,
        /// Paths with child watches.
        pub child_watches: Vec<String>,
        /// Paths with persistent watches.
        pub persistent_watches: Vec<String>,
        /// Paths with persistent recursive watches.
        pub persistent_recursive_watches: Vec<String>,
    }
}

int_enum_codec!(AddWatchMode, "add-watch mode");
int_enum_codec!(WatcherType, "watcher type");

record! {
    /// Adds a persistent (recursive) watch (opcode addWatch, 3.6+).
    pub struct AddWatchRequest {
        /// The path (need not exist).
        pub path: String,
        /// The mode.
        pub mode: AddWatchMode,
    }
}

record! {
    /// Tests whether a watch is registered (opcode checkWatches).
    pub struct CheckWatchesRequest {
        /// The path.
        pub path: String,
        /// Which kind.
        pub watcher_type: WatcherType,
    }
}

record! {
    /// Removes watches (opcode removeWatches).
    pub struct RemoveWatchesRequest {
        /// The path.
        pub path: String,
        /// Which kind.
        pub watcher_type: WatcherType,
    }
}
