//! [`DoubleBarrier`]: Curator's `DistributedDoubleBarrier`, with its spurious wake-up fixed.

use std::fmt;
use std::time::Duration;

use tokio::sync::{watch, Mutex as AsyncMutex};
use tokio::time::Instant;
use zk_client::{Client, CreateMode, Error as ZkError};

use crate::mutex::WaitStats;
use crate::nodes::{check_base_path, join, node_name};
use crate::util::OwnedNode;
use crate::{Error, Result};

/// The name of the node that marks a double barrier as entered (Curator's `READY_NODE`).
pub const READY_NODE: &str = "ready";

/// Whether a child of a double-barrier path is a member node: Curator names members with a
/// random UUID (`8-4-4-4-12` hex digits). Other children — `ready`, or anything an operator
/// put there — are not members and are never counted.
pub fn is_member_node(name: &str) -> bool {
    let groups: Vec<&str> = name.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The member nodes among `children`, sorted by name (as Curator sorts them).
fn sorted_members(children: Vec<String>) -> Vec<String> {
    let mut members: Vec<String> = children.into_iter().filter(|c| is_member_node(c)).collect();
    members.sort();
    members
}

/// A double barrier: Curator's `DistributedDoubleBarrier`, layout-compatible with it.
///
/// Members synchronise the beginning and the end of a computation: [`DoubleBarrier::enter`]
/// blocks until `member_qty` members have entered, [`DoubleBarrier::leave`] until every member
/// has left. `member_qty` is a threshold, not a limit: more members may enter.
///
/// Layout (Curator's): each member is an EPHEMERAL node `<path>/<uuid>` (parents are
/// containers); the member that sees `member_qty` members present creates the persistent node
/// `<path>/ready`, and a member that finds `ready` present has entered. Leaving follows
/// Curator's `internalLeave`: the lowest member (by name) keeps its node and watches the
/// highest; every other member deletes its node and watches the lowest; the lowest deletes
/// its node last; whoever has seen no member left deletes `ready`.
///
/// Differences from Curator, all on the safe side:
///
/// * Every wait re-checks its predicate after *every* wake-up (a node event that does not
///   change the outcome, or the end of a watch with its session), so a spurious wake-up never
///   lets a member through (apache/curator GH-1290).
/// * A waiting member also watches the children, so it does not depend on the member that
///   completed the count surviving long enough to create `ready`.
/// * Only UUID-named children count as members ([`is_member_node`]), so foreign children do
///   not fill the barrier.
/// * When an enter or leave times out or fails, this member's node is deleted, so it neither
///   fills the barrier for others nor blocks their leave (Curator leaves it: CURATOR-80,
///   CURATOR-318). One window remains: a member that counted this one just before the
///   delete may still create `ready` and enter while this one's `enter_timeout` returns
///   false (a last look at `ready` before the delete makes it narrow, not closed).
/// * If the member's node vanished with an expired session while entering, it is created
///   again with the new session; while leaving, a vanished node counts as left.
///
/// Each handle is one member (one node name, chosen at [`DoubleBarrier::new`]); enter and
/// leave calls on one handle are serialised. Dropping the handle deletes its node in the
/// background.
///
/// ```no_run
/// # async fn f(client: zk_client::Client) -> zk_recipes::Result<()> {
/// use zk_recipes::DoubleBarrier;
///
/// let barrier = DoubleBarrier::new(client, "/app/barriers/job-17", 5)?;
/// barrier.enter().await?; // all 5 workers are here
/// // ... compute ...
/// barrier.leave().await?; // all 5 workers are done
/// # Ok(()) }
/// ```
pub struct DoubleBarrier {
    client: Client,
    path: String,
    member_qty: usize,
    our_path: String,
    ready_path: String,
    /// Our node while it may exist; locking it serialises enter and leave.
    node: AsyncMutex<OwnedNode>,
    stats: watch::Sender<WaitStats>,
}

impl fmt::Debug for DoubleBarrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DoubleBarrier")
            .field("path", &self.path)
            .field("member_qty", &self.member_qty)
            .field("our_path", &self.our_path)
            .finish_non_exhaustive()
    }
}

/// How a member that has to wait learns that it may look again.
enum Wake {
    /// A watch was left: wait for it.
    Watch(zk_client::WatchFuture),
    /// Something changed while looking: look again at once.
    Again,
}

impl DoubleBarrier {
    /// One member of the double barrier at `path` for `member_qty` members. Nothing is sent
    /// until [`DoubleBarrier::enter`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an invalid path, the root, or a `member_qty` of 0.
    pub fn new(client: Client, path: &str, member_qty: usize) -> Result<DoubleBarrier> {
        check_base_path(path)?;
        if member_qty == 0 {
            return Err(Error::InvalidArgument(
                "a double barrier needs at least one member".to_owned(),
            ));
        }
        let our_path = join(path, &uuid::Uuid::new_v4().to_string());
        let node = AsyncMutex::new(OwnedNode::new(&client));
        Ok(DoubleBarrier {
            ready_path: join(path, READY_NODE),
            client,
            path: path.to_owned(),
            member_qty,
            our_path,
            node,
            stats: watch::channel(WaitStats::default()).0,
        })
    }

    /// The barrier path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// This member's node (client-relative): `<path>/<uuid>`.
    pub fn our_path(&self) -> &str {
        &self.our_path
    }

    /// The number of members the barrier waits for.
    pub fn member_qty(&self) -> usize {
        self.member_qty
    }

    /// Enters the barrier and waits, as long as it takes, until `member_qty` members have
    /// entered (or the `ready` node says they had).
    ///
    /// # Errors
    /// [`Error::Zk`] when a call fails after the client's retries; this member's node is then
    /// deleted.
    ///
    /// # Cancellation safety
    /// Dropping the future leaves this member's node in place (the member still counts); it
    /// is deleted by [`DoubleBarrier::leave`] or when the handle is dropped.
    pub async fn enter(&self) -> Result<()> {
        self.enter_until(None).await.map(|_| ())
    }

    /// Enters the barrier and waits at most `timeout` for `member_qty` members: `true` once
    /// entered; `false` when the time ran out first, after deleting this member's node (if
    /// `ready` appeared at the last moment, the member has entered and `true` is returned).
    ///
    /// # Errors
    /// As [`DoubleBarrier::enter`].
    pub async fn enter_timeout(&self, timeout: Duration) -> Result<bool> {
        self.enter_until(Some(Instant::now() + timeout)).await
    }

    /// Leaves the barrier and waits, as long as it takes, until every member has left; then
    /// deletes `ready`.
    ///
    /// # Errors
    /// [`Error::Zk`] when a call fails after the client's retries; this member's node is then
    /// deleted.
    pub async fn leave(&self) -> Result<()> {
        self.leave_until(None).await.map(|_| ())
    }

    /// Leaves the barrier and waits at most `timeout` until every member has left: `true` once
    /// none is left; `false` when the time ran out first, after deleting this member's node
    /// (so the others are not kept waiting for it).
    ///
    /// # Errors
    /// As [`DoubleBarrier::leave`].
    pub async fn leave_timeout(&self, timeout: Duration) -> Result<bool> {
        self.leave_until(Some(Instant::now() + timeout)).await
    }

    /// Wait counters of this handle (enter and leave together), for tests.
    #[doc(hidden)]
    pub fn wait_stats(&self) -> watch::Receiver<WaitStats> {
        self.stats.subscribe()
    }

    async fn enter_until(&self, deadline: Option<Instant>) -> Result<bool> {
        let mut own = self.node.lock().await;
        let outcome = {
            let attempt = self.enter_loop(&mut own);
            match deadline {
                Some(d) => tokio::time::timeout_at(d, attempt).await.ok(),
                None => Some(attempt.await),
            }
        };
        match outcome {
            Some(Ok(())) => Ok(true),
            Some(Err(e)) => {
                own.delete_now().await;
                Err(e)
            }
            None => {
                // One last look (if it can be quick): if `ready` exists, the others counted
                // us and entered.
                if self.client.is_connected() {
                    if let Ok(Some(_)) = self.client.exists(&self.ready_path).await {
                        return Ok(true);
                    }
                }
                own.delete_now().await;
                Ok(false)
            }
        }
    }

    async fn enter_loop(&self, own: &mut OwnedNode) -> Result<()> {
        let client = &self.client;
        let our_name = node_name(&self.our_path);
        loop {
            if own.path().is_none() {
                // Armed before the create is sent: if this future is cancelled (a timeout)
                // while the create is in flight, the node it may make is still deleted.
                own.set(self.our_path.clone());
                match client
                    .create(&self.our_path)
                    .mode(CreateMode::Ephemeral)
                    .creating_parent_containers_if_needed()
                    .await
                {
                    // Exists: ours, from an earlier (cancelled) enter of this session.
                    Ok(_) | Err(ZkError::NodeExists) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let (ready, ready_watch) = client.exists(&self.ready_path).watched().await?;
            if ready.is_some() {
                return Ok(());
            }
            let (children, children_watch) = match client.get_children(&self.path).watched().await {
                Ok(r) => r,
                // The container went with our node (an expired session): start over.
                Err(ZkError::NoNode) => {
                    own.disarm();
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let members = sorted_members(children);
            if !members.iter().any(|m| m == our_name) {
                // Our node went with an expired session: we are still entering, so join
                // again with the new session.
                tracing::debug!(path = %self.our_path, "member node vanished; re-creating");
                own.disarm();
                continue;
            }
            if members.len() >= self.member_qty {
                match client
                    .create(&self.ready_path)
                    .mode(CreateMode::Persistent)
                    .await
                {
                    Ok(_) | Err(ZkError::NodeExists) => return Ok(()),
                    Err(e) => return Err(e.into()),
                }
            }
            self.stats.send_modify(|s| s.watches_set += 1);
            let event = tokio::select! {
                e = ready_watch => e,
                e = children_watch => e,
            };
            self.stats.send_modify(|s| s.wakeups += 1);
            tracing::trace!(?event, path = %self.path, "double barrier woke while entering");
        }
    }

    async fn leave_until(&self, deadline: Option<Instant>) -> Result<bool> {
        let mut own = self.node.lock().await;
        let outcome = {
            let attempt = self.leave_loop(&mut own);
            match deadline {
                Some(d) => tokio::time::timeout_at(d, attempt).await.ok(),
                None => Some(attempt.await),
            }
        };
        match outcome {
            Some(Ok(())) => {
                // Every member has left: take `ready` away for the next round (each leaving
                // member tries; a failure is reported, as Curator does).
                self.client.delete(&self.ready_path).quietly().await?;
                Ok(true)
            }
            Some(Err(e)) => {
                own.delete_now().await;
                Err(e)
            }
            None => {
                own.delete_now().await;
                Ok(false)
            }
        }
    }

    async fn leave_loop(&self, own: &mut OwnedNode) -> Result<()> {
        let client = &self.client;
        let our_name = node_name(&self.our_path);
        loop {
            let children = match client.get_children(&self.path).await {
                Ok(c) => c,
                Err(ZkError::NoNode) => Vec::new(),
                Err(e) => return Err(e.into()),
            };
            let members = sorted_members(children);
            let our_index = members.iter().position(|m| m == our_name);
            if our_index.is_none() {
                // Deleted by us already, or gone with an expired session: we have left.
                own.disarm();
            }
            let (Some(lowest), Some(highest)) = (members.first(), members.last()) else {
                // No member left.
                return Ok(());
            };
            let wake = if members.len() == 1 && our_index.is_some() {
                // We are the last member: leave, and we are done.
                self.delete_ours(own).await?;
                return Ok(());
            } else if our_index == Some(0) {
                // The lowest member leaves last: watch the highest.
                self.watch(&join(&self.path, highest)).await?
            } else {
                // Watch the lowest (set before deleting ours, so no change is missed).
                let wake = self.watch(&join(&self.path, lowest)).await?;
                if our_index.is_some() {
                    self.delete_ours(own).await?;
                }
                wake
            };
            if let Wake::Watch(watch) = wake {
                self.stats.send_modify(|s| s.watches_set += 1);
                let event = watch.await;
                self.stats.send_modify(|s| s.wakeups += 1);
                tracing::trace!(?event, path = %self.path, "double barrier woke while leaving");
            }
        }
    }

    /// A watch on `path` if it exists (it fires when the node goes).
    async fn watch(&self, path: &str) -> Result<Wake> {
        let (stat, watch) = self.client.exists(path).watched().await?;
        Ok(match stat {
            Some(_) => Wake::Watch(watch),
            None => Wake::Again,
        })
    }

    /// Deletes our node (it is present) and forgets it.
    async fn delete_ours(&self, own: &mut OwnedNode) -> Result<()> {
        self.client.delete(&self.our_path).quietly().await?;
        own.disarm();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_uuid_names_are_members() {
        assert!(is_member_node("53345f98-9423-4e0c-a7b5-9f819e3ec2e1"));
        assert!(is_member_node(&uuid::Uuid::new_v4().to_string()));
        assert!(!is_member_node(READY_NODE));
        assert!(!is_member_node("unrelated"));
        assert!(!is_member_node("53345f98-9423-4e0c-a7b5-9f819e3ec2e"));
        assert!(!is_member_node("53345f98-9423-4e0c-a7b5-9f819e3ec2eg"));
        assert!(!is_member_node("53345f98-9423-4e0c-a7b5-9f819e3ec2e1-x"));
        let sorted = sorted_members(vec![
            "ffffffff-9423-4e0c-a7b5-9f819e3ec2e1".to_owned(),
            READY_NODE.to_owned(),
            "00000000-9423-4e0c-a7b5-9f819e3ec2e1".to_owned(),
        ]);
        assert_eq!(
            sorted,
            [
                "00000000-9423-4e0c-a7b5-9f819e3ec2e1",
                "ffffffff-9423-4e0c-a7b5-9f819e3ec2e1"
            ]
        );
    }
}
