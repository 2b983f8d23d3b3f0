//! Replicas over real sockets on 127.0.0.1: election, replication, leader failover, a
//! restarted member catching up, intruders (a wrong secret, an unknown id) kept out, and a
//! garbage frame closing only its own connection.
//!
//! `RUST_LOG=zk_server=debug` shows the transport's and the peers' logs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use zk_server::config::QuorumSecret;
use zk_server::quorum::{handshake, MemoryStorage, QuorumTransport};
use zk_server::zab::{Entry, Sid};

mod support;
use support::quorum::{assert_same_sequence, settled, three, wait_applied, Ensemble, Node};
use support::replicas::{init_tracing, propose, serving};

const SECRET: &str = "a shared secret for the tests";

fn secret(s: &str) -> QuorumSecret {
    QuorumSecret::new(s.as_bytes().to_vec()).expect("long enough")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_elect_one_leader_and_replicate_1000_proposals() {
    init_tracing();
    let (_e, nodes) = three(Some(secret(SECRET))).await;
    let leader = settled(&nodes).await;
    let last = propose(&nodes[&leader].handle, "w", 1000).await;
    wait_applied(&nodes, last).await;
    assert_same_sequence(&nodes, 1000);
    // Followers forward writes to the leader.
    let follower = nodes.keys().copied().find(|s| *s != leader).expect("one");
    for i in 0..10 {
        nodes[&follower]
            .handle
            .forward(Bytes::from(format!("f{i}")))
            .await
            .expect("forwarded");
    }
    let applied = async {
        loop {
            if nodes.values().all(|n| n.machine.entries().len() == 1010) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    timeout(Duration::from_secs(10), applied)
        .await
        .expect("forwarded writes commit everywhere");
    assert_same_sequence(&nodes, 1010);
    assert!(nodes[&leader]
        .machine
        .entries()
        .iter()
        .any(|e| e.txn == Bytes::from_static(b"f9")));
    for n in nodes.values() {
        assert_eq!(n.transport.connected().len(), 2, "a full mesh of 3");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_takes_over_and_a_restarted_member_catches_up() {
    init_tracing();
    let (e, mut nodes) = three(Some(secret(SECRET))).await;
    let leader = settled(&nodes).await;
    let last = propose(&nodes[&leader].handle, "a", 100).await;
    wait_applied(&nodes, last).await;

    // Kill the leader: the other two elect a new one and keep committing.
    let old = nodes.remove(&leader).expect("leader");
    let old_storage = old.storage.clone();
    old.replica.stop().await;
    let new_leader = settled(&nodes).await;
    assert_ne!(new_leader, leader);
    let last = propose(&nodes[&new_leader].handle, "b", 100).await;
    wait_applied(&nodes, last).await;
    assert_same_sequence(&nodes, 200);

    // The old leader restarts on its storage (unsynced writes lost) and catches up.
    old_storage.crash();
    let listener = e.rebind(leader).await;
    nodes.insert(leader, e.start(leader, listener, old_storage));
    let now_leader = settled(&nodes).await;
    wait_applied(&nodes, last).await;
    let last = propose(&nodes[&now_leader].handle, "c", 50).await;
    wait_applied(&nodes, last).await;
    assert_same_sequence(&nodes, 250);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intruders_cannot_connect_or_vote() {
    init_tracing();
    // Members: voters 1-3 and observer 4. Intruders: "4" without the secret, and 9 (not a
    // member) with it. Both start first and keep dialing during the election.
    let (e, mut listeners) = Ensemble::bind(&[1, 2, 3], &[4], Some(secret(SECRET))).await;
    let mut intruders = Vec::new();
    {
        let l4 = listeners.remove(&4).expect("4");
        let config = e.transport_config(4, Some(secret("not the ensemble's secret")));
        intruders.push(e.start_with(e.peer_config(4), config, l4, MemoryStorage::new()));
        let l9 = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut config = e.transport_config(9, Some(secret(SECRET)));
        config.members.insert(
            9,
            ("127.0.0.1".into(), l9.local_addr().expect("addr").port()),
        );
        let mut peer = e.peer_config(9);
        peer.voters.insert(9);
        intruders.push(e.start_with(peer, config, l9, MemoryStorage::new()));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let nodes: BTreeMap<Sid, Node> = listeners
        .into_iter()
        .map(|(sid, l)| (sid, e.start(sid, l, MemoryStorage::new())))
        .collect();
    // Record every connected set the members go through.
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    for n in nodes.values() {
        let mut w = n.transport.watch_connected();
        let seen = seen.clone();
        tokio::spawn(async move {
            loop {
                seen.lock()
                    .expect("lock")
                    .extend(w.borrow_and_update().iter().copied());
                if w.changed().await.is_err() {
                    return;
                }
            }
        });
    }
    let leader = settled(&nodes).await;
    assert!((1..=3).contains(&leader));
    let last = propose(&nodes[&leader].handle, "x", 20).await;
    wait_applied(&nodes, last).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(
        seen,
        [1, 2, 3].into_iter().collect(),
        "intruders never connected"
    );
    for i in &intruders {
        assert!(i.transport.connected().is_empty(), "{:?}", i.transport);
        assert!(!serving(&i.handle.role()), "an intruder never joins");
        assert!(i.machine.entries().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_frame_closes_only_that_connection() {
    init_tracing();
    let (e, mut listeners) = Ensemble::bind(&[1, 2, 3], &[4], Some(secret(SECRET))).await;
    drop(listeners.remove(&4));
    let nodes: BTreeMap<Sid, Node> = listeners
        .into_iter()
        .map(|(sid, l)| (sid, e.start(sid, l, MemoryStorage::new())))
        .collect();
    let leader = settled(&nodes).await;

    // This test is member 4 (it holds the secret) and sends garbage to member 1.
    let mut stream = TcpStream::connect(("127.0.0.1", e.ports[&1]))
        .await
        .expect("connect");
    handshake::dial(
        &mut stream,
        4,
        1,
        Some(&secret(SECRET)),
        Duration::from_secs(2),
    )
    .await
    .expect("a member with the secret is accepted");
    let mut connected = nodes[&1].transport.watch_connected();
    timeout(
        Duration::from_secs(5),
        connected.wait_for(|s| s.contains(&4)),
    )
    .await
    .expect("4 connects")
    .expect("running");
    stream
        .write_all(&[
            0, 0, 0, 24, 0, 0, 0, 42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
        ])
        .await
        .expect("write");
    // Member 1 closes the connection: reads end.
    let closed = async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    timeout(Duration::from_secs(5), closed)
        .await
        .expect("the garbage connection is closed");
    timeout(
        Duration::from_secs(5),
        connected.wait_for(|s| !s.contains(&4)),
    )
    .await
    .expect("4 is disconnected")
    .expect("running");
    // Only that connection: the members are still connected and still commit.
    assert_eq!(
        nodes[&1].transport.connected(),
        [2, 3].into_iter().collect()
    );
    assert_eq!(settled(&nodes).await, leader);
    let last = propose(&nodes[&leader].handle, "g", 10).await;
    wait_applied(&nodes, last).await;
    assert_same_sequence(&nodes, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_cannot_keep_up_is_disconnected() {
    init_tracing();
    let (e, mut listeners) = Ensemble::bind(&[1, 2], &[], Some(secret(SECRET))).await;
    drop(listeners.remove(&2));
    let mut config = e.transport_config(1, Some(secret(SECRET)));
    config.queue_capacity = 4;
    let (t1, mut inputs) =
        QuorumTransport::start(config, listeners.remove(&1).expect("1")).expect("start");
    // This test is member 2; it connects and never reads.
    let mut stream = TcpStream::connect(("127.0.0.1", e.ports[&1]))
        .await
        .expect("connect");
    handshake::dial(
        &mut stream,
        2,
        1,
        Some(&secret(SECRET)),
        Duration::from_secs(2),
    )
    .await
    .expect("accepted");
    let mut connected = t1.watch_connected();
    timeout(
        Duration::from_secs(5),
        connected.wait_for(|s| s.contains(&2)),
    )
    .await
    .expect("2 connects")
    .expect("running");
    let big = zk_server::zab::Message::Proposal(Entry {
        zxid: 1,
        txn: Bytes::from(vec![0u8; 1 << 20]),
    });
    let flood = async {
        while t1.connected().contains(&2) {
            t1.send(2, &big);
            tokio::task::yield_now().await;
        }
    };
    timeout(Duration::from_secs(10), flood)
        .await
        .expect("the slow peer is disconnected once its queue is full");
    let disconnected = async {
        loop {
            match inputs.recv().await {
                Some(zk_server::zab::Input::Disconnected { peer: 2 }) => return,
                Some(_) => {}
                None => panic!("the transport stopped"),
            }
        }
    };
    timeout(Duration::from_secs(5), disconnected)
        .await
        .expect("the replica is told");
    // Sends to a disconnected member are dropped quietly.
    t1.send(2, &big);
    t1.shutdown();
}
