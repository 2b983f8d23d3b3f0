//! The storage thread: appends txns, fsyncs them in batches (group commit), writes snapshots
//! and purges old files. Any I/O error is fatal: it is reported once and the thread stops, so
//! nothing after the failure is ever acknowledged.

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

use bytes::Bytes;

use super::txn_log::TxnLogWriter;
use super::{list_files, snapshot, DataDirs};
use crate::tree::TreeImage;

/// Work for the storage thread, executed in order.
#[derive(Debug)]
pub enum StorageOp {
    /// Append a txn (made durable with the rest of its batch).
    Append {
        /// Its zxid.
        zxid: i64,
        /// Its encoding.
        txn: Bytes,
    },
    /// Write a snapshot as of `zxid`, then start a new log file (and purge old files when
    /// autopurge is on).
    Snapshot {
        /// The last zxid in the snapshot.
        zxid: i64,
        /// The tree as of `zxid`.
        image: TreeImage,
        /// Live sessions as (id, timeout).
        sessions: Vec<(i64, i32)>,
    },
    /// Delete all but the newest snapshots and the logs only they need.
    Purge,
}

/// What the storage thread reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageEvent {
    /// Every txn up to this zxid is fsynced.
    Persisted(i64),
    /// A write or fsync failed; the server must stop.
    Fatal(String),
}

/// The sending side of the storage thread.
#[derive(Debug)]
pub struct StorageHandle {
    ops: mpsc::Sender<StorageOp>,
    thread: Option<JoinHandle<()>>,
}

impl StorageHandle {
    /// Queues work; false once the thread has stopped.
    pub fn submit(&self, op: StorageOp) -> bool {
        self.ops.send(op).is_ok()
    }

    /// Stops the thread after it has finished the queued work.
    pub fn shutdown(mut self) {
        let (dead, _) = mpsc::channel();
        self.ops = dead;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Most txns written before one fsync.
const MAX_BATCH: usize = 4096;

/// Starts the storage thread. `report` is called from that thread.
///
/// `purge_retain`: when `Some(n)` (autopurge on), old snapshots and logs are purged after each
/// snapshot and on [`StorageOp::Purge`], keeping the newest `n` snapshots.
pub fn spawn_storage_thread(
    dirs: DataDirs,
    purge_retain: Option<usize>,
    report: impl Fn(StorageEvent) + Send + 'static,
) -> std::io::Result<StorageHandle> {
    let (tx, rx) = mpsc::channel::<StorageOp>();
    let thread = std::thread::Builder::new()
        .name("zk-storage".into())
        .spawn(move || {
            if let Err(message) = run(&dirs, purge_retain, &rx, &report) {
                tracing::error!(%message, "storage failed; the server must stop");
                report(StorageEvent::Fatal(message));
            }
        })?;
    Ok(StorageHandle {
        ops: tx,
        thread: Some(thread),
    })
}

fn run(
    dirs: &DataDirs,
    retain: Option<usize>,
    rx: &mpsc::Receiver<StorageOp>,
    report: &impl Fn(StorageEvent),
) -> Result<(), String> {
    let mut log = TxnLogWriter::new(dirs.log_dir.clone());
    // Snapshots are serialized and written on their own thread, one at a time, so appends
    // and fsyncs of the log go on meanwhile.
    let mut snapshot_writer: Option<JoinHandle<()>> = None;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let mut durable = None;
        for op in batch {
            match op {
                StorageOp::Append { zxid, txn } => {
                    log.append(zxid, &txn)
                        .map_err(|e| format!("appending txn 0x{zxid:x}: {e}"))?;
                    durable = Some(zxid);
                }
                StorageOp::Snapshot {
                    zxid,
                    image,
                    sessions,
                } => {
                    log.roll()
                        .map_err(|e| format!("syncing the log before a snapshot: {e}"))?;
                    if let Some(z) = durable.take() {
                        report(StorageEvent::Persisted(z));
                    }
                    if snapshot_writer.as_ref().is_some_and(|w| !w.is_finished()) {
                        // Waiting here would hold up every fsync, so every acknowledgement,
                        // until the previous snapshot is written (seconds with a million
                        // nodes). The log holds every txn; the next snapshot is in
                        // snapCount txns. Apache ZooKeeper skips the same way.
                        tracing::warn!(
                            zxid = format_args!("0x{zxid:x}"),
                            "too busy to snapshot: the previous snapshot is still being written; skipping this one"
                        );
                        continue;
                    }
                    if let Some(previous) = snapshot_writer.take() {
                        let _ = previous.join();
                    }
                    let dirs = dirs.clone();
                    snapshot_writer = Some(
                        std::thread::Builder::new()
                            .name("zk-snapshot".into())
                            .spawn(move || write_snapshot(&dirs, zxid, &image, &sessions, retain))
                            .map_err(|e| format!("starting the snapshot thread: {e}"))?,
                    );
                }
                StorageOp::Purge => purge_if_enabled(dirs, retain),
            }
        }
        if let Some(zxid) = durable {
            log.sync()
                .map_err(|e| format!("fsync of the txn log: {e}"))?;
            report(StorageEvent::Persisted(zxid));
        }
    }
    if let Some(writer) = snapshot_writer.take() {
        let _ = writer.join();
    }
    log.sync().map_err(|e| format!("fsync of the txn log: {e}"))
}

/// Serializes and writes one snapshot. A failure is logged, not fatal: the txn log still holds
/// everything, and the previous snapshot stays valid.
fn write_snapshot(
    dirs: &DataDirs,
    zxid: i64,
    image: &TreeImage,
    sessions: &[(i64, i32)],
    retain: Option<usize>,
) {
    #[cfg(test)]
    let _gate = tests::SNAPSHOT_GATE.lock();
    let started = std::time::Instant::now();
    match snapshot::write_with(&dirs.snap_dir, zxid, |file| {
        snapshot::serialize_into(image, sessions, file)
    }) {
        Ok(path) => {
            tracing::info!(
                file = %path.display(),
                nodes = image.len(),
                millis = started.elapsed().as_millis(),
                "snapshot written"
            );
            purge_if_enabled(dirs, retain);
        }
        Err(e) => tracing::error!(
            zxid = format_args!("0x{zxid:x}"),
            error = %e,
            "writing a snapshot failed"
        ),
    }
}

fn purge_if_enabled(dirs: &DataDirs, retain: Option<usize>) {
    if let Some(retain) = retain {
        if let Err(e) = purge(dirs, retain) {
            tracing::warn!(error = %e, "purging old snapshots and logs failed");
        }
    }
}

/// Deletes all but the newest `retain` snapshots, and the logs only they needed.
pub fn purge(dirs: &DataDirs, retain: usize) -> Result<(), String> {
    let snapshots = list_files(&dirs.snap_dir, "snapshot").map_err(|e| e.to_string())?;
    if retain == 0 || snapshots.len() <= retain {
        return Ok(());
    }
    let cut = snapshots.len() - retain;
    let Some((oldest_kept, _)) = snapshots.get(cut) else {
        return Ok(());
    };
    for (_, path) in snapshots.iter().take(cut) {
        remove(path)?;
    }
    let logs = list_files(&dirs.log_dir, "log").map_err(|e| e.to_string())?;
    // Keep the log that holds oldest_kept + 1 and everything after it.
    if let Some(keep_from) = logs
        .iter()
        .rposition(|(start, _)| *start <= oldest_kept + 1)
    {
        for (_, path) in logs.iter().take(keep_from) {
            remove(path)?;
        }
    }
    Ok(())
}

/// Removes a file; one already gone (a purge from the other thread got there first) is fine.
fn remove(path: &Path) -> Result<(), String> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("removing {}: {e}", path.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::tree::DataTree;

    fn names(dir: &Path, prefix: &str) -> Vec<i64> {
        list_files(dir, prefix)
            .expect("list")
            .into_iter()
            .map(|(zxid, _)| zxid)
            .collect()
    }

    /// The newest `retain` snapshots stay, with every log recovery from the oldest of them
    /// needs: the one holding the txn after it, and all later ones.
    #[test]
    fn purge_keeps_the_newest_snapshots_and_the_logs_they_need() {
        let dir = tempfile::tempdir().expect("temp dir");
        let dirs = DataDirs::create(dir.path(), dir.path()).expect("dirs");
        for zxid in [0x0, 0x10, 0x20, 0x30, 0x40] {
            std::fs::write(dirs.snap_dir.join(format!("snapshot.{zxid:x}")), b"s").expect("snap");
        }
        for zxid in [0x1, 0x8, 0x19, 0x25, 0x41] {
            std::fs::write(dirs.log_dir.join(format!("log.{zxid:x}")), b"l").expect("log");
        }
        purge(&dirs, 3).expect("purge");
        assert_eq!(names(&dirs.snap_dir, "snapshot"), [0x20, 0x30, 0x40]);
        // Txn 0x21 is in log.19 (the last starting at or before it).
        assert_eq!(names(&dirs.log_dir, "log"), [0x19, 0x25, 0x41]);
        // Again, and from a second pass racing the first: nothing more goes, nothing fails.
        purge(&dirs, 3).expect("purge again");
        std::fs::remove_file(dirs.log_dir.join("log.19")).expect("gone meanwhile");
        remove(&dirs.log_dir.join("log.19")).expect("already gone is fine");
    }

    /// Held by a test to keep the snapshot thread from writing.
    pub(super) static SNAPSHOT_GATE: Mutex<()> = Mutex::new(());

    #[test]
    fn appends_are_fsynced_while_a_snapshot_is_still_being_written() {
        let dir = tempfile::tempdir().expect("temp dir");
        let dirs = DataDirs::create(dir.path(), dir.path()).expect("dirs");
        let (events_tx, events) = mpsc::channel();
        let storage = spawn_storage_thread(dirs.clone(), None, move |e| {
            let _ = events_tx.send(e);
        })
        .expect("storage thread");
        let image = DataTree::new().image();
        let gate = SNAPSHOT_GATE.lock().expect("gate");
        for (zxid, snapshot) in [(1, false), (2, true), (3, false), (4, true), (5, false)] {
            let op = if snapshot {
                StorageOp::Snapshot {
                    zxid,
                    image: image.clone(),
                    sessions: Vec::new(),
                }
            } else {
                StorageOp::Append {
                    zxid,
                    txn: Bytes::from_static(b"txn"),
                }
            };
            assert!(storage.submit(op));
        }
        // The first snapshot cannot be written while the gate is held: the txns after it
        // are made durable all the same, and the second snapshot is skipped.
        loop {
            match events.recv_timeout(Duration::from_secs(10)) {
                Ok(StorageEvent::Persisted(5)) => break,
                Ok(StorageEvent::Persisted(_)) => {}
                other => panic!("expected txn 5 to be persisted, got {other:?}"),
            }
        }
        drop(gate);
        storage.shutdown();
        let snapshots: Vec<i64> = list_files(&dirs.snap_dir, "snapshot")
            .expect("list")
            .into_iter()
            .map(|(zxid, _)| zxid)
            .collect();
        assert_eq!(snapshots, vec![2]);
    }
}
