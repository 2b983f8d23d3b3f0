//! Golden-byte tests written from the field tables of the protocol reference: the bytes below are
//! what Apache ZooKeeper's jute serializers produce for the same records.

use zk_proto::*;

/// Concatenates byte pieces, for readable expected values.
fn bytes(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn s(text: &str) -> Vec<u8> {
    let mut out = (text.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out
}

fn sample_stat() -> Stat {
    Stat {
        czxid: 0x0000_0001_0000_0002,
        mzxid: 0x0000_0001_0000_0003,
        ctime: 0x0000_018B_CFE5_6800,
        mtime: 0x0000_018B_CFE5_6801,
        version: 4,
        cversion: 5,
        aversion: 6,
        ephemeral_owner: 0x0100_0000_0000_0007,
        data_length: 8,
        num_children: 9,
        pzxid: 0x0000_0001_0000_000A,
    }
}

#[test]
fn stat_is_68_bytes_in_field_order() {
    let expected = bytes(&[
        &0x0000_0001_0000_0002i64.to_be_bytes(),
        &0x0000_0001_0000_0003i64.to_be_bytes(),
        &0x0000_018B_CFE5_6800i64.to_be_bytes(),
        &0x0000_018B_CFE5_6801i64.to_be_bytes(),
        &4i32.to_be_bytes(),
        &5i32.to_be_bytes(),
        &6i32.to_be_bytes(),
        &0x0100_0000_0000_0007i64.to_be_bytes(),
        &8i32.to_be_bytes(),
        &9i32.to_be_bytes(),
        &0x0000_0001_0000_000Ai64.to_be_bytes(),
    ]);
    assert_eq!(expected.len(), 68);
    assert_eq!(&sample_stat().to_bytes()[..], &expected[..]);
    assert_eq!(Stat::from_bytes(&expected), Ok(sample_stat()));
}

#[test]
fn connect_request_with_16_byte_password_is_45_bytes() {
    let request = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0x0102_0304_0506_0708,
        timeout: 30_000,
        session_id: 0,
        passwd: vec![0; 16],
        read_only: Some(false),
    };
    let expected = bytes(&[
        &[0, 0, 0, 0],
        &[1, 2, 3, 4, 5, 6, 7, 8],
        &[0, 0, 0x75, 0x30],
        &[0; 8],
        &[0, 0, 0, 16],
        &[0; 16],
        &[0],
    ]);
    assert_eq!(expected.len(), 45);
    assert_eq!(&request.to_bytes()[..], &expected[..]);
    assert_eq!(ConnectRequest::from_bytes(&expected), Ok(request.clone()));

    // A pre-3.4 client omits the readOnly byte; its absence is preserved.
    let old = ConnectRequest::from_bytes(&expected[..44]).unwrap();
    assert_eq!(old.read_only, None);
    assert_eq!(old.to_bytes().len(), 44);
}

#[test]
fn connect_response_with_and_without_read_only() {
    let with = ConnectResponse {
        protocol_version: 0,
        timeout: 10_000,
        session_id: 0x0100_0000_0000_0001,
        passwd: (1..=16).collect(),
        read_only: Some(true),
    };
    let expected = bytes(&[
        &[0, 0, 0, 0],
        &[0, 0, 0x27, 0x10],
        &[1, 0, 0, 0, 0, 0, 0, 1],
        &[0, 0, 0, 16],
        &(1..=16).collect::<Vec<u8>>(),
        &[1],
    ]);
    assert_eq!(
        expected.len(),
        37,
        "the C client reads exactly 4 + 37 bytes"
    );
    assert_eq!(&with.to_bytes()[..], &expected[..]);
    assert_eq!(ConnectResponse::from_bytes(&expected), Ok(with.clone()));

    let without = ConnectResponse {
        read_only: None,
        ..with
    };
    assert_eq!(&without.to_bytes()[..], &expected[..36]);
    assert_eq!(ConnectResponse::from_bytes(&expected[..36]), Ok(without));
}

#[test]
fn reply_header() {
    let header = ReplyHeader {
        xid: 7,
        zxid: 0x0000_0001_0000_0002,
        err: ErrorCode::NoNode.as_i32(),
    };
    let expected = [
        0, 0, 0, 7, //
        0, 0, 0, 1, 0, 0, 0, 2, //
        0xff, 0xff, 0xff, 0x9b,
    ];
    assert_eq!(&header.to_bytes()[..], &expected[..]);
    assert_eq!(ReplyHeader::from_bytes(&expected), Ok(header));
}

#[test]
fn watch_notification() {
    let event = WatcherEvent {
        event_type: EventType::NodeDataChanged,
        state: KeeperState::SyncConnected,
        path: "/a".into(),
    };
    let expected = [0, 0, 0, 3, 0, 0, 0, 3, 0, 0, 0, 2, b'/', b'a'];
    assert_eq!(&event.to_bytes()[..], &expected[..]);
    assert_eq!(WatcherEvent::from_bytes(&expected), Ok(event));
}

#[test]
fn multi_request_framing() {
    let request = MultiRequest {
        ops: vec![
            MultiOp::Create(CreateRequest {
                path: "/a".into(),
                data: Some(b"x".to_vec()),
                acl: Acl::open_unsafe(),
                flags: CreateMode::Persistent.flags(),
            }),
            MultiOp::Delete(DeleteRequest {
                path: "/b".into(),
                version: -1,
            }),
        ],
    };
    let expected = bytes(&[
        // MultiHeader{create, done=false, err=-1}
        &[0, 0, 0, 1, 0, 0xff, 0xff, 0xff, 0xff],
        &s("/a"),
        &[0, 0, 0, 1, b'x'],
        &[0, 0, 0, 1], // one ACL
        &[0, 0, 0, 31],
        &s("world"),
        &s("anyone"),
        &[0, 0, 0, 0], // flags
        // MultiHeader{delete, done=false, err=-1}
        &[0, 0, 0, 2, 0, 0xff, 0xff, 0xff, 0xff],
        &s("/b"),
        &[0xff, 0xff, 0xff, 0xff],
        // terminator {-1, true, -1}
        &[0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff],
    ]);
    assert_eq!(&request.to_bytes()[..], &expected[..]);
    assert_eq!(MultiRequest::from_bytes(&expected), Ok(request));
}

#[test]
fn successful_multi_response_carries_each_ops_own_result_type() {
    let response = MultiResponse {
        results: vec![
            MultiResult::Create(CreateResponse { path: "/a".into() }),
            MultiResult::SetData(SetDataResponse {
                stat: sample_stat(),
            }),
            MultiResult::Delete,
            MultiResult::Check,
        ],
    };
    let expected = bytes(&[
        &[0, 0, 0, 1, 0, 0, 0, 0, 0],
        &s("/a"),
        &[0, 0, 0, 5, 0, 0, 0, 0, 0],
        &sample_stat().to_bytes(),
        &[0, 0, 0, 2, 0, 0, 0, 0, 0],
        &[0, 0, 0, 13, 0, 0, 0, 0, 0],
        &[0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff],
    ]);
    assert_eq!(&response.to_bytes()[..], &expected[..]);
    assert_eq!(MultiResponse::from_bytes(&expected), Ok(response));
}

#[test]
fn failed_multi_response_is_ok_then_code_then_runtime_inconsistency() {
    // Three ops, the second failed with NONODE: every result is an error result; the ones before
    // the failure carry 0, the failing one its code, the ones after -2.
    let response = MultiResponse {
        results: vec![
            MultiResult::Error(0),
            MultiResult::Error(ErrorCode::NoNode.as_i32()),
            MultiResult::Error(ErrorCode::RuntimeInconsistency.as_i32()),
        ],
    };
    let expected = bytes(&[
        &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0],
        &[0, 0, 0, 0],
        &[0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0xff, 0x9b],
        &[0xff, 0xff, 0xff, 0x9b],
        &[0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0xff, 0xfe],
        &[0xff, 0xff, 0xff, 0xfe],
        &[0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff],
    ]);
    assert_eq!(&response.to_bytes()[..], &expected[..]);
    assert_eq!(MultiResponse::from_bytes(&expected), Ok(response));
}

#[test]
fn request_frame_with_header() {
    let mut out = bytes::BytesMut::new();
    frame::write_frame(&mut out, |buf| {
        RequestHeader::new(1, OpCode::Exists).encode(buf);
        ExistsRequest {
            path: "/x".into(),
            watch: true,
        }
        .encode(buf);
    });
    let expected = [
        0, 0, 0, 15, // length
        0, 0, 0, 1, 0, 0, 0, 3, // xid 1, exists
        0, 0, 0, 2, b'/', b'x', 1,
    ];
    assert_eq!(&out[..], &expected[..]);
}

#[test]
fn ping_and_auth_use_special_xids() {
    assert_eq!(
        &RequestHeader::new(RequestHeader::PING_XID, OpCode::Ping).to_bytes()[..],
        &[0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 11]
    );
    let auth = AuthPacket {
        auth_type: 0,
        scheme: "digest".into(),
        auth: b"u:p".to_vec(),
    };
    let expected = bytes(&[&[0, 0, 0, 0], &s("digest"), &[0, 0, 0, 3], b"u:p"]);
    assert_eq!(&auth.to_bytes()[..], &expected[..]);
}

#[test]
fn kazoo_null_strings_and_buffers_are_accepted() {
    // kazoo writes -1 for empty strings and for None data.
    let mut raw = s("/n");
    raw.extend_from_slice(&[0xff; 4]); // data: null
    raw.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 31]);
    raw.extend_from_slice(&s("world"));
    raw.extend_from_slice(&s("anyone"));
    raw.extend_from_slice(&[0, 0, 0, 0]);
    let request = CreateRequest::from_bytes(&raw).unwrap();
    assert_eq!(request.data, None);
    assert_eq!(request.to_bytes().to_vec(), raw);

    let mut id = vec![0xff; 4]; // scheme null
    id.extend_from_slice(&s("anyone"));
    assert_eq!(Id::from_bytes(&id), Ok(Id::new("", "anyone")));
}

#[test]
fn error_reply_trailing_bytes_are_ignored() {
    // Some Apache code paths append a body to an error reply; decoding the header alone and
    // ignoring the rest is what Apache's clients do.
    let mut raw = ReplyHeader {
        xid: 3,
        zxid: 9,
        err: ErrorCode::NoNode.as_i32(),
    }
    .to_bytes()
    .to_vec();
    raw.extend_from_slice(&[1, 2, 3]);
    let header = ReplyHeader::from_bytes(&raw).unwrap();
    assert_eq!(header.error_code(), Ok(ErrorCode::NoNode));
}

#[test]
fn txn_log_entry_with_digest() {
    let txn = Txn {
        digest: Some(TxnDigest {
            version: 2,
            tree_digest: 0x1234,
        }),
        ..Txn::new(
            0x0100_0000_0000_0001,
            5,
            0x0000_0001_0000_0001,
            1_700_000_000_000,
            TxnBody::Create(CreateTxn {
                path: "/e".into(),
                data: None,
                acl: Acl::open_unsafe(),
                ephemeral: true,
                parent_cversion: 1,
            }),
        )
    };
    let expected = bytes(&[
        &0x0100_0000_0000_0001i64.to_be_bytes(),
        &5i32.to_be_bytes(),
        &0x0000_0001_0000_0001i64.to_be_bytes(),
        &1_700_000_000_000i64.to_be_bytes(),
        &1i32.to_be_bytes(),
        &s("/e"),
        &[0xff; 4],
        &[0, 0, 0, 1, 0, 0, 0, 31],
        &s("world"),
        &s("anyone"),
        &[1],
        &1i32.to_be_bytes(),
        &2i32.to_be_bytes(),
        &0x1234i64.to_be_bytes(),
    ]);
    assert_eq!(&txn.to_bytes()[..], &expected[..]);
    assert_eq!(Txn::from_bytes(&expected), Ok(txn));
}

#[test]
fn quorum_packet() {
    let packet = QuorumPacket {
        packet_type: QuorumPacketType::Commit.as_i32(),
        zxid: 0x0000_0002_0000_0001,
        data: None,
        auth_info: vec![],
    };
    let expected = bytes(&[
        &[0, 0, 0, 4],
        &0x0000_0002_0000_0001i64.to_be_bytes(),
        &[0xff; 4],
        &[0, 0, 0, 0],
    ]);
    assert_eq!(&packet.to_bytes()[..], &expected[..]);
    assert_eq!(QuorumPacket::from_bytes(&expected), Ok(packet));
}

// ---- Leader election (raw ByteBuffer / DataOutputStream layouts, not jute) ----

/// `FastLeaderElection.buildMsg(int state, long leader, long zxid, long electionEpoch,
/// long epoch, byte[] configData)`: putInt(state), putLong ×4, putInt(CURRENTVERSION = 2),
/// putInt(configData.length), put(configData); 44 + n bytes.
#[test]
fn notification_version_2_layout() {
    let config = b"server.1=zk1:2888:3888:participant\nversion=100000000".to_vec();
    let n = Notification {
        state: ServerState::Following,
        leader: 3,
        zxid: 0x0000_0005_0000_0007,
        election_epoch: 9,
        peer_epoch: 5,
        config: config.clone(),
    };
    let expected = bytes(&[
        &1i32.to_be_bytes(),
        &3i64.to_be_bytes(),
        &0x0000_0005_0000_0007i64.to_be_bytes(),
        &9i64.to_be_bytes(),
        &5i64.to_be_bytes(),
        &[0, 0, 0, 2],
        &(config.len() as i32).to_be_bytes(),
        &config,
    ]);
    assert_eq!(expected.len(), 44 + config.len());
    assert_eq!(&n.to_bytes()[..], &expected[..]);
    assert_eq!(
        Notification::parse(&expected),
        Ok((n, NotificationFormat::Versioned(2)))
    );
}

/// `WorkerReceiver.run`: a 28-byte message has no peer epoch; it is
/// `ZxidUtils.getEpochFromZxid(zxid)` (zxid >> 32).
#[test]
fn notification_legacy_28_bytes() {
    let msg = bytes(&[
        &0i32.to_be_bytes(),
        &2i64.to_be_bytes(),
        &0x0000_0004_0000_0010i64.to_be_bytes(),
        &6i64.to_be_bytes(),
    ]);
    assert_eq!(msg.len(), 28);
    let (n, format) = Notification::parse(&msg).unwrap();
    assert_eq!(format, NotificationFormat::Legacy28);
    assert_eq!(n.state, ServerState::Looking);
    assert_eq!((n.leader, n.election_epoch, n.peer_epoch), (2, 6, 4));
    assert!(n.config.is_empty());
}

/// `WorkerReceiver.run`: exactly 40 bytes is read as "no version" (backCompatibility40), which
/// is also what the 40-byte `buildMsg` (ending in putInt(0x1)) produces.
#[test]
fn notification_legacy_40_bytes() {
    let msg = bytes(&[
        &2i32.to_be_bytes(),
        &1i64.to_be_bytes(),
        &0x0000_0004_0000_0010i64.to_be_bytes(),
        &6i64.to_be_bytes(),
        &7i64.to_be_bytes(),
        &1i32.to_be_bytes(),
    ]);
    let (n, format) = Notification::parse(&msg).unwrap();
    assert_eq!(format, NotificationFormat::Legacy40);
    assert_eq!(n.state, ServerState::Leading);
    assert_eq!(n.peer_epoch, 7);
}

/// Version 1 messages longer than 40 bytes carry no config; trailing bytes are ignored.
#[test]
fn notification_version_1_has_no_config() {
    let mut msg = Notification {
        state: ServerState::Observing,
        leader: 1,
        zxid: 2,
        election_epoch: 3,
        peer_epoch: 4,
        config: vec![],
    }
    .to_bytes()
    .to_vec();
    msg[39] = 1; // version 1; the (zero) config length is now trailing garbage
    let (n, format) = Notification::parse(&msg).unwrap();
    assert_eq!(format, NotificationFormat::Versioned(1));
    assert_eq!(n.peer_epoch, 4);
}

#[test]
fn notification_rejects_what_apache_skips() {
    let good = Notification {
        state: ServerState::Looking,
        leader: 1,
        zxid: 2,
        election_epoch: 3,
        peer_epoch: 4,
        config: b"abc".to_vec(),
    }
    .to_bytes()
    .to_vec();
    // Shorter than 28 bytes.
    assert!(Notification::parse(&good[..27]).is_err());
    // 29..=39 bytes (other than the legacy sizes) run out inside peerEpoch or version.
    for len in (29..40).chain(41..44) {
        assert!(Notification::parse(&good[..len]).is_err(), "{len}");
    }
    // Config length beyond the message, negative, or cut short.
    let mut long = good.clone();
    long[40..44].copy_from_slice(&1000i32.to_be_bytes());
    assert!(Notification::parse(&long).is_err());
    let mut negative = good.clone();
    negative[40..44].copy_from_slice(&(-1i32).to_be_bytes());
    assert!(Notification::parse(&negative).is_err());
    assert!(Notification::parse(&good[..46]).is_err());
    // Unknown state.
    let mut state = good.clone();
    state[3] = 4;
    assert!(matches!(
        Notification::parse(&state),
        Err(DecodeError::InvalidValue { value: 4, .. })
    ));
}

/// `QuorumCnxManager.startConnection`: writeLong(protocolVersion), writeLong(myId),
/// writeInt(addr bytes length), write(addr bytes) with addresses formatted by
/// `NetUtils.formatInetAddr` and joined with `|`.
#[test]
fn initial_message_v2_layout() {
    let msg = InitialMessage {
        version: InitialMessageVersion::V2,
        sid: 2,
        election_addrs: vec![
            HostPort::new("10.0.0.2", 3888),
            HostPort::new("fd00::2", 3889),
        ],
    };
    let text = b"10.0.0.2:3888|[fd00::2]:3889";
    let expected = bytes(&[
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x01],
        &2i64.to_be_bytes(),
        &(text.len() as i32).to_be_bytes(),
        text,
    ]);
    assert_eq!(&msg.to_bytes()[..], &expected[..]);
    assert_eq!(InitialMessage::from_bytes(&expected), Ok(msg));
}

#[test]
fn initial_message_v1_layout_and_wildcards() {
    let text = b"0.0.0.0:3888";
    let wire = bytes(&[
        &(-65536i64).to_be_bytes(),
        &7i64.to_be_bytes(),
        &(text.len() as i32).to_be_bytes(),
        text,
    ]);
    assert_eq!(
        &wire[..8],
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00]
    );
    // InitialMessage.parse drops wildcard addresses (isWildcardAddress).
    assert_eq!(
        InitialMessage::from_bytes(&wire),
        Ok(InitialMessage {
            version: InitialMessageVersion::V1,
            sid: 7,
            election_addrs: vec![],
        })
    );
}

/// `QuorumCnxManager.handleConnection`: a non-negative first long is a pre-3.5 sid.
#[test]
fn initial_message_legacy_sid() {
    let msg = InitialMessage::from_bytes(&5i64.to_be_bytes()).unwrap();
    assert_eq!(msg.version, InitialMessageVersion::Legacy);
    assert_eq!(msg.sid, 5);
    assert_eq!(&msg.to_bytes()[..], &5i64.to_be_bytes());
}

/// `InitialMessage.parse`: unknown versions, lengths ≤ 0 or > maxBuffer (2048), and addresses
/// that are not host:port are rejected.
#[test]
fn initial_message_validation() {
    let with = |version: i64, len: i32, body: &[u8]| {
        bytes(&[
            &version.to_be_bytes(),
            &1i64.to_be_bytes(),
            &len.to_be_bytes(),
            body,
        ])
    };
    assert!(matches!(
        InitialMessage::from_bytes(&with(-65534, 8, b"zk1:3888")),
        Err(DecodeError::InvalidValue {
            what: "protocol version",
            ..
        })
    ));
    for len in [0, -1, 2049] {
        assert!(InitialMessage::from_bytes(&with(-65536, len, b"zk1:3888")).is_err());
    }
    let max = vec![b'a'; 2048];
    // 2048 bytes pass the length check (and then fail as an address: no port).
    assert!(matches!(
        InitialMessage::from_bytes(&with(-65536, 2048, &max)),
        Err(DecodeError::MalformedText { .. })
    ));
    let long_host = format!("{}:1", "h".repeat(2046));
    assert_eq!(long_host.len(), 2048);
    assert!(InitialMessage::from_bytes(&with(-65535, 2048, long_host.as_bytes())).is_ok());
    for bad in [
        &b"zk1"[..],
        b"zk1:x",
        b"zk1:1|",
        b"zk1:1:2",
        b"[::1:3888",
        b"zk1:99999",
    ] {
        assert!(
            InitialMessage::from_bytes(&with(-65535, bad.len() as i32, bad)).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    // Truncated body.
    assert!(InitialMessage::from_bytes(&with(-65536, 8, b"zk1:")).is_err());
}
