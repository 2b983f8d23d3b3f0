//! Hash maps shared copy-on-write in shards: the tree's path → node map, and the child names
//! of a node with very many children.
//!
//! A snapshot needs the tree as of one zxid while the server keeps applying txns. Cloning a
//! single map of a million nodes stalled every request for about 120 ms, and copying a
//! parent's million child names for its first write after a snapshot about 50 ms. A
//! [`ShardedMap`] is split into shards behind their own `Arc`s: cloning copies only those
//! pointers, and the first write to a shard still shared with a clone copies that shard alone
//! (a 256th of the map). A shard the clone has let go of by then is not copied at all.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use super::DataNode;

/// Number of shards: a power of two.
pub(super) const SHARDS: usize = 256;

type Shard<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Paths to shared nodes.
pub(super) type NodeMap = ShardedMap<Arc<str>, Arc<DataNode>>;

/// A map with string keys whose clones share its shards; see the module docs.
#[derive(Debug, Clone)]
pub(super) struct ShardedMap<K, V> {
    /// Picks a key's shard; independent of the shards' own hashers, so the keys of one
    /// shard still spread over all of its buckets.
    router: foldhash::fast::RandomState,
    shards: Box<[Arc<Shard<K, V>>]>,
    len: usize,
}

impl<K, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        ShardedMap {
            router: foldhash::fast::RandomState::default(),
            shards: (0..SHARDS).map(|_| Arc::new(Shard::default())).collect(),
            len: 0,
        }
    }
}

impl<K, V> ShardedMap<K, V>
where
    K: Borrow<str> + Hash + Eq + Clone,
    V: Clone,
{
    fn index(&self, key: &str) -> usize {
        // Truncation is the point: the low bits pick the shard.
        (self.router.hash_one(key) as usize) & (SHARDS - 1)
    }

    fn shard(&self, key: &str) -> &Shard<K, V> {
        &self.shards[self.index(key)]
    }

    fn shard_mut(&mut self, key: &str) -> &mut Shard<K, V> {
        let index = self.index(key);
        Arc::make_mut(&mut self.shards[index])
    }

    /// The value of `key`.
    pub(super) fn get(&self, key: &str) -> Option<&V> {
        self.shard(key).get(key)
    }

    /// The value of `key`, its shard made this map's own first.
    pub(super) fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.shard_mut(key).get_mut(key)
    }

    /// Whether `key` is in the map.
    pub(super) fn contains_key(&self, key: &str) -> bool {
        self.shard(key).contains_key(key)
    }

    /// Adds or replaces the value of `key`; the value it replaced.
    pub(super) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let old = self.shard_mut(key.borrow()).insert(key, value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes `key`; its value.
    pub(super) fn remove(&mut self, key: &str) -> Option<V> {
        let removed = self.shard_mut(key).remove(key);
        self.len -= usize::from(removed.is_some());
        removed
    }

    /// Number of entries.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no entry.
    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every entry, in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards.iter().flat_map(|s| s.iter())
    }

    /// Every key, in no particular order.
    pub(super) fn keys(&self) -> impl Iterator<Item = &K> {
        self.iter().map(|(key, _)| key)
    }

    /// How many shards this map shares with another (a snapshot's image).
    #[cfg(test)]
    pub(super) fn shared_shards(&self, other: &ShardedMap<K, V>) -> usize {
        self.shards
            .iter()
            .zip(other.shards.iter())
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(data: &[u8]) -> Arc<DataNode> {
        Arc::new(DataNode {
            data: Some(data.to_vec()),
            acl: Arc::new(Vec::new()),
            stat: zk_proto::StatPersisted::default(),
            children: super::super::Children::default(),
        })
    }

    fn data(map: &NodeMap, path: &str) -> Option<Vec<u8>> {
        map.get(path).and_then(|n| n.data.clone())
    }

    #[test]
    fn a_clone_shares_every_shard_until_one_is_written() {
        let mut map = NodeMap::default();
        for i in 0..10_000 {
            map.insert(Arc::from(format!("/n{i}")), node(b"old"));
        }
        let image = map.clone();
        assert_eq!(map.shared_shards(&image), SHARDS);

        Arc::make_mut(map.get_mut("/n7").expect("present")).data = Some(b"new".to_vec());
        assert_eq!(map.shared_shards(&image), SHARDS - 1);
        assert_eq!(data(&map, "/n7").as_deref(), Some(&b"new"[..]));
        assert_eq!(data(&image, "/n7").as_deref(), Some(&b"old"[..]));

        map.remove("/n8");
        map.insert(Arc::from("/added"), node(b"x"));
        assert!(map.shared_shards(&image) >= SHARDS - 3);
        assert!(image.contains_key("/n8") && !map.contains_key("/n8"));
        assert!(!image.contains_key("/added") && map.contains_key("/added"));
        assert_eq!((image.len(), map.len()), (10_000, 10_000));
    }

    #[test]
    fn a_shard_no_image_holds_any_more_is_written_in_place() {
        let mut map = NodeMap::default();
        map.insert(Arc::from("/a"), node(b"1"));
        let index = map.index("/a");
        let shard = Arc::as_ptr(&map.shards[index]);
        drop(map.clone());
        map.get_mut("/a").expect("present");
        assert_eq!(Arc::as_ptr(&map.shards[index]), shard);
    }

    #[derive(Debug, Clone)]
    enum Step {
        Insert(u8, u8),
        Remove(u8),
        Image,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (any::<u8>(), any::<u8>()).prop_map(|(k, v)| Step::Insert(k, v)),
            any::<u8>().prop_map(Step::Remove),
            Just(Step::Image),
        ]
    }

    proptest! {
        /// The map and every image taken of it behave as plain maps copied at that moment.
        #[test]
        fn behaves_as_a_copied_hash_map(steps in proptest::collection::vec(step(), 0..200)) {
            let mut map = NodeMap::default();
            let mut model: HashMap<String, Vec<u8>> = HashMap::new();
            let mut images: Vec<(NodeMap, HashMap<String, Vec<u8>>)> = Vec::new();
            for s in steps {
                match s {
                    Step::Insert(k, v) => {
                        let path = format!("/k{k}");
                        match map.get_mut(&path) {
                            Some(n) => Arc::make_mut(n).data = Some(vec![v]),
                            None => {
                                prop_assert!(map.insert(Arc::from(path.as_str()), node(&[v])).is_none());
                            }
                        }
                        model.insert(path, vec![v]);
                    }
                    Step::Remove(k) => {
                        let path = format!("/k{k}");
                        prop_assert_eq!(map.remove(&path).is_some(), model.remove(&path).is_some());
                    }
                    Step::Image if images.len() < 8 => images.push((map.clone(), model.clone())),
                    Step::Image => {}
                }
            }
            for (m, expected) in images.iter().chain(std::iter::once(&(map, model))) {
                prop_assert_eq!(m.len(), expected.len());
                prop_assert_eq!(m.is_empty(), expected.is_empty());
                let mut seen: Vec<(String, Vec<u8>)> = m
                    .iter()
                    .map(|(p, n)| (p.to_string(), n.data.clone().unwrap_or_default()))
                    .collect();
                seen.sort();
                let mut want: Vec<(String, Vec<u8>)> = expected.clone().into_iter().collect();
                want.sort();
                prop_assert_eq!(seen, want);
            }
        }
    }
}
