//! The counting, barrier, queue and membership recipes against the test target (the embedded
//! server, or Apache ZooKeeper with `ZK_TEST_CONNECT`, as the client suites; scripts/interop.sh
//! runs them against Apache 3.5 to 3.9): a `Semaphore` bounds its holders and frees an expired
//! holder's lease, a `ReadWriteLock` shares reads and excludes writes, a
//! `DistributedAtomicLong` counts every increment of competing sessions, a `DoubleBarrier`
//! lets its members in and out together, a `SimpleDistributedQueue` hands each item to one
//! taker in order, a locked `DistributedQueue` completes every item once and retries a failed
//! one, a `SharedCount` refuses a stale versioned set, and a `GroupMember` comes
//! back on its client's new session after an expiry.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::PATIENCE;
use zk::client::{Client, RetryNTimes};
use zk::recipes::queue::Utf8Serializer;
use zk::recipes::{
    DistributedAtomicLong, DistributedQueue, DoubleBarrier, GroupMember, LockState, ReadWriteLock,
    Semaphore, SharedCount, SimpleDistributedQueue,
};

macro_rules! env_or_skip {
    () => {
        match support::env().await {
            Some(env) => env,
            None => return,
        }
    };
}

/// Long enough for a contender to see it cannot get in; short enough to keep the tests fast.
const REFUSED_WITHIN: Duration = Duration::from_millis(300);

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

async fn close_all(clients: impl IntoIterator<Item = Client>) {
    for c in clients {
        c.close().await.unwrap();
    }
}

#[tokio::test]
async fn a_semaphore_bounds_its_holders_and_frees_an_expired_holders_lease() {
    let env = env_or_skip!();
    let connect = env.connect_string();
    let (c1, c2, c3) = (
        support::connected_client(connect).await,
        support::connected_client(connect).await,
        support::connected_client(connect).await,
    );
    let root = support::unique_root();
    let path = format!("{root}/semaphore");
    let (s1, s2, s3) = (
        Semaphore::new(c1.clone(), &path, 2).unwrap(),
        Semaphore::new(c2.clone(), &path, 2).unwrap(),
        Semaphore::new(c3.clone(), &path, 2).unwrap(),
    );

    let l1 = s1.acquire(1).await.unwrap();
    let l2 = s2.acquire(1).await.unwrap();
    assert_eq!((l1.len(), l2.len()), (1, 1));
    assert!(s3
        .acquire_timeout(1, REFUSED_WITHIN)
        .await
        .unwrap()
        .is_empty());
    // The refused attempt took its node away: only the two holders' are left.
    assert_eq!(s1.participant_nodes().await.unwrap().len(), 2);

    let waiting = tokio::spawn(async move { s3.acquire(1).await });
    within("the third contender to queue", async {
        while s1.participant_nodes().await.unwrap().len() < 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // The second holder's session expires: its lease goes with its node, the waiter gets in
    // and the expired lease reports Lost.
    support::expire_session(connect, c2.session_id(), &c2.session_password()).await;
    let l3 = within("a lease freed by the expiry", waiting)
        .await
        .expect("task")
        .unwrap();
    assert_eq!(l3.len(), 1);
    within("the expired holder's lease to be lost", l2[0].lost()).await;
    assert_eq!(l2[0].state(), LockState::Lost);
    assert_eq!(l1[0].state(), LockState::Held);

    drop(l2);
    for lease in l1.into_iter().chain(l3) {
        lease.release().await.unwrap();
    }
    support::remove_tree(&c1, &root).await;
    close_all([c1, c2, c3]).await;
}

#[tokio::test]
async fn a_read_write_lock_shares_reads_and_excludes_writes() {
    let env = env_or_skip!();
    let connect = env.connect_string();
    let (c1, c2, c3) = (
        support::connected_client(connect).await,
        support::connected_client(connect).await,
        support::connected_client(connect).await,
    );
    let root = support::unique_root();
    let path = format!("{root}/rw");
    let (rw1, rw2, rw3) = (
        ReadWriteLock::new(c1.clone(), &path).unwrap(),
        ReadWriteLock::new(c2.clone(), &path).unwrap(),
        ReadWriteLock::new(c3.clone(), &path).unwrap(),
    );
    let refused = |lock: Option<zk::recipes::MutexGuard>| {
        assert!(lock.is_none(), "got a lock that should be refused");
    };

    let r1 = rw1.read_lock().acquire().await.unwrap();
    let r2 = within("a second reader", rw2.read_lock().acquire())
        .await
        .unwrap();
    refused(
        rw3.write_lock()
            .acquire_timeout(REFUSED_WITHIN)
            .await
            .unwrap(),
    );
    r1.release().await.unwrap();
    r2.release().await.unwrap();

    let w = within(
        "the writer once the readers left",
        rw3.write_lock().acquire(),
    )
    .await
    .unwrap();
    refused(
        rw1.read_lock()
            .acquire_timeout(REFUSED_WITHIN)
            .await
            .unwrap(),
    );
    refused(
        rw2.write_lock()
            .acquire_timeout(REFUSED_WITHIN)
            .await
            .unwrap(),
    );
    w.release().await.unwrap();
    let r = within("a reader once the writer left", rw1.read_lock().acquire())
        .await
        .unwrap();
    r.release().await.unwrap();
    // The refused attempts left no nodes behind.
    assert!(rw1.participant_nodes().await.unwrap().is_empty());

    support::remove_tree(&c1, &root).await;
    close_all([c1, c2, c3]).await;
}

#[tokio::test]
async fn an_atomic_long_counts_every_increment_of_competing_sessions() {
    const SESSIONS: usize = 3;
    const INCREMENTS: usize = 20;
    let env = env_or_skip!();
    let connect = env.connect_string();
    let root = support::unique_root();
    let path = format!("{root}/counter");
    let mut clients = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..SESSIONS {
        let client = support::connected_client(connect).await;
        // Every attempt may meet a competitor's write: allow plenty of optimistic retries.
        let counter = DistributedAtomicLong::new(
            client.clone(),
            &path,
            RetryNTimes::new(1000, Duration::from_millis(1)),
        )
        .unwrap();
        clients.push(client);
        tasks.push(tokio::spawn(async move {
            for _ in 0..INCREMENTS {
                let v = counter.increment().await.unwrap();
                assert!(v.succeeded, "an increment gave up: {v:?}");
                assert_eq!(v.post_value, v.pre_value + 1);
            }
        }));
    }
    within("every increment", async {
        for t in tasks {
            t.await.expect("task");
        }
    })
    .await;
    let reader = DistributedAtomicLong::new(
        clients[0].clone(),
        &path,
        RetryNTimes::new(0, Duration::ZERO),
    )
    .unwrap();
    assert_eq!(
        reader.get().await.unwrap().post_value,
        (SESSIONS * INCREMENTS) as i64
    );

    support::remove_tree(&clients[0], &root).await;
    close_all(clients).await;
}

#[tokio::test]
async fn a_double_barrier_lets_its_members_in_and_out_together() {
    const MEMBERS: usize = 3;
    let env = env_or_skip!();
    let connect = env.connect_string();
    let root = support::unique_root();
    let path = format!("{root}/barrier");
    let mut clients = Vec::new();
    let mut barriers = Vec::new();
    for _ in 0..MEMBERS {
        let client = support::connected_client(connect).await;
        barriers.push(Arc::new(
            DoubleBarrier::new(client.clone(), &path, MEMBERS).unwrap(),
        ));
        clients.push(client);
    }

    // Short of the quorum nobody gets in.
    assert!(!barriers[0].enter_timeout(REFUSED_WITHIN).await.unwrap());
    let entering: Vec<_> = barriers[..MEMBERS - 1]
        .iter()
        .map(|b| {
            let b = b.clone();
            tokio::spawn(async move { b.enter().await })
        })
        .collect();
    tokio::time::sleep(REFUSED_WITHIN).await;
    assert!(
        entering.iter().all(|t| !t.is_finished()),
        "a member entered before the last one came"
    );
    within("the last member to enter", barriers[MEMBERS - 1].enter())
        .await
        .unwrap();
    within("everyone to enter", async {
        for t in entering {
            t.await.expect("task").unwrap();
        }
    })
    .await;

    // Nobody leaves before the last member does.
    let leaving: Vec<_> = barriers[1..]
        .iter()
        .map(|b| {
            let b = b.clone();
            tokio::spawn(async move { b.leave().await })
        })
        .collect();
    tokio::time::sleep(REFUSED_WITHIN).await;
    assert!(
        leaving.iter().all(|t| !t.is_finished()),
        "a member left while another was still in"
    );
    within("the first member to leave", barriers[0].leave())
        .await
        .unwrap();
    within("everyone to leave", async {
        for t in leaving {
            t.await.expect("task").unwrap();
        }
    })
    .await;

    support::remove_tree(&clients[0], &root).await;
    close_all(clients).await;
}

#[tokio::test]
async fn a_simple_queue_hands_each_item_to_one_taker_in_order() {
    const ITEMS: usize = 30;
    let env = env_or_skip!();
    let connect = env.connect_string();
    let (producer, t1, t2) = (
        support::connected_client(connect).await,
        support::connected_client(connect).await,
        support::connected_client(connect).await,
    );
    let root = support::unique_root();
    let path = format!("{root}/queue");
    let queue = SimpleDistributedQueue::new(producer.clone(), &path).unwrap();
    assert_eq!(queue.poll().await.unwrap(), None);

    // A taker waits for the first offer.
    let first_taker = SimpleDistributedQueue::new(t1.clone(), &path).unwrap();
    let waiting = tokio::spawn(async move { first_taker.take().await });
    tokio::time::sleep(REFUSED_WITHIN).await;
    assert!(!waiting.is_finished(), "took from an empty queue");
    queue.offer("first").await.unwrap();
    assert_eq!(
        within("the waiting taker", waiting)
            .await
            .expect("task")
            .unwrap(),
        b"first"
    );

    // Two takers drain the queue together: each item once, each taker's items in order.
    for i in 0..ITEMS {
        queue.offer(format!("{i:03}")).await.unwrap();
    }
    let takers: Vec<_> = [t1.clone(), t2.clone()]
        .into_iter()
        .map(|c| {
            let q = SimpleDistributedQueue::new(c, &path).unwrap();
            tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(item) = q.poll().await.unwrap() {
                    got.push(String::from_utf8(item).unwrap());
                }
                got
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in takers {
        let got = within("a taker to drain", t).await.expect("task");
        assert!(got.windows(2).all(|w| w[0] < w[1]), "out of order: {got:?}");
        all.extend(got);
    }
    all.sort();
    let offered: Vec<_> = (0..ITEMS).map(|i| format!("{i:03}")).collect();
    assert_eq!(all, offered, "every item taken exactly once");

    support::remove_tree(&producer, &root).await;
    close_all([producer, t1, t2]).await;
}

#[tokio::test]
async fn a_locked_distributed_queue_completes_every_item_once_and_retries_a_failed_one() {
    const ITEMS: usize = 20;
    let env = env_or_skip!();
    let connect = env.connect_string();
    let (producer_client, consumer_client) = (
        support::connected_client(connect).await,
        support::connected_client(connect).await,
    );
    let root = support::unique_root();
    let (path, locks) = (format!("{root}/queue"), format!("{root}/locks"));
    let producer = DistributedQueue::builder(producer_client.clone(), &path, Utf8Serializer)
        .build_queue()
        .unwrap();
    producer.start().await.unwrap();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let failed_once = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let consumer = DistributedQueue::builder(consumer_client.clone(), &path, Utf8Serializer)
        .lock_path(&locks)
        .consumer(move |item: String| {
            let (done_tx, failed_once) = (done_tx.clone(), failed_once.clone());
            async move {
                if item == "item-05" && !failed_once.swap(true, std::sync::atomic::Ordering::SeqCst)
                {
                    return Err("the first attempt at item-05 fails");
                }
                let _ = done_tx.send(item);
                Ok(())
            }
        })
        .build_queue()
        .unwrap();
    for i in 0..ITEMS {
        producer.put(format!("item-{i:02}")).await.unwrap();
    }
    // Started once every item is in, so the requeued one has a known place: the end.
    consumer.start().await.unwrap();
    let mut done = Vec::new();
    for _ in 0..ITEMS {
        done.push(
            within("a consumed item", done_rx.recv())
                .await
                .expect("item"),
        );
    }
    let mut expected: Vec<_> = (0..ITEMS).map(|i| format!("item-{i:02}")).collect();
    // The failed item was requeued behind the rest.
    expected.retain(|i| i != "item-05");
    expected.push("item-05".to_owned());
    assert_eq!(done, expected);
    within("the queue and its locks to empty", async {
        while !producer.item_names().await.unwrap().is_empty()
            || !consumer_client
                .get_children(&locks)
                .await
                .unwrap()
                .is_empty()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    tokio::time::sleep(REFUSED_WITHIN).await;
    assert!(done_rx.try_recv().is_err(), "an item was consumed twice");

    consumer.close().await;
    producer.close().await;
    support::remove_tree(&producer_client, &root).await;
    close_all([producer_client, consumer_client]).await;
}

#[tokio::test]
async fn a_shared_count_refuses_a_stale_versioned_set_and_shows_the_winner() {
    let env = env_or_skip!();
    let connect = env.connect_string();
    let (c1, c2) = (
        support::connected_client(connect).await,
        support::connected_client(connect).await,
    );
    let root = support::unique_root();
    let path = format!("{root}/count");
    let (a, b) = (
        SharedCount::new(c1.clone(), &path, 7).unwrap(),
        SharedCount::new(c2.clone(), &path, 100).unwrap(),
    );
    a.start().await.unwrap();
    b.start().await.unwrap();
    // The first to start seeded the node; the second found it.
    assert_eq!((a.value(), b.value()), (7, 7));

    let seen = b.versioned_value();
    assert!(a.try_set_value(8, seen.version).await.unwrap());
    assert!(
        !b.try_set_value(9, seen.version).await.unwrap(),
        "a set on a stale version went through"
    );
    let mut values = b.values();
    within("the other participant to see the winning value", async {
        while values.borrow_and_update().value != 8 {
            values.changed().await.unwrap();
        }
    })
    .await;
    assert!(b.versioned_value().version > seen.version);

    a.close().await;
    b.close().await;
    support::remove_tree(&c1, &root).await;
    close_all([c1, c2]).await;
}

#[tokio::test]
async fn a_group_member_returns_on_its_clients_new_session_after_an_expiry() {
    let env = env_or_skip!();
    let connect = env.connect_string();
    let (c1, c2) = (
        support::connected_client(connect).await,
        support::connected_client(connect).await,
    );
    let root = support::unique_root();
    let path = format!("{root}/group");
    let one = GroupMember::new(c1.clone(), &path, "one", b"1".to_vec()).unwrap();
    let two = GroupMember::new(c2.clone(), &path, "two", b"2".to_vec()).unwrap();
    for member in [&one, &two] {
        member.start().unwrap();
        assert!(member.wait_joined(PATIENCE).await.unwrap());
    }
    let both = |m: &GroupMember| m.current_members().len() == 2;
    within("each member to see the other", async {
        while !(both(&one) && both(&two)) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(
        one.current_members().get("two").map(Vec::as_slice),
        Some(&b"2"[..])
    );

    // Member two's session expires: its node goes, then comes back on the new session.
    let old_session = c2.session_id();
    let node = format!("{path}/two");
    support::expire_session(connect, old_session, &c2.session_password()).await;
    within("member two's node on a new session", async {
        loop {
            if let Some(stat) = c1.exists(&node).await.unwrap() {
                if stat.ephemeral_owner != old_session {
                    assert_eq!(stat.ephemeral_owner, c2.session_id());
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    two.close().await.unwrap();
    within("member one to see member two leave", async {
        while one.current_members().contains_key("two") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    one.close().await.unwrap();
    support::remove_tree(&c1, &root).await;
    close_all([c1, c2]).await;
}
