//! `LeaderLatch` against the embedded server: one leader at every sample while leadership
//! moves, session expiry, SUSPENDED → RECONNECTED without session loss, participants.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use support::*;
use zk_client::{Client, ConnectionState};
use zk_recipes::{Error, LeaderLatch};

const PATH: &str = "/recipes/leader";

async fn latches(connect: &str, n: usize) -> (Vec<Client>, Arc<Vec<LeaderLatch>>) {
    let mut clients = Vec::new();
    let mut latches = Vec::new();
    for i in 0..n {
        let c = client(connect).await;
        let latch = LeaderLatch::new(c.clone(), PATH, format!("p{i}")).unwrap();
        latch.start().unwrap();
        clients.push(c);
        latches.push(latch);
    }
    (clients, Arc::new(latches))
}

/// Waits (on the leadership channels) until exactly one latch leads and `ok(index)`; returns
/// its index.
async fn wait_one_leader(latches: &[LeaderLatch], ok: impl Fn(usize) -> bool) -> usize {
    within("exactly one leader", async {
        let mut rxs: Vec<_> = latches.iter().map(|l| l.leadership()).collect();
        loop {
            let leaders: Vec<usize> = rxs
                .iter_mut()
                .map(|r| *r.borrow_and_update())
                .enumerate()
                .filter(|(_, l)| *l)
                .map(|(i, _)| i)
                .collect();
            if leaders.len() == 1 && ok(leaders[0]) {
                return leaders[0];
            }
            let _ =
                futures::future::select_all(rxs.iter_mut().map(|r| Box::pin(r.changed()))).await;
        }
    })
    .await
}

/// Samples `has_leadership` of every latch until stopped; panics on a sample with two
/// leaders. A sample counts only if two consecutive reads of all flags agree (so a leader
/// handing over between the reads of two flags cannot fake an overlap).
fn spawn_sampler(
    latches: Arc<Vec<LeaderLatch>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let samples = AtomicU64::new(0);
        while !stop.load(Ordering::SeqCst) {
            let a: Vec<bool> = latches.iter().map(LeaderLatch::has_leadership).collect();
            let b: Vec<bool> = latches.iter().map(LeaderLatch::has_leadership).collect();
            if a == b {
                let leaders = a.iter().filter(|l| **l).count();
                assert!(leaders <= 1, "{leaders} leaders at once: {a:?}");
                samples.fetch_add(1, Ordering::Relaxed);
            }
            tokio::task::yield_now().await;
        }
        samples.load(Ordering::Relaxed)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_leader_among_10_while_leaders_close() {
    let server = server().await;
    let (clients, latches) = latches(&server.connect_string(), 10).await;
    wait_children(&clients[0], PATH, |c| c.len() == 10).await;
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = spawn_sampler(latches.clone(), stop.clone());

    let mut closed = Vec::new();
    let mut last_token = i64::MIN;
    for _ in 0..10 {
        let leader = wait_one_leader(&latches, |i| !closed.contains(&i)).await;
        // Leadership tokens increase strictly from leader to leader; only the leader has one.
        let token = latches[leader]
            .leadership_token()
            .expect("the leader has a token");
        assert!(token > last_token, "token {token} after {last_token}");
        last_token = token;
        let holders = latches
            .iter()
            .filter(|l| l.leadership_token().is_some())
            .count();
        assert_eq!(holders, 1);
        // The listing agrees.
        let listed = latches[leader].leader().await.unwrap().unwrap();
        assert_eq!(listed.id, latches[leader].id());
        assert!(listed.is_leader);
        let participants = latches[leader].participants().await.unwrap();
        assert_eq!(
            participants.len(),
            10 - closed.len(),
            "closed {closed:?}, participants {participants:?}, children {:?}",
            clients[0].get_children(PATH).await
        );
        latches[leader].close().await.unwrap();
        assert!(!latches[leader].has_leadership());
        closed.push(leader);
    }
    stop.store(true, Ordering::SeqCst);
    let samples = sampler.await.unwrap();
    assert!(samples > 100, "only {samples} samples");
    wait_children(&clients[0], PATH, |c| c.is_empty()).await;
    // Closed latches refuse to wait.
    assert_eq!(latches[0].await_leadership().await, Err(Error::Closed));
}

/// An operator (or a stale cleanup) deleting the leader's node: the old leader stops leading
/// as soon as it hears of the deletion, before it queues again (it used to lead on until it
/// had queued behind the others, overlapping its successor by a few round trips), and the
/// next participant leads.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deleted_leader_node_ends_leadership_before_the_latch_queues_again() {
    let server = server().await;
    let (clients, latches) = latches(&server.connect_string(), 3).await;
    wait_children(&clients[0], PATH, |c| c.len() == 3).await;
    let operator = client(&server.connect_string()).await;

    let mut leader = wait_one_leader(&latches, |_| true).await;
    for _ in 0..15 {
        let node = latches[leader].our_path().expect("the leader has a node");
        let mut ours = latches[leader].our_path_changes();
        ours.borrow_and_update();
        operator.delete(&node).await.unwrap();
        // Whenever the latch lets go of its node or takes a new one, it does not lead: the
        // others are ahead of it in the queue now.
        within("the old leader re-joins", async {
            loop {
                ours.changed().await.unwrap();
                let now = ours.borrow_and_update().clone();
                assert!(
                    !latches[leader].has_leadership(),
                    "still leading with node {now:?} after {node} was deleted"
                );
                if now.is_some() {
                    break;
                }
            }
        })
        .await;
        leader = wait_one_leader(&latches, |i| i != leader).await;
        wait_children(&operator, PATH, |c| c.len() == 3).await;
    }
    for l in latches.iter() {
        l.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_leader_session_yields_a_new_leader_and_the_old_one_rejoins() {
    let server = server().await;
    let (clients, latches) = latches(&server.connect_string(), 5).await;
    let leader = wait_one_leader(&latches, |_| true).await;
    let old_node = latches[leader].our_path().unwrap();
    let mut old_leadership = latches[leader].leadership();

    assert!(server.expire_session(clients[leader].session_id()).await);
    let next = wait_one_leader(&latches, |i| i != leader).await;
    assert_ne!(next, leader);
    within("the old leader steps down", old_leadership.wait_for(|l| !l))
        .await
        .unwrap();

    // The old participant re-joins with a node of its new session, at the end of the queue.
    wait_children(&clients[next], PATH, |c| c.len() == 5).await;
    let mut node_rx = latches[leader].our_path_changes();
    let rejoined = within(
        "the old leader re-joins",
        node_rx.wait_for(|p| p.as_ref().is_some_and(|p| *p != old_node)),
    )
    .await
    .unwrap()
    .clone()
    .unwrap();
    let (_, stat) = clients[next].get_data(&rejoined).await.unwrap();
    assert_eq!(stat.ephemeral_owner, clients[leader].session_id());
    let participants = latches[next].participants().await.unwrap();
    assert_eq!(
        participants.last().unwrap().id,
        latches[leader].id(),
        "{participants:?}"
    );
    assert!(!latches[leader].has_leadership());
    for l in latches.iter() {
        l.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suspended_then_reconnected_keeps_one_leader_and_the_queue() {
    let mut server = server().await;
    let (clients, latches) = latches(&server.connect_string(), 10).await;
    let leader = wait_one_leader(&latches, |_| true).await;
    let mut nodes = Vec::new();
    for l in latches.iter() {
        let mut rx = l.our_path_changes();
        let node = within("a node", rx.wait_for(Option::is_some))
            .await
            .unwrap();
        nodes.push(node.clone().unwrap());
    }
    let sessions: Vec<_> = clients.iter().map(Client::session_id).collect();
    let mut states: Vec<_> = clients.iter().map(Client::connection_states).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = spawn_sampler(latches.clone(), stop.clone());
    server.restart().await.unwrap();
    for s in &mut states {
        wait_state(s, ConnectionState::Suspended).await;
    }
    // (Under the Standard error policy leadership ends at SUSPENDED; the sampler checks
    // that no two lead at once, lock_safety.rs that nobody leads while suspended.)
    for s in &mut states {
        wait_state(s, ConnectionState::Reconnected).await;
    }
    let after = wait_one_leader(&latches, |_| true).await;
    stop.store(true, Ordering::SeqCst);
    sampler.await.unwrap();

    // Sessions survived, so nothing was reset: same nodes, same leader.
    assert_eq!(
        clients.iter().map(Client::session_id).collect::<Vec<_>>(),
        sessions
    );
    assert_eq!(
        latches
            .iter()
            .map(|l| l.our_path().unwrap())
            .collect::<Vec<_>>(),
        nodes
    );
    assert_eq!(after, leader);
    let listed = latches[0].participants().await.unwrap();
    assert_eq!(listed.len(), 10);
    assert_eq!(listed[0].id, latches[leader].id());
    for l in latches.iter() {
        l.close().await.unwrap();
    }
}

#[tokio::test]
async fn participants_in_queue_order_with_ids_as_node_data() {
    let server = server().await;
    let c = client(&server.connect_string()).await;
    let mut all = Vec::new();
    for id in ["alpha", "beta", "gamma"] {
        let latch = LeaderLatch::new(c.clone(), PATH, id).unwrap();
        // Not started: waiting would be forever (Curator's await throws too).
        assert_eq!(latch.await_leadership().await, Err(Error::NotStarted));
        latch.start().unwrap();
        let n = all.len() + 1;
        wait_children(&c, PATH, |ch| ch.len() == n).await;
        all.push(latch);
    }
    within("alpha leads", all[0].await_leadership())
        .await
        .unwrap();
    assert!(!all[1].has_leadership() && !all[2].has_leadership());
    let ids: Vec<_> = all[2]
        .participants()
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.id, p.is_leader))
        .collect();
    assert_eq!(
        ids,
        [
            ("alpha".to_owned(), true),
            ("beta".to_owned(), false),
            ("gamma".to_owned(), false)
        ]
    );
    assert_eq!(all[1].leader().await.unwrap().unwrap().id, "alpha");
    assert_eq!(all[0].start(), Err(Error::AlreadyStarted));
    // Closing a follower does not disturb the leader; closing the leader promotes beta.
    all[2].close().await.unwrap();
    assert!(all[0].has_leadership());
    all[0].close().await.unwrap();
    within("beta leads", all[1].await_leadership())
        .await
        .unwrap();
    assert!(all[1]
        .await_leadership_timeout(std::time::Duration::from_millis(10))
        .await
        .unwrap());
    all[1].close().await.unwrap();
    assert_eq!(all[1].start(), Err(Error::Closed));
}

/// Closes `latch`, which must not take long (2.5 s: no connection timeout waited for).
async fn close_at_once(latch: &LeaderLatch) {
    let started = std::time::Instant::now();
    within_for("close", std::time::Duration::from_secs(10), latch.close())
        .await
        .unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_millis(2500),
        "close took {:?}",
        started.elapsed()
    );
}

/// `close` during a partition does not wait for the latch's pending create (abandoned: a
/// protected node it may have made is cleaned up by the client) or for a delete (which goes
/// on in the background); without that it took the connection timeout or longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_during_a_partition_returns_at_once_and_leaves_no_node() {
    let (server, proxy) = server_behind_a_proxy().await;
    let observer = client(&server.connect_string()).await;
    let c =
        client_with_connection_timeout(&proxy.connect_string(), std::time::Duration::from_secs(5))
            .await;
    proxy.set_mode(support::Mode::Blackhole);
    let latch = LeaderLatch::new(c.clone(), PATH, "partitioned").unwrap();
    latch.start().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    close_at_once(&latch).await;
    proxy.set_mode(support::Mode::Forward);
    wait_children(&observer, PATH, |c| c.is_empty()).await;

    // The same for a leader, whose node exists when the connection goes dead (the client
    // does not know yet: its read timeout is pending).
    let latch = LeaderLatch::new(c.clone(), PATH, "leader").unwrap();
    latch.start().unwrap();
    within("leads", latch.await_leadership()).await.unwrap();
    proxy.set_mode(support::Mode::Blackhole);
    close_at_once(&latch).await;
    proxy.set_mode(support::Mode::Forward);
    proxy.cut();
    wait_children(&observer, PATH, |c| c.is_empty()).await;
    c.close().await.unwrap();
}

/// `leadership_changes` reports every change, none coalesced (Curator's
/// LeaderLatchListener): a sole participant whose node is deleted loses leadership and wins
/// it again, and a reader that was not looking meanwhile still sees both; close ends the
/// stream after the final `false`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_changes_reports_a_loss_and_regain_in_order() {
    use futures::StreamExt;
    let server = server().await;
    let c = client(&server.connect_string()).await;
    let operator = client(&server.connect_string()).await;
    let latch = LeaderLatch::new(c.clone(), PATH, "sole").unwrap();
    let mut changes = latch.leadership_changes();
    latch.start().unwrap();
    within("leads", latch.await_leadership()).await.unwrap();
    let first_token = latch.leadership_token();
    let node = latch.our_path().expect("a node");
    operator.delete(&node).await.unwrap();
    // Leads again with a new node (nobody else queues).
    within("leads again", async {
        while latch.our_path().as_deref() == Some(node.as_str()) || !latch.has_leadership() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_ne!(latch.leadership_token(), first_token);
    latch.close().await.unwrap();
    let mut seen = Vec::new();
    while let Some(change) = within("the changes", changes.next()).await {
        seen.push(change);
    }
    assert_eq!(seen, [true, false, true, false]);
}
