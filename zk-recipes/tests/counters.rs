//! The atomic counters and value against the embedded server: no lost increment under
//! contention (optimistic, and promoted to a lock), compare-and-set semantics, Curator's
//! encodings (8-byte longs, 4-byte integers, raw bytes).

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::*;
use zk_client::{Client, Error as ZkError, RetryNTimes};
use zk_recipes::{
    DistributedAtomicInteger, DistributedAtomicLong, DistributedAtomicValue, Error, PromotedToLock,
};

const COUNTER: &str = "/recipes/counters/long";

const CLIENTS: usize = 3;
const TASKS: usize = 10;
const INCREMENTS: usize = 100;

async fn clients(connect: &str, n: usize) -> Vec<Client> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(client(connect).await);
    }
    out
}

/// `TASKS` tasks over `clients` × `INCREMENTS` increments; returns every post value.
async fn hammer(
    clients: &[Client],
    make: impl Fn(Client) -> DistributedAtomicLong,
) -> (Vec<i64>, u32) {
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let counter = make(clients[t % clients.len()].clone());
        tasks.push(tokio::spawn(async move {
            let mut posts = Vec::new();
            let mut promoted = 0;
            for _ in 0..INCREMENTS {
                let r = counter.increment().await.expect("increment");
                assert!(r.succeeded, "an increment gave up: {r:?}");
                assert_eq!(r.post_value, r.pre_value + 1);
                promoted += r.stats.promoted_tries;
                posts.push(r.post_value);
            }
            (posts, promoted)
        }));
    }
    let mut posts = Vec::new();
    let mut promoted = 0;
    within("all increments", async {
        for t in tasks {
            let (p, n) = t.await.expect("task");
            posts.extend(p);
            promoted += n;
        }
    })
    .await;
    (posts, promoted)
}

fn assert_each_value_once(posts: Vec<i64>) {
    let total = (TASKS * INCREMENTS) as i64;
    assert_eq!(posts.len() as i64, total);
    let distinct: BTreeSet<i64> = posts.into_iter().collect();
    assert_eq!(
        distinct.len() as i64,
        total,
        "two increments saw the same value"
    );
    assert_eq!(distinct.first(), Some(&1));
    assert_eq!(distinct.last(), Some(&total));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_tasks_over_three_sessions_increment_exactly_1000_times() {
    let server = server().await;
    let clients = clients(&server.connect_string(), CLIENTS).await;
    let (posts, promoted) = hammer(&clients, |c| {
        DistributedAtomicLong::new(c, COUNTER, RetryNTimes::new(10_000, Duration::ZERO)).unwrap()
    })
    .await;
    assert_eq!(promoted, 0);
    assert_each_value_once(posts);
    let counter = DistributedAtomicLong::new(
        clients[0].clone(),
        COUNTER,
        RetryNTimes::new(0, Duration::ZERO),
    )
    .unwrap();
    assert_eq!(counter.get().await.unwrap().post_value, 1000);
    // Curator's encoding: 8 bytes big-endian.
    let (data, _) = clients[1].get_data(COUNTER).await.unwrap();
    assert_eq!(data, 1000i64.to_be_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn promoted_to_a_lock_no_increment_is_lost_either() {
    let server = server().await;
    let clients = clients(&server.connect_string(), CLIENTS).await;
    // One optimistic attempt, then the lock: under contention most updates are promoted. The
    // lock holder still races the other tasks' optimistic attempts (they take no lock, as in
    // Curator), so it gets retries of its own.
    let (posts, promoted) = hammer(&clients, |c| {
        DistributedAtomicLong::with_promotion(
            c,
            COUNTER,
            RetryNTimes::new(0, Duration::ZERO),
            PromotedToLock::new("/recipes/counters/lock")
                .retry_policy(RetryNTimes::new(1_000, Duration::ZERO)),
        )
        .unwrap()
    })
    .await;
    assert!(promoted > 0, "no update was promoted to the lock");
    assert_each_value_once(posts);
}

/// The write of an increment applies but its reply is lost: the increment is not applied
/// again (Curator's re-sent write meets BADVERSION and the increment is attempted anew on the
/// new value); the value read back cannot tell whose write it was, so the call fails. (A
/// write that never reached the server is attempted again: `shared_count.rs` tests that
/// path of the same write, which needs no read first.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_increment_whose_reply_is_lost_is_not_applied_twice() {
    // Each chunk is held for DELAY by the proxy: the read's request reaches the server at
    // 1 s, its reply the client at 2 s; the write reaches the server at 3 s (or later, behind
    // a ping), and its reply is held for another second: the connection is cut then.
    const DELAY: Duration = Duration::from_millis(1000);
    let (server, proxy) = server_behind_a_proxy().await;
    let observer = client(&server.connect_string()).await;
    let victim = client(&proxy.connect_string()).await;
    let policy = || RetryNTimes::new(3, Duration::from_millis(10));
    let counter = DistributedAtomicLong::new(victim.clone(), COUNTER, policy()).unwrap();
    assert!(counter.initialize(0).await.unwrap());
    let (_, _, written) = observer.get_data(COUNTER).watched().await.unwrap();

    proxy.set_mode(Mode::Delay(DELAY));
    let increment = tokio::spawn(async move { counter.increment().await });
    within("the write applies", written).await;
    proxy.cut();
    proxy.set_mode(Mode::Forward);
    let outcome = within("the increment", increment).await.unwrap();
    assert_eq!(outcome, Err(Error::Zk(ZkError::ConnectionLoss)));
    let after = DistributedAtomicLong::new(observer, COUNTER, policy())
        .unwrap()
        .get()
        .await
        .unwrap()
        .post_value;
    assert_eq!(after, 1, "applied once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atomic_long_operations_have_curators_semantics() {
    let server = server().await;
    let c = client(&server.connect_string()).await;
    let no_retry = || RetryNTimes::new(0, Duration::ZERO);
    let counter = DistributedAtomicLong::new(c.clone(), COUNTER, no_retry()).unwrap();

    // A missing node is 0, and compare-and-set never matches it.
    let got = counter.get().await.unwrap();
    assert!(got.succeeded);
    assert_eq!((got.pre_value, got.post_value), (0, 0));
    let cas = counter.compare_and_set(0, 5).await.unwrap();
    assert!(!cas.succeeded);
    assert!(c.exists(COUNTER).await.unwrap().is_none());

    assert!(counter.initialize(10).await.unwrap());
    assert!(!counter.initialize(99).await.unwrap());
    assert_eq!(counter.get().await.unwrap().post_value, 10);

    // compare_and_set: a wrong expectation fails and changes nothing; a right one swaps.
    let cas = counter.compare_and_set(11, 20).await.unwrap();
    assert!(!cas.succeeded);
    assert_eq!((cas.pre_value, cas.post_value), (10, 10));
    assert_eq!(counter.get().await.unwrap().post_value, 10);
    let cas = counter.compare_and_set(10, 20).await.unwrap();
    assert!(cas.succeeded);
    assert_eq!((cas.pre_value, cas.post_value), (10, 20));

    let r = counter.add(5).await.unwrap();
    assert_eq!((r.succeeded, r.pre_value, r.post_value), (true, 20, 25));
    let r = counter.subtract(7).await.unwrap();
    assert_eq!((r.pre_value, r.post_value), (25, 18));
    let r = counter.decrement().await.unwrap();
    assert_eq!((r.pre_value, r.post_value), (18, 17));
    let r = counter.try_set(-3).await.unwrap();
    assert_eq!((r.succeeded, r.pre_value, r.post_value), (true, 17, -3));
    counter.force_set(i64::MAX).await.unwrap();
    let r = counter.increment().await.unwrap();
    assert_eq!((r.pre_value, r.post_value), (i64::MAX, i64::MIN));

    // force_set creates a missing node (with container parents).
    let other = DistributedAtomicLong::new(c.clone(), "/recipes/counters/b/c", no_retry()).unwrap();
    other.force_set(42).await.unwrap();
    assert_eq!(other.get().await.unwrap().post_value, 42);

    // Data that is not 8 bytes is not a counter.
    c.set_data(COUNTER, vec![1, 2, 3]).await.unwrap();
    assert!(matches!(
        counter.increment().await,
        Err(Error::CorruptValue { len: 3, .. })
    ));
    c.set_data(COUNTER, Vec::new()).await.unwrap();
    assert_eq!(counter.increment().await.unwrap().post_value, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn atomic_integer_is_four_bytes_and_loses_no_increment() {
    let server = server().await;
    let clients = clients(&server.connect_string(), 2).await;
    let path = "/recipes/counters/int";
    let mut tasks = Vec::new();
    for t in 0..4 {
        let counter = DistributedAtomicInteger::new(
            clients[t % 2].clone(),
            path,
            RetryNTimes::new(10_000, Duration::ZERO),
        )
        .unwrap();
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                let r = counter.increment().await.expect("increment");
                assert!(r.succeeded && r.post_value == r.pre_value + 1, "{r:?}");
            }
        }));
    }
    within("all increments", async {
        for t in tasks {
            t.await.expect("task");
        }
    })
    .await;
    let c = &clients[0];
    // Curator's DistributedAtomicInteger layout: 4 bytes big-endian.
    assert_eq!(c.get_data(path).await.unwrap().0, 200i32.to_be_bytes());
    let counter =
        DistributedAtomicInteger::new(c.clone(), path, RetryNTimes::new(0, Duration::ZERO))
            .unwrap();
    counter.force_set(i32::MAX).await.unwrap();
    let r = counter.increment().await.unwrap();
    assert_eq!((r.pre_value, r.post_value), (i32::MAX, i32::MIN));
    assert!(
        counter
            .compare_and_set(i32::MIN, 7)
            .await
            .unwrap()
            .succeeded
    );
    // A long's 8 bytes are not an integer.
    c.set_data(path, 7i64.to_be_bytes().to_vec()).await.unwrap();
    assert!(matches!(
        counter.get().await,
        Err(Error::CorruptValue { len: 8, .. })
    ));
    assert!(matches!(
        counter.compare_and_set(7, 8).await,
        Err(Error::CorruptValue { len: 8, .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atomic_value_compares_and_sets_bytes() {
    let server = server().await;
    let c = client(&server.connect_string()).await;
    let path = "/recipes/values/epoch";
    let value =
        DistributedAtomicValue::new(c.clone(), path, RetryNTimes::new(3, Duration::ZERO)).unwrap();

    // Missing: empty, and compare-and-set never matches it (Curator's rule).
    assert_eq!(value.get().await.unwrap().post_value, b"");
    assert!(
        !value
            .compare_and_set(b"", b"a".to_vec())
            .await
            .unwrap()
            .succeeded
    );
    assert!(value.initialize(b"one".to_vec()).await.unwrap());
    assert!(!value.initialize(b"other".to_vec()).await.unwrap());

    let cas = value
        .compare_and_set(b"two", b"three".to_vec())
        .await
        .unwrap();
    assert!(!cas.succeeded);
    assert_eq!(
        (cas.pre_value.as_slice(), cas.post_value.as_slice()),
        (&b"one"[..], &b"one"[..])
    );
    let cas = value
        .compare_and_set(b"one", b"two".to_vec())
        .await
        .unwrap();
    assert!(cas.succeeded);
    assert_eq!(cas.post_value, b"two");
    let set = value.try_set(b"three".to_vec()).await.unwrap();
    assert_eq!(
        (set.succeeded, set.pre_value.as_slice()),
        (true, &b"two"[..])
    );
    value.force_set(b"four".to_vec()).await.unwrap();
    assert_eq!(c.get_data(path).await.unwrap().0, b"four");
}
