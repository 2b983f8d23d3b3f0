//! [`DistributedAtomicLong`] and [`DistributedAtomicInteger`]: Curator's numeric counters, a
//! [`DistributedAtomicValue`] holding a big-endian number.

use std::fmt;
use std::marker::PhantomData;

use zk_client::{Client, RetryPolicy};

use crate::atomic_value::{AtomicValue, DistributedAtomicValue, PromotedToLock};
use crate::{Error, Result};

/// A number a distributed counter can hold: `i64` ([`DistributedAtomicLong`]) or `i32`
/// ([`DistributedAtomicInteger`]). Sealed.
pub trait AtomicNumber: Copy + Eq + fmt::Debug + Send + Sync + 'static + private::Sealed {
    /// The stored length in bytes (8 or 4, as Java's `long` and `int`).
    const LEN: usize;
    /// `0`, the value of a missing node.
    const ZERO: Self;
    /// `1`.
    const ONE: Self;
    /// Big-endian bytes.
    fn to_bytes(self) -> Vec<u8>;
    /// From exactly [`LEN`](Self::LEN) big-endian bytes.
    fn from_bytes(bytes: &[u8]) -> Option<Self>;
    /// Addition wrapping on overflow, as Java's.
    fn wrapping_add(self, other: Self) -> Self;
    /// Subtraction wrapping on overflow, as Java's.
    fn wrapping_sub(self, other: Self) -> Self;
}

mod private {
    pub trait Sealed {}
    impl Sealed for i32 {}
    impl Sealed for i64 {}
}

macro_rules! atomic_number {
    ($t:ty, $len:literal) => {
        impl AtomicNumber for $t {
            const LEN: usize = $len;
            const ZERO: Self = 0;
            const ONE: Self = 1;
            fn to_bytes(self) -> Vec<u8> {
                self.to_be_bytes().to_vec()
            }
            fn from_bytes(bytes: &[u8]) -> Option<Self> {
                <[u8; $len]>::try_from(bytes).ok().map(<$t>::from_be_bytes)
            }
            fn wrapping_add(self, other: Self) -> Self {
                <$t>::wrapping_add(self, other)
            }
            fn wrapping_sub(self, other: Self) -> Self {
                <$t>::wrapping_sub(self, other)
            }
        }
    };
}

atomic_number!(i64, 8);
atomic_number!(i32, 4);

/// A distributed 64-bit counter: Curator's `DistributedAtomicLong` (8 bytes big-endian).
pub type DistributedAtomicLong = DistributedAtomicNumber<i64>;

/// A distributed 32-bit counter: Curator's `DistributedAtomicInteger` (4 bytes big-endian).
pub type DistributedAtomicInteger = DistributedAtomicNumber<i32>;

/// A distributed counter, layout-compatible with Curator's (one node holding the value
/// big-endian, 8 bytes for [`DistributedAtomicLong`], 4 for [`DistributedAtomicInteger`]; a
/// missing or empty node counts as `0`; parents are containers).
///
/// Updates are optimistic, optionally promoted to a lock, exactly as
/// [`DistributedAtomicValue`]'s, and not applied twice after a lost reply: an increment
/// whose outcome the value read back cannot tell fails with the connection error (see
/// "Connection loss" there; Curator re-sends the write and may increment twice). An update
/// that still fails returns `succeeded == false` — it is not an error.
///
/// ```no_run
/// # async fn f(client: zk_client::Client) -> zk_recipes::Result<()> {
/// use std::time::Duration;
/// use zk_client::ExponentialBackoffRetry;
/// use zk_recipes::{DistributedAtomicLong, PromotedToLock};
///
/// let counter = DistributedAtomicLong::with_promotion(
///     client,
///     "/app/counters/orders",
///     ExponentialBackoffRetry::new(Duration::from_millis(10), 5),
///     PromotedToLock::new("/app/locks/orders-counter").max_lock_time(Duration::from_secs(5)),
/// )?;
/// let r = counter.increment().await?;
/// if r.succeeded {
///     println!("{} -> {}", r.pre_value, r.post_value);
/// }
/// # Ok(()) }
/// ```
pub struct DistributedAtomicNumber<N: AtomicNumber> {
    value: DistributedAtomicValue,
    number: PhantomData<fn() -> N>,
}

impl<N: AtomicNumber> fmt::Debug for DistributedAtomicNumber<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DistributedAtomicNumber")
            .field("bytes", &N::LEN)
            .field("value", &self.value)
            .finish()
    }
}

impl<N: AtomicNumber> DistributedAtomicNumber<N> {
    /// A counter on the node `path`, retrying optimistic updates under `retry_policy`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an invalid path or the root.
    pub fn new(
        client: Client,
        path: &str,
        retry_policy: impl RetryPolicy + 'static,
    ) -> Result<DistributedAtomicNumber<N>> {
        Ok(Self::wrap(DistributedAtomicValue::new(
            client,
            path,
            retry_policy,
        )?))
    }

    /// As [`new`](Self::new), promoting updates to a lock when the optimistic attempts are
    /// exhausted.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an invalid path (of the counter or the lock) or the
    /// root.
    pub fn with_promotion(
        client: Client,
        path: &str,
        retry_policy: impl RetryPolicy + 'static,
        promotion: PromotedToLock,
    ) -> Result<DistributedAtomicNumber<N>> {
        Ok(Self::wrap(DistributedAtomicValue::with_promotion(
            client,
            path,
            retry_policy,
            promotion,
        )?))
    }

    fn wrap(value: DistributedAtomicValue) -> DistributedAtomicNumber<N> {
        DistributedAtomicNumber {
            value,
            number: PhantomData,
        }
    }

    /// The counter node's path.
    pub fn path(&self) -> &str {
        self.value.path()
    }

    /// The current value (`0` if the node is missing); always `succeeded`, with `pre_value ==
    /// post_value`.
    ///
    /// # Errors
    /// [`Error::Zk`] when the read fails; [`Error::CorruptValue`] when the node holds neither
    /// 0 bytes nor the number's length.
    pub async fn get(&self) -> Result<AtomicValue<N>> {
        let got = self.value.get().await?;
        self.numbers(got)
    }

    /// Adds 1 (wrapping on overflow, like Java).
    ///
    /// # Errors
    /// [`Error::Zk`] when a call fails for another reason than a concurrent change;
    /// [`Error::CorruptValue`] when the node holds neither 0 bytes nor the number's length.
    pub async fn increment(&self) -> Result<AtomicValue<N>> {
        self.update(|v| v.wrapping_add(N::ONE)).await
    }

    /// Subtracts 1 (wrapping on overflow).
    ///
    /// # Errors
    /// As [`increment`](Self::increment).
    pub async fn decrement(&self) -> Result<AtomicValue<N>> {
        self.update(|v| v.wrapping_sub(N::ONE)).await
    }

    /// Adds `delta` (wrapping on overflow).
    ///
    /// # Errors
    /// As [`increment`](Self::increment).
    pub async fn add(&self, delta: N) -> Result<AtomicValue<N>> {
        self.update(move |v| v.wrapping_add(delta)).await
    }

    /// Subtracts `delta` (wrapping on overflow).
    ///
    /// # Errors
    /// As [`increment`](Self::increment).
    pub async fn subtract(&self, delta: N) -> Result<AtomicValue<N>> {
        self.update(move |v| v.wrapping_sub(delta)).await
    }

    /// Sets the value to `value` (optimistically, with retries and promotion like an
    /// increment).
    ///
    /// # Errors
    /// As [`increment`](Self::increment).
    pub async fn try_set(&self, value: N) -> Result<AtomicValue<N>> {
        self.update(move |_| value).await
    }

    /// Sets the value to `new` if it is `expected` now: one attempt, no retries, no promotion
    /// (Curator's `compareAndSet`). As in Curator, a missing node never matches (use
    /// [`initialize`](Self::initialize) first), and a concurrent change between the read and
    /// the versioned write makes it fail even if the value was `expected` again.
    ///
    /// # Errors
    /// As [`get`](Self::get), and [`Error::Zk`] for a write whose outcome is unknown (see
    /// "Connection loss" on [`DistributedAtomicValue`]).
    pub async fn compare_and_set(&self, expected: N, new: N) -> Result<AtomicValue<N>> {
        let done = self
            .value
            .compare_and_set_if(|found| Ok(self.decode(found)? == expected), new.to_bytes())
            .await?;
        self.numbers(done)
    }

    /// Sets the value to `value` whatever it is (creating the node if missing).
    ///
    /// # Errors
    /// [`Error::Zk`] when a call fails.
    pub async fn force_set(&self, value: N) -> Result<()> {
        self.value.force_set(value.to_bytes()).await
    }

    /// Creates the node with `value` if it is missing: `true` if created, `false` if it
    /// existed (its value is left alone).
    ///
    /// # Errors
    /// [`Error::Zk`] when the create fails.
    pub async fn initialize(&self, value: N) -> Result<bool> {
        self.value.initialize(value.to_bytes()).await
    }

    async fn update(&self, make: impl Fn(N) -> N) -> Result<AtomicValue<N>> {
        let done = self
            .value
            .update(|bytes| Ok(make(self.decode(bytes)?).to_bytes()))
            .await?;
        self.numbers(done)
    }

    /// Curator's encoding: big-endian, `N::LEN` bytes; empty data is `0`.
    fn decode(&self, data: &[u8]) -> Result<N> {
        if data.is_empty() {
            return Ok(N::ZERO);
        }
        N::from_bytes(data).ok_or_else(|| Error::CorruptValue {
            path: self.value.path().to_owned(),
            len: data.len(),
        })
    }

    fn numbers(&self, bytes: AtomicValue<Vec<u8>>) -> Result<AtomicValue<N>> {
        Ok(AtomicValue {
            succeeded: bytes.succeeded,
            pre_value: self.decode(&bytes.pre_value)?,
            post_value: self.decode(&bytes.post_value)?,
            stats: bytes.stats,
        })
    }
}
