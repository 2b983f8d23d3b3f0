//! Durability: acknowledged writes survive restarts and SIGKILL; torn log tails are truncated
//! to an exact prefix; damage in the middle of the log refuses to start.

mod support;

use std::io::{Seek, SeekFrom, Write};
use std::time::Duration;

use support::process::{free_port, log_files, ServerProcess};
use support::RawClient;
use zk_proto::*;
use zk_server::TestingServer;

#[tokio::test]
async fn restart_keeps_data_and_sessions() {
    let mut server = TestingServer::start().await.unwrap();
    let mut c = RawClient::connect(&server.connect_string()).await;
    c.create("/kept", b"v", CreateMode::Persistent)
        .await
        .unwrap();
    c.create("/kept/eph", b"", CreateMode::Ephemeral)
        .await
        .unwrap();
    let (session, passwd, seen) = (c.session_id, c.passwd.clone(), c.last_zxid);
    drop(c);
    server.restart().await.unwrap();
    let request = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: seen,
        timeout: 10_000,
        session_id: session,
        passwd,
        read_only: Some(false),
    };
    let (mut again, r) = RawClient::connect_with(&server.connect_string(), request)
        .await
        .unwrap();
    assert_eq!(
        r.session_id, session,
        "the session survives a restart within its timeout"
    );
    assert_eq!(
        again.get_data("/kept", false).await.unwrap().0,
        Some(b"v".to_vec())
    );
    assert_eq!(
        again
            .exists("/kept/eph", false)
            .await
            .unwrap()
            .ephemeral_owner,
        session
    );
}

#[tokio::test]
async fn snapshots_and_purge_keep_everything_recoverable() {
    let mut server = TestingServer::builder()
        .snap_count(25)
        .start()
        .await
        .unwrap();
    let mut c = RawClient::connect(&server.connect_string()).await;
    for i in 0..200 {
        c.create(
            &format!("/n{i}"),
            i.to_string().as_bytes(),
            CreateMode::Persistent,
        )
        .await
        .unwrap();
    }
    drop(c);
    server.stop().await;
    let dir = server.data_dir().join("version-2");
    let snapshots = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("snapshot."))
        .count();
    assert!(
        (1..=3).contains(&snapshots),
        "purge keeps at most 3 snapshots, found {snapshots}"
    );
    server.restart().await.unwrap();
    let mut c = RawClient::connect(&server.connect_string()).await;
    for i in 0..200 {
        assert_eq!(
            c.get_data(&format!("/n{i}"), false).await.unwrap().0,
            Some(i.to_string().into_bytes())
        );
    }
}

/// A stopped server (snapshots every 20 txns) that holds `/s0` … `/s<n-1>`, and its snapshot
/// files, oldest first.
async fn stopped_with_snapshots(n: usize) -> (TestingServer, Vec<std::path::PathBuf>) {
    let mut server = TestingServer::builder()
        .snap_count(20)
        .start()
        .await
        .unwrap();
    let mut c = RawClient::connect(&server.connect_string()).await;
    for i in 0..n {
        c.create(&format!("/s{i}"), b"", CreateMode::Persistent)
            .await
            .unwrap();
    }
    drop(c);
    server.stop().await;
    let dir = server.data_dir().join("version-2");
    let mut snaps: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("snapshot.")
        })
        .collect();
    snaps.sort_by_key(|p| {
        u64::from_str_radix(p.extension().unwrap().to_str().unwrap(), 16).unwrap()
    });
    (server, snaps)
}

#[tokio::test]
async fn damaged_newest_snapshot_falls_back_to_an_older_one() {
    let (mut server, snaps) = stopped_with_snapshots(70).await;
    let newest = snaps.last().unwrap();
    let mut bytes = std::fs::read(newest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(newest, bytes).unwrap();
    server.restart().await.unwrap();
    let mut c = RawClient::connect(&server.connect_string()).await;
    for i in 0..70 {
        assert!(
            c.exists(&format!("/s{i}"), false).await.is_ok(),
            "/s{i} lost"
        );
    }
}

/// Txn logs whose snapshots are all gone: the server refuses to start (replaying the logs
/// onto an empty tree would give a state that never existed) and says why.
#[tokio::test]
async fn a_log_without_a_snapshot_refuses_to_start() {
    let (mut server, snaps) = stopped_with_snapshots(50).await;
    assert!(!snaps.is_empty());
    for snap in snaps {
        std::fs::remove_file(snap).unwrap();
    }
    let err = server.restart().await.expect_err("refuses to start");
    assert!(err.to_string().contains("no valid snapshot"), "{err}");
}

/// Pipelines creates (and two-node multis) against the binary, SIGKILLs it mid-stream, restarts
/// it: every acknowledged write is there, and no multi is half-applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_nothing_acknowledged() {
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let server = ServerProcess::start(dir.path(), port, "snapCount=300");
        let mut c = RawClient::connect(&server.addr()).await;
        let mut in_flight = std::collections::VecDeque::new();
        let mut acked = Vec::new();
        let killer = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(150 + 100 * round)).await;
            server.kill();
        });
        let mut i = 0u32;
        'stream: loop {
            while in_flight.len() < 64 {
                let xid = c.next_xid();
                let ops = vec![
                    MultiOp::Create(CreateRequest {
                        path: format!("/a{i}"),
                        data: None,
                        acl: Acl::open_unsafe(),
                        flags: 0,
                    }),
                    MultiOp::Create(CreateRequest {
                        path: format!("/b{i}"),
                        data: None,
                        acl: Acl::open_unsafe(),
                        flags: 0,
                    }),
                ];
                let body = MultiRequest { ops };
                let mut out = bytes::BytesMut::new();
                frame::write_frame(&mut out, |b| {
                    RequestHeader::new(xid, OpCode::Multi).encode(b);
                    body.encode(b);
                });
                if c.send_raw(&out).await.is_err() {
                    break 'stream;
                }
                in_flight.push_back((xid, i));
                i += 1;
            }
            let Some((xid, n)) = in_flight.pop_front() else {
                break;
            };
            match c.read_frame().await {
                Ok(Some(frame)) => {
                    let header = ReplyHeader::from_bytes(&frame).unwrap();
                    assert_eq!(header.xid, xid);
                    assert_eq!(header.err, 0);
                    acked.push(n);
                }
                _ => break,
            }
        }
        killer.await.unwrap();
        assert!(
            !acked.is_empty(),
            "round {round}: nothing was acknowledged before the kill"
        );
        let restarted = ServerProcess::start(dir.path(), free_port(), "");
        let mut check = RawClient::connect(&restarted.addr()).await;
        let names = check.children("/", false).await.unwrap();
        for n in &acked {
            assert!(
                names.contains(&format!("a{n}")),
                "round {round}: acknowledged /a{n} lost"
            );
        }
        for n in 0..i {
            assert_eq!(
                names.contains(&format!("a{n}")),
                names.contains(&format!("b{n}")),
                "round {round}: multi {n} half-applied"
            );
        }
    }
}

/// Writes `count` creates through the binary and stops it; returns the data directory.
async fn written_log(count: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), free_port(), "");
    let mut c = RawClient::connect(&server.addr()).await;
    for i in 0..count {
        c.create(&format!("/t{i:03}"), &[7; 40], CreateMode::Persistent)
            .await
            .unwrap();
    }
    server.kill();
    dir
}

fn valid_log_len(path: &std::path::Path) -> u64 {
    let scan = zk_server::storage::read_log_file(path, true, |_| {}).unwrap();
    scan.valid_len
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_tail_at_random_offsets_recovers_an_exact_prefix() {
    let dir = written_log(40).await;
    let log = log_files(dir.path()).pop().unwrap();
    let full = std::fs::read(&log).unwrap();
    let valid = usize::try_from(valid_log_len(&log)).unwrap();
    // Cut at pseudo-random offsets within the last ~10 entries.
    let mut seed = 0x2545_f491_u64;
    for _ in 0..8 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let cut = valid - (seed as usize % 900) - 1;
        std::fs::write(&log, &full[..cut]).unwrap();
        let server = ServerProcess::start(dir.path(), free_port(), "");
        let mut c = RawClient::connect(&server.addr()).await;
        let names: Vec<String> = c
            .children("/", false)
            .await
            .unwrap()
            .into_iter()
            .filter(|n| n.starts_with('t'))
            .collect();
        let k = names.len();
        let expected: Vec<String> = (0..k).map(|i| format!("t{i:03}")).collect();
        assert_eq!(names, expected, "cut at {cut}: not a prefix");
        assert!(k < 40, "cut at {cut} removed nothing");
        server.kill();
        // Restore for the next cut (the server truncated and appended to its own files).
        for extra in log_files(dir.path()) {
            if extra != log {
                std::fs::remove_file(extra).unwrap();
            }
        }
        std::fs::write(&log, &full).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_bit_mid_log_refuses_to_start() {
    let dir = written_log(40).await;
    let log = log_files(dir.path()).pop().unwrap();
    let valid = valid_log_len(&log);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&log)
        .unwrap();
    let at = valid / 2;
    file.seek(SeekFrom::Start(at)).unwrap();
    let mut byte = [0u8; 1];
    std::io::Read::read_exact(&mut file, &mut byte).unwrap();
    file.seek(SeekFrom::Start(at)).unwrap();
    file.write_all(&[byte[0] ^ 0x10]).unwrap();
    drop(file);
    let (code, stderr) = ServerProcess::run_to_exit(dir.path(), free_port());
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("corrupt") && stderr.contains("refusing to start"),
        "{stderr}"
    );
}

/// A crash right after a log roll leaves an empty `log.<next zxid>`; the restarted server must
/// start that file over instead of failing to create it.
#[tokio::test]
async fn empty_log_file_left_by_a_crash_after_a_roll_is_reused() {
    let mut server = TestingServer::start().await.unwrap();
    let mut c = RawClient::connect(&server.connect_string()).await;
    c.create("/before", b"", CreateMode::Persistent)
        .await
        .unwrap();
    let next = c.last_zxid + 1;
    drop(c);
    server.stop().await;
    let header = FileHeader {
        magic: FileHeader::TXNLOG_MAGIC,
        version: 2,
        dbid: 0,
    };
    let empty = server
        .data_dir()
        .join("version-2")
        .join(format!("log.{next:x}"));
    std::fs::write(&empty, header.to_bytes()).unwrap();
    server.restart().await.unwrap();
    let mut c = RawClient::connect(&server.connect_string()).await;
    c.create("/after", b"", CreateMode::Persistent)
        .await
        .unwrap();
    server.restart().await.unwrap();
    let mut c = RawClient::connect(&server.connect_string()).await;
    assert!(c.exists("/before", false).await.is_ok());
    assert!(c.exists("/after", false).await.is_ok());
}

/// `chattr +i` on a path until dropped: writes to an immutable file, or new files in an
/// immutable directory, fail with EPERM even for root — a storage error on demand.
struct Immutable(std::path::PathBuf);

impl Immutable {
    fn set(path: &std::path::Path) -> Immutable {
        assert!(
            chattr("+i", path),
            "chattr +i failed: this test needs e2fsprogs, an ext2/3/4 file system and \
             CAP_LINUX_IMMUTABLE"
        );
        Immutable(path.to_owned())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        // Not an assert: a panic while unwinding would abort the test binary.
        if !chattr("-i", &self.0) {
            eprintln!("chattr -i {} failed", self.0.display());
        }
    }
}

fn chattr(flag: &str, path: &std::path::Path) -> bool {
    std::process::Command::new("chattr")
        .arg(flag)
        .arg(path)
        .status()
        .is_ok_and(|s| s.success())
}

/// Sends a create of `path` without waiting for the reply; returns its xid.
async fn send_create(c: &mut RawClient, path: &str) -> i32 {
    let xid = c.next_xid();
    let body = CreateRequest {
        path: path.to_owned(),
        data: None,
        acl: Acl::open_unsafe(),
        flags: 0,
    };
    c.send(xid, OpCode::Create, &|b| body.encode(b)).await;
    xid
}

/// Waits (bounded) for the server to exit; its exit code and what it wrote to stderr.
async fn exit_of(mut server: ServerProcess) -> (Option<i32>, String) {
    let waited = tokio::task::spawn_blocking(move || {
        let status = server.child.wait().expect("wait for zk-server");
        let mut stderr = String::new();
        if let Some(mut pipe) = server.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        (status.code(), stderr)
    });
    tokio::time::timeout(Duration::from_secs(20), waited)
        .await
        .expect("the server exits")
        .unwrap()
}

/// A failed log write is never acknowledged: the server stops (exit code 1) and, after a
/// restart, the write is absent while everything acknowledged before it is present. The
/// failure is injected by making the open log file immutable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_write_error_stops_the_server_without_acknowledging() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), free_port(), "");
    let mut c = RawClient::connect(&server.addr()).await;
    c.create("/acked", b"", CreateMode::Persistent)
        .await
        .unwrap();
    let log = log_files(dir.path()).pop().unwrap();
    let reply = {
        let _immutable = Immutable::set(&log);
        send_create(&mut c, "/lost").await;
        c.read_frame().await
    };
    assert!(
        matches!(reply, Ok(None) | Err(_)),
        "the failed write was answered: {reply:?}"
    );
    let (code, stderr) = exit_of(server).await;
    assert_eq!(code, Some(1), "the server stops on a log write error");
    assert!(
        stderr.contains("storage failure, server stopped"),
        "{stderr}"
    );
    let restarted = ServerProcess::start(dir.path(), free_port(), "");
    let mut check = RawClient::connect(&restarted.addr()).await;
    assert!(check.exists("/acked", false).await.is_ok());
    assert_eq!(check.exists("/lost", false).await, Err(ErrorCode::NoNode));
}

/// The next log file after a roll (at a snapshot) cannot be created — the directory refuses
/// new files, as a full disk would — so the txn that needs it is never acknowledged: the
/// server stops (exit code 1), and after a restart every write acknowledged before is there
/// (in the file the roll closed) and that one is not. One create at a time, so the roll comes
/// after the same write every run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_roll_that_cannot_start_the_next_file_stops_the_server_without_acknowledging() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), free_port(), "snapCount=10");
    let mut c = RawClient::connect(&server.addr()).await;
    c.create("/first", b"", CreateMode::Persistent)
        .await
        .unwrap();
    let mut acked = vec!["/first".to_owned()];
    let mut refused = None;
    {
        let _immutable = Immutable::set(&dir.path().join("data").join("version-2"));
        for i in 0..30 {
            let path = format!("/n-{i}");
            let xid = send_create(&mut c, &path).await;
            let Ok(Some(frame)) = c.read_frame().await else {
                refused = Some(path);
                break;
            };
            let header = ReplyHeader::decode(&mut Reader::new(&frame)).unwrap();
            assert_eq!((header.xid, header.err), (xid, 0), "{path}");
            acked.push(path);
        }
    }
    // The session and /first are txns 1 and 2; the snapshot follows txn 10 (/n-7).
    assert_eq!(refused.as_deref(), Some("/n-8"), "acknowledged: {acked:?}");
    let (code, stderr) = exit_of(server).await;
    assert_eq!(
        code,
        Some(1),
        "the server stops when it cannot start a log file"
    );
    assert!(
        stderr.contains("storage failure, server stopped"),
        "{stderr}"
    );
    let restarted = ServerProcess::start(dir.path(), free_port(), "");
    let mut check = RawClient::connect(&restarted.addr()).await;
    for path in &acked {
        assert!(
            check.exists(path, false).await.is_ok(),
            "{path} was acknowledged"
        );
    }
    assert_eq!(check.exists("/n-8", false).await, Err(ErrorCode::NoNode));
}
