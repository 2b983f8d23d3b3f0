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
