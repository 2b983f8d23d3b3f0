//! Revocation (Curator's `Revoker`): a waiter asks the holder to release; the holder's guard
//! sees the request, releases, and the waiter acquires.

mod support;

use std::time::Duration;

use support::*;
use zk_recipes::{Mutex, Revoker};

const LOCK: &str = "/recipes/revocable";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_revokes_the_holder_releases_the_waiter_acquires() {
    let server = server().await;
    let a = client(&server.connect_string()).await;
    let b = client(&server.connect_string()).await;
    let holder = Mutex::new(a.clone(), LOCK).unwrap();
    let guard = holder.acquire().await.unwrap();
    assert!(!guard.is_revocation_requested());
    let token = guard.fencing_token();

    // The holder releases when asked to.
    let holder_task = tokio::spawn(async move {
        guard.revocation_requested().await;
        assert!(guard.is_revocation_requested());
        // Writing the node does not change the fencing token.
        assert_eq!(guard.fencing_token(), token);
        guard.release().await.expect("release");
    });

    let waiter = Mutex::new(b.clone(), LOCK).unwrap();
    // Not granted without a revocation.
    assert!(waiter
        .acquire_timeout(Duration::from_millis(300))
        .await
        .unwrap()
        .is_none());
    assert!(!holder_task.is_finished(), "released without being asked");
    let nodes = waiter.participant_nodes().await.unwrap();
    assert_eq!(nodes.len(), 1);
    Revoker::attempt_revoke(&b, &format!("{LOCK}/{}", nodes[0]))
        .await
        .unwrap();
    let g = within("the waiter acquires after the revocation", waiter.acquire())
        .await
        .unwrap();
    within("the holder released", holder_task).await.unwrap();
    assert!(g.fencing_token() > token);
    assert!(!g.is_revocation_requested());
    g.release().await.unwrap();

    // Revoking a node that is gone is not an error.
    Revoker::attempt_revoke(&b, &format!("{LOCK}/{}", nodes[0]))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_written_while_waiting_is_seen_once_granted() {
    let server = server().await;
    let a = client(&server.connect_string()).await;
    let b = client(&server.connect_string()).await;
    let holder = Mutex::new(a.clone(), LOCK).unwrap();
    let first = holder.acquire().await.unwrap();
    let waiter = std::sync::Arc::new(Mutex::new(b.clone(), LOCK).unwrap());
    let mut stats = waiter.wait_stats();
    let task = {
        let waiter = waiter.clone();
        tokio::spawn(async move { waiter.acquire().await.expect("acquire") })
    };
    within("the waiter queued", stats.wait_for(|s| s.watches_set == 1))
        .await
        .unwrap();
    let nodes = holder.participant_nodes().await.unwrap();
    Revoker::attempt_revoke(&a, &format!("{LOCK}/{}", nodes[1]))
        .await
        .unwrap();
    first.release().await.unwrap();
    let g = within("the waiter acquires", task).await.unwrap();
    within("the request is seen", g.revocation_requested()).await;
    g.release().await.unwrap();
}
