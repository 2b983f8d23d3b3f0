//! Three replicas over real sockets on [`DiskStorage`] in temp directories (the shape of
//! `quorum_transport.rs`): the leader is killed and restarted from its disk, then the whole
//! ensemble is restarted from disk, and no committed txn is lost or reordered.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::TcpListener;
use zk_server::config::QuorumSecret;
use zk_server::quorum::{
    DiskOptions, DiskStorage, DriverConfig, QuorumTransport, Replica, ReplicaHandle,
};
use zk_server::zab::{Sid, Zxid};

mod support;
use support::quorum;
use support::replicas::{self, init_tracing, propose, VecMachine};

/// The addresses and configuration of `support::quorum`'s ensemble, and a data directory
/// per member.
struct Ensemble {
    net: quorum::Ensemble,
    dirs: BTreeMap<Sid, PathBuf>,
    _tmp: tempfile::TempDir,
}

struct Node {
    replica: Replica,
    handle: ReplicaHandle,
    machine: VecMachine,
}

/// Small files, so that the logs roll during the test.
const OPTIONS: DiskOptions = DiskOptions {
    roll_size: 1024,
    preallocate: 64 * 1024,
};

impl Ensemble {
    async fn bind(voters: &[Sid]) -> (Ensemble, BTreeMap<Sid, TcpListener>) {
        let secret = QuorumSecret::new(b"a shared secret for the tests".to_vec()).expect("long");
        let (net, listeners) = quorum::Ensemble::bind(voters, &[], Some(secret)).await;
        let tmp = tempfile::tempdir().expect("tmp");
        let dirs = voters
            .iter()
            .map(|&sid| (sid, tmp.path().join(format!("server{sid}"))))
            .collect();
        let e = Ensemble {
            net,
            dirs,
            _tmp: tmp,
        };
        (e, listeners)
    }

    fn dir(&self, me: Sid) -> &Path {
        &self.dirs[&me]
    }

    /// Starts `me` on its data directory (recovering whatever is there).
    fn start(&self, me: Sid, listener: TcpListener) -> Node {
        let config = self.net.transport_config(me, self.net.secret.clone());
        let (transport, inputs) = QuorumTransport::start(config, listener).expect("start");
        let storage = DiskStorage::open(self.dir(me), self.dir(me), OPTIONS).expect("open");
        let machine = VecMachine::default();
        let replica = Replica::spawn(
            DriverConfig::new(self.net.peer_config(me)),
            storage,
            machine.clone(),
            transport,
            inputs,
        )
        .expect("spawn");
        Node {
            handle: replica.handle(),
            replica,
            machine,
        }
    }

    async fn rebind(&self, sid: Sid) -> TcpListener {
        self.net.rebind(sid).await
    }
}

fn handles(nodes: &BTreeMap<Sid, Node>) -> Vec<(Sid, ReplicaHandle)> {
    nodes.iter().map(|(s, n)| (*s, n.handle.clone())).collect()
}

/// Waits until exactly one node leads and the others serve; returns the leader's id.
async fn settled(nodes: &BTreeMap<Sid, Node>) -> Sid {
    replicas::settled(&handles(nodes), Duration::from_secs(15)).await
}

async fn wait_applied(nodes: &BTreeMap<Sid, Node>, zxid: Zxid) {
    replicas::wait_applied(&handles(nodes), zxid, Duration::from_secs(15)).await
}

fn assert_same_sequence(nodes: &BTreeMap<Sid, Node>, expected: &[&str]) {
    let machines: Vec<(Sid, VecMachine)> =
        nodes.iter().map(|(s, n)| (*s, n.machine.clone())).collect();
    let first = replicas::assert_same_sequence(&machines);
    let txns: Vec<&[u8]> = first.iter().map(|e| &e.txn[..]).collect();
    let expected: Vec<&[u8]> = expected.iter().map(|s| s.as_bytes()).collect();
    assert_eq!(txns, expected);
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

fn log_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("version-2"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("log."))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_restarts_from_its_disk_and_so_does_the_whole_ensemble() {
    init_tracing();
    let (e, listeners) = Ensemble::bind(&[1, 2, 3]).await;
    let mut nodes: BTreeMap<Sid, Node> = listeners
        .into_iter()
        .map(|(sid, l)| (sid, e.start(sid, l)))
        .collect();
    let leader = settled(&nodes).await;
    let last = propose(&nodes[&leader].handle, "a", 100).await;
    wait_applied(&nodes, last).await;
    let mut expected = names("a", 100);

    // Kill the leader (its task is aborted: nothing is flushed); the others go on.
    let old = nodes.remove(&leader).expect("leader");
    old.replica.stop().await;
    assert!(log_files(e.dir(leader)) > 1, "the logs rolled");
    let new_leader = settled(&nodes).await;
    assert_ne!(new_leader, leader);
    let last = propose(&nodes[&new_leader].handle, "b", 100).await;
    wait_applied(&nodes, last).await;
    expected.extend(names("b", 100));

    // The old leader restarts from its data directory and catches up.
    let listener = e.rebind(leader).await;
    nodes.insert(leader, e.start(leader, listener));
    let now_leader = settled(&nodes).await;
    wait_applied(&nodes, last).await;
    let last = propose(&nodes[&now_leader].handle, "c", 50).await;
    wait_applied(&nodes, last).await;
    expected.extend(names("c", 50));
    let expected_refs: Vec<&str> = expected.iter().map(String::as_str).collect();
    assert_same_sequence(&nodes, &expected_refs);

    // Everyone stops; everyone restarts from disk: every committed txn is still there.
    for (_, node) in std::mem::take(&mut nodes) {
        node.replica.stop().await;
    }
    for sid in [1, 2, 3] {
        let listener = e.rebind(sid).await;
        nodes.insert(sid, e.start(sid, listener));
    }
    let leader = settled(&nodes).await;
    let last = propose(&nodes[&leader].handle, "d", 10).await;
    wait_applied(&nodes, last).await;
    expected.extend(names("d", 10));
    let expected_refs: Vec<&str> = expected.iter().map(String::as_str).collect();
    assert_same_sequence(&nodes, &expected_refs);
}
