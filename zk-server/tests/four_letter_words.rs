//! Four-letter words in Apache's formats, and the whitelist.

mod support;

use support::process::{free_port, ServerProcess};
use support::{four_letter, RawClient};
use zk_proto::CreateMode;
use zk_server::TestingServer;

#[tokio::test]
async fn formats() {
    let server = TestingServer::start().await.unwrap();
    let addr = server.connect_string();
    let mut c = RawClient::connect(&addr).await;
    c.create("/e", b"", CreateMode::Ephemeral).await.unwrap();
    c.get_data("/e", true).await.unwrap();

    assert_eq!(four_letter(&addr, "ruok").await, "imok");
    assert_eq!(four_letter(&addr, "isro").await, "rw");
    let srvr = four_letter(&addr, "srvr").await;
    let lines: Vec<&str> = srvr.lines().collect();
    assert!(lines[0].starts_with("Zookeeper version: 3.8."), "{srvr}");
    assert!(lines[1].starts_with("Latency min/avg/max: "), "{srvr}");
    assert_eq!(lines[4], "Connections: 1", "{srvr}");
    assert!(lines[6].starts_with("Zxid: 0x"), "{srvr}");
    assert_eq!(lines[7], "Mode: standalone");
    assert_eq!(
        lines[8], "Node count: 6",
        "root twice + /zookeeper + quota + config + /e"
    );

    let stat = four_letter(&addr, "stat").await;
    assert!(stat.contains("Clients:\n /127.0.0.1:"), "{stat}");
    let mntr = four_letter(&addr, "mntr").await;
    for key in [
        "zk_version\t",
        "zk_server_state\tstandalone",
        "zk_znode_count\t6",
        "zk_ephemerals_count\t1",
        "zk_watch_count\t1",
    ] {
        assert!(mntr.contains(key), "{key} missing in\n{mntr}");
    }
    assert!(mntr.lines().all(|l| l.split('\t').count() == 2), "{mntr}");
    let conf = four_letter(&addr, "conf").await;
    assert!(
        conf.contains(&format!("clientPort={}\n", server.port())),
        "{conf}"
    );
    assert!(
        conf.contains("tickTime=200\n") && conf.contains("minSessionTimeout=400\n"),
        "{conf}"
    );
    assert!(four_letter(&addr, "envi")
        .await
        .contains("zookeeper.version=3.8."));
    assert_eq!(
        four_letter(&addr, "wchs").await,
        "1 connections watching 1 paths\nTotal watches:1\n"
    );
    let dump = four_letter(&addr, "dump").await;
    assert!(
        dump.contains(&format!("0x{:x}:\n\t/e", c.session_id)),
        "{dump}"
    );
    assert!(four_letter(&addr, "cons")
        .await
        .contains(&format!("sid=0x{:x}", c.session_id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whitelist_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), free_port(), "4lw.commands.whitelist=srvr, ruok");
    let addr = server.addr();
    assert_eq!(four_letter(&addr, "ruok").await, "imok");
    assert!(four_letter(&addr, "srvr")
        .await
        .starts_with("Zookeeper version:"));
    assert_eq!(
        four_letter(&addr, "dump").await,
        "dump is not executed because it is not in the whitelist.\n"
    );
}

/// Apache's two whitelist rules: srvr always runs (zkServer.sh status needs it), and `*`
/// anywhere in the list enables every word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srvr_always_runs_and_a_star_anywhere_enables_all() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), free_port(), "4lw.commands.whitelist=ruok");
    assert!(four_letter(&server.addr(), "srvr")
        .await
        .starts_with("Zookeeper version:"));
    drop(server);
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), free_port(), "4lw.commands.whitelist=conf, *");
    assert!(four_letter(&server.addr(), "mntr")
        .await
        .contains("zk_version\t"));
}
