//! The names of a node's children.
//!
//! Most nodes are leaves, so nothing is allocated before the first child. A few parents (lock
//! and queue directories, sequential nodes by the million) have very many children; their
//! names move into a [`ShardedMap`] once there are more than [`SHARD_ABOVE`], so that the
//! first write under such a parent after a snapshot image copies one shard of its names, not
//! all of them. Names are reference-counted strings: copying a set copies pointers.

use std::collections::HashSet;
use std::sync::Arc;

use super::sharded_map::ShardedMap;

/// More names than this are kept in shards.
const SHARD_ABOVE: usize = 4096;
/// Sharded names fall back to one set below this many (well under [`SHARD_ABOVE`], so a
/// parent near the limit does not switch at every create and delete).
const FLATTEN_BELOW: usize = SHARD_ABOVE / 4;

type FlatSet = HashSet<Arc<str>, foldhash::fast::RandomState>;

/// The names of a node's children.
#[derive(Debug, Clone, Default)]
// Boxed: `Option<Box<_>>` costs every node 8 bytes, a set inline would cost 40.
pub struct Children(Option<Box<Names>>);

#[derive(Debug, Clone)]
enum Names {
    /// Up to [`SHARD_ABOVE`] names, copied together.
    Flat(FlatSet),
    /// More, copied a shard at a time.
    Sharded(ShardedMap<Arc<str>, ()>),
}

impl Children {
    /// Number of children.
    pub fn len(&self) -> usize {
        match self.0.as_deref() {
            None => 0,
            Some(Names::Flat(set)) => set.len(),
            Some(Names::Sharded(map)) => map.len(),
        }
    }

    /// Whether there is no child.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The child names, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let (flat, sharded) = match self.0.as_deref() {
            None => (None, None),
            Some(Names::Flat(set)) => (Some(set.iter()), None),
            Some(Names::Sharded(map)) => (None, Some(map.keys())),
        };
        flat.into_iter()
            .flatten()
            .chain(sharded.into_iter().flatten())
            .map(|name| &**name)
    }

    /// Adds a child name; false if it was there.
    pub fn insert(&mut self, name: &str) -> bool {
        let names = self
            .0
            .get_or_insert_with(|| Box::new(Names::Flat(FlatSet::default())));
        match &mut **names {
            Names::Flat(set) => {
                let added = set.insert(Arc::from(name));
                if set.len() > SHARD_ABOVE {
                    let mut map = ShardedMap::default();
                    for name in set.drain() {
                        map.insert(name, ());
                    }
                    **names = Names::Sharded(map);
                }
                added
            }
            Names::Sharded(map) => map.insert(Arc::from(name), ()).is_none(),
        }
    }

    /// Removes a child name; false if it was not there. Nothing stays allocated once the
    /// last child is gone.
    pub fn remove(&mut self, name: &str) -> bool {
        let Some(names) = self.0.as_mut() else {
            return false;
        };
        let removed = match &mut **names {
            Names::Flat(set) => set.remove(name),
            Names::Sharded(map) => {
                let removed = map.remove(name).is_some();
                if map.len() < FLATTEN_BELOW {
                    let set = map.keys().cloned().collect();
                    **names = Names::Flat(set);
                }
                removed
            }
        };
        if self.is_empty() {
            self.0 = None;
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::super::sharded_map::SHARDS;
    use super::*;
    use proptest::prelude::*;

    fn names(children: &Children) -> Vec<String> {
        let mut names: Vec<String> = children.iter().map(str::to_owned).collect();
        names.sort();
        names
    }

    fn sharded(children: &Children) -> Option<&ShardedMap<Arc<str>, ()>> {
        match children.0.as_deref() {
            Some(Names::Sharded(map)) => Some(map),
            _ => None,
        }
    }

    #[test]
    fn many_names_are_sharded_and_a_copy_shares_all_but_the_written_shard() {
        let mut children = Children::default();
        for i in 0..10_000 {
            assert!(children.insert(&format!("n{i}")));
        }
        assert!(!children.insert("n7"), "already there");
        assert_eq!(children.len(), 10_000);
        let image = children.clone();
        let shards = sharded(&image).expect("sharded above the limit");
        assert_eq!(sharded(&children).unwrap().shared_shards(shards), SHARDS);

        assert!(children.insert("new"));
        assert!(children.remove("n7"));
        let shared = sharded(&children).unwrap().shared_shards(shards);
        assert!(
            (SHARDS - 2..SHARDS).contains(&shared),
            "{shared} shards still shared"
        );
        assert_eq!((image.len(), children.len()), (10_000, 10_000));
        assert!(names(&image).contains(&"n7".to_owned()));
        assert!(!names(&children).contains(&"n7".to_owned()));
    }

    #[test]
    fn few_names_again_are_one_set_and_none_at_all_free_everything() {
        let mut children = Children::default();
        for i in 0..5_000 {
            children.insert(&format!("n{i}"));
        }
        for i in 0..4_500 {
            assert!(children.remove(&format!("n{i}")));
        }
        assert!(
            sharded(&children).is_none(),
            "flat again below the lower limit"
        );
        assert_eq!(children.len(), 500);
        for i in 4_500..5_000 {
            children.remove(&format!("n{i}"));
        }
        assert!(children.0.is_none() && children.is_empty());
        assert!(!children.remove("n1"));
    }

    #[derive(Debug, Clone)]
    enum Step {
        /// Insert the names `from..from + count`.
        Insert(u16, u16),
        /// Remove the names `from..from + count`.
        Remove(u16, u16),
        Copy,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0..8_000u16, 0..3_000u16).prop_map(|(f, c)| Step::Insert(f, c)),
            (0..8_000u16, 0..3_000u16).prop_map(|(f, c)| Step::Remove(f, c)),
            Just(Step::Copy),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Across the switches between one set and shards, the names and every copy taken
        /// of them behave as plain sets copied at that moment.
        #[test]
        fn behaves_as_a_copied_hash_set(steps in proptest::collection::vec(step(), 0..24)) {
            let mut children = Children::default();
            let mut model = std::collections::BTreeSet::new();
            let mut copies = Vec::new();
            for s in steps {
                match s {
                    Step::Insert(from, count) => {
                        for i in from..from.saturating_add(count) {
                            let name = format!("n{i}");
                            prop_assert_eq!(children.insert(&name), model.insert(name));
                        }
                    }
                    Step::Remove(from, count) => {
                        for i in from..from.saturating_add(count) {
                            let name = format!("n{i}");
                            prop_assert_eq!(children.remove(&name), model.remove(&name));
                        }
                    }
                    Step::Copy => copies.push((children.clone(), model.clone())),
                }
                prop_assert_eq!(children.len(), model.len());
            }
            for (c, expected) in copies.iter().chain(std::iter::once(&(children, model))) {
                prop_assert_eq!(c.len(), expected.len());
                prop_assert_eq!(names(c), expected.iter().cloned().collect::<Vec<_>>());
            }
        }
    }
}
