//! [`Peer`]: one ensemble member's ZAB state machine.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::election::{Election, ElectionTimers, Step};
use super::history::{History, SyncPlan};
use super::{make_zxid, Entry, EpochSummary, Message, ServerState, Sid, Vote, Zxid};

/// The ensemble as one peer sees it, and its timing.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// This peer's id.
    pub me: Sid,
    /// The voting members (this peer included unless it observes).
    pub voters: BTreeSet<Sid>,
    /// The observers.
    pub observers: BTreeSet<Sid>,
    /// The tick, in milliseconds (`tickTime`).
    pub tick_ms: u64,
    /// Ticks a learner has to connect and sync (`initLimit`).
    pub init_limit: u32,
    /// Ticks a learner may be silent once synced (`syncLimit`); also how long a leader keeps
    /// leading without hearing a quorum.
    pub sync_limit: u32,
    /// Election timing.
    pub election: ElectionTimers,
}

impl PeerConfig {
    fn is_quorum(&self, sids: impl IntoIterator<Item = Sid>) -> bool {
        let n = sids
            .into_iter()
            .filter(|s| self.voters.contains(s))
            .collect::<BTreeSet<_>>()
            .len();
        n * 2 > self.voters.len()
    }

    fn observes(&self) -> bool {
        !self.voters.contains(&self.me)
    }
}

/// What a peer keeps on disk: its epochs and its history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersistentState {
    /// The last epoch it accepted (acknowledged a LEADERINFO for).
    pub accepted_epoch: u32,
    /// The epoch of the last leader it synced with.
    pub current_epoch: u32,
    /// Its snapshot base and durable log.
    pub history: History,
}

/// What happens to a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Time is now `now_ms` (monotonic milliseconds).
    Tick {
        /// The time.
        now_ms: u64,
    },
    /// A message from another peer.
    Receive {
        /// The sender.
        from: Sid,
        /// The message.
        message: Message,
    },
    /// The connection with `peer` broke (messages in flight are lost).
    Disconnected {
        /// The other side.
        peer: Sid,
    },
    /// Every entry appended up to `zxid` is durable.
    Persisted {
        /// The highest durable zxid.
        zxid: Zxid,
    },
    /// The last [`Action::PersistEpochs`] is durable.
    EpochsPersisted,
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send a message.
    Send {
        /// The receiver.
        to: Sid,
        /// The message.
        message: Message,
    },
    /// Send [`Message::Snap`] with the applied state (as of `zxid`, which is what has been
    /// applied when this action is reached).
    SendSnapshot {
        /// The receiver.
        to: Sid,
        /// The state's zxid.
        zxid: Zxid,
    },
    /// Append a txn to the log; report [`Input::Persisted`] once durable.
    Append(Entry),
    /// Drop every logged txn after `after` (durable before the next action).
    Truncate {
        /// The last txn kept.
        after: Zxid,
    },
    /// Replace the state with a leader's snapshot and empty the log (durable before the next
    /// action).
    InstallSnapshot {
        /// The snapshot's zxid.
        zxid: Zxid,
        /// The state.
        state: Bytes,
    },
    /// Write both epoch files crash-safely; report [`Input::EpochsPersisted`].
    PersistEpochs {
        /// The accepted epoch.
        accepted: u32,
        /// The current epoch.
        current: u32,
    },
    /// Apply a committed txn (in zxid order).
    Commit(Entry),
    /// The peer's role changed.
    RoleChanged(Role),
    /// Close the connection with `peer` (both sides then see [`Input::Disconnected`]): a
    /// leader stepping down lets its learners know at once, as closing their sockets does.
    Disconnect {
        /// The other side.
        peer: Sid,
    },
    /// As leader: a learner forwarded a client write.
    Forwarded {
        /// The learner.
        from: Sid,
        /// The request.
        data: Bytes,
    },
}

/// A peer's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Electing.
    Looking,
    /// Leading; `established` once a quorum acked NEWLEADER (writes can be proposed).
    Leading {
        /// The epoch.
        epoch: u32,
        /// Whether proposals are accepted.
        established: bool,
    },
    /// Following `leader`; `serving` after UPTODATE.
    Following {
        /// The leader.
        leader: Sid,
        /// Whether the peer is synced and may serve clients.
        serving: bool,
    },
    /// Observing `leader`; `serving` after UPTODATE.
    Observing {
        /// The leader.
        leader: Sid,
        /// Whether the peer is synced and may serve clients.
        serving: bool,
    },
}

/// Why a proposal was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotLeader {
    /// Not leading, or not yet established.
    #[error("not an established leader")]
    NotEstablished,
}

#[derive(Debug)]
struct LearnerHandle {
    observer: bool,
    accepted_epoch: u32,
    summary: EpochSummary,
    /// Its ACKEPOCH: (current epoch, or `None` for an epoch it had already accepted, which
    /// does not count toward the epoch's quorum; last zxid).
    epoch_ack: Option<(Option<u32>, Zxid)>,
    /// Sync sent: it gets every later proposal / inform.
    forwarding: bool,
    /// The last zxid of its sync (what its NEWLEADER ack vouches for).
    synced_to: Zxid,
    /// It acked NEWLEADER.
    synced: bool,
    /// Highest zxid it acked.
    acked: Zxid,
    last_heard_ms: u64,
}

#[derive(Debug)]
struct Leading {
    since_ms: u64,
    new_epoch: Option<u32>,
    /// Our own accepted epoch is durable at `new_epoch`.
    epoch_accepted: bool,
    /// Our own NEWLEADER is due (a quorum acked the epoch).
    self_sync_requested: bool,
    /// Our currentEpoch = new epoch is being persisted.
    self_sync_pending: bool,
    /// Our currentEpoch is the new epoch, durably.
    self_synced: bool,
    established: bool,
    learners: BTreeMap<Sid, LearnerHandle>,
    /// The next counter to propose.
    next_counter: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LearnerPhase {
    /// LearnerInfo sent; waiting for LEADERINFO.
    Registering,
    /// Waiting for our accepted epoch to be durable before ACKEPOCH.
    AcceptingEpoch(u32),
    /// ACKEPOCH sent; receiving the sync (`received`: the DIFF or SNAP arrived).
    Syncing { received: bool },
    /// NEWLEADER received: waiting for the synced txns and then the epoch to be durable.
    PersistingNewLeader { epoch: u32, upto: Zxid },
    /// NEWLEADER acked; waiting for UPTODATE.
    Synced,
    /// Serving.
    Broadcast,
}

#[derive(Debug)]
struct Learning {
    leader: Sid,
    phase: LearnerPhase,
    since_ms: u64,
    /// The phase as the last tick saw it, and since when: every step of the sync must come
    /// within initLimit (messages from the leader that do not advance it do not count).
    phase_seen: LearnerPhase,
    phase_since_ms: u64,
    last_heard_ms: u64,
    leader_committed: Zxid,
    /// Highest zxid acknowledged to the leader.
    acked: Zxid,
    epochs_requested: bool,
}

#[derive(Debug)]
enum State {
    Looking(Election),
    Leading(Leading),
    Learning(Learning),
}

/// One ensemble member: election, discovery, synchronization and broadcast, without I/O.
///
/// Feed it [`Input`]s with [`handle`](Peer::handle) (and writes with
/// [`propose`](Peer::propose) when leading, [`forward`](Peer::forward) when following), then
/// execute [`take_actions`](Peer::take_actions) in order.
#[derive(Debug)]
pub struct Peer {
    config: PeerConfig,
    accepted_epoch: u32,
    current_epoch: u32,
    history: History,
    /// Entries up to here are durable.
    persisted: Zxid,
    /// Entries up to here are committed and were handed to [`Action::Commit`].
    committed: Zxid,
    election_round: u64,
    /// The vote we settled on last (reported to LOOKING peers).
    settled_vote: Option<(Vote, u64)>,
    /// Members whose connection broke and that have not been heard from since: an election
    /// does not wait for their votes.
    unreachable: BTreeSet<Sid>,
    now_ms: u64,
    state: State,
    actions: Vec<Action>,
}

impl Peer {
    /// A peer starting (or restarting) from its durable state at time `now_ms`; it begins by
    /// looking for a leader. Its snapshot (the history's base) counts as applied.
    pub fn new(config: PeerConfig, disk: PersistentState, now_ms: u64) -> Peer {
        let persisted = disk.history.last_zxid();
        let committed = disk.history.base();
        let mut peer = Peer {
            accepted_epoch: disk.accepted_epoch,
            current_epoch: disk.current_epoch,
            history: disk.history,
            persisted,
            committed,
            election_round: 0,
            settled_vote: None,
            unreachable: BTreeSet::new(),
            now_ms,
            state: State::Looking(Election::new(
                config.me,
                config.voters.clone(),
                config.election,
                0,
                Vote {
                    leader: config.me,
                    zxid: 0,
                    peer_epoch: 0,
                },
                now_ms,
            )),
            config,
            actions: Vec::new(),
        };
        peer.look();
        peer
    }

    /// This peer's id.
    pub fn id(&self) -> Sid {
        self.config.me
    }

    /// The current role.
    pub fn role(&self) -> Role {
        match &self.state {
            State::Looking(_) => Role::Looking,
            State::Leading(l) => Role::Leading {
                epoch: l.new_epoch.unwrap_or(0),
                established: l.established,
            },
            State::Learning(l) => {
                let serving = l.phase == LearnerPhase::Broadcast;
                if self.config.observes() {
                    Role::Observing {
                        leader: l.leader,
                        serving,
                    }
                } else {
                    Role::Following {
                        leader: l.leader,
                        serving,
                    }
                }
            }
        }
    }

    /// The history held (durable or not yet).
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The commit point.
    pub fn committed(&self) -> Zxid {
        self.committed
    }

    /// The accepted and current epochs.
    pub fn epochs(&self) -> (u32, u32) {
        (self.accepted_epoch, self.current_epoch)
    }

    /// Forgets log entries up to `zxid` once a snapshot covers them (at most the commit
    /// point: uncommitted txns are never compacted). Returns the new base.
    pub fn compact(&mut self, zxid: Zxid) -> Zxid {
        self.history.compact_to(zxid.min(self.committed));
        self.history.base()
    }

    /// The actions to execute, in order.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// As leader: its learners as (voters, voters synced, observers synced) — what `mntr`
    /// reports as `zk_followers`, `zk_synced_followers` and `zk_synced_observers`.
    pub fn learner_counts(&self) -> Option<(usize, usize, usize)> {
        let State::Leading(l) = &self.state else {
            return None;
        };
        let voters = l.learners.values().filter(|h| !h.observer);
        let observers = l.learners.values().filter(|h| h.observer);
        Some((
            voters.clone().count(),
            voters.filter(|h| h.synced).count(),
            observers.filter(|h| h.synced).count(),
        ))
    }

    /// As an established leader: the zxid the next [`propose`](Self::propose) assigns.
    pub fn next_zxid(&self) -> Option<Zxid> {
        match &self.state {
            State::Leading(l) if l.established => {
                l.new_epoch.map(|epoch| make_zxid(epoch, l.next_counter))
            }
            _ => None,
        }
    }

    /// As an established leader: assigns the next zxid to `txn` and proposes it.
    ///
    /// # Errors
    /// [`NotLeader`] otherwise.
    pub fn propose(&mut self, txn: Bytes) -> Result<Zxid, NotLeader> {
        let State::Leading(l) = &mut self.state else {
            return Err(NotLeader::NotEstablished);
        };
        let (true, Some(epoch)) = (l.established, l.new_epoch) else {
            return Err(NotLeader::NotEstablished);
        };
        if l.next_counter == u32::MAX {
            // ZOOKEEPER-1277: the epoch's counter is used up (the next zxid would wrap into
            // the next epoch's): elect again, which starts a new epoch (Apache's leader shuts
            // down on XidRolloverException the same way).
            tracing::warn!(
                epoch,
                "the zxid counter of this epoch is used up; electing again"
            );
            self.look();
            return Err(NotLeader::NotEstablished);
        }
        let zxid = make_zxid(epoch, l.next_counter);
        l.next_counter += 1;
        let entry = Entry { zxid, txn };
        if self.history.append(entry.clone()).is_err() {
            // Cannot happen: the leader's counter follows its own log.
            return Err(NotLeader::NotEstablished);
        }
        self.actions.push(Action::Append(entry.clone()));
        for (sid, h) in &l.learners {
            if h.forwarding && !h.observer {
                self.actions.push(Action::Send {
                    to: *sid,
                    message: Message::Proposal(entry.clone()),
                });
            }
        }
        Ok(zxid)
    }

    /// Test hook: makes the next proposal of an established leader use `counter`.
    #[cfg(test)]
    pub(crate) fn set_next_counter(&mut self, counter: u32) {
        if let State::Leading(l) = &mut self.state {
            l.next_counter = counter;
        }
    }

    /// As a learner: forwards a client write to the leader. False when there is no leader.
    pub fn forward(&mut self, data: Bytes) -> bool {
        match &self.state {
            State::Learning(l) => {
                self.actions.push(Action::Send {
                    to: l.leader,
                    message: Message::Request { data },
                });
                true
            }
            _ => false,
        }
    }

    /// Feeds one input.
    pub fn handle(&mut self, input: Input) {
        match input {
            Input::Tick { now_ms } => {
                self.now_ms = self.now_ms.max(now_ms);
                self.tick();
            }
            Input::Receive { from, message } => self.receive(from, message),
            Input::Disconnected { peer } => self.disconnected(peer),
            Input::Persisted { zxid } => {
                self.persisted = self.persisted.max(zxid.min(self.history.last_zxid()));
                self.after_persist();
            }
            Input::EpochsPersisted => self.epochs_persisted(),
        }
    }

    // ----- election -----

    fn my_vote(&self) -> Vote {
        Vote {
            leader: self.config.me,
            zxid: self.history.last_zxid(),
            peer_epoch: self.current_epoch,
        }
    }

    /// Starts a new election round, closing the connections of the role it leaves.
    fn look(&mut self) {
        match &self.state {
            State::Leading(l) => {
                for sid in l.learners.keys() {
                    self.actions.push(Action::Disconnect { peer: *sid });
                }
            }
            State::Learning(l) => self.actions.push(Action::Disconnect { peer: l.leader }),
            State::Looking(_) => {}
        }
        self.election_round += 1;
        self.settled_vote = None;
        let election = Election::new(
            self.config.me,
            self.config.voters.clone(),
            self.config.election,
            self.election_round,
            self.my_vote(),
            self.now_ms,
        );
        self.state = State::Looking(election);
        self.actions.push(Action::RoleChanged(Role::Looking));
        self.broadcast_vote();
    }

    fn notification(&self) -> Message {
        match (&self.state, self.settled_vote) {
            (State::Looking(e), _) => Message::Notification {
                state: ServerState::Looking,
                vote: e.vote,
                election_epoch: e.clock,
            },
            (State::Leading(_), Some((vote, round))) => Message::Notification {
                state: ServerState::Leading,
                vote,
                election_epoch: round,
            },
            (State::Learning(_), Some((vote, round))) => Message::Notification {
                state: if self.config.observes() {
                    ServerState::Observing
                } else {
                    ServerState::Following
                },
                vote,
                election_epoch: round,
            },
            (_, None) => Message::Notification {
                state: ServerState::Looking,
                vote: self.my_vote(),
                election_epoch: self.election_round,
            },
        }
    }

    fn broadcast_vote(&mut self) {
        let message = self.notification();
        for sid in self.config.voters.clone() {
            if sid != self.config.me {
                self.actions.push(Action::Send {
                    to: sid,
                    message: message.clone(),
                });
            }
        }
    }

    fn election_step(&mut self, step: Step) {
        match step {
            Step::Nothing => {}
            Step::Broadcast => self.broadcast_vote(),
            Step::Reply(to) => {
                let message = self.notification();
                self.actions.push(Action::Send { to, message });
            }
            Step::Decided(vote) => {
                let round = match &self.state {
                    State::Looking(e) => e.clock,
                    _ => self.election_round,
                };
                self.election_round = self.election_round.max(round);
                self.settled_vote = Some((vote, round));
                if vote.leader == self.config.me && !self.config.observes() {
                    self.lead();
                } else if vote.leader == self.config.me {
                    // An observer cannot lead: look again.
                    self.look();
                } else {
                    self.learn(vote.leader);
                }
            }
        }
    }

    // ----- leader -----

    fn lead(&mut self) {
        self.state = State::Leading(Leading {
            since_ms: self.now_ms,
            new_epoch: None,
            epoch_accepted: false,
            self_sync_requested: false,
            self_sync_pending: false,
            self_synced: false,
            established: false,
            learners: BTreeMap::new(),
            next_counter: 1,
        });
        self.actions.push(Action::RoleChanged(self.role()));
        // Tell everyone (LOOKING peers may be waiting for the leader's confirmation).
        self.broadcast_vote();
        // A lone voter is its own quorum: no learner will register to trigger this.
        self.try_choose_epoch();
    }

    fn leader_receive(&mut self, from: Sid, message: Message) {
        let now = self.now_ms;
        let State::Leading(l) = &mut self.state else {
            return;
        };
        if let Some(h) = l.learners.get_mut(&from) {
            h.last_heard_ms = now;
        }
        match message {
            Message::LearnerInfo {
                observer,
                accepted_epoch,
                current_epoch: _,
                summary,
            } => {
                let member = if observer {
                    self.config.observers.contains(&from)
                } else {
                    self.config.voters.contains(&from)
                };
                if !member {
                    return;
                }
                // A learner that accepted a newer epoch than ours (an election that failed
                // elsewhere) refuses ours and would come back forever: elect again, so that the
                // next epoch is above every accepted one.
                if l.new_epoch.is_some_and(|epoch| accepted_epoch > epoch) {
                    tracing::info!(
                        learner = from,
                        accepted_epoch,
                        "a learner accepted a newer epoch than ours; electing again"
                    );
                    self.look();
                    return;
                }
                l.learners.insert(
                    from,
                    LearnerHandle {
                        observer,
                        accepted_epoch,
                        summary,
                        epoch_ack: None,
                        forwarding: false,
                        synced_to: 0,
                        synced: false,
                        acked: 0,
                        last_heard_ms: now,
                    },
                );
                match l.new_epoch {
                    Some(epoch) if l.epoch_accepted => self.actions.push(Action::Send {
                        to: from,
                        message: Message::LeaderInfo { new_epoch: epoch },
                    }),
                    Some(_) => {}
                    None => self.try_choose_epoch(),
                }
            }
            Message::AckEpoch {
                current_epoch,
                last_zxid,
            } => {
                let Some(h) = l.learners.get_mut(&from) else {
                    return;
                };
                h.epoch_ack = Some((current_epoch, last_zxid));
                // A learner with a more recent history than ours: we must not lead. (An ack
                // that does not count is not compared, as in Apache's waitForEpochAck.)
                if current_epoch.is_some_and(|current| {
                    (current, last_zxid) > (self.current_epoch, self.history.last_zxid())
                }) && !h.observer
                {
                    tracing::warn!(
                        learner = from,
                        "a learner is more up to date; electing again"
                    );
                    self.look();
                    return;
                }
                self.try_sync();
            }
            Message::AckNewLeader { epoch } => {
                let Some(h) = l.learners.get_mut(&from) else {
                    return;
                };
                if Some(epoch) != l.new_epoch || !h.forwarding {
                    return;
                }
                h.synced = true;
                h.acked = h.acked.max(h.synced_to);
                if l.established {
                    let committed = self.committed;
                    self.actions.push(Action::Send {
                        to: from,
                        message: Message::UpToDate { committed },
                    });
                }
                self.try_establish();
                self.advance_commit();
            }
            Message::Ack { zxid } => {
                if let Some(h) = l.learners.get_mut(&from) {
                    if h.synced && !h.observer {
                        h.acked = h.acked.max(zxid);
                    }
                }
                self.advance_commit();
            }
            Message::PingReply => {}
            Message::Request { data } if l.established => {
                self.actions.push(Action::Forwarded { from, data });
            }
            // A LOOKING peer's notification is answered in `receive`; others are stale.
            _ => {}
        }
    }

    /// Discovery: once a quorum registered, the new epoch is one more than every accepted
    /// epoch among them (and ours).
    fn try_choose_epoch(&mut self) {
        let me = self.config.me;
        let State::Leading(l) = &mut self.state else {
            return;
        };
        if l.new_epoch.is_some() {
            return;
        }
        let registered: Vec<Sid> = l
            .learners
            .iter()
            .filter(|(_, h)| !h.observer)
            .map(|(s, _)| *s)
            .chain(std::iter::once(me))
            .collect();
        if !self.config.is_quorum(registered) {
            return;
        }
        let max_accepted = l
            .learners
            .values()
            .filter(|h| !h.observer)
            .map(|h| h.accepted_epoch)
            .chain(std::iter::once(self.accepted_epoch))
            .max()
            .unwrap_or(0);
        let Some(epoch) = max_accepted.checked_add(1) else {
            return;
        };
        l.new_epoch = Some(epoch);
        self.accepted_epoch = epoch;
        self.actions.push(Action::PersistEpochs {
            accepted: epoch,
            current: self.current_epoch,
        });
    }

    /// Synchronization: with a quorum of ACKEPOCHs, sync every learner that acked.
    fn try_sync(&mut self) {
        let me = self.config.me;
        let State::Leading(l) = &mut self.state else {
            return;
        };
        let (Some(epoch), true) = (l.new_epoch, l.epoch_accepted) else {
            return;
        };
        let acked: Vec<Sid> = l
            .learners
            .iter()
            .filter(|(_, h)| matches!(h.epoch_ack, Some((Some(_), _))) && !h.observer)
            .map(|(s, _)| *s)
            .chain(std::iter::once(me))
            .collect();
        if !l.established && !self.config.is_quorum(acked) {
            return;
        }
        // Our own NEWLEADER: the new epoch becomes current once our log is durable.
        l.self_sync_requested = true;
        let pending: Vec<Sid> = l
            .learners
            .iter()
            // Observers receive committed txns only: they sync once our history is committed.
            .filter(|(_, h)| {
                h.epoch_ack.is_some() && !h.forwarding && (!h.observer || l.established)
            })
            .map(|(s, _)| *s)
            .collect();
        for sid in pending {
            self.sync_learner(sid, epoch);
        }
        self.maybe_self_sync();
    }

    fn maybe_self_sync(&mut self) {
        let State::Leading(l) = &mut self.state else {
            return;
        };
        if l.self_sync_requested
            && !l.self_sync_pending
            && !l.self_synced
            && self.persisted >= self.history.last_zxid()
        {
            if let Some(epoch) = l.new_epoch {
                l.self_sync_pending = true;
                self.actions.push(Action::PersistEpochs {
                    accepted: self.accepted_epoch,
                    current: epoch,
                });
            }
        }
    }

    fn sync_learner(&mut self, sid: Sid, epoch: u32) {
        let committed = self.committed;
        let State::Leading(l) = &mut self.state else {
            return;
        };
        let Some(h) = l.learners.get_mut(&sid) else {
            return;
        };
        let plan = self.history.sync_plan(&h.summary);
        // Observers only receive committed txns.
        let upto = if h.observer {
            committed
        } else {
            self.history.last_zxid()
        };
        let common = match plan {
            SyncPlan::Diff { common, .. } if common <= upto => common,
            _ => {
                // SNAP: our applied state, then what follows it.
                self.actions.push(Action::SendSnapshot {
                    to: sid,
                    zxid: committed,
                });
                committed
            }
        };
        let entries: Vec<Entry> = self
            .history
            .entries_after(common)
            .iter()
            .take_while(|e| e.zxid <= upto)
            .cloned()
            .collect();
        self.actions.push(Action::Send {
            to: sid,
            message: Message::Diff {
                common,
                entries,
                committed,
            },
        });
        self.actions.push(Action::Send {
            to: sid,
            message: Message::NewLeader { epoch },
        });
        h.forwarding = true;
        h.synced_to = upto;
    }

    /// A quorum acked NEWLEADER (us included): our whole history is committed, UPTODATE goes
    /// out, proposals may start.
    fn try_establish(&mut self) {
        let me = self.config.me;
        let State::Leading(l) = &mut self.state else {
            return;
        };
        if l.established || !l.self_synced {
            return;
        }
        let synced: Vec<Sid> = l
            .learners
            .iter()
            .filter(|(_, h)| h.synced && !h.observer)
            .map(|(s, _)| *s)
            .chain(std::iter::once(me))
            .collect();
        if !self.config.is_quorum(synced) {
            return;
        }
        l.established = true;
        let target = self.history.last_zxid();
        let to_inform = self.commit_to(target);
        let committed = self.committed;
        let State::Leading(l) = &mut self.state else {
            return;
        };
        for (sid, h) in &l.learners {
            if h.synced {
                self.actions.push(Action::Send {
                    to: *sid,
                    message: Message::UpToDate { committed },
                });
            }
        }
        // Observers synced earlier get the newly committed txns; waiting ones sync now.
        self.inform_observers(&to_inform);
        self.actions.push(Action::RoleChanged(self.role()));
        self.try_sync();
    }

    /// Commits what a quorum of voters holds durably.
    fn advance_commit(&mut self) {
        let me = self.config.me;
        let persisted = self.persisted;
        let State::Leading(l) = &self.state else {
            return;
        };
        if !l.established {
            return;
        }
        let mut acks: Vec<Zxid> = self
            .config
            .voters
            .iter()
            .map(|sid| {
                if *sid == me {
                    persisted
                } else {
                    l.learners
                        .get(sid)
                        .filter(|h| h.synced)
                        .map(|h| h.acked)
                        .unwrap_or(0)
                }
            })
            .collect();
        acks.sort_unstable_by(|a, b| b.cmp(a));
        let majority = self.config.voters.len() / 2 + 1;
        let Some(&candidate) = acks.get(majority - 1) else {
            return;
        };
        if candidate > self.committed {
            let newly = self.commit_to(candidate);
            let State::Leading(l) = &self.state else {
                return;
            };
            for (sid, h) in &l.learners {
                if h.forwarding && !h.observer {
                    self.actions.push(Action::Send {
                        to: *sid,
                        message: Message::Commit { zxid: candidate },
                    });
                }
            }
            self.inform_observers(&newly);
        }
    }

    fn inform_observers(&mut self, entries: &[Entry]) {
        let State::Leading(l) = &self.state else {
            return;
        };
        for (sid, h) in &l.learners {
            if h.forwarding && h.observer {
                for e in entries {
                    if e.zxid > h.synced_to {
                        self.actions.push(Action::Send {
                            to: *sid,
                            message: Message::Inform(e.clone()),
                        });
                    }
                }
            }
        }
    }

    // ----- learner -----

    fn learn(&mut self, leader: Sid) {
        self.state = State::Learning(Learning {
            leader,
            phase: LearnerPhase::Registering,
            since_ms: self.now_ms,
            phase_seen: LearnerPhase::Registering,
            phase_since_ms: self.now_ms,
            last_heard_ms: self.now_ms,
            leader_committed: 0,
            acked: 0,
            epochs_requested: false,
        });
        self.actions.push(Action::RoleChanged(self.role()));
        self.send_learner_info(leader);
    }

    /// FOLLOWERINFO / OBSERVERINFO. Sent again every tick until LEADERINFO arrives: the leader
    /// may still be finishing its election (its finalize wait) when the first one lands, and
    /// a LOOKING peer drops it — Apache's learner instead retries connecting to the leader's
    /// port, which opens only once it leads.
    fn send_learner_info(&mut self, leader: Sid) {
        self.actions.push(Action::Send {
            to: leader,
            message: Message::LearnerInfo {
                observer: self.config.observes(),
                accepted_epoch: self.accepted_epoch,
                current_epoch: self.current_epoch,
                summary: self.history.summary(),
            },
        });
    }

    fn learner_receive(&mut self, from: Sid, message: Message) {
        let now = self.now_ms;
        let State::Learning(l) = &mut self.state else {
            return;
        };
        if from != l.leader {
            return;
        }
        l.last_heard_ms = now;
        match message {
            Message::LeaderInfo { new_epoch } => {
                if l.phase != LearnerPhase::Registering {
                    return;
                }
                if new_epoch < self.accepted_epoch {
                    tracing::warn!(
                        new_epoch,
                        accepted = self.accepted_epoch,
                        "leader proposes an old epoch"
                    );
                    self.look();
                } else if new_epoch > self.accepted_epoch {
                    self.accepted_epoch = new_epoch;
                    l.phase = LearnerPhase::AcceptingEpoch(new_epoch);
                    l.epochs_requested = true;
                    self.actions.push(Action::PersistEpochs {
                        accepted: new_epoch,
                        current: self.current_epoch,
                    });
                } else {
                    // Accepted (and acked) before, for another attempt at this epoch: ack
                    // again so this leader can sync us, but not as a vote for the epoch.
                    l.phase = LearnerPhase::Syncing { received: false };
                    let message = Message::AckEpoch {
                        current_epoch: None,
                        last_zxid: self.history.last_zxid(),
                    };
                    self.actions.push(Action::Send { to: from, message });
                }
            }
            Message::Snap { zxid, state } => {
                if !matches!(l.phase, LearnerPhase::Syncing { .. }) {
                    return;
                }
                l.phase = LearnerPhase::Syncing { received: true };
                if zxid < self.committed {
                    tracing::error!(
                        zxid,
                        committed = self.committed,
                        "a snapshot older than what we applied"
                    );
                    self.look();
                    return;
                }
                self.history.reset(zxid);
                self.persisted = zxid;
                self.committed = zxid;
                self.actions.push(Action::InstallSnapshot { zxid, state });
            }
            Message::Diff {
                common,
                entries,
                committed,
            } => {
                if !matches!(l.phase, LearnerPhase::Syncing { .. }) {
                    return;
                }
                l.phase = LearnerPhase::Syncing { received: true };
                if common < self.committed {
                    // Safety: a leader never drops committed txns.
                    tracing::error!(
                        common,
                        committed = self.committed,
                        "the leader would truncate committed txns"
                    );
                    self.look();
                    return;
                }
                if !self.history.summary().holds(common) {
                    // The leader computed `common` from our summary: a sync message before
                    // this one (a SNAP) was lost. Going on would leave a hole behind the
                    // diff, or take our log for the leader's up to `common`.
                    tracing::error!(
                        common,
                        last = self.history.last_zxid(),
                        "a diff from a txn we do not hold; electing again"
                    );
                    self.look();
                    return;
                }
                l.leader_committed = l.leader_committed.max(committed);
                if self.history.last_zxid() > common {
                    self.history.truncate_after(common);
                    self.persisted = self.persisted.min(common);
                    self.actions.push(Action::Truncate { after: common });
                }
                for entry in entries {
                    if self.history.append(entry.clone()).is_err() {
                        tracing::error!(zxid = entry.zxid, "the sync leaves a hole in the log");
                        self.look();
                        return;
                    }
                    self.actions.push(Action::Append(entry));
                }
                self.apply_learner_commits();
            }
            Message::NewLeader { epoch } => {
                match l.phase {
                    LearnerPhase::Syncing { received: true } => {}
                    // NEWLEADER without the sync before it: our log may hold txns the leader
                    // does not have. Never ack it; start over.
                    LearnerPhase::Syncing { received: false } => {
                        tracing::warn!(leader = from, "NEWLEADER before the sync; electing again");
                        self.look();
                        return;
                    }
                    _ => return,
                }
                l.phase = LearnerPhase::PersistingNewLeader {
                    epoch,
                    upto: self.history.last_zxid(),
                };
                self.after_persist();
            }
            Message::UpToDate { committed } => {
                if !matches!(l.phase, LearnerPhase::Synced) {
                    return;
                }
                l.phase = LearnerPhase::Broadcast;
                l.leader_committed = l.leader_committed.max(committed);
                self.apply_learner_commits();
                self.actions.push(Action::RoleChanged(self.role()));
            }
            Message::Proposal(entry) => {
                if self.config.observes() {
                    return;
                }
                if !matches!(
                    l.phase,
                    LearnerPhase::PersistingNewLeader { .. }
                        | LearnerPhase::Synced
                        | LearnerPhase::Broadcast
                ) {
                    return;
                }
                if self.history.append(entry.clone()).is_err() {
                    tracing::error!(
                        zxid = entry.zxid,
                        last = self.history.last_zxid(),
                        "a proposal out of order; electing again"
                    );
                    self.look();
                    return;
                }
                self.actions.push(Action::Append(entry));
            }
            Message::Commit { zxid } => {
                l.leader_committed = l.leader_committed.max(zxid);
                self.apply_learner_commits();
            }
            Message::Inform(entry) => {
                if !self.config.observes() {
                    return;
                }
                if entry.zxid <= self.history.last_zxid() {
                    // Already synced with it.
                } else if self.history.append(entry.clone()).is_err() {
                    tracing::error!(zxid = entry.zxid, "an INFORM out of order; electing again");
                    self.look();
                    return;
                } else {
                    self.actions.push(Action::Append(entry.clone()));
                }
                l.leader_committed = l.leader_committed.max(entry.zxid);
                self.apply_learner_commits();
            }
            Message::Ping { committed } => {
                if l.phase == LearnerPhase::Broadcast {
                    l.leader_committed = l.leader_committed.max(committed);
                }
                self.actions.push(Action::Send {
                    to: from,
                    message: Message::PingReply,
                });
                self.apply_learner_commits();
            }
            _ => {}
        }
    }

    fn apply_learner_commits(&mut self) {
        let State::Learning(l) = &self.state else {
            return;
        };
        // Commits apply only to txns synced under this leader (after the DIFF or SNAP).
        if matches!(
            l.phase,
            LearnerPhase::Registering
                | LearnerPhase::AcceptingEpoch(_)
                | LearnerPhase::Syncing { received: false }
        ) {
            return;
        }
        let target = l.leader_committed.min(self.history.last_zxid());
        self.commit_to(target);
    }

    /// Emits Commit actions up to `target`; returns the newly committed entries.
    fn commit_to(&mut self, target: Zxid) -> Vec<Entry> {
        if target <= self.committed {
            return Vec::new();
        }
        let newly: Vec<Entry> = self
            .history
            .entries_after(self.committed)
            .iter()
            .take_while(|e| e.zxid <= target)
            .cloned()
            .collect();
        for e in &newly {
            self.actions.push(Action::Commit(e.clone()));
        }
        if let Some(last) = newly.last() {
            self.committed = last.zxid;
        }
        newly
    }

    fn after_persist(&mut self) {
        let persisted = self.persisted;
        match &mut self.state {
            State::Learning(l) => {
                if let LearnerPhase::PersistingNewLeader { epoch, upto } = l.phase {
                    if persisted >= upto && !l.epochs_requested {
                        l.epochs_requested = true;
                        self.actions.push(Action::PersistEpochs {
                            accepted: self.accepted_epoch.max(epoch),
                            current: epoch,
                        });
                    }
                }
                if !self.config.observes()
                    && matches!(l.phase, LearnerPhase::Synced | LearnerPhase::Broadcast)
                    && persisted > l.acked
                {
                    l.acked = persisted;
                    self.actions.push(Action::Send {
                        to: l.leader,
                        message: Message::Ack { zxid: persisted },
                    });
                }
            }
            State::Leading(_) => {
                self.maybe_self_sync();
                self.advance_commit();
            }
            State::Looking(_) => {}
        }
    }

    fn epochs_persisted(&mut self) {
        match &mut self.state {
            State::Learning(l) => {
                if !l.epochs_requested {
                    return;
                }
                l.epochs_requested = false;
                match l.phase {
                    LearnerPhase::AcceptingEpoch(_) => {
                        l.phase = LearnerPhase::Syncing { received: false };
                        let message = Message::AckEpoch {
                            current_epoch: Some(self.current_epoch),
                            last_zxid: self.history.last_zxid(),
                        };
                        self.actions.push(Action::Send {
                            to: l.leader,
                            message,
                        });
                    }
                    LearnerPhase::PersistingNewLeader { epoch, upto } => {
                        self.current_epoch = epoch;
                        self.accepted_epoch = self.accepted_epoch.max(epoch);
                        l.phase = LearnerPhase::Synced;
                        l.acked = upto;
                        self.actions.push(Action::Send {
                            to: l.leader,
                            message: Message::AckNewLeader { epoch },
                        });
                        // Proposals made durable while the epoch was being written: the
                        // leader counts NEWLEADER's ack for the sync only.
                        if !self.config.observes() && self.persisted > upto {
                            l.acked = self.persisted;
                            self.actions.push(Action::Send {
                                to: l.leader,
                                message: Message::Ack {
                                    zxid: self.persisted,
                                },
                            });
                        }
                    }
                    _ => {}
                }
            }
            State::Leading(l) => {
                if !l.epoch_accepted && l.new_epoch.is_some() {
                    l.epoch_accepted = true;
                    let epoch = l.new_epoch.unwrap_or(0);
                    let to: Vec<Sid> = l.learners.keys().copied().collect();
                    for sid in to {
                        self.actions.push(Action::Send {
                            to: sid,
                            message: Message::LeaderInfo { new_epoch: epoch },
                        });
                    }
                    self.try_sync();
                } else if l.self_sync_pending {
                    l.self_sync_pending = false;
                    l.self_synced = true;
                    self.current_epoch = l.new_epoch.unwrap_or(self.current_epoch);
                    self.try_establish();
                    self.advance_commit();
                }
            }
            State::Looking(_) => {}
        }
    }

    // ----- common -----

    fn receive(&mut self, from: Sid, message: Message) {
        let member = self.config.voters.contains(&from) || self.config.observers.contains(&from);
        if !member || from == self.config.me {
            return;
        }
        self.unreachable.remove(&from);
        if let Message::Notification {
            state,
            vote,
            election_epoch,
        } = message
        {
            let now = self.now_ms;
            match &mut self.state {
                State::Looking(e) => {
                    let step = e.receive(from, state, vote, election_epoch, now);
                    self.election_step(step);
                    self.decide_if_all_agree();
                }
                _ => {
                    if state == ServerState::Looking {
                        let reply = self.notification();
                        self.actions.push(Action::Send {
                            to: from,
                            message: reply,
                        });
                    }
                }
            }
            return;
        }
        match self.state {
            State::Looking(_) => {}
            State::Leading(_) => self.leader_receive(from, message),
            State::Learning(_) => self.learner_receive(from, message),
        }
    }

    /// The finalize wait gives a better vote time to arrive; when every voter that can still
    /// vote has voted for ours, none can, and waiting only delays the failover.
    fn decide_if_all_agree(&mut self) {
        if let State::Looking(e) = &self.state {
            if let Some(vote) = e.agreed_by_all(&self.unreachable) {
                self.election_step(Step::Decided(vote));
            }
        }
    }

    fn disconnected(&mut self, peer: Sid) {
        self.unreachable.insert(peer);
        match &mut self.state {
            State::Leading(l) => {
                l.learners.remove(&peer);
            }
            State::Learning(l) if l.leader == peer => {
                tracing::info!(leader = peer, "lost the leader");
                self.look();
            }
            State::Learning(_) => {}
            State::Looking(_) => self.decide_if_all_agree(),
        }
    }

    fn tick(&mut self) {
        let now = self.now_ms;
        let tick = self.config.tick_ms;
        let init = tick * self.config.init_limit as u64;
        let sync = tick * self.config.sync_limit as u64;
        let me = self.config.me;
        match &mut self.state {
            State::Looking(e) => {
                let step = e.tick(now);
                self.election_step(step);
            }
            State::Leading(l) => {
                if !l.established {
                    if now.saturating_sub(l.since_ms) > init {
                        tracing::info!("no quorum synced within initLimit; electing again");
                        self.look();
                    }
                    return;
                }
                // Drop silent learners, closing their connections (as Apache's LearnerHandler
                // shuts down): otherwise a learner cut off this way keeps serving reads from a
                // state that no longer moves until its own syncLimit. Step down without a
                // live quorum.
                let actions = &mut self.actions;
                l.learners.retain(|sid, h| {
                    let live = now.saturating_sub(h.last_heard_ms) <= sync;
                    if !live {
                        tracing::warn!(
                            learner = sid,
                            "no word from a learner within syncLimit: dropping it"
                        );
                        actions.push(Action::Disconnect { peer: *sid });
                    }
                    live
                });
                let live: Vec<Sid> = l
                    .learners
                    .iter()
                    .filter(|(_, h)| h.synced && !h.observer)
                    .map(|(s, _)| *s)
                    .chain(std::iter::once(me))
                    .collect();
                if !self.config.is_quorum(live) {
                    tracing::info!("lost the quorum; electing again");
                    self.look();
                    return;
                }
                let committed = self.committed;
                let State::Leading(l) = &self.state else {
                    return;
                };
                for (sid, h) in &l.learners {
                    if h.forwarding {
                        self.actions.push(Action::Send {
                            to: *sid,
                            message: Message::Ping { committed },
                        });
                    }
                }
            }
            State::Learning(l) => {
                if l.phase == LearnerPhase::Registering {
                    let leader = l.leader;
                    self.send_learner_info(leader);
                    let State::Learning(l) = &self.state else {
                        return;
                    };
                    if now.saturating_sub(l.since_ms) > init {
                        tracing::info!(leader, "the leader never answered; electing again");
                        self.look();
                    }
                    return;
                }
                if l.phase == LearnerPhase::Broadcast {
                    if now.saturating_sub(l.last_heard_ms) > sync {
                        tracing::info!(leader = l.leader, "the leader is silent; electing again");
                        self.look();
                    }
                    return;
                }
                // Syncing: each step must come within initLimit, whatever else the leader
                // sends meanwhile (a step that never comes must not leave us waiting forever).
                if l.phase != l.phase_seen {
                    l.phase_seen = l.phase;
                    l.phase_since_ms = now;
                } else if now.saturating_sub(l.phase_since_ms) > init {
                    tracing::info!(
                        leader = l.leader,
                        phase = ?l.phase,
                        "the sync did not advance within initLimit; electing again"
                    );
                    self.look();
                }
            }
        }
    }
}
