//! RELIABILITY.md, log test 4, through the production replica driver: a follower that
//! catches up (by DIFF, or by SNAP from a leader that compacted its log) and then acknowledges
//! new writes crashes at each of its storage calls in turn (append, sync, truncate, snapshot
//! install, epoch writes), before the call takes effect. Then every member loses its unsynced
//! writes, and the two followers restart without the leader: every txn the leader committed
//! must be there, in the same order, on both (a follower that acknowledged before its writes
//! were durable would lose the txns it helped commit).
//!
//! The ZAB simulator covers the same ground with its own executor and a modelled disk; this
//! test runs `quorum::Replica` itself over real sockets.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;
use zk_server::quorum::{DriverConfig, MemoryStorage, Recovered, ReplicaStorage, StorageError};
use zk_server::zab::{Entry, Sid, Zxid};

use support::quorum::{settled, wait_applied, Ensemble, Node};
use support::replicas::{self, established_leader, init_tracing, propose};

/// A [`MemoryStorage`] whose machine dies at a given storage call: that call and every later
/// one fail without taking effect (recovery is not counted).
#[derive(Clone)]
struct CrashPoint {
    inner: MemoryStorage,
    calls_left: Arc<AtomicUsize>,
    crashed: Arc<AtomicBool>,
}

impl CrashPoint {
    fn new(inner: MemoryStorage, calls_before_crash: usize) -> CrashPoint {
        CrashPoint {
            inner,
            calls_left: Arc::new(AtomicUsize::new(calls_before_crash)),
            crashed: Arc::new(AtomicBool::new(false)),
        }
    }

    fn call(&self) -> Result<(), StorageError> {
        let left = self
            .calls_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if left.is_err() || self.crashed.load(Ordering::SeqCst) {
            self.crashed.store(true, Ordering::SeqCst);
            return Err(StorageError::Io(std::io::Error::other("power loss")));
        }
        Ok(())
    }

    fn crashed(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
    }
}

impl ReplicaStorage for CrashPoint {
    fn recover(&mut self) -> Result<Recovered, StorageError> {
        self.inner.recover()
    }
    fn append(&mut self, entry: &Entry) -> Result<(), StorageError> {
        self.call()?;
        self.inner.append(entry)
    }
    fn sync(&mut self) -> Result<Zxid, StorageError> {
        self.call()?;
        self.inner.sync()
    }
    fn truncate(&mut self, after: Zxid) -> Result<(), StorageError> {
        self.call()?;
        self.inner.truncate(after)
    }
    fn install_snapshot(&mut self, zxid: Zxid, state: &Bytes) -> Result<(), StorageError> {
        self.call()?;
        self.inner.install_snapshot(zxid, state)
    }
    fn persist_epochs(&mut self, accepted: u32, current: u32) -> Result<(), StorageError> {
        self.call()?;
        self.inner.persist_epochs(accepted, current)
    }
    fn compact(&mut self, zxid: Zxid, state: &Bytes) -> Result<(), StorageError> {
        self.call()?;
        self.inner.compact(zxid, state)
    }
}

/// Txns per phase (before the follower falls behind, while it is away, after it is back).
const TXNS: usize = 3;

fn driver(e: &Ensemble, me: Sid, snapshot_every: u64) -> DriverConfig {
    let mut d = DriverConfig::new(e.peer_config(me));
    d.snapshot_every = snapshot_every;
    // The same storage calls every run: a failing crash point reproduces.
    d.snapshot_jitter = false;
    d
}

fn start(
    e: &Ensemble,
    me: Sid,
    listener: TcpListener,
    disk: &MemoryStorage,
    snapshot_every: u64,
) -> Node {
    e.start_on(
        driver(e, me, snapshot_every),
        e.transport_config(me, None),
        listener,
        disk.clone(),
        disk.clone(),
    )
}

/// Stops a member as a power loss would: its unsynced writes are gone.
async fn power_off(node: Node) -> MemoryStorage {
    let disk = node.storage.clone();
    node.replica.stop().await;
    disk.crash();
    disk
}

/// One run with the follower's machine dying at storage call `k` (counted from its
/// restart); returns whether it died (false: `k` is past its last call).
async fn crash_the_catching_up_follower_at(k: usize, snapshot_every: u64) -> bool {
    let (e, listeners) = Ensemble::bind(&[1, 2, 3], &[], None).await;
    let mut nodes: BTreeMap<Sid, Node> = listeners
        .into_iter()
        .map(|(sid, l)| {
            (
                sid,
                start(&e, sid, l, &MemoryStorage::new(), snapshot_every),
            )
        })
        .collect();
    let leader = settled(&nodes).await;
    let last = propose(&nodes[&leader].handle, "a", TXNS).await;
    wait_applied(&nodes, last).await;
    let mut followers = nodes.keys().copied().filter(|s| *s != leader);
    let (f, g) = (followers.next().expect("f"), followers.next().expect("g"));

    // F falls behind; then G goes too, leaving the leader without a quorum.
    let f_disk = power_off(nodes.remove(&f).expect("f")).await;
    let last = propose(&nodes[&leader].handle, "b", TXNS).await;
    wait_applied(&nodes, last).await;
    let g_disk = power_off(nodes.remove(&g).expect("g")).await;

    // F comes back to catch up and acknowledge new writes, dying at its k-th storage call.
    let point = CrashPoint::new(f_disk.clone(), k);
    let mut f_node = e.start_on(
        driver(&e, f, snapshot_every),
        e.transport_config(f, None),
        e.rebind(f).await,
        point.clone(),
        f_disk.clone(),
    );
    let l_handle = nodes[&leader].handle.clone();
    let write_more = async {
        let mut role = l_handle.watch_role();
        let _ = role.wait_for(established_leader).await;
        let mut last = None;
        for i in 0..TXNS {
            match l_handle.propose(Bytes::from(format!("c{i}"))).await {
                Ok(z) => last = Some(z),
                Err(_) => break,
            }
        }
        if let Some(last) = last {
            let _ = l_handle.watch_applied().wait_for(|z| *z >= last).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), async {
        tokio::select! {
            _ = f_node.replica.stopped() => {}
            () = write_more => {}
        }
    })
    .await
    .unwrap_or_else(|_| panic!("k={k}: neither did F die nor did the writes commit"));
    let crashed = point.crashed();

    // Everything the leader applied was committed. Then the power goes everywhere.
    let l_node = nodes.remove(&leader).expect("leader");
    let committed = l_node.machine.entries();
    let l_disk = power_off(l_node).await;
    let f_disk = power_off(f_node).await;
    // The leader itself logged each of them durably (or has it in its snapshot).
    let logged: Vec<Zxid> = l_disk.log().iter().map(|e| e.zxid).collect();
    for entry in committed.iter().filter(|e| e.zxid > l_disk.base()) {
        assert!(
            logged.contains(&entry.zxid),
            "k={k}: the leader lost committed {entry:?}"
        );
    }

    // The followers restart without the leader: a quorum that must hold every committed txn.
    let mut rest = BTreeMap::new();
    for (sid, disk) in [(f, &f_disk), (g, &g_disk)] {
        let listener = e.rebind(sid).await;
        rest.insert(sid, start(&e, sid, listener, disk, snapshot_every));
    }
    let new_leader = settled(&rest).await;
    let last = propose(&rest[&new_leader].handle, "d", 1).await;
    wait_applied(&rest, last).await;
    let machines: Vec<_> = rest.iter().map(|(s, n)| (*s, n.machine.clone())).collect();
    let sequence = replicas::assert_same_sequence(&machines);
    assert!(
        sequence.starts_with(&committed),
        "k={k}, snapshot_every={snapshot_every}: committed txns lost or reordered\n\
         committed: {committed:?}\nafter the restart: {sequence:?}"
    );
    for node in rest.into_values() {
        node.replica.stop().await;
    }
    crashed
}

/// Runs the scenario at every crash point, up to the first run in which the follower never
/// crashes; returns how many crash points there were.
async fn every_crash_point(snapshot_every: u64) -> usize {
    for k in 0..100 {
        if !crash_the_catching_up_follower_at(k, snapshot_every).await {
            return k;
        }
    }
    panic!("the follower still crashed after 100 storage calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_crashing_anywhere_in_a_diff_sync_loses_no_committed_txn() {
    init_tracing();
    let points = every_crash_point(0).await;
    // Its epochs, the DIFF's txns and their sync, the new writes and theirs.
    assert!(points >= TXNS + 2, "only {points} crash points");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_crashing_anywhere_in_a_snap_sync_loses_no_committed_txn() {
    init_tracing();
    // The leader snapshots and compacts every 2 commits, so the follower gets a SNAP.
    let points = every_crash_point(2).await;
    assert!(points >= TXNS + 2, "only {points} crash points");
}
