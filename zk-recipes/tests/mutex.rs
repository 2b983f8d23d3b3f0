//! `Mutex` against the embedded server: mutual exclusion (also between tasks sharing a handle),
//! fencing, explicit reentrancy, timeouts, no herd effect, session expiry, a deleted lock node,
//! lost create replies, cancellation.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use support::*;
use zk_recipes::{LockState, Mutex, MutexGuard};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tasks_sharing_one_handle_never_overlap() {
    const SHARING: usize = 4;
    const SHARED_ROUNDS: usize = 25;
    let server = server().await;
    let client = client(&server.connect_string()).await;
    let mutex = Arc::new(Mutex::new(client.clone(), LOCK).unwrap());
    let counter = Arc::new(AtomicU64::new(0));
    let inside = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..SHARING {
        let (mutex, counter, inside) = (mutex.clone(), counter.clone(), inside.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..SHARED_ROUNDS {
                let guard = mutex.acquire().await.expect("acquire");
                assert!(
                    !inside.swap(true, Ordering::SeqCst),
                    "two tasks of one handle inside the critical section"
                );
                let v = counter.load(Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
                counter.store(v + 1, Ordering::SeqCst);
                inside.store(false, Ordering::SeqCst);
                guard.release().await.expect("release");
            }
        }));
    }
    within("all acquisitions", async {
        for t in tasks {
            t.await.expect("task");
        }
    })
    .await;
    assert_eq!(
        counter.load(Ordering::SeqCst),
        (SHARING * SHARED_ROUNDS) as u64
    );
    assert!(!mutex.is_acquired());
    assert!(mutex.participant_nodes().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_on_a_handle_with_a_live_guard_waits_for_its_release() {
    let server = server().await;
    let client = client(&server.connect_string()).await;
    let mutex = Arc::new(Mutex::new(client.clone(), LOCK).unwrap());
    let first = mutex.acquire().await.unwrap();
    // A plain acquire on the same handle is not re-entrant: it waits.
    assert!(mutex
        .acquire_timeout(Duration::from_millis(200))
        .await
        .unwrap()
        .is_none());
    let waiter = {
        let mutex = mutex.clone();
        tokio::spawn(async move { mutex.acquire().await.expect("acquire") })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !waiter.is_finished(),
        "acquired while the handle's guard is alive"
    );
    let old_token = first.fencing_token();
    let old_node = first.node_path().to_owned();
    first.release().await.unwrap();
    let second = within("acquire after the release", waiter).await.unwrap();
    // A fresh grant: a new node and a higher token.
    assert_ne!(second.node_path(), old_node);
    assert!(second.fencing_token() > old_token);
    assert_eq!(client.exists(&old_node).await.unwrap(), None);
    second.release().await.unwrap();
}

#[tokio::test]
async fn explicit_reentry_shares_the_node_deleted_with_the_last_guard() {
    let server = server().await;
    let client = client(&server.connect_string()).await;
    let mutex = Mutex::new(client.clone(), LOCK).unwrap();
    let first = mutex.acquire().await.unwrap();
    let second = first.reenter();
    assert_eq!(first.node_path(), second.node_path());
    assert_eq!(first.fencing_token(), second.fencing_token());
    assert_eq!(second.state(), LockState::Held);
    assert_eq!(mutex.participant_nodes().await.unwrap().len(), 1);

    // Another handle (even on the same session) is excluded.
    let other = Mutex::new(client.clone(), LOCK).unwrap();
    assert!(other
        .acquire_timeout(Duration::from_millis(200))
        .await
        .unwrap()
        .is_none());

    // Nor does a plain acquire on the same handle re-enter: it waits for both guards.
    assert!(mutex
        .acquire_timeout(Duration::from_millis(200))
        .await
        .unwrap()
        .is_none());

    first.release().await.unwrap();
    assert!(mutex.is_acquired());
    assert_eq!(mutex.participant_nodes().await.unwrap().len(), 1);
    // Re-entering from the remaining guard still works.
    let third = second.reenter();
    assert_eq!(third.fencing_token(), second.fencing_token());
    drop(third);
    assert!(mutex.is_acquired());
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
    let stats = waiter.wait_stats();
    // Long enough to queue even on a loaded machine; the wait itself never ends early.
    let got = waiter
        .acquire_timeout(Duration::from_secs(2))
        .await
        .unwrap();
    assert!(got.is_none());
    // The waiter really queued (watched the holder's node) before timing out, and was not
    // woken.
    assert_eq!(stats.borrow().watches_set, 1, "the waiter never queued");
    assert_eq!(stats.borrow().wakeups, 0);
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

/// A guard (or a lease) dropped on a thread outside any tokio runtime still lets its node
/// go: the delete runs on the client's runtime, so nobody waits for the session's end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guard_dropped_outside_the_runtime_still_releases() {
    let server = server().await;
    let a = client(&server.connect_string()).await;
    let b = client(&server.connect_string()).await;
    let guard = Mutex::new(a.clone(), LOCK)
        .unwrap()
        .acquire()
        .await
        .unwrap();
    let semaphore = zk_recipes::Semaphore::new(a.clone(), "/recipes/plain-thread", 1).unwrap();
    let lease = semaphore.acquire(1).await.unwrap();
    std::thread::spawn(move || {
        drop(guard);
        drop(lease);
    })
    .join()
    .unwrap();
    let other = Mutex::new(b.clone(), LOCK).unwrap();
    let got = other.acquire_timeout(PATIENCE).await.unwrap();
    assert!(got.is_some(), "the dropped guard's node was left");
    let other = zk_recipes::Semaphore::new(b.clone(), "/recipes/plain-thread", 1).unwrap();
    assert_eq!(other.acquire_timeout(1, PATIENCE).await.unwrap().len(), 1);
}

/// A zero timeout is a try-lock, as Curator's `acquire(0, unit)`: the deadline bounds the
/// wait, not the create and the first look at the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_timeout_takes_a_free_lock_and_refuses_a_held_one() {
    let server = server().await;
    let a = client(&server.connect_string()).await;
    let b = client(&server.connect_string()).await;
    let first = Mutex::new(a.clone(), LOCK).unwrap();
    let guard = first
        .acquire_timeout(Duration::ZERO)
        .await
        .unwrap()
        .expect("a free lock is taken");
    let second = Mutex::new(b.clone(), LOCK).unwrap();
    assert!(second
        .acquire_timeout(Duration::ZERO)
        .await
        .unwrap()
        .is_none());
    let nodes = first.participant_nodes().await.unwrap();
    assert_eq!(
        nodes.len(),
        1,
        "the refused attempt left its node: {nodes:?}"
    );
    guard.release().await.unwrap();
    let semaphore = zk_recipes::Semaphore::new(b.clone(), "/recipes/try-semaphore", 1).unwrap();
    let lease = semaphore.acquire_timeout(1, Duration::ZERO).await.unwrap();
    assert_eq!(lease.len(), 1, "a free lease is taken");
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
    let holder_node = guard.node_path().to_owned();

    let mut stats = Vec::new();
    let mut tasks = Vec::new();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..WAITERS {
        let m = Mutex::new(clients[i % clients.len()].clone(), LOCK).unwrap();
        stats.push(m.wait_stats());
        let done_tx = done_tx.clone();
        tasks.push(tokio::spawn(async move {
            let g = m.acquire().await.expect("acquire");
            let _ = done_tx.send((i, g.node_path().to_owned()));
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
    // Per waiter a watch on its predecessor and one on its own node (which tells it, when its
    // predecessor goes, that its node is intact without another read; the server keeps one
    // watch per path and session, so consecutive nodes of one session share one), plus the
    // holder's own watch on its node (the guard's monitor, from a connection no waiter uses).
    let watches_before = total_watches(&server).await;
    assert!(
        (WAITERS as u64 + 1..=2 * WAITERS as u64 + 1).contains(&watches_before),
        "{watches_before} watches"
    );
    assert_eq!(
        watches_by_path(&server).await.get(&holder_node),
        Some(&2),
        "the first waiter's and the holder's"
    );

    guard.release().await.unwrap();
    let (_, new_holder_node) = within("the next holder", done_rx.recv()).await.unwrap();

    // Exactly the two watches on the released node fired on the server (the holder's and
    // the next waiter's): every other waiter's watches are still there...
    assert_eq!(total_watches(&server).await, watches_before - 2);
    let by_path = watches_by_path(&server).await;
    assert!(!by_path.contains_key(&holder_node), "{by_path:?}");
    assert!(by_path.get(&new_holder_node).is_some_and(|n| *n >= 1));
    // ...and exactly one waiter woke up.
    let wakeups: u64 = stats.iter().map(|s| s.borrow().wakeups).sum();
    assert_eq!(wakeups, 1);
    let watches: u64 = stats.iter().map(|s| s.borrow().watches_set).sum();
    assert_eq!(watches, WAITERS as u64);
    assert!(done_rx.try_recv().is_err(), "only one holder");
    let _ = holder;
    for t in tasks {
        t.abort();
    }
}

/// Watches per path on the server (`wchp`: a path line, then one line per watching session).
async fn watches_by_path(server: &zk_server::TestingServer) -> HashMap<String, u64> {
    let text = server.four_letter_word("wchp").await.expect("wchp");
    let mut out = HashMap::new();
    let mut current = None;
    for line in text.lines() {
        if line.starts_with('\t') {
            let path: &String = current.as_ref().expect("a path before its sessions");
            *out.entry(path.clone()).or_insert(0) += 1;
        } else if !line.is_empty() {
            current = Some(line.to_owned());
        }
    }
    out
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

    let next = queued_waiter(&b).await;

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
    // Subscribed before the restart and lossless: a quick SUSPENDED → HELD cannot be missed
    // (the `states()` watch channel would coalesce it).
    let mut changes = guard.state_changes();
    server.restart().await.unwrap();
    let mut seen = Vec::new();
    within("SUSPENDED, then HELD again", async {
        while let Some(s) = changes.next().await {
            seen.push(s);
            if seen.contains(&LockState::Suspended) && s == LockState::Held {
                return;
            }
            assert!(!s.is_final(), "unexpected {s:?} after {seen:?}");
        }
        panic!("the state stream ended: {seen:?}");
    })
    .await;
    assert_eq!(seen.first(), Some(&LockState::Suspended), "{seen:?}");
    assert_eq!(guard.state(), LockState::Held);
    assert_eq!(guard.session_id(), a.session_id());
    guard.release().await.unwrap();
}

#[tokio::test]
async fn a_next_in_line_waiter_whose_node_was_deleted_queues_again() {
    // The next in line takes the lock when its predecessor goes without reading the queue
    // again, trusting the watch on its own node: here that node is gone by then.
    let server = server().await;
    let a = client(&server.connect_string()).await;
    let b = client(&server.connect_string()).await;
    let operator = client(&server.connect_string()).await;
    let holder = Mutex::new(a.clone(), LOCK).unwrap();
    let guard = holder.acquire().await.unwrap();

    let next = queued_waiter(&b).await;
    let queue = operator.get_children(LOCK).await.unwrap();
    let holder_name = guard.node_path().rsplit('/').next().unwrap().to_owned();
    let waiter_node = queue
        .iter()
        .find(|n| **n != holder_name)
        .map(|n| format!("{LOCK}/{n}"))
        .expect("the waiter's node");
    operator.delete(&waiter_node).await.unwrap();

    guard.release().await.unwrap();
    let (next_guard, _waiter) = within("the waiter acquires", next).await.unwrap();
    assert_ne!(next_guard.node_path(), waiter_node);
    assert_eq!(next_guard.state(), LockState::Held);
    let (_, stat) = operator.get_data(next_guard.node_path()).await.unwrap();
    assert_eq!(stat.ephemeral_owner, b.session_id());
    assert_eq!(operator.get_children(LOCK).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_lock_node_is_reported_lost_and_the_next_waiter_acquires() {
    let server = server().await;
    let a = client(&server.connect_string()).await;
    let b = client(&server.connect_string()).await;
    let operator = client(&server.connect_string()).await;
    let holder = Mutex::new(a.clone(), LOCK).unwrap();
    let guard = holder.acquire().await.unwrap();
    let mut changes = guard.state_changes();
    let old_token = guard.fencing_token();

    let next = queued_waiter(&b).await;

    // Someone else deletes the holder's node while the holder stays connected.
    operator.delete(guard.node_path()).await.unwrap();
    within("the guard reports LOST", guard.lost()).await;
    assert_eq!(guard.state(), LockState::Lost);
    assert_eq!(
        within("a state change", changes.next()).await,
        Some(LockState::Lost)
    );
    assert!(!holder.is_acquired());
    let (next_guard, _waiter) = within("the next waiter acquires", next).await.unwrap();
    assert!(next_guard.fencing_token() > old_token);
    assert_eq!(next_guard.state(), LockState::Held);
    assert_eq!(
        a.connection_state(),
        Some(zk_client::ConnectionState::Connected)
    );
    // Releasing the lost guard is harmless (and does not touch the new holder's node).
    guard.release().await.unwrap();
    assert_eq!(
        within("the stream's last state", changes.next()).await,
        Some(LockState::Released)
    );
    assert_eq!(within("the end of the stream", changes.next()).await, None);
    assert_eq!(next_guard.state(), LockState::Held);
    assert_eq!(holder.participant_nodes().await.unwrap().len(), 1);
    next_guard.release().await.unwrap();
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
    let (server, proxy) = server_behind_a_proxy().await;
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

/// CURATOR-678: a release while the connection is down keeps deleting the lock node until
/// the delete has gone through after the reconnect; until then nobody else gets the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_during_a_disconnect_completes_after_the_reconnect() {
    let (server, proxy) = server_behind_a_proxy().await;
    let observer = client(&server.connect_string()).await;
    let holder = client(&proxy.connect_string()).await;
    let holder_session = holder.session_id();
    let mutex = Mutex::new(holder.clone(), LOCK).unwrap();
    let guard = mutex.acquire().await.expect("acquire");

    proxy.down();
    let release = tokio::spawn(guard.release());
    let contender = Mutex::new(observer.clone(), LOCK).unwrap();
    let early = contender
        .acquire_timeout(Duration::from_millis(1_000))
        .await
        .expect("acquire_timeout");
    assert!(
        early.is_none(),
        "the lock changed hands while its release was pending"
    );
    assert!(!release.is_finished());
    assert_eq!(observer.get_children(LOCK).await.unwrap().len(), 1);

    proxy.up();
    within("the release after the reconnect", release)
        .await
        .unwrap()
        .expect("release");
    assert!(!mutex.is_acquired());
    assert_eq!(holder.session_id(), holder_session, "same session");
    let next = within("the contender's acquire", contender.acquire())
        .await
        .expect("acquire after the release");
    next.release().await.unwrap();
}

/// A waiter on `client`'s session queued behind the current holder and watching its
/// predecessor; the task returns its guard (and its handle) once it holds the lock.
async fn queued_waiter(client: &zk_client::Client) -> tokio::task::JoinHandle<(MutexGuard, Mutex)> {
    let waiter = Mutex::new(client.clone(), LOCK).unwrap();
    let mut stats = waiter.wait_stats();
    let next = tokio::spawn(async move {
        let g = waiter.acquire().await.expect("waiter acquires");
        (g, waiter)
    });
    within("the waiter's watch", stats.wait_for(|s| s.watches_set == 1))
        .await
        .unwrap();
    next
}
