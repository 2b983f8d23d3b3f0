//! Caches of ZooKeeper data kept current by watches: [`TreeCache`] (Curator's `CuratorCache`:
//! a subtree on one persistent recursive watch), [`PathChildrenCache`] (the children of one
//! node) and [`NodeCache`] (one node).
//!
//! Every cache reads the whole (depth-limited) tree when it starts and again whenever the
//! client connects again (a reconnect, a new session, a move from a read-only server to a
//! read-write one) — changes made while it was disconnected are never missed: a node
//! that vanished meanwhile gets a [`CacheEvent::Deleted`], a node deleted and re-created
//! meanwhile (another `czxid`) gets `Deleted` then `Created`, newer data (a higher `mzxid`)
//! gets `Changed`. In between, the persistent recursive watch's events are applied in the
//! order the server sent them. A change's event is queued in every event stream before the
//! change shows in the cache's contents: a reader that sees it there and then drains its
//! stream gets that event now, never later.
//!
//! On a server without persistent watches (ZooKeeper 3.5 answers addWatch UNIMPLEMENTED)
//! the caches fall back to Curator's `TreeCache` way: one-shot watches on every cached node,
//! re-armed each time they fire, with the same contents, events and re-reads (a warning is
//! logged; [`TreeCache::uses_one_shot_watches`] tells). This costs a watch or two per node
//! on the server instead of one for the whole tree.
//!
//! Caches are read-only views: they never create or delete nodes.

mod node_cache;
mod one_shot;
mod path_children_cache;
mod store;
mod task;
mod tree_cache;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;
use zk_proto::Stat;

pub use node_cache::NodeCache;
pub use path_children_cache::PathChildrenCache;
pub use tree_cache::{TreeCache, TreeCacheBuilder};

/// A cached node: its path (as the client sees it), data and stat as last read.
///
/// The stat is the one read with the data: it is current for data changes, while
/// child-related fields (`cversion`, `num_children`, `pzxid`) may lag behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildData {
    /// The node's path.
    pub path: String,
    /// The node's data.
    pub data: Vec<u8>,
    /// The node's stat.
    pub stat: Stat,
}

impl ChildData {
    /// The last segment of the path.
    pub fn name(&self) -> &str {
        crate::nodes::node_name(&self.path)
    }
}

/// A change of a cache's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheEvent {
    /// A node appeared (also for every node found by the initial read).
    Created(Arc<ChildData>),
    /// A node's data changed.
    Changed {
        /// What the cache held before.
        old: Arc<ChildData>,
        /// What it holds now.
        new: Arc<ChildData>,
    },
    /// A node disappeared.
    Deleted(Arc<ChildData>),
    /// The initial read is complete (sent once per cache).
    Initialized,
}

impl CacheEvent {
    /// The node the event is about (None for [`CacheEvent::Initialized`]).
    pub fn node(&self) -> Option<&Arc<ChildData>> {
        match self {
            CacheEvent::Created(d) | CacheEvent::Deleted(d) => Some(d),
            CacheEvent::Changed { new, .. } => Some(new),
            CacheEvent::Initialized => None,
        }
    }
}

/// Logs a failed read of the cached tree (it is retried): a connection problem at debug
/// level, anything else (no permission, data that does not decompress) as a warning, since
/// retrying will not fix it.
fn log_read_failure(root: &str, e: &zk_client::Error) {
    if e.is_retryable() {
        tracing::debug!(path = %root, %e, "reading the tree failed; retrying");
    } else {
        tracing::warn!(path = %root, %e, "reading the tree failed; retrying");
    }
}

/// Whether a failed read of one node fails the whole read of the tree: a connection problem
/// or a busy server (THROTTLEDOP: read everything again a little later) does; an error about
/// that node alone (no READ permission on it, data that does not decompress) does not: the
/// node is left out of the cache, with a warning, and the rest of the tree is read (as
/// Curator's caches go on past such a node). Left out, it can never hold the rest of the
/// cache back.
fn fails_the_read(path: &str, e: &zk_client::Error) -> bool {
    if e.is_retryable()
        || matches!(
            e,
            zk_client::Error::Closed | zk_client::Error::Connect(_) | zk_client::Error::ThrottledOp
        )
    {
        return true;
    }
    tracing::warn!(%path, %e, "cannot read a node of the cache; leaving it out");
    false
}

/// A stream of a cache's [`CacheEvent`]s from the moment it was subscribed. It ends when the
/// cache is closed or dropped, or its client is closed (or fails authentication). Never
/// blocks the cache: events queue up until polled.
#[must_use = "a stream does nothing unless polled"]
#[derive(Debug)]
pub struct CacheEvents {
    rx: mpsc::UnboundedReceiver<CacheEvent>,
    /// Events about this path are skipped (a children cache hides its parent).
    hidden: Option<String>,
}

impl Stream for CacheEvents {
    type Item = CacheEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<CacheEvent>> {
        loop {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(event)) => {
                    let hidden = match (&self.hidden, event.node()) {
                        (Some(h), Some(node)) => node.path == *h,
                        _ => false,
                    };
                    if !hidden {
                        return Poll::Ready(Some(event));
                    }
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use zk_client::Error;

    #[test]
    fn a_busy_server_or_a_lost_connection_fails_the_read_a_node_of_its_own_does_not() {
        for e in [
            Error::ConnectionLoss,
            Error::SessionExpired,
            Error::ThrottledOp,
            Error::Closed,
        ] {
            assert!(super::fails_the_read("/n", &e), "{e:?}");
        }
        for e in [Error::NoAuth, Error::NoNode] {
            assert!(!super::fails_the_read("/n", &e), "{e:?}");
        }
    }
}
