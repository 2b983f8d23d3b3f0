//! An embeddable ZooKeeper-compatible server.
//!
//! Not implemented yet: this crate is a placeholder in the workspace layout until the zk-server
//! issue lands. It exposes no API.
