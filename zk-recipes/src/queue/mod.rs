//! Curator's distributed queues, layout-compatible with Curator so Java and Rust processes can
//! share a queue path:
//!
//! * [`SimpleDistributedQueue`] — byte strings in `<path>/qn-NNNNNNNNNN` nodes; `offer`,
//!   `take` (waits), `poll`, `peek`, `element`. Also compatible with ZooKeeper's own queue
//!   recipe.
//! * [`DistributedQueue`] — typed items ([`QueueSerializer`]) in `<path>/queue-NNNNNNNNNN`
//!   nodes (Curator's item envelope, one or several items per node), delivered to an async
//!   consumer function by a consumer task; optional per-item lock nodes (Curator's
//!   `lockPath`) for at-least-once delivery with requeue on failure ([`ErrorMode`]); optional
//!   bound on the number of items (`maxItems`).
//! * [`DistributedPriorityQueue`] — lowest priority first (`queue-<1|0><%08X priority>N`).
//! * [`DistributedDelayQueue`] — each item due at a time (`queue-|<%08X epoch ms>|N`).
//! * [`DistributedIdQueue`] — items with ids, removable by id (`queue-|<id>|N`).
//!
//! All but the simple queue are built by a [`QueueBuilder`].
//!
//! # The consumer: a function, not a channel
//!
//! A queue delivers items by calling an async function (`Fn(T) -> impl Future<Output =
//! Result<(), E>>`) and awaiting it, one item at a time. The future's completion *is* the
//! acknowledgement: with a lock path the item stays locked and in the queue exactly as long
//! as the future runs, `Ok` removes it, `Err` or a panic requeues (or drops) it, and a crash
//! releases it to another consumer. A channel-based API would need a separate acknowledgement
//! handle that can be forgotten, leaked or sent twice; with a function none of that can
//! happen. To feed a channel anyway, send from the function (the send's error — the receiver
//! is gone — then requeues the item).
//!
//! # ZooKeeper is a poor high-volume queue
//!
//! As Curator's maintainers say (Curator Tech Note 4): ZooKeeper keeps every node in memory,
//! limits a node's data to 1 MB — and a `getChildren` reply too, so a queue with very many
//! items (tens of thousands of long names) can no longer even be listed — and every consumer
//! re-lists the whole queue after every change. These queues suit coordination-sized
//! workloads (hundreds or a few thousand items in flight, modest rates), not a message bus;
//! use Kafka, a database or a real broker for volume.

mod builder;
mod consumer;
mod delay;
mod distributed;
mod envelope;
mod id;
mod naming;
mod priority;
mod serializer;
mod simple;

pub use builder::QueueBuilder;
pub use delay::DistributedDelayQueue;
pub use distributed::DistributedQueue;
pub use id::DistributedIdQueue;
pub use naming::{QUEUE_ITEM_NAME, SIMPLE_ITEM_NAME};
pub use priority::DistributedPriorityQueue;
pub use serializer::{BoxError, BytesSerializer, FnSerializer, QueueSerializer, Utf8Serializer};
pub use simple::SimpleDistributedQueue;

/// What a queue with a lock path does with an item whose consumer failed (returned `Err` or
/// panicked): Curator's `ErrorMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ErrorMode {
    /// Put the item back at the end of the queue, in the same transaction that removes it
    /// (the default). For a multi-item node, the failed item and the ones after it are put
    /// back; the ones before it were consumed.
    #[default]
    Requeue,
    /// Delete the item (after giving the node's remaining items to the consumer).
    Delete,
}
