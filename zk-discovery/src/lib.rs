//! Service registration and discovery compatible with Curator's curator-x-discovery.
//!
//! Not implemented yet: this crate is a placeholder in the workspace layout until the
//! zk-discovery issue lands. It exposes no API.
