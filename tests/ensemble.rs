//! zk-client against a zk-server ensemble (`TestingCluster`): one tree on every member,
//! failover with nothing acknowledged lost, sessions and their ephemerals across members,
//! expiry by the leader, minority members that stop serving and catch up.

mod support;

use std::time::Duration;

use support::{connected_client, PATIENCE};
use zk::client::{Client, CreateMode, EventType};
use zk::server::{TestingCluster, TestingClusterBuilder};

async fn cluster(voters: usize) -> (TestingCluster, usize) {
    let cluster = TestingCluster::start(voters).await.expect("cluster starts");
    let leader = cluster
        .wait_for_leader(PATIENCE)
        .await
        .expect("a leader is elected and every member serves");
    (cluster, leader)
}

/// One client per member, each connected to that member only.
async fn client_per_member(cluster: &TestingCluster) -> Vec<Client> {
    let mut clients = Vec::new();
    for i in 0..cluster.len() {
        clients.push(connected_client(&cluster.member_connect_string(i)).await);
    }
    clients
}

async fn children_after_sync(client: &Client, path: &str) -> Vec<String> {
    client.sync(path).await.expect("sync");
    let mut kids = client.get_children(path).await.expect("children");
    kids.sort();
    kids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_serves_one_tree_with_ordered_sequence_numbers_and_cross_member_watches() {
    let (cluster, _) = cluster(3).await;
    let clients = client_per_member(&cluster).await;
    clients[0].create("/e").await.expect("create /e");

    // Writes through every member (learners forward them to the leader).
    for (i, client) in clients.iter().enumerate() {
        client
            .create(&format!("/e/m{i}"))
            .data(format!("from {i}").into_bytes())
            .await
            .expect("create through a member");
    }
    // Sequential creates from all members get distinct, increasing numbers.
    let mut sequential = Vec::new();
    for _ in 0..3 {
        for client in &clients {
            let created = client
                .create("/e/seq-")
                .mode(CreateMode::PersistentSequential)
                .await
                .expect("sequential create");
            sequential.push(created.path);
        }
    }
    let paths = &sequential;
    assert!(
        paths.windows(2).all(|w| w[0] < w[1]),
        "sequence numbers increase in the order the creates were acknowledged: {paths:?}"
    );

    // A watch set on one member fires for a change made through another.
    let (_, watch) = clients[0]
        .exists("/e/w")
        .watched()
        .await
        .expect("exists watch");
    clients[2].create("/e/w").await.expect("create /e/w");
    let event = tokio::time::timeout(PATIENCE, watch)
        .await
        .expect("the watch fires");
    assert_eq!(event.event_type, EventType::NodeCreated);

    // Every member sees the same tree (sync first: reads are served locally).
    let expected = children_after_sync(&clients[0], "/e").await;
    assert_eq!(expected.len(), 3 + 9 + 1);
    for client in &clients {
        assert_eq!(children_after_sync(client, "/e").await, expected);
        let (data, _) = client.get_data("/e/m1").await.expect("get");
        assert_eq!(data, b"from 1");
    }

    // A failed write answers through the same path: NodeExists from every member.
    for client in &clients {
        let err = client.create("/e/m0").await.expect_err("already exists");
        assert_eq!(err, zk::client::Error::NodeExists);
    }
    let mntr = cluster
        .four_letter_word(cluster.leader().await.expect("leader"), "mntr")
        .await
        .expect("mntr");
    assert!(mntr.contains("zk_server_state\tleader"), "{mntr}");
    assert!(mntr.contains("zk_synced_followers\t2"), "{mntr}");
    for client in clients {
        client.close().await.expect("close");
    }
}

/// What `/zookeeper/config` shows on `member`, checked for Apache's form: one
/// `server.N=host:port:port:participant;clientHost:clientPort` line per member, then
/// `version=0`, written locally (mzxid = config version 0, data version -1).
async fn shown_config(cluster: &TestingCluster, member: usize) -> String {
    let client = connected_client(&cluster.member_connect_string(member)).await;
    let (data, stat) = client.get_config().await.expect("get_config");
    client.close().await.expect("close");
    let text = String::from_utf8(data).expect("UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), cluster.len() + 1, "{text}");
    for (i, line) in lines[..cluster.len()].iter().enumerate() {
        let client_port = cluster
            .member_connect_string(i)
            .rsplit(':')
            .next()
            .map(str::to_owned)
            .expect("a port");
        assert!(
            line.starts_with(&format!("server.{}=127.0.0.1:", i + 1))
                && line.ends_with(&format!(":participant;127.0.0.1:{client_port}")),
            "{line}"
        );
    }
    assert_eq!(lines[cluster.len()], "version=0");
    assert_eq!((stat.mzxid, stat.version), (0, -1));
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_shows_the_ensemble_configuration_also_after_a_state_transfer() {
    let mut cluster = TestingClusterBuilder::default()
        .snap_count(20)
        .start()
        .await
        .expect("cluster");
    let leader = cluster.wait_for_leader(PATIENCE).await.expect("a leader");
    let reference = shown_config(&cluster, leader).await;
    for i in 0..cluster.len() {
        assert_eq!(shown_config(&cluster, i).await, reference, "member {i}");
    }
    // A member that comes back behind the compacted log gets the leader's snapshot, and
    // shows its own configuration again afterwards.
    let behind = (leader + 1) % 3;
    let writer = connected_client(&cluster.member_connect_string(leader)).await;
    cluster.kill(behind).await;
    for i in 0..60 {
        writer.create(&format!("/c{i}")).await.expect("create");
    }
    cluster.restart(behind).await.expect("restart");
    cluster.wait_for_leader(PATIENCE).await.expect("rejoined");
    assert_eq!(shown_config(&cluster, behind).await, reference);
    writer.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_member_a_client_uses_moves_it_to_another_with_its_session() {
    let (mut cluster, _) = cluster(3).await;
    let client = connected_client(&cluster.connect_string()).await;
    let session = client.session_id();
    fn member_of(cluster: &TestingCluster, client: &Client) -> usize {
        let server = client.connected_server().expect("connected");
        assert_eq!(server.host, "127.0.0.1");
        cluster
            .member_with_client_port(server.port)
            .expect("a member's client port")
    }
    let first = member_of(&cluster, &client);
    let mut states = client.connection_states();
    cluster.kill(first).await;
    tokio::time::timeout(PATIENCE, async {
        use futures::StreamExt;
        while states.next().await != Some(zk::client::ConnectionState::Reconnected) {}
    })
    .await
    .expect("reconnected");
    let second = member_of(&cluster, &client);
    assert_ne!(second, first);
    assert_eq!(client.session_id(), session);
    client.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ensemble_tracker_learns_the_members_and_fails_over_beyond_the_connect_string() {
    let (mut cluster, _) = cluster(3).await;
    let only_first = cluster.member_connect_string(0);
    let tracking = support::client_builder(&only_first)
        .ensemble_tracker(true)
        .build()
        .expect("client");
    tracking
        .block_until_connected(PATIENCE)
        .await
        .expect("connect");
    let plain = connected_client(&only_first).await;
    tokio::time::timeout(PATIENCE, async {
        while tracking.servers().len() != 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the tracker read the configuration");
    let mut servers: Vec<String> = tracking.servers().iter().map(ToString::to_string).collect();
    servers.sort();
    let mut members: Vec<String> = (0..3).map(|i| cluster.member_connect_string(i)).collect();
    members.sort();
    assert_eq!(servers, members);
    assert_eq!(plain.servers().len(), 1, "no tracker, no change");

    // The member in the connect string dies: the tracking client goes on with its session on
    // another member (it may have moved there already: a list grown from one server to three
    // moves two clients in three, to balance the load).
    let session = tracking.session_id();
    cluster.kill(0).await;
    tracking
        .create("/tracked")
        .await
        .expect("a write after failover");
    assert_eq!(tracking.session_id(), session);
    assert_ne!(
        tracking.connected_server().map(|s| s.to_string()),
        Some(only_first)
    );
    tracking.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_resume_after_the_leader_is_killed_and_nothing_acknowledged_is_lost() {
    let (mut cluster, leader) = cluster(3).await;
    let client = connected_client(&cluster.connect_string()).await;
    let session = client.session_id();
    client.create("/f").await.expect("create /f");
    client
        .create("/f/eph")
        .mode(CreateMode::Ephemeral)
        .await
        .expect("ephemeral");
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        let path = format!("/f/before-{i}");
        client.create(&path).await.expect("write before the kill");
        acknowledged.push(path);
    }

    cluster.kill(leader).await;
    let new_leader = cluster
        .wait_for_leader(PATIENCE)
        .await
        .expect("the two survivors elect a new leader");
    assert_ne!(new_leader, leader);

    for i in 0..20 {
        let path = format!("/f/after-{i}");
        // The retry policy rides out the failover; an idempotent create makes a retried
        // create whose first attempt did commit harmless.
        client
            .create(&path)
            .idempotent()
            .await
            .expect("write after the failover");
        acknowledged.push(path);
    }
    assert_eq!(
        client.session_id(),
        session,
        "the session moved to another member"
    );
    let (_, stat) = client
        .exists("/f/eph")
        .await
        .expect("exists")
        .map(|s| ((), s))
        .expect("the ephemeral survives the failover");
    assert_eq!(stat.ephemeral_owner, session);

    cluster.restart(leader).await.expect("old leader restarts");
    cluster
        .wait_for_leader(PATIENCE)
        .await
        .expect("the restarted member rejoins");
    for i in 0..cluster.len() {
        let reader = connected_client(&cluster.member_connect_string(i)).await;
        let kids = children_after_sync(&reader, "/f").await;
        for path in &acknowledged {
            let name = path.trim_start_matches("/f/");
            assert!(
                kids.iter().any(|k| k == name),
                "member {i} lacks acknowledged {path}"
            );
        }
        reader.close().await.expect("close");
    }
    client.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_expires_a_session_and_its_ephemerals_vanish_on_every_member() {
    let (cluster, leader) = cluster(3).await;
    let follower = (leader + 1) % 3;
    let owner = connected_client(&cluster.member_connect_string(follower)).await;
    owner.create("/x").await.expect("create");
    owner
        .create("/x/eph")
        .mode(CreateMode::Ephemeral)
        .await
        .expect("ephemeral through a follower");
    let clients = client_per_member(&cluster).await;
    for client in &clients {
        client.sync("/x").await.expect("sync");
        assert!(client.exists("/x/eph").await.expect("exists").is_some());
    }
    // The follower relays the session's liveness: it outlives several session timeouts.
    tokio::time::sleep(support::SESSION_TIMEOUT * 2).await;
    assert!(clients[leader]
        .exists("/x/eph")
        .await
        .expect("exists")
        .is_some());

    assert!(cluster.expire_session(owner.session_id()).await);
    for client in &clients {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            client.sync("/x").await.expect("sync");
            if client.exists("/x/eph").await.expect("exists").is_none() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the ephemeral outlived its session"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for client in clients {
        client.close().await.expect("close");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_member_stops_serving_and_catches_up_after_healing() {
    let (mut cluster, leader) = cluster(3).await;
    let lonely = (leader + 1) % 3;
    let writer = connected_client(&cluster.member_connect_string(leader)).await;
    writer.create("/p").await.expect("create");
    let stranded = connected_client(&cluster.member_connect_string(lonely)).await;
    let mut stranded_states = stranded.connection_states();

    cluster.isolate(lonely);
    // Its clients are disconnected (it stops serving rather than answer from a stale state).
    loop {
        match support::next_state(&mut stranded_states).await {
            zk::client::ConnectionState::Connected => {}
            zk::client::ConnectionState::Suspended => break,
            other => panic!("{other:?} before SUSPENDED"),
        }
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while cluster.mode(lonely).await.is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "an isolated member keeps serving"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // As Apache's: srvr says so, and isro answers `null` (not `rw`: clients that look for a
    // read-write server pass it by).
    let says = |word| cluster.four_letter_word(lonely, word);
    assert_eq!(
        says("srvr").await.as_deref(),
        Some("This ZooKeeper instance is not currently serving requests\n")
    );
    assert_eq!(says("isro").await.as_deref(), Some("null"));
    // The majority keeps a leader and keeps writing.
    let majority_leader = cluster
        .wait_for_leader(PATIENCE)
        .await
        .expect("the majority has a leader");
    assert_ne!(majority_leader, lonely);
    assert_eq!(
        cluster
            .four_letter_word(majority_leader, "isro")
            .await
            .as_deref(),
        Some("rw")
    );
    let writer = connected_client(&cluster.member_connect_string(majority_leader)).await;
    for i in 0..10 {
        writer
            .create(&format!("/p/during-{i}"))
            .await
            .expect("majority writes");
    }

    cluster.heal();
    cluster
        .wait_for_leader(PATIENCE)
        .await
        .expect("the member rejoins");
    let reader = connected_client(&cluster.member_connect_string(lonely)).await;
    let kids = children_after_sync(&reader, "/p").await;
    assert_eq!(
        kids.len(),
        10,
        "the healed member has every write: {kids:?}"
    );
    reader.close().await.expect("close");
    writer.close().await.expect("close");
    stranded.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_behind_the_compacted_log_catches_up_from_the_leaders_snapshot() {
    let mut cluster = TestingClusterBuilder::default()
        .snap_count(40)
        .start()
        .await
        .expect("cluster");
    let leader = cluster.wait_for_leader(PATIENCE).await.expect("a leader");
    let behind = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let writer = connected_client(&cluster.member_connect_string(other)).await;
    writer.create("/s").await.expect("create");
    writer
        .create("/s/eph")
        .mode(CreateMode::Ephemeral)
        .await
        .expect("ephemeral");
    cluster.kill(behind).await;
    // Several snapshots' worth of txns while it is down: the leader no longer has them as a
    // diff.
    for i in 0..150 {
        writer
            .set_data("/s", format!("v{i}").into_bytes())
            .await
            .expect("write while a member is down");
        if i % 10 == 0 {
            writer
                .create(&format!("/s/n{i}"))
                .await
                .expect("create while a member is down");
        }
    }
    // The members took snapshots (compacting their logs past what `behind` has).
    let snapshots = std::fs::read_dir(cluster.data_dir(leader).join("version-2"))
        .expect("the leader's data directory")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("snapshot."))
        .count();
    assert_eq!(snapshots, 1, "one snapshot, the newest, is kept");
    cluster.restart(behind).await.expect("restart");
    cluster
        .wait_for_leader(PATIENCE)
        .await
        .expect("the member rejoins");
    let reader = connected_client(&cluster.member_connect_string(behind)).await;
    let (data, stat) = reader.get_data("/s").await.expect("get");
    assert_eq!(data, b"v149");
    assert_eq!(stat.version, 150);
    assert_eq!(children_after_sync(&reader, "/s").await.len(), 16);
    // The snapshot carried the sessions: the writer's ephemeral and session live there too.
    let (_, eph) = reader.get_data("/s/eph").await.expect("the ephemeral");
    assert_eq!(eph.ephemeral_owner, writer.session_id());

    // Every member restarts from its own snapshot plus the log after it.
    for i in 0..3 {
        cluster.kill(i).await;
    }
    for i in 0..3 {
        cluster.restart(i).await.expect("restart");
    }
    cluster
        .wait_for_leader(PATIENCE)
        .await
        .expect("the ensemble recovers");
    for i in 0..3 {
        let c = connected_client(&cluster.member_connect_string(i)).await;
        let (data, _) = c.get_data("/s").await.expect("get after a full restart");
        assert_eq!(data, b"v149", "member {i}");
        c.close().await.expect("close");
    }
    // Their sessions may have expired during the full restart.
    let _ = reader.close().await;
    let _ = writer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_reattached_at_another_member_is_fenced_off_its_old_connection() {
    use zk::client::{Acl, Session, SessionConfig};
    let (cluster, leader) = cluster(3).await;
    let (a, b) = ((leader + 1) % 3, (leader + 2) % 3);
    let connect = |i: usize, attach: Option<(i64, Vec<u8>)>| {
        let mut config = SessionConfig::new(&cluster.member_connect_string(i))
            .expect("connect string")
            .session_timeout(support::SESSION_TIMEOUT);
        if let Some((id, password)) = attach {
            config = config.attach(id, &password);
        }
        Session::connect(config, PATIENCE)
    };
    let first = connect(a, None).await.expect("session on member a");
    let open = Acl::open_unsafe();
    first
        .create("/moved", b"", &open, CreateMode::Persistent, None)
        .await
        .expect("create through a");
    // The same session, re-attached through member b.
    let second = connect(b, Some((first.session_id(), first.session_password())))
        .await
        .expect("re-attach on member b");
    assert_eq!(second.session_id(), first.session_id());
    second
        .create("/moved/by-b", b"", &open, CreateMode::Persistent, None)
        .await
        .expect("the session writes through its new member");
    // The old connection is fenced: its write is refused and its connection closed
    // (SESSIONMOVED, ZOOKEEPER-710), and the write never happens.
    let stale = first
        .create("/moved/by-a", b"", &open, CreateMode::Persistent, None)
        .await;
    assert!(stale.is_err(), "a write through the old member succeeded");
    assert_eq!(second.exists("/moved/by-a").await.expect("exists"), None);
    second.close().await.expect("close");
}

// ----- RELIABILITY.md's bug table, as cluster scenarios -----

async fn exists_after_sync(client: &Client, path: &str) -> bool {
    client.sync(path).await.expect("sync");
    client.exists(path).await.expect("exists").is_some()
}

/// ZOOKEEPER-2355 (and ZOOKEEPER-1367's DIFF half): a member down while a session is closed
/// gets the closeSession in its sync and drops the session's ephemeral.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_2355_a_member_down_during_a_session_close_drops_the_ephemeral_on_rejoin() {
    let (mut cluster, leader) = cluster(3).await;
    let down = (leader + 1) % 3;
    let owner = connected_client(&cluster.member_connect_string(leader)).await;
    owner.create("/z").await.expect("create");
    owner
        .create("/z/eph")
        .mode(CreateMode::Ephemeral)
        .await
        .expect("ephemeral");
    let on_down = connected_client(&cluster.member_connect_string(down)).await;
    assert!(exists_after_sync(&on_down, "/z/eph").await);
    on_down.close().await.expect("close");

    cluster.kill(down).await;
    assert!(cluster.expire_session(owner.session_id()).await);
    let checker = connected_client(&cluster.member_connect_string(leader)).await;
    assert!(!exists_after_sync(&checker, "/z/eph").await);
    cluster.restart(down).await.expect("restart");
    cluster.wait_for_leader(PATIENCE).await.expect("rejoined");
    let reader = connected_client(&cluster.member_connect_string(down)).await;
    assert!(
        !exists_after_sync(&reader, "/z/eph").await,
        "the rejoined member kept an ephemeral of a closed session"
    );
    reader.close().await.expect("close");
    checker.close().await.expect("close");
}

/// ZOOKEEPER-1367: after the whole ensemble restarts, a closed session's ephemerals are gone
/// everywhere and a live session keeps its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_1367_after_a_full_restart_only_live_sessions_keep_their_ephemerals() {
    let (mut cluster, _) = cluster(3).await;
    let live = connected_client(&cluster.connect_string()).await;
    let closed = connected_client(&cluster.connect_string()).await;
    live.create("/r").await.expect("create");
    live.create("/r/live")
        .mode(CreateMode::Ephemeral)
        .await
        .expect("ephemeral");
    closed
        .create("/r/closed")
        .mode(CreateMode::Ephemeral)
        .await
        .expect("ephemeral");
    closed.close().await.expect("close session");
    for i in 0..3 {
        cluster.kill(i).await;
    }
    for i in 0..3 {
        cluster.restart(i).await.expect("restart");
    }
    cluster.wait_for_leader(PATIENCE).await.expect("recovered");
    for i in 0..3 {
        let reader = connected_client(&cluster.member_connect_string(i)).await;
        assert!(!exists_after_sync(&reader, "/r/closed").await, "member {i}");
        let (_, stat) = reader.get_data("/r/live").await.expect("live ephemeral");
        assert_eq!(stat.ephemeral_owner, live.session_id(), "member {i}");
        reader.close().await.expect("close");
    }
    let _ = live.close().await;
}

/// A leader cut off from its followers steps down (within a tick of losing them) and
/// acknowledges no write; the majority elects and writes on; the old leader, restarted, has
/// exactly the majority's history. (The TRUNC of a txn logged by a leader alone,
/// ZOOKEEPER-1154, is `zookeeper_1154_…` in `zab::history`; here the leader is gone before
/// a write can reach its log, as a client sees it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leader_acknowledges_no_write_and_rejoins_with_the_majoritys_history() {
    use zk::client::{Acl, Session, SessionConfig};
    let (mut cluster, leader) = cluster(3).await;
    let config = SessionConfig::new(&cluster.member_connect_string(leader))
        .expect("connect string")
        .session_timeout(support::SESSION_TIMEOUT);
    let lonely = Session::connect(config, PATIENCE).await.expect("session");
    let open = Acl::open_unsafe();
    lonely
        .create("/t", b"", &open, CreateMode::Persistent, None)
        .await
        .expect("create");
    // From here on the leader's quorum links carry nothing (also while they close): the next
    // proposal reaches nobody.
    cluster.isolate(leader);
    let doomed = tokio::spawn(async move {
        let result = lonely
            .create("/t/uncommitted", b"", &open, CreateMode::Persistent, None)
            .await;
        (lonely, result)
    });
    // The isolated leader may still call itself leader for a tick: wait for another one.
    let new_leader = tokio::time::timeout(PATIENCE, async {
        loop {
            for i in (0..cluster.len()).filter(|&i| i != leader) {
                if cluster.mode(i).await.as_deref() == Some("leader") {
                    return i;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the majority elects");
    cluster.kill(leader).await;
    let (lonely, result) = doomed.await.expect("task");
    assert!(result.is_err(), "an isolated leader acknowledged a write");
    drop(lonely);
    cluster.heal();
    let writer = connected_client(&cluster.member_connect_string(new_leader)).await;
    writer
        .create("/t/after")
        .await
        .expect("the majority writes on");
    cluster.restart(leader).await.expect("restart");
    cluster.wait_for_leader(PATIENCE).await.expect("rejoined");
    for i in 0..3 {
        let reader = connected_client(&cluster.member_connect_string(i)).await;
        assert_eq!(
            children_after_sync(&reader, "/t").await,
            vec!["after".to_owned()],
            "member {i}"
        );
        reader.close().await.expect("close");
    }
    writer.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_serves_reads_forwards_writes_and_follows_a_new_leader() {
    let mut cluster = TestingClusterBuilder::default()
        .voters(3)
        .observers(1)
        .start()
        .await
        .expect("cluster");
    let leader = cluster.wait_for_leader(PATIENCE).await.expect("a leader");
    let observer = 3;
    assert_eq!(cluster.mode(observer).await.as_deref(), Some("observer"));
    let client = connected_client(&cluster.member_connect_string(observer)).await;
    client
        .create("/o")
        .data(b"through the observer".to_vec())
        .await
        .expect("a write through the observer");
    let voter = connected_client(&cluster.member_connect_string(leader)).await;
    let (data, _) = voter.get_data("/o").await.expect("on the leader");
    assert_eq!(data, b"through the observer");
    voter
        .set_data("/o", b"from a voter".to_vec())
        .await
        .expect("set");
    client.sync("/o").await.expect("sync");
    let (data, _) = client.get_data("/o").await.expect("read on the observer");
    assert_eq!(data, b"from a voter");
    voter.close().await.expect("close");

    // Observers never vote: the voters elect, and the observer follows the new leader.
    cluster.kill(leader).await;
    let new_leader = cluster
        .wait_for_leader(PATIENCE)
        .await
        .expect("a new leader");
    assert_ne!(new_leader, observer);
    assert_eq!(cluster.mode(observer).await.as_deref(), Some("observer"));
    client
        .set_data("/o", b"after the failover".to_vec())
        .await
        .expect("a write through the observer after the failover");
    let (data, _) = client.get_data("/o").await.expect("read");
    assert_eq!(data, b"after the failover");
    client.close().await.expect("close");
}
