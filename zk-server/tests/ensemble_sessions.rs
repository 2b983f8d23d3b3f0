//! Sessions in a `TestingCluster`, spoken to with raw wire-protocol clients: what a client
//! that freezes (its process stopped, its connection left open) does to its session.

mod support;

use std::time::Duration;

use support::{new_session, RawClient};
use zk_proto::CreateMode;
use zk_server::TestingCluster;

const PATIENCE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_client_connected_to_a_follower_loses_its_session_and_ephemerals() {
    let cluster = TestingCluster::start(3).await.expect("cluster starts");
    let leader = cluster
        .wait_for_leader(PATIENCE)
        .await
        .expect("a leader is elected");
    let follower = (leader + 1) % 3;
    let (mut frozen, response) =
        RawClient::connect_with(&cluster.member_connect_string(follower), new_session(2_000))
            .await
            .expect("handshake with a follower");
    assert_eq!(response.timeout, 2_000);
    frozen
        .create("/frozen", b"", CreateMode::Ephemeral)
        .await
        .expect("ephemeral through the follower");
    let last_sent = tokio::time::Instant::now();

    // From here on the frozen client sends nothing, not even pings, and keeps its connection
    // open: only the traffic of a session keeps it alive, so the leader must expire it.
    let mut observer = RawClient::connect(&cluster.member_connect_string(leader)).await;
    while observer.exists("/frozen", false).await.is_ok() {
        assert!(
            last_sent.elapsed() < Duration::from_secs(10),
            "the frozen client's session outlived five session timeouts"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Not before its timeout (less the latency of the reply to its last request).
    assert!(
        last_sent.elapsed() >= Duration::from_millis(1_500),
        "expired too early: {:?}",
        last_sent.elapsed()
    );
    drop(frozen);
}

/// Dynamic reconfiguration is disabled (Apache's default): a reconfig on any member of an
/// ensemble is answered RECONFIGDISABLED, as by a standalone server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconfig_is_disabled_on_every_member() {
    use zk_proto::{ErrorCode, OpCode};
    let cluster = TestingCluster::start(3).await.expect("cluster starts");
    cluster
        .wait_for_leader(PATIENCE)
        .await
        .expect("a leader is elected");
    for member in 0..3 {
        let mut c = RawClient::connect(&cluster.member_connect_string(member)).await;
        let (h, _) = c
            .call(OpCode::Reconfig, &support::reconfig_adding_a_member())
            .await;
        assert_eq!(
            h.err,
            ErrorCode::ReconfigDisabled.as_i32(),
            "member {member}"
        );
    }
}
