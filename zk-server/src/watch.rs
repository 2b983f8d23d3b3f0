//! Watch registrations and Apache ZooKeeper's trigger rules.
//!
//! One-shot data watches (exists/getData) and child watches (getChildren) are removed when they
//! fire; persistent watches fire for every change of their exact path; persistent recursive
//! watches fire for their path and every descendant, but never with NodeChildrenChanged. A
//! connection receives at most one notification per trigger.

use std::collections::{BTreeSet, HashMap, HashSet};

use zk_proto::path::split_parent;
use zk_proto::EventType;

use crate::ConnId;

/// The kinds of watch registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WatchKind {
    /// One-shot data (or exist) watch.
    Data,
    /// One-shot child watch.
    Child,
    /// Persistent watch on one path.
    Persistent,
    /// Persistent watch on a subtree.
    PersistentRecursive,
}

impl WatchKind {
    const ALL: [WatchKind; 4] = [
        WatchKind::Data,
        WatchKind::Child,
        WatchKind::Persistent,
        WatchKind::PersistentRecursive,
    ];
}

/// Every watch registration, indexed by path and by connection.
#[derive(Debug, Default)]
pub struct WatchManager {
    by_path: HashMap<WatchKind, HashMap<String, HashSet<ConnId>>>,
    by_conn: HashMap<ConnId, BTreeSet<(WatchKind, String)>>,
}

impl WatchManager {
    /// An empty registry.
    pub fn new() -> WatchManager {
        WatchManager::default()
    }

    /// Registers a watch (idempotent).
    pub fn add(&mut self, kind: WatchKind, path: &str, conn: ConnId) {
        self.by_path
            .entry(kind)
            .or_default()
            .entry(path.to_owned())
            .or_default()
            .insert(conn);
        self.by_conn
            .entry(conn)
            .or_default()
            .insert((kind, path.to_owned()));
    }

    /// Whether `conn` has a watch of `kind` on `path`.
    pub fn contains(&self, kind: WatchKind, path: &str, conn: ConnId) -> bool {
        self.by_path
            .get(&kind)
            .and_then(|paths| paths.get(path))
            .is_some_and(|conns| conns.contains(&conn))
    }

    /// Removes one registration; returns whether it existed.
    pub fn remove(&mut self, kind: WatchKind, path: &str, conn: ConnId) -> bool {
        let Some(paths) = self.by_path.get_mut(&kind) else {
            return false;
        };
        let Some(conns) = paths.get_mut(path) else {
            return false;
        };
        let removed = conns.remove(&conn);
        if conns.is_empty() {
            paths.remove(path);
        }
        if removed {
            if let Some(set) = self.by_conn.get_mut(&conn) {
                set.remove(&(kind, path.to_owned()));
                if set.is_empty() {
                    self.by_conn.remove(&conn);
                }
            }
        }
        removed
    }

    /// Drops every watch of a closed connection.
    pub fn remove_conn(&mut self, conn: ConnId) {
        let Some(set) = self.by_conn.remove(&conn) else {
            return;
        };
        for (kind, path) in set {
            if let Some(paths) = self.by_path.get_mut(&kind) {
                if let Some(conns) = paths.get_mut(&path) {
                    conns.remove(&conn);
                    if conns.is_empty() {
                        paths.remove(&path);
                    }
                }
            }
        }
    }

    /// The connections to notify of `event` on `path`, each once, in id order; one-shot watches
    /// that fire are removed.
    pub fn trigger(&mut self, path: &str, event: EventType) -> Vec<ConnId> {
        let mut notify = BTreeSet::new();
        let one_shot: &[WatchKind] = match event {
            EventType::NodeCreated | EventType::NodeDataChanged => &[WatchKind::Data],
            EventType::NodeDeleted => &[WatchKind::Data, WatchKind::Child],
            EventType::NodeChildrenChanged => &[WatchKind::Child],
            _ => &[],
        };
        for kind in one_shot {
            if let Some(conns) = self.by_path.get_mut(kind).and_then(|p| p.remove(path)) {
                for conn in conns {
                    if let Some(set) = self.by_conn.get_mut(&conn) {
                        set.remove(&(*kind, path.to_owned()));
                        if set.is_empty() {
                            self.by_conn.remove(&conn);
                        }
                    }
                    notify.insert(conn);
                }
            }
        }
        if let Some(conns) = self
            .by_path
            .get(&WatchKind::Persistent)
            .and_then(|p| p.get(path))
        {
            notify.extend(conns.iter().copied());
        }
        if event != EventType::NodeChildrenChanged {
            if let Some(recursive) = self.by_path.get(&WatchKind::PersistentRecursive) {
                if !recursive.is_empty() {
                    let mut current = Some(path);
                    while let Some(p) = current {
                        if let Some(conns) = recursive.get(p) {
                            notify.extend(conns.iter().copied());
                        }
                        current = split_parent(p).map(|(parent, _)| parent);
                    }
                }
            }
        }
        notify.into_iter().collect()
    }

    /// Total registrations.
    pub fn count(&self) -> usize {
        self.by_conn.values().map(BTreeSet::len).sum()
    }

    /// Number of distinct watched paths.
    pub fn path_count(&self) -> usize {
        let mut paths = HashSet::new();
        for by_path in self.by_path.values() {
            paths.extend(by_path.keys());
        }
        paths.len()
    }

    /// Number of connections with watches.
    pub fn connection_count(&self) -> usize {
        self.by_conn.len()
    }

    /// The watched paths of one connection, sorted (for `wchc`).
    pub fn paths_of(&self, conn: ConnId) -> Vec<String> {
        let mut paths: Vec<String> = self
            .by_conn
            .get(&conn)
            .map(|set| set.iter().map(|(_, p)| p.clone()).collect())
            .unwrap_or_default();
        // The set is ordered by kind first: sort by path before removing repeats.
        paths.sort_unstable();
        paths.dedup();
        paths
    }

    /// Every watched path with the connections watching it, sorted (for `wchp`).
    pub fn conns_by_path(&self) -> Vec<(String, Vec<ConnId>)> {
        let mut map: HashMap<&String, BTreeSet<ConnId>> = HashMap::new();
        for kind in WatchKind::ALL {
            if let Some(paths) = self.by_path.get(&kind) {
                for (path, conns) in paths {
                    map.entry(path).or_default().extend(conns.iter().copied());
                }
            }
        }
        let mut out: Vec<(String, Vec<ConnId>)> = map
            .into_iter()
            .map(|(p, c)| (p.clone(), c.into_iter().collect()))
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ConnId = ConnId(1);
    const B: ConnId = ConnId(2);

    #[test]
    fn one_shot_data_watch_fires_once() {
        let mut w = WatchManager::new();
        w.add(WatchKind::Data, "/a", A);
        assert_eq!(w.trigger("/a", EventType::NodeDataChanged), vec![A]);
        assert!(w.trigger("/a", EventType::NodeDataChanged).is_empty());
        assert_eq!(w.count(), 0);
    }

    #[test]
    fn delete_fires_data_and_child_watches_once_per_connection() {
        let mut w = WatchManager::new();
        w.add(WatchKind::Data, "/a", A);
        w.add(WatchKind::Child, "/a", A);
        w.add(WatchKind::Child, "/a", B);
        assert_eq!(w.trigger("/a", EventType::NodeDeleted), vec![A, B]);
        assert_eq!(w.count(), 0);
    }

    #[test]
    fn paths_of_lists_each_path_once_across_kinds() {
        let mut w = WatchManager::new();
        w.add(WatchKind::Data, "/b", A);
        w.add(WatchKind::Child, "/a", A);
        w.add(WatchKind::Data, "/a", A);
        w.add(WatchKind::Persistent, "/b", A);
        assert_eq!(w.paths_of(A), vec!["/a".to_owned(), "/b".to_owned()]);
    }

    #[test]
    fn child_watch_does_not_fire_on_data_change() {
        let mut w = WatchManager::new();
        w.add(WatchKind::Child, "/a", A);
        assert!(w.trigger("/a", EventType::NodeDataChanged).is_empty());
        assert!(w.trigger("/a", EventType::NodeCreated).is_empty());
        assert_eq!(w.trigger("/a", EventType::NodeChildrenChanged), vec![A]);
    }

    #[test]
    fn persistent_watch_stays() {
        let mut w = WatchManager::new();
        w.add(WatchKind::Persistent, "/a", A);
        for event in [
            EventType::NodeCreated,
            EventType::NodeDataChanged,
            EventType::NodeChildrenChanged,
            EventType::NodeDeleted,
        ] {
            assert_eq!(w.trigger("/a", event), vec![A], "{event:?}");
        }
        assert!(w.trigger("/a/b", EventType::NodeCreated).is_empty());
        assert_eq!(w.count(), 1);
    }

    #[test]
    fn recursive_watch_covers_descendants_but_not_child_events() {
        let mut w = WatchManager::new();
        w.add(WatchKind::PersistentRecursive, "/a", A);
        assert_eq!(w.trigger("/a/b/c", EventType::NodeCreated), vec![A]);
        assert_eq!(w.trigger("/a", EventType::NodeDataChanged), vec![A]);
        assert!(w.trigger("/a", EventType::NodeChildrenChanged).is_empty());
        assert!(w.trigger("/ab", EventType::NodeCreated).is_empty());
        w.add(WatchKind::PersistentRecursive, "/", B);
        assert_eq!(w.trigger("/x", EventType::NodeDeleted), vec![B]);
    }

    #[test]
    fn removing_a_connection_drops_its_watches() {
        let mut w = WatchManager::new();
        w.add(WatchKind::Data, "/a", A);
        w.add(WatchKind::PersistentRecursive, "/", A);
        w.add(WatchKind::Data, "/a", B);
        w.remove_conn(A);
        assert_eq!(w.trigger("/a", EventType::NodeDataChanged), vec![B]);
        assert_eq!(w.count(), 0);
        assert!(!w.remove(WatchKind::Data, "/a", A));
    }
}
