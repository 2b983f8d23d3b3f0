//! An embeddable ZooKeeper-compatible server.
//!
//! Real ZooKeeper clients (the Java client and zkCli, kazoo, the C client) and `zk-client` talk
//! to it as to Apache ZooKeeper 3.8. It is durable: every write is in the fsynced txn log before
//! it is acknowledged, with snapshots and crash recovery.
//!
//! * [`TestingServer`] — an in-process server on a random loopback port with a temporary data
//!   directory, for tests in any crate.
//! * [`TestingCluster`] — an in-process ensemble (ZAB replication over loopback) with
//!   `kill`, `restart`, `partition` and `heal`, for failover tests.
//! * [`FaultProxy`] — a TCP proxy between a client and a server that cuts, blackholes or delays
//!   connections, or drops replies, for fault tests.
//! * [`Server`] — the server with a [`ServerConfig`] (also read from `zoo.cfg` by the
//!   `zk-server` binary).
//!
//! The request path: a connection task decodes frames; the [`core::ServerCore`] (a
//! deterministic state machine without I/O) prepares each write into a txn; the storage thread
//! appends and fsyncs txns in batches; the core applies durable txns to the tree, fires watches
//! and replies in each connection's request order. In an ensemble ([`ServerConfig::quorum`]),
//! the same core runs on its replica ([`zab`], [`quorum`]): the leader prepares every write and
//! proposes it, learners forward theirs, and each member applies the committed txns.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let server = zk_server::TestingServer::start().await?;
//! println!("connect clients to {}", server.connect_string());
//! # Ok(()) }
//! ```

pub mod acl;
pub mod admin;
pub mod config;
pub mod core;
mod net;
pub mod prep;
pub mod quorum;
pub mod session;
pub mod storage;
mod testing;
pub mod tree;
pub mod watch;
pub mod zab;

pub use config::{FourLetterWhitelist, ServerConfig};
pub use net::{Server, ServerError};
pub use testing::{
    reserve_port, FaultMode, FaultProxy, TestingCluster, TestingClusterBuilder, TestingServer,
    TestingServerBuilder,
};

/// Identifies one client connection within a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// A map keyed by identifiers the server assigns (connection and session ids), looked up
/// for every request. Hashed with foldhash rather than std's SipHash: SipHash guards against
/// keys chosen to collide, and clients choose none of these.
pub(crate) type IdMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
