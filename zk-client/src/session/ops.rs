//! The raw operations of a [`Session`]: one method per request a client sends (PROTOCOL.md §5),
//! each validating its arguments before anything is queued.

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot};
use zk_proto::path::{
    into_client_path, prepend_chroot, strip_chroot, validate_create_path, validate_path,
    CONFIG_NODE,
};
use zk_proto::{
    Acl, AddWatchMode, AddWatchRequest, CheckVersionRequest, CheckWatchesRequest, ClientInfo,
    Create2Response, CreateMode, CreateRequest, CreateTtlRequest, Decode, DeleteRequest, Encode,
    GetAclRequest, GetAclResponse, GetAllChildrenNumberRequest, GetAllChildrenNumberResponse,
    GetChildren2Response, GetChildrenRequest, GetChildrenResponse, GetDataRequest, GetDataResponse,
    GetEphemeralsRequest, GetEphemeralsResponse, MultiOp, MultiRequest, MultiResponse, MultiResult,
    OpCode, ReconfigRequest, RemoveWatchesRequest, SetAclRequest, SetAclResponse, SetDataRequest,
    SetDataResponse, Stat, SyncRequest, SyncResponse, WatcherType, WhoAmIResponse,
};

use super::bodies::{self, ServerPath};
use super::watch::{OneShotKind, PersistentWatch, WatchFuture};
use super::{Action, Command, Session};
use crate::error::{Error, Result};

/// Largest TTL the server accepts (2^40 − 1 ms).
pub(crate) const MAX_TTL: i64 = (1 << 40) - 1;

/// Refuses data longer than `max` (the session's [`max_data_len`](Session::max_data_len)).
pub(crate) fn check_data(data: &[u8], max: usize) -> Result<()> {
    if data.len() > max {
        return Err(Error::DataTooLarge {
            len: data.len(),
            max,
        });
    }
    Ok(())
}

pub(crate) fn check_ttl(mode: CreateMode, ttl: Option<i64>) -> Result<()> {
    match (mode.is_ttl(), ttl) {
        (true, Some(ttl)) if !(1..=MAX_TTL).contains(&ttl) => Err(Error::TtlOutOfRange(ttl)),
        // A negative TTL is none for a mode without one (Java's `EphemeralType.validateTTL`;
        // Curator's default is -1).
        (true, Some(_)) | (false, None) => Ok(()),
        (false, Some(ttl)) if ttl < 0 => Ok(()),
        _ => Err(Error::TtlWithoutTtlMode),
    }
}

pub(crate) fn check_acl(acl: &[Acl]) -> Result<()> {
    if acl.is_empty() {
        return Err(Error::InvalidAcl);
    }
    Ok(())
}

/// Validates a create's arguments as the server would, before anything is sent (`max_data`:
/// the session's [`max_data_len`](Session::max_data_len)).
pub(crate) fn check_create(
    path: &str,
    data: &[u8],
    acl: &[Acl],
    mode: CreateMode,
    ttl: Option<i64>,
    max_data: usize,
) -> Result<()> {
    check_create_except_acl(path, data, mode, ttl, max_data)?;
    check_acl(acl)
}

/// [`check_create`] but for the ACL (for a caller that builds the ACL from the path).
pub(crate) fn check_create_except_acl(
    path: &str,
    data: &[u8],
    mode: CreateMode,
    ttl: Option<i64>,
    max_data: usize,
) -> Result<()> {
    validate_create_path(path, mode.is_sequential())?;
    check_data(data, max_data)?;
    check_ttl(mode, ttl)
}

fn body(record: &impl Encode) -> BytesMut {
    record.to_bytes()
}

fn decode<T: Decode>(bytes: &Bytes) -> Result<T> {
    T::from_bytes(bytes).map_err(|e| Error::Protocol(format!("malformed reply: {e}")))
}

/// One operation of a transaction (multi).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// Create a node.
    Create {
        /// The path.
        path: String,
        /// Initial data.
        data: Vec<u8>,
        /// The ACL.
        acl: Vec<Acl>,
        /// The mode.
        mode: CreateMode,
        /// The TTL, for TTL modes.
        ttl: Option<i64>,
    },
    /// Delete a node.
    Delete {
        /// The path.
        path: String,
        /// Expected version or -1.
        version: i32,
    },
    /// Write a node's data.
    SetData {
        /// The path.
        path: String,
        /// The data.
        data: Vec<u8>,
        /// Expected version or -1.
        version: i32,
    },
    /// Check a node's version.
    Check {
        /// The path.
        path: String,
        /// Expected version or -1.
        version: i32,
    },
}

impl Op {
    /// The op's path.
    pub fn path(&self) -> &str {
        match self {
            Op::Create { path, .. }
            | Op::Delete { path, .. }
            | Op::SetData { path, .. }
            | Op::Check { path, .. } => path,
        }
    }

    pub(crate) fn path_mut(&mut self) -> &mut String {
        match self {
            Op::Create { path, .. }
            | Op::Delete { path, .. }
            | Op::SetData { path, .. }
            | Op::Check { path, .. } => path,
        }
    }

    /// Validates the op's arguments (`max_data`: the session's
    /// [`max_data_len`](Session::max_data_len)).
    pub(crate) fn validate(&self, max_data: usize) -> Result<()> {
        match self {
            Op::Create {
                path,
                data,
                acl,
                mode,
                ttl,
            } => check_create(path, data, acl, *mode, *ttl, max_data),
            Op::SetData { path, data, .. } => {
                validate_path(path)?;
                check_data(data, max_data)
            }
            Op::Delete { path, .. } | Op::Check { path, .. } => Ok(validate_path(path)?),
        }
    }

    fn to_multi(&self, chroot: Option<&str>) -> MultiOp {
        match self {
            Op::Create {
                path,
                data,
                acl,
                mode,
                ttl,
            } => {
                let path = prepend_chroot(chroot, path);
                if let (true, Some(ttl)) = (mode.is_ttl(), ttl) {
                    MultiOp::CreateTtl(CreateTtlRequest {
                        path,
                        data: Some(data.clone()),
                        acl: acl.clone(),
                        flags: mode.flags(),
                        ttl: *ttl,
                    })
                } else {
                    let req = CreateRequest {
                        path,
                        data: Some(data.clone()),
                        acl: acl.clone(),
                        flags: mode.flags(),
                    };
                    if mode.is_container() {
                        MultiOp::CreateContainer(req)
                    } else {
                        MultiOp::Create2(req)
                    }
                }
            }
            Op::Delete { path, version } => MultiOp::Delete(DeleteRequest {
                path: prepend_chroot(chroot, path),
                version: *version,
            }),
            Op::SetData {
                path,
                data,
                version,
            } => MultiOp::SetData(SetDataRequest {
                path: prepend_chroot(chroot, path),
                data: Some(data.clone()),
                version: *version,
            }),
            Op::Check { path, version } => MultiOp::Check(CheckVersionRequest {
                path: prepend_chroot(chroot, path),
                version: *version,
            }),
        }
    }
}

/// The result of one successful transaction op.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpResult {
    /// A node was created.
    Create {
        /// Its path (with any sequence suffix).
        path: String,
        /// Its stat, when the server sent one (create2 results).
        stat: Option<Stat>,
    },
    /// A node was deleted.
    Delete,
    /// Data was written.
    SetData {
        /// The node's new stat.
        stat: Stat,
    },
    /// A version check passed.
    Check,
}

/// One read of a multi-read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadOp {
    /// Read a node's data.
    GetData(String),
    /// List a node's children.
    GetChildren(String),
}

/// The result of one read of a multi-read; each read succeeds or fails on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadResult {
    /// A node's data and stat.
    Data {
        /// The data.
        data: Vec<u8>,
        /// The stat.
        stat: Stat,
    },
    /// A node's children.
    Children(Vec<String>),
    /// The read failed.
    Error(Error),
}

impl Session {
    fn server_path(&self, path: &str) -> String {
        self.on_server(path).joined()
    }

    /// The path as the server knows it, not yet joined to the chroot (for a request body).
    fn on_server<'a>(&'a self, path: &'a str) -> ServerPath<'a> {
        ServerPath::new(self.chroot(), path)
    }

    fn client_path(&self, server_path: String) -> String {
        into_client_path(self.chroot(), server_path)
    }

    /// Creates a node and returns its path (with any sequence suffix) and stat. Uses create2,
    /// createContainer or createTTL as the mode requires.
    ///
    /// # Notable errors
    /// [`Error::NodeExists`], [`Error::NoNode`] (parent missing),
    /// [`Error::NoChildrenForEphemerals`], [`Error::Unimplemented`] for TTL modes on a server
    /// without extended types; argument errors before anything is sent.
    pub async fn create(
        &self,
        path: &str,
        data: &[u8],
        acl: &[Acl],
        mode: CreateMode,
        ttl: Option<i64>,
    ) -> Result<(String, Stat)> {
        check_create(path, data, acl, mode, ttl, self.max_data_len())?;
        let (op, ttl) = if mode.is_ttl() {
            (OpCode::CreateTtl, Some(ttl.unwrap_or(0)))
        } else if mode.is_container() {
            (OpCode::CreateContainer, None)
        } else {
            (OpCode::Create2, None)
        };
        let body = bodies::create(self.on_server(path), data, acl, mode.flags(), ttl);
        let reply = self.submit(op, body, Action::None).await?;
        let resp: Create2Response = decode(&reply)?;
        Ok((self.client_path(resp.path), resp.stat))
    }

    /// Deletes a node if its version matches (`-1`: any version).
    ///
    /// # Notable errors
    /// [`Error::NoNode`], [`Error::BadVersion`], [`Error::NotEmpty`].
    pub async fn delete(&self, path: &str, version: i32) -> Result<()> {
        validate_path(path)?;
        let body = bodies::delete(self.on_server(path), version);
        self.submit(OpCode::Delete, body, Action::None).await?;
        Ok(())
    }

    /// The node's stat, or `None` if it does not exist.
    pub async fn exists(&self, path: &str) -> Result<Option<Stat>> {
        validate_path(path)?;
        let body = bodies::path_and_watch(self.on_server(path), false);
        match self.submit(OpCode::Exists, body, Action::None).await {
            Ok(reply) => Ok(Some(decode::<Stat>(&reply)?)),
            Err(Error::NoNode) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Like [`exists`](Self::exists), leaving a watch that fires when the node is created,
    /// deleted or its data changes (set whether or not the node exists).
    pub async fn exists_watched(&self, path: &str) -> Result<(Option<Stat>, WatchFuture)> {
        validate_path(path)?;
        let server = self.on_server(path);
        let body = bodies::path_and_watch(server, true);
        let (tx, rx) = oneshot::channel();
        let action = Action::Exists {
            path: server.joined(),
            tx,
        };
        let watch = WatchFuture::new(rx, path.to_owned());
        match self.submit(OpCode::Exists, body, action).await {
            Ok(reply) => Ok((Some(decode::<Stat>(&reply)?), watch)),
            Err(Error::NoNode) => Ok((None, watch)),
            Err(e) => Err(e),
        }
    }

    /// A node's data and stat, optionally leaving a data watch (only if the node exists).
    pub async fn get_data(
        &self,
        path: &str,
        watch: bool,
    ) -> Result<(Vec<u8>, Stat, Option<WatchFuture>)> {
        validate_path(path)?;
        let server = self.on_server(path);
        let body = bodies::path_and_watch(server, watch);
        let (action, fut) = self.one_shot(OneShotKind::Data, watch, server, path);
        let reply = self.submit(OpCode::GetData, body, action).await?;
        let resp: GetDataResponse = decode(&reply)?;
        Ok((resp.data.unwrap_or_default(), resp.stat, fut))
    }

    fn one_shot(
        &self,
        kind: OneShotKind,
        watch: bool,
        server: ServerPath<'_>,
        path: &str,
    ) -> (Action, Option<WatchFuture>) {
        if !watch {
            return (Action::None, None);
        }
        let (tx, rx) = oneshot::channel();
        (
            Action::OneShot {
                kind,
                path: server.joined(),
                tx,
            },
            Some(WatchFuture::new(rx, path.to_owned())),
        )
    }

    /// Writes a node's data if its version matches (`-1`: any); returns the new stat.
    pub async fn set_data(&self, path: &str, data: &[u8], version: i32) -> Result<Stat> {
        validate_path(path)?;
        check_data(data, self.max_data_len())?;
        let body = bodies::set_data(self.on_server(path), data, version);
        let reply = self.submit(OpCode::SetData, body, Action::None).await?;
        Ok(decode::<SetDataResponse>(&reply)?.stat)
    }

    /// A node's children names (getChildren), optionally leaving a child watch.
    pub async fn get_children(
        &self,
        path: &str,
        watch: bool,
    ) -> Result<(Vec<String>, Option<WatchFuture>)> {
        validate_path(path)?;
        let server = self.on_server(path);
        let body = bodies::path_and_watch(server, watch);
        let (action, fut) = self.one_shot(OneShotKind::Child, watch, server, path);
        let reply = self.submit(OpCode::GetChildren, body, action).await?;
        Ok((decode::<GetChildrenResponse>(&reply)?.children, fut))
    }

    /// A node's children names and its stat (getChildren2), optionally leaving a child watch.
    pub async fn get_children2(
        &self,
        path: &str,
        watch: bool,
    ) -> Result<(Vec<String>, Stat, Option<WatchFuture>)> {
        validate_path(path)?;
        let server = self.on_server(path);
        let body = bodies::path_and_watch(server, watch);
        let (action, fut) = self.one_shot(OneShotKind::Child, watch, server, path);
        let reply = self.submit(OpCode::GetChildren2, body, action).await?;
        let resp: GetChildren2Response = decode(&reply)?;
        Ok((resp.children, resp.stat, fut))
    }

    /// A node's ACL and stat.
    pub async fn get_acl(&self, path: &str) -> Result<(Vec<Acl>, Stat)> {
        validate_path(path)?;
        let req = GetAclRequest {
            path: self.server_path(path),
        };
        let reply = self
            .submit(OpCode::GetAcl, body(&req), Action::None)
            .await?;
        let resp: GetAclResponse = decode(&reply)?;
        Ok((resp.acl, resp.stat))
    }

    /// Replaces a node's ACL if its ACL version matches (`-1`: any).
    pub async fn set_acl(&self, path: &str, acl: &[Acl], version: i32) -> Result<Stat> {
        validate_path(path)?;
        check_acl(acl)?;
        let req = SetAclRequest {
            path: self.server_path(path),
            acl: acl.to_vec(),
            version,
        };
        let reply = self
            .submit(OpCode::SetAcl, body(&req), Action::None)
            .await?;
        Ok(decode::<SetAclResponse>(&reply)?.stat)
    }

    /// Waits until the server this session talks to has caught up with the leader.
    pub async fn sync(&self, path: &str) -> Result<String> {
        validate_path(path)?;
        let req = SyncRequest {
            path: self.server_path(path),
        };
        let reply = self.submit(OpCode::Sync, body(&req), Action::None).await?;
        Ok(self.client_path(decode::<SyncResponse>(&reply)?.path))
    }

    /// Runs `ops` atomically (multi). On failure nothing is applied and the error names the
    /// first failing op.
    ///
    /// # Notable errors
    /// [`Error::Transaction`] wrapping the failing op's error.
    pub async fn multi(&self, ops: &[Op]) -> Result<Vec<OpResult>> {
        for op in ops {
            op.validate(self.max_data_len())?;
        }
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let req = MultiRequest {
            ops: ops.iter().map(|op| op.to_multi(self.chroot())).collect(),
        };
        let reply = self.submit(OpCode::Multi, body(&req), Action::None).await?;
        let resp: MultiResponse = decode(&reply)?;
        let failed = resp
            .results
            .iter()
            .enumerate()
            .find(|(_, r)| matches!(r, MultiResult::Error(code) if *code != 0 && *code != -2))
            .or_else(|| {
                resp.results
                    .iter()
                    .enumerate()
                    .find(|(_, r)| matches!(r, MultiResult::Error(code) if *code != 0))
            });
        if let Some((index, MultiResult::Error(code))) = failed {
            // UNIMPLEMENTED names the op the server refused (a TTL create without extended
            // types), not the multi.
            let op = req.ops.get(index).map(MultiOp::op_code);
            return Err(Error::Transaction {
                index,
                error: Box::new(Error::from_code(*code, op)),
            });
        }
        if resp.results.len() != ops.len() {
            return Err(Error::Protocol(format!(
                "multi sent {} ops but got {} results",
                ops.len(),
                resp.results.len()
            )));
        }
        resp.results
            .into_iter()
            .map(|r| match r {
                MultiResult::Create(c) => Ok(OpResult::Create {
                    path: self.client_path(c.path),
                    stat: None,
                }),
                MultiResult::Create2(c) => Ok(OpResult::Create {
                    path: self.client_path(c.path),
                    stat: Some(c.stat),
                }),
                MultiResult::Delete => Ok(OpResult::Delete),
                MultiResult::SetData(s) => Ok(OpResult::SetData { stat: s.stat }),
                MultiResult::Check => Ok(OpResult::Check),
                other => Err(Error::Protocol(format!(
                    "unexpected multi result {other:?}"
                ))),
            })
            .collect()
    }

    /// Runs several reads in one round trip (multiRead, 3.6+); each read succeeds or fails on
    /// its own.
    pub async fn multi_read(&self, ops: &[ReadOp]) -> Result<Vec<ReadResult>> {
        let mut multi = Vec::with_capacity(ops.len());
        for op in ops {
            multi.push(match op {
                ReadOp::GetData(p) => {
                    validate_path(p)?;
                    MultiOp::GetData(GetDataRequest {
                        path: self.server_path(p),
                        watch: false,
                    })
                }
                ReadOp::GetChildren(p) => {
                    validate_path(p)?;
                    MultiOp::GetChildren(GetChildrenRequest {
                        path: self.server_path(p),
                        watch: false,
                    })
                }
            });
        }
        if multi.is_empty() {
            return Ok(Vec::new());
        }
        let reply = self
            .submit(
                OpCode::MultiRead,
                body(&MultiRequest { ops: multi }),
                Action::None,
            )
            .await?;
        let resp: MultiResponse = decode(&reply)?;
        resp.results
            .into_iter()
            .map(|r| match r {
                MultiResult::GetData(d) => Ok(ReadResult::Data {
                    data: d.data.unwrap_or_default(),
                    stat: d.stat,
                }),
                MultiResult::GetChildren(c) => Ok(ReadResult::Children(c.children)),
                MultiResult::Error(code) => Ok(ReadResult::Error(Error::from_code(code, None))),
                other => Err(Error::Protocol(format!(
                    "unexpected multiRead result {other:?}"
                ))),
            })
            .collect()
    }

    /// Adds a persistent (or persistent recursive) watch (addWatch, 3.6+): a stream of events
    /// that survives reconnects and is removed from the server when dropped.
    pub async fn add_watch(&self, path: &str, mode: AddWatchMode) -> Result<PersistentWatch> {
        validate_path(path)?;
        let server_path = self.server_path(path);
        let req = AddWatchRequest {
            path: server_path.clone(),
            mode,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let id = next_watch_id();
        let action = Action::Persistent {
            path: server_path.clone(),
            mode,
            id,
            tx,
        };
        let stream = PersistentWatch::new(
            rx,
            id,
            server_path,
            mode == AddWatchMode::PersistentRecursive,
            self.weak_commands(),
        );
        self.submit(OpCode::AddWatch, body(&req), action).await?;
        Ok(stream)
    }

    /// Removes this session's watches of `watcher_type` on `path` from the server and locally;
    /// local watchers see a `*WatchRemoved` event.
    ///
    /// # Notable errors
    /// [`Error::NoWatcher`] if the server has none.
    pub async fn remove_watches(&self, path: &str, watcher_type: WatcherType) -> Result<()> {
        validate_path(path)?;
        let server_path = self.server_path(path);
        let req = RemoveWatchesRequest {
            path: server_path.clone(),
            watcher_type,
        };
        let action = Action::RemoveWatches {
            path: server_path,
            watcher_type,
        };
        self.submit(OpCode::RemoveWatches, body(&req), action)
            .await?;
        Ok(())
    }

    /// Removes this session's watches of `watcher_type` on `path` locally only; returns whether
    /// there were any.
    pub async fn remove_watches_locally(
        &self,
        path: &str,
        watcher_type: WatcherType,
    ) -> Result<bool> {
        Ok(self.remove_local_watches(path, watcher_type).await?.0)
    }

    /// [`Session::remove_watches_locally`], also telling whether a persistent watch of this
    /// session remains on `path`.
    pub(crate) async fn remove_local_watches(
        &self,
        path: &str,
        watcher_type: WatcherType,
    ) -> Result<(bool, bool)> {
        validate_path(path)?;
        let (reply, rx) = oneshot::channel();
        self.send_command(Command::RemoveLocal {
            path: self.server_path(path),
            watcher_type,
            reply,
        })?;
        rx.await.map_err(|_| Error::Closed)
    }

    /// Asks the server whether this session has a watch of `watcher_type` on `path`
    /// (checkWatches).
    pub async fn check_watches(&self, path: &str, watcher_type: WatcherType) -> Result<()> {
        validate_path(path)?;
        let req = CheckWatchesRequest {
            path: self.server_path(path),
            watcher_type,
        };
        self.submit(OpCode::CheckWatches, body(&req), Action::None)
            .await?;
        Ok(())
    }

    /// The session's ephemeral nodes whose path starts with `prefix` (3.6+).
    pub async fn get_ephemerals(&self, prefix: &str) -> Result<Vec<String>> {
        let req = GetEphemeralsRequest {
            prefix_path: self.server_path(if prefix.is_empty() { "/" } else { prefix }),
        };
        let reply = self
            .submit(OpCode::GetEphemerals, body(&req), Action::None)
            .await?;
        let resp: GetEphemeralsResponse = decode(&reply)?;
        Ok(resp
            .ephemerals
            .iter()
            .filter_map(|p| strip_chroot(self.chroot(), p).map(str::to_owned))
            .collect())
    }

    /// The number of descendants of a node, at any depth (3.6+).
    pub async fn get_all_children_number(&self, path: &str) -> Result<i32> {
        validate_path(path)?;
        let req = GetAllChildrenNumberRequest {
            path: self.server_path(path),
        };
        let reply = self
            .submit(OpCode::GetAllChildrenNumber, body(&req), Action::None)
            .await?;
        Ok(decode::<GetAllChildrenNumberResponse>(&reply)?.total_number)
    }

    /// The identities the server associates with this connection (3.7+).
    pub async fn who_am_i(&self) -> Result<Vec<ClientInfo>> {
        let reply = self
            .submit(OpCode::WhoAmI, BytesMut::new(), Action::None)
            .await?;
        Ok(decode::<WhoAmIResponse>(&reply)?.client_info)
    }

    /// The ensemble's dynamic configuration (getConfig): the data and stat of
    /// [`CONFIG_NODE`], which is read at that path whatever the
    /// chroot, optionally leaving a data watch on it.
    pub async fn get_config(&self, watch: bool) -> Result<(Vec<u8>, Stat, Option<WatchFuture>)> {
        let server = ServerPath::new(None, CONFIG_NODE);
        let body = bodies::path_and_watch(server, watch);
        let (action, fut) = self.one_shot(OneShotKind::Data, watch, server, CONFIG_NODE);
        let reply = self.submit(OpCode::GetData, body, action).await?;
        let resp: GetDataResponse = decode(&reply)?;
        Ok((resp.data.unwrap_or_default(), resp.stat, fut))
    }

    /// Changes the ensemble membership (reconfig); returns the new configuration text and the
    /// stat of `/zookeeper/config`.
    pub async fn reconfig(&self, request: ReconfigRequest) -> Result<(Vec<u8>, Stat)> {
        let reply = self
            .submit(OpCode::Reconfig, body(&request), Action::None)
            .await?;
        let resp: GetDataResponse = decode(&reply)?;
        Ok((resp.data.unwrap_or_default(), resp.stat))
    }
}

fn next_watch_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::MAX_DATA_LEN;

    #[test]
    fn create_arguments_are_checked_before_sending() {
        let acl = Acl::open_unsafe();
        let ok = |p: &str, m| check_create(p, b"", &acl, m, None, MAX_DATA_LEN);
        assert!(ok("/a", CreateMode::Persistent).is_ok());
        assert!(ok("/a/", CreateMode::PersistentSequential).is_ok());
        assert!(matches!(
            ok("/a/", CreateMode::Persistent),
            Err(Error::InvalidPath(_))
        ));
        assert!(matches!(
            ok("a", CreateMode::Persistent),
            Err(Error::InvalidPath(_))
        ));
        assert!(matches!(
            ok("/a//b", CreateMode::Persistent),
            Err(Error::InvalidPath(_))
        ));
        assert!(matches!(
            ok("/a/./b", CreateMode::Persistent),
            Err(Error::InvalidPath(_))
        ));
        assert!(matches!(
            ok("/a\u{0}", CreateMode::Persistent),
            Err(Error::InvalidPath(_))
        ));
        let big = vec![0u8; MAX_DATA_LEN + 1];
        assert_eq!(
            check_create("/a", &big, &acl, CreateMode::Persistent, None, MAX_DATA_LEN),
            Err(Error::DataTooLarge {
                len: MAX_DATA_LEN + 1,
                max: MAX_DATA_LEN
            })
        );
        assert!(check_create(
            "/a",
            &big[..MAX_DATA_LEN],
            &acl,
            CreateMode::Persistent,
            None,
            MAX_DATA_LEN
        )
        .is_ok());
        assert_eq!(
            check_create(
                "/a",
                b"",
                &acl,
                CreateMode::Persistent,
                Some(10),
                MAX_DATA_LEN
            ),
            Err(Error::TtlWithoutTtlMode)
        );
        assert_eq!(
            check_create(
                "/a",
                b"",
                &acl,
                CreateMode::PersistentWithTtl,
                None,
                MAX_DATA_LEN
            ),
            Err(Error::TtlWithoutTtlMode)
        );
        assert!(check_create(
            "/a",
            b"",
            &acl,
            CreateMode::Persistent,
            Some(-1),
            MAX_DATA_LEN
        )
        .is_ok());
        assert_eq!(
            check_create(
                "/a",
                b"",
                &acl,
                CreateMode::PersistentWithTtl,
                Some(0),
                MAX_DATA_LEN
            ),
            Err(Error::TtlOutOfRange(0))
        );
        assert_eq!(
            check_create(
                "/a",
                b"",
                &acl,
                CreateMode::PersistentWithTtl,
                Some(MAX_TTL + 1),
                MAX_DATA_LEN
            ),
            Err(Error::TtlOutOfRange(MAX_TTL + 1))
        );
        assert!(check_create(
            "/a",
            b"",
            &acl,
            CreateMode::PersistentSequentialWithTtl,
            Some(MAX_TTL),
            MAX_DATA_LEN
        )
        .is_ok());
        assert_eq!(
            check_create("/a", b"", &[], CreateMode::Persistent, None, MAX_DATA_LEN),
            Err(Error::InvalidAcl)
        );
    }

    #[test]
    fn transaction_ops_validate_their_paths_and_data() {
        assert!(Op::Check {
            path: "bad".into(),
            version: 1
        }
        .validate(MAX_DATA_LEN)
        .is_err());
        assert!(Op::Delete {
            path: "/ok".into(),
            version: -1
        }
        .validate(MAX_DATA_LEN)
        .is_ok());
        assert!(Op::SetData {
            path: "/ok".into(),
            data: vec![0; MAX_DATA_LEN + 1],
            version: -1
        }
        .validate(MAX_DATA_LEN)
        .is_err());
    }
}
