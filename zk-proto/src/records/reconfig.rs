use crate::jute::record;

record! {
    /// Dynamic reconfiguration (opcode reconfig); answered with a `GetDataResponse` holding the
    /// new configuration.
    pub struct ReconfigRequest {
        /// Comma-separated server specs to add (incremental mode); `None` when not given.
        pub joining_servers: Option<String>,
        /// Comma-separated server ids to remove (incremental mode); `None` when not given.
        pub leaving_servers: Option<String>,
        /// The complete new membership (non-incremental mode); `None` when not given.
        pub new_members: Option<String>,
        /// Expected current config version, or -1 for any.
        pub cur_config_id: i64,
    }
}
