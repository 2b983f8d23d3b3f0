//! `zk`: an async ZooKeeper SDK for Rust.
//!
//! This facade re-exports the workspace's crates under one name:
//!
//! * [`proto`] — the ZooKeeper wire protocol (records, opcodes, error codes, paths, framing);
//! * [`client`] — the async client (in progress);
//! * [`recipes`] — Curator's coordination recipes (in progress);
//! * [`discovery`] — Curator-compatible service discovery (in progress);
//! * [`server`] — an embeddable ZooKeeper-compatible server (in progress).

pub use zk_client as client;
pub use zk_discovery as discovery;
pub use zk_proto as proto;
pub use zk_recipes as recipes;
pub use zk_server as server;
