//! An async ZooKeeper client with Apache Curator's semantics, for tokio.
//!
//! Two layers:
//!
//! * the **session layer** ([`Session`]): one ZooKeeper session over successive TCP
//!   connections. One task owns the socket, the pending-request FIFO, the watch registry and the
//!   ping timer; it reconnects to the next host with the same session, replays credentials and
//!   re-registers every watch (SetWatches / SetWatches2 in ≤ 128 KB batches), and fails every
//!   in-flight request when the connection drops or the session expires — nothing hangs.
//! * the **framework layer** ([`Client`]): retry policies with Curator's formulas
//!   ([`retry`]), Curator's connection states ([`ConnectionState`]: CONNECTED, SUSPENDED,
//!   RECONNECTED, LOST, READ_ONLY) with a new session built after LOST, namespaces, protected
//!   creates, guaranteed deletes, transactions, and awaitable fluent builders.
//!
//! ```no_run
//! use std::time::Duration;
//! use futures::StreamExt;
//! use zk_client::{Client, CreateMode, ExponentialBackoffRetry};
//!
//! # async fn example() -> zk_client::Result<()> {
//! let client = Client::builder()
//!     .connect_string("127.0.0.1:2181")
//!     .session_timeout(Duration::from_secs(30))
//!     .retry_policy(ExponentialBackoffRetry::new(Duration::from_millis(100), 3))
//!     .namespace("app")
//!     .build()?;
//! client.block_until_connected(Duration::from_secs(10)).await?;
//!
//! // An ephemeral sequential node, parents created as containers, protected against lost replies.
//! let node = client
//!     .create("/workers/worker-")
//!     .mode(CreateMode::EphemeralSequential)
//!     .creating_parent_containers_if_needed()
//!     .with_protection()
//!     .data(b"host-1")
//!     .await?;
//!
//! // Read it back and watch it.
//! let (data, stat, watch) = client.get_data(&node.path).watched().await?;
//! assert_eq!(data, b"host-1");
//! client.set_data(&node.path, b"host-1b").version(stat.version).await?;
//! let event = watch.await;
//! println!("{:?} on {}", event.event_type, event.path);
//!
//! // Connection states, Curator style.
//! let mut states = client.connection_states();
//! tokio::spawn(async move {
//!     while let Some(state) = states.next().await {
//!         println!("connection state: {state:?}");
//!     }
//! });
//!
//! client.delete(&node.path).guaranteed().await?;
//! client.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Ordering
//!
//! A builder's request is queued when its future is first polled — also while disconnected:
//! the session task then keeps it, in arrival order, until the next connection (or until the
//! call's connection timeout passes: CONNECTIONLOSS; or the session expires: SESSIONEXPIRED,
//! it never runs in a later session). So one client's requests reach the server in the order
//! their futures were first polled, and replies and watch events come back in server order.
//! A namespace root used for the first time is created in the same pipeline, ahead of the
//! request.
//!
//! What is *not* guaranteed: a request that was already written when its connection dropped
//! has an unknown outcome and fails with CONNECTIONLOSS; the retry policy then re-sends it
//! after its own (possibly random) backoff. Several such calls in flight together are
//! re-sent independently, so their relative order after the reconnect is not preserved
//! (`join!(set(v1), set(v2))` interrupted by a disconnect may end with `v1`). Await a write
//! before issuing the next one when their order must survive connection loss, or use a
//! transaction or versioned writes.

#[cfg(feature = "cli")]
pub mod cli;
pub mod client;
pub mod compression;
pub mod connect_string;
mod dynamic_config;
pub mod error;
pub mod protected;
pub mod retry;
pub mod session;

pub use client::{
    AclProvider, Client, ClientBuilder, ConnectionState, ConnectionStateErrorPolicy,
    ConnectionStates, Created, FixedAclProvider, OpenAclProvider, ZkFuture,
};
pub use compression::{CompressionProvider, GzipCompressionProvider, MAX_DECOMPRESSED};
pub use connect_string::{ConnectString, HostPort};
pub use error::{Error, Result, MAX_DATA_LEN};
pub use retry::{
    BoundedExponentialBackoffRetry, ExponentialBackoffRetry, RetryForever, RetryNTimes,
    RetryOneTime, RetryPolicy, RetryUntilElapsed, SessionFailedRetryPolicy,
};
pub use session::{
    Op, OpResult, PersistentWatch, ReadOp, ReadResult, Session, SessionConfig, SessionState,
    WatchFuture, WatchedEvent,
};
pub use zk_proto::{
    Acl, AddWatchMode, ClientInfo, CreateMode, EventType, Id, KeeperState, Perms, Stat, WatcherType,
};
