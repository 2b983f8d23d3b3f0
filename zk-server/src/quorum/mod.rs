//! The replica's network side: the wire form of [`zab::Message`](crate::zab::Message)s
//! ([`wire`]), the authenticated connections between ensemble members ([`handshake`],
//! [`transport`]), and the driver that runs a [`zab::Peer`](crate::zab::Peer) over them with
//! pluggable storage and state machine ([`driver`], [`storage`], [`state_machine`]); the
//! storage on disk is [`disk_storage`].
//!
//! ```no_run
//! # use std::collections::BTreeMap;
//! # use zk_server::quorum::*;
//! # async fn demo(peer: zk_server::zab::PeerConfig, members: BTreeMap<u64, (String, u16)>,
//! #     sm: impl StateMachine) -> Result<(), Box<dyn std::error::Error>> {
//! let config = TransportConfig::new(peer.me, members, None);
//! let (transport, inputs) = QuorumTransport::bind(config, false).await?;
//! let replica = Replica::spawn(DriverConfig::new(peer), MemoryStorage::new(), sm, transport, inputs)?;
//! let handle = replica.handle();
//! let mut role = handle.watch_role();
//! role.wait_for(|r| matches!(r, zk_server::zab::Role::Leading { established: true, .. })).await?;
//! handle.propose(bytes::Bytes::from_static(b"txn")).await?;
//! # Ok(()) }
//! ```

pub mod disk_storage;
pub mod driver;
pub mod handshake;
pub mod state_machine;
pub mod storage;
pub mod transport;
pub mod wire;

pub use disk_storage::{DiskOptions, DiskStorage};
pub use driver::{peer_config, DriverConfig, DriverError, Replica, ReplicaHandle, SubmitError};
pub use handshake::HandshakeError;
pub use state_machine::{ReplicaContext, RestoreError, StateMachine};
pub use storage::{MemoryStorage, Recovered, ReplicaStorage, StorageError};
pub use transport::{QuorumTransport, TransportConfig};
pub use wire::{FrameLimits, WireError};
