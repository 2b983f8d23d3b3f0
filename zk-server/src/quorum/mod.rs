//! The replica's network side: the wire form of [`zab::Message`](crate::zab::Message)s
//! ([`wire`]) and the authenticated connections between ensemble members ([`handshake`],
//! [`transport`]).

pub mod handshake;
pub mod transport;
pub mod wire;

pub use handshake::HandshakeError;
pub use transport::{QuorumTransport, TransportConfig};
pub use wire::{FrameLimits, WireError};
