//! The core as an ensemble member: a leader core and a learner core wired together by hand,
//! the test playing the replica (forwarding, proposing, committing in zxid order).

use super::tests::config;
use super::*;
use zk_proto::{CreateRequest, Decode, GetDataRequest, ReplyHeader};

const LEARNER_CONN: ConnId = ConnId(7);

fn now(mono_ms: u64) -> Now {
    Now {
        wall_ms: 1_700_000_000_000 + mono_ms as i64,
        mono_ms,
    }
}

/// A leader (server 1) and a learner (server 2), both serving.
struct Pair {
    leader: ServerCore,
    learner: ServerCore,
    next_zxid: i64,
    clock: u64,
}

impl Pair {
    fn new() -> Pair {
        let member = |id: u8| {
            let mut c = config(false, true);
            c.server_id = id;
            ServerCore::new(c, DataTree::new(), &[], now(0))
        };
        let mut pair = Pair {
            leader: member(1),
            learner: member(2),
            next_zxid: (1 << 32) + 1,
            clock: 0,
        };
        let leader_role = ReplicaRole::Leader {
            next_zxid: pair.next_zxid,
        };
        assert!(pair
            .leader
            .step(Input::Role(leader_role), now(0))
            .is_empty());
        let learner_role = ReplicaRole::Learner { leader: 1 };
        assert!(pair
            .learner
            .step(Input::Role(learner_role), now(0))
            .is_empty());
        pair
    }

    /// Runs the replica's part for the learner's actions until quiet; returns what the
    /// learner sent its clients.
    fn replicate(&mut self, learner_actions: Vec<Action>) -> Vec<Action> {
        let mut to_clients = Vec::new();
        let mut pending = learner_actions;
        while !pending.is_empty() {
            let mut next = Vec::new();
            for action in pending {
                match action {
                    Action::Forward { data } => {
                        let proposals = self
                            .leader
                            .step(Input::Forwarded { from: 2, data }, now(self.clock));
                        for proposal in proposals {
                            let Action::Propose { zxid, txn } = proposal else {
                                panic!("the leader answered a forward with {proposal:?}")
                            };
                            assert_eq!(zxid, self.next_zxid, "zxids are assigned in order");
                            self.next_zxid += 1;
                            let input = || Input::Committed {
                                zxid,
                                txn: txn.clone(),
                            };
                            assert!(self.leader.step(input(), now(self.clock)).is_empty());
                            next.extend(self.learner.step(input(), now(self.clock)));
                        }
                    }
                    other => to_clients.push(other),
                }
            }
            pending = next;
        }
        to_clients
    }

    fn connect_to_learner(&mut self) -> i64 {
        let actions = self.learner.step(
            Input::Connect {
                conn: LEARNER_CONN,
                request: new_session(),
                remote: "127.0.0.1:5000".parse().unwrap(),
            },
            now(self.clock),
        );
        let sent = self.replicate(actions);
        let [Action::Send { frame, .. }] = sent.as_slice() else {
            panic!("{sent:?}")
        };
        let response = ConnectResponse::from_bytes(&frame[4..]).unwrap();
        assert_eq!(
            response.session_id >> 56,
            2,
            "the learner's id is in the top byte"
        );
        response.session_id
    }

    fn request(&mut self, xid: i32, request: Request) -> Vec<Action> {
        let actions = self.learner.step(
            Input::Request {
                conn: LEARNER_CONN,
                xid,
                request,
            },
            now(self.clock),
        );
        self.replicate(actions)
    }
}

/// A handshake asking for a new 4 s session.
fn new_session() -> ConnectRequest {
    ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout: 4_000,
        session_id: 0,
        passwd: vec![0; 16],
        read_only: None,
    }
}

fn create(path: &str) -> Request {
    Request::Create(CreateRequest {
        path: path.into(),
        data: Some(b"v".to_vec()),
        acl: zk_proto::Acl::open_unsafe(),
        flags: 0,
    })
}

fn headers(actions: &[Action]) -> Vec<(i32, i32)> {
    actions
        .iter()
        .map(|a| {
            let Action::Send { frame, .. } = a else {
                panic!("{a:?}")
            };
            let h = ReplyHeader::from_bytes(&frame[4..]).unwrap();
            (h.xid, h.err)
        })
        .collect()
}

#[test]
fn a_learner_forwards_writes_and_answers_them_in_order_once_committed() {
    let mut pair = Pair::new();
    pair.connect_to_learner();
    let forwarded = pair.learner.step(
        Input::Request {
            conn: LEARNER_CONN,
            xid: 1,
            request: create("/a"),
        },
        now(0),
    );
    assert!(
        matches!(forwarded.as_slice(), [Action::Forward { .. }]),
        "nothing is answered before the commit: {forwarded:?}"
    );
    // A failing write and a read queue behind it.
    let second = pair.learner.step(
        Input::Request {
            conn: LEARNER_CONN,
            xid: 2,
            request: create("/a"),
        },
        now(0),
    );
    let read = pair.learner.step(
        Input::Request {
            conn: LEARNER_CONN,
            xid: 3,
            request: Request::GetData(GetDataRequest {
                path: "/a".into(),
                watch: false,
            }),
        },
        now(0),
    );
    assert!(read.is_empty(), "the read waits for the writes before it");
    let mut actions = forwarded;
    actions.extend(second);
    let sent = pair.replicate(actions);
    assert_eq!(
        headers(&sent),
        vec![(1, 0), (2, ErrorCode::NodeExists.as_i32()), (3, 0)],
        "the failure travelled as an error txn, in order"
    );
    assert!(pair.leader.tree().get("/a").is_some());
    assert_eq!(
        pair.leader.tree().last_processed_zxid(),
        pair.learner.tree().last_processed_zxid()
    );
}

#[test]
fn a_sync_is_answered_after_the_writes_before_it() {
    let mut pair = Pair::new();
    pair.connect_to_learner();
    let sent = pair.request(1, create("/s"));
    assert_eq!(headers(&sent), vec![(1, 0)]);
    let before = pair.learner.tree().last_processed_zxid();
    let sent = pair.request(
        2,
        Request::Sync(zk_proto::SyncRequest { path: "/s".into() }),
    );
    assert_eq!(headers(&sent), vec![(2, 0)]);
    assert!(pair.learner.tree().last_processed_zxid() > before);
}

#[test]
fn the_leader_expires_only_sessions_whose_clients_went_silent() {
    let mut pair = Pair::new();
    let session = pair.connect_to_learner();
    pair.request(
        1,
        Request::Create(CreateRequest {
            path: "/eph".into(),
            data: None,
            acl: zk_proto::Acl::open_unsafe(),
            flags: 1,
        }),
    );
    // Ticks for twice the timeout, the client pinging: the learner relays the session, the
    // leader keeps it.
    for t in (100..8_000).step_by(100) {
        pair.clock = t;
        let ping = Input::Request {
            conn: LEARNER_CONN,
            xid: -2,
            request: Request::Ping,
        };
        pair.learner.step(ping, now(t));
        let relayed = pair.learner.step(Input::Tick, now(t));
        let [Action::Forward { data }] = relayed.as_slice() else {
            panic!("the learner relays its sessions: {relayed:?}")
        };
        assert_eq!(
            forward::Forwarded::decode(data),
            Ok(forward::Forwarded::Touch {
                sessions: vec![session]
            })
        );
        pair.leader.step(
            Input::Forwarded {
                from: 2,
                data: data.clone(),
            },
            now(t),
        );
        assert!(pair.leader.step(Input::Tick, now(t)).is_empty());
    }
    // The client goes silent, its connection open (a frozen process): no more relays, and
    // the leader expires the session (an open connection alone keeps nothing alive).
    let mut expired = Vec::new();
    for t in (8_100..14_000).step_by(100) {
        let relayed = pair.learner.step(Input::Tick, now(t));
        assert!(relayed.is_empty(), "{relayed:?}");
        expired.extend(pair.leader.step(Input::Tick, now(t)));
    }
    let [Action::Propose { txn, .. }] = expired.as_slice() else {
        panic!("{expired:?}")
    };
    let txn = Txn::from_bytes(txn).unwrap();
    assert_eq!(txn.header.client_id, session);
    assert!(matches!(txn.body, TxnBody::CloseSession(_)));
}

#[test]
fn a_member_refuses_clients_until_it_serves_and_closes_them_when_its_role_changes() {
    let mut core = ServerCore::new(config(false, true), DataTree::new(), &[], now(0));
    let connect = |core: &mut ServerCore, conn| {
        core.step(
            Input::Connect {
                conn,
                request: new_session(),
                remote: "127.0.0.1:5000".parse().unwrap(),
            },
            now(0),
        )
    };
    let refused = connect(&mut core, ConnId(1));
    assert!(matches!(refused.as_slice(), [Action::Close { .. }]));

    core.step(Input::Role(ReplicaRole::Learner { leader: 1 }), now(0));
    let accepted = connect(&mut core, ConnId(2));
    assert!(matches!(accepted.as_slice(), [Action::Forward { .. }]));
    let closed = core.step(Input::Role(ReplicaRole::NotServing), now(0));
    assert!(
        matches!(closed.as_slice(), [Action::Close { conn }] if *conn == ConnId(2)),
        "{closed:?}"
    );
}

#[test]
fn a_write_through_the_member_a_session_moved_away_from_closes_that_connection() {
    let mut pair = Pair::new();
    let session = pair.connect_to_learner();
    // The client re-attached at member 3 (its Attach reached the leader).
    let attach = forward::Forwarded::Attach {
        session_id: session,
    }
    .encode();
    assert!(pair
        .leader
        .step(
            Input::Forwarded {
                from: 3,
                data: attach
            },
            now(0)
        )
        .is_empty());
    let sent = pair.request(1, create("/moved"));
    assert!(
        matches!(sent.as_slice(), [Action::Close { conn }] if *conn == LEARNER_CONN),
        "SESSIONMOVED closes the connection without a reply (ZOOKEEPER-710): {sent:?}"
    );
    assert!(pair.leader.tree().get("/moved").is_none());
    assert!(pair.learner.tree().get("/moved").is_none());
}

/// The leader's own client's session, committed on the leader only (the learner has not
/// applied its creation yet); returns its id and the held-back commit.
fn session_on_the_leader_only(pair: &mut Pair) -> (i64, Input) {
    let conn = ConnId(1);
    let remote = "127.0.0.1:5001".parse().unwrap();
    let actions = pair.leader.step(
        Input::Connect {
            conn,
            request: new_session(),
            remote,
        },
        now(pair.clock),
    );
    let [Action::Propose { zxid, txn }] = actions.as_slice() else {
        panic!("{actions:?}")
    };
    pair.next_zxid += 1;
    let commit = || Input::Committed {
        zxid: *zxid,
        txn: txn.clone(),
    };
    let sent = pair.leader.step(commit(), now(pair.clock));
    let [Action::Send { frame, .. }] = sent.as_slice() else {
        panic!("{sent:?}")
    };
    let response = ConnectResponse::from_bytes(&frame[4..]).unwrap();
    (response.session_id, commit())
}

fn reattach_at_learner(pair: &mut Pair, session_id: i64, passwd: Vec<u8>) -> Vec<Action> {
    let request = ConnectRequest {
        session_id,
        passwd,
        ..new_session()
    };
    pair.learner.step(
        Input::Connect {
            conn: LEARNER_CONN,
            request,
            remote: "127.0.0.1:5002".parse().unwrap(),
        },
        now(pair.clock),
    )
}

/// The learner's answers, as (timeout, session id) of each ConnectResponse, and whether it
/// closed the connection.
fn connect_responses(actions: &[Action]) -> (Vec<(i32, i64)>, bool) {
    let mut responses = Vec::new();
    let mut closed = false;
    for a in actions {
        match a {
            Action::Send { frame, .. } => {
                let r = ConnectResponse::from_bytes(&frame[4..]).unwrap();
                responses.push((r.timeout, r.session_id));
            }
            Action::Close { .. } => closed = true,
            other => panic!("{other:?}"),
        }
    }
    (responses, closed)
}

#[test]
fn a_learner_revalidates_with_the_leader_a_session_it_has_not_seen_created() {
    let mut pair = Pair::new();
    let (session, held_back) = session_on_the_leader_only(&mut pair);
    let passwd = session_password(session).to_vec();
    // The client moves to the learner before the learner applied the session's creation:
    // the learner asks the leader rather than calling the session expired.
    let actions = reattach_at_learner(&mut pair, session, passwd);
    let [Action::Forward { data }] = actions.as_slice() else {
        panic!("the learner answered at once: {actions:?}")
    };
    let answer = pair.leader.step(
        Input::Forwarded {
            from: 2,
            data: data.clone(),
        },
        now(pair.clock),
    );
    let [Action::Propose { zxid, txn }] = answer.as_slice() else {
        panic!("{answer:?}")
    };
    pair.next_zxid += 1;
    // The commits reach the learner in order: the session's creation, then the answer.
    assert!(pair.learner.step(held_back, now(pair.clock)).is_empty());
    let commit = Input::Committed {
        zxid: *zxid,
        txn: txn.clone(),
    };
    let sent = pair.learner.step(commit, now(pair.clock));
    assert_eq!(connect_responses(&sent), (vec![(4_000, session)], false));
    // Attached here: a write through the learner is the session's.
    let sent = pair.request(1, create("/moved-here"));
    assert_eq!(headers(&sent), vec![(1, 0)]);
}

#[test]
fn a_learner_refuses_a_session_the_leader_does_not_know() {
    let mut pair = Pair::new();
    let unknown = (2_i64 << 56) | 77;
    let actions = reattach_at_learner(&mut pair, unknown, session_password(unknown).to_vec());
    let [Action::Forward { data }] = actions.as_slice() else {
        panic!("{actions:?}")
    };
    let sent = pair.replicate(vec![Action::Forward { data: data.clone() }]);
    assert_eq!(connect_responses(&sent), (vec![(0, 0)], true));
}

#[test]
fn a_member_shows_its_own_configuration_also_after_restoring_anothers_state() {
    let member = |text: &str| {
        let mut c = config(false, true);
        c.ensemble_config = Some(text.to_owned());
        ServerCore::new(c, DataTree::new(), &[], now(0))
    };
    let shown = |core: &ServerCore| {
        let node = core
            .tree()
            .get("/zookeeper/config")
            .expect("the config node");
        (node.data.clone(), node.stat.mzxid, node.stat.version)
    };
    let old = member("server.1=a:1:2:participant\nversion=0");
    assert_eq!(
        shown(&old),
        (
            Some(b"server.1=a:1:2:participant\nversion=0".to_vec()),
            0,
            -1
        )
    );
    // A state transfer (or a data directory written under an older configuration) brings
    // another configuration text: the member's own replaces it (Apache ZOOKEEPER-2819).
    let mut new = member("server.1=b:1:2:participant\nversion=0");
    new.restore_state(&old.encode_state()).expect("restore");
    assert_eq!(
        shown(&new).0.as_deref(),
        Some(&b"server.1=b:1:2:participant\nversion=0"[..])
    );
    // Standalone: the node stays empty (not null), as Apache's.
    let standalone = ServerCore::new(config(false, false), DataTree::new(), &[], now(0));
    assert_eq!(shown(&standalone), (Some(Vec::new()), 0, 0));
}
