//! The Apache ZooKeeper wire protocol, without I/O.
//!
//! `zk-proto` encodes and decodes, byte for byte as Apache ZooKeeper 3.5–3.9 does:
//!
//! * the client protocol: the session handshake, request and reply headers, every operation's
//!   request and response record, multi and multiRead, watch notifications ([`records`]);
//! * the records the server logs (`TxnHeader`, the txn bodies, `MultiTxn`) and the quorum packet;
//! * the leader-election messages: FastLeaderElection's [`Notification`] (with the legacy 28- and
//!   40-byte forms) and the election connection's [`InitialMessage`];
//! * the enumerations with their wire numbers ([`OpCode`], [`ErrorCode`], [`EventType`],
//!   [`KeeperState`], [`CreateMode`], …), [`Stat`], ACLs and digest ids ([`types`]);
//! * path validation and chroot handling ([`path`]) and length-prefixed framing ([`frame`]).
//!
//! Decoding never panics, and what it allocates stays within a small multiple of the input
//! (every count is checked against the bytes present first); a frame whose length prefix is
//! negative or above `jute.maxbuffer` is rejected before its body is read.
//!
//! ```
//! use bytes::BytesMut;
//! use zk_proto::{frame, Decode, Encode, GetDataRequest, OpCode, Reader, RequestHeader};
//!
//! // A client writes a getData request as one frame…
//! let mut out = BytesMut::new();
//! frame::write_frame(&mut out, |buf| {
//!     RequestHeader::new(1, OpCode::GetData).encode(buf);
//!     GetDataRequest { path: "/app/config".into(), watch: true }.encode(buf);
//! });
//!
//! // …and a server splits it off its input buffer and decodes it.
//! let body = frame::split_frame(&mut out, frame::DEFAULT_MAX_FRAME_LEN)?.expect("complete frame");
//! let mut reader = Reader::new(&body);
//! let header = RequestHeader::decode(&mut reader)?;
//! assert_eq!(header.op_code(), Ok(OpCode::GetData));
//! let request = GetDataRequest::decode(&mut reader)?;
//! assert_eq!(request.path, "/app/config");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod error;
pub mod frame;
pub mod jute;
pub mod path;
pub mod records;
pub mod types;

pub use error::{DecodeError, FrameError};
pub use jute::{Decode, Encode, Reader};
pub use path::PathError;
pub use records::*;
pub use types::*;

#[cfg(test)]
mod roundtrip_tests;
