//! The cache's contents and its listeners: applying reads and deletes to the map and turning
//! each change into events. Pure (no I/O), so the diffing rules are unit-tested here.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use tokio::sync::mpsc;
use zk_proto::Stat;

use super::{CacheEvent, ChildData};
use crate::util::Listeners;

/// The cached nodes (by client path) and the subscribers to their changes.
#[derive(Debug, Default)]
pub(crate) struct Store {
    nodes: RwLock<BTreeMap<String, Arc<ChildData>>>,
    listeners: Listeners<CacheEvent>,
}

impl Store {
    /// A new subscriber; it sees every event from now on.
    pub(crate) fn subscribe(&self) -> mpsc::UnboundedReceiver<CacheEvent> {
        self.listeners.subscribe()
    }

    /// Ends every subscriber's stream.
    pub(crate) fn close_listeners(&self) {
        self.listeners.close();
    }

    pub(crate) fn emit(&self, event: CacheEvent) {
        self.listeners.emit(event);
    }

    pub(crate) fn get(&self, path: &str) -> Option<Arc<ChildData>> {
        self.nodes.read().ok()?.get(path).cloned()
    }

    /// Every cached node, in path order.
    pub(crate) fn all(&self) -> Vec<Arc<ChildData>> {
        self.nodes
            .read()
            .map(|n| n.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The cached direct children of `parent`, in name order.
    pub(crate) fn children(&self, parent: &str) -> Vec<Arc<ChildData>> {
        let Ok(nodes) = self.nodes.read() else {
            return Vec::new();
        };
        let prefix = if parent == "/" {
            "/".to_owned()
        } else {
            format!("{parent}/")
        };
        nodes
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter(|(p, _)| p.len() > prefix.len() && !p[prefix.len()..].contains('/'))
            .map(|(_, d)| d.clone())
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.nodes.read().map(|n| n.len()).unwrap_or(0)
    }

    /// Records a fresh read of `path`: Created when new, Deleted + Created when the node was
    /// re-created meanwhile (another czxid), Changed when its data is newer (higher mzxid);
    /// an older or identical read changes nothing.
    ///
    /// Events are queued while the map is still locked, so whoever sees a change in the cache
    /// finds its event already in every stream (a reader that checks the cache and then
    /// drains its events never meets the event of a change it has already seen, later).
    pub(crate) fn upsert(&self, path: &str, data: Vec<u8>, stat: Stat) {
        let (czxid, mzxid) = (stat.czxid, stat.mzxid);
        let new = Arc::new(ChildData {
            path: path.to_owned(),
            data,
            stat,
        });
        let Ok(mut nodes) = self.nodes.write() else {
            return;
        };
        match nodes.get(path) {
            None => {
                nodes.insert(path.to_owned(), new.clone());
                self.emit(CacheEvent::Created(new));
            }
            Some(old) if old.stat.czxid != czxid => {
                let old = old.clone();
                nodes.insert(path.to_owned(), new.clone());
                self.emit(CacheEvent::Deleted(old));
                self.emit(CacheEvent::Created(new));
            }
            Some(old) if mzxid > old.stat.mzxid => {
                let old = old.clone();
                nodes.insert(path.to_owned(), new.clone());
                self.emit(CacheEvent::Changed { old, new });
            }
            Some(_) => {}
        }
    }

    /// Removes `path` and everything cached below it (deepest first), with a Deleted event
    /// for each.
    pub(crate) fn remove_subtree(&self, path: &str) {
        let doomed: Vec<String> = {
            let Ok(nodes) = self.nodes.read() else {
                return;
            };
            nodes
                .keys()
                .filter(|p| is_in_subtree(p, path))
                .cloned()
                .collect()
        };
        self.remove_exactly(doomed);
    }

    /// Removes exactly these paths (deepest first), with a Deleted event for each (queued
    /// under the lock, as in [`upsert`](Self::upsert)).
    fn remove_exactly(&self, paths: Vec<String>) {
        let Ok(mut nodes) = self.nodes.write() else {
            return;
        };
        let mut removed: Vec<Arc<ChildData>> =
            paths.iter().filter_map(|p| nodes.remove(p)).collect();
        removed.sort_by_key(|d| std::cmp::Reverse(depth(&d.path)));
        for old in removed {
            self.emit(CacheEvent::Deleted(old));
        }
    }

    /// Brings the cache to a complete read of the tree (`seen`, in any order): deletes what
    /// is cached but was not seen (deepest first), then records every read (parents first).
    pub(crate) fn replace_all(&self, mut seen: Vec<(String, Vec<u8>, Stat)>) {
        let stale: Vec<String> = {
            let Ok(nodes) = self.nodes.read() else {
                return;
            };
            let seen_paths: std::collections::HashSet<&str> =
                seen.iter().map(|(p, _, _)| p.as_str()).collect();
            nodes
                .keys()
                .filter(|p| !seen_paths.contains(p.as_str()))
                .cloned()
                .collect()
        };
        self.remove_exactly(stale);
        seen.sort_by(|a, b| a.0.cmp(&b.0));
        for (path, data, stat) in seen {
            self.upsert(&path, data, stat);
        }
    }
}

/// Whether `path` is `root` or below it.
pub(crate) fn is_in_subtree(path: &str, root: &str) -> bool {
    path == root
        || root == "/"
        || (path.starts_with(root) && path.as_bytes().get(root.len()) == Some(&b'/'))
}

/// How many segments `path` lies below `root` (0 for the root itself); None outside it.
/// The parent of an absolute path ("/" for a top-level node and for the root itself).
pub(crate) fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => path.get(..i).unwrap_or("/"),
    }
}

pub(crate) fn depth_below(path: &str, root: &str) -> Option<usize> {
    if !is_in_subtree(path, root) {
        return None;
    }
    Some(depth(path) - depth(root))
}

fn depth(path: &str) -> usize {
    if path == "/" {
        0
    } else {
        path.matches('/').count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(czxid: i64, mzxid: i64) -> Stat {
        Stat {
            czxid,
            mzxid,
            ..Stat::default()
        }
    }

    fn kinds(rx: &mut mpsc::UnboundedReceiver<CacheEvent>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(e) = rx.try_recv() {
            out.push(match e {
                CacheEvent::Created(d) => format!("+{}", d.path),
                CacheEvent::Changed { new, .. } => format!("~{}", new.path),
                CacheEvent::Deleted(d) => format!("-{}", d.path),
                CacheEvent::Initialized => "init".to_owned(),
            });
        }
        out
    }

    /// A reader that sees a change in the cache finds its event already queued: the reader
    /// thread polls the map and, on the first sight of each new version, must be able to
    /// receive that version's event at once.
    #[test]
    fn a_change_seen_in_the_cache_has_its_event_queued() {
        const VERSIONS: i64 = 100_000;
        let store = Arc::new(Store::default());
        let mut rx = store.subscribe();
        let writer = {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for v in 1..=VERSIONS {
                    store.upsert("/a", Vec::new(), stat(1, v));
                }
            })
        };
        let mut seen = 0;
        while seen < VERSIONS {
            let Some(now) = store.get("/a").map(|d| d.stat.mzxid) else {
                continue;
            };
            // Every event up to the version seen must be there already.
            while seen < now {
                match rx.try_recv() {
                    Ok(CacheEvent::Created(d)) | Ok(CacheEvent::Changed { new: d, .. }) => {
                        seen = d.stat.mzxid;
                    }
                    other => panic!("version {now} is cached, its event is not queued: {other:?}"),
                }
            }
        }
        writer.join().expect("writer");
    }

    #[test]
    fn reads_are_diffed_by_czxid_and_mzxid() {
        let store = Store::default();
        let mut rx = store.subscribe();
        store.upsert("/a", b"1".to_vec(), stat(5, 5));
        store.upsert("/a", b"1".to_vec(), stat(5, 5)); // the same read again
        store.upsert("/a", b"2".to_vec(), stat(5, 7));
        store.upsert("/a", b"old".to_vec(), stat(5, 6)); // a stale read
        store.upsert("/a", b"3".to_vec(), stat(9, 9)); // deleted and re-created meanwhile
        assert_eq!(kinds(&mut rx), ["+/a", "~/a", "-/a", "+/a"]);
        assert_eq!(store.get("/a").map(|d| d.data.clone()), Some(b"3".to_vec()));
    }

    #[test]
    fn a_full_read_deletes_what_vanished_deepest_first() {
        let store = Store::default();
        for (p, z) in [("/r", 1), ("/r/a", 2), ("/r/a/x", 3), ("/r/b", 4)] {
            store.upsert(p, Vec::new(), stat(z, z));
        }
        let mut rx = store.subscribe();
        store.replace_all(vec![
            ("/r/c".into(), Vec::new(), stat(6, 6)),
            ("/r".into(), Vec::new(), stat(1, 1)),
            ("/r/b".into(), b"new".to_vec(), stat(4, 5)),
        ]);
        assert_eq!(kinds(&mut rx), ["-/r/a/x", "-/r/a", "~/r/b", "+/r/c"]);
        let children: Vec<String> = store
            .children("/r")
            .iter()
            .map(|d| d.path.clone())
            .collect();
        assert_eq!(children, ["/r/b", "/r/c"]);
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn subtree_and_depth_rules() {
        assert!(is_in_subtree("/a/b", "/a"));
        assert!(!is_in_subtree("/ab", "/a"));
        assert!(is_in_subtree("/x", "/"));
        assert_eq!(depth_below("/a", "/a"), Some(0));
        assert_eq!(depth_below("/a/b/c", "/a"), Some(2));
        assert_eq!(depth_below("/b", "/"), Some(1));
        assert_eq!(depth_below("/ab", "/a"), None);
    }
}
