//! The fallback of a [`TreeCache`](super::TreeCache) on servers without persistent watches
//! (ZooKeeper 3.5 answers addWatch UNIMPLEMENTED): Curator's `TreeCache` way — one-shot
//! watches per cached node (a data watch on every node, a child watch on every node above the
//! depth limit, an exists watch on a missing root), each re-armed by the read its firing
//! causes. The contents and events follow the same rules as with the persistent watch (the
//! [`Store`] diffs every read), and the whole tree is re-read whenever the client connects
//! again.
//!
//! Every watch is tracked by (path, kind), and a watch is set only where none is armed, so
//! each node carries at most one watch of each kind. A watch that fired is forgotten only
//! when its event is handled, by the read of the same kind that sets it again; a read made
//! meanwhile without a watch (the watch looked armed) is followed by that read, so nothing
//! is missed. On a new session the old session's
//! watches are forgotten (they ended with it, or, after a read-only session, carried over to
//! the new one and now fire into the void) and the re-read sets new ones. Watches left
//! when the cache closes fire once into the void (they are not removed from the server, since
//! the client's other users may watch the same paths).

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use futures::future::{join_all, BoxFuture};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use tokio::sync::watch;
use zk_client::{Client, ConnectionStates, Error as ZkError, WatchedEvent};
use zk_proto::{EventType, Stat};

use super::store::{depth_below, parent_of, Store};
use super::task::{stopped, Shared};
use super::CacheEvent;

/// How many nodes one step of a full read asks for at once.
const READ_BATCH: usize = 256;

const MIN_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The kinds of one-shot watches the cache sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// getData: the node's data changed or it was deleted.
    Data,
    /// getChildren: the node's children changed or it was deleted.
    Children,
    /// exists on the missing root: it was created.
    Exists,
}

/// A watch that fired: its path, its kind and the event.
type Fired = (String, Kind, WatchedEvent);

/// The armed watches of the current session.
struct Watches {
    session: i64,
    armed: HashSet<(String, Kind)>,
    pending: FuturesUnordered<BoxFuture<'static, Fired>>,
}

impl Watches {
    fn new(session: i64) -> Watches {
        Watches {
            session,
            armed: HashSet::new(),
            pending: FuturesUnordered::new(),
        }
    }

    /// Forgets the watches of an earlier session (ended with it, or carried over from a
    /// read-only session: the re-read that follows a new session sets them again).
    fn follow_session(&mut self, client: &Client) {
        let session = client.session_id();
        if session != self.session {
            self.session = session;
            self.armed.clear();
            self.pending = FuturesUnordered::new();
        }
    }

    fn is_armed(&self, path: &str, kind: Kind) -> bool {
        self.armed.contains(&(path.to_owned(), kind))
    }

    /// Tracks a watch just set; a second one of the same kind on the same path is dropped
    /// (the first one covers it).
    fn add(&mut self, path: &str, kind: Kind, watch: zk_client::WatchFuture) {
        if self.armed.insert((path.to_owned(), kind)) {
            let path = path.to_owned();
            self.pending
                .push(watch.map(move |event| (path, kind, event)).boxed());
        }
    }
}

/// Something to bring up to date after a watch fired.
#[derive(Debug)]
enum Work {
    /// Re-read a node's data (and, if it is new to the cache, its children).
    Node(String),
    /// Re-list a node's children.
    Children(String),
}

/// Runs the cache on one-shot watches until it is closed (or the client is).
pub(super) async fn run(
    shared: &Shared,
    states: &mut ConnectionStates,
    stop: &mut watch::Receiver<bool>,
) {
    let mut watches = Watches::new(shared.client.session_id());
    let mut work: VecDeque<Work> = VecDeque::new();
    let mut needs_read = true;
    let mut backoff = MIN_BACKOFF;
    loop {
        if needs_read {
            work.clear();
            // Reads only (and watches that die with this task): cancelling them when the
            // cache closes is harmless, and waiting for them could take the retry policy's
            // whole budget while the server is unreachable.
            let read = tokio::select! {
                biased;
                _ = stopped(stop) => return,
                r = read_tree(shared, &mut watches) => r,
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
                Err(ZkError::Closed) => return,
                Err(e) => super::log_read_failure(&shared.root, &e),
            }
        }
        while !needs_read {
            let Some(item) = work.pop_front() else {
                break;
            };
            let processed = tokio::select! {
                biased;
                _ = stopped(stop) => return,
                r = process(shared, &mut watches, item, &mut work) => r,
            };
            match processed {
                Ok(()) => {}
                Err(ZkError::Closed) => return,
                Err(e) => {
                    tracing::debug!(path = %shared.root, %e, "reading a changed node failed; the tree will be re-read");
                    needs_read = true;
                }
            }
        }
        let retry = async {
            if needs_read {
                tokio::time::sleep(backoff).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let has_watches = !watches.pending.is_empty();
        tokio::select! {
            biased;
            _ = stopped(stop) => return,
            state = states.next() => match state {
                // Same session: the client re-registered the watches, and they fire for what
                // changed meanwhile; a new session: they are gone (or carried over from a
                // read-only server, which did not know everything). Either way, read it all.
                Some(state) if state.is_connected() => needs_read = true,
                Some(_) => {}
                None => return,
            },
            fired = watches.pending.next(), if has_watches => {
                if let Some((path, kind, event)) = fired {
                    watches.armed.remove(&(path.clone(), kind));
                    match follow_up(kind, &event) {
                        Some(item) => work.push_back(item),
                        // The session ended (or the watch was removed): read everything on
                        // the next session.
                        None => needs_read = true,
                    }
                }
            },
            _ = retry => backoff = (backoff * 2).min(MAX_BACKOFF),
        }
    }
}

/// What to re-read after a watch of `kind` fired with `event`: the read of the same kind, which
/// sets the watch again (so every cached node always has its watches armed, or a read that
/// arms them queued). None if the watch ended without a node event (session expired, client
/// closed, watch removed).
fn follow_up(kind: Kind, event: &WatchedEvent) -> Option<Work> {
    let path = event.path.clone();
    match event.event_type {
        EventType::NodeCreated
        | EventType::NodeDeleted
        | EventType::NodeDataChanged
        | EventType::NodeChildrenChanged => Some(match kind {
            Kind::Data | Kind::Exists => Work::Node(path),
            // A deletion too: listing the missing node queues the read that forgets it.
            Kind::Children => Work::Children(path),
        }),
        _ => None,
    }
}

/// Whether `path` is cached or may be (within the depth limit, its parent cached).
fn in_scope(shared: &Shared, path: &str) -> Option<usize> {
    let depth = depth_below(path, &shared.root)?;
    if depth > shared.max_depth {
        return None;
    }
    if depth > 0 {
        let parent = parent_of(path);
        shared.store.get(parent)?;
    }
    Some(depth)
}

/// One work item; may queue more (the children of a new node, a new child).
async fn process(
    shared: &Shared,
    watches: &mut Watches,
    item: Work,
    work: &mut VecDeque<Work>,
) -> Result<(), ZkError> {
    let store: &Store = &shared.store;
    match item {
        Work::Node(path) => {
            let Some(depth) = in_scope(shared, &path) else {
                return Ok(());
            };
            let read = match read_data(&shared.client, watches, &path).await {
                Ok(read) => read,
                Err(e) if super::fails_the_read(&path, &e) => return Err(e),
                Err(_) => {
                    // Left out, as a full read leaves it: no reason to read the tree again.
                    store.remove_subtree(&path);
                    return Ok(());
                }
            };
            match read {
                Some((data, stat)) => {
                    let cached = store.get(&path);
                    let known = cached.as_ref().is_some_and(|d| d.stat.czxid == stat.czxid);
                    if cached.is_some() && !known {
                        // Deleted and re-created meanwhile: the old node and everything
                        // cached below it are gone.
                        store.remove_subtree(&path);
                    }
                    store.upsert(&path, data, stat);
                    if !known && depth < shared.max_depth {
                        work.push_back(Work::Children(path));
                    }
                }
                None => {
                    store.remove_subtree(&path);
                    if path == shared.root && exists_watched(&shared.client, watches, &path).await?
                    {
                        // Created again before the exists watch was set.
                        work.push_back(Work::Node(path));
                    }
                }
            }
        }
        Work::Children(path) => {
            let cached = match in_scope(shared, &path) {
                Some(depth) if depth < shared.max_depth => store.get(&path),
                _ => None,
            };
            let Some(cached) = cached else {
                return Ok(());
            };
            let listed = match read_children(&shared.client, watches, &path).await {
                Ok(listed) => listed,
                Err(e) if super::fails_the_read(&path, &e) => return Err(e),
                Err(_) => {
                    // Children that cannot be listed are left out, as a full read leaves them.
                    for child in store.children(&path) {
                        store.remove_subtree(&child.path);
                    }
                    return Ok(());
                }
            };
            match listed {
                Some((_, stat)) if stat.czxid != cached.stat.czxid => {
                    // Another node at the path now: re-read it (and so its children) first.
                    work.push_back(Work::Node(path));
                }
                Some((names, _)) => {
                    let listed: HashSet<&str> = names.iter().map(String::as_str).collect();
                    for child in store.children(&path) {
                        if !listed.contains(child.name()) {
                            store.remove_subtree(&child.path);
                        }
                    }
                    for name in &names {
                        let child = crate::nodes::join(&path, name);
                        if store.get(&child).is_none() {
                            work.push_back(Work::Node(child));
                        }
                    }
                }
                None => work.push_back(Work::Node(path)),
            }
        }
    }
    Ok(())
}

/// Reads a node's data, setting a data watch unless one is armed; None if it does not exist.
async fn read_data(
    client: &Client,
    watches: &mut Watches,
    path: &str,
) -> Result<Option<(Vec<u8>, Stat)>, ZkError> {
    watches.follow_session(client);
    if watches.is_armed(path, Kind::Data) {
        return match client.get_data(path).await {
            Ok(read) => Ok(Some(read)),
            Err(ZkError::NoNode) => Ok(None),
            Err(e) => Err(e),
        };
    }
    match client.get_data(path).watched().await {
        Ok((data, stat, watch)) => {
            watches.add(path, Kind::Data, watch);
            Ok(Some((data, stat)))
        }
        // No watch is left on a missing node.
        Err(ZkError::NoNode) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Lists a node's children (with the node's stat), setting a child watch unless one is
/// armed; None if it does not exist.
async fn read_children(
    client: &Client,
    watches: &mut Watches,
    path: &str,
) -> Result<Option<(Vec<String>, Stat)>, ZkError> {
    watches.follow_session(client);
    if watches.is_armed(path, Kind::Children) {
        return match client.get_children(path).with_stat().await {
            Ok(read) => Ok(Some(read)),
            Err(ZkError::NoNode) => Ok(None),
            Err(e) => Err(e),
        };
    }
    match client.get_children(path).with_stat().watched().await {
        Ok((names, stat, watch)) => {
            watches.add(path, Kind::Children, watch);
            Ok(Some((names, stat)))
        }
        Err(ZkError::NoNode) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether the (missing) root exists now; leaves an exists watch on it unless one is armed.
async fn exists_watched(
    client: &Client,
    watches: &mut Watches,
    path: &str,
) -> Result<bool, ZkError> {
    watches.follow_session(client);
    if watches.is_armed(path, Kind::Exists) {
        return Ok(client.exists(path).await?.is_some());
    }
    let (stat, watch) = client.exists(path).watched().await?;
    watches.add(path, Kind::Exists, watch);
    Ok(stat.is_some())
}

/// Reads every node of the (depth-limited) tree, level by level, setting every watch that is
/// not armed.
async fn read_tree(
    shared: &Shared,
    watches: &mut Watches,
) -> Result<Vec<(String, Vec<u8>, Stat)>, ZkError> {
    let client = &shared.client;
    loop {
        watches.follow_session(client);
        let mut seen = Vec::new();
        // The root exists but may not be read (or its data not decoded): left out, as any
        // such node; its exists watch tells when it changes.
        let mut root_left_out = false;
        let mut level = vec![(shared.root.clone(), 0usize)];
        while !level.is_empty() {
            let mut next = Vec::new();
            for batch in level.chunks(READ_BATCH) {
                let plans: Vec<(&str, usize, bool, Option<bool>)> = batch
                    .iter()
                    .map(|(path, depth)| {
                        let watch_data = !watches.is_armed(path, Kind::Data);
                        let children = (*depth < shared.max_depth)
                            .then(|| !watches.is_armed(path, Kind::Children));
                        (path.as_str(), *depth, watch_data, children)
                    })
                    .collect();
                let reads =
                    plans
                        .into_iter()
                        .map(|(path, depth, watch_data, children)| async move {
                            let data = async {
                                if watch_data {
                                    client
                                        .get_data(path)
                                        .watched()
                                        .await
                                        .map(|(d, s, w)| (d, s, Some(w)))
                                } else {
                                    client.get_data(path).await.map(|(d, s)| (d, s, None))
                                }
                            };
                            let kids = async {
                                match children {
                                    Some(true) => Some(
                                        client
                                            .get_children(path)
                                            .watched()
                                            .await
                                            .map(|(c, w)| (c, Some(w))),
                                    ),
                                    Some(false) => {
                                        Some(client.get_children(path).await.map(|c| (c, None)))
                                    }
                                    None => None,
                                }
                            };
                            let (data, kids) = tokio::join!(data, kids);
                            (path, depth, data, kids)
                        });
                for (path, depth, data, kids) in join_all(reads).await {
                    match data {
                        Ok((bytes, stat, watch)) => {
                            if let Some(w) = watch {
                                watches.add(path, Kind::Data, w);
                            }
                            seen.push((path.to_owned(), bytes, stat));
                        }
                        Err(ZkError::NoNode) => {
                            // Gone; a child watch set by the listing below is of no use but
                            // harmless (it fires once, for the deletion).
                            if let Some(Ok((_, Some(w)))) = kids {
                                watches.add(path, Kind::Children, w);
                            }
                            continue;
                        }
                        Err(e) if super::fails_the_read(path, &e) => return Err(e),
                        Err(_) => {
                            root_left_out |= path == shared.root;
                            continue;
                        }
                    }
                    match kids {
                        Some(Ok((names, watch))) => {
                            if let Some(w) = watch {
                                watches.add(path, Kind::Children, w);
                            }
                            next.extend(
                                names
                                    .iter()
                                    .map(|name| (crate::nodes::join(path, name), depth + 1)),
                            );
                        }
                        Some(Err(ZkError::NoNode)) | None => {}
                        Some(Err(e)) if super::fails_the_read(path, &e) => return Err(e),
                        Some(Err(_)) => {}
                    }
                }
            }
            level = next;
        }
        if !seen.is_empty() {
            return Ok(seen);
        }
        let exists = match exists_watched(client, watches, &shared.root).await {
            Ok(exists) => exists,
            // A server that checks READ on exists too: the root is there, and left out.
            Err(e) if root_left_out && !super::fails_the_read(&shared.root, &e) => true,
            Err(e) => return Err(e),
        };
        if !exists || root_left_out {
            // No root, or one left out: the exists watch (where the server set one) tells
            // when it comes or changes.
            return Ok(seen);
        }
        // The root was created meanwhile: read again.
    }
}
