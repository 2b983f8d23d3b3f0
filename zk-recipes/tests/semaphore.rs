//! `Semaphore` and `SemaphoreMutex` against the embedded server: bounded holders under
//! contention, timeouts that leave nothing behind, a limit driven by a `SharedCount`.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use support::*;
use zk_recipes::{LockState, Semaphore, SemaphoreMutex, SharedCount};

const SEM: &str = "/recipes/semaphore";
const SHORT: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_most_three_holders_under_contention_and_everyone_gets_through() {
    const SESSIONS: usize = 3;
    const TASKS: usize = 4;
    const ROUNDS: usize = 5;
    let server = server().await;
    let inside = Arc::new(AtomicUsize::new(0));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..SESSIONS {
        let c = client(&server.connect_string()).await;
        clients.push(c.clone());
        for _ in 0..TASKS {
            let semaphore = Semaphore::new(c.clone(), SEM, 3).unwrap();
            let (inside, max_seen, done) = (inside.clone(), max_seen.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..ROUNDS {
                    let mut leases = semaphore.acquire(1).await.expect("acquire");
                    assert_eq!(leases.len(), 1);
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    assert!(now <= 3, "{now} holders of a 3-lease semaphore");
                    max_seen.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                    leases.pop().unwrap().release().await.expect("release");
                    done.fetch_add(1, Ordering::SeqCst);
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
    assert_eq!(done.load(Ordering::SeqCst), SESSIONS * TASKS * ROUNDS);
    assert!(
        max_seen.load(Ordering::SeqCst) >= 2,
        "leases were never held concurrently"
    );
    let s = Semaphore::new(clients[0].clone(), SEM, 3).unwrap();
    assert!(s.participant_nodes().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_acquire_returns_nothing_and_leaves_no_nodes() {
    let server = server().await;
    let a = client(&server.connect_string()).await;
    let b = client(&server.connect_string()).await;
    let holder = Semaphore::new(a.clone(), SEM, 2)
        .unwrap()
        .with_node_data("holder");
    let held = holder.acquire(1).await.unwrap();
    assert_eq!(held[0].data().await.unwrap(), b"holder");
    assert!(held[0].node_path().contains("/leases/_c_"));
    assert!(held[0].node_path().contains("lease-"));

    // Two leases wanted, one free: it takes one, waits for the second, gives up and returns
    // the first.
    let waiter = Semaphore::new(b.clone(), SEM, 2).unwrap();
    let got = waiter.acquire_timeout(2, SHORT).await.unwrap();
    assert!(got.is_empty());
    assert_eq!(
        a.get_children(&format!("{SEM}/leases"))
            .await
            .unwrap()
            .len(),
        1
    );
    let locks = a
        .get_children(&format!("{SEM}/locks"))
        .await
        .unwrap_or_default();
    assert!(locks.is_empty(), "{locks:?}");

    // The one free lease is still there to take.
    let one = waiter.acquire_timeout(1, PATIENCE).await.unwrap();
    assert_eq!(one.len(), 1);
    assert!(one[0].fencing_token() > held[0].fencing_token());
    assert!(waiter.acquire_timeout(1, SHORT).await.unwrap().is_empty());
    for l in one.into_iter().chain(held) {
        l.release().await.unwrap();
    }
    assert!(waiter.participant_nodes().await.unwrap().is_empty());
    assert!(matches!(
        waiter.acquire(0).await,
        Err(zk_recipes::Error::InvalidArgument(_))
    ));
}

/// A timed acquire whose time runs out while the network is dead returns by its deadline
/// plus one connection timeout (the internal lock's release used to wait for the network);
/// the nodes it leaves are deleted once the network is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_acquire_cut_off_from_the_server_still_returns_in_time() {
    let (server, proxy) = server_behind_a_proxy().await;
    let holder = client(&server.connect_string()).await;
    let held = Semaphore::new(holder.clone(), SEM, 1)
        .unwrap()
        .acquire(1)
        .await
        .unwrap();
    let cut_off =
        client_with_connection_timeout(&proxy.connect_string(), Duration::from_millis(500)).await;
    let waiter = Semaphore::new(cut_off.clone(), SEM, 1).unwrap();
    let acquire =
        tokio::spawn(async move { waiter.acquire_timeout(1, Duration::from_secs(1)).await });
    // Once the waiter is queued (its lease node is there), the network dies.
    wait_children(&holder, &format!("{SEM}/leases"), |c| c.len() == 2).await;
    proxy.set_mode(Mode::Blackhole);
    // Nothing acquired: it gave up, or a call ran out of retries on the dead connection.
    match within_for("the timed acquire", Duration::from_secs(6), acquire)
        .await
        .unwrap()
    {
        Ok(got) => assert!(got.is_empty()),
        Err(e) => assert_eq!(e, zk_recipes::Error::Zk(zk_client::Error::ConnectionLoss)),
    }

    proxy.set_mode(Mode::Forward);
    proxy.cut();
    wait_children(&holder, &format!("{SEM}/locks"), <[String]>::is_empty).await;
    wait_children(&holder, &format!("{SEM}/leases"), |c| c.len() == 1).await;
    for lease in held {
        lease.release().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raising_a_shared_count_lets_a_waiter_in() {
    let server = server().await;
    let a = client(&server.connect_string()).await;
    let b = client(&server.connect_string()).await;
    let count_a = SharedCount::new(a.clone(), "/recipes/semaphore-limit", 1).unwrap();
    count_a.start().await.unwrap();
    let count_b = SharedCount::new(b.clone(), "/recipes/semaphore-limit", 1).unwrap();
    count_b.start().await.unwrap();
    let first = Semaphore::with_shared_count(a.clone(), SEM, &count_a).unwrap();
    let second = Arc::new(Semaphore::with_shared_count(b.clone(), SEM, &count_b).unwrap());
    assert_eq!(first.max_leases(), 1);
    let held = first.acquire(1).await.unwrap();
    let waiter = {
        let second = second.clone();
        tokio::spawn(async move { second.acquire(1).await.expect("acquire") })
    };
    tokio::time::sleep(SHORT).await;
    assert!(!waiter.is_finished(), "a second holder with a limit of 1");
    count_a.set_value(2).await.unwrap();
    let leases = within("the waiter gets in after the raise", waiter)
        .await
        .unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!(second.max_leases(), 2);
    assert_eq!(first.participant_nodes().await.unwrap().len(), 2);
    for l in leases.into_iter().chain(held) {
        l.release().await.unwrap();
    }
    count_a.close().await;
    count_b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semaphore_mutex_excludes_and_is_not_reentrant() {
    let server = server().await;
    let a = client(&server.connect_string()).await;
    let b = client(&server.connect_string()).await;
    let first = SemaphoreMutex::new(a.clone(), SEM).unwrap();
    let second = SemaphoreMutex::new(b.clone(), SEM).unwrap();
    let guard = first.acquire().await.unwrap();
    assert!(first.is_acquired());
    // Not reentrant, not even on its own handle.
    assert!(first.acquire_timeout(SHORT).await.unwrap().is_none());
    assert!(second.acquire_timeout(SHORT).await.unwrap().is_none());
    let token = guard.fencing_token();
    guard.release().await.unwrap();
    assert!(!first.is_acquired());
    let g = second
        .acquire_timeout(PATIENCE)
        .await
        .unwrap()
        .expect("free");
    assert!(g.fencing_token() > token);
    drop(g);
    let g = within("acquire after a dropped guard", first.acquire())
        .await
        .unwrap();
    g.release().await.unwrap();
}

/// Leases are honest about time as lock guards are: SUSPENDED while the connection is down,
/// HELD again after a same-session reconnect, LOST when the session expires, RELEASED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_states_follow_the_connection_and_the_session() {
    let (server, proxy) = server_behind_a_proxy().await;
    let holder = client(&proxy.connect_string()).await;
    let semaphore = Semaphore::new(holder.clone(), SEM, 2).unwrap();
    let mut leases = semaphore.acquire(2).await.unwrap();
    let (kept, released) = (leases.remove(0), leases.remove(0));
    assert_eq!(kept.state(), LockState::Held);
    let mut changes = kept.state_changes();

    proxy.down();
    assert_eq!(
        within("SUSPENDED", kept.at_risk()).await,
        LockState::Suspended
    );
    proxy.up();
    let mut states = kept.states();
    within("HELD again", states.wait_for(|s| *s == LockState::Held))
        .await
        .unwrap();

    // Each lease follows the connection on its own: the other one may still be Suspended.
    let mut released_states = released.states();
    within(
        "the other lease HELD again",
        released_states.wait_for(|s| *s == LockState::Held),
    )
    .await
    .unwrap();
    let mut released_changes = released.state_changes();
    released.release().await.unwrap();
    assert_eq!(*released_states.borrow_and_update(), LockState::Released);
    // Our own delete is no loss: Released alone (not Lost, then Released).
    let mut after_release = Vec::new();
    while let Some(s) = within("the released lease's changes", released_changes.next()).await {
        after_release.push(s);
    }
    assert_eq!(after_release, [LockState::Released]);
    assert_eq!(kept.state(), LockState::Held, "another lease's release");

    assert!(server.expire_session(holder.session_id()).await);
    within("LOST", kept.lost()).await;
    assert_eq!(kept.state(), LockState::Lost);
    let seen: Vec<LockState> = within("the changes", async {
        let mut seen = Vec::new();
        while let Some(s) = changes.next().await {
            seen.push(s);
            if s == LockState::Lost {
                return seen;
            }
        }
        seen
    })
    .await;
    // The expiry may first show as a dropped connection (SUSPENDED), then LOST.
    assert!(
        seen.starts_with(&[LockState::Suspended, LockState::Held]),
        "{seen:?}"
    );
    assert_eq!(seen.last(), Some(&LockState::Lost), "{seen:?}");
    kept.release().await.unwrap();

    // A dropped lease says so to whoever follows it.
    let lease = semaphore.acquire(1).await.unwrap().remove(0);
    let mut states = lease.states();
    let mut changes = lease.state_changes();
    drop(lease);
    assert_eq!(*states.borrow_and_update(), LockState::Released);
    assert_eq!(
        within("RELEASED", changes.next()).await,
        Some(LockState::Released)
    );
    assert_eq!(within("the end", changes.next()).await, None);
}

/// The guard of a `SemaphoreMutex` reports the state of its lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semaphore_mutex_guard_reports_lost_on_session_expiry() {
    let server = server().await;
    let holder = client(&server.connect_string()).await;
    let mutex = SemaphoreMutex::new(holder.clone(), SEM).unwrap();
    let guard = mutex.acquire().await.unwrap();
    assert_eq!(guard.state(), LockState::Held);
    assert!(server.expire_session(holder.session_id()).await);
    let at_risk = within("at risk", guard.at_risk()).await;
    assert!(
        matches!(at_risk, LockState::Suspended | LockState::Lost),
        "{at_risk:?}"
    );
    within("LOST", guard.lost()).await;
    assert_eq!(guard.state(), LockState::Lost);
}

/// Only the holder of the internal lock may have a lease waiting. A waiter whose internal
/// lock is lost (its node gone, as when its session expires) gives up its lease node and
/// starts over; otherwise the next waiter's lease and its own would both stay over the limit
/// when the holder releases, each waiting for the other for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_that_loses_the_internal_lock_does_not_deadlock_the_next() {
    let server = server().await;
    let admin = client(&server.connect_string()).await;
    let mutex = |c: zk_client::Client| SemaphoreMutex::new(c, SEM).unwrap();
    let holder = mutex(client(&server.connect_string()).await);
    let held = holder.acquire().await.unwrap();
    let a = mutex(client(&server.connect_string()).await);
    let a = tokio::spawn(async move { a.acquire().await.map(|g| g.fencing_token()) });
    let leases = format!("{SEM}/leases");
    let locks = format!("{SEM}/locks");
    wait_children(&admin, &leases, |c| c.len() == 2).await;
    // A waits for a lease while holding the internal lock: take that lock from it.
    let (taken, _) = admin.get_children(&locks).with_stat().await.unwrap();
    assert_eq!(taken.len(), 1, "{taken:?}");
    admin
        .delete(&format!("{locks}/{}", taken[0]))
        .await
        .unwrap();
    let b = mutex(client(&server.connect_string()).await);
    let b = tokio::spawn(async move { b.acquire().await.map(|g| g.fencing_token()) });
    // Both wait: B with the internal lock or behind it, A with a lease node or in the queue
    // again (the holder's lease, two lock or lease nodes of theirs, and one more).
    within("A and B wait", async {
        loop {
            let mut nodes = 0;
            for parent in [&locks, &leases] {
                nodes += admin.get_children(parent).await.unwrap().len();
            }
            if nodes == 4 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    held.release().await.unwrap();
    let first = within("A or B acquires", futures::future::select(a, b)).await;
    let (token, _) = first.factor_first();
    assert!(token.unwrap().is_ok());
}

/// Leases taken one by one: one lost (its session expired) while the next is waited for is
/// given back with the others and the acquire starts over, rather than returning a lost
/// lease whose slot another process may take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_lost_while_waiting_for_the_next_is_taken_again() {
    let server = server().await;
    let admin = client(&server.connect_string()).await;
    let holder = Semaphore::new(client(&server.connect_string()).await, SEM, 2).unwrap();
    let held = holder.acquire(1).await.unwrap();
    let a = client(&server.connect_string()).await;
    let semaphore = Semaphore::new(a.clone(), SEM, 2).unwrap();
    let waiting = tokio::spawn(async move {
        let leases = semaphore.acquire(2).await.unwrap();
        leases.iter().map(|l| l.state()).collect::<Vec<_>>()
    });
    let leases = format!("{SEM}/leases");
    // A has one lease and waits for a second.
    wait_children(&admin, &leases, |c| c.len() == 3).await;
    assert!(server.expire_session(a.session_id()).await);
    // A starts over in its new session and waits with its two leases again.
    wait_children(&admin, &leases, |c| c.len() == 3).await;
    for lease in held {
        lease.release().await.unwrap();
    }
    let states = within("A holds two leases", waiting).await.unwrap();
    assert_eq!(states, [LockState::Held, LockState::Held]);
}
