//! Startup recovery: newest valid snapshot + replay of the logged txns after it.

use std::collections::BTreeMap;

use zk_proto::TxnBody;

use super::snapshot;
use super::txn_log::{cut_torn_tail, read_log_file};
use super::{list_files, DataDirs, StorageError};
use crate::tree::DataTree;

/// The state rebuilt from disk.
#[derive(Debug)]
pub struct Recovered {
    /// The tree, with every durable txn applied.
    pub tree: DataTree,
    /// Live sessions as (id, timeout).
    pub sessions: Vec<(i64, i32)>,
    /// The zxid of the snapshot recovery started from (0 for a fresh directory).
    pub snapshot_zxid: i64,
    /// How many logged txns were replayed.
    pub replayed: usize,
    /// Whether a torn log tail was truncated.
    pub truncated_tail: bool,
    /// Whether the data directory was empty (no snapshot, no log).
    pub fresh: bool,
}

/// Loads the newest valid snapshot and replays the log after it. A fresh directory yields the
/// initial tree.
pub fn recover(dirs: &DataDirs) -> Result<Recovered, StorageError> {
    snapshot::remove_unfinished(&dirs.snap_dir).map_err(|e| {
        StorageError::io(
            format!(
                "removing unfinished snapshots in {}",
                dirs.snap_dir.display()
            ),
            e,
        )
    })?;
    let snapshots = snapshot::list(&dirs.snap_dir)?;
    let logs = list_files(&dirs.log_dir, "log")?;
    if snapshots.is_empty() && logs.is_empty() {
        return Ok(Recovered {
            tree: DataTree::new(),
            sessions: Vec::new(),
            snapshot_zxid: 0,
            replayed: 0,
            truncated_tail: false,
            fresh: true,
        });
    }
    let mut loaded = None;
    for (zxid, path) in snapshots.iter().rev() {
        let file = std::fs::File::open(path)
            .map_err(|e| StorageError::io(format!("opening {}", path.display()), e))?;
        match snapshot::parse_from(std::io::BufReader::with_capacity(1 << 20, file), *zxid) {
            Ok(snap) => {
                loaded = Some((*zxid, snap));
                break;
            }
            Err(reason) => {
                tracing::warn!(file = %path.display(), %reason, "skipping invalid snapshot; trying an older one");
            }
        }
    }
    let Some((snapshot_zxid, snap)) = loaded else {
        return Err(StorageError::Corrupt {
            file: dirs.snap_dir.display().to_string(),
            offset: 0,
            reason: "txn logs exist but no valid snapshot does".into(),
        });
    };
    let mut tree = snap.tree;
    let mut sessions: BTreeMap<i64, i32> = snap.sessions.into_iter().collect();

    // The log holding snapshot_zxid + 1 is the last one starting at or before it.
    let first = logs
        .iter()
        .rposition(|(start, _)| *start <= snapshot_zxid + 1)
        .unwrap_or(0);
    let needed = logs.get(first..).unwrap_or_default();
    let mut expected = snapshot_zxid + 1;
    let mut replayed = 0;
    let mut truncated_tail = false;
    let mut triggers = Vec::new();
    for (i, (_, path)) in needed.iter().enumerate() {
        let is_last = i + 1 == needed.len();
        let mut failure = None;
        let scan = read_log_file(path, is_last, |txn| {
            let zxid = txn.header.zxid;
            if failure.is_some() || zxid < expected {
                return;
            }
            // Within an epoch the log has every zxid; a new epoch (an Apache ensemble
            // member's log) starts its counter afresh.
            let new_epoch = zxid >> 32 > (expected - 1) >> 32;
            if zxid != expected && !new_epoch {
                failure = Some(StorageError::Corrupt {
                    file: path.display().to_string(),
                    offset: 0,
                    reason: format!("txn log jumps from zxid 0x{:x} to 0x{zxid:x}", expected - 1),
                });
                return;
            }
            match &txn.body {
                TxnBody::CreateSession(t) => {
                    sessions.insert(txn.header.client_id, t.time_out);
                }
                TxnBody::CloseSession(_) => {
                    sessions.remove(&txn.header.client_id);
                }
                _ => {}
            }
            triggers.clear();
            tree.apply(&txn, &mut triggers);
            expected = zxid + 1;
            replayed += 1;
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        if scan.torn {
            cut_torn_tail(path, scan.valid_len)?;
            truncated_tail = true;
        }
    }
    if tree.last_processed_zxid() < snapshot_zxid {
        tree.set_last_processed_zxid(snapshot_zxid);
    }
    Ok(Recovered {
        tree,
        sessions: sessions.into_iter().collect(),
        snapshot_zxid,
        replayed,
        truncated_tail,
        fresh: false,
    })
}

#[cfg(test)]
mod tests {
    use zk_proto::{Acl, CreateTxn, Encode, Txn};

    use super::*;
    use crate::storage::txn_log::TxnLogWriter;

    fn create(zxid: i64, path: &str) -> Vec<u8> {
        let body = TxnBody::Create(CreateTxn {
            path: path.to_owned(),
            data: None,
            acl: Acl::open_unsafe(),
            ephemeral: false,
            parent_cversion: 1,
        });
        Txn::new(0, 1, zxid, 1_700_000_000_000, body)
            .to_bytes()
            .to_vec()
    }

    fn recovered_from(zxids: &[i64]) -> Result<Recovered, StorageError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let dirs = DataDirs::create(dir.path(), dir.path()).expect("dirs");
        let image = DataTree::new().image();
        snapshot::write_with(&dirs.snap_dir, 0, |file| {
            snapshot::serialize_into(&image, &[], file)
        })
        .expect("snapshot.0");
        let mut log = TxnLogWriter::new(dirs.log_dir.clone());
        for &zxid in zxids {
            log.append(zxid, &create(zxid, &format!("/n{zxid:x}")))
                .expect("append");
        }
        log.sync().expect("sync");
        recover(&dirs)
    }

    /// An Apache ensemble member's log: each new epoch starts its counter at 1.
    #[test]
    fn a_log_across_epochs_is_replayed() {
        let recovered =
            recovered_from(&[0x1_0000_0001, 0x1_0000_0002, 0x1_0000_0003, 0x2_0000_0001])
                .expect("recovers");
        assert_eq!(recovered.replayed, 4);
        assert_eq!(recovered.tree.last_processed_zxid(), 0x2_0000_0001);
        assert!(recovered.tree.get("/n200000001").is_some());
    }

    /// A gap inside an epoch is a missing piece of the log, not a new epoch.
    #[test]
    fn a_gap_within_an_epoch_is_refused() {
        let err = recovered_from(&[0x1_0000_0001, 0x1_0000_0003]).expect_err("a gap");
        assert!(err.to_string().contains("jumps"), "{err}");
    }
}
