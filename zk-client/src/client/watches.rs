//! `add_watch` (persistent and persistent recursive watches) and `remove_watches`.

use zk_proto::{AddWatchMode, WatcherType};

use super::background::guaranteed;
use super::{awaitable, Client};
use crate::error::{Error, Result};
use crate::session::PersistentWatch;

/// Adds a persistent watch. Await it (see [`Client::add_watch`]).
#[must_use = "a builder does nothing unless awaited"]
#[derive(Debug, Clone)]
pub struct AddWatchBuilder {
    client: Client,
    path: String,
    mode: AddWatchMode,
}

/// Removes watches. Await it (see [`Client::remove_watches`]).
#[must_use = "a builder does nothing unless awaited"]
#[derive(Debug, Clone)]
pub struct RemoveWatchesBuilder {
    client: Client,
    path: String,
    watcher_type: WatcherType,
    locally: bool,
    quietly: bool,
    guaranteed: bool,
}

impl Client {
    /// A persistent watch on `path` (3.6+): a `Stream` of every event for the node, kept
    /// across reconnects, removed from the server when dropped. `.recursive()` covers the
    /// whole subtree (NodeCreated / NodeDeleted / NodeDataChanged, never NodeChildrenChanged).
    ///
    /// # Notable errors
    /// [`Error::Unimplemented`] on servers older than 3.6.
    pub fn add_watch(&self, path: &str) -> AddWatchBuilder {
        AddWatchBuilder {
            client: self.clone(),
            path: path.to_owned(),
            mode: AddWatchMode::Persistent,
        }
    }

    /// Removes this client's watches on `path` (all kinds unless told otherwise); their
    /// futures and streams see a `*WatchRemoved` event.
    ///
    /// # Notable errors
    /// [`Error::NoWatcher`] when the server has none (unless quietly).
    pub fn remove_watches(&self, path: &str) -> RemoveWatchesBuilder {
        RemoveWatchesBuilder {
            client: self.clone(),
            path: path.to_owned(),
            watcher_type: WatcherType::Any,
            locally: false,
            quietly: false,
            guaranteed: false,
        }
    }
}

impl AddWatchBuilder {
    /// Watch the whole subtree (persistent recursive).
    pub fn recursive(mut self) -> Self {
        self.mode = AddWatchMode::PersistentRecursive;
        self
    }

    /// Set the mode explicitly.
    pub fn mode(mut self, mode: AddWatchMode) -> Self {
        self.mode = mode;
        self
    }

    fn span_path(&self) -> &str {
        &self.path
    }

    async fn run(self) -> Result<PersistentWatch> {
        zk_proto::path::validate_path(&self.path)?;
        let client = &self.client;
        let full = client.full_path(&self.path);
        let session = &client.inner.session;
        let watch = client
            .retry(|_| session.add_watch(&full, self.mode))
            .await?;
        Ok(watch.with_prefix(client.namespace.clone()))
    }
}

impl RemoveWatchesBuilder {
    /// Remove only watches of this kind.
    pub fn of_type(mut self, watcher_type: WatcherType) -> Self {
        self.watcher_type = watcher_type;
        self
    }

    /// Remove the local watchers whatever the server answers, as Java's `local` flag: the
    /// server is asked once to remove its watch too (unless a persistent watch of this
    /// session remains on the path, which a 3.6-3.8 server would drop with it), and a
    /// connection problem or a NOWATCHER from it is not an error when there were local
    /// watchers. A watch the server keeps is not registered again on the next connection.
    pub fn locally(mut self) -> Self {
        self.locally = true;
        self
    }

    /// NOWATCHER is not an error.
    pub fn quietly(mut self) -> Self {
        self.quietly = true;
        self
    }

    /// If the call fails on an error the retry policy would retry (a connection problem),
    /// keep removing in the background (across reconnects, where the watches are registered
    /// again) until the server has none left. The removal goes on even if the call's future
    /// is dropped. Ignored with [`locally`](Self::locally).
    ///
    /// Watches are removed by path and kind, not one by one: a background removal that
    /// succeeds after you added a new watch of that kind on the path removes it too.
    pub fn guaranteed(mut self) -> Self {
        self.guaranteed = true;
        self
    }

    fn span_path(&self) -> &str {
        &self.path
    }

    async fn run(self) -> Result<()> {
        zk_proto::path::validate_path(&self.path)?;
        let client = &self.client;
        let full = client.full_path(&self.path);
        let session = &client.inner.session;
        if self.locally {
            let (any, persistent_left) = session
                .remove_local_watches(&full, self.watcher_type)
                .await?;
            // Once, without retries or waiting for a connection: nothing depends on it. Not
            // while a persistent watch of ours remains on the path: a 3.6-3.8 server would
            // remove it too (its removeWatches ignores the watch's mode).
            let told = if persistent_left {
                Err(Error::NoWatcher)
            } else {
                session.remove_watches(&full, self.watcher_type).await
            };
            return if any || told.is_ok() || self.quietly {
                Ok(())
            } else {
                Err(Error::NoWatcher)
            };
        }
        if !self.guaranteed {
            return self.remove_with_retries().await;
        }
        let full = client.full_path(&self.path).into_owned();
        let (path, watcher_type) = (full.clone(), self.watcher_type);
        let client = client.clone();
        guaranteed(
            client,
            "remove_watches",
            full,
            async move { self.remove_with_retries().await },
            move |inner| {
                let path = path.clone();
                Box::pin(async move {
                    match inner.session.remove_watches(&path, watcher_type).await {
                        Err(Error::NoWatcher) => Ok(()),
                        other => other,
                    }
                })
            },
        )
        .await
    }

    async fn remove_with_retries(&self) -> Result<()> {
        let client = &self.client;
        let full = client.full_path(&self.path);
        let session = &client.inner.session;
        match client
            .retry(|_| session.remove_watches(&full, self.watcher_type))
            .await
        {
            Err(Error::NoWatcher) if self.quietly => Ok(()),
            other => other,
        }
    }
}

awaitable!(AddWatchBuilder, PersistentWatch, "add_watch", run);
awaitable!(RemoveWatchesBuilder, (), "remove_watches", run);
