//! `Barrier` and `DoubleBarrier` against the embedded server: waiters released only by the
//! predicate (never by a spurious wake-up or a session event), timeouts, five members in
//! five sessions entering and leaving together.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::*;
use zk_client::Client;
use zk_recipes::double_barrier::{is_member_node, READY_NODE};
use zk_recipes::{Barrier, DoubleBarrier};

const BARRIER: &str = "/recipes/barrier";
const DOUBLE: &str = "/recipes/double";

/// Member nodes under `path` (missing path: none).
async fn members(client: &Client, path: &str) -> Vec<String> {
    match client.get_children(path).await {
        Ok(c) => c.into_iter().filter(|c| is_member_node(c)).collect(),
        Err(zk_client::Error::NoNode) => Vec::new(),
        Err(e) => panic!("get_children {path}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barrier_waiters_pass_only_after_remove_whatever_wakes_them() {
    let server = server().await;
    let setter = client(&server.connect_string()).await;
    let waiter_client = client(&server.connect_string()).await;
    let barrier = Barrier::new(setter.clone(), BARRIER).unwrap();
    barrier.set_barrier().await.unwrap();
    barrier.set_barrier().await.unwrap(); // set twice: fine
    assert!(barrier.is_set().await.unwrap());

    let removed = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let mut stats = Vec::new();
    for _ in 0..3 {
        let b = Barrier::new(waiter_client.clone(), BARRIER).unwrap();
        stats.push(b.wait_stats());
        let removed = removed.clone();
        tasks.push(tokio::spawn(async move {
            b.wait_on_barrier().await.expect("wait");
            assert!(
                removed.load(Ordering::SeqCst),
                "a waiter passed the barrier before it was removed"
            );
        }));
    }
    for s in &mut stats {
        within("waiters watching", s.wait_for(|s| s.watches_set >= 1))
            .await
            .unwrap();
    }
    // A spurious wake-up: the node changes but stays. Every waiter wakes, checks again, and
    // watches again.
    setter.set_data(BARRIER, b"touched").await.unwrap();
    for s in &mut stats {
        within(
            "waiters woken and watching again",
            s.wait_for(|s| s.wakeups >= 1 && s.watches_set >= 2),
        )
        .await
        .unwrap();
    }
    assert!(tasks.iter().all(|t| !t.is_finished()));

    // A timed wait while the barrier is set returns false.
    let timed = Barrier::new(waiter_client.clone(), BARRIER).unwrap();
    assert!(!timed
        .wait_on_barrier_timeout(Duration::from_millis(200))
        .await
        .unwrap());

    removed.store(true, Ordering::SeqCst);
    barrier.remove_barrier().await.unwrap();
    within("waiters released", async {
        for t in tasks {
            t.await.expect("waiter");
        }
    })
    .await;
    assert!(timed
        .wait_on_barrier_timeout(Duration::from_millis(200))
        .await
        .unwrap());
    barrier.remove_barrier().await.unwrap(); // removing twice: fine
    assert!(!barrier.is_set().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_barrier_watch_ending_with_the_session_does_not_release_the_waiter() {
    let server = server().await;
    let setter = client(&server.connect_string()).await;
    let waiter_client = client(&server.connect_string()).await;
    let barrier = Barrier::new(setter.clone(), BARRIER).unwrap();
    barrier.set_barrier().await.unwrap();

    let waiter = Barrier::new(waiter_client.clone(), BARRIER).unwrap();
    let mut stats = waiter.wait_stats();
    let removed = Arc::new(AtomicBool::new(false));
    let task = {
        let removed = removed.clone();
        tokio::spawn(async move {
            waiter.wait_on_barrier().await.expect("wait");
            assert!(removed.load(Ordering::SeqCst), "passed on a session event");
        })
    };
    within("watching", stats.wait_for(|s| s.watches_set >= 1))
        .await
        .unwrap();
    // The waiter's session expires: its watch ends with a session event (type None).
    let old_session = waiter_client.session_id();
    assert!(server.expire_session(old_session).await);
    within(
        "woken by the expiry, checking again with the new session",
        stats.wait_for(|s| s.wakeups >= 1 && s.watches_set >= 2),
    )
    .await
    .unwrap();
    assert_ne!(waiter_client.session_id(), old_session);
    assert!(!task.is_finished());

    removed.store(true, Ordering::SeqCst);
    barrier.remove_barrier().await.unwrap();
    within("released", task).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_members_in_five_sessions_enter_together_and_leave_together() {
    const N: usize = 5;
    let server = server().await;
    let observer = client(&server.connect_string()).await;
    let mut barriers = Vec::new();
    for _ in 0..N {
        let c = client(&server.connect_string()).await;
        barriers.push(Arc::new(DoubleBarrier::new(c, DOUBLE, N).unwrap()));
    }
    let arrivals = Arc::new(AtomicUsize::new(0));
    let enter = |b: Arc<DoubleBarrier>| {
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            // Counted before the member's node is created: a member that enters must see
            // every member counted.
            arrivals.fetch_add(1, Ordering::SeqCst);
            b.enter().await.expect("enter");
            let seen = arrivals.load(Ordering::SeqCst);
            assert_eq!(seen, N, "entered with only {seen} of {N} members arrived");
        })
    };
    // Four members arrive and wait.
    let mut entering: Vec<_> = barriers[..N - 1].iter().cloned().map(enter).collect();
    wait_children(&observer, DOUBLE, |c| {
        c.iter().filter(|c| is_member_node(c)).count() == N - 1
    })
    .await;
    for b in &barriers[..N - 1] {
        within(
            "waiting to enter",
            b.wait_stats().wait_for(|s| s.watches_set >= 1),
        )
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(entering.iter().all(|t| !t.is_finished()), "entered early");
    assert!(observer
        .exists(&format!("{DOUBLE}/{READY_NODE}"))
        .await
        .unwrap()
        .is_none());
    // The fifth arrives: everyone enters.
    entering.push(enter(barriers[N - 1].clone()));
    within("all enter", async {
        for t in entering {
            t.await.expect("member");
        }
    })
    .await;
    assert_eq!(members(&observer, DOUBLE).await.len(), N);
    assert!(observer
        .exists(&format!("{DOUBLE}/{READY_NODE}"))
        .await
        .unwrap()
        .is_some());

    // Four leave; the fifth (the last one in `barriers`) has not yet: nobody may return.
    let last = barriers[N - 1].clone();
    let last_name = last.our_path().rsplit('/').next().unwrap().to_owned();
    let lowest = barriers
        .iter()
        .map(|b| b.our_path().rsplit('/').next().unwrap().to_owned())
        .min()
        .unwrap();
    let last_left = Arc::new(AtomicBool::new(false));
    let mut leaving = Vec::new();
    for b in &barriers[..N - 1] {
        let (b, last_left) = (b.clone(), last_left.clone());
        leaving.push(tokio::spawn(async move {
            b.leave().await.expect("leave");
            assert!(
                last_left.load(Ordering::SeqCst),
                "left before the last member started leaving"
            );
        }));
    }
    // Non-lowest leavers delete their nodes; the lowest keeps its node until it is the last.
    let remaining = if lowest == last_name { 1 } else { 2 };
    wait_children(&observer, DOUBLE, |c| {
        c.iter().filter(|c| is_member_node(c)).count() == remaining
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(leaving.iter().all(|t| !t.is_finished()), "left early");

    last_left.store(true, Ordering::SeqCst);
    assert!(last.leave_timeout(PATIENCE).await.unwrap());
    within("all leave", async {
        for t in leaving {
            t.await.expect("member");
        }
    })
    .await;
    assert!(members(&observer, DOUBLE).await.is_empty());
    assert!(observer
        .exists(&format!("{DOUBLE}/{READY_NODE}"))
        .await
        .unwrap()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spurious_wakeups_never_let_a_member_enter() {
    let server = server().await;
    let a_client = client(&server.connect_string()).await;
    let b_client = client(&server.connect_string()).await;
    let other = client(&server.connect_string()).await;
    let a = Arc::new(DoubleBarrier::new(a_client.clone(), DOUBLE, 2).unwrap());
    let mut stats = a.wait_stats();
    let second_arrived = Arc::new(AtomicBool::new(false));
    let entering = {
        let (a, second_arrived) = (a.clone(), second_arrived.clone());
        tokio::spawn(async move {
            a.enter().await.expect("enter");
            assert!(
                second_arrived.load(Ordering::SeqCst),
                "entered on a spurious wake-up"
            );
        })
    };
    within("waiting", stats.wait_for(|s| s.watches_set >= 1))
        .await
        .unwrap();

    // 1. An unrelated child comes and goes (a child watch fires; one member is still one).
    other.create(&format!("{DOUBLE}/unrelated")).await.unwrap();
    within(
        "woken and waiting again",
        stats.wait_for(|s| s.wakeups >= 1 && s.watches_set >= 2),
    )
    .await
    .unwrap();
    other.delete(&format!("{DOUBLE}/unrelated")).await.unwrap();
    within(
        "woken and waiting again",
        stats.wait_for(|s| s.wakeups >= 2 && s.watches_set >= 3),
    )
    .await
    .unwrap();
    assert!(!entering.is_finished());

    // 2. `ready` blinks: created and deleted in one transaction. The ready watch fires, but
    //    when the member looks, there is no `ready` and still one member.
    let ready = format!("{DOUBLE}/{READY_NODE}");
    let before = *stats.borrow();
    other
        .transaction()
        .create(&ready, b"")
        .delete(&ready, -1)
        .await
        .unwrap();
    within(
        "woken and waiting again",
        stats.wait_for(|s| s.wakeups > before.wakeups && s.watches_set > before.watches_set),
    )
    .await
    .unwrap();
    assert!(!entering.is_finished());

    // 3. The barrier node's data is touched (no member watch involved) and a's session expires:
    //    its watches end with a session event; it joins again with its new session.
    other.set_data(DOUBLE, b"touched").await.unwrap();
    let before = *stats.borrow();
    let old_session = a_client.session_id();
    assert!(server.expire_session(old_session).await);
    within(
        "woken by the expiry and waiting again",
        stats.wait_for(|s| s.wakeups > before.wakeups && s.watches_set > before.watches_set),
    )
    .await
    .unwrap();
    assert!(!entering.is_finished());
    let member_nodes = members(&other, DOUBLE).await;
    assert_eq!(member_nodes.len(), 1, "{member_nodes:?}");
    let (_, stat) = other.get_data(a.our_path()).await.unwrap();
    assert_eq!(stat.ephemeral_owner, a_client.session_id());
    assert_ne!(stat.ephemeral_owner, old_session);

    // The real second member arrives.
    second_arrived.store(true, Ordering::SeqCst);
    let b = DoubleBarrier::new(b_client.clone(), DOUBLE, 2).unwrap();
    within("b enters", b.enter()).await.unwrap();
    within("a enters", entering).await.unwrap();
    let (ra, rb) = tokio::join!(a.leave(), b.leave());
    ra.unwrap();
    rb.unwrap();
    assert!(members(&other, DOUBLE).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enter_and_leave_timeouts_return_false_and_delete_the_members_node() {
    let server = server().await;
    let c = client(&server.connect_string()).await;
    let d = client(&server.connect_string()).await;
    let lonely = DoubleBarrier::new(c.clone(), DOUBLE, 2).unwrap();
    assert!(!lonely
        .enter_timeout(Duration::from_millis(300))
        .await
        .unwrap());
    assert!(members(&c, DOUBLE).await.is_empty(), "node left behind");

    // Two enter; one leaves with a timeout while the other stays: false, and its node is
    // gone, so the other one's leave completes alone.
    let x = DoubleBarrier::new(c.clone(), DOUBLE, 2).unwrap();
    let y = DoubleBarrier::new(d.clone(), DOUBLE, 2).unwrap();
    let (rx, ry) = tokio::join!(x.enter(), y.enter());
    rx.unwrap();
    ry.unwrap();
    assert!(!x.leave_timeout(Duration::from_millis(300)).await.unwrap());
    assert_eq!(
        members(&c, DOUBLE).await,
        vec![y.our_path().rsplit('/').next().unwrap().to_owned()]
    );
    assert!(within("y leaves alone", y.leave_timeout(PATIENCE))
        .await
        .unwrap());
    assert!(members(&c, DOUBLE).await.is_empty());

    assert!(DoubleBarrier::new(c.clone(), DOUBLE, 0).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enter_timing_out_mid_create_leaves_no_phantom_member() {
    // A timeout that fires while the member's create is in flight must still delete the
    // node the create makes; a phantom member would let the others pass without us.
    let server = server().await;
    let c = client(&server.connect_string()).await;
    let observer = client(&server.connect_string()).await;
    for i in 0..100u64 {
        let barrier = DoubleBarrier::new(c.clone(), "/phantom", 3).unwrap();
        let entered = barrier
            .enter_timeout(Duration::from_micros(50 + i * 20))
            .await
            .unwrap();
        assert!(!entered, "only one member: it cannot enter");
    }
    within("no member node left", async {
        while !members(&observer, "/phantom").await.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}
