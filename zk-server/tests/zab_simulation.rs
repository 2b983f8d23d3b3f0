//! Deterministic simulation of a ZAB ensemble: seeded faults — crashes losing writes not yet
//! fsynced (torn log tails), restarts, partitions (both ways and one way), broken connections,
//! slow links, duplicated election messages, clock skew — with ZAB's invariants checked after
//! every step, then healing and a liveness check.
//!
//! `ZAB_SIM_SEEDS=n` runs n seeds (default 12; CI runs 500 with `--release`);
//! `ZAB_SIM_SEED=s` replays one seed exactly; `ZAB_SIM_TRACE=1` prints every action;
//! `ZAB_SIM_SECONDS=n` is the long mode: fresh seeds for n seconds (both ensembles in turn),
//! printing seeds per second as it goes (`cargo test --release -p zk-server --test
//! zab_simulation long_mode -- --nocapture`).
//! Simulated clients write eight versioned registers (blind writes and compare-and-sets on the
//! version their member shows), each answered when the member it was sent to applies it;
//! after every run each register's history is checked for linearizability by a Wing–Gong–Lowe
//! checker (`support/linearizability.rs`, itself tested on known-bad histories). Reading
//! clients move between members and must never see a register go back in time (members
//! behind them refuse them); a read after a sync must see every write acknowledged before
//! the sync was sent.
//! Invariants:
//! * every node's applied txns are a prefix of the one committed sequence (agreement, no
//!   gaps, nothing committed ever lost or changed);
//! * a leader that starts serving holds every txn committed anywhere (leader completeness);
//! * at most one leader serves per epoch;
//! * after healing: one leader, every node serving and applied up to the same point, holding
//!   every acknowledged write, and new writes commit.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

use bytes::Bytes;
use linearizability::{Op, RegisterOp, VersionedRegister};
use zk_server::zab::{
    Action, ElectionTimers, Entry, History, Input, Message, Peer, PeerConfig, PersistentState,
    Role, Sid, Zxid,
};

#[path = "support/linearizability.rs"]
mod linearizability;

/// Registers the simulated clients write (each one checked for linearizability on its own:
/// linearizability is compositional per object).
const KEYS: u64 = 8;

/// A client operation as a txn: `op <n> <key> w <value>` or `op <n> <key> c <expected> <value>`.
fn encode_op(n: u64, key: u64, op: RegisterOp) -> Bytes {
    Bytes::from(match op {
        RegisterOp::Write(v) => format!("op {n} {key} w {v}"),
        RegisterOp::Cas { expected, value } => format!("op {n} {key} c {expected} {value}"),
    })
}

fn decode_op(txn: &[u8]) -> Option<(u64, u64, RegisterOp)> {
    let text = std::str::from_utf8(txn).ok()?;
    let parts: Vec<&str> = text.split(' ').collect();
    let num = |i: usize| parts.get(i)?.parse::<u64>().ok();
    let op = match *parts.get(3)? {
        "w" => RegisterOp::Write(num(4)?),
        "c" => RegisterOp::Cas {
            expected: num(4)?,
            value: num(5)?,
        },
        _ => return None,
    };
    Some((num(1)?, num(2)?, op))
}

/// The registers after `applied`, as (value, version) per key.
fn registers(applied: &[Entry]) -> Vec<(u64, u64)> {
    let mut state = vec![<VersionedRegister as linearizability::Model>::init(); KEYS as usize];
    for e in applied {
        if let Some((_, key, op)) = decode_op(&e.txn) {
            if let Some(s) = state.get_mut(key as usize) {
                *s = <VersionedRegister as linearizability::Model>::step(s, &op).0;
            }
        }
    }
    state
}

/// One client operation: its key and its place in the history.
struct ClientOp {
    key: u64,
    op: Op<RegisterOp, Option<u64>>,
    /// The member it was sent to, and that member's incarnation: the reply comes when that
    /// member applies it (as a server answers its own clients).
    node: Sid,
    incarnation: u64,
}

/// A client that reads (ZooKeeper's reads are served by the member it is connected to).
struct Reader {
    node: Sid,
    /// The newest zxid it has seen: a member behind it refuses it (as a server refuses a
    /// client whose lastZxidSeen is ahead).
    last_zxid: Zxid,
    /// The newest version it has seen of each register.
    seen: Vec<u64>,
}

/// A sync in flight: answered when its member applies it; the read after it must see every
/// write acknowledged before the sync was sent (ZOOKEEPER-1675).
struct PendingSync {
    node: Sid,
    incarnation: u64,
    /// Per register, the newest version some client had been told before the sync.
    required: Vec<u64>,
}

const READERS: usize = 4;

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

#[derive(Debug, Clone, Default)]
struct Disk {
    accepted: u32,
    current: u32,
    /// Snapshot: the applied txns up to `base`.
    snapshot: Vec<Entry>,
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
    disk: Disk,
    applied: Vec<Entry>,
    /// The registers after `applied` (kept in step with it).
    registers: Vec<(u64, u64)>,
    /// Clock rate in per-mille of real time (skew).
    rate: u64,
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
    Write,
    /// A reading client's turn: a read, or a sync followed by a read.
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
    /// Writes submitted, and those some server applied (acknowledged to a client).
    submitted: u64,
    acknowledged: BTreeSet<Bytes>,
    /// Client operations by txn.
    client_ops: HashMap<Bytes, ClientOp>,
    readers: Vec<Reader>,
    syncs: HashMap<Bytes, PendingSync>,
    /// Reads served and syncs answered (for the statistics).
    reads: u64,
    syncs_answered: u64,
    chaos: bool,
    trace: bool,
}

const TICK_EVERY_MS: u64 = 10;

impl Sim {
    fn new(seed: u64, voters: u64, observers: u64) -> Sim {
        let mut sim = Sim {
            rng: Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
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
            submitted: 0,
            acknowledged: BTreeSet::new(),
            client_ops: HashMap::new(),
            readers: Vec::new(),
            syncs: HashMap::new(),
            reads: 0,
            syncs_answered: 0,
            chaos: true,
            trace: std::env::var("ZAB_SIM_TRACE").is_ok(),
        };
        let ids: Vec<Sid> = sim
            .voters
            .iter()
            .chain(sim.observers.iter())
            .copied()
            .collect();
        for id in ids {
            let rate = 900 + sim.rng.below(201);
            sim.nodes.insert(
                id,
                Node {
                    alive: false,
                    incarnation: 0,
                    peer: None,
                    disk: Disk::default(),
                    applied: Vec::new(),
                    registers: registers(&[]),
                    rate,
                },
            );
            sim.start(id);
        }
        sim.schedule(50, Event::Fault);
        sim.schedule(5, Event::Write);
        sim.schedule(7, Event::Read);
        let first = sim.voters.iter().next().copied().unwrap_or(1);
        for _ in 0..READERS {
            sim.readers.push(Reader {
                node: first,
                last_zxid: 0,
                seen: vec![0; KEYS as usize],
            });
        }
        sim
    }

    fn serving(&self, id: Sid) -> bool {
        self.nodes
            .get(&id)
            .and_then(|n| n.peer.as_ref().filter(|_| n.alive))
            .is_some_and(|p| {
                matches!(
                    p.role(),
                    Role::Leading {
                        established: true,
                        ..
                    } | Role::Following { serving: true, .. }
                        | Role::Observing { serving: true, .. }
                )
            })
    }

    /// A reader's turn: sometimes it moves to another member; a member that does not serve,
    /// or is behind what the reader saw, refuses it. Otherwise it reads a register — never
    /// older than what it saw before — or sends a sync, after which it reads.
    fn read(&mut self) {
        let r = self.rng.below(READERS as u64) as usize;
        if self.rng.below(10) == 0 {
            let ids: Vec<Sid> = self.nodes.keys().copied().collect();
            self.readers[r].node = ids[self.rng.below(ids.len() as u64) as usize];
        }
        let id = self.readers[r].node;
        if !self.serving(id) {
            return;
        }
        let node = &self.nodes[&id];
        let applied = node.applied.last().map_or(0, |e| e.zxid);
        if applied < self.readers[r].last_zxid {
            return;
        }
        if self.rng.below(4) == 0 {
            self.sync(r, id);
            return;
        }
        let key = self.rng.below(KEYS) as usize;
        let version = node.registers[key].1;
        let reader = &mut self.readers[r];
        assert!(
            version >= reader.seen[key],
            "reader {r} went back in time on register {key}: version {version} at node {id} after {}",
            reader.seen[key]
        );
        reader.seen[key] = version;
        reader.last_zxid = applied;
        self.reads += 1;
    }

    fn sync(&mut self, r: usize, id: Sid) {
        let mut required = vec![0; KEYS as usize];
        for c in self.client_ops.values() {
            if let (Some(_), Some(Some(version))) = (c.op.ret, c.op.output) {
                let slot = &mut required[c.key as usize];
                *slot = (*slot).max(version);
            }
        }
        self.submitted += 1;
        let txn = Bytes::from(format!("sync {} {r}", self.submitted));
        let incarnation = self.nodes[&id].incarnation;
        let peer = self
            .nodes
            .get_mut(&id)
            .and_then(|n| n.peer.as_mut())
            .expect("serving");
        let sent = match peer.role() {
            Role::Leading { .. } => peer.propose(txn.clone()).is_ok(),
            _ => peer.forward(txn.clone()),
        };
        if sent {
            self.syncs.insert(
                txn,
                PendingSync {
                    node: id,
                    incarnation,
                    required,
                },
            );
        }
        self.run_actions(id);
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

    fn start(&mut self, id: Sid) {
        let config = self.config(id);
        let clock = self.node_clock(id);
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
        node.applied = d.snapshot.clone();
        node.registers = registers(&node.applied);
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
        // Its connections break.
        for (&(a, b), link) in self.links.iter_mut() {
            if a == id || b == id {
                link.0 += 1;
            }
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
                let state = encode(&node.applied);
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
                let entries = decode(&state);
                assert_eq!(entries.last().map(|e| e.zxid).unwrap_or(0), zxid);
                for e in &entries {
                    self.check_committed(id, e);
                }
                let node = self.nodes.get_mut(&id).expect("node");
                node.disk.snapshot = entries.clone();
                node.disk.base = zxid;
                node.disk.log.clear();
                node.disk.durable = 0;
                node.disk.rewrites += 1;
                node.registers = registers(&entries);
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
                let now = self.now;
                let node = self.nodes.get_mut(&id).expect("node");
                if let Some(client) = self.client_ops.get_mut(&entry.txn) {
                    if client.node == id && client.incarnation == node.incarnation {
                        // The reply: the op's result where it applies on this member.
                        let before = node.registers[client.key as usize];
                        let (_, output) = <VersionedRegister as linearizability::Model>::step(
                            &before,
                            &client.op.input,
                        );
                        client.op.ret = Some(now);
                        client.op.output = Some(output);
                    }
                }
                if let Some((_, key, op)) = decode_op(&entry.txn) {
                    if let Some(r) = node.registers.get_mut(key as usize) {
                        *r = <VersionedRegister as linearizability::Model>::step(r, &op).0;
                    }
                }
                if let Some(sync) = self.syncs.get(&entry.txn) {
                    if sync.node == id && sync.incarnation == node.incarnation {
                        // The read after the sync, at the member that answered it.
                        for (key, required) in sync.required.iter().enumerate() {
                            let version = node.registers[key].1;
                            assert!(
                                version >= *required,
                                "a read after a sync at node {id} saw register {key} at version \
                                 {version}, older than the acknowledged {required}"
                            );
                        }
                        self.syncs_answered += 1;
                    }
                }
                node.applied.push(entry.clone());
                self.acknowledged.insert(entry.txn.clone());
                self.check_prefix(id);
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
            }
            Action::Disconnect { peer } => self.break_link(id, peer),
            Action::Forwarded { from: _, data } => {
                let peer = self
                    .nodes
                    .get_mut(&id)
                    .and_then(|n| n.peer.as_mut())
                    .expect("peer");
                let _ = peer.propose(data);
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
                self.committed.insert(entry.zxid, entry.txn.clone());
            }
        }
    }

    /// A node's applied txns are exactly the first ones of the committed sequence.
    fn check_prefix(&self, id: Sid) {
        let applied = &self.nodes[&id].applied;
        for (a, (zxid, txn)) in applied.iter().zip(self.committed.iter()) {
            assert_eq!(
                (a.zxid, &a.txn),
                (*zxid, txn),
                "node {id} applied {:#x} where the committed sequence has {zxid:#x}",
                a.zxid
            );
        }
    }

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

    fn write(&mut self) {
        let ids: Vec<Sid> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.alive)
            .map(|(s, _)| *s)
            .collect();
        if ids.is_empty() {
            return;
        }
        let id = ids[self.rng.below(ids.len() as u64) as usize];
        self.submitted += 1;
        let n = self.submitted;
        let key = self.rng.below(KEYS);
        let node = self.nodes.get(&id).expect("alive");
        let incarnation = node.incarnation;
        // Half the ops are compare-and-sets on the version this member shows (as a client
        // reads, then writes with the version), half blind writes.
        let op = if self.rng.below(2) == 0 {
            RegisterOp::Write(n)
        } else {
            let (_, version) = node.registers[key as usize];
            RegisterOp::Cas {
                expected: version,
                value: n,
            }
        };
        let txn = encode_op(n, key, op);
        let peer = self
            .nodes
            .get_mut(&id)
            .and_then(|n| n.peer.as_mut())
            .expect("alive");
        let sent = match peer.role() {
            Role::Leading {
                established: true, ..
            } => peer.propose(txn.clone()).is_ok(),
            Role::Following { serving: true, .. } | Role::Observing { serving: true, .. } => {
                peer.forward(txn.clone())
            }
            // A member that does not serve refuses the client: nothing happens.
            _ => false,
        };
        if sent {
            self.client_ops.insert(
                txn,
                ClientOp {
                    key,
                    op: Op {
                        invoke: self.now,
                        ret: None,
                        output: None,
                        input: op,
                    },
                    node: id,
                    incarnation,
                },
            );
        }
        self.run_actions(id);
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
                self.write();
                let next = 2 + self.rng.below(10);
                self.schedule(next, Event::Write);
            }
            Event::Read => {
                self.read();
                let next = 3 + self.rng.below(10);
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
        let Some(peer) = node.peer.as_mut() else {
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
        d.snapshot = node
            .applied
            .iter()
            .take_while(|e| e.zxid <= base)
            .cloned()
            .collect();
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
}

fn encode(entries: &[Entry]) -> Bytes {
    let mut out = Vec::new();
    for e in entries {
        out.extend_from_slice(&e.zxid.to_be_bytes());
        out.extend_from_slice(&(e.txn.len() as u32).to_be_bytes());
        out.extend_from_slice(&e.txn);
    }
    Bytes::from(out)
}

fn decode(mut b: &[u8]) -> Vec<Entry> {
    let mut out = Vec::new();
    while b.len() >= 12 {
        let zxid = i64::from_be_bytes(b[..8].try_into().expect("8 bytes"));
        let len = u32::from_be_bytes(b[8..12].try_into().expect("4 bytes")) as usize;
        out.push(Entry {
            zxid,
            txn: Bytes::copy_from_slice(&b[12..12 + len]),
        });
        b = &b[12 + len..];
    }
    out
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
    // Let the last writes commit everywhere, without new ones.
    sim.events
        .retain(|_, e| !matches!(e, Event::Write | Event::Read));
    sim.run_until(32_000);
    let leader = leaders[0];
    let expected: Vec<Zxid> = sim.committed.keys().copied().collect();
    for (id, node) in &sim.nodes {
        let applied: Vec<Zxid> = node.applied.iter().map(|e| e.zxid).collect();
        assert_eq!(
            applied, expected,
            "seed {seed}: node {id} has not applied the committed sequence (leader {leader})"
        );
    }
    let all: BTreeSet<&Bytes> = sim.committed.values().collect();
    for txn in &sim.acknowledged {
        assert!(all.contains(txn), "seed {seed}: acknowledged {txn:?} lost");
    }
    check_linearizable(seed, &sim);
    if std::env::var("ZAB_SIM_STATS").is_ok() {
        let replied = sim
            .client_ops
            .values()
            .filter(|c| c.op.ret.is_some())
            .count();
        let cas_ok = sim
            .client_ops
            .values()
            .filter(|c| matches!(c.op.input, RegisterOp::Cas { .. }))
            .filter(|c| matches!(c.op.output, Some(Some(_))))
            .count();
        eprintln!(
            "seed {seed}: {} client ops, {replied} answered, {cas_ok} successful CAS, {} reads, \
             {} syncs answered",
            sim.client_ops.len(),
            sim.reads,
            sim.syncs_answered
        );
    }
    if std::env::var("ZAB_SIM_STATS").is_ok() {
        eprintln!(
            "seed {seed}: {} committed of {} submitted, {} epochs led, leader {leader}",
            sim.committed.len(),
            sim.submitted,
            sim.leaders.len()
        );
    }
    assert!(
        sim.committed.len() as u64 > 0,
        "seed {seed}: nothing was ever committed ({} writes submitted)",
        sim.submitted
    );
}

/// The clients' histories, one register at a time, against the versioned register. An op
/// whose client never got a reply may or may not have happened; one whose txn is not in the
/// final committed sequence certainly did not, and is left out.
fn check_linearizable(seed: u64, sim: &Sim) {
    let committed: BTreeSet<&Bytes> = sim.committed.values().collect();
    for key in 0..KEYS {
        // By invocation (the txn breaks ties, so the order is deterministic).
        let mut ops: Vec<(&Bytes, &ClientOp)> = sim
            .client_ops
            .iter()
            .filter(|(txn, c)| c.key == key && (c.op.ret.is_some() || committed.contains(txn)))
            .collect();
        ops.sort_by_key(|(txn, c)| (c.op.invoke, *txn));
        let history: Vec<Op<RegisterOp, Option<u64>>> =
            ops.iter().map(|(_, c)| c.op.clone()).collect();
        match linearizability::check::<VersionedRegister>(&history, 2_000_000) {
            Some(true) => {}
            Some(false) => panic!(
                "seed {seed}: register {key}'s history ({} ops) is not linearizable: {history:?}",
                history.len()
            ),
            None => panic!(
                "seed {seed}: register {key}'s history ({} ops) exhausted the checker's budget",
                history.len()
            ),
        }
    }
}

fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("ZAB_SIM_SEED") {
        return vec![s.parse().expect("ZAB_SIM_SEED is a number")];
    }
    let n: u64 = std::env::var("ZAB_SIM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    (1..=n).collect()
}

#[test]
fn three_voters_under_faults() {
    for seed in seeds() {
        run_seed(seed, 3, 0);
    }
}

#[test]
fn five_voters_and_an_observer_under_faults() {
    for seed in seeds() {
        run_seed(seed ^ 0x5555, 5, 1);
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
    let mut seed = 1_000_000u64;
    let mut runs = 0u64;
    while started.elapsed().as_secs() < seconds {
        seed += 1;
        run_seed(seed, 3, 0);
        run_seed(seed ^ 0x5555, 5, 1);
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
