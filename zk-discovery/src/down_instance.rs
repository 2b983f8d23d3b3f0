//! Keeping instances that recently failed out of rotation: [`DownInstancePolicy`] and the
//! tracker [`DownInstances`] (Curator's `DownInstanceManager`).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::ServiceInstance;

/// When an instance counts as down (Curator's `DownInstancePolicy`): once it has had
/// `error_threshold` errors reported within `timeout` of the first one, it is down until
/// `timeout` after that first error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DownInstancePolicy {
    /// How long an error record lives, from the first error noted. Default: 30 s.
    pub timeout: Duration,
    /// How many errors make an instance down. Default: 2.
    pub error_threshold: usize,
}

impl DownInstancePolicy {
    /// Curator's default timeout: 30 seconds.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
    /// Curator's default threshold: 2 errors.
    pub const DEFAULT_ERROR_THRESHOLD: usize = 2;

    /// A policy with the given timeout and threshold.
    pub const fn new(timeout: Duration, error_threshold: usize) -> Self {
        DownInstancePolicy {
            timeout,
            error_threshold,
        }
    }
}

impl Default for DownInstancePolicy {
    fn default() -> Self {
        DownInstancePolicy::new(Self::DEFAULT_TIMEOUT, Self::DEFAULT_ERROR_THRESHOLD)
    }
}

/// Error counts per instance id, applying a [`DownInstancePolicy`] (Curator's
/// `DownInstanceManager`). A provider calls [`note_error`](Self::note_error) when a call to an
/// instance fails and filters instances with [`is_down`](Self::is_down) or
/// [`remove_down`](Self::remove_down) before picking one.
///
/// Semantics, as in Curator: the first error for an instance opens a record that lives
/// `timeout` from that moment; later errors only increase its count (they do not extend it);
/// the instance is down while its record holds at least `error_threshold` errors; when the
/// record expires the instance is readmitted with a clean slate.
///
/// Differences from Curator, both deliberate: records are keyed by instance **id** (Curator
/// keys by the whole instance value), and a record stops counting exactly at its expiry
/// (Curator purges at most every `timeout / 2`, so an instance could stay excluded up to half
/// a timeout longer). Expired records are purged at most every `timeout / 2`, like Curator's.
///
/// Thread-safe; every method takes `&self`. The `*_at` methods take the current time, for
/// deterministic tests and callers with their own clock; use one clock consistently.
#[derive(Debug)]
pub struct DownInstances {
    policy: DownInstancePolicy,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    records: HashMap<String, Record>,
    last_purge: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    first_noted: Instant,
    errors: usize,
}

impl DownInstances {
    /// An empty tracker applying `policy`.
    pub fn new(policy: DownInstancePolicy) -> Self {
        DownInstances {
            policy,
            state: Mutex::new(State {
                records: HashMap::new(),
                last_purge: None,
            }),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &DownInstancePolicy {
        &self.policy
    }

    /// Records an error of the instance `id` now.
    pub fn note_error(&self, id: &str) {
        self.note_error_at(id, Instant::now());
    }

    /// Records an error of the instance `id` at `now`.
    pub fn note_error_at(&self, id: &str, now: Instant) {
        let mut state = self.lock();
        self.maybe_purge(&mut state, now);
        let fresh = Record {
            first_noted: now,
            errors: 0,
        };
        let record = state.records.entry(id.to_owned()).or_insert(fresh);
        if self.is_expired(record, now) {
            *record = fresh;
        }
        record.errors = record.errors.saturating_add(1);
    }

    /// Whether the instance `id` is down now.
    pub fn is_down(&self, id: &str) -> bool {
        self.is_down_at(id, Instant::now())
    }

    /// Whether the instance `id` is down at `now`.
    pub fn is_down_at(&self, id: &str, now: Instant) -> bool {
        let mut state = self.lock();
        self.maybe_purge(&mut state, now);
        state
            .records
            .get(id)
            .is_some_and(|r| !self.is_expired(r, now) && r.errors >= self.policy.error_threshold)
    }

    /// The errors counted for `id` at `now` (0 once its record expired).
    pub fn error_count_at(&self, id: &str, now: Instant) -> usize {
        let state = self.lock();
        state
            .records
            .get(id)
            .filter(|r| !self.is_expired(r, now))
            .map_or(0, |r| r.errors)
    }

    /// Removes the instances that are down now from `instances`, keeping the order of the
    /// others.
    pub fn remove_down<T>(&self, instances: &mut Vec<ServiceInstance<T>>) {
        self.remove_down_at(instances, Instant::now());
    }

    /// Removes the instances that are down at `now` from `instances`, keeping the order of the
    /// others.
    pub fn remove_down_at<T>(&self, instances: &mut Vec<ServiceInstance<T>>, now: Instant) {
        instances.retain(|i| !self.is_down_at(&i.id, now));
    }

    /// Drops every record that expired at `now`, whenever it was last purged.
    pub fn purge_at(&self, now: Instant) {
        let mut state = self.lock();
        self.purge(&mut state, now);
    }

    /// How many records (expired or not) are held; purging makes this shrink.
    pub fn len(&self) -> usize {
        self.lock().records.len()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn is_expired(&self, record: &Record, now: Instant) -> bool {
        now.saturating_duration_since(record.first_noted) >= self.policy.timeout
    }

    /// Purges if `timeout / 2` passed since the last purge (or there was none).
    fn maybe_purge(&self, state: &mut State, now: Instant) {
        let due = state
            .last_purge
            .is_none_or(|last| now.saturating_duration_since(last) >= self.policy.timeout / 2);
        if due {
            self.purge(state, now);
        }
    }

    fn purge(&self, state: &mut State, now: Instant) {
        state.records.retain(|_, r| !self.is_expired(r, now));
        state.last_purge = Some(now);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the map consistent, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for DownInstances {
    /// A tracker with the default policy (2 errors, 30 s).
    fn default() -> Self {
        DownInstances::new(DownInstancePolicy::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn tracker() -> (DownInstances, Instant) {
        (DownInstances::default(), Instant::now())
    }

    #[test]
    fn down_after_threshold_and_readmitted_after_timeout() {
        let (down, t0) = tracker();
        assert!(!down.is_down_at("a", t0));
        down.note_error_at("a", t0);
        assert!(
            !down.is_down_at("a", t0),
            "one error is below the threshold"
        );
        down.note_error_at("a", t0 + SEC);
        assert!(down.is_down_at("a", t0 + SEC));
        assert!(down.is_down_at("a", t0 + 29 * SEC + SEC / 2));
        assert!(
            !down.is_down_at("b", t0 + SEC),
            "other instances are unaffected"
        );
        // The record lives 30 s from the *first* error, not the last one.
        assert!(!down.is_down_at("a", t0 + 30 * SEC));
        assert_eq!(down.error_count_at("a", t0 + 30 * SEC), 0);
    }

    #[test]
    fn errors_after_expiry_start_a_new_window() {
        let (down, t0) = tracker();
        down.note_error_at("a", t0);
        // Second error after the first record expired: a fresh record with one error.
        down.note_error_at("a", t0 + 31 * SEC);
        assert_eq!(down.error_count_at("a", t0 + 31 * SEC), 1);
        assert!(!down.is_down_at("a", t0 + 31 * SEC));
        down.note_error_at("a", t0 + 40 * SEC);
        assert!(down.is_down_at("a", t0 + 40 * SEC));
        assert!(down.is_down_at("a", t0 + 60 * SEC));
        assert!(!down.is_down_at("a", t0 + 61 * SEC));
    }

    #[test]
    fn errors_spread_wider_than_the_timeout_never_make_an_instance_down() {
        let (down, t0) = tracker();
        for i in 0..10 {
            let now = t0 + i * 31 * SEC;
            down.note_error_at("a", now);
            assert!(!down.is_down_at("a", now), "error {i}");
        }
    }

    #[test]
    fn expired_records_are_purged_at_most_every_half_timeout() {
        let (down, t0) = tracker();
        down.note_error_at("a", t0); // first call: purges (nothing), last purge = 0 s
        down.note_error_at("b", t0 + 10 * SEC); // 10 s < 15 s since the purge: none
        assert_eq!(down.len(), 2);
        // 31 s: a purge is due; "a" (31 s old) goes, "b" (21 s old) stays.
        assert!(!down.is_down_at("x", t0 + 31 * SEC));
        assert_eq!(down.len(), 1);
        // 41 s: "b" expired at 40 s, but the last purge was 10 s ago: it is still held...
        down.note_error_at("c", t0 + 41 * SEC);
        assert_eq!(down.len(), 2);
        // ...though it no longer counts.
        assert_eq!(down.error_count_at("b", t0 + 41 * SEC), 0);
        // 46 s: 15 s since the last purge: "b" goes, "c" stays.
        assert!(!down.is_down_at("x", t0 + 46 * SEC));
        assert_eq!(down.len(), 1);
        // An explicit purge ignores the rate limit.
        down.purge_at(t0 + 71 * SEC);
        assert!(down.is_empty());
    }

    #[test]
    fn remove_down_keeps_order_of_the_others() -> crate::Result<()> {
        let down = DownInstances::new(DownInstancePolicy::new(10 * SEC, 1));
        let t0 = Instant::now();
        let mut instances = Vec::new();
        for id in ["a", "b", "c", "d"] {
            instances.push(
                ServiceInstance::<()>::builder("svc")
                    .id(id)
                    .address("h")
                    .build()?,
            );
        }
        down.note_error_at("b", t0);
        down.remove_down_at(&mut instances, t0);
        let ids: Vec<&str> = instances.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["a", "c", "d"]);
        Ok(())
    }

    #[test]
    fn threshold_zero_means_any_recorded_instance_is_down() {
        let down = DownInstances::new(DownInstancePolicy::new(SEC, 0));
        let t0 = Instant::now();
        assert!(!down.is_down_at("a", t0));
        down.note_error_at("a", t0);
        assert!(down.is_down_at("a", t0));
    }
}
