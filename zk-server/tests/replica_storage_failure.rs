//! ZOOKEEPER-4882 and RELIABILITY.md log test 3: a storage error is fatal for the replica. A
//! one-member ensemble whose log fsync fails (once: a retry would succeed, as after Linux
//! dropped the dirty pages) stops with the error; the write whose sync failed is never
//! applied or acknowledged, and after a restart it is not there.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;
use zk_server::quorum::{
    DriverConfig, DriverError, MemoryStorage, QuorumTransport, Recovered, Replica, ReplicaHandle,
    ReplicaStorage, StorageError, TransportConfig,
};
use zk_server::zab::{ElectionTimers, Entry, PeerConfig, Role, Sid, Zxid};

use support::quorum::{assert_same_sequence, handles, settled, wait_applied, Ensemble, Node};
use support::replicas::{self, propose, VecMachine};

/// A [`MemoryStorage`] whose next `sync` fails once `fail` is set, as a disk error would;
/// the sync after it would succeed.
struct FailingStorage {
    inner: MemoryStorage,
    fail: Arc<AtomicBool>,
}

impl ReplicaStorage for FailingStorage {
    fn recover(&mut self) -> Result<Recovered, StorageError> {
        self.inner.recover()
    }
    fn append(&mut self, entry: &Entry) -> Result<(), StorageError> {
        self.inner.append(entry)
    }
    fn sync(&mut self) -> Result<Zxid, StorageError> {
        if self.fail.swap(false, Ordering::SeqCst) {
            return Err(StorageError::Io(std::io::Error::other("fsync: EIO")));
        }
        self.inner.sync()
    }
    fn truncate(&mut self, after: Zxid) -> Result<(), StorageError> {
        self.inner.truncate(after)
    }
    fn install_snapshot(&mut self, zxid: Zxid, state: &Bytes) -> Result<(), StorageError> {
        self.inner.install_snapshot(zxid, state)
    }
    fn persist_epochs(&mut self, accepted: u32, current: u32) -> Result<(), StorageError> {
        self.inner.persist_epochs(accepted, current)
    }
    fn compact(&mut self, zxid: Zxid, state: &Bytes) -> Result<(), StorageError> {
        self.inner.compact(zxid, state)
    }
}

/// Starts a one-voter ensemble on `disk` (its sync failing when `fail` is set) and waits until
/// it leads.
async fn lone_voter(
    disk: &MemoryStorage,
    fail: &Arc<AtomicBool>,
) -> (Replica, ReplicaHandle, VecMachine) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let members = BTreeMap::from([(1, ("127.0.0.1".to_owned(), port))]);
    let (transport, inputs) =
        QuorumTransport::start(TransportConfig::new(1, members, None), listener).expect("start");
    let peer = PeerConfig {
        me: 1,
        voters: BTreeSet::from([1]),
        observers: BTreeSet::new(),
        tick_ms: 100,
        init_limit: 10,
        sync_limit: 5,
        election: ElectionTimers::default(),
    };
    let machine = VecMachine::default();
    let storage = FailingStorage {
        inner: disk.clone(),
        fail: fail.clone(),
    };
    let replica = Replica::spawn(
        DriverConfig::new(peer),
        storage,
        machine.clone(),
        transport,
        inputs,
    )
    .expect("spawn");
    let handle = replica.handle();
    tokio::time::timeout(
        Duration::from_secs(10),
        handle.watch_role().wait_for(|r| {
            matches!(
                r,
                Role::Leading {
                    established: true,
                    ..
                }
            )
        }),
    )
    .await
    .expect("a lone voter leads")
    .expect("role");
    (replica, handle, machine)
}

/// Proposes `txn` and waits until it is applied; returns its zxid.
async fn commit(handle: &ReplicaHandle, txn: &'static [u8]) -> Zxid {
    let zxid = handle
        .propose(Bytes::from_static(txn))
        .await
        .expect("propose");
    tokio::time::timeout(
        Duration::from_secs(5),
        handle.watch_applied().wait_for(|z| *z >= zxid),
    )
    .await
    .expect("the write commits")
    .expect("applied");
    zxid
}

fn txns(machine: &VecMachine) -> Vec<Bytes> {
    machine.entries().into_iter().map(|e| e.txn).collect()
}

#[tokio::test]
async fn zookeeper_4882_an_fsync_error_stops_the_replica_and_the_write_is_never_applied() {
    let disk = MemoryStorage::new();
    let fail = Arc::new(AtomicBool::new(false));
    let (replica, handle, machine) = lone_voter(&disk, &fail).await;
    commit(&handle, b"before").await;
    let applied = handle.watch_applied();

    fail.store(true, Ordering::SeqCst);
    let doomed = handle
        .propose(Bytes::from_static(b"after the disk failed"))
        .await;
    let stopped = tokio::time::timeout(Duration::from_secs(5), replica.join())
        .await
        .expect("the replica stops by itself (the next sync would succeed: never retried)");
    assert!(
        matches!(stopped, Err(DriverError::Storage(_))),
        "stopped with {stopped:?}"
    );
    assert_eq!(
        txns(&machine),
        [Bytes::from_static(b"before")],
        "only the write before the failure applied"
    );
    if let Ok(zxid) = doomed {
        assert!(
            *applied.borrow() < zxid,
            "the failed write was reported applied"
        );
    }
    assert!(
        handle.propose(Bytes::from_static(b"later")).await.is_err(),
        "a stopped replica accepts nothing"
    );

    // The machine restarts having lost what was not synced: the failed write is not there,
    // the one before it is, and the replica works again.
    disk.crash();
    let (replica, handle, machine) = lone_voter(&disk, &fail).await;
    commit(&handle, b"after the restart").await;
    assert_eq!(
        txns(&machine),
        [
            Bytes::from_static(b"before"),
            Bytes::from_static(b"after the restart")
        ]
    );
    replica.stop().await;
}

/// The same on a follower of three: it stops on its fsync error (the other two go on
/// committing) having applied nothing but committed txns; restarted on what survived, it
/// catches up with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_whose_fsync_fails_stops_and_catches_up_after_a_restart() {
    let (e, listeners) = Ensemble::bind(&[1, 2, 3], &[], None).await;
    let mut nodes: BTreeMap<Sid, Node> = listeners
        .into_iter()
        .map(|(sid, l)| (sid, e.start(sid, l, MemoryStorage::new())))
        .collect();
    let leader = settled(&nodes).await;
    let f = *nodes.keys().find(|s| **s != leader).expect("a follower");
    // F again, on the same disk, with a sync that can fail.
    let old = nodes.remove(&f).expect("f");
    let disk = old.storage.clone();
    old.replica.stop().await;
    disk.crash();
    let fail = Arc::new(AtomicBool::new(false));
    let storage = FailingStorage {
        inner: disk.clone(),
        fail: fail.clone(),
    };
    let listener = e.rebind(f).await;
    let f_node = e.start_on(
        DriverConfig::new(e.peer_config(f)),
        e.transport_config(f, None),
        listener,
        storage,
        disk.clone(),
    );
    nodes.insert(f, f_node);
    let leader = settled(&nodes).await;
    let last = propose(&nodes[&leader].handle, "a", 3).await;
    wait_applied(&nodes, last).await;

    fail.store(true, Ordering::SeqCst);
    let last = propose(&nodes[&leader].handle, "b", 3).await;
    let f_node = nodes.get_mut(&f).expect("f");
    let stopped = tokio::time::timeout(Duration::from_secs(5), f_node.replica.stopped())
        .await
        .expect("the follower stops by itself (the next sync would succeed: never retried)");
    assert!(
        matches!(stopped, Err(DriverError::Storage(_))),
        "stopped with {stopped:?}"
    );
    let f_applied = f_node.machine.entries();
    let f_node = nodes.remove(&f).expect("f");
    replicas::wait_applied(&handles(&nodes), last, Duration::from_secs(10)).await;
    let committed = nodes[&leader].machine.entries();
    assert!(
        committed.starts_with(&f_applied),
        "the follower applied {f_applied:?}, committed: {committed:?}"
    );

    // Restarted on what survived, it catches up.
    f_node.replica.stop().await;
    disk.crash();
    let listener = e.rebind(f).await;
    nodes.insert(f, e.start(f, listener, disk));
    settled(&nodes).await;
    wait_applied(&nodes, last).await;
    assert_same_sequence(&nodes, 6);
}
