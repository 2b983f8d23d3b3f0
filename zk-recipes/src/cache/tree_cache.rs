//! [`TreeCache`]: a subtree kept current by one persistent recursive watch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::watch;
use zk_client::Client;

use super::store::Store;
use super::task::{self, Shared};
use super::{CacheEvents, ChildData};
use crate::util::Background;
use crate::{Error, Result};

/// Curator's `CuratorCache`: a local copy of the subtree at a path (the node itself and its
/// descendants, optionally limited in depth), kept current by one persistent recursive watch
/// and re-read after every reconnect or new session (see the [module docs](super)).
///
/// Subscribe with [`events`](TreeCache::events) before [`start`](TreeCache::start) to see a
/// [`Created`](super::CacheEvent::Created) event for every node found by the initial read,
/// then [`Initialized`](super::CacheEvent::Initialized).
///
/// ```no_run
/// # async fn example(client: zk_client::Client) -> zk_recipes::Result<()> {
/// use futures::StreamExt;
/// use zk_recipes::cache::{CacheEvent, TreeCache};
///
/// let cache = TreeCache::new(client, "/app/config")?;
/// let mut events = cache.events();
/// cache.start()?;
/// while let Some(event) = events.next().await {
///     match event {
///         CacheEvent::Created(node) => println!("+ {}", node.path),
///         CacheEvent::Changed { new, .. } => println!("~ {}", new.path),
///         CacheEvent::Deleted(node) => println!("- {}", node.path),
///         CacheEvent::Initialized => println!("{} nodes cached", cache.size()),
///         _ => {}
///     }
/// }
/// # Ok(())
/// # }
/// ```
///
/// On servers without persistent recursive watches (before ZooKeeper 3.6) the cache falls
/// back to one-shot watches per node (see the [module docs](super) and
/// [`uses_one_shot_watches`](TreeCache::uses_one_shot_watches)).
#[derive(Debug)]
pub struct TreeCache {
    shared: Arc<Shared>,
    task: Background,
}

/// Options of a [`TreeCache`]. See [`TreeCache::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until built"]
pub struct TreeCacheBuilder {
    client: Client,
    path: String,
    max_depth: usize,
}

impl TreeCacheBuilder {
    /// Caches only nodes at most `depth` levels below the path (0: the node itself; 1: it and
    /// its children). Unlimited by default.
    pub fn max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth;
        self
    }

    /// Builds the (not yet started) cache.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an invalid path.
    pub fn build(self) -> Result<TreeCache> {
        zk_proto::path::validate_path(&self.path)
            .map_err(|e| Error::InvalidArgument(format!("{}: {e}", self.path)))?;
        Ok(TreeCache {
            shared: Arc::new(Shared {
                client: self.client,
                root: self.path,
                max_depth: self.max_depth,
                store: Store::default(),
                initialized: watch::channel(false).0,
                one_shot: AtomicBool::new(false),
            }),
            task: Background::new(),
        })
    }
}

impl TreeCache {
    /// A cache of the whole subtree at `path` (client-relative). Not started yet.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an invalid path.
    pub fn new(client: Client, path: &str) -> Result<TreeCache> {
        TreeCache::builder(client, path).build()
    }

    /// A cache with options (e.g. [`max_depth`](TreeCacheBuilder::max_depth)).
    pub fn builder(client: Client, path: &str) -> TreeCacheBuilder {
        TreeCacheBuilder {
            client,
            path: path.to_owned(),
            max_depth: usize::MAX,
        }
    }

    /// Starts watching and reading in a background task (needs a tokio runtime).
    ///
    /// # Errors
    /// [`Error::AlreadyStarted`] on a second call, [`Error::Closed`] after
    /// [`close`](TreeCache::close).
    pub fn start(&self) -> Result<()> {
        let shared = self.shared.clone();
        self.task.start(|stop| task::run(shared, stop))
    }

    /// The path this cache mirrors.
    pub fn path(&self) -> &str {
        &self.shared.root
    }

    /// A stream of changes from now on.
    pub fn events(&self) -> CacheEvents {
        CacheEvents {
            rx: self.shared.store.subscribe(),
            hidden: None,
        }
    }

    /// Waits until the initial read is complete; false if the cache is not started, or was
    /// closed (or its client was, or failed authentication) before it completed.
    pub async fn wait_initialized(&self) -> bool {
        if !self.task.is_running() {
            // Never started, or closed: nothing will initialize it.
            return self.is_initialized();
        }
        let mut rx = self.shared.initialized.subscribe();
        let mut stopped = self.task.stopped();
        tokio::select! {
            biased;
            r = rx.wait_for(|done| *done) => r.is_ok(),
            _ = stopped.wait_for(|s| *s) => false,
        }
    }

    /// Whether the initial read is complete.
    pub fn is_initialized(&self) -> bool {
        *self.shared.initialized.borrow()
    }

    /// The cached node at `path`.
    pub fn get(&self, path: &str) -> Option<Arc<ChildData>> {
        self.shared.store.get(path)
    }

    /// The cached direct children of `path`, in name order.
    pub fn children(&self, path: &str) -> Vec<Arc<ChildData>> {
        self.shared.store.children(path)
    }

    /// Every cached node, in path order.
    pub fn nodes(&self) -> Vec<Arc<ChildData>> {
        self.shared.store.all()
    }

    /// How many nodes are cached.
    pub fn size(&self) -> usize {
        self.shared.store.len()
    }

    /// Whether the server refused persistent watches (ZooKeeper before 3.6) and the cache runs
    /// on one-shot watches per node instead.
    pub fn uses_one_shot_watches(&self) -> bool {
        self.shared.one_shot.load(Ordering::SeqCst)
    }

    /// Stops the cache: the background task ends (its persistent watch is removed from the
    /// server) and every event stream ends. The cached data stays readable.
    pub async fn close(&self) {
        self.task.stop().await;
        self.shared.store.close_listeners();
    }

    pub(super) fn events_hiding(&self, path: &str) -> CacheEvents {
        CacheEvents {
            rx: self.shared.store.subscribe(),
            hidden: Some(path.to_owned()),
        }
    }
}

impl Drop for TreeCache {
    fn drop(&mut self) {
        self.task.signal_stop();
        self.shared.store.close_listeners();
    }
}
