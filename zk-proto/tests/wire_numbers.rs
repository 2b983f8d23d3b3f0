//! Every opcode, error code, event type, state, watcher type and create mode of the protocol
//! reference, with its number. A renumbered or missing variant fails here.

use zk_proto::*;

#[test]
fn opcodes() {
    let expected = [
        (OpCode::Notification, 0),
        (OpCode::Create, 1),
        (OpCode::Delete, 2),
        (OpCode::Exists, 3),
        (OpCode::GetData, 4),
        (OpCode::SetData, 5),
        (OpCode::GetAcl, 6),
        (OpCode::SetAcl, 7),
        (OpCode::GetChildren, 8),
        (OpCode::Sync, 9),
        (OpCode::Ping, 11),
        (OpCode::GetChildren2, 12),
        (OpCode::Check, 13),
        (OpCode::Multi, 14),
        (OpCode::Create2, 15),
        (OpCode::Reconfig, 16),
        (OpCode::CheckWatches, 17),
        (OpCode::RemoveWatches, 18),
        (OpCode::CreateContainer, 19),
        (OpCode::DeleteContainer, 20),
        (OpCode::CreateTtl, 21),
        (OpCode::MultiRead, 22),
        (OpCode::Auth, 100),
        (OpCode::SetWatches, 101),
        (OpCode::Sasl, 102),
        (OpCode::GetEphemerals, 103),
        (OpCode::GetAllChildrenNumber, 104),
        (OpCode::SetWatches2, 105),
        (OpCode::AddWatch, 106),
        (OpCode::WhoAmI, 107),
        (OpCode::CreateSession, -10),
        (OpCode::CloseSession, -11),
        (OpCode::Error, -1),
    ];
    for (op, number) in expected {
        assert_eq!(op.as_i32(), number, "{op:?}");
        assert_eq!(OpCode::try_from(number), Ok(op));
    }
    assert_eq!(OpCode::ALL.len(), expected.len());
    assert_eq!(OpCode::try_from(10), Err(10), "10 is not an opcode");
    assert_eq!(OpCode::try_from(999), Err(999));
}

#[test]
fn error_codes() {
    let expected = [
        (ErrorCode::Ok, 0, "OK"),
        (ErrorCode::SystemError, -1, "SYSTEMERROR"),
        (ErrorCode::RuntimeInconsistency, -2, "RUNTIMEINCONSISTENCY"),
        (ErrorCode::DataInconsistency, -3, "DATAINCONSISTENCY"),
        (ErrorCode::ConnectionLoss, -4, "CONNECTIONLOSS"),
        (ErrorCode::MarshallingError, -5, "MARSHALLINGERROR"),
        (ErrorCode::Unimplemented, -6, "UNIMPLEMENTED"),
        (ErrorCode::OperationTimeout, -7, "OPERATIONTIMEOUT"),
        (ErrorCode::BadArguments, -8, "BADARGUMENTS"),
        (ErrorCode::InvalidState, -9, "INVALIDSTATE"),
        (ErrorCode::UnknownSession, -12, "UNKNOWNSESSION"),
        (ErrorCode::NewConfigNoQuorum, -13, "NEWCONFIGNOQUORUM"),
        (ErrorCode::ReconfigInProgress, -14, "RECONFIGINPROGRESS"),
        (ErrorCode::SslConnectionError, -15, "SSLCONNECTIONERROR"),
        (ErrorCode::ApiError, -100, "APIERROR"),
        (ErrorCode::NoNode, -101, "NONODE"),
        (ErrorCode::NoAuth, -102, "NOAUTH"),
        (ErrorCode::BadVersion, -103, "BADVERSION"),
        (
            ErrorCode::NoChildrenForEphemerals,
            -108,
            "NOCHILDRENFOREPHEMERALS",
        ),
        (ErrorCode::NodeExists, -110, "NODEEXISTS"),
        (ErrorCode::NotEmpty, -111, "NOTEMPTY"),
        (ErrorCode::SessionExpired, -112, "SESSIONEXPIRED"),
        (ErrorCode::InvalidCallback, -113, "INVALIDCALLBACK"),
        (ErrorCode::InvalidAcl, -114, "INVALIDACL"),
        (ErrorCode::AuthFailed, -115, "AUTHFAILED"),
        (ErrorCode::Closing, -116, "CLOSING"),
        (ErrorCode::Nothing, -117, "NOTHING"),
        (ErrorCode::SessionMoved, -118, "SESSIONMOVED"),
        (ErrorCode::NotReadOnly, -119, "NOTREADONLY"),
        (
            ErrorCode::EphemeralOnLocalSession,
            -120,
            "EPHEMERALONLOCALSESSION",
        ),
        (ErrorCode::NoWatcher, -121, "NOWATCHER"),
        (ErrorCode::RequestTimeout, -122, "REQUESTTIMEOUT"),
        (ErrorCode::ReconfigDisabled, -123, "RECONFIGDISABLED"),
        (
            ErrorCode::SessionClosedRequireSaslAuth,
            -124,
            "SESSIONCLOSEDREQUIRESASLAUTH",
        ),
        (ErrorCode::QuotaExceeded, -125, "QUOTAEXCEEDED"),
        (ErrorCode::ThrottledOp, -127, "THROTTLEDOP"),
    ];
    for (code, number, name) in expected {
        assert_eq!(code.as_i32(), number, "{code:?}");
        assert_eq!(ErrorCode::try_from(number), Ok(code));
        assert_eq!(code.name(), name);
        let shown = code.to_string();
        assert!(
            shown.contains(name) && shown.contains(&number.to_string()),
            "{shown}"
        );
    }
    assert_eq!(ErrorCode::ALL.len(), expected.len());
    assert_eq!(
        ErrorCode::NoNode.to_string(),
        "no node (NONODE, -101)",
        "Display is human-readable"
    );
}

#[test]
fn events_states_and_watch_types() {
    for (event, n) in [
        (EventType::None, -1),
        (EventType::NodeCreated, 1),
        (EventType::NodeDeleted, 2),
        (EventType::NodeDataChanged, 3),
        (EventType::NodeChildrenChanged, 4),
        (EventType::DataWatchRemoved, 5),
        (EventType::ChildWatchRemoved, 6),
        (EventType::PersistentWatchRemoved, 7),
    ] {
        assert_eq!(event.as_i32(), n);
    }
    for (state, n) in [
        (KeeperState::Unknown, -1),
        (KeeperState::Disconnected, 0),
        (KeeperState::NoSyncConnected, 1),
        (KeeperState::SyncConnected, 3),
        (KeeperState::AuthFailed, 4),
        (KeeperState::ConnectedReadOnly, 5),
        (KeeperState::SaslAuthenticated, 6),
        (KeeperState::Expired, -112),
        (KeeperState::Closed, 7),
    ] {
        assert_eq!(state.as_i32(), n);
    }
    for (kind, n) in [
        (WatcherType::Children, 1),
        (WatcherType::Data, 2),
        (WatcherType::Any, 3),
        (WatcherType::Persistent, 4),
        (WatcherType::PersistentRecursive, 5),
    ] {
        assert_eq!(kind.as_i32(), n);
    }
    assert_eq!(AddWatchMode::Persistent.as_i32(), 0);
    assert_eq!(AddWatchMode::PersistentRecursive.as_i32(), 1);
}

#[test]
fn create_modes_and_predicates() {
    use CreateMode::*;
    // (mode, flags, ephemeral, sequential, container, ttl)
    let expected = [
        (Persistent, 0, false, false, false, false),
        (Ephemeral, 1, true, false, false, false),
        (PersistentSequential, 2, false, true, false, false),
        (EphemeralSequential, 3, true, true, false, false),
        (Container, 4, false, false, true, false),
        (PersistentWithTtl, 5, false, false, false, true),
        (PersistentSequentialWithTtl, 6, false, true, false, true),
    ];
    for (mode, flags, eph, seq, container, ttl) in expected {
        assert_eq!(mode.flags(), flags);
        assert_eq!(CreateMode::from_flags(flags), Some(mode));
        assert_eq!(mode.is_ephemeral(), eph, "{mode:?}");
        assert_eq!(mode.is_sequential(), seq, "{mode:?}");
        assert_eq!(mode.is_container(), container, "{mode:?}");
        assert_eq!(mode.is_ttl(), ttl, "{mode:?}");
    }
    assert_eq!(CreateMode::from_flags(7), None);
    assert_eq!(CreateMode::from_flags(-1), None);
}

#[test]
fn perms_and_well_known_acls() {
    assert_eq!(Perms::READ.bits(), 1);
    assert_eq!(Perms::WRITE.bits(), 2);
    assert_eq!(Perms::CREATE.bits(), 4);
    assert_eq!(Perms::DELETE.bits(), 8);
    assert_eq!(Perms::ADMIN.bits(), 16);
    assert_eq!(Perms::ALL.bits(), 31);
    assert_eq!(
        Acl::open_unsafe(),
        vec![Acl::new(Perms::ALL, Id::new("world", "anyone"))]
    );
    assert_eq!(
        Acl::creator_all(),
        vec![Acl::new(Perms::ALL, Id::new("auth", ""))]
    );
    assert_eq!(
        Acl::read_unsafe(),
        vec![Acl::new(Perms::READ, Id::new("world", "anyone"))]
    );
}

#[test]
fn digest_ids() {
    // `user:` + base64(sha1("user:password")), standard alphabet with padding.
    assert_eq!(
        Id::digest("super", "test"),
        Id::new("digest", "super:D/InIHSb7yEEbrWz8b9l71RjZJU=")
    );
    let id = digest_id("user", "password");
    let (user, hash) = id.split_once(':').unwrap();
    assert_eq!(user, "user");
    assert_eq!(hash.len(), 28, "base64 of a 20-byte SHA-1 digest");
    assert!(hash.ends_with('='));
}

#[test]
fn quorum_packet_types() {
    for (n, t) in (1..=19).zip(QuorumPacketType::ALL) {
        assert_eq!(t.as_i32(), n);
    }
    assert_eq!(QuorumPacketType::NewLeader.as_i32(), 10);
    assert_eq!(QuorumPacketType::AckEpoch.as_i32(), 18);
    assert_eq!(FileHeader::TXNLOG_MAGIC.to_be_bytes(), *b"ZKLG");
    assert_eq!(FileHeader::SNAPSHOT_MAGIC.to_be_bytes(), *b"ZKSN");
}
