//! A compare-and-set write sent once: never re-sent by the client's retry policy, its lost
//! reply settled by reading the node back.
//!
//! A versioned write whose reply is lost, when re-sent, meets BADVERSION if the first send
//! applied: a conflict with itself. Worse, a write made `idempotent` (the node holds our bytes
//! at the next version) cannot tell its own write from another writer's identical one — two
//! increments from the same value write the same bytes — so one increment would be lost.

use std::time::Duration;

use zk_client::{Client, Error as ZkError, RetryNTimes, Stat};

use crate::Result;

/// What became of a [`write_once`].
#[derive(Debug)]
pub(crate) enum Written {
    /// It applied (the node's stat when the server returned one).
    Applied(Option<Stat>),
    /// It did not apply: another writer changed the node first (or the write never reached
    /// the server).
    NotApplied,
}

/// Writes `data` to `path` at `version`, or creates the node (with container parents) when
/// `version` is `None`, sent once.
///
/// When the connection (or the session) is lost with the write in flight, the node is read
/// back after a `sync`: unchanged, or another writer's data at the next version, means the
/// write did not apply; otherwise it may have, and the error stands. (The node's version is
/// what tells: a node deleted and re-created back to the same version meanwhile would fool
/// it.)
///
/// # Errors
/// [`ZkError::NoNode`] when a versioned write finds no node; a failed call; the write's own
/// error when its outcome is unknown ([`ZkError::ConnectionLoss`],
/// [`ZkError::OperationTimeout`], [`ZkError::SessionMoved`], [`ZkError::SessionExpired`]).
pub(crate) async fn write_once(
    client: &Client,
    path: &str,
    version: Option<i32>,
    data: &[u8],
) -> Result<Written> {
    let once = client.with_retry_policy(RetryNTimes::new(0, Duration::ZERO));
    let written = match version {
        Some(v) => once
            .set_data(path, data.to_vec())
            .version(v)
            .await
            .map(Some),
        None => once
            .create(path)
            .creating_parent_containers_if_needed()
            .data(data.to_vec())
            .await
            .map(|created| created.stat),
    };
    let lost = match written {
        Ok(stat) => return Ok(Written::Applied(stat)),
        Err(ZkError::BadVersion | ZkError::NodeExists) => return Ok(Written::NotApplied),
        // A parent deleted between creating it and the node.
        Err(ZkError::NoNode) if version.is_none() => return Ok(Written::NotApplied),
        Err(e) if e.is_retryable() => e,
        Err(e) => return Err(e.into()),
    };
    // The sync orders the read after anything the old connection got to the leader.
    client.sync(path).await?;
    let (found, found_version) = match client.get_data(path).await {
        Ok((found, stat)) => (found, Some(stat.version)),
        Err(ZkError::NoNode) => (Vec::new(), None),
        Err(e) => return Err(e.into()),
    };
    let next = version.map_or(0, |v| v.wrapping_add(1));
    let untouched = found_version == version;
    let overtaken = found_version == Some(next) && found != data;
    if untouched || overtaken {
        Ok(Written::NotApplied)
    } else {
        Err(lost.into())
    }
}
