//! A replicated ensemble over real sockets on 127.0.0.1 for the replica tests: members bound
//! to fixed ports (so a member can be restarted on its port), each on an in-memory disk that
//! can lose its unsynced writes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::net::TcpListener;
use zk_server::config::QuorumSecret;
use zk_server::quorum::{
    DriverConfig, MemoryStorage, QuorumTransport, Replica, ReplicaHandle, ReplicaStorage,
    TransportConfig,
};
use zk_server::zab::{ElectionTimers, PeerConfig, Sid, Zxid};

use super::replicas::{self, VecMachine};

/// The ensemble's addresses and membership.
pub struct Ensemble {
    pub voters: BTreeSet<Sid>,
    pub observers: BTreeSet<Sid>,
    pub ports: BTreeMap<Sid, u16>,
    pub secret: Option<QuorumSecret>,
}

/// A running member: its replica, transport, state machine and disk.
pub struct Node {
    pub replica: Replica,
    pub handle: ReplicaHandle,
    pub transport: QuorumTransport,
    pub machine: VecMachine,
    pub storage: MemoryStorage,
}

impl Ensemble {
    /// Binds a listener for every member (voters and observers).
    pub async fn bind(
        voters: &[Sid],
        observers: &[Sid],
        secret: Option<QuorumSecret>,
    ) -> (Ensemble, BTreeMap<Sid, TcpListener>) {
        let mut listeners = BTreeMap::new();
        let mut ports = BTreeMap::new();
        for &sid in voters.iter().chain(observers) {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            ports.insert(sid, l.local_addr().expect("addr").port());
            listeners.insert(sid, l);
        }
        let e = Ensemble {
            voters: voters.iter().copied().collect(),
            observers: observers.iter().copied().collect(),
            ports,
            secret,
        };
        (e, listeners)
    }

    pub fn peer_config(&self, me: Sid) -> PeerConfig {
        PeerConfig {
            me,
            voters: self.voters.clone(),
            observers: self.observers.clone(),
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

    pub fn transport_config(&self, me: Sid, secret: Option<QuorumSecret>) -> TransportConfig {
        let members = self
            .ports
            .iter()
            .map(|(sid, port)| (*sid, ("127.0.0.1".to_owned(), *port)))
            .collect();
        let mut c = TransportConfig::new(me, members, secret);
        c.max_backoff = Duration::from_millis(200);
        c.handshake_timeout = Duration::from_secs(2);
        c
    }

    pub fn start(&self, me: Sid, listener: TcpListener, storage: MemoryStorage) -> Node {
        let config = self.transport_config(me, self.secret.clone());
        self.start_with(self.peer_config(me), config, listener, storage)
    }

    pub fn start_with(
        &self,
        peer: PeerConfig,
        config: TransportConfig,
        listener: TcpListener,
        storage: MemoryStorage,
    ) -> Node {
        self.start_on(
            DriverConfig::new(peer),
            config,
            listener,
            storage.clone(),
            storage,
        )
    }

    /// Starts a member with `driver`'s settings on `replica_storage` (e.g. a wrapper of
    /// `storage` that injects faults); the node keeps `storage` to crash it later.
    pub fn start_on(
        &self,
        driver: DriverConfig,
        config: TransportConfig,
        listener: TcpListener,
        replica_storage: impl ReplicaStorage,
        storage: MemoryStorage,
    ) -> Node {
        let (transport, inputs) = QuorumTransport::start(config, listener).expect("start");
        let machine = VecMachine::default();
        let replica = Replica::spawn(
            driver,
            replica_storage,
            machine.clone(),
            transport.clone(),
            inputs,
        )
        .expect("spawn");
        Node {
            handle: replica.handle(),
            replica,
            transport,
            machine,
            storage,
        }
    }

    /// Binds `sid`'s port again (after its previous listener closed), retrying briefly while
    /// the OS releases it.
    pub async fn rebind(&self, sid: Sid) -> TcpListener {
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

pub fn handles(nodes: &BTreeMap<Sid, Node>) -> Vec<(Sid, ReplicaHandle)> {
    nodes.iter().map(|(s, n)| (*s, n.handle.clone())).collect()
}

/// Waits until exactly one node leads and the others serve; returns the leader's id.
pub async fn settled(nodes: &BTreeMap<Sid, Node>) -> Sid {
    replicas::settled(&handles(nodes), Duration::from_secs(10)).await
}

pub async fn wait_applied(nodes: &BTreeMap<Sid, Node>, zxid: Zxid) {
    replicas::wait_applied(&handles(nodes), zxid, Duration::from_secs(10)).await
}

pub fn assert_same_sequence(nodes: &BTreeMap<Sid, Node>, expected_len: usize) {
    let machines: Vec<(Sid, VecMachine)> =
        nodes.iter().map(|(s, n)| (*s, n.machine.clone())).collect();
    assert_eq!(
        replicas::assert_same_sequence(&machines).len(),
        expected_len
    );
}

pub async fn three(secret_: Option<QuorumSecret>) -> (Ensemble, BTreeMap<Sid, Node>) {
    let (e, listeners) = Ensemble::bind(&[1, 2, 3], &[], secret_).await;
    let nodes = listeners
        .into_iter()
        .map(|(sid, l)| (sid, e.start(sid, l, MemoryStorage::new())))
        .collect();
    (e, nodes)
}
