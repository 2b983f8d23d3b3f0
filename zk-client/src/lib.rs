//! An async ZooKeeper client with Curator's semantics.
//!
//! Not implemented yet: this crate is a placeholder in the workspace layout until the zk-client
//! issue lands. It exposes no API.
