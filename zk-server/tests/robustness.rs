//! Hostile or broken clients affect only their own connection; the server keeps serving
//! everyone else with bounded memory.

mod support;

use std::time::Duration;

use support::process::{free_port, ServerProcess};
use support::RawClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zk_proto::*;
use zk_server::TestingServer;

/// Reads until the server closes the connection (true) or `WAIT` passes (false).
async fn server_closes(stream: &mut TcpStream) -> bool {
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + support::WAIT;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

async fn still_serving(server: &TestingServer) {
    let mut c = RawClient::connect(&server.connect_string()).await;
    assert!(c.exists("/zookeeper", false).await.is_ok());
}

async fn established(server: &TestingServer) -> RawClient {
    RawClient::connect(&server.connect_string()).await
}

#[tokio::test]
async fn oversized_frame_closes_only_that_connection() {
    let server = TestingServer::start().await.unwrap();
    let mut c = established(&server).await;
    let mut bystander = established(&server).await;
    c.send_raw(&(2 * 1024 * 1024i32).to_be_bytes())
        .await
        .unwrap();
    assert!(server_closes(&mut c.stream).await);
    assert!(bystander.exists("/zookeeper", false).await.is_ok());
    // A negative length too.
    let mut d = established(&server).await;
    d.send_raw(&(-5i32).to_be_bytes()).await.unwrap();
    assert!(server_closes(&mut d.stream).await);
    still_serving(&server).await;
}

#[tokio::test]
async fn a_garbage_handshake_closes_the_connection() {
    let server = TestingServer::start().await.unwrap();
    let mut raw = TcpStream::connect(server.connect_string()).await.unwrap();
    raw.write_all(&[0, 0, 0, 8, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4])
        .await
        .unwrap();
    assert!(server_closes(&mut raw).await);
    still_serving(&server).await;
}

/// A request whose body does not decode (here a getData whose path length overruns its
/// frame) is answered MARSHALLINGERROR and the connection goes on, as Apache's request
/// processors answer (the frame's length keeps the stream in step).
#[tokio::test]
async fn an_undecodable_request_body_is_answered_marshalling_error() {
    let server = TestingServer::start().await.unwrap();
    let mut c = established(&server).await;
    c.send_raw(&[0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 4, 0x7f, 0, 0, 0])
        .await
        .unwrap();
    let (h, _) = c.reply_to(1).await.expect("a reply");
    assert_eq!(h.err, ErrorCode::MarshallingError.as_i32());
    assert!(c.exists("/zookeeper", false).await.is_ok(), "still served");
}

/// Requests that arrive in the same read as an undecodable one, ahead of it, are executed in
/// order, and it is answered in its turn, after them.
#[tokio::test]
async fn requests_ahead_of_an_undecodable_one_are_executed_first() {
    let server = TestingServer::start().await.unwrap();
    let mut c = established(&server).await;
    let mut out = bytes::BytesMut::new();
    for (xid, path) in [(1, "/ahead-1"), (2, "/ahead-1/2")] {
        frame::write_frame(&mut out, |b| {
            RequestHeader::new(xid, OpCode::Create).encode(b);
            CreateRequest {
                path: path.into(),
                data: Some(b"x".to_vec()),
                acl: Acl::open_unsafe(),
                flags: CreateMode::Persistent.flags(),
            }
            .encode(b);
        });
    }
    // A getData whose path length overruns its frame.
    out.extend_from_slice(&[0, 0, 0, 12, 0, 0, 0, 3, 0, 0, 0, 4, 0x7f, 0, 0, 0]);
    c.send_raw(&out).await.unwrap();
    // Replies in order: both creates succeeded (the second needs the first), then the error.
    for xid in [1, 2] {
        let (h, _) = c.reply_to(xid).await.expect("a reply");
        assert_eq!((h.xid, h.err), (xid, 0));
    }
    let (h, _) = c.reply_to(3).await.expect("a reply");
    assert_eq!(h.err, ErrorCode::MarshallingError.as_i32());
}

#[tokio::test]
async fn truncated_frame_then_hangup() {
    let server = TestingServer::start().await.unwrap();
    let mut c = established(&server).await;
    c.send_raw(&[0, 0, 0, 100, 1, 2, 3]).await.unwrap();
    drop(c);
    still_serving(&server).await;
}

#[tokio::test]
async fn unknown_opcode_gets_unimplemented_then_close() {
    let server = TestingServer::start().await.unwrap();
    let mut c = established(&server).await;
    let (h, _) = c.call_empty(OpCode::WhoAmI).await;
    assert_eq!(h.err, 0);
    let mut out = bytes::BytesMut::new();
    frame::write_frame(&mut out, |b| {
        b.extend_from_slice(&7i32.to_be_bytes());
        b.extend_from_slice(&999i32.to_be_bytes());
    });
    c.send_raw(&out).await.unwrap();
    let frame = c
        .read_frame()
        .await
        .unwrap()
        .expect("a reply before the close");
    let header = ReplyHeader::from_bytes(&frame).unwrap();
    assert_eq!(
        (header.xid, header.err),
        (7, ErrorCode::Unimplemented.as_i32())
    );
    assert!(c.closed_by_server().await);
    still_serving(&server).await;
}

/// A request pipelined right behind the handshake and refused (an unknown opcode) is
/// answered after the ConnectResponse, in its turn, then the connection closes.
#[tokio::test]
async fn a_refused_request_pipelined_behind_the_handshake_is_answered_after_it() {
    let server = TestingServer::start().await.unwrap();
    let mut raw = TcpStream::connect(server.connect_string()).await.unwrap();
    let mut out = bytes::BytesMut::new();
    frame::write_frame(&mut out, |b| support::new_session(10_000).encode(b));
    frame::write_frame(&mut out, |b| {
        b.extend_from_slice(&7i32.to_be_bytes());
        b.extend_from_slice(&999i32.to_be_bytes());
    });
    raw.write_all(&out).await.unwrap();
    let mut buf = bytes::BytesMut::new();
    let mut frames = Vec::new();
    while frames.len() < 2 {
        let n = tokio::time::timeout(support::WAIT, raw.read_buf(&mut buf))
            .await
            .expect("the replies in time")
            .unwrap();
        assert!(n > 0, "closed after {} frames", frames.len());
        while let Some(f) = frame::split_frame(&mut buf, 1 << 20).unwrap() {
            frames.push(f);
        }
    }
    let response = ConnectResponse::from_bytes(&frames[0]).expect("the ConnectResponse first");
    assert_ne!(response.session_id, 0);
    let header = ReplyHeader::from_bytes(&frames[1]).unwrap();
    assert_eq!(
        (header.xid, header.err),
        (7, ErrorCode::Unimplemented.as_i32())
    );
    assert!(server_closes(&mut raw).await);
}

#[tokio::test]
async fn a_3_5_server_refuses_newer_opcodes_then_closes() {
    let server = TestingServer::builder()
        .emulate_3_5(true)
        .start()
        .await
        .unwrap();
    let mut c = established(&server).await;
    let (h, _) = c.call_empty(OpCode::WhoAmI).await;
    assert_eq!(h.err, ErrorCode::Unimplemented.as_i32());
    assert!(c.closed_by_server().await);
    still_serving(&server).await;
}

#[tokio::test]
async fn request_before_the_handshake_is_rejected() {
    let server = TestingServer::start().await.unwrap();
    let mut raw = TcpStream::connect(server.connect_string()).await.unwrap();
    let mut out = bytes::BytesMut::new();
    frame::write_frame(&mut out, |b| {
        RequestHeader::new(1, OpCode::GetData).encode(b);
        GetDataRequest {
            path: "/zookeeper".into(),
            watch: false,
        }
        .encode(b);
    });
    raw.write_all(&out).await.unwrap();
    assert!(server_closes(&mut raw).await);
    still_serving(&server).await;
}

#[tokio::test]
async fn client_that_never_reads_is_throttled_not_buffered() {
    let server = TestingServer::start().await.unwrap();
    let mut c = established(&server).await;
    c.create("/big", &vec![1u8; 512 * 1024], CreateMode::Persistent)
        .await
        .unwrap();
    let before = rss_kib();
    // Ask for the 512 KiB node over and over without reading a single reply.
    let mut sent = 0usize;
    let mut request = bytes::BytesMut::new();
    frame::write_frame(&mut request, |b| {
        RequestHeader::new(1, OpCode::GetData).encode(b);
        GetDataRequest {
            path: "/big".into(),
            watch: false,
        }
        .encode(b);
    });
    // Ends when the server gives up on this client (it may disconnect it) or after 2 s.
    let flood = async {
        while c.stream.write_all(&request).await.is_ok() {
            sent += 1;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), flood).await;
    // The kernel buffers many requests, but the server stops taking them: at most 1,000
    // awaiting an answer, and none while 1 MiB of answers is queued.
    let mntr = server.four_letter_word("mntr").await.unwrap();
    let received: u64 = mntr
        .lines()
        .find_map(|l| l.strip_prefix("zk_packets_received\t"))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(
        received < 1_500,
        "server took {received} of {sent} requests from a client that never reads"
    );
    let grown_mib = rss_kib().saturating_sub(before) / 1024;
    eprintln!(
        "flood: {sent} requests written, {received} taken by the server, RSS +{grown_mib} MiB"
    );
    assert!(grown_mib < 200, "memory grew by {grown_mib} MiB");
    still_serving(&server).await;
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// 10,000 idle connections against the binary (its own file-descriptor budget): the server
/// keeps serving, and its memory stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_connections() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), free_port(), "");
    let addr = server.addr();
    let mut idle = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        match TcpStream::connect(&addr).await {
            Ok(s) => idle.push(s),
            Err(e) => panic!("connection {} refused: {e}", idle.len()),
        }
    }
    let mut c = RawClient::connect(&addr).await;
    c.create("/busy", b"still here", CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(
        c.get_data("/busy", false).await.unwrap().0,
        Some(b"still here".to_vec())
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    let rss_mib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap()
        / 1024;
    eprintln!("10,000 idle connections: server RSS {rss_mib} MiB");
    assert!(rss_mib < 400, "10,000 idle connections cost {rss_mib} MiB");
    drop(idle);
}

/// More requests than the per-connection limit arrive in one burst: the ones buffered while
/// reading was paused are served once answers go out, without waiting for more bytes.
#[tokio::test]
async fn burst_beyond_the_in_flight_limit_is_fully_served() {
    let server = TestingServer::start().await.unwrap();
    let mut c = established(&server).await;
    // 1,500 whoAmI requests of 12 bytes each fit in one read of the server's buffer.
    let mut burst = bytes::BytesMut::new();
    let first = c.next_xid();
    let count = 1500;
    for i in 0..count {
        frame::write_frame(&mut burst, |b| {
            RequestHeader::new(first + i, OpCode::WhoAmI).encode(b)
        });
    }
    c.send_raw(&burst).await.unwrap();
    for i in 0..count {
        let (h, _) = c.reply_to(first + i).await.expect("every request answered");
        assert_eq!(h.err, 0);
    }
}

/// Small replies: the server keeps at most ~1 MiB of answers for a client that never reads and
/// then stops taking its requests; once the kernel's socket buffers are full too, nothing moves.
#[tokio::test]
async fn client_that_never_reads_small_replies_is_paused() {
    let server = TestingServer::start().await.unwrap();
    let mut c = established(&server).await;
    c.create("/small", &[1u8; 100], CreateMode::Persistent)
        .await
        .unwrap();
    let mut request = bytes::BytesMut::new();
    frame::write_frame(&mut request, |b| {
        RequestHeader::new(1, OpCode::GetData).encode(b);
        GetDataRequest {
            path: "/small".into(),
            watch: false,
        }
        .encode(b);
    });
    let mut stream = c.stream;
    let flood = tokio::spawn(async move { while stream.write_all(&request).await.is_ok() {} });
    let received = || async {
        let mntr = server.four_letter_word("mntr").await.unwrap();
        mntr.lines()
            .find_map(|l| l.strip_prefix("zk_packets_received\t"))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap()
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let first = received().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = received().await;
    // Only the two mntr connections' own packets may have been counted in between.
    assert!(
        second - first <= 2,
        "server kept taking requests: {first} then {second}"
    );
    assert!(
        !flood.is_finished(),
        "the flooding client should be blocked, not disconnected"
    );
    flood.abort();
    still_serving(&server).await;
}

/// A client that stops reading while replies are queued, and whose session then expires, loses
/// its connection (and its `maxClientCnxns` slot) soon after: a closing connection that makes
/// no progress writing is dropped instead of waiting for the client forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closing_connection_that_cannot_flush_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = zk_server::ServerConfig::new(dir.path());
    config.client_port = 0;
    config.client_port_address = std::net::Ipv4Addr::LOCALHOST.into();
    config.tick_time_ms = 100;
    config.max_client_cnxns = 1;
    let server = zk_server::Server::start(config).await.unwrap();
    let addr = server.local_addr().to_string();
    let (mut frozen, _) = RawClient::connect_with(&addr, support::new_session(200))
        .await
        .unwrap();
    frozen
        .create("/big", &vec![7u8; 1_000_000], CreateMode::Persistent)
        .await
        .unwrap();
    // About 30 MB of replies: more than the socket buffers hold. Never read them, and send no
    // pings: the session expires with output pending.
    for _ in 0..30 {
        let xid = frozen.next_xid();
        let get = GetDataRequest {
            path: "/big".into(),
            watch: false,
        };
        frozen.send(xid, OpCode::GetData, &|b| get.encode(b)).await;
    }
    // The only slot is taken until the frozen connection goes; then a new client gets in.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok((mut c, _)) = RawClient::connect_with(&addr, support::new_session(10_000)).await {
            assert!(c.exists("/big", false).await.is_ok());
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the frozen connection still holds the slot"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(frozen);
    server.shutdown().await.unwrap();
}
