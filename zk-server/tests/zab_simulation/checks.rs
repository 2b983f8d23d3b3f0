//! The end-of-run checks: one tree everywhere, sessions and their ephemerals, and the
//! registers' linearizability.

use super::*;

/// A member's tree and sessions in a comparable form: every node's path, data and stat, and
/// every session with its timeout.
pub(super) type Digest = (Vec<(String, Option<Vec<u8>>, String)>, Vec<(i64, i32)>);

pub(super) fn digest(core: &ServerCore) -> Digest {
    let mut nodes: Vec<(String, Option<Vec<u8>>, String)> = core
        .tree()
        .iter()
        .map(|(path, node)| {
            (
                path.to_owned(),
                node.data.clone(),
                format!("{:?}", node.stat),
            )
        })
        .collect();
    nodes.sort();
    let mut sessions = core.sessions();
    sessions.sort();
    (nodes, sessions)
}

/// With every member applied to the same point: one tree and one session table everywhere;
/// ephemerals only of live sessions; closed sessions gone with their ephemerals; every
/// acknowledged ephemeral of a live session present.
pub(super) fn check_sessions(seed: u64, sim: &Sim, leader: Sid) {
    let reference = digest(sim.core(leader));
    for id in sim.nodes.keys() {
        assert!(
            digest(sim.core(*id)) == reference,
            "seed {seed}: node {id}'s tree or sessions differ from the leader's"
        );
    }
    let core = sim.core(leader);
    let live: HashSet<i64> = core.sessions().iter().map(|(id, _)| *id).collect();
    for (path, node) in core.tree().iter() {
        let owner = node.stat.ephemeral_owner;
        if owner != 0 && path.starts_with("/e/") {
            assert!(
                live.contains(&owner),
                "seed {seed}: {path} belongs to the dead session {owner:#x}"
            );
        }
    }
    for (session, fate) in &sim.sessions {
        if *fate == Fate::Closed || *fate == Fate::Expired {
            assert!(
                !live.contains(session),
                "seed {seed}: session {session:#x} is {fate:?} but lives"
            );
            assert!(core.tree().ephemerals_of(*session).is_empty());
        }
    }
    for (path, session) in &sim.ephemerals {
        if live.contains(session) {
            let node = core.tree().get(path);
            assert!(
                node.is_some_and(|n| n.stat.ephemeral_owner == *session),
                "seed {seed}: acknowledged ephemeral {path} of live session {session:#x} is missing"
            );
        }
    }
}

/// The clients' setData histories, one register at a time, against the versioned register.
/// An op whose client never got a reply took effect exactly when its txn committed.
pub(super) fn check_linearizable(seed: u64, sim: &Sim) {
    let mut applied_writes = HashSet::new();
    for txn in sim.committed.values() {
        let header = TxnHeader::from_bytes(txn).expect("a txn header");
        if header.txn_type == OpCode::SetData as i32 {
            applied_writes.insert((header.client_id, header.cxid));
        }
    }
    for key in 0..KEYS {
        // By invocation (the order of sending breaks ties: deterministic).
        let history: Vec<Op<RegisterOp, Option<u64>>> = sim
            .client_ops
            .iter()
            .filter(|c| c.key == key)
            .filter(|c| c.op.ret.is_some() || applied_writes.contains(&(c.session, c.xid)))
            .map(|c| c.op.clone())
            .collect();
        match linearizability::check::<VersionedRegister>(&history, 2_000_000) {
            Some(true) => {}
            Some(false) => panic!(
                "seed {seed}: register {key}'s history ({} ops) is not linearizable: {history:?}",
                history.len()
            ),
            None => panic!(
                "seed {seed}: register {key}'s history ({} ops) exhausted the checker's budget",
                history.len()
            ),
        }
    }
}
