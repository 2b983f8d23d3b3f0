//! The peer's durability and ordering rules, step by step.

use std::collections::BTreeSet;

use bytes::Bytes;

use super::*;

fn config(me: Sid) -> PeerConfig {
    PeerConfig {
        me,
        voters: [1, 2, 3].into_iter().collect::<BTreeSet<_>>(),
        observers: BTreeSet::new(),
        tick_ms: 100,
        init_limit: 10,
        sync_limit: 5,
        election: ElectionTimers::default(),
    }
}

fn entry(e: u32, c: u32) -> Entry {
    Entry {
        zxid: make_zxid(e, c),
        txn: Bytes::from(format!("{e}:{c}")),
    }
}

fn sent(actions: &[Action]) -> Vec<(Sid, Message)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { to, message } => Some((*to, message.clone())),
            _ => None,
        })
        .collect()
}

fn settled(leader: Sid, state: ServerState) -> Message {
    Message::Notification {
        state,
        vote: Vote {
            leader,
            zxid: 0,
            peer_epoch: 0,
        },
        election_epoch: 1,
    }
}

/// Peer 1 synced with leader 2 in epoch 1 (1:1 and 1:2), its NEWLEADER acked; UPTODATE not
/// yet received.
fn acked_follower() -> Peer {
    let mut p = synced_follower();
    p.handle(Input::Receive {
        from: 2,
        message: Message::NewLeader { epoch: 1 },
    });
    p.handle(Input::Persisted {
        zxid: make_zxid(1, 2),
    });
    p.handle(Input::EpochsPersisted);
    assert_eq!(
        sent(&p.take_actions()),
        vec![(2, Message::AckNewLeader { epoch: 1 })]
    );
    p
}

/// Peer 1 following leader 2 in epoch 1, NEWLEADER not yet received; returns the peer after
/// the DIFF of 1:1 and 1:2.
fn synced_follower() -> Peer {
    let mut p = syncing_follower();
    p.handle(Input::Receive {
        from: 2,
        message: Message::Diff {
            common: 0,
            entries: vec![entry(1, 1), entry(1, 2)],
            committed: 0,
        },
    });
    let a = p.take_actions();
    assert_eq!(
        a.iter().filter(|a| matches!(a, Action::Append(_))).count(),
        2
    );
    p
}

/// Peer 1 following leader 2 in epoch 1, its ACKEPOCH sent: the sync comes next.
fn syncing_follower() -> Peer {
    let mut p = Peer::new(config(1), PersistentState::default(), 0);
    p.take_actions();
    p.handle(Input::Receive {
        from: 3,
        message: settled(2, ServerState::Following),
    });
    p.handle(Input::Receive {
        from: 2,
        message: settled(2, ServerState::Leading),
    });
    assert!(matches!(
        p.role(),
        Role::Following {
            leader: 2,
            serving: false
        }
    ));
    let a = p.take_actions();
    assert!(sent(&a)
        .iter()
        .any(|(to, m)| *to == 2 && matches!(m, Message::LearnerInfo { .. })));
    p.handle(Input::Receive {
        from: 2,
        message: Message::LeaderInfo { new_epoch: 1 },
    });
    assert!(p.take_actions().contains(&Action::PersistEpochs {
        accepted: 1,
        current: 0
    }));
    p.handle(Input::EpochsPersisted);
    assert!(sent(&p.take_actions())
        .iter()
        .any(|(_, m)| matches!(m, Message::AckEpoch { .. })));
    p
}

#[test]
fn zookeeper_3104_3642_newleader_after_a_snap_is_acked_only_once_the_snapshot_and_epoch_are_durable(
) {
    let mut p = syncing_follower();
    let zxid = make_zxid(0, 7);
    let state = Bytes::from_static(b"the leader's state");
    p.handle(Input::Receive {
        from: 2,
        message: Message::Snap {
            zxid,
            state: state.clone(),
        },
    });
    // The snapshot is installed — durably, before the driver runs the next action — and
    // nothing is said to the leader yet.
    assert_eq!(
        p.take_actions(),
        vec![Action::InstallSnapshot { zxid, state }]
    );
    assert_eq!(p.history().base(), zxid);
    p.handle(Input::Receive {
        from: 2,
        message: Message::NewLeader { epoch: 1 },
    });
    assert_eq!(
        p.take_actions(),
        vec![Action::PersistEpochs {
            accepted: 1,
            current: 1
        }],
        "the epoch is persisted after the snapshot and before any ack"
    );
    p.handle(Input::EpochsPersisted);
    assert_eq!(
        sent(&p.take_actions()),
        vec![(2, Message::AckNewLeader { epoch: 1 })]
    );
}

#[test]
fn zookeeper_3911_4785_newleader_is_acked_only_after_the_synced_txns_and_then_the_epoch_are_durable(
) {
    let mut p = synced_follower();
    p.handle(Input::Receive {
        from: 2,
        message: Message::NewLeader { epoch: 1 },
    });
    assert!(
        p.take_actions().is_empty(),
        "nothing before the log is durable"
    );
    p.handle(Input::Persisted {
        zxid: make_zxid(1, 1),
    });
    assert!(p.take_actions().is_empty(), "1:2 is not durable yet");
    p.handle(Input::Persisted {
        zxid: make_zxid(1, 2),
    });
    assert_eq!(
        p.take_actions(),
        vec![Action::PersistEpochs {
            accepted: 1,
            current: 1
        }],
        "then the epoch, before any ack"
    );
    p.handle(Input::EpochsPersisted);
    assert_eq!(
        sent(&p.take_actions()),
        vec![(2, Message::AckNewLeader { epoch: 1 })]
    );
    assert_eq!(p.epochs(), (1, 1));
}

#[test]
fn proposals_are_acked_once_durable_and_applied_once_committed() {
    let mut p = acked_follower();
    p.handle(Input::Receive {
        from: 2,
        message: Message::UpToDate {
            committed: make_zxid(1, 2),
        },
    });
    let a = p.take_actions();
    assert!(a.contains(&Action::Commit(entry(1, 1))) && a.contains(&Action::Commit(entry(1, 2))));
    assert!(matches!(p.role(), Role::Following { serving: true, .. }));

    p.handle(Input::Receive {
        from: 2,
        message: Message::Proposal(entry(1, 3)),
    });
    let a = p.take_actions();
    assert_eq!(a, vec![Action::Append(entry(1, 3))], "no ack before fsync");
    p.handle(Input::Persisted {
        zxid: make_zxid(1, 3),
    });
    assert_eq!(
        sent(&p.take_actions()),
        vec![(
            2,
            Message::Ack {
                zxid: make_zxid(1, 3)
            }
        )]
    );
    p.handle(Input::Receive {
        from: 2,
        message: Message::Commit {
            zxid: make_zxid(1, 3),
        },
    });
    assert_eq!(p.take_actions(), vec![Action::Commit(entry(1, 3))]);
    assert_eq!(p.committed(), make_zxid(1, 3));
}

/// A serving follower whose leader falls silent (a partition that drops packets without
/// closing the connection) stops serving after syncLimit ticks, as Apache's follower (its
/// socket read timeout): until then it may answer reads from a stale state, so the bound
/// matters. The leader's pings keep it following.
#[test]
fn a_follower_whose_leader_is_silent_for_sync_limit_ticks_stops_serving() {
    let mut p = acked_follower();
    p.handle(Input::Receive {
        from: 2,
        message: Message::UpToDate {
            committed: make_zxid(1, 2),
        },
    });
    p.take_actions();
    // syncLimit is 5 ticks of 100 ms. Pings every tick: it stays for a long while.
    for t in 1..=30 {
        p.handle(Input::Receive {
            from: 2,
            message: Message::Ping { committed: 0 },
        });
        p.handle(Input::Tick { now_ms: t * 100 });
        assert!(
            matches!(p.role(), Role::Following { serving: true, .. }),
            "{:?} at {t}00 ms",
            p.role()
        );
    }
    // The last ping came between the ticks of 2,900 and 3,000 ms (the peer knows the time
    // by its ticks: it heard it "at 2,900"). Silence: still serving up to 3,400 ms, looking at
    // 3,500 — syncLimit ticks after the last ping, give or take one tick.
    for t in 31..=34 {
        p.handle(Input::Tick { now_ms: t * 100 });
        assert!(
            matches!(p.role(), Role::Following { serving: true, .. }),
            "{:?} at {t}00 ms",
            p.role()
        );
    }
    p.handle(Input::Tick { now_ms: 3_500 });
    assert_eq!(p.role(), Role::Looking);
}

#[test]
fn zookeeper_4925_a_proposal_leaving_a_hole_sends_the_follower_back_to_election() {
    let mut p = synced_follower();
    p.handle(Input::Receive {
        from: 2,
        message: Message::NewLeader { epoch: 1 },
    });
    p.take_actions();
    // 1:3 is missing (ZOOKEEPER-4925): never log 1:4 after 1:2.
    p.handle(Input::Receive {
        from: 2,
        message: Message::Proposal(entry(1, 4)),
    });
    let a = p.take_actions();
    assert!(!a.iter().any(|a| matches!(a, Action::Append(_))));
    assert!(a.contains(&Action::Disconnect { peer: 2 }));
    assert_eq!(p.role(), Role::Looking);
    assert_eq!(p.history().last_zxid(), make_zxid(1, 2));
}

#[test]
fn a_sync_that_would_drop_committed_txns_is_refused() {
    let mut p = synced_follower();
    p.handle(Input::Receive {
        from: 2,
        message: Message::Commit {
            zxid: make_zxid(1, 2),
        },
    });
    assert_eq!(p.committed(), make_zxid(1, 2));
    p.take_actions();
    // A second DIFF (a confused leader) truncating below the commit point.
    p.handle(Input::Receive {
        from: 2,
        message: Message::Diff {
            common: make_zxid(1, 1),
            entries: vec![],
            committed: 0,
        },
    });
    let a = p.take_actions();
    assert!(!a.iter().any(|a| matches!(a, Action::Truncate { .. })));
}

/// A voter's registration, with the epoch it accepted last (nothing logged yet).
fn voter_info(accepted_epoch: u32) -> Message {
    Message::LearnerInfo {
        observer: false,
        accepted_epoch,
        current_epoch: 0,
        summary: EpochSummary::default(),
    }
}

/// Peer 1 elected leader of {1,2,3}, learners 2 and 3 registered and offered epoch 1 (its
/// acceptance durable); no ACKEPOCH yet.
fn elected_leader() -> Peer {
    let mut p = Peer::new(config(1), PersistentState::default(), 0);
    p.take_actions();
    for from in [2, 3] {
        p.handle(Input::Receive {
            from,
            message: Message::Notification {
                state: ServerState::Looking,
                vote: Vote {
                    leader: 1,
                    zxid: 0,
                    peer_epoch: 0,
                },
                election_epoch: 1,
            },
        });
    }
    p.handle(Input::Tick { now_ms: 1_000 });
    assert!(matches!(p.role(), Role::Leading { .. }), "{:?}", p.role());
    assert!(p.propose(Bytes::from("early")).is_err(), "not established");
    for from in [2, 3] {
        p.handle(Input::Receive {
            from,
            message: voter_info(0),
        });
    }
    p.handle(Input::EpochsPersisted); // accepted epoch 1
    p.take_actions();
    p
}

/// Peer 1 elected leader of {1,2,3} with learners 2 and 3 registered.
fn leader() -> Peer {
    let mut p = elected_leader();
    for from in [2, 3] {
        p.handle(Input::Receive {
            from,
            message: Message::AckEpoch {
                current_epoch: Some(0),
                last_zxid: 0,
            },
        });
    }
    p.handle(Input::EpochsPersisted); // current epoch 1
    p.take_actions();
    p
}

#[test]
fn an_epoch_already_accepted_is_acked_without_a_vote() {
    // Peer 1 accepted epoch 1 (acked to a leader that is gone) and is still in epoch 0.
    let state = PersistentState {
        accepted_epoch: 1,
        current_epoch: 0,
        history: History::default(),
    };
    let mut p = Peer::new(config(1), state, 0);
    p.take_actions();
    p.handle(Input::Receive {
        from: 2,
        message: settled(3, ServerState::Following),
    });
    p.handle(Input::Receive {
        from: 3,
        message: settled(3, ServerState::Leading),
    });
    assert!(
        matches!(p.role(), Role::Following { leader: 3, .. }),
        "{:?}",
        p.role()
    );
    p.take_actions();
    // Leader 3 offers the same epoch.
    p.handle(Input::Receive {
        from: 3,
        message: Message::LeaderInfo { new_epoch: 1 },
    });
    let acks: Vec<_> = sent(&p.take_actions())
        .into_iter()
        .filter(|(_, m)| matches!(m, Message::AckEpoch { .. }))
        .collect();
    assert_eq!(
        acks,
        vec![(
            3,
            Message::AckEpoch {
                current_epoch: None,
                last_zxid: 0
            }
        )]
    );
}

/// A leader counts only acks that are votes for its epoch (ZAB: a quorum must accept the
/// epoch from this leader): with one voter's no-vote ack it does not sync anyone, and with a
/// vote it does, syncing the no-vote learner too.
#[test]
fn an_ack_of_an_epoch_already_accepted_does_not_count_toward_the_quorum() {
    let mut p = elected_leader();
    p.handle(Input::Receive {
        from: 2,
        message: Message::AckEpoch {
            current_epoch: None,
            last_zxid: 0,
        },
    });
    let a = p.take_actions();
    assert!(
        !a.iter().any(|a| matches!(a, Action::PersistEpochs { .. }))
            && !sent(&a)
                .iter()
                .any(|(_, m)| matches!(m, Message::Diff { .. })),
        "a no-vote ack made a quorum: {a:?}"
    );
    p.handle(Input::Receive {
        from: 3,
        message: Message::AckEpoch {
            current_epoch: Some(0),
            last_zxid: 0,
        },
    });
    let a = p.take_actions();
    let diffs: BTreeSet<Sid> = sent(&a)
        .into_iter()
        .filter(|(_, m)| matches!(m, Message::Diff { .. }))
        .map(|(to, _)| to)
        .collect();
    assert_eq!(diffs, [2, 3].into_iter().collect());
}

#[test]
fn the_leader_proposes_after_a_quorum_acked_newleader_and_commits_on_a_quorum() {
    let mut p = leader();
    assert!(p.propose(Bytes::from("x")).is_err(), "no NEWLEADER ack yet");
    p.handle(Input::Receive {
        from: 2,
        message: Message::AckNewLeader { epoch: 1 },
    });
    assert!(matches!(
        p.role(),
        Role::Leading {
            epoch: 1,
            established: true
        }
    ));
    p.take_actions();
    let zxid = p.propose(Bytes::from("x")).expect("established");
    assert_eq!(zxid, make_zxid(1, 1));
    let a = p.take_actions();
    assert!(a.contains(&Action::Append(entry_named(zxid, "x"))));
    // Only follower 2 is synced: it gets the proposal; 3 never acked NEWLEADER but was sent
    // its sync, so it gets it too.
    assert_eq!(
        sent(&a)
            .iter()
            .filter(|(_, m)| matches!(m, Message::Proposal(_)))
            .count(),
        2
    );
    // Our own fsync alone is not a quorum.
    p.handle(Input::Persisted { zxid });
    assert!(!p
        .take_actions()
        .iter()
        .any(|a| matches!(a, Action::Commit(_))));
    p.handle(Input::Receive {
        from: 2,
        message: Message::Ack { zxid },
    });
    let a = p.take_actions();
    assert!(a.contains(&Action::Commit(entry_named(zxid, "x"))));
    assert!(sent(&a).contains(&(2, Message::Commit { zxid })));
}

/// ZOOKEEPER-1277: a leader whose epoch's zxid counter is used up does not wrap it (the
/// zxid would belong to the next epoch): it refuses the proposal and elects again.
#[test]
fn zookeeper_1277_a_leader_elects_again_when_the_zxid_counter_is_used_up() {
    let mut p = leader();
    p.handle(Input::Receive {
        from: 2,
        message: Message::AckNewLeader { epoch: 1 },
    });
    p.take_actions();
    assert!(p.propose(Bytes::from("x")).is_ok());
    // As if u32::MAX - 1 proposals had followed.
    p.set_next_counter(u32::MAX);
    assert!(p.propose(Bytes::from("one too many")).is_err());
    assert!(matches!(p.role(), Role::Looking), "{:?}", p.role());
}

/// An established leader keeps leading while a quorum (itself and one follower) answers its
/// pings, and steps down once no follower has been heard for syncLimit ticks — a leader cut
/// off by a partition that drops packets must stop acknowledging, as Apache's.
#[test]
fn a_leader_that_hears_no_quorum_for_sync_limit_ticks_steps_down() {
    let mut p = leader();
    for from in [2, 3] {
        p.handle(Input::Receive {
            from,
            message: Message::AckNewLeader { epoch: 1 },
        });
    }
    assert!(matches!(
        p.role(),
        Role::Leading {
            established: true,
            ..
        }
    ));
    // Follower 3 falls silent at once; 2 answers every tick: still a quorum. 3 is dropped
    // and its connection closed (it must not go on serving a state that no longer moves).
    let mut closed = Vec::new();
    for t in 11..=40 {
        p.handle(Input::Receive {
            from: 2,
            message: Message::PingReply,
        });
        p.handle(Input::Tick { now_ms: t * 100 });
        assert!(
            matches!(p.role(), Role::Leading { .. }),
            "{:?} at {t}00 ms",
            p.role()
        );
        closed.extend(p.take_actions().into_iter().filter_map(|a| match a {
            Action::Disconnect { peer } => Some(peer),
            _ => None,
        }));
    }
    assert_eq!(closed, [3]);
    // Now 2 is silent too (last heard "at 3,900"): leading up to 4,400 ms, looking at 4,500.
    for t in 41..=44 {
        p.handle(Input::Tick { now_ms: t * 100 });
        assert!(
            matches!(p.role(), Role::Leading { .. }),
            "{:?} at {t}00 ms",
            p.role()
        );
    }
    p.handle(Input::Tick { now_ms: 4_500 });
    assert_eq!(p.role(), Role::Looking);
}

fn entry_named(zxid: Zxid, txn: &'static str) -> Entry {
    Entry {
        zxid,
        txn: Bytes::from(txn),
    }
}

#[test]
fn a_learner_repeats_its_info_until_the_leader_answers() {
    // The leader may still be LOOKING (in its finalize wait) when the first FOLLOWERINFO
    // arrives and drop it: the learner sends it again every tick until LEADERINFO.
    let mut p = Peer::new(config(1), PersistentState::default(), 0);
    p.take_actions();
    p.handle(Input::Receive {
        from: 3,
        message: settled(2, ServerState::Following),
    });
    p.handle(Input::Receive {
        from: 2,
        message: settled(2, ServerState::Leading),
    });
    p.take_actions();
    let infos = |a: &[Action]| {
        sent(a)
            .iter()
            .filter(|(to, m)| *to == 2 && matches!(m, Message::LearnerInfo { .. }))
            .count()
    };
    p.handle(Input::Tick { now_ms: 100 });
    assert_eq!(infos(&p.take_actions()), 1, "sent again");
    p.handle(Input::Receive {
        from: 2,
        message: Message::LeaderInfo { new_epoch: 1 },
    });
    p.take_actions();
    p.handle(Input::Tick { now_ms: 200 });
    assert_eq!(infos(&p.take_actions()), 0, "not once the leader answered");
}

#[test]
fn a_lone_voter_elects_itself_establishes_and_commits_alone() {
    // An ensemble of one (`standaloneEnabled=false` with one participant).
    let mut c = config(1);
    c.voters = BTreeSet::from([1]);
    let mut p = Peer::new(c, PersistentState::default(), 0);
    for t in 1..20u64 {
        p.handle(Input::Tick { now_ms: t * 100 });
        for a in p.take_actions() {
            if let Action::PersistEpochs { .. } = a {
                p.handle(Input::EpochsPersisted);
            }
        }
    }
    assert_eq!(
        p.role(),
        Role::Leading {
            epoch: 1,
            established: true
        }
    );
    let zxid = p.propose(Bytes::from_static(b"alone")).expect("propose");
    assert_eq!(
        p.take_actions(),
        vec![Action::Append(Entry {
            zxid,
            txn: Bytes::from_static(b"alone")
        })]
    );
    p.handle(Input::Persisted { zxid });
    assert_eq!(
        p.take_actions(),
        vec![Action::Commit(Entry {
            zxid,
            txn: Bytes::from_static(b"alone")
        })]
    );
}

fn looking_vote_for(leader: Sid) -> Message {
    Message::Notification {
        state: ServerState::Looking,
        vote: Vote {
            leader,
            zxid: 0,
            peer_epoch: 0,
        },
        election_epoch: 1,
    }
}

#[test]
fn an_election_decides_at_once_when_every_reachable_voter_agrees() {
    // Voter 3 (the old leader, say) is gone; 2's vote is the best and now ours too.
    let mut p = Peer::new(config(1), PersistentState::default(), 0);
    p.take_actions();
    p.handle(Input::Disconnected { peer: 3 });
    p.handle(Input::Receive {
        from: 2,
        message: looking_vote_for(2),
    });
    assert!(
        matches!(p.role(), Role::Following { leader: 2, .. }),
        "no finalize wait when no better vote can come: {:?}",
        p.role()
    );
}

#[test]
fn an_election_waits_the_finalize_window_while_a_reachable_voter_has_not_voted() {
    let mut p = Peer::new(config(1), PersistentState::default(), 0);
    p.take_actions();
    p.handle(Input::Receive {
        from: 2,
        message: looking_vote_for(2),
    });
    assert_eq!(p.role(), Role::Looking, "3 may still bring a better vote");
    p.handle(Input::Tick { now_ms: 100 });
    assert_eq!(p.role(), Role::Looking);
    p.handle(Input::Tick { now_ms: 250 });
    assert!(matches!(p.role(), Role::Following { leader: 2, .. }));
    // Hearing from a member makes it reachable again.
    let mut q = Peer::new(config(1), PersistentState::default(), 0);
    q.handle(Input::Disconnected { peer: 3 });
    q.handle(Input::Receive {
        from: 3,
        message: looking_vote_for(1),
    });
    q.handle(Input::Receive {
        from: 2,
        message: looking_vote_for(1),
    });
    assert!(
        matches!(q.role(), Role::Leading { .. }),
        "all three voted for 1: {:?}",
        q.role()
    );
}

#[test]
fn a_learner_that_acked_newleader_but_never_hears_uptodate_elects_again() {
    // Its ack was lost (seen in the simulator: a partition that dropped only that message),
    // while the leader's pings keep arriving: without a bound it would wait forever.
    let mut p = acked_follower();
    // initLimit is 10 ticks of 100 ms, counted from the first tick that sees the phase.
    for t in 1..=11 {
        p.handle(Input::Receive {
            from: 2,
            message: Message::Ping { committed: 0 },
        });
        p.handle(Input::Tick { now_ms: t * 100 });
        assert!(
            matches!(p.role(), Role::Following { serving: false, .. }),
            "still waiting at {t}00 ms: {:?}",
            p.role()
        );
    }
    p.handle(Input::Receive {
        from: 2,
        message: Message::Ping { committed: 0 },
    });
    p.handle(Input::Tick { now_ms: 1_200 });
    assert_eq!(p.role(), Role::Looking);
}

/// A DIFF from a txn the learner does not hold means a sync message before it (a SNAP over
/// the frame limit) was lost: going on would leave a hole, or take the learner's log up to
/// `common` for the leader's, and make it durably current in the new epoch.
#[test]
fn a_diff_from_a_txn_the_learner_does_not_hold_is_refused() {
    for entries in [vec![], vec![entry(2, 1)]] {
        let mut p = syncing_follower();
        p.handle(Input::Receive {
            from: 2,
            message: Message::Diff {
                common: make_zxid(1, 5),
                entries,
                committed: make_zxid(1, 5),
            },
        });
        p.handle(Input::Receive {
            from: 2,
            message: Message::NewLeader { epoch: 2 },
        });
        let actions = p.take_actions();
        assert!(
            !actions.iter().any(|a| matches!(
                a,
                Action::Append(_) | Action::PersistEpochs { .. } | Action::Commit(_)
            )),
            "{actions:?}"
        );
        assert!(!sent(&actions)
            .iter()
            .any(|(_, m)| matches!(m, Message::AckNewLeader { .. })));
        assert_eq!(p.role(), Role::Looking);
    }
}

/// Proposals that became durable while NEWLEADER's epoch was written are acked right after
/// NEWLEADER: the leader credits that ack with the sync only, and may need this learner's
/// ack to commit them (Apache acks each logged packet after UPTODATE).
#[test]
fn proposals_durable_before_the_newleader_ack_are_acked_after_it() {
    let mut p = synced_follower();
    p.handle(Input::Receive {
        from: 2,
        message: Message::NewLeader { epoch: 1 },
    });
    p.handle(Input::Receive {
        from: 2,
        message: Message::Proposal(entry(1, 3)),
    });
    p.take_actions();
    p.handle(Input::Persisted {
        zxid: make_zxid(1, 3),
    });
    assert_eq!(
        p.take_actions(),
        vec![Action::PersistEpochs {
            accepted: 1,
            current: 1
        }]
    );
    p.handle(Input::EpochsPersisted);
    assert_eq!(
        sent(&p.take_actions()),
        vec![
            (2, Message::AckNewLeader { epoch: 1 }),
            (
                2,
                Message::Ack {
                    zxid: make_zxid(1, 3)
                }
            )
        ]
    );
}

#[test]
fn newleader_without_the_sync_before_it_is_never_acked() {
    // Over TCP the DIFF cannot go missing before NEWLEADER; should it (the simulator's lossy
    // links did it), acking would count a learner with a stale log as synced.
    let mut p = syncing_follower();
    p.handle(Input::Receive {
        from: 2,
        message: Message::NewLeader { epoch: 1 },
    });
    let actions = p.take_actions();
    assert!(
        !sent(&actions)
            .iter()
            .any(|(_, m)| matches!(m, Message::AckNewLeader { .. })),
        "{actions:?}"
    );
    assert!(!actions
        .iter()
        .any(|a| matches!(a, Action::PersistEpochs { .. })));
    assert_eq!(p.role(), Role::Looking);
}

#[test]
fn a_learner_that_accepted_a_newer_epoch_makes_the_leader_elect_again() {
    // Seen in the simulator: an election that failed elsewhere left two voters with accepted
    // epoch 2 while this leader established epoch 1 without them; they refuse epoch 1, so
    // without a new election they would never rejoin.
    let mut p = leader();
    p.handle(Input::Receive {
        from: 2,
        message: Message::AckNewLeader { epoch: 1 },
    });
    assert!(matches!(
        p.role(),
        Role::Leading {
            epoch: 1,
            established: true
        }
    ));
    // A learner at our epoch re-registering is fine.
    p.handle(Input::Receive {
        from: 3,
        message: voter_info(1),
    });
    assert!(matches!(p.role(), Role::Leading { .. }));
    p.handle(Input::Receive {
        from: 3,
        message: voter_info(2),
    });
    assert_eq!(p.role(), Role::Looking);
}
