//! [`ProviderStrategy`]: how a service provider picks one instance among the live ones, with
//! Curator's three strategies [`RoundRobin`], [`Random`] and [`Sticky`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rand::RngExt;

use crate::ServiceInstance;

/// Picks one instance of a service (Curator's `ProviderStrategy`). `instances` is what the
/// provider currently considers usable (after filters and down-instance exclusion), in the
/// provider's order; `None` means there is nothing to pick, which only happens when
/// `instances` is empty for the strategies of this crate.
///
/// Strategies are `Send + Sync` and take `&self`, so a provider can keep a
/// `Box<dyn ProviderStrategy<T>>` and call it from any task; [`Box`] and [`Arc`] of a strategy
/// are strategies.
pub trait ProviderStrategy<T>: Send + Sync {
    /// One of `instances`, or `None` if there is none to pick.
    fn pick<'a>(&self, instances: &'a [ServiceInstance<T>]) -> Option<&'a ServiceInstance<T>>;
}

impl<T, S: ProviderStrategy<T> + ?Sized> ProviderStrategy<T> for Box<S> {
    fn pick<'a>(&self, instances: &'a [ServiceInstance<T>]) -> Option<&'a ServiceInstance<T>> {
        (**self).pick(instances)
    }
}

impl<T, S: ProviderStrategy<T> + ?Sized> ProviderStrategy<T> for Arc<S> {
    fn pick<'a>(&self, instances: &'a [ServiceInstance<T>]) -> Option<&'a ServiceInstance<T>> {
        (**self).pick(instances)
    }
}

/// Curator's `RoundRobinStrategy`: a shared counter, incremented on every pick, modulo the
/// number of instances. With a stable list, instance `i` is picked on calls `i`, `i + n`, …;
/// when the list changes, the rotation continues from the counter (as in Curator), not from
/// the last instance picked.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl RoundRobin {
    /// A strategy starting with the first instance.
    pub fn new() -> Self {
        RoundRobin::default()
    }
}

impl<T> ProviderStrategy<T> for RoundRobin {
    fn pick<'a>(&self, instances: &'a [ServiceInstance<T>]) -> Option<&'a ServiceInstance<T>> {
        if instances.is_empty() {
            return None;
        }
        // The counter wraps at usize::MAX; Curator's `Math.abs(int)` breaks at i32::MIN.
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        instances.get(n % instances.len())
    }
}

/// Curator's `RandomStrategy`: a uniformly random instance, from the thread-local generator
/// of `rand`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Random;

impl Random {
    /// The strategy.
    pub fn new() -> Self {
        Random
    }
}

impl<T> ProviderStrategy<T> for Random {
    fn pick<'a>(&self, instances: &'a [ServiceInstance<T>]) -> Option<&'a ServiceInstance<T>> {
        if instances.is_empty() {
            return None;
        }
        instances.get(rand::rng().random_range(0..instances.len()))
    }
}

/// Curator's `StickyStrategy`: keeps returning the same instance for as long as it is in the
/// list, and asks the inner ("master") strategy for a new one when it is gone.
///
/// Differences from Curator, both deliberate: the chosen instance is recognised by its **id**
/// (Curator compares whole instances, so an instance re-registered with a new payload or
/// registration time counts as gone), and the instance returned is the one from the current
/// list, so its data is fresh.
#[derive(Debug)]
pub struct Sticky<S> {
    inner: S,
    state: Mutex<StickyState>,
}

#[derive(Debug)]
struct StickyState {
    /// The id of the instance we stick to.
    current: Option<String>,
    /// Curator's `instanceNumber`: -1, then +1 every time a new instance is chosen.
    instance_number: i64,
}

impl<S> Sticky<S> {
    /// A sticky strategy choosing new instances with `inner`.
    pub fn new(inner: S) -> Self {
        Sticky {
            inner,
            state: Mutex::new(StickyState {
                current: None,
                instance_number: -1,
            }),
        }
    }

    /// The inner strategy.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Curator's `getInstanceNumber()`: `-1` before the first pick, then incremented every time
    /// the strategy has to choose a new instance (so `0` after the first pick). Unlike Curator
    /// it does not count picks from an empty list.
    pub fn instance_number(&self) -> i64 {
        self.lock().instance_number
    }

    /// The id of the instance the strategy currently sticks to.
    pub fn current_id(&self) -> Option<String> {
        self.lock().current.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StickyState> {
        // The state is always consistent between statements, so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T, S: ProviderStrategy<T>> ProviderStrategy<T> for Sticky<S> {
    fn pick<'a>(&self, instances: &'a [ServiceInstance<T>]) -> Option<&'a ServiceInstance<T>> {
        let mut state = self.lock();
        if let Some(id) = &state.current {
            if let Some(instance) = instances.iter().find(|i| &i.id == id) {
                return Some(instance);
            }
        }
        let chosen = self.inner.pick(instances);
        state.current = chosen.map(|i| i.id.clone());
        if chosen.is_some() {
            state.instance_number += 1;
        }
        chosen
    }
}
