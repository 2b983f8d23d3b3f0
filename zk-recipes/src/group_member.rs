//! [`GroupMember`]: Curator's group membership — this process's EPHEMERAL node in a group, and
//! a cache of every member.

use std::collections::BTreeMap;
use std::time::Duration;

use zk_client::{Client, CreateMode};

use crate::cache::{CacheEvents, PathChildrenCache};
use crate::nodes::{join, node_name};
use crate::{Error, PersistentNode, Result};

/// Curator's `GroupMember`: joins a group as the EPHEMERAL node `<membership path>/<id>`
/// holding a payload, and keeps a cache of all members (the children of the membership path).
///
/// * The member node is kept by a [`PersistentNode`]: deleted by someone, or gone with an
///   expired session, it is re-created (by the new session) until [`close`](GroupMember::close).
/// * The view of the group ([`current_members`](GroupMember::current_members)) is a
///   [`PathChildrenCache`]: kept current by watches, re-read after every reconnect or new
///   session. This member is always part of its own view (with its current payload), also
///   while its node is being re-created.
/// * Ids must be unique within the group: two members with the same id share one node (the
///   second waits until the first one's node goes away).
///
/// Layout-compatible with Curator's `GroupMember` (member node `<path>/<id>`, data = payload),
/// so Java and Rust processes can be members of one group.
///
/// ```no_run
/// # async fn example(client: zk_client::Client) -> zk_recipes::Result<()> {
/// use futures::StreamExt;
/// use zk_recipes::GroupMember;
///
/// let member = GroupMember::new(client, "/app/workers", "host-1", b"10.0.0.1:8080".to_vec())?;
/// let mut changes = member.events();
/// member.start()?;
/// while let Some(_change) = changes.next().await {
///     for (id, payload) in member.current_members() {
///         println!("{id}: {}", String::from_utf8_lossy(&payload));
///     }
/// }
/// member.close().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct GroupMember {
    id: String,
    node: PersistentNode,
    cache: PathChildrenCache,
}

impl GroupMember {
    /// A member `id` of the group at `membership_path` (client-relative; created as a
    /// container if missing), with `payload` as its node's data. Call
    /// [`start`](GroupMember::start) to join.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an invalid membership path (or the root), or an id that
    /// is not a valid node name (empty, `.`/`..`, or containing `/`).
    pub fn new(
        client: Client,
        membership_path: &str,
        id: impl Into<String>,
        payload: Vec<u8>,
    ) -> Result<GroupMember> {
        let id = id.into();
        crate::nodes::check_base_path(membership_path)?;
        if id.is_empty() || id == "." || id == ".." || id.contains('/') {
            return Err(Error::InvalidArgument(format!(
                "{id:?} is not a valid member id (a node name)"
            )));
        }
        let node_path = join(membership_path, &id);
        zk_proto::path::validate_path(&node_path)
            .map_err(|e| Error::InvalidArgument(format!("{node_path}: {e}")))?;
        let node = PersistentNode::builder(client.clone(), &node_path, payload)
            .mode(CreateMode::Ephemeral)
            .build()?;
        let cache = PathChildrenCache::new(client, membership_path)?;
        Ok(GroupMember { id, node, cache })
    }

    /// This member's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The membership path.
    pub fn membership_path(&self) -> &str {
        self.cache.path()
    }

    /// The member id a member node's path stands for (its last segment; Curator's
    /// `idFromPath`).
    pub fn id_from_path(path: &str) -> &str {
        node_name(path)
    }

    /// Joins the group and starts caching its members, in background tasks (needs a tokio
    /// runtime).
    ///
    /// # Errors
    /// [`Error::AlreadyStarted`] on a second call, [`Error::Closed`] after
    /// [`close`](GroupMember::close).
    pub fn start(&self) -> Result<()> {
        self.node.start()?;
        self.cache.start()
    }

    /// Waits until this member's node was created once; false if `timeout` passed first.
    ///
    /// # Errors
    /// As [`PersistentNode::wait_for_initial_create`]: [`Error::Closed`] if the member was
    /// closed first, [`Error::Zk`] for a create refused in a lasting way (e.g. `NoAuth`).
    pub async fn wait_joined(&self, timeout: Duration) -> Result<bool> {
        self.node.wait_for_initial_create(timeout).await
    }

    /// Waits until the first read of the group is complete; false if the member was closed
    /// first.
    pub async fn wait_initialized(&self) -> bool {
        self.cache.wait_initialized().await
    }

    /// Changes this member's payload (Curator's `setThisData`), now and for every
    /// re-creation of its node, and waits until the node holds it.
    ///
    /// # Errors
    /// [`Error::Closed`] if the member is closed (or not started) before the data is written.
    ///
    /// # Cancellation safety
    /// Dropping the future does not cancel the change (see [`PersistentNode::set_data`]).
    pub async fn set_this_data(&self, data: Vec<u8>) -> Result<()> {
        self.node.set_data(data).await
    }

    /// This member's payload.
    pub fn this_data(&self) -> Vec<u8> {
        self.node.data()
    }

    /// The group as this member sees it now (Curator's `getCurrentMembers`): every member's
    /// id and payload. This member is always included, with its current payload.
    pub fn current_members(&self) -> BTreeMap<String, Vec<u8>> {
        let mut members: BTreeMap<String, Vec<u8>> = self
            .cache
            .current()
            .iter()
            .map(|d| (d.name().to_owned(), d.data.clone()))
            .collect();
        members
            .entry(self.id.clone())
            .or_insert_with(|| self.node.data());
        members
    }

    /// A stream of the group's changes from now on: a member node created, changed (new
    /// payload) or deleted, then [`Initialized`](crate::CacheEvent::Initialized) once after
    /// the first read. Ends when the member is closed.
    pub fn events(&self) -> CacheEvents {
        self.cache.events()
    }

    /// Leaves the group: stops the cache and deletes this member's node (a guaranteed
    /// delete, see [`PersistentNode::close`]).
    ///
    /// # Errors
    /// As [`PersistentNode::close`].
    pub async fn close(&self) -> Result<()> {
        self.cache.close().await;
        self.node.close().await
    }
}
