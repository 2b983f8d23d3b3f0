use crate::jute::{jute_vector, record};

record! {
    /// Adds an identity to the connection (`addauth`); sent with xid -4.
    pub struct AuthPacket {
        /// Always 0.
        pub auth_type: i32,
        /// The scheme, e.g. `digest`.
        pub scheme: String,
        /// Scheme-specific credentials, e.g. UTF-8 `user:password` for digest.
        pub auth: Vec<u8>,
    }
}

record! {
    /// A SASL token from the client (opcode sasl).
    pub struct GetSaslRequest {
        /// The token.
        pub token: Vec<u8>,
    }
}

record! {
    /// A SASL token (jute `SetSASLRequest`).
    pub struct SetSaslRequest {
        /// The token.
        pub token: Vec<u8>,
    }
}

record! {
    /// A SASL token from the server.
    pub struct SetSaslResponse {
        /// The token.
        pub token: Vec<u8>,
    }
}

record! {
    /// One authenticated identity of a connection.
    pub struct ClientInfo {
        /// The scheme, e.g. `ip` or `digest`.
        pub auth_scheme: String,
        /// The user within the scheme.
        pub user: String,
    }
}

jute_vector!(ClientInfo);

record! {
    /// The identities of the connection (opcode whoAmI, 3.7+).
    pub struct WhoAmIResponse {
        /// One entry per authenticated identity.
        pub client_info: Vec<ClientInfo>,
    }
}
