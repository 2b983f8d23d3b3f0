//! `Mutex` against the embedded server: mutual exclusion, fencing, reentrancy, timeouts, no
//! herd effect, session expiry, lost create replies, cancellation.

mod support;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::*;
use zk_recipes::{LockState, Mutex};

const LOCK: &str = "/recipes/lock";

/// Tasks per session and acquisitions per task (the 5 × 4 × 100).
const SESSIONS: usize = 5;
const TASKS: usize = 4;
const ROUNDS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutual_exclusion_exact_counter_single_holder_increasing_tokens() {
    let server = server().await;
    let mut clients = Vec::new();
    for _ in 0..SESSIONS {
        clients.push(client(&server.connect_string()).await);
    }
    let counter = Arc::new(AtomicU64::new(0));
    let inside = Arc::new(AtomicBool::new(false));
    let last_token = Arc::new(AtomicI64::new(i64::MIN));
    let mut tasks = Vec::new();
    for client in &clients {
        for _ in 0..TASKS {
            let mutex = Mutex::new(client.clone(), LOCK).unwrap();
            let (counter, inside, last_token) =
                (counter.clone(), inside.clone(), last_token.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..ROUNDS {
                    let guard = mutex.acquire().await.expect("acquire");
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
                    // A non-atomic read-modify-write with a yield in the middle.
                    let v = counter.load(Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    counter.store(v + 1, Ordering::SeqCst);
                    assert_eq!(guard.state(), LockState::Held);
                    inside.store(false, Ordering::SeqCst);
                    guard.release().await.expect("release");
                }
            }));
        }
    }
    within("all acquisitions", async {
        for t in tasks {
            t.await.expect("task");
        }
    })
    .await;
    assert_eq!(
        counter.load(Ordering::SeqCst),
        (SESSIONS * TASKS * ROUNDS) as u64
    );
    let m = Mutex::new(clients[0].clone(), LOCK).unwrap();
    assert!(m.participant_nodes().await.unwrap().is_empty());
}

#[tokio::test]
async fn reentrant_per_handle_node_deleted_with_the_last_guard() {
    let server = server().await;
    let client = client(&server.connect_string()).await;
    let mutex = Mutex::new(client.clone(), LOCK).unwrap();
    let first = mutex.acquire().await.unwrap();
    let second = within("reentrant acquire", mutex.acquire()).await.unwrap();
    assert_eq!(first.node_path(), second.node_path());
    assert_eq!(first.fencing_token(), second.fencing_token());
    assert_eq!(mutex.participant_nodes().await.unwrap().len(), 1);

    // Another handle (even on the same session) is excluded.
    let other = Mutex::new(client.clone(), LOCK).unwrap();
    assert!(other
        .acquire_timeout(Duration::from_millis(200))
        .await
        .unwrap()
        .is_none());

    first.release().await.unwrap();
    assert!(mutex.is_acquired());
    assert_eq!(mutex.participant_nodes().await.unwrap().len(), 1);
    let node = second.node_path().to_owned();
    second.release().await.unwrap();
    // Local state is cleared only after the node is gone.
    assert!(!mutex.is_acquired());
    assert_eq!(client.exists(&node).await.unwrap(), None);

    // Dropping a guard releases too (in the background).
    let guard = mutex.acquire().await.unwrap();
    drop(guard);
    let again = within("acquire after a dropped guard", other.acquire())
        .await
        .unwrap();
    again.release().await.unwrap();
}

#[tokio::test]
async fn acquire_timeout_deletes_its_node() {
    let server = server().await;
    let a = client(&server.connect_string()).await;
    let b = client(&server.connect_string()).await;
    let holder = Mutex::new(a.clone(), LOCK).unwrap();
    let guard = holder.acquire().await.unwrap();
    let waiter = Mutex::new(b.clone(), LOCK).unwrap();
    let got = waiter
        .acquire_timeout(Duration::from_millis(300))
        .await
        .unwrap();
    assert!(got.is_none());
    // Only the holder's node is left.
    let nodes = holder.participant_nodes().await.unwrap();
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert!(guard.node_path().ends_with(&nodes[0]));
    guard.release().await.unwrap();
    // And the waiter can acquire now.
    let g = waiter
        .acquire_timeout(PATIENCE)
        .await
        .unwrap()
        .expect("free lock");
    g.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_herd_one_release_wakes_exactly_one_of_50_waiters() {
    const WAITERS: usize = 50;
    let server = server().await;
    let holder_client = client(&server.connect_string()).await;
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(client(&server.connect_string()).await);
    }
    let holder = Mutex::new(holder_client.clone(), LOCK).unwrap();
    let guard = holder.acquire().await.unwrap();

    let mut stats = Vec::new();
    let mut tasks = Vec::new();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..WAITERS {
        let m = Mutex::new(clients[i % clients.len()].clone(), LOCK).unwrap();
        stats.push(m.wait_stats());
        let done_tx = done_tx.clone();
        tasks.push(tokio::spawn(async move {
            let g = m.acquire().await.expect("acquire");
            let _ = done_tx.send(i);
            // Hold until told to release (the task is aborted/joined by the test).
            std::future::pending::<()>().await;
            drop(g);
        }));
    }
    // Every waiter has left its one watch on its predecessor.
    for s in &mut stats {
        within("a waiter's watch", s.wait_for(|s| s.watches_set == 1))
            .await
            .unwrap();
    }
    let watches_before = total_watches(&server).await;
    assert_eq!(watches_before, WAITERS as u64, "one watch per waiter");

    guard.release().await.unwrap();
    within("the next holder", done_rx.recv()).await.unwrap();

    // Exactly one watch fired on the server...
    assert_eq!(total_watches(&server).await, WAITERS as u64 - 1);
    // ...and exactly one waiter woke up.
    let wakeups: u64 = stats.iter().map(|s| s.borrow().wakeups).sum();
    assert_eq!(wakeups, 1);
    let watches: u64 = stats.iter().map(|s| s.borrow().watches_set).sum();
    assert_eq!(watches, WAITERS as u64);
    assert!(done_rx.try_recv().is_err(), "only one holder");
    for t in tasks {
        t.abort();
    }
}

async fn total_watches(server: &zk_server::TestingServer) -> u64 {
    let text = server.four_letter_word("wchs").await.expect("wchs");
    text.lines()
        .find_map(|l| l.strip_prefix("Total watches:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("unexpected wchs output: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holder_session_expiry_gives_the_lock_to_the_next_waiter_and_reports_lost() {
    let server = server().await;
    let a = client(&server.connect_string()).await;
    let b = client(&server.connect_string()).await;
    let holder = Mutex::new(a.clone(), LOCK).unwrap();
    let guard = holder.acquire().await.unwrap();
    assert_eq!(guard.state(), LockState::Held);
    let old_token = guard.fencing_token();

    let waiter = Mutex::new(b.clone(), LOCK).unwrap();
    let mut waiter_stats = waiter.wait_stats();
    let next = tokio::spawn(async move {
        let g = waiter.acquire().await.expect("waiter acquires");
        (g, waiter)
    });
    within(
        "the waiter's watch",
        waiter_stats.wait_for(|s| s.watches_set == 1),
    )
    .await
    .unwrap();

    let expired_at = tokio::time::Instant::now();
    assert!(server.expire_session(a.session_id()).await);
    let (next_guard, _waiter) = within_for(
        "the next waiter within session timeout + 1 s",
        SESSION_TIMEOUT + Duration::from_secs(1),
        next,
    )
    .await
    .unwrap();
    assert!(expired_at.elapsed() < SESSION_TIMEOUT + Duration::from_secs(1));
    assert!(next_guard.fencing_token() > old_token);
    within("the old guard reports LOST", guard.lost()).await;
    assert_eq!(guard.state(), LockState::Lost);
    assert!(!holder.is_acquired());
    // Releasing a lost guard is harmless; the handle works again with the new session.
    guard.release().await.unwrap();
    next_guard.release().await.unwrap();
    let again = within("acquire on the new session", holder.acquire())
        .await
        .unwrap();
    assert_eq!(again.session_id(), a.session_id());
    again.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_reports_suspended_then_held_across_a_reconnect() {
    let mut server = server().await;
    let a = client(&server.connect_string()).await;
    let holder = Mutex::new(a.clone(), LOCK).unwrap();
    let guard = holder.acquire().await.unwrap();
    let mut states = guard.states();
    server.restart().await.unwrap();
    within("SUSPENDED", states.wait_for(|s| *s == LockState::Suspended))
        .await
        .unwrap();
    within("HELD again", states.wait_for(|s| *s == LockState::Held))
        .await
        .unwrap();
    assert_eq!(guard.session_id(), a.session_id());
    guard.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_acquire_future_leaves_no_node() {
    let server = server().await;
    let a = client(&server.connect_string()).await;
    let b = client(&server.connect_string()).await;
    let holder = Mutex::new(a.clone(), LOCK).unwrap();
    let guard = holder.acquire().await.unwrap();
    let waiter = Mutex::new(b.clone(), LOCK).unwrap();
    let mut stats = waiter.wait_stats();
    let task = tokio::spawn(async move { waiter.acquire().await.map(|_| ()) });
    within("the waiter queued", stats.wait_for(|s| s.watches_set == 1))
        .await
        .unwrap();
    assert_eq!(holder.participant_nodes().await.unwrap().len(), 2);
    task.abort();
    let _ = task.await;
    wait_children(&a, LOCK, |c| c.len() == 1).await;
    guard.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_create_reply_is_adopted_and_leaves_no_orphan() {
    let server = server().await;
    let proxy = Proxy::start(&server.connect_string()).await;
    let observer = client(&server.connect_string()).await;
    let victim = client(&proxy.connect_string()).await;
    let victim_session = victim.session_id();
    observer
        .create(LOCK)
        .creating_parent_containers_if_needed()
        .await
        .unwrap();

    // The create reaches the server but its reply is lost.
    proxy.set_mode(Mode::DropReplies);
    let mutex = Mutex::new(victim.clone(), LOCK).unwrap();
    let task = tokio::spawn(async move {
        let g = mutex.acquire().await.expect("acquire");
        (g, mutex)
    });
    wait_children(&observer, LOCK, |c| c.len() == 1).await;
    // The connection breaks; the retry finds the protected node and adopts it.
    proxy.set_mode(Mode::Forward);
    proxy.cut();
    let (guard, _mutex) = within("acquire after the lost reply", task).await.unwrap();
    assert_eq!(victim.session_id(), victim_session, "same session");
    let nodes = observer.get_children(LOCK).await.unwrap();
    assert_eq!(nodes.len(), 1, "no orphan: {nodes:?}");
    assert!(guard.node_path().ends_with(&nodes[0]));
    guard.release().await.unwrap();
    wait_children(&observer, LOCK, |c| c.is_empty()).await;

    // Same again, but the caller gives up while the reply is lost: the node is found and
    // deleted in the background once the connection is back.
    proxy.set_mode(Mode::DropReplies);
    let mutex = Mutex::new(victim.clone(), LOCK).unwrap();
    let task = tokio::spawn(async move { mutex.acquire().await.map(|_| ()) });
    wait_children(&observer, LOCK, |c| c.len() == 1).await;
    task.abort();
    let _ = task.await;
    proxy.set_mode(Mode::Forward);
    proxy.cut();
    wait_children(&observer, LOCK, |c| c.is_empty()).await;
    assert_eq!(
        victim.session_id(),
        victim_session,
        "no session expiry involved"
    );
}
