//! The `zk` binary against an in-process server: every command, its output format, its exit
//! codes, `watch`, and the interactive mode fed on stdin.
//!
//! Built with the `cli` feature, which zk-client's dev-dependency on itself turns on for every
//! test build (so `cargo test -p zk-client` and `cargo test --workspace` run these too).
#![cfg(feature = "cli")]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use zk_client::{Acl, Client, CreateMode, Id, Perms};
use zk_server::TestingServer;

const ZK: &str = env!("CARGO_BIN_EXE_zk");

/// A finished `zk` run.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts success and returns stdout.
    #[track_caller]
    fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "zk failed: {self:?}");
        &self.stdout
    }
}

/// `zk --connect <server> --timeout 10s <args>` (the environment cleaned of ZK_*).
fn command(connect: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(ZK);
    cmd.arg("--connect")
        .arg(connect)
        .arg("--timeout")
        .arg("10s")
        .args(args)
        .env_remove("ZK_CONNECT")
        .env("ZK_HISTORY", "/dev/null");
    cmd
}

async fn zk_at(connect: &str, args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut cmd = command(connect, args);
    let input = stdin.map(<[u8]>::to_vec);
    tokio::task::spawn_blocking(move || {
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run zk");
        if let Some(input) = input {
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(&input).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

async fn zk(server: &TestingServer, args: &[&str]) -> Run {
    zk_at(&server.connect_string(), args, None).await
}

/// The interactive mode with `input` on stdin (not a terminal).
async fn zk_stdin(server: &TestingServer, input: &str) -> Run {
    zk_at(&server.connect_string(), &[], Some(input.as_bytes())).await
}

async fn client(server: &TestingServer) -> Client {
    let client = Client::connect(&server.connect_string()).unwrap();
    client
        .block_until_connected(Duration::from_secs(10))
        .await
        .unwrap();
    client
}

/// A running `zk` killed when dropped, with its output lines readable with a timeout.
struct Running {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Running {
    fn spawn(connect: &str, args: &[&str]) -> Running {
        let mut child = command(connect, args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run zk");
        let lines = |pipe: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        };
        let stdout = lines(Box::new(child.stdout.take().unwrap()));
        let stderr = lines(Box::new(child.stderr.take().unwrap()));
        Running {
            child,
            stdout,
            stderr,
        }
    }

    async fn line(rx: &mpsc::Receiver<String>) -> String {
        tokio::task::block_in_place(|| rx.recv_timeout(Duration::from_secs(15)))
            .expect("a line from zk within 15 s")
    }

    async fn stdout_line(&self) -> String {
        Running::line(&self.stdout).await
    }

    async fn stderr_line(&self) -> String {
        Running::line(&self.stderr).await
    }

    /// The exit code, within 15 s.
    async fn exit_code(&mut self) -> Option<i32> {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("zk's status") {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("zk did not exit within 15 s");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_ls_get_set_delete() {
    let server = TestingServer::start().await.unwrap();
    assert_eq!(
        zk(&server, &["create", "/app", "hello"]).await.ok(),
        "Created /app\n"
    );
    zk(&server, &["create", "/app/b"]).await.ok();
    zk(&server, &["create", "/app/a", "-1"]).await.ok();
    assert_eq!(zk(&server, &["ls", "/app"]).await.ok(), "[a, b]\n");
    assert_eq!(zk(&server, &["ls", "/app/a"]).await.ok(), "[]\n");
    assert_eq!(zk(&server, &["get", "/app"]).await.ok(), "hello\n");
    // Data that looks like a flag is data.
    assert_eq!(zk(&server, &["get", "/app/a"]).await.ok(), "-1\n");

    let out = zk(&server, &["ls", "-s", "/app"]).await;
    let lines: Vec<&str> = out.ok().lines().collect();
    assert_eq!(lines[0], "[a, b]");
    assert_eq!(lines.len(), 12, "{lines:?}");
    assert!(lines[1].starts_with("cZxid = 0x"), "{lines:?}");
    assert_eq!(lines[11], "numChildren = 2");

    zk(&server, &["set", "/app", "world"]).await.ok();
    let out = zk(&server, &["get", "-s", "/app"]).await;
    let text = out.ok();
    assert!(text.starts_with("world\ncZxid = 0x"), "{text}");
    assert!(text.contains("\ndataVersion = 1\n"), "{text}");
    assert!(text.contains("\ndataLength = 5\n"), "{text}");
    assert!(text.contains("\nephemeralOwner = 0x0\n"), "{text}");

    // set -s prints the new stat; -v checks the version.
    let text = zk(&server, &["set", "-s", "-v", "1", "/app", "again"]).await;
    assert!(text.ok().contains("dataVersion = 2\n"), "{text:?}");
    let bad = zk(&server, &["set", "-v", "1", "/app", "late"]).await;
    assert_eq!(bad.code, 1, "{bad:?}");
    assert_eq!(bad.stderr.trim(), "version No is not valid : /app");
    assert_eq!(zk(&server, &["get", "/app"]).await.ok(), "again\n");

    // delete: not empty, bad version, then fine.
    let busy = zk(&server, &["delete", "/app"]).await;
    assert_eq!((busy.code, busy.stderr.trim()), (1, "Node not empty: /app"));
    let bad = zk(&server, &["delete", "-v", "5", "/app/a"]).await;
    assert_eq!(bad.code, 1, "{bad:?}");
    zk(&server, &["delete", "-v", "0", "/app/a"]).await.ok();
    zk(&server, &["delete", "/app/b"]).await.ok();
    zk(&server, &["delete", "/app"]).await.ok();
    let gone = zk(&server, &["get", "/app"]).await;
    assert_eq!(gone.code, 1);
    assert_eq!(gone.stderr.trim(), "Node does not exist: /app");
    assert_eq!(gone.stdout, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_modes_and_their_rules() {
    let server = TestingServer::start().await.unwrap();
    let c = client(&server).await;
    zk(&server, &["create", "/q"]).await.ok();
    let out = zk(&server, &["create", "-s", "/q/item-", "x"]).await;
    assert_eq!(out.ok(), "Created /q/item-0000000000\n");
    let out = zk(&server, &["create", "-s", "/q/item-"]).await;
    assert_eq!(out.ok(), "Created /q/item-0000000001\n");

    // An ephemeral node goes with the one-shot session.
    let out = zk(&server, &["create", "-e", "/eph", "x"]).await;
    assert_eq!(out.ok(), "Created /eph\n");
    assert_eq!(c.exists("/eph").await.unwrap(), None);
    let out = zk(&server, &["create", "-e", "-s", "/eph-"]).await;
    assert!(out.ok().starts_with("Created /eph-0000"), "{out:?}");

    zk(&server, &["create", "-c", "/box"]).await.ok();
    zk(&server, &["create", "-t", "60000", "/ttl", "x"])
        .await
        .ok();
    zk(&server, &["create", "-s", "-t", "60000", "/ttl-"])
        .await
        .ok();
    assert!(c.exists("/box").await.unwrap().is_some());
    assert!(c.exists("/ttl").await.unwrap().is_some());

    // With an ACL (zkCli's fourth argument).
    zk(&server, &["create", "/ro", "x", "world:anyone:r"])
        .await
        .ok();
    let (acl, _) = c.get_acl("/ro").await.unwrap();
    assert_eq!(acl, vec![Acl::new(Perms::READ, Id::anyone())]);

    let exists = zk(&server, &["create", "/q"]).await;
    assert_eq!(
        (exists.code, exists.stderr.trim()),
        (1, "Node already exists: /q")
    );
    let orphan = zk(&server, &["create", "/no/parent"]).await;
    assert_eq!(
        (orphan.code, orphan.stderr.trim()),
        (1, "Node does not exist: /no/parent")
    );

    // zkCli's rules for flags that do not combine: usage errors, nothing created.
    for args in [
        &["create", "-c", "-e", "/bad"][..],
        &["create", "-c", "-s", "/bad"],
        &["create", "-t", "1000", "-e", "/bad"],
        &["create", "-t", "1000", "-c", "/bad"],
        &["create", "-t", "0", "/bad"],
        &["create", "-t", "soon", "/bad"],
        &["create", "/bad", "x", "world:anyone:rz"],
        &["create", "bad"],
    ] {
        let out = zk(&server, args).await;
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
    assert_eq!(c.exists("/bad").await.unwrap(), None);
    let mixed = zk(&server, &["create", "-c", "-e", "/bad"]).await;
    assert!(mixed.stderr.contains("-c cannot be combined"), "{mixed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ls_recursive_deleteall_and_counts() {
    let server = TestingServer::start().await.unwrap();
    for p in [
        "/t",
        "/t/b",
        "/t/a",
        "/t/a/y",
        "/t/a/x",
        "/t/b/z",
        "/t/a/x/deep",
    ] {
        zk(&server, &["create", p]).await.ok();
    }
    // zkCli's order: the root, a node's children, then each child's subtree.
    let out = zk(&server, &["ls", "-R", "/t"]).await;
    assert_eq!(
        out.ok(),
        "/t\n/t/a\n/t/b\n/t/a/x\n/t/a/y\n/t/a/x/deep\n/t/b/z\n"
    );
    assert_eq!(
        zk(&server, &["getAllChildrenNumber", "/t"]).await.ok(),
        "6\n"
    );
    assert_eq!(
        zk(&server, &["getAllChildrenNumber", "/t/b"]).await.ok(),
        "1\n"
    );
    let missing = zk(&server, &["ls", "-R", "/nope"]).await;
    assert_eq!(
        (missing.code, missing.stderr.trim()),
        (1, "Node does not exist: /nope")
    );

    zk(&server, &["deleteall", "/t/a", "-b", "100"]).await.ok();
    assert_eq!(
        zk(&server, &["ls", "-R", "/t"]).await.ok(),
        "/t\n/t/b\n/t/b/z\n"
    );
    zk(&server, &["deleteall", "/t"]).await.ok();
    let gone = zk(&server, &["ls", "/t"]).await;
    assert_eq!(
        (gone.code, gone.stderr.trim()),
        (1, "Node does not exist: /t")
    );
    let again = zk(&server, &["deleteall", "/t"]).await;
    assert_eq!(again.code, 1, "{again:?}");
    let counted = zk(&server, &["getAllChildrenNumber", "/t"]).await;
    assert_eq!(counted.code, 1, "{counted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stat_sync_whoami_and_ephemerals() {
    let server = TestingServer::start().await.unwrap();
    zk(&server, &["create", "/s", "abc"]).await.ok();
    let out = zk(&server, &["stat", "/s"]).await;
    let lines: Vec<&str> = out.ok().lines().collect();
    let names: Vec<&str> = lines
        .iter()
        .map(|l| l.split(" = ").next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "cZxid",
            "ctime",
            "mZxid",
            "mtime",
            "pZxid",
            "cversion",
            "dataVersion",
            "aclVersion",
            "ephemeralOwner",
            "dataLength",
            "numChildren"
        ]
    );
    assert_eq!(lines[9], "dataLength = 3");
    // ctime as Java's Date.toString(), in UTC: "Thu Jan 01 00:00:00 UTC 1970".
    let ctime = lines[1].strip_prefix("ctime = ").unwrap();
    assert_eq!(ctime.split(' ').count(), 6, "{ctime}");
    assert!(ctime.contains(" UTC 20"), "{ctime}");
    let missing = zk(&server, &["stat", "/nope"]).await;
    assert_eq!(
        (missing.code, missing.stderr.trim()),
        (1, "Node does not exist: /nope")
    );

    assert_eq!(zk(&server, &["sync", "/s"]).await.ok(), "Sync is OK\n");

    let who = zk(&server, &["whoami"]).await;
    assert_eq!(who.ok(), "Auth scheme: User\nip: 127.0.0.1\n");
    let who = zk(&server, &["--auth", "digest:bob:secret", "whoami"]).await;
    let text = who.ok();
    assert!(text.starts_with("Auth scheme: User\n"), "{text}");
    assert!(text.contains("\ndigest: bob\n"), "{text}");

    // A one-shot session has no ephemerals; another client's are not listed.
    let c = client(&server).await;
    c.create("/mine").mode(CreateMode::Ephemeral).await.unwrap();
    assert_eq!(zk(&server, &["getEphemerals"]).await.ok(), "[]\n");
    assert_eq!(zk(&server, &["getEphemerals", "/m"]).await.ok(), "[]\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_and_auth() {
    let server = TestingServer::start().await.unwrap();
    zk(&server, &["create", "/a", "secret"]).await.ok();
    assert_eq!(
        zk(&server, &["getAcl", "/a"]).await.ok(),
        "'world,'anyone\n: cdrwa\n"
    );
    let out = zk(&server, &["getAcl", "-s", "/a"]).await;
    assert!(out.ok().contains("\naclVersion = 0\n"), "{out:?}");

    // Read-only for everybody, everything for bob.
    let bob = zk_proto::digest_id("bob", "secret");
    let acl = format!("digest:{bob}:cdrwa,world:anyone:r");
    let out = zk(
        &server,
        &["--auth", "digest:bob:secret", "setAcl", "-s", "/a", &acl],
    )
    .await;
    assert!(out.ok().contains("aclVersion = 1\n"), "{out:?}");
    assert_eq!(
        zk(&server, &["--auth", "digest:bob:secret", "getAcl", "/a"])
            .await
            .ok(),
        format!("'digest,'{bob}\n: cdrwa\n'world,'anyone\n: r\n")
    );
    // Without ADMIN the server masks digests.
    assert_eq!(
        zk(&server, &["getAcl", "/a"]).await.ok(),
        "'digest,'bob:x\n: cdrwa\n'world,'anyone\n: r\n"
    );
    assert_eq!(zk(&server, &["get", "/a"]).await.ok(), "secret\n");
    let denied = zk(&server, &["set", "/a", "x"]).await;
    assert_eq!(
        (denied.code, denied.stderr.trim()),
        (1, "Insufficient permission : /a")
    );
    zk(&server, &["--auth", "digest:bob:secret", "set", "/a", "x"])
        .await
        .ok();
    // The wrong password is no better.
    let wrong = zk(&server, &["--auth", "digest:bob:guess", "set", "/a", "y"]).await;
    assert_eq!(wrong.code, 1, "{wrong:?}");

    // setAcl -v checks the ACL version.
    let stale = zk(
        &server,
        &[
            "--auth",
            "digest:bob:secret",
            "setAcl",
            "-v",
            "0",
            "/a",
            "world:anyone:cdrwa",
        ],
    )
    .await;
    assert_eq!(
        (stale.code, stale.stderr.trim()),
        (1, "version No is not valid : /a")
    );
    zk(
        &server,
        &[
            "--auth",
            "digest:bob:secret",
            "setAcl",
            "-v",
            "1",
            "/a",
            "world:anyone:cdrwa",
        ],
    )
    .await
    .ok();

    // setAcl -R: the whole subtree.
    for p in ["/r", "/r/x", "/r/x/y"] {
        zk(&server, &["create", p]).await.ok();
    }
    zk(&server, &["setAcl", "-R", "/r", "world:anyone:rw"])
        .await
        .ok();
    let c = client(&server).await;
    for p in ["/r", "/r/x", "/r/x/y"] {
        let (acl, _) = c.get_acl(p).await.unwrap();
        assert_eq!(
            acl,
            vec![Acl::new(Perms::READ | Perms::WRITE, Id::anyone())],
            "{p}"
        );
    }
    // Without ADMIN the recursive setAcl fails on the first node and says so.
    let denied = zk(&server, &["setAcl", "-R", "/r", "world:anyone:cdrwa"]).await;
    assert_eq!(denied.code, 1, "{denied:?}");
    assert!(
        denied.stderr.contains("Insufficient permission : /r\n"),
        "{denied:?}"
    );

    // ls -R prints as it walks: what it found before an unreadable node comes out too.
    zk(&server, &["create", "/u"]).await.ok();
    zk(
        &server,
        &["create", "/u/s", "x", &format!("digest:{bob}:cdrwa")],
    )
    .await
    .ok();
    let walked = zk(&server, &["ls", "-R", "/u"]).await;
    assert_eq!(
        (walked.code, walked.stdout.as_str(), walked.stderr.trim()),
        (1, "/u\n/u/s\n", "Insufficient permission : /u/s"),
        "{walked:?}"
    );

    // Malformed ACLs and auth are usage errors.
    for acl in ["world:anyone", "world:anyone:rx", "", "nope"] {
        let out = zk(&server, &["setAcl", "/a", acl]).await;
        assert_eq!(out.code, 2, "{acl:?}: {out:?}");
    }
    let out = zk(&server, &["setAcl", "/a", "world:anyone:rx"]).await;
    assert!(out.stderr.contains("unknown permission 'x'"), "{out:?}");
    assert_eq!(zk(&server, &["--auth", "nocolon", "ls", "/"]).await.code, 2);
    let invalid = zk(&server, &["setAcl", "/a", "digest:bob:cdrwa"]).await;
    assert_eq!(
        (invalid.code, invalid.stderr.trim()),
        (1, "Acl is not valid : /a")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_for_usage_and_connection_errors() {
    let server = TestingServer::start().await.unwrap();
    for args in [
        &["frobnicate", "/"][..],
        &["ls"],
        &["get", "-x", "/"],
        &["set", "/only-path"],
        &["delete", "-v", "abc", "/x"],
        &["ls", "no-slash"],
        &["get", "/trailing/"],
        &["deleteall", "/"],
        &["--timeout", "0", "ls", "/"],
    ] {
        let out = zk(&server, args).await;
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
        assert_eq!(out.stdout, "", "{args:?}");
    }
    // --help documents the exit codes.
    let help = zk(&server, &["--help"]).await;
    let text = help.ok();
    assert!(text.contains("Exit codes:"), "{text}");
    assert!(text.contains("3  connection failure"), "{text}");
    let list = zk(&server, &["help"]).await;
    assert!(list
        .ok()
        .contains("\tsetAcl [-s] [-v version] [-R] path acl\n"));

    // Nothing listens on the port of a stopped server: 3, within about the timeout.
    let mut stopped = TestingServer::start().await.unwrap();
    let connect = stopped.connect_string();
    stopped.stop().await;
    let started = std::time::Instant::now();
    let mut cmd = Command::new(ZK);
    cmd.args(["--connect", &connect, "--timeout", "1000", "ls", "/"])
        .env_remove("ZK_CONNECT");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("Unable to connect to {connect}")),
        "{stderr}"
    );
    // With the reason the latest attempt failed.
    assert!(stderr.contains("refused"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    let four = zk_at(&connect, &["ruok"], None).await;
    assert_eq!(four.code, 3, "{four:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_letter_words() {
    let server = TestingServer::start().await.unwrap();
    assert_eq!(zk(&server, &["ruok"]).await.ok(), "imok\n");
    let srvr = zk(&server, &["srvr"]).await;
    let text = srvr.ok();
    assert!(text.starts_with("Zookeeper version: "), "{text}");
    assert!(text.contains("Mode: standalone"), "{text}");
    let mntr = zk(&server, &["mntr"]).await;
    assert!(mntr.ok().contains("zk_version\t"), "{mntr:?}");
    // Only the first server of the connect string is asked.
    let connect = format!("{},127.0.0.1:1", server.connect_string());
    assert_eq!(zk_at(&connect, &["ruok"], None).await.ok(), "imok\n");
}

/// A server whose whitelist lacks the word: the refusal goes to stderr, with exit code 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_four_letter_word_off_the_whitelist_fails() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = zk_server::ServerConfig::new(dir.path());
    config.client_port = 0;
    config.client_port_address = std::net::Ipv4Addr::LOCALHOST.into();
    let server = zk_server::Server::start(config).await.unwrap();
    let connect = server.local_addr().to_string();
    // Apache's default whitelist: srvr only.
    let srvr = zk_at(&connect, &["srvr"], None).await;
    assert!(srvr.ok().contains("Mode: standalone"), "{srvr:?}");
    let ruok = zk_at(&connect, &["ruok"], None).await;
    assert_eq!(ruok.code, 1, "{ruok:?}");
    assert_eq!(ruok.stdout, "");
    assert!(ruok.stderr.contains("not in the whitelist"), "{ruok:?}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_one_line_per_event() {
    let server = TestingServer::start().await.unwrap();
    let c = client(&server).await;
    c.create("/w").data(b"1".to_vec()).await.unwrap();
    let watch = Running::spawn(&server.connect_string(), &["watch", "/w"]);
    // The watch is registered once zk says so on stderr.
    assert_eq!(watch.stderr_line().await, "Watching /w (Ctrl-C to stop)");
    c.set_data("/w", b"2".to_vec()).await.unwrap();
    assert_eq!(
        watch.stdout_line().await,
        "WatchedEvent state:SyncConnected type:NodeDataChanged path:/w"
    );
    // Persistent: the next change is reported too.
    c.create("/w/child").await.unwrap();
    assert_eq!(
        watch.stdout_line().await,
        "WatchedEvent state:SyncConnected type:NodeChildrenChanged path:/w"
    );
    drop(watch);

    // -R: the subtree, with the paths of the nodes that changed.
    let watch = Running::spawn(&server.connect_string(), &["watch", "-R", "/w"]);
    assert_eq!(
        watch.stderr_line().await,
        "Watching /w and its subtree (Ctrl-C to stop)"
    );
    c.set_data("/w/child", b"x".to_vec()).await.unwrap();
    c.create("/w/child/grand").await.unwrap();
    assert_eq!(
        watch.stdout_line().await,
        "WatchedEvent state:SyncConnected type:NodeDataChanged path:/w/child"
    );
    assert_eq!(
        watch.stdout_line().await,
        "WatchedEvent state:SyncConnected type:NodeCreated path:/w/child/grand"
    );

    // Ctrl-C (SIGINT) ends it with 0.
    let mut watch = watch;
    let pid = watch.child.id().to_string();
    let status = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(status.success());
    let code = tokio::task::block_in_place(|| watch.child.wait().unwrap());
    assert_eq!(code.code(), Some(0));

    let missing = zk(&server, &["watch", "bad-path"]).await;
    assert_eq!(missing.code, 2, "{missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_watch_flags_wait_for_the_event() {
    let server = TestingServer::start().await.unwrap();
    let c = client(&server).await;
    c.create("/g").data(b"v1".to_vec()).await.unwrap();
    for (args, change, event) in [
        (&["get", "-w", "/g"][..], "set", "NodeDataChanged path:/g"),
        (&["ls", "-w", "/g"], "create", "NodeChildrenChanged path:/g"),
        (&["stat", "-w", "/g"], "set", "NodeDataChanged path:/g"),
    ] {
        let run = Running::spawn(&server.connect_string(), args);
        // The output of the command comes first, then zk waits for the watch.
        let first = run.stdout_line().await;
        assert!(!first.is_empty(), "{args:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        match change {
            "set" => {
                c.set_data("/g", b"v2".to_vec()).await.unwrap();
            }
            _ => {
                c.create("/g/kid-")
                    .mode(CreateMode::PersistentSequential)
                    .await
                    .unwrap();
            }
        }
        let mut line = run.stdout_line().await;
        while !line.starts_with("WatchedEvent") {
            line = run.stdout_line().await;
        }
        assert_eq!(
            line,
            format!("WatchedEvent state:SyncConnected type:{event}"),
            "{args:?}"
        );
    }
}

/// A one-shot `-w` whose watch ends unfired (the session expired) is a lost connection:
/// exit code 3 and a message, not success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_shot_watch_ended_by_the_session_exits_3() {
    let server = TestingServer::start().await.unwrap();
    let c = client(&server).await;
    c.create("/w").await.unwrap();
    let mut run = Running::spawn(&server.connect_string(), &["get", "-w", "/w"]);
    assert_eq!(run.stdout_line().await, "");
    // The watcher's session, from the server's watches by path (the output is sent before
    // the watch is known to be set: wait for it there).
    let session = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let by_path = server.four_letter_word("wchp").await.unwrap_or_default();
            let mut lines = by_path.lines().skip_while(|l| *l != "/w").skip(1);
            if let Some(sid) = lines.next().and_then(|l| l.trim().strip_prefix("0x")) {
                return i64::from_str_radix(sid, 16).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the watch is set");
    assert!(server.expire_session(session).await);
    assert_eq!(run.exit_code().await, Some(3));
    assert!(
        run.stderr_line()
            .await
            .contains("The watch on /w ended unfired"),
        "a message says why"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_mode_reads_commands_from_stdin() {
    let server = TestingServer::start().await.unwrap();
    let input = "\
# comments and blank lines are skipped

create /i \"two words\"
get /i
create -e /i/eph
getEphemerals
getEphemerals /i
ls /i
get /missing
set /i 'single quoted'
get -s /i
addauth digest bob:secret
whoami
create /i/secret x digest:bob:fyVmFCwVbTJYrznoSu1koqYEYF0=:cdrwa
get /i/secret
sync /i
getAllChildrenNumber /i
frobnicate
ruok
deleteall /i/secret
help
";
    let out = zk_stdin(&server, input).await;
    // The exit code is the last command's.
    assert_eq!(out.code, 0, "{out:?}");
    let expected_start = "\
Created /i
two words
Created /i/eph
[/i/eph]
[/i/eph]
[eph]
single quoted
cZxid = 0x";
    assert!(out.stdout.starts_with(expected_start), "{}", out.stdout);
    assert!(
        out.stdout.contains("\nAuth scheme: User\n"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("\ndigest: bob\n"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("\nCreated /i/secret\nx\nSync is OK\n2\nimok\n"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.ends_with("\twhoami\n"), "{}", out.stdout);
    assert!(
        out.stderr.contains("Node does not exist: /missing\n"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("unrecognized subcommand 'frobnicate'"),
        "{}",
        out.stderr
    );

    // The session's ephemeral went with it; the digest matched bob's password.
    let c = client(&server).await;
    assert_eq!(c.exists("/i/eph").await.unwrap(), None);
    assert!(c.exists("/i").await.unwrap().is_some());
    assert_eq!(
        zk_proto::digest_id("bob", "secret"),
        "bob:fyVmFCwVbTJYrznoSu1koqYEYF0="
    );

    // A failing last command sets the exit code; quit stops reading.
    let out = zk_stdin(&server, "ls /\nget /missing\n").await;
    assert_eq!(out.code, 1, "{out:?}");
    let out = zk_stdin(&server, "get /missing\nquit\nls /zookeeper\n").await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stdout, "", "{out:?}");
    let out = zk_stdin(&server, "ls /\nbad \"quote\n").await;
    assert_eq!(out.code, 2, "{out:?}");

    // Words are split as zkCli splits them: quotes inside a word are data.
    let out = zk_stdin(
        &server,
        "create /j {\"a\":1}\nget /j\nset /j it's\nget /j\nset /j 'x y'\nget /j\n",
    )
    .await;
    assert_eq!(out.stdout, "Created /j\n{\"a\":1}\nit's\nx y\n", "{out:?}");
    // A line that is not UTF-8 runs with U+FFFD in place, and the script goes on.
    let out = zk_at(
        &server.connect_string(),
        &[],
        Some(b"set /j \xff\ncreate /after\nget /j\n"),
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "Created /after\n\u{fffd}\n", "{out:?}");
}

/// Ctrl-C stops a script read from a pipe, not only its current command (zkCli's JVM exits).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_a_piped_script() {
    let server = TestingServer::start().await.unwrap();
    let c = client(&server).await;
    c.create("/x").data(b"v".to_vec()).await.unwrap();
    let mut cmd = command(&server.connect_string(), &[]);
    let code = tokio::task::spawn_blocking(move || {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run zk");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"watch /x\ncreate /after\n").unwrap();
        drop(stdin);
        // `watch` runs until Ctrl-C.
        let mut first = String::new();
        BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(first.starts_with("Watching /x"), "{first}");
        let killed = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        child.wait().unwrap().code()
    })
    .await
    .unwrap();
    assert_eq!(code, Some(130));
    assert_eq!(
        c.exists("/after").await.unwrap(),
        None,
        "the script stopped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_watches_print_when_they_fire() {
    let server = TestingServer::start().await.unwrap();
    let out = zk_stdin(
        &server,
        "create /iw a\nget -w /iw\nset /iw b\nls -w /iw\ncreate /iw/c\n",
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("Created /iw\na\n"), "{}", out.stdout);
    assert!(
        out.stdout.contains(
            "WATCHER::\n\nWatchedEvent state:SyncConnected type:NodeDataChanged path:/iw\n"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(
            "WATCHER::\n\nWatchedEvent state:SyncConnected type:NodeChildrenChanged path:/iw\n"
        ),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_mode_without_a_server_fails_with_3() {
    let mut stopped = TestingServer::start().await.unwrap();
    let connect = stopped.connect_string();
    stopped.stop().await;
    let mut cmd = Command::new(ZK);
    cmd.args(["--connect", &connect, "--timeout", "500ms"])
        .env_remove("ZK_CONNECT")
        .env("ZK_HISTORY", "/dev/null")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().unwrap();
        child.stdin.take().unwrap().write_all(b"ls /\n").unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
}

/// The terminal mode (line editor, prompt, history file), run on a pseudo-terminal by
/// util-linux `script`; skipped where `script` is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_mode_shows_the_state_and_keeps_history() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` to make a pseudo-terminal");
        return;
    }
    let server = TestingServer::start().await.unwrap();
    let connect = server.connect_string();
    let history = std::env::temp_dir().join(format!(
        "zk-history-{}-{}",
        std::process::id(),
        server.port()
    ));
    let _ = std::fs::remove_file(&history);
    let line = format!("{ZK} --connect {connect} --timeout 10s");
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"])
        .env_remove("ZK_CONNECT")
        .env("ZK_HISTORY", &history)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        for line in [
            "create /h x\n",
            "addauth digest bob:pw\n",
            "ls /h\n",
            "quit\n",
        ] {
            stdin.write_all(line.as_bytes()).unwrap();
            std::thread::sleep(Duration::from_millis(300));
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!("[zk: {connect}(CONNECTED) 1] ")),
        "{text}"
    );
    assert!(text.contains("Created /h"), "{text}");
    let saved = std::fs::read_to_string(&history).unwrap();
    let _ = std::fs::remove_file(&history);
    assert!(saved.contains("create /h x\n"), "{saved}");
    assert!(saved.contains("ls /h\n"), "{saved}");
    assert!(saved.contains("quit"), "{saved}");
    assert!(
        !saved.contains("bob:pw"),
        "credentials stay out of the history: {saved}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_prints_the_ensembles_configuration() {
    // Standalone: an empty configuration, as Apache's.
    let server = TestingServer::start().await.unwrap();
    assert_eq!(zk(&server, &["config"]).await.ok(), "\n");

    let cluster = zk_server::TestingCluster::start(3).await.unwrap();
    cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .unwrap();
    let connect = cluster.member_connect_string(0);
    let out = zk_at(&connect, &["config"], None).await;
    let lines: Vec<&str> = out.ok().lines().collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    for (i, line) in lines[..3].iter().enumerate() {
        let member = cluster.member_connect_string(i);
        assert!(
            line.starts_with(&format!("server.{}=127.0.0.1:", i + 1)),
            "{line}"
        );
        assert!(line.ends_with(&format!(":participant;{member}")), "{line}");
    }
    assert_eq!(lines[3], "version=0");
    let members: Vec<String> = (0..3).map(|i| cluster.member_connect_string(i)).collect();
    assert_eq!(
        zk_at(&connect, &["config", "-c"], None).await.ok(),
        format!("0 {}\n", members.join(","))
    );
    let with_stat = zk_at(&connect, &["config", "-s"], None).await;
    assert!(
        with_stat.ok().contains("\ndataVersion = -1\n"),
        "{with_stat:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_over_max_reply_len_is_refused_with_a_hint() {
    let server = TestingServer::start().await.unwrap();
    let setup = client(&server).await;
    setup.create("/big").data(vec![b'x'; 5000]).await.unwrap();
    let small = zk(&server, &["--max-reply-len", "2048", "get", "/big"]).await;
    assert_eq!(small.code, 1, "{small:?}");
    // Reply header 16 + data (length prefix 4 + bytes) + stat 68.
    assert_eq!(
        small.stderr.trim(),
        "Reply of 5088 bytes exceeds the limit of 2048 (see --max-reply-len): /big"
    );
    let roomy = zk(&server, &["--max-reply-len", "8192", "get", "/big"]).await;
    assert_eq!(roomy.ok().trim_end().len(), 5000);
    setup.close().await.unwrap();
}
