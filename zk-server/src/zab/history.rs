//! A peer's txn history as ZAB sees it: a base (the zxid its snapshot state covers) and the
//! logged entries after it, contiguous; a compact summary of it for learners to send; and the
//! leader's sync decision (TRUNC / DIFF / SNAP) from a learner's summary.

use super::{counter_of, epoch_of, make_zxid, Entry, Zxid};

/// The txns a peer holds: everything up to `base` as state (a snapshot), the rest as entries.
///
/// Entries are contiguous: within an epoch counters go up by one; a new epoch starts at
/// counter 1 (a new leader's first proposal).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    base: Zxid,
    entries: Vec<Entry>,
}

/// A history without its payloads: what a learner tells the leader so that the leader can
/// find the last txn both hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpochSummary {
    /// The zxid the learner's state (snapshot) covers.
    pub base: Zxid,
    /// One `(epoch, first counter, last counter)` per epoch of the logged entries, ascending.
    pub runs: Vec<(u32, u32, u32)>,
}

impl EpochSummary {
    /// Whether the summarized history holds `zxid` (in its state or its log).
    pub fn holds(&self, zxid: Zxid) -> bool {
        zxid <= self.base
            || self.runs.iter().any(|&(e, first, last)| {
                epoch_of(zxid) == e && (first..=last).contains(&counter_of(zxid))
            })
    }

    /// The last zxid the summary covers.
    pub fn last_zxid(&self) -> Zxid {
        self.runs
            .last()
            .map(|&(e, _, last)| make_zxid(e, last))
            .unwrap_or(self.base)
    }
}

/// How a leader brings a learner up to date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncPlan {
    /// The learner keeps its txns up to `common` (dropping any after it) and receives the
    /// leader's entries after `common`.
    Diff {
        /// The last txn both hold.
        common: Zxid,
        /// Whether the learner holds txns after `common` that it must drop (TRUNC).
        truncate: bool,
    },
    /// The learner is too far behind (or off) for a diff: it gets the leader's state.
    Snap,
}

/// Why an entry cannot be appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("zxid {zxid:#x} does not follow the last logged zxid {last:#x}")]
pub struct NotContiguous {
    /// The rejected zxid.
    pub zxid: Zxid,
    /// The last logged zxid.
    pub last: Zxid,
}

/// Whether `next` may follow `last` in a log.
pub(crate) fn follows(last: Zxid, next: Zxid) -> bool {
    let (le, lc) = (epoch_of(last), counter_of(last));
    let (ne, nc) = (epoch_of(next), counter_of(next));
    (ne == le && lc != u32::MAX && nc == lc + 1) || (ne > le && nc == 1)
}

impl History {
    /// A history whose state covers `base`, with no entries.
    pub fn new(base: Zxid) -> History {
        History {
            base,
            entries: Vec::new(),
        }
    }

    /// A history from a snapshot at `base` and the log entries after it.
    ///
    /// # Errors
    /// The first entry that does not follow its predecessor (a hole in the log).
    pub fn from_entries(base: Zxid, entries: Vec<Entry>) -> Result<History, NotContiguous> {
        let mut h = History::new(base);
        for e in entries {
            h.append(e)?;
        }
        Ok(h)
    }

    /// The zxid the base state covers.
    pub fn base(&self) -> Zxid {
        self.base
    }

    /// The last zxid held (the base when there are no entries).
    pub fn last_zxid(&self) -> Zxid {
        self.entries.last().map(|e| e.zxid).unwrap_or(self.base)
    }

    /// The entries, ascending.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry with this zxid.
    pub fn get(&self, zxid: Zxid) -> Option<&Entry> {
        self.entries
            .binary_search_by_key(&zxid, |e| e.zxid)
            .ok()
            .and_then(|i| self.entries.get(i))
    }

    /// The entries after `zxid`.
    pub fn entries_after(&self, zxid: Zxid) -> &[Entry] {
        let start = self.entries.partition_point(|e| e.zxid <= zxid);
        self.entries.get(start..).unwrap_or(&[])
    }

    /// Appends an entry that follows the last one.
    ///
    /// # Errors
    /// [`NotContiguous`] when it does not.
    pub fn append(&mut self, entry: Entry) -> Result<(), NotContiguous> {
        let last = self.last_zxid();
        if !follows(last, entry.zxid) {
            return Err(NotContiguous {
                zxid: entry.zxid,
                last,
            });
        }
        self.entries.push(entry);
        Ok(())
    }

    /// Drops every entry after `zxid`.
    pub fn truncate_after(&mut self, zxid: Zxid) {
        let keep = self.entries.partition_point(|e| e.zxid <= zxid);
        self.entries.truncate(keep);
    }

    /// Forgets the entries up to `zxid`, which a snapshot now covers (the new base). Learners
    /// behind the new base are then synced with a snapshot instead of a diff.
    pub fn compact_to(&mut self, zxid: Zxid) {
        if zxid <= self.base {
            return;
        }
        let drop = self.entries.partition_point(|e| e.zxid <= zxid);
        self.entries.drain(..drop);
        self.base = zxid;
    }

    /// Replaces everything with state as of `base` (an installed snapshot).
    pub fn reset(&mut self, base: Zxid) {
        self.base = base;
        self.entries.clear();
    }

    /// The summary a learner sends.
    pub fn summary(&self) -> EpochSummary {
        let mut runs: Vec<(u32, u32, u32)> = Vec::new();
        for e in &self.entries {
            let (epoch, counter) = (epoch_of(e.zxid), counter_of(e.zxid));
            match runs.last_mut() {
                Some(run) if run.0 == epoch => run.2 = counter,
                _ => runs.push((epoch, counter, counter)),
            }
        }
        EpochSummary {
            base: self.base,
            runs,
        }
    }

    /// The leader's decision for a learner with this summary.
    ///
    /// Both histories agree on everything up to the larger base (bases are committed state).
    /// Above it, a zxid names one txn ensemble-wide (one leader per epoch), so the histories
    /// agree exactly as far as they hold the same zxids: walking the epochs in order, the last
    /// common txn is where the runs first differ.
    pub fn sync_plan(&self, learner: &EpochSummary) -> SyncPlan {
        // The side with the older base must hold the other's base txn (then it holds all
        // before it); otherwise only a snapshot brings the learner up to date.
        let mine_summary = self.summary();
        if !learner.holds(self.base) || !mine_summary.holds(learner.base) {
            return SyncPlan::Snap;
        }
        let floor = self.base.max(learner.base);
        let clip = |runs: Vec<(u32, u32, u32)>| -> Vec<(u32, u32, u32)> {
            runs.into_iter()
                .filter_map(|(e, first, last)| {
                    let lo = if make_zxid(e, first) > floor {
                        first
                    } else if epoch_of(floor) == e && counter_of(floor) < last {
                        counter_of(floor) + 1
                    } else {
                        return None;
                    };
                    Some((e, lo, last))
                })
                .collect()
        };
        let mine = clip(mine_summary.runs);
        let theirs = clip(learner.runs.clone());
        let mut common = floor;
        let (mut i, mut j) = (0, 0);
        loop {
            match (mine.get(i), theirs.get(j)) {
                (Some(a), Some(b)) if a.0 == b.0 && a.1 == b.1 => {
                    common = make_zxid(a.0, a.2.min(b.2));
                    if a.2 != b.2 {
                        break;
                    }
                    i += 1;
                    j += 1;
                }
                _ => break,
            }
        }
        if common < self.base {
            return SyncPlan::Snap;
        }
        SyncPlan::Diff {
            common,
            truncate: learner.last_zxid() > common,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(e: u32, c: u32) -> Entry {
        Entry {
            zxid: make_zxid(e, c),
            txn: bytes::Bytes::from(format!("{e}:{c}")),
        }
    }

    fn history(base: Zxid, zxids: &[(u32, u32)]) -> History {
        History::from_entries(base, zxids.iter().map(|&(e, c)| entry(e, c)).collect())
            .expect("contiguous")
    }

    #[test]
    fn logs_are_contiguous() {
        let mut h = history(0, &[(1, 1), (1, 2)]);
        assert!(h.append(entry(1, 4)).is_err(), "a hole (ZOOKEEPER-4925)");
        assert!(h.append(entry(2, 2)).is_err(), "a new epoch starts at 1");
        assert!(h.append(entry(1, 2)).is_err(), "no repeats");
        h.append(entry(3, 1)).expect("epochs may skip");
        h.append(entry(3, 2)).expect("next");
        assert_eq!(h.last_zxid(), make_zxid(3, 2));
        assert_eq!(
            h.summary().runs,
            vec![(1, 1, 2), (3, 1, 2)],
            "one run per epoch"
        );
        h.truncate_after(make_zxid(1, 1));
        assert_eq!(h.last_zxid(), make_zxid(1, 1));
        assert_eq!(h.entries_after(0).len(), 1);
        // After a snapshot at 2:5, the next entry is 2:6 or a new epoch's first.
        let mut s = History::new(make_zxid(2, 5));
        assert!(s.append(entry(2, 7)).is_err());
        s.append(entry(2, 6)).expect("follows the base");
    }

    #[test]
    fn compaction_moves_the_base_and_turns_old_learners_to_snapshots() {
        let mut leader = history(0, &[(1, 1), (1, 2), (1, 3)]);
        let learner = history(0, &[(1, 1)]);
        leader.compact_to(make_zxid(1, 2));
        assert_eq!(leader.base(), make_zxid(1, 2));
        assert_eq!(leader.entries().len(), 1);
        assert_eq!(leader.last_zxid(), make_zxid(1, 3));
        leader.compact_to(make_zxid(1, 1)); // never backwards
        assert_eq!(leader.base(), make_zxid(1, 2));
        assert_eq!(leader.sync_plan(&learner.summary()), SyncPlan::Snap);
        let current = history(0, &[(1, 1), (1, 2)]);
        assert_eq!(
            leader.sync_plan(&current.summary()),
            SyncPlan::Diff {
                common: make_zxid(1, 2),
                truncate: false
            }
        );
        // Compacting everything leaves the base as the last zxid.
        leader.compact_to(make_zxid(1, 3));
        assert_eq!(
            (leader.base(), leader.last_zxid()),
            (make_zxid(1, 3), make_zxid(1, 3))
        );
        leader
            .append(entry(1, 4))
            .expect("the next entry follows the base");
    }

    #[test]
    fn a_learner_behind_gets_a_diff() {
        let leader = history(0, &[(1, 1), (1, 2), (2, 1), (2, 2)]);
        let learner = history(0, &[(1, 1)]);
        assert_eq!(
            leader.sync_plan(&learner.summary()),
            SyncPlan::Diff {
                common: make_zxid(1, 1),
                truncate: false
            }
        );
        assert_eq!(
            leader.sync_plan(&leader.summary()),
            SyncPlan::Diff {
                common: make_zxid(2, 2),
                truncate: false
            }
        );
    }

    #[test]
    fn zookeeper_1154_uncommitted_txns_of_a_failed_epoch_are_truncated() {
        // ZOOKEEPER-1154: the learner logged 2:1..2:2 alone as a leader and died; the others
        // went on in epoch 3.
        let leader = history(0, &[(1, 1), (1, 2), (3, 1)]);
        let learner = history(0, &[(1, 1), (1, 2), (2, 1), (2, 2)]);
        assert_eq!(
            leader.sync_plan(&learner.summary()),
            SyncPlan::Diff {
                common: make_zxid(1, 2),
                truncate: true
            }
        );
        // The learner lacks 1:2 (its epoch-2 leader never had it) but has 2:1: the common
        // point is 1:1, not "the largest leader zxid below the learner's last".
        let leader = history(0, &[(1, 1), (1, 2), (3, 1)]);
        let learner = history(0, &[(1, 1), (2, 1)]);
        assert_eq!(
            leader.sync_plan(&learner.summary()),
            SyncPlan::Diff {
                common: make_zxid(1, 1),
                truncate: true
            }
        );
        // Same epoch, the learner has more (an uncommitted tail).
        let leader = history(0, &[(1, 1)]);
        let learner = history(0, &[(1, 1), (1, 2), (1, 3)]);
        assert_eq!(
            leader.sync_plan(&learner.summary()),
            SyncPlan::Diff {
                common: make_zxid(1, 1),
                truncate: true
            }
        );
    }

    #[test]
    fn snapshots_bound_what_can_be_diffed() {
        // The leader's state starts at 2:5: a learner at 1:3 needs its state.
        let leader = history(make_zxid(2, 5), &[(2, 6), (2, 7)]);
        let learner = history(0, &[(1, 1), (1, 2), (1, 3)]);
        assert_eq!(leader.sync_plan(&learner.summary()), SyncPlan::Snap);
        // A learner whose snapshot is inside the leader's entries diffs from there.
        let leader = history(0, &[(1, 1), (1, 2), (1, 3), (1, 4)]);
        let learner = history(make_zxid(1, 2), &[(1, 3)]);
        assert_eq!(
            leader.sync_plan(&learner.summary()),
            SyncPlan::Diff {
                common: make_zxid(1, 3),
                truncate: false
            }
        );
        // Both at the same snapshot, nothing logged.
        let leader = History::new(make_zxid(1, 9));
        assert_eq!(
            leader.sync_plan(&leader.summary()),
            SyncPlan::Diff {
                common: make_zxid(1, 9),
                truncate: false
            }
        );
    }
}
