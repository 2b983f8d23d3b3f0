//! [`ServiceProvider`]: picks one instance of a service with a strategy, leaving out filtered
//! and down instances.

use std::sync::Arc;

use crate::discovery::{Payload, ServiceDiscovery};
use crate::service_cache::ServiceCache;
use crate::{
    DownInstancePolicy, DownInstances, ProviderStrategy, Result, RoundRobin, ServiceInstance,
};

type Filter<T> = Arc<dyn Fn(&ServiceInstance<T>) -> bool + Send + Sync>;

/// Curator's `ServiceProvider`: a [`ServiceCache`] of one service plus a
/// [`ProviderStrategy`], instance filters and a [`DownInstancePolicy`].
///
/// ```no_run
/// # async fn example(discovery: zk_discovery::ServiceDiscovery<String>) -> zk_discovery::Result<()> {
/// use zk_discovery::{RoundRobin, Sticky};
///
/// let provider = discovery
///     .service_provider("payments")
///     .strategy(Sticky::new(RoundRobin::new()))
///     .filter(|instance| instance.ssl_port.is_some())
///     .build()?;
/// provider.start().await?;
/// if let Some(instance) = provider.get_instance() {
///     println!("calling {}", instance.build_uri_spec());
///     // ... on failure:
///     provider.note_error(&instance);
/// }
/// # Ok(())
/// # }
/// ```
pub struct ServiceProvider<T> {
    cache: ServiceCache<T>,
    strategy: Box<dyn ProviderStrategy<T>>,
    filters: Vec<Filter<T>>,
    down: DownInstances,
}

impl<T> std::fmt::Debug for ServiceProvider<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceProvider")
            .field("cache", &self.cache)
            .field("down", &self.down)
            .finish_non_exhaustive()
    }
}

/// Options of a [`ServiceProvider`]. See
/// [`ServiceDiscovery::service_provider`](crate::ServiceDiscovery::service_provider).
#[must_use = "a builder does nothing until built"]
pub struct ServiceProviderBuilder<T: Payload> {
    discovery: ServiceDiscovery<T>,
    name: String,
    strategy: Box<dyn ProviderStrategy<T>>,
    filters: Vec<Filter<T>>,
    policy: DownInstancePolicy,
}

impl<T: Payload> std::fmt::Debug for ServiceProviderBuilder<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceProviderBuilder")
            .field("name", &self.name)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<T: Payload> ServiceProviderBuilder<T> {
    pub(crate) fn new(discovery: ServiceDiscovery<T>, name: &str) -> Self {
        ServiceProviderBuilder {
            discovery,
            name: name.to_owned(),
            strategy: Box::new(RoundRobin::new()),
            filters: Vec::new(),
            policy: DownInstancePolicy::default(),
        }
    }

    /// How to pick (default [`RoundRobin`]).
    pub fn strategy(mut self, strategy: impl ProviderStrategy<T> + 'static) -> Self {
        self.strategy = Box::new(strategy);
        self
    }

    /// Only instances for which `filter` returns true are picked (filters add up).
    pub fn filter(
        mut self,
        filter: impl Fn(&ServiceInstance<T>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.filters.push(Arc::new(filter));
        self
    }

    /// When [`note_error`](ServiceProvider::note_error) takes an instance out of rotation
    /// (default: 2 errors within 30 s, out until 30 s after the first).
    pub fn down_instance_policy(mut self, policy: DownInstancePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Builds the (not started) provider.
    ///
    /// # Errors
    /// An invalid service name.
    pub fn build(self) -> Result<ServiceProvider<T>> {
        Ok(ServiceProvider {
            cache: self.discovery.service_cache(&self.name)?,
            strategy: self.strategy,
            filters: self.filters,
            down: DownInstances::new(self.policy),
        })
    }
}

impl<T: Payload> ServiceProvider<T> {
    /// Starts the underlying cache and waits for its first read.
    ///
    /// # Errors
    /// As [`ServiceCache::start`].
    pub async fn start(&self) -> Result<()> {
        self.cache.start().await
    }

    /// Every usable instance: enabled, passing the filters and not down (as Curator's
    /// provider, which always filters out disabled instances).
    pub fn get_all_instances(&self) -> Vec<ServiceInstance<T>> {
        let mut instances: Vec<ServiceInstance<T>> = self
            .cache
            .instances()
            .iter()
            .filter(|i| i.enabled && self.filters.iter().all(|f| f(i)))
            .cloned()
            .collect();
        self.down.remove_down(&mut instances);
        instances
    }

    /// One usable instance chosen by the strategy; None when there is none.
    pub fn get_instance(&self) -> Option<ServiceInstance<T>> {
        let instances = self.get_all_instances();
        self.strategy.pick(&instances).cloned()
    }

    /// Reports that calling `instance` failed; per the [`DownInstancePolicy`] it may be
    /// left out for a while.
    pub fn note_error(&self, instance: &ServiceInstance<T>) {
        self.down.note_error(&instance.id);
    }

    /// The cache behind this provider.
    pub fn cache(&self) -> &ServiceCache<T> {
        &self.cache
    }

    /// Stops the cache.
    pub async fn close(&self) {
        self.cache.close().await
    }
}
