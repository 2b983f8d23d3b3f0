//! The queues against the embedded server: SimpleDistributedQueue semantics and concurrent
//! takers; DistributedQueue with many producers and three locked consumers, one of which loses
//! its session mid-item (every item completed exactly once, FIFO per producer); strict FIFO
//! with one consumer; requeue and delete on consumer failure; at-most-once without a lock
//! path; bounded puts; priority, delay and id queues; Curator's node layout.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::*;
use tokio::sync::{mpsc, watch};
use zk_client::{Client, CreateMode};
use zk_recipes::queue::{BytesSerializer, Utf8Serializer};
use zk_recipes::{DistributedQueue, Error, ErrorMode, SimpleDistributedQueue};

/// The "10 producers × 1000 items" runs in 20–30 s in a debug build on two shared
/// cores (four round trips per item and consumer, plus collisions), too slow for this file's
/// budget: the default is 10 × 100. `ZK_QUEUE_TEST_ITEMS=1000` runs the full size.
const PRODUCERS: usize = 10;
const DEFAULT_ITEMS_PER_PRODUCER: usize = 100;

fn items_per_producer() -> usize {
    std::env::var("ZK_QUEUE_TEST_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_ITEMS_PER_PRODUCER)
}
/// Consumers of the big test; consumer 0 loses its session on its `VICTIM_AFTER`-th item.
const CONSUMERS: usize = 3;
const VICTIM_AFTER: usize = 20;

/// The sequence number at the end of a node path.
fn seq_of(path: &str) -> u64 {
    path.get(path.len() - 10..)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no sequence in {path}"))
}

fn name_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap()
}

/// Curator's item envelope around one item.
fn envelope(item: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 1, 0, 1, 1];
    out.extend_from_slice(&(item.len() as i32).to_be_bytes());
    out.extend_from_slice(item);
    out.push(2);
    out
}

type Lock<T> = Arc<StdMutex<T>>;

fn shared<T>(v: T) -> Lock<T> {
    Arc::new(StdMutex::new(v))
}

// ---------------------------------------------------------------- SimpleDistributedQueue

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_queue_offer_poll_peek_element_take() {
    let server = server().await;
    let a = client(&server.connect_string()).await;
    let b = client(&server.connect_string()).await;
    let qa = SimpleDistributedQueue::new(a.clone(), "/simple/q").unwrap();
    let qb = SimpleDistributedQueue::new(b.clone(), "/simple/q").unwrap();

    // Empty (the path does not even exist yet).
    assert_eq!(qa.peek().await.unwrap(), None);
    assert_eq!(qa.poll().await.unwrap(), None);
    assert_eq!(qa.element().await, Err(Error::QueueEmpty));
    assert_eq!(qa.remove().await, Err(Error::QueueEmpty));
    let started = tokio::time::Instant::now();
    assert_eq!(
        qa.take_timeout(Duration::from_millis(200)).await.unwrap(),
        None
    );
    assert!(started.elapsed() >= Duration::from_millis(200));

    // Offers come out in order; peek and element leave the head in place.
    let first = qa.offer(b"one".to_vec()).await.unwrap();
    assert!(name_of(&first).starts_with("qn-"), "{first}");
    qa.offer(b"two".to_vec()).await.unwrap();
    qa.offer(b"three".to_vec()).await.unwrap();
    assert_eq!(qb.peek().await.unwrap().as_deref(), Some(&b"one"[..]));
    assert_eq!(qb.element().await.unwrap(), b"one");
    assert_eq!(qb.poll().await.unwrap().as_deref(), Some(&b"one"[..]));
    assert_eq!(qb.remove().await.unwrap(), b"two");
    assert_eq!(qa.take().await.unwrap(), b"three");
    assert_eq!(qa.poll().await.unwrap(), None);
    // Foreign children are ignored.
    a.create("/simple/q/foreign").await.unwrap();
    assert_eq!(qa.peek().await.unwrap(), None);

    // take waits for an offer made by another client.
    let taker = tokio::spawn(async move { qa.take().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!taker.is_finished(), "take returned from an empty queue");
    qb.offer(b"late".to_vec()).await.unwrap();
    let got = within("take gets the offer", taker).await.unwrap().unwrap();
    assert_eq!(got, b"late");
    assert_eq!(qb.poll().await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simple_queue_concurrent_takers_never_get_the_same_item() {
    const ITEMS: usize = 300;
    let server = server().await;
    let producer = client(&server.connect_string()).await;
    let taken = Arc::new(AtomicUsize::new(0));
    let got = shared(Vec::<(usize, Vec<u8>)>::new());
    let mut takers = Vec::new();
    for t in 0..2 {
        let c = client(&server.connect_string()).await;
        let q = SimpleDistributedQueue::new(c, "/simple/concurrent").unwrap();
        let (taken, got) = (taken.clone(), got.clone());
        takers.push(tokio::spawn(async move {
            while taken.load(Ordering::SeqCst) < ITEMS {
                if let Some(item) = q.take_timeout(Duration::from_millis(50)).await.unwrap() {
                    taken.fetch_add(1, Ordering::SeqCst);
                    got.lock().unwrap().push((t, item));
                }
            }
        }));
    }
    let q = SimpleDistributedQueue::new(producer, "/simple/concurrent").unwrap();
    for i in 0..ITEMS {
        q.offer(i.to_string().into_bytes()).await.unwrap();
    }
    within("all items taken", async {
        for t in takers {
            t.await.unwrap();
        }
    })
    .await;
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), ITEMS, "an item was taken twice or lost");
    let mut counts = HashMap::new();
    for (_, item) in got.iter() {
        *counts.entry(item.clone()).or_insert(0) += 1;
    }
    assert_eq!(counts.len(), ITEMS);
    assert!(counts.values().all(|&n| n == 1));
    assert!(
        got.iter().any(|(t, _)| *t == 0) && got.iter().any(|(t, _)| *t == 1),
        "both takers should have taken items"
    );
    // Each taker got its items in queue order.
    for t in 0..2 {
        let mine: Vec<usize> = got
            .iter()
            .filter(|(who, _)| *who == t)
            .map(|(_, i)| String::from_utf8_lossy(i).parse().unwrap())
            .collect();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "taker {t}: {mine:?}");
    }
    assert_eq!(q.poll().await.unwrap(), None);
}

// ---------------------------------------------------------------- DistributedQueue

/// What the consumers of the big test record.
#[derive(Default)]
struct Ledger {
    /// Every start of processing, per item.
    started: HashMap<String, usize>,
    /// Successful completions in order: (consumer, producer, index).
    completed: Vec<(usize, usize, usize)>,
}

fn parse_item(item: &str) -> (usize, usize) {
    let (p, i) = item.split_once(':').unwrap();
    (p.parse().unwrap(), i.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn producers_and_locked_consumers_one_dies_mid_item_every_item_completed_once() {
    let items_per_producer = items_per_producer();
    let total = PRODUCERS * items_per_producer;
    const QUEUE: &str = "/dq/work";
    const LOCKS: &str = "/dq/locks";
    let server = server().await;
    let ledger = shared(Ledger::default());
    let (completed_tx, mut completed_rx) = watch::channel(0usize);
    let completed_tx = Arc::new(completed_tx);
    // The victim: the item consumer 0 holds when its session is expired.
    let (victim_tx, mut victim_rx) = watch::channel(None::<String>);
    let victim_tx = Arc::new(victim_tx);
    // Set by the test once another consumer started the victim: consumer 0 may return.
    let (release_tx, release_rx) = watch::channel(false);
    // Consumer 0's items started (to know it moved on past the victim).
    let (c0_items_tx, c0_items_rx) = watch::channel(0usize);
    let c0_items_tx = Arc::new(c0_items_tx);

    let mut consumer_clients = Vec::new();
    let mut consumers = Vec::new();
    for id in 0..CONSUMERS {
        let c = client(&server.connect_string()).await;
        consumer_clients.push(c.clone());
        let ledger = ledger.clone();
        let completed_tx = completed_tx.clone();
        let victim_tx = victim_tx.clone();
        let release_rx = release_rx.clone();
        let c0_items_tx = c0_items_tx.clone();
        let c0_items_rx = c0_items_rx.clone();
        let mine = Arc::new(AtomicUsize::new(0));
        let queue = DistributedQueue::builder(c, QUEUE, Utf8Serializer)
            .lock_path(LOCKS)
            .consumer(move |item: String| {
                let ledger = ledger.clone();
                let completed_tx = completed_tx.clone();
                let victim_tx = victim_tx.clone();
                let mut release_rx = release_rx.clone();
                let c0_items_tx = c0_items_tx.clone();
                let mut c0_items_rx = c0_items_rx.clone();
                let n = mine.fetch_add(1, Ordering::SeqCst);
                async move {
                    *ledger
                        .lock()
                        .unwrap()
                        .started
                        .entry(item.clone())
                        .or_default() += 1;
                    if id == 0 {
                        c0_items_tx.send_modify(|c| *c += 1);
                        if n == VICTIM_AFTER {
                            // Hold the item until our session is gone and another consumer
                            // has the item, then fail: the queue must not requeue or delete
                            // an item whose lock it lost.
                            victim_tx.send_replace(Some(item.clone()));
                            let _ =
                                tokio::time::timeout(PATIENCE, release_rx.wait_for(|r| *r)).await;
                            return Err("lost my session mid-item".into());
                        }
                    } else if victim_tx.borrow().as_deref() == Some(item.as_str()) {
                        // The victim's new consumer finishes only after consumer 0 dealt with
                        // its stale attempt (it moved on to another item).
                        let held_at = *c0_items_rx.borrow();
                        let _ = tokio::time::timeout(
                            Duration::from_secs(3),
                            c0_items_rx.wait_for(|c| *c > held_at),
                        )
                        .await;
                    }
                    let (p, i) = parse_item(&item);
                    ledger.lock().unwrap().completed.push((id, p, i));
                    completed_tx.send_modify(|c| *c += 1);
                    Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
                }
            })
            .build_queue()
            .unwrap();
        queue.start().await.unwrap();
        consumers.push(queue);
    }

    let started = std::time::Instant::now();
    let producer_clients = [
        client(&server.connect_string()).await,
        client(&server.connect_string()).await,
    ];
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let c = producer_clients[p % 2].clone();
        producers.push(tokio::spawn(async move {
            let q = DistributedQueue::builder(c, QUEUE, Utf8Serializer)
                .build_queue()
                .unwrap();
            q.start().await.unwrap();
            for i in 0..items_per_producer {
                q.put(format!("{p}:{i}")).await.unwrap();
            }
            q.close().await;
        }));
    }

    // Consumer 0 holds its victim: expire its session.
    let victim = within(
        "consumer 0 holds an item",
        victim_rx.wait_for(|v| v.is_some()),
    )
    .await
    .unwrap()
    .clone()
    .unwrap();
    let old_session = consumer_clients[0].session_id();
    assert!(server.expire_session(old_session).await);
    // Another consumer takes the item once the lock vanished with the session.
    within("another consumer starts the victim", async {
        loop {
            if ledger.lock().unwrap().started.get(&victim).copied() == Some(2) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    release_tx.send_replace(true);

    within("producers done", async {
        for p in producers {
            p.await.unwrap();
        }
    })
    .await;
    within(
        "every item completed",
        completed_rx.wait_for(|c| *c >= total),
    )
    .await
    .unwrap();
    let elapsed = started.elapsed();
    // Nothing more arrives: no item is completed twice later on.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for q in &consumers {
        q.close().await;
    }
    println!("{total} items through {CONSUMERS} locked consumers in {elapsed:?}");

    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    let mut counts: HashMap<(usize, usize), usize> = HashMap::new();
    for (_, p, i) in &ledger.completed {
        *counts.entry((*p, *i)).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "completed twice: {twice:?} (victim {victim})"
    );
    assert_eq!(ledger.completed.len(), total, "completions");
    for p in 0..PRODUCERS {
        for i in 0..items_per_producer {
            assert_eq!(counts.get(&(p, i)), Some(&1), "item {p}:{i}");
        }
    }
    // The victim: started by consumer 0 and by exactly one other, completed by the other.
    assert_eq!(ledger.started.get(&victim), Some(&2));
    let (vp, vi) = parse_item(&victim);
    let by: Vec<usize> = ledger
        .completed
        .iter()
        .filter(|(_, p, i)| (*p, *i) == (vp, vi))
        .map(|(c, _, _)| *c)
        .collect();
    assert_eq!(by.len(), 1);
    assert_ne!(by[0], 0, "the dead consumer cannot complete the victim");
    // FIFO per producer as seen by each consumer (the victim aside: it was taken over out
    // of order by design).
    for c in 0..CONSUMERS {
        for p in 0..PRODUCERS {
            let seen: Vec<usize> = ledger
                .completed
                .iter()
                .filter(|(who, pp, i)| *who == c && *pp == p && (*pp, *i) != (vp, vi))
                .map(|(_, _, i)| *i)
                .collect();
            assert!(
                seen.windows(2).all(|w| w[0] < w[1]),
                "consumer {c}, producer {p}: {seen:?}"
            );
        }
    }
    // Every consumer worked; consumer 0 went on with a new session after losing the old one.
    for c in 0..CONSUMERS {
        assert!(
            ledger.completed.iter().any(|(who, _, _)| *who == c),
            "consumer {c} idle"
        );
    }
    assert_ne!(consumer_clients[0].session_id(), old_session);
    // The queue and the lock path are empty.
    let left = consumer_clients[1].get_children(QUEUE).await.unwrap();
    assert!(left.is_empty(), "{} items left", left.len());
    let locks = consumer_clients[1].get_children(LOCKS).await.unwrap();
    assert!(locks.is_empty(), "lock nodes left: {locks:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_consumer_takes_items_in_strict_fifo_order() {
    const PRODUCERS: usize = 4;
    const ITEMS: usize = 50;
    let server = server().await;
    let c = client(&server.connect_string()).await;
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let consumer = DistributedQueue::builder(c.clone(), "/fifo/q", Utf8Serializer)
        .consumer(move |item: String| {
            let tx = tx.clone();
            async move { tx.send(item) }
        })
        .build_queue()
        .unwrap();
    consumer.start().await.unwrap();
    let seqs = shared(HashMap::<String, u64>::new());
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let pc = client(&server.connect_string()).await;
        let seqs = seqs.clone();
        producers.push(tokio::spawn(async move {
            let q = DistributedQueue::builder(pc, "/fifo/q", Utf8Serializer)
                .build_queue()
                .unwrap();
            q.start().await.unwrap();
            for i in 0..ITEMS {
                let item = format!("{p}:{i}");
                let path = q.put(item.clone()).await.unwrap();
                assert!(name_of(&path).starts_with("queue-"), "{path}");
                seqs.lock().unwrap().insert(item, seq_of(&path));
            }
        }));
    }
    for p in producers {
        within("producer", p).await.unwrap();
    }
    let mut order = Vec::new();
    while order.len() < PRODUCERS * ITEMS {
        order.push(within("an item", rx.recv()).await.unwrap());
    }
    let seqs = seqs.lock().unwrap().clone();
    let consumed: Vec<u64> = order.iter().map(|i| seqs[i]).collect();
    assert!(
        consumed.windows(2).all(|w| w[0] < w[1]),
        "not in queue order: {consumed:?}"
    );
    consumer.close().await;
}

/// Every attempt at an item, and every success.
type Attempts = (Lock<Vec<String>>, Lock<Vec<String>>);

/// A consumer that fails on its first attempt at every item in `fail_once` (by panicking for
/// items starting with "panic").
fn flaky_consumer(
    fail_once: &'static [&'static str],
) -> (
    impl Fn(String) -> futures::future::BoxFuture<'static, Result<(), String>> + Send + Sync + 'static,
    Attempts,
) {
    let attempts = shared(Vec::new());
    let done = shared(Vec::new());
    let (a, d) = (attempts.clone(), done.clone());
    let f = move |item: String| -> futures::future::BoxFuture<'static, Result<(), String>> {
        let (a, d) = (a.clone(), d.clone());
        Box::pin(async move {
            let first = {
                let mut a = a.lock().unwrap();
                let first = !a.contains(&item);
                a.push(item.clone());
                first
            };
            if first && fail_once.contains(&item.as_str()) {
                if item.starts_with("panic") {
                    panic!("consumer panics on {item}");
                }
                return Err(format!("failing on {item}"));
            }
            d.lock().unwrap().push(item);
            Ok(())
        })
    };
    (f, (attempts, done))
}

async fn wait_len(v: &Lock<Vec<String>>, n: usize) {
    within(&format!("{n} entries"), async {
        while v.lock().unwrap().len() < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_items_are_requeued_or_deleted_under_a_lock_and_lost_without() {
    let server = server().await;
    let c = client(&server.connect_string()).await;

    // REQUEUE (the default): the failed item comes back (at the end); for a multi-item node
    // only the failed item and those after it do. Panics count as failures.
    let (f, (attempts, done)) = flaky_consumer(&["b", "x2", "panic"]);
    let q = DistributedQueue::builder(c.clone(), "/fail/requeue", Utf8Serializer)
        .lock_path("/fail/requeue-locks")
        .consumer(f)
        .build_queue()
        .unwrap();
    q.start().await.unwrap();
    for item in ["a", "b", "c", "panic"] {
        q.put(item.to_owned()).await.unwrap();
    }
    q.put_multi(["x1", "x2", "x3"].map(str::to_owned))
        .await
        .unwrap();
    wait_len(&done, 7).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut done_sorted = done.lock().unwrap().clone();
    done_sorted.sort();
    assert_eq!(done_sorted, ["a", "b", "c", "panic", "x1", "x2", "x3"]);
    let attempts = attempts.lock().unwrap().clone();
    let count = |s: &str| attempts.iter().filter(|a| *a == s).count();
    assert_eq!(
        (
            count("a"),
            count("b"),
            count("panic"),
            count("x1"),
            count("x2"),
            count("x3")
        ),
        (1, 2, 2, 1, 2, 1)
    );
    // The failed item went to the back: "c" was done before "b".
    let order = done.lock().unwrap().clone();
    let pos = |s: &str| order.iter().position(|o| o == s).unwrap();
    assert!(pos("c") < pos("b"), "{order:?}");
    assert!(q.item_names().await.unwrap().is_empty());
    assert!(c
        .get_children("/fail/requeue-locks")
        .await
        .unwrap()
        .is_empty());
    q.close().await;

    // DELETE: the failed item is dropped.
    let (f, (attempts, done)) = flaky_consumer(&["b"]);
    let q = DistributedQueue::builder(c.clone(), "/fail/delete", Utf8Serializer)
        .lock_path("/fail/delete-locks")
        .error_mode(ErrorMode::Delete)
        .consumer(f)
        .build_queue()
        .unwrap();
    q.start().await.unwrap();
    for item in ["a", "b", "c"] {
        q.put(item.to_owned()).await.unwrap();
    }
    wait_len(&attempts, 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(*attempts.lock().unwrap(), ["a", "b", "c"]);
    assert_eq!(*done.lock().unwrap(), ["a", "c"]);
    assert!(q.item_names().await.unwrap().is_empty());
    q.close().await;

    // No lock path: the item is removed before it is processed, so a failure loses it.
    let (f, (attempts, done)) = flaky_consumer(&["b"]);
    let q = DistributedQueue::builder(c.clone(), "/fail/nolock", Utf8Serializer)
        .consumer(f)
        .build_queue()
        .unwrap();
    q.start().await.unwrap();
    for item in ["a", "b", "c"] {
        q.put(item.to_owned()).await.unwrap();
    }
    wait_len(&attempts, 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(*attempts.lock().unwrap(), ["a", "b", "c"]);
    assert_eq!(*done.lock().unwrap(), ["a", "c"]);
    assert!(q.item_names().await.unwrap().is_empty());
    q.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_is_locked_while_processed_and_released_when_its_consumer_dies() {
    let server = server().await;
    let a = client(&server.connect_string()).await;
    let b = client(&server.connect_string()).await;
    let (held_tx, mut held_rx) = watch::channel(false);
    let qa = DistributedQueue::builder(a.clone(), "/die/q", Utf8Serializer)
        .lock_path("/die/locks")
        .consumer(move |_item: String| {
            held_tx.send_replace(true);
            // Never finishes.
            std::future::pending::<Result<(), std::io::Error>>()
        })
        .build_queue()
        .unwrap();
    qa.start().await.unwrap();
    let path = qa.put("job".to_owned()).await.unwrap();
    within("a holds the job", held_rx.wait_for(|h| *h))
        .await
        .unwrap();
    // The lock node: <lockPath>/<item name>, ephemeral, owned by a's session.
    let lock_path = format!("/die/locks/{}", name_of(&path));
    let stat = b.exists(&lock_path).await.unwrap().expect("the lock node");
    assert_eq!(stat.ephemeral_owner, a.session_id());

    // b's consumer waits while a holds the item...
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let qb = DistributedQueue::builder(b.clone(), "/die/q", Utf8Serializer)
        .lock_path("/die/locks")
        .consumer(move |item: String| {
            let tx = tx.clone();
            async move { tx.send(item) }
        })
        .build_queue()
        .unwrap();
    qb.start().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rx.recv())
            .await
            .is_err(),
        "b took an item a holds"
    );
    // ...and gets it once a's process dies (its client is closed: the session and the lock
    // node end, while a's consumer is still stuck on the item).
    a.close().await.unwrap();
    assert_eq!(within("b gets the job", rx.recv()).await.unwrap(), "job");
    wait_children(&b, "/die/q", |c| c.is_empty()).await;
    wait_children(&b, "/die/locks", |c| c.is_empty()).await;
    qb.close().await;
    drop(qa);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_puts_wait_for_room() {
    let server = server().await;
    let c = client(&server.connect_string()).await;
    let q = Arc::new(
        DistributedQueue::builder(c.clone(), "/bounded/q", BytesSerializer)
            .max_items(2)
            .build_queue()
            .unwrap(),
    );
    // Not started: puts fail.
    assert_eq!(q.put(b"x".to_vec()).await, Err(Error::NotStarted));
    q.start().await.unwrap();
    let first = q.put(b"1".to_vec()).await.unwrap();
    q.put(b"2".to_vec()).await.unwrap();
    let t = tokio::time::Instant::now();
    assert_eq!(
        q.put_timeout(b"3".to_vec(), Duration::from_millis(200))
            .await
            .unwrap(),
        None
    );
    assert!(t.elapsed() >= Duration::from_millis(200));
    assert_eq!(q.item_names().await.unwrap().len(), 2);
    let waiting = {
        let q = q.clone();
        tokio::spawn(async move { q.put(b"3".to_vec()).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "a put went over the bound");
    c.delete(&first).await.unwrap();
    within("the waiting put", waiting).await.unwrap().unwrap();
    assert_eq!(q.item_names().await.unwrap().len(), 2);
    // close() wakes a put waiting for room: it fails with Closed and puts nothing.
    let blocked = {
        let q = q.clone();
        tokio::spawn(async move { q.put(b"4".to_vec()).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!blocked.is_finished(), "a put went over the bound");
    q.close().await;
    let woken = within_for(
        "close wakes the blocked put",
        Duration::from_secs(5),
        blocked,
    )
    .await
    .unwrap();
    assert_eq!(woken, Err(Error::Closed));
    assert_eq!(q.item_names().await.unwrap().len(), 2);
    assert_eq!(q.put(b"x".to_vec()).await, Err(Error::Closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_queue_delivers_lower_priorities_first() {
    let server = server().await;
    let c = client(&server.connect_string()).await;
    let producer = DistributedQueue::builder(c.clone(), "/prio/q", Utf8Serializer)
        .build_priority_queue(0)
        .unwrap();
    producer.start().await.unwrap();
    for (item, priority) in [
        ("p5", 5),
        ("m3", -3),
        ("p10", 10),
        ("z0", 0),
        ("p1a", 1),
        ("m1", -1),
        ("p1b", 1),
    ] {
        producer.put(item.to_owned(), priority).await.unwrap();
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let consumer = DistributedQueue::builder(c.clone(), "/prio/q", Utf8Serializer)
        .lock_path("/prio/locks")
        .consumer(move |item: String| {
            let tx = tx.clone();
            async move { tx.send(item) }
        })
        .build_priority_queue(0)
        .unwrap();
    consumer.start().await.unwrap();
    let mut order = Vec::new();
    for _ in 0..7 {
        order.push(within("an item", rx.recv()).await.unwrap());
    }
    assert_eq!(order, ["m3", "m1", "z0", "p1a", "p1b", "p5", "p10"]);
    consumer.close().await;
    producer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_queue_delivers_nothing_early_and_in_due_order() {
    let server = server().await;
    let c = client(&server.connect_string()).await;
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, SystemTime)>();
    let q = DistributedQueue::builder(c.clone(), "/delay/q", Utf8Serializer)
        .lock_path("/delay/locks")
        .consumer(move |item: String| {
            let tx = tx.clone();
            async move { tx.send((item, SystemTime::now())) }
        })
        .build_delay_queue()
        .unwrap();
    q.start().await.unwrap();
    let now = SystemTime::now();
    let dues: HashMap<&str, SystemTime> = [
        ("late", now + Duration::from_millis(900)),
        ("soon", now + Duration::from_millis(300)),
        ("mid", now + Duration::from_millis(600)),
        ("past", now - Duration::from_secs(1)),
    ]
    .into_iter()
    .collect();
    for item in ["late", "soon", "mid", "past"] {
        q.put(item.to_owned(), dues[item]).await.unwrap();
    }
    let mut order = Vec::new();
    for _ in 0..4 {
        let (item, at) = within("an item", rx.recv()).await.unwrap();
        assert!(
            at >= dues[item.as_str()],
            "{item} delivered {:?} early",
            dues[item.as_str()].duration_since(at).unwrap_or_default()
        );
        order.push(item);
    }
    assert_eq!(order, ["past", "soon", "mid", "late"]);
    q.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_queue_remove_removes_exactly_that_item() {
    let server = server().await;
    let c = client(&server.connect_string()).await;
    let q = DistributedQueue::builder(c.clone(), "/ids/q", Utf8Serializer)
        .lock_path("/ids/locks")
        .build_id_queue()
        .unwrap();
    q.start().await.unwrap();
    for (item, id) in [("a", "1"), ("b", "2"), ("c", "3"), ("d", "22")] {
        q.put(item.to_owned(), id).await.unwrap();
    }
    assert!(q.put("e".to_owned(), "").await.is_err());
    assert!(q.is_queued("2").await.unwrap());
    assert_eq!(q.remove("2").await.unwrap(), 1);
    assert!(!q.is_queued("2").await.unwrap());
    assert!(q.is_queued("22").await.unwrap());
    assert_eq!(q.remove("2").await.unwrap(), 0);
    assert_eq!(q.remove("nope").await.unwrap(), 0);
    let names = q.item_names().await.unwrap();
    let ids: Vec<&str> = names.iter().map(|n| n.split('|').nth(1).unwrap()).collect();
    assert_eq!(ids, ["1", "3", "22"]);

    // A consumer gets exactly the others, in FIFO order.
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let consumer = DistributedQueue::builder(c.clone(), "/ids/q", Utf8Serializer)
        .lock_path("/ids/locks")
        .consumer(move |item: String| {
            let tx = tx.clone();
            async move { tx.send(item) }
        })
        .build_id_queue()
        .unwrap();
    consumer.start().await.unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(within("an item", rx.recv()).await.unwrap());
    }
    assert_eq!(got, ["a", "c", "d"]);
    assert!(tokio::time::timeout(Duration::from_millis(200), rx.recv())
        .await
        .is_err());
    consumer.close().await;
    q.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_layout_is_curators() {
    let server = server().await;
    let c = client(&server.connect_string()).await;
    let all_digits = |s: &str| s.len() == 10 && s.bytes().all(|b| b.is_ascii_digit());

    // Plain queue: <path>/queue-0000000000 holding Curator's envelope.
    let q = DistributedQueue::builder(c.clone(), "/layout/plain", BytesSerializer)
        .build_queue()
        .unwrap();
    q.start().await.unwrap();
    let p = q.put(b"hello".to_vec()).await.unwrap();
    assert_eq!(p, "/layout/plain/queue-0000000000");
    assert_eq!(c.get_data(&p).await.unwrap().0, envelope(b"hello"));
    let p = q.put_multi([b"a".to_vec(), b"bc".to_vec()]).await.unwrap();
    assert_eq!(p, "/layout/plain/queue-0000000001");
    assert_eq!(
        c.get_data(&p).await.unwrap().0,
        [0, 1, 0, 1, 1, 0, 0, 0, 1, b'a', 1, 0, 0, 0, 2, b'b', b'c', 2]
    );

    // Priority: queue-<1|0><%08X>NNNNNNNNNN.
    let pq = DistributedQueue::builder(c.clone(), "/layout/prio", BytesSerializer)
        .build_priority_queue(1)
        .unwrap();
    pq.start().await.unwrap();
    let p = pq.put(b"x".to_vec(), 5).await.unwrap();
    assert_eq!(p, "/layout/prio/queue-1000000050000000000");
    let p = pq.put(b"x".to_vec(), -1).await.unwrap();
    assert_eq!(p, "/layout/prio/queue-0FFFFFFFF0000000001");
    let p = pq.put(b"x".to_vec(), 300).await.unwrap();
    assert_eq!(p, "/layout/prio/queue-10000012C0000000002");

    // Delay: queue-|<%08X epoch ms>|NNNNNNNNNN.
    let dq = DistributedQueue::builder(c.clone(), "/layout/delay", BytesSerializer)
        .build_delay_queue()
        .unwrap();
    dq.start().await.unwrap();
    let due_ms: u64 = 1_700_000_000_123;
    let p = dq
        .put(b"x".to_vec(), UNIX_EPOCH + Duration::from_millis(due_ms))
        .await
        .unwrap();
    assert_eq!(p, format!("/layout/delay/queue-|{due_ms:08X}|0000000000"));
    assert_eq!(p, "/layout/delay/queue-|18BCFE5687B|0000000000");

    // Id: queue-|<id with / and | as _>|NNNNNNNNNN.
    let iq = DistributedQueue::builder(c.clone(), "/layout/id", BytesSerializer)
        .build_id_queue()
        .unwrap();
    iq.start().await.unwrap();
    let p = iq.put(b"x".to_vec(), "a/b|c").await.unwrap();
    assert_eq!(p, "/layout/id/queue-|a_b_c|0000000000");
    assert_eq!(iq.remove("a/b|c").await.unwrap(), 1);

    // Simple queue: qn-NNNNNNNNNN holding the bytes as they are.
    let sq = SimpleDistributedQueue::new(c.clone(), "/layout/simple").unwrap();
    let p = sq.offer(b"raw".to_vec()).await.unwrap();
    assert_eq!(p, "/layout/simple/qn-0000000000");
    assert_eq!(c.get_data(&p).await.unwrap().0, b"raw");

    // Items written by another (e.g. Java) process in Curator's format are consumed, and
    // foreign children are ignored; the lock node is <lockPath>/<item name>.
    c.create("/layout/plain/not-an-item").await.unwrap();
    for child in c.get_children("/layout/plain").await.unwrap() {
        if child.starts_with("queue-") {
            c.delete(&format!("/layout/plain/{child}")).await.unwrap();
        }
    }
    let java = c
        .create("/layout/plain/queue-")
        .mode(CreateMode::PersistentSequential)
        .data(envelope(b"from java"))
        .await
        .unwrap();
    assert!(all_digits(&name_of(&java.path)["queue-".len()..]));
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let seen_lock = Arc::new(AtomicBool::new(false));
    let consumer = {
        let (c2, seen_lock, item_name) =
            (c.clone(), seen_lock.clone(), name_of(&java.path).to_owned());
        DistributedQueue::builder(c.clone(), "/layout/plain", BytesSerializer)
            .lock_path("/layout/locks")
            .consumer(move |item: Vec<u8>| {
                let (tx, c2, seen_lock) = (tx.clone(), c2.clone(), seen_lock.clone());
                let lock = format!("/layout/locks/{item_name}");
                async move {
                    let stat = c2.exists(&lock).await.map_err(|e| e.to_string())?;
                    seen_lock.store(
                        stat.is_some_and(|s| s.ephemeral_owner == c2.session_id()),
                        Ordering::SeqCst,
                    );
                    tx.send(item).map_err(|e| e.to_string())
                }
            })
            .build_queue()
            .unwrap()
    };
    consumer.start().await.unwrap();
    assert_eq!(
        within("the java item", rx.recv()).await.unwrap(),
        b"from java"
    );
    assert!(
        seen_lock.load(Ordering::SeqCst),
        "no lock node while processing"
    );
    wait_children(&c, "/layout/plain", |ch| ch == ["not-an-item"]).await;
    consumer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_configurations_are_rejected() {
    let server = server().await;
    let c: Client = client(&server.connect_string()).await;
    let b = || DistributedQueue::builder(c.clone(), "/cfg/q", BytesSerializer);
    assert!(matches!(
        b().lock_path("/cfg/q/locks").build_queue(),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        b().lock_path("/cfg/q").build_queue(),
        Err(Error::InvalidArgument(_))
    ));
    assert!(b().lock_path("/cfg/q-locks").build_queue().is_ok());
    assert!(matches!(
        b().max_items(0).build_queue(),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        DistributedQueue::builder(c.clone(), "/cfg/a|b", BytesSerializer).build_id_queue(),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        DistributedQueue::builder(c.clone(), "/", BytesSerializer).build_queue(),
        Err(Error::InvalidArgument(_))
    ));
    let q = b().build_queue().unwrap();
    q.start().await.unwrap();
    assert_eq!(q.start().await, Err(Error::AlreadyStarted));
    q.close().await;
    assert_eq!(q.start().await, Err(Error::Closed));
}

// ---------------------------------------------------------------- cancellation and back-off

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_cancelled_while_the_server_is_unreachable_can_be_started_again() {
    let (_server, proxy) = server_behind_a_proxy().await;
    let c = client(&proxy.connect_string()).await;
    let q = DistributedQueue::builder(c.clone(), "/cancelled/q", Utf8Serializer)
        .lock_path("/cancelled/locks")
        .build_queue()
        .unwrap();
    assert_eq!(q.put("early".to_owned()).await, Err(Error::NotStarted));
    // A dead network: the start hangs until the timeout drops it.
    proxy.set_mode(Mode::Blackhole);
    assert!(tokio::time::timeout(Duration::from_millis(300), q.start())
        .await
        .is_err());
    // Not stuck starting: not started, and startable again.
    assert_eq!(q.put("x".to_owned()).await, Err(Error::NotStarted));
    proxy.set_mode(Mode::Forward);
    proxy.cut();
    within("start again", q.start()).await.unwrap();
    within("put", q.put("x".to_owned())).await.unwrap();
    assert_eq!(q.item_names().await.unwrap().len(), 1);
    q.close().await;
    assert_eq!(q.put("y".to_owned()).await, Err(Error::Closed));
    assert_eq!(q.start().await, Err(Error::Closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_item_in_requeue_mode_is_retried_with_back_off() {
    let server = server().await;
    let c = client(&server.connect_string()).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let q = DistributedQueue::builder(c.clone(), "/poison/q", Utf8Serializer)
        .lock_path("/poison/locks")
        .consumer(move |_item: String| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>("always failing".to_owned()) }
        })
        .build_queue()
        .unwrap();
    q.start().await.unwrap();
    q.put("poison".to_owned()).await.unwrap();
    within("the first call", async {
        while calls.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let n = calls.load(Ordering::SeqCst);
    // Back-off 20, 40, 80, … ms capped at 1 s: about 7 calls in the first second, not
    // hundreds.
    assert!(
        (2..20).contains(&n),
        "the consumer was called {n} times in 1 s"
    );
    q.close().await;
    // Still in the queue (requeued), and no lock left behind.
    assert_eq!(q.item_names().await.unwrap().len(), 1);
    assert!(c.get_children("/poison/locks").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_dropped_while_locking_an_item_leaves_no_lock_behind() {
    let (server, proxy) = server_behind_a_proxy().await;
    // The victim consumer talks through the proxy; the rest directly.
    let slow = client(&proxy.connect_string()).await;
    let c = client(&server.connect_string()).await;
    let taken_by_victim = Arc::new(AtomicUsize::new(0));
    let counted = taken_by_victim.clone();
    let victim = DistributedQueue::builder(slow.clone(), "/dropped/q", Utf8Serializer)
        .lock_path("/dropped/locks")
        .consumer(move |_item: String| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Ok::<(), String>(()) }
        })
        .build_queue()
        .unwrap();
    victim.start().await.unwrap();
    let producer = DistributedQueue::builder(c.clone(), "/dropped/q", Utf8Serializer)
        .build_queue()
        .unwrap();
    producer.start().await.unwrap();

    // Replies to the victim now take a while: when its lock node appears on the server, the
    // create's reply is still on its way, and the queue is dropped in that window.
    let (_, lock_created) = c.get_children("/dropped/locks").watched().await.unwrap();
    proxy.set_mode(Mode::Delay(Duration::from_millis(300)));
    producer.put("item".to_owned()).await.unwrap();
    within("the victim's lock node", lock_created).await;
    drop(victim);
    proxy.set_mode(Mode::Forward);

    // The victim's session lives on (its client is open), yet its lock node goes.
    within_for(
        "the lock node deleted",
        Duration::from_secs(10),
        wait_children(&c, "/dropped/locks", |children| children.is_empty()),
    )
    .await;
    assert_eq!(taken_by_victim.load(Ordering::SeqCst), 0);
    // Another consumer gets the item.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let other = DistributedQueue::builder(c.clone(), "/dropped/q", Utf8Serializer)
        .lock_path("/dropped/locks")
        .consumer(move |item: String| {
            let _ = tx.send(item);
            async { Ok::<(), String>(()) }
        })
        .build_queue()
        .unwrap();
    other.start().await.unwrap();
    let got = within_for("the other consumer", Duration::from_secs(10), rx.recv()).await;
    assert_eq!(got.as_deref(), Some("item"));
    other.close().await;
    producer.close().await;
    drop(slow);
}

/// An item the consumer cannot take (here: larger than its client accepts, a failure that
/// will not go away) is skipped, as Curator's per-item try/catch does: the items behind it
/// are consumed, and the consumer waits for the queue to change instead of retrying the bad
/// one in a tight loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_that_keeps_failing_does_not_block_the_items_behind_it() {
    let server = server().await;
    let producer = client(&server.connect_string()).await;
    let small = zk_client::Client::builder()
        .connect_string(server.connect_string())
        .max_reply_len(1024)
        .build()
        .unwrap();
    for locked in [false, true] {
        let path = format!("/poison/{locked}");
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let mut builder = DistributedQueue::builder(small.clone(), &path, Utf8Serializer).consumer(
            move |item: String| {
                let tx = tx.clone();
                async move { tx.send(item) }
            },
        );
        if locked {
            builder = builder.lock_path(&format!("{path}-locks"));
        }
        let put = DistributedQueue::builder(producer.clone(), &path, Utf8Serializer)
            .build_queue()
            .unwrap();
        put.start().await.unwrap();
        put.put("x".repeat(2048)).await.unwrap();
        put.put("ok".to_owned()).await.unwrap();
        let consumer = builder.build_queue().unwrap();
        consumer.start().await.unwrap();
        assert_eq!(
            within("the item behind", rx.recv()).await.as_deref(),
            Some("ok")
        );
        // Nothing is retried while the queue stays as it is: once the pass after "ok" is
        // over, two seconds see only pings (about three), not a loop (a retry every 20 ms,
        // hundreds of requests).
        tokio::time::sleep(Duration::from_millis(500)).await;
        let reads = server_reads(&server).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let more = server_reads(&server).await - reads;
        assert!(
            more < 20,
            "{more} requests in 2 s: the bad item is retried in a loop"
        );
        consumer.close().await;
        put.close().await;
    }
    small.close().await.unwrap();
}

/// Requests the server has answered so far (its `mntr` packets received).
async fn server_reads(server: &zk_server::TestingServer) -> u64 {
    let mntr = server.four_letter_word("mntr").await.expect("mntr");
    mntr.lines()
        .find_map(|l| l.strip_prefix("zk_packets_received\t"))
        .and_then(|v| v.trim().parse().ok())
        .expect("zk_packets_received in mntr")
}

/// A serializer that panics on an item drops that item (as Curator's "corrupted queue item")
/// instead of ending the consumer task: the next item is consumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serializer_panicking_on_an_item_drops_that_item_only() {
    let server = server().await;
    let c = client(&server.connect_string()).await;
    let serializer = zk_recipes::queue::FnSerializer::new(
        |item: &String| Ok(item.clone().into_bytes()),
        |bytes: &[u8]| {
            assert_ne!(bytes, b"bad", "a serializer bug");
            Ok(String::from_utf8_lossy(bytes).into_owned())
        },
    );
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let q = DistributedQueue::builder(c.clone(), "/panicky/q", serializer)
        .lock_path("/panicky/locks")
        .consumer(move |item: String| {
            let tx = tx.clone();
            async move { tx.send(item) }
        })
        .build_queue()
        .unwrap();
    q.start().await.unwrap();
    q.put("bad".to_owned()).await.unwrap();
    q.put("good".to_owned()).await.unwrap();
    assert_eq!(
        within("the next item", rx.recv()).await.as_deref(),
        Some("good")
    );
    q.close().await;
}

/// Delay queue with locked consumers: while another consumer holds the first due item, an
/// idle consumer still wakes when the next item comes due (not only when the queue changes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_delay_consumer_wakes_when_the_next_item_comes_due() {
    let server = server().await;
    let a = client(&server.connect_string()).await;
    let b = client(&server.connect_string()).await;
    let (held_tx, mut held_rx) = watch::channel(false);
    let qa = DistributedQueue::builder(a.clone(), "/due/q", Utf8Serializer)
        .lock_path("/due/locks")
        .consumer(move |_item: String| {
            held_tx.send_replace(true);
            // Never finishes: its item stays locked.
            std::future::pending::<Result<(), std::io::Error>>()
        })
        .build_delay_queue()
        .unwrap();
    qa.start().await.unwrap();
    let now = SystemTime::now();
    qa.put("stuck".to_owned(), now).await.unwrap();
    within("a holds the first item", held_rx.wait_for(|h| *h))
        .await
        .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let qb = DistributedQueue::builder(b.clone(), "/due/q", Utf8Serializer)
        .lock_path("/due/locks")
        .consumer(move |item: String| {
            let tx = tx.clone();
            async move { tx.send(item) }
        })
        .build_delay_queue()
        .unwrap();
    qb.start().await.unwrap();
    qa.put(
        "later".to_owned(),
        SystemTime::now() + Duration::from_millis(500),
    )
    .await
    .unwrap();
    assert_eq!(
        within_for(
            "b takes the item once due",
            Duration::from_secs(10),
            rx.recv()
        )
        .await
        .as_deref(),
        Some("later")
    );
    qb.close().await;
    drop(qa);
}

/// Priority queue with minItemsBeforeRefresh 0: an urgent item put while the consumer works
/// on an item of its current listing comes next, before the rest of that listing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_urgent_item_put_meanwhile_overtakes_the_rest_of_the_listing() {
    let server = server().await;
    let c = client(&server.connect_string()).await;
    let producer = DistributedQueue::builder(c.clone(), "/urgent/q", Utf8Serializer)
        .build_priority_queue(0)
        .unwrap();
    producer.start().await.unwrap();
    for item in ["b1", "b2", "b3"] {
        producer.put(item.to_owned(), 5).await.unwrap();
    }
    let (gate_tx, gate) = watch::channel(false);
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let consumer = DistributedQueue::builder(c.clone(), "/urgent/q", Utf8Serializer)
        .lock_path("/urgent/locks")
        .consumer(move |item: String| {
            let (tx, mut gate) = (tx.clone(), gate.clone());
            async move {
                let first = item == "b1";
                tx.send(item)?;
                if first {
                    // Held until the urgent item is in the queue.
                    let _ = gate.wait_for(|open| *open).await;
                }
                Ok::<(), mpsc::error::SendError<String>>(())
            }
        })
        .build_priority_queue(0)
        .unwrap();
    consumer.start().await.unwrap();
    assert_eq!(within("b1", rx.recv()).await.as_deref(), Some("b1"));
    producer.put("urgent".to_owned(), -10).await.unwrap();
    gate_tx.send_replace(true);
    let mut rest = Vec::new();
    for _ in 0..3 {
        rest.push(within("an item", rx.recv()).await.unwrap());
    }
    assert_eq!(rest, ["urgent", "b2", "b3"]);
    consumer.close().await;
    producer.close().await;
}
