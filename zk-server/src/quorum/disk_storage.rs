//! [`DiskStorage`]: a [`ReplicaStorage`] on disk, over the standalone server's txn-log framing
//! (`storage::txn_log`), its durable-rename snapshot writer and the epoch files
//! ([`crate::storage::epoch`]).
//!
//! # Layout
//!
//! ```text
//! <dataDir>/version-2/snapshot.<zxid hex>   the state machine's snapshot as of zxid (below)
//! <dataDir>/version-2/acceptedEpoch         ZAB epochs, decimal text (epoch.rs, Apache's format)
//! <dataDir>/version-2/currentEpoch
//! <dataLogDir>/version-2/log.<zxid hex>     txn logs, named by their first zxid
//! ```
//!
//! **Log files** use Apache's framing: the header `ZKLG`, version 2, dbid; then entries
//! `long adler32(body) · int length · body · byte 0x42`, the file preallocated with zeros.
//! The replica's txns are opaque to it, so an entry's body is `long zxid · txn bytes` (not an
//! Apache `TxnHeader` + record: a standalone server or Apache's tools cannot read these logs).
//! The header's dbid holds the log's **generation** (below). A new file is started when the
//! current one has grown past [`DiskOptions::roll_size`], after a truncation, and after a
//! restart.
//!
//! **Snapshot files** hold the opaque bytes the driver got from the leader (the state
//! machine's [`snapshot`](super::StateMachine::snapshot)) and hands back to
//! [`restore`](super::StateMachine::restore):
//!
//! ```text
//! "ZKRS" · int version (1) · long zxid · long generation · long length · bytes
//! long adler32(everything above)
//! ```
//!
//! They are written to `snapshot.<zxid hex>.tmp`, fsynced, renamed and the directory fsynced.
//!
//! # Generations
//!
//! Installing a snapshot replaces the whole history, but the snapshot and the log files
//! cannot be replaced in one atomic step. Each installed snapshot therefore carries a
//! generation, one more than the one it replaces (the log starts at 0), and every log file
//! written after it carries the same generation in its header. The snapshot's rename is the
//! commit point;
//! recovery uses the snapshot of the highest generation and only the log files of that
//! generation, deleting older ones (left behind by a crash in the middle of an install). So
//! a crash never mixes a new snapshot with the log it replaced (which could hold txns after
//! the snapshot's zxid that the leader had dropped).
//!
//! # Compaction
//!
//! [`compact`](ReplicaStorage::compact) writes a snapshot of the local state at a committed
//! zxid with the *current* generation (the log it shortens stays valid), then deletes the
//! older snapshot and every log file the snapshot covers entirely; the file holding the
//! entry after the snapshot is kept whole. Recovery takes the newest snapshot of the highest
//! generation and skips logged entries up to its zxid; files left covered by a crash in the
//! middle of a compaction are deleted then.
//!
//! # Recovery
//!
//! * Every `snapshot.*` file must be intact (each was fsynced before its rename, so damage
//!   is media corruption, and falling back to an older snapshot whose log was already
//!   deleted would silently lose txns): a damaged one refuses to start.
//! * A torn tail of the last log file (a damaged entry followed by zeros, the end of the
//!   file, or garbage with no intact entry in it) is cut off, its bytes kept in a
//!   `torn-tail.*` file first; any other damage, a hole between files, or a file whose first
//!   entry does not match its name refuses to start ([`StorageError::Corrupt`],
//!   [`StorageError::NotContiguous`]).
//! * The epochs are loaded by [`EpochStore::load`] with Apache's rules (including the
//!   ZOOKEEPER-1653 `currentEpoch.tmp` fallback).
//!
//! Every I/O error is returned and poisons the storage: every later call fails too, so an
//! fsync error is never retried into a false success.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::storage::{Recovered, ReplicaStorage, StorageError};
use crate::storage::adler32::{adler32, Adler32};
use crate::storage::txn_log::{cut_torn_tail, encode_entry, log_header, scan_log_file, HEADER_LEN};
use crate::storage::{
    file_name, list_files, snapshot, sync_dir, DataDirs, EpochError, EpochFile, EpochStore, Epochs,
};
use crate::zab::{Entry, History, PersistentState, Zxid};

/// Magic of a replica snapshot file.
const SNAPSHOT_MAGIC: &[u8; 4] = b"ZKRS";
/// Version of the replica snapshot format.
const SNAPSHOT_VERSION: u32 = 1;
/// magic · version · zxid · generation · length.
const SNAPSHOT_HEADER_LEN: usize = 4 + 4 + 8 + 8 + 8;
/// The trailing checksum.
const SNAPSHOT_TRAILER_LEN: usize = 8;

/// Tunables of a [`DiskStorage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskOptions {
    /// A log file that has grown to at least this many bytes is closed (fsynced) and the
    /// next append starts a new one.
    pub roll_size: u64,
    /// Log files are extended (with zeros) in chunks of this many bytes, as Apache's
    /// `zookeeper.preAllocSize`, so that an fdatasync rarely has a file size to update.
    pub preallocate: u64,
}

impl Default for DiskOptions {
    /// 64 MiB files, preallocated 64 MiB at a time (Apache's default chunk).
    fn default() -> DiskOptions {
        DiskOptions {
            roll_size: 64 << 20,
            preallocate: 64 << 20,
        }
    }
}

/// One log file of the current generation.
#[derive(Debug)]
struct Segment {
    /// The zxid of its first entry (and of its name).
    first: Zxid,
    path: PathBuf,
    /// Each entry's zxid and the file offset just past it (buffered entries included).
    ends: Vec<(Zxid, u64)>,
}

/// The last segment, open for appending.
#[derive(Debug)]
struct OpenSegment {
    file: File,
    /// Bytes written to the file (and fsynced).
    written: u64,
    /// The file's length (data plus preallocated zeros).
    allocated: u64,
}

/// A replica's storage in a data directory (see the [module docs](self) for the layout and
/// the crash-consistency rules). Call [`recover`](ReplicaStorage::recover) first (the driver
/// does); every other operation fails until it has succeeded.
#[derive(Debug)]
pub struct DiskStorage {
    dirs: DataDirs,
    options: DiskOptions,
    epochs: EpochStore,
    /// The epochs last read or written, to skip rewriting an unchanged one.
    saved_epochs: Option<(u32, u32)>,
    /// The generation of the snapshot in use (0: none).
    generation: i64,
    /// The zxid the snapshot covers.
    base: Zxid,
    /// Log files of the current generation, ascending; appends go to the last one.
    segments: Vec<Segment>,
    /// The last segment's file, when appends go to it.
    open: Option<OpenSegment>,
    /// Encoded entries not yet written (they belong to `open`, after `written`).
    buffer: Vec<u8>,
    /// The last appended zxid (the base when the log is empty).
    last: Zxid,
    /// The last durable zxid.
    durable: Zxid,
    recovered: bool,
    /// An operation failed: the storage refuses everything from now on.
    failed: bool,
}

fn io_err(context: impl std::fmt::Display, e: std::io::Error) -> StorageError {
    StorageError::Io(std::io::Error::new(e.kind(), format!("{context}: {e}")))
}

fn corrupt(file: &Path, offset: u64, reason: impl Into<String>) -> StorageError {
    StorageError::Corrupt {
        file: file.display().to_string(),
        offset,
        reason: reason.into(),
    }
}

/// Writes a replica snapshot file for `zxid` durably, streaming `state` (which can be
/// hundreds of megabytes) instead of copying it next to its header.
fn write_snapshot(
    snap_dir: &Path,
    zxid: Zxid,
    generation: i64,
    state: &[u8],
) -> std::io::Result<PathBuf> {
    let mut header = Vec::with_capacity(SNAPSHOT_HEADER_LEN);
    header.extend_from_slice(SNAPSHOT_MAGIC);
    header.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
    header.extend_from_slice(&zxid.to_be_bytes());
    header.extend_from_slice(&generation.to_be_bytes());
    header.extend_from_slice(&(state.len() as u64).to_be_bytes());
    let mut sum = Adler32::default();
    sum.update(&header);
    sum.update(state);
    snapshot::write_with(snap_dir, zxid, |file| {
        file.write_all(&header)?;
        file.write_all(state)?;
        file.write_all(&i64::from(sum.value()).to_be_bytes())
    })
}

fn be_i64(bytes: &[u8], at: usize) -> Option<i64> {
    let b: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
    Some(i64::from_be_bytes(b))
}

/// Parses a snapshot file named for `zxid`: its generation and state.
fn parse_snapshot(bytes: Bytes, zxid: Zxid) -> Result<(i64, Bytes), String> {
    let header = bytes
        .get(..SNAPSHOT_HEADER_LEN)
        .ok_or("shorter than its header")?;
    if header.get(..4) == Some(&b"ZKSN"[..]) {
        return Err(
            "a standalone (Apache format) snapshot: an ensemble member keeps its data \
                    in its own format and cannot start from a standalone data directory; \
                    start it with an empty dataDir, and it syncs from the other members"
                .into(),
        );
    }
    if header.get(..4) != Some(&SNAPSHOT_MAGIC[..]) {
        return Err("not a replica snapshot (bad magic)".into());
    }
    let version = header
        .get(4..8)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes);
    if version != Some(SNAPSHOT_VERSION) {
        return Err(format!("unknown version {version:?}"));
    }
    let (Some(file_zxid), Some(generation), Some(len)) =
        (be_i64(header, 8), be_i64(header, 16), be_i64(header, 24))
    else {
        return Err("short header".into());
    };
    if file_zxid != zxid {
        return Err(format!(
            "holds zxid {file_zxid:#x}, not the one in its name"
        ));
    }
    let expected = u64::try_from(len)
        .ok()
        .and_then(|l| usize::try_from(l).ok())
        .and_then(|l| l.checked_add(SNAPSHOT_HEADER_LEN + SNAPSHOT_TRAILER_LEN));
    if expected != Some(bytes.len()) {
        return Err(format!(
            "length field {len} does not match the file's {} bytes",
            bytes.len()
        ));
    }
    let sealed = bytes.len() - SNAPSHOT_TRAILER_LEN;
    let checksum = be_i64(&bytes, sealed).ok_or("short trailer")?;
    if i64::from(adler32(bytes.get(..sealed).unwrap_or_default())) != checksum {
        return Err("checksum mismatch".into());
    }
    // Generation 0 is the log's before any install: only compactions write snapshots of it.
    if generation < 0 {
        return Err(format!("bad generation {generation}"));
    }
    Ok((generation, bytes.slice(SNAPSHOT_HEADER_LEN..sealed)))
}

/// A log file's header: `Some(dbid)`, or `None` when it is missing or all zeros (a crash
/// while the file was being created).
fn read_log_header(path: &Path) -> Result<Option<i64>, StorageError> {
    let mut header = Vec::with_capacity(HEADER_LEN);
    File::open(path)
        .and_then(|f| f.take(HEADER_LEN as u64).read_to_end(&mut header))
        .map_err(|e| io_err(format_args!("reading {}", path.display()), e))?;
    if header.len() < HEADER_LEN || header.iter().all(|&b| b == 0) {
        return Ok(None);
    }
    let expected = log_header(0);
    if header.get(..8) != expected.get(..8) {
        return Err(corrupt(path, 0, "not a txn log (bad magic or version)"));
    }
    Ok(be_i64(&header, 8))
}

fn remove_file(path: &Path) -> Result<(), StorageError> {
    std::fs::remove_file(path).map_err(|e| io_err(format_args!("removing {}", path.display()), e))
}

fn fsync_dir(dir: &Path) -> Result<(), StorageError> {
    sync_dir(dir).map_err(|e| io_err(format_args!("fsync of {}", dir.display()), e))
}

/// Cuts `path` to `len` bytes, durably.
fn cut_file(path: &Path, len: u64) -> Result<(), StorageError> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| {
            f.set_len(len)?;
            f.sync_all()
        })
        .map_err(|e| io_err(format_args!("truncating {}", path.display()), e))
}

impl DiskStorage {
    /// Storage in `<data_dir>/version-2` (snapshots, epochs) and `<data_log_dir>/version-2`
    /// (txn logs), created if missing. Nothing else is read until
    /// [`recover`](ReplicaStorage::recover).
    ///
    /// # Errors
    /// The directories cannot be created.
    pub fn open(
        data_dir: &Path,
        data_log_dir: &Path,
        options: DiskOptions,
    ) -> Result<DiskStorage, StorageError> {
        let dirs = DataDirs::create(data_dir, data_log_dir)
            .map_err(|e| io_err(format_args!("creating {}", data_dir.display()), e))?;
        Ok(DiskStorage::with_dirs(dirs, options))
    }

    /// Storage in existing directories.
    pub fn with_dirs(dirs: DataDirs, options: DiskOptions) -> DiskStorage {
        DiskStorage {
            epochs: EpochStore::new(dirs.snap_dir.clone()),
            dirs,
            options,
            saved_epochs: None,
            generation: 0,
            base: 0,
            segments: Vec::new(),
            open: None,
            buffer: Vec::new(),
            last: 0,
            durable: 0,
            recovered: false,
            failed: false,
        }
    }

    /// The directories in use.
    pub fn dirs(&self) -> &DataDirs {
        &self.dirs
    }

    /// The log files of the current generation, oldest first.
    pub fn log_files(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|s| s.path.clone()).collect()
    }

    /// Runs `op` if the storage is usable; poisons it if `op` fails.
    fn guarded<T>(
        &mut self,
        op: impl FnOnce(&mut DiskStorage) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        if self.failed {
            return Err(StorageError::Other(
                "the storage failed earlier; restart the replica".into(),
            ));
        }
        if !self.recovered {
            return Err(StorageError::Other("recover() must succeed first".into()));
        }
        let result = op(self);
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn do_recover(&mut self) -> Result<Recovered, StorageError> {
        let snap_dir = self.dirs.snap_dir.clone();
        let log_dir = self.dirs.log_dir.clone();

        snapshot::remove_unfinished(&snap_dir).map_err(|e| {
            io_err(
                format_args!("removing unfinished snapshots in {}", snap_dir.display()),
                e,
            )
        })?;
        // The newest snapshot of the highest generation; every snapshot file must be intact.
        let mut chosen: Option<(i64, Zxid, PathBuf, Bytes)> = None;
        let snapshots = snapshot::list(&snap_dir)?;
        for (zxid, path) in &snapshots {
            let bytes = std::fs::read(path)
                .map_err(|e| io_err(format_args!("reading {}", path.display()), e))?;
            let (generation, state) =
                parse_snapshot(Bytes::from(bytes), *zxid).map_err(|r| corrupt(path, 0, r))?;
            if chosen
                .as_ref()
                .is_none_or(|c| (generation, *zxid) > (c.0, c.1))
            {
                chosen = Some((generation, *zxid, path.clone(), state));
            }
        }
        let (generation, base, snapshot) = match chosen {
            Some((generation, zxid, path, state)) => {
                // Older snapshots were left by a crash in the middle of an install or a
                // compaction.
                let mut removed = false;
                for (_, other) in &snapshots {
                    if *other != path {
                        tracing::info!(file = %other.display(), "removing a superseded snapshot");
                        remove_file(other)?;
                        removed = true;
                    }
                }
                if removed {
                    fsync_dir(&snap_dir)?;
                }
                (generation, zxid, Some(state))
            }
            None => (0, 0, None),
        };

        // The log files of that generation.
        let logs = list_files(&log_dir, "log")?;
        let mut current = Vec::new();
        let mut removed = false;
        for (i, (first, path)) in logs.iter().enumerate() {
            match read_log_header(path)? {
                Some(g) if g == generation => current.push((*first, path.clone())),
                Some(g) if g < generation => {
                    tracing::info!(file = %path.display(), "removing a log superseded by a snapshot");
                    remove_file(path)?;
                    removed = true;
                }
                Some(g) => {
                    return Err(corrupt(
                        path,
                        8,
                        format!(
                            "log of generation {g}, but the newest snapshot is of {generation}"
                        ),
                    ))
                }
                None if i + 1 == logs.len() => {
                    tracing::warn!(file = %path.display(), "removing a log file torn at creation");
                    remove_file(path)?;
                    removed = true;
                }
                None => return Err(corrupt(path, 0, "file shorter than its header")),
            }
        }
        if removed {
            fsync_dir(&log_dir)?;
        }

        let mut entries = Vec::new();
        let mut segments: Vec<Segment> = Vec::new();
        for (i, (first, path)) in current.iter().enumerate() {
            // A file the snapshot covers entirely (the next one starts at or before the
            // entry after the snapshot): left by a crash in the middle of a compaction.
            let covered = current
                .get(i + 1)
                .is_some_and(|(next, _)| *next <= base.saturating_add(1));
            if covered {
                tracing::info!(file = %path.display(), "removing a log covered by the snapshot");
                remove_file(path)?;
                fsync_dir(&log_dir)?;
                continue;
            }
            let is_last = i + 1 == current.len();
            let mut ends = Vec::new();
            let scan = scan_log_file(
                path,
                is_last,
                |body| {
                    let zxid = be_i64(body, 0)?;
                    Some(Entry {
                        zxid,
                        txn: Bytes::copy_from_slice(body.get(8..)?),
                    })
                },
                |entry: Entry, end| {
                    ends.push((entry.zxid, end));
                    // Entries up to the snapshot's zxid are in it (a compaction keeps the
                    // file that straddles it).
                    if entry.zxid > base {
                        entries.push(entry);
                    }
                },
            )?;
            match ends.first() {
                None if is_last => {
                    tracing::warn!(file = %path.display(), "removing a log file with no complete entry");
                    // Its torn bytes are kept first, as any cut tail's.
                    cut_torn_tail(path, scan.valid_len)?;
                    remove_file(path)?;
                    fsync_dir(&log_dir)?;
                    continue;
                }
                None => return Err(corrupt(path, HEADER_LEN as u64, "log file with no entry")),
                Some((zxid, _)) if zxid != first => {
                    return Err(corrupt(
                        path,
                        HEADER_LEN as u64,
                        format!("first entry is {zxid:#x}, not the zxid in the file's name"),
                    ))
                }
                Some(_) => {}
            }
            if scan.torn {
                cut_torn_tail(path, scan.valid_len)?;
            }
            segments.push(Segment {
                first: *first,
                path: path.clone(),
                ends,
            });
        }
        let history = History::from_entries(base, entries)?;
        let last = history.last_zxid();

        let epochs = match self.epochs.load(last) {
            // A learner logs the synced txns (from later epochs) before its new currentEpoch
            // is written (ZOOKEEPER-3911's order); a crash in between leaves currentEpoch
            // behind the log. Apache refuses to start then. Starting is safe: the vote
            // (currentEpoch, last zxid) only under-states this node, which a quorum holding
            // the later epoch outranks, and the next sync brings both up to date.
            Err(EpochError::CurrentBehindLog { current, last_zxid }) => {
                tracing::warn!(
                    current,
                    last_zxid,
                    "currentEpoch is behind the log (a crash during a sync); starting with it"
                );
                let accepted = self.epochs.read(EpochFile::Accepted)?.unwrap_or(current);
                Epochs {
                    accepted: accepted.max(current),
                    current,
                }
            }
            other => other?,
        };
        let to_u32 = |which: EpochFile, v: i64| {
            u32::try_from(v).map_err(|_| {
                corrupt(
                    &self.epochs.path(which),
                    0,
                    format!("epoch {v} is out of range"),
                )
            })
        };
        let accepted = to_u32(EpochFile::Accepted, epochs.accepted)?;
        let current_epoch = to_u32(EpochFile::Current, epochs.current)?;

        self.saved_epochs = Some((accepted, current_epoch));
        self.generation = generation;
        self.base = base;
        self.segments = segments;
        self.open = None;
        self.buffer.clear();
        self.last = last;
        self.durable = last;
        Ok(Recovered {
            state: PersistentState {
                accepted_epoch: accepted,
                current_epoch,
                history,
            },
            snapshot,
        })
    }

    /// Starts a new log file for an entry with zxid `first`.
    fn start_segment(&mut self, first: Zxid) -> Result<(), StorageError> {
        self.close_segment()?;
        let path = self.dirs.log_dir.join(file_name("log", first));
        // A file of this name can only be one torn at creation that recovery did not see.
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .and_then(|f| {
                f.write_all_at(&log_header(self.generation), 0)?;
                f.sync_all()?;
                Ok(f)
            })
            .map_err(|e| io_err(format_args!("creating {}", path.display()), e))?;
        fsync_dir(&self.dirs.log_dir)?;
        self.segments.push(Segment {
            first,
            path,
            ends: Vec::new(),
        });
        self.open = Some(OpenSegment {
            file,
            written: HEADER_LEN as u64,
            allocated: HEADER_LEN as u64,
        });
        Ok(())
    }

    /// Makes the buffered entries durable and stops appending to the current file.
    fn close_segment(&mut self) -> Result<(), StorageError> {
        self.flush()?;
        self.open = None;
        Ok(())
    }

    /// Writes the buffer into the open file and fdatasyncs it.
    fn flush(&mut self) -> Result<(), StorageError> {
        if self.buffer.is_empty() {
            self.durable = self.last;
            return Ok(());
        }
        let (Some(open), Some(segment)) = (self.open.as_mut(), self.segments.last()) else {
            return Err(StorageError::Other(
                "buffered entries without a log file".into(),
            ));
        };
        let needed = open.written + self.buffer.len() as u64;
        let result = (|| {
            if needed > open.allocated {
                let chunk = self.options.preallocate.max(1);
                let target = needed.div_ceil(chunk) * chunk;
                open.file.set_len(target)?;
                open.allocated = target;
            }
            open.file.write_all_at(&self.buffer, open.written)?;
            open.file.sync_data()
        })();
        result.map_err(|e| io_err(format_args!("writing {}", segment.path.display()), e))?;
        open.written = needed;
        self.buffer.clear();
        self.durable = self.last;
        Ok(())
    }

    fn do_append(&mut self, entry: &Entry) -> Result<(), StorageError> {
        if entry.zxid <= self.last {
            return Err(StorageError::Other(format!(
                "append of {:#x} after {:#x}",
                entry.zxid, self.last
            )));
        }
        let full = self
            .open
            .as_ref()
            .is_none_or(|o| o.written + self.buffer.len() as u64 >= self.options.roll_size);
        if full {
            self.start_segment(entry.zxid)?;
        }
        let mut body = Vec::with_capacity(8 + entry.txn.len());
        body.extend_from_slice(&entry.zxid.to_be_bytes());
        body.extend_from_slice(&entry.txn);
        encode_entry(&mut self.buffer, &body);
        let (Some(open), Some(segment)) = (self.open.as_ref(), self.segments.last_mut()) else {
            return Err(StorageError::Other("no log file to append to".into()));
        };
        segment
            .ends
            .push((entry.zxid, open.written + self.buffer.len() as u64));
        self.last = entry.zxid;
        Ok(())
    }

    fn do_truncate(&mut self, after: Zxid) -> Result<(), StorageError> {
        if after < self.base {
            return Err(StorageError::Other(format!(
                "truncation after {after:#x} is below the snapshot's zxid {:#x}",
                self.base
            )));
        }
        if after >= self.last {
            return Ok(());
        }
        // Whole files after `after`, newest first, each removal durable before the next so
        // that a crash leaves a prefix of the log.
        while let Some(segment) = self.segments.last() {
            let keep = segment.ends.partition_point(|(z, _)| *z <= after);
            if segment.first <= after && keep > 0 {
                break;
            }
            let path = segment.path.clone();
            if self.open.is_some() {
                // Only the last segment is ever open.
                self.open = None;
                self.buffer.clear();
            }
            remove_file(&path)?;
            fsync_dir(&self.dirs.log_dir)?;
            self.segments.pop();
        }
        // The file holding `after`.
        if let Some(segment) = self.segments.last_mut() {
            let keep = segment.ends.partition_point(|(z, _)| *z <= after);
            segment.ends.truncate(keep);
            let new_end = segment.ends.last().map_or(HEADER_LEN as u64, |(_, e)| *e);
            match self.open.as_mut() {
                Some(open) if new_end >= open.written => {
                    // Only buffered entries go.
                    let keep_bytes = usize::try_from(new_end - open.written).unwrap_or(0);
                    self.buffer.truncate(keep_bytes);
                }
                _ => {
                    self.open = None;
                    self.buffer.clear();
                    cut_file(&segment.path, new_end)?;
                }
            }
        }
        self.last = self
            .segments
            .last()
            .and_then(|s| s.ends.last())
            .map_or(self.base, |(z, _)| *z);
        self.durable = self.durable.min(self.last);
        Ok(())
    }

    fn do_install_snapshot(&mut self, zxid: Zxid, state: &Bytes) -> Result<(), StorageError> {
        self.open = None;
        self.buffer.clear();
        let generation = self.generation + 1;
        let snap_dir = self.dirs.snap_dir.clone();
        let path = write_snapshot(&snap_dir, zxid, generation, state).map_err(|e| {
            io_err(
                format_args!("writing a snapshot in {}", snap_dir.display()),
                e,
            )
        })?;
        // Committed: from here on recovery ignores the older generation's files.
        self.generation = generation;
        self.base = zxid;
        self.last = zxid;
        self.durable = zxid;
        self.segments.clear();
        let log_dir = self.dirs.log_dir.clone();
        for (_, log) in list_files(&log_dir, "log")? {
            remove_file(&log)?;
        }
        fsync_dir(&log_dir)?;
        for (_, old) in snapshot::list(&snap_dir)? {
            if old != path {
                remove_file(&old)?;
            }
        }
        fsync_dir(&snap_dir)
    }

    fn do_compact(&mut self, zxid: Zxid, state: &Bytes) -> Result<(), StorageError> {
        if zxid <= self.base {
            return Ok(());
        }
        if zxid > self.last {
            return Err(StorageError::Other(format!(
                "a snapshot at {zxid:#x} is beyond the log's last entry {:#x}",
                self.last
            )));
        }
        // The log up to `zxid` is durable before the snapshot replaces it.
        self.flush()?;
        let snap_dir = self.dirs.snap_dir.clone();
        let path = write_snapshot(&snap_dir, zxid, self.generation, state).map_err(|e| {
            io_err(
                format_args!("writing a snapshot in {}", snap_dir.display()),
                e,
            )
        })?;
        // Committed: recovery now starts from this snapshot.
        self.base = zxid;
        for (_, old) in snapshot::list(&snap_dir)? {
            if old != path {
                remove_file(&old)?;
            }
        }
        fsync_dir(&snap_dir)?;
        // Files whose every entry the snapshot holds: all but the one holding the entry
        // after `zxid` (and never the file being written).
        let keep_from = self
            .segments
            .iter()
            .rposition(|s| s.first <= zxid.saturating_add(1))
            .unwrap_or(0)
            .min(self.segments.len().saturating_sub(1));
        let log_dir = self.dirs.log_dir.clone();
        let mut removed = false;
        for segment in self.segments.drain(..keep_from) {
            remove_file(&segment.path)?;
            removed = true;
        }
        if removed {
            fsync_dir(&log_dir)?;
        }
        Ok(())
    }

    fn do_persist_epochs(&mut self, accepted: u32, current: u32) -> Result<(), StorageError> {
        let saved = self.saved_epochs;
        // Accepted first: a crash in between leaves accepted ≥ current (both only grow).
        if saved.map(|(a, _)| a) != Some(accepted) {
            self.epochs
                .write(EpochFile::Accepted, i64::from(accepted))?;
        }
        if saved.map(|(_, c)| c) != Some(current) {
            self.epochs.write(EpochFile::Current, i64::from(current))?;
        }
        self.saved_epochs = Some((accepted, current));
        Ok(())
    }
}

impl ReplicaStorage for DiskStorage {
    fn recover(&mut self) -> Result<Recovered, StorageError> {
        if self.failed {
            return Err(StorageError::Other(
                "the storage failed earlier; restart the replica".into(),
            ));
        }
        self.recovered = false;
        let result = self.do_recover();
        match &result {
            Ok(_) => self.recovered = true,
            Err(_) => self.failed = true,
        }
        result
    }

    fn append(&mut self, entry: &Entry) -> Result<(), StorageError> {
        self.guarded(|s| s.do_append(entry))
    }

    fn sync(&mut self) -> Result<Zxid, StorageError> {
        self.guarded(|s| {
            s.flush()?;
            Ok(s.durable)
        })
    }

    fn truncate(&mut self, after: Zxid) -> Result<(), StorageError> {
        self.guarded(|s| s.do_truncate(after))
    }

    fn install_snapshot(&mut self, zxid: Zxid, state: &Bytes) -> Result<(), StorageError> {
        self.guarded(|s| s.do_install_snapshot(zxid, state))
    }

    fn persist_epochs(&mut self, accepted: u32, current: u32) -> Result<(), StorageError> {
        self.guarded(|s| s.do_persist_epochs(accepted, current))
    }

    fn compact(&mut self, zxid: Zxid, state: &Bytes) -> Result<(), StorageError> {
        self.guarded(|s| s.do_compact(zxid, state))
    }
}
