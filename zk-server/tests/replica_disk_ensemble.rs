//! Three replicas over real sockets on [`DiskStorage`] in temp directories (the shape of
//! `quorum_transport.rs`): the leader is killed and restarted from its disk, then the whole
//! ensemble is restarted from disk, and no committed txn is lost or reordered.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::net::TcpListener;
use tokio::time::timeout;
use zk_server::config::QuorumSecret;
use zk_server::quorum::{
    DiskOptions, DiskStorage, DriverConfig, QuorumTransport, Replica, ReplicaHandle, RestoreError,
    StateMachine, TransportConfig,
};
use zk_server::zab::{ElectionTimers, Entry, PeerConfig, Role, Sid, Zxid};

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Applies entries to a Vec; its snapshot is the whole Vec.
#[derive(Clone, Default)]
struct VecMachine(Arc<Mutex<Vec<Entry>>>);

impl VecMachine {
    fn entries(&self) -> Vec<Entry> {
        self.0.lock().expect("lock").clone()
    }
}

impl StateMachine for VecMachine {
    fn apply(&mut self, entry: &Entry) {
        self.0.lock().expect("lock").push(entry.clone());
    }

    fn snapshot(&self) -> Bytes {
        let mut out = BytesMut::new();
        for e in self.0.lock().expect("lock").iter() {
            out.put_i64(e.zxid);
            out.put_u32(e.txn.len() as u32);
            out.put_slice(&e.txn);
        }
        out.freeze()
    }

    fn restore(&mut self, state: Bytes) -> Result<(), RestoreError> {
        let mut entries = Vec::new();
        let mut rest = &state[..];
        while !rest.is_empty() {
            let (zxid, tail) = rest.split_at_checked(8).ok_or("truncated zxid")?;
            let (len, tail) = tail.split_at_checked(4).ok_or("truncated length")?;
            let len = u32::from_be_bytes(len.try_into()?) as usize;
            let (txn, tail) = tail.split_at_checked(len).ok_or("truncated txn")?;
            entries.push(Entry {
                zxid: i64::from_be_bytes(zxid.try_into()?),
                txn: Bytes::copy_from_slice(txn),
            });
            rest = tail;
        }
        *self.0.lock().expect("lock") = entries;
        Ok(())
    }
}

struct Ensemble {
    voters: BTreeSet<Sid>,
    ports: BTreeMap<Sid, u16>,
    dirs: BTreeMap<Sid, PathBuf>,
    secret: QuorumSecret,
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
        let tmp = tempfile::tempdir().expect("tmp");
        let mut listeners = BTreeMap::new();
        let mut ports = BTreeMap::new();
        let mut dirs = BTreeMap::new();
        for &sid in voters {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            ports.insert(sid, l.local_addr().expect("addr").port());
            listeners.insert(sid, l);
            dirs.insert(sid, tmp.path().join(format!("server{sid}")));
        }
        let e = Ensemble {
            voters: voters.iter().copied().collect(),
            ports,
            dirs,
            secret: QuorumSecret::new(b"a shared secret for the tests".to_vec()).expect("long"),
            _tmp: tmp,
        };
        (e, listeners)
    }

    fn peer_config(&self, me: Sid) -> PeerConfig {
        PeerConfig {
            me,
            voters: self.voters.clone(),
            observers: BTreeSet::new(),
            tick_ms: 100,
            init_limit: 20,
            sync_limit: 10,
            election: ElectionTimers {
                finalize_wait_ms: 50,
                min_resend_ms: 50,
                max_resend_ms: 1000,
            },
        }
    }

    fn transport_config(&self, me: Sid) -> TransportConfig {
        let members = self
            .ports
            .iter()
            .map(|(sid, port)| (*sid, ("127.0.0.1".to_owned(), *port)))
            .collect();
        let mut c = TransportConfig::new(me, members, Some(self.secret.clone()));
        c.max_backoff = Duration::from_millis(200);
        c.handshake_timeout = Duration::from_secs(2);
        c
    }

    fn dir(&self, me: Sid) -> &Path {
        &self.dirs[&me]
    }

    /// Starts `me` on its data directory (recovering whatever is there).
    fn start(&self, me: Sid, listener: TcpListener) -> Node {
        let (transport, inputs) =
            QuorumTransport::start(self.transport_config(me), listener).expect("start");
        let storage = DiskStorage::open(self.dir(me), self.dir(me), OPTIONS).expect("open");
        let machine = VecMachine::default();
        let replica = Replica::spawn(
            DriverConfig::new(self.peer_config(me)),
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
        let port = self.ports[&sid];
        for _ in 0..100 {
            if let Ok(l) = TcpListener::bind(("127.0.0.1", port)).await {
                return l;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("cannot bind port {port} again");
    }
}

fn established_leader(role: &Role) -> bool {
    matches!(
        role,
        Role::Leading {
            established: true,
            ..
        }
    )
}

fn serving(role: &Role) -> bool {
    established_leader(role) || matches!(role, Role::Following { serving: true, .. })
}

async fn settled(nodes: &BTreeMap<Sid, Node>) -> Sid {
    let wait = async {
        loop {
            let roles: BTreeMap<Sid, Role> =
                nodes.iter().map(|(s, n)| (*s, n.handle.role())).collect();
            let leaders: Vec<Sid> = roles
                .iter()
                .filter(|(_, r)| established_leader(r))
                .map(|(s, _)| *s)
                .collect();
            if leaders.len() == 1 && roles.values().all(serving) {
                return leaders[0];
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    timeout(Duration::from_secs(15), wait)
        .await
        .unwrap_or_else(|_| {
            let roles: Vec<(Sid, Role)> =
                nodes.iter().map(|(s, n)| (*s, n.handle.role())).collect();
            panic!("no settled leader: {roles:?}")
        })
}

async fn wait_applied(nodes: &BTreeMap<Sid, Node>, zxid: Zxid) {
    for (sid, node) in nodes {
        let mut applied = node.handle.watch_applied();
        let ok = timeout(Duration::from_secs(15), applied.wait_for(|z| *z >= zxid))
            .await
            .is_ok();
        assert!(
            ok,
            "node {sid} applied only up to {:#x}, not {zxid:#x} (role {:?})",
            *node.handle.watch_applied().borrow(),
            node.handle.role()
        );
    }
}

async fn propose(leader: &ReplicaHandle, prefix: &str, n: usize) -> Zxid {
    let mut last = 0;
    for i in 0..n {
        last = leader
            .propose(Bytes::from(format!("{prefix}{i}")))
            .await
            .expect("the leader accepts");
    }
    last
}

fn assert_same_sequence(nodes: &BTreeMap<Sid, Node>, expected: &[&str]) {
    let mut sequences = nodes.iter().map(|(s, n)| (*s, n.machine.entries()));
    let (first_sid, first) = sequences.next().expect("a node");
    let txns: Vec<&[u8]> = first.iter().map(|e| &e.txn[..]).collect();
    let expected: Vec<&[u8]> = expected.iter().map(|s| s.as_bytes()).collect();
    assert_eq!(txns, expected, "node {first_sid}");
    for w in first.windows(2) {
        assert!(w[0].zxid < w[1].zxid, "applied in zxid order");
    }
    for (sid, seq) in sequences {
        assert_eq!(
            seq, first,
            "node {sid} applied another sequence than {first_sid}"
        );
    }
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
