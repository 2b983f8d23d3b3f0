//! [`Semaphore`] and [`SemaphoreMutex`]: Curator's `InterProcessSemaphoreV2` and
//! `InterProcessSemaphoreMutex`.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use zk_client::{Client, CreateMode, Error as ZkError};

use crate::lock_internals::HeldNode;
use crate::mutex::{LockState, LockStates, Mutex, MutexGuard};
use crate::nodes::{check_base_path, join, node_name};
use crate::shared_count::{SharedCount, VersionedValue};
use crate::util::{delete_until_gone, OwnedNode};
use crate::{Error, Result};

/// The child of a semaphore's path holding its internal lock (as Curator).
pub const LOCKS_PARENT: &str = "locks";
/// The child of a semaphore's path holding its lease nodes (as Curator).
pub const LEASES_PARENT: &str = "leases";
/// The name of lease nodes: `<path>/leases/_c_<uuid>-lease-NNNNNNNNNN` (as Curator).
pub const LEASE_NAME: &str = "lease-";

/// Where the number of leases comes from.
enum Limit {
    Fixed(u32),
    Shared(watch::Receiver<VersionedValue<i32>>),
}

impl Limit {
    fn get(&self) -> usize {
        match self {
            Limit::Fixed(n) => *n as usize,
            Limit::Shared(rx) => usize::try_from(rx.borrow().value).unwrap_or(0),
        }
    }
}

/// A distributed counting semaphore: Curator's `InterProcessSemaphoreV2`, layout-compatible
/// with it.
///
/// Each lease is a protected EPHEMERAL_SEQUENTIAL node `<path>/leases/_c_<uuid>-lease-N`. To
/// take one, an acquirer holds the semaphore's internal [`Mutex`] at `<path>/locks` (so only
/// one acquirer at a time waits for a lease, the others queue fairly on the lock), creates its
/// lease node, and waits — re-listing the leases after every change of `leases` and of the
/// limit — until there are at most *limit* lease nodes, its own included; then it releases
/// the internal lock. A lease is returned by deleting its node ([`Lease::release`], or
/// dropping it: the delete then runs in the background until the node is gone); a session
/// that ends frees its leases with it.
///
/// The limit is fixed ([`Semaphore::new`]) — every participant must use the same number,
/// nothing checks it — or read from a [`SharedCount`] ([`Semaphore::with_shared_count`]):
/// when the count changes, a waiting acquirer re-checks at once (raising the count lets
/// waiters in; lowering it takes no lease away, it only holds back new ones).
///
/// ```no_run
/// # async fn f(client: zk_client::Client) -> zk_recipes::Result<()> {
/// use std::time::Duration;
/// use zk_recipes::Semaphore;
///
/// let semaphore = Semaphore::new(client, "/app/semaphores/workers", 3)?;
/// let leases = semaphore.acquire_timeout(1, Duration::from_secs(5)).await?;
/// if leases.is_empty() {
///     println!("no lease within 5 s");
/// }
/// for lease in leases {
///     // ... work ...
///     lease.release().await?;
/// }
/// # Ok(()) }
/// ```
pub struct Semaphore {
    client: Client,
    path: String,
    leases_path: String,
    lock: Mutex,
    limit: Limit,
    data: Vec<u8>,
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("path", &self.path)
            .field("max_leases", &self.max_leases())
            .finish_non_exhaustive()
    }
}

impl Semaphore {
    /// A semaphore on `path` with `max_leases` leases. Nothing is sent until the first
    /// acquire.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an invalid path or the root.
    pub fn new(client: Client, path: &str, max_leases: u32) -> Result<Semaphore> {
        Semaphore::with_limit(client, path, Limit::Fixed(max_leases))
    }

    /// A semaphore on `path` whose number of leases is `count`'s value (a negative count
    /// counts as 0). Start the count ([`SharedCount::start`]) to follow the node; until then
    /// its seed is the limit.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an invalid path or the root.
    pub fn with_shared_count(client: Client, path: &str, count: &SharedCount) -> Result<Semaphore> {
        Semaphore::with_limit(client, path, Limit::Shared(count.values()))
    }

    fn with_limit(client: Client, path: &str, limit: Limit) -> Result<Semaphore> {
        check_base_path(path)?;
        Ok(Semaphore {
            lock: Mutex::new(client.clone(), &join(path, LOCKS_PARENT))?,
            leases_path: join(path, LEASES_PARENT),
            client,
            path: path.to_owned(),
            limit,
            data: Vec::new(),
        })
    }

    /// Writes `data` into every lease node (Curator's `setNodeData`).
    #[must_use]
    pub fn with_node_data(mut self, data: impl Into<Vec<u8>>) -> Semaphore {
        self.data = data.into();
        self
    }

    /// The semaphore's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The number of leases now.
    pub fn max_leases(&self) -> usize {
        self.limit.get()
    }

    /// Acquires `qty` leases, one after the other, waiting as long as it takes. A lease lost
    /// while a later one is waited for (its session expired) makes it return them all and
    /// start over: the leases returned are all held.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `qty == 0`; [`Error::Zk`] when a ZooKeeper call fails
    /// after the client's retries (the leases taken so far are returned first).
    ///
    /// # Cancellation safety
    /// Dropping the future returns the leases taken so far and deletes the node being
    /// waited on (in the background).
    pub async fn acquire(&self, qty: u32) -> Result<Vec<Lease>> {
        self.acquire_until(qty, None).await
    }

    /// Acquires `qty` leases, waiting at most `timeout`; an empty vector when the time ran
    /// out (the leases taken so far are returned and the node being waited on is deleted
    /// before returning — in the background if the connection is down). The timeout bounds
    /// the waits, not the requests (see [`Mutex::acquire_timeout`](crate::Mutex::acquire_timeout)):
    /// free leases are taken even with `Duration::ZERO`.
    ///
    /// # Errors
    /// As [`Semaphore::acquire`].
    ///
    /// # Cancellation safety
    /// As [`Semaphore::acquire`].
    pub async fn acquire_timeout(&self, qty: u32, timeout: Duration) -> Result<Vec<Lease>> {
        self.acquire_until(qty, Some(Instant::now() + timeout))
            .await
    }

    async fn acquire_until(&self, qty: u32, deadline: Option<Instant>) -> Result<Vec<Lease>> {
        if qty == 0 {
            return Err(Error::InvalidArgument("qty must be at least 1".to_owned()));
        }
        loop {
            let mut leases = Vec::new();
            for _ in 0..qty {
                match self.acquire_one(deadline).await {
                    Ok(Some(lease)) => leases.push(lease),
                    Ok(None) => {
                        return_all(leases).await;
                        return Ok(Vec::new());
                    }
                    Err(e) => {
                        return_all(leases).await;
                        return Err(e);
                    }
                }
            }
            // A lease taken first may have gone with its session while the later ones were
            // waited for (another process may have its slot now): give them all back and
            // start over rather than return more holders than the limit allows.
            if !leases.iter().any(|l| l.state().is_final()) {
                return Ok(leases);
            }
            tracing::debug!("a lease was lost while the others were waited for; starting over");
            return_all(leases).await;
        }
    }

    async fn acquire_one(&self, deadline: Option<Instant>) -> Result<Option<Lease>> {
        loop {
            let Some(guard) = self.lock.acquire_until(deadline).await? else {
                return Ok(None);
            };
            let outcome = self.wait_for_lease(&guard, deadline).await;
            // A failed or unfinished release goes on in the background.
            let _ = guard.release_soon().await;
            match outcome {
                Ok(Waited::Leased(lease)) => return Ok(Some(lease)),
                Ok(Waited::TimedOut) => return Ok(None),
                Ok(Waited::NodeGone) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// While holding the internal lock (`lock`): creates our lease node and waits until it is
    /// among the first `limit`.
    ///
    /// Only the holder of the internal lock may have a lease node waiting: a second waiter
    /// would leave both over the limit when a lease frees up, waiting for each other for
    /// good. So if the internal lock is lost (its session expired, or its node went while the
    /// grant was on its way), our lease node goes and the caller starts over. Curator's
    /// `InterProcessSemaphoreV2` does not check, and can deadlock so.
    async fn wait_for_lease(&self, lock: &MutexGuard, deadline: Option<Instant>) -> Result<Waited> {
        let client = &self.client;
        let mut own = OwnedNode::new(client);
        let created = client
            .create(&join(&self.leases_path, LEASE_NAME))
            .mode(CreateMode::EphemeralSequential)
            .creating_parent_containers_if_needed()
            .with_protection()
            .data(self.data.clone())
            .await?;
        own.set(created.path.clone());
        let other_session = created
            .stat
            .as_ref()
            .is_some_and(|s| s.ephemeral_owner != lock.session_id());
        if other_session || lock.state().is_final() {
            // Made in a new session after the internal lock's session ended.
            tracing::debug!(path = %created.path, "internal lock lost before the lease node was made; starting over");
            own.delete_now().await;
            return Ok(Waited::NodeGone);
        }
        let czxid = created.stat.map(|s| s.czxid);
        let our_name = node_name(&created.path).to_owned();
        let mut limit_changes = match &self.limit {
            Limit::Fixed(_) => None,
            Limit::Shared(rx) => Some(rx.clone()),
        };
        loop {
            if let Some(rx) = limit_changes.as_mut() {
                rx.borrow_and_update();
            }
            let (children, watch) = match client.get_children(&self.leases_path).watched().await {
                Ok((children, watch)) => (children, Some(watch)),
                Err(ZkError::NoNode) => (Vec::new(), None),
                Err(e) => {
                    own.delete_now().await;
                    return Err(e.into());
                }
            };
            if !children.contains(&our_name) {
                // Our node went with an expired session: start over (the internal lock
                // went with it too).
                tracing::debug!(path = %created.path, "lease node vanished; starting over");
                own.disarm();
                return Ok(Waited::NodeGone);
            }
            if children.len() <= self.limit.get() {
                let Some(path) = own.disarm() else {
                    return Ok(Waited::NodeGone);
                };
                let czxid = match czxid {
                    Some(z) => z,
                    None => match client.exists(&path).await {
                        Ok(Some(stat)) => stat.czxid,
                        Ok(None) => return Ok(Waited::NodeGone),
                        Err(e) => {
                            own.set(path);
                            own.delete_now().await;
                            return Err(e.into());
                        }
                    },
                };
                return Ok(Waited::Leased(Lease::new(client, path, czxid)));
            }
            let limit_changed = async {
                match limit_changes.as_mut() {
                    Some(rx) => {
                        if rx.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let children_changed = async {
                match watch {
                    Some(w) => {
                        w.await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let timed_out = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = children_changed => {}
                _ = limit_changed => {}
                () = lock.lost() => {
                    tracing::debug!(path = %created.path, "internal lock lost while waiting for a lease; starting over");
                    own.delete_now().await;
                    return Ok(Waited::NodeGone);
                }
                _ = timed_out => {
                    own.delete_now().await;
                    return Ok(Waited::TimedOut);
                }
            }
        }
    }

    /// The lease nodes (Curator's `getParticipantNodes`), as node names in no particular
    /// order.
    ///
    /// # Errors
    /// [`Error::Zk`] when the listing fails.
    pub async fn participant_nodes(&self) -> Result<Vec<String>> {
        match self.client.get_children(&self.leases_path).await {
            Ok(c) => Ok(c),
            Err(ZkError::NoNode) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }
}

enum Waited {
    Leased(Lease),
    TimedOut,
    NodeGone,
}

/// Deletes the leases' nodes, waiting for each first attempt.
async fn return_all(leases: Vec<Lease>) {
    for mut lease in leases {
        if let Some(path) = lease.path.take() {
            let mut own = OwnedNode::new(&lease.client);
            own.set(path);
            own.delete_now().await;
        }
    }
}

/// One lease of a [`Semaphore`] (Curator's `Lease`). Dropping it returns the lease (its node
/// is deleted in the background until it is gone); prefer [`Lease::release`] to learn when
/// that happened.
#[must_use = "dropping a lease returns it at once"]
pub struct Lease {
    client: Client,
    /// `None` once released.
    path: Option<String>,
    czxid: i64,
    held: HeldNode,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("node", &self.path)
            .field("czxid", &self.czxid)
            .field("state", &self.held.get())
            .finish()
    }
}

impl Lease {
    fn new(client: &Client, path: String, czxid: i64) -> Lease {
        // The node was created by this session (checked again when its watch is set).
        let held = HeldNode::start(client, &path, client.session_id());
        Lease {
            client: client.clone(),
            path: Some(path),
            czxid,
            held,
        }
    }

    /// The lease's state now, as a lock's ([`LockState`]): `Held`, `Suspended` while the
    /// connection is down (the lease may be gone without the client knowing yet), `Lost`
    /// once the session or the lease node is gone, `Released`.
    pub fn state(&self) -> LockState {
        self.held.get()
    }

    /// The lease's state as a watch channel (quick successive changes are coalesced). When
    /// the lease is dropped (or its release gives up waiting) it shows `Released` at once;
    /// the node's deletion goes on in the background.
    pub fn states(&self) -> watch::Receiver<LockState> {
        self.held.states()
    }

    /// Every change of the lease's state from now on, in order and none coalesced.
    pub fn state_changes(&self) -> LockStates {
        self.held.state_changes()
    }

    /// Resolves when the lease may be lost: the state leaves `Held`; returns that state.
    pub async fn at_risk(&self) -> LockState {
        self.held.at_risk().await
    }

    /// Resolves when the lease is lost for good (or released).
    pub async fn lost(&self) {
        self.held.lost().await
    }

    /// The lease node's path (client-relative).
    pub fn node_path(&self) -> &str {
        self.path.as_deref().unwrap_or_default()
    }

    /// The lease node's `czxid`: later leases have larger ones. For a
    /// [`SemaphoreMutex`] (one lease) this is a fencing token.
    pub fn fencing_token(&self) -> i64 {
        self.czxid
    }

    /// The data of the lease node (Curator's `Lease.getData`).
    ///
    /// # Errors
    /// [`Error::Zk`] when the read fails (NONODE: the lease is gone, e.g. with its session).
    pub async fn data(&self) -> Result<Vec<u8>> {
        Ok(self.client.get_data(self.node_path()).await?.0)
    }

    /// Returns the lease: deletes its node — across connection losses until it is gone —
    /// and resolves then. Runs in its own task: cancelling this future does not stop it.
    ///
    /// # Errors
    /// [`Error::Zk`] when the server refuses the delete for good (e.g. NOAUTH).
    pub async fn release(mut self) -> Result<()> {
        let Some(path) = self.path.take() else {
            return Ok(());
        };
        // Our own delete must not look like a loss to the state followers.
        self.held.stop_following();
        let client = self.client.clone();
        let result =
            match tokio::spawn(async move { delete_until_gone(&client, &path).await }).await {
                Ok(r) => r.map_err(Error::from),
                Err(_) => Err(Error::Closed),
            };
        self.held.released();
        result
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            crate::util::delete_in_background(&self.client, path);
        }
    }
}

/// A distributed, non-reentrant mutex: Curator's `InterProcessSemaphoreMutex`, a
/// [`Semaphore`] with one lease (same layout: `<path>/locks`, `<path>/leases`).
///
/// Unlike [`Mutex`] it is not reentrant in any way: acquiring it again while a guard of the
/// same handle is alive waits for that guard (from the same task, forever — as in Curator).
/// The guard's [`SemaphoreMutexGuard::fencing_token`] is the lease node's `czxid`.
///
/// ```no_run
/// # async fn f(client: zk_client::Client) -> zk_recipes::Result<()> {
/// use zk_recipes::SemaphoreMutex;
///
/// let mutex = SemaphoreMutex::new(client, "/app/locks/batch")?;
/// let guard = mutex.acquire().await?;
/// // ... critical section, fenced by guard.fencing_token() ...
/// guard.release().await?;
/// # Ok(()) }
/// ```
pub struct SemaphoreMutex {
    semaphore: Semaphore,
    held: Arc<AtomicUsize>,
}

impl fmt::Debug for SemaphoreMutex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreMutex")
            .field("path", &self.semaphore.path)
            .finish_non_exhaustive()
    }
}

impl SemaphoreMutex {
    /// A mutex on `path`. Nothing is sent until the first acquire.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an invalid path or the root.
    pub fn new(client: Client, path: &str) -> Result<SemaphoreMutex> {
        Ok(SemaphoreMutex {
            semaphore: Semaphore::new(client, path, 1)?,
            held: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The mutex's path.
    pub fn path(&self) -> &str {
        self.semaphore.path()
    }

    /// Acquires the mutex, waiting as long as it takes.
    ///
    /// # Errors
    /// As [`Semaphore::acquire`].
    ///
    /// # Cancellation safety
    /// As [`Semaphore::acquire`].
    pub async fn acquire(&self) -> Result<SemaphoreMutexGuard> {
        self.acquire_until(None).await?.ok_or(Error::Closed)
    }

    /// Acquires the mutex, waiting at most `timeout` (the waits, not the requests: see
    /// [`Mutex::acquire_timeout`](crate::Mutex::acquire_timeout)); `None` when the time ran
    /// out (nothing is left behind).
    ///
    /// # Errors
    /// As [`Semaphore::acquire`].
    ///
    /// # Cancellation safety
    /// As [`Semaphore::acquire`].
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Option<SemaphoreMutexGuard>> {
        self.acquire_until(Some(Instant::now() + timeout)).await
    }

    /// Acquires the mutex by `deadline` (or waiting as long as it takes); `None` when the
    /// time ran out.
    pub(crate) async fn acquire_until(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Option<SemaphoreMutexGuard>> {
        let lease = self.semaphore.acquire_until(1, deadline).await?.pop();
        Ok(lease.map(|l| self.guard(l)))
    }

    fn guard(&self, lease: Lease) -> SemaphoreMutexGuard {
        self.held.fetch_add(1, Ordering::SeqCst);
        SemaphoreMutexGuard {
            lease: Some(lease),
            held: self.held.clone(),
        }
    }

    /// Whether a guard of this handle is alive (Curator's `isAcquiredInThisProcess`).
    pub fn is_acquired(&self) -> bool {
        self.held.load(Ordering::SeqCst) > 0
    }
}

/// Holds a [`SemaphoreMutex`]. Dropping it releases the mutex (the lease node is deleted in
/// the background until it is gone); prefer [`SemaphoreMutexGuard::release`].
#[must_use = "dropping the guard releases the mutex at once"]
#[derive(Debug)]
pub struct SemaphoreMutexGuard {
    lease: Option<Lease>,
    held: Arc<AtomicUsize>,
}

impl SemaphoreMutexGuard {
    /// The lease node's path (client-relative).
    pub fn node_path(&self) -> &str {
        self.lease.as_ref().map_or("", Lease::node_path)
    }

    /// The lease node's `czxid`: strictly increasing across grants of this mutex.
    pub fn fencing_token(&self) -> i64 {
        self.lease.as_ref().map_or(0, Lease::fencing_token)
    }

    /// The mutex's state now: see [`Lease::state`].
    pub fn state(&self) -> LockState {
        self.lease
            .as_ref()
            .map_or(LockState::Released, Lease::state)
    }

    /// The mutex's state as a watch channel: see [`Lease::states`].
    pub fn states(&self) -> watch::Receiver<LockState> {
        match &self.lease {
            Some(lease) => lease.states(),
            None => watch::channel(LockState::Released).1,
        }
    }

    /// Resolves when the mutex may be lost: see [`Lease::at_risk`].
    pub async fn at_risk(&self) -> LockState {
        match &self.lease {
            Some(lease) => lease.at_risk().await,
            None => LockState::Released,
        }
    }

    /// Resolves when the mutex is lost for good (or released): see [`Lease::lost`].
    pub async fn lost(&self) {
        if let Some(lease) = &self.lease {
            lease.lost().await;
        }
    }

    /// Releases the mutex: deletes the lease node until it is gone; the handle stops
    /// counting itself as holder then.
    ///
    /// # Errors
    /// As [`Lease::release`].
    pub async fn release(mut self) -> Result<()> {
        match self.lease.take() {
            Some(lease) => lease.release().await,
            None => Ok(()),
        }
    }

    /// Releases, waiting at most one connection timeout; past it the lease node's deletion
    /// goes on in the background, and the handle no longer counts itself as holder (a mutex
    /// guard's counts until the node is gone).
    pub(crate) async fn release_soon(self) -> Result<()> {
        let Some(lease) = &self.lease else {
            return Ok(());
        };
        let bound = lease.client.connection_timeout();
        tokio::time::timeout(bound, self.release())
            .await
            .unwrap_or(Ok(()))
    }
}

impl Drop for SemaphoreMutexGuard {
    fn drop(&mut self) {
        self.held.fetch_sub(1, Ordering::SeqCst);
        drop(self.lease.take());
    }
}
