//! A Mutex on a 3-member `TestingCluster`: killing the leader while sessions contend keeps
//! mutual exclusion (one holder at a time, strictly increasing fencing tokens), and the
//! contention goes on through the new leader.

mod support;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::*;
use zk_recipes::Mutex;
use zk_server::TestingCluster;

const LOCK: &str = "/recipes/ensemble-lock";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_leader_during_contention_keeps_mutual_exclusion() {
    let mut cluster = TestingCluster::start(3).await.expect("cluster");
    let leader = cluster.wait_for_leader(PATIENCE).await.expect("a leader");
    let mut clients = Vec::new();
    for i in 0..3 {
        // Each session starts on another member, so one of them loses its server.
        let connect = format!(
            "{},{}",
            cluster.member_connect_string(i),
            cluster.connect_string()
        );
        clients.push(client(&connect).await);
    }
    let inside = Arc::new(AtomicBool::new(false));
    let last_token = Arc::new(AtomicI64::new(i64::MIN));
    let held = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for client in &clients {
        for _ in 0..2 {
            let mutex = Mutex::new(client.clone(), LOCK).expect("mutex");
            let (inside, last_token, held, stop) = (
                inside.clone(),
                last_token.clone(),
                held.clone(),
                stop.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut failures = 0u32;
                while !stop.load(Ordering::SeqCst) {
                    // Through the failover an acquire or release may fail with a connection
                    // error; mutual exclusion must hold regardless.
                    let guard = match mutex.acquire().await {
                        Ok(guard) => guard,
                        Err(_) => {
                            failures += 1;
                            continue;
                        }
                    };
                    assert!(
                        !inside.swap(true, Ordering::SeqCst),
                        "two holders inside the critical section"
                    );
                    let token = guard.fencing_token();
                    let previous = last_token.swap(token, Ordering::SeqCst);
                    assert!(
                        token > previous,
                        "fencing token {token} not above {previous}"
                    );
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    held.fetch_add(1, Ordering::SeqCst);
                    inside.store(false, Ordering::SeqCst);
                    if guard.release().await.is_err() {
                        failures += 1;
                    }
                }
                failures
            }));
        }
    }
    let wait_for = |target: u64| {
        let held = held.clone();
        async move {
            while held.load(Ordering::SeqCst) < target {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    within("acquisitions before the kill", wait_for(50)).await;
    cluster.kill(leader).await;
    let before = held.load(Ordering::SeqCst);
    within("acquisitions after the kill", wait_for(before + 100)).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        within("a contender stops", t).await.expect("contender");
    }
    let mutex = Mutex::new(clients[0].clone(), LOCK).expect("mutex");
    within("every lock node is gone", async {
        while !mutex
            .participant_nodes()
            .await
            .unwrap_or_default()
            .is_empty()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    for c in clients {
        c.close().await.expect("close");
    }
}
