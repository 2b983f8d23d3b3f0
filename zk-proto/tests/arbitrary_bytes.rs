//! Arbitrary bytes fed to every decoder: each returns Ok or Err and never panics.

use bytes::BytesMut;
use proptest::prelude::*;
use zk_proto::*;

fn decode_all(bytes: &[u8]) {
    macro_rules! try_decode {
        ($($ty:ty),* $(,)?) => {$(
            let _ = <$ty>::from_bytes(bytes);
        )*};
    }
    try_decode!(
        ConnectRequest,
        ConnectResponse,
        RequestHeader,
        ReplyHeader,
        ErrorResponse,
        WatcherEvent,
        AuthPacket,
        GetSaslRequest,
        SetSaslRequest,
        SetSaslResponse,
        WhoAmIResponse,
        CreateRequest,
        CreateTtlRequest,
        CreateResponse,
        Create2Response,
        DeleteRequest,
        ExistsRequest,
        ExistsResponse,
        GetDataRequest,
        GetDataResponse,
        SetDataRequest,
        SetDataResponse,
        GetAclRequest,
        GetAclResponse,
        SetAclRequest,
        SetAclResponse,
        CheckVersionRequest,
        SyncRequest,
        SyncResponse,
        GetChildrenRequest,
        GetChildrenResponse,
        GetChildren2Request,
        GetChildren2Response,
        GetEphemeralsRequest,
        GetEphemeralsResponse,
        GetAllChildrenNumberRequest,
        GetAllChildrenNumberResponse,
        SetWatches,
        SetWatches2,
        AddWatchRequest,
        CheckWatchesRequest,
        RemoveWatchesRequest,
        ReconfigRequest,
        MultiHeader,
        MultiRequest,
        MultiResponse,
        Stat,
        StatPersisted,
        Id,
        Acl,
        TxnHeader,
        CreateTxn,
        CreateContainerTxn,
        CreateTtlTxn,
        DeleteTxn,
        SetDataTxn,
        SetAclTxn,
        CheckVersionTxn,
        CreateSessionTxn,
        CloseSessionTxn,
        ErrorTxn,
        MultiTxn,
        TxnDigest,
        Txn,
        QuorumPacket,
        LearnerInfo,
        FileHeader,
        InitialMessage,
        ServerState,
    );
    let _ = Notification::parse(bytes);
    let _ = HostPort::parse(&String::from_utf8_lossy(bytes));
    for op in OpCode::ALL {
        let _ = Request::decode_for(*op, &mut Reader::new(bytes));
        let _ = TxnBody::decode_for(op.as_i32(), &mut Reader::new(bytes));
    }
    if let Ok(multi) = MultiTxn::from_bytes(bytes) {
        let _ = multi.bodies();
    }
    let mut buf = BytesMut::from(bytes);
    while let Ok(Some(_)) = frame::split_frame(&mut buf, 64) {}
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        decode_all(&bytes);
    }

    /// Bytes that start like a real record and then go wrong reach deeper decoder paths.
    #[test]
    fn decoders_never_panic_on_mutated_records(
        flip in proptest::collection::vec((0usize..200, any::<u8>()), 1..4),
        cut in 0usize..200,
    ) {
        let mut bytes = MultiRequest {
            ops: vec![
                MultiOp::Create(CreateRequest {
                    path: "/a/b".into(),
                    data: Some(b"data".to_vec()),
                    acl: Acl::open_unsafe(),
                    flags: 3,
                }),
                MultiOp::SetData(SetDataRequest { path: "/c".into(), data: None, version: 2 }),
            ],
        }
        .to_bytes()
        .to_vec();
        for (at, value) in flip {
            if let Some(b) = bytes.get_mut(at) {
                *b = value;
            }
        }
        bytes.truncate(cut);
        decode_all(&bytes);
    }

    /// Election messages that start valid and then go wrong.
    #[test]
    fn election_decoders_never_panic_on_mutated_messages(
        flip in proptest::collection::vec((0usize..80, any::<u8>()), 1..4),
        cut in 0usize..80,
    ) {
        let notification = Notification {
            state: ServerState::Looking,
            leader: 1,
            zxid: 2,
            election_epoch: 3,
            peer_epoch: 4,
            config: b"server.1=a:1:2".to_vec(),
        };
        let initial = InitialMessage {
            version: InitialMessageVersion::V2,
            sid: 1,
            election_addrs: vec![HostPort::new("::1", 3888), HostPort::new("zk2", 3888)],
        };
        for mut bytes in [notification.to_bytes().to_vec(), initial.to_bytes().to_vec()] {
            for (at, value) in &flip {
                if let Some(b) = bytes.get_mut(*at) {
                    *b = *value;
                }
            }
            bytes.truncate(cut);
            decode_all(&bytes);
        }
    }
}
