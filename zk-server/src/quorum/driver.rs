//! [`Replica`]: a tokio task that owns a [`Peer`] and executes its [`Action`]s — messages
//! through a [`QuorumTransport`], log and epochs through a [`ReplicaStorage`], committed txns
//! into a [`StateMachine`] — feeding back ticks, transport inputs and storage completions.
//!
//! # The loop
//!
//! 1. Wait for a tick (every [`DriverConfig::tick_interval`]), a transport input, or a
//!    command (propose / forward); then take every other input already waiting (so that
//!    the appends of many proposals share one sync: group commit).
//! 2. Execute the peer's actions in order: sends are queued on the transport; appends are
//!    written; truncations, snapshot installs and epoch writes are durable when done;
//!    commits are applied; `SendSnapshot` sends the state machine's
//!    [`snapshot`](StateMachine::snapshot) (everything committed before it in the same
//!    batch is applied by then).
//! 3. If anything was appended, [`sync`](ReplicaStorage::sync) and report
//!    [`Input::Persisted`] with the last durable zxid; report one [`Input::EpochsPersisted`]
//!    per epoch write. Only after the whole batch, so that a truncation later in the batch
//!    can never be covered by an earlier report. Repeat 2–3 until the peer is quiet.
//!
//! A storage error or a state the state machine cannot restore stops the replica (and its
//! transport): an fsync error is never retried.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::state_machine::{ReplicaContext, RestoreError, StateMachine};
use super::storage::{ReplicaStorage, StorageError};
use super::transport::QuorumTransport;
use crate::config::QuorumConfig;
use crate::zab::{
    Action, ElectionTimers, Input, Message, NotLeader, Peer, PeerConfig, Role, Sid, Zxid,
};

/// How a replica runs.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// The peer's configuration.
    pub peer: PeerConfig,
    /// How often the peer gets a tick. An established leader pings its learners on every
    /// tick, and election deadlines are checked on ticks.
    pub tick_interval: Duration,
    /// Committed txns between snapshots of the state machine that compact the log (like
    /// `snapCount`); 0 never compacts.
    pub snapshot_every: u64,
    /// Whether each snapshot comes after a random half-to-all of `snapshot_every` (true, as
    /// Apache: members do not all snapshot at once) or after exactly `snapshot_every` (for
    /// tests that must replay the same storage calls every run).
    pub snapshot_jitter: bool,
}

impl DriverConfig {
    /// Ticks every `tickTime / 2` (Apache's ping interval), at most every 100 ms so that
    /// the election's 200 ms finalize wait is not stretched, and at least every 1 ms; never
    /// compacts.
    pub fn new(peer: PeerConfig) -> DriverConfig {
        let ms = (peer.tick_ms / 2).clamp(1, 100);
        DriverConfig {
            peer,
            tick_interval: Duration::from_millis(ms),
            snapshot_every: 0,
            snapshot_jitter: true,
        }
    }
}

/// The peer configuration for `zoo.cfg`'s ensemble with a `tickTime` of `tick_ms`.
pub fn peer_config(quorum: &QuorumConfig, tick_ms: u64) -> PeerConfig {
    PeerConfig {
        me: quorum.my_id,
        voters: quorum.voters().map(|s| s.id).collect(),
        observers: quorum.observers().map(|s| s.id).collect(),
        tick_ms,
        init_limit: quorum.init_limit,
        sync_limit: quorum.sync_limit,
        election: ElectionTimers::default(),
    }
}

/// Why a replica stopped by itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The storage failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The state machine could not restore a snapshot.
    #[error("restoring the state machine: {0}")]
    Restore(RestoreError),
    /// The task panicked or was stopped.
    #[error("the replica task ended abnormally")]
    Aborted,
}

/// Why a write was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// Proposing needs an established leader.
    #[error(transparent)]
    NotLeader(#[from] NotLeader),
    /// Forwarding needs a leader to follow.
    #[error("no leader to forward to")]
    NoLeader,
    /// The replica has stopped.
    #[error("the replica has stopped")]
    Stopped,
}

enum Command {
    Propose {
        txn: Bytes,
        reply: oneshot::Sender<Result<Zxid, NotLeader>>,
    },
    Forward {
        data: Bytes,
        reply: oneshot::Sender<bool>,
    },
}

/// A handle to a running replica: submit writes, watch its role and progress. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ReplicaHandle {
    id: Sid,
    commands: mpsc::Sender<Command>,
    role: watch::Receiver<Role>,
    applied: watch::Receiver<Zxid>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Propose { txn, .. } => write!(f, "Propose({} bytes)", txn.len()),
            Command::Forward { data, .. } => write!(f, "Forward({} bytes)", data.len()),
        }
    }
}

impl ReplicaHandle {
    /// The replica's server id.
    pub fn id(&self) -> Sid {
        self.id
    }

    /// As an established leader: proposes `txn`; returns the zxid it got. The txn is
    /// committed once [`watch_applied`](Self::watch_applied) reaches that zxid (if this
    /// peer stays leader long enough; otherwise its fate is unknown).
    ///
    /// # Errors
    /// [`SubmitError::NotLeader`], or [`SubmitError::Stopped`].
    ///
    /// # Cancellation safety
    /// Cancelling after the command was queued may still propose the txn.
    pub async fn propose(&self, txn: Bytes) -> Result<Zxid, SubmitError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Propose { txn, reply })
            .await
            .map_err(|_| SubmitError::Stopped)?;
        Ok(rx.await.map_err(|_| SubmitError::Stopped)??)
    }

    /// As a learner: forwards a write to the leader (which prepares and proposes it, see
    /// [`StateMachine::forwarded`]). Fire and forget: the write may be lost with a
    /// connection.
    ///
    /// # Errors
    /// [`SubmitError::NoLeader`] when not following anyone, or [`SubmitError::Stopped`].
    pub async fn forward(&self, data: Bytes) -> Result<(), SubmitError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Forward { data, reply })
            .await
            .map_err(|_| SubmitError::Stopped)?;
        match rx.await {
            Ok(true) => Ok(()),
            Ok(false) => Err(SubmitError::NoLeader),
            Err(_) => Err(SubmitError::Stopped),
        }
    }

    /// The current role.
    pub fn role(&self) -> Role {
        *self.role.borrow()
    }

    /// Watches the role.
    pub fn watch_role(&self) -> watch::Receiver<Role> {
        self.role.clone()
    }

    /// Watches the zxid of the last txn applied to the state machine.
    pub fn watch_applied(&self) -> watch::Receiver<Zxid> {
        self.applied.clone()
    }
}

/// A running replica: a [`Peer`] driven by a tokio task. Dropping it stops the task (like
/// [`stop`](Self::stop), without waiting).
#[derive(Debug)]
pub struct Replica {
    handle: ReplicaHandle,
    task: Option<JoinHandle<Result<(), DriverError>>>,
}

impl Replica {
    /// Recovers from `storage`, restores its snapshot into `state_machine` (which must be
    /// empty), and starts the peer on `transport` and its `inputs` channel (both from
    /// [`QuorumTransport::start`]). The replica owns the transport from now on: it shuts it
    /// down when it stops.
    ///
    /// # Errors
    /// The storage cannot be recovered or the snapshot restored.
    pub fn spawn<S: ReplicaStorage, M: StateMachine>(
        config: DriverConfig,
        storage: S,
        state_machine: M,
        transport: QuorumTransport,
        inputs: mpsc::Receiver<Input>,
    ) -> Result<Replica, DriverError> {
        let (_, events) = mpsc::unbounded_channel();
        Replica::spawn_with_events(config, storage, state_machine, transport, inputs, events)
    }

    /// As [`spawn`](Self::spawn), and the state machine gets every event sent on `events`
    /// ([`StateMachine::event`]) on the replica's task.
    ///
    /// # Errors
    /// The storage cannot be recovered or the snapshot restored.
    pub fn spawn_with_events<S: ReplicaStorage, M: StateMachine>(
        config: DriverConfig,
        mut storage: S,
        mut state_machine: M,
        transport: QuorumTransport,
        inputs: mpsc::Receiver<Input>,
        events: mpsc::UnboundedReceiver<M::Event>,
    ) -> Result<Replica, DriverError> {
        let guard = ShutdownOnDrop(transport);
        let recovered = storage.recover()?;
        if let Some(snapshot) = recovered.snapshot {
            state_machine
                .restore(snapshot)
                .map_err(DriverError::Restore)?;
        }
        let base = recovered.state.history.base();
        let started = Instant::now();
        let peer = Peer::new(config.peer.clone(), recovered.state, 0);
        let (role_tx, role) = watch::channel(peer.role());
        let (applied_tx, applied) = watch::channel(base);
        let (commands_tx, commands) = mpsc::channel(1024);
        let (snapshots_tx, snapshots_rx) = mpsc::unbounded_channel();
        let id = peer.id();
        let driver = Driver {
            peer,
            storage,
            state_machine,
            transport: guard,
            inputs,
            commands,
            events,
            role: role_tx,
            applied: applied_tx,
            started,
            tick_interval: config.tick_interval,
            snapshot_every: config.snapshot_every,
            snapshot_jitter: config.snapshot_jitter,
            snapshot_at: snapshot_threshold(config.snapshot_every, config.snapshot_jitter),
            snapshotting: false,
            snapshots_tx,
            snapshots_rx,
        };
        let task = tokio::spawn(driver.run());
        Ok(Replica {
            handle: ReplicaHandle {
                id,
                commands: commands_tx,
                role,
                applied,
            },
            task: Some(task),
        })
    }

    /// A handle to submit writes and watch the role.
    pub fn handle(&self) -> ReplicaHandle {
        self.handle.clone()
    }

    /// Stops the replica at once, as a crash would (nothing is flushed; the transport's
    /// sockets close), and waits until it has stopped.
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Waits until the replica stops by itself (a fatal error).
    ///
    /// # Errors
    /// Why it stopped.
    pub async fn join(mut self) -> Result<(), DriverError> {
        self.stopped().await
    }

    /// Waits until the replica stops by itself (a fatal error), keeping it: dropping this
    /// future leaves the replica running, and dropping the replica stops it.
    ///
    /// # Errors
    /// Why it stopped.
    pub async fn stopped(&mut self) -> Result<(), DriverError> {
        let Some(task) = self.task.as_mut() else {
            return Ok(());
        };
        let result = task.await;
        self.task = None;
        result.map_err(|_| DriverError::Aborted)?
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Shuts the transport down when the driver ends, however it ends (also when aborted).
struct ShutdownOnDrop(QuorumTransport);

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

/// Inputs taken per loop turn beyond the first, before executing (an event counts for its
/// [`StateMachine::event_weight`]).
const MAX_BATCH: usize = 256;

struct Driver<S, M: StateMachine> {
    peer: Peer,
    storage: S,
    state_machine: M,
    transport: ShutdownOnDrop,
    inputs: mpsc::Receiver<Input>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::UnboundedReceiver<M::Event>,
    role: watch::Sender<Role>,
    applied: watch::Sender<Zxid>,
    started: Instant,
    tick_interval: Duration,
    snapshot_every: u64,
    snapshot_jitter: bool,
    /// Committed txns in the log that start the next snapshot: drawn from
    /// [`snapshot_threshold`] after each one.
    snapshot_at: u64,
    /// A periodic snapshot being encoded off the task; its result comes back on
    /// `snapshots_rx` as (zxid, state).
    snapshotting: bool,
    snapshots_tx: mpsc::UnboundedSender<(Zxid, Bytes)>,
    snapshots_rx: mpsc::UnboundedReceiver<(Zxid, Bytes)>,
}

/// How many committed txns in the log start a snapshot: between half of `every` and `every`,
/// at random, as Apache's SyncRequestProcessor (`snapCount / 2 + randRoll`), so that the
/// members of an ensemble, which commit the same txns, do not all stall writing a snapshot
/// at the same moment.
fn snapshot_threshold(every: u64, jitter: bool) -> u64 {
    if every < 2 || !jitter {
        return every;
    }
    let half = every / 2;
    half + rand::random_range(0..=every - half)
}

impl<S: ReplicaStorage, M: StateMachine> Driver<S, M> {
    fn context(&mut self) -> (&mut M, ReplicaContext<'_>) {
        (&mut self.state_machine, ReplicaContext::new(&mut self.peer))
    }

    fn event(&mut self, event: M::Event) {
        let (machine, mut replica) = self.context();
        machine.event(event, &mut replica);
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    async fn run(mut self) -> Result<(), DriverError> {
        let result = self.run_inner().await;
        if let Err(e) = &result {
            tracing::error!(me = self.peer.id(), error = %e, "replica stopped");
        }
        result
    }

    async fn run_inner(&mut self) -> Result<(), DriverError> {
        let mut ticker = tokio::time::interval(self.tick_interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        self.execute()?;
        let mut inputs_open = true;
        let mut commands_open = true;
        let mut events_open = true;
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    let now_ms = self.now_ms();
                    self.peer.handle(Input::Tick { now_ms });
                    let (machine, mut replica) = self.context();
                    machine.tick(&mut replica);
                }
                input = self.inputs.recv(), if inputs_open => match input {
                    Some(input) => self.peer.handle(input),
                    None => inputs_open = false,
                },
                command = self.commands.recv(), if commands_open => match command {
                    Some(command) => self.command(command),
                    None => commands_open = false,
                },
                event = self.events.recv(), if events_open => match event {
                    Some(event) => self.event(event),
                    None => events_open = false,
                },
                Some((zxid, state)) = self.snapshots_rx.recv() => self.compact(zxid, &state)?,
            }
            let mut taken = 0;
            while taken < MAX_BATCH {
                if let Ok(input) = self.inputs.try_recv() {
                    self.peer.handle(input);
                    taken += 1;
                } else if let Ok(command) = self.commands.try_recv() {
                    self.command(command);
                    taken += 1;
                } else if let Ok(event) = self.events.try_recv() {
                    taken += M::event_weight(&event).max(1);
                    self.event(event);
                } else {
                    break;
                }
            }
            self.execute()?;
            self.compact_if_due()?;
        }
    }

    /// Once `snapshot_at` committed txns are in the log, captures the state machine (it
    /// has applied exactly the committed txns when the peer is quiet) and has it encoded on a
    /// blocking thread; [`compact`](Self::compact) follows when it is done.
    fn compact_if_due(&mut self) -> Result<(), DriverError> {
        if self.snapshot_every == 0 || self.snapshotting {
            return Ok(());
        }
        let committed = self.peer.committed();
        let entries = self.peer.history().entries();
        let logged_and_committed = entries.partition_point(|e| e.zxid <= committed);
        if (logged_and_committed as u64) < self.snapshot_at {
            return Ok(());
        }
        self.snapshot_at = snapshot_threshold(self.snapshot_every, self.snapshot_jitter);
        let job = self.state_machine.snapshot_job();
        let done = self.snapshots_tx.clone();
        self.snapshotting = true;
        tokio::task::spawn_blocking(move || {
            let _ = done.send((committed, job()));
        });
        Ok(())
    }

    /// Writes the snapshot of the state at `zxid` and drops the log it covers. The txns
    /// committed since stay in the log; a leader's snapshot installed meanwhile makes this a
    /// no-op (the storage and the history are already past `zxid`).
    fn compact(&mut self, zxid: Zxid, state: &Bytes) -> Result<(), DriverError> {
        self.snapshotting = false;
        if zxid <= self.peer.history().base() {
            return Ok(());
        }
        self.storage.compact(zxid, state)?;
        let base = self.peer.compact(zxid);
        tracing::info!(
            me = self.peer.id(),
            base = format_args!("{base:#x}"),
            "log compacted"
        );
        Ok(())
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Propose { txn, reply } => {
                let _ = reply.send(self.peer.propose(txn));
            }
            Command::Forward { data, reply } => {
                let _ = reply.send(self.peer.forward(data));
            }
        }
    }

    /// Executes the peer's actions until it has none, reporting storage completions after
    /// each batch.
    fn execute(&mut self) -> Result<(), DriverError> {
        loop {
            let actions = self.peer.take_actions();
            if actions.is_empty() {
                return Ok(());
            }
            let mut appended = false;
            let mut epochs_written = 0usize;
            for action in actions {
                match action {
                    Action::Send { to, message } => self.transport.0.send(to, &message),
                    Action::SendSnapshot { to, zxid } => {
                        let state = self.state_machine.snapshot();
                        self.transport.0.send(to, &Message::Snap { zxid, state });
                    }
                    Action::Append(entry) => {
                        self.storage.append(&entry)?;
                        appended = true;
                    }
                    Action::Truncate { after } => self.storage.truncate(after)?,
                    Action::InstallSnapshot { zxid, state } => {
                        self.state_machine
                            .restore(state.clone())
                            .map_err(DriverError::Restore)?;
                        self.storage.install_snapshot(zxid, &state)?;
                        self.applied.send_replace(zxid);
                    }
                    Action::PersistEpochs { accepted, current } => {
                        self.storage.persist_epochs(accepted, current)?;
                        epochs_written += 1;
                    }
                    Action::Commit(entry) => {
                        let (machine, mut replica) = self.context();
                        machine.apply(&entry, &mut replica);
                        self.applied.send_replace(entry.zxid);
                    }
                    Action::RoleChanged(role) => {
                        tracing::info!(me = self.peer.id(), ?role, "role changed");
                        let (machine, mut replica) = self.context();
                        machine.role_changed(role, &mut replica);
                        self.role.send_replace(role);
                    }
                    Action::Disconnect { peer } => self.transport.0.disconnect(peer),
                    Action::Forwarded { from, data } => {
                        let (machine, mut replica) = self.context();
                        machine.forwarded(from, data, &mut replica);
                    }
                }
            }
            if appended {
                let zxid = self.storage.sync()?;
                self.peer.handle(Input::Persisted { zxid });
            }
            for _ in 0..epochs_written {
                self.peer.handle(Input::EpochsPersisted);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::snapshot_threshold;

    #[test]
    fn snapshot_thresholds_vary_between_half_and_all_of_the_count() {
        let drawn: std::collections::BTreeSet<u64> =
            (0..200).map(|_| snapshot_threshold(1000, true)).collect();
        assert!(drawn.iter().all(|t| (500..=1000).contains(t)), "{drawn:?}");
        assert!(
            drawn.len() > 10,
            "members would snapshot together: {drawn:?}"
        );
        assert_eq!(snapshot_threshold(0, true), 0, "0 never snapshots");
        assert_eq!(snapshot_threshold(1, true), 1);
        assert_eq!(snapshot_threshold(1000, false), 1000);
    }
}
