//! Apache Curator's coordination recipes, built only on `zk-client`'s public API, honest about
//! failure.
//!
//! Available now:
//!
//! * [`Mutex`] — Curator's `InterProcessMutex`: exclusive between processes and between tasks
//!   sharing a handle, explicitly reentrant ([`MutexGuard::reenter`]), fair, no herd effect,
//!   acquire with a timeout; every [`MutexGuard`] carries a **fencing token** and reports when
//!   the lock **may be lost** (SUSPENDED) or **is lost** (LOST).
//! * [`ReadWriteLock`] — Curator's `InterProcessReadWriteLock`: shared readers, an exclusive
//!   writer, readers queued behind a waiting writer wait; downgrade (read while holding the
//!   write lock) works, upgrade is refused ([`Error::WouldDeadlock`]). Its guards are
//!   [`MutexGuard`]s, with the same fencing tokens and state reporting.
//! * [`Semaphore`] / [`SemaphoreMutex`] — Curator's `InterProcessSemaphoreV2` (leases, a
//!   fixed limit or one driven by a [`SharedCount`]) and `InterProcessSemaphoreMutex`.
//! * [`MultiLock`] — Curator's `InterProcessMultiLock`: several mutexes, semaphore mutexes
//!   and read or write locks, all or nothing.
//! * [`Revoker`] — Curator's lock revocation: ask a holder to release
//!   ([`MutexGuard::revocation_requested`] tells the holder).
//! * [`LeaderSelector`] — Curator's `LeaderSelector`: an async closure runs while leading,
//!   is cancelled (a future in its [`LeadershipContext`]) on SUSPENDED/LOST per the
//!   client's [`ConnectionStateErrorPolicy`](zk_client::ConnectionStateErrorPolicy),
//!   interruption or close, and dropped if it does not return in time; auto-requeue.
//! * [`LeaderLatch`] — Curator's `LeaderLatch`: await leadership, a leadership watch channel,
//!   participants and the current leader; never claims leadership without checking that its
//!   node belongs to its current session; re-checks on RECONNECTED instead of resetting.
//! * [`TreeCache`], [`PathChildrenCache`], [`NodeCache`] ([`cache`]) — Curator's
//!   `CuratorCache` and its children/node views: a subtree on one persistent recursive watch,
//!   re-read after every reconnect or new session and diffed by `czxid`/`mzxid`, so no change
//!   is missed (not even a delete-and-recreate). On ZooKeeper 3.5 (no persistent watches)
//!   they fall back to one-shot watches per node, as Curator's `TreeCache`.
//! * [`PersistentWatcher`] — Curator's `PersistentWatcher`: a persistent (optionally
//!   recursive) watch put back in every new session, with a `Reset` event whenever changes
//!   may have gone unseen (start, reconnect, new session).
//! * [`PersistentNode`] — a node kept present (re-created after a delete or a session loss)
//!   until closed; ephemeral, sequential and protected variants.
//! * [`PersistentTtlNode`] — Curator's `PersistentTtlNode`: a CONTAINER node kept present
//!   while the process runs, with a TTL child `<path>/touch` touched every `ttl / 2`, so the
//!   node disappears on its own about a TTL after its owner stops (needs TTL nodes on the
//!   server).
//! * [`GroupMember`] — Curator's `GroupMember`: this process's EPHEMERAL node
//!   `<path>/<id>` (kept by a [`PersistentNode`]) and a cache of every member's id and
//!   payload.
//! * [`Barrier`] — Curator's `DistributedBarrier`: waiters block while one node exists.
//! * [`DoubleBarrier`] — Curator's `DistributedDoubleBarrier`: enter when `n` members are
//!   present, leave when all are gone; every wait re-checks its predicate after every wake-up
//!   (Curator's GH-1290 fixed).
//! * [`SharedValue`] / [`SharedCount`] — Curator's shared values: a cached, watched value
//!   (bytes, or a 4-byte big-endian count) with compare-and-set on the node version; kept
//!   current across reconnects and new sessions.
//! * [`DistributedAtomicLong`], [`DistributedAtomicInteger`], [`DistributedAtomicValue`] —
//!   Curator's atomic counters (8- and 4-byte big-endian nodes) and atomic bytes: optimistic
//!   compare-and-set retried under a retry policy, with optional promotion to a [`Mutex`]
//!   ([`PromotedToLock`]).
//! * [`SimpleDistributedQueue`], [`DistributedQueue`], [`DistributedPriorityQueue`],
//!   [`DistributedDelayQueue`], [`DistributedIdQueue`] ([`queue`]) — Curator's queues: typed
//!   items delivered to an async consumer function, optionally under per-item lock nodes
//!   (at-least-once, requeue on failure), bounded puts, priorities, due times and ids.
//!   ZooKeeper is a poor high-volume queue: see the [`queue`] module before using them for
//!   volume.
//!
//! # Layout compatibility
//!
//! Node names and sorting follow Curator, so Java and Rust processes can share a path:
//! lock nodes are protected EPHEMERAL_SEQUENTIAL `<path>/_c_<uuid>-lock-NNNNNNNNNN` (latch
//! nodes `…-latch-NNNNNNNNNN`, data = participant id), parents are CONTAINER nodes, and the
//! queue is sorted on the part of the name after the lock name ([`nodes::sort_key`]), so the
//! `_c_<uuid>-` protection prefix is ignored. The mutex and the latch are layout-compatible
//! with Curator's `InterProcessMutex` and `LeaderLatch`; they are not compatible with
//! kazoo's `Lock` (kazoo names nodes `<uuid>__lock__N`). The barriers, shared values and the atomic counter use
//! Curator's layouts too: a barrier is one node; a double barrier has EPHEMERAL member nodes
//! `<path>/<uuid>` and a `<path>/ready` node; a shared count and an atomic long are one node
//! holding a 4-byte or 8-byte big-endian integer. The queues use Curator's node names
//! (`qn-N`, `queue-N`, `queue-<1|0><%08X priority>N`, `queue-|<%08X epoch ms>|N`,
//! `queue-|<id>|N`), Curator's item envelope and its lock nodes `<lockPath>/<item name>`.
//! The read-write lock's nodes are `…-__READ__N` / `…-__WRIT__N` under one path; a semaphore
//! keeps its lock under `<path>/locks` and its leases as `<path>/leases/…-lease-N`; a leader
//! selector queues `…-lock-N` nodes holding the participant id — all as Curator.
//!
//! # Safety of locks (read this)
//!
//! A ZooKeeper lock is only as good as the session behind it: a process paused (GC, swap) or
//! partitioned past its session timeout loses the lock without knowing it, while another
//! process acquires it. Therefore:
//!
//! * pass [`MutexGuard::fencing_token`] (the lock node's `czxid`, strictly increasing across
//!   grants) to the protected resource and let it reject tokens lower than the highest it saw;
//! * stop working on the resource when [`MutexGuard::at_risk`] resolves (SUSPENDED: the
//!   connection dropped and the session may be gone; LOST: it is gone).
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use zk_client::Client;
//! use zk_recipes::{LeaderLatch, Mutex};
//!
//! # async fn example() -> zk_recipes::Result<()> {
//! let client = Client::builder()
//!     .connect_string("127.0.0.1:2181")
//!     .session_timeout(Duration::from_secs(10))
//!     .build()?;
//!
//! // A lock.
//! let mutex = Mutex::new(client.clone(), "/app/locks/orders")?;
//! if let Some(guard) = mutex.acquire_timeout(Duration::from_secs(5)).await? {
//!     println!("holding {} with token {}", guard.node_path(), guard.fencing_token());
//!     guard.release().await?;
//! }
//!
//! // Leader election.
//! let latch = LeaderLatch::new(client.clone(), "/app/leader", "host-1")?;
//! latch.start()?;
//! latch.await_leadership().await?;
//! println!("leading: {}", latch.has_leadership());
//! latch.close().await?;
//! # Ok(())
//! # }
//! ```

pub mod atomic_number;
pub mod atomic_value;
pub mod barrier;
pub mod cache;
pub mod double_barrier;
mod error;
mod group_member;
pub mod leader_latch;
pub mod leader_selector;
mod lock_internals;
pub mod multilock;
pub mod mutex;
pub mod nodes;
mod persistent_node;
pub mod persistent_ttl_node;
pub mod persistent_watcher;
pub mod queue;
mod revocation;
pub mod rwlock;
pub mod semaphore;
pub mod shared_count;
mod util;
mod watch_keeper;
mod write_once;

pub use atomic_number::{
    AtomicNumber, DistributedAtomicInteger, DistributedAtomicLong, DistributedAtomicNumber,
};
pub use atomic_value::{AtomicStats, AtomicValue, DistributedAtomicValue, PromotedToLock};
pub use barrier::Barrier;
pub use cache::{CacheEvent, CacheEvents, ChildData, NodeCache, PathChildrenCache, TreeCache};
pub use double_barrier::DoubleBarrier;
pub use error::{Error, Result};
pub use group_member::GroupMember;
pub use leader_latch::{LeaderLatch, LeadershipChanges, Participant};
pub use leader_selector::{CancelReason, LeaderSelector, LeaderSelectorBuilder, LeadershipContext};
pub use multilock::{MultiLock, MultiLockGuard, MultiLockPart, MultiLockPartGuard};
pub use mutex::{LockState, LockStates, Mutex, MutexGuard};
pub use persistent_node::{PersistentNode, PersistentNodeBuilder};
pub use persistent_ttl_node::{PersistentTtlNode, PersistentTtlNodeBuilder};
pub use persistent_watcher::{PersistentWatcher, WatcherEvent, WatcherEvents};
pub use queue::{
    DistributedDelayQueue, DistributedIdQueue, DistributedPriorityQueue, DistributedQueue,
    ErrorMode, QueueBuilder, QueueSerializer, SimpleDistributedQueue,
};
pub use revocation::Revoker;
pub use rwlock::{ReadLock, ReadWriteLock, WriteLock};
pub use semaphore::{Lease, Semaphore, SemaphoreMutex, SemaphoreMutexGuard};
pub use shared_count::{SharedCount, SharedValue, VersionedValue};
