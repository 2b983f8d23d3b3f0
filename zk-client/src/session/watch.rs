//! Watches: the event type, the one-shot watch future, the persistent watch stream, and the
//! registry the session task keeps (keyed by server path) to dispatch notifications and to
//! re-register every watch after a reconnect.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::{mpsc, oneshot};
use zk_proto::{EventType, KeeperState, SetWatches, SetWatches2};

use super::actor::Command;

/// A watch notification (or a client-generated state event), with the path as the caller sees
/// it (chroot and namespace removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedEvent {
    /// What happened. [`EventType::None`] for session events (expired, closed).
    pub event_type: EventType,
    /// The session state: `SyncConnected` for node events, `Expired` or `Closed` when the watch
    /// ended because the session did.
    pub state: KeeperState,
    /// The node's path.
    pub path: String,
}

impl WatchedEvent {
    pub(crate) fn session_event(state: KeeperState, path: &str) -> WatchedEvent {
        WatchedEvent {
            event_type: EventType::None,
            state,
            path: path.to_owned(),
        }
    }
}

fn strip_prefix(prefix: Option<&str>, mut event: WatchedEvent) -> WatchedEvent {
    if let Some(stripped) = zk_proto::path::strip_chroot(prefix, &event.path) {
        if stripped.len() != event.path.len() {
            event.path = stripped.to_owned();
        }
    }
    event
}

/// A one-shot watch left by a watched `exists`, `get_data` or `get_children`: resolves with
/// the first event for the node.
///
/// If the session expires or the client closes before the node changes, it resolves with an
/// event of type [`EventType::None`] whose state says why. Dropping it is harmless (the server
/// side watch fires into the void once).
#[must_use = "a watch does nothing unless awaited"]
#[derive(Debug)]
pub struct WatchFuture {
    rx: oneshot::Receiver<WatchedEvent>,
    strip: Option<Arc<str>>,
    path: String,
}

impl WatchFuture {
    pub(crate) fn new(rx: oneshot::Receiver<WatchedEvent>, path: String) -> WatchFuture {
        WatchFuture {
            rx,
            strip: None,
            path,
        }
    }

    pub(crate) fn with_prefix(mut self, prefix: Option<Arc<str>>) -> WatchFuture {
        self.strip = prefix;
        self
    }
}

impl Future for WatchFuture {
    type Output = WatchedEvent;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<WatchedEvent> {
        let this = &mut *self;
        match Pin::new(&mut this.rx).poll(cx) {
            Poll::Ready(Ok(event)) => Poll::Ready(strip_prefix(this.strip.as_deref(), event)),
            // The session task ended without firing the watch: the client is closed.
            Poll::Ready(Err(_)) => Poll::Ready(strip_prefix(
                this.strip.as_deref(),
                WatchedEvent::session_event(KeeperState::Closed, &this.path),
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A persistent (or persistent recursive) watch added with addWatch: a stream of the events
/// for the node (or its subtree), kept across reconnects.
///
/// Changes made while the client was disconnected fire no event here (the server re-adds a
/// persistent watch on reconnect without catching up, as Apache's does), and the stream says
/// nothing of the disconnect itself: watch the connection states and re-read what you depend
/// on after a reconnect (the recipes' `PersistentWatcher` and caches do).
///
/// The stream ends after an event of type [`EventType::None`] when the session expires or the
/// client closes, or after [`EventType::PersistentWatchRemoved`] when the watch is removed.
/// Dropping it removes the watch from the server (removeWatches) once no other stream of this
/// client watches the same path in the same mode.
#[must_use = "a watch does nothing unless polled"]
#[derive(Debug)]
pub struct PersistentWatch {
    rx: mpsc::UnboundedReceiver<WatchedEvent>,
    strip: Option<Arc<str>>,
    id: u64,
    server_path: String,
    recursive: bool,
    commands: mpsc::WeakUnboundedSender<Command>,
}

impl PersistentWatch {
    pub(crate) fn new(
        rx: mpsc::UnboundedReceiver<WatchedEvent>,
        id: u64,
        server_path: String,
        recursive: bool,
        commands: mpsc::WeakUnboundedSender<Command>,
    ) -> PersistentWatch {
        PersistentWatch {
            rx,
            strip: None,
            id,
            server_path,
            recursive,
            commands,
        }
    }

    pub(crate) fn with_prefix(mut self, prefix: Option<Arc<str>>) -> PersistentWatch {
        self.strip = prefix;
        self
    }

    /// Whether this watch covers the whole subtree.
    pub fn is_recursive(&self) -> bool {
        self.recursive
    }
}

impl Stream for PersistentWatch {
    type Item = WatchedEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchedEvent>> {
        let this = &mut *self;
        match this.rx.poll_recv(cx) {
            Poll::Ready(Some(event)) => {
                Poll::Ready(Some(strip_prefix(this.strip.as_deref(), event)))
            }
            other => other,
        }
    }
}

impl Drop for PersistentWatch {
    fn drop(&mut self) {
        if let Some(tx) = self.commands.upgrade() {
            let _ = tx.send(Command::DropPersistent {
                path: std::mem::take(&mut self.server_path),
                id: self.id,
                recursive: self.recursive,
            });
        }
    }
}

/// Which one-shot table a successful read registers its watch in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OneShotKind {
    Data,
    Exist,
    Child,
}

type Subscribers = Vec<(u64, mpsc::UnboundedSender<WatchedEvent>)>;

/// Every watch of the session, keyed by server path.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    data: HashMap<String, Vec<oneshot::Sender<WatchedEvent>>>,
    exist: HashMap<String, Vec<oneshot::Sender<WatchedEvent>>>,
    child: HashMap<String, Vec<oneshot::Sender<WatchedEvent>>>,
    persistent: HashMap<String, Subscribers>,
    recursive: HashMap<String, Subscribers>,
}

/// Largest encoded SetWatches request (header included; the server's jute.maxbuffer guard).
pub(crate) const SET_WATCHES_BATCH_BYTES: usize = 128 * 1024;

/// A SetWatches request without paths: its header (xid, op code), the relative zxid and up to
/// five list lengths.
const SET_WATCHES_FIXED_BYTES: usize = 4 + 4 + 8 + 5 * 4;

/// One re-registration request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SetWatchesBatch {
    V1(SetWatches),
    V2(SetWatches2),
}

impl Registry {
    pub(crate) fn add_one_shot(
        &mut self,
        kind: OneShotKind,
        path: String,
        tx: oneshot::Sender<WatchedEvent>,
    ) {
        let table = match kind {
            OneShotKind::Data => &mut self.data,
            OneShotKind::Exist => &mut self.exist,
            OneShotKind::Child => &mut self.child,
        };
        let list = table.entry(path).or_default();
        list.retain(|s| !s.is_closed());
        list.push(tx);
    }

    pub(crate) fn add_persistent(
        &mut self,
        path: String,
        recursive: bool,
        id: u64,
        tx: mpsc::UnboundedSender<WatchedEvent>,
    ) {
        let table = if recursive {
            &mut self.recursive
        } else {
            &mut self.persistent
        };
        table.entry(path).or_default().push((id, tx));
    }

    /// Removes one persistent subscriber; returns true if none is left for that path and mode
    /// (so the server-side watch should go).
    pub(crate) fn remove_persistent(&mut self, path: &str, recursive: bool, id: u64) -> bool {
        let table = if recursive {
            &mut self.recursive
        } else {
            &mut self.persistent
        };
        let Some(list) = table.get_mut(path) else {
            return false;
        };
        list.retain(|(i, _)| *i != id);
        if list.is_empty() {
            table.remove(path);
            true
        } else {
            false
        }
    }

    /// Whether any one-shot watch (of any kind) is registered on `path`.
    pub(crate) fn has_one_shot(&self, path: &str) -> bool {
        [&self.data, &self.exist, &self.child].iter().any(|t| {
            t.get(path)
                .is_some_and(|l| l.iter().any(|s| !s.is_closed()))
        })
    }

    /// Whether any persistent watch (either mode) is registered on `path`.
    pub(crate) fn has_persistent(&self, path: &str) -> bool {
        self.persistent.contains_key(path) || self.recursive.contains_key(path)
    }

    /// Whether a persistent watch of the given mode is registered on `path`.
    pub(crate) fn has_persistent_mode(&self, path: &str, recursive: bool) -> bool {
        if recursive {
            self.recursive.contains_key(path)
        } else {
            self.persistent.contains_key(path)
        }
    }

    /// Ends every persistent watch with a `PersistentWatchRemoved` event (the server cannot
    /// re-register them).
    pub(crate) fn end_persistent(&mut self, strip: &dyn Fn(&str) -> String) {
        for table in [&mut self.persistent, &mut self.recursive] {
            for (path, list) in table.drain() {
                for (_, tx) in list {
                    let _ = tx.send(WatchedEvent {
                        event_type: EventType::PersistentWatchRemoved,
                        state: KeeperState::Disconnected,
                        path: strip(&path),
                    });
                }
            }
        }
    }

    /// Delivers a server notification for `server_path`; `client_path` is what the watcher sees.
    pub(crate) fn dispatch(&mut self, event_type: EventType, server_path: &str, client_path: &str) {
        let event = || WatchedEvent {
            event_type,
            state: KeeperState::SyncConnected,
            path: client_path.to_owned(),
        };
        let fire = |list: Option<Vec<oneshot::Sender<WatchedEvent>>>| {
            for tx in list.into_iter().flatten() {
                let _ = tx.send(event());
            }
        };
        match event_type {
            EventType::NodeCreated | EventType::NodeDataChanged => {
                fire(self.data.remove(server_path));
                fire(self.exist.remove(server_path));
            }
            EventType::NodeChildrenChanged => fire(self.child.remove(server_path)),
            EventType::NodeDeleted => {
                fire(self.data.remove(server_path));
                fire(self.exist.remove(server_path));
                fire(self.child.remove(server_path));
            }
            _ => {}
        }
        if let Some(list) = self.persistent.get_mut(server_path) {
            list.retain(|(_, tx)| tx.send(event()).is_ok());
        }
        if !self.recursive.is_empty() && event_type != EventType::NodeChildrenChanged {
            let mut ancestor = Some(server_path);
            while let Some(p) = ancestor {
                if let Some(list) = self.recursive.get_mut(p) {
                    list.retain(|(_, tx)| tx.send(event()).is_ok());
                }
                ancestor = zk_proto::path::split_parent(p).map(|(parent, _)| parent);
            }
        }
    }

    /// Ends every watch with a session event (expired, closed); the registry is empty after.
    pub(crate) fn fail_all(&mut self, state: KeeperState, strip: &dyn Fn(&str) -> String) {
        for table in [&mut self.data, &mut self.exist, &mut self.child] {
            for (path, list) in table.drain() {
                for tx in list {
                    let _ = tx.send(WatchedEvent::session_event(state, &strip(&path)));
                }
            }
        }
        for table in [&mut self.persistent, &mut self.recursive] {
            for (path, list) in table.drain() {
                for (_, tx) in list {
                    let _ = tx.send(WatchedEvent::session_event(state, &strip(&path)));
                }
            }
        }
    }

    /// Removes the watches `watcher_type` names on `path` locally, telling each watcher with a
    /// *WatchRemoved event.
    pub(crate) fn remove_local(
        &mut self,
        path: &str,
        watcher_type: zk_proto::WatcherType,
        client_path: &str,
    ) -> bool {
        use zk_proto::WatcherType as W;
        let removed = |t: EventType| WatchedEvent {
            event_type: t,
            state: KeeperState::SyncConnected,
            path: client_path.to_owned(),
        };
        let mut any = false;
        let (data, child, persistent, recursive) = match watcher_type {
            W::Data => (true, false, false, false),
            W::Children => (false, true, false, false),
            W::Any => (true, true, true, true),
            W::Persistent => (false, false, true, false),
            W::PersistentRecursive => (false, false, false, true),
        };
        if data {
            for table in [&mut self.data, &mut self.exist] {
                for tx in table.remove(path).into_iter().flatten() {
                    any = true;
                    let _ = tx.send(removed(EventType::DataWatchRemoved));
                }
            }
        }
        if child {
            for tx in self.child.remove(path).into_iter().flatten() {
                any = true;
                let _ = tx.send(removed(EventType::ChildWatchRemoved));
            }
        }
        for (on, table) in [
            (persistent, &mut self.persistent),
            (recursive, &mut self.recursive),
        ] {
            if on {
                for (_, tx) in table.remove(path).into_iter().flatten() {
                    any = true;
                    let _ = tx.send(removed(EventType::PersistentWatchRemoved));
                }
            }
        }
        any
    }

    /// The SetWatches (or SetWatches2, when persistent watches exist) requests that re-register
    /// every live watch, each at most `batch_bytes` encoded (a single longer path goes alone).
    /// Apache's client counts path characters only, so its batches run a little over.
    pub(crate) fn set_watches_batches(
        &mut self,
        relative_zxid: i64,
        batch_bytes: usize,
    ) -> Vec<SetWatchesBatch> {
        for table in [&mut self.data, &mut self.exist, &mut self.child] {
            table.retain(|_, list| {
                list.retain(|s| !s.is_closed());
                !list.is_empty()
            });
        }
        for table in [&mut self.persistent, &mut self.recursive] {
            table.retain(|_, list| {
                list.retain(|(_, s)| !s.is_closed());
                !list.is_empty()
            });
        }
        let v2 = !self.persistent.is_empty() || !self.recursive.is_empty();
        let mut lists: [Vec<String>; 5] = Default::default();
        let mut batches = Vec::new();
        let mut bytes = SET_WATCHES_FIXED_BYTES;
        let mut paths_in_batch = 0usize;
        fn sorted_keys<V>(table: &HashMap<String, V>) -> Vec<String> {
            let mut keys: Vec<String> = table.keys().cloned().collect();
            keys.sort();
            keys
        }
        let sources = [
            sorted_keys(&self.data),
            sorted_keys(&self.exist),
            sorted_keys(&self.child),
            sorted_keys(&self.persistent),
            sorted_keys(&self.recursive),
        ];
        let flush = |lists: &mut [Vec<String>; 5], batches: &mut Vec<SetWatchesBatch>| {
            let [d, e, c, p, r] = std::mem::take(lists);
            batches.push(if v2 {
                SetWatchesBatch::V2(SetWatches2 {
                    relative_zxid,
                    data_watches: d,
                    exist_watches: e,
                    child_watches: c,
                    persistent_watches: p,
                    persistent_recursive_watches: r,
                })
            } else {
                SetWatchesBatch::V1(SetWatches {
                    relative_zxid,
                    data_watches: d,
                    exist_watches: e,
                    child_watches: c,
                })
            });
        };
        for (i, paths) in sources.into_iter().enumerate() {
            for path in paths {
                // Each path is encoded as its length and its bytes.
                let encoded = 4 + path.len();
                if paths_in_batch > 0 && bytes + encoded > batch_bytes {
                    flush(&mut lists, &mut batches);
                    bytes = SET_WATCHES_FIXED_BYTES;
                    paths_in_batch = 0;
                }
                bytes += encoded;
                paths_in_batch += 1;
                if let Some(list) = lists.get_mut(i) {
                    list.push(path);
                }
            }
        }
        if paths_in_batch > 0 {
            flush(&mut lists, &mut batches);
        }
        batches
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zk_proto::{Encode, OpCode, RequestHeader};

    fn one_shot(
        reg: &mut Registry,
        kind: OneShotKind,
        path: &str,
    ) -> oneshot::Receiver<WatchedEvent> {
        let (tx, rx) = oneshot::channel();
        reg.add_one_shot(kind, path.to_owned(), tx);
        rx
    }

    #[test]
    fn dispatch_follows_the_java_client_rules() {
        let mut reg = Registry::default();
        let mut data = one_shot(&mut reg, OneShotKind::Data, "/a");
        let mut exist = one_shot(&mut reg, OneShotKind::Exist, "/a");
        let mut child = one_shot(&mut reg, OneShotKind::Child, "/a");
        reg.dispatch(EventType::NodeDataChanged, "/a", "/a");
        assert_eq!(
            data.try_recv().map(|e| e.event_type),
            Ok(EventType::NodeDataChanged)
        );
        assert_eq!(
            exist.try_recv().map(|e| e.event_type),
            Ok(EventType::NodeDataChanged)
        );
        assert!(child.try_recv().is_err());
        reg.dispatch(EventType::NodeDeleted, "/a", "/a");
        assert_eq!(
            child.try_recv().map(|e| e.event_type),
            Ok(EventType::NodeDeleted)
        );
    }

    #[test]
    fn recursive_watches_see_descendants_but_not_child_events() {
        let mut reg = Registry::default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let id = 1;
        reg.add_persistent("/r".into(), true, id, tx);
        reg.dispatch(EventType::NodeCreated, "/r/x/y", "/r/x/y");
        reg.dispatch(EventType::NodeChildrenChanged, "/r/x", "/r/x");
        reg.dispatch(EventType::NodeCreated, "/other", "/other");
        assert_eq!(rx.try_recv().map(|e| e.path), Ok("/r/x/y".to_owned()));
        assert!(rx.try_recv().is_err());
        assert!(reg.remove_persistent("/r", true, id));
    }

    #[test]
    fn set_watches_are_split_into_bounded_batches() {
        let mut reg = Registry::default();
        let mut keep = Vec::new();
        for i in 0..3000 {
            keep.push(one_shot(
                &mut reg,
                OneShotKind::Data,
                &format!("/node/{i:0100}"),
            ));
        }
        let batches = reg.set_watches_batches(7, SET_WATCHES_BATCH_BYTES);
        assert!(batches.len() >= 3, "{}", batches.len());
        let mut total = 0;
        for (n, b) in batches.iter().enumerate() {
            let SetWatchesBatch::V1(sw) = b else {
                panic!("v1 expected without persistent watches")
            };
            assert_eq!(sw.relative_zxid, 7);
            // The whole request, as sent: header, then the record.
            let request =
                RequestHeader::new(-8, OpCode::SetWatches).to_bytes().len() + sw.to_bytes().len();
            assert!(request <= SET_WATCHES_BATCH_BYTES, "{request}");
            if n + 1 < batches.len() {
                assert!(
                    request > SET_WATCHES_BATCH_BYTES - 200,
                    "batch {n} is full: {request}"
                );
            }
            total += sw.data_watches.len();
        }
        assert_eq!(total, 3000);
        // Dropped watchers are not re-registered.
        keep.clear();
        assert!(reg
            .set_watches_batches(7, SET_WATCHES_BATCH_BYTES)
            .is_empty());
    }

    #[test]
    fn persistent_watches_switch_to_set_watches2() {
        let mut reg = Registry::default();
        let (tx, _rx) = mpsc::unbounded_channel();
        reg.add_persistent("/p".into(), false, 1, tx);
        let _d = one_shot(&mut reg, OneShotKind::Child, "/c");
        let batches = reg.set_watches_batches(1, SET_WATCHES_BATCH_BYTES);
        assert_eq!(
            batches,
            vec![SetWatchesBatch::V2(SetWatches2 {
                relative_zxid: 1,
                data_watches: vec![],
                exist_watches: vec![],
                child_watches: vec!["/c".into()],
                persistent_watches: vec!["/p".into()],
                persistent_recursive_watches: vec![],
            })]
        );
    }
}
