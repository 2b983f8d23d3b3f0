//! Curator's connection states and the task that derives them from the session's transitions.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::session::{Command, SessionEvent};

/// A connection state with Curator's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectionState {
    /// The first successful connection (once per client).
    Connected,
    /// The connection dropped; the session may still be alive. Locks and leaders should
    /// consider themselves suspended.
    Suspended,
    /// A suspended, lost or read-only connection is back (after LOST: with a new session).
    Reconnected,
    /// The session is considered gone: the server said it expired, or the negotiated session
    /// timeout elapsed while suspended. A new session is being built.
    Lost,
    /// Connected to a read-only server.
    ReadOnly,
}

impl ConnectionState {
    /// Whether requests can be served in this state.
    pub fn is_connected(self) -> bool {
        matches!(
            self,
            ConnectionState::Connected | ConnectionState::Reconnected | ConnectionState::ReadOnly
        )
    }
}

/// Which connection states make a recipe give up what it holds (Curator's
/// `ConnectionStateErrorPolicy`), set for a client with
/// [`ClientBuilder::connection_state_error_policy`](crate::ClientBuilder::connection_state_error_policy)
/// and consulted by the leader recipes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ConnectionStateErrorPolicy {
    /// SUSPENDED, READ_ONLY and LOST are errors: the session may be gone as soon as the
    /// connection drops, so a leader stops leading at once. Curator's default
    /// (`StandardConnectionStateErrorPolicy`). READ_ONLY counts too (Curator counts it as
    /// connected): a read-only server cannot vouch for the session, which may have expired
    /// on the quorum side.
    #[default]
    Standard,
    /// LOST is an error, SUSPENDED is not (Curator's `SessionConnectionStateErrorPolicy`): a
    /// leader keeps leading through a disconnection shorter than the session timeout. The
    /// price: LOST comes when the session timeout has passed since SUSPENDED, while the
    /// server expires the session a session timeout after it last heard from the client, so
    /// another participant may lead for up to about two thirds of the session timeout (more
    /// with clock drift or a paused process) before this one steps down. READ_ONLY is an
    /// error here too (unlike Curator): no LOST would ever come while connected to a
    /// read-only server, so a leader cut off from the quorum would lead on indefinitely.
    Session,
}

impl ConnectionStateErrorPolicy {
    /// Whether `state` is an error state under this policy.
    pub fn is_error_state(self, state: ConnectionState) -> bool {
        match self {
            ConnectionStateErrorPolicy::Standard => matches!(
                state,
                ConnectionState::Suspended | ConnectionState::ReadOnly | ConnectionState::Lost
            ),
            ConnectionStateErrorPolicy::Session => {
                matches!(state, ConnectionState::Lost | ConnectionState::ReadOnly)
            }
        }
    }
}

/// The listeners and the current state.
#[derive(Debug)]
pub(crate) struct StateHub {
    /// `None` once the client is closed: later subscribers get a stream that has ended.
    listeners: Mutex<Option<Vec<mpsc::UnboundedSender<ConnectionState>>>>,
    current: watch::Sender<Option<ConnectionState>>,
}

impl StateHub {
    pub(crate) fn new() -> Arc<StateHub> {
        Arc::new(StateHub {
            listeners: Mutex::new(Some(Vec::new())),
            current: watch::channel(None).0,
        })
    }

    pub(crate) fn subscribe(&self) -> ConnectionStates {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut l) = self.listeners.lock() {
            if let Some(l) = l.as_mut() {
                // Streams dropped since the last change go now: recipes subscribe for each
                // acquisition, and a connection can stay up for months.
                l.retain(|tx| !tx.is_closed());
                l.push(tx);
            }
        }
        ConnectionStates { rx }
    }

    #[cfg(test)]
    fn listener_count(&self) -> usize {
        self.listeners
            .lock()
            .map_or(0, |l| l.as_ref().map_or(0, Vec::len))
    }

    pub(crate) fn current(&self) -> Option<ConnectionState> {
        *self.current.borrow()
    }

    /// Follows the current state.
    pub(crate) fn receiver(&self) -> watch::Receiver<Option<ConnectionState>> {
        self.current.subscribe()
    }

    fn emit(&self, state: ConnectionState) {
        tracing::info!(?state, "connection state");
        // The current state changes under the listeners' lock: a stream subscribed by someone
        // who saw the change (`block_until_connected`) must not get it as a new one.
        let mut listeners = self.listeners.lock();
        self.current.send_replace(Some(state));
        if let Ok(Some(l)) = listeners.as_deref_mut() {
            l.retain(|tx| tx.send(state).is_ok());
        }
    }

    fn end(&self) {
        if let Ok(mut l) = self.listeners.lock() {
            *l = None;
        }
    }
}

/// A stream of connection-state changes (from the moment of subscription). Ends when the
/// client is closed.
#[derive(Debug)]
pub struct ConnectionStates {
    rx: mpsc::UnboundedReceiver<ConnectionState>,
}

impl Stream for ConnectionStates {
    type Item = ConnectionState;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ConnectionState>> {
        self.rx.poll_recv(cx)
    }
}

/// Turns session transitions into Curator states. When the negotiated timeout elapses while
/// suspended, asks the session task to abandon the session (Curator's
/// `injectSessionExpiration`); LOST is emitted only when the task reports the expiry, so it
/// can never follow a reconnect of the same session, nor precede it.
pub(crate) async fn supervise(
    mut events: mpsc::UnboundedReceiver<SessionEvent>,
    hub: Arc<StateHub>,
    commands: mpsc::WeakUnboundedSender<Command>,
    mut negotiated: Duration,
) {
    let mut lost_deadline: Option<Instant> = None;
    // Curator sends CONNECTED for the first non-negative state (READ_ONLY is negative).
    let mut initial_connect_sent = false;
    let mut session_id = 0i64;
    let mut epoch = 0u64;
    loop {
        let deadline = lost_deadline;
        let event = tokio::select! {
            ev = events.recv() => ev,
            _ = async { if let Some(d) = deadline { tokio::time::sleep_until(d).await } }, if deadline.is_some() => {
                lost_deadline = None;
                if hub.current() == Some(ConnectionState::Suspended) {
                    tracing::warn!(?negotiated, "session timeout elapsed while suspended: abandoning the session");
                    if let Some(tx) = commands.upgrade() {
                        let _ = tx.send(Command::Abandon { session_id, epoch });
                    }
                }
                continue;
            }
        };
        let Some(event) = event else { break };
        let current = hub.current();
        match event {
            SessionEvent::Connected {
                session_id: id,
                read_only,
                negotiated_timeout,
                ..
            } => {
                negotiated = negotiated_timeout;
                session_id = id;
                epoch += 1;
                lost_deadline = None;
                let next = if read_only {
                    ConnectionState::ReadOnly
                } else if !initial_connect_sent {
                    initial_connect_sent = true;
                    ConnectionState::Connected
                } else {
                    ConnectionState::Reconnected
                };
                hub.emit(next);
            }
            SessionEvent::Disconnected => {
                if current.is_some_and(ConnectionState::is_connected) {
                    hub.emit(ConnectionState::Suspended);
                    lost_deadline = Some(Instant::now() + negotiated);
                }
            }
            SessionEvent::Expired => {
                lost_deadline = None;
                if current.is_some() && current != Some(ConnectionState::Lost) {
                    hub.emit(ConnectionState::Lost);
                }
            }
            SessionEvent::AuthFailed | SessionEvent::Closed => break,
        }
    }
    hub.end();
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn connected(session_id: i64, read_only: bool) -> SessionEvent {
        SessionEvent::Connected {
            session_id,
            read_only,
            new_session: false,
            negotiated_timeout: Duration::from_secs(4),
        }
    }

    #[test]
    fn dropped_streams_do_not_pile_up_while_the_state_stays_the_same() {
        let hub = StateHub::new();
        let kept = hub.subscribe();
        for _ in 0..10_000 {
            drop(hub.subscribe());
        }
        assert!(hub.listener_count() <= 2, "{}", hub.listener_count());
        drop(kept);
    }

    #[tokio::test(start_paused = true)]
    async fn the_timer_abandons_the_session_and_lost_comes_only_from_the_expiry() {
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel();
        let hub = StateHub::new();
        let mut states = hub.subscribe();
        tokio::spawn(supervise(
            ev_rx,
            hub.clone(),
            cmd_tx.downgrade(),
            Duration::from_secs(4),
        ));
        ev_tx.send(connected(7, false)).unwrap();
        assert_eq!(states.next().await, Some(ConnectionState::Connected));
        ev_tx.send(SessionEvent::Disconnected).unwrap();
        assert_eq!(states.next().await, Some(ConnectionState::Suspended));
        // The session timeout elapses: the task is asked to abandon that session...
        match cmd_rx.recv().await {
            Some(Command::Abandon { session_id, epoch }) => {
                assert_eq!((session_id, epoch), (7, 1));
            }
            other => panic!("expected Abandon, got {other:?}"),
        }
        // ...but it had re-attached meanwhile (and ignores the stale request): RECONNECTED,
        // never LOST followed by RECONNECTED of the same session.
        ev_tx.send(connected(7, false)).unwrap();
        assert_eq!(states.next().await, Some(ConnectionState::Reconnected));
        // A real expiry is LOST, then RECONNECTED with the new session.
        ev_tx.send(SessionEvent::Disconnected).unwrap();
        assert_eq!(states.next().await, Some(ConnectionState::Suspended));
        ev_tx.send(SessionEvent::Expired).unwrap();
        assert_eq!(states.next().await, Some(ConnectionState::Lost));
        ev_tx.send(connected(8, false)).unwrap();
        assert_eq!(states.next().await, Some(ConnectionState::Reconnected));
        ev_tx.send(SessionEvent::Closed).unwrap();
        assert_eq!(states.next().await, None);
    }

    #[test]
    fn error_states_per_policy() {
        use ConnectionState::*;
        let all = [Connected, Suspended, Reconnected, Lost, ReadOnly];
        let errors = |p: ConnectionStateErrorPolicy| -> Vec<ConnectionState> {
            all.into_iter().filter(|s| p.is_error_state(*s)).collect()
        };
        assert_eq!(
            errors(ConnectionStateErrorPolicy::Standard),
            [Suspended, Lost, ReadOnly]
        );
        assert_eq!(
            errors(ConnectionStateErrorPolicy::Session),
            [Lost, ReadOnly]
        );
        assert_eq!(
            ConnectionStateErrorPolicy::default(),
            ConnectionStateErrorPolicy::Standard
        );
    }

    #[tokio::test(start_paused = true)]
    async fn read_only_then_read_write_yields_connected() {
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let (cmd_tx, _cmd_rx) = mpsc::unbounded_channel();
        let hub = StateHub::new();
        let mut states = hub.subscribe();
        tokio::spawn(supervise(
            ev_rx,
            hub.clone(),
            cmd_tx.downgrade(),
            Duration::from_secs(4),
        ));
        ev_tx.send(connected(7, true)).unwrap();
        assert_eq!(states.next().await, Some(ConnectionState::ReadOnly));
        ev_tx.send(connected(8, false)).unwrap();
        assert_eq!(states.next().await, Some(ConnectionState::Connected));
        ev_tx.send(SessionEvent::Disconnected).unwrap();
        assert_eq!(states.next().await, Some(ConnectionState::Suspended));
        ev_tx.send(connected(8, false)).unwrap();
        assert_eq!(states.next().await, Some(ConnectionState::Reconnected));
    }
}
