//! The lock and leader recipes against the test target (the embedded server, or Apache
//! ZooKeeper with `ZK_TEST_CONNECT`, as the client suites; scripts/interop.sh runs them
//! against Apache 3.5 to 3.9): a `Mutex` excludes, hands over on release and on its holder's
//! session expiry with a higher fencing token; a `LeaderLatch` has one leader at a time and
//! hands leadership over when the leader leaves; a `LeaderSelector` cancels its leader when
//! the leader's session expires and hands over to the next participant.

mod support;

use std::time::Duration;

use support::PATIENCE;
use tokio::sync::mpsc;
use zk::recipes::{CancelReason, LeaderLatch, LeaderSelector, LockState, Mutex};

macro_rules! env_or_skip {
    () => {
        match support::env().await {
            Some(env) => env,
            None => return,
        }
    };
}

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

#[tokio::test]
async fn a_mutex_hands_over_on_release_and_on_its_holders_expiry() {
    let env = env_or_skip!();
    let connect = env.connect_string();
    let (c1, c2, c3) = (
        support::connected_client(connect).await,
        support::connected_client(connect).await,
        support::connected_client(connect).await,
    );
    let root = support::unique_root();
    let lock = format!("{root}/lock");
    let (m1, m2, m3) = (
        Mutex::new(c1.clone(), &lock).unwrap(),
        Mutex::new(c2.clone(), &lock).unwrap(),
        Mutex::new(c3.clone(), &lock).unwrap(),
    );

    let g1 = m1.acquire().await.unwrap();
    assert_eq!(g1.state(), LockState::Held);
    assert!(m2
        .acquire_timeout(Duration::from_millis(300))
        .await
        .unwrap()
        .is_none());
    // The timed-out attempt took its node away: only the holder's is left.
    assert_eq!(m1.participant_nodes().await.unwrap().len(), 1);

    let waiting = tokio::spawn(async move { m2.acquire().await });
    // Give the waiter time to queue behind the holder (its node exists).
    within("the second contender to queue", async {
        while m1.participant_nodes().await.unwrap().len() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let t1 = g1.fencing_token();
    g1.release().await.unwrap();
    let g2 = within("the hand-over on release", waiting)
        .await
        .expect("task")
        .unwrap();
    assert!(g2.fencing_token() > t1);

    // The holder's session expires: its node goes with it, the next contender gets the lock
    // and the old guard reports Lost.
    let waiting = tokio::spawn(async move { m3.acquire().await });
    within("the third contender to queue", async {
        while m1.participant_nodes().await.unwrap().len() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    support::expire_session(connect, c2.session_id(), &c2.session_password()).await;
    let g3 = within("the hand-over on expiry", waiting)
        .await
        .expect("task")
        .unwrap();
    assert!(g3.fencing_token() > g2.fencing_token());
    within("the expired holder's guard to be lost", g2.lost()).await;
    assert_eq!(g2.state(), LockState::Lost);

    g3.release().await.unwrap();
    drop(g2);
    support::remove_tree(&c1, &root).await;
    for c in [c1, c2, c3] {
        c.close().await.unwrap();
    }
}

#[tokio::test]
async fn a_leader_latch_has_one_leader_and_hands_over_when_it_leaves() {
    let env = env_or_skip!();
    let connect = env.connect_string();
    let (c1, c2) = (
        support::connected_client(connect).await,
        support::connected_client(connect).await,
    );
    let root = support::unique_root();
    let path = format!("{root}/leader");
    let latches = [
        LeaderLatch::new(c1.clone(), &path, "one").unwrap(),
        LeaderLatch::new(c2.clone(), &path, "two").unwrap(),
    ];
    for latch in &latches {
        latch.start().unwrap();
    }
    let first = within("a leader", async {
        loop {
            match latches.iter().position(LeaderLatch::has_leadership) {
                Some(i) => return i,
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await;
    let other = 1 - first;
    assert!(!latches[other].has_leadership());
    let leader = latches[other].leader().await.unwrap().expect("a leader");
    assert_eq!(leader.id, latches[first].id());
    let token = latches[first]
        .leadership_token()
        .expect("the leader's token");

    latches[first].close().await.unwrap();
    within("the hand-over", latches[other].await_leadership())
        .await
        .unwrap();
    assert!(latches[other].leadership_token().expect("token") > token);
    assert_eq!(latches[other].participants().await.unwrap().len(), 1);

    latches[other].close().await.unwrap();
    support::remove_tree(&c1, &root).await;
    c1.close().await.unwrap();
    c2.close().await.unwrap();
}

#[tokio::test]
async fn a_leader_selector_cancels_an_expired_leader_and_hands_over() {
    let env = env_or_skip!();
    let connect = env.connect_string();
    let (c1, c2) = (
        support::connected_client(connect).await,
        support::connected_client(connect).await,
    );
    let root = support::unique_root();
    let path = format!("{root}/selector");
    // What each participant's take-leadership closure saw: its start, then why it ended.
    let (tx, mut rx) = mpsc::unbounded_channel::<(&'static str, Option<CancelReason>)>();
    let make = |client, name: &'static str| {
        let tx = tx.clone();
        LeaderSelector::new(client, &path, name, move |ctx| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((name, None));
                let reason = ctx.cancelled().await;
                let _ = tx.send((name, Some(reason)));
            }
        })
        .unwrap()
    };
    let (first, second) = (make(c1.clone(), "one"), make(c2.clone(), "two"));
    first.start().unwrap();
    assert_eq!(within("one leads", rx.recv()).await, Some(("one", None)));
    second.start().unwrap();
    within("two to queue", async {
        while second.participants().await.unwrap().len() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(first.has_leadership() && !second.has_leadership());

    // The leader's session expires; the server deletes its node, so two may lead before one
    // hears of the expiry (fencing tokens cover that gap): both orders are fine.
    support::expire_session(connect, c1.session_id(), &c1.session_password()).await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(
            within("one cancelled and two leading", rx.recv())
                .await
                .unwrap(),
        );
    }
    let cancelled = seen.iter().find(|(who, _)| *who == "one").map(|e| e.1);
    assert!(
        matches!(
            cancelled,
            Some(Some(CancelReason::Suspended | CancelReason::Lost))
        ),
        "{seen:?}"
    );
    assert!(seen.contains(&("two", None)), "{seen:?}");
    assert!(!first.has_leadership() && second.has_leadership());
    let leader = second.current_leader().await.unwrap().expect("a leader");
    assert_eq!(leader.id, "two");

    second.close().await.unwrap();
    assert_eq!(
        within("two cancelled by close", rx.recv()).await,
        Some(("two", Some(CancelReason::Closed)))
    );
    first.close().await.unwrap();
    support::remove_tree(&c2, &root).await;
    c1.close().await.unwrap();
    c2.close().await.unwrap();
}
