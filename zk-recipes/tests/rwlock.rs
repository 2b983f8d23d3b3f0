//! `ReadWriteLock` against the embedded server: shared readers, exclusive writers (invariants
//! over many rounds and sessions), readers queued behind a writer, downgrade, refused upgrade,
//! Curator's node names.

mod support;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::*;
use zk_recipes::{Error, LockState, ReadWriteLock};

const LOCK: &str = "/recipes/rwlock";
const SHORT: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_share_and_nodes_are_named_as_curator() {
    let server = server().await;
    let mut guards = Vec::new();
    let mut locks = Vec::new();
    for _ in 0..3 {
        let c = client(&server.connect_string()).await;
        let lock = ReadWriteLock::new(c, LOCK).unwrap();
        let g = lock
            .read_lock()
            .acquire_timeout(PATIENCE)
            .await
            .unwrap()
            .expect("readers do not exclude each other");
        guards.push(g);
        locks.push(lock);
    }
    for g in &guards {
        assert_eq!(g.state(), LockState::Held);
    }
    // Node names: protected prefix, Curator's read name, a 10-digit sequence.
    let nodes = locks[0].participant_nodes().await.unwrap();
    assert_eq!(nodes.len(), 3);
    for n in &nodes {
        assert!(n.starts_with("_c_"), "{n}");
        let seq = n.rsplit("__READ__").next().unwrap();
        assert_eq!(seq.len(), 10, "{n}");
        assert!(seq.bytes().all(|b| b.is_ascii_digit()), "{n}");
    }
    // A writer is excluded while they read...
    let writer = ReadWriteLock::new(client(&server.connect_string()).await, LOCK).unwrap();
    assert!(writer
        .write_lock()
        .acquire_timeout(SHORT)
        .await
        .unwrap()
        .is_none());
    let max_read_token = guards.iter().map(|g| g.fencing_token()).max().unwrap();
    for g in guards {
        g.release().await.unwrap();
    }
    // ...and gets in after them, named __WRIT__, with a higher token.
    let w = within("the writer", writer.write_lock().acquire())
        .await
        .unwrap();
    assert!(w.node_path().contains("__WRIT__"));
    assert!(w.fencing_token() > max_read_token);
    w.release().await.unwrap();
    assert!(writer.participant_nodes().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_exclude_everyone_over_many_rounds() {
    const SESSIONS: usize = 3;
    const READERS: usize = 2;
    const WRITERS: usize = 2;
    const ROUNDS: usize = 12;
    let server = server().await;
    // > 0: that many readers inside; -1: one writer inside.
    let state = Arc::new(AtomicI64::new(0));
    let writes = Arc::new(AtomicI64::new(0));
    let last_write_token = Arc::new(AtomicI64::new(i64::MIN));
    let mut tasks = Vec::new();
    for _ in 0..SESSIONS {
        let c = client(&server.connect_string()).await;
        for r in 0..READERS + WRITERS {
            let is_writer = r >= READERS;
            let lock = ReadWriteLock::new(c.clone(), LOCK).unwrap();
            let (state, writes, last) = (state.clone(), writes.clone(), last_write_token.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..ROUNDS {
                    if is_writer {
                        let g = lock.write_lock().acquire().await.expect("write");
                        assert_eq!(
                            state.compare_exchange(0, -1, Ordering::SeqCst, Ordering::SeqCst),
                            Ok(0),
                            "a writer entered while others were inside"
                        );
                        let prev = last.swap(g.fencing_token(), Ordering::SeqCst);
                        assert!(g.fencing_token() > prev, "write tokens must increase");
                        let v = writes.load(Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        writes.store(v + 1, Ordering::SeqCst);
                        assert_eq!(state.swap(0, Ordering::SeqCst), -1);
                        g.release().await.expect("release");
                    } else {
                        let g = lock.read_lock().acquire().await.expect("read");
                        let entered = state.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |s| {
                            (s >= 0).then_some(s + 1)
                        });
                        assert!(
                            entered.is_ok(),
                            "a reader entered while a writer was inside"
                        );
                        // The last write a reader sees was fenced before it.
                        assert!(g.fencing_token() > last.load(Ordering::SeqCst));
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        state.fetch_sub(1, Ordering::SeqCst);
                        g.release().await.expect("release");
                    }
                }
            }));
        }
    }
    within("all rounds", async {
        for t in tasks {
            t.await.expect("task");
        }
    })
    .await;
    assert_eq!(
        writes.load(Ordering::SeqCst),
        (SESSIONS * WRITERS * ROUNDS) as i64
    );
    assert_eq!(state.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_queued_behind_a_writer_waits() {
    let server = server().await;
    let a = ReadWriteLock::new(client(&server.connect_string()).await, LOCK).unwrap();
    let b = Arc::new(ReadWriteLock::new(client(&server.connect_string()).await, LOCK).unwrap());
    let c = Arc::new(ReadWriteLock::new(client(&server.connect_string()).await, LOCK).unwrap());

    let first_read = a.read_lock().acquire().await.unwrap();
    let mut writer_stats = b.write_lock().wait_stats();
    let writer = {
        let b = b.clone();
        tokio::spawn(async move { b.write_lock().acquire().await.expect("write") })
    };
    within(
        "the writer queued",
        writer_stats.wait_for(|s| s.watches_set == 1),
    )
    .await
    .unwrap();
    // A reader arriving now queues behind the writer, although only a reader holds.
    assert!(c
        .read_lock()
        .acquire_timeout(SHORT)
        .await
        .unwrap()
        .is_none());
    let mut reader_stats = c.read_lock().wait_stats();
    let before = reader_stats.borrow().watches_set;
    let woken_before = reader_stats.borrow().wakeups;
    let reader = {
        let c = c.clone();
        tokio::spawn(async move { c.read_lock().acquire().await.expect("read") })
    };
    within(
        "the reader queued",
        reader_stats.wait_for(|s| s.watches_set > before),
    )
    .await
    .unwrap();

    first_read.release().await.unwrap();
    let w = within("the writer gets in", writer).await.unwrap();
    tokio::time::sleep(SHORT).await;
    assert!(
        !reader.is_finished(),
        "the reader entered while the writer holds"
    );
    // The queued reader watched the writer (its nearest preceding writer) only.
    assert_eq!(reader_stats.borrow().wakeups, woken_before);
    w.release().await.unwrap();
    let r = within("the reader gets in", reader).await.unwrap();
    assert_eq!(
        reader_stats.borrow().wakeups,
        woken_before + 1,
        "one wake-up"
    );
    r.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downgrade_keeps_reading_and_upgrade_is_refused() {
    let server = server().await;
    let lock = ReadWriteLock::new(client(&server.connect_string()).await, LOCK).unwrap();
    let other = ReadWriteLock::new(client(&server.connect_string()).await, LOCK).unwrap();

    // Downgrade: write, then read (at once), then release the write lock.
    let w = lock.write_lock().acquire().await.unwrap();
    let r = within(
        "the read lock while holding the write lock",
        lock.read_lock().acquire_timeout(SHORT),
    )
    .await
    .unwrap()
    .expect("downgrade: granted at once");
    assert!(lock.write_lock().is_acquired() && lock.read_lock().is_acquired());
    w.release().await.unwrap();
    assert!(!lock.write_lock().is_acquired());
    assert_eq!(r.state(), LockState::Held);
    // Others may read alongside now, but not write.
    let other_read = other
        .read_lock()
        .acquire_timeout(PATIENCE)
        .await
        .unwrap()
        .expect("another reader shares the downgraded lock");
    other_read.release().await.unwrap();
    assert!(other
        .write_lock()
        .acquire_timeout(SHORT)
        .await
        .unwrap()
        .is_none());

    // Upgrade: refused with a clear error instead of waiting forever.
    match lock.write_lock().acquire_timeout(SHORT).await {
        Err(Error::WouldDeadlock(_)) => {}
        other => panic!("expected WouldDeadlock, got {other:?}"),
    }
    assert!(matches!(
        lock.write_lock().acquire().await,
        Err(Error::WouldDeadlock(_))
    ));
    r.release().await.unwrap();
    let w = within("write after the read is gone", lock.write_lock().acquire())
        .await
        .unwrap();
    w.release().await.unwrap();

    // A read guard dropped (its node deleted in the background) is no read lock held: the
    // write lock may be asked for at once.
    let r = lock.read_lock().acquire().await.unwrap();
    drop(r);
    let w = within(
        "write right after a dropped read guard",
        lock.write_lock().acquire(),
    )
    .await
    .unwrap();
    w.release().await.unwrap();
}

/// A read lock granted by downgrade while this handle holds the write lock and another
/// client's writer is queued behind it; the write guard is then released (its node stays,
/// pinned by the read grant).
struct Downgraded {
    _server: zk_server::TestingServer,
    lock: ReadWriteLock,
    other_client: zk_client::Client,
    read: zk_recipes::MutexGuard,
    write_node: String,
    queued_writer: tokio::task::JoinHandle<zk_recipes::MutexGuard>,
}

async fn downgraded_past_a_queued_writer() -> Downgraded {
    let server = server().await;
    let lock = ReadWriteLock::new(client(&server.connect_string()).await, LOCK).unwrap();
    let other_client = client(&server.connect_string()).await;
    let other = Arc::new(ReadWriteLock::new(other_client.clone(), LOCK).unwrap());

    let w = lock.write_lock().acquire().await.unwrap();
    let mut stats = other.write_lock().wait_stats();
    let queued_writer = {
        let other = other.clone();
        tokio::spawn(async move { other.write_lock().acquire().await.expect("write") })
    };
    within(
        "the other writer queued",
        stats.wait_for(|s| s.watches_set == 1),
    )
    .await
    .unwrap();
    // Our read node sorts after the queued writer's node; it is granted by downgrade.
    let read = lock
        .read_lock()
        .acquire_timeout(SHORT)
        .await
        .unwrap()
        .expect("downgrade");
    let write_node = w.node_path().to_owned();
    w.release().await.unwrap();
    Downgraded {
        _server: server,
        lock,
        other_client,
        read,
        write_node,
        queued_writer,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downgrade_past_a_queued_writer_keeps_it_out_until_the_read_ends() {
    let Downgraded {
        _server,
        lock,
        other_client,
        read: r,
        write_node,
        queued_writer,
    } = downgraded_past_a_queued_writer().await;
    // ...and the write node stays until the read ends, so the queued writer stays out.
    tokio::time::sleep(SHORT).await;
    assert!(
        !queued_writer.is_finished(),
        "a writer entered while we read"
    );
    assert!(lock
        .write_lock()
        .acquire_timeout(Duration::ZERO)
        .await
        .is_err());
    let nodes = lock.participant_nodes().await.unwrap();
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    assert!(write_node.ends_with(&nodes[0]));
    r.release().await.unwrap();
    let g = within("the queued writer after the read", queued_writer)
        .await
        .unwrap();
    g.release().await.unwrap();
    wait_children(&other_client, LOCK, |c| c.is_empty()).await;
}

/// A downgraded read lock that keeps a queued writer out through its pinned write node is
/// lost if that write node is (deleted from outside, say): the writer may then enter, so
/// the reader is told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downgraded_read_lock_is_lost_with_the_write_node_it_pins() {
    let Downgraded {
        _server,
        read: r,
        write_node,
        queued_writer,
        other_client,
        ..
    } = downgraded_past_a_queued_writer().await;
    assert_eq!(r.state(), LockState::Held);
    other_client
        .delete(&write_node)
        .await
        .expect("delete the write node");
    let mut states = r.states();
    within(
        "the read lock lost",
        states.wait_for(|s| *s == LockState::Lost),
    )
    .await
    .unwrap();
    let g = within("the queued writer", queued_writer).await.unwrap();
    r.release().await.unwrap();
    g.release().await.unwrap();
}
