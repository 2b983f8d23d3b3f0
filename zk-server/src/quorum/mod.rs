//! The replica's network side: the wire form of [`zab::Message`](crate::zab::Message)s.

pub mod wire;
