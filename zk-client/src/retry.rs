//! Retry policies with Apache Curator's formulas (curator-client `org.apache.curator.retry`).
//!
//! A policy is asked after each failed attempt whether to try again and how long to sleep
//! first. Only errors for which [`RetryPolicy::allow_retry_on`] holds are retried — by default
//! the ones [`Error::is_retryable`] names: CONNECTIONLOSS, OPERATIONTIMEOUT, SESSIONMOVED and
//! SESSIONEXPIRED.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;

/// Decides whether (and after how long) a failed call is tried again.
pub trait RetryPolicy: Send + Sync + fmt::Debug {
    /// Called after a failed attempt: `retry_count` is 0 before the first retry, `elapsed` the
    /// time since the call started. `Some(sleep)` retries after sleeping; `None` gives up.
    fn allow_retry(&self, retry_count: u32, elapsed: Duration) -> Option<Duration>;

    /// Whether `error` may be retried at all (Curator's `allowRetry(Throwable)`).
    fn allow_retry_on(&self, error: &Error) -> bool {
        error.is_retryable()
    }
}

impl<P: RetryPolicy + ?Sized> RetryPolicy for Arc<P> {
    fn allow_retry(&self, retry_count: u32, elapsed: Duration) -> Option<Duration> {
        (**self).allow_retry(retry_count, elapsed)
    }
    fn allow_retry_on(&self, error: &Error) -> bool {
        (**self).allow_retry_on(error)
    }
}

impl<P: RetryPolicy + ?Sized> RetryPolicy for Box<P> {
    fn allow_retry(&self, retry_count: u32, elapsed: Duration) -> Option<Duration> {
        (**self).allow_retry(retry_count, elapsed)
    }
    fn allow_retry_on(&self, error: &Error) -> bool {
        (**self).allow_retry_on(error)
    }
}

/// Curator caps `maxRetries` of the exponential policies at 29 (so `2^(retryCount+1)` fits).
pub const MAX_EXPONENTIAL_RETRIES: u32 = 29;

/// `base × max(1, random(0 .. 2^(retry_count+1)))`, capped at `max_sleep`, for at most
/// `max_retries` (≤ 29) retries.
#[derive(Debug, Clone)]
pub struct ExponentialBackoffRetry {
    base_sleep: Duration,
    max_retries: u32,
    max_sleep: Duration,
}

impl ExponentialBackoffRetry {
    /// Curator's `ExponentialBackoffRetry(baseSleepTimeMs, maxRetries)`.
    pub fn new(base_sleep: Duration, max_retries: u32) -> Self {
        Self::with_max_sleep(
            base_sleep,
            max_retries,
            Duration::from_millis(i32::MAX as u64),
        )
    }

    /// Curator's `ExponentialBackoffRetry(baseSleepTimeMs, maxRetries, maxSleepMs)`.
    pub fn with_max_sleep(base_sleep: Duration, max_retries: u32, max_sleep: Duration) -> Self {
        ExponentialBackoffRetry {
            base_sleep,
            max_retries: max_retries.min(MAX_EXPONENTIAL_RETRIES),
            max_sleep,
        }
    }

    /// The sleep for `retry_count` given the random draw `r` from `0 .. 2^(retry_count+1)`.
    pub fn sleep_for(&self, retry_count: u32, r: u64) -> Duration {
        // A draw outside the range is clamped into it.
        let bound = 1u64 << (retry_count.min(MAX_EXPONENTIAL_RETRIES) + 1);
        let r = r.min(bound - 1);
        let factor = u32::try_from(r.max(1)).unwrap_or(u32::MAX);
        self.base_sleep
            .checked_mul(factor)
            .unwrap_or(Duration::MAX)
            .min(self.max_sleep)
    }

    fn draw(retry_count: u32) -> u64 {
        let bound = 1u64 << (retry_count.min(MAX_EXPONENTIAL_RETRIES) + 1);
        rand::random_range(0..bound)
    }
}

impl RetryPolicy for ExponentialBackoffRetry {
    fn allow_retry(&self, retry_count: u32, _elapsed: Duration) -> Option<Duration> {
        (retry_count < self.max_retries)
            .then(|| self.sleep_for(retry_count, Self::draw(retry_count)))
    }
}

/// [`ExponentialBackoffRetry`] whose sleep never exceeds `max_sleep`.
#[derive(Debug, Clone)]
pub struct BoundedExponentialBackoffRetry(ExponentialBackoffRetry);

impl BoundedExponentialBackoffRetry {
    /// Curator's `BoundedExponentialBackoffRetry(baseSleepTimeMs, maxSleepTimeMs, maxRetries)`.
    pub fn new(base_sleep: Duration, max_sleep: Duration, max_retries: u32) -> Self {
        BoundedExponentialBackoffRetry(ExponentialBackoffRetry::with_max_sleep(
            base_sleep,
            max_retries,
            max_sleep,
        ))
    }

    /// The sleep for `retry_count` given the random draw `r`.
    pub fn sleep_for(&self, retry_count: u32, r: u64) -> Duration {
        self.0.sleep_for(retry_count, r)
    }
}

impl RetryPolicy for BoundedExponentialBackoffRetry {
    fn allow_retry(&self, retry_count: u32, elapsed: Duration) -> Option<Duration> {
        self.0.allow_retry(retry_count, elapsed)
    }
}

/// A constant sleep, at most `n` retries.
#[derive(Debug, Clone)]
pub struct RetryNTimes {
    n: u32,
    sleep: Duration,
}

impl RetryNTimes {
    /// Curator's `RetryNTimes(n, sleepMsBetweenRetries)`.
    pub fn new(n: u32, sleep: Duration) -> Self {
        RetryNTimes { n, sleep }
    }
}

impl RetryPolicy for RetryNTimes {
    fn allow_retry(&self, retry_count: u32, _elapsed: Duration) -> Option<Duration> {
        (retry_count < self.n).then_some(self.sleep)
    }
}

/// One retry after `sleep`.
#[derive(Debug, Clone)]
pub struct RetryOneTime(RetryNTimes);

impl RetryOneTime {
    /// Curator's `RetryOneTime(sleepMsBetweenRetry)`.
    pub fn new(sleep: Duration) -> Self {
        RetryOneTime(RetryNTimes::new(1, sleep))
    }
}

impl RetryPolicy for RetryOneTime {
    fn allow_retry(&self, retry_count: u32, elapsed: Duration) -> Option<Duration> {
        self.0.allow_retry(retry_count, elapsed)
    }
}

/// Retries forever, sleeping `interval` between attempts.
#[derive(Debug, Clone)]
pub struct RetryForever {
    interval: Duration,
}

impl RetryForever {
    /// Curator's `RetryForever(retryIntervalMs)`.
    pub fn new(interval: Duration) -> Self {
        RetryForever { interval }
    }
}

impl RetryPolicy for RetryForever {
    fn allow_retry(&self, _retry_count: u32, _elapsed: Duration) -> Option<Duration> {
        Some(self.interval)
    }
}

/// Retries while less than `max_elapsed` has passed since the call started.
#[derive(Debug, Clone)]
pub struct RetryUntilElapsed {
    max_elapsed: Duration,
    sleep: Duration,
}

impl RetryUntilElapsed {
    /// Curator's `RetryUntilElapsed(maxElapsedTimeMs, sleepMsBetweenRetries)`.
    pub fn new(max_elapsed: Duration, sleep: Duration) -> Self {
        RetryUntilElapsed { max_elapsed, sleep }
    }
}

impl RetryPolicy for RetryUntilElapsed {
    fn allow_retry(&self, _retry_count: u32, elapsed: Duration) -> Option<Duration> {
        (elapsed < self.max_elapsed).then_some(self.sleep)
    }
}

/// Like its delegate, but never retries a session expiry.
#[derive(Debug, Clone)]
pub struct SessionFailedRetryPolicy<P>(P);

impl<P: RetryPolicy> SessionFailedRetryPolicy<P> {
    /// Curator's `SessionFailedRetryPolicy(delegatePolicy)`.
    pub fn new(delegate: P) -> Self {
        SessionFailedRetryPolicy(delegate)
    }
}

impl<P: RetryPolicy> RetryPolicy for SessionFailedRetryPolicy<P> {
    fn allow_retry(&self, retry_count: u32, elapsed: Duration) -> Option<Duration> {
        self.0.allow_retry(retry_count, elapsed)
    }
    fn allow_retry_on(&self, error: &Error) -> bool {
        !matches!(error, Error::SessionExpired) && self.0.allow_retry_on(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn exponential_matches_curators_formula() {
        let p = ExponentialBackoffRetry::new(100 * MS, 3);
        // base × max(1, r)
        assert_eq!(p.sleep_for(0, 0), 100 * MS);
        assert_eq!(p.sleep_for(0, 1), 100 * MS);
        assert_eq!(p.sleep_for(2, 7), 700 * MS);
        // Random draws stay within base × [1, 2^(n+1) − 1].
        for n in 0..3 {
            for _ in 0..200 {
                let d = p.allow_retry(n, Duration::ZERO).unwrap();
                assert!(
                    d >= 100 * MS && d <= 100 * MS * ((1 << (n + 1)) - 1),
                    "{n}: {d:?}"
                );
            }
        }
        assert_eq!(p.allow_retry(3, Duration::ZERO), None);
        let capped = ExponentialBackoffRetry::with_max_sleep(100 * MS, 10, 250 * MS);
        assert_eq!(capped.sleep_for(5, 50), 250 * MS);
        // The draw is clamped to the range of retry_count: 0..2.
        assert_eq!(p.sleep_for(0, 9), 100 * MS);
    }

    #[test]
    fn exponential_caps_retries_at_29() {
        let p = ExponentialBackoffRetry::new(MS, 1000);
        assert!(p.allow_retry(28, Duration::ZERO).is_some());
        assert_eq!(p.allow_retry(29, Duration::ZERO), None);
    }

    #[test]
    fn bounded_exponential_never_exceeds_max_sleep() {
        let p = BoundedExponentialBackoffRetry::new(100 * MS, 1000 * MS, 20);
        assert_eq!(p.sleep_for(10, 1 << 11), 1000 * MS);
        for n in 0..20 {
            assert!(p.allow_retry(n, Duration::ZERO).unwrap() <= 1000 * MS);
        }
        assert_eq!(p.allow_retry(20, Duration::ZERO), None);
    }

    #[test]
    fn constant_policies() {
        let n = RetryNTimes::new(2, 5 * MS);
        assert_eq!(n.allow_retry(0, Duration::ZERO), Some(5 * MS));
        assert_eq!(n.allow_retry(1, Duration::ZERO), Some(5 * MS));
        assert_eq!(n.allow_retry(2, Duration::ZERO), None);
        let one = RetryOneTime::new(7 * MS);
        assert_eq!(one.allow_retry(0, Duration::ZERO), Some(7 * MS));
        assert_eq!(one.allow_retry(1, Duration::ZERO), None);
        let forever = RetryForever::new(3 * MS);
        assert_eq!(forever.allow_retry(u32::MAX, Duration::MAX), Some(3 * MS));
        let until = RetryUntilElapsed::new(100 * MS, 10 * MS);
        assert_eq!(until.allow_retry(50, 99 * MS), Some(10 * MS));
        assert_eq!(until.allow_retry(0, 100 * MS), None);
    }

    #[test]
    fn session_failed_policy_never_retries_expiry() {
        let p = SessionFailedRetryPolicy::new(RetryNTimes::new(3, MS));
        assert!(!p.allow_retry_on(&Error::SessionExpired));
        assert!(p.allow_retry_on(&Error::ConnectionLoss));
        assert!(!p.allow_retry_on(&Error::NoNode));
        assert_eq!(p.allow_retry(0, Duration::ZERO), Some(MS));
        let plain = RetryNTimes::new(3, MS);
        assert!(plain.allow_retry_on(&Error::SessionExpired));
    }
}
