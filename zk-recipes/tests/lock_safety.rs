//! Lock safety under a network partition (RELIABILITY.md "Lock safety"; CURATOR-644/653): the
//! leader's (or lock holder's) connection is blackholed by the fault proxy — no error, no
//! close, just silence — as a GC pause or a partition looks to the server.
//!
//! Checked every 20 ms throughout: at most one participant believes it leads (holds) *and*
//! has a live session (its EPHEMERAL node still exists), and — stronger — at most one
//! believes it at all. The partitioned one must give up (SUSPENDED) before its session
//! expires; the next one may take over only once the old session expired; after healing,
//! the old one never comes back as a second leader (holder), across LOST and RECONNECTED.

mod support;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use futures::StreamExt;
use support::*;
use tokio::sync::watch;
use zk_client::{Client, ConnectionState, ConnectionStateErrorPolicy};
use zk_recipes::{LeaderLatch, LockState, Mutex};

/// The partitioned side's session timeout: long enough that a blackhole is noticed (after
/// 2/3 of it, 4 s) well before the server expires the session.
const PARTITIONED_SESSION: Duration = Duration::from_secs(6);

/// A participant as the sampler sees it: whether it believes it leads (holds), and its node.
type Belief = (bool, Option<String>);

/// Samples every 20 ms until stopped; returns the number of samples. Each sample reads every
/// belief first and then asks the server whether each believer's node still exists: a node
/// present after the belief was read was present when it was read (ephemeral nodes never
/// come back).
fn spawn_sampler(
    observer: Client,
    beliefs: impl Fn() -> Vec<Belief> + Send + 'static,
    stop: Arc<AtomicBool>,
    violations: Arc<StdMutex<Vec<String>>>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let samples = AtomicU64::new(0);
        let mut ticks = tokio::time::interval(Duration::from_millis(20));
        while !stop.load(Ordering::SeqCst) {
            ticks.tick().await;
            let now = beliefs();
            let believers = now.iter().filter(|(b, _)| *b).count();
            let mut alive_believers = 0;
            for (believes, node) in &now {
                if !*believes {
                    continue;
                }
                let alive = match node {
                    Some(path) => observer.exists(path).await.ok().flatten().is_some(),
                    None => false,
                };
                if alive {
                    alive_believers += 1;
                }
            }
            if alive_believers > 1 || believers > 1 {
                violations.lock().unwrap().push(format!(
                    "{believers} believers, {alive_believers} of them alive: {now:?}"
                ));
            }
            samples.fetch_add(1, Ordering::Relaxed);
        }
        samples.load(Ordering::Relaxed)
    })
}

async fn partitioned_client(proxy: &Proxy) -> Client {
    let c = client_builder(&proxy.connect_string())
        .session_timeout(PARTITIONED_SESSION)
        .build()
        .expect("build a client");
    c.block_until_connected(PATIENCE).await.expect("connect");
    c
}

/// Every value a leadership channel takes from now on, in order.
fn record(mut rx: watch::Receiver<bool>) -> Arc<StdMutex<Vec<bool>>> {
    let seen = Arc::new(StdMutex::new(vec![*rx.borrow_and_update()]));
    let out = seen.clone();
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let v = *rx.borrow_and_update();
            out.lock().unwrap().push(v);
        }
    });
    seen
}

async fn wait_leadership(latch: &LeaderLatch, leads: bool) {
    let mut rx = latch.leadership();
    within(&format!("{} leading: {leads}", latch.id()), async {
        rx.wait_for(|l| *l == leads).await.expect("latch dropped");
    })
    .await;
}

/// Heals the partition: forwards again, and cuts the connections the blackhole left hanging
/// (a connect attempt swallowed by it would otherwise wait for its own timeout).
fn heal(proxy: &Proxy) {
    proxy.set_mode(Mode::Forward);
    proxy.cut();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_latch_partitioned_leader_steps_down_before_its_session_expires() {
    let (server, proxy) = server_behind_a_proxy().await;
    let a_client = partitioned_client(&proxy).await;
    let b_client = client(&server.connect_string()).await;
    let observer = client(&server.connect_string()).await;
    let a = Arc::new(LeaderLatch::new(a_client.clone(), "/safety/leader", "a").unwrap());
    let b = Arc::new(LeaderLatch::new(b_client.clone(), "/safety/leader", "b").unwrap());
    a.start().unwrap();
    within("a leads", a.await_leadership()).await.unwrap();
    b.start().unwrap();
    wait_children(&observer, "/safety/leader", |c| c.len() == 2).await;
    let b_history = record(b.leadership());

    let stop = Arc::new(AtomicBool::new(false));
    let violations = Arc::new(StdMutex::new(Vec::new()));
    let sampler = {
        let (a, b) = (a.clone(), b.clone());
        spawn_sampler(
            observer.clone(),
            move || {
                vec![
                    (a.has_leadership(), a.our_path()),
                    (b.has_leadership(), b.our_path()),
                ]
            },
            stop.clone(),
            violations.clone(),
        )
    };

    // 1. A short partition: A is suspended and steps down, heals before its session expires,
    //    and leads again on the same session (re-check, not reset: CURATOR-644). B never
    //    leads meanwhile.
    let a_session = a_client.session_id();
    let mut a_states = a_client.connection_states();
    proxy.set_mode(Mode::Blackhole);
    wait_state(&mut a_states, ConnectionState::Suspended).await;
    wait_leadership(&a, false).await;
    heal(&proxy);
    wait_state(&mut a_states, ConnectionState::Reconnected).await;
    assert_eq!(a_client.session_id(), a_session, "the session survived");
    wait_leadership(&a, true).await;
    assert_eq!(
        *b_history.lock().unwrap(),
        [false],
        "b led during a's suspension"
    );

    // 2. A long partition: A steps down while its session (and node) is still alive; B takes
    //    over only once the session expired and the node is gone.
    let a_node = a.our_path().expect("a's node");
    proxy.set_mode(Mode::Blackhole);
    wait_state(&mut a_states, ConnectionState::Suspended).await;
    wait_leadership(&a, false).await;
    assert!(
        observer.exists(&a_node).await.unwrap().is_some(),
        "a stepped down only after its session was gone"
    );
    assert!(!b.has_leadership());
    wait_leadership(&b, true).await;
    assert_eq!(
        observer.exists(&a_node).await.unwrap(),
        None,
        "b leads while a's session is alive"
    );
    assert!(!a.has_leadership());

    // 3. Heal: A learns its session is gone (LOST), gets a new one, and queues behind B;
    //    it never leads while B does.
    heal(&proxy);
    within("a's new session", async {
        while a_client.session_id() == a_session || !a_client.is_connected() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    wait_children(&observer, "/safety/leader", |c| c.len() == 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!a.has_leadership());
    assert!(b.has_leadership());
    let a_new = a.our_path().expect("a queued again");
    assert_ne!(a_new, a_node);

    // B leaves: A leads again.
    b.close().await.unwrap();
    wait_leadership(&a, true).await;

    stop.store(true, Ordering::SeqCst);
    let samples = sampler.await.unwrap();
    let violations = violations.lock().unwrap().clone();
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(samples > 100, "only {samples} samples");
    a.close().await.unwrap();
}

/// A protected resource that accepts a write only with a token at least as high as every
/// token it accepted before.
#[derive(Default)]
struct FencedResource {
    highest: AtomicI64,
}

impl FencedResource {
    fn write(&self, token: i64) -> bool {
        self.highest.fetch_max(token, Ordering::SeqCst) <= token
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutex_partitioned_holder_is_at_risk_before_the_next_holder_acquires() {
    let (server, proxy) = server_behind_a_proxy().await;
    let h_client = partitioned_client(&proxy).await;
    let w_client = client(&server.connect_string()).await;
    let observer = client(&server.connect_string()).await;
    let resource = FencedResource::default();

    let holder = Mutex::new(h_client.clone(), "/safety/lock").unwrap();
    let h_guard = holder.acquire().await.unwrap();
    let h_token = h_guard.fencing_token();
    let h_node = h_guard.node_path().to_owned();
    let mut h_changes = h_guard.state_changes();
    assert!(resource.write(h_token));

    // The waiter's guard, once it has one: (its state, its node, its token).
    type Slot = Arc<StdMutex<Option<(watch::Receiver<LockState>, String)>>>;
    let w_slot: Slot = Arc::default();
    let waiter = Mutex::new(w_client.clone(), "/safety/lock").unwrap();
    let next = {
        let slot = w_slot.clone();
        tokio::spawn(async move {
            let guard = waiter.acquire().await.expect("the waiter acquires");
            *slot.lock().unwrap() = Some((guard.states(), guard.node_path().to_owned()));
            (guard, waiter)
        })
    };
    wait_children(&observer, "/safety/lock", |c| c.len() == 2).await;

    let stop = Arc::new(AtomicBool::new(false));
    let violations = Arc::new(StdMutex::new(Vec::new()));
    let sampler = {
        let h_states = h_guard.states();
        let h_node = h_node.clone();
        let w_slot = w_slot.clone();
        spawn_sampler(
            observer.clone(),
            move || {
                let mut now = vec![(*h_states.borrow() == LockState::Held, Some(h_node.clone()))];
                if let Some((states, node)) = w_slot.lock().unwrap().as_ref() {
                    now.push((*states.borrow() == LockState::Held, Some(node.clone())));
                }
                now
            },
            stop.clone(),
            violations.clone(),
        )
    };

    // Partition the holder: its guard reports the risk while its session (and node) lives,
    // and before the waiter gets the lock.
    proxy.set_mode(Mode::Blackhole);
    let risk = within("the holder's guard at risk", h_guard.at_risk()).await;
    assert_eq!(risk, LockState::Suspended);
    assert!(
        observer.exists(&h_node).await.unwrap().is_some(),
        "at risk only after the session was gone"
    );
    assert!(
        !next.is_finished(),
        "the waiter acquired before the holder was at risk"
    );

    // The waiter acquires once the holder's session expired; its token is higher, and the
    // resource now refuses the old holder.
    let (w_guard, _waiter) = within("the waiter acquires", next).await.unwrap();
    assert_eq!(
        observer.exists(&h_node).await.unwrap(),
        None,
        "the waiter holds while the holder's session is alive"
    );
    assert_ne!(h_guard.state(), LockState::Held);
    assert!(w_guard.fencing_token() > h_token);
    assert!(resource.write(w_guard.fencing_token()));
    assert!(!resource.write(h_token), "a stale token was accepted");

    // Heal: the old holder learns the lock is lost (never held again), while the waiter
    // keeps it.
    heal(&proxy);
    within("the old guard reports LOST", h_guard.lost()).await;
    assert_eq!(w_guard.state(), LockState::Held);
    // Every state the old guard went through (lossless): never HELD again.
    let mut h_seen = Vec::new();
    within("the old guard's state changes", async {
        while let Some(s) = h_changes.next().await {
            h_seen.push(s);
            if s == LockState::Lost {
                return;
            }
        }
    })
    .await;
    assert_eq!(h_seen, [LockState::Suspended, LockState::Lost]);
    assert!(!holder.is_acquired());
    h_guard.release().await.unwrap();

    // The hand-back: tokens keep increasing.
    let w_token = w_guard.fencing_token();
    w_guard.release().await.unwrap();
    let again = within("the old holder acquires again", holder.acquire())
        .await
        .unwrap();
    assert!(again.fencing_token() > w_token);
    assert!(resource.write(again.fencing_token()));
    assert_eq!(again.session_id(), h_client.session_id());

    stop.store(true, Ordering::SeqCst);
    let samples = sampler.await.unwrap();
    let violations = violations.lock().unwrap().clone();
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(samples > 100, "only {samples} samples");
    again.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_latch_under_the_session_policy_leads_through_suspension_until_lost() {
    let (server, proxy) = server_behind_a_proxy().await;
    let a_client = client_builder(&proxy.connect_string())
        .session_timeout(PARTITIONED_SESSION)
        .connection_state_error_policy(ConnectionStateErrorPolicy::Session)
        .build()
        .expect("build a client");
    a_client
        .block_until_connected(PATIENCE)
        .await
        .expect("connect");
    let b_client = client(&server.connect_string()).await;
    let observer = client(&server.connect_string()).await;
    let a = LeaderLatch::new(a_client.clone(), "/safety/session-policy", "a").unwrap();
    let b = LeaderLatch::new(b_client, "/safety/session-policy", "b").unwrap();
    a.start().unwrap();
    within("a leads", a.await_leadership()).await.unwrap();
    b.start().unwrap();
    wait_children(&observer, "/safety/session-policy", |c| c.len() == 2).await;
    let a_history = record(a.leadership());

    // 1. A short partition: SUSPENDED is not an error under this policy, so A leads on,
    //    and after RECONNECTED (same session) it still leads; its leadership never flipped.
    let a_session = a_client.session_id();
    let mut a_states = a_client.connection_states();
    proxy.set_mode(Mode::Blackhole);
    wait_state(&mut a_states, ConnectionState::Suspended).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(a.has_leadership(), "a stepped down on SUSPENDED");
    heal(&proxy);
    wait_state(&mut a_states, ConnectionState::Reconnected).await;
    assert_eq!(a_client.session_id(), a_session, "the session survived");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(a.has_leadership());
    assert!(!b.has_leadership());
    assert_eq!(*a_history.lock().unwrap(), [true], "a's leadership flipped");

    // 2. A long partition: A leads until its client declares LOST, then steps down; B
    //    takes over (the server expired A's session first: the policy's documented risk).
    proxy.set_mode(Mode::Blackhole);
    wait_state(&mut a_states, ConnectionState::Suspended).await;
    assert!(a.has_leadership(), "a stepped down on SUSPENDED");
    wait_state(&mut a_states, ConnectionState::Lost).await;
    wait_leadership(&a, false).await;
    wait_leadership(&b, true).await;
    // The recorder task may not have run since the change: wait for it, then check that
    // leadership went once from true to false, never flipping in between.
    within("a's history recorded", async {
        while a_history.lock().unwrap().len() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(*a_history.lock().unwrap(), [true, false]);
    heal(&proxy);
    b.close().await.unwrap();
    wait_leadership(&a, true).await;
    a.close().await.unwrap();
}
