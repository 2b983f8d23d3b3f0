use crate::jute::record;
use crate::types::Stat;

record! {
    /// Lists a node's children.
    pub struct GetChildrenRequest {
        /// The path.
        pub path: String,
        /// Whether to set a child watch.
        pub watch: bool,
    }
}

record! {
    /// Reply to getChildren.
    pub struct GetChildrenResponse {
        /// Child names (not paths), unordered.
        pub children: Vec<String>,
    }
}

record! {
    /// Lists a node's children with its stat.
    pub struct GetChildren2Request {
        /// The path.
        pub path: String,
        /// Whether to set a child watch.
        pub watch: bool,
    }
}

record! {
    /// Reply to getChildren2.
    pub struct GetChildren2Response {
        /// Child names, unordered.
        pub children: Vec<String>,
        /// The parent's stat.
        pub stat: Stat,
    }
}

record! {
    /// Lists the session's ephemeral nodes under a prefix (3.6+).
    pub struct GetEphemeralsRequest {
        /// A plain string prefix; empty or `/` lists all.
        pub prefix_path: String,
    }
}

record! {
    /// Reply to getEphemerals.
    pub struct GetEphemeralsResponse {
        /// Paths of the session's ephemerals.
        pub ephemerals: Vec<String>,
    }
}

record! {
    /// Counts all descendants of a node (3.6+).
    pub struct GetAllChildrenNumberRequest {
        /// The path.
        pub path: String,
    }
}

record! {
    /// Reply to getAllChildrenNumber.
    pub struct GetAllChildrenNumberResponse {
        /// Number of descendants at any depth, excluding the node itself.
        pub total_number: i32,
    }
}
