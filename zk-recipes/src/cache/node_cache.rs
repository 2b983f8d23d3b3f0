//! [`NodeCache`]: one node kept current.

use std::sync::Arc;

use zk_client::Client;

use super::{CacheEvents, ChildData, TreeCache};
use crate::Result;

/// Curator's `NodeCache`: the data and stat of one node (or its absence), kept current and
/// re-read after every reconnect or new session. A [`TreeCache`] limited to depth 0.
#[derive(Debug)]
pub struct NodeCache {
    tree: TreeCache,
}

impl NodeCache {
    /// A cache of the node at `path` (which need not exist). Not started yet.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for an invalid path.
    pub fn new(client: Client, path: &str) -> Result<NodeCache> {
        Ok(NodeCache {
            tree: TreeCache::builder(client, path).max_depth(0).build()?,
        })
    }

    /// Starts the cache (see [`TreeCache::start`]).
    ///
    /// # Errors
    /// As [`TreeCache::start`].
    pub fn start(&self) -> Result<()> {
        self.tree.start()
    }

    /// The node as last read; None while it does not exist (or before the first read).
    pub fn current(&self) -> Option<Arc<ChildData>> {
        self.tree.get(self.tree.path())
    }

    /// A stream of the node's changes from now on.
    pub fn events(&self) -> CacheEvents {
        self.tree.events()
    }

    /// Waits until the first read is complete; false if the cache was closed first.
    pub async fn wait_initialized(&self) -> bool {
        self.tree.wait_initialized().await
    }

    /// Whether the cache runs on one-shot watches (see
    /// [`TreeCache::uses_one_shot_watches`]).
    pub fn uses_one_shot_watches(&self) -> bool {
        self.tree.uses_one_shot_watches()
    }

    /// Stops the cache (see [`TreeCache::close`]).
    pub async fn close(&self) {
        self.tree.close().await
    }
}
