//! `SharedCount` and `SharedValue` against the embedded server: compare-and-set on the node
//! version, caches that follow other clients' writes, and a value read again after a server
//! restart, a new session, and a re-created node.

mod support;

use std::time::Duration;

use support::*;
use zk_recipes::{Error, SharedCount, SharedValue};

const SHARED: &str = "/recipes/shared/count";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_count_cas_with_a_stale_version_fails_and_both_caches_follow() {
    let server = server().await;
    let ca = client(&server.connect_string()).await;
    let cb = client(&server.connect_string()).await;
    let a = SharedCount::new(ca.clone(), SHARED, 7).unwrap();
    let b = SharedCount::new(cb.clone(), SHARED, 99).unwrap();
    assert_eq!(a.versioned_value().version, -1);
    assert!(matches!(
        a.try_set_value(1, 0).await,
        Err(Error::NotStarted)
    ));
    assert!(matches!(a.set_value(1).await, Err(Error::NotStarted)));
    a.start().await.unwrap();
    b.start().await.unwrap();
    assert!(matches!(b.start().await, Err(Error::AlreadyStarted)));
    // The first start created the node with its seed; the second found it.
    assert_eq!(a.value(), 7);
    assert_eq!(b.value(), 7);
    let (data, _) = ca.get_data(SHARED).await.unwrap();
    assert_eq!(data, 7i32.to_be_bytes());

    let stale = b.versioned_value();
    let mut b_values = b.values();
    let seen = a.versioned_value();
    assert!(a.try_set_value(8, seen.version).await.unwrap());
    assert_eq!(a.value(), 8);
    // b's cache follows a's write (through its watch).
    let v = within("b sees 8", b_values.wait_for(|v| v.value == 8))
        .await
        .unwrap()
        .clone();
    assert_eq!(v.version, stale.version + 1);
    // A CAS with the stale version fails and leaves the node alone.
    assert!(!b.try_set_value(100, stale.version).await.unwrap());
    assert_eq!(b.value(), 8);
    let (data, _) = ca.get_data(SHARED).await.unwrap();
    assert_eq!(data, 8i32.to_be_bytes());
    // With the fresh version it succeeds, and a sees it.
    assert!(b
        .try_set_value(100, b.versioned_value().version)
        .await
        .unwrap());
    let mut a_values = a.values();
    within("a sees 100", a_values.wait_for(|v| v.value == 100))
        .await
        .unwrap();
    assert!(matches!(
        a.try_set_value(1, -1).await,
        Err(Error::InvalidArgument(_))
    ));

    // set_value writes whatever the version.
    a.set_value(-5).await.unwrap();
    within("b sees -5", b_values.wait_for(|v| v.value == -5))
        .await
        .unwrap();

    // A closed count no longer follows the node: once an open one on the same client has
    // seen the write (so its notification has arrived), the closed one still holds -5.
    let witness = SharedCount::new(cb.clone(), SHARED, 0).unwrap();
    witness.start().await.unwrap();
    b.close().await;
    a.set_value(6).await.unwrap();
    within(
        "an open count sees 6",
        witness.values().wait_for(|v| v.value == 6),
    )
    .await
    .unwrap();
    assert_eq!(b.value(), -5);
    witness.close().await;
    assert!(matches!(b.set_value(1).await, Err(Error::Closed)));
    a.close().await;
}

/// A compare-and-set whose write applies but whose reply is lost: the node holds our count
/// at the next version, which another writer counting from the same value would have
/// written too, so the outcome is an error, not a guess (a guessed `true` loses the other
/// writer's increment; Curator's re-sent write reports `false` and the caller increments
/// twice). A write that never reached the server is `false`, the count unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cas_whose_reply_is_lost_is_an_error_and_one_never_sent_is_false() {
    let (server, proxy) = server_behind_a_proxy().await;
    let observer = client(&server.connect_string()).await;
    let c = client(&proxy.connect_string()).await;
    let count = std::sync::Arc::new(SharedCount::new(c.clone(), SHARED, 5).unwrap());
    count.start().await.unwrap();

    let (_, _, written) = observer.get_data(SHARED).watched().await.unwrap();
    proxy.set_mode(Mode::DropReplies);
    let seen = count.versioned_value();
    let cas = tokio::spawn({
        let count = count.clone();
        async move { count.try_set_value(seen.value + 1, seen.version).await }
    });
    within("the write applies", written).await;
    proxy.cut();
    proxy.set_mode(Mode::Forward);
    assert_eq!(
        within("the CAS", cas).await.unwrap(),
        Err(Error::Zk(zk_client::Error::ConnectionLoss))
    );
    let (data, stat) = observer.get_data(SHARED).await.unwrap();
    assert_eq!((data, stat.version), (6i32.to_be_bytes().to_vec(), 1));

    // Now the request is lost on the way: the node is unchanged, so `false`.
    let mut states = c.connection_states();
    let seen = count.versioned_value();
    assert_eq!(seen.value, 6);
    proxy.set_mode(Mode::Blackhole);
    let cas = tokio::spawn({
        let count = count.clone();
        async move { count.try_set_value(seen.value + 1, seen.version).await }
    });
    wait_state(&mut states, zk_client::ConnectionState::Suspended).await;
    proxy.set_mode(Mode::Forward);
    assert_eq!(within("the CAS", cas).await.unwrap(), Ok(false));
    let (data, _) = observer.get_data(SHARED).await.unwrap();
    assert_eq!(data, 6i32.to_be_bytes());

    // A compare-and-set on a deleted node is an error, as in Curator (not a lost race).
    let seen = count.versioned_value();
    observer.delete(SHARED).await.unwrap();
    assert_eq!(
        count.try_set_value(seen.value + 1, seen.version).await,
        Err(Error::Zk(zk_client::Error::NoNode))
    );
    count.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_count_is_read_again_after_a_server_restart_and_a_new_session() {
    let mut server = server().await;
    let ca = client(&server.connect_string()).await;
    let cb = client(&server.connect_string()).await;
    let a = SharedCount::new(ca.clone(), SHARED, 0).unwrap();
    a.start().await.unwrap();
    let b = SharedCount::new(cb.clone(), SHARED, 0).unwrap();
    b.start().await.unwrap();
    let mut b_values = b.values();

    // Across a server restart (same sessions): written right after, seen by b.
    server.restart().await.unwrap();
    ca.block_until_connected(PATIENCE).await.unwrap();
    a.set_value(1).await.unwrap();
    within(
        "b sees 1 after the restart",
        b_values.wait_for(|v| v.value == 1),
    )
    .await
    .unwrap();

    // b's session expires: its watch ends with the session. A write made before b has its
    // new session must still reach b's cache (it reads again with the new session).
    let mut states = cb.connection_states();
    let old = cb.session_id();
    assert!(server.expire_session(old).await);
    a.set_value(2).await.unwrap();
    wait_state(&mut states, zk_client::ConnectionState::Reconnected).await;
    assert_ne!(cb.session_id(), old);
    within(
        "b sees 2 with its new session",
        b_values.wait_for(|v| v.value == 2),
    )
    .await
    .unwrap();
    // ...and keeps following with the new session.
    a.set_value(3).await.unwrap();
    within("b sees 3", b_values.wait_for(|v| v.value == 3))
        .await
        .unwrap();

    // Deleted and created again: b follows the new node.
    ca.delete(SHARED).await.unwrap();
    ca.create(SHARED).data(9i32.to_be_bytes()).await.unwrap();
    within(
        "b sees the re-created node",
        b_values.wait_for(|v| v.value == 9),
    )
    .await
    .unwrap();
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_value_holds_any_bytes_and_a_stale_cas_fails() {
    let server = server().await;
    let ca = client(&server.connect_string()).await;
    let cb = client(&server.connect_string()).await;
    let a = SharedValue::new(ca.clone(), "/recipes/shared/bytes", b"seed".to_vec()).unwrap();
    let b = SharedValue::new(cb.clone(), "/recipes/shared/bytes", b"other".to_vec()).unwrap();
    a.start().await.unwrap();
    b.start().await.unwrap();
    assert_eq!(b.value(), b"seed");
    let v = b.versioned_value();
    assert!(b.try_set_value(Vec::new(), v.version).await.unwrap());
    let mut a_values = a.values();
    within(
        "a sees the empty value",
        a_values.wait_for(|v| v.value.is_empty()),
    )
    .await
    .unwrap();
    assert!(!a.try_set_value(b"late".to_vec(), v.version).await.unwrap());
    assert!(a.value().is_empty());
    drop(a);
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_cancelled_while_the_server_is_unreachable_can_be_started_again() {
    let (_server, proxy) = server_behind_a_proxy().await;
    let c = client(&proxy.connect_string()).await;
    let count = SharedCount::new(c.clone(), "/recipes/shared/cancelled", 5).unwrap();
    let value = SharedValue::new(c.clone(), "/recipes/shared/cancelled-value", vec![1]).unwrap();
    // A dead network: the starts hang until their timeouts drop them.
    proxy.set_mode(Mode::Blackhole);
    let short = Duration::from_millis(300);
    assert!(tokio::time::timeout(short, count.start()).await.is_err());
    assert!(tokio::time::timeout(short, value.start()).await.is_err());
    // Dropped mid-start, they are not started (not stuck starting).
    assert!(matches!(count.set_value(6).await, Err(Error::NotStarted)));
    assert!(matches!(
        value.set_value(vec![2]).await,
        Err(Error::NotStarted)
    ));
    proxy.set_mode(Mode::Forward);
    proxy.cut();
    within("start again", count.start()).await.unwrap();
    within("start again", value.start()).await.unwrap();
    assert_eq!(count.value(), 5);
    within("set", count.set_value(6)).await.unwrap();
    assert_eq!(count.value(), 6);
    within("set", value.set_value(vec![2])).await.unwrap();
    assert_eq!(value.value(), vec![2]);
    count.close().await;
    value.close().await;
    assert!(matches!(count.set_value(7).await, Err(Error::Closed)));
}

/// Data a count cannot decode (an operator's `set /path 0`, one byte) does not wedge the
/// compare-and-set loop: the cache takes its version (keeping the last count), so a set
/// against the cached version replaces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_data_is_replaced_by_the_next_compare_and_set() {
    let server = server().await;
    let c = client(&server.connect_string()).await;
    let count = SharedCount::new(c.clone(), SHARED, 5).unwrap();
    count.start().await.unwrap();
    let operator = client(&server.connect_string()).await;
    let written = operator.set_data(SHARED, b"0".to_vec()).await.unwrap();
    within("the cache takes the write's version", async {
        let mut values = count.values();
        values
            .wait_for(|v| v.version == written.version)
            .await
            .unwrap();
    })
    .await;
    let mut applied = false;
    for _ in 0..10 {
        let v = count.versioned_value();
        if count.try_set_value(v.value + 1, v.version).await.unwrap() {
            applied = true;
            break;
        }
    }
    assert!(
        applied,
        "compare-and-set never succeeds over undecodable data"
    );
    assert_eq!(count.value(), 6);
    count.close().await;
}
