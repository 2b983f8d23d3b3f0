//! The server core: a deterministic state machine without I/O.
//!
//! The driver feeds it [`Input`]s (a connection's handshake or request, a disconnect, a timer
//! tick, "the log is durable up to zxid Z") and executes the [`Action`]s it emits (send a frame,
//! close a connection, append a txn to the log, write a snapshot). The write path is
//! prep → persist (log append + fsync, batched by the storage thread) → apply → watch events →
//! reply; a reply or event is emitted only after every txn it depends on is durable. A failed
//! write becomes an error txn, so that its reply travels the same path as the writes around it
//! (it may rest on one of them: NODEEXISTS for a node whose create is not yet durable).
//!
//! In an ensemble ([`CoreConfig::replicated`]) the same core serves one member's clients:
//! writes are prepared by the leader (its own clients' and those learners forward, see
//! [`forward`]) and proposed through the replica ([`Action::Propose`]; a learner emits
//! [`Action::Forward`]), and every member applies the committed txns ([`Input::Committed`]),
//! answering the clients connected to it. Sessions are created and closed by
//! txns everywhere; the leader expires them, learners relay their clients' liveness. A role
//! change ([`Input::Role`]) closes every client connection, as Apache's servers restart their
//! request pipeline: the fate of writes in flight is unknown, clients reconnect and resume
//! their sessions.
//!
//! Ordering rules the driver must keep:
//! * `Persist` actions are appended to the log in emission order, and `Input::Persisted(z)` is
//!   fed only once every txn up to `z` is fsynced.
//! * `Send` actions for one connection are written in emission order; `Close` is executed after
//!   the sends emitted before it.

pub mod forward;
mod reads;
mod replies;
mod stats;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use bytes::Bytes;
use zk_proto::{
    ConnectRequest, ConnectResponse, Create2Response, CreateResponse, CreateSessionTxn, Encode,
    ErrorCode, Id, MultiResponse, MultiResult, OpCode, Request, SetAclResponse, SetDataResponse,
    Txn, TxnBody,
};

use self::forward::Forwarded;
use crate::prep::{self, PendingChanges, PrepContext, PrepError, WriteRequest};
use crate::session::{session_password, SessionTracker, PASSWORD_LEN};
use crate::tree::{DataTree, TxnOutcome, WatchTrigger};
use crate::watch::WatchManager;
use crate::{ConnId, IdMap};

pub use stats::ServerStats;

/// Settings the core needs.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// This server's id (0 standalone), the top byte of session ids.
    pub server_id: u8,
    /// Lower bound of negotiated session timeouts, ms.
    pub min_session_timeout_ms: i32,
    /// Upper bound of negotiated session timeouts, ms.
    pub max_session_timeout_ms: i32,
    /// Whether TTL nodes are enabled.
    pub extended_types: bool,
    /// The digest id (`super:BASE64`) that grants super-user rights.
    pub super_digest: Option<String>,
    /// Txns between snapshots.
    pub snap_count: u64,
    /// Never-used containers are deleted after this long (0 = never).
    pub container_max_never_used_ms: i64,
    /// At most this many container/TTL deletions per tick.
    pub container_max_per_tick: usize,
    /// Answer the opcodes added after 3.5 ([`OpCode::added_after_3_5`]) UNIMPLEMENTED and close the
    /// connection, as a 3.5 server does.
    pub emulate_3_5: bool,
    /// Serve as an ensemble member: writes go through the replica, and the core serves no
    /// client until [`Input::Role`] says the replica is leading or synced.
    pub replicated: bool,
    /// An ensemble member's configuration in Apache's dynamic-config form (`server.N=…`
    /// lines, then `version=0`), shown in `/zookeeper/config`; `None` standalone (whose
    /// config node stays empty, as Apache's).
    pub ensemble_config: Option<String>,
}

/// The replica's role, as the core of an ensemble member needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaRole {
    /// Electing or syncing: clients are refused.
    NotServing,
    /// The established leader; the next proposal gets `next_zxid`.
    Leader {
        /// The zxid the replica assigns to the next proposal.
        next_zxid: i64,
    },
    /// A synced follower or observer of `leader`.
    Learner {
        /// The leader's server id.
        leader: u64,
    },
}

impl ReplicaRole {
    /// The role the core needs, from the replica's: serving as the established leader
    /// (`next_zxid`: what the replica assigns to the next proposal) or as a synced learner.
    pub fn of(role: crate::zab::Role, next_zxid: Option<i64>) -> ReplicaRole {
        use crate::zab::Role;
        match (role, next_zxid) {
            (
                Role::Leading {
                    established: true, ..
                },
                Some(next_zxid),
            ) => ReplicaRole::Leader { next_zxid },
            (
                Role::Following {
                    leader,
                    serving: true,
                }
                | Role::Observing {
                    leader,
                    serving: true,
                },
                _,
            ) => ReplicaRole::Learner { leader },
            _ => ReplicaRole::NotServing,
        }
    }
}

/// The time, as the driver sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Wall clock, ms since the epoch (txn timestamps).
    pub wall_ms: i64,
    /// Monotonic clock, ms (session expiry).
    pub mono_ms: u64,
}

/// Something that happened outside the core.
#[derive(Debug)]
pub enum Input {
    /// A connection sent its handshake.
    Connect {
        /// The connection.
        conn: ConnId,
        /// Its handshake.
        request: ConnectRequest,
        /// Its remote address (the implicit `ip` identity).
        remote: std::net::SocketAddr,
    },
    /// A connection sent a request.
    Request {
        /// The connection.
        conn: ConnId,
        /// The request's xid.
        xid: i32,
        /// The request.
        request: Request,
    },
    /// A connection sent a request the server cannot serve, answered `code` in its turn: an
    /// opcode it does not know (UNIMPLEMENTED, then the connection is closed, as by Apache's
    /// UnimplementedRequestProcessor), or a body that does not decode (MARSHALLINGERROR, the
    /// connection kept, as Apache's request processors answer).
    Refused {
        /// The connection.
        conn: ConnId,
        /// The request's xid.
        xid: i32,
        /// The answer: UNIMPLEMENTED or MARSHALLINGERROR.
        code: ErrorCode,
    },
    /// A connection closed.
    Disconnected {
        /// The connection.
        conn: ConnId,
    },
    /// Time passed: expire sessions whose deadline passed.
    Tick,
    /// Delete containers and TTL nodes that are due.
    CheckContainers,
    /// Every txn up to this zxid is durable.
    Persisted(i64),
    /// Ensemble: the replica's role changed.
    Role(ReplicaRole),
    /// Ensemble: a txn committed (in zxid order).
    Committed {
        /// Its zxid.
        zxid: i64,
        /// The encoded txn.
        txn: Bytes,
    },
    /// Ensemble, as leader: something a learner forwarded ([`Forwarded`]).
    Forwarded {
        /// The learner's server id.
        from: u64,
        /// The encoded item.
        data: Bytes,
    },
}

/// Something the driver must do.
#[derive(Debug, Clone)]
pub enum Action {
    /// Write a frame to a connection.
    Send {
        /// The connection.
        conn: ConnId,
        /// The complete frame, length prefix included.
        frame: Bytes,
        /// Whether it answers one of the connection's requests (connections bound the number
        /// of requests awaiting an answer).
        reply: bool,
    },
    /// Close a connection once the frames before this action are written.
    Close {
        /// The connection.
        conn: ConnId,
    },
    /// Append a txn to the log; report `Input::Persisted` once it is fsynced.
    Persist {
        /// The txn's zxid.
        zxid: i64,
        /// The encoded txn (header, body).
        txn: Bytes,
    },
    /// Ensemble, as leader: propose a txn; the replica must assign it `zxid`.
    Propose {
        /// The zxid the txn was prepared with.
        zxid: i64,
        /// The encoded txn.
        txn: Bytes,
    },
    /// Ensemble, as learner: forward an item to the leader.
    Forward {
        /// The encoded [`Forwarded`] item.
        data: Bytes,
    },
    /// Write a snapshot of the state as of `zxid` and start a new log file after it.
    Snapshot {
        /// The last txn the snapshot contains.
        zxid: i64,
        /// The tree as of `zxid` (copy-on-write: serializing it does not hold up the core).
        image: crate::tree::TreeImage,
        /// Live sessions as (id, timeout).
        sessions: Vec<(i64, i32)>,
    },
}

/// One connection as the four-letter words report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The connection.
    pub conn: ConnId,
    /// The client's address.
    pub remote: std::net::SocketAddr,
    /// Its session, once established.
    pub session: Option<i64>,
    /// Requests waiting for their reply.
    pub queued: usize,
    /// Packets received.
    pub received: u64,
    /// Packets sent.
    pub sent: u64,
}

/// Where a prepared txn came from, and how to answer it.
#[derive(Debug)]
enum Origin {
    /// A client write; reply to `xid` on `conn`.
    Client {
        conn: ConnId,
        xid: i32,
        op: OpCode,
        /// For multis: each op's opcode, to choose result types.
        multi_ops: Vec<OpCode>,
    },
    /// A client's sync (ensemble); reply with the path.
    Sync {
        conn: ConnId,
        xid: i32,
        path: String,
    },
    /// A new session's createSession txn; send the ConnectResponse.
    Connect {
        conn: ConnId,
        read_only: Option<bool>,
    },
    /// Ensemble, as learner: the leader's answer to re-attaching a session unknown here;
    /// attach it with the negotiated `timeout`, or refuse it.
    Revalidate {
        conn: ConnId,
        timeout: i32,
        read_only: Option<bool>,
    },
    /// Session expiry or container cleanup.
    Internal,
}

#[derive(Debug)]
struct PendingTxn {
    txn: Txn,
    origin: Origin,
    proposed_at_ms: u64,
}

/// The txn of a write that failed in prep: an error txn, or for a multi a multi of error
/// txns (the failing op's code, the others' ok or rolled back), as Apache's.
fn error_txn(error: PrepError) -> TxnBody {
    match error {
        PrepError::Code(code) => TxnBody::Error(zk_proto::ErrorTxn { err: code.as_i32() }),
        PrepError::Multi(codes) => {
            let bodies: Vec<TxnBody> = codes
                .into_iter()
                .map(|err| TxnBody::Error(zk_proto::ErrorTxn { err }))
                .collect();
            TxnBody::Multi(zk_proto::MultiTxn::from_bodies(&bodies))
        }
    }
}

/// A place in a connection's reply order.
#[derive(Debug)]
enum Slot {
    /// A write (request `xid`) whose reply is produced when its txn applies.
    Awaiting { xid: i32 },
    /// A reply ready to go; close the connection after it if `close`.
    Ready { frame: Bytes, close: bool },
    /// A read to execute once everything before it has been answered.
    Read { xid: i32, request: Request },
}

#[derive(Debug)]
struct Conn {
    session: Option<i64>,
    /// A new session's createSession txn is pending; requests wait in `early`.
    handshaking: bool,
    early: VecDeque<(i32, Result<Request, ErrorCode>)>,
    auth: Vec<Id>,
    pipeline: VecDeque<Slot>,
    closing: bool,
    remote: std::net::SocketAddr,
    received: u64,
    sent: u64,
}

/// The server's replicated state plus per-connection bookkeeping.
pub struct ServerCore {
    config: CoreConfig,
    tree: DataTree,
    sessions: SessionTracker,
    watches: WatchManager,
    pending: PendingChanges,
    outstanding: VecDeque<PendingTxn>,
    /// Ensemble: this member's writes in flight by (session, cxid), with when they left.
    awaiting: HashMap<(i64, i32), (Origin, u64)>,
    /// Ensemble: the replica's role (`None` standalone).
    role: Option<ReplicaRole>,
    /// Ensemble, as leader: the member each session is attached to (ZooKeeper's session
    /// owner); a write from another member gets SESSIONMOVED.
    owners: IdMap<i64, u64>,
    /// Ensemble, as learner: sessions whose clients sent something since the last tick, to
    /// relay to the leader (an open connection alone keeps no session alive).
    heard_from: BTreeSet<i64>,
    conns: IdMap<ConnId, Conn>,
    /// Connections re-attaching a session whose writes sent through its previous connection
    /// are still in flight here, with the client's read-only flag: their handshake completes
    /// once those writes are answered, so that nothing the session sends next overtakes them.
    reattaching: Vec<(ConnId, Option<bool>)>,
    last_zxid: i64,
    txns_since_snapshot: u64,
    now: Now,
    stats: ServerStats,
    actions: Vec<Action>,
}

impl ServerCore {
    /// A core over a recovered tree and session table.
    pub fn new(
        config: CoreConfig,
        tree: DataTree,
        sessions: &[(i64, i32)],
        now: Now,
    ) -> ServerCore {
        let mut tracker = SessionTracker::new(config.server_id, now.wall_ms);
        for (id, timeout) in sessions {
            tracker.add(*id, *timeout, now.mono_ms);
        }
        let last_zxid = tree.last_processed_zxid();
        let role = config.replicated.then_some(ReplicaRole::NotServing);
        let mut core = ServerCore {
            config,
            tree,
            sessions: tracker,
            watches: WatchManager::new(),
            pending: PendingChanges::default(),
            outstanding: VecDeque::new(),
            awaiting: HashMap::new(),
            role,
            owners: IdMap::default(),
            heard_from: BTreeSet::new(),
            conns: IdMap::default(),
            reattaching: Vec::new(),
            last_zxid,
            txns_since_snapshot: 0,
            now,
            stats: ServerStats::default(),
            actions: Vec::new(),
        };
        core.install_ensemble_config();
        core
    }

    /// Shows this member's configuration in `/zookeeper/config` (after startup and after
    /// every state transfer, which brings the leader's copy: Apache ZOOKEEPER-2819).
    fn install_ensemble_config(&mut self) {
        if let Some(text) = &self.config.ensemble_config {
            self.tree.set_config_node(text, 0, self.now.wall_ms);
        }
    }

    /// The replica's role, in an ensemble.
    pub fn replica_role(&self) -> Option<ReplicaRole> {
        self.role
    }

    /// Whether this core prepares writes itself: standalone, or the ensemble's leader.
    fn prepares(&self) -> bool {
        matches!(self.role, None | Some(ReplicaRole::Leader { .. }))
    }

    /// The committed tree.
    pub fn tree(&self) -> &DataTree {
        &self.tree
    }

    /// Live sessions as (id, timeout).
    pub fn sessions(&self) -> Vec<(i64, i32)> {
        self.sessions.list()
    }

    /// Counters for the four-letter words.
    pub fn stats(&self) -> &ServerStats {
        &self.stats
    }

    /// The watch registry.
    pub fn watches(&self) -> &WatchManager {
        &self.watches
    }

    /// The last zxid assigned to a txn.
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// Per-connection figures for `cons` and `stat`, by connection id.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        let mut out: Vec<ConnectionInfo> = self
            .conns
            .iter()
            .map(|(id, c)| ConnectionInfo {
                conn: *id,
                remote: c.remote,
                session: c.session,
                queued: c.pipeline.len(),
                received: c.received,
                sent: c.sent,
            })
            .collect();
        out.sort_by_key(|c| c.conn);
        out
    }

    /// Resets the per-connection packet counters (`crst`).
    pub fn reset_connection_stats(&mut self) {
        for c in self.conns.values_mut() {
            c.received = 0;
            c.sent = 0;
        }
    }

    /// Resets the server counters (`srst`).
    pub fn reset_stats(&mut self) {
        self.stats = ServerStats::default();
    }

    /// Requests waiting for their reply.
    pub fn outstanding_requests(&self) -> usize {
        self.conns.values().map(|c| c.pipeline.len()).sum()
    }

    /// Processes one input at time `now`; returns the actions to execute, in order.
    pub fn step(&mut self, input: Input, now: Now) -> Vec<Action> {
        self.now = now;
        match input {
            Input::Connect {
                conn,
                request,
                remote,
            } => self.on_connect(conn, request, remote),
            Input::Request { conn, xid, request } => self.on_request(conn, xid, Ok(request)),
            Input::Refused { conn, xid, code } => self.on_request(conn, xid, Err(code)),
            Input::Disconnected { conn } => self.on_disconnect(conn),
            Input::Tick => self.on_tick(),
            Input::CheckContainers => self.clean_containers(),
            Input::Persisted(zxid) => self.on_persisted(zxid),
            Input::Role(role) => self.on_role(role),
            Input::Committed { zxid, txn } => self.on_committed(zxid, &txn),
            Input::Forwarded { from, data } => self.on_forwarded(from, &data),
        }
        std::mem::take(&mut self.actions)
    }

    /// Sends the reply to one of the connection's requests.
    fn send_reply(&mut self, conn: ConnId, frame: Bytes) {
        self.send(conn, frame, true);
    }

    /// Sends a frame that answers no request (handshake response, notification).
    fn send_unsolicited(&mut self, conn: ConnId, frame: Bytes) {
        self.send(conn, frame, false);
    }

    fn send(&mut self, conn: ConnId, frame: Bytes, reply: bool) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.sent += 1;
        }
        self.stats.packets_sent += 1;
        self.actions.push(Action::Send { conn, frame, reply });
    }

    fn close(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            if !c.closing {
                c.closing = true;
                self.actions.push(Action::Close { conn });
            }
        }
    }

    // ----- handshake -----

    fn negotiate_timeout(&self, requested: i32) -> i32 {
        requested.clamp(
            self.config.min_session_timeout_ms,
            self.config.max_session_timeout_ms,
        )
    }

    fn on_connect(&mut self, conn: ConnId, request: ConnectRequest, remote: std::net::SocketAddr) {
        self.stats.packets_received += 1;
        let mut c = Conn {
            session: None,
            handshaking: false,
            early: VecDeque::new(),
            auth: vec![Id::new("ip", remote.ip().to_string())],
            pipeline: VecDeque::new(),
            closing: false,
            remote,
            received: 1,
            sent: 0,
        };
        // A client that has seen a newer zxid than ours must find another server, and an
        // ensemble member that is not synced serves nobody.
        if request.last_zxid_seen > self.tree.last_processed_zxid()
            || self.role == Some(ReplicaRole::NotServing)
        {
            c.closing = true;
            self.conns.insert(conn, c);
            self.actions.push(Action::Close { conn });
            return;
        }
        let timeout = self.negotiate_timeout(request.timeout);
        if request.session_id == 0 {
            let session_id = self.sessions.next_session_id();
            c.handshaking = true;
            c.session = Some(session_id);
            self.conns.insert(conn, c);
            let origin = Origin::Connect {
                conn,
                read_only: request.read_only,
            };
            if let Some(ReplicaRole::Learner { .. }) = self.role {
                self.forward(
                    (session_id, 0),
                    origin,
                    Forwarded::CreateSession {
                        session_id,
                        timeout_ms: timeout,
                    },
                );
                return;
            }
            if self.role.is_some() {
                self.owners
                    .insert(session_id, u64::from(self.config.server_id));
            }
            self.propose(
                session_id,
                0,
                TxnBody::CreateSession(CreateSessionTxn { time_out: timeout }),
                origin,
            );
            return;
        }
        let session_id = request.session_id;
        let password_ok = request.passwd.as_slice() == session_password(session_id).as_slice();
        if password_ok
            && self.sessions.get(session_id).is_none()
            && matches!(self.role, Some(ReplicaRole::Learner { .. }))
        {
            // Unknown here, perhaps only not yet: the leader decides (Apache's REVALIDATE).
            c.handshaking = true;
            c.session = Some(session_id);
            self.conns.insert(conn, c);
            let origin = Origin::Revalidate {
                conn,
                timeout,
                read_only: request.read_only,
            };
            self.forward(
                (session_id, forward::REVALIDATE_CXID),
                origin,
                Forwarded::Revalidate { session_id },
            );
            return;
        }
        self.conns.insert(conn, c);
        let valid = password_ok && self.sessions.get(session_id).is_some_and(|s| !s.closing);
        if !valid {
            self.refuse_session(conn, request.read_only);
            return;
        }
        let previous = self.sessions.get(session_id).and_then(|s| s.conn);
        if let Some(old) = previous.filter(|old| *old != conn) {
            self.close(old);
            if let Some(c) = self.conns.get_mut(&old) {
                c.session = None;
            }
        }
        if let Some(s) = self.sessions.get_mut(session_id) {
            s.timeout_ms = timeout;
            s.conn = Some(conn);
        }
        self.touch(session_id);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.session = Some(session_id);
        }
        // The session is attached here now: writes through its old member get SESSIONMOVED.
        match self.role {
            Some(ReplicaRole::Leader { .. }) => {
                self.owners
                    .insert(session_id, u64::from(self.config.server_id));
            }
            Some(ReplicaRole::Learner { .. }) => self.actions.push(Action::Forward {
                data: Forwarded::Attach { session_id }.encode(),
            }),
            None | Some(ReplicaRole::NotServing) => {}
        }
        if self.writes_in_flight(session_id) {
            // Apache orders a session's requests across its connections (one pipeline
            // standalone, the CommitProcessor's per-session queue in an ensemble): a read sent
            // on this connection must see a create the previous one sent, or a protected-mode
            // search would miss the node and make a second one.
            if let Some(c) = self.conns.get_mut(&conn) {
                c.handshaking = true;
            }
            // Attached when its handshake completes: an expiry meanwhile is answered as such.
            if let Some(s) = self.sessions.get_mut(session_id) {
                s.conn = None;
            }
            self.reattaching.push((conn, request.read_only));
            return;
        }
        let response = ConnectResponse {
            protocol_version: 0,
            timeout,
            session_id,
            passwd: session_password(session_id).to_vec(),
            read_only: read_only_answer(request.read_only),
        };
        self.send_connect_response(conn, &response);
    }

    /// Tells a re-attaching client its session expired, and closes the connection.
    fn refuse_session(&mut self, conn: ConnId, read_only: Option<bool>) {
        let response = ConnectResponse {
            protocol_version: 0,
            timeout: 0,
            session_id: 0,
            passwd: vec![0; PASSWORD_LEN],
            read_only: read_only_answer(read_only),
        };
        self.send_connect_response(conn, &response);
        self.close(conn);
    }

    fn send_connect_response(&mut self, conn: ConnId, response: &ConnectResponse) {
        let mut buf = bytes::BytesMut::with_capacity(48);
        zk_proto::frame::write_frame(&mut buf, |b| response.encode(b));
        self.send_unsolicited(conn, buf.freeze());
    }

    // ----- requests -----

    /// A request, or one answered `code` without being served (see [`Input::Refused`]), in
    /// its turn: after a pending handshake and the replies before it. (Only served requests
    /// count as received packets.)
    fn on_request(&mut self, conn: ConnId, xid: i32, request: Result<Request, ErrorCode>) {
        if request.is_ok() {
            self.stats.packets_received += 1;
        }
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if request.is_ok() {
            c.received += 1;
        }
        if c.closing {
            return;
        }
        if c.handshaking {
            c.early.push_back((xid, request));
            return;
        }
        self.serve(conn, xid, request);
    }

    fn serve(&mut self, conn: ConnId, xid: i32, request: Result<Request, ErrorCode>) {
        match request {
            Ok(request) => self.process(conn, xid, request),
            Err(code) => self.refuse(conn, xid, code),
        }
    }

    fn refuse(&mut self, conn: ConnId, xid: i32, code: ErrorCode) {
        let zxid = self.tree.last_processed_zxid();
        let close = code == ErrorCode::Unimplemented;
        self.push_ready(conn, replies::bare(xid, zxid, code), close);
    }

    /// Handles a request of an established connection.
    fn process(&mut self, conn: ConnId, xid: i32, request: Request) {
        let Some(session_id) = self.conns.get(&conn).and_then(|c| c.session) else {
            // The session was taken over by another connection.
            return;
        };
        if !self.touch(session_id) {
            self.push_ready(
                conn,
                replies::bare(
                    xid,
                    self.tree.last_processed_zxid(),
                    ErrorCode::SessionExpired,
                ),
                true,
            );
            return;
        }
        if self.config.emulate_3_5 && request.op_code().added_after_3_5() {
            // A 3.5 server's UnimplementedRequestProcessor: the error reply, then the
            // connection (not the session) is closed.
            self.push_ready(
                conn,
                replies::bare(
                    xid,
                    self.tree.last_processed_zxid(),
                    ErrorCode::Unimplemented,
                ),
                true,
            );
            return;
        }
        self.dispatch(conn, session_id, xid, request);
    }

    fn dispatch(&mut self, conn: ConnId, session_id: i64, xid: i32, request: Request) {
        let op = request.op_code();
        let _span = tracing::debug_span!(
            "request",
            session = format_args!("0x{session_id:x}"),
            xid,
            op = ?op
        )
        .entered();
        if self.role.is_some() && (op.is_write() || op == OpCode::Sync) {
            self.replicated_write(conn, session_id, xid, request);
            return;
        }
        match request {
            Request::Auth(packet) => {
                let result = crate::acl::authenticate(
                    &packet.scheme,
                    &packet.auth,
                    self.config.super_digest.as_deref(),
                );
                match result {
                    Ok(ids) => {
                        if let Some(c) = self.conns.get_mut(&conn) {
                            for id in ids {
                                if !c.auth.contains(&id) {
                                    c.auth.push(id);
                                }
                            }
                        }
                        self.push_ready(conn, replies::bare(xid, 0, ErrorCode::Ok), false);
                    }
                    Err(code) => self.push_ready(conn, replies::bare(xid, 0, code), true),
                }
            }
            Request::CloseSession => {
                if let Some(s) = self.sessions.get_mut(session_id) {
                    s.closing = true;
                }
                let body = self.prep_close_session(session_id);
                self.propose_for(conn, session_id, xid, op, Vec::new(), body);
            }
            Request::Create(ref r) | Request::Create2(ref r) => {
                self.write(
                    conn,
                    session_id,
                    xid,
                    op,
                    WriteRequest::Create(r),
                    Vec::new(),
                );
            }
            Request::CreateContainer(ref r) => {
                self.write(
                    conn,
                    session_id,
                    xid,
                    op,
                    WriteRequest::CreateContainer(r),
                    Vec::new(),
                );
            }
            Request::CreateTtl(ref r) => {
                self.write(
                    conn,
                    session_id,
                    xid,
                    op,
                    WriteRequest::CreateTtl(r),
                    Vec::new(),
                );
            }
            Request::Delete(ref r) => self.write(
                conn,
                session_id,
                xid,
                op,
                WriteRequest::Delete(r),
                Vec::new(),
            ),
            Request::SetData(ref r) => self.write(
                conn,
                session_id,
                xid,
                op,
                WriteRequest::SetData(r),
                Vec::new(),
            ),
            Request::SetAcl(ref r) => self.write(
                conn,
                session_id,
                xid,
                op,
                WriteRequest::SetAcl(r),
                Vec::new(),
            ),
            Request::Check(ref r) => self.write(
                conn,
                session_id,
                xid,
                op,
                WriteRequest::Check(r),
                Vec::new(),
            ),
            Request::Multi(ref m) => {
                let ops = m.ops.iter().map(zk_proto::MultiOp::op_code).collect();
                self.write(conn, session_id, xid, op, WriteRequest::Multi(&m.ops), ops);
            }
            read => self.read(conn, xid, read),
        }
    }

    /// Queues or executes a read in the connection's reply order.
    fn read(&mut self, conn: ConnId, xid: i32, request: Request) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.pipeline.is_empty() {
            self.execute_read(conn, xid, request);
        } else {
            c.pipeline.push_back(Slot::Read { xid, request });
        }
    }

    fn push_ready(&mut self, conn: ConnId, frame: Bytes, close: bool) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.pipeline.is_empty() {
            self.send_reply(conn, frame);
            if close {
                self.close(conn);
            }
        } else {
            c.pipeline.push_back(Slot::Ready { frame, close });
        }
    }

    /// Sends every answerable reply at the head of a connection's pipeline.
    fn drain(&mut self, conn: ConnId) {
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            if c.closing {
                c.pipeline.clear();
                return;
            }
            match c.pipeline.front() {
                Some(Slot::Awaiting { .. }) | None => return,
                Some(_) => {}
            }
            match c.pipeline.pop_front() {
                Some(Slot::Ready { frame, close }) => {
                    // Built when its request came; replies sent since may carry later zxids.
                    let frame = replies::with_zxid_at_least(frame, self.tree.last_processed_zxid());
                    self.send_reply(conn, frame);
                    if close {
                        self.close(conn);
                    }
                }
                Some(Slot::Read { xid, request }) => self.execute_read(conn, xid, request),
                Some(Slot::Awaiting { .. }) | None => return,
            }
        }
    }

    fn auth_of(&self, conn: ConnId) -> Vec<Id> {
        self.conns
            .get(&conn)
            .map(|c| c.auth.clone())
            .unwrap_or_default()
    }

    fn next_zxid(&self) -> i64 {
        self.last_zxid + 1
    }

    fn write(
        &mut self,
        conn: ConnId,
        session_id: i64,
        xid: i32,
        op: OpCode,
        request: WriteRequest<'_>,
        multi_ops: Vec<OpCode>,
    ) {
        let auth = self.auth_of(conn);
        let ctx = PrepContext {
            tree: &self.tree,
            session_id,
            auth: &auth,
            zxid: self.next_zxid(),
            time: self.now.wall_ms,
            extended_types: self.config.extended_types,
        };
        // A failure becomes an error txn, as in Apache's PrepRequestProcessor: it may rest on
        // writes still waiting for their fsync (a NODEEXISTS for a node being created), so its
        // reply must not overtake theirs.
        let body = prep::prepare_write(&ctx, &mut self.pending, request).unwrap_or_else(error_txn);
        self.propose_for(conn, session_id, xid, op, multi_ops, body);
    }

    fn prep_close_session(&mut self, session_id: i64) -> TxnBody {
        let ctx = PrepContext {
            tree: &self.tree,
            session_id,
            auth: &[],
            zxid: self.next_zxid(),
            time: self.now.wall_ms,
            extended_types: self.config.extended_types,
        };
        prep::prepare_close_session(&ctx, &mut self.pending)
    }

    fn propose_for(
        &mut self,
        conn: ConnId,
        session_id: i64,
        xid: i32,
        op: OpCode,
        multi_ops: Vec<OpCode>,
        body: TxnBody,
    ) {
        self.propose(
            session_id,
            xid,
            body,
            Origin::Client {
                conn,
                xid,
                op,
                multi_ops,
            },
        );
        if let Some(c) = self.conns.get_mut(&conn) {
            c.pipeline.push_back(Slot::Awaiting { xid });
        }
    }

    /// Assigns the next zxid to a prepared txn and asks for it to be persisted (standalone)
    /// or proposed (as the ensemble's leader).
    fn propose(&mut self, session_id: i64, cxid: i32, body: TxnBody, origin: Origin) {
        self.last_zxid += 1;
        let zxid = self.last_zxid;
        let txn = Txn::new(session_id, cxid, zxid, self.now.wall_ms, body);
        let bytes = txn.to_bytes().freeze();
        if self.role.is_some() {
            self.actions.push(Action::Propose { zxid, txn: bytes });
            if !matches!(origin, Origin::Internal) {
                self.awaiting
                    .insert((session_id, cxid), (origin, self.now.mono_ms));
            }
            return;
        }
        self.actions.push(Action::Persist { zxid, txn: bytes });
        self.outstanding.push_back(PendingTxn {
            txn,
            origin,
            proposed_at_ms: self.now.mono_ms,
        });
    }

    // ----- ensemble -----

    /// A client write (closeSession and sync included) of an ensemble member: the leader
    /// prepares it (a failure becomes an error txn), a learner forwards it; the reply is sent
    /// when the txn commits.
    fn replicated_write(&mut self, conn: ConnId, session_id: i64, xid: i32, request: Request) {
        let op = request.op_code();
        let origin = match &request {
            Request::Sync(r) => Origin::Sync {
                conn,
                xid,
                path: r.path.clone(),
            },
            Request::Multi(m) => Origin::Client {
                conn,
                xid,
                op,
                multi_ops: m.ops.iter().map(zk_proto::MultiOp::op_code).collect(),
            },
            _ => Origin::Client {
                conn,
                xid,
                op,
                multi_ops: Vec::new(),
            },
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            c.pipeline.push_back(Slot::Awaiting { xid });
        }
        let auth = self.auth_of(conn);
        if self.prepares() {
            let me = u64::from(self.config.server_id);
            let body = self.prepare_replicated(session_id, me, &auth, &request);
            self.propose(session_id, xid, body, origin);
        } else {
            self.forward(
                (session_id, xid),
                origin,
                Forwarded::Request {
                    session_id,
                    cxid: xid,
                    auth,
                    request,
                },
            );
        }
    }

    /// As learner: forwards an item whose commit answers `origin`.
    fn forward(&mut self, key: (i64, i32), origin: Origin, item: Forwarded) {
        self.awaiting.insert(key, (origin, self.now.mono_ms));
        self.actions.push(Action::Forward {
            data: item.encode(),
        });
    }

    /// As leader: turns a session's write into the txn to propose; what fails becomes an
    /// error txn (a multi's failure, a multi of error txns), as Apache's
    /// `PrepRequestProcessor` does.
    fn prepare_replicated(
        &mut self,
        session_id: i64,
        member: u64,
        auth: &[Id],
        request: &Request,
    ) -> TxnBody {
        let error = |code: ErrorCode| TxnBody::Error(zk_proto::ErrorTxn { err: code.as_i32() });
        if self.sessions.get(session_id).is_none_or(|s| s.closing) {
            return error(ErrorCode::SessionExpired);
        }
        if self.owners.get(&session_id).is_some_and(|o| *o != member) {
            return error(ErrorCode::SessionMoved);
        }
        self.sessions.touch(session_id, self.now.mono_ms);
        let write = match request {
            Request::CloseSession => {
                if let Some(s) = self.sessions.get_mut(session_id) {
                    s.closing = true;
                }
                return self.prep_close_session(session_id);
            }
            // A sync is a no-op txn: its reply leaves after every write committed before it.
            Request::Sync(_) => return error(ErrorCode::Ok),
            Request::Create(r) | Request::Create2(r) => WriteRequest::Create(r),
            Request::CreateContainer(r) => WriteRequest::CreateContainer(r),
            Request::CreateTtl(r) => WriteRequest::CreateTtl(r),
            Request::Delete(r) => WriteRequest::Delete(r),
            Request::SetData(r) => WriteRequest::SetData(r),
            Request::SetAcl(r) => WriteRequest::SetAcl(r),
            Request::Check(r) => WriteRequest::Check(r),
            Request::Multi(m) => WriteRequest::Multi(&m.ops),
            // Dynamic reconfiguration is off, as in Apache's default (reconfigEnabled=false).
            Request::Reconfig(_) => return error(ErrorCode::ReconfigDisabled),
            _ => return error(ErrorCode::Unimplemented),
        };
        let ctx = PrepContext {
            tree: &self.tree,
            session_id,
            auth,
            zxid: self.next_zxid(),
            time: self.now.wall_ms,
            extended_types: self.config.extended_types,
        };
        prep::prepare_write(&ctx, &mut self.pending, write).unwrap_or_else(error_txn)
    }

    /// As leader: something a learner forwarded.
    fn on_forwarded(&mut self, from: u64, data: &[u8]) {
        if !matches!(self.role, Some(ReplicaRole::Leader { .. })) {
            // The learner learns of the role change and closes its connections.
            return;
        }
        let item = match Forwarded::decode(data) {
            Ok(item) => item,
            Err(e) => {
                tracing::warn!(error = %e, "undecodable forwarded request dropped");
                return;
            }
        };
        match item {
            Forwarded::Touch { sessions } => {
                for id in sessions {
                    self.sessions.touch(id, self.now.mono_ms);
                }
            }
            Forwarded::Attach { session_id } => {
                self.owners.insert(session_id, from);
                self.sessions.touch(session_id, self.now.mono_ms);
            }
            Forwarded::Revalidate { session_id } => {
                let alive = self.sessions.get(session_id).is_some_and(|s| !s.closing);
                let err = if alive {
                    self.owners.insert(session_id, from);
                    self.sessions.touch(session_id, self.now.mono_ms);
                    0
                } else {
                    ErrorCode::SessionExpired.as_i32()
                };
                let body = TxnBody::Error(zk_proto::ErrorTxn { err });
                self.propose(session_id, forward::REVALIDATE_CXID, body, Origin::Internal);
            }
            Forwarded::CreateSession {
                session_id,
                timeout_ms,
            } => {
                self.owners.insert(session_id, from);
                let timeout = self.negotiate_timeout(timeout_ms);
                self.propose(
                    session_id,
                    0,
                    TxnBody::CreateSession(CreateSessionTxn { time_out: timeout }),
                    Origin::Internal,
                );
            }
            Forwarded::Request {
                session_id,
                cxid,
                auth,
                request,
            } => {
                let body = self.prepare_replicated(session_id, from, &auth, &request);
                self.propose(session_id, cxid, body, Origin::Internal);
            }
        }
    }

    /// A committed txn: applied, and answered if it is one of this member's.
    fn on_committed(&mut self, zxid: i64, bytes: &[u8]) {
        let txn = match <Txn as zk_proto::Decode>::from_bytes(bytes) {
            Ok(txn) if txn.header.zxid == zxid => txn,
            Ok(txn) => {
                tracing::error!(
                    zxid = format_args!("0x{zxid:x}"),
                    header = format_args!("0x{:x}", txn.header.zxid),
                    "committed txn carries another zxid; applied under its own"
                );
                txn
            }
            Err(e) => {
                // Our own encoding: only a bug gets here. Skipping keeps the server up; the
                // tree digest of a later snapshot comparison would show the divergence.
                tracing::error!(zxid = format_args!("0x{zxid:x}"), error = %e, "undecodable committed txn skipped");
                return;
            }
        };
        let key = (txn.header.client_id, txn.header.cxid);
        let answers = |origin: &Origin| match origin {
            Origin::Connect { .. } => matches!(txn.body, TxnBody::CreateSession(_)),
            Origin::Revalidate { .. } => matches!(txn.body, TxnBody::Error(_)),
            _ => !matches!(txn.body, TxnBody::CreateSession(_)),
        };
        let (origin, proposed_at_ms) = match self.awaiting.remove(&key) {
            Some((origin, at)) if answers(&origin) => (origin, at),
            Some(other) => {
                self.awaiting.insert(key, other);
                (Origin::Internal, self.now.mono_ms)
            }
            None => (Origin::Internal, self.now.mono_ms),
        };
        self.apply(PendingTxn {
            txn,
            origin,
            proposed_at_ms,
        });
        self.finish_reattaching();
    }

    /// The replica's role changed. Any change but the first promotion to serving closes every
    /// client connection (writes in flight have an unknown fate; clients reconnect and resume
    /// their sessions) and restarts every session's timeout.
    fn on_role(&mut self, role: ReplicaRole) {
        let Some(previous) = self.role else {
            return;
        };
        if previous == role {
            return;
        }
        if let ReplicaRole::Leader { next_zxid } = role {
            self.last_zxid = next_zxid - 1;
        }
        self.role = Some(role);
        tracing::info!(?role, "serving role changed");
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in conns {
            self.close(conn);
        }
        self.awaiting.clear();
        self.owners.clear();
        self.heard_from.clear();
        self.pending = PendingChanges::default();
        self.sessions.restart_timeouts(self.now.mono_ms);
    }

    /// The replicated state, for a learner too far behind for a diff: the last applied zxid
    /// and the tree and sessions in the snapshot format.
    pub fn encode_state(&self) -> Bytes {
        self.state_job()()
    }

    /// [`encode_state`](Self::encode_state) in two steps: a copy-on-write capture of the
    /// state now, encoded when the returned function runs (on another thread).
    pub fn state_job(&self) -> impl FnOnce() -> Bytes + Send + 'static {
        let zxid = self.tree.last_processed_zxid();
        let image = self.tree.image();
        let sessions = self.sessions.list();
        move || {
            let mut out = zxid.to_be_bytes().to_vec();
            // Writing into a Vec cannot fail.
            let _ = crate::storage::snapshot::serialize_into(&image, &sessions, &mut out);
            Bytes::from(out)
        }
    }

    /// Replaces the tree and sessions with [`encode_state`](Self::encode_state)'s.
    ///
    /// # Errors
    /// The bytes are not such a state.
    pub fn restore_state(&mut self, state: &[u8]) -> Result<(), String> {
        let (zxid, body) = state
            .split_first_chunk::<8>()
            .ok_or("the state is shorter than its zxid")?;
        let zxid = i64::from_be_bytes(*zxid);
        let snapshot = crate::storage::snapshot::parse(body, zxid)?;
        self.tree = snapshot.tree;
        self.sessions = SessionTracker::new(self.config.server_id, self.now.wall_ms);
        for (id, timeout) in snapshot.sessions {
            self.sessions.add(id, timeout, self.now.mono_ms);
        }
        self.pending = PendingChanges::default();
        self.last_zxid = zxid;
        self.install_ensemble_config();
        Ok(())
    }

    // ----- commit and apply -----

    fn on_persisted(&mut self, durable: i64) {
        while self
            .outstanding
            .front()
            .is_some_and(|p| p.txn.header.zxid <= durable)
        {
            let Some(pending) = self.outstanding.pop_front() else {
                break;
            };
            self.apply(pending);
        }
        self.finish_reattaching();
        if self.txns_since_snapshot >= self.config.snap_count {
            self.take_snapshot();
        }
    }

    fn apply(&mut self, pending: PendingTxn) {
        let PendingTxn {
            txn,
            origin,
            proposed_at_ms,
        } = pending;
        self.stats
            .record_latency(self.now.mono_ms.saturating_sub(proposed_at_ms));
        let zxid = txn.header.zxid;
        let mut triggers = Vec::new();
        let outcome = self.tree.apply(&txn, &mut triggers);
        self.pending.applied(zxid);
        self.txns_since_snapshot += 1;
        let session_id = txn.header.client_id;
        match &txn.body {
            TxnBody::CreateSession(t) => {
                self.sessions.add(session_id, t.time_out, self.now.mono_ms);
            }
            TxnBody::CloseSession(_) => {
                self.owners.remove(&session_id);
                if let Some(session) = self.sessions.remove(session_id) {
                    if let Some(conn) = session.conn {
                        if !matches!(origin, Origin::Client { conn: c, .. } if c == conn) {
                            self.close(conn);
                        }
                    }
                }
            }
            _ => {}
        }
        self.fire_watches(zxid, &triggers);
        match origin {
            // A connection-level error (ZOOKEEPER-710): the session is attached elsewhere
            // now; the connection is closed instead of answered.
            Origin::Client { conn, .. } | Origin::Sync { conn, .. }
                if matches!(outcome, TxnOutcome::Error(ErrorCode::SessionMoved)) =>
            {
                self.close(conn);
            }
            Origin::Client {
                conn,
                xid,
                op,
                multi_ops,
            } => {
                let (frame, close) = write_reply(xid, zxid, op, &multi_ops, &outcome);
                self.fill_slot(conn, xid, frame, close);
            }
            Origin::Sync { conn, xid, path } => {
                let frame = replies::ok(xid, zxid, &zk_proto::SyncResponse { path });
                self.fill_slot(conn, xid, frame, false);
            }
            Origin::Connect { conn, read_only } => {
                self.finish_handshake(conn, session_id, read_only)
            }
            Origin::Revalidate {
                conn,
                timeout,
                read_only,
            } => {
                let valid = matches!(&txn.body, TxnBody::Error(e) if e.err == 0);
                match self
                    .sessions
                    .get_mut(session_id)
                    .filter(|s| valid && !s.closing)
                {
                    Some(s) => {
                        s.timeout_ms = timeout;
                        self.sessions.touch(session_id, self.now.mono_ms);
                        self.finish_handshake(conn, session_id, read_only);
                    }
                    None => {
                        if let Some(c) = self.conns.get_mut(&conn) {
                            c.handshaking = false;
                            c.session = None;
                            c.early.clear();
                        }
                        self.refuse_session(conn, read_only);
                    }
                }
            }
            Origin::Internal => {}
        }
    }

    /// Whether writes of the session are in flight here (persisting, proposed or forwarded,
    /// not yet applied).
    fn writes_in_flight(&self, session_id: i64) -> bool {
        self.sessions_with_writes_in_flight().contains(&session_id)
    }

    fn sessions_with_writes_in_flight(&self) -> HashSet<i64> {
        self.outstanding
            .iter()
            .map(|p| p.txn.header.client_id)
            .chain(self.awaiting.keys().map(|(session, _)| *session))
            .collect()
    }

    /// Completes the handshakes of re-attaching connections whose session has no more
    /// writes in flight, or refuses them if the session ended meanwhile; forgets those
    /// closed meanwhile.
    fn finish_reattaching(&mut self) {
        if self.reattaching.is_empty() {
            return;
        }
        let busy = self.sessions_with_writes_in_flight();
        for (conn, read_only) in std::mem::take(&mut self.reattaching) {
            let Some(session_id) = self
                .conns
                .get(&conn)
                .filter(|c| !c.closing)
                .and_then(|c| c.session)
            else {
                continue;
            };
            if self.sessions.get(session_id).is_none_or(|s| s.closing) {
                self.refuse_session(conn, read_only);
            } else if busy.contains(&session_id) {
                self.reattaching.push((conn, read_only));
            } else {
                self.finish_handshake(conn, session_id, read_only);
            }
        }
    }

    /// Puts a write's reply in its place in the connection's order and sends what is ready.
    fn fill_slot(&mut self, conn: ConnId, xid: i32, frame: Bytes, close: bool) {
        if let Some(c) = self.conns.get_mut(&conn) {
            if let Some(slot) = c
                .pipeline
                .iter_mut()
                .find(|s| matches!(s, Slot::Awaiting { xid: x } if *x == xid))
            {
                *slot = Slot::Ready { frame, close };
            }
        }
        self.drain(conn);
    }

    fn finish_handshake(&mut self, conn: ConnId, session_id: i64, read_only: Option<bool>) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.handshaking = false;
        let early = std::mem::take(&mut c.early);
        let timeout = self.sessions.get(session_id).map_or(0, |s| s.timeout_ms);
        let previous = self
            .sessions
            .get_mut(session_id)
            .and_then(|s| s.conn.replace(conn));
        // One connection per session: one that completed its handshake meanwhile (another
        // re-attach, or a revalidation) gives way.
        if let Some(old) = previous.filter(|old| *old != conn) {
            self.close(old);
            if let Some(c) = self.conns.get_mut(&old) {
                c.session = None;
            }
        }
        let response = ConnectResponse {
            protocol_version: 0,
            timeout,
            session_id,
            passwd: session_password(session_id).to_vec(),
            read_only: read_only_answer(read_only),
        };
        self.send_connect_response(conn, &response);
        for (xid, request) in early {
            self.serve(conn, xid, request);
        }
    }

    fn fire_watches(&mut self, zxid: i64, triggers: &[WatchTrigger]) {
        for trigger in triggers {
            let conns = self.watches.trigger(&trigger.path, trigger.event);
            for conn in conns {
                let allowed = self.conns.get(&conn).is_some_and(|c| {
                    crate::acl::check(&trigger.acl, zk_proto::Perms::READ, &c.auth)
                });
                if allowed {
                    let frame = replies::notification(zxid, trigger.event, &trigger.path);
                    self.send_unsolicited(conn, frame);
                }
            }
        }
    }

    fn take_snapshot(&mut self) {
        let zxid = self.tree.last_processed_zxid();
        self.txns_since_snapshot = 0;
        self.actions.push(Action::Snapshot {
            zxid,
            image: self.tree.image(),
            sessions: self.sessions.list(),
        });
    }

    // ----- connections and time -----

    fn on_disconnect(&mut self, conn: ConnId) {
        self.watches.remove_conn(conn);
        if let Some(c) = self.conns.remove(&conn) {
            if let Some(session_id) = c.session {
                if let Some(s) = self.sessions.get_mut(session_id) {
                    if s.conn == Some(conn) {
                        s.conn = None;
                    }
                }
            }
        }
    }

    fn on_tick(&mut self) {
        match self.role {
            None | Some(ReplicaRole::Leader { .. }) => {
                for session_id in self.sessions.expired(self.now.mono_ms) {
                    self.expire(session_id);
                }
            }
            Some(ReplicaRole::Learner { .. }) => {
                // Relay the liveness of the sessions heard from here; the leader expires.
                let sessions: Vec<i64> = std::mem::take(&mut self.heard_from).into_iter().collect();
                if !sessions.is_empty() {
                    self.actions.push(Action::Forward {
                        data: Forwarded::Touch { sessions }.encode(),
                    });
                }
            }
            Some(ReplicaRole::NotServing) => {}
        }
    }

    /// A client of `session_id` sent something: its session lives on (false if it is gone
    /// or closing). A learner relays it to the leader on its next tick.
    fn touch(&mut self, session_id: i64) -> bool {
        let live = self.sessions.touch(session_id, self.now.mono_ms);
        if live && matches!(self.role, Some(ReplicaRole::Learner { .. })) {
            self.heard_from.insert(session_id);
        }
        live
    }

    /// Expires a session now (as its timeout would): logs a closeSession that deletes its
    /// ephemerals and closes its connection. Returns false if the session is unknown.
    pub fn expire_session(&mut self, session_id: i64, now: Now) -> (bool, Vec<Action>) {
        self.now = now;
        let known = self.prepares() && self.sessions.get(session_id).is_some_and(|s| !s.closing);
        if known {
            self.expire(session_id);
        }
        (known, std::mem::take(&mut self.actions))
    }

    fn expire(&mut self, session_id: i64) {
        tracing::info!(
            session = format_args!("0x{session_id:016x}"),
            "session expired"
        );
        // Its connection is closed when the closeSession txn is applied (as Apache's
        // FinalRequestProcessor does), so that a client that sees the close and comes back
        // finds its ephemerals gone; meanwhile its requests are refused (closing).
        if let Some(s) = self.sessions.get_mut(session_id) {
            s.closing = true;
        }
        let body = self.prep_close_session(session_id);
        self.propose(session_id, 0, body, Origin::Internal);
    }

    fn clean_containers(&mut self) {
        if !self.prepares() {
            return;
        }
        let candidates = self
            .tree
            .expired_containers_and_ttls(self.now.wall_ms, self.config.container_max_never_used_ms);
        for path in candidates
            .into_iter()
            .take(self.config.container_max_per_tick)
        {
            let ctx = PrepContext {
                tree: &self.tree,
                session_id: 0,
                auth: &[],
                zxid: self.next_zxid(),
                time: self.now.wall_ms,
                extended_types: self.config.extended_types,
            };
            if let Some(body) = prep::prepare_delete_container(&ctx, &mut self.pending, &path) {
                self.propose(0, 0, body, Origin::Internal);
            }
        }
    }
}

/// The reply to a client write once its txn applied.
fn write_reply(
    xid: i32,
    zxid: i64,
    op: OpCode,
    multi_ops: &[OpCode],
    outcome: &TxnOutcome,
) -> (Bytes, bool) {
    let frame = match outcome {
        TxnOutcome::Created { path, stat } => match op {
            OpCode::Create => replies::ok(xid, zxid, &CreateResponse { path: path.clone() }),
            _ => replies::ok(
                xid,
                zxid,
                &Create2Response {
                    path: path.clone(),
                    stat: stat.clone(),
                },
            ),
        },
        TxnOutcome::DataSet(stat) => {
            replies::ok(xid, zxid, &SetDataResponse { stat: stat.clone() })
        }
        TxnOutcome::AclSet(stat) => replies::ok(xid, zxid, &SetAclResponse { stat: stat.clone() }),
        TxnOutcome::Multi(outcomes) => {
            let results = outcomes
                .iter()
                .zip(
                    multi_ops
                        .iter()
                        .copied()
                        .chain(std::iter::repeat(OpCode::Error)),
                )
                .map(|(outcome, op)| multi_result(op, outcome))
                .collect();
            replies::ok(xid, zxid, &MultiResponse { results })
        }
        TxnOutcome::Error(code) => replies::bare(xid, zxid, *code),
        TxnOutcome::Deleted
        | TxnOutcome::Checked
        | TxnOutcome::SessionCreated
        | TxnOutcome::SessionClosed(_) => replies::bare(xid, zxid, ErrorCode::Ok),
    };
    (frame, op == OpCode::CloseSession)
}

fn multi_result(op: OpCode, outcome: &TxnOutcome) -> MultiResult {
    match outcome {
        TxnOutcome::Created { path, stat } if op == OpCode::Create => {
            MultiResult::Create(CreateResponse { path: path.clone() })
        }
        TxnOutcome::Created { path, stat } => MultiResult::Create2(Create2Response {
            path: path.clone(),
            stat: stat.clone(),
        }),
        TxnOutcome::Deleted => MultiResult::Delete,
        TxnOutcome::DataSet(stat) => MultiResult::SetData(SetDataResponse { stat: stat.clone() }),
        TxnOutcome::Checked => MultiResult::Check,
        TxnOutcome::Error(code) => MultiResult::Error(code.as_i32()),
        _ => MultiResult::Error(ErrorCode::RuntimeInconsistency.as_i32()),
    }
}

/// The ConnectResponse's readOnly flag for a client that sent `client_flag` (its
/// canBeReadOnly): as Apache, present only for clients that sent one, and `false`, since
/// this server never serves in read-only mode. (Echoing the client's flag would tell it that
/// it is connected to a read-only server.)
fn read_only_answer(client_flag: Option<bool>) -> Option<bool> {
    client_flag.map(|_| false)
}

#[cfg(test)]
mod replicated_tests;
#[cfg(test)]
mod tests;
