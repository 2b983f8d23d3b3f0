//! `get_children`, with or without the parent's stat and a child watch.

use zk_proto::Stat;

use super::{awaitable, Client};
use crate::error::{Error, Result};
use crate::session::WatchFuture;

/// Lists a node's children. Await it (see [`Client::get_children`]).
#[must_use = "a builder does nothing unless awaited"]
#[derive(Debug, Clone)]
pub struct GetChildrenBuilder {
    client: Client,
    path: String,
}

/// Lists a node's children with the node's stat. Await it.
#[must_use = "a builder does nothing unless awaited"]
#[derive(Debug, Clone)]
pub struct GetChildrenStatBuilder {
    inner: GetChildrenBuilder,
}

/// Lists a node's children and leaves a child watch. Await it.
#[must_use = "a builder does nothing unless awaited"]
#[derive(Debug, Clone)]
pub struct WatchedGetChildren {
    inner: GetChildrenBuilder,
}

/// Lists a node's children with its stat and leaves a child watch. Await it.
#[must_use = "a builder does nothing unless awaited"]
#[derive(Debug, Clone)]
pub struct WatchedGetChildrenStat {
    inner: GetChildrenBuilder,
}

impl Client {
    /// The names (not paths) of a node's children, in no particular order.
    ///
    /// # Notable errors
    /// [`Error::NoNode`], [`Error::NoAuth`].
    pub fn get_children(&self, path: &str) -> GetChildrenBuilder {
        GetChildrenBuilder {
            client: self.clone(),
            path: path.to_owned(),
        }
    }
}

impl GetChildrenBuilder {
    /// Also return the node's stat (getChildren2).
    pub fn with_stat(self) -> GetChildrenStatBuilder {
        GetChildrenStatBuilder { inner: self }
    }

    /// Also leave a one-shot child watch (set only if the node exists).
    pub fn watched(self) -> WatchedGetChildren {
        WatchedGetChildren { inner: self }
    }

    fn span_path(&self) -> &str {
        &self.path
    }

    async fn fetch(
        &self,
        with_stat: bool,
        watch: bool,
    ) -> Result<(Vec<String>, Option<Stat>, Option<WatchFuture>)> {
        zk_proto::path::validate_path(&self.path)?;
        let client = &self.client;
        let full = client.full_path(&self.path);
        let session = &client.inner.session;
        let prefix = client.namespace.clone();
        let (children, stat, w) = if with_stat {
            let (c, s, w) = client
                .retry(|_| session.get_children2(&full, watch))
                .await?;
            (c, Some(s), w)
        } else {
            let (c, w) = client.retry(|_| session.get_children(&full, watch)).await?;
            (c, None, w)
        };
        Ok((children, stat, w.map(|w| w.with_prefix(prefix))))
    }

    async fn run(self) -> Result<Vec<String>> {
        Ok(self.fetch(false, false).await?.0)
    }
}

fn missing<T>(x: Option<T>, what: &str) -> Result<T> {
    x.ok_or_else(|| Error::Protocol(format!("{what} missing")))
}

impl GetChildrenStatBuilder {
    /// Also leave a one-shot child watch.
    pub fn watched(self) -> WatchedGetChildrenStat {
        WatchedGetChildrenStat { inner: self.inner }
    }

    fn span_path(&self) -> &str {
        &self.inner.path
    }

    async fn run(self) -> Result<(Vec<String>, Stat)> {
        let (c, s, _) = self.inner.fetch(true, false).await?;
        Ok((c, missing(s, "stat")?))
    }
}

impl WatchedGetChildren {
    fn span_path(&self) -> &str {
        &self.inner.path
    }

    async fn run(self) -> Result<(Vec<String>, WatchFuture)> {
        let (c, _, w) = self.inner.fetch(false, true).await?;
        Ok((c, missing(w, "watch")?))
    }
}

impl WatchedGetChildrenStat {
    fn span_path(&self) -> &str {
        &self.inner.path
    }

    async fn run(self) -> Result<(Vec<String>, Stat, WatchFuture)> {
        let (c, s, w) = self.inner.fetch(true, true).await?;
        Ok((c, missing(s, "stat")?, missing(w, "watch")?))
    }
}

awaitable!(GetChildrenBuilder, Vec<String>, "get_children", run);
awaitable!(
    GetChildrenStatBuilder,
    (Vec<String>, Stat),
    "get_children",
    run
);
awaitable!(
    WatchedGetChildren,
    (Vec<String>, WatchFuture),
    "get_children",
    run
);
awaitable!(
    WatchedGetChildrenStat,
    (Vec<String>, Stat, WatchFuture),
    "get_children",
    run
);
