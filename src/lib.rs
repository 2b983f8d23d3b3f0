//! `zk`: an async ZooKeeper SDK for Rust.
//!
//! This facade re-exports the workspace's crates under one name:
//!
//! * [`proto`] — the ZooKeeper wire protocol (records, opcodes, error codes, paths, framing);
//! * [`client`] — the async client with Curator's semantics (connection states, retries,
//!   protected creates, watches as futures and streams);
//! * [`recipes`] — Curator's coordination recipes (locks with fencing tokens, leader election,
//!   barriers, counters, caches, persistent nodes);
//! * [`discovery`] — service discovery whose znodes and JSON Java Curator services share
//!   (registration, caches, providers with strategies);
//! * `server` — an embeddable ZooKeeper-compatible server (standalone or an ensemble;
//!   `TestingServer`, `TestingCluster`); feature `server`, on by default.

pub use zk_client as client;
pub use zk_discovery as discovery;
pub use zk_proto as proto;
pub use zk_recipes as recipes;
#[cfg(feature = "server")]
pub use zk_server as server;

/// The README's code blocks, compiled as doc tests so its snippets stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
