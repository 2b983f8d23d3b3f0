//! The core is tested by the actions it emits: nothing is answered before it is durable, and
//! replies keep each connection's request order.

use super::*;
use zk_proto::{CreateRequest, Decode, GetDataRequest, ReplyHeader, WatcherEvent};

const NOW: Now = Now {
    wall_ms: 1_700_000_000_000,
    mono_ms: 1000,
};
const C1: ConnId = ConnId(1);
const C2: ConnId = ConnId(2);

fn core() -> ServerCore {
    core_with(false)
}

fn core_with(emulate_3_5: bool) -> ServerCore {
    ServerCore::new(config(emulate_3_5, false), DataTree::new(), &[], NOW)
}

pub(super) fn config(emulate_3_5: bool, replicated: bool) -> CoreConfig {
    CoreConfig {
        server_id: 0,
        min_session_timeout_ms: 400,
        max_session_timeout_ms: 60_000,
        extended_types: true,
        super_digest: None,
        snap_count: 1_000_000,
        container_max_never_used_ms: 0,
        container_max_per_tick: 100,
        emulate_3_5,
        replicated,
        ensemble_config: None,
    }
}

/// A new session's handshake, with the client's canBeReadOnly flag.
fn new_session_request(read_only: Option<bool>) -> ConnectRequest {
    ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout: 10_000,
        session_id: 0,
        passwd: vec![0; 16],
        read_only,
    }
}

fn connect(core: &mut ServerCore, conn: ConnId) {
    let request = new_session_request(None);
    let actions = core.step(
        Input::Connect {
            conn,
            request,
            remote: "127.0.0.1:5000".parse().unwrap(),
        },
        NOW,
    );
    let [Action::Persist { zxid, .. }] = actions.as_slice() else {
        panic!("{actions:?}")
    };
    let actions = core.step(Input::Persisted(*zxid), NOW);
    assert!(
        matches!(actions.as_slice(), [Action::Send { conn: c, reply: false, .. }] if *c == conn)
    );
}

#[test]
fn the_handshake_says_read_write_to_clients_that_accept_read_only_servers() {
    for (flag, answer) in [
        (None, None),
        (Some(false), Some(false)),
        (Some(true), Some(false)),
    ] {
        let mut core = core();
        let request = new_session_request(flag);
        let remote = "127.0.0.1:5000".parse().unwrap();
        let actions = core.step(
            Input::Connect {
                conn: C1,
                request,
                remote,
            },
            NOW,
        );
        let [Action::Persist { zxid, .. }] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        let actions = core.step(Input::Persisted(*zxid), NOW);
        let [Action::Send { frame, .. }] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        let response = ConnectResponse::from_bytes(&frame[4..]).unwrap();
        assert!(response.session_id != 0);
        assert_eq!(response.read_only, answer, "client flag {flag:?}");
    }
}

fn request(core: &mut ServerCore, conn: ConnId, xid: i32, request: Request) -> Vec<Action> {
    core.step(Input::Request { conn, xid, request }, NOW)
}

fn create(path: &str) -> Request {
    Request::Create(CreateRequest {
        path: path.into(),
        data: None,
        acl: zk_proto::Acl::open_unsafe(),
        flags: 0,
    })
}

fn get(path: &str, watch: bool) -> Request {
    Request::GetData(GetDataRequest {
        path: path.into(),
        watch,
    })
}

fn reply_header(action: &Action) -> ReplyHeader {
    let Action::Send { frame, .. } = action else {
        panic!("{action:?}")
    };
    ReplyHeader::from_bytes(&frame[4..]).unwrap()
}

#[test]
fn a_write_is_answered_only_after_it_is_durable() {
    let mut core = core();
    connect(&mut core, C1);
    connect(&mut core, C2);
    let actions = request(&mut core, C1, 1, create("/a"));
    let [Action::Persist { zxid, .. }] = actions.as_slice() else {
        panic!("{actions:?}")
    };
    let zxid = *zxid;
    // A read behind the write waits for it.
    assert!(request(&mut core, C1, 2, get("/a", false)).is_empty());
    // Another connection's read is answered at once, from the committed tree.
    let other = request(&mut core, C2, 1, get("/a", false));
    assert_eq!(reply_header(&other[0]).err, ErrorCode::NoNode.as_i32());

    let actions = core.step(Input::Persisted(zxid), NOW);
    assert_eq!(actions.len(), 2);
    let first = reply_header(&actions[0]);
    assert_eq!((first.xid, first.zxid, first.err), (1, zxid, 0));
    let second = reply_header(&actions[1]);
    assert_eq!((second.xid, second.err), (2, 0), "the read sees the write");
}

/// A write that fails because of another session's write not yet durable (NODEEXISTS here)
/// is answered only once that write is: the failure must not reveal a node that a crash
/// could still undo, and a read after it must see the node.
#[test]
fn a_failure_resting_on_a_write_not_yet_durable_waits_for_it() {
    let mut core = core();
    connect(&mut core, C1);
    connect(&mut core, C2);
    let actions = request(&mut core, C1, 1, create("/a"));
    let [Action::Persist { zxid: first, .. }] = actions.as_slice() else {
        panic!("{actions:?}")
    };
    let first = *first;
    let actions = request(&mut core, C2, 1, create("/a"));
    let [Action::Persist { zxid: failed, .. }] = actions.as_slice() else {
        panic!("the failure is an error txn: {actions:?}")
    };
    let failed = *failed;
    assert!(request(&mut core, C2, 2, get("/a", false)).is_empty());

    let actions = core.step(Input::Persisted(failed), NOW);
    let headers: Vec<(ConnId, ReplyHeader)> = actions
        .iter()
        .map(|a| match a {
            Action::Send { conn, .. } => (*conn, reply_header(a)),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(headers.len(), 3, "{headers:?}");
    assert_eq!(
        (headers[0].0, headers[0].1.zxid, headers[0].1.err),
        (C1, first, 0)
    );
    let (conn, exists) = &headers[1];
    assert_eq!(
        (*conn, exists.xid, exists.zxid, exists.err),
        (C2, 1, failed, ErrorCode::NodeExists.as_i32())
    );
    let (conn, read) = &headers[2];
    assert_eq!((*conn, read.xid, read.err), (C2, 2, 0), "the read sees /a");
}

/// One session on C1 with a create of /a in flight (not yet durable), and C2 re-attaching
/// that session: the session id and timeout, the create's zxid, and the re-attach's actions.
fn reattach_during_a_write(core: &mut ServerCore) -> (i64, i32, i64, Vec<Action>) {
    connect(core, C1);
    let [(session_id, timeout)] = core.sessions()[..] else {
        panic!("one session")
    };
    let actions = request(core, C1, 1, create("/a"));
    let [Action::Persist { zxid, .. }] = actions.as_slice() else {
        panic!("{actions:?}")
    };
    let zxid = *zxid;
    let reattach = ConnectRequest {
        session_id,
        passwd: crate::session::session_password(session_id).to_vec(),
        ..new_session_request(None)
    };
    let actions = core.step(
        Input::Connect {
            conn: C2,
            request: reattach,
            remote: "127.0.0.1:5001".parse().unwrap(),
        },
        NOW,
    );
    (session_id, timeout, zxid, actions)
}

/// A session that moves to a new connection while a write it sent on the old one is not yet
/// durable: its next read must see that write (a protected-mode search looks for the node
/// its lost create made), so the new connection's handshake waits for the write.
#[test]
fn a_session_reattaching_while_its_write_is_in_flight_reads_that_write() {
    let mut core = core();
    let (session_id, _, zxid, actions) = reattach_during_a_write(&mut core);
    assert!(
        matches!(actions.as_slice(), [Action::Close { conn }] if *conn == C1),
        "the old connection closes, the new one waits: {actions:?}"
    );
    assert!(request(&mut core, C2, 2, get("/a", false)).is_empty());

    let actions = core.step(Input::Persisted(zxid), NOW);
    let [Action::Send {
        conn: c,
        frame,
        reply: false,
    }, read] = actions.as_slice()
    else {
        panic!("{actions:?}")
    };
    assert_eq!(*c, C2);
    let response = ConnectResponse::from_bytes(&frame[4..]).unwrap();
    assert_eq!(response.session_id, session_id);
    let read_header = reply_header(read);
    assert_eq!(
        (read_header.xid, read_header.err),
        (2, 0),
        "the read sees /a"
    );
}

/// A session that expires while its re-attach waits for its writes is refused as expired
/// once they are done, not left without an answer.
#[test]
fn a_session_expiring_while_its_reattach_waits_is_refused() {
    let mut core = core();
    let (_, timeout, create_zxid, _) = reattach_during_a_write(&mut core);
    let later = Now {
        wall_ms: NOW.wall_ms + 3 * i64::from(timeout),
        mono_ms: NOW.mono_ms + 3 * u64::try_from(timeout).unwrap(),
    };
    let actions = core.step(Input::Tick, later);
    let close_zxid = actions
        .iter()
        .find_map(|a| match a {
            Action::Persist { zxid, .. } => Some(*zxid),
            _ => None,
        })
        .expect("the session expires");
    assert!(close_zxid > create_zxid);
    let actions = core.step(Input::Persisted(close_zxid), later);
    let response = actions
        .iter()
        .find_map(|a| match a {
            Action::Send { conn, frame, .. } if *conn == C2 => {
                Some(ConnectResponse::from_bytes(&frame[4..]).unwrap())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("C2 is answered: {actions:?}"));
    assert_eq!((response.session_id, response.timeout), (0, 0), "expired");
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Close { conn } if *conn == C2)));
}

/// SetWatches fires at once for what changed while the client was away, also on a node it
/// may no longer read, and without a zxid, as Apache's `DataTree.setWatches`: dropping the
/// event would drop the watch too, and the client would wait for it for good.
#[test]
fn set_watches_fires_for_changes_unfiltered_by_acl() {
    let mut core = core();
    connect(&mut core, C1);
    let no_read = zk_proto::Acl {
        perms: zk_proto::Perms::from_bits(
            zk_proto::Perms::ALL.bits() & !zk_proto::Perms::READ.bits(),
        ),
        id: Id::new("world", "anyone"),
    };
    let actions = request(
        &mut core,
        C1,
        1,
        Request::Create(CreateRequest {
            path: "/hidden".into(),
            data: None,
            acl: vec![no_read],
            flags: 0,
        }),
    );
    let [Action::Persist { zxid, .. }] = actions.as_slice() else {
        panic!("{actions:?}")
    };
    core.step(Input::Persisted(*zxid), NOW);
    let actions = request(
        &mut core,
        C1,
        2,
        Request::SetWatches(zk_proto::SetWatches {
            relative_zxid: 0,
            data_watches: vec!["/hidden".into()],
            exist_watches: Vec::new(),
            child_watches: Vec::new(),
        }),
    );
    let [Action::Send {
        frame,
        reply: false,
        ..
    }, answer] = actions.as_slice()
    else {
        panic!("{actions:?}")
    };
    let header = ReplyHeader::from_bytes(&frame[4..]).unwrap();
    assert_eq!((header.xid, header.zxid), (-1, -1));
    let event = WatcherEvent::from_bytes(&frame[20..]).unwrap();
    assert_eq!(
        (event.event_type, event.path.as_str()),
        (zk_proto::EventType::NodeDataChanged, "/hidden")
    );
    assert_eq!(reply_header(answer).xid, 2);
}

#[test]
fn watch_event_precedes_the_writers_reply() {
    let mut core = core();
    connect(&mut core, C1);
    let actions = request(&mut core, C1, 1, create("/w"));
    let [Action::Persist { zxid, .. }] = actions.as_slice() else {
        panic!()
    };
    core.step(Input::Persisted(*zxid), NOW);
    request(&mut core, C1, 2, get("/w", true));
    let actions = request(
        &mut core,
        C1,
        3,
        Request::SetData(zk_proto::SetDataRequest {
            path: "/w".into(),
            data: None,
            version: -1,
        }),
    );
    let [Action::Persist { zxid, .. }] = actions.as_slice() else {
        panic!()
    };
    let actions = core.step(Input::Persisted(*zxid), NOW);
    let Action::Send {
        frame,
        reply: false,
        ..
    } = &actions[0]
    else {
        panic!("{actions:?}")
    };
    assert_eq!(ReplyHeader::from_bytes(&frame[4..]).unwrap().xid, -1);
    let event = WatcherEvent::from_bytes(&frame[20..]).unwrap();
    assert_eq!(event.path, "/w");
    assert_eq!(reply_header(&actions[1]).xid, 3);
}

#[test]
fn pipelined_writes_persist_in_order_and_batch() {
    let mut core = core();
    connect(&mut core, C1);
    let mut zxids = Vec::new();
    for (i, path) in ["/x", "/x/y", "/x/y/z"].iter().enumerate() {
        let actions = request(&mut core, C1, i32::try_from(i).unwrap() + 1, create(path));
        let [Action::Persist { zxid, .. }] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        zxids.push(*zxid);
    }
    assert!(
        zxids.windows(2).all(|w| w[1] == w[0] + 1),
        "contiguous zxids"
    );
    // One durability report covers the batch; replies come in order.
    let actions = core.step(Input::Persisted(zxids[2]), NOW);
    let xids: Vec<i32> = actions.iter().map(|a| reply_header(a).xid).collect();
    assert_eq!(xids, vec![1, 2, 3]);
    assert!(core.tree().get("/x/y/z").is_some());
}

#[test]
fn expiry_is_a_logged_close_session() {
    let mut core = core();
    connect(&mut core, C1);
    let actions = request(
        &mut core,
        C1,
        1,
        Request::Create(CreateRequest {
            path: "/e".into(),
            data: None,
            acl: zk_proto::Acl::open_unsafe(),
            flags: 1,
        }),
    );
    let [Action::Persist { zxid, .. }] = actions.as_slice() else {
        panic!()
    };
    core.step(Input::Persisted(*zxid), NOW);
    let later = Now {
        wall_ms: NOW.wall_ms + 20_000,
        mono_ms: NOW.mono_ms + 20_000,
    };
    let actions = core.step(Input::Tick, later);
    // The connection stays until the close is applied (Apache's FinalRequestProcessor).
    assert!(!actions
        .iter()
        .any(|a| matches!(a, Action::Close { conn } if *conn == C1)));
    let zxid = actions
        .iter()
        .find_map(|a| match a {
            Action::Persist { zxid, .. } => Some(*zxid),
            _ => None,
        })
        .expect("closeSession is logged");
    assert!(
        core.tree().get("/e").is_some(),
        "not deleted before it is durable"
    );
    let actions = core.step(Input::Persisted(zxid), later);
    assert!(core.tree().get("/e").is_none());
    assert!(core.sessions().is_empty());
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Close { conn } if *conn == C1)));
}

#[test]
fn a_3_5_server_refuses_newer_opcodes_and_closes_the_connection() {
    let add_watch = || {
        Request::AddWatch(zk_proto::AddWatchRequest {
            path: "/".into(),
            mode: zk_proto::AddWatchMode::PersistentRecursive,
        })
    };
    // As a 3.6+ server: answered.
    let mut core = core_with(false);
    connect(&mut core, C1);
    let actions = request(&mut core, C1, 1, add_watch());
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(reply_header(&actions[0]).err, 0);

    // As a 3.5 server: UNIMPLEMENTED, then the connection is closed; what follows on it is
    // ignored, and the session stays (another connection may attach to it).
    let mut core = core_with(true);
    connect(&mut core, C1);
    assert_eq!(
        reply_header(&request(&mut core, C1, 1, get("/", false))[0]).err,
        0
    );
    for op in [
        OpCode::MultiRead,
        OpCode::GetEphemerals,
        OpCode::GetAllChildrenNumber,
        OpCode::SetWatches2,
        OpCode::AddWatch,
        OpCode::WhoAmI,
    ] {
        assert!(op.added_after_3_5(), "{op:?}");
    }
    for op in [
        OpCode::SetWatches,
        OpCode::CreateTtl,
        OpCode::RemoveWatches,
        OpCode::Multi,
    ] {
        assert!(!op.added_after_3_5(), "{op:?}");
    }
    let actions = request(&mut core, C1, 2, add_watch());
    let [send, Action::Close { conn }] = actions.as_slice() else {
        panic!("{actions:?}")
    };
    assert_eq!(*conn, C1);
    let header = reply_header(send);
    assert_eq!(
        (header.xid, header.err),
        (2, ErrorCode::Unimplemented.as_i32())
    );
    assert!(request(&mut core, C1, 3, get("/", false)).is_empty());
    assert_eq!(core.sessions().len(), 1);
}
