//! `MultiLock` against the embedded server: all or nothing.

mod support;

use std::time::Duration;

use support::*;
use zk_recipes::{LockState, MultiLock, MultiLockPart, Mutex, ReadWriteLock, SemaphoreMutex};

const A: &str = "/recipes/multi/a";
const B: &str = "/recipes/multi/b";
const SHORT: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_all_locks_and_excludes_others() {
    let server = server().await;
    let a = client(&server.connect_string()).await;
    let b = client(&server.connect_string()).await;
    let first = MultiLock::new(a.clone(), [A, B]).unwrap();
    let guard = first.acquire().await.unwrap();
    assert!(first.is_acquired());
    assert_eq!(guard.guards().len(), 2);
    assert_eq!(guard.state(), LockState::Held);
    let tokens = guard.fencing_tokens();
    assert!(tokens[0] < tokens[1], "acquired in order");
    // Each lock alone is taken.
    for path in [A, B] {
        let m = Mutex::new(b.clone(), path).unwrap();
        assert!(m.acquire_timeout(SHORT).await.unwrap().is_none());
    }
    let second = MultiLock::new(b.clone(), [A, B]).unwrap();
    assert!(second.acquire_timeout(SHORT).await.unwrap().is_none());
    guard.release().await.unwrap();
    assert!(!first.is_acquired());
    let g = second
        .acquire_timeout(PATIENCE)
        .await
        .unwrap()
        .expect("free now");
    drop(g);
    let g = within("acquire after a dropped guard", first.acquire())
        .await
        .unwrap();
    g.release().await.unwrap();
    assert!(MultiLock::new(a.clone(), Vec::<String>::new()).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_lock_held_elsewhere_a_timed_acquire_holds_nothing() {
    let server = server().await;
    let a = client(&server.connect_string()).await;
    let b = client(&server.connect_string()).await;
    let other = Mutex::new(b.clone(), B).unwrap();
    let held = other.acquire().await.unwrap();

    let multi = MultiLock::new(a.clone(), [A, B]).unwrap();
    assert!(multi.acquire_timeout(SHORT).await.unwrap().is_none());
    // It had A, waited for B, and gave A back.
    assert!(!multi.locks()[0].is_acquired());
    let a_nodes = Mutex::new(b.clone(), A)
        .unwrap()
        .participant_nodes()
        .await
        .unwrap();
    assert!(a_nodes.is_empty(), "{a_nodes:?}");
    assert_eq!(other.participant_nodes().await.unwrap().len(), 1);
    // A is free for anyone meanwhile.
    let g = Mutex::new(b.clone(), A)
        .unwrap()
        .acquire_timeout(PATIENCE)
        .await
        .unwrap()
        .expect("A is free");
    g.release().await.unwrap();

    held.release().await.unwrap();
    let all = within("everything once B is free", multi.acquire())
        .await
        .unwrap();
    all.release().await.unwrap();
}

/// A timed multi-lock acquire whose time runs out while the network is dead returns by its
/// deadline plus one connection timeout per lock to give back (the releases go on in the
/// background and finish once the network is back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_acquire_cut_off_from_the_server_still_returns_in_time() {
    let (server, proxy) = server_behind_a_proxy().await;
    let b = client(&server.connect_string()).await;
    let other = Mutex::new(b.clone(), B).unwrap();
    let held = other.acquire().await.unwrap();
    let cut_off =
        client_with_connection_timeout(&proxy.connect_string(), Duration::from_millis(500)).await;
    let multi = MultiLock::new(cut_off.clone(), [A, B]).unwrap();
    let acquire = tokio::spawn(async move {
        multi
            .acquire_timeout(Duration::from_secs(1))
            .await
            .map(|g| g.is_none())
    });
    // Once it holds A and waits for B, the network dies.
    wait_children(&b, B, |c| c.len() == 2).await;
    proxy.set_mode(Mode::Blackhole);
    // Nothing acquired: it gave up, or a call ran out of retries on the dead connection.
    match within_for("the timed acquire", Duration::from_secs(6), acquire)
        .await
        .unwrap()
    {
        Ok(gave_up) => assert!(gave_up),
        Err(e) => assert_eq!(e, zk_recipes::Error::Zk(zk_client::Error::ConnectionLoss)),
    }

    proxy.set_mode(Mode::Forward);
    proxy.cut();
    wait_children(&b, A, <[String]>::is_empty).await;
    wait_children(&b, B, |c| c.len() == 1).await;
    held.release().await.unwrap();
}

#[tokio::test]
async fn a_path_given_twice_is_refused() {
    let server = server().await;
    let c = client(&server.connect_string()).await;
    let refused = MultiLock::new(c.clone(), ["/ml/a", "/ml/b", "/ml/a"]);
    assert!(
        matches!(refused, Err(zk_recipes::Error::InvalidArgument(_))),
        "{refused:?}"
    );
    assert!(MultiLock::new(c, ["/ml/a", "/ml/b"]).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_and_write_locks_combine_with_mutexes() {
    let server = server().await;
    let a = client(&server.connect_string()).await;
    let b = client(&server.connect_string()).await;
    let config = ReadWriteLock::new(a.clone(), "/recipes/multi/config").unwrap();
    let multi = MultiLock::from_locks([
        MultiLockPart::from(config.read_lock().clone()),
        MultiLockPart::from(Mutex::new(a.clone(), A).unwrap()),
    ])
    .unwrap();
    let guard = multi.acquire().await.unwrap();
    assert!(
        config.read_lock().is_acquired(),
        "a clone is the same handle"
    );
    // Other readers share the read lock; writers and the mutex wait.
    let other = ReadWriteLock::new(b.clone(), "/recipes/multi/config").unwrap();
    let shared = other
        .read_lock()
        .acquire_timeout(PATIENCE)
        .await
        .unwrap()
        .expect("readers share");
    shared.release().await.unwrap();
    assert!(other
        .write_lock()
        .acquire_timeout(SHORT)
        .await
        .unwrap()
        .is_none());
    assert!(Mutex::new(b.clone(), A)
        .unwrap()
        .acquire_timeout(SHORT)
        .await
        .unwrap()
        .is_none());
    guard.release().await.unwrap();
    let write = other
        .write_lock()
        .acquire_timeout(PATIENCE)
        .await
        .unwrap()
        .expect("free after the release");

    // A multi-lock with the write side waits for that writer, and holds nothing meanwhile.
    let writers = MultiLock::from_locks([
        MultiLockPart::from(Mutex::new(a.clone(), B).unwrap()),
        MultiLockPart::from(config.write_lock().clone()),
    ])
    .unwrap();
    assert!(writers.acquire_timeout(SHORT).await.unwrap().is_none());
    assert!(!writers.locks()[0].is_acquired());
    write.release().await.unwrap();
    let all = within("both once the writer left", writers.acquire())
        .await
        .unwrap();
    all.release().await.unwrap();
}

/// A semaphore mutex combines with a mutex (Curator's multi-lock takes any InterProcessLock,
/// InterProcessSemaphoreMutex among them): both held together, both excluded to others, and
/// with the semaphore mutex held elsewhere a timed acquire holds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semaphore_mutexes_combine_with_mutexes() {
    let server = server().await;
    let a = client(&server.connect_string()).await;
    let b = client(&server.connect_string()).await;
    const S: &str = "/recipes/multi/semaphore";
    let multi = MultiLock::from_locks([
        MultiLockPart::from(Mutex::new(a.clone(), A).unwrap()),
        MultiLockPart::from(SemaphoreMutex::new(a.clone(), S).unwrap()),
    ])
    .unwrap();
    let guard = multi.acquire().await.unwrap();
    assert!(multi.is_acquired());
    assert_eq!(guard.state(), LockState::Held);
    let tokens = guard.fencing_tokens();
    assert!(tokens[0] < tokens[1], "acquired in order: {tokens:?}");
    let other = SemaphoreMutex::new(b.clone(), S).unwrap();
    assert!(other.acquire_timeout(SHORT).await.unwrap().is_none());
    assert!(Mutex::new(b.clone(), A)
        .unwrap()
        .acquire_timeout(SHORT)
        .await
        .unwrap()
        .is_none());
    guard.release().await.unwrap();
    assert!(!multi.is_acquired());

    // Held elsewhere: the timed acquire gives the mutex back and leaves no lease behind.
    let held = other
        .acquire_timeout(PATIENCE)
        .await
        .unwrap()
        .expect("free after the release");
    assert!(multi.acquire_timeout(SHORT).await.unwrap().is_none());
    assert!(!multi.locks()[0].is_acquired());
    assert!(!multi.locks()[1].is_acquired());
    let waiting = b.get_children(&format!("{S}/locks")).await.unwrap();
    assert!(waiting.is_empty(), "nothing left waiting: {waiting:?}");
    let g = Mutex::new(b.clone(), A)
        .unwrap()
        .acquire_timeout(PATIENCE)
        .await
        .unwrap()
        .expect("A is free");
    g.release().await.unwrap();
    let leases = b.get_children(&format!("{S}/leases")).await.unwrap();
    assert_eq!(leases.len(), 1, "only the other holder's lease: {leases:?}");
    held.release().await.unwrap();
    let all = within("both once the semaphore mutex is free", multi.acquire())
        .await
        .unwrap();
    let lease = all.guards()[1].fencing_token();
    assert!(lease > 0);
    drop(all);
    wait_children(&b, &format!("{S}/leases"), <[String]>::is_empty).await;
    wait_children(&b, A, <[String]>::is_empty).await;
}

/// A lock taken first and lost (its session expired) while a later one is waited for makes
/// the set not held: the acquire starts over instead of returning a lost part, and returns
/// once it holds every lock again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_lost_while_waiting_for_the_next_is_taken_again() {
    let server = server().await;
    let admin = client(&server.connect_string()).await;
    let y = client(&server.connect_string()).await;
    let z = client(&server.connect_string()).await;
    let a = client(&server.connect_string()).await;
    let holding_b = Mutex::new(y, B).unwrap().acquire().await.unwrap();
    let multi = MultiLock::new(a.clone(), [A, B]).unwrap();
    let waiting = tokio::spawn(async move {
        let guard = multi.acquire().await.unwrap();
        (guard.state(), guard.fencing_tokens())
    });
    // A holds A's lock and waits for B's.
    wait_children(&admin, B, |c| c.len() == 2).await;
    assert!(server.expire_session(a.session_id()).await);
    let z_lock = Mutex::new(z, A).unwrap();
    let holding_a = within("Z takes the lock A lost", z_lock.acquire())
        .await
        .unwrap();
    let z_token = holding_a.fencing_token();
    holding_b.release().await.unwrap();
    // A must not come back holding a lock Z holds: it waits for A's lock again.
    wait_children(&admin, A, |c| c.len() == 2).await;
    holding_a.release().await.unwrap();
    let (state, tokens) = within("A holds both", waiting).await.unwrap();
    assert_eq!(state, LockState::Held);
    assert!(tokens[0] > z_token, "{tokens:?} after {z_token}");
}
