//! `sync`, `multi_read`, `get_ephemerals`, `get_all_children_number`, `who_am_i`.

use zk_proto::ClientInfo;

use super::{awaitable, Client};
use crate::error::Result;
use crate::session::{ReadOp, ReadResult};

/// Flushes the server's view up to the leader. Await it (see [`Client::sync`]).
#[must_use = "a builder does nothing unless awaited"]
#[derive(Debug, Clone)]
pub struct SyncBuilder {
    client: Client,
    path: String,
}

/// Several reads in one round trip (3.6+). Await it (see [`Client::multi_read`]).
#[must_use = "a builder does nothing unless awaited"]
#[derive(Debug, Clone)]
pub struct MultiReadBuilder {
    client: Client,
    ops: Vec<ReadOp>,
}

/// Lists the session's ephemeral nodes (3.6+). Await it (see [`Client::get_ephemerals`]).
#[must_use = "a builder does nothing unless awaited"]
#[derive(Debug, Clone)]
pub struct GetEphemeralsBuilder {
    client: Client,
    prefix: String,
}

/// Counts a node's descendants (3.6+). Await it (see [`Client::get_all_children_number`]).
#[must_use = "a builder does nothing unless awaited"]
#[derive(Debug, Clone)]
pub struct GetAllChildrenNumberBuilder {
    client: Client,
    path: String,
}

/// Lists the connection's identities (3.7+). Await it (see [`Client::who_am_i`]).
#[must_use = "a builder does nothing unless awaited"]
#[derive(Debug, Clone)]
pub struct WhoAmIBuilder {
    client: Client,
}

impl Client {
    /// Waits until the connected server has applied everything the leader had committed when
    /// the sync reached it; reads after it see those writes.
    pub fn sync(&self, path: &str) -> SyncBuilder {
        SyncBuilder {
            client: self.clone(),
            path: path.to_owned(),
        }
    }

    /// Several getData / getChildren reads in one request; each succeeds or fails on its own.
    pub fn multi_read(&self) -> MultiReadBuilder {
        MultiReadBuilder {
            client: self.clone(),
            ops: Vec::new(),
        }
    }

    /// The session's ephemeral nodes under `prefix` (a plain string prefix of the path;
    /// `/` for all), relative to the namespace.
    pub fn get_ephemerals(&self, prefix: &str) -> GetEphemeralsBuilder {
        GetEphemeralsBuilder {
            client: self.clone(),
            prefix: prefix.to_owned(),
        }
    }

    /// The number of descendants of a node, at any depth.
    pub fn get_all_children_number(&self, path: &str) -> GetAllChildrenNumberBuilder {
        GetAllChildrenNumberBuilder {
            client: self.clone(),
            path: path.to_owned(),
        }
    }

    /// The identities the server associates with this connection (e.g. `ip`, `digest`).
    pub fn who_am_i(&self) -> WhoAmIBuilder {
        WhoAmIBuilder {
            client: self.clone(),
        }
    }
}

impl SyncBuilder {
    fn span_path(&self) -> &str {
        &self.path
    }

    async fn run(self) -> Result<()> {
        zk_proto::path::validate_path(&self.path)?;
        let client = &self.client;
        let full = client.full_path(&self.path);
        let session = &client.inner.session;
        client.retry(|_| session.sync(&full)).await?;
        Ok(())
    }
}

impl MultiReadBuilder {
    /// Read a node's data.
    pub fn get_data(mut self, path: &str) -> Self {
        self.ops.push(ReadOp::GetData(path.to_owned()));
        self
    }

    /// List a node's children.
    pub fn get_children(mut self, path: &str) -> Self {
        self.ops.push(ReadOp::GetChildren(path.to_owned()));
        self
    }

    fn span_path(&self) -> &str {
        "/"
    }

    async fn run(self) -> Result<Vec<ReadResult>> {
        let client = &self.client;
        for op in &self.ops {
            let (ReadOp::GetData(p) | ReadOp::GetChildren(p)) = op;
            zk_proto::path::validate_path(p)?;
        }
        let ops: Vec<ReadOp> = self
            .ops
            .iter()
            .map(|op| match op {
                ReadOp::GetData(p) => ReadOp::GetData(client.full_path(p).into_owned()),
                ReadOp::GetChildren(p) => ReadOp::GetChildren(client.full_path(p).into_owned()),
            })
            .collect();
        let session = &client.inner.session;
        let results = client.retry(|_| session.multi_read(&ops)).await?;
        // With compression enabled client-wide, data comes back decompressed (a failure
        // fails that read only).
        Ok(results
            .into_iter()
            .zip(&self.ops)
            .map(|(result, op)| match result {
                ReadResult::Data { data, stat } => {
                    let (ReadOp::GetData(path) | ReadOp::GetChildren(path)) = op;
                    match client.read_data(false, path, data) {
                        Ok(data) => ReadResult::Data { data, stat },
                        Err(e) => ReadResult::Error(e),
                    }
                }
                other => other,
            })
            .collect())
    }
}

impl GetEphemeralsBuilder {
    fn span_path(&self) -> &str {
        &self.prefix
    }

    async fn run(self) -> Result<Vec<String>> {
        let client = &self.client;
        let prefix = match client.namespace() {
            Some(ns) if self.prefix.is_empty() || self.prefix == "/" => ns.to_owned(),
            // Always below the namespace: "x" must not reach a sibling namespace "/appx".
            Some(ns) if self.prefix.starts_with('/') => format!("{ns}{}", self.prefix),
            Some(ns) => format!("{ns}/{}", self.prefix),
            None => self.prefix.clone(),
        };
        let session = &client.inner.session;
        let all = client.retry(|_| session.get_ephemerals(&prefix)).await?;
        Ok(all
            .iter()
            .filter_map(|p| zk_proto::path::strip_chroot(client.namespace(), p).map(str::to_owned))
            .collect())
    }
}

impl GetAllChildrenNumberBuilder {
    fn span_path(&self) -> &str {
        &self.path
    }

    async fn run(self) -> Result<i32> {
        zk_proto::path::validate_path(&self.path)?;
        let client = &self.client;
        let full = client.full_path(&self.path);
        let session = &client.inner.session;
        client
            .retry(|_| session.get_all_children_number(&full))
            .await
    }
}

impl WhoAmIBuilder {
    fn span_path(&self) -> &str {
        "/"
    }

    async fn run(self) -> Result<Vec<ClientInfo>> {
        let client = &self.client;
        let session = &client.inner.session;
        client.retry(|_| session.who_am_i()).await
    }
}

awaitable!(SyncBuilder, (), "sync", run);
awaitable!(MultiReadBuilder, Vec<ReadResult>, "multi_read", run);
awaitable!(GetEphemeralsBuilder, Vec<String>, "get_ephemerals", run);
awaitable!(
    GetAllChildrenNumberBuilder,
    i32,
    "get_all_children_number",
    run
);
awaitable!(WhoAmIBuilder, Vec<ClientInfo>, "who_am_i", run);
