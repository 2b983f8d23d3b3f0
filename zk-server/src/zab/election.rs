//! FastLeaderElection as a state machine: one round of a LOOKING peer.

use std::collections::{BTreeMap, BTreeSet};

use super::{ServerState, Sid, Vote};

/// Election timing, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElectionTimers {
    /// How long a vote backed by a quorum waits for a better one before it is final
    /// (Apache's `finalizeWait`, 200 ms).
    pub finalize_wait_ms: u64,
    /// The first interval between re-sent notifications when nothing arrives; it doubles.
    pub min_resend_ms: u64,
    /// The largest interval (Apache: 60 s).
    pub max_resend_ms: u64,
}

impl Default for ElectionTimers {
    fn default() -> Self {
        ElectionTimers {
            finalize_wait_ms: 200,
            min_resend_ms: 200,
            max_resend_ms: 60_000,
        }
    }
}

/// What the election wants done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing.
    Nothing,
    /// Send the current vote to every voter.
    Broadcast,
    /// Send the current vote to one peer (it is behind).
    Reply(Sid),
    /// The election is over: follow (or lead) this vote's leader.
    Decided(Vote),
}

/// One LOOKING phase.
#[derive(Debug, Clone)]
pub(crate) struct Election {
    me: Sid,
    voters: BTreeSet<Sid>,
    timers: ElectionTimers,
    /// The logical clock (election round).
    pub(crate) clock: u64,
    /// Our current vote.
    pub(crate) vote: Vote,
    initial: Vote,
    /// Votes of LOOKING voters in this round (ours included).
    votes: BTreeMap<Sid, Vote>,
    /// Votes of settled (FOLLOWING / LEADING) voters, with their round and state.
    settled: BTreeMap<Sid, (Vote, u64, ServerState)>,
    finalize_at: Option<u64>,
    resend_at: u64,
    resend_every: u64,
}

impl Election {
    /// A new round: `clock` is the previous round + 1; `initial` votes for ourselves (an
    /// observer starts without a usable vote: it never wins).
    pub(crate) fn new(
        me: Sid,
        voters: BTreeSet<Sid>,
        timers: ElectionTimers,
        clock: u64,
        initial: Vote,
        now_ms: u64,
    ) -> Election {
        let mut e = Election {
            me,
            voters,
            timers,
            clock,
            vote: initial,
            initial,
            votes: BTreeMap::new(),
            settled: BTreeMap::new(),
            finalize_at: None,
            resend_at: now_ms + timers.min_resend_ms,
            resend_every: timers.min_resend_ms,
        };
        if e.voters.contains(&me) {
            e.votes.insert(me, initial);
        }
        // A lone voter backs itself with a quorum already.
        e.recheck(now_ms);
        e
    }

    fn quorum_of(&self, backers: impl Iterator<Item = Sid>) -> bool {
        let n = backers.filter(|s| self.voters.contains(s)).count();
        n * 2 > self.voters.len()
    }

    fn backing(&self, vote: &Vote) -> bool {
        self.quorum_of(
            self.votes
                .iter()
                .filter(|(_, v)| *v == vote)
                .map(|(s, _)| *s),
        )
    }

    /// After our vote changed: start (or stop) waiting for a better vote.
    fn recheck(&mut self, now_ms: u64) {
        self.finalize_at = if self.voters.contains(&self.vote.leader) && self.backing(&self.vote) {
            Some(now_ms + self.timers.finalize_wait_ms)
        } else {
            None
        };
    }

    /// A notification arrived from `from`.
    pub(crate) fn receive(
        &mut self,
        from: Sid,
        state: ServerState,
        vote: Vote,
        round: u64,
        now_ms: u64,
    ) -> Step {
        if !self.voters.contains(&from) {
            // Observers' votes never count.
            return Step::Nothing;
        }
        match state {
            ServerState::Looking => {
                let mut step = Step::Nothing;
                if round > self.clock {
                    self.clock = round;
                    self.votes.clear();
                    if self.voters.contains(&self.me) {
                        self.votes.insert(self.me, self.initial);
                    }
                    self.vote = if vote.beats(&self.initial) && self.voters.contains(&vote.leader) {
                        vote
                    } else {
                        self.initial
                    };
                    if self.voters.contains(&self.me) {
                        self.votes.insert(self.me, self.vote);
                    }
                    step = Step::Broadcast;
                } else if round < self.clock {
                    return Step::Reply(from);
                } else if vote.beats(&self.vote) && self.voters.contains(&vote.leader) {
                    self.vote = vote;
                    if self.voters.contains(&self.me) {
                        self.votes.insert(self.me, vote);
                    }
                    step = Step::Broadcast;
                }
                self.votes.insert(from, vote);
                self.recheck(now_ms);
                step
            }
            ServerState::Following | ServerState::Leading => {
                if round == self.clock {
                    self.votes.insert(from, vote);
                    if self.backing(&vote) && self.leader_confirmed(&vote, round) {
                        return Step::Decided(vote);
                    }
                }
                self.settled.insert(from, (vote, round, state));
                // Settled peers that follow (or are) this leader. Only the leader is compared:
                // followers that joined it at different times report different votes for it,
                // and the sync with the leader (not the vote) is what keeps ZAB safe.
                let agreeing = self
                    .settled
                    .iter()
                    .filter(|(_, (v, _, _))| v.leader == vote.leader)
                    .map(|(s, _)| *s);
                if self.quorum_of(agreeing) && self.leader_confirmed(&vote, round) {
                    self.clock = round;
                    return Step::Decided(vote);
                }
                Step::Nothing
            }
            ServerState::Observing => Step::Nothing,
        }
    }

    /// Apache's `checkLeader`: a leader other than us must itself say it is LEADING; if it is
    /// us, the round must be ours.
    fn leader_confirmed(&self, vote: &Vote, round: u64) -> bool {
        if vote.leader == self.me {
            round == self.clock
        } else {
            matches!(
                self.settled.get(&vote.leader),
                Some((_, _, ServerState::Leading))
            )
        }
    }

    /// Our vote, if every voter outside `unreachable` has voted for it (and they are a
    /// quorum): no better vote can still arrive, so the finalize wait would only add latency.
    pub(crate) fn agreed_by_all(&self, unreachable: &BTreeSet<Sid>) -> Option<Vote> {
        let leader = self.vote.leader;
        if !self.voters.contains(&leader) || unreachable.contains(&leader) {
            return None;
        }
        let all = self
            .voters
            .iter()
            .filter(|v| !unreachable.contains(v))
            .all(|v| self.votes.get(v) == Some(&self.vote));
        (all && self.backing(&self.vote)).then_some(self.vote)
    }

    /// Time passed: decide after the finalize wait, or re-send our vote when quiet.
    pub(crate) fn tick(&mut self, now_ms: u64) -> Step {
        if let Some(at) = self.finalize_at {
            if now_ms >= at && self.backing(&self.vote) {
                return Step::Decided(self.vote);
            }
        }
        if now_ms >= self.resend_at {
            self.resend_every = (self.resend_every * 2).min(self.timers.max_resend_ms);
            self.resend_at = now_ms + self.resend_every;
            return Step::Broadcast;
        }
        Step::Nothing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(leader: Sid, zxid: i64) -> Vote {
        Vote {
            leader,
            zxid,
            peer_epoch: 1,
        }
    }

    fn voters() -> BTreeSet<Sid> {
        [1, 2, 3].into_iter().collect()
    }

    #[test]
    fn a_quorum_backing_the_best_vote_decides_after_the_finalize_wait() {
        let t = ElectionTimers::default();
        let mut e = Election::new(1, voters(), t, 1, vote(1, 5), 0);
        // Peer 2 has a longer history: we adopt its vote and broadcast.
        assert_eq!(
            e.receive(2, ServerState::Looking, vote(2, 9), 1, 10),
            Step::Broadcast
        );
        assert_eq!(e.vote, vote(2, 9));
        // 1 and 2 back it: a quorum of 3. Not before the finalize wait.
        assert_eq!(e.tick(100), Step::Nothing);
        assert_eq!(e.tick(210), Step::Decided(vote(2, 9)));
    }

    #[test]
    fn a_higher_round_resets_and_a_lower_one_gets_a_reply() {
        let t = ElectionTimers::default();
        let mut e = Election::new(1, voters(), t, 3, vote(1, 5), 0);
        assert_eq!(
            e.receive(2, ServerState::Looking, vote(2, 1), 2, 0),
            Step::Reply(2)
        );
        assert_eq!(
            e.receive(3, ServerState::Looking, vote(3, 1), 7, 0),
            Step::Broadcast
        );
        assert_eq!(e.clock, 7);
        assert_eq!(e.vote, vote(1, 5), "our own history is better");
    }

    #[test]
    fn settled_peers_are_joined_only_when_their_leader_confirms() {
        let t = ElectionTimers::default();
        let mut e = Election::new(3, voters(), t, 1, vote(3, 0), 0);
        assert_eq!(
            e.receive(1, ServerState::Following, vote(2, 9), 4, 0),
            Step::Nothing
        );
        // A quorum (1 and 2) agrees once 2 says it leads.
        assert_eq!(
            e.receive(2, ServerState::Leading, vote(2, 9), 4, 0),
            Step::Decided(vote(2, 9))
        );
        assert_eq!(e.clock, 4);
    }

    #[test]
    fn followers_that_joined_the_leader_at_different_times_still_count() {
        // Follower 1 joined leader 2 in an earlier round (its recorded vote is older than the
        // leader's current one): a looking peer still sees a quorum following 2 (seed 146 of
        // the simulation stayed LOOKING forever when whole votes were compared).
        let t = ElectionTimers::default();
        let mut e = Election::new(3, voters(), t, 9, vote(3, 0), 0);
        let older = Vote {
            leader: 2,
            zxid: 40,
            peer_epoch: 9,
        };
        let current = Vote {
            leader: 2,
            zxid: 50,
            peer_epoch: 10,
        };
        assert_eq!(
            e.receive(1, ServerState::Following, older, 2, 0),
            Step::Nothing
        );
        assert_eq!(
            e.receive(2, ServerState::Leading, current, 3, 0),
            Step::Decided(current)
        );
    }

    #[test]
    fn observers_never_count_and_quiet_rounds_resend_with_backoff() {
        let t = ElectionTimers::default();
        let mut e = Election::new(1, voters(), t, 1, vote(1, 0), 0);
        assert_eq!(
            e.receive(9, ServerState::Looking, vote(9, 99), 1, 0),
            Step::Nothing
        );
        assert_eq!(e.tick(200), Step::Broadcast);
        assert_eq!(e.tick(500), Step::Nothing);
        assert_eq!(
            e.tick(600),
            Step::Broadcast,
            "the interval doubled to 400 ms"
        );
    }
}
