//! ZOOKEEPER-4882: a storage error is fatal for the replica. A one-member ensemble whose
//! log fsync fails stops with the error, and the write whose sync failed is never applied or
//! acknowledged (never retried into a false success).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;
use zk_server::quorum::{
    DriverConfig, DriverError, MemoryStorage, QuorumTransport, Recovered, Replica, ReplicaStorage,
    StorageError, TransportConfig,
};
use zk_server::zab::{ElectionTimers, Entry, PeerConfig, Role, Zxid};

use support::replicas::VecMachine;

/// A [`MemoryStorage`] whose `sync` fails once `fail` is set, as a disk error would.
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
        if self.fail.load(Ordering::SeqCst) {
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

#[tokio::test]
async fn zookeeper_4882_an_fsync_error_stops_the_replica_and_the_write_is_never_applied() {
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
    let fail = Arc::new(AtomicBool::new(false));
    let machine = VecMachine::default();
    let storage = FailingStorage {
        inner: MemoryStorage::new(),
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
    let mut role = handle.watch_role();
    tokio::time::timeout(
        Duration::from_secs(10),
        role.wait_for(|r| {
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
    let first = handle
        .propose(Bytes::from_static(b"before"))
        .await
        .expect("propose");
    let mut applied = handle.watch_applied();
    tokio::time::timeout(Duration::from_secs(5), applied.wait_for(|z| *z >= first))
        .await
        .expect("the first write commits")
        .expect("applied");

    fail.store(true, Ordering::SeqCst);
    let doomed = handle
        .propose(Bytes::from_static(b"after the disk failed"))
        .await;
    let stopped = tokio::time::timeout(Duration::from_secs(5), replica.join())
        .await
        .expect("the replica stops by itself");
    assert!(
        matches!(stopped, Err(DriverError::Storage(_))),
        "stopped with {stopped:?}"
    );
    let entries = machine.entries();
    assert_eq!(
        entries.len(),
        1,
        "only the write before the failure applied"
    );
    assert_eq!(entries[0].txn, Bytes::from_static(b"before"));
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
}
