//! [`LeaderLatch`]: Curator's `LeaderLatch`, with its SUSPENDED/RECONNECTED fixes.

use std::fmt;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use zk_client::{
    Client, ConnectionState, ConnectionStates, CreateMode, Error as ZkError, EventType, WatchFuture,
};

use crate::nodes::{check_base_path, join, node_name, sorted_children};
use crate::util::{became_true, delete_in_background, lock, serves_writes, Listeners, OwnedNode};
use crate::{Error, Result};

/// The name of latch nodes (as Curator's `LeaderLatch`): `<path>/_c_<uuid>-latch-N`.
pub const LATCH_NAME: &str = "latch-";

/// A participant of a leader election, as listed by [`LeaderLatch::participants`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Participant {
    /// The participant's id (its node's data).
    pub id: String,
    /// Whether its node is first in the queue (the leader, once it has verified its node).
    pub is_leader: bool,
}

/// Leader election by a latch: Curator's `LeaderLatch`, layout-compatible with it.
///
/// Each participant creates a protected EPHEMERAL_SEQUENTIAL node `<path>/_c_<uuid>-latch-N`
/// holding its id (parents are containers). The lowest sequence number leads; every other
/// participant watches only its predecessor. A participant claims leadership only after
/// re-reading its node and checking that the node's `ephemeralOwner` is its current session.
///
/// Connection states follow the client's
/// [`ConnectionStateErrorPolicy`](zk_client::ConnectionStateErrorPolicy), with the fixes of
/// CURATOR-644/653. Under the default *Standard* policy, on SUSPENDED (or READ_ONLY) the
/// participant stops being leader at once; under the *Session* policy it leads on while
/// suspended. On RECONNECTED it *re-checks* its node (same session: it keeps its place in the
/// queue and leads again only if still first); on LOST it stops being leader, and creates a
/// new node with the new session.
///
/// ```no_run
/// # async fn f(client: zk_client::Client) -> zk_recipes::Result<()> {
/// use futures::StreamExt;
/// use zk_recipes::LeaderLatch;
///
/// let latch = LeaderLatch::new(client, "/app/leader", "host-1")?;
/// let mut changes = latch.leadership_changes();
/// latch.start()?;
/// latch.await_leadership().await?;
/// // Lead until the first loss (every change is reported: a loss is never hidden by a
/// // quick regain; a regain is a new term, with a new leadership token).
/// while let Some(leading) = changes.next().await {
///     if !leading {
///         break;
///     }
/// }
/// latch.close().await?;
/// # Ok(()) }
/// ```
pub struct LeaderLatch {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    path: String,
    id: String,
    leader: watch::Sender<bool>,
    closed: watch::Sender<bool>,
    status: StdMutex<Status>,
    /// Our node, while it exists (client-relative path).
    node: watch::Sender<Option<String>>,
    /// The leadership token (our node's czxid) while leading.
    token: watch::Sender<Option<i64>>,
    /// Subscribers of every leadership change ([`LeaderLatch::leadership_changes`]).
    changes: Listeners<bool>,
}

/// Every change of a latch's leadership, in order, none coalesced: `true` when it starts
/// leading, `false` when it stops (Curator's `LeaderLatchListener.isLeader` / `notLeader`).
/// Ends when the latch is closed (after its final `false`, if it led).
#[derive(Debug)]
pub struct LeadershipChanges {
    rx: tokio::sync::mpsc::UnboundedReceiver<bool>,
}

impl futures::Stream for LeadershipChanges {
    type Item = bool;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<bool>> {
        self.rx.poll_recv(cx)
    }
}

enum Status {
    Latent,
    Started(JoinHandle<()>),
    Closed,
}

impl fmt::Debug for LeaderLatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaderLatch")
            .field("path", &self.inner.path)
            .field("id", &self.inner.id)
            .field("leader", &*self.inner.leader.borrow())
            .finish_non_exhaustive()
    }
}

impl LeaderLatch {
    /// A latch on `path` for the participant `id`. Call [`LeaderLatch::start`] to take part.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an invalid path or the root.
    pub fn new(client: Client, path: &str, id: impl Into<String>) -> Result<LeaderLatch> {
        check_base_path(path)?;
        Ok(LeaderLatch {
            inner: Arc::new(Inner {
                client,
                path: path.to_owned(),
                id: id.into(),
                leader: watch::channel(false).0,
                closed: watch::channel(false).0,
                status: StdMutex::new(Status::Latent),
                node: watch::channel(None).0,
                token: watch::channel(None).0,
                changes: Listeners::default(),
            }),
        })
    }

    /// This participant's id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The latch path.
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// Joins the election (in a background task). Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`Error::AlreadyStarted`], or [`Error::Closed`] after [`LeaderLatch::close`].
    pub fn start(&self) -> Result<()> {
        let mut status = lock(&self.inner.status);
        match *status {
            Status::Latent => {
                // Subscribe before anything is sent, so no state change is missed.
                let states = self.inner.client.connection_states();
                let task = tokio::spawn(drive(self.inner.clone(), states));
                *status = Status::Started(task);
                Ok(())
            }
            Status::Started(_) => Err(Error::AlreadyStarted),
            Status::Closed => Err(Error::Closed),
        }
    }

    /// Whether this participant leads now.
    pub fn has_leadership(&self) -> bool {
        *self.inner.leader.borrow()
    }

    /// Leadership as a watch channel: `true` while leading; every change wakes `changed()`,
    /// but a reader sees only the latest value (a loss and a regain between two reads look
    /// like no change): see [`leadership_changes`](Self::leadership_changes) for each one.
    pub fn leadership(&self) -> watch::Receiver<bool> {
        self.inner.leader.subscribe()
    }

    /// Every leadership change from now on, none coalesced (Curator's
    /// `LeaderLatchListener`): a holder that lost leadership and won it again meanwhile sees
    /// `false` then `true`, and knows its earlier token is stale.
    pub fn leadership_changes(&self) -> LeadershipChanges {
        LeadershipChanges {
            rx: self.inner.changes.subscribe(),
        }
    }

    /// Waits until this participant leads.
    ///
    /// # Errors
    /// [`Error::NotStarted`] at once on a latch never started (it would wait forever; Curator's
    /// `await` throws too); [`Error::Closed`] if the latch is (or gets) closed first.
    pub async fn await_leadership(&self) -> Result<()> {
        if matches!(*lock(&self.inner.status), Status::Latent) {
            return Err(Error::NotStarted);
        }
        let mut leader = self.inner.leader.subscribe();
        let mut closed = self.inner.closed.subscribe();
        loop {
            if *closed.borrow_and_update() {
                return Err(Error::Closed);
            }
            if *leader.borrow_and_update() {
                return Ok(());
            }
            tokio::select! {
                r = leader.changed() => if r.is_err() { return Err(Error::Closed) },
                r = closed.changed() => if r.is_err() { return Err(Error::Closed) },
            }
        }
    }

    /// Waits at most `timeout` for leadership; whether this participant leads.
    ///
    /// # Errors
    /// [`Error::NotStarted`] on a latch never started; [`Error::Closed`] if the latch is (or
    /// gets) closed first.
    pub async fn await_leadership_timeout(&self, timeout: Duration) -> Result<bool> {
        match tokio::time::timeout(timeout, self.await_leadership()).await {
            Ok(r) => r.map(|()| true),
            Err(_) => Ok(self.has_leadership()),
        }
    }

    /// The leadership token while leading: the latch node's `czxid`, strictly increasing from
    /// one leader to the next. Pass it to what the leader writes so stale leaders (paused or
    /// partitioned past their session) can be rejected — the latch alone cannot prevent two
    /// processes believing they lead for a moment. `None` while not leading.
    pub fn leadership_token(&self) -> Option<i64> {
        if self.has_leadership() {
            *self.inner.token.borrow()
        } else {
            None
        }
    }

    /// This participant's node (client-relative), while it has one.
    pub fn our_path(&self) -> Option<String> {
        self.inner.node.borrow().clone()
    }

    /// This participant's node as a watch channel (`None` while it has none).
    pub fn our_path_changes(&self) -> watch::Receiver<Option<String>> {
        self.inner.node.subscribe()
    }

    /// Every participant, in queue order (the leader first).
    ///
    /// # Errors
    /// [`Error::Zk`] when a read fails.
    pub async fn participants(&self) -> Result<Vec<Participant>> {
        let client = &self.inner.client;
        let children = match client.get_children(&self.inner.path).await {
            Ok(c) => c,
            Err(ZkError::NoNode) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        read_participants(
            client,
            &self.inner.path,
            sorted_children(children, LATCH_NAME),
        )
        .await
    }

    /// The current leader (the first participant), if any.
    ///
    /// # Errors
    /// [`Error::Zk`] when a read fails.
    pub async fn leader(&self) -> Result<Option<Participant>> {
        Ok(self.participants().await?.into_iter().next())
    }

    /// Leaves the election: stops the background task, gives up leadership (observers see
    /// `false` before the node is deleted, so the next leader never overlaps with this one in
    /// this process's view) and deletes the node (if the connection is down, the delete goes
    /// on in the background). Closing twice is harmless.
    ///
    /// # Errors
    /// None today; reserved for a failing delete.
    pub async fn close(&self) -> Result<()> {
        let task = {
            let mut status = lock(&self.inner.status);
            match std::mem::replace(&mut *status, Status::Closed) {
                Status::Started(task) => Some(task),
                Status::Latent | Status::Closed => None,
            }
        };
        // `closed` first: see `set_leader`.
        self.inner.closed.send_replace(true);
        set_leader(&self.inner, false);
        // The task stops what it is doing (a create cut short leaves no orphan: it is
        // protected), deletes its node and ends.
        if let Some(task) = task {
            let _ = task.await;
        }
        self.inner.changes.close();
        Ok(())
    }
}

impl Drop for LeaderLatch {
    fn drop(&mut self) {
        let status = std::mem::replace(&mut *lock(&self.inner.status), Status::Closed);
        if let Status::Started(_task) = status {
            // The task sees the flag, deletes its node and ends on its own.
            self.inner.closed.send_replace(true);
            set_leader(&self.inner, false);
        }
        self.inner.changes.close();
    }
}

/// How long `close` waits for the first attempt to delete the latch's node (it goes on in
/// the background after that).
const CLOSE_DELETE_WAIT: Duration = Duration::from_secs(1);

/// Our node and the session that created it.
struct Node {
    path: String,
    session_id: i64,
}

/// The outcome of one check of the queue.
enum Checked {
    /// First in the queue, node verified: lead (with the node's czxid as the leadership
    /// token), and watch our own node.
    Leader(WatchFuture, i64),
    /// Not first: watch the predecessor.
    Follower(WatchFuture),
    /// Something moved meanwhile: check again.
    Again,
}

/// Sets leadership; whether it is `leader` now (a claim after `close` is refused).
fn set_leader(inner: &Inner, leader: bool) -> bool {
    if !leader {
        inner.token.send_replace(None);
    }
    inner.leader.send_if_modified(|l| {
        // Read under the leadership channel's lock: `close` raises `closed` before it
        // clears leadership, so a claim racing it either comes first (and is cleared) or
        // sees the flag; leadership never turns true after a close cleared it.
        if *l == leader || (leader && *inner.closed.borrow()) {
            false
        } else {
            tracing::info!(path = %inner.path, id = %inner.id, leader, "leadership changed");
            *l = leader;
            // Under the channel's lock: subscribers see the changes in order.
            inner.changes.emit(leader);
            true
        }
    });
    *inner.leader.borrow() == leader
}

/// Gives up our place in the queue: without its node a participant does not lead.
fn forget_node(inner: &Inner, node: &mut Option<Node>, delete: bool) {
    if let Some(n) = node.take() {
        set_leader(inner, false);
        inner.node.send_replace(None);
        if delete {
            delete_in_background(&inner.client, n.path);
        }
    }
}

/// The latch's background task.
async fn drive(inner: Arc<Inner>, mut states: ConnectionStates) {
    let client = inner.client.clone();
    let mut closed = inner.closed.subscribe();
    let mut node: Option<Node> = None;
    let mut suspended = client.connection_state().is_some_and(|s| !serves_writes(s));
    let mut backoff = Duration::from_millis(50);
    loop {
        if *closed.borrow() {
            break;
        }
        if suspended {
            // No checks until the connection is back; leadership was ended (or, under the
            // Session error policy, kept) by `handle_state`.
            tokio::select! {
                biased;
                _ = became_true(&mut closed) => break,
                s = states.next() => match s {
                    Some(s) => handle_state(&inner, &mut node, &mut suspended, s),
                    None => break,
                },
            }
            continue;
        }
        // Raced against a close: a protected create abandoned after it was sent leaves no
        // orphan (the client looks for the node in the background and deletes it), and a
        // node made before is deleted below.
        let checked = tokio::select! {
            biased;
            _ = became_true(&mut closed) => break,
            r = check(&inner, &mut node) => r,
        };
        let watch = match checked {
            Ok(Checked::Leader(w, token)) => {
                backoff = Duration::from_millis(50);
                // A state change may have arrived while checking (e.g. a SUSPENDED): apply
                // it first and, if there was any, check again rather than claim.
                let mut pending = false;
                let mut ended = false;
                while let Some(next) = states.next().now_or_never() {
                    pending = true;
                    match next {
                        Some(s) => handle_state(&inner, &mut node, &mut suspended, s),
                        None => {
                            ended = true;
                            break;
                        }
                    }
                }
                if ended {
                    break;
                }
                if pending || suspended || !client.connection_state().is_some_and(serves_writes) {
                    continue;
                }
                if *closed.borrow() {
                    break;
                }
                inner.token.send_replace(Some(token));
                if !set_leader(&inner, true) {
                    // Closed meanwhile.
                    inner.token.send_replace(None);
                    break;
                }
                w
            }
            Ok(Checked::Follower(w)) => {
                backoff = Duration::from_millis(50);
                set_leader(&inner, false);
                w
            }
            Ok(Checked::Again) => {
                // First in the queue on a read-only server (or a connection that just
                // dropped): as suspended, look again once the state changes, not in a tight
                // loop.
                suspended |= !client.connection_state().is_some_and(serves_writes);
                continue;
            }
            Err(ZkError::Closed) => break,
            Err(e) => {
                tracing::debug!(path = %inner.path, %e, "latch check failed; retrying");
                // A connection problem during the check is what the Session policy rides
                // out (LOST ends leadership when it comes); anything else ends it.
                if !e.is_retryable()
                    || e.is_session_terminal()
                    || client.is_error_state(ConnectionState::Suspended)
                {
                    set_leader(&inner, false);
                }
                tokio::select! {
                    biased;
                    _ = became_true(&mut closed) => break,
                    s = states.next() => match s {
                        Some(s) => handle_state(&inner, &mut node, &mut suspended, s),
                        None => break,
                    },
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        tokio::select! {
            biased;
            _ = became_true(&mut closed) => break,
            s = states.next() => match s {
                Some(s) => handle_state(&inner, &mut node, &mut suspended, s),
                None => break,
            },
            event = watch => {
                // The leader watches its own node: once it is deleted (by an operator, or a
                // stale cleanup) the next participant may already lead, so stop at once
                // rather than after re-queueing.
                if event.event_type == EventType::NodeDeleted
                    && node.as_ref().is_some_and(|n| n.path == event.path)
                {
                    forget_node(&inner, &mut node, false);
                }
            }
        }
    }
    set_leader(&inner, false);
    inner.node.send_replace(None);
    if let Some(ours) = node.take() {
        if *closed.borrow() {
            // Closed: delete our node. Connected, the first attempt is waited for, but only a
            // moment (a dead connection not noticed yet would hold it); the delete goes on in
            // the background either way.
            let mut own = OwnedNode::new(&client);
            own.set(ours.path);
            if client.is_connected() {
                let _ = tokio::time::timeout(CLOSE_DELETE_WAIT, own.delete_now()).await;
            } else {
                own.delete_later();
            }
        }
        // Otherwise the client is closed: its session, and our node, are gone.
    }
}

fn handle_state(inner: &Inner, node: &mut Option<Node>, suspended: &mut bool, s: ConnectionState) {
    match s {
        ConnectionState::Suspended | ConnectionState::ReadOnly => {
            // Standard error policy: the leader may have lost its session; stop leading.
            // Session policy: lead on until LOST.
            if inner.client.is_error_state(s) {
                set_leader(inner, false);
            }
            *suspended = true;
        }
        ConnectionState::Lost => {
            set_leader(inner, false);
            *suspended = true;
            // The node went (or goes) with the old session; make sure, and queue anew later.
            // A node already made in the new session (LOST seen after that create) stays:
            // deleting it would only queue us again, and leave a moment without a node.
            if node
                .as_ref()
                .is_some_and(|n| n.session_id != inner.client.session_id())
            {
                forget_node(inner, node, true);
            }
        }
        ConnectionState::Connected | ConnectionState::Reconnected => {
            *suspended = false;
            // Same session: keep the node and re-check (no reset, CURATOR-644). A new
            // session without a LOST seen: the old node is stale.
            if node
                .as_ref()
                .is_some_and(|n| n.session_id != inner.client.session_id())
            {
                forget_node(inner, node, true);
            }
        }
        _ => {}
    }
}

async fn check(inner: &Inner, node: &mut Option<Node>) -> Result<Checked, ZkError> {
    let client = &inner.client;
    if node.is_none() {
        let created = client
            .create(&join(&inner.path, LATCH_NAME))
            .mode(CreateMode::EphemeralSequential)
            .creating_parent_containers_if_needed()
            .with_protection()
            .data(inner.id.as_bytes())
            .await?;
        let session_id = created
            .stat
            .map_or_else(|| client.session_id(), |s| s.ephemeral_owner);
        inner.node.send_replace(Some(created.path.clone()));
        *node = Some(Node {
            path: created.path,
            session_id,
        });
    }
    let Some(ours) = node.as_ref() else {
        return Ok(Checked::Again);
    };
    let ours_path = ours.path.clone();
    let ours_session = ours.session_id;
    let children = match client.get_children(&inner.path).await {
        Ok(c) => c,
        Err(ZkError::NoNode) => Vec::new(),
        Err(e) => return Err(e),
    };
    let sorted = sorted_children(children, LATCH_NAME);
    let Some(index) = sorted.iter().position(|c| c == node_name(&ours_path)) else {
        // Our node is gone (session expired, or deleted by someone): queue again.
        forget_node(inner, node, false);
        return Ok(Checked::Again);
    };
    if index == 0 {
        return match client.get_data(&ours_path).watched().await {
            Ok((_, stat, watch)) => {
                let session = client.session_id();
                if stat.ephemeral_owner == session && ours_session == session {
                    if client.connection_state().is_some_and(serves_writes) {
                        Ok(Checked::Leader(watch, stat.czxid))
                    } else {
                        Ok(Checked::Again)
                    }
                } else {
                    // Left by an older session of ours: never lead on it.
                    forget_node(inner, node, true);
                    Ok(Checked::Again)
                }
            }
            Err(ZkError::NoNode) => {
                forget_node(inner, node, false);
                Ok(Checked::Again)
            }
            Err(e) => Err(e),
        };
    }
    let Some(predecessor) = index.checked_sub(1).and_then(|i| sorted.get(i)) else {
        return Ok(Checked::Again);
    };
    match client
        .get_data(&join(&inner.path, predecessor))
        .watched()
        .await
    {
        Ok((_, _, watch)) => Ok(Checked::Follower(watch)),
        Err(ZkError::NoNode) => Ok(Checked::Again),
        Err(e) => Err(e),
    }
}

/// The participants whose nodes are `names` (queue order, the first leads) under `path`, with
/// the ids their nodes hold; nodes deleted meanwhile are skipped.
pub(crate) async fn read_participants(
    client: &Client,
    path: &str,
    names: Vec<String>,
) -> Result<Vec<Participant>> {
    let mut out = Vec::new();
    for name in names {
        match client.get_data(&join(path, &name)).await {
            Ok((data, _)) => out.push(Participant {
                id: String::from_utf8_lossy(&data).into_owned(),
                is_leader: out.is_empty(),
            }),
            Err(ZkError::NoNode) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}
