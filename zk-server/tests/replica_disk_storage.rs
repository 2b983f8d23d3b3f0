//! [`DiskStorage`]: the replica's log, snapshot and epochs on a real file system — round
//! trips, crashes (dropping the storage without a sync), a torn tail at every byte of the last
//! record, corruption in the middle, truncation across files, snapshot installs (also one
//! interrupted by a crash), compaction (also interrupted by a crash), epochs with the
//! ZOOKEEPER-1653 fallback.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use zk_server::quorum::{DiskOptions, DiskStorage, Recovered, ReplicaStorage, StorageError};
use zk_server::zab::{make_zxid, Entry, Zxid};

fn e(epoch: u32, counter: u32) -> Entry {
    Entry {
        zxid: make_zxid(epoch, counter),
        txn: Bytes::from(format!(
            "txn {epoch}/{counter} {}",
            "x".repeat(counter as usize % 7)
        )),
    }
}

/// No preallocation, so that a file's length is its data's.
fn exact() -> DiskOptions {
    DiskOptions {
        roll_size: 64 << 20,
        preallocate: 1,
    }
}

/// Files of about three entries each.
fn small_files() -> DiskOptions {
    DiskOptions {
        roll_size: 100,
        preallocate: 4096,
    }
}

fn open(dir: &Path, options: DiskOptions) -> DiskStorage {
    DiskStorage::open(dir, dir, options).expect("open")
}

fn recover(dir: &Path, options: DiskOptions) -> (DiskStorage, Recovered) {
    let mut s = open(dir, options);
    let r = s.recover().expect("recover");
    (s, r)
}

/// A fresh storage whose epochs (9, 9) cover every zxid the tests log (Apache's load rules
/// refuse a log newer than `currentEpoch`).
fn start(dir: &Path, options: DiskOptions) -> (DiskStorage, Recovered) {
    let (mut s, r) = recover(dir, options);
    s.persist_epochs(9, 9).expect("epochs");
    (s, r)
}

fn try_recover(dir: &Path, options: DiskOptions) -> Result<Recovered, StorageError> {
    open(dir, options).recover()
}

fn append_all(s: &mut DiskStorage, entries: &[Entry]) {
    for entry in entries {
        s.append(entry).expect("append");
    }
}

fn logs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir.join("version-2"))
        .expect("list")
        .map(|d| d.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("log."))
        })
        .collect();
    out.sort_by_key(|p| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        u64::from_str_radix(name.trim_start_matches("log."), 16).expect("hex")
    });
    out
}

fn run(epoch: u32, counters: std::ops::RangeInclusive<u32>) -> Vec<Entry> {
    counters.map(|c| e(epoch, c)).collect()
}

#[test]
fn append_sync_recover_round_trip() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut expected = run(1, 1..=5);
    expected.extend(run(2, 1..=5));
    {
        let (mut s, r) = recover(dir.path(), DiskOptions::default());
        assert_eq!(r, Recovered::default(), "a fresh directory");
        s.persist_epochs(2, 2).expect("epochs");
        append_all(&mut s, &expected[..7]);
        assert_eq!(s.sync().expect("sync"), make_zxid(2, 2));
        append_all(&mut s, &expected[7..]);
        assert_eq!(s.sync().expect("sync"), make_zxid(2, 5));
        assert_eq!(s.sync().expect("an idle sync"), make_zxid(2, 5));
    }
    let (mut s, r) = recover(dir.path(), DiskOptions::default());
    assert_eq!(r.state.history.base(), 0);
    assert_eq!(r.state.history.entries(), &expected[..]);
    assert_eq!((r.state.accepted_epoch, r.state.current_epoch), (2, 2));
    assert_eq!(r.snapshot, None);
    // Appends after a restart follow (in a new file) and survive the next restart.
    assert_eq!(s.sync().expect("sync"), make_zxid(2, 5));
    append_all(&mut s, &run(2, 6..=8));
    assert_eq!(s.sync().expect("sync"), make_zxid(2, 8));
    drop(s);
    assert_eq!(logs(dir.path()).len(), 2);
    let (_, r) = recover(dir.path(), DiskOptions::default());
    expected.extend(run(2, 6..=8));
    assert_eq!(r.state.history.entries(), &expected[..]);
}

#[test]
fn logs_roll_into_files_named_by_their_first_zxid() {
    let dir = tempfile::tempdir().expect("tmp");
    let entries = run(1, 1..=20);
    let (mut s, _) = start(dir.path(), small_files());
    for chunk in entries.chunks(4) {
        append_all(&mut s, chunk);
        s.sync().expect("sync");
    }
    drop(s);
    let files = logs(dir.path());
    assert!(files.len() >= 5, "{files:?}");
    let (s, r) = recover(dir.path(), small_files());
    assert_eq!(r.state.history.entries(), &entries[..]);
    assert_eq!(s.log_files(), files);
    // Each file is named by its first entry's zxid, as Apache names them.
    let mut firsts = Vec::new();
    for f in &files {
        let name = f.file_name().and_then(|n| n.to_str()).expect("name");
        firsts.push(i64::from_str_radix(name.trim_start_matches("log."), 16).expect("hex"));
    }
    assert_eq!(firsts[0], make_zxid(1, 1));
    assert!(firsts
        .iter()
        .all(|z| entries.iter().any(|entry| entry.zxid == *z)));
}

#[test]
fn a_crash_before_sync_keeps_every_synced_entry() {
    for options in [DiskOptions::default(), small_files()] {
        let dir = tempfile::tempdir().expect("tmp");
        let synced = run(1, 1..=12);
        {
            let (mut s, _) = start(dir.path(), options);
            append_all(&mut s, &synced[..6]);
            s.sync().expect("sync");
            append_all(&mut s, &synced[6..]);
            s.sync().expect("sync");
            // Never synced: lost with the process.
            append_all(&mut s, &run(1, 13..=20));
        }
        let (mut s, r) = recover(dir.path(), options);
        let got = r.state.history.entries();
        assert!(
            got.len() >= synced.len(),
            "{options:?}: lost a synced entry"
        );
        assert_eq!(&got[..synced.len()], &synced[..], "{options:?}");
        assert_eq!(got, &run(1, 1..=got.len() as u32)[..], "a prefix");
        // The log continues after whatever survived.
        let next = got.len() as u32 + 1;
        append_all(&mut s, &run(1, next..=next + 2));
        s.sync().expect("sync");
        drop(s);
        let (_, r) = recover(dir.path(), options);
        assert_eq!(
            r.state.history.entries(),
            &run(1, 1..=next + 2)[..],
            "{options:?}"
        );
    }
}

#[test]
fn a_torn_last_record_at_every_byte_offset_loses_only_that_record() {
    let dir = tempfile::tempdir().expect("tmp");
    let synced = run(3, 1..=5);
    let last = e(3, 6);
    {
        let (mut s, _) = start(dir.path(), exact());
        append_all(&mut s, &synced);
        s.sync().expect("sync");
        s.append(&last).expect("append");
        s.sync().expect("sync");
    }
    let files = logs(dir.path());
    assert_eq!(files.len(), 1);
    let path = &files[0];
    let full = std::fs::read(path).expect("read");
    let record_len = 8 + 4 + 8 + last.txn.len() + 1;
    let start = full.len() - record_len;
    for cut in start..=full.len() {
        // The file ends at `cut`, or (preallocated) continues with zeros.
        for zero_filled in [false, true] {
            let mut bytes = full[..cut].to_vec();
            if zero_filled {
                bytes.resize(full.len() + 4096, 0);
            }
            std::fs::write(path, &bytes).expect("write");
            let r = try_recover(dir.path(), exact())
                .unwrap_or_else(|err| panic!("cut at {cut} (zeros {zero_filled}): {err}"));
            let got = r.state.history.entries();
            if cut == full.len() {
                assert_eq!(got.len(), 6, "cut at {cut}");
                assert_eq!(got[5], last);
            } else {
                assert_eq!(got, &synced[..], "cut at {cut} (zeros {zero_filled})");
                // The torn tail was cut off (only preallocated zeros may follow).
                let now = std::fs::read(path).expect("read");
                assert_eq!(&now[..start], &full[..start], "cut at {cut}");
                assert!(
                    now[start..].iter().all(|&b| b == 0),
                    "cut at {cut} (zeros {zero_filled}): the torn record is gone"
                );
            }
        }
    }
    // After a torn tail, the log goes on from the synced prefix.
    std::fs::write(path, &full[..start + 3]).expect("write");
    let (mut s, _) = recover(dir.path(), exact());
    let other = Entry {
        zxid: last.zxid,
        txn: Bytes::from_static(b"rewritten"),
    };
    s.append(&other).expect("append");
    s.sync().expect("sync");
    drop(s);
    let (_, r) = recover(dir.path(), exact());
    assert_eq!(r.state.history.entries().last(), Some(&other));
}

/// Bytes no log writer would produce (a fixed pseudo-random sequence).
fn garbage(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8 | 1
        })
        .collect()
}

#[test]
fn a_garbage_tail_is_cut_off_but_garbage_before_an_intact_record_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tmp");
    let synced = run(2, 1..=5);
    let last = e(2, 6);
    {
        let (mut s, _) = start(dir.path(), exact());
        append_all(&mut s, &synced);
        s.append(&last).expect("append");
        s.sync().expect("sync");
    }
    let path = logs(dir.path())[0].clone();
    let full = std::fs::read(&path).expect("read");
    let record_len = 8 + 4 + 8 + last.txn.len() + 1;
    let start_of_last = full.len() - record_len;

    // A torn last record followed by garbage (stale blocks, a half-written sector) rather
    // than zeros: the tail is cut off, the records before it kept.
    for cut in [
        start_of_last,
        start_of_last + 5,
        start_of_last + record_len - 1,
    ] {
        let mut bytes = full[..cut].to_vec();
        bytes.extend(garbage(300));
        bytes.resize(bytes.len() + 4096, 0);
        std::fs::write(&path, &bytes).expect("write");
        let r = try_recover(dir.path(), exact())
            .unwrap_or_else(|err| panic!("garbage at {cut}: {err}"));
        assert_eq!(r.state.history.entries(), &synced[..], "garbage at {cut}");
        let now = std::fs::read(&path).expect("read");
        assert!(
            now[start_of_last..].iter().all(|&b| b == 0),
            "garbage at {cut}: the tail is gone"
        );
        // A copy of what was cut is kept beside the log, under a name no listing picks up.
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let kept = path.with_file_name(format!("torn-tail.{name}.{start_of_last}"));
        let kept = std::fs::read(&kept).expect("the cut tail is kept");
        assert!(kept.ends_with(&garbage(300)), "garbage at {cut}");
        assert_eq!(kept.len(), cut - start_of_last + 300, "garbage at {cut}");
    }

    // Garbage with an intact record after it is damage in the middle: refused, never cut.
    let mut bytes = full[..start_of_last].to_vec();
    bytes.extend(garbage(50));
    bytes.extend(&full[start_of_last..]);
    std::fs::write(&path, &bytes).expect("write");
    assert_corrupt(try_recover(dir.path(), exact()), "garbage before a record");
}

/// A crash during an unsynced write can leave a page of it unwritten (zeros) while a later
/// page reached the disk: a zeroed hole before intact entries at the end of the last log. Nothing
/// from the hole on was acknowledged (its fsync never completed): it is cut off like a torn
/// tail, and the server starts with everything before it.
#[test]
fn a_zeroed_page_in_the_unsynced_tail_is_cut_off_like_a_torn_write() {
    let dir = tempfile::tempdir().expect("tmp");
    let entries = run(4, 1..=400);
    {
        let (mut s, _) = start(dir.path(), exact());
        append_all(&mut s, &entries);
        s.sync().expect("sync");
    }
    let path = logs(dir.path())[0].clone();
    let mut bytes = std::fs::read(&path).expect("read");
    let data_end = bytes.iter().rposition(|&b| b != 0).expect("data") + 1;
    // Zero a 4 KiB page in the middle of the entries: intact entries follow it.
    let page = (data_end / 2) / 4096 * 4096;
    assert!(page + 4096 < data_end, "entries after the page");
    bytes[page..page + 4096].fill(0);
    std::fs::write(&path, &bytes).expect("write");

    let r = try_recover(dir.path(), exact()).expect("starts: the hole is a torn write");
    let got = r.state.history.entries();
    assert!(
        !got.is_empty() && got.len() < entries.len(),
        "{} kept",
        got.len()
    );
    assert_eq!(got, &entries[..got.len()], "a prefix");
    // Every entry wholly before the page is kept.
    let mut end = 0;
    let mut whole_before = 0;
    for entry in &entries {
        end += 8 + 4 + 8 + entry.txn.len() + 1;
        if 16 + end <= page {
            whole_before += 1;
        }
    }
    assert_eq!(got.len(), whole_before);

    // Non-zero damage before intact entries is still refused (see the garbage test above).
    let mut bytes = std::fs::read(&path).expect("read");
    let at = 16 + 40;
    bytes[at] ^= 0x5a;
    std::fs::write(&path, &bytes).expect("write");
    assert_corrupt(try_recover(dir.path(), exact()), "a flipped byte mid-log");
}

fn assert_corrupt(result: Result<Recovered, StorageError>, what: &str) {
    match result {
        Err(StorageError::Corrupt { .. }) => {}
        other => panic!("{what}: expected a corruption error, got {other:?}"),
    }
}

#[test]
fn a_bit_flip_in_the_middle_refuses_to_start() {
    let entries = run(1, 1..=10);
    for options in [exact(), small_files()] {
        let dir = tempfile::tempdir().expect("tmp");
        {
            let (mut s, _) = start(dir.path(), options);
            append_all(&mut s, &entries);
            s.sync().expect("sync");
        }
        let path = logs(dir.path())[0].clone();
        let pristine = std::fs::read(&path).expect("read");
        // The first record of the first file: a flip in its checksum, length, zxid, txn
        // bytes or end marker.
        let record_len = 8 + 4 + 8 + entries[0].txn.len() + 1;
        for offset in [
            16,
            16 + 9,
            16 + 12 + 3,
            16 + 12 + 8 + 2,
            16 + record_len - 1,
        ] {
            let mut bytes = pristine.clone();
            bytes[offset] ^= 0x10;
            std::fs::write(&path, &bytes).expect("write");
            assert_corrupt(
                try_recover(dir.path(), options),
                &format!("{options:?}, flip at {offset}"),
            );
        }
        // A damaged header too.
        let mut bytes = pristine.clone();
        bytes[1] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        assert_corrupt(try_recover(dir.path(), options), "bad magic");
        std::fs::write(&path, &pristine).expect("write");
        let (_, r) = recover(dir.path(), options);
        assert_eq!(r.state.history.entries(), &entries[..]);
    }
}

#[test]
fn a_missing_middle_file_is_a_hole() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let (mut s, _) = start(dir.path(), small_files());
        for entry in run(1, 1..=12) {
            s.append(&entry).expect("append");
            s.sync().expect("sync");
        }
    }
    let files = logs(dir.path());
    assert!(files.len() >= 3);
    std::fs::remove_file(&files[1]).expect("rm");
    match try_recover(dir.path(), small_files()) {
        Err(StorageError::NotContiguous(_)) => {}
        other => panic!("expected a hole, got {other:?}"),
    }
}

#[test]
fn truncated_entries_never_come_back() {
    for options in [exact(), small_files()] {
        let dir = tempfile::tempdir().expect("tmp");
        let (mut s, _) = start(dir.path(), options);
        append_all(&mut s, &run(1, 1..=10));
        s.sync().expect("sync");
        let files_before = logs(dir.path()).len();
        // Inside the durable log (and, with small files, across file boundaries).
        s.truncate(make_zxid(1, 4)).expect("truncate");
        if options == small_files() {
            assert!(logs(dir.path()).len() < files_before, "later files removed");
        }
        // Appended but unsynced entries go too.
        append_all(&mut s, &run(2, 1..=2));
        s.truncate(make_zxid(2, 1)).expect("truncate in the buffer");
        append_all(&mut s, &run(3, 1..=3));
        assert_eq!(s.sync().expect("sync"), make_zxid(3, 3));
        // A no-op and a truncation below the snapshot base (zxid 0 here is the base).
        s.truncate(make_zxid(3, 3)).expect("nothing after");
        drop(s);
        let (mut s, r) = recover(dir.path(), options);
        let mut expected = run(1, 1..=4);
        expected.push(e(2, 1));
        expected.extend(run(3, 1..=3));
        assert_eq!(r.state.history.entries(), &expected[..], "{options:?}");
        // Truncating everything logged.
        s.truncate(0).expect("to the base");
        append_all(&mut s, &run(4, 1..=2));
        s.sync().expect("sync");
        drop(s);
        let (_, r) = recover(dir.path(), options);
        assert_eq!(r.state.history.entries(), &run(4, 1..=2)[..], "{options:?}");
    }
}

#[test]
fn truncation_at_a_file_boundary_and_in_older_files() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut s, _) = start(dir.path(), small_files());
    for entry in run(1, 1..=15) {
        s.append(&entry).expect("append");
        s.sync().expect("sync");
    }
    let files = s.log_files();
    assert!(files.len() >= 4, "{files:?}");
    // The last entry of the second file: the files after it go, it stays whole.
    let second = files[1].clone();
    let len = std::fs::read(&second).expect("read");
    let third_first = {
        let name = files[2].file_name().and_then(|n| n.to_str()).expect("name");
        i64::from_str_radix(name.trim_start_matches("log."), 16).expect("hex")
    };
    s.truncate(third_first - 1).expect("truncate");
    assert_eq!(s.log_files(), files[..2].to_vec());
    let kept = std::fs::read(&second).expect("read");
    assert!(
        len.starts_with(&kept) && kept.len() > 16,
        "the second file was cut to its data"
    );
    append_all(&mut s, &run(2, 1..=2));
    s.sync().expect("sync");
    drop(s);
    let (_, r) = recover(dir.path(), small_files());
    let counter = (third_first - make_zxid(1, 0)) as u32;
    let mut expected = run(1, 1..=counter - 1);
    expected.extend(run(2, 1..=2));
    assert_eq!(r.state.history.entries(), &expected[..]);
}

#[test]
fn truncation_below_the_snapshot_is_an_error_and_poisons() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut s, _) = start(dir.path(), exact());
    s.install_snapshot(make_zxid(1, 5), &Bytes::from_static(b"s"))
        .expect("install");
    assert!(matches!(
        s.truncate(make_zxid(1, 4)),
        Err(StorageError::Other(_))
    ));
    // Every later call fails: nothing after a failure is ever reported durable.
    assert!(s.sync().is_err());
    assert!(s.append(&e(1, 6)).is_err());
}

#[test]
fn a_non_increasing_append_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut s, _) = start(dir.path(), exact());
    s.append(&e(1, 2)).expect("append");
    assert!(s.append(&e(1, 2)).is_err());
    let mut fresh = open(dir.path(), exact());
    assert!(fresh.append(&e(1, 1)).is_err(), "recover() first");
}

#[test]
fn an_installed_snapshot_is_the_new_base() {
    let dir = tempfile::tempdir().expect("tmp");
    let state = Bytes::from(vec![7u8; 10_000]);
    {
        let (mut s, _) = start(dir.path(), small_files());
        append_all(&mut s, &run(1, 1..=10));
        s.sync().expect("sync");
        append_all(&mut s, &run(1, 11..=12));
        s.install_snapshot(make_zxid(2, 5), &state)
            .expect("install");
        assert_eq!(s.sync().expect("sync"), make_zxid(2, 5));
        assert!(logs(dir.path()).is_empty(), "the old log is gone");
    }
    let (mut s, r) = recover(dir.path(), small_files());
    assert_eq!(r.state.history.base(), make_zxid(2, 5));
    assert!(r.state.history.entries().is_empty());
    assert_eq!(r.snapshot.as_ref(), Some(&state));
    append_all(&mut s, &run(2, 6..=9));
    s.sync().expect("sync");
    // A second install replaces the first snapshot.
    let state2 = Bytes::from_static(b"second");
    s.install_snapshot(make_zxid(2, 7), &state2)
        .expect("install");
    append_all(&mut s, &run(2, 8..=9));
    s.sync().expect("sync");
    drop(s);
    let (_, r) = recover(dir.path(), small_files());
    assert_eq!(r.state.history.base(), make_zxid(2, 7));
    assert_eq!(r.state.history.entries(), &run(2, 8..=9)[..]);
    assert_eq!(r.snapshot, Some(state2));
    let snaps: Vec<_> = std::fs::read_dir(dir.path().join("version-2"))
        .expect("list")
        .filter_map(|d| d.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("snapshot."))
        .collect();
    assert_eq!(snaps, vec![format!("snapshot.{:x}", make_zxid(2, 7))]);
    // An empty state is a state too.
    let (mut s, _) = recover(dir.path(), small_files());
    s.install_snapshot(make_zxid(3, 0), &Bytes::new())
        .expect("install");
    drop(s);
    let (_, r) = recover(dir.path(), small_files());
    assert_eq!(r.snapshot, Some(Bytes::new()));
    assert_eq!(r.state.history.base(), make_zxid(3, 0));
}

#[test]
fn a_crash_in_the_middle_of_an_install_never_mixes_generations() {
    let dir = tempfile::tempdir().expect("tmp");
    let v2 = dir.path().join("version-2");
    let aside = tempfile::tempdir().expect("tmp");
    let (mut s, _) = start(dir.path(), small_files());
    append_all(&mut s, &run(1, 1..=10));
    s.sync().expect("sync");
    // Keep copies of the old log, as if the install's deletions had not reached the disk.
    let old: Vec<PathBuf> = logs(dir.path());
    for f in &old {
        std::fs::copy(f, aside.path().join(f.file_name().expect("name"))).expect("copy");
    }
    // The leader's state ends at 1/5: 1/6..1/10 were never committed and must not return.
    s.install_snapshot(make_zxid(1, 5), &Bytes::from_static(b"five"))
        .expect("install");
    drop(s);
    for f in &old {
        std::fs::copy(aside.path().join(f.file_name().expect("name")), f).expect("restore");
    }
    let (mut s, r) = recover(dir.path(), small_files());
    assert_eq!(r.state.history.base(), make_zxid(1, 5));
    assert!(r.state.history.entries().is_empty(), "stale log ignored");
    assert!(logs(dir.path()).is_empty(), "and removed");
    append_all(&mut s, &run(2, 1..=2));
    s.sync().expect("sync");
    drop(s);
    // A crash before the rename: the tmp file is ignored, the old state stays.
    std::fs::write(
        v2.join(format!("snapshot.{:x}.tmp", make_zxid(2, 9))),
        b"partial",
    )
    .expect("write");
    let (_, r) = recover(dir.path(), small_files());
    assert_eq!(r.state.history.base(), make_zxid(1, 5));
    assert_eq!(r.state.history.entries(), &run(2, 1..=2)[..]);
    // A damaged snapshot refuses to start.
    let snap = v2.join(format!("snapshot.{:x}", make_zxid(1, 5)));
    let mut bytes = std::fs::read(&snap).expect("read");
    let n = bytes.len();
    bytes[n - 10] ^= 1;
    std::fs::write(&snap, &bytes).expect("write");
    assert_corrupt(try_recover(dir.path(), small_files()), "damaged snapshot");
}

#[test]
fn compaction_keeps_the_entries_after_the_snapshot_and_deletes_the_covered_files() {
    let dir = tempfile::tempdir().expect("tmp");
    let state = Bytes::from_static(b"state at 1/7");
    {
        let (mut s, _) = start(dir.path(), small_files());
        append_all(&mut s, &run(1, 1..=10));
        s.sync().expect("sync");
        let before = logs(dir.path());
        assert!(before.len() >= 3, "small files: {before:?}");
        s.compact(make_zxid(1, 7), &state).expect("compact");
        let after = logs(dir.path());
        assert!(after.len() < before.len(), "covered files deleted");
        assert!(
            after.iter().all(|f| before.contains(f)),
            "no file rewritten"
        );
        // Appends go on after a compaction.
        append_all(&mut s, &run(1, 11..=12));
        s.sync().expect("sync");
    }
    let (mut s, r) = recover(dir.path(), small_files());
    assert_eq!(r.state.history.base(), make_zxid(1, 7));
    assert_eq!(r.state.history.entries(), &run(1, 8..=12)[..]);
    assert_eq!(r.snapshot.as_ref(), Some(&state));
    // A later compaction replaces the snapshot; truncation above it still works.
    let state2 = Bytes::from_static(b"state at 1/11");
    s.compact(make_zxid(1, 11), &state2).expect("compact");
    s.truncate(make_zxid(1, 11)).expect("truncate");
    append_all(&mut s, &run(2, 1..=1));
    s.sync().expect("sync");
    drop(s);
    let (_, r) = recover(dir.path(), small_files());
    assert_eq!(r.state.history.base(), make_zxid(1, 11));
    assert_eq!(r.state.history.entries(), &run(2, 1..=1)[..]);
    assert_eq!(r.snapshot, Some(state2));
    let snaps = std::fs::read_dir(dir.path().join("version-2"))
        .expect("list")
        .filter_map(|d| d.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("snapshot."))
        .count();
    assert_eq!(snaps, 1, "the older snapshot is gone");
}

#[test]
fn a_crash_in_the_middle_of_a_compaction_recovers_from_the_new_snapshot() {
    let dir = tempfile::tempdir().expect("tmp");
    let aside = tempfile::tempdir().expect("tmp");
    let (mut s, _) = start(dir.path(), small_files());
    append_all(&mut s, &run(1, 1..=10));
    s.sync().expect("sync");
    let old: Vec<PathBuf> = logs(dir.path());
    for f in &old {
        std::fs::copy(f, aside.path().join(f.file_name().expect("name"))).expect("copy");
    }
    s.compact(make_zxid(1, 8), &Bytes::from_static(b"eight"))
        .expect("compact");
    drop(s);
    // As if the deletions after the snapshot's rename had not reached the disk.
    for f in &old {
        std::fs::copy(aside.path().join(f.file_name().expect("name")), f).expect("restore");
    }
    let (_, r) = recover(dir.path(), small_files());
    assert_eq!(r.state.history.base(), make_zxid(1, 8));
    assert_eq!(r.state.history.entries(), &run(1, 9..=10)[..]);
    assert_eq!(r.snapshot, Some(Bytes::from_static(b"eight")));
    assert!(
        logs(dir.path()).len() < old.len(),
        "covered files removed at recovery"
    );
    // Compacting beyond the log is refused (and poisons, like every storage error).
    let (mut s, _) = recover(dir.path(), small_files());
    assert!(s
        .compact(make_zxid(1, 11), &Bytes::from_static(b"x"))
        .is_err());
}

#[test]
fn epochs_persist_and_reload() {
    let dir = tempfile::tempdir().expect("tmp");
    let v2 = dir.path().join("version-2");
    {
        let (mut s, r) = recover(dir.path(), exact());
        assert_eq!((r.state.accepted_epoch, r.state.current_epoch), (0, 0));
        s.persist_epochs(3, 2).expect("epochs");
        s.persist_epochs(4, 4).expect("epochs");
    }
    assert_eq!(std::fs::read(v2.join("acceptedEpoch")).expect("read"), b"4");
    assert_eq!(std::fs::read(v2.join("currentEpoch")).expect("read"), b"4");
    let (mut s, r) = recover(dir.path(), exact());
    assert_eq!((r.state.accepted_epoch, r.state.current_epoch), (4, 4));
    s.persist_epochs(5, 4).expect("epochs");
    drop(s);
    let (_, r) = recover(dir.path(), exact());
    assert_eq!((r.state.accepted_epoch, r.state.current_epoch), (5, 4));
    // An epoch beyond 32 bits is corrupt for a replica.
    std::fs::write(v2.join("acceptedEpoch"), b"4294967296").expect("write");
    assert_corrupt(try_recover(dir.path(), exact()), "epoch out of range");
}

#[test]
fn current_epoch_is_recovered_from_its_tmp_file_zookeeper_1653() {
    let dir = tempfile::tempdir().expect("tmp");
    let v2 = dir.path().join("version-2");
    {
        let (mut s, _) = recover(dir.path(), exact());
        s.persist_epochs(2, 1).expect("epochs");
        // Synced with the leader of epoch 2; the write of currentEpoch = 2 reached its tmp
        // file but not the rename before the crash.
        append_all(&mut s, &run(2, 1..=3));
        s.sync().expect("sync");
    }
    std::fs::write(v2.join("currentEpoch.tmp"), b"2").expect("write");
    let (_, r) = recover(dir.path(), exact());
    assert_eq!((r.state.accepted_epoch, r.state.current_epoch), (2, 2));
    assert_eq!(std::fs::read(v2.join("currentEpoch")).expect("read"), b"2");
    // Without the tmp file (a crash after the synced txns were logged, before the epoch
    // write began), the replica still starts, with the older currentEpoch (Apache refuses).
    std::fs::write(v2.join("currentEpoch"), b"1").expect("write");
    std::fs::remove_file(v2.join("currentEpoch.tmp")).ok();
    let (_, r) = recover(dir.path(), exact());
    assert_eq!((r.state.accepted_epoch, r.state.current_epoch), (2, 1));
    assert_eq!(r.state.history.last_zxid(), (2i64 << 32) | 3);
}

/// The last durable zxid reported by `sync` is what recovery finds, across many batches.
#[test]
fn group_commit_batches_recover_exactly() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut s, _) = start(dir.path(), small_files());
    let mut last: Zxid = 0;
    let mut c = 0;
    for batch in 1..=20u32 {
        for _ in 0..batch % 5 + 1 {
            c += 1;
            s.append(&e(1, c)).expect("append");
        }
        last = s.sync().expect("sync");
    }
    drop(s);
    let (_, r) = recover(dir.path(), small_files());
    assert_eq!(r.state.history.last_zxid(), last);
    assert_eq!(r.state.history.entries(), &run(1, 1..=c)[..]);
}

/// A standalone (Apache format) data directory given to an ensemble member is refused with a
/// message that says so, not as an unexplained corruption.
#[test]
fn a_standalone_data_directory_is_named_as_such() {
    let dir = tempfile::tempdir().expect("tempdir");
    let snap_dir = dir.path().join("version-2");
    std::fs::create_dir_all(&snap_dir).expect("dir");
    // Apache's snapshot file header: "ZKSN", version 2, dbId -1; then the (here absent) tree.
    let mut bytes = b"ZKSN".to_vec();
    bytes.extend(2i32.to_be_bytes());
    bytes.extend((-1i64).to_be_bytes());
    bytes.resize(256, 0);
    std::fs::write(snap_dir.join("snapshot.0"), bytes).expect("snapshot");
    let err = try_recover(dir.path(), exact()).expect_err("refused");
    assert!(err.to_string().contains("standalone"), "{err}");
}
