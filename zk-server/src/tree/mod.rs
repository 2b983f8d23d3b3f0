//! The in-memory data tree and the application of committed transactions to it.
//!
//! Applying a txn is deterministic: the same txns applied in zxid order to the same tree give
//! the same tree on every replica. Validation happened when the txn was prepared; `apply` only
//! reports an error for txns that cannot apply (replayed over a fuzzy snapshot).

mod children;
mod node;
mod sharded_map;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use zk_proto::path::{join, split_parent};
use zk_proto::{Acl, ErrorCode, EventType, Stat, StatPersisted, Txn, TxnBody, TxnHeader};

pub use children::Children;
pub use node::{DataNode, Owner, CONTAINER_OWNER, MAX_TTL_MS};
use sharded_map::NodeMap;

/// Paths the server maintains itself; they cannot be deleted.
pub const ZOOKEEPER_PATH: &str = "/zookeeper";
/// Quota root.
pub const QUOTA_PATH: &str = "/zookeeper/quota";
/// Dynamic configuration node.
pub const CONFIG_PATH: &str = "/zookeeper/config";

/// Whether `path` is one of the server's own nodes (`/`, `/zookeeper` and its children).
pub fn is_special_path(path: &str) -> bool {
    path == "/" || path == ZOOKEEPER_PATH || path == QUOTA_PATH || path == CONFIG_PATH
}

/// A change that fires watches: the event, the node's path, and the node's ACL (READ is checked
/// against it at delivery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchTrigger {
    /// The node the event is about.
    pub path: String,
    /// What happened.
    pub event: EventType,
    /// The node's ACL when the event happened.
    pub acl: Arc<Vec<Acl>>,
}

/// The outcome of applying one txn (or one sub-txn of a multi).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOutcome {
    /// A node was created.
    Created {
        /// Its path.
        path: String,
        /// Its client-visible stat.
        stat: Stat,
    },
    /// A node was deleted.
    Deleted,
    /// Data was set; the node's new stat.
    DataSet(Stat),
    /// The ACL was set; the node's new stat.
    AclSet(Stat),
    /// A version check passed.
    Checked,
    /// A session was created.
    SessionCreated,
    /// A session was closed; the ephemerals deleted.
    SessionClosed(Vec<String>),
    /// The txn recorded (or met) an error.
    Error(ErrorCode),
    /// The outcomes of a multi's sub-txns.
    Multi(Vec<TxnOutcome>),
}

/// Interns ACL lists so equal ACLs share one allocation.
#[derive(Debug, Default, Clone)]
struct AclCache {
    lists: HashMap<Vec<Acl>, Arc<Vec<Acl>>>,
    /// The list interned last: consecutive creates nearly always share their ACL.
    last: Option<Arc<Vec<Acl>>>,
}

impl AclCache {
    fn intern(&mut self, acl: &[Acl]) -> Arc<Vec<Acl>> {
        if let Some(last) = self.last.as_ref().filter(|last| last.as_slice() == acl) {
            return Arc::clone(last);
        }
        let shared = match self.lists.get(acl) {
            Some(shared) => Arc::clone(shared),
            None => {
                let shared = Arc::new(acl.to_vec());
                self.lists.insert(acl.to_vec(), Arc::clone(&shared));
                shared
            }
        };
        self.last = Some(Arc::clone(&shared));
        shared
    }

    /// Drops lists no node uses any more.
    fn sweep(&mut self) {
        self.last = None;
        self.lists.retain(|_, shared| Arc::strong_count(shared) > 1);
    }
}

/// The tree of znodes.
#[derive(Debug, Clone)]
pub struct DataTree {
    nodes: NodeMap,
    ephemerals: HashMap<i64, HashSet<String>>,
    containers: HashSet<String>,
    ttls: HashSet<String>,
    acl_cache: AclCache,
    last_processed_zxid: i64,
}

impl Default for DataTree {
    fn default() -> Self {
        Self::new()
    }
}

impl DataTree {
    /// A tree holding only `/`, `/zookeeper`, `/zookeeper/quota` and `/zookeeper/config`.
    pub fn new() -> DataTree {
        let mut tree = DataTree::empty();
        tree.insert_system_node("/", None, &Acl::open_unsafe());
        tree.insert_system_node(ZOOKEEPER_PATH, Some("/"), &Acl::open_unsafe());
        tree.insert_system_node(QUOTA_PATH, Some(ZOOKEEPER_PATH), &Acl::open_unsafe());
        tree.insert_config_node();
        tree
    }

    /// Inserts a node with empty (not null) data at `path` with `acl`, linked below `parent`
    /// (when given and present), as Apache's `DataTree` makes its built-in nodes.
    fn insert_system_node(&mut self, path: &str, parent: Option<&str>, acl: &[Acl]) {
        let acl = self.acl_cache.intern(acl);
        self.nodes.insert(
            Arc::from(path),
            Arc::new(DataNode {
                data: Some(Vec::new()),
                acl,
                stat: StatPersisted::default(),
                children: Children::default(),
            }),
        );
        let name = path.rsplit('/').next().unwrap_or_default();
        if let Some(node) = parent.and_then(|p| self.get_mut(p)) {
            node.children.insert(name);
        }
    }

    /// `/zookeeper/config`, readable by anyone and writable by no one, with the ACL version
    /// of -1 that Apache's `addConfigNode` leaves (its `setACL(path, READ_ACL_UNSAFE, -1)`).
    fn insert_config_node(&mut self) {
        self.insert_system_node(CONFIG_PATH, Some(ZOOKEEPER_PATH), &Acl::read_unsafe());
        if let Some(node) = self.get_mut(CONFIG_PATH) {
            node.stat.aversion = -1;
        }
    }

    /// Writes an ensemble member's configuration into `/zookeeper/config`, as Apache's
    /// `ZKDatabase.initConfigInZKDatabase`: a local write, not a txn (each member shows its
    /// own configuration), with the config version (0 for a static configuration) as mzxid
    /// and, as Apache's `DataTree.setData(path, data, -1, version, now)` leaves it, a data
    /// version of -1. Recreates the node if a snapshot lacked it.
    pub fn set_config_node(&mut self, text: &str, config_version: i64, now_ms: i64) {
        if self.get(CONFIG_PATH).is_none() {
            self.insert_config_node();
        }
        if let Some(node) = self.get_mut(CONFIG_PATH) {
            node.data = Some(text.as_bytes().to_vec());
            node.stat.mzxid = config_version;
            node.stat.mtime = now_ms;
            node.stat.version = -1;
        }
    }

    /// A tree without any node, to be filled from a snapshot.
    pub fn empty() -> DataTree {
        DataTree {
            nodes: NodeMap::default(),
            ephemerals: HashMap::new(),
            containers: HashSet::new(),
            ttls: HashSet::new(),
            acl_cache: AclCache::default(),
            last_processed_zxid: 0,
        }
    }

    /// The node at `path`.
    pub fn get(&self, path: &str) -> Option<&DataNode> {
        self.nodes.get(path).map(|node| &**node)
    }

    fn get_mut(&mut self, path: &str) -> Option<&mut DataNode> {
        self.nodes.get_mut(path).map(Arc::make_mut)
    }

    /// A copy-on-write image of the nodes as they are now, for a snapshot written while the
    /// tree keeps changing. Taking it copies only the pointers to the map's shards.
    pub fn image(&self) -> TreeImage {
        TreeImage {
            nodes: self.nodes.clone(),
        }
    }

    /// Number of nodes, counting the root once.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// zxid of the last applied txn.
    pub fn last_processed_zxid(&self) -> i64 {
        self.last_processed_zxid
    }

    /// Sets the last processed zxid (after loading a snapshot).
    pub fn set_last_processed_zxid(&mut self, zxid: i64) {
        self.last_processed_zxid = zxid;
    }

    /// Every node with its path, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &DataNode)> {
        self.nodes.iter().map(|(path, node)| (&**path, &**node))
    }

    /// The ephemeral paths of `session`, sorted.
    pub fn ephemerals_of(&self, session: i64) -> Vec<String> {
        let mut paths: Vec<String> = self
            .ephemerals
            .get(&session)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default();
        paths.sort();
        paths
    }

    /// Total number of ephemeral nodes.
    pub fn ephemeral_count(&self) -> usize {
        self.ephemerals.values().map(HashSet::len).sum()
    }

    /// Approximate bytes of paths and data.
    pub fn approximate_data_size(&self) -> usize {
        self.nodes
            .iter()
            .map(|(path, node)| node.approximate_size(path))
            .sum()
    }

    /// Number of descendants of `path` at any depth, excluding the node itself.
    pub fn count_descendants(&self, path: &str) -> usize {
        if path == "/" {
            return self.nodes.len().saturating_sub(1);
        }
        let prefix = format!("{path}/");
        self.nodes
            .keys()
            .filter(|p| p.starts_with(prefix.as_str()))
            .count()
    }

    /// Containers that should be deleted (empty after having had children, or never used for
    /// longer than `max_never_used_ms` when that is positive) and TTL nodes whose TTL elapsed
    /// since their last modification, sorted.
    pub fn expired_containers_and_ttls(&self, now_ms: i64, max_never_used_ms: i64) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for path in &self.containers {
            if let Some(node) = self.get(path) {
                let empty = node.children.is_empty();
                let used = node.stat.cversion > 0;
                let never_used_expired =
                    max_never_used_ms > 0 && now_ms - node.stat.mtime > max_never_used_ms;
                if empty && (used || never_used_expired) {
                    out.push(path.clone());
                }
            }
        }
        for path in &self.ttls {
            if let Some(node) = self.get(path) {
                if let Owner::Ttl(ttl) = node.owner() {
                    if node.children.is_empty() && now_ms - node.stat.mtime > ttl {
                        out.push(path.clone());
                    }
                }
            }
        }
        out.sort();
        out
    }

    /// Inserts a node as loaded from a snapshot (parents are linked by [`DataTree::link_loaded`]).
    pub fn insert_loaded(
        &mut self,
        path: String,
        data: Option<Vec<u8>>,
        acl: &[Acl],
        stat: StatPersisted,
    ) {
        let acl = self.acl_cache.intern(acl);
        let node = DataNode {
            data,
            acl,
            stat,
            children: Children::default(),
        };
        self.index_owner(&path, node.owner());
        self.nodes.insert(Arc::from(path), Arc::new(node));
    }

    /// Rebuilds child links after a snapshot load; returns paths whose parent is missing.
    pub fn link_loaded(&mut self) -> Vec<String> {
        let paths: Vec<Arc<str>> = self.nodes.keys().cloned().collect();
        let mut orphans = Vec::new();
        for path in paths {
            let Some((parent, name)) = split_parent(&path) else {
                continue;
            };
            let name = name.to_owned();
            match self.get_mut(parent) {
                Some(node) => {
                    node.children.insert(&name);
                }
                None => orphans.push(path.to_string()),
            }
        }
        orphans
    }

    fn index_owner(&mut self, path: &str, owner: Owner) {
        match owner {
            Owner::Session(id) => {
                self.ephemerals
                    .entry(id)
                    .or_default()
                    .insert(path.to_owned());
            }
            Owner::Container => {
                self.containers.insert(path.to_owned());
            }
            Owner::Ttl(_) => {
                self.ttls.insert(path.to_owned());
            }
            Owner::None => {}
        }
    }

    fn unindex_owner(&mut self, path: &str, owner: Owner) {
        match owner {
            Owner::Session(id) => {
                if let Some(set) = self.ephemerals.get_mut(&id) {
                    set.remove(path);
                    if set.is_empty() {
                        self.ephemerals.remove(&id);
                    }
                }
            }
            Owner::Container => {
                self.containers.remove(path);
            }
            Owner::Ttl(_) => {
                self.ttls.remove(path);
            }
            Owner::None => {}
        }
    }

    /// Applies a committed txn, appending the watch triggers it fires to `triggers`.
    pub fn apply(&mut self, txn: &Txn, triggers: &mut Vec<WatchTrigger>) -> TxnOutcome {
        let outcome = self.apply_body(&txn.header, &txn.body, triggers);
        if txn.header.zxid > self.last_processed_zxid {
            self.last_processed_zxid = txn.header.zxid;
        }
        outcome
    }

    fn apply_body(
        &mut self,
        header: &TxnHeader,
        body: &TxnBody,
        triggers: &mut Vec<WatchTrigger>,
    ) -> TxnOutcome {
        let result = match body {
            TxnBody::Create(t) | TxnBody::Create2(t) => {
                let owner = if t.ephemeral {
                    Owner::Session(header.client_id)
                } else {
                    Owner::None
                };
                self.create(
                    header,
                    &t.path,
                    &t.data,
                    &t.acl,
                    owner,
                    t.parent_cversion,
                    triggers,
                )
            }
            TxnBody::CreateContainer(t) => self.create(
                header,
                &t.path,
                &t.data,
                &t.acl,
                Owner::Container,
                t.parent_cversion,
                triggers,
            ),
            TxnBody::CreateTtl(t) => self.create(
                header,
                &t.path,
                &t.data,
                &t.acl,
                Owner::Ttl(t.ttl),
                t.parent_cversion,
                triggers,
            ),
            TxnBody::Delete(t) | TxnBody::DeleteContainer(t) => self
                .delete(&t.path, header.zxid, triggers)
                .map(|()| TxnOutcome::Deleted),
            TxnBody::SetData(t) | TxnBody::Reconfig(t) => {
                self.set_data(header, &t.path, &t.data, t.version, triggers)
            }
            TxnBody::SetAcl(t) => self.set_acl(&t.path, &t.acl, t.version),
            TxnBody::Check(_) => Ok(TxnOutcome::Checked),
            TxnBody::CreateSession(_) => Ok(TxnOutcome::SessionCreated),
            TxnBody::CloseSession(t) => {
                Ok(self.close_session(header, &t.paths_to_delete, triggers))
            }
            TxnBody::Error(t) => Ok(TxnOutcome::Error(
                ErrorCode::try_from(t.err).unwrap_or(ErrorCode::SystemError),
            )),
            TxnBody::Multi(multi) => Ok(self.apply_multi(header, multi, triggers)),
        };
        result.unwrap_or_else(TxnOutcome::Error)
    }

    fn apply_multi(
        &mut self,
        header: &TxnHeader,
        multi: &zk_proto::MultiTxn,
        triggers: &mut Vec<WatchTrigger>,
    ) -> TxnOutcome {
        let bodies = match multi.bodies() {
            Ok(bodies) => bodies,
            Err(_) => return TxnOutcome::Error(ErrorCode::MarshallingError),
        };
        // A failed multi is logged as error sub-txns only; nothing is applied.
        let failed = bodies.iter().any(|b| matches!(b, TxnBody::Error(_)));
        let outcomes = bodies
            .iter()
            .map(|body| {
                if failed {
                    match body {
                        TxnBody::Error(e) => TxnOutcome::Error(
                            ErrorCode::try_from(e.err).unwrap_or(ErrorCode::SystemError),
                        ),
                        _ => TxnOutcome::Error(ErrorCode::RuntimeInconsistency),
                    }
                } else {
                    self.apply_body(header, body, triggers)
                }
            })
            .collect();
        TxnOutcome::Multi(outcomes)
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        header: &TxnHeader,
        path: &str,
        data: &Option<Vec<u8>>,
        acl: &[Acl],
        owner: Owner,
        parent_cversion: i32,
        triggers: &mut Vec<WatchTrigger>,
    ) -> Result<TxnOutcome, ErrorCode> {
        let (parent_path, name) = split_parent(path).ok_or(ErrorCode::BadArguments)?;
        if self.nodes.contains_key(path) {
            return Err(ErrorCode::NodeExists);
        }
        let parent = self.get_mut(parent_path).ok_or(ErrorCode::NoNode)?;
        parent.children.insert(name);
        parent.stat.cversion = parent_cversion;
        parent.stat.pzxid = header.zxid;
        let parent_acl = Arc::clone(&parent.acl);
        let acl = self.acl_cache.intern(acl);
        let node = DataNode {
            data: data.clone(),
            acl: Arc::clone(&acl),
            stat: StatPersisted {
                czxid: header.zxid,
                mzxid: header.zxid,
                ctime: header.time,
                mtime: header.time,
                version: 0,
                cversion: 0,
                aversion: 0,
                ephemeral_owner: owner.to_stored(),
                pzxid: header.zxid,
            },
            children: Children::default(),
        };
        let stat = node.client_stat();
        self.nodes.insert(Arc::from(path), Arc::new(node));
        self.index_owner(path, owner);
        triggers.push(WatchTrigger {
            path: path.to_owned(),
            event: EventType::NodeCreated,
            acl,
        });
        triggers.push(WatchTrigger {
            path: parent_path.to_owned(),
            event: EventType::NodeChildrenChanged,
            acl: parent_acl,
        });
        Ok(TxnOutcome::Created {
            path: path.to_owned(),
            stat,
        })
    }

    fn delete(
        &mut self,
        path: &str,
        zxid: i64,
        triggers: &mut Vec<WatchTrigger>,
    ) -> Result<(), ErrorCode> {
        let (parent_path, name) = split_parent(path).ok_or(ErrorCode::BadArguments)?;
        let node = self.nodes.get(path).ok_or(ErrorCode::NoNode)?;
        if !node.children.is_empty() {
            return Err(ErrorCode::NotEmpty);
        }
        let owner = node.owner();
        let acl = Arc::clone(&node.acl);
        self.nodes.remove(path);
        self.unindex_owner(path, owner);
        let mut parent_acl = None;
        if let Some(parent) = self.get_mut(parent_path) {
            parent.children.remove(name);
            parent.stat.pzxid = zxid;
            parent_acl = Some(Arc::clone(&parent.acl));
        }
        triggers.push(WatchTrigger {
            path: path.to_owned(),
            event: EventType::NodeDeleted,
            acl,
        });
        if let Some(acl) = parent_acl {
            triggers.push(WatchTrigger {
                path: parent_path.to_owned(),
                event: EventType::NodeChildrenChanged,
                acl,
            });
        }
        Ok(())
    }

    fn set_data(
        &mut self,
        header: &TxnHeader,
        path: &str,
        data: &Option<Vec<u8>>,
        version: i32,
        triggers: &mut Vec<WatchTrigger>,
    ) -> Result<TxnOutcome, ErrorCode> {
        let node = self.get_mut(path).ok_or(ErrorCode::NoNode)?;
        node.data = data.clone();
        node.stat.version = version;
        node.stat.mzxid = header.zxid;
        node.stat.mtime = header.time;
        triggers.push(WatchTrigger {
            path: path.to_owned(),
            event: EventType::NodeDataChanged,
            acl: Arc::clone(&node.acl),
        });
        Ok(TxnOutcome::DataSet(node.client_stat()))
    }

    fn set_acl(&mut self, path: &str, acl: &[Acl], version: i32) -> Result<TxnOutcome, ErrorCode> {
        let acl = self.acl_cache.intern(acl);
        let node = self.get_mut(path).ok_or(ErrorCode::NoNode)?;
        node.acl = acl;
        node.stat.aversion = version;
        let stat = node.client_stat();
        self.acl_cache.sweep();
        Ok(TxnOutcome::AclSet(stat))
    }

    fn close_session(
        &mut self,
        header: &TxnHeader,
        listed: &[String],
        triggers: &mut Vec<WatchTrigger>,
    ) -> TxnOutcome {
        let mut paths = self.ephemerals_of(header.client_id);
        // Paths the txn lists that are (still) ephemerals of this session come first, in the
        // txn's order; every other ephemeral of the session follows.
        let mut ordered: Vec<String> = listed
            .iter()
            .filter(|p| paths.contains(p))
            .cloned()
            .collect();
        paths.retain(|p| !ordered.contains(p));
        ordered.extend(paths);
        let mut deleted = Vec::with_capacity(ordered.len());
        for path in ordered {
            if self.delete(&path, header.zxid, triggers).is_ok() {
                deleted.push(path);
            }
        }
        self.ephemerals.remove(&header.client_id);
        TxnOutcome::SessionClosed(deleted)
    }
}

/// The nodes of a [`DataTree`] frozen at one moment (see [`DataTree::image`]).
#[derive(Debug, Clone)]
pub struct TreeImage {
    nodes: NodeMap,
}

impl TreeImage {
    /// The node at `path`.
    pub fn get(&self, path: &str) -> Option<&DataNode> {
        self.nodes.get(path).map(|node| &**node)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the image holds no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every node with its path, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &DataNode)> {
        self.nodes.iter().map(|(path, node)| (&**path, &**node))
    }

    /// Calls `visit` with the node at `path` and every node below it, parents before
    /// children (siblings in no particular order), until `visit` fails. Iterative, so deep
    /// trees cannot overflow the stack; memory grows with the depth, not the node count.
    /// Nothing is visited if there is no node at `path`.
    pub fn try_walk<E>(
        &self,
        path: &str,
        mut visit: impl FnMut(&str, &DataNode) -> Result<(), E>,
    ) -> Result<(), E> {
        let Some(top) = self.get(path) else {
            return Ok(());
        };
        visit(path, top)?;
        let mut stack = vec![(path.to_owned(), top.children.iter())];
        while let Some((parent, children)) = stack.last_mut() {
            let Some(name) = children.next() else {
                stack.pop();
                continue;
            };
            let child_path = join(parent, name);
            if let Some(child) = self.get(&child_path) {
                visit(&child_path, child)?;
                stack.push((child_path, child.children.iter()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
