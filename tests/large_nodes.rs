//! Nodes larger than Apache's default `jute.maxbuffer` (1 MiB − 1), on servers whose limit was
//! raised: a client told that limit (`max_request_len`) stores and reads them back; a client
//! left at the default refuses them before sending; a request over the server's own limit
//! costs the connection, not the session.
//!
//! The target is a server with `jute.maxbuffer` = 4 MiB: `ZK_TEST_LARGE_CONNECT=host:port`
//! when set (`scripts/interop.sh` starts Apache ZooKeeper with `-Djute.maxbuffer=4194304`),
//! otherwise the embedded server configured so.

mod support;

use std::time::Duration;

use support::{remove_tree, unique_root, PATIENCE};
use zk::client::{Client, CreateMode, Error, Op, Session, SessionConfig, MAX_DATA_LEN};

/// The servers' `jute.maxbuffer` in these tests.
const SERVER_LIMIT: usize = 4 << 20;

/// The target's connect string, and the embedded server that serves it if there is one.
async fn target() -> (String, Option<zk::server::TestingServer>) {
    if let Ok(connect) = std::env::var("ZK_TEST_LARGE_CONNECT") {
        if !connect.trim().is_empty() {
            return (connect.trim().to_owned(), None);
        }
    }
    let server = zk::server::TestingServer::builder()
        .jute_max_buffer(SERVER_LIMIT)
        .start()
        .await
        .expect("start the embedded server");
    (server.connect_string(), Some(server))
}

/// `len` bytes that differ from one position to the next (a truncation or shift shows).
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ seed)
        .collect::<Vec<u8>>()
}

async fn client(connect: &str, max_request_len: Option<usize>) -> Client {
    let mut builder = support::client_builder(connect);
    if let Some(bytes) = max_request_len {
        builder = builder.max_request_len(bytes);
    }
    let client = builder.build().expect("client");
    client
        .block_until_connected(PATIENCE)
        .await
        .expect("connected");
    client
}

#[tokio::test]
async fn nodes_up_to_the_servers_limit_are_stored_and_read_back() {
    let (connect, _server) = target().await;
    let client = client(&connect, Some(SERVER_LIMIT)).await;
    let root = unique_root();
    client.create(&root).await.unwrap();
    let node = format!("{root}/big");

    let first = pattern(3 << 20, 1);
    client.create(&node).data(first.clone()).await.unwrap();
    let (read, stat) = client.get_data(&node).await.unwrap();
    assert_eq!(stat.data_length as usize, first.len());
    assert!(read == first, "the 3 MiB node reads back as written");

    // The most a setData may carry: the request (header 8, path, data, version) exactly at
    // the limit. Its getData reply (header 16, data, stat 68) is over the default 4 MiB reply
    // limit: the raised request limit raised that too.
    let most = SERVER_LIMIT - (8 + 4 + node.len() + 4 + 4);
    let second = pattern(most, 2);
    client.set_data(&node, second.clone()).await.unwrap();
    assert!(client.get_data(&node).await.unwrap().0 == second);

    let third = pattern(2 << 20, 3);
    client
        .transaction()
        .op(Op::SetData {
            path: node.clone(),
            data: third.clone(),
            version: -1,
        })
        .await
        .unwrap();
    assert!(client.get_data(&node).await.unwrap().0 == third);

    // A client at the default limit reads such a node (replies up to 4 MiB by default) ...
    let default = client_at_default(&connect).await;
    assert!(default.get_data(&node).await.unwrap().0 == third);
    // ... and refuses to write one, before sending: the node keeps its data.
    assert_eq!(
        default.set_data(&node, pattern(MAX_DATA_LEN + 1, 4)).await,
        Err(Error::DataTooLarge {
            len: MAX_DATA_LEN + 1,
            max: MAX_DATA_LEN
        })
    );
    assert_eq!(
        default
            .create(&format!("{root}/other"))
            .data(pattern(MAX_DATA_LEN + 1, 5))
            .await
            .map(|_| ()),
        Err(Error::DataTooLarge {
            len: MAX_DATA_LEN + 1,
            max: MAX_DATA_LEN
        })
    );
    assert!(default.get_data(&node).await.unwrap().0 == third);
    assert_eq!(
        default.exists(&format!("{root}/other")).await.unwrap(),
        None
    );
    default.close().await.unwrap();

    remove_tree(&client, &root).await;
    client.close().await.unwrap();
}

async fn client_at_default(connect: &str) -> Client {
    client(connect, None).await
}

/// A client that claims a larger limit than the server's sends the request; the server
/// closes the connection on it (Apache: "Len error"), the session lives on.
#[tokio::test]
async fn a_request_over_the_servers_limit_costs_the_connection_not_the_session() {
    let (connect, _server) = target().await;
    let config = SessionConfig::new(&connect)
        .unwrap()
        .session_timeout(Duration::from_secs(10))
        .max_request_len(2 * SERVER_LIMIT);
    let session = Session::connect(config, PATIENCE).await.unwrap();
    let id = session.session_id();
    let root = unique_root();
    let node = format!("{root}-mine");
    session
        .create(
            &node,
            b"kept",
            &zk::client::Acl::open_unsafe(),
            CreateMode::Ephemeral,
            None,
        )
        .await
        .unwrap();

    let result = session
        .set_data(&node, &pattern(SERVER_LIMIT + 1024, 6), -1)
        .await;
    assert_eq!(result, Err(Error::ConnectionLoss));

    session.wait_connected(PATIENCE).await.unwrap();
    assert_eq!(
        session.session_id(),
        id,
        "the same session after the reconnect"
    );
    let (data, _, _) = session.get_data(&node, false).await.unwrap();
    assert_eq!(data, b"kept", "the ephemeral and its data survive");
    session.close().await.unwrap();
}

/// Large txns in the log and large nodes in a snapshot are recovered on restart.
#[tokio::test]
async fn large_nodes_survive_a_restart() {
    let mut server = zk::server::TestingServer::builder()
        .jute_max_buffer(SERVER_LIMIT)
        .snap_count(2)
        .start()
        .await
        .expect("start the embedded server");
    let client = client(&server.connect_string(), Some(SERVER_LIMIT)).await;
    let written: Vec<(String, Vec<u8>)> = (0..4u8)
        .map(|i| {
            (
                format!("/large-{i}"),
                pattern((2 << 20) + usize::from(i), i),
            )
        })
        .collect();
    for (path, data) in &written {
        client.create(path).data(data.clone()).await.unwrap();
    }
    server.restart().await.expect("restart");
    client
        .block_until_connected(PATIENCE)
        .await
        .expect("reconnected");
    for (path, data) in &written {
        assert!(client.get_data(path).await.unwrap().0 == *data, "{path}");
    }
    client.close().await.unwrap();
}

/// A follower forwards a large write to the leader, and every member applies it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ensemble_replicates_large_nodes() {
    let cluster = zk::server::TestingCluster::builder()
        .jute_max_buffer(SERVER_LIMIT)
        .start()
        .await
        .expect("cluster starts");
    let leader = cluster.wait_for_leader(PATIENCE).await.expect("a leader");
    let follower = (leader + 1) % cluster.len();
    let writer = client(&cluster.member_connect_string(follower), Some(SERVER_LIMIT)).await;
    let data = pattern(3 << 20, 7);
    writer.create("/large").data(data.clone()).await.unwrap();
    for member in 0..cluster.len() {
        let reader = client(&cluster.member_connect_string(member), None).await;
        reader.sync("/large").await.unwrap();
        assert!(
            reader.get_data("/large").await.unwrap().0 == data,
            "member {member}"
        );
        reader.close().await.unwrap();
    }
    writer.close().await.unwrap();
}
