//! Session rules: negotiation, ids, re-attach, expiry through a logged closeSession, FIFO.

mod support;

use std::time::Duration;

use support::{new_session, RawClient};
use zk_proto::*;
use zk_server::TestingServer;

#[tokio::test]
async fn timeout_is_clamped_and_ids_carry_the_server_id() {
    // tickTime 200 ms: minimum 400 ms; the testing server allows up to 60 s.
    let server = TestingServer::start().await.unwrap();
    let addr = server.connect_string();
    let (low, r) = RawClient::connect_with(&addr, new_session(10))
        .await
        .unwrap();
    assert_eq!(r.timeout, 400);
    assert_eq!(
        low.session_id >> 56,
        0,
        "standalone server id 0 in the top byte"
    );
    assert_eq!(r.passwd.len(), 16);
    let (_, r) = RawClient::connect_with(&addr, new_session(1_000_000))
        .await
        .unwrap();
    assert_eq!(r.timeout, 60_000);
    let (_, r) = RawClient::connect_with(&addr, new_session(5_000))
        .await
        .unwrap();
    assert_eq!(r.timeout, 5_000);
    assert_eq!(r.read_only, Some(false), "readOnly byte mirrored");
    let mut old = new_session(5_000);
    old.read_only = None;
    let (_, r) = RawClient::connect_with(&addr, old).await.unwrap();
    assert_eq!(r.read_only, None, "old clients get no readOnly byte");
}

#[tokio::test]
async fn reattach_keeps_the_session_and_its_ephemerals() {
    let server = TestingServer::start().await.unwrap();
    let addr = server.connect_string();
    let mut first = RawClient::connect(&addr).await;
    first
        .create("/eph", b"", CreateMode::Ephemeral)
        .await
        .unwrap();
    let request = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: first.last_zxid,
        timeout: 10_000,
        session_id: first.session_id,
        passwd: first.passwd.clone(),
        read_only: Some(false),
    };
    let (mut second, r) = RawClient::connect_with(&addr, request).await.unwrap();
    assert_eq!(r.session_id, first.session_id);
    assert_eq!(r.passwd, first.passwd);
    // The old connection is closed once the session moved.
    assert!(first.closed_by_server().await);
    let stat = second.exists("/eph", false).await.unwrap();
    assert_eq!(stat.ephemeral_owner, second.session_id);
    second
        .create("/eph2", b"", CreateMode::Ephemeral)
        .await
        .unwrap();
}

#[tokio::test]
async fn wrong_password_or_unknown_session_is_expired() {
    let server = TestingServer::start().await.unwrap();
    let addr = server.connect_string();
    let c = RawClient::connect(&addr).await;
    let mut request = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout: 10_000,
        session_id: c.session_id,
        passwd: vec![7; 16],
        read_only: Some(false),
    };
    let (mut rejected, r) = RawClient::connect_with(&addr, request.clone())
        .await
        .unwrap();
    assert_eq!((r.timeout, r.session_id), (0, 0));
    assert!(rejected.closed_by_server().await);
    request.session_id = 0x0000_1234_5678_0000;
    let (_, r) = RawClient::connect_with(&addr, request).await.unwrap();
    assert!(r.timeout <= 0);
}

#[tokio::test]
async fn client_ahead_of_the_server_is_refused() {
    let server = TestingServer::start().await.unwrap();
    let mut request = new_session(10_000);
    request.last_zxid_seen = 0x7fff_0000_0000;
    let result = RawClient::connect_with(&server.connect_string(), request).await;
    assert!(result.is_err(), "the server closes without answering");
}

#[tokio::test]
async fn expiry_deletes_ephemerals_and_fires_watches() {
    let server = TestingServer::start().await.unwrap();
    let addr = server.connect_string();
    let mut owner = RawClient::connect(&addr).await;
    owner
        .create("/lease", b"", CreateMode::Ephemeral)
        .await
        .unwrap();
    let mut watcher = RawClient::connect(&addr).await;
    watcher.exists("/lease", true).await.unwrap();
    assert!(server.expire_session(owner.session_id).await);
    assert_eq!(
        watcher.next_event().await,
        Some(support::event(EventType::NodeDeleted, "/lease"))
    );
    assert!(owner.closed_by_server().await);
    assert!(
        !server.expire_session(owner.session_id).await,
        "already gone"
    );
    // Re-attaching an expired session is refused.
    let request = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout: 10_000,
        session_id: owner.session_id,
        passwd: owner.passwd.clone(),
        read_only: Some(false),
    };
    let (_, r) = RawClient::connect_with(&addr, request).await.unwrap();
    assert_eq!(r.timeout, 0);
}

#[tokio::test]
async fn silent_session_times_out() {
    let server = TestingServer::start().await.unwrap();
    let addr = server.connect_string();
    let (mut quiet, r) = RawClient::connect_with(&addr, new_session(400))
        .await
        .unwrap();
    assert_eq!(r.timeout, 400);
    quiet
        .create("/quiet", b"", CreateMode::Ephemeral)
        .await
        .unwrap();
    let mut other = RawClient::connect(&addr).await;
    // No pings from `quiet`: within a few timeouts the server expires it.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while other.exists("/quiet", false).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "session never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn pings_keep_a_session_alive() {
    let server = TestingServer::start().await.unwrap();
    let addr = server.connect_string();
    let (mut c, _) = RawClient::connect_with(&addr, new_session(400))
        .await
        .unwrap();
    c.create("/alive", b"", CreateMode::Ephemeral)
        .await
        .unwrap();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        c.send(RequestHeader::PING_XID, OpCode::Ping, &|_| {}).await;
        let (h, _) = c.reply_to(RequestHeader::PING_XID).await.unwrap();
        assert_eq!(h.err, 0);
    }
    assert!(c.exists("/alive", false).await.is_ok());
}

#[tokio::test]
async fn close_session_replies_then_closes_and_deletes_ephemerals() {
    let server = TestingServer::start().await.unwrap();
    let addr = server.connect_string();
    let mut c = RawClient::connect(&addr).await;
    c.create("/bye", b"", CreateMode::Ephemeral).await.unwrap();
    c.close_session().await;
    let mut other = RawClient::connect(&addr).await;
    assert_eq!(other.exists("/bye", false).await, Err(ErrorCode::NoNode));
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let server = TestingServer::start().await.unwrap();
    let mut c = RawClient::connect(&server.connect_string()).await;
    c.create("/fifo", b"0", CreateMode::Persistent)
        .await
        .unwrap();
    // Interleave writes and reads without waiting; each read must see the writes before it.
    let mut xids = Vec::new();
    for i in 1..=50 {
        let xid = c.next_xid();
        let body = SetDataRequest {
            path: "/fifo".into(),
            data: Some(i.to_string().into_bytes()),
            version: -1,
        };
        c.send(xid, OpCode::SetData, &|b| body.encode(b)).await;
        xids.push((xid, Some(i)));
        let xid = c.next_xid();
        let body = GetDataRequest {
            path: "/fifo".into(),
            watch: false,
        };
        c.send(xid, OpCode::GetData, &|b| body.encode(b)).await;
        xids.push((xid, None));
    }
    let mut last_written = 0;
    for (xid, write) in xids {
        let (h, body) = c.reply_to(xid).await.unwrap();
        assert_eq!(h.err, 0);
        match write {
            Some(i) => last_written = i,
            None => {
                let r = GetDataResponse::from_bytes(&body).unwrap();
                assert_eq!(r.data, Some(last_written.to_string().into_bytes()));
            }
        }
    }
}

/// A failed write answered right away but queued behind earlier writes carries a zxid no lower
/// than theirs: Java and C clients take each reply's zxid as their last seen one, and a lower
/// one would make their next reconnect replay events.
#[tokio::test]
async fn reply_zxids_never_go_down_on_a_connection() {
    let server = TestingServer::start().await.unwrap();
    let mut c = RawClient::connect(&server.connect_string()).await;
    c.create("/z", b"", CreateMode::Persistent).await.unwrap();
    let mut xids = Vec::new();
    for i in 0..20 {
        let xid = c.next_xid();
        let set = SetDataRequest {
            path: "/z".into(),
            data: Some(vec![i]),
            version: -1,
        };
        c.send(xid, OpCode::SetData, &|b| set.encode(b)).await;
        xids.push((xid, 0));
        let xid = c.next_xid();
        let delete = DeleteRequest {
            path: "/missing".into(),
            version: -1,
        };
        c.send(xid, OpCode::Delete, &|b| delete.encode(b)).await;
        xids.push((xid, ErrorCode::NoNode.as_i32()));
    }
    let mut highest = 0;
    for (xid, err) in xids {
        let (h, _) = c.reply_to(xid).await.unwrap();
        assert_eq!(h.err, err);
        assert!(h.zxid >= highest, "zxid {:#x} after {highest:#x}", h.zxid);
        highest = h.zxid;
    }
}

#[tokio::test]
async fn requests_pipelined_behind_the_handshake_are_served() {
    let server = TestingServer::start().await.unwrap();
    let mut stream = tokio::net::TcpStream::connect(server.connect_string())
        .await
        .unwrap();
    let mut out = bytes::BytesMut::new();
    frame::write_frame(&mut out, |b| new_session(10_000).encode(b));
    frame::write_frame(&mut out, |b| {
        RequestHeader::new(1, OpCode::Exists).encode(b);
        ExistsRequest {
            path: "/zookeeper".into(),
            watch: false,
        }
        .encode(b);
    });
    tokio::io::AsyncWriteExt::write_all(&mut stream, &out)
        .await
        .unwrap();
    let mut buf = bytes::BytesMut::new();
    let mut frames = Vec::new();
    while frames.len() < 2 {
        let n = tokio::time::timeout(
            support::WAIT,
            tokio::io::AsyncReadExt::read_buf(&mut stream, &mut buf),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(n > 0);
        while let Some(f) = frame::split_frame(&mut buf, 1 << 20).unwrap() {
            frames.push(f);
        }
    }
    assert!(ConnectResponse::from_bytes(&frames[0]).unwrap().timeout > 0);
    let header = ReplyHeader::from_bytes(&frames[1]).unwrap();
    assert_eq!((header.xid, header.err), (1, 0));
}

/// A session's connection is closed when its expiry is applied, not before: a client that
/// sees the close finds its ephemerals already gone (Apache closes it in
/// FinalRequestProcessor, after the closeSession txn).
#[tokio::test]
async fn an_expired_sessions_connection_closes_once_its_ephemerals_are_gone() {
    let server = TestingServer::start().await.unwrap();
    let addr = server.connect_string();
    let mut other = RawClient::connect(&addr).await;
    for i in 0..20 {
        let mut owner = RawClient::connect(&addr).await;
        let path = format!("/expiring-{i}");
        owner
            .create(&path, b"", CreateMode::Ephemeral)
            .await
            .unwrap();
        assert!(server.expire_session(owner.session_id).await);
        assert!(owner.closed_by_server().await);
        assert_eq!(
            other.exists(&path, false).await,
            Err(ErrorCode::NoNode),
            "round {i}: the connection closed before the ephemeral was deleted"
        );
    }
}
