//! The ZAB epoch files, `acceptedEpoch` and `currentEpoch`, as Apache ZooKeeper keeps them
//! (`QuorumPeer.readLongFromFile` / `writeLongToFile`).
//!
//! * **Where:** in the snapshot directory, `<dataDir>/version-2/` (Apache resolves them against
//!   `FileTxnSnapLog.getSnapDir()`, not against `dataDir` itself), i.e. [`DataDirs::snap_dir`].
//! * **What:** the epoch as decimal text (`Long.toString`), no newline. Reading takes the first
//!   line and parses it as a signed 64-bit decimal (`Long.parseLong`): no other whitespace is
//!   accepted.
//! * **acceptedEpoch** is the newest epoch this peer has promised to follow (written when it
//!   accepts a LEADERINFO / NEWEPOCH); **currentEpoch** is the epoch of the leader it last fully
//!   synchronized with (written before it acks NEWLEADER). Always `accepted ≥ current`.
//!
//! Writes are crash-safe: `<name>.tmp` is written and fsynced, renamed over `<name>`, and the
//! directory is fsynced, so after a crash the file holds either the old or the new value, never
//! a mix. (Apache's `AtomicFileOutputStream` does not fsync the directory; its ZOOKEEPER-1653
//! fix therefore falls back to `currentEpoch.tmp` when `currentEpoch` is older than the log. We
//! keep that fallback in [`EpochStore::load`], for data directories written by other code and for
//! a crash between the tmp file's fsync and the rename.)
//!
//! A write or fsync error must be treated as fatal by the caller (stop the node; never retry an
//! fsync), as for the txn log.
//!
//! [`DataDirs::snap_dir`]: super::DataDirs::snap_dir

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::sync_dir;

/// Name of the accepted-epoch file (`QuorumPeer.ACCEPTED_EPOCH_FILENAME`).
pub const ACCEPTED_EPOCH_FILE: &str = "acceptedEpoch";

/// Name of the current-epoch file (`QuorumPeer.CURRENT_EPOCH_FILENAME`).
pub const CURRENT_EPOCH_FILE: &str = "currentEpoch";

/// Suffix of the temporary file a write goes through (`AtomicFileOutputStream.TMP_EXTENSION`).
pub const TMP_SUFFIX: &str = ".tmp";

/// Most bytes read from an epoch file; a longer first line is corrupt. A 64-bit decimal needs 20.
const MAX_READ: u64 = 4096;

/// Which epoch file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EpochFile {
    /// `acceptedEpoch`.
    Accepted,
    /// `currentEpoch`.
    Current,
}

impl EpochFile {
    /// The file's name.
    pub const fn file_name(self) -> &'static str {
        match self {
            EpochFile::Accepted => ACCEPTED_EPOCH_FILE,
            EpochFile::Current => CURRENT_EPOCH_FILE,
        }
    }
}

/// Reading, writing or reconciling the epoch files failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EpochError {
    /// An I/O error. On a write this is fatal for the node.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done (`reading`, `writing`, `fsync of`, …).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The file does not hold a decimal number.
    #[error("corrupt epoch file {}: found {found:?}, expected a decimal number", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Its first line (at most the first 64 characters).
        found: String,
    },
    /// `currentEpoch` is older than the epoch of the last logged txn and there is no
    /// `currentEpoch.tmp` to recover from (ZOOKEEPER-1653).
    #[error("the current epoch {current:#x} is older than the last logged zxid {last_zxid:#x}")]
    CurrentBehindLog {
        /// The current epoch found.
        current: i64,
        /// The last logged zxid.
        last_zxid: i64,
    },
    /// `acceptedEpoch < currentEpoch`, which no correct run produces.
    #[error("the accepted epoch {accepted:#x} is less than the current epoch {current:#x}")]
    AcceptedBehindCurrent {
        /// The accepted epoch found.
        accepted: i64,
        /// The current epoch found.
        current: i64,
    },
}

/// Both epochs, as loaded at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Epochs {
    /// The accepted epoch.
    pub accepted: i64,
    /// The current epoch.
    pub current: i64,
}

/// The epoch files of one data directory.
#[derive(Debug, Clone)]
pub struct EpochStore {
    dir: PathBuf,
}

impl EpochStore {
    /// The epoch files in `snap_dir` (`<dataDir>/version-2`, which must exist).
    pub fn new(snap_dir: impl Into<PathBuf>) -> EpochStore {
        EpochStore {
            dir: snap_dir.into(),
        }
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of `which`.
    pub fn path(&self, which: EpochFile) -> PathBuf {
        self.dir.join(which.file_name())
    }

    /// The path of `which`'s temporary file.
    pub fn tmp_path(&self, which: EpochFile) -> PathBuf {
        self.dir.join(format!("{}{TMP_SUFFIX}", which.file_name()))
    }

    /// Reads `which`: `None` when the file does not exist. A leftover `.tmp` file is ignored.
    pub fn read(&self, which: EpochFile) -> Result<Option<i64>, EpochError> {
        read_epoch(&self.path(which))
    }

    /// Reads `which`'s leftover temporary file (`None` when there is none): the value a write
    /// that did not complete its rename was writing. Only [`EpochStore::load`]'s
    /// ZOOKEEPER-1653 recovery should trust it.
    pub fn read_tmp(&self, which: EpochFile) -> Result<Option<i64>, EpochError> {
        read_epoch(&self.tmp_path(which))
    }

    /// Durably replaces `which` with `epoch`: tmp file → fsync → rename → fsync of the
    /// directory. When this returns `Ok`, the new value survives a crash; on `Err` the file
    /// holds the old or the new value and the caller must stop the node.
    pub fn write(&self, which: EpochFile, epoch: i64) -> Result<(), EpochError> {
        let tmp = self.write_tmp(which, epoch)?;
        let path = self.path(which);
        std::fs::rename(&tmp, &path).map_err(|source| EpochError::Io {
            op: "renaming the tmp file over",
            path: path.clone(),
            source,
        })?;
        sync_dir(&self.dir).map_err(|source| EpochError::Io {
            op: "fsync of",
            path: self.dir.clone(),
            source,
        })
    }

    /// The first half of [`EpochStore::write`]: the fsynced tmp file, not yet renamed.
    fn write_tmp(&self, which: EpochFile, epoch: i64) -> Result<PathBuf, EpochError> {
        let tmp = self.tmp_path(which);
        let io_err = |op: &'static str| {
            let path = tmp.clone();
            move |source| EpochError::Io { op, path, source }
        };
        let mut file = File::create(&tmp).map_err(io_err("creating"))?;
        file.write_all(epoch.to_string().as_bytes())
            .map_err(io_err("writing"))?;
        file.sync_all().map_err(io_err("fsync of"))?;
        Ok(tmp)
    }

    /// Loads both epochs at start-up, given the zxid of the last txn in the log (or snapshot),
    /// exactly as Apache's `QuorumPeer.loadDataBase`:
    ///
    /// 1. a missing `currentEpoch` is created with the epoch of `last_logged_zxid` (an
    ///    installation that never ran as a quorum);
    /// 2. if the log's epoch is newer than `currentEpoch`, `currentEpoch.tmp` is taken as the
    ///    current epoch and written back (ZOOKEEPER-1653); without one, or if it is still older
    ///    than the log, the node refuses to start ([`EpochError::CurrentBehindLog`]);
    /// 3. a missing `acceptedEpoch` is created with the epoch of `last_logged_zxid`;
    /// 4. `acceptedEpoch < currentEpoch` refuses to start ([`EpochError::AcceptedBehindCurrent`]).
    pub fn load(&self, last_logged_zxid: i64) -> Result<Epochs, EpochError> {
        let log_epoch = last_logged_zxid >> 32;
        let mut current = match self.read(EpochFile::Current)? {
            Some(epoch) => epoch,
            None => {
                tracing::info!(
                    epoch = log_epoch,
                    "{CURRENT_EPOCH_FILE} not found; creating it from the last logged zxid"
                );
                self.write(EpochFile::Current, log_epoch)?;
                log_epoch
            }
        };
        if log_epoch > current {
            match self.read_tmp(EpochFile::Current)? {
                Some(epoch) if epoch >= log_epoch => {
                    tracing::info!(epoch, "recovering {CURRENT_EPOCH_FILE} from its tmp file");
                    self.write(EpochFile::Current, epoch)?;
                    current = epoch;
                }
                _ => {
                    return Err(EpochError::CurrentBehindLog {
                        current,
                        last_zxid: last_logged_zxid,
                    })
                }
            }
        }
        let accepted = match self.read(EpochFile::Accepted)? {
            Some(epoch) => epoch,
            None => {
                tracing::info!(
                    epoch = log_epoch,
                    "{ACCEPTED_EPOCH_FILE} not found; creating it from the last logged zxid"
                );
                self.write(EpochFile::Accepted, log_epoch)?;
                log_epoch
            }
        };
        if accepted < current {
            return Err(EpochError::AcceptedBehindCurrent { accepted, current });
        }
        Ok(Epochs { accepted, current })
    }
}

/// Reads an epoch file: `None` when it does not exist.
fn read_epoch(path: &Path) -> Result<Option<i64>, EpochError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(EpochError::Io {
                op: "opening",
                path: path.to_owned(),
                source,
            })
        }
    };
    let mut bytes = Vec::new();
    file.take(MAX_READ)
        .read_to_end(&mut bytes)
        .map_err(|source| EpochError::Io {
            op: "reading",
            path: path.to_owned(),
            source,
        })?;
    parse_epoch(&bytes).map(Some).ok_or_else(|| {
        let text = String::from_utf8_lossy(&bytes);
        EpochError::Corrupt {
            path: path.to_owned(),
            found: text.lines().next().unwrap_or("").chars().take(64).collect(),
        }
    })
}

/// The first line (as Java's `BufferedReader.readLine`: ended by `\n`, `\r` or `\r\n`) as a
/// decimal `i64`.
fn parse_epoch(bytes: &[u8]) -> Option<i64> {
    let end = bytes
        .iter()
        .position(|b| *b == b'\n' || *b == b'\r')
        .unwrap_or(bytes.len());
    let line = std::str::from_utf8(bytes.get(..end)?).ok()?;
    line.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, EpochStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = EpochStore::new(dir.path());
        (dir, store)
    }

    #[test]
    fn missing_files_read_as_none() {
        let (_dir, store) = store();
        assert_eq!(store.read(EpochFile::Accepted).unwrap(), None);
        assert_eq!(store.read(EpochFile::Current).unwrap(), None);
    }

    #[test]
    fn written_as_apache_writes_them() {
        let (dir, store) = store();
        store.write(EpochFile::Accepted, 7).unwrap();
        store.write(EpochFile::Current, 6).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("acceptedEpoch")).unwrap(),
            b"7"
        );
        assert_eq!(
            std::fs::read(dir.path().join("currentEpoch")).unwrap(),
            b"6"
        );
        assert!(!store.tmp_path(EpochFile::Accepted).exists());
        assert_eq!(store.read(EpochFile::Accepted).unwrap(), Some(7));
        store.write(EpochFile::Accepted, 8).unwrap();
        assert_eq!(store.read(EpochFile::Accepted).unwrap(), Some(8));
    }

    #[test]
    fn reads_the_first_line_as_apache_does() {
        let (dir, store) = store();
        for (text, value) in [
            (&b"12\n"[..], Some(12)),
            (b"12\r\n", Some(12)),
            (b"-1", Some(-1)),
            (b"9223372036854775807", Some(i64::MAX)),
            (b"3\ngarbage", Some(3)),
        ] {
            std::fs::write(dir.path().join("currentEpoch"), text).unwrap();
            assert_eq!(store.read(EpochFile::Current).unwrap(), value);
        }
    }

    #[test]
    fn corrupt_files_are_typed_errors() {
        let (dir, store) = store();
        for text in [
            &b""[..],
            b"abc",
            b" 5",
            b"5 ",
            b"0x10",
            b"99999999999999999999",
            &[0xff, 0xfe],
            &[b'1'; 5000],
        ] {
            std::fs::write(dir.path().join("acceptedEpoch"), text).unwrap();
            let err = store.read(EpochFile::Accepted).unwrap_err();
            assert!(matches!(err, EpochError::Corrupt { .. }), "{err}");
            assert!(err.to_string().contains("acceptedEpoch"), "{err}");
        }
    }

    #[test]
    fn a_leftover_tmp_file_is_ignored() {
        let (dir, store) = store();
        store.write(EpochFile::Current, 5).unwrap();
        std::fs::write(dir.path().join("currentEpoch.tmp"), b"9").unwrap();
        assert_eq!(store.read(EpochFile::Current).unwrap(), Some(5));
        std::fs::write(dir.path().join("currentEpoch.tmp"), b"torn").unwrap();
        assert_eq!(store.read(EpochFile::Current).unwrap(), Some(5));
        // A later write replaces the leftover.
        store.write(EpochFile::Current, 6).unwrap();
        assert_eq!(store.read(EpochFile::Current).unwrap(), Some(6));
        assert!(!store.tmp_path(EpochFile::Current).exists());
    }

    #[test]
    fn a_crash_before_the_rename_leaves_the_old_value() {
        let (_dir, store) = store();
        store.write(EpochFile::Accepted, 3).unwrap();
        // The write of 4 got as far as the fsynced tmp file, then the process died.
        store.write_tmp(EpochFile::Accepted, 4).unwrap();
        assert_eq!(store.read(EpochFile::Accepted).unwrap(), Some(3));
        assert_eq!(store.read_tmp(EpochFile::Accepted).unwrap(), Some(4));
        // A crash before the very first write leaves no file at all.
        store.write_tmp(EpochFile::Current, 1).unwrap();
        assert_eq!(store.read(EpochFile::Current).unwrap(), None);
    }

    #[test]
    fn load_creates_missing_files_from_the_log() {
        let (_dir, store) = store();
        let epochs = store.load(0x0000_0003_0000_0010).unwrap();
        assert_eq!(
            epochs,
            Epochs {
                accepted: 3,
                current: 3
            }
        );
        assert_eq!(store.read(EpochFile::Current).unwrap(), Some(3));
        assert_eq!(store.read(EpochFile::Accepted).unwrap(), Some(3));
        // A fresh node: no log, both epochs 0.
        let (_dir, fresh) = self::store();
        assert_eq!(
            fresh.load(0).unwrap(),
            Epochs {
                accepted: 0,
                current: 0
            }
        );
    }

    #[test]
    fn load_keeps_a_tmp_file_out_unless_the_log_needs_it() {
        let (_dir, store) = store();
        store.write(EpochFile::Accepted, 4).unwrap();
        store.write(EpochFile::Current, 3).unwrap();
        store.write_tmp(EpochFile::Current, 4).unwrap();
        // The log is still in epoch 3: the interrupted write never counted.
        assert_eq!(
            store.load(0x0000_0003_0000_0001).unwrap(),
            Epochs {
                accepted: 4,
                current: 3
            }
        );
        // ZOOKEEPER-1653: the log is in epoch 4 but currentEpoch says 3; the tmp file has 4.
        assert_eq!(
            store.load(0x0000_0004_0000_0001).unwrap(),
            Epochs {
                accepted: 4,
                current: 4
            }
        );
        assert_eq!(store.read(EpochFile::Current).unwrap(), Some(4));
    }

    #[test]
    fn load_refuses_inconsistent_epochs() {
        let (dir, store) = store();
        store.write(EpochFile::Accepted, 5).unwrap();
        store.write(EpochFile::Current, 3).unwrap();
        let err = store.load(0x0000_0005_0000_0001).unwrap_err();
        assert!(
            matches!(err, EpochError::CurrentBehindLog { current: 3, .. }),
            "{err}"
        );
        // A tmp file that is still behind the log does not help.
        store.write_tmp(EpochFile::Current, 4).unwrap();
        assert!(matches!(
            store.load(0x0000_0005_0000_0001),
            Err(EpochError::CurrentBehindLog { .. })
        ));
        // A torn tmp file is corrupt, not silently ignored, when it is needed.
        std::fs::write(dir.path().join("currentEpoch.tmp"), b"").unwrap();
        assert!(matches!(
            store.load(0x0000_0005_0000_0001),
            Err(EpochError::Corrupt { .. })
        ));
        store.write(EpochFile::Current, 6).unwrap();
        let err = store.load(0x0000_0005_0000_0001).unwrap_err();
        assert!(
            matches!(
                err,
                EpochError::AcceptedBehindCurrent {
                    accepted: 5,
                    current: 6
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn io_errors_are_reported_not_panics() {
        let store = EpochStore::new("/nonexistent/zk-epoch-test/version-2");
        assert_eq!(store.read(EpochFile::Current).unwrap(), None);
        let err = store.write(EpochFile::Current, 1).unwrap_err();
        assert!(matches!(err, EpochError::Io { .. }), "{err}");
        // A directory where the file should be.
        let (dir, store) = self::store();
        std::fs::create_dir(dir.path().join("acceptedEpoch")).unwrap();
        assert!(matches!(
            store.read(EpochFile::Accepted),
            Err(EpochError::Io { .. })
        ));
    }
}
