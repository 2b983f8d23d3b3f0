//! The simulated clients: their sessions and connections, and what they send and check.

use super::*;

/// A setData on a register, as the linearizability checker sees it.
pub(super) struct ClientOp {
    pub(super) key: usize,
    pub(super) op: Op<RegisterOp, Option<u64>>,
    /// The session and xid it was sent with (its txn's client id and cxid).
    pub(super) session: i64,
    pub(super) xid: i32,
}

/// A request awaiting its reply on a connection.
#[derive(Debug)]
pub(super) enum Pending {
    SetData {
        op: usize,
    },
    /// A read (leaving a data watch if `watch`); after a sync, it must see at least
    /// `required`.
    GetData {
        key: usize,
        required: u64,
        watch: bool,
    },
    Sync,
    Create {
        path: String,
    },
    Close {
        session: i64,
    },
}

pub(super) struct Conn {
    pub(super) id: ConnId,
    pub(super) member: Sid,
    pub(super) incarnation: u64,
    /// The ConnectResponse arrived.
    pub(super) established: bool,
    /// The session's watches are to be re-registered (SetWatches) before anything else.
    pub(super) set_watches: bool,
    pub(super) pending: VecDeque<(i32, Pending)>,
}

pub(super) struct Client {
    pub(super) reader: bool,
    pub(super) member: Sid,
    pub(super) conn: Option<Conn>,
    pub(super) session: Option<(i64, Vec<u8>)>,
    pub(super) last_zxid: i64,
    pub(super) next_xid: i32,
    /// Within the current session, the newest version seen of each register.
    pub(super) seen: Vec<u64>,
    /// Data watches left on registers, with the version the read that left each one saw:
    /// the client must get the watch's event before any read shows a newer version.
    pub(super) watches: BTreeMap<usize, u64>,
    pub(super) next_node: u64,
}

/// What became of a session, as its client knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    Open,
    /// Its closeSession was answered.
    Closed,
    /// A member said it expired.
    Expired,
    /// Its client walked away from it.
    Abandoned,
}

impl Sim {
    /// A client's turn: (re)connect, or send a request.
    pub(super) fn client_turn(&mut self, c: usize) {
        let Some(conn) = &self.clients[c].conn else {
            if !self.quiet || self.clients[c].session.is_some() {
                self.connect(c);
            }
            return;
        };
        if !conn.established || conn.pending.len() >= MAX_IN_FLIGHT {
            return;
        }
        if conn.set_watches {
            self.set_watches(c);
            return;
        }
        if self.quiet {
            let (member, id) = (conn.member, conn.id);
            let ping = CoreInput::Request {
                conn: id,
                xid: -2,
                request: Request::Ping,
            };
            self.core_step(member, ping);
            self.run_actions(member);
            return;
        }
        let roll = self.rng.below(100);
        if self.clients[c].reader {
            match roll {
                // Move to another member with the session (and lastZxidSeen).
                0..=7 => self.disconnect(c, true),
                8..=29 => {
                    if self.clients[c]
                        .conn
                        .as_ref()
                        .is_some_and(|c| c.pending.is_empty())
                    {
                        self.sync_and_read(c);
                    }
                }
                _ => {
                    let key = self.rng.below(KEYS as u64) as usize;
                    let watch = self.rng.chance(50);
                    self.get_data(c, key, 0, watch);
                }
            }
        } else {
            match roll {
                0..=3 => self.disconnect(c, true),
                4 => {
                    // Walk away from the session: it must expire.
                    if let Some((session, _)) = self.clients[c].session {
                        self.sessions.insert(session, Fate::Abandoned);
                    }
                    self.disconnect(c, false);
                }
                5..=7 => self.close_session(c),
                8..=24 => self.create_ephemeral(c),
                _ => self.set_data(c),
            }
        }
    }

    /// Opens a connection to the client's member (sometimes another one first), with its
    /// session and lastZxidSeen if it has one.
    pub(super) fn connect(&mut self, c: usize) {
        if self.rng.chance(30) {
            let ids: Vec<Sid> = self.nodes.keys().copied().collect();
            self.clients[c].member = ids[self.rng.below(ids.len() as u64) as usize];
        }
        let member = self.clients[c].member;
        let Some(node) = self.nodes.get(&member).filter(|n| n.alive) else {
            return;
        };
        let incarnation = node.incarnation;
        self.next_conn += 1;
        let id = ConnId(self.next_conn);
        let client = &mut self.clients[c];
        let (session_id, passwd) = client.session.clone().unwrap_or((0, vec![0; 16]));
        let request = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: client.last_zxid,
            timeout: SESSION_TIMEOUT_MS,
            session_id,
            passwd,
            read_only: None,
        };
        client.conn = Some(Conn {
            id,
            member,
            incarnation,
            established: false,
            set_watches: false,
            pending: VecDeque::new(),
        });
        self.conn_owner.insert(id, c);
        let input = CoreInput::Connect {
            conn: id,
            request,
            remote: "127.0.0.1:4000".parse().expect("an address"),
        };
        self.core_step(member, input);
        self.run_actions(member);
    }

    /// Drops the client's connection; `keep_session`: it reconnects with its session later.
    pub(super) fn disconnect(&mut self, c: usize, keep_session: bool) {
        let Some(conn) = self.clients[c].conn.take() else {
            return;
        };
        self.conn_owner.remove(&conn.id);
        if !keep_session {
            self.new_session(c);
        }
        if self.rng.chance(50) {
            let ids: Vec<Sid> = self.nodes.keys().copied().collect();
            self.clients[c].member = ids[self.rng.below(ids.len() as u64) as usize];
        }
        if self
            .nodes
            .get(&conn.member)
            .is_some_and(|n| n.alive && n.incarnation == conn.incarnation)
        {
            self.core_step(conn.member, CoreInput::Disconnected { conn: conn.id });
            self.run_actions(conn.member);
        }
    }

    /// The client starts over without a session (as a new ZooKeeper handle does).
    pub(super) fn new_session(&mut self, c: usize) {
        let client = &mut self.clients[c];
        client.session = None;
        client.last_zxid = 0;
        client.seen = vec![0; KEYS];
        client.watches.clear();
    }

    /// Sends a request on the client's established connection.
    pub(super) fn request(&mut self, c: usize, request: Request, pending: Pending) -> Option<i32> {
        let client = &mut self.clients[c];
        let conn = client.conn.as_mut().filter(|c| c.established)?;
        let xid = client.next_xid;
        client.next_xid += 1;
        conn.pending.push_back((xid, pending));
        let (member, id) = (conn.member, conn.id);
        self.core_step(
            member,
            CoreInput::Request {
                conn: id,
                xid,
                request,
            },
        );
        self.run_actions(member);
        Some(xid)
    }

    pub(super) fn set_data(&mut self, c: usize) {
        let key = self.rng.below(KEYS as u64) as usize;
        let Some((session, _)) = self.clients[c].session.clone() else {
            return;
        };
        let member = self.clients[c]
            .conn
            .as_ref()
            .map(|c| c.member)
            .expect("connected");
        let value = self.client_ops.len() as u64 + 1;
        // Half blind writes, half compare-and-sets on the version this member shows (as a
        // client reads, then writes with the version).
        let op = if self.rng.chance(50) {
            RegisterOp::Write(value)
        } else {
            let version = self.nodes[&member]
                .core
                .as_ref()
                .and_then(|core| core.tree().get(&register(key)))
                .map_or(0, |n| n.stat.version);
            RegisterOp::Cas {
                expected: version as u64,
                value,
            }
        };
        let version = match op {
            RegisterOp::Cas { expected, .. } => expected as i32,
            RegisterOp::Write(_) => -1,
        };
        let index = self.client_ops.len();
        self.client_ops.push(ClientOp {
            key,
            op: Op {
                invoke: self.now,
                ret: None,
                output: None,
                input: op,
            },
            session,
            xid: 0,
        });
        let request = Request::SetData(SetDataRequest {
            path: register(key),
            data: Some(value.to_string().into_bytes()),
            version,
        });
        match self.request(c, request, Pending::SetData { op: index }) {
            Some(xid) => self.client_ops[index].xid = xid,
            None => {
                self.client_ops.pop();
            }
        }
    }

    pub(super) fn get_data(&mut self, c: usize, key: usize, required: u64, watch: bool) {
        let request = Request::GetData(GetDataRequest {
            path: register(key),
            watch,
        });
        let pending = Pending::GetData {
            key,
            required,
            watch,
        };
        self.request(c, request, pending);
    }

    /// After re-attaching its session, the client re-registers its watches, relative to the
    /// newest zxid it has seen: the member fires at once those whose node changed since.
    pub(super) fn set_watches(&mut self, c: usize) {
        let client = &mut self.clients[c];
        let Some(conn) = client.conn.as_mut() else {
            return;
        };
        conn.set_watches = false;
        self.watches_reset += 1;
        let (member, id) = (conn.member, conn.id);
        let request = Request::SetWatches(SetWatches {
            relative_zxid: client.last_zxid,
            data_watches: client.watches.keys().map(|k| register(*k)).collect(),
            exist_watches: Vec::new(),
            child_watches: Vec::new(),
        });
        let input = CoreInput::Request {
            conn: id,
            xid: -8,
            request,
        };
        self.core_step(member, input);
        self.run_actions(member);
    }

    /// A sync pipelined with a read of every register: the reads come after the sync on the
    /// connection, so they see every write acknowledged before the sync was sent.
    pub(super) fn sync_and_read(&mut self, c: usize) {
        let mut required = vec![0; KEYS];
        for op in &self.client_ops {
            if let (Some(_), Some(Some(version))) = (op.op.ret, op.op.output) {
                required[op.key] = required[op.key].max(version);
            }
        }
        let request = Request::Sync(SyncRequest { path: "/".into() });
        if self.request(c, request, Pending::Sync).is_none() {
            return;
        }
        for (key, required) in required.into_iter().enumerate() {
            self.get_data(c, key, required, false);
        }
    }

    pub(super) fn create_ephemeral(&mut self, c: usize) {
        let Some((session, _)) = self.clients[c].session.clone() else {
            return;
        };
        let client = &mut self.clients[c];
        client.next_node += 1;
        let path = format!("/e/{session:x}-{}", client.next_node);
        let request = Request::Create(CreateRequest {
            path: path.clone(),
            data: None,
            acl: Acl::open_unsafe(),
            flags: 1, // ephemeral
        });
        self.request(c, request, Pending::Create { path });
    }

    pub(super) fn close_session(&mut self, c: usize) {
        let Some((session, _)) = self.clients[c].session.clone() else {
            return;
        };
        self.request(c, Request::CloseSession, Pending::Close { session });
    }

    /// A frame a member sent a client.
    pub(super) fn client_frame(&mut self, conn: ConnId, frame: &[u8]) {
        let Some(&c) = self.conn_owner.get(&conn) else {
            return;
        };
        let now = self.now;
        let body = &frame[4..];
        let client = &mut self.clients[c];
        let Some(open) = client.conn.as_mut().filter(|x| x.id == conn) else {
            return;
        };
        if !open.established {
            let response = ConnectResponse::from_bytes(body).expect("a ConnectResponse");
            if response.timeout <= 0 {
                // The session is gone; the member closes the connection next.
                if let Some((session, _)) = client.session.take() {
                    self.sessions.insert(session, Fate::Expired);
                }
                let client = &mut self.clients[c];
                client.last_zxid = 0;
                client.seen = vec![0; KEYS];
                client.watches.clear();
                return;
            }
            open.established = true;
            match &client.session {
                Some((id, _)) => {
                    assert_eq!(*id, response.session_id, "re-attached elsewhere");
                    open.set_watches = !client.watches.is_empty();
                }
                None => {
                    client.session = Some((response.session_id, response.passwd.clone()));
                    let fresh = self.sessions.insert(response.session_id, Fate::Open);
                    assert!(
                        fresh.is_none(),
                        "session id {:#x} reused",
                        response.session_id
                    );
                }
            }
            return;
        }
        let mut r = Reader::new(body);
        let header = ReplyHeader::decode(&mut r).expect("a reply header");
        if header.xid == -1 {
            let event = WatcherEvent::decode(&mut r).expect("a notification");
            if let Some(key) = (0..KEYS).find(|k| register(*k) == event.path) {
                assert_eq!(event.event_type, EventType::NodeDataChanged);
                assert!(
                    client.watches.remove(&key).is_some(),
                    "a notification for {} that no watch asked for",
                    event.path
                );
                self.watch_events += 1;
            }
            return;
        }
        if header.xid < 0 {
            return; // a ping or SetWatches
        }
        let (xid, pending) = open.pending.pop_front().expect("a reply to a request sent");
        assert_eq!(
            header.xid, xid,
            "replies on a connection come in request order ({pending:?})"
        );
        client.last_zxid = client.last_zxid.max(header.zxid);
        let ok = header.err == 0;
        match pending {
            Pending::SetData { op } => {
                let output = if ok {
                    let response = SetDataResponse::decode(&mut r).expect("a setData reply");
                    Some(Some(response.stat.version as u64))
                } else if header.err == ErrorCode::BadVersion as i32 {
                    Some(None)
                } else {
                    None // the outcome is unknown to the client
                };
                if let Some(output) = output {
                    let op = &mut self.client_ops[op].op;
                    op.ret = Some(now);
                    op.output = Some(output);
                }
            }
            Pending::GetData {
                key,
                required,
                watch,
            } => {
                if !ok {
                    return; // e.g. the session expired
                }
                let response = GetDataResponse::decode(&mut r).expect("a getData reply");
                let version = response.stat.version as u64;
                assert!(
                    version >= client.seen[key],
                    "a client went back in time on {}: version {version} after {}",
                    register(key),
                    client.seen[key]
                );
                assert!(
                    version >= required,
                    "a read after a sync saw {} at version {version}, older than the \
                     acknowledged {required}",
                    register(key)
                );
                client.seen[key] = version;
                if let Some(armed) = client.watches.get(&key) {
                    assert!(
                        version <= *armed,
                        "a client read {} at version {version} before the event of the watch \
                         it left at version {armed}",
                        register(key)
                    );
                }
                if watch {
                    client.watches.insert(key, version);
                }
                self.reads += 1;
            }
            Pending::Sync => {
                if ok {
                    self.syncs_answered += 1;
                }
            }
            Pending::Create { path } => {
                if ok {
                    let (session, _) = client.session.clone().expect("a session");
                    self.ephemerals.insert(path, session);
                }
            }
            Pending::Close { session } => {
                if ok {
                    self.sessions.insert(session, Fate::Closed);
                    self.new_session(c);
                }
            }
        }
    }

    /// A member closed a client's connection (or went down): the client reconnects on a
    /// later turn; replies it was waiting for never come.
    pub(super) fn client_closed(&mut self, conn: ConnId) {
        let Some(c) = self.conn_owner.remove(&conn) else {
            return;
        };
        let client = &mut self.clients[c];
        if client.conn.as_ref().is_some_and(|x| x.id == conn) {
            if !client.conn.as_ref().is_some_and(|x| x.established) {
                self.refused_connects += 1;
            }
            client.conn = None;
        }
    }
}
