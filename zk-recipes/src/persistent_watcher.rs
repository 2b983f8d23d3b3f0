//! [`PersistentWatcher`]: Curator's `PersistentWatcher`, a persistent (optionally recursive)
//! watch that is put back after the session that held it is gone.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, watch};
use zk_client::{
    Client, ConnectionState, ConnectionStates, Error as ZkError, PersistentWatch, WatchedEvent,
};
use zk_proto::EventType;

use crate::util::{stopped, Background, Listeners};
use crate::watch_keeper::{keep_watch, Followed, KeptWatch};
use crate::{Error, Result};

/// What a [`PersistentWatcher`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WatcherEvent {
    /// The watch is in place — at start, after every reconnect and in every new session —
    /// and changes made before (while disconnected, or before a new session's watch was
    /// added) fired no event: re-read what you depend on (Curator's reset listeners). When a
    /// reconnect happens while the watch is being added, a reset may come twice.
    Reset,
    /// An event of the watch: NodeCreated, NodeDeleted, NodeDataChanged, and (not recursive)
    /// NodeChildrenChanged.
    Event(WatchedEvent),
}

/// A stream of a [`PersistentWatcher`]'s events from the moment it was subscribed. It ends
/// when the watcher is closed or dropped. Never blocks the watcher: events queue up until
/// polled.
#[must_use = "a stream does nothing unless polled"]
#[derive(Debug)]
pub struct WatcherEvents {
    rx: mpsc::UnboundedReceiver<WatcherEvent>,
}

impl Stream for WatcherEvents {
    type Item = WatcherEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatcherEvent>> {
        self.rx.poll_recv(cx)
    }
}

/// Curator's `PersistentWatcher`: a persistent watch on a node (or, recursive, on its whole
/// subtree) that lasts as long as the watcher, not as long as a session.
///
/// The client keeps a persistent watch across reconnects of one session, but it ends with
/// the session. The watcher adds it again in every new session, and reports
/// [`WatcherEvent::Reset`] whenever events may have been missed: at start, after every
/// RECONNECTED (ZooKeeper sends no catch-up events for persistent watches), and once the
/// watch is back in a new session. Closing or dropping the watcher removes the watch from
/// the server. Needs ZooKeeper 3.6+ (addWatch); on older servers the watcher logs the
/// error and its streams end.
///
/// ```no_run
/// # async fn example(client: zk_client::Client) -> zk_recipes::Result<()> {
/// use futures::StreamExt;
/// use zk_recipes::{PersistentWatcher, WatcherEvent};
///
/// let watcher = PersistentWatcher::new(client, "/app/config", true)?;
/// let mut events = watcher.events();
/// watcher.start()?;
/// while let Some(event) = events.next().await {
///     match event {
///         WatcherEvent::Reset => { /* read the whole subtree again */ }
///         WatcherEvent::Event(e) => println!("{:?} {}", e.event_type, e.path),
///         _ => {}
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct PersistentWatcher {
    shared: Arc<Shared>,
    task: Background,
}

#[derive(Debug)]
struct Shared {
    client: Client,
    path: String,
    recursive: bool,
    listeners: Listeners<WatcherEvent>,
}

impl PersistentWatcher {
    /// A watcher on `path` (the whole subtree when `recursive`). Nothing is sent until
    /// [`start`](Self::start).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an invalid path.
    pub fn new(client: Client, path: &str, recursive: bool) -> Result<PersistentWatcher> {
        zk_proto::path::validate_path(path)
            .map_err(|e| Error::InvalidArgument(format!("{path:?}: {e}")))?;
        Ok(PersistentWatcher {
            shared: Arc::new(Shared {
                client,
                path: path.to_owned(),
                recursive,
                listeners: Listeners::default(),
            }),
            task: Background::new(),
        })
    }

    /// The watched path.
    pub fn path(&self) -> &str {
        &self.shared.path
    }

    /// Adds the watch, in the background, and keeps it. Subscribe with
    /// [`events`](Self::events) first to see the first [`WatcherEvent::Reset`].
    ///
    /// # Errors
    /// [`Error::AlreadyStarted`]; [`Error::Closed`] after [`close`](Self::close).
    pub fn start(&self) -> Result<()> {
        let shared = self.shared.clone();
        self.task.start(move |stop| run(shared, stop))
    }

    /// The watcher's events from now on.
    pub fn events(&self) -> WatcherEvents {
        WatcherEvents {
            rx: self.shared.listeners.subscribe(),
        }
    }

    /// Removes the watch from the server and ends every event stream.
    pub async fn close(&self) {
        self.task.stop().await;
        self.shared.listeners.close();
    }
}

impl Drop for PersistentWatcher {
    fn drop(&mut self) {
        // The task drops its watch when it sees the flag, which removes it from the server.
        self.task.signal_stop();
        self.shared.listeners.close();
    }
}

async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut states = shared.client.connection_states();
    keep_watch(&*shared, &mut states, &mut stop).await;
    // Closed, or the client is (or failed authentication): no event comes any more.
    shared.listeners.close();
}

impl KeptWatch for Shared {
    /// The watch and the session it was added in.
    type Watch = (PersistentWatch, i64);

    async fn add(&self) -> std::result::Result<Self::Watch, ZkError> {
        let builder = self.client.add_watch(&self.path);
        let watch = if self.recursive {
            builder.recursive().await?
        } else {
            builder.await?
        };
        let session_id = self.client.session_id();
        self.listeners.emit(WatcherEvent::Reset);
        Ok((watch, session_id))
    }

    fn follow(
        &self,
        watch: Self::Watch,
        states: &mut ConnectionStates,
        stop: &mut watch::Receiver<bool>,
    ) -> impl Future<Output = Followed> + Send {
        follow(self, watch, states, stop)
    }

    async fn add_failed(
        &self,
        e: ZkError,
        _states: &mut ConnectionStates,
        _stop: &mut watch::Receiver<bool>,
    ) -> Followed {
        if matches!(e, ZkError::Unimplemented { .. }) {
            tracing::error!(path = %self.path, %e, "the server has no persistent watches (ZooKeeper < 3.6): the watcher stops");
            self.listeners.close();
            return Followed::Stop;
        }
        tracing::debug!(path = %self.path, %e, "adding the persistent watch failed; retrying");
        Followed::Rewatch
    }
}

/// Forwards one session's watch until it ends.
///
/// State changes reach this task on their own channel, possibly after the watch's own
/// stream moved on, so a state may be stale: one reported before the watch was added. A
/// RECONNECTED of the watch's session calls for a reset only after a SUSPENDED seen here
/// (and not followed by LOST, which belongs to an earlier session when the watch lives on).
async fn follow(
    shared: &Shared,
    (mut watch, session_id): (PersistentWatch, i64),
    states: &mut ConnectionStates,
    stop: &mut watch::Receiver<bool>,
) -> Followed {
    let mut suspended = false;
    loop {
        tokio::select! {
            biased;
            _ = stopped(stop) => return Followed::Stop,
            event = watch.next() => match event {
                Some(event) if is_watch_event(&event) => {
                    shared.listeners.emit(WatcherEvent::Event(event));
                }
                // The stream's own notices (session expired, watch removed): it ends next.
                Some(_) => {}
                // The session ended (a new one is being built) or the watch was removed.
                None => return Followed::Rewatch,
            },
            state = states.next() => match state {
                Some(ConnectionState::Suspended) => suspended = true,
                Some(ConnectionState::Lost) => suspended = false,
                // A new session: add the watch there (which reports the reset).
                Some(
                    ConnectionState::Reconnected
                    | ConnectionState::Connected
                    | ConnectionState::ReadOnly,
                ) if shared.client.session_id() != session_id => return Followed::Rewatch,
                // Same session on a read-only server: the client put the watch back, but
                // what changed while disconnected fired nothing (Curator resets on every
                // connected state). Still suspended: the move to a read-write server that
                // follows resets again, for what this server did not know of.
                Some(ConnectionState::ReadOnly) if suspended => {
                    shared.listeners.emit(WatcherEvent::Reset);
                }
                Some(ConnectionState::Reconnected | ConnectionState::Connected) if suspended => {
                    // Same session: the client put the watch back, but what changed while
                    // disconnected fired nothing.
                    suspended = false;
                    shared.listeners.emit(WatcherEvent::Reset);
                }
                Some(_) => {}
                None => return Followed::Stop,
            },
        }
    }
}

fn is_watch_event(event: &WatchedEvent) -> bool {
    matches!(
        event.event_type,
        EventType::NodeCreated
            | EventType::NodeDeleted
            | EventType::NodeDataChanged
            | EventType::NodeChildrenChanged
    )
}
