//! Property tests: every record decodes to exactly what was encoded, consuming every byte.

use proptest::prelude::*;

use crate::jute::{Decode, Encode, Reader};
use crate::records::*;
use crate::types::*;

fn assert_round_trip<T: Encode + Decode + PartialEq + std::fmt::Debug>(value: &T) {
    let bytes = value.to_bytes();
    let mut reader = Reader::new(&bytes);
    let decoded = T::decode(&mut reader).expect("an encoded record decodes");
    assert_eq!(&decoded, value);
    assert!(reader.is_empty(), "{} bytes left over", reader.remaining());
    assert!(
        bytes.len() >= T::MIN_LEN,
        "MIN_LEN {} > encoded {}",
        T::MIN_LEN,
        bytes.len()
    );
}

macro_rules! round_trip_tests {
    ($($name:ident: $ty:ty),* $(,)?) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            $(
                #[test]
                fn $name(value: $ty) {
                    assert_round_trip(&value);
                }
            )*
        }
    };
}

round_trip_tests! {
    connect_request: ConnectRequest,
    connect_response: ConnectResponse,
    request_header: RequestHeader,
    reply_header: ReplyHeader,
    error_response: ErrorResponse,
    watcher_event: WatcherEvent,
    auth_packet: AuthPacket,
    get_sasl_request: GetSaslRequest,
    set_sasl_request: SetSaslRequest,
    set_sasl_response: SetSaslResponse,
    who_am_i_response: WhoAmIResponse,
    create_request: CreateRequest,
    create_ttl_request: CreateTtlRequest,
    create_response: CreateResponse,
    create2_response: Create2Response,
    delete_request: DeleteRequest,
    exists_request: ExistsRequest,
    exists_response: ExistsResponse,
    get_data_request: GetDataRequest,
    get_data_response: GetDataResponse,
    set_data_request: SetDataRequest,
    set_data_response: SetDataResponse,
    get_acl_request: GetAclRequest,
    get_acl_response: GetAclResponse,
    set_acl_request: SetAclRequest,
    set_acl_response: SetAclResponse,
    check_version_request: CheckVersionRequest,
    sync_request: SyncRequest,
    sync_response: SyncResponse,
    get_children_request: GetChildrenRequest,
    get_children_response: GetChildrenResponse,
    get_children2_request: GetChildren2Request,
    get_children2_response: GetChildren2Response,
    get_ephemerals_request: GetEphemeralsRequest,
    get_ephemerals_response: GetEphemeralsResponse,
    get_all_children_number_request: GetAllChildrenNumberRequest,
    get_all_children_number_response: GetAllChildrenNumberResponse,
    set_watches: SetWatches,
    set_watches2: SetWatches2,
    add_watch_request: AddWatchRequest,
    check_watches_request: CheckWatchesRequest,
    remove_watches_request: RemoveWatchesRequest,
    reconfig_request: ReconfigRequest,
    multi_header: MultiHeader,
    multi_request: MultiRequest,
    multi_response: MultiResponse,
    stat: Stat,
    stat_persisted: StatPersisted,
    id: Id,
    acl: Acl,
    txn_header: TxnHeader,
    create_txn: CreateTxn,
    create_container_txn: CreateContainerTxn,
    create_ttl_txn: CreateTtlTxn,
    delete_txn: DeleteTxn,
    set_data_txn: SetDataTxn,
    set_acl_txn: SetAclTxn,
    check_version_txn: CheckVersionTxn,
    create_session_txn: CreateSessionTxn,
    close_session_txn: CloseSessionTxn,
    error_txn: ErrorTxn,
    multi_txn: MultiTxn,
    txn_digest: TxnDigest,
    quorum_packet: QuorumPacket,
    learner_info: LearnerInfo,
    file_header: FileHeader,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn request_body(request: Request) {
        let bytes = request.to_bytes();
        let mut reader = Reader::new(&bytes);
        let decoded = Request::decode_for(request.op_code(), &mut reader).expect("decodes");
        prop_assert_eq!(decoded, request);
        prop_assert!(reader.is_empty());
    }

    #[test]
    fn txn(header: TxnHeader, body: TxnBody, digest: Option<TxnDigest>) {
        let txn = Txn {
            header: TxnHeader { txn_type: body.op_code().as_i32(), ..header },
            body,
            digest,
        };
        assert_round_trip(&txn);
    }

    #[test]
    fn multi_txn_bodies(bodies in proptest::collection::vec(any::<TxnBody>(), 0..8)) {
        let multi = MultiTxn::from_bodies(&bodies);
        prop_assert_eq!(multi.bodies().expect("sub-txns decode"), bodies);
    }

    #[test]
    fn int_enums(op: OpCode, code: ErrorCode, event: EventType, state: KeeperState,
                 watcher: WatcherType, mode: AddWatchMode, create: CreateMode) {
        prop_assert_eq!(OpCode::try_from(op.as_i32()), Ok(op));
        prop_assert_eq!(ErrorCode::try_from(code.as_i32()), Ok(code));
        prop_assert_eq!(EventType::try_from(event.as_i32()), Ok(event));
        prop_assert_eq!(KeeperState::try_from(state.as_i32()), Ok(state));
        prop_assert_eq!(WatcherType::try_from(watcher.as_i32()), Ok(watcher));
        prop_assert_eq!(AddWatchMode::try_from(mode.as_i32()), Ok(mode));
        prop_assert_eq!(CreateMode::from_flags(create.flags()), Some(create));
    }
}

/// Election addresses that survive a round trip: IPv4/IPv6 literals (never the wildcard) and
/// host names.
fn host_port() -> impl Strategy<Value = HostPort> {
    let host = prop_oneof![
        "[a-z][a-z0-9-]{0,20}(\\.[a-z][a-z0-9-]{0,10}){0,2}",
        any::<[u8; 4]>()
            .prop_filter("not the wildcard", |b| *b != [0; 4])
            .prop_map(|b| std::net::Ipv4Addr::from(b).to_string()),
        any::<[u8; 16]>()
            .prop_filter("not the wildcard", |b| *b != [0; 16])
            .prop_map(|b| std::net::Ipv6Addr::from(b).to_string()),
    ];
    (host, any::<u16>()).prop_map(|(host, port)| HostPort::new(host, port))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn notification(value: Notification) {
        let bytes = value.to_bytes();
        prop_assert_eq!(bytes.len(), Notification::HEADER_LEN + value.config.len());
        let (decoded, format) = Notification::parse(&bytes).expect("decodes");
        prop_assert_eq!(decoded, value);
        prop_assert_eq!(format, NotificationFormat::Versioned(NOTIFICATION_VERSION));
    }

    #[test]
    fn initial_message(
        version in prop_oneof![Just(InitialMessageVersion::V1), Just(InitialMessageVersion::V2)],
        sid: i64,
        addrs in proptest::collection::vec(host_port(), 1..6),
    ) {
        let value = InitialMessage { version, sid, election_addrs: addrs };
        assert_round_trip(&value);
    }

    #[test]
    fn legacy_initial_message(sid in 0..=i64::MAX) {
        let value = InitialMessage {
            version: InitialMessageVersion::Legacy,
            sid,
            election_addrs: vec![],
        };
        assert_round_trip(&value);
    }

    #[test]
    fn host_port_text(addr in host_port()) {
        prop_assert_eq!(HostPort::parse(&addr.to_string()), Some(addr));
    }

    #[test]
    fn server_states(state: ServerState) {
        prop_assert_eq!(ServerState::try_from(state.as_i32()), Ok(state));
        assert_round_trip(&state);
    }
}
