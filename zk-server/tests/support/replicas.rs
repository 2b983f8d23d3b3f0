//! Helpers for tests that run replicas (`zab` over `quorum`) on loopback sockets.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::time::timeout;
use zk_server::quorum::{ReplicaContext, ReplicaHandle, RestoreError, StateMachine};
use zk_server::zab::{Entry, Role, Sid, Zxid};

/// Logs to the test output when `RUST_LOG` asks for it.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Applies entries to a Vec; its snapshot is the whole Vec.
#[derive(Clone, Default)]
pub struct VecMachine(Arc<Mutex<Vec<Entry>>>);

impl VecMachine {
    pub fn entries(&self) -> Vec<Entry> {
        self.0.lock().expect("lock").clone()
    }
}

impl StateMachine for VecMachine {
    type Event = ();

    fn apply(&mut self, entry: &Entry, _: &mut ReplicaContext<'_>) {
        self.0.lock().expect("lock").push(entry.clone());
    }

    fn snapshot(&self) -> Bytes {
        let mut out = BytesMut::new();
        for e in self.0.lock().expect("lock").iter() {
            out.put_i64(e.zxid);
            out.put_u32(e.txn.len() as u32);
            out.put_slice(&e.txn);
        }
        out.freeze()
    }

    fn restore(&mut self, state: Bytes) -> Result<(), RestoreError> {
        let mut entries = Vec::new();
        let mut rest = &state[..];
        while !rest.is_empty() {
            let (zxid, tail) = rest.split_at_checked(8).ok_or("truncated zxid")?;
            let (len, tail) = tail.split_at_checked(4).ok_or("truncated length")?;
            let len = u32::from_be_bytes(len.try_into()?) as usize;
            let (txn, tail) = tail.split_at_checked(len).ok_or("truncated txn")?;
            entries.push(Entry {
                zxid: i64::from_be_bytes(zxid.try_into()?),
                txn: Bytes::copy_from_slice(txn),
            });
            rest = tail;
        }
        *self.0.lock().expect("lock") = entries;
        Ok(())
    }
}

/// Whether `role` is a leader that accepts proposals.
pub fn established_leader(role: &Role) -> bool {
    matches!(
        role,
        Role::Leading {
            established: true,
            ..
        }
    )
}

/// Whether `role` serves (an established leader or a synced follower).
pub fn serving(role: &Role) -> bool {
    established_leader(role) || matches!(role, Role::Following { serving: true, .. })
}

/// Waits until exactly one of `handles` leads (established) and the others serve; returns the
/// leader's id.
pub async fn settled(handles: &[(Sid, ReplicaHandle)], limit: Duration) -> Sid {
    let roles = || -> BTreeMap<Sid, Role> { handles.iter().map(|(s, h)| (*s, h.role())).collect() };
    let wait = async {
        loop {
            let roles = roles();
            let leaders: Vec<Sid> = roles
                .iter()
                .filter(|(_, r)| established_leader(r))
                .map(|(s, _)| *s)
                .collect();
            if leaders.len() == 1 && roles.values().all(serving) {
                return leaders[0];
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    match timeout(limit, wait).await {
        Ok(leader) => leader,
        Err(_) => panic!("no settled leader: {:?}", roles()),
    }
}

/// Waits until every one of `handles` applied `zxid`.
pub async fn wait_applied(handles: &[(Sid, ReplicaHandle)], zxid: Zxid, limit: Duration) {
    for (sid, handle) in handles {
        let mut applied = handle.watch_applied();
        let ok = timeout(limit, applied.wait_for(|z| *z >= zxid))
            .await
            .is_ok();
        assert!(
            ok,
            "node {sid} applied only up to {:#x}, not {zxid:#x} (role {:?})",
            *handle.watch_applied().borrow(),
            handle.role()
        );
    }
}

/// Proposes `n` txns `<prefix><i>` through `leader`; returns the last zxid.
pub async fn propose(leader: &ReplicaHandle, prefix: &str, n: usize) -> Zxid {
    let mut last = 0;
    for i in 0..n {
        last = leader
            .propose(Bytes::from(format!("{prefix}{i}")))
            .await
            .expect("the leader accepts");
    }
    last
}

/// Asserts every machine applied the same sequence, in zxid order; returns it.
pub fn assert_same_sequence(machines: &[(Sid, VecMachine)]) -> Vec<Entry> {
    let mut sequences = machines.iter().map(|(s, m)| (*s, m.entries()));
    let (first_sid, first) = sequences.next().expect("a node");
    for w in first.windows(2) {
        assert!(w[0].zxid < w[1].zxid, "applied in zxid order");
    }
    for (sid, seq) in sequences {
        assert_eq!(
            seq, first,
            "node {sid} applied another sequence than {first_sid}"
        );
    }
    first
}
