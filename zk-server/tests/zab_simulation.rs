//! Deterministic simulation of an ensemble: every member runs the ZAB peer and the server core
//! (`ServerCore`, the code that serves clients in production), with simulated clients talking
//! ZooKeeper's wire protocol to them — sessions, setData with and without a version, ephemeral
//! creates, reads, syncs, closeSession, reconnects to other members — under seeded faults:
//! crashes losing writes not yet fsynced (torn log tails), restarts, partitions (both ways and
//! one way), broken connections, slow links, duplicated election messages, clock skew. ZAB's
//! invariants are checked after every step; then the faults heal and the end state is checked.
//!
//! `ZAB_SIM_SEEDS=n` runs n seeds (default 12; CI runs 500 with `--release`);
//! `ZAB_SIM_SEED=s` (or `SIM_SEED=s`) replays one seed exactly; `ZAB_SIM_TRACE=1` prints every
//! replica action; `ZAB_SIM_STATS=1` prints figures per seed; `ZAB_SIM_SECONDS=n` is the long
//! mode: fresh seeds for n seconds (both ensembles in turn), printing seeds per second, from
//! seed 1,000,001 or from `ZAB_SIM_FROM=s` + 1
//! (`cargo test --release -p zk-server --test zab_simulation long_mode -- --nocapture`).
//!
//! Clients:
//! * writers set eight register nodes `/r0`…`/r7` (blind, or with the version their member
//!   shows: a compare-and-set), create ephemeral nodes, close their sessions or abandon them,
//!   and move between members with their session (re-attach). Each register's history is
//!   checked for linearizability by a Wing–Gong–Lowe checker (`support/linearizability.rs`,
//!   itself tested on known-bad histories): an answered setData is the reply the member sent;
//!   an unanswered one is in the history exactly when its txn committed;
//! * readers read registers at one member and move to others with their session and
//!   lastZxidSeen (members behind them refuse them): within a session a register never goes
//!   back in time. Half their reads leave a data watch: its event must arrive before any read
//!   shows a newer version, also across a move to another member (the watches re-registered
//!   with SetWatches relative to the client's lastZxidSeen), and no event comes unasked. A
//!   reader's sync is pipelined with reads of every register, which must see every write
//!   acknowledged before the sync was sent (ZOOKEEPER-1675). Every reply comes in request
//!   order on its connection.
//!
//! Invariants:
//! * every node's applied txns are a prefix of the one committed sequence (agreement, no
//!   gaps, nothing committed ever lost or changed);
//! * a leader that starts serving holds every txn committed anywhere (leader completeness);
//! * at most one leader serves per epoch; the zxid the leader's core prepares a txn for is
//!   the one the replica assigns;
//! * after healing: one leader, every node serving and applied up to the same point, holding
//!   every acknowledged write; every member's tree and session table identical; every
//!   ephemeral owned by a live session; no session whose close was acknowledged, and none of
//!   its ephemerals; every acknowledged ephemeral of a live session present; once the clients
//!   go idle, every session expires on every member and takes its ephemerals with it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, VecDeque};

use bytes::Bytes;
use linearizability::{Op, RegisterOp, VersionedRegister};
use zk_proto::{
    Acl, ConnectRequest, ConnectResponse, CreateRequest, CreateTxn, Decode, ErrorCode, EventType,
    GetDataRequest, GetDataResponse, OpCode, Reader, ReplyHeader, Request, SetDataRequest,
    SetDataResponse, SetWatches, SyncRequest, Txn, TxnBody, TxnHeader, WatcherEvent,
};
use zk_server::core::{
    Action as CoreAction, CoreConfig, Input as CoreInput, Now, ReplicaRole, ServerCore,
};
use zk_server::tree::DataTree;
use zk_server::zab::{
    Action, ElectionTimers, Entry, History, Input, Message, Peer, PeerConfig, PersistentState,
    Role, Sid, Zxid,
};
use zk_server::ConnId;

#[path = "support/linearizability.rs"]
mod linearizability;

#[path = "zab_simulation/checks.rs"]
mod checks;
#[path = "zab_simulation/clients.rs"]
mod clients;

use checks::{check_linearizable, check_sessions, digest};
use clients::{Client, ClientOp, Fate};

/// Registers `/r0`… the writers set (each checked for linearizability on its own:
/// linearizability is compositional per object).
const KEYS: usize = 8;
const WRITERS: usize = 4;
const READERS: usize = 4;
/// Requests a client keeps in flight on its connection.
const MAX_IN_FLIGHT: usize = 3;
/// The session timeout clients ask for, ms.
const SESSION_TIMEOUT_MS: i32 = 1_000;
/// How often the members' cores tick (session expiry, learners' liveness relays), ms.
const CORE_TICK_MS: u64 = 50;

fn register(key: usize) -> String {
    format!("/r{key}")
}

/// The cores' settings (`server_id` per member).
fn core_config(server_id: u8) -> CoreConfig {
    CoreConfig {
        server_id,
        min_session_timeout_ms: 400,
        max_session_timeout_ms: 4_000,
        extended_types: false,
        super_digest: None,
        snap_count: u64::MAX,
        container_max_never_used_ms: 0,
        container_max_per_tick: 100,
        emulate_3_5: false,
        replicated: true,
        // A member's local copy of its configuration, outside what ZAB replicates (and with
        // each member's own mtime): left out of the replicated state compared here.
        ensemble_config: None,
    }
}

/// The state every member starts from (as if from one preloaded data dir): the registers at
/// version 0 and `/e`, the ephemerals' parent.
fn genesis() -> Bytes {
    let mut tree = DataTree::new();
    let paths = (0..KEYS).map(register).chain(["/e".to_owned()]);
    for (i, path) in paths.enumerate() {
        let txn = Txn::new(
            0,
            0,
            0,
            0,
            TxnBody::Create(CreateTxn {
                path,
                data: Some(b"0".to_vec()),
                acl: Acl::open_unsafe(),
                ephemeral: false,
                parent_cversion: i as i32 + 1,
            }),
        );
        tree.apply(&txn, &mut Vec::new());
    }
    let core = ServerCore::new(
        core_config(0),
        tree,
        &[],
        Now {
            wall_ms: 0,
            mono_ms: 0,
        },
    );
    pack(&[], &core.encode_state())
}

/// A snapshot as the simulation stores and ships it: the applied txns (kept for the
/// invariant checks) and the core's encoded state.
fn pack(entries: &[Entry], state: &[u8]) -> Bytes {
    let mut out = Vec::new();
    let mut log = Vec::new();
    for e in entries {
        log.extend_from_slice(&e.zxid.to_be_bytes());
        log.extend_from_slice(&(e.txn.len() as u32).to_be_bytes());
        log.extend_from_slice(&e.txn);
    }
    out.extend_from_slice(&(log.len() as u64).to_be_bytes());
    out.extend_from_slice(&log);
    out.extend_from_slice(state);
    Bytes::from(out)
}

fn unpack(b: &[u8]) -> (Vec<Entry>, &[u8]) {
    let len = u64::from_be_bytes(b[..8].try_into().expect("8 bytes")) as usize;
    let (mut log, state) = b[8..].split_at(len);
    let mut entries = Vec::new();
    while log.len() >= 12 {
        let zxid = i64::from_be_bytes(log[..8].try_into().expect("8 bytes"));
        let n = u32::from_be_bytes(log[8..12].try_into().expect("4 bytes")) as usize;
        entries.push(Entry {
            zxid,
            txn: Bytes::copy_from_slice(&log[12..12 + n]),
        });
        log = &log[12 + n..];
    }
    (entries, state)
}

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Debug, Clone)]
struct Disk {
    accepted: u32,
    current: u32,
    /// Snapshot ([`pack`]ed) of the state at `base`.
    snapshot: Bytes,
    base: Zxid,
    /// The log as written (a durable prefix, then what the OS still holds).
    log: Vec<Entry>,
    durable: usize,
    /// Bumped by every truncation / snapshot install: fsyncs issued before it are void.
    rewrites: u64,
    /// An epoch write in flight.
    pending_epochs: Option<(u32, u32)>,
}

struct Node {
    alive: bool,
    incarnation: u64,
    peer: Option<Peer>,
    core: Option<ServerCore>,
    disk: Disk,
    applied: Vec<Entry>,
    /// Clock rate in per-mille of real time (skew).
    rate: u64,
    last_core_tick: u64,
}

#[derive(Debug)]
enum Event {
    Deliver {
        from: Sid,
        to: Sid,
        generation: u64,
        message: Message,
    },
    Fsync {
        node: Sid,
        incarnation: u64,
        rewrites: u64,
        upto: usize,
    },
    EpochsDone {
        node: Sid,
        incarnation: u64,
    },
    Tick {
        node: Sid,
        incarnation: u64,
    },
    Crash {
        node: Sid,
    },
    Fault,
    /// A writer's turn.
    Write,
    /// A reader's turn.
    Read,
}

struct Sim {
    rng: Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    events: HashMap<usize, Event>,
    next_event: usize,
    nodes: BTreeMap<Sid, Node>,
    voters: BTreeSet<Sid>,
    observers: BTreeSet<Sid>,
    /// Connection generation and last delivery time per direction.
    links: HashMap<(Sid, Sid), (u64, u64)>,
    /// Directions that drop everything.
    cut: BTreeSet<(Sid, Sid)>,
    /// Every committed txn, by zxid.
    committed: BTreeMap<Zxid, Bytes>,
    /// The serving leader of each epoch.
    leaders: BTreeMap<u32, Sid>,
    /// Txns some member applied.
    acknowledged: BTreeSet<Bytes>,
    clients: Vec<Client>,
    /// Which client a connection belongs to.
    conn_owner: HashMap<ConnId, usize>,
    next_conn: u64,
    client_ops: Vec<ClientOp>,
    sessions: BTreeMap<i64, Fate>,
    /// Ephemeral creates that were answered OK, with their session.
    ephemerals: BTreeMap<String, i64>,
    /// Statistics.
    reads: u64,
    syncs_answered: u64,
    watch_events: u64,
    watches_reset: u64,
    refused_connects: u64,
    /// The clients only ping (keeping their sessions alive) while the ensemble settles.
    quiet: bool,
    chaos: bool,
    trace: bool,
}

const TICK_EVERY_MS: u64 = 10;

impl Sim {
    fn new(seed: u64, voters: u64, observers: u64) -> Sim {
        let mut sim = Sim {
            // The ensemble's shape is mixed in: each shape explores its own runs of a seed.
            rng: Rng(
                (seed ^ voters << 40 ^ observers << 48).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            ),
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            events: HashMap::new(),
            next_event: 0,
            nodes: BTreeMap::new(),
            voters: (1..=voters).collect(),
            observers: (voters + 1..=voters + observers).collect(),
            links: HashMap::new(),
            cut: BTreeSet::new(),
            committed: BTreeMap::new(),
            leaders: BTreeMap::new(),
            acknowledged: BTreeSet::new(),
            clients: Vec::new(),
            conn_owner: HashMap::new(),
            next_conn: 0,
            client_ops: Vec::new(),
            sessions: BTreeMap::new(),
            ephemerals: BTreeMap::new(),
            reads: 0,
            syncs_answered: 0,
            watch_events: 0,
            watches_reset: 0,
            refused_connects: 0,
            quiet: false,
            chaos: true,
            trace: std::env::var("ZAB_SIM_TRACE").is_ok(),
        };
        let ids: Vec<Sid> = sim
            .voters
            .iter()
            .chain(sim.observers.iter())
            .copied()
            .collect();
        let genesis = genesis();
        for &id in &ids {
            let rate = 900 + sim.rng.below(201);
            sim.nodes.insert(
                id,
                Node {
                    alive: false,
                    incarnation: 0,
                    peer: None,
                    core: None,
                    disk: Disk {
                        accepted: 0,
                        current: 0,
                        snapshot: genesis.clone(),
                        base: 0,
                        log: Vec::new(),
                        durable: 0,
                        rewrites: 0,
                        pending_epochs: None,
                    },
                    applied: Vec::new(),
                    rate,
                    last_core_tick: 0,
                },
            );
            sim.start(id);
        }
        sim.schedule(50, Event::Fault);
        sim.schedule(5, Event::Write);
        sim.schedule(7, Event::Read);
        for i in 0..WRITERS + READERS {
            let member = ids[sim.rng.below(ids.len() as u64) as usize];
            sim.clients.push(Client {
                reader: i >= WRITERS,
                member,
                conn: None,
                session: None,
                last_zxid: 0,
                next_xid: 1,
                seen: vec![0; KEYS],
                watches: BTreeMap::new(),
                next_node: 0,
            });
        }
        sim
    }

    fn config(&self, me: Sid) -> PeerConfig {
        PeerConfig {
            me,
            voters: self.voters.clone(),
            observers: self.observers.clone(),
            tick_ms: 100,
            init_limit: 10,
            sync_limit: 5,
            election: ElectionTimers {
                finalize_wait_ms: 50,
                min_resend_ms: 50,
                max_resend_ms: 800,
            },
        }
    }

    fn schedule(&mut self, delay: u64, event: Event) {
        let id = self.next_event;
        self.next_event += 1;
        self.seq += 1;
        self.events.insert(id, event);
        self.queue.push(Reverse((self.now + delay, self.seq, id)));
    }

    fn node_clock(&self, id: Sid) -> u64 {
        let rate = self.nodes.get(&id).map(|n| n.rate).unwrap_or(1000);
        self.now * rate / 1000
    }

    fn core_now(&self, id: Sid) -> Now {
        let mono_ms = self.node_clock(id);
        Now {
            wall_ms: 1_700_000_000_000 + mono_ms as i64,
            mono_ms,
        }
    }

    fn start(&mut self, id: Sid) {
        let config = self.config(id);
        let clock = self.node_clock(id);
        let now = self.core_now(id);
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        node.incarnation += 1;
        node.alive = true;
        let d = &node.disk;
        let history =
            History::from_entries(d.base, d.log.clone()).expect("the durable log is contiguous");
        let disk = PersistentState {
            accepted_epoch: d.accepted,
            current_epoch: d.current,
            history,
        };
        let (entries, state) = unpack(&d.snapshot);
        let mut core = ServerCore::new(core_config(id as u8), DataTree::new(), &[], now);
        core.restore_state(state).expect("the snapshot restores");
        node.applied = entries;
        node.core = Some(core);
        node.last_core_tick = clock;
        node.peer = Some(Peer::new(config, disk, clock));
        let inc = node.incarnation;
        self.schedule(
            TICK_EVERY_MS,
            Event::Tick {
                node: id,
                incarnation: inc,
            },
        );
        self.run_actions(id);
    }

    fn crash(&mut self, id: Sid) {
        let keep_extra = self.rng.below(4) as usize;
        let epochs_survive = self.rng.chance(50);
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        if !node.alive {
            return;
        }
        node.alive = false;
        node.peer = None;
        node.core = None;
        // Writes not yet fsynced: a random prefix reached the disk (a torn tail).
        let d = &mut node.disk;
        let keep = (d.durable + keep_extra).min(d.log.len());
        d.log.truncate(keep);
        d.durable = keep;
        if let Some((a, c)) = d.pending_epochs.take() {
            if epochs_survive {
                d.accepted = a;
                d.current = c;
            }
        }
        // Its connections break: with its peers, and with its clients.
        for (&(a, b), link) in self.links.iter_mut() {
            if a == id || b == id {
                link.0 += 1;
            }
        }
        let conns: Vec<ConnId> = self
            .clients
            .iter()
            .filter_map(|c| c.conn.as_ref().filter(|c| c.member == id).map(|c| c.id))
            .collect();
        for conn in conns {
            self.client_closed(conn);
        }
        let others: Vec<Sid> = self.nodes.keys().copied().filter(|&o| o != id).collect();
        for o in others {
            self.deliver_input(o, Input::Disconnected { peer: id });
        }
    }

    fn break_link(&mut self, a: Sid, b: Sid) {
        for key in [(a, b), (b, a)] {
            self.links.entry(key).or_insert((0, 0)).0 += 1;
        }
        self.deliver_input(a, Input::Disconnected { peer: b });
        self.deliver_input(b, Input::Disconnected { peer: a });
    }

    fn deliver_input(&mut self, id: Sid, input: Input) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let Some(peer) = node.peer.as_mut() else {
            return;
        };
        peer.handle(input);
        self.run_actions(id);
    }

    fn send(&mut self, from: Sid, to: Sid, message: Message) {
        if self.cut.contains(&(from, to)) {
            return;
        }
        let latency = if self.chaos && self.rng.chance(5) {
            20 + self.rng.below(80)
        } else {
            1 + self.rng.below(4)
        };
        let duplicate =
            self.chaos && matches!(message, Message::Notification { .. }) && self.rng.chance(5);
        let link = self.links.entry((from, to)).or_insert((0, 0));
        let at = (self.now + latency).max(link.1);
        link.1 = at;
        let generation = link.0;
        let delay = at - self.now;
        if duplicate {
            self.schedule(
                delay,
                Event::Deliver {
                    from,
                    to,
                    generation,
                    message: message.clone(),
                },
            );
        }
        self.schedule(
            delay,
            Event::Deliver {
                from,
                to,
                generation,
                message,
            },
        );
    }

    fn run_actions(&mut self, id: Sid) {
        loop {
            let Some(node) = self.nodes.get_mut(&id) else {
                return;
            };
            let Some(peer) = node.peer.as_mut() else {
                return;
            };
            let actions = peer.take_actions();
            if actions.is_empty() {
                return;
            }
            for action in actions {
                self.execute(id, action);
            }
        }
    }

    fn execute(&mut self, id: Sid, action: Action) {
        if self.trace {
            eprintln!("t={} node {id}: {action:?}", self.now);
        }
        match action {
            Action::Send { to, message } => {
                // Crash points of the sync (RELIABILITY.md, log test 4): right after a learner
                // acks NEWLEADER, it and sometimes its leader go down.
                if self.chaos
                    && matches!(message, Message::AckNewLeader { .. })
                    && self.rng.chance(10)
                {
                    let delay = self.rng.below(4);
                    self.schedule(delay, Event::Crash { node: id });
                    if self.rng.chance(50) {
                        self.schedule(delay, Event::Crash { node: to });
                    }
                }
                self.send(id, to, message)
            }
            Action::SendSnapshot { to, zxid } => {
                let node = &self.nodes[&id];
                let last = node.applied.last().map(|e| e.zxid).unwrap_or(0);
                assert_eq!(
                    last, zxid,
                    "node {id}: a snapshot must be of exactly the applied state"
                );
                let core = node.core.as_ref().expect("alive");
                assert_eq!(core.tree().last_processed_zxid(), zxid.max(0));
                let state = pack(&node.applied, &core.encode_state());
                self.send(id, to, Message::Snap { zxid, state });
            }
            Action::Append(entry) => {
                let node = self.nodes.get_mut(&id).expect("node");
                node.disk.log.push(entry);
                let (inc, rewrites, upto) =
                    (node.incarnation, node.disk.rewrites, node.disk.log.len());
                let delay = match (self.chaos, self.rng.below(20)) {
                    (true, 0) => 30 + self.rng.below(60), // a slow disk
                    (true, _) => 1 + self.rng.below(8),
                    (false, _) => 1 + self.rng.below(3),
                };
                self.schedule(
                    delay,
                    Event::Fsync {
                        node: id,
                        incarnation: inc,
                        rewrites,
                        upto,
                    },
                );
            }
            Action::Truncate { after } => {
                let d = &mut self.nodes.get_mut(&id).expect("node").disk;
                let keep = d.log.partition_point(|e| e.zxid <= after);
                d.log.truncate(keep);
                d.durable = d.durable.min(keep);
                d.rewrites += 1;
            }
            Action::InstallSnapshot { zxid, state } => {
                let (entries, core_state) = unpack(&state);
                assert_eq!(entries.last().map(|e| e.zxid).unwrap_or(0), zxid);
                for e in &entries {
                    self.check_committed(id, e);
                }
                let node = self.nodes.get_mut(&id).expect("node");
                node.core
                    .as_mut()
                    .expect("alive")
                    .restore_state(core_state)
                    .expect("a snapshot restores");
                node.disk.snapshot = state.clone();
                node.disk.base = zxid;
                node.disk.log.clear();
                node.disk.durable = 0;
                node.disk.rewrites += 1;
                node.applied = entries;
            }
            Action::PersistEpochs { accepted, current } => {
                let node = self.nodes.get_mut(&id).expect("node");
                node.disk.pending_epochs = Some((accepted, current));
                let inc = node.incarnation;
                let delay = 1 + self.rng.below(3);
                self.schedule(
                    delay,
                    Event::EpochsDone {
                        node: id,
                        incarnation: inc,
                    },
                );
            }
            Action::Commit(entry) => {
                self.check_committed(id, &entry);
                let node = self.nodes.get_mut(&id).expect("node");
                node.applied.push(entry.clone());
                self.acknowledged.insert(entry.txn.clone());
                self.check_prefix(id);
                self.core_step(
                    id,
                    CoreInput::Committed {
                        zxid: entry.zxid,
                        txn: entry.txn,
                    },
                );
            }
            Action::RoleChanged(role) => {
                if let Role::Leading {
                    epoch,
                    established: true,
                } = role
                {
                    if let Some(other) = self.leaders.insert(epoch, id) {
                        assert_eq!(other, id, "two leaders serve epoch {epoch}");
                    }
                    let peer = self.nodes[&id].peer.as_ref().expect("peer");
                    let summary = peer.history().summary();
                    for zxid in self.committed.keys() {
                        assert!(
                            summary.holds(*zxid),
                            "leader {id} of epoch {epoch} lacks committed {zxid:#x}"
                        );
                    }
                }
                // What the replica tells the core (as the production driver does).
                let next_zxid = self.nodes[&id].peer.as_ref().and_then(Peer::next_zxid);
                let role = ReplicaRole::of(role, next_zxid);
                self.core_step(id, CoreInput::Role(role));
            }
            Action::Disconnect { peer } => self.break_link(id, peer),
            Action::Forwarded { from, data } => {
                self.core_step(id, CoreInput::Forwarded { from, data });
            }
        }
    }

    /// Feeds the member's core and carries out what it asks: proposals and forwards go to the
    /// peer (whose actions the caller runs), frames and closes to the clients.
    fn core_step(&mut self, id: Sid, input: CoreInput) {
        let now = self.core_now(id);
        let Some(core) = self.nodes.get_mut(&id).and_then(|n| n.core.as_mut()) else {
            return;
        };
        let actions = core.step(input, now);
        for action in actions {
            match action {
                CoreAction::Propose { zxid, txn } => {
                    let peer = self
                        .nodes
                        .get_mut(&id)
                        .and_then(|n| n.peer.as_mut())
                        .expect("alive");
                    if let Ok(assigned) = peer.propose(txn) {
                        assert_eq!(
                            assigned, zxid,
                            "node {id}: a txn prepared for {zxid:#x} was assigned {assigned:#x}"
                        );
                    }
                }
                CoreAction::Forward { data } => {
                    let peer = self
                        .nodes
                        .get_mut(&id)
                        .and_then(|n| n.peer.as_mut())
                        .expect("alive");
                    peer.forward(data);
                }
                CoreAction::Send { conn, frame, .. } => self.client_frame(conn, &frame),
                CoreAction::Close { conn } => self.client_closed(conn),
                other => panic!("node {id}: an ensemble core asked for {other:?}"),
            }
        }
    }

    fn check_committed(&mut self, id: Sid, entry: &Entry) {
        match self.committed.get(&entry.zxid) {
            Some(txn) => assert_eq!(
                txn, &entry.txn,
                "node {id} committed a different txn at {:#x}",
                entry.zxid
            ),
            None => {
                // The committed sequence only grows at its end: a txn committed below one
                // already committed would be a gap some member applied across.
                if let Some((&last, _)) = self.committed.last_key_value() {
                    assert!(
                        entry.zxid > last,
                        "node {id} committed {:#x} after {last:#x} was committed",
                        entry.zxid
                    );
                }
                self.committed.insert(entry.zxid, entry.txn.clone());
            }
        }
    }

    /// A node's applied txns are exactly the first ones of the committed sequence: each one
    /// applied is committed (`check_committed`) and follows the previous one applied there
    /// with no committed txn between (checked as each is applied).
    fn check_prefix(&self, id: Sid) {
        let applied = &self.nodes[&id].applied;
        let Some(last) = applied.last() else {
            return;
        };
        let before = applied.len().checked_sub(2).map(|i| applied[i].zxid);
        let committed_before = self
            .committed
            .range(..last.zxid)
            .next_back()
            .map(|(z, _)| *z);
        assert_eq!(
            committed_before, before,
            "node {id} applied {:#x} after {before:x?}, but the committed sequence has \
             {committed_before:x?} before it",
            last.zxid
        );
    }

    // ----- faults and time -----

    fn fault(&mut self) {
        let ids: Vec<Sid> = self.nodes.keys().copied().collect();
        let pick = |rng: &mut Rng| ids[rng.below(ids.len() as u64) as usize];
        match self.rng.below(12) {
            0 | 1 => {
                let id = pick(&mut self.rng);
                self.crash(id);
            }
            10 => {
                // A power loss: every node at once (ZOOKEEPER-3911's quorum-wide crash).
                for id in ids.clone() {
                    self.crash(id);
                }
                // Some come back at once, the others later (a restart fault).
                for id in ids.clone() {
                    if self.rng.chance(60) {
                        self.start(id);
                    }
                }
            }
            2 | 3 => {
                let down: Vec<Sid> = self
                    .nodes
                    .iter()
                    .filter(|(_, n)| !n.alive)
                    .map(|(s, _)| *s)
                    .collect();
                if let Some(&id) = down.get(self.rng.below(down.len().max(1) as u64) as usize) {
                    self.start(id);
                }
            }
            4 => {
                // Isolate one node.
                let id = pick(&mut self.rng);
                for &o in &ids {
                    if o != id {
                        self.cut.insert((id, o));
                        self.cut.insert((o, id));
                    }
                }
            }
            5 => {
                // One-way partition.
                let (a, b) = (pick(&mut self.rng), pick(&mut self.rng));
                if a != b {
                    self.cut.insert((a, b));
                }
            }
            6 | 7 => self.cut.clear(),
            _ => {
                let (a, b) = (pick(&mut self.rng), pick(&mut self.rng));
                if a != b {
                    self.break_link(a, b);
                }
            }
        }
    }

    fn step(&mut self) -> bool {
        let Some(Reverse((at, _, id))) = self.queue.pop() else {
            return false;
        };
        self.now = at;
        let Some(event) = self.events.remove(&id) else {
            return true;
        };
        match event {
            Event::Deliver {
                from,
                to,
                generation,
                message,
            } => {
                let current = self.links.get(&(from, to)).map(|l| l.0).unwrap_or(0);
                let alive = self.nodes.get(&to).is_some_and(|n| n.alive)
                    && self.nodes.get(&from).is_some_and(|n| n.alive);
                if generation == current && alive && !self.cut.contains(&(from, to)) {
                    self.deliver_input(to, Input::Receive { from, message });
                }
            }
            Event::Fsync {
                node,
                incarnation,
                rewrites,
                upto,
            } => {
                let Some(n) = self.nodes.get_mut(&node) else {
                    return true;
                };
                if n.incarnation == incarnation && n.alive && n.disk.rewrites == rewrites {
                    let upto = upto.min(n.disk.log.len());
                    if upto > n.disk.durable {
                        n.disk.durable = upto;
                    }
                    let zxid = n
                        .disk
                        .log
                        .get(n.disk.durable.wrapping_sub(1))
                        .map(|e| e.zxid)
                        .unwrap_or(n.disk.base);
                    self.deliver_input(node, Input::Persisted { zxid });
                }
            }
            Event::EpochsDone { node, incarnation } => {
                let Some(n) = self.nodes.get_mut(&node) else {
                    return true;
                };
                if n.incarnation == incarnation && n.alive {
                    if let Some((a, c)) = n.disk.pending_epochs.take() {
                        n.disk.accepted = a;
                        n.disk.current = c;
                    }
                    self.deliver_input(node, Input::EpochsPersisted);
                }
            }
            Event::Tick { node, incarnation } => {
                let alive = self
                    .nodes
                    .get(&node)
                    .is_some_and(|n| n.alive && n.incarnation == incarnation);
                if alive && self.rng.chance(1) {
                    self.snapshot(node);
                }
                if alive {
                    let now_ms = self.node_clock(node);
                    self.deliver_input(node, Input::Tick { now_ms });
                    let n = self.nodes.get_mut(&node).expect("alive");
                    if now_ms >= n.last_core_tick + CORE_TICK_MS {
                        n.last_core_tick = now_ms;
                        self.core_step(node, CoreInput::Tick);
                        self.run_actions(node);
                    }
                    self.schedule(TICK_EVERY_MS, Event::Tick { node, incarnation });
                }
            }
            Event::Crash { node } => {
                if self.chaos {
                    self.crash(node);
                }
            }
            Event::Fault => {
                if self.chaos {
                    self.fault();
                    let next = 100 + self.rng.below(400);
                    self.schedule(next, Event::Fault);
                }
            }
            Event::Write => {
                let c = self.rng.below(WRITERS as u64) as usize;
                self.client_turn(c);
                let next = 1 + self.rng.below(6);
                self.schedule(next, Event::Write);
            }
            Event::Read => {
                let c = WRITERS + self.rng.below(READERS as u64) as usize;
                self.client_turn(c);
                let next = 1 + self.rng.below(6);
                self.schedule(next, Event::Read);
            }
        }
        true
    }

    fn run_until(&mut self, t: u64) {
        while self
            .queue
            .peek()
            .is_some_and(|Reverse((at, _, _))| *at <= t)
        {
            self.step();
        }
        self.now = t;
    }

    /// The node writes a snapshot of what it applied and the peer forgets the log it covers;
    /// learners behind it are then synced with SNAP.
    fn snapshot(&mut self, id: Sid) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let (Some(peer), Some(core)) = (node.peer.as_mut(), node.core.as_ref()) else {
            return;
        };
        let last_applied = node
            .applied
            .last()
            .map(|e| e.zxid)
            .unwrap_or(node.disk.base);
        let base = peer.compact(last_applied);
        let d = &mut node.disk;
        if base <= d.base {
            return;
        }
        assert_eq!(
            base, last_applied,
            "node {id}: compacted past what it applied"
        );
        d.snapshot = pack(&node.applied, &core.encode_state());
        d.base = base;
        let dropped = d.log.partition_point(|e| e.zxid <= base);
        d.log.drain(..dropped);
        d.durable = d.durable.saturating_sub(dropped);
        d.rewrites += 1;
    }

    /// Ends the faults, restarts every node, and lets the ensemble settle.
    fn heal(&mut self) {
        self.chaos = false;
        self.cut.clear();
        let down: Vec<Sid> = self
            .nodes
            .iter()
            .filter(|(_, n)| !n.alive)
            .map(|(s, _)| *s)
            .collect();
        for id in down {
            self.start(id);
        }
    }

    fn core(&self, id: Sid) -> &ServerCore {
        self.nodes[&id].core.as_ref().expect("alive")
    }
}

fn run_seed(seed: u64, voters: u64, observers: u64) {
    let mut sim = Sim::new(seed, voters, observers);
    sim.run_until(15_000);
    sim.heal();
    sim.run_until(30_000);

    // Liveness: one serving leader, every node serving, all applied alike.
    let roles: BTreeMap<Sid, Role> = sim
        .nodes
        .iter()
        .map(|(id, n)| (*id, n.peer.as_ref().expect("alive").role()))
        .collect();
    let leaders: Vec<Sid> = roles
        .iter()
        .filter(|(_, r)| {
            matches!(
                r,
                Role::Leading {
                    established: true,
                    ..
                }
            )
        })
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(
        leaders.len(),
        1,
        "seed {seed}: roles after healing {roles:?}"
    );
    for (id, role) in &roles {
        assert!(
            matches!(
                role,
                Role::Leading {
                    established: true,
                    ..
                } | Role::Following { serving: true, .. }
                    | Role::Observing { serving: true, .. }
            ),
            "seed {seed}: node {id} is {role:?} after healing ({roles:?})"
        );
    }
    // The clients only ping; the last writes commit everywhere (sessions whose clients lost
    // their connection may still expire meanwhile: the check waits for a moment when every
    // member applied everything committed).
    sim.quiet = true;
    sim.run_until(30_500);
    while sim
        .nodes
        .values()
        .any(|n| n.applied.len() != sim.committed.len())
        && sim.now < 34_000
    {
        let next = sim.now + 20;
        sim.run_until(next);
    }
    let leader = leaders[0];
    let expected: Vec<Zxid> = sim.committed.keys().copied().collect();
    for (id, node) in &sim.nodes {
        let applied: Vec<Zxid> = node.applied.iter().map(|e| e.zxid).collect();
        assert!(
            applied == expected,
            "seed {seed}: node {id} applied {} txns up to {:#x}, not the {} committed up to \
             {:#x} (leader {leader})",
            applied.len(),
            applied.last().copied().unwrap_or(0),
            expected.len(),
            expected.last().copied().unwrap_or(0),
        );
    }
    let all: BTreeSet<&Bytes> = sim.committed.values().collect();
    for txn in &sim.acknowledged {
        assert!(all.contains(txn), "seed {seed}: acknowledged {txn:?} lost");
    }
    check_linearizable(seed, &sim);
    check_sessions(seed, &sim, leader);

    // Silent, every session expires (the leader's expiry, a replicated closeSession each),
    // and its ephemerals go with it, on every member.
    sim.events
        .retain(|_, e| !matches!(e, Event::Write | Event::Read));
    sim.run_until(38_000);
    let reference = digest(sim.core(leader));
    for id in sim.nodes.keys() {
        let core = sim.core(*id);
        assert_eq!(
            core.sessions(),
            Vec::new(),
            "seed {seed}: node {id} keeps sessions after every client went idle"
        );
        assert_eq!(
            core.tree().ephemeral_count(),
            0,
            "seed {seed}: node {id} keeps ephemerals of expired sessions"
        );
        assert!(
            digest(core) == reference,
            "seed {seed}: node {id}'s tree differs from the leader's after expiry"
        );
    }

    if std::env::var("ZAB_SIM_STATS").is_ok() {
        let replied = sim.client_ops.iter().filter(|c| c.op.ret.is_some()).count();
        let cas_ok = sim
            .client_ops
            .iter()
            .filter(|c| matches!(c.op.input, RegisterOp::Cas { .. }))
            .filter(|c| matches!(c.op.output, Some(Some(_))))
            .count();
        let fates = sim.sessions.values().fold(BTreeMap::new(), |mut m, f| {
            *m.entry(format!("{f:?}")).or_insert(0) += 1;
            m
        });
        eprintln!(
            "seed {seed}: {} committed, {} epochs led, leader {leader}; {} setData \
             ({replied} answered, {cas_ok} successful CAS), {} reads, {} syncs answered, \
             {} watch events ({} re-registrations), {} ephemerals acknowledged, sessions \
             {fates:?}, {} connections refused",
            sim.committed.len(),
            sim.leaders.len(),
            sim.client_ops.len(),
            sim.reads,
            sim.syncs_answered,
            sim.watch_events,
            sim.watches_reset,
            sim.ephemerals.len(),
            sim.refused_connects,
        );
    }
    assert!(
        !sim.committed.is_empty(),
        "seed {seed}: nothing was ever committed"
    );
}

fn seeds() -> Vec<u64> {
    let one = std::env::var("ZAB_SIM_SEED").or_else(|_| std::env::var("SIM_SEED"));
    if let Ok(s) = one {
        return vec![s.parse().expect("ZAB_SIM_SEED is a number")];
    }
    let n: u64 = std::env::var("ZAB_SIM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    (1..=n).collect()
}

/// Runs one seed; if it fails, says how to replay it before passing the failure on.
fn run_named(seed: u64, voters: u64, observers: u64) {
    let run = std::panic::catch_unwind(|| run_seed(seed, voters, observers));
    if let Err(panic) = run {
        eprintln!(
            "seed {seed} failed with {voters} voters and {observers} observers; replay: \
             ZAB_SIM_SEED={seed} cargo test --release -p zk-server --test zab_simulation"
        );
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn three_voters_under_faults() {
    for seed in seeds() {
        run_named(seed, 3, 0);
    }
}

#[test]
fn five_voters_and_an_observer_under_faults() {
    for seed in seeds() {
        run_named(seed, 5, 1);
    }
}

#[test]
fn long_mode() {
    let Some(seconds) = std::env::var("ZAB_SIM_SECONDS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    let started = std::time::Instant::now();
    // ZAB_SIM_FROM picks up where an earlier long run stopped (it prints its last seed).
    let mut seed = std::env::var("ZAB_SIM_FROM")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1_000_000);
    let mut runs = 0u64;
    while started.elapsed().as_secs() < seconds {
        seed += 1;
        run_named(seed, 3, 0);
        run_named(seed, 5, 1);
        runs += 2;
        if runs % 200 == 0 {
            println!(
                "{runs} runs (last seed {seed}), {:.1} seeds/s",
                runs as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    println!(
        "long mode: {runs} runs in {:.0} s, {:.1} seeds/s, no invariant broken",
        started.elapsed().as_secs_f64(),
        runs as f64 / started.elapsed().as_secs_f64()
    );
}
