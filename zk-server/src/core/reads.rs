//! Reads and the other requests answered from the committed tree without a txn.

use zk_proto::{
    AddWatchMode, ClientInfo, ErrorCode, ErrorResponse, EventType, ExistsResponse, GetAclResponse,
    GetAllChildrenNumberResponse, GetChildren2Response, GetChildrenResponse, GetDataResponse,
    GetEphemeralsResponse, MultiOp, MultiResponse, MultiResult, Perms, Request, SyncResponse,
    WatcherType, WhoAmIResponse,
};

use super::{replies, ServerCore};
use crate::tree::DataNode;
use crate::watch::WatchKind;
use crate::ConnId;

impl ServerCore {
    /// Answers a read (or session-local request) now, from the committed tree.
    ///
    /// Paths are not validated, as in Apache's FinalRequestProcessor: a malformed path names
    /// no node (NONODE), and a watch on it simply never fires. Only exists refuses a NUL.
    pub(super) fn execute_read(&mut self, conn: ConnId, xid: i32, request: Request) {
        let zxid = self.tree.last_processed_zxid();
        let frame = match self.read_reply(conn, xid, zxid, request) {
            Ok(frame) => frame,
            Err(code) => replies::bare(xid, zxid, code),
        };
        self.send_reply(conn, frame);
    }

    fn node_for_read(&self, conn: ConnId, path: &str) -> Result<&DataNode, ErrorCode> {
        let node = self.tree.get(path).ok_or(ErrorCode::NoNode)?;
        self.require(conn, node, Perms::READ)?;
        Ok(node)
    }

    fn require(&self, conn: ConnId, node: &DataNode, perm: Perms) -> Result<(), ErrorCode> {
        let auth = self
            .conns
            .get(&conn)
            .map(|c| c.auth.as_slice())
            .unwrap_or_default();
        if crate::acl::check(&node.acl, perm, auth) {
            Ok(())
        } else {
            Err(ErrorCode::NoAuth)
        }
    }

    fn read_reply(
        &mut self,
        conn: ConnId,
        xid: i32,
        zxid: i64,
        request: Request,
    ) -> Result<bytes::Bytes, ErrorCode> {
        Ok(match request {
            Request::Exists(r) => {
                // Apache refuses only a NUL here (a watch on such a path could never fire).
                if r.path.contains('\0') {
                    return Err(ErrorCode::BadArguments);
                }
                if let Some(node) = self.tree.get(&r.path) {
                    self.require(conn, node, Perms::READ)?;
                }
                // The watch is set whether or not the node exists.
                if r.watch {
                    self.watches.add(WatchKind::Data, &r.path, conn);
                }
                let node = self.tree.get(&r.path).ok_or(ErrorCode::NoNode)?;
                replies::ok(
                    xid,
                    zxid,
                    &ExistsResponse {
                        stat: node.client_stat(),
                    },
                )
            }
            Request::GetData(r) => {
                let node = self.node_for_read(conn, &r.path)?;
                let response = GetDataResponse {
                    data: node.data.clone(),
                    stat: node.client_stat(),
                };
                if r.watch {
                    self.watches.add(WatchKind::Data, &r.path, conn);
                }
                replies::ok(xid, zxid, &response)
            }
            Request::GetChildren(r) => {
                let node = self.node_for_read(conn, &r.path)?;
                let response = GetChildrenResponse {
                    children: node.children.iter().map(str::to_owned).collect(),
                };
                if r.watch {
                    self.watches.add(WatchKind::Child, &r.path, conn);
                }
                replies::ok(xid, zxid, &response)
            }
            Request::GetChildren2(r) => {
                let node = self.node_for_read(conn, &r.path)?;
                let response = GetChildren2Response {
                    children: node.children.iter().map(str::to_owned).collect(),
                    stat: node.client_stat(),
                };
                if r.watch {
                    self.watches.add(WatchKind::Child, &r.path, conn);
                }
                replies::ok(xid, zxid, &response)
            }
            Request::GetAcl(r) => {
                let node = self.tree.get(&r.path).ok_or(ErrorCode::NoNode)?;
                let admin = self.require(conn, node, Perms::ADMIN).is_ok();
                if !admin {
                    self.require(conn, node, Perms::READ)?;
                }
                let acl = if admin {
                    node.acl.to_vec()
                } else {
                    crate::acl::mask_digests(&node.acl)
                };
                replies::ok(
                    xid,
                    zxid,
                    &GetAclResponse {
                        acl,
                        stat: node.client_stat(),
                    },
                )
            }
            Request::Sync(r) => replies::ok(xid, zxid, &SyncResponse { path: r.path }),
            Request::GetEphemerals(r) => {
                let session = self.conns.get(&conn).and_then(|c| c.session).unwrap_or(0);
                let prefix = r.prefix_path;
                let ephemerals = self
                    .tree
                    .ephemerals_of(session)
                    .into_iter()
                    .filter(|p| prefix.is_empty() || prefix == "/" || p.starts_with(&prefix))
                    .collect();
                replies::ok(xid, zxid, &GetEphemeralsResponse { ephemerals })
            }
            Request::GetAllChildrenNumber(r) => {
                self.node_for_read(conn, &r.path)?;
                let total_number =
                    i32::try_from(self.tree.count_descendants(&r.path)).unwrap_or(i32::MAX);
                replies::ok(xid, zxid, &GetAllChildrenNumberResponse { total_number })
            }
            Request::WhoAmI => {
                let client_info = self
                    .conns
                    .get(&conn)
                    .map(|c| {
                        c.auth
                            .iter()
                            .map(|id| ClientInfo {
                                auth_scheme: id.scheme.clone(),
                                user: match id.scheme.as_str() {
                                    "digest" => {
                                        id.id.split(':').next().unwrap_or_default().to_owned()
                                    }
                                    _ => id.id.clone(),
                                },
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                replies::ok(xid, zxid, &WhoAmIResponse { client_info })
            }
            Request::AddWatch(r) => {
                let kind = match r.mode {
                    AddWatchMode::Persistent => WatchKind::Persistent,
                    AddWatchMode::PersistentRecursive => WatchKind::PersistentRecursive,
                };
                self.watches.add(kind, &r.path, conn);
                replies::ok(xid, zxid, &ErrorResponse { err: 0 })
            }
            Request::CheckWatches(r) => {
                let found = watch_kinds(r.watcher_type)
                    .iter()
                    .any(|kind| self.watches.contains(*kind, &r.path, conn));
                let code = if found {
                    ErrorCode::Ok
                } else {
                    ErrorCode::NoWatcher
                };
                replies::bare(xid, zxid, code)
            }
            Request::RemoveWatches(r) => {
                let mut removed = false;
                for kind in watch_kinds(r.watcher_type) {
                    removed |= self.watches.remove(*kind, &r.path, conn);
                }
                let code = if removed {
                    ErrorCode::Ok
                } else {
                    ErrorCode::NoWatcher
                };
                replies::bare(xid, zxid, code)
            }
            Request::SetWatches(r) => {
                self.set_watches(
                    conn,
                    r.relative_zxid,
                    &r.data_watches,
                    &r.exist_watches,
                    &r.child_watches,
                    &[],
                    &[],
                );
                replies::bare(xid, zxid, ErrorCode::Ok)
            }
            Request::SetWatches2(r) => {
                self.set_watches(
                    conn,
                    r.relative_zxid,
                    &r.data_watches,
                    &r.exist_watches,
                    &r.child_watches,
                    &r.persistent_watches,
                    &r.persistent_recursive_watches,
                );
                replies::bare(xid, zxid, ErrorCode::Ok)
            }
            Request::MultiRead(m) => {
                let results = m
                    .ops
                    .iter()
                    .map(|op| self.multi_read_result(conn, op))
                    .collect();
                replies::ok(xid, zxid, &MultiResponse { results })
            }
            Request::Ping => replies::bare(xid, zxid, ErrorCode::Ok),
            Request::Reconfig(_) => replies::bare(xid, zxid, ErrorCode::ReconfigDisabled),
            Request::Sasl(_) => replies::bare(xid, zxid, ErrorCode::AuthFailed),
            // Writes, auth and closeSession never reach here; answer defensively.
            Request::Create(_)
            | Request::Create2(_)
            | Request::CreateContainer(_)
            | Request::CreateTtl(_)
            | Request::Delete(_)
            | Request::SetData(_)
            | Request::SetAcl(_)
            | Request::Check(_)
            | Request::Multi(_)
            | Request::Auth(_)
            | Request::CloseSession => replies::bare(xid, zxid, ErrorCode::SystemError),
        })
    }

    fn multi_read_result(&self, conn: ConnId, op: &MultiOp) -> MultiResult {
        let result = match op {
            MultiOp::GetChildren(r) => self.node_for_read(conn, &r.path).map(|node| {
                MultiResult::GetChildren(GetChildrenResponse {
                    children: node.children.iter().map(str::to_owned).collect(),
                })
            }),
            MultiOp::GetData(r) => self.node_for_read(conn, &r.path).map(|node| {
                MultiResult::GetData(GetDataResponse {
                    data: node.data.clone(),
                    stat: node.client_stat(),
                })
            }),
            _ => Err(ErrorCode::BadArguments),
        };
        result.unwrap_or_else(|code| MultiResult::Error(code.as_i32()))
    }

    /// Re-registers watches after a client reconnect, firing at once for what changed since
    /// `relative_zxid` (PROTOCOL.md §10).
    #[allow(clippy::too_many_arguments)]
    fn set_watches(
        &mut self,
        conn: ConnId,
        relative_zxid: i64,
        data: &[String],
        exist: &[String],
        child: &[String],
        persistent: &[String],
        recursive: &[String],
    ) {
        let mut events = Vec::new();
        for path in data {
            match self.tree.get(path) {
                None => events.push((EventType::NodeDeleted, path)),
                Some(node) if node.stat.mzxid > relative_zxid => {
                    events.push((EventType::NodeDataChanged, path));
                }
                Some(_) => self.watches.add(WatchKind::Data, path, conn),
            }
        }
        for path in exist {
            if self.tree.get(path).is_some() {
                events.push((EventType::NodeCreated, path));
            } else {
                self.watches.add(WatchKind::Data, path, conn);
            }
        }
        for path in child {
            match self.tree.get(path) {
                None => events.push((EventType::NodeDeleted, path)),
                Some(node) if node.stat.pzxid > relative_zxid => {
                    events.push((EventType::NodeChildrenChanged, path));
                }
                Some(_) => self.watches.add(WatchKind::Child, path, conn),
            }
        }
        for path in persistent {
            self.watches.add(WatchKind::Persistent, path, conn);
        }
        for path in recursive {
            self.watches.add(WatchKind::PersistentRecursive, path, conn);
        }
        // Delivered as Apache's DataTree.setWatches does: unfiltered by ACL (its
        // `watcher.process(event)` passes no ACL to check) and with no zxid (-1). Dropping an
        // event for a node the client may no longer read would also drop its watch, leaving
        // the client waiting for good.
        for (event, path) in events {
            self.send_unsolicited(conn, replies::notification(NO_ZXID, event, path));
        }
    }
}

/// The zxid of an event that no txn caused (Apache's `WatchedEvent.NO_ZXID`).
const NO_ZXID: i64 = -1;

fn watch_kinds(kind: WatcherType) -> &'static [WatchKind] {
    match kind {
        WatcherType::Children => &[WatchKind::Child],
        WatcherType::Data => &[WatchKind::Data],
        WatcherType::Persistent => &[WatchKind::Persistent],
        WatcherType::PersistentRecursive => &[WatchKind::PersistentRecursive],
        WatcherType::Any => &[
            WatchKind::Data,
            WatchKind::Child,
            WatchKind::Persistent,
            WatchKind::PersistentRecursive,
        ],
    }
}
