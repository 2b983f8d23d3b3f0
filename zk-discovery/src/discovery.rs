//! [`ServiceDiscovery`]: registering this process's instances and querying everyone's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use zk_client::{Client, CreateMode, Error as ZkError};
use zk_recipes::{CacheEvent, NodeCache, PersistentNode};

use crate::provider::ServiceProviderBuilder;
use crate::service_cache::ServiceCache;
use crate::{
    Error, InstanceSerializer, JsonInstanceSerializer, Result, SerializationMode, ServiceInstance,
};

/// What a service payload must be: anything serde can (de)serialize that can be shared
/// between tasks. `()` works for instances without a payload.
pub trait Payload: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> Payload for T {}

/// Curator's `ServiceDiscovery`: registers this process's service instances under
/// `basePath/<name>/<id>` and reads everyone's.
///
/// Each registered instance is kept by a [`PersistentNode`]: re-created after RECONNECTED if
/// it vanished, re-created by the new session after a session loss (DYNAMIC instances are
/// ephemeral), and never resurrected once unregistered (CURATOR-164).
/// [`update`](ServiceDiscovery::update) rewrites the node's data in place, so readers never see the
/// instance disappear. [`close`](ServiceDiscovery::close) unregisters everything with
/// guaranteed deletes.
///
/// Cloning gives another handle on the same registrations.
#[derive(Debug)]
pub struct ServiceDiscovery<T: Payload> {
    inner: Arc<Inner<T>>,
}

impl<T: Payload> Clone for ServiceDiscovery<T> {
    fn clone(&self) -> Self {
        ServiceDiscovery {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<T> {
    client: Client,
    base_path: String,
    serializer: Arc<dyn InstanceSerializer<T>>,
    this_instance: Option<ServiceInstance<T>>,
    watch_instances: bool,
    registrations: Mutex<HashMap<String, Registration<T>>>,
    closed: AtomicBool,
    /// Raised by `close`: the caches (and so the providers) made by this discovery close.
    closing: watch::Sender<bool>,
}

impl<T> std::fmt::Debug for Inner<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceDiscovery")
            .field("base_path", &self.base_path)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

struct Registration<T> {
    instance: ServiceInstance<T>,
    node: Arc<PersistentNode>,
    /// With `watch_instances`: follows the node for changes written by others.
    watcher: Option<Arc<NodeCache>>,
}

impl<T> Registration<T> {
    /// Stops keeping the node and deletes it (a guaranteed delete) in a task of its own: a
    /// caller that gives up waiting (a shutdown's timeout during an outage) does not cut the
    /// unregistration short, leaving the node behind for good.
    fn close_in_background(&self) -> JoinHandle<zk_recipes::Result<()>> {
        let (node, watcher) = (self.node.clone(), self.watcher.clone());
        tokio::spawn(async move {
            if let Some(watcher) = watcher {
                watcher.close().await;
            }
            node.close().await
        })
    }
}

/// The outcome of [`Registration::close_in_background`].
async fn finish(task: JoinHandle<zk_recipes::Result<()>>) -> Result<()> {
    match task.await {
        Ok(closed) => Ok(closed?),
        // Only a panic ends the task otherwise: the delete's outcome is unknown.
        Err(_) => Err(Error::Closed),
    }
}

/// Options of a [`ServiceDiscovery`]. See [`ServiceDiscovery::builder`].
#[must_use = "a builder does nothing until built"]
pub struct ServiceDiscoveryBuilder<T> {
    client: Client,
    base_path: String,
    serializer: Arc<dyn InstanceSerializer<T>>,
    this_instance: Option<ServiceInstance<T>>,
    watch_instances: bool,
}

impl<T> std::fmt::Debug for ServiceDiscoveryBuilder<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceDiscoveryBuilder")
            .field("base_path", &self.base_path)
            .finish_non_exhaustive()
    }
}

/// The base path Curator's examples use.
pub const DEFAULT_BASE_PATH: &str = "/services";

impl<T: Payload> ServiceDiscoveryBuilder<T> {
    /// The path under which services live (default [`DEFAULT_BASE_PATH`]).
    pub fn base_path(mut self, path: impl Into<String>) -> Self {
        self.base_path = path.into();
        self
    }

    /// Writes instances in Curator's compatible (default) or full JSON mode.
    pub fn serialization_mode(mut self, mode: SerializationMode) -> Self {
        self.serializer = Arc::new(JsonInstanceSerializer::new(mode));
        self
    }

    /// A custom serializer for the znode data.
    pub fn serializer(mut self, serializer: impl InstanceSerializer<T> + 'static) -> Self {
        self.serializer = Arc::new(serializer);
        self
    }

    /// An instance registered by [`ServiceDiscovery::start`].
    pub fn this_instance(mut self, instance: ServiceInstance<T>) -> Self {
        self.this_instance = Some(instance);
        self
    }

    /// Follows this discovery's registered instances (Curator's `watchInstances`): when
    /// someone else rewrites an instance's node (an operator marking it disabled, say), the
    /// local copy takes the new data, so it survives this process re-registering the
    /// instance after a session loss. Not for DYNAMIC_SEQUENTIAL instances (their node
    /// changes with every re-creation). Off by default, as in Curator.
    pub fn watch_instances(mut self, yes: bool) -> Self {
        self.watch_instances = yes;
        self
    }

    /// Builds the discovery; nothing is sent until [`ServiceDiscovery::start`] or another
    /// call.
    ///
    /// # Errors
    /// [`Error::Recipe`] with an invalid-argument error for an invalid base path;
    /// [`Error::InvalidInstance`] for an invalid `this_instance`.
    pub fn build(self) -> Result<ServiceDiscovery<T>> {
        zk_proto::path::validate_path(&self.base_path).map_err(|e| {
            Error::Recipe(zk_recipes::Error::InvalidArgument(format!(
                "{}: {e}",
                self.base_path
            )))
        })?;
        if let Some(instance) = &self.this_instance {
            instance.validate()?;
        }
        Ok(ServiceDiscovery {
            inner: Arc::new(Inner {
                client: self.client,
                base_path: self.base_path,
                serializer: self.serializer,
                this_instance: self.this_instance,
                watch_instances: self.watch_instances,
                registrations: Mutex::new(HashMap::new()),
                closed: AtomicBool::new(false),
                closing: watch::channel(false).0,
            }),
        })
    }
}

impl<T: Payload> ServiceDiscovery<T> {
    /// Options for a discovery on `client` (JSON in Curator's compatible mode, base path
    /// [`DEFAULT_BASE_PATH`]).
    pub fn builder(client: Client) -> ServiceDiscoveryBuilder<T> {
        ServiceDiscoveryBuilder {
            client,
            base_path: DEFAULT_BASE_PATH.to_owned(),
            serializer: Arc::new(JsonInstanceSerializer::default()),
            this_instance: None,
            watch_instances: false,
        }
    }

    /// Registers the builder's `this_instance`, if any.
    ///
    /// # Errors
    /// As [`register`](ServiceDiscovery::register).
    pub async fn start(&self) -> Result<()> {
        match self.inner.this_instance.clone() {
            Some(instance) => self.register(instance).await,
            None => Ok(()),
        }
    }

    /// The client this discovery uses.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The base path.
    pub fn base_path(&self) -> &str {
        &self.inner.base_path
    }

    /// Registers `instance` at `basePath/<name>/<id>` (parents are containers; the node is
    /// ephemeral for DYNAMIC instances, protected ephemeral-sequential for DYNAMIC_SEQUENTIAL
    /// (`<name>/_c_<uuid>-<id>0000000001`), else
    /// persistent) and keeps it registered until
    /// [`unregister`](ServiceDiscovery::unregister) or [`close`](ServiceDiscovery::close).
    ///
    /// Waits until the node exists. The registration stands from the call on: if this future
    /// is dropped (e.g. by a timeout while the server is unreachable), the node is still
    /// created as soon as possible. A node already at the path is adopted when it is our own
    /// session's ephemeral, or persistent while the instance is too (STATIC, PERMANENT). For
    /// a DYNAMIC instance, a persistent node (left by a STATIC registration of the id, or an
    /// operator's) or an ephemeral node of *another* session with the same id — a previous run
    /// of this process whose session has not expired yet — is replaced, as Curator does, so a
    /// restarted process registers at once. If that session is still alive and registered (a
    /// duplicate id), both race to re-create the node and the loser waits until the winner's
    /// node goes; give live instances distinct ids.
    ///
    /// Registering an id this discovery has registered already updates it (as Curator's
    /// `registerService`, "register/re-register/update"; see [`update`](Self::update)) when
    /// the name and service type are the same.
    ///
    /// # Errors
    /// [`Error::InvalidInstance`], [`Error::Serialize`], [`Error::AlreadyRegistered`] (the id
    /// is registered with another name or service type),
    /// [`Error::Closed`]; a ZooKeeper error that retrying cannot fix (e.g. `NoAuth` under a
    /// base path we may not write), after which the instance is not registered.
    pub async fn register(&self, instance: ServiceInstance<T>) -> Result<()> {
        instance.validate()?;
        let registered = self.registrations()?.get(&instance.id).map(|reg| {
            reg.instance.name == instance.name && reg.instance.service_type == instance.service_type
        });
        match registered {
            // Curator's "register/re-register/update": the node takes the new data.
            Some(true) => return self.update(instance).await,
            Some(false) => return Err(Error::AlreadyRegistered(instance.id)),
            None => {}
        }
        let data = self.inner.serializer.serialize(&instance)?;
        let mode = match (
            instance.service_type.is_ephemeral(),
            instance.service_type.is_sequential(),
        ) {
            (true, true) => CreateMode::EphemeralSequential,
            (true, false) => CreateMode::Ephemeral,
            (false, true) => CreateMode::PersistentSequential,
            (false, false) => CreateMode::Persistent,
        };
        let path = self.instance_path(&instance.name, &instance.id);
        let id = instance.id.clone();
        let watch = self.inner.watch_instances && !instance.service_type.is_sequential();
        let mut builder =
            PersistentNode::builder(self.inner.client.clone(), &path, data).mode(mode);
        if instance.service_type.is_sequential() {
            // Protected (`_c_<uuid>-` before the id): a create whose reply was lost finds
            // its node instead of making a second, which unregister would leave behind
            // (Curator's registration is unprotected).
            builder = builder.protected();
        }
        let node = Arc::new(builder.build()?);
        {
            let mut regs = self.registrations()?;
            if regs.contains_key(&instance.id) {
                return Err(Error::AlreadyRegistered(instance.id));
            }
            node.start()?;
            regs.insert(
                instance.id.clone(),
                Registration {
                    instance,
                    node: node.clone(),
                    watcher: None,
                },
            );
        }
        if mode == CreateMode::Ephemeral {
            // The kept node, finding the old node, waits for it to go: make it go.
            if let Err(e) = self.make_way(&path).await {
                self.forget_registration(&id, &node).await;
                return Err(e);
            }
        }
        // No deadline of our own: the caller decides how long to wait.
        loop {
            match node
                .wait_for_initial_create(Duration::from_secs(3600))
                .await
            {
                Ok(true) => break,
                Ok(false) => {}
                // The kept node found a persistent node in its way (it does not replace
                // nodes itself): replace it again and keep waiting (the node checks again
                // after a backoff).
                Err(zk_recipes::Error::Zk(ZkError::NodeExists))
                    if mode == CreateMode::Ephemeral =>
                {
                    if let Err(e) = self.make_way(&path).await {
                        self.forget_registration(&id, &node).await;
                        return Err(e);
                    }
                }
                Err(e) => {
                    self.forget_registration(&id, &node).await;
                    return Err(e.into());
                }
            }
        }
        if watch {
            self.watch_instance(&id, &path, node)?;
        }
        Ok(())
    }

    /// [`replace_foreign_node`](Self::replace_foreign_node), failing only when refused for good
    /// (we may not delete under the base path); other failures are logged, and the kept
    /// node waits for the node in its way to go.
    async fn make_way(&self, path: &str) -> Result<()> {
        match self.replace_foreign_node(path).await {
            Err(Error::Zk(e @ (ZkError::NoAuth | ZkError::AuthFailed))) => Err(Error::Zk(e)),
            Err(e) => {
                tracing::warn!(%path, %e, "could not replace the node in the way; waiting for it to go");
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    /// Deletes a persistent node, or an ephemeral node of another session, at `path`
    /// (Curator's register deletes whatever is there).
    async fn replace_foreign_node(&self, path: &str) -> Result<()> {
        let client = &self.inner.client;
        let Some(stat) = client.exists(path).await? else {
            return Ok(());
        };
        if stat.ephemeral_owner == client.session_id() {
            return Ok(());
        }
        tracing::info!(
            path,
            owner = stat.ephemeral_owner,
            "replacing a persistent node or another session's registration"
        );
        match client.delete(path).version(stat.version).await {
            // Gone, or changed meanwhile: the node's own checks take it from here.
            Ok(()) | Err(ZkError::NoNode | ZkError::BadVersion) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Drops the registration of `id` if it is still `node`'s, and closes the node.
    async fn forget_registration(&self, id: &str, node: &Arc<PersistentNode>) {
        if let Ok(mut regs) = self.registrations() {
            if regs.get(id).is_some_and(|r| Arc::ptr_eq(&r.node, node)) {
                regs.remove(id);
            }
        }
        let _ = node.close().await;
    }

    /// Follows the node of the registered instance `id` and adopts data others write to it.
    fn watch_instance(&self, id: &str, path: &str, node: Arc<PersistentNode>) -> Result<()> {
        let cache = Arc::new(NodeCache::new(self.inner.client.clone(), path)?);
        let mut events = cache.events();
        cache.start()?;
        if let Some(reg) = self.registrations()?.get_mut(id) {
            reg.watcher = Some(cache);
        }
        // Weak: a discovery dropped without close must not be kept alive by this task, nor
        // its nodes kept registered: dropping it drops the node at once (which stops keeping
        // it) and the cache (which ends the events, and so this task).
        let weak = Arc::downgrade(&self.inner);
        let node = Arc::downgrade(&node);
        let id = id.to_owned();
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                let (Some(inner), Some(node)) = (weak.upgrade(), node.upgrade()) else {
                    return;
                };
                // The first read (Created) may already see someone else's write.
                let new = match event {
                    CacheEvent::Changed { new, .. } | CacheEvent::Created(new) => new,
                    _ => continue,
                };
                if new.data == node.data() {
                    continue; // our own write
                }
                let owner = new.stat.ephemeral_owner;
                if owner != 0 && owner != inner.client.session_id() {
                    // Another session's registration of this id (one that replaced ours):
                    // not an operator's change to adopt.
                    continue;
                }
                match inner.serializer.deserialize(&new.data) {
                    // Not while an update of ours is being written: it is newer, and this
                    // may be an earlier write of ours seen late.
                    Ok(instance) if instance.id == id => {
                        if let Ok(mut regs) = inner.registrations.lock() {
                            if let Some(reg) = regs.get_mut(&id) {
                                if node.adopt_data(new.data.clone(), new.stat.mzxid) {
                                    reg.instance = instance;
                                }
                            }
                        }
                    }
                    Ok(_) => tracing::warn!(%id, "the instance node now holds another id; ignored"),
                    Err(e) => {
                        tracing::warn!(%id, %e, "the instance node no longer holds an instance; ignored")
                    }
                }
            }
        });
        Ok(())
    }

    /// Replaces a registered instance's data (same id) in place: the node is never deleted,
    /// so caches see a change, never a removal. Waits until the node holds the new data.
    ///
    /// # Errors
    /// [`Error::NotRegistered`] if this discovery did not register the id;
    /// [`Error::InvalidInstance`] for another name or service type than registered (the node
    /// is where the name and type put it: unregister and register instead);
    /// [`Error::Serialize`]; [`Error::Closed`].
    pub async fn update(&self, instance: ServiceInstance<T>) -> Result<()> {
        instance.validate()?;
        let data = self.inner.serializer.serialize(&instance)?;
        let written = {
            let mut regs = self.registrations()?;
            let reg = regs
                .get_mut(&instance.id)
                .ok_or_else(|| Error::NotRegistered(instance.id.clone()))?;
            let moved = |field, value: String, registered: String| Error::InvalidInstance {
                field,
                value,
                reason: format!("registered as {registered:?}; an update cannot move the node"),
            };
            if instance.name != reg.instance.name {
                return Err(moved("name", instance.name, reg.instance.name.clone()));
            }
            if instance.service_type != reg.instance.service_type {
                return Err(moved(
                    "serviceType",
                    format!("{:?}", instance.service_type),
                    format!("{:?}", reg.instance.service_type),
                ));
            }
            reg.instance = instance;
            // Queued for writing under the lock too: concurrent updates (and the watcher's
            // adoption of an operator's write) take effect on the node in the order they
            // took effect here.
            reg.node.set_data(data)
        };
        written.await?;
        Ok(())
    }

    /// Unregisters the instance with this id: it is no longer kept, and its node is deleted
    /// (a guaranteed delete: retried in the background across connection trouble, and never
    /// re-created by a later reconnect).
    ///
    /// # Errors
    /// [`Error::NotRegistered`]; the delete's error when it is not a connection problem.
    pub async fn unregister(&self, id: &str) -> Result<()> {
        let reg = self
            .registrations()?
            .remove(id)
            .ok_or_else(|| Error::NotRegistered(id.to_owned()))?;
        finish(reg.close_in_background()).await
    }

    /// The instances this discovery registered (as last registered or updated).
    pub fn registered(&self) -> Vec<ServiceInstance<T>> {
        self.inner
            .registrations
            .lock()
            .map(|r| r.values().map(|reg| reg.instance.clone()).collect())
            .unwrap_or_default()
    }

    /// The names of every service under the base path.
    ///
    /// # Errors
    /// A ZooKeeper error (a missing base path is no error: no services).
    pub async fn query_for_names(&self) -> Result<Vec<String>> {
        match self.inner.client.get_children(&self.inner.base_path).await {
            Ok(mut names) => {
                names.sort();
                Ok(names)
            }
            Err(ZkError::NoNode) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every instance of the service `name` (read from ZooKeeper now). Nodes that are not
    /// valid instances are skipped with a warning.
    ///
    /// # Errors
    /// A ZooKeeper error (a missing service is no error: no instances).
    pub async fn query_for_instances(&self, name: &str) -> Result<Vec<ServiceInstance<T>>> {
        let service_path = self.service_path(name);
        let mut ids = match self.inner.client.get_children(&service_path).await {
            Ok(ids) => ids,
            Err(ZkError::NoNode) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        ids.sort();
        let reads = ids.iter().map(|id| self.query_for_instance(name, id));
        let mut instances = Vec::with_capacity(ids.len());
        for read in futures::future::join_all(reads).await {
            match read {
                Ok(Some(instance)) => instances.push(instance),
                Ok(None) => {}
                Err(Error::Deserialize(e)) => {
                    tracing::warn!(service = name, %e, "skipping a node that is not an instance")
                }
                Err(e) => return Err(e),
            }
        }
        Ok(instances)
    }

    /// The instance `id` of the service `name`, if registered.
    ///
    /// # Errors
    /// A ZooKeeper error; [`Error::Deserialize`] if the node is not a valid instance.
    pub async fn query_for_instance(
        &self,
        name: &str,
        id: &str,
    ) -> Result<Option<ServiceInstance<T>>> {
        match self
            .inner
            .client
            .get_data(&self.instance_path(name, id))
            .await
        {
            Ok((data, _)) => Ok(Some(self.inner.serializer.deserialize(&data)?)),
            Err(ZkError::NoNode) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A cache of the instances of the service `name` (not started). Once started, it
    /// closes when this discovery does, as Curator's do.
    ///
    /// # Errors
    /// An invalid name; [`Error::Closed`] after [`close`](Self::close).
    pub fn service_cache(&self, name: &str) -> Result<ServiceCache<T>> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        ServiceCache::new(
            self.inner.client.clone(),
            &self.service_path(name),
            self.inner.serializer.clone(),
            self.inner.closing.subscribe(),
        )
    }

    /// A provider of instances of the service `name`, picking with a strategy (see
    /// [`ServiceProviderBuilder`]).
    pub fn service_provider(&self, name: &str) -> ServiceProviderBuilder<T> {
        ServiceProviderBuilder::new(self.clone(), name)
    }

    /// Unregisters every instance (guaranteed deletes), refuses further registrations, and
    /// closes the caches and providers made by this discovery (Curator's `close`).
    ///
    /// # Errors
    /// The first non-connection error of a delete.
    pub async fn close(&self) -> Result<()> {
        // Flagged under the lock, which `registrations()` checks the flag under: a concurrent
        // register either is drained here or sees Closed, never adds a node after the drain.
        let regs: Vec<Registration<T>> = match self.inner.registrations.lock() {
            Ok(mut r) => {
                self.inner.closed.store(true, Ordering::SeqCst);
                r.drain().map(|(_, reg)| reg).collect()
            }
            Err(_) => {
                self.inner.closed.store(true, Ordering::SeqCst);
                Vec::new()
            }
        };
        self.inner.closing.send_replace(true);
        // All at once rather than one connection timeout after another during an outage.
        let closing: Vec<_> = regs.iter().map(Registration::close_in_background).collect();
        let mut result = Ok(());
        for task in closing {
            if let Err(e) = finish(task).await {
                if result.is_ok() {
                    result = Err(e);
                }
            }
        }
        result
    }

    fn registrations(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Registration<T>>>> {
        let regs = self.inner.registrations.lock().map_err(|_| Error::Closed)?;
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        Ok(regs)
    }

    fn service_path(&self, name: &str) -> String {
        zk_proto::path::join(&self.inner.base_path, name)
    }

    fn instance_path(&self, name: &str, id: &str) -> String {
        zk_proto::path::join(&self.service_path(name), id)
    }
}
