//! An ensemble member: the server core runs as the replica's [`StateMachine`], on the
//! replica's task, so that preparing a write, proposing it and applying commits never race.
//! Client connections reach it as [`Event`]s; its actions go to the connections and to the
//! replica ([`ReplicaContext::propose`] as leader, [`ReplicaContext::forward`] as learner).

use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{deliver, forget_if_disconnected, now, Event, Outbound};
use crate::admin::{self, AdminContext};
use crate::config::ServerConfig;
use crate::core::{Action, Input, Now, ReplicaRole, ServerCore};
use crate::quorum::{ReplicaContext, RestoreError, StateMachine};
use crate::zab::{Entry, Role, Sid};
use crate::{ConnId, IdMap};

/// The server core of one ensemble member, driven by its replica.
pub(super) struct EnsembleMachine {
    pub(super) core: ServerCore,
    pub(super) conns: IdMap<ConnId, mpsc::UnboundedSender<Outbound>>,
    pub(super) config: ServerConfig,
    pub(super) started: Instant,
    pub(super) epoch: Instant,
    /// `follower` or `observer`, once synced (from the configuration).
    pub(super) learner_mode: &'static str,
    pub(super) last_container_check_ms: u64,
}

impl EnsembleMachine {
    fn step(&mut self, input: Input, replica: &mut ReplicaContext<'_>) {
        self.step_at(input, now(self.epoch), replica);
    }

    /// [`EnsembleMachine::step`] at a time read once for a batch of inputs.
    fn step_at(&mut self, input: Input, now: Now, replica: &mut ReplicaContext<'_>) {
        let actions = self.core.step(input, now);
        self.execute(actions, replica);
    }

    fn execute(&mut self, actions: Vec<Action>, replica: &mut ReplicaContext<'_>) {
        for action in actions {
            match action {
                Action::Propose { zxid, txn } => match replica.propose(txn) {
                    Ok(assigned) if assigned == zxid => {}
                    Ok(assigned) => tracing::error!(
                        prepared = format_args!("0x{zxid:x}"),
                        assigned = format_args!("0x{assigned:x}"),
                        "a txn was prepared for another zxid than the replica assigned"
                    ),
                    // The role changed in this very batch; the core hears of it next and
                    // closes the connections waiting for the write.
                    Err(e) => tracing::debug!(error = %e, "proposal refused"),
                },
                Action::Forward { data } => {
                    if !replica.forward(data) {
                        tracing::debug!("no leader to forward to");
                    }
                }
                Action::Persist { .. } | Action::Snapshot { .. } => {
                    tracing::error!("an ensemble core emitted a standalone storage action");
                }
                other => deliver(&self.conns, other),
            }
        }
    }

    fn mode(&self) -> Option<&'static str> {
        match self.core.replica_role()? {
            ReplicaRole::NotServing => None,
            ReplicaRole::Leader { .. } => Some("leader"),
            ReplicaRole::Learner { .. } => Some(self.learner_mode),
        }
    }
}

impl StateMachine for EnsembleMachine {
    type Event = Event;

    fn apply(&mut self, entry: &Entry, replica: &mut ReplicaContext<'_>) {
        let input = Input::Committed {
            zxid: entry.zxid,
            txn: entry.txn.clone(),
        };
        self.step(input, replica);
    }

    fn snapshot(&self) -> Bytes {
        self.core.encode_state()
    }

    fn snapshot_job(&self) -> Box<dyn FnOnce() -> Bytes + Send> {
        Box::new(self.core.state_job())
    }

    fn restore(&mut self, state: Bytes) -> Result<(), RestoreError> {
        self.core.restore_state(&state).map_err(RestoreError::from)
    }

    fn forwarded(&mut self, from: Sid, request: Bytes, replica: &mut ReplicaContext<'_>) {
        let input = Input::Forwarded {
            from,
            data: request,
        };
        self.step(input, replica);
    }

    fn role_changed(&mut self, role: Role, replica: &mut ReplicaContext<'_>) {
        let role = ReplicaRole::of(role, replica.next_zxid());
        self.step(Input::Role(role), replica);
    }

    fn tick(&mut self, replica: &mut ReplicaContext<'_>) {
        self.step(Input::Tick, replica);
        let mono_ms = now(self.epoch).mono_ms;
        if mono_ms.saturating_sub(self.last_container_check_ms)
            >= self.config.container_check_interval_ms
        {
            self.last_container_check_ms = mono_ms;
            self.step(Input::CheckContainers, replica);
        }
    }

    fn event(&mut self, event: Event, replica: &mut ReplicaContext<'_>) {
        match event {
            Event::Register { conn, tx } => {
                self.conns.insert(conn, tx);
            }
            Event::Inputs(inputs) => {
                let now = now(self.epoch);
                for input in inputs {
                    forget_if_disconnected(&mut self.conns, &input);
                    self.step_at(input, now, replica);
                }
            }
            Event::FourLetter { word, reply } => {
                let ctx = AdminContext {
                    config: &self.config,
                    started: self.started,
                    mode: self.mode(),
                    learners: replica.learner_counts(),
                };
                let _ = reply.send(admin::respond(word, &mut self.core, &ctx));
            }
            Event::ExpireSession { session_id, reply } => {
                let (known, actions) = self.core.expire_session(session_id, now(self.epoch));
                self.execute(actions, replica);
                let _ = reply.send(known);
            }
            Event::Storage(_) => {}
        }
    }

    fn event_weight(event: &Event) -> usize {
        event.inputs()
    }
}
