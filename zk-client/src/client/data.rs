//! `get_data`, `set_data` and `exists`.

use zk_proto::Stat;

use super::{awaitable, Client};
use crate::error::{Error, Result};
use crate::session::WatchFuture;

/// Reads a node's data and stat. Await it (see [`Client::get_data`]).
#[must_use = "a builder does nothing unless awaited"]
#[derive(Debug, Clone)]
pub struct GetDataBuilder {
    client: Client,
    path: String,
    decompressed: bool,
}

/// Reads a node's data and stat and leaves a data watch. Await it.
#[must_use = "a builder does nothing unless awaited"]
#[derive(Debug, Clone)]
pub struct WatchedGetData {
    inner: GetDataBuilder,
}

/// Writes a node's data. Await it (see [`Client::set_data`]).
#[must_use = "a builder does nothing unless awaited"]
#[derive(Debug, Clone)]
pub struct SetDataBuilder {
    client: Client,
    path: String,
    data: Vec<u8>,
    version: i32,
    idempotent: bool,
    compressed: bool,
}

/// Stats a node. Await it (see [`Client::exists`]).
#[must_use = "a builder does nothing unless awaited"]
#[derive(Debug, Clone)]
pub struct ExistsBuilder {
    client: Client,
    path: String,
    parent_containers: bool,
}

/// Stats a node and leaves a watch (fires on create, delete or data change). Await it.
#[must_use = "a builder does nothing unless awaited"]
#[derive(Debug, Clone)]
pub struct WatchedExists {
    inner: ExistsBuilder,
}

impl Client {
    /// Reads a node's data and stat.
    ///
    /// # Notable errors
    /// [`Error::NoNode`], [`Error::NoAuth`].
    pub fn get_data(&self, path: &str) -> GetDataBuilder {
        GetDataBuilder {
            client: self.clone(),
            path: path.to_owned(),
            decompressed: false,
        }
    }

    /// Writes a node's data (any version unless told otherwise); returns the new stat.
    ///
    /// # Notable errors
    /// [`Error::NoNode`], [`Error::BadVersion`], [`Error::DataTooLarge`] before sending.
    pub fn set_data(&self, path: &str, data: impl Into<Vec<u8>>) -> SetDataBuilder {
        SetDataBuilder {
            client: self.clone(),
            path: path.to_owned(),
            data: data.into(),
            version: -1,
            idempotent: false,
            compressed: false,
        }
    }

    /// A node's stat, or `None` if it does not exist.
    pub fn exists(&self, path: &str) -> ExistsBuilder {
        ExistsBuilder {
            client: self.clone(),
            path: path.to_owned(),
            parent_containers: false,
        }
    }
}

impl GetDataBuilder {
    /// Also leave a one-shot data watch (set only if the node exists).
    pub fn watched(self) -> WatchedGetData {
        WatchedGetData { inner: self }
    }

    /// Decompress the data with the client's
    /// [`CompressionProvider`](crate::CompressionProvider) (it was written `compressed()`).
    ///
    /// # Notable errors
    /// [`Error::Compression`] when the node's data is not compressed data.
    pub fn decompressed(mut self) -> Self {
        self.decompressed = true;
        self
    }

    fn span_path(&self) -> &str {
        &self.path
    }

    async fn fetch(&self, watch: bool) -> Result<(Vec<u8>, Stat, Option<WatchFuture>)> {
        zk_proto::path::validate_path(&self.path)?;
        let client = &self.client;
        let full = client.full_path(&self.path);
        let session = &client.inner.session;
        let (data, stat, watch) = client.retry(|_| session.get_data(&full, watch)).await?;
        let data = client.read_data(self.decompressed, &self.path, data)?;
        let prefix = client.namespace.clone();
        Ok((data, stat, watch.map(|w| w.with_prefix(prefix))))
    }

    async fn run(self) -> Result<(Vec<u8>, Stat)> {
        let (data, stat, _) = self.fetch(false).await?;
        Ok((data, stat))
    }
}

impl WatchedGetData {
    fn span_path(&self) -> &str {
        &self.inner.path
    }

    async fn run(self) -> Result<(Vec<u8>, Stat, WatchFuture)> {
        let (data, stat, watch) = self.inner.fetch(true).await?;
        let watch = watch.ok_or_else(|| Error::Protocol("watch not registered".to_owned()))?;
        Ok((data, stat, watch))
    }
}

impl SetDataBuilder {
    /// Write only if the node's version matches.
    pub fn version(mut self, version: i32) -> Self {
        self.version = version;
        self
    }

    /// BADVERSION counts as success when the node holds exactly this data at the next
    /// version: the end state this write would have made, whether an earlier attempt whose
    /// reply was lost made it or not (Curator's `idempotent()`, on every attempt as Curator's).
    /// Only for a versioned write; another writer's identical bytes are indistinguishable
    /// from ours, so a read-modify-write that must know it applied (a counter) needs a write
    /// sent once instead.
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// Store the data compressed by the client's
    /// [`CompressionProvider`](crate::CompressionProvider) (gzip by default).
    pub fn compressed(mut self) -> Self {
        self.compressed = true;
        self
    }

    fn span_path(&self) -> &str {
        &self.path
    }

    async fn run(mut self) -> Result<Stat> {
        zk_proto::path::validate_path(&self.path)?;
        let data = std::mem::take(&mut self.data);
        self.data = self.client.stored_data(self.compressed, &self.path, data)?;
        crate::session::ops::check_data(&self.data, self.client.inner.session.max_data_len())?;
        let client = &self.client;
        let full = client.full_path(&self.path);
        let session = &client.inner.session;
        client
            .retry(|_| {
                let full = &full;
                let this = &self;
                async move {
                    match session.set_data(full, &this.data, this.version).await {
                        Err(Error::BadVersion) if this.idempotent && this.version >= 0 => {
                            let (data, stat, _) = session.get_data(full, false).await?;
                            if data == this.data && stat.version == this.version.wrapping_add(1) {
                                Ok(stat)
                            } else {
                                Err(Error::BadVersion)
                            }
                        }
                        other => other,
                    }
                }
            })
            .await
    }
}

impl ExistsBuilder {
    /// Also leave a one-shot watch (set whether or not the node exists).
    pub fn watched(self) -> WatchedExists {
        WatchedExists { inner: self }
    }

    /// Create the node's missing parents as containers first (Curator's
    /// `checkExists().creatingParentContainersIfNeeded()`).
    pub fn creating_parent_containers_if_needed(mut self) -> Self {
        self.parent_containers = true;
        self
    }

    fn span_path(&self) -> &str {
        &self.path
    }

    async fn fetch(&self, watch: bool) -> Result<(Option<Stat>, Option<WatchFuture>)> {
        zk_proto::path::validate_path(&self.path)?;
        let client = &self.client;
        let full = client.full_path(&self.path);
        let session = &client.inner.session;
        // One deadline for the whole call (the parents step included).
        let deadline = client.call_deadline();
        if self.parent_containers {
            if let Some((parent, _)) = zk_proto::path::split_parent(&full) {
                if parent != "/" {
                    let acl = client.default_acl(parent);
                    // Boxed: a rare path kept out of every call's future.
                    Box::pin(
                        client.retry_until(deadline, |_| {
                            client.mkdirs(parent, true, true, &acl, false)
                        }),
                    )
                    .await?;
                }
            }
        }
        let prefix = client.namespace.clone();
        if watch {
            let (stat, w) = client
                .retry_until(deadline, |_| session.exists_watched(&full))
                .await?;
            Ok((stat, Some(w.with_prefix(prefix))))
        } else {
            Ok((
                client
                    .retry_until(deadline, |_| session.exists(&full))
                    .await?,
                None,
            ))
        }
    }

    async fn run(self) -> Result<Option<Stat>> {
        Ok(self.fetch(false).await?.0)
    }
}

impl WatchedExists {
    fn span_path(&self) -> &str {
        &self.inner.path
    }

    async fn run(self) -> Result<(Option<Stat>, WatchFuture)> {
        let (stat, watch) = self.inner.fetch(true).await?;
        let watch = watch.ok_or_else(|| Error::Protocol("watch not registered".to_owned()))?;
        Ok((stat, watch))
    }
}

awaitable!(GetDataBuilder, (Vec<u8>, Stat), "get_data", run);
awaitable!(
    WatchedGetData,
    (Vec<u8>, Stat, WatchFuture),
    "get_data",
    run
);
awaitable!(SetDataBuilder, Stat, "set_data", run);
awaitable!(ExistsBuilder, Option<Stat>, "exists", run);
awaitable!(WatchedExists, (Option<Stat>, WatchFuture), "exists", run);
