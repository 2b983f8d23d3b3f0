//! A minimal raw-protocol client for the server's tests: it speaks the wire protocol directly
//! (through zk-proto), so tests can check exact codes, stats and event order, and send bytes no
//! well-behaved client would.

#![allow(dead_code, unreachable_pub)]

pub mod process;
pub mod quorum;
pub mod replicas;

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zk_proto::frame::{split_frame, write_frame};
use zk_proto::*;

/// How long a test waits for anything before failing.
pub const WAIT: Duration = Duration::from_secs(5);

/// A reconfig request adding a fourth member (which a server without dynamic reconfiguration
/// refuses).
pub fn reconfig_adding_a_member() -> ReconfigRequest {
    ReconfigRequest {
        joining_servers: Some("server.4=127.0.0.1:2888:3888;2181".into()),
        leaving_servers: None,
        new_members: None,
        cur_config_id: -1,
    }
}

pub struct RawClient {
    pub stream: TcpStream,
    buf: BytesMut,
    xid: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    pub timeout: i32,
    pub last_zxid: i64,
    pub events: VecDeque<(i64, WatcherEvent)>,
}

pub fn new_session(timeout: i32) -> ConnectRequest {
    ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout,
        session_id: 0,
        passwd: vec![0; 16],
        read_only: Some(false),
    }
}

impl RawClient {
    /// A new session with a 10 s timeout.
    pub async fn connect(addr: &str) -> RawClient {
        Self::connect_with(addr, new_session(10_000))
            .await
            .expect("handshake")
            .0
    }

    /// Handshake with an explicit request; returns the client and the server's response.
    pub async fn connect_with(
        addr: &str,
        request: ConnectRequest,
    ) -> std::io::Result<(RawClient, ConnectResponse)> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let mut client = RawClient {
            stream,
            buf: BytesMut::new(),
            xid: 0,
            session_id: 0,
            passwd: Vec::new(),
            timeout: 0,
            last_zxid: request.last_zxid_seen,
            events: VecDeque::new(),
        };
        let mut out = BytesMut::new();
        write_frame(&mut out, |b| request.encode(b));
        client.stream.write_all(&out).await?;
        let frame = client
            .read_frame()
            .await?
            .ok_or_else(|| std::io::Error::other("closed during handshake"))?;
        let response = ConnectResponse::from_bytes(&frame).map_err(std::io::Error::other)?;
        client.session_id = response.session_id;
        client.passwd = response.passwd.clone();
        client.timeout = response.timeout;
        Ok((client, response))
    }

    /// Reads one frame; `None` when the server closed the connection.
    pub async fn read_frame(&mut self) -> std::io::Result<Option<BytesMut>> {
        loop {
            if let Some(frame) =
                split_frame(&mut self.buf, 16 << 20).map_err(std::io::Error::other)?
            {
                return Ok(Some(frame));
            }
            let n = tokio::time::timeout(WAIT, self.stream.read_buf(&mut self.buf))
                .await
                .map_err(|_| std::io::Error::other("timed out waiting for the server"))??;
            if n == 0 {
                return Ok(None);
            }
        }
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    pub fn next_xid(&mut self) -> i32 {
        self.xid += 1;
        self.xid
    }

    /// Writes a request without waiting for the reply.
    pub async fn send(&mut self, xid: i32, op: OpCode, body: &dyn Fn(&mut BytesMut)) {
        let mut out = BytesMut::new();
        write_frame(&mut out, |b| {
            RequestHeader::new(xid, op).encode(b);
            body(b);
        });
        self.stream.write_all(&out).await.expect("write request");
    }

    /// Reads frames until the reply to `xid`, collecting notifications on the way.
    pub async fn reply_to(&mut self, xid: i32) -> Option<(ReplyHeader, Bytes)> {
        loop {
            let frame = self.read_frame().await.expect("read")?;
            let mut r = Reader::new(&frame);
            let header = ReplyHeader::decode(&mut r).expect("reply header");
            let body = Bytes::copy_from_slice(r.rest());
            if header.zxid > 0 {
                self.last_zxid = self.last_zxid.max(header.zxid);
            }
            if header.xid == -1 {
                let event = WatcherEvent::from_bytes(&body).expect("event");
                self.events.push_back((header.zxid, event));
                continue;
            }
            assert_eq!(header.xid, xid, "replies must come in request order");
            return Some((header, body));
        }
    }

    /// Sends a request and waits for its reply.
    pub async fn call<T: Encode>(&mut self, op: OpCode, body: &T) -> (ReplyHeader, Bytes) {
        let xid = self.next_xid();
        self.send(xid, op, &|b| body.encode(b)).await;
        self.reply_to(xid)
            .await
            .expect("connection closed before the reply")
    }

    /// Sends a body-less request and waits for its reply.
    pub async fn call_empty(&mut self, op: OpCode) -> (ReplyHeader, Bytes) {
        let xid = self.next_xid();
        self.send(xid, op, &|_| {}).await;
        self.reply_to(xid)
            .await
            .expect("connection closed before the reply")
    }

    async fn typed<T: Encode, R: Decode>(&mut self, op: OpCode, body: &T) -> Result<R, ErrorCode> {
        let (header, bytes) = self.call(op, body).await;
        if header.err != 0 {
            return Err(ErrorCode::try_from(header.err).expect("known error code"));
        }
        Ok(R::from_bytes(&bytes).expect("reply body"))
    }

    async fn unit<T: Encode>(&mut self, op: OpCode, body: &T) -> Result<(), ErrorCode> {
        let (header, _) = self.call(op, body).await;
        match header.err {
            0 => Ok(()),
            err => Err(ErrorCode::try_from(err).expect("known error code")),
        }
    }

    pub async fn create_full(
        &mut self,
        path: &str,
        data: Option<&[u8]>,
        acl: Vec<Acl>,
        mode: CreateMode,
    ) -> Result<(String, Stat), ErrorCode> {
        let request = CreateRequest {
            path: path.into(),
            data: data.map(<[u8]>::to_vec),
            acl,
            flags: mode.flags(),
        };
        let op = if mode == CreateMode::Container {
            OpCode::CreateContainer
        } else {
            OpCode::Create2
        };
        let r: Create2Response = self.typed(op, &request).await?;
        Ok((r.path, r.stat))
    }

    pub async fn create(
        &mut self,
        path: &str,
        data: &[u8],
        mode: CreateMode,
    ) -> Result<String, ErrorCode> {
        self.create_full(path, Some(data), Acl::open_unsafe(), mode)
            .await
            .map(|(p, _)| p)
    }

    pub async fn create_ttl(
        &mut self,
        path: &str,
        mode: CreateMode,
        ttl: i64,
    ) -> Result<(String, Stat), ErrorCode> {
        let request = CreateTtlRequest {
            path: path.into(),
            data: Some(b"t".to_vec()),
            acl: Acl::open_unsafe(),
            flags: mode.flags(),
            ttl,
        };
        let r: Create2Response = self.typed(OpCode::CreateTtl, &request).await?;
        Ok((r.path, r.stat))
    }

    pub async fn delete(&mut self, path: &str, version: i32) -> Result<(), ErrorCode> {
        self.unit(
            OpCode::Delete,
            &DeleteRequest {
                path: path.into(),
                version,
            },
        )
        .await
    }

    pub async fn exists(&mut self, path: &str, watch: bool) -> Result<Stat, ErrorCode> {
        let r: ExistsResponse = self
            .typed(
                OpCode::Exists,
                &ExistsRequest {
                    path: path.into(),
                    watch,
                },
            )
            .await?;
        Ok(r.stat)
    }

    pub async fn get_data(
        &mut self,
        path: &str,
        watch: bool,
    ) -> Result<(Option<Vec<u8>>, Stat), ErrorCode> {
        let r: GetDataResponse = self
            .typed(
                OpCode::GetData,
                &GetDataRequest {
                    path: path.into(),
                    watch,
                },
            )
            .await?;
        Ok((r.data, r.stat))
    }

    pub async fn set_data(
        &mut self,
        path: &str,
        data: &[u8],
        version: i32,
    ) -> Result<Stat, ErrorCode> {
        let request = SetDataRequest {
            path: path.into(),
            data: Some(data.to_vec()),
            version,
        };
        let r: SetDataResponse = self.typed(OpCode::SetData, &request).await?;
        Ok(r.stat)
    }

    pub async fn children(&mut self, path: &str, watch: bool) -> Result<Vec<String>, ErrorCode> {
        let r: GetChildrenResponse = self
            .typed(
                OpCode::GetChildren,
                &GetChildrenRequest {
                    path: path.into(),
                    watch,
                },
            )
            .await?;
        let mut children = r.children;
        children.sort();
        Ok(children)
    }

    pub async fn children2(&mut self, path: &str) -> Result<(Vec<String>, Stat), ErrorCode> {
        let r: GetChildren2Response = self
            .typed(
                OpCode::GetChildren2,
                &GetChildren2Request {
                    path: path.into(),
                    watch: false,
                },
            )
            .await?;
        let mut children = r.children;
        children.sort();
        Ok((children, r.stat))
    }

    pub async fn get_acl(&mut self, path: &str) -> Result<(Vec<Acl>, Stat), ErrorCode> {
        let r: GetAclResponse = self
            .typed(OpCode::GetAcl, &GetAclRequest { path: path.into() })
            .await?;
        Ok((r.acl, r.stat))
    }

    pub async fn set_acl(
        &mut self,
        path: &str,
        acl: Vec<Acl>,
        version: i32,
    ) -> Result<Stat, ErrorCode> {
        let r: SetAclResponse = self
            .typed(
                OpCode::SetAcl,
                &SetAclRequest {
                    path: path.into(),
                    acl,
                    version,
                },
            )
            .await?;
        Ok(r.stat)
    }

    pub async fn multi(&mut self, ops: Vec<MultiOp>) -> Result<Vec<MultiResult>, ErrorCode> {
        let r: MultiResponse = self.typed(OpCode::Multi, &MultiRequest { ops }).await?;
        Ok(r.results)
    }

    pub async fn multi_read(&mut self, ops: Vec<MultiOp>) -> Result<Vec<MultiResult>, ErrorCode> {
        let r: MultiResponse = self.typed(OpCode::MultiRead, &MultiRequest { ops }).await?;
        Ok(r.results)
    }

    pub async fn add_watch(&mut self, path: &str, mode: AddWatchMode) -> Result<(), ErrorCode> {
        let (header, body) = self
            .call(
                OpCode::AddWatch,
                &AddWatchRequest {
                    path: path.into(),
                    mode,
                },
            )
            .await;
        if header.err != 0 {
            return Err(ErrorCode::try_from(header.err).expect("code"));
        }
        assert_eq!(
            &body[..],
            &[0, 0, 0, 0],
            "addWatch replies with ErrorResponse(0)"
        );
        Ok(())
    }

    pub async fn remove_watches(&mut self, path: &str, kind: WatcherType) -> Result<(), ErrorCode> {
        self.unit(
            OpCode::RemoveWatches,
            &RemoveWatchesRequest {
                path: path.into(),
                watcher_type: kind,
            },
        )
        .await
    }

    pub async fn check_watches(&mut self, path: &str, kind: WatcherType) -> Result<(), ErrorCode> {
        self.unit(
            OpCode::CheckWatches,
            &CheckWatchesRequest {
                path: path.into(),
                watcher_type: kind,
            },
        )
        .await
    }

    /// addauth digest user:password (xid -4).
    pub async fn add_digest(&mut self, user: &str, password: &str) -> Result<(), ErrorCode> {
        let packet = AuthPacket {
            auth_type: 0,
            scheme: "digest".into(),
            auth: format!("{user}:{password}").into_bytes(),
        };
        self.send(RequestHeader::AUTH_XID, OpCode::Auth, &|b| packet.encode(b))
            .await;
        let (header, _) = self
            .reply_to(RequestHeader::AUTH_XID)
            .await
            .expect("auth reply");
        match header.err {
            0 => Ok(()),
            err => Err(ErrorCode::try_from(err).expect("code")),
        }
    }

    /// The next watch event, waiting up to `WAIT`.
    pub async fn next_event(&mut self) -> Option<WatcherEvent> {
        if let Some((_, e)) = self.events.pop_front() {
            return Some(e);
        }
        let frame = self.read_frame().await.ok()??;
        let mut r = Reader::new(&frame);
        let header = ReplyHeader::decode(&mut r).expect("header");
        assert_eq!(header.xid, -1, "expected a notification, got a reply");
        Some(WatcherEvent::from_bytes(r.rest()).expect("event"))
    }

    /// Asserts that no event arrives within `wait`.
    pub async fn assert_no_event(&mut self, wait: Duration) {
        assert!(
            self.events.is_empty(),
            "unexpected events: {:?}",
            self.events
        );
        let got = tokio::time::timeout(wait, self.stream.read_buf(&mut self.buf)).await;
        if let Ok(Ok(n)) = got {
            assert!(
                n == 0 || self.buf.is_empty(),
                "unexpected data from the server"
            );
        }
    }

    /// Sends closeSession and waits for its reply and the close.
    pub async fn close_session(mut self) {
        let (header, _) = self.call_empty(OpCode::CloseSession).await;
        assert_eq!(header.err, 0);
        assert!(
            self.read_frame().await.expect("read").is_none(),
            "server closes after closeSession"
        );
    }

    /// Whether the server closed the connection (reads until EOF, ignoring frames).
    pub async fn closed_by_server(&mut self) -> bool {
        loop {
            match self.read_frame().await {
                Ok(None) => return true,
                Ok(Some(_)) => continue,
                Err(e) => {
                    return e.kind() != std::io::ErrorKind::Other
                        || !e.to_string().contains("timed out")
                }
            }
        }
    }
}

pub fn event(event_type: EventType, path: &str) -> WatcherEvent {
    WatcherEvent {
        event_type,
        state: KeeperState::SyncConnected,
        path: path.into(),
    }
}

/// Sends a four-letter word and reads the whole answer.
pub async fn four_letter(addr: &str, word: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(word.as_bytes()).await.expect("write");
    let mut out = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut out))
        .await
        .expect("4lw answer in time")
        .expect("read");
    out
}
