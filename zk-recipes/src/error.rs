//! The recipes' error type.

use thiserror::Error as ThisError;

/// A `Result` whose error is the recipes' [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in a recipe.
#[derive(Debug, Clone, PartialEq, Eq, ThisError)]
#[non_exhaustive]
pub enum Error {
    /// A ZooKeeper call failed (after the client's retry policy gave up).
    #[error(transparent)]
    Zk(#[from] zk_client::Error),
    /// The recipe was closed and cannot serve this call.
    #[error("the recipe is closed")]
    Closed,
    /// The recipe was not started (or its start failed or was cancelled): call its `start()`
    /// first.
    #[error("the recipe is not started; call start() first")]
    NotStarted,
    /// The recipe was started twice.
    #[error("the recipe is already started")]
    AlreadyStarted,
    /// An argument was rejected before anything was sent (e.g. an invalid path).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The call would wait forever, so it was refused: e.g. a write lock requested through a
    /// [`ReadWriteLock`](crate::ReadWriteLock) handle that holds the read lock (upgrading is
    /// impossible: the write lock waits for every read lock, this one included).
    #[error("refused, the call would deadlock: {0}")]
    WouldDeadlock(String),
    /// A recipe's node holds data the recipe cannot decode (e.g. a counter node whose data is
    /// not 8 bytes long). Nothing was written.
    #[error("node {path} holds {len} bytes, not a value of this recipe")]
    CorruptValue {
        /// The node (client-relative).
        path: String,
        /// The length of its data.
        len: usize,
    },
    /// A queue item could not be serialized by the queue's serializer. Nothing was written.
    #[error("a queue item could not be serialized: {0}")]
    Serialization(String),
    /// The queue is empty (e.g. [`SimpleDistributedQueue::element`]).
    ///
    /// [`SimpleDistributedQueue::element`]: crate::SimpleDistributedQueue::element
    #[error("the queue is empty")]
    QueueEmpty,
}
