use crate::jute::record;

record! {
    /// Dynamic reconfiguration (opcode reconfig); answered with a `GetDataResponse` holding the
    /// new configuration.
    pub struct ReconfigRequest {
        /// Comma-separated server specs to add (incremental mode).
        pub joining_servers: String,
        /// Comma-separated server ids to remove (incremental mode).
        pub leaving_servers: String,
        /// The complete new membership (non-incremental mode).
        pub new_members: String,
        /// Expected current config version, or -1 for any.
        pub cur_config_id: i64,
    }
}
