//! `LeaderSelector` against the embedded server: one leader at a time over many hand-offs,
//! cancellation on session expiry, interruption, a closure that ignores cancellation.

mod support;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::*;
use tokio::sync::mpsc;
use zk_client::{ConnectionState, ConnectionStateErrorPolicy};
use zk_recipes::{CancelReason, LeaderSelector};

const PATH: &str = "/recipes/selector";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_leader_at_every_sample_over_many_hand_offs() {
    const PARTICIPANTS: usize = 10;
    const TERMS: usize = 25;
    let server = server().await;
    let inside = Arc::new(AtomicUsize::new(0));
    let terms = Arc::new(AtomicUsize::new(0));
    let last_token = Arc::new(AtomicI64::new(i64::MIN));
    let (led_tx, mut led_rx) = mpsc::unbounded_channel::<usize>();
    let mut clients = Vec::new();
    for _ in 0..PARTICIPANTS / 2 {
        clients.push(client(&server.connect_string()).await);
    }
    // What went wrong inside a term (a panic there would only end the term, so the test
    // would time out instead of saying why).
    let violations = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut selectors = Vec::new();
    for i in 0..PARTICIPANTS {
        let (inside, terms, last_token, led_tx, violations) = (
            inside.clone(),
            terms.clone(),
            last_token.clone(),
            led_tx.clone(),
            violations.clone(),
        );
        let selector =
            LeaderSelector::builder(clients[i % clients.len()].clone(), PATH, move |ctx| {
                let (inside, terms, last_token, led_tx, violations) = (
                    inside.clone(),
                    terms.clone(),
                    last_token.clone(),
                    led_tx.clone(),
                    violations.clone(),
                );
                async move {
                    let violation = |what: String| violations.lock().unwrap().push(what);
                    let others = inside.fetch_add(1, Ordering::SeqCst);
                    if others != 0 {
                        violation(format!("participant {i} leads with {others} others"));
                    }
                    let previous = last_token.swap(ctx.fencing_token(), Ordering::SeqCst);
                    if ctx.fencing_token() <= previous {
                        violation(format!(
                            "token {} after {previous}: tokens must increase over terms",
                            ctx.fencing_token()
                        ));
                    }
                    let _ = led_tx.send(i);
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                        r = ctx.cancelled() => violation(format!("participant {i} cancelled: {r:?}")),
                    }
                    terms.fetch_add(1, Ordering::SeqCst);
                    inside.fetch_sub(1, Ordering::SeqCst);
                }
            })
            .id(format!("participant-{i}"))
            .auto_requeue()
            .build()
            .unwrap();
        selectors.push(selector);
    }
    for s in &selectors {
        s.start().unwrap();
    }
    let selectors = Arc::new(selectors);
    // Sample every participant's view all along.
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (selectors, sampling) = (selectors.clone(), sampling.clone());
        tokio::spawn(async move {
            let mut samples = 0u64;
            while sampling.load(Ordering::SeqCst) {
                let leaders = selectors.iter().filter(|s| s.has_leadership()).count();
                assert!(leaders <= 1, "{leaders} participants lead at once");
                samples += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            samples
        })
    };
    let mut leaders_seen = std::collections::HashSet::new();
    within("many terms", async {
        while terms.load(Ordering::SeqCst) < TERMS {
            if let Some(i) = led_rx.recv().await {
                leaders_seen.insert(i);
            }
            let violations = violations.lock().unwrap();
            assert!(violations.is_empty(), "{violations:?}");
        }
    })
    .await;
    // The queue is fair: everyone led (each requeues at the back).
    assert_eq!(leaders_seen.len(), PARTICIPANTS, "{leaders_seen:?}");
    // Between a term's end and its requeue a participant briefly has no node.
    let participants = within("every participant queued", async {
        loop {
            let p = selectors[0].participants().await.unwrap();
            if p.len() == PARTICIPANTS {
                return p;
            }
        }
    })
    .await;
    assert!(participants
        .iter()
        .all(|p| p.id.starts_with("participant-")));
    assert_eq!(participants.iter().filter(|p| p.is_leader).count(), 1);
    assert!(selectors[0].current_leader().await.unwrap().is_some());
    sampling.store(false, Ordering::SeqCst);
    assert!(sampler.await.expect("sampler") > 10);
    assert!(violations.lock().unwrap().is_empty(), "{violations:?}");
    for s in selectors.iter() {
        s.close().await.unwrap();
    }
    assert!(selectors.iter().all(|s| !s.has_leadership()));
    wait_children(&clients[0], PATH, |c| c.is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_session_expires_is_cancelled_and_another_leads() {
    let server = server().await;
    let a = client(&server.connect_string()).await;
    let b = client(&server.connect_string()).await;
    let (tx, mut rx) = mpsc::unbounded_channel::<(&'static str, Option<CancelReason>)>();
    let make = |client, name: &'static str| {
        let tx = tx.clone();
        LeaderSelector::new(client, PATH, name, move |ctx| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((name, None));
                // Lead until told to stop.
                let reason = ctx.cancelled().await;
                let _ = tx.send((name, Some(reason)));
            }
        })
        .unwrap()
    };
    let first = make(a.clone(), "a");
    let second = make(b.clone(), "b");
    first.start().unwrap();
    assert_eq!(within("a leads", rx.recv()).await, Some(("a", None)));
    assert!(first.has_leadership());
    second.start().unwrap();
    wait_children(&b, PATH, |c| c.len() == 2).await;
    assert!(!second.has_leadership());

    assert!(server.expire_session(a.session_id()).await);
    // The server deletes a's node when it expires the session, so b may take over before a's
    // client has heard of the expiry (the gap fencing tokens cover): both orders are fine.
    let mut events = Vec::new();
    for _ in 0..2 {
        events.push(
            within_for("a cancelled and b leading", SESSION_TIMEOUT * 2, rx.recv())
                .await
                .unwrap(),
        );
    }
    let a_reason = events.iter().find(|(who, _)| *who == "a").map(|(_, r)| *r);
    assert!(
        matches!(
            a_reason,
            Some(Some(CancelReason::Suspended | CancelReason::Lost))
        ),
        "{events:?}"
    );
    assert!(events.contains(&("b", None)), "{events:?}");
    assert!(!first.has_leadership());
    assert!(second.has_leadership());
    let leader = second.current_leader().await.unwrap().expect("a leader");
    assert_eq!(leader.id, "b");
    second.close().await.unwrap();
    assert_eq!(
        within("b is cancelled by close", rx.recv()).await,
        Some(("b", Some(CancelReason::Closed)))
    );
    first.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_leadership_requeue_and_a_closure_ignoring_cancellation() {
    let server = server().await;
    let c = client(&server.connect_string()).await;
    let (tx, mut rx) = mpsc::unbounded_channel::<Option<CancelReason>>();
    let selector = {
        let tx = tx.clone();
        LeaderSelector::new(c.clone(), PATH, "polite", move |ctx| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(None);
                let _ = tx.send(Some(ctx.cancelled().await));
            }
        })
        .unwrap()
    };
    selector.start().unwrap();
    assert_eq!(within("leads", rx.recv()).await, Some(None));
    // Not queued again while leading.
    assert!(!selector.requeue().unwrap());
    selector.interrupt_leadership();
    assert_eq!(
        within("interrupted", rx.recv()).await,
        Some(Some(CancelReason::Interrupted))
    );
    within("leadership ends", async {
        let mut l = selector.leadership();
        l.wait_for(|l| !*l).await.unwrap();
    })
    .await;
    // Without auto-requeue it stays out until requeued.
    wait_children(&c, PATH, |c| c.is_empty()).await;
    assert!(selector.requeue().unwrap());
    assert_eq!(within("leads again", rx.recv()).await, Some(None));

    // A closure that never looks at the cancellation is dropped after the grace period, and
    // the lock is released only then.
    let dropped = Arc::new(AtomicBool::new(false));
    let stubborn = {
        let dropped = dropped.clone();
        LeaderSelector::builder(c.clone(), PATH, move |_ctx| {
            let flag = SetOnDrop(dropped.clone());
            async move {
                let _flag = flag;
                std::future::pending::<()>().await;
            }
        })
        .id("stubborn")
        .cancel_grace(Duration::from_millis(200))
        .build()
        .unwrap()
    };
    selector.close().await.unwrap();
    assert_eq!(
        within("closed", rx.recv()).await,
        Some(Some(CancelReason::Closed))
    );
    stubborn.start().unwrap();
    within("the stubborn one leads", async {
        let mut l = stubborn.leadership();
        l.wait_for(|l| *l).await.unwrap();
    })
    .await;
    let started = tokio::time::Instant::now();
    stubborn.interrupt_leadership();
    wait_children(&c, PATH, |c| c.is_empty()).await;
    assert!(
        dropped.load(Ordering::SeqCst),
        "the node went before the closure"
    );
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(!stubborn.has_leadership());
    stubborn.close().await.unwrap();
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_error_policy_decides_whether_suspended_cancels_leadership() {
    let mut server = server().await;
    let client = client_builder(&server.connect_string())
        .connection_state_error_policy(ConnectionStateErrorPolicy::Session)
        .build()
        .unwrap();
    client.block_until_connected(PATIENCE).await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel::<(&'static str, Option<CancelReason>)>();
    let make = |builder: zk_recipes::LeaderSelectorBuilder| builder.build().unwrap();
    let selector = |name: &'static str| {
        let tx = tx.clone();
        LeaderSelector::builder(client.clone(), PATH, move |ctx| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((name, None));
                let reason = ctx.cancelled().await;
                let _ = tx.send((name, Some(reason)));
            }
        })
        .id(name)
    };

    // The client's Session policy: a restart of the server (SUSPENDED, then RECONNECTED
    // with the same session) does not cancel leadership.
    let session = make(selector("session"));
    session.start().unwrap();
    assert_eq!(within("leads", rx.recv()).await, Some(("session", None)));
    let mut states = client.connection_states();
    server.restart().await.unwrap();
    wait_state(&mut states, ConnectionState::Suspended).await;
    wait_state(&mut states, ConnectionState::Reconnected).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rx.try_recv().is_err(), "cancelled under the Session policy");
    assert!(session.has_leadership());
    session.close().await.unwrap();
    assert_eq!(
        within("cancelled by close", rx.recv()).await,
        Some(("session", Some(CancelReason::Closed)))
    );

    // The selector's own Standard policy overrides the client's: SUSPENDED cancels.
    let standard = make(selector("standard").error_policy(ConnectionStateErrorPolicy::Standard));
    standard.start().unwrap();
    assert_eq!(within("leads", rx.recv()).await, Some(("standard", None)));
    server.restart().await.unwrap();
    assert_eq!(
        within("cancelled on SUSPENDED", rx.recv()).await,
        Some(("standard", Some(CancelReason::Suspended)))
    );
    standard.close().await.unwrap();
}

/// Dropping a selector cancels its leader as `close` does, and its lock node goes only once
/// the closure has stopped: a closure still cleaning up (here, blocking its thread) finds the
/// node there, so nobody else leads meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_selector_releases_its_node_after_its_closure_stopped() {
    let server = server().await;
    let c = client(&server.connect_string()).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let selector = LeaderSelector::builder(c.clone(), PATH, move |ctx| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(None);
            let reason = ctx.cancelled().await;
            // Cleanup that does not yield for a while.
            std::thread::sleep(Duration::from_millis(300));
            let nodes = ctx.client().get_children(PATH).await.map(|n| n.len());
            let _ = tx.send(Some((reason, nodes)));
        }
    })
    .cancel_grace(Duration::from_secs(5))
    .build()
    .unwrap();
    selector.start().unwrap();
    assert_eq!(within("leads", rx.recv()).await, Some(None));
    drop(selector);
    assert_eq!(
        within("the closure finishes its cleanup", rx.recv()).await,
        Some(Some((CancelReason::Closed, Ok(1))))
    );
    wait_children(&c, PATH, |c| c.is_empty()).await;
}
