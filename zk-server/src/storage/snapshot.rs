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

use super::adler32::adler32;
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

/// Serializes a tree image and the sessions.
pub fn serialize(tree: &TreeImage, sessions: &[(i64, i32)]) -> Vec<u8> {
    let mut buf = BytesMut::with_capacity(64 + tree.len() * 160);
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
    }
    // ACL cache: one index per distinct list.
    let mut indices: HashMap<*const Vec<Acl>, (i64, &Arc<Vec<Acl>>)> = HashMap::new();
    let nodes = tree.nodes_below("/");
    for (_, node) in &nodes {
        let next = indices.len() as i64 + 1;
        indices
            .entry(Arc::as_ptr(&node.acl))
            .or_insert((next, &node.acl));
    }
    let mut acls: Vec<&(i64, &Arc<Vec<Acl>>)> = indices.values().collect();
    acls.sort_by_key(|(index, _)| *index);
    buf.put_i32(i32::try_from(acls.len()).unwrap_or(i32::MAX));
    for (index, acl) in acls {
        buf.put_i64(*index);
        acl.to_vec().encode(&mut buf);
    }
    for (path, node) in &nodes {
        put_ustring(&mut buf, if path == "/" { "" } else { path });
        put_buffer(&mut buf, node.data.as_deref());
        let index = indices.get(&Arc::as_ptr(&node.acl)).map_or(-1, |(i, _)| *i);
        buf.put_i64(index);
        node.stat.encode(&mut buf);
    }
    put_ustring(&mut buf, "/");
    let checksum = adler32(&buf);
    buf.put_i64(i64::from(checksum));
    put_ustring(&mut buf, "/");
    buf.to_vec()
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
    let name = file_name("snapshot", zxid);
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(&name);
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    sync_dir(dir)?;
    Ok(path)
}

/// Snapshot files in `dir`, oldest first.
pub fn list(dir: &Path) -> Result<Vec<(i64, PathBuf)>, StorageError> {
    list_files(dir, "snapshot")
}
