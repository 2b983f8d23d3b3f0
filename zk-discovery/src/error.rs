//! The discovery crate's error type.

use thiserror::Error as ThisError;

/// A `Result` whose error is the discovery crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in service discovery.
#[derive(Debug, Clone, PartialEq, Eq, ThisError)]
#[non_exhaustive]
pub enum Error {
    /// A service instance field was rejected before anything was written (e.g. a name that is
    /// not a single ZooKeeper path segment).
    #[error("invalid service instance {field} {value:?}: {reason}")]
    InvalidInstance {
        /// The field: `name`, `id`, or (for an update) `serviceType`.
        field: &'static str,
        /// The rejected value.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A URI template could not be parsed (see [`UriSpec::parse`](crate::UriSpec::parse)).
    #[error("invalid URI spec {spec:?}: {reason}")]
    InvalidUriSpec {
        /// The template.
        spec: String,
        /// Why it was rejected (Curator's message).
        reason: &'static str,
    },
    /// A service instance could not be written as JSON (the payload's `Serialize` failed).
    #[error("cannot serialize service instance: {0}")]
    Serialize(String),
    /// Bytes read from a znode are not a service instance: not JSON, a field of the wrong
    /// type, or a payload that does not match the payload type.
    #[error("cannot deserialize service instance: {0}")]
    Deserialize(String),
    /// A ZooKeeper call failed (after the client's retry policy gave up).
    #[error(transparent)]
    Zk(#[from] zk_client::Error),
    /// A recipe underneath (a cache or a kept node) failed or was closed. (A ZooKeeper error
    /// it met is [`Error::Zk`].)
    #[error(transparent)]
    Recipe(zk_recipes::Error),
    /// No instance with this id is registered by this discovery (update, unregister).
    #[error("no registered instance with id {0:?}")]
    NotRegistered(String),
    /// An instance with this id is already registered by this discovery, under another name
    /// or service type.
    #[error("an instance with id {0:?} is already registered")]
    AlreadyRegistered(String),
    /// The discovery (or cache, or provider) is closed.
    #[error("service discovery is closed")]
    Closed,
}

impl From<zk_recipes::Error> for Error {
    fn from(e: zk_recipes::Error) -> Error {
        match e {
            zk_recipes::Error::Zk(e) => Error::Zk(e),
            other => Error::Recipe(other),
        }
    }
}
