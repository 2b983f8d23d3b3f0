//! The background task of a [`TreeCache`](super::TreeCache): keeps one persistent recursive
//! watch on the root, applies its events in order, and re-reads the whole tree whenever the
//! client connects again. On a server without persistent watches (addWatch answered
//! UNIMPLEMENTED) it hands over to the one-shot fallback ([`one_shot`](super::one_shot)).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::join_all;
use futures::StreamExt;
use tokio::sync::watch;
use zk_client::{Client, ConnectionStates, Error as ZkError, PersistentWatch, WatchedEvent};
use zk_proto::{EventType, Stat};

use super::store::{depth_below, parent_of, Store};
use super::CacheEvent;
pub(super) use crate::util::stopped;
use crate::watch_keeper::{keep_watch, Followed, KeptWatch};

/// What the cache handle and its task share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) root: String,
    pub(crate) max_depth: usize,
    pub(crate) store: Store,
    pub(crate) initialized: watch::Sender<bool>,
    /// Set once the server refused persistent watches and the cache fell back to one-shot
    /// watches ([`one_shot`](super::one_shot)).
    pub(crate) one_shot: AtomicBool,
}

/// How many nodes one step of a full read asks for at once.
const READ_BATCH: usize = 256;

const MIN_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

pub(crate) async fn run(shared: std::sync::Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut states = shared.client.connection_states();
    keep_watch(&*shared, &mut states, &mut stop).await;
    // Closed, or the client is (or failed authentication): no event comes any more.
    shared.store.close_listeners();
}

impl KeptWatch for Shared {
    type Watch = PersistentWatch;

    fn add(&self) -> impl Future<Output = Result<PersistentWatch, ZkError>> + Send {
        add_watch(self)
    }

    fn follow(
        &self,
        watch: PersistentWatch,
        states: &mut ConnectionStates,
        stop: &mut watch::Receiver<bool>,
    ) -> impl Future<Output = Followed> + Send {
        follow(self, watch, states, stop)
    }

    async fn add_failed(
        &self,
        e: ZkError,
        states: &mut ConnectionStates,
        stop: &mut watch::Receiver<bool>,
    ) -> Followed {
        if matches!(e, ZkError::Unimplemented { .. }) {
            tracing::warn!(path = %self.root, %e, "the server has no persistent recursive watches (ZooKeeper < 3.6): falling back to one-shot watches per node");
            self.one_shot.store(true, Ordering::SeqCst);
            super::one_shot::run(self, states, stop).await;
            return Followed::Stop;
        }
        tracing::debug!(path = %self.root, %e, "adding the cache's watch failed; retrying");
        Followed::Rewatch
    }
}

/// The cache's watch: a persistent watch on the node alone when only the node is cached
/// (so the server does not send the events of the whole subtree), else a recursive one.
async fn add_watch(shared: &Shared) -> Result<PersistentWatch, ZkError> {
    let watch = shared.client.add_watch(&shared.root);
    if shared.max_depth == 0 {
        watch.await
    } else {
        watch.recursive().await
    }
}

/// Follows one persistent watch until it ends.
async fn follow(
    shared: &Shared,
    mut watch: PersistentWatch,
    states: &mut ConnectionStates,
    stop: &mut watch::Receiver<bool>,
) -> Followed {
    let mut needs_read = true;
    let mut backoff = MIN_BACKOFF;
    loop {
        if needs_read {
            // Reads only: cancelling them when the cache closes is harmless.
            let read = tokio::select! {
                biased;
                _ = stopped(stop) => return Followed::Stop,
                r = read_all(shared) => r,
            };
            match read {
                Ok(seen) => {
                    shared.store.replace_all(seen);
                    needs_read = false;
                    backoff = MIN_BACKOFF;
                    if !*shared.initialized.borrow() {
                        shared.store.emit(CacheEvent::Initialized);
                        shared.initialized.send_replace(true);
                    }
                }
                Err(ZkError::Closed) => return Followed::Stop,
                Err(e) => super::log_read_failure(&shared.root, &e),
            }
        }
        let retry = async {
            if needs_read {
                tokio::time::sleep(backoff).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            biased;
            _ = stopped(stop) => return Followed::Stop,
            // Before the events: a steady flow of them must not hold back the re-read a
            // reconnect calls for.
            state = states.next() => match state {
                // Changes made while disconnected fire no events, nor those a read-only
                // server did not know of: read everything again.
                Some(state) if state.is_connected() => needs_read = true,
                Some(_) => {}
                None => return Followed::Stop,
            },
            event = watch.next() => match event {
                Some(event) if is_node_event(&event) => match tokio::select! {
                    biased;
                    _ = stopped(stop) => return Followed::Stop,
                    r = apply(shared, &event) => r,
                } {
                    Ok(()) => {}
                    Err(ZkError::Closed) => return Followed::Stop,
                    Err(e) => {
                        tracing::debug!(path = %event.path, %e, "reading a changed node failed; the tree will be re-read");
                        needs_read = true;
                    }
                },
                // A node cache's non-recursive persistent watch also reports its node's
                // children changing: nothing the cache holds.
                Some(event) if event.event_type == EventType::NodeChildrenChanged => {}
                // The session ended (a new one is being built) or the watch was removed.
                _ => return Followed::Rewatch,
            },
            _ = retry => backoff = (backoff * 2).min(MAX_BACKOFF),
        }
    }
}

fn is_node_event(event: &WatchedEvent) -> bool {
    matches!(
        event.event_type,
        EventType::NodeCreated | EventType::NodeDataChanged | EventType::NodeDeleted
    )
}

/// Applies one watch event: re-reads a created or changed node, forgets a deleted one.
async fn apply(shared: &Shared, event: &WatchedEvent) -> Result<(), ZkError> {
    let depth = match depth_below(&event.path, &shared.root) {
        Some(depth) if depth <= shared.max_depth => depth,
        _ => return Ok(()),
    };
    if depth > 0
        && event.event_type != EventType::NodeDeleted
        && shared.store.get(parent_of(&event.path)).is_none()
    {
        // Below a node the cache left out (unreadable, or its children too many to list):
        // left out too, as the full read leaves it, rather than in until the next re-read.
        return Ok(());
    }
    match event.event_type {
        EventType::NodeDeleted => shared.store.remove_subtree(&event.path),
        _ => match shared.client.get_data(&event.path).await {
            Ok((data, stat)) => shared.store.upsert(&event.path, data, stat),
            // Deleted since: its NodeDeleted event follows.
            Err(ZkError::NoNode) => {}
            // A busy server: keep what the cache holds of the node until its next change or
            // the next full read (as Curator), rather than read the whole tree again, which a
            // server shedding load would refuse the same way.
            Err(ZkError::ThrottledOp) => {
                tracing::warn!(path = %event.path, "a changed node's read was throttled; its cached copy may be stale");
            }
            Err(e) if super::fails_the_read(&event.path, &e) => return Err(e),
            // Unreadable now: what the cache held of it is stale.
            Err(_) => shared.store.remove_subtree(&event.path),
        },
    }
    Ok(())
}

/// Reads every node of the (depth-limited) tree, level by level.
async fn read_all(shared: &Shared) -> Result<Vec<(String, Vec<u8>, Stat)>, ZkError> {
    let client = &shared.client;
    let mut seen = Vec::new();
    let mut level = vec![(shared.root.clone(), 0usize)];
    while !level.is_empty() {
        let mut next = Vec::new();
        for batch in level.chunks(READ_BATCH) {
            let reads = batch.iter().map(|(path, depth)| async move {
                let want_children = *depth < shared.max_depth;
                let (data, children) = tokio::join!(client.get_data(path), async {
                    if want_children {
                        Some(client.get_children(path).await)
                    } else {
                        None
                    }
                });
                (path, *depth, data, children)
            });
            for (path, depth, data, children) in join_all(reads).await {
                match data {
                    Ok((bytes, stat)) => seen.push((path.clone(), bytes, stat)),
                    Err(ZkError::NoNode) => continue,
                    Err(e) if super::fails_the_read(path, &e) => return Err(e),
                    Err(_) => continue,
                }
                match children {
                    Some(Ok(names)) => next.extend(
                        names
                            .iter()
                            .map(|name| (crate::nodes::join(path, name), depth + 1)),
                    ),
                    Some(Err(ZkError::NoNode)) | None => {}
                    Some(Err(e)) if super::fails_the_read(path, &e) => return Err(e),
                    Some(Err(_)) => {}
                }
            }
        }
        level = next;
    }
    Ok(seen)
}
