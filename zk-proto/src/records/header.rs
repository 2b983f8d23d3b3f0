use crate::jute::record;
use crate::types::{ErrorCode, OpCode};

record! {
    /// Precedes every client request after the handshake.
    pub struct RequestHeader {
        /// Request id, echoed in the reply; negative values are special (-2 ping, -4 auth, -8
        /// set-watches).
        pub xid: i32,
        /// The opcode, raw so that unknown opcodes can be answered with UNIMPLEMENTED.
        pub op_type: i32,
    }
}

impl RequestHeader {
    /// Xid of watch notifications (server to client).
    pub const NOTIFICATION_XID: i32 = -1;
    /// Xid of pings.
    pub const PING_XID: i32 = -2;
    /// Xid of auth packets.
    pub const AUTH_XID: i32 = -4;
    /// Xid the C client uses for set-watches.
    pub const SET_WATCHES_XID: i32 = -8;

    /// A header for `op`.
    pub fn new(xid: i32, op: OpCode) -> RequestHeader {
        RequestHeader {
            xid,
            op_type: op.as_i32(),
        }
    }

    /// The opcode, or the unknown number.
    pub fn op_code(&self) -> Result<OpCode, i32> {
        OpCode::try_from(self.op_type)
    }
}

record! {
    /// Precedes every server reply after the handshake.
    pub struct ReplyHeader {
        /// The request's xid (or -1 notification, -2 ping, -4 auth).
        pub xid: i32,
        /// The server's last processed zxid (the txn's zxid for a write's reply).
        pub zxid: i64,
        /// Result code; 0 on success. When non-zero the body is normally absent, and any bytes
        /// that do follow are to be ignored.
        pub err: i32,
    }
}

impl ReplyHeader {
    /// The result code, or the unknown number.
    pub fn error_code(&self) -> Result<ErrorCode, i32> {
        ErrorCode::try_from(self.err)
    }
}

record! {
    /// A bare result code: the addWatch reply body and the body of an error result in a multi.
    pub struct ErrorResponse {
        /// The result code.
        pub err: i32,
    }
}
