//! [`PersistentTtlNode`]: a node that lives while its owner process lives, by way of a TTL
//! node and a TTL child touched periodically.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use zk_client::{Client, CreateMode, Error as ZkError};

use crate::nodes::join;
use crate::util::Background;
use crate::{Error, PersistentNode, Result};

/// The name of the TTL child (as Curator's `PersistentTtlNode.DEFAULT_CHILD_NODE_NAME`).
pub const DEFAULT_CHILD_NAME: &str = "touch";

/// How often the child is touched, as a divisor of the TTL (Curator's
/// `DEFAULT_TOUCH_SCHEDULE_FACTOR`): every `ttl / 2`.
pub const DEFAULT_TOUCH_FACTOR: u32 = 2;

/// The largest TTL ZooKeeper accepts: 2^40 − 1 ms.
const MAX_TTL_MS: u128 = (1 << 40) - 1;

/// Curator's `PersistentTtlNode`: a node at a path, holding data, that exists while the
/// process keeping it runs and disappears on its own some time after it stops (crash,
/// partition, [`close`](PersistentTtlNode::close)) — without generating watch events on the
/// node while it lives.
///
/// The node is a `PERSISTENT_WITH_TTL` node with the same TTL, kept by a [`PersistentNode`]
/// (re-created if deleted while running). Below it, the child `<path>/touch` is a
/// `PERSISTENT_WITH_TTL` node that a background task touches (writes, or re-creates) every
/// `ttl / 2`. Once nobody touches the child for the TTL, the server deletes it, and then the
/// node, which has no child and no change for the TTL either. (Curator before 5.9.0 made the
/// node a container, which the server never deletes if it never had a child.)
///
/// Needs TTL nodes on the server (ZooKeeper 3.5.3+ with `zookeeper.extendedTypesEnabled=true`);
/// without them the node cannot be created (the failure is reported by
/// [`wait_for_initial_create`](PersistentTtlNode::wait_for_initial_create)). The server removes
/// expired TTL nodes on its own schedule (`znode.container.checkIntervalMs`, 60 s by default),
/// so the node disappears between `ttl` and `ttl` plus two check intervals after the last
/// touch.
///
/// ```no_run
/// # async fn example(client: zk_client::Client) -> zk_recipes::Result<()> {
/// use std::time::Duration;
/// use zk_recipes::PersistentTtlNode;
///
/// let node = PersistentTtlNode::new(client, "/app/alive/host-1", Duration::from_secs(30), b"up".to_vec())?;
/// node.start()?;
/// node.wait_for_initial_create(Duration::from_secs(10)).await?;
/// // ... the node lives while this process keeps it; stopping leaves it to its TTL:
/// node.close().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct PersistentTtlNode {
    node: PersistentNode,
    client: Client,
    child_path: String,
    ttl_ms: i64,
    touch_every: Duration,
    task: Background,
}

/// Options of a [`PersistentTtlNode`]. See [`PersistentTtlNode::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until built"]
pub struct PersistentTtlNodeBuilder {
    client: Client,
    path: String,
    ttl: Duration,
    data: Vec<u8>,
    child_name: String,
    touch_factor: u32,
}

impl PersistentTtlNodeBuilder {
    /// The name of the TTL child (default [`DEFAULT_CHILD_NAME`], `touch`).
    pub fn child_name(mut self, name: impl Into<String>) -> Self {
        self.child_name = name.into();
        self
    }

    /// Touch the child every `ttl / factor` (default [`DEFAULT_TOUCH_FACTOR`], 2).
    pub fn touch_factor(mut self, factor: u32) -> Self {
        self.touch_factor = factor;
        self
    }

    /// Builds the (not yet started) node keeper.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an invalid path or child name, a TTL outside
    /// 1 ms ..= 2^40 − 1 ms, or a touch factor of 0.
    pub fn build(self) -> Result<PersistentTtlNode> {
        let ttl_ms = self.ttl.as_millis();
        if !(1..=MAX_TTL_MS).contains(&ttl_ms) {
            return Err(Error::InvalidArgument(format!(
                "a TTL must be 1 ms ..= 2^40 - 1 ms, not {:?}",
                self.ttl
            )));
        }
        let ttl_ms = i64::try_from(ttl_ms)
            .map_err(|_| Error::InvalidArgument(format!("TTL {:?} too large", self.ttl)))?;
        if self.touch_factor == 0 {
            return Err(Error::InvalidArgument(
                "the touch factor must be > 0".into(),
            ));
        }
        if self.child_name.is_empty() || self.child_name.contains('/') {
            return Err(Error::InvalidArgument(format!(
                "{:?} is not a valid child name",
                self.child_name
            )));
        }
        // A TTL node, not a container (as Curator since 5.9.0, CURATOR-1258): a container is
        // deleted only once it had a child, so one re-created just before its keeper stopped
        // (or whose child could never be created) would stay forever.
        let node = PersistentNode::builder(self.client.clone(), &self.path, self.data)
            .mode(CreateMode::PersistentWithTtl)
            .ttl(self.ttl)
            .build()?;
        let child_path = join(&self.path, &self.child_name);
        zk_proto::path::validate_path(&child_path)
            .map_err(|e| Error::InvalidArgument(format!("{child_path}: {e}")))?;
        Ok(PersistentTtlNode {
            node,
            client: self.client,
            child_path,
            ttl_ms,
            touch_every: (self.ttl / self.touch_factor).max(Duration::from_millis(1)),
            task: Background::new(),
        })
    }
}

impl PersistentTtlNode {
    /// A node at `path` (client-relative; parents are created as containers) holding `data`,
    /// gone about `ttl` after nobody keeps it any more. Not started yet.
    ///
    /// # Errors
    /// As [`PersistentTtlNodeBuilder::build`].
    pub fn new(client: Client, path: &str, ttl: Duration, data: Vec<u8>) -> Result<Self> {
        PersistentTtlNode::builder(client, path, ttl, data).build()
    }

    /// Options for a node at `path` with a TTL and data.
    pub fn builder(
        client: Client,
        path: &str,
        ttl: Duration,
        data: Vec<u8>,
    ) -> PersistentTtlNodeBuilder {
        PersistentTtlNodeBuilder {
            client,
            path: path.to_owned(),
            ttl,
            data,
            child_name: DEFAULT_CHILD_NAME.to_owned(),
            touch_factor: DEFAULT_TOUCH_FACTOR,
        }
    }

    /// Starts keeping the node and touching its child, in background tasks (needs a tokio
    /// runtime). The first touch follows the node's creation at once (Curator waits
    /// `ttl / 2`), so the node has its child from the start.
    ///
    /// # Errors
    /// [`Error::AlreadyStarted`] on a second call, [`Error::Closed`] after
    /// [`close`](PersistentTtlNode::close).
    pub fn start(&self) -> Result<()> {
        self.node.start()?;
        let (client, child) = (self.client.clone(), self.child_path.clone());
        let (ttl_ms, every, created) = (self.ttl_ms, self.touch_every, self.node.created());
        self.task
            .start(|stop| touch(client, child, ttl_ms, every, created, stop))
    }

    /// The node's path, once created (None before, and after close).
    pub fn actual_path(&self) -> Option<String> {
        self.node.actual_path()
    }

    /// The TTL child's path.
    pub fn child_path(&self) -> &str {
        &self.child_path
    }

    /// Waits until the node was created once; false if `timeout` passed first.
    ///
    /// # Errors
    /// As [`PersistentNode::wait_for_initial_create`].
    pub async fn wait_for_initial_create(&self, timeout: Duration) -> Result<bool> {
        self.node.wait_for_initial_create(timeout).await
    }

    /// The data the node is kept with.
    pub fn data(&self) -> Vec<u8> {
        self.node.data()
    }

    /// Changes the node's data and waits until the node holds it (see
    /// [`PersistentNode::set_data`]; the TTL child is not involved, so watchers of the node
    /// see only real data changes).
    ///
    /// # Errors
    /// [`Error::Closed`] if the node is closed (or not started) before the data is written.
    ///
    /// # Cancellation safety
    /// Dropping the future does not cancel the change.
    pub async fn set_data(&self, data: Vec<u8>) -> Result<()> {
        self.node.set_data(data).await
    }

    /// Stops touching the child and keeping the node, *without* deleting it (as Curator): the
    /// node disappears once the TTL passed, unless another process keeps the same path.
    /// Closing twice is harmless.
    pub async fn close(&self) {
        self.task.stop().await;
        let _ = self.node.stop_keeping().await;
    }
}

impl Drop for PersistentTtlNode {
    /// Stops the background tasks (the node is left to its TTL, as by
    /// [`close`](PersistentTtlNode::close)).
    fn drop(&mut self) {
        self.task.signal_stop();
    }
}

/// The touch task: once the node exists, writes the child (or creates it with the TTL) every
/// `every`, until stopped.
async fn touch(
    client: Client,
    child: String,
    ttl_ms: i64,
    every: Duration,
    mut created: watch::Receiver<Option<String>>,
    mut stop: watch::Receiver<bool>,
) {
    tokio::select! {
        _ = stop.wait_for(|s| *s) => return,
        r = created.wait_for(Option::is_some) => if r.is_err() { return },
    }
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = ticks.tick() => {}
        }
        // Runs beside `stop`: a close does not wait for a touch stuck on a dead connection.
        let once = touch_once(&client, &child, ttl_ms);
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            r = once => match r {
                Ok(()) | Err(ZkError::NoNode) => {}
                Err(ZkError::Closed) => return,
                Err(e) => tracing::debug!(path = %child, %e, "touching the TTL child failed"),
            },
        }
    }
}

/// One touch: write the child (renewing its mtime), or create it if missing. NoNode from the
/// create means the node is gone; the node keeper re-creates it.
async fn touch_once(client: &Client, child: &str, ttl_ms: i64) -> std::result::Result<(), ZkError> {
    match client.set_data(child, Vec::new()).await {
        Ok(_) => Ok(()),
        Err(ZkError::NoNode) => client
            .create(child)
            .mode(CreateMode::PersistentWithTtl)
            .ttl(ttl_ms)
            .or_set_data()
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    }
}
