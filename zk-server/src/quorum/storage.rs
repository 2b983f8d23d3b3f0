//! [`ReplicaStorage`]: what the replica driver needs from a disk — a txn log, the state it
//! starts from, and the two epoch files — and [`MemoryStorage`], an in-memory implementation
//! for tests that can lose its unsynced writes like a crashed machine.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

use crate::zab::{Entry, History, NotContiguous, PersistentState, Zxid};

/// A storage operation failed. Fatal for the replica: the driver stops (an fsync error is
/// never retried; RELIABILITY.md, "fsyncgate").
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// An I/O error.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The recovered log has a hole.
    #[error("the recovered log is not contiguous: {0}")]
    NotContiguous(#[from] NotContiguous),
    /// Data on disk is damaged somewhere other than a torn log tail: the replica refuses to
    /// start (it never silently drops a logged txn).
    #[error("corrupt {file} at byte {offset}: {reason}; refusing to start")]
    Corrupt {
        /// The file (or directory).
        file: String,
        /// Byte offset of the damage.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The epoch files are unreadable, inconsistent with the log, or could not be written.
    #[error("epoch files: {0}")]
    Epoch(#[from] crate::storage::EpochError),
    /// Something else (a misuse, …).
    #[error("{0}")]
    Other(String),
}

impl From<crate::storage::StorageError> for StorageError {
    fn from(e: crate::storage::StorageError) -> StorageError {
        match e {
            crate::storage::StorageError::Io { context, source } => StorageError::Io(
                std::io::Error::new(source.kind(), format!("{context}: {source}")),
            ),
            crate::storage::StorageError::Corrupt {
                file,
                offset,
                reason,
            } => StorageError::Corrupt {
                file,
                offset,
                reason,
            },
        }
    }
}

/// What a replica starts from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The epochs and the history (snapshot base and durable log).
    pub state: PersistentState,
    /// The state as of the history's base, when there is one (a snapshot installed from a
    /// leader); `None` for the empty state at zxid 0.
    pub snapshot: Option<Bytes>,
}

/// A replica's durable storage, as the driver uses it.
///
/// The driver calls these on its own task, in the order of the
/// [`Action`](crate::zab::Action)s; an implementation on a real disk should be quick or hand
/// the work to a storage thread. Ordering contract:
///
/// * [`append`](Self::append) may buffer; [`sync`](Self::sync) makes every append before it
///   durable and returns the last durable zxid (the driver then reports
///   [`Input::Persisted`](crate::zab::Input)). The driver never reports an entry durable
///   before `sync` returned.
/// * [`truncate`](Self::truncate), [`install_snapshot`](Self::install_snapshot) and
///   [`persist_epochs`](Self::persist_epochs) are durable when they return. A truncation
///   also drops appended but unsynced entries after `after`.
/// * Any error is fatal: the driver stops the replica.
pub trait ReplicaStorage: Send + 'static {
    /// What survived the last run.
    ///
    /// # Errors
    /// Unreadable or inconsistent storage.
    fn recover(&mut self) -> Result<Recovered, StorageError>;

    /// Appends a txn to the log (not yet durable).
    ///
    /// # Errors
    /// A write error.
    fn append(&mut self, entry: &Entry) -> Result<(), StorageError>;

    /// Makes every append durable; returns the last durable zxid (the base when the log is
    /// empty).
    ///
    /// # Errors
    /// An fsync error.
    fn sync(&mut self) -> Result<Zxid, StorageError>;

    /// Drops every logged txn after `after`, durably.
    ///
    /// # Errors
    /// A write error.
    fn truncate(&mut self, after: Zxid) -> Result<(), StorageError>;

    /// Replaces the state with `state` as of `zxid` and empties the log, durably.
    ///
    /// # Errors
    /// A write error.
    fn install_snapshot(&mut self, zxid: Zxid, state: &Bytes) -> Result<(), StorageError>;

    /// Writes both epochs, durably (crash-safe: a crash leaves the old or the new values).
    ///
    /// # Errors
    /// A write error.
    fn persist_epochs(&mut self, accepted: u32, current: u32) -> Result<(), StorageError>;

    /// Takes a snapshot of the local state as of `zxid` (a committed txn this replica logged)
    /// and forgets the logged txns up to it, keeping the later ones: the log stays bounded.
    /// After a crash, recovery returns this snapshot and the txns after it.
    ///
    /// # Errors
    /// A write error.
    fn compact(&mut self, zxid: Zxid, state: &Bytes) -> Result<(), StorageError>;
}

#[derive(Debug, Default)]
struct Disk {
    accepted: u32,
    current: u32,
    base: Zxid,
    snapshot: Option<Bytes>,
    log: Vec<Entry>,
    /// `log[..durable]` survives a crash.
    durable: usize,
}

/// An in-memory [`ReplicaStorage`]. Clones share the same "disk", so a test can keep one,
/// stop the replica, [`crash`](Self::crash) it, and start a new replica on it.
#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    disk: Arc<Mutex<Disk>>,
}

impl MemoryStorage {
    /// An empty disk.
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    fn disk(&self) -> std::sync::MutexGuard<'_, Disk> {
        self.disk.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Loses every append not yet synced, as a power loss would.
    pub fn crash(&self) {
        let mut d = self.disk();
        let keep = d.durable;
        d.log.truncate(keep);
    }

    /// The logged txns (synced or not).
    pub fn log(&self) -> Vec<Entry> {
        self.disk().log.clone()
    }

    /// The accepted and current epochs.
    pub fn epochs(&self) -> (u32, u32) {
        let d = self.disk();
        (d.accepted, d.current)
    }

    /// The snapshot's zxid.
    pub fn base(&self) -> Zxid {
        self.disk().base
    }
}

impl ReplicaStorage for MemoryStorage {
    fn recover(&mut self) -> Result<Recovered, StorageError> {
        let d = self.disk();
        let durable = d.log.get(..d.durable).unwrap_or(&[]).to_vec();
        let history = History::from_entries(d.base, durable)?;
        Ok(Recovered {
            state: PersistentState {
                accepted_epoch: d.accepted,
                current_epoch: d.current,
                history,
            },
            snapshot: d.snapshot.clone(),
        })
    }

    fn append(&mut self, entry: &Entry) -> Result<(), StorageError> {
        self.disk().log.push(entry.clone());
        Ok(())
    }

    fn sync(&mut self) -> Result<Zxid, StorageError> {
        let mut d = self.disk();
        d.durable = d.log.len();
        Ok(d.log.last().map_or(d.base, |e| e.zxid))
    }

    fn truncate(&mut self, after: Zxid) -> Result<(), StorageError> {
        let mut d = self.disk();
        let keep = d.log.partition_point(|e| e.zxid <= after);
        d.log.truncate(keep);
        d.durable = d.durable.min(keep);
        Ok(())
    }

    fn install_snapshot(&mut self, zxid: Zxid, state: &Bytes) -> Result<(), StorageError> {
        let mut d = self.disk();
        d.base = zxid;
        d.snapshot = Some(state.clone());
        d.log.clear();
        d.durable = 0;
        Ok(())
    }

    fn persist_epochs(&mut self, accepted: u32, current: u32) -> Result<(), StorageError> {
        let mut d = self.disk();
        d.accepted = accepted;
        d.current = current;
        Ok(())
    }

    fn compact(&mut self, zxid: Zxid, state: &Bytes) -> Result<(), StorageError> {
        let mut d = self.disk();
        if zxid <= d.base {
            return Ok(());
        }
        let drop = d.log.partition_point(|e| e.zxid <= zxid);
        d.log.drain(..drop);
        d.durable = d.durable.saturating_sub(drop);
        d.base = zxid;
        d.snapshot = Some(state.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zab::make_zxid;

    fn e(c: u32) -> Entry {
        Entry {
            zxid: make_zxid(1, c),
            txn: Bytes::from(vec![c as u8]),
        }
    }

    #[test]
    fn a_crash_loses_only_unsynced_appends() {
        let mut s = MemoryStorage::new();
        s.append(&e(1)).expect("ok");
        s.append(&e(2)).expect("ok");
        assert_eq!(s.sync().expect("ok"), make_zxid(1, 2));
        s.append(&e(3)).expect("ok");
        s.persist_epochs(2, 1).expect("ok");
        s.crash();
        let r = s.recover().expect("ok");
        assert_eq!(r.state.history.last_zxid(), make_zxid(1, 2));
        assert_eq!((r.state.accepted_epoch, r.state.current_epoch), (2, 1));
        assert_eq!(r.snapshot, None);
    }

    #[test]
    fn truncate_and_snapshot_are_durable_at_once() {
        let mut s = MemoryStorage::new();
        for c in 1..=3 {
            s.append(&e(c)).expect("ok");
        }
        s.sync().expect("ok");
        s.truncate(make_zxid(1, 1)).expect("ok");
        s.crash();
        assert_eq!(s.log(), vec![e(1)]);
        s.install_snapshot(make_zxid(1, 5), &Bytes::from_static(b"state"))
            .expect("ok");
        s.append(&e(6)).expect("ok");
        s.crash();
        let r = s.recover().expect("ok");
        assert_eq!(r.state.history.base(), make_zxid(1, 5));
        assert!(r.state.history.entries().is_empty());
        assert_eq!(r.snapshot.as_deref(), Some(&b"state"[..]));
    }
}
