//! `client.create(path)`: parents, modes, ACLs, TTLs, protected mode, idempotence,
//! or-set-data.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};

use zk_proto::{Acl, CreateMode, Stat};

use super::{awaitable, Client};
use crate::error::{Error, Result};
use crate::protected;
use crate::session::ops::{check_acl, check_create_except_acl};

/// The outcome of a create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// The node's path (with any sequence suffix and protection prefix), relative to the
    /// namespace.
    pub path: String,
    /// The node's stat, when known (always, except when protected mode adopted a node whose
    /// create reply was lost).
    pub stat: Option<Stat>,
}

impl Created {
    fn new(path: String, stat: Stat) -> Created {
        Created {
            path,
            stat: Some(stat),
        }
    }
}

/// How missing parents are created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parents {
    Persistent,
    Containers,
}

/// Creates a node. Await it (see [`Client::create`]).
#[must_use = "a builder does nothing unless awaited"]
#[derive(Debug, Clone)]
pub struct CreateBuilder {
    client: Client,
    path: String,
    data: Vec<u8>,
    mode: CreateMode,
    acl: Option<Vec<Acl>>,
    acl_to_parents: bool,
    parents: Option<Parents>,
    ttl: Option<i64>,
    protected: bool,
    idempotent: bool,
    or_set_data: Option<i32>,
    compressed: bool,
}

/// Creates a path of containers. Await it (see [`Client::create_containers`]).
#[must_use = "a builder does nothing unless awaited"]
#[derive(Debug, Clone)]
pub struct CreateContainersBuilder {
    client: Client,
    path: String,
}

impl Client {
    /// Creates a node at `path` (persistent, empty, with the provider's ACL unless told
    /// otherwise).
    ///
    /// ```no_run
    /// # async fn f(client: zk_client::Client) -> zk_client::Result<()> {
    /// use zk_client::CreateMode;
    /// let created = client
    ///     .create("/app/locks/lock-")
    ///     .mode(CreateMode::EphemeralSequential)
    ///     .with_protection()
    ///     .creating_parent_containers_if_needed()
    ///     .data(b"owner-1")
    ///     .await?;
    /// println!("{}", created.path);
    /// # Ok(()) }
    /// ```
    ///
    /// # Notable errors
    /// [`Error::NodeExists`], [`Error::NoNode`] (parent missing and parents not requested),
    /// [`Error::NoChildrenForEphemerals`]; argument errors ([`Error::InvalidPath`],
    /// [`Error::DataTooLarge`], [`Error::TtlWithoutTtlMode`]) before anything is sent.
    ///
    /// # Cancellation safety
    /// Dropping the future after its first poll does not withdraw the request: the node may
    /// still be created. In protected mode it is then found and deleted in the background
    /// (as when the call fails).
    pub fn create(&self, path: &str) -> CreateBuilder {
        CreateBuilder {
            client: self.clone(),
            path: path.to_owned(),
            data: Vec::new(),
            mode: CreateMode::Persistent,
            acl: None,
            acl_to_parents: false,
            parents: None,
            ttl: None,
            protected: false,
            idempotent: false,
            or_set_data: None,
            compressed: false,
        }
    }
}

impl Client {
    /// Creates `path` and every missing ancestor as CONTAINER nodes (Curator's
    /// `createContainers`), with the ACL provider's ACLs; nodes that exist are left as they
    /// are. The server deletes a container once its last child is gone.
    pub fn create_containers(&self, path: &str) -> CreateContainersBuilder {
        CreateContainersBuilder {
            client: self.clone(),
            path: path.to_owned(),
        }
    }
}

impl CreateContainersBuilder {
    fn span_path(&self) -> &str {
        &self.path
    }

    async fn run(self) -> Result<()> {
        zk_proto::path::validate_path(&self.path)?;
        let client = &self.client;
        let full = client.full_path(&self.path);
        if full == "/" {
            return Ok(());
        }
        client
            .retry_creating(|_| client.mkdirs(&full, true, true, &[], false))
            .await
    }
}

impl CreateBuilder {
    /// The node's data.
    pub fn data(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.data = data.into();
        self
    }

    /// The node's mode (default persistent).
    pub fn mode(mut self, mode: CreateMode) -> Self {
        self.mode = mode;
        self
    }

    /// The node's ACL (default: the client's ACL provider).
    pub fn acl(mut self, acl: Vec<Acl>) -> Self {
        self.acl = Some(acl);
        self
    }

    /// The node's ACL, also used for any parents this create makes.
    pub fn acl_with_parents(mut self, acl: Vec<Acl>) -> Self {
        self.acl = Some(acl);
        self.acl_to_parents = true;
        self
    }

    /// A time-to-live in milliseconds (needs a TTL mode; the mode defaults to
    /// `PersistentWithTtl` if still persistent). A negative value is no TTL, as Curator's
    /// default -1.
    pub fn ttl(mut self, ttl_ms: i64) -> Self {
        self.ttl = Some(ttl_ms);
        if ttl_ms < 0 {
            return self;
        }
        if self.mode == CreateMode::Persistent {
            self.mode = CreateMode::PersistentWithTtl;
        } else if self.mode == CreateMode::PersistentSequential {
            self.mode = CreateMode::PersistentSequentialWithTtl;
        }
        self
    }

    /// Creates missing parents as persistent nodes.
    pub fn creating_parents_if_needed(mut self) -> Self {
        self.parents = Some(Parents::Persistent);
        self
    }

    /// Creates missing parents as container nodes (what recipes use).
    pub fn creating_parent_containers_if_needed(mut self) -> Self {
        self.parents = Some(Parents::Containers);
        self
    }

    /// Protected mode: prefixes the name with `_c_<uuid>-` so that a create whose reply was
    /// lost can be found (and adopted) on retry, as Curator's `withProtection()`.
    pub fn with_protection(mut self) -> Self {
        self.protected = true;
        self
    }

    /// NODEEXISTS counts as success when the node holds exactly this data at version 0: the
    /// end state is the one this create would have made, whether an earlier attempt whose
    /// reply was lost made it or the same create was already done (Curator's
    /// `idempotent()`, on every attempt as Curator's). Other data, or a node written since,
    /// is NODEEXISTS; so is, for an ephemeral mode, a node another session owns (it goes
    /// with that session; Curator does not check this).
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// If the node exists, write the data instead (any version).
    pub fn or_set_data(self) -> Self {
        self.or_set_data_version(-1)
    }

    /// If the node exists, write the data if its version matches.
    pub fn or_set_data_version(mut self, version: i32) -> Self {
        self.or_set_data = Some(version);
        self
    }

    /// Store the data compressed by the client's
    /// [`CompressionProvider`](crate::CompressionProvider) (gzip by default; read it with
    /// `get_data(..).decompressed()`).
    pub fn compressed(mut self) -> Self {
        self.compressed = true;
        self
    }

    fn span_path(&self) -> &str {
        &self.path
    }

    async fn run(mut self) -> Result<Created> {
        let data = std::mem::take(&mut self.data);
        self.data = self.client.stored_data(self.compressed, &self.path, data)?;
        let client = &self.client;
        // Argument errors first, before anything is sent (and the path before the ACL
        // provider sees it, as Curator).
        check_create_except_acl(
            &self.path,
            &self.data,
            self.mode,
            self.ttl,
            self.client.inner.session.max_data_len(),
        )?;
        let full = client.full_path(&self.path);
        let acl = match &self.acl {
            Some(acl) => Cow::Borrowed(acl.as_slice()),
            None => client.default_acl(&full),
        };
        check_acl(&acl)?;
        if self.protected && self.path.ends_with('/') && !self.mode.is_sequential() {
            return Err(Error::InvalidArgument(
                "protected mode needs a node name".to_owned(),
            ));
        }
        // From the first send on, a protected create may leave a node that nobody will return:
        // if this future is dropped (or the call fails), the guard looks for it in the
        // background and deletes it. Boxed: most creates are not protected.
        let guard = self.protected.then(|| {
            let id = protected::new_id();
            Box::new(LeftoverGuard {
                client: client.clone(),
                target: protected::protected_path(&full, &id),
                id,
                armed: AtomicBool::new(false),
            })
        });
        let target: &str = match &guard {
            Some(g) => &g.target,
            None => &full,
        };
        let retrying = client.retry_creating(|attempt| {
            let acl = &acl;
            let guard = guard.as_deref();
            let this = &self;
            if let Some(g) = guard {
                g.armed.store(true, Ordering::Relaxed);
            }
            async move {
                if attempt > 0 {
                    if let Some(g) = guard {
                        // Boxed: only retries take this path.
                        if let Some(created) = Box::pin(this.adopt(target, &g.id)).await? {
                            return Ok(created);
                        }
                    }
                }
                // Written out here rather than in a method: a nested async fn would store
                // its arguments twice, and this future is part of every create's.
                let session = &this.client.inner.session;
                match session
                    .create(target, &this.data, acl, this.mode, this.ttl)
                    .await
                {
                    Ok((path, stat)) => Ok(Created::new(path, stat)),
                    // Boxed: the rarer paths would otherwise enlarge every create's future.
                    Err(e) => Box::pin(this.after_refusal(e, target, acl)).await,
                }
            }
        });
        let result = retrying.await;
        match result {
            Ok(mut created) => {
                if let Some(g) = &guard {
                    g.armed.store(false, Ordering::Relaxed);
                }
                created.path = client.unfixed_path(created.path);
                Ok(created)
            }
            // The guard cleans up (when anything was sent).
            Err(e) => Err(e),
        }
    }

    /// A protected create's retry: every node carrying our prefix came from this create.
    /// Adopts one (for ephemerals: one owned by the current session); the others (left by an
    /// earlier session, or duplicates) are deleted.
    async fn adopt(&self, target: &str, id: &str) -> Result<Option<Created>> {
        let client = &self.client;
        let current = client.inner.session.session_id();
        let mut adopted = None;
        for (found, stat) in protected::find_nodes(client, target, id).await? {
            let ours = !self.mode.is_ephemeral() || stat.ephemeral_owner == current;
            if ours && adopted.is_none() {
                adopted = Some(Created::new(found, stat));
            } else {
                client.delete_in_background(found, -1);
            }
        }
        Ok(adopted)
    }

    /// What the builder's options make of a refused create: parents made and the create
    /// tried again, the data set, or an equal node taken as created.
    async fn after_refusal(&self, refusal: Error, target: &str, acl: &[Acl]) -> Result<Created> {
        let client = &self.client;
        let session = &client.inner.session;
        match refusal {
            Error::NoNode if self.parents.is_some() => {
                // "/q/" (a sequential node named by its number) has parent "/q".
                let parent = match target.strip_suffix('/') {
                    Some(base) if !base.is_empty() => Some(base),
                    _ => zk_proto::path::split_parent(target).map(|(p, _)| p),
                };
                if let Some(parent) = parent {
                    if parent != "/" {
                        client
                            .mkdirs(
                                parent,
                                true,
                                self.parents == Some(Parents::Containers),
                                acl,
                                self.acl_to_parents,
                            )
                            .await?;
                    }
                }
                match session
                    .create(target, &self.data, acl, self.mode, self.ttl)
                    .await
                {
                    Ok((path, stat)) => Ok(Created::new(path, stat)),
                    // Parents are made once: NONODE again (a parent deleted meanwhile) stands.
                    Err(Error::NoNode) => Err(Error::NoNode),
                    Err(e) => self.after_existing(e, target).await,
                }
            }
            e => self.after_existing(e, target).await,
        }
    }

    /// NODEEXISTS with or-set-data (the data set) or idempotent (an equal node is taken as
    /// created); any other error as it is.
    async fn after_existing(&self, refusal: Error, target: &str) -> Result<Created> {
        let session = &self.client.inner.session;
        match refusal {
            Error::NodeExists if self.or_set_data.is_some() => {
                let version = self.or_set_data.unwrap_or(-1);
                let stat = session.set_data(target, &self.data, version).await?;
                Ok(Created::new(target.to_owned(), stat))
            }
            Error::NodeExists if self.idempotent => {
                // Curator's IdempotentUtils.matches: version 0 and the same data; and an
                // ephemeral of this session.
                let (data, stat, _) = session.get_data(target, false).await?;
                let owner_ok =
                    !self.mode.is_ephemeral() || stat.ephemeral_owner == session.session_id();
                if stat.version == 0 && data == self.data && owner_ok {
                    return Ok(Created::new(target.to_owned(), stat));
                }
                Err(Error::NodeExists)
            }
            e => Err(e),
        }
    }
}

/// Deletes what a protected create may have left, unless disarmed (the call succeeded).
struct LeftoverGuard {
    client: Client,
    target: String,
    id: String,
    armed: AtomicBool,
}

impl Drop for LeftoverGuard {
    fn drop(&mut self) {
        if *self.armed.get_mut() {
            protected::delete_leftovers_in_background(&self.client, &self.target, &self.id);
        }
    }
}

awaitable!(CreateBuilder, Created, "create", run);
awaitable!(CreateContainersBuilder, (), "create_containers", run);
