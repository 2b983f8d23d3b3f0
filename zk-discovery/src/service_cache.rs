//! [`ServiceCache`]: the live instances of one service, kept current.

use std::sync::{Arc, Mutex};

use futures::{FutureExt, StreamExt};
use tokio::sync::watch;
use zk_client::Client;
use zk_recipes::{CacheEvent, PathChildrenCache};

use crate::discovery::Payload;
use crate::{Error, InstanceSerializer, Result, ServiceInstance};

/// The published list of instances.
type Instances<T> = Arc<Vec<ServiceInstance<T>>>;

/// Curator's `ServiceCache`: the instances of one service, kept current by a
/// [`PathChildrenCache`] on `basePath/<name>` — correct across reconnects and session loss
/// (it re-reads and diffs after each). Nodes that are not valid instances are left out.
///
/// Get one from [`ServiceDiscovery::service_cache`](crate::ServiceDiscovery::service_cache),
/// then [`start`](ServiceCache::start) it.
pub struct ServiceCache<T> {
    children: Arc<PathChildrenCache>,
    serializer: Arc<dyn InstanceSerializer<T>>,
    /// The list as last published.
    latest: watch::Receiver<Instances<T>>,
    /// The list's only sender, until [`start`](ServiceCache::start) moves it into the task
    /// (or [`close`](ServiceCache::close) drops it): receivers see the cache end with it.
    sender: Mutex<Option<watch::Sender<Instances<T>>>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The discovery that made the cache is closed (the cache closes with it).
    discovery_closed: watch::Receiver<bool>,
}

impl<T> std::fmt::Debug for ServiceCache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceCache")
            .field("path", &self.children.path())
            .finish_non_exhaustive()
    }
}

impl<T: Payload> ServiceCache<T> {
    pub(crate) fn new(
        client: Client,
        service_path: &str,
        serializer: Arc<dyn InstanceSerializer<T>>,
        discovery_closed: watch::Receiver<bool>,
    ) -> Result<ServiceCache<T>> {
        let (sender, latest) = watch::channel(Arc::new(Vec::new()));
        Ok(ServiceCache {
            children: Arc::new(PathChildrenCache::new(client, service_path)?),
            serializer,
            latest,
            sender: Mutex::new(Some(sender)),
            task: Mutex::new(None),
            discovery_closed,
        })
    }

    /// Starts the cache and waits for its first complete read.
    ///
    /// # Errors
    /// [`Error::Recipe`] if already started or closed; [`Error::Closed`] if closed while
    /// starting.
    pub async fn start(&self) -> Result<()> {
        let mut discovery_closed = self.discovery_closed.clone();
        if *discovery_closed.borrow_and_update() {
            return Err(Error::Closed);
        }
        let mut events = self.children.events();
        self.children.start()?;
        let Some(current) = self.sender.lock().ok().and_then(|mut s| s.take()) else {
            return Err(Error::Closed);
        };
        let children = self.children.clone();
        let serializer = self.serializer.clone();
        let (ready_tx, mut ready) = watch::channel(false);
        let handle = tokio::spawn(async move {
            loop {
                let first = tokio::select! {
                    biased;
                    () = raised(&mut discovery_closed) => {
                        children.close().await;
                        break;
                    }
                    event = events.next() => match event {
                        Some(event) => event,
                        None => break,
                    },
                };
                // Take every event already queued (a start reports one per instance), then
                // rebuild the list once, not once per event.
                let mut initialized = matches!(first, CacheEvent::Initialized);
                let mut changed = initialized || first.node().is_some();
                while let Some(Some(event)) = events.next().now_or_never() {
                    initialized |= matches!(event, CacheEvent::Initialized);
                    changed |= initialized || event.node().is_some();
                }
                if changed {
                    let instances: Vec<ServiceInstance<T>> = children
                        .current()
                        .iter()
                        .filter_map(|node| match serializer.deserialize(&node.data) {
                            Ok(instance) => Some(instance),
                            Err(e) => {
                                tracing::debug!(path = %node.path, %e, "not a service instance");
                                None
                            }
                        })
                        .collect();
                    current.send_replace(Arc::new(instances));
                    if initialized {
                        ready_tx.send_replace(true);
                    }
                }
            }
        });
        if let Ok(mut t) = self.task.lock() {
            *t = Some(handle);
        }
        // Ready once the task published the list of the first complete read.
        let initialized = ready.wait_for(|r| *r).await.is_ok();
        if initialized {
            Ok(())
        } else {
            Err(Error::Closed)
        }
    }

    /// The instances as last read (in node-name order).
    pub fn instances(&self) -> Instances<T> {
        self.latest.borrow().clone()
    }

    /// A receiver of the instance list: `changed().await` wakes on every change, `borrow()`
    /// reads the latest list. Once the cache is closed, `changed()` returns an error.
    pub fn changes(&self) -> watch::Receiver<Instances<T>> {
        let mut receiver = self.latest.clone();
        receiver.mark_unchanged();
        receiver
    }

    /// Stops the cache; receivers from [`changes`](ServiceCache::changes) see the sender
    /// closed.
    pub async fn close(&self) {
        self.children.close().await;
        drop(self.sender.lock().ok().and_then(|mut s| s.take()));
        let handle = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(handle) = handle {
            let _ = handle.await;
        }
    }
}

impl<T> Drop for ServiceCache<T> {
    fn drop(&mut self) {
        if let Some(handle) = self.task.lock().ok().and_then(|mut t| t.take()) {
            handle.abort();
        }
    }
}

/// Resolves once the flag is raised; never if its sender is gone (a dropped discovery does
/// not close its caches).
async fn raised(flag: &mut watch::Receiver<bool>) {
    if flag.wait_for(|raised| *raised).await.is_err() {
        std::future::pending::<()>().await;
    }
}
