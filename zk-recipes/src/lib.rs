//! Curator's coordination recipes (locks, leader election, queues, barriers, counters, caches)
//! built on `zk-client`.
//!
//! Not implemented yet: this crate is a placeholder in the workspace layout until the
//! zk-recipes issue lands. It exposes no API.
