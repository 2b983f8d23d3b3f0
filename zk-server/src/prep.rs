//! Preparation: turning a write request into a deterministic txn (or an error) before it is
//! logged, as Apache ZooKeeper's `PrepRequestProcessor` does.
//!
//! Writes are pipelined: a request is prepared while earlier txns are still being persisted, so
//! preparation reads the tree through [`PendingChanges`], an overlay of the node states that the
//! prepared-but-not-applied txns will produce.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use zk_proto::path::{split_parent, validate_create_path, validate_path};
use zk_proto::{
    Acl, CheckVersionTxn, CreateContainerTxn, CreateMode, CreateTtlTxn, CreateTxn, DeleteTxn,
    ErrorCode, Id, MultiOp, MultiTxn, Perms, SetAclTxn, SetDataTxn, StatPersisted, TxnBody,
};

use crate::acl;
use crate::tree::{is_special_path, DataTree, Owner, MAX_TTL_MS};

/// What preparation needs to know about a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    /// The persisted stat.
    pub stat: StatPersisted,
    /// Number of children.
    pub num_children: usize,
    /// The ACL.
    pub acl: Arc<Vec<Acl>>,
}

impl NodeView {
    fn owner(&self) -> Owner {
        Owner::from_stored(self.stat.ephemeral_owner)
    }
}

/// Node states produced by prepared txns that have not been applied yet, keyed by path with the
/// zxid of the txn that produced them (`None` = deleted).
#[derive(Debug, Default)]
pub struct PendingChanges {
    records: HashMap<String, (i64, Option<NodeView>), foldhash::fast::RandomState>,
    /// The paths each pending zxid recorded, in zxid order, so that applying a txn touches
    /// only its own records.
    order: VecDeque<(i64, Vec<String>)>,
}

impl PendingChanges {
    /// The node as it will be once every prepared txn applies.
    pub fn lookup(&self, tree: &DataTree, path: &str) -> Option<NodeView> {
        match self.records.get(path) {
            Some((_, view)) => view.clone(),
            None => tree.get(path).map(|node| NodeView {
                stat: node.stat.clone(),
                num_children: node.children.len(),
                acl: Arc::clone(&node.acl),
            }),
        }
    }

    /// Records the state txn `zxid` leaves `path` in.
    fn record(&mut self, zxid: i64, path: String, view: Option<NodeView>) {
        match self.order.back_mut() {
            Some((z, paths)) if *z == zxid => paths.push(path.clone()),
            _ => self.order.push_back((zxid, vec![path.clone()])),
        }
        self.records.insert(path, (zxid, view));
    }

    /// Forgets the records of txns up to `zxid`, once they have been applied to the tree.
    /// Records a later txn overwrote stay.
    pub fn applied(&mut self, zxid: i64) {
        while self.order.front().is_some_and(|(z, _)| *z <= zxid) {
            let Some((z, paths)) = self.order.pop_front() else {
                break;
            };
            for path in paths {
                if self
                    .records
                    .get(&path)
                    .is_some_and(|(owner, _)| *owner == z)
                {
                    self.records.remove(&path);
                }
            }
        }
    }

    /// Forgets everything (after the tree was reloaded).
    pub fn clear(&mut self) {
        self.records.clear();
        self.order.clear();
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The ephemerals `session` will own once every prepared txn applies, sorted.
    pub fn ephemerals_of(&self, tree: &DataTree, session: i64) -> Vec<String> {
        let mut paths: BTreeSet<String> = tree.ephemerals_of(session).into_iter().collect();
        for (path, (_, view)) in &self.records {
            match view {
                Some(v) if v.owner() == Owner::Session(session) => {
                    paths.insert(path.clone());
                }
                Some(_) | None => {
                    paths.remove(path);
                }
            }
        }
        paths.into_iter().collect()
    }
}

/// The context one request is prepared in.
pub struct PrepContext<'a> {
    /// The committed tree.
    pub tree: &'a DataTree,
    /// The session issuing the request.
    pub session_id: i64,
    /// The connection's identities.
    pub auth: &'a [Id],
    /// The zxid the txn will get.
    pub zxid: i64,
    /// The txn time (ms since the epoch).
    pub time: i64,
    /// Whether TTL nodes are enabled (`zookeeper.extendedTypesEnabled`).
    pub extended_types: bool,
}

/// Staged overlay updates of one request (a multi stages several before committing them).
#[derive(Debug, Default)]
struct Staged {
    records: Vec<(String, Option<NodeView>)>,
}

impl PrepContext<'_> {
    fn lookup(&self, pending: &PendingChanges, staged: &Staged, path: &str) -> Option<NodeView> {
        staged
            .records
            .iter()
            .rev()
            .find(|(p, _)| p == path)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| pending.lookup(self.tree, path))
    }

    fn require(
        &self,
        pending: &PendingChanges,
        staged: &Staged,
        path: &str,
    ) -> Result<NodeView, ErrorCode> {
        self.lookup(pending, staged, path).ok_or(ErrorCode::NoNode)
    }

    fn check_perm(&self, view: &NodeView, perm: Perms) -> Result<(), ErrorCode> {
        if acl::check(&view.acl, perm, self.auth) {
            Ok(())
        } else {
            Err(ErrorCode::NoAuth)
        }
    }

    /// Prepares a create of any kind. `opcode_ttl` is the TTL of a createTTL request (`None`
    /// for create, create2 and createContainer).
    #[allow(clippy::too_many_arguments)]
    fn create(
        &self,
        pending: &PendingChanges,
        staged: &mut Staged,
        path: &str,
        data: &Option<Vec<u8>>,
        acl_in: &[Acl],
        flags: i32,
        container_op: bool,
        opcode_ttl: Option<i64>,
    ) -> Result<TxnBody, ErrorCode> {
        let mode = CreateMode::from_flags(flags).ok_or(ErrorCode::BadArguments)?;
        if mode.is_ttl() {
            if !self.extended_types {
                return Err(ErrorCode::Unimplemented);
            }
            match opcode_ttl {
                Some(ttl) if (1..=MAX_TTL_MS).contains(&ttl) => {}
                _ => return Err(ErrorCode::BadArguments),
            }
        } else if opcode_ttl.is_some() {
            return Err(ErrorCode::BadArguments);
        }
        validate_create_path(path, mode.is_sequential()).map_err(|_| ErrorCode::BadArguments)?;
        if path == "/" && !mode.is_sequential() {
            return Err(ErrorCode::NodeExists);
        }
        let acl = acl::fixup(acl_in, self.auth)?;
        let (parent_path, _) = split_parent(path)
            .or_else(|| {
                path.strip_suffix('/')
                    .map(|p| (if p.is_empty() { "/" } else { p }, ""))
            })
            .ok_or(ErrorCode::BadArguments)?;
        let parent = self.require(pending, staged, parent_path)?;
        self.check_perm(&parent, Perms::CREATE)?;
        let final_path = if mode.is_sequential() {
            format!("{path}{:010}", parent.stat.cversion)
        } else {
            path.to_owned()
        };
        validate_path(&final_path).map_err(|_| ErrorCode::BadArguments)?;
        if self.lookup(pending, staged, &final_path).is_some() {
            return Err(ErrorCode::NodeExists);
        }
        if matches!(parent.owner(), Owner::Session(_)) {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        let parent_cversion = parent.stat.cversion.wrapping_add(1);
        let (body, owner) = if container_op {
            (
                TxnBody::CreateContainer(CreateContainerTxn {
                    path: final_path.clone(),
                    data: data.clone(),
                    acl: acl.clone(),
                    parent_cversion,
                }),
                Owner::Container,
            )
        } else if let (true, Some(ttl)) = (mode.is_ttl(), opcode_ttl) {
            (
                TxnBody::CreateTtl(CreateTtlTxn {
                    path: final_path.clone(),
                    data: data.clone(),
                    acl: acl.clone(),
                    parent_cversion,
                    ttl,
                }),
                Owner::Ttl(ttl),
            )
        } else {
            let owner = if mode.is_ephemeral() {
                Owner::Session(self.session_id)
            } else {
                Owner::None
            };
            (
                TxnBody::Create(CreateTxn {
                    path: final_path.clone(),
                    data: data.clone(),
                    acl: acl.clone(),
                    ephemeral: mode.is_ephemeral(),
                    parent_cversion,
                }),
                owner,
            )
        };
        let mut parent_after = parent;
        parent_after.stat.cversion = parent_cversion;
        parent_after.stat.pzxid = self.zxid;
        parent_after.num_children += 1;
        staged
            .records
            .push((parent_path.to_owned(), Some(parent_after)));
        staged.records.push((
            final_path,
            Some(NodeView {
                stat: StatPersisted {
                    czxid: self.zxid,
                    mzxid: self.zxid,
                    ctime: self.time,
                    mtime: self.time,
                    version: 0,
                    cversion: 0,
                    aversion: 0,
                    ephemeral_owner: owner.to_stored(),
                    pzxid: self.zxid,
                },
                num_children: 0,
                acl: Arc::new(acl),
            }),
        ));
        Ok(body)
    }

    fn delete(
        &self,
        pending: &PendingChanges,
        staged: &mut Staged,
        path: &str,
        version: i32,
    ) -> Result<TxnBody, ErrorCode> {
        // Apache's getParentPathAndValidate: only a path without '/', with NUL, or a special
        // path is a bad argument; any other malformed path names no node (NONODE below).
        let Some((parent_path, _)) = path.rsplit_once('/') else {
            return Err(ErrorCode::BadArguments);
        };
        if path.contains('\0') || is_special_path(path) {
            return Err(ErrorCode::BadArguments);
        }
        let parent_path = if parent_path.is_empty() {
            "/"
        } else {
            parent_path
        };
        // Apache's order: the parent, DELETE on it, then the node (so a caller without DELETE
        // learns nothing of the node, and gets NOAUTH rather than NONODE).
        let parent = self.require(pending, staged, parent_path)?;
        self.check_perm(&parent, Perms::DELETE)?;
        let node = self.require(pending, staged, path)?;
        check_version(node.stat.version, version)?;
        if node.num_children > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        let mut parent_after = parent;
        parent_after.num_children = parent_after.num_children.saturating_sub(1);
        parent_after.stat.pzxid = self.zxid;
        staged
            .records
            .push((parent_path.to_owned(), Some(parent_after)));
        staged.records.push((path.to_owned(), None));
        Ok(TxnBody::Delete(DeleteTxn {
            path: path.to_owned(),
        }))
    }

    fn set_data(
        &self,
        pending: &PendingChanges,
        staged: &mut Staged,
        path: &str,
        data: &Option<Vec<u8>>,
        version: i32,
    ) -> Result<TxnBody, ErrorCode> {
        validate_path(path).map_err(|_| ErrorCode::BadArguments)?;
        let node = self.require(pending, staged, path)?;
        self.check_perm(&node, Perms::WRITE)?;
        let new_version = check_version(node.stat.version, version)?;
        let mut after = node;
        after.stat.version = new_version;
        after.stat.mzxid = self.zxid;
        after.stat.mtime = self.time;
        staged.records.push((path.to_owned(), Some(after)));
        Ok(TxnBody::SetData(SetDataTxn {
            path: path.to_owned(),
            data: data.clone(),
            version: new_version,
        }))
    }

    fn check(
        &self,
        pending: &PendingChanges,
        staged: &Staged,
        path: &str,
        version: i32,
    ) -> Result<TxnBody, ErrorCode> {
        validate_path(path).map_err(|_| ErrorCode::BadArguments)?;
        let node = self.require(pending, staged, path)?;
        self.check_perm(&node, Perms::READ)?;
        check_version(node.stat.version, version)?;
        Ok(TxnBody::Check(CheckVersionTxn {
            path: path.to_owned(),
            version,
        }))
    }
}

/// `checkAndIncVersion`: -1 matches any version; returns the version after the change.
fn check_version(current: i32, expected: i32) -> Result<i32, ErrorCode> {
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    Ok(current.wrapping_add(1))
}

/// A write that preparation understands.
#[derive(Debug, Clone, Copy)]
pub enum WriteRequest<'r> {
    /// create / create2.
    Create(&'r zk_proto::CreateRequest),
    /// createContainer.
    CreateContainer(&'r zk_proto::CreateRequest),
    /// createTTL.
    CreateTtl(&'r zk_proto::CreateTtlRequest),
    /// delete.
    Delete(&'r zk_proto::DeleteRequest),
    /// setData.
    SetData(&'r zk_proto::SetDataRequest),
    /// setACL.
    SetAcl(&'r zk_proto::SetAclRequest),
    /// check (outside a multi; Apache answers it like a multi op).
    Check(&'r zk_proto::CheckVersionRequest),
    /// multi.
    Multi(&'r [MultiOp]),
}

/// The result of preparing a multi that failed: the per-op error codes (0 / code / -2).
pub type FailedMulti = Vec<i32>;

/// Why a write produced no txn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrepError {
    /// The request fails with this code.
    Code(ErrorCode),
    /// A multi failed; one code per op.
    Multi(FailedMulti),
}

impl From<ErrorCode> for PrepError {
    fn from(code: ErrorCode) -> Self {
        PrepError::Code(code)
    }
}

/// Prepares a client write. On success the overlay holds the txn's effects under `ctx.zxid`.
pub fn prepare_write(
    ctx: &PrepContext<'_>,
    pending: &mut PendingChanges,
    request: WriteRequest<'_>,
) -> Result<TxnBody, PrepError> {
    let mut staged = Staged::default();
    let body = match request {
        WriteRequest::Multi(ops) => prepare_multi(ctx, pending, &mut staged, ops)?,
        single => prepare_single(ctx, pending, &mut staged, single)?,
    };
    for (path, view) in staged.records {
        pending.record(ctx.zxid, path, view);
    }
    Ok(body)
}

fn prepare_single(
    ctx: &PrepContext<'_>,
    pending: &PendingChanges,
    staged: &mut Staged,
    request: WriteRequest<'_>,
) -> Result<TxnBody, ErrorCode> {
    match request {
        WriteRequest::Create(r) => ctx.create(
            pending, staged, &r.path, &r.data, &r.acl, r.flags, false, None,
        ),
        WriteRequest::CreateContainer(r) => ctx.create(
            pending, staged, &r.path, &r.data, &r.acl, r.flags, true, None,
        ),
        WriteRequest::CreateTtl(r) => ctx.create(
            pending,
            staged,
            &r.path,
            &r.data,
            &r.acl,
            r.flags,
            false,
            Some(r.ttl),
        ),
        WriteRequest::Delete(r) => ctx.delete(pending, staged, &r.path, r.version),
        WriteRequest::SetData(r) => ctx.set_data(pending, staged, &r.path, &r.data, r.version),
        WriteRequest::SetAcl(r) => prepare_set_acl(ctx, pending, staged, r),
        WriteRequest::Check(r) => ctx.check(pending, staged, &r.path, r.version),
        WriteRequest::Multi(_) => Err(ErrorCode::BadArguments),
    }
}

fn prepare_set_acl(
    ctx: &PrepContext<'_>,
    pending: &PendingChanges,
    staged: &mut Staged,
    r: &zk_proto::SetAclRequest,
) -> Result<TxnBody, ErrorCode> {
    validate_path(&r.path).map_err(|_| ErrorCode::BadArguments)?;
    let new_acl = acl::fixup(&r.acl, ctx.auth)?;
    let node = ctx.require(pending, staged, &r.path)?;
    ctx.check_perm(&node, Perms::ADMIN)?;
    let new_version = check_version(node.stat.aversion, r.version)?;
    let mut after = node;
    after.stat.aversion = new_version;
    after.acl = Arc::new(new_acl.clone());
    staged.records.push((r.path.clone(), Some(after)));
    Ok(TxnBody::SetAcl(SetAclTxn {
        path: r.path.clone(),
        acl: new_acl,
        version: new_version,
    }))
}

fn prepare_multi(
    ctx: &PrepContext<'_>,
    pending: &PendingChanges,
    staged: &mut Staged,
    ops: &[MultiOp],
) -> Result<TxnBody, PrepError> {
    let mut bodies = Vec::with_capacity(ops.len());
    for (index, op) in ops.iter().enumerate() {
        let request = match op {
            MultiOp::Create(r) | MultiOp::Create2(r) => WriteRequest::Create(r),
            MultiOp::CreateContainer(r) => WriteRequest::CreateContainer(r),
            MultiOp::CreateTtl(r) => WriteRequest::CreateTtl(r),
            MultiOp::Delete(r) => WriteRequest::Delete(r),
            MultiOp::SetData(r) => WriteRequest::SetData(r),
            MultiOp::Check(r) => WriteRequest::Check(r),
            MultiOp::GetChildren(_) | MultiOp::GetData(_) => {
                return Err(PrepError::Multi(failure_codes(
                    ops.len(),
                    index,
                    ErrorCode::BadArguments,
                )))
            }
        };
        match prepare_single(ctx, pending, staged, request) {
            Ok(body) => bodies.push(body),
            Err(code) => return Err(PrepError::Multi(failure_codes(ops.len(), index, code))),
        }
    }
    Ok(TxnBody::Multi(MultiTxn::from_bodies(&bodies)))
}

/// Apache's failed-multi pattern: 0 before the failing op, its code, -2 after.
fn failure_codes(len: usize, failed: usize, code: ErrorCode) -> Vec<i32> {
    (0..len)
        .map(|i| match i.cmp(&failed) {
            std::cmp::Ordering::Less => 0,
            std::cmp::Ordering::Equal => code.as_i32(),
            std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency.as_i32(),
        })
        .collect()
}

/// Prepares the deletion of an expired container or TTL node; `None` if it no longer qualifies.
pub fn prepare_delete_container(
    ctx: &PrepContext<'_>,
    pending: &mut PendingChanges,
    path: &str,
) -> Option<TxnBody> {
    let mut staged = Staged::default();
    let node = ctx.lookup(pending, &staged, path)?;
    if node.num_children > 0 || !matches!(node.owner(), Owner::Container | Owner::Ttl(_)) {
        return None;
    }
    let (parent_path, _) = split_parent(path)?;
    let mut parent = ctx.lookup(pending, &staged, parent_path)?;
    parent.num_children = parent.num_children.saturating_sub(1);
    parent.stat.pzxid = ctx.zxid;
    staged.records.push((parent_path.to_owned(), Some(parent)));
    staged.records.push((path.to_owned(), None));
    for (p, view) in staged.records {
        pending.record(ctx.zxid, p, view);
    }
    Some(TxnBody::DeleteContainer(DeleteTxn {
        path: path.to_owned(),
    }))
}

/// Prepares a session close: lists the session's ephemerals (including those of pending txns)
/// and stages their deletion.
pub fn prepare_close_session(ctx: &PrepContext<'_>, pending: &mut PendingChanges) -> TxnBody {
    let paths = pending.ephemerals_of(ctx.tree, ctx.session_id);
    for path in &paths {
        if let Some((parent_path, _)) = split_parent(path) {
            if let Some(mut parent) = pending.lookup(ctx.tree, parent_path) {
                parent.num_children = parent.num_children.saturating_sub(1);
                parent.stat.pzxid = ctx.zxid;
                pending.record(ctx.zxid, parent_path.to_owned(), Some(parent));
            }
        }
        pending.record(ctx.zxid, path.clone(), None);
    }
    TxnBody::CloseSession(zk_proto::CloseSessionTxn {
        paths_to_delete: paths,
    })
}

#[cfg(test)]
mod tests;
