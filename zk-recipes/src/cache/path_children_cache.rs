//! [`PathChildrenCache`]: the children of one node kept current.

use std::sync::Arc;

use zk_client::Client;

use super::{CacheEvents, ChildData, TreeCache};
use crate::Result;

/// Curator's `PathChildrenCache`: the data and stat of every child of a node, kept current
/// and re-read after every reconnect or new session. A [`TreeCache`] limited to depth 1 whose
/// events and contents leave out the parent itself.
#[derive(Debug)]
pub struct PathChildrenCache {
    tree: TreeCache,
}

impl PathChildrenCache {
    /// A cache of the children of `path` (which need not exist). Not started yet.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for an invalid path.
    pub fn new(client: Client, path: &str) -> Result<PathChildrenCache> {
        Ok(PathChildrenCache {
            tree: TreeCache::builder(client, path).max_depth(1).build()?,
        })
    }

    /// Starts the cache (see [`TreeCache::start`]).
    ///
    /// # Errors
    /// As [`TreeCache::start`].
    pub fn start(&self) -> Result<()> {
        self.tree.start()
    }

    /// The parent's path.
    pub fn path(&self) -> &str {
        self.tree.path()
    }

    /// Every cached child, in name order.
    pub fn current(&self) -> Vec<Arc<ChildData>> {
        self.tree.children(self.tree.path())
    }

    /// The cached child called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<ChildData>> {
        self.tree.get(&crate::nodes::join(self.tree.path(), name))
    }

    /// A stream of the children's changes from now on (the parent's own changes are left
    /// out).
    pub fn events(&self) -> CacheEvents {
        self.tree.events_hiding(self.tree.path())
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
