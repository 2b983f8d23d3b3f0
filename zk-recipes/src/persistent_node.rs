//! [`PersistentNode`]: a node kept present — re-created after it is deleted or its session
//! is lost — until closed.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{watch, Notify};
use zk_client::{Client, CreateMode, Error as ZkError};

use crate::util::Background;
use crate::{Error, Result};

/// Curator's `PersistentNode`: keeps a node at a path with the given data, whatever happens —
/// deleted by someone, its session expired (ephemeral modes), a reconnect — until
/// [`close`](PersistentNode::close) deletes it.
///
/// * Ephemeral modes: after a session loss the node is re-created by the new session. A node
///   at the path left by *this* node's previous session is replaced at once; one owned by a
///   session this node never had (another process) is left alone, and the node is created
///   once that one goes away.
/// * Sequential modes: every re-creation gets a new sequence number;
///   [`actual_path`](PersistentNode::actual_path) says which. Use
///   [`protected`](PersistentNodeBuilder::protected) so a create whose reply was lost is
///   found instead of duplicated.
/// * [`set_data`](PersistentNode::set_data) changes the data now and for every re-creation.
///   Writes by others to the node are left alone (until it is re-created).
///
/// ```no_run
/// # async fn example(client: zk_client::Client) -> zk_recipes::Result<()> {
/// use std::time::Duration;
/// use zk_client::CreateMode;
/// use zk_recipes::PersistentNode;
///
/// let node = PersistentNode::builder(client, "/app/members/host-1", b"up".to_vec())
///     .mode(CreateMode::Ephemeral)
///     .build()?;
/// node.start()?;
/// node.wait_for_initial_create(Duration::from_secs(10)).await?;
/// // ... the node is kept until:
/// node.close().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct PersistentNode {
    shared: Arc<Shared>,
    task: Background,
}

/// Options of a [`PersistentNode`]. See [`PersistentNode::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until built"]
pub struct PersistentNodeBuilder {
    client: Client,
    path: String,
    data: Vec<u8>,
    mode: CreateMode,
    protected: bool,
    ttl_ms: Option<i64>,
}

#[derive(Debug)]
struct Shared {
    client: Client,
    base_path: String,
    mode: CreateMode,
    /// The TTL of TTL modes, ms.
    ttl_ms: Option<i64>,
    protected: bool,
    /// The data to keep, with a generation number bumped by every `set_data`.
    data: Mutex<(u64, Vec<u8>)>,
    /// Woken when `data` changed.
    data_changed: Notify,
    /// The highest data generation known to be on the node.
    written: watch::Sender<u64>,
    /// A generation that reached the node by another writer ([`PersistentNode::adopt_data`]):
    /// nothing to write for it.
    adopted: std::sync::atomic::AtomicU64,
    /// The mzxid of our latest write of the data (create or set): data seen on the node at
    /// or before it is ours, not another writer's.
    written_mzxid: std::sync::atomic::AtomicI64,
    /// The node's path once created (changes with every re-creation in sequential modes).
    actual: watch::Sender<Option<String>>,
    /// The error of the latest attempt, when retrying cannot fix it (e.g. NOAUTH); cleared by
    /// a successful one.
    failure: watch::Sender<Option<ZkError>>,
    /// Whether a create was ever sent: one whose reply was lost may have made the node.
    create_sent: std::sync::atomic::AtomicBool,
}

impl PersistentNodeBuilder {
    /// The node's mode (default [`CreateMode::Ephemeral`]). A [`CreateMode::Container`] node
    /// is re-created after the server deletes it (once it had children and lost them all),
    /// and so is a TTL node (once expired). TTL modes need [`ttl`](Self::ttl).
    pub fn mode(mut self, mode: CreateMode) -> Self {
        self.mode = mode;
        self
    }

    /// The TTL of a TTL mode (Curator's `ttl` argument): the server deletes the node once it
    /// has had no children and no change for that long (while kept, it is then re-created).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl_ms = Some(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        self
    }

    /// Creates the node in protected mode (Curator's `withProtection`): a `_c_<uuid>-`
    /// name prefix lets a create whose reply was lost find its node. Only for sequential
    /// modes.
    pub fn protected(mut self) -> Self {
        self.protected = true;
        self
    }

    /// Builds the (not yet started) node keeper.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an invalid path, a TTL mode without a TTL (or a TTL
    /// without a TTL mode), or protection without a sequential mode.
    pub fn build(self) -> Result<PersistentNode> {
        crate::nodes::check_base_path(&self.path)?;
        if self.mode.is_ttl() != self.ttl_ms.is_some() {
            return Err(Error::InvalidArgument(format!(
                "{:?} with a TTL of {:?} ms: TTL modes need a TTL, and only they take one",
                self.mode, self.ttl_ms
            )));
        }
        if self.protected && !self.mode.is_sequential() {
            return Err(Error::InvalidArgument(
                "protection needs a sequential mode".to_owned(),
            ));
        }
        Ok(PersistentNode {
            shared: Arc::new(Shared {
                client: self.client,
                base_path: self.path,
                mode: self.mode,
                ttl_ms: self.ttl_ms,
                protected: self.protected,
                data: Mutex::new((0, self.data)),
                data_changed: Notify::new(),
                written: watch::channel(0).0,
                adopted: std::sync::atomic::AtomicU64::new(u64::MAX),
                written_mzxid: std::sync::atomic::AtomicI64::new(0),
                actual: watch::channel(None).0,
                failure: watch::channel(None).0,
                create_sent: std::sync::atomic::AtomicBool::new(false),
            }),
            task: Background::new(),
        })
    }
}

impl PersistentNode {
    /// Options for a node at `path` (client-relative; the prefix of the name in sequential
    /// modes) holding `data`. Parents are created as containers.
    pub fn builder(client: Client, path: &str, data: Vec<u8>) -> PersistentNodeBuilder {
        PersistentNodeBuilder {
            client,
            path: path.to_owned(),
            data,
            mode: CreateMode::Ephemeral,
            protected: false,
            ttl_ms: None,
        }
    }

    /// Starts keeping the node, in a background task (needs a tokio runtime).
    ///
    /// # Errors
    /// [`Error::AlreadyStarted`] on a second call, [`Error::Closed`] after
    /// [`close`](PersistentNode::close).
    pub fn start(&self) -> Result<()> {
        let shared = self.shared.clone();
        self.task.start(|stop| keep(shared, stop))
    }

    /// The node's current path: None until first created. In sequential modes it changes
    /// with every re-creation.
    pub fn actual_path(&self) -> Option<String> {
        self.shared.actual.borrow().clone()
    }

    /// Waits until the node was created once; false if `timeout` passed first.
    ///
    /// # Errors
    /// [`Error::Closed`] if the node was closed first; [`Error::Zk`] when an attempt made
    /// while waiting failed with an error retrying cannot fix (e.g. [`ZkError::NoAuth`],
    /// [`ZkError::NoChildrenForEphemerals`], or [`ZkError::NodeExists`]: a persistent node
    /// is where an ephemeral one is to be kept). The node keeps trying (e.g. until the ACL
    /// is changed, or the node in the way is deleted) until closed.
    pub async fn wait_for_initial_create(&self, timeout: Duration) -> Result<bool> {
        let mut rx = self.shared.actual.subscribe();
        let mut failure = self.shared.failure.subscribe();
        let mut stopped = self.task.stopped();
        let created = async {
            tokio::select! {
                biased;
                r = rx.wait_for(Option::is_some) => if r.is_ok() { Ok(()) } else { Err(Error::Closed) },
                // Ended: closed, or the task ended with its client (say, on an
                // authentication failure it recorded).
                _ = stopped.wait_for(|s| *s) => Err(failure.borrow().clone().map_or(Error::Closed, Error::Zk)),
                e = next_failure(&mut failure) => Err(e),
            }
        };
        match tokio::time::timeout(timeout, created).await {
            Ok(Ok(())) => Ok(true),
            Ok(Err(e)) => Err(e),
            Err(_) => Ok(false),
        }
    }

    /// The data the node is kept with.
    pub fn data(&self) -> Vec<u8> {
        self.shared.data().1
    }

    /// Changes the node's data, for now and for every re-creation, and returns a future that
    /// waits until the node holds it (or was re-created with it). The change is made when
    /// this is called, not when the future is first polled (so changes take effect in call
    /// order); the background task does the write, retrying across reconnects, so dropping
    /// the future does not cancel the change.
    ///
    /// # Errors
    /// [`Error::Closed`] if the node is closed (or not started) before the data is written.
    pub fn set_data(&self, data: Vec<u8>) -> impl Future<Output = Result<()>> + Send + 'static {
        let generation = if self.task.is_running() {
            self.shared.data.lock().ok().map(|mut d| {
                d.0 += 1;
                d.1 = data;
                d.0
            })
        } else {
            None
        };
        if generation.is_some() {
            self.shared.data_changed.notify_one();
        }
        let mut written = self.shared.written.subscribe();
        let mut stopped = self.task.stopped();
        async move {
            let generation = generation.ok_or(Error::Closed)?;
            tokio::select! {
                r = written.wait_for(|w| *w >= generation) => r.map(|_| ()).map_err(|_| Error::Closed),
                _ = stopped.wait_for(|s| *s) => Err(Error::Closed),
            }
        }
    }

    /// Takes `data`, which someone else wrote to the node (`mzxid`: its stat's), as the node's
    /// data from now on (for re-creations) without writing it again. For keeping a local copy
    /// in step with external updates (Curator discovery's `watchInstances`). Returns false,
    /// adopting nothing, for data not newer than our own latest write (an earlier write of
    /// ours, seen late), and while a [`set_data`](PersistentNode::set_data) of ours is not
    /// written yet (that newer change wins).
    pub fn adopt_data(&self, data: Vec<u8>, mzxid: i64) -> bool {
        let generation = match self.shared.data.lock() {
            Ok(mut d) => {
                let ours = self
                    .shared
                    .written_mzxid
                    .load(std::sync::atomic::Ordering::SeqCst);
                if mzxid <= ours || *self.shared.written.borrow() < d.0 {
                    return false;
                }
                d.0 += 1;
                d.1 = data;
                d.0
            }
            Err(_) => return false,
        };
        self.shared
            .adopted
            .store(generation, std::sync::atomic::Ordering::SeqCst);
        self.shared.mark_written(generation);
        true
    }

    /// Stops keeping the node and deletes it (a guaranteed delete: on connection trouble it
    /// goes on in the background until the node is gone).
    ///
    /// # Errors
    /// The delete's error when it is not a connection problem (e.g. NOAUTH).
    pub async fn close(&self) -> Result<()> {
        match self.stop_keeping().await {
            Some(path) => match self
                .shared
                .client
                .delete(&path)
                .guaranteed()
                .quietly()
                .await
            {
                Ok(()) | Err(ZkError::Closed) => {}
                Err(e) if e.is_retryable() => {}
                Err(e) => return Err(e.into()),
            },
            // Not known to exist, but a create whose reply was lost (or that was cut short
            // by this close) may have made it: at a known path, delete it if it is ours.
            None if !self.shared.mode.is_sequential()
                && self
                    .shared
                    .create_sent
                    .load(std::sync::atomic::Ordering::SeqCst) =>
            {
                let shared = self.shared.clone();
                crate::util::runtime_for(&shared.client)
                    .spawn(async move { delete_if_ours(&shared).await });
            }
            None => {}
        }
        Ok(())
    }
}

/// Deletes the node at the (non-sequential) base path if the keeper would have adopted it as
/// ours (any node in persistent modes, our session's in ephemeral ones), retrying across
/// connection trouble and changes between the check and the delete; a node that is not ours
/// is left alone.
async fn delete_if_ours(shared: &Shared) {
    let client = &shared.client;
    let mut backoff = crate::util::RetryBackoff::default();
    loop {
        let failed = match client.exists(&shared.base_path).await {
            Ok(Some(stat))
                if !shared.mode.is_ephemeral() || stat.ephemeral_owner == client.session_id() =>
            {
                match client
                    .delete(&shared.base_path)
                    .version(stat.version)
                    .quietly()
                    .await
                {
                    Ok(()) => return,
                    // Written (or replaced) since the check: check again.
                    Err(ZkError::BadVersion) => continue,
                    Err(e) => e,
                }
            }
            Ok(_) => return,
            Err(e) => e,
        };
        if !crate::util::is_connection_trouble(&failed) || !backoff.wait(client, &failed).await {
            return;
        }
    }
}

impl PersistentNode {
    /// The node's current path as a watch channel (None until created).
    pub(crate) fn created(&self) -> watch::Receiver<Option<String>> {
        self.shared.actual.subscribe()
    }

    /// Stops keeping the node without deleting it; the node's path, if it had one.
    pub(crate) async fn stop_keeping(&self) -> Option<String> {
        self.task.stop().await;
        self.shared.actual.send_replace(None)
    }
}

impl Drop for PersistentNode {
    /// Stops the background task; the node itself is deleted only by
    /// [`close`](PersistentNode::close) (an ephemeral one also goes with its session).
    fn drop(&mut self) {
        self.task.signal_stop();
    }
}

impl Shared {
    fn data(&self) -> (u64, Vec<u8>) {
        self.data.lock().map(|d| d.clone()).unwrap_or_default()
    }

    fn wrote_at(&self, mzxid: i64) {
        self.written_mzxid
            .fetch_max(mzxid, std::sync::atomic::Ordering::SeqCst);
    }

    fn mark_written(&self, generation: u64) {
        self.written.send_if_modified(|w| {
            let newer = generation > *w;
            if newer {
                *w = generation;
            }
            newer
        });
    }
}

const MIN_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The background task: make sure the node exists with the right data, then wait for a
/// reason to check again (the node changed, a reconnect, new data, close).
async fn keep(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let client = &shared.client;
    let mut states = client.connection_states();
    // The sessions that created our node: an ephemeral owned by one of them is ours to
    // replace.
    let mut our_sessions: Vec<i64> = Vec::new();
    // The path to check: our node, or a foreign one in our way.
    let mut target: Option<String> = None;
    // The data generation the node holds (None: unknown, write it).
    let mut on_node: Option<u64> = None;
    let mut backoff = MIN_BACKOFF;
    loop {
        if *stop.borrow() {
            return;
        }
        let ensured = ensure(&shared, &mut target, &mut our_sessions, &mut on_node);
        // A close does not wait for requests stuck in an outage: a create cut short leaves
        // nothing behind at a known path (`close` deletes it if it was made) nor when
        // protected (the client deletes it); an unprotected sequential one is waited for.
        let outcome = if !shared.mode.is_sequential() || shared.protected {
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return,
                outcome = ensured => outcome,
            }
        } else {
            ensured.await
        };
        let watch = match outcome {
            Ok(watch) => {
                backoff = MIN_BACKOFF;
                shared.failure.send_if_modified(|f| f.take().is_some());
                Some(watch)
            }
            Err(ZkError::Closed) => return,
            Err(e) => {
                tracing::debug!(path = %shared.base_path, %e, "keeping the node failed; retrying");
                if is_lasting(&e) {
                    shared.failure.send_replace(Some(e));
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                None
            }
        };
        let wait = async {
            match watch {
                Some(w) => {
                    w.await;
                }
                None => tokio::time::sleep(backoff).await,
            }
        };
        let mut wait = std::pin::pin!(wait);
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = &mut wait => break,
                _ = shared.data_changed.notified() => break,
                state = states.next() => match state {
                    Some(state) if state.is_connected() => break,
                    Some(_) => {}
                    None => return,
                },
            }
        }
    }
}

/// The next failure `failure` reports (as an error of a waiter).
async fn next_failure(failure: &mut watch::Receiver<Option<ZkError>>) -> Error {
    loop {
        if failure.changed().await.is_err() {
            return Error::Closed;
        }
        if let Some(e) = failure.borrow_and_update().clone() {
            return Error::Zk(e);
        }
    }
}

/// An error the next attempt will meet again unless someone changes something (an ACL, the
/// parent, the server): not a connection problem, a passing server condition (read-only,
/// throttled), nor a race with another writer.
fn is_lasting(e: &ZkError) -> bool {
    e.is_argument_error()
        || matches!(
            e,
            ZkError::NoAuth
                | ZkError::NodeExists
                | ZkError::InvalidAcl
                | ZkError::AuthFailed
                | ZkError::SessionClosedRequireSaslAuth
                | ZkError::NoChildrenForEphemerals
                | ZkError::EphemeralOnLocalSession
                | ZkError::Unimplemented { .. }
                | ZkError::QuotaExceeded
                | ZkError::BadArguments
                | ZkError::MarshallingError
        )
}

/// One check: creates the node if missing, replaces a leftover of one of our earlier
/// sessions, writes changed data. Returns a watch on the node.
async fn ensure(
    shared: &Shared,
    target: &mut Option<String>,
    our_sessions: &mut Vec<i64>,
    on_node: &mut Option<u64>,
) -> Result<zk_client::WatchFuture, ZkError> {
    let client = &shared.client;
    // A create that finds a node at our (non-sequential) path looks at its owner at once;
    // bounded, in case someone keeps creating and deleting it.
    for _ in 0..3 {
        if let Some(path) = target.clone() {
            let (stat, watch) = client.exists(&path).watched().await?;
            match stat {
                Some(stat)
                    if !shared.mode.is_ephemeral()
                        || stat.ephemeral_owner == client.session_id() =>
                {
                    // Ours (also a node our create made although its reply was lost, or a
                    // persistent node left by an earlier run): adopt it, with our data.
                    if shared.actual.borrow().as_deref() != Some(path.as_str()) {
                        shared.actual.send_replace(Some(path.clone()));
                    }
                    let (generation, data) = shared.data();
                    let adopted =
                        shared.adopted.load(std::sync::atomic::Ordering::SeqCst) == generation;
                    if adopted {
                        *on_node = Some(generation);
                    }
                    if *on_node != Some(generation) {
                        let stat = client.set_data(&path, data).await?;
                        shared.wrote_at(stat.mzxid);
                        *on_node = Some(generation);
                        shared.mark_written(generation);
                    }
                    return Ok(watch);
                }
                Some(stat) if our_sessions.contains(&stat.ephemeral_owner) => {
                    // Left by our previous session, which is gone or going: replace it now.
                    match client.delete(&path).version(stat.version).await {
                        Ok(()) | Err(ZkError::NoNode) | Err(ZkError::BadVersion) => {}
                        Err(e) => return Err(e),
                    }
                }
                Some(stat) if stat.ephemeral_owner == 0 => {
                    // A persistent (or container, or TTL) node where ours is to be an
                    // ephemeral: it will not go with any session. Reported (NODEEXISTS) and
                    // checked again after a backoff, not waited for silently.
                    shared.actual.send_replace(None);
                    return Err(ZkError::NodeExists);
                }
                Some(_) => {
                    // Another session's ephemeral node: wait for it to go.
                    shared.actual.send_replace(None);
                    return Ok(watch);
                }
                None => {}
            }
            shared.actual.send_replace(None);
        }
        let (generation, data) = shared.data();
        let mut create = client
            .create(&shared.base_path)
            .mode(shared.mode)
            .data(data)
            .creating_parent_containers_if_needed();
        if shared.protected {
            create = create.with_protection();
        }
        if let Some(ttl_ms) = shared.ttl_ms {
            create = create.ttl(ttl_ms);
        }
        let session_before = client.session_id();
        shared
            .create_sent
            .store(true, std::sync::atomic::Ordering::SeqCst);
        match create.await {
            Ok(created) => {
                // The session that made the node: its owner (ephemeral modes), which a call
                // retried across a session change knows better than the session it began in.
                let session = match &created.stat {
                    Some(stat) => {
                        shared.wrote_at(stat.mzxid);
                        if stat.ephemeral_owner != 0 {
                            stat.ephemeral_owner
                        } else {
                            session_before
                        }
                    }
                    None => session_before,
                };
                *on_node = Some(generation);
                shared.mark_written(generation);
                if !our_sessions.contains(&session) {
                    if our_sessions.len() >= 8 {
                        our_sessions.remove(0);
                    }
                    our_sessions.push(session);
                }
                *target = Some(created.path.clone());
                shared.actual.send_replace(Some(created.path.clone()));
                let (stat, watch) = client.exists(&created.path).watched().await?;
                if stat.is_some() {
                    return Ok(watch);
                }
                // Deleted right after we created it (a watch on a missing sequential name
                // would never fire), or gone with a session that expired meanwhile: create
                // it again, from the keeping loop, which first checks that we still keep it.
                return Err(ZkError::NoNode);
            }
            Err(ZkError::NodeExists) => {
                // A node at our (non-sequential) path: check its owner now, and give it our
                // data if it is ours.
                *target = Some(shared.base_path.clone());
                *on_node = None;
            }
            Err(e) => return Err(e),
        }
    }
    // Someone keeps deleting (or creating and deleting) the node: try again after a
    // backoff.
    Err(ZkError::NoNode)
}
