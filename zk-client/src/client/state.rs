//! Curator's connection states and the task that derives them from the session's transitions.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::session::{SessionEvent, Shared};

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

/// The listeners and the current state.
#[derive(Debug)]
pub(crate) struct StateHub {
    listeners: Mutex<Vec<mpsc::UnboundedSender<ConnectionState>>>,
    current: watch::Sender<Option<ConnectionState>>,
}

impl StateHub {
    pub(crate) fn new() -> Arc<StateHub> {
        Arc::new(StateHub {
            listeners: Mutex::new(Vec::new()),
            current: watch::channel(None).0,
        })
    }

    pub(crate) fn subscribe(&self) -> ConnectionStates {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut l) = self.listeners.lock() {
            l.push(tx);
        }
        ConnectionStates { rx }
    }

    pub(crate) fn current(&self) -> Option<ConnectionState> {
        *self.current.borrow()
    }

    fn emit(&self, state: ConnectionState) {
        tracing::info!(?state, "connection state");
        self.current.send_replace(Some(state));
        if let Ok(mut l) = self.listeners.lock() {
            l.retain(|tx| tx.send(state).is_ok());
        }
    }

    fn end(&self) {
        if let Ok(mut l) = self.listeners.lock() {
            l.clear();
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

/// Turns session transitions into Curator states, and declares the session LOST when the
/// negotiated timeout elapses while suspended (then tells the session task to drop it and
/// build a new one).
pub(crate) async fn supervise(
    mut events: mpsc::UnboundedReceiver<SessionEvent>,
    hub: Arc<StateHub>,
    shared: Arc<Shared>,
    mut negotiated: Duration,
) {
    let mut lost_deadline: Option<Instant> = None;
    loop {
        let deadline = lost_deadline;
        let event = tokio::select! {
            ev = events.recv() => ev,
            _ = async { if let Some(d) = deadline { tokio::time::sleep_until(d).await } }, if deadline.is_some() => {
                lost_deadline = None;
                if hub.current() == Some(ConnectionState::Suspended) {
                    tracing::warn!(?negotiated, "session timeout elapsed while suspended: session lost");
                    hub.emit(ConnectionState::Lost);
                    shared.abandon.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                continue;
            }
        };
        let Some(event) = event else { break };
        let current = hub.current();
        match event {
            SessionEvent::Connected {
                read_only,
                negotiated_timeout,
                ..
            } => {
                negotiated = negotiated_timeout;
                lost_deadline = None;
                let next = match (current, read_only) {
                    (_, true) => ConnectionState::ReadOnly,
                    (None, false) => ConnectionState::Connected,
                    (Some(_), false) => ConnectionState::Reconnected,
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
