//! Votes and their order (FastLeaderElection's `totalOrderPredicate`).

use std::cmp::Ordering;

use super::{Sid, Zxid};

/// A vote for a leader: the candidate and the history it would bring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Vote {
    /// The candidate.
    pub leader: Sid,
    /// The candidate's last logged zxid.
    pub zxid: Zxid,
    /// The candidate's current epoch.
    pub peer_epoch: u32,
}

impl Vote {
    /// Compares two votes with FastLeaderElection's strict total order: higher epoch first,
    /// then higher zxid, then higher server id (ZOOKEEPER-1419: the epoch comes first, and the
    /// order is total, so every peer ranks votes alike).
    pub fn rank(&self, other: &Vote) -> Ordering {
        (self.peer_epoch, self.zxid, self.leader).cmp(&(other.peer_epoch, other.zxid, other.leader))
    }

    /// Whether `self` beats `other`.
    pub fn beats(&self, other: &Vote) -> bool {
        self.rank(other) == Ordering::Greater
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(leader: Sid, zxid: Zxid, peer_epoch: u32) -> Vote {
        Vote {
            leader,
            zxid,
            peer_epoch,
        }
    }

    #[test]
    fn epoch_then_zxid_then_sid() {
        assert!(
            v(1, 5, 2).beats(&v(3, 100, 1)),
            "epoch first (ZOOKEEPER-1419)"
        );
        assert!(v(1, 6, 2).beats(&v(3, 5, 2)));
        assert!(v(3, 5, 2).beats(&v(1, 5, 2)));
        assert!(!v(3, 5, 2).beats(&v(3, 5, 2)));
    }

    #[test]
    fn zookeeper_1419_the_order_is_total_and_transitive() {
        let mut votes = Vec::new();
        for leader in 1..=3 {
            for zxid in 0..3 {
                for epoch in 0..3 {
                    votes.push(v(leader, zxid, epoch));
                }
            }
        }
        for a in &votes {
            for b in &votes {
                // Exactly one of a > b, b > a, a == b.
                let n = [a.beats(b), b.beats(a), a == b]
                    .iter()
                    .filter(|x| **x)
                    .count();
                assert_eq!(n, 1, "{a:?} vs {b:?}");
                for c in &votes {
                    if a.beats(b) && b.beats(c) {
                        assert!(a.beats(c));
                    }
                }
            }
        }
    }
}
