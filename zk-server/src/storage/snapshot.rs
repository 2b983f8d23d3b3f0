//! Snapshots: the whole tree and session table as of one zxid, in Apache ZooKeeper's layout.
//!
//! ```text
//! FileHeader{ZKSN, 2, -1}
//! int sessionCount, then (long id, int timeout)*
//! int aclCount, then (long index, vector<ACL>)*
//! (ustring path, buffer data, long aclIndex, StatPersisted)*   parents first; root as ""
//! ustring "/"                                                  end of nodes
//! long adler32(everything above), ustring "/"                  seal
//! ```

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use zk_proto::jute::{put_buffer, put_ustring};
use zk_proto::{Acl, Decode, Encode, FileHeader, Id, Perms, StatPersisted};

use super::adler32::Adler32;
use super::{file_name, list_files, sync_dir, StorageError};
use crate::tree::{DataTree, TreeImage};

/// A parsed snapshot.
#[derive(Debug)]
pub struct Snapshot {
    /// The tree.
    pub tree: DataTree,
    /// Live sessions as (id, timeout).
    pub sessions: Vec<(i64, i32)>,
}

/// Serializes a tree image and the sessions into memory.
pub fn serialize(tree: &TreeImage, sessions: &[(i64, i32)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + tree.len() * 160);
    // Writing into a Vec cannot fail.
    let _ = serialize_into(tree, sessions, &mut out);
    out
}

/// Streams a tree image and the sessions in the snapshot format to `out`, a node at a time:
/// memory stays flat however big the tree is.
///
/// # Errors
/// Those of `out`.
pub fn serialize_into(
    tree: &TreeImage,
    sessions: &[(i64, i32)],
    out: impl Write,
) -> std::io::Result<()> {
    let mut out = Checksummed {
        inner: out,
        sum: Adler32::default(),
    };
    // Each record is encoded into `buf`, then written out and the buffer reused.
    let mut buf = BytesMut::with_capacity(4096);
    FileHeader {
        magic: FileHeader::SNAPSHOT_MAGIC,
        version: FileHeader::VERSION,
        dbid: -1,
    }
    .encode(&mut buf);
    buf.put_i32(i32::try_from(sessions.len()).unwrap_or(i32::MAX));
    for (id, timeout) in sessions {
        buf.put_i64(*id);
        buf.put_i32(*timeout);
        out.flush_buf(&mut buf)?;
    }
    // ACL cache: one index per distinct (shared) list.
    let mut indices: HashMap<*const Vec<Acl>, i64> = HashMap::new();
    let mut acls: Vec<&Arc<Vec<Acl>>> = Vec::new();
    for (_, node) in tree.iter() {
        indices.entry(Arc::as_ptr(&node.acl)).or_insert_with(|| {
            acls.push(&node.acl);
            acls.len() as i64
        });
    }
    buf.put_i32(i32::try_from(acls.len()).unwrap_or(i32::MAX));
    for (index, acl) in (1i64..).zip(acls) {
        buf.put_i64(index);
        acl.to_vec().encode(&mut buf);
        out.flush_buf(&mut buf)?;
    }
    tree.try_walk("/", |path, node| {
        put_ustring(&mut buf, if path == "/" { "" } else { path });
        put_buffer(&mut buf, node.data.as_deref());
        let index = indices.get(&Arc::as_ptr(&node.acl)).copied().unwrap_or(-1);
        buf.put_i64(index);
        node.stat.encode(&mut buf);
        out.flush_buf(&mut buf)
    })?;
    put_ustring(&mut buf, "/");
    out.flush_buf(&mut buf)?;
    // The seal is not part of the checksum.
    let checksum = out.sum.value();
    buf.put_i64(i64::from(checksum));
    put_ustring(&mut buf, "/");
    out.inner.write_all(&buf)?;
    out.inner.flush()
}

/// A writer that keeps the Adler-32 of what went through it.
struct Checksummed<W> {
    inner: W,
    sum: Adler32,
}

impl<W: Write> Checksummed<W> {
    /// Writes and empties `buf`.
    fn flush_buf(&mut self, buf: &mut BytesMut) -> std::io::Result<()> {
        self.sum.update(buf);
        self.inner.write_all(buf)?;
        buf.clear();
        Ok(())
    }
}

/// Parses a snapshot held in memory; any damage is an error (the caller falls back to an
/// older snapshot).
pub fn parse(bytes: &[u8], last_zxid: i64) -> Result<Snapshot, String> {
    parse_from(bytes, last_zxid)
}

/// Parses a snapshot as it is read from `input` (buffer it), so that a snapshot file is never
/// held in memory whole next to the tree it becomes. Lengths and counts in the input are not
/// trusted for allocation: damage is an error, not a huge allocation.
pub fn parse_from(input: impl Read, last_zxid: i64) -> Result<Snapshot, String> {
    let mut r = SnapshotReader {
        inner: input,
        sum: Adler32::default(),
    };
    let header =
        FileHeader::from_bytes(&r.array::<16>("file header")?).map_err(|e| e.to_string())?;
    if header.magic != FileHeader::SNAPSHOT_MAGIC || header.version != FileHeader::VERSION {
        return Err("bad magic or version".into());
    }
    let mut sessions = Vec::new();
    for _ in 0..r.count("sessions")? {
        let id = r.i64("session id")?;
        let timeout = r.i32("session timeout")?;
        sessions.push((id, timeout));
    }
    let mut acls: HashMap<i64, Vec<Acl>> = HashMap::new();
    for _ in 0..r.count("acl cache")? {
        let index = r.i64("acl index")?;
        let mut acl = Vec::new();
        for _ in 0..r.count("acl")? {
            let perms = Perms::from_bits(r.i32("acl perms")?);
            let scheme = r.string("acl scheme")?.unwrap_or_default();
            let id = r.string("acl id")?.unwrap_or_default();
            acl.push(Acl::new(perms, Id::new(scheme, id)));
        }
        acls.insert(index, acl);
    }
    let mut tree = DataTree::empty();
    loop {
        let path = r.string("path")?.unwrap_or_default();
        if path == "/" {
            break;
        }
        let path = if path.is_empty() {
            "/".to_owned()
        } else {
            // Every path a server writes passed validation when its node was created; one
            // that does not (e.g. "/a/") is damage, and would not fit into the tree.
            zk_proto::path::validate_path(&path)
                .map_err(|e| format!("node path {path:?} is not a valid path: {e}"))?;
            path
        };
        let data = r.buffer("data")?;
        let index = r.i64("acl index")?;
        let stat = StatPersisted::from_bytes(&r.array::<STAT_PERSISTED_LEN>("stat")?)
            .map_err(|e| e.to_string())?;
        let acl = match index {
            -1 => Acl::open_unsafe(),
            i => acls
                .get(&i)
                .cloned()
                .ok_or_else(|| format!("node {path} refers to unknown ACL {i}"))?,
        };
        tree.insert_loaded(path, data, &acl, stat);
    }
    let sealed = r.sum.value();
    let checksum = r.i64("checksum")?;
    if i64::from(sealed) != checksum {
        return Err("checksum mismatch".into());
    }
    if r.string("end signature")?.as_deref() != Some("/") {
        return Err("no end signature".into());
    }
    let orphans = tree.link_loaded();
    if let Some(orphan) = orphans.first() {
        return Err(format!("node {orphan} has no parent"));
    }
    if tree.get("/").is_none() {
        return Err("no root node".into());
    }
    tree.set_last_processed_zxid(last_zxid);
    Ok(Snapshot { tree, sessions })
}

/// Encoded length of a `StatPersisted`: six longs and three ints.
const STAT_PERSISTED_LEN: usize = 6 * 8 + 3 * 4;

/// Buffers up to this long are allocated before they are read; longer ones as they arrive.
const TRUSTED_LEN: usize = 64 << 10;

/// Reads jute values from a stream, keeping the Adler-32 of every byte it consumed.
struct SnapshotReader<R> {
    inner: R,
    sum: Adler32,
}

impl<R: Read> SnapshotReader<R> {
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        self.inner
            .read_exact(&mut out)
            .map_err(|e| format!("reading the {what}: {e}"))?;
        self.sum.update(&out);
        Ok(out)
    }

    fn i32(&mut self, what: &str) -> Result<i32, String> {
        self.array(what).map(i32::from_be_bytes)
    }

    fn i64(&mut self, what: &str) -> Result<i64, String> {
        self.array(what).map(i64::from_be_bytes)
    }

    /// A length prefix: `None` for jute's null (-1).
    fn len(&mut self, what: &str) -> Result<Option<usize>, String> {
        match self.i32(what)? {
            -1 => Ok(None),
            n => usize::try_from(n)
                .map(Some)
                .map_err(|_| format!("negative length {n} of the {what}")),
        }
    }

    /// An element count (null counts as none). Callers add elements as they are read, so a
    /// damaged count fails at the end of the input instead of allocating.
    fn count(&mut self, what: &str) -> Result<usize, String> {
        Ok(self.len(what)?.unwrap_or(0))
    }

    fn buffer(&mut self, what: &str) -> Result<Option<Vec<u8>>, String> {
        let Some(len) = self.len(what)? else {
            return Ok(None);
        };
        let mut out = Vec::new();
        if len <= TRUSTED_LEN {
            out.resize(len, 0);
            self.inner
                .read_exact(&mut out)
                .map_err(|e| format!("reading the {what} ({len} bytes): {e}"))?;
        } else {
            // Grows with what is actually there, whatever the length claims.
            (&mut self.inner)
                .take(len as u64)
                .read_to_end(&mut out)
                .map_err(|e| format!("reading the {what}: {e}"))?;
            if out.len() != len {
                return Err(format!(
                    "the {what} ends after {} of its {len} bytes",
                    out.len()
                ));
            }
        }
        self.sum.update(&out);
        Ok(Some(out))
    }

    fn string(&mut self, what: &str) -> Result<Option<String>, String> {
        self.buffer(what)?
            .map(|bytes| String::from_utf8(bytes).map_err(|_| format!("the {what} is not UTF-8")))
            .transpose()
    }
}

/// Writes a snapshot durably, its content streamed by `fill` (through a buffer): temp file,
/// fsync, rename, fsync of the directory.
pub fn write_with(
    dir: &Path,
    zxid: i64,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<PathBuf> {
    let name = file_name("snapshot", zxid);
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(&name);
    let written = (|| {
        let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
        fill(&mut file)?;
        file.into_inner().map_err(|e| e.into_error())?.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, &path)?;
    sync_dir(dir)?;
    Ok(path)
}

/// Deletes what snapshots interrupted by a crash left (`snapshot.<zxid>.tmp`): never valid,
/// and each as big as a snapshot.
pub fn remove_unfinished(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name
            .to_str()
            .is_some_and(|n| n.starts_with("snapshot.") && n.ends_with(".tmp"))
        {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Snapshot files in `dir`, oldest first.
pub fn list(dir: &Path) -> Result<Vec<(i64, PathBuf)>, StorageError> {
    list_files(dir, "snapshot")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(czxid: i64) -> StatPersisted {
        StatPersisted {
            czxid,
            mzxid: czxid,
            ..StatPersisted::default()
        }
    }

    /// A tree whose nodes share two distinct ACLs, one of them not the default.
    fn sample_tree() -> DataTree {
        let mut tree = DataTree::empty();
        let guarded = Acl::creator_all();
        tree.insert_loaded("/".into(), None, &Acl::open_unsafe(), stat(0));
        tree.insert_loaded("/a".into(), Some(b"one".to_vec()), &guarded, stat(1));
        tree.insert_loaded("/a/b".into(), Some(Vec::new()), &guarded, stat(2));
        tree.insert_loaded("/c".into(), None, &Acl::open_unsafe(), stat(3));
        assert!(tree.link_loaded().is_empty());
        tree
    }

    #[test]
    fn streamed_to_a_file_it_is_the_in_memory_encoding_and_parses_back() {
        let tree = sample_tree();
        let sessions = [(7, 30_000), (9, 4_000)];
        let in_memory = serialize(&tree.image(), &sessions);
        let dir = tempfile::tempdir().unwrap();
        let path = write_with(dir.path(), 5, |file| {
            serialize_into(&tree.image(), &sessions, file)
        })
        .unwrap();
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(on_disk, in_memory);

        let parsed = parse(&on_disk, 5).unwrap();
        assert_eq!(parsed.sessions, sessions);
        assert_eq!(parsed.tree.node_count(), tree.node_count());
        for (path, node) in tree.iter() {
            let back = parsed.tree.get(path).unwrap();
            assert_eq!(back.data, node.data, "{path}");
            assert_eq!(*back.acl, *node.acl, "{path}");
            assert_eq!(back.stat, node.stat, "{path}");
        }
        // Equal ACLs stay one shared list.
        let (a, b) = (
            parsed.tree.get("/a").unwrap(),
            parsed.tree.get("/a/b").unwrap(),
        );
        assert!(Arc::ptr_eq(&a.acl, &b.acl));
        assert_eq!(parsed.tree.last_processed_zxid(), 5);
    }

    #[test]
    fn a_damaged_byte_fails_the_checksum() {
        let mut bytes = serialize(&sample_tree().image(), &[]);
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        assert!(parse(&bytes, 1).is_err());
    }

    #[test]
    fn a_node_path_that_is_not_a_valid_path_is_an_error() {
        let mut bytes = serialize(&sample_tree().image(), &[]);
        // "/c" becomes "/." (same length): a dot segment, refused before the checksum.
        let at = bytes
            .windows(6)
            .position(|w| w == [0, 0, 0, 2, b'/', b'c'])
            .expect("the record of /c");
        bytes[at + 5] = b'.';
        let Err(err) = parse(&bytes, 1) else {
            panic!("an invalid path was accepted");
        };
        assert!(err.contains("\"/.\" is not a valid path"), "{err}");
    }

    #[test]
    fn a_cut_anywhere_is_an_error_not_a_panic() {
        let bytes = serialize(&sample_tree().image(), &[(7, 30_000)]);
        assert!(parse(&bytes, 1).is_ok());
        for cut in 0..bytes.len() {
            assert!(parse(&bytes[..cut], 1).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn a_length_beyond_the_input_fails_without_allocating_it() {
        let tree = sample_tree();
        let mut bytes = serialize(&tree.image(), &[]);
        // The first node record (the root, as "") starts with its path's length 0; the next
        // four bytes are the length of its null data (-1). Claim 2 GiB of data instead.
        let header_sessions_acls = bytes.len()
            - tree.iter().map(|(p, n)| record_len(p, n)).sum::<usize>()
            - 4 - 1 // the "/" terminator
            - 8 - 5; // checksum and seal
        let data_len_at = header_sessions_acls + 4;
        assert_eq!(bytes[header_sessions_acls..data_len_at], [0, 0, 0, 0]);
        assert_eq!(bytes[data_len_at..data_len_at + 4], (-1i32).to_be_bytes());
        bytes[data_len_at..data_len_at + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        let error = parse(&bytes, 1).unwrap_err();
        assert!(error.contains("2147483647"), "{error}");
    }

    /// Encoded length of one node record.
    fn record_len(path: &str, node: &crate::tree::DataNode) -> usize {
        let path_len = if path == "/" { 0 } else { path.len() };
        4 + path_len + 4 + node.data.as_ref().map_or(0, Vec::len) + 8 + STAT_PERSISTED_LEN
    }

    proptest::proptest! {
        /// Damaged snapshots (bytes overwritten, inserted or cut off) are errors or, when the
        /// damage happens to keep the checksum, trees; never a panic.
        #[test]
        fn damage_never_panics(
            edits in proptest::collection::vec((0usize..4096, proptest::prelude::any::<u8>(), 0u8..3), 1..8),
            cut in proptest::option::of(0usize..4096),
        ) {
            let mut bytes = serialize(&sample_tree().image(), &[(7, 30_000)]);
            for (at, byte, kind) in edits {
                let at = at % bytes.len();
                match kind {
                    0 => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    _ => {
                        bytes.remove(at);
                    }
                }
            }
            if let Some(cut) = cut {
                bytes.truncate(cut % (bytes.len() + 1));
            }
            let _ = parse(&bytes, 1);
        }
    }

    #[test]
    fn unfinished_snapshots_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["snapshot.5.tmp", "snapshot.5", "log.5", "other.tmp"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        remove_unfinished(dir.path()).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["log.5", "other.tmp", "snapshot.5"]);
    }

    #[test]
    fn a_failed_write_leaves_no_snapshot_behind() {
        let dir = tempfile::tempdir().unwrap();
        let failed = write_with(dir.path(), 5, |file| {
            file.write_all(b"partial")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(failed.is_err());
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
