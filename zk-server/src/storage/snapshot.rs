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
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use zk_proto::jute::{put_buffer, put_ustring};
use zk_proto::{Acl, Decode, Encode, FileHeader, Reader, StatPersisted};

use super::adler32::{adler32, Adler32};
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

/// Serializes a tree image and the sessions into memory (a learner's state transfer).
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

/// Parses a snapshot; any damage is an error (the caller falls back to an older snapshot).
pub fn parse(bytes: &[u8], last_zxid: i64) -> Result<Snapshot, String> {
    let mut r = Reader::new(bytes);
    let header = FileHeader::decode(&mut r).map_err(|e| e.to_string())?;
    if header.magic != FileHeader::SNAPSHOT_MAGIC || header.version != FileHeader::VERSION {
        return Err("bad magic or version".into());
    }
    let session_count = r
        .read_len("sessions", 12)
        .map_err(|e| e.to_string())?
        .unwrap_or(0);
    let mut sessions = Vec::with_capacity(session_count);
    for _ in 0..session_count {
        let id = r.read_i64("session id").map_err(|e| e.to_string())?;
        let timeout = r.read_i32("session timeout").map_err(|e| e.to_string())?;
        sessions.push((id, timeout));
    }
    let acl_count = r
        .read_len("acl cache", 12)
        .map_err(|e| e.to_string())?
        .unwrap_or(0);
    let mut acls: HashMap<i64, Vec<Acl>> = HashMap::with_capacity(acl_count);
    for _ in 0..acl_count {
        let index = r.read_i64("acl index").map_err(|e| e.to_string())?;
        let acl = Vec::<Acl>::decode(&mut r).map_err(|e| e.to_string())?;
        acls.insert(index, acl);
    }
    let mut tree = DataTree::empty();
    loop {
        let path = r
            .read_ustring("path")
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        if path == "/" {
            break;
        }
        let path = if path.is_empty() {
            "/".to_owned()
        } else {
            path.to_owned()
        };
        let data = r
            .read_buffer("data")
            .map_err(|e| e.to_string())?
            .map(<[u8]>::to_vec);
        let index = r.read_i64("acl index").map_err(|e| e.to_string())?;
        let stat = StatPersisted::decode(&mut r).map_err(|e| e.to_string())?;
        let acl = match index {
            -1 => Acl::open_unsafe(),
            i => acls
                .get(&i)
                .cloned()
                .ok_or_else(|| format!("node {path} refers to unknown ACL {i}"))?,
        };
        tree.insert_loaded(path, data, &acl, stat);
    }
    let sealed_len = bytes.len() - r.remaining();
    let checksum = r.read_i64("checksum").map_err(|e| e.to_string())?;
    let sealed = bytes.get(..sealed_len).ok_or("short snapshot")?;
    if i64::from(adler32(sealed)) != checksum {
        return Err("checksum mismatch".into());
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

/// Writes a snapshot durably: temp file, fsync, rename, fsync of the directory.
pub fn write(dir: &Path, zxid: i64, data: &[u8]) -> std::io::Result<PathBuf> {
    write_with(dir, zxid, |file| file.write_all(data))
}

/// [`write`] with the content streamed by `fill` (through a buffer) instead of given whole.
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
