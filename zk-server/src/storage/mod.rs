//! Durability: the transaction log, snapshots, recovery and the storage thread that appends,
//! fsyncs (group commit) and snapshots on behalf of the core.
//!
//! Data directory layout (as Apache ZooKeeper's):
//!
//! ```text
//! <dataDir>/version-2/snapshot.<zxid hex>   snapshots (tmp file → fsync → rename → fsync dir)
//! <dataLogDir>/version-2/log.<zxid hex>     txn logs, named by their first zxid
//! <dataDir>/version-2/acceptedEpoch         ZAB epochs, decimal text ([`epoch`]; same
//! <dataDir>/version-2/currentEpoch          tmp → fsync → rename → fsync dir)
//! ```
//!
//! A log entry is `long adler32(txn) · int length · txn bytes · byte 0x42`. Recovery loads the
//! newest valid snapshot and replays every logged txn after it. A torn tail of the last log file
//! (a damaged entry followed by zeros, the end of the file, or garbage with no intact entry in
//! it) is truncated, its bytes kept in a `torn-tail.*` file first; any other damage
//! refuses to start with a message naming the file and offset. A write or fsync error is
//! fatal: the server stops and never acknowledges the txn.

pub mod adler32;
pub mod epoch;
mod recovery;
pub mod snapshot;
pub(crate) mod txn_log;
mod writer;

use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

pub use epoch::{EpochError, EpochFile, EpochStore, Epochs};
pub use recovery::{recover, Recovered};
pub use txn_log::{read_log_file, LogScan};
pub use writer::{purge, spawn_storage_thread, StorageEvent, StorageHandle, StorageOp};

/// Where snapshots and logs live.
#[derive(Debug, Clone)]
pub struct DataDirs {
    /// `<dataDir>/version-2`.
    pub snap_dir: PathBuf,
    /// `<dataLogDir>/version-2`.
    pub log_dir: PathBuf,
}

impl DataDirs {
    /// The `version-2` directories under `data_dir` and `data_log_dir`, created if missing.
    ///
    /// # Errors
    /// Besides I/O errors, as Apache's `FileTxnSnapLog` (ZOOKEEPER-2967): when the two
    /// directories differ, txn logs in the snapshot directory or snapshots in the log
    /// directory. That is a `dataLogDir` added (or dropped) after data was written: starting
    /// would recover without the logs and lose every write since the last snapshot.
    pub fn create(data_dir: &Path, data_log_dir: &Path) -> io::Result<DataDirs> {
        let dirs = DataDirs {
            snap_dir: data_dir.join("version-2"),
            log_dir: data_log_dir.join("version-2"),
        };
        create_dir_durably(&dirs.snap_dir)?;
        create_dir_durably(&dirs.log_dir)?;
        if !same_dir(&dirs.snap_dir, &dirs.log_dir) {
            let misplaced = |dir: &Path, prefix: &str, what: &str| -> io::Result<()> {
                if has_files(dir, prefix)? {
                    return Err(io::Error::other(format!(
                        "{} holds {what}, but the {what} go to {}: check dataDir and \
                         dataLogDir (move the files where they belong, or set the directories \
                         back as they were when the files were written)",
                        dir.display(),
                        if prefix == "log" {
                            &dirs.log_dir
                        } else {
                            &dirs.snap_dir
                        }
                        .display()
                    )));
                }
                Ok(())
            };
            misplaced(&dirs.snap_dir, "log", "txn logs")?;
            misplaced(&dirs.log_dir, "snapshot", "snapshots")?;
        }
        Ok(dirs)
    }
}

/// Whether two paths name the same directory (both exist).
fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Whether `dir` holds a file named `prefix.<hex zxid>`.
fn has_files(dir: &Path, prefix: &str) -> io::Result<bool> {
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let hex = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|r| r.strip_prefix('.'));
        if hex.is_some_and(|h| u64::from_str_radix(h, 16).is_ok()) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `create_dir_all`, then fsyncs the parent of every directory it created, so that a crash
/// cannot lose the directory holding files already synced into it.
fn create_dir_durably(dir: &Path) -> io::Result<()> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
    std::fs::create_dir_all(dir)?;
    for created in missing {
        match created.parent() {
            Some(parent) if parent.as_os_str().is_empty() => sync_dir(Path::new("."))?,
            Some(parent) => sync_dir(parent)?,
            None => {}
        }
    }
    Ok(())
}

/// A storage failure.
#[derive(Debug, Error)]
pub enum StorageError {
    /// An I/O error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Data on disk is damaged somewhere other than a torn tail.
    #[error("corrupt {file} at byte {offset}: {reason}; refusing to start (restore the data directory or remove the damaged file deliberately)")]
    Corrupt {
        /// The file.
        file: String,
        /// Byte offset of the damage.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

impl StorageError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> StorageError {
        StorageError::Io {
            context: context.into(),
            source,
        }
    }
}

/// `prefix.<zxid as lower-case hex>`.
pub(crate) fn file_name(prefix: &str, zxid: i64) -> String {
    format!("{prefix}.{zxid:x}")
}

/// Files in `dir` named `prefix.<hex zxid>`, sorted by zxid.
pub(crate) fn list_files(dir: &Path, prefix: &str) -> Result<Vec<(i64, PathBuf)>, StorageError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| StorageError::io(format!("listing {}", dir.display()), e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io(format!("listing {}", dir.display()), e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(hex) = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')) else {
            continue;
        };
        if let Ok(zxid) = u64::from_str_radix(hex, 16) {
            out.push((zxid as i64, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// fsyncs a directory so that entries created or renamed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `dataLogDir` added after logs were written under `dataDir` (or dropped after
    /// snapshots were written under it) is refused, not recovered without the logs.
    #[test]
    fn misplaced_logs_or_snapshots_are_refused() {
        let root = tempfile::tempdir().expect("tempdir");
        let (data, logs) = (root.path().join("data"), root.path().join("logs"));
        let dirs = DataDirs::create(&data, &data).expect("one directory");
        std::fs::write(dirs.log_dir.join("log.1"), b"").expect("log");
        std::fs::write(dirs.snap_dir.join("snapshot.0"), b"").expect("snapshot");
        DataDirs::create(&data, &data).expect("still one directory");
        let err = DataDirs::create(&data, &logs).expect_err("logs left in dataDir");
        assert!(err.to_string().contains("txn logs"), "{err}");

        // The old dataDir named as dataLogDir: snapshots where the logs go.
        let other = root.path().join("other");
        let err = DataDirs::create(&other, &data).expect_err("snapshots in the log directory");
        assert!(err.to_string().contains("snapshots"), "{err}");
        // Once the logs are where the configuration says: fine.
        std::fs::remove_file(data.join("version-2").join("log.1")).expect("move the log");
        DataDirs::create(&data, &logs).expect("as written");
    }
}
