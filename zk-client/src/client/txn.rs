//! `transaction()`: create / set_data / delete / check, all or nothing.

use zk_proto::{Acl, CreateMode};

use super::{awaitable, Client};
use crate::error::Result;
use crate::session::{Op, OpResult};

/// A transaction (multi). Await it (see [`Client::transaction`]).
#[must_use = "a builder does nothing unless awaited"]
#[derive(Debug, Clone)]
pub struct TransactionBuilder {
    client: Client,
    ops: Vec<Op>,
    compressed: bool,
}

impl Client {
    /// A transaction: every op applies, or none does.
    ///
    /// ```no_run
    /// # async fn f(client: zk_client::Client) -> zk_client::Result<()> {
    /// let results = client
    ///     .transaction()
    ///     .create("/a", b"1")
    ///     .set_data("/b", b"2", -1)
    ///     .check("/c", 3)
    ///     .delete("/d", -1)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Notable errors
    /// [`Error::Transaction`](crate::Error::Transaction) naming the first failing op.
    pub fn transaction(&self) -> TransactionBuilder {
        TransactionBuilder {
            client: self.clone(),
            ops: Vec::new(),
            compressed: false,
        }
    }
}

impl TransactionBuilder {
    /// Create a persistent node with the provider's ACL.
    pub fn create(self, path: &str, data: &[u8]) -> Self {
        self.create_with(path, data, CreateMode::Persistent, None)
    }

    /// Create a node with a mode and an optional ACL (default: the provider's).
    pub fn create_with(
        mut self,
        path: &str,
        data: &[u8],
        mode: CreateMode,
        acl: Option<Vec<Acl>>,
    ) -> Self {
        let acl = acl.unwrap_or_else(|| {
            let full = self.client.full_path(path);
            self.client.default_acl(&full).into_owned()
        });
        self.ops.push(Op::Create {
            path: path.to_owned(),
            data: data.to_vec(),
            acl,
            mode,
            ttl: None,
        });
        self
    }

    /// Write a node's data if its version matches (`-1`: any).
    pub fn set_data(mut self, path: &str, data: &[u8], version: i32) -> Self {
        self.ops.push(Op::SetData {
            path: path.to_owned(),
            data: data.to_vec(),
            version,
        });
        self
    }

    /// Delete a node if its version matches (`-1`: any).
    pub fn delete(mut self, path: &str, version: i32) -> Self {
        self.ops.push(Op::Delete {
            path: path.to_owned(),
            version,
        });
        self
    }

    /// Require a node's version (`-1`: that it exists).
    pub fn check(mut self, path: &str, version: i32) -> Self {
        self.ops.push(Op::Check {
            path: path.to_owned(),
            version,
        });
        self
    }

    /// Add a prepared op.
    pub fn op(mut self, op: Op) -> Self {
        self.ops.push(op);
        self
    }

    /// Store the data of every create and set_data compressed by the client's
    /// [`CompressionProvider`](crate::CompressionProvider).
    pub fn compressed(mut self) -> Self {
        self.compressed = true;
        self
    }

    fn span_path(&self) -> &str {
        self.ops.first().map(Op::path).unwrap_or("/")
    }

    async fn run(mut self) -> Result<Vec<OpResult>> {
        let client = &self.client;
        for op in &mut self.ops {
            if let Op::Create { path, data, .. } | Op::SetData { path, data, .. } = op {
                *data = client.stored_data(self.compressed, path, std::mem::take(data))?;
            }
            op.validate(client.inner.session.max_data_len())?;
        }
        let ops: Vec<Op> = self
            .ops
            .into_iter()
            .map(|mut op| {
                let full = client.full_path(op.path()).into_owned();
                *op.path_mut() = full;
                op
            })
            .collect();
        let session = &client.inner.session;
        let results = if ops.iter().any(|op| matches!(op, Op::Create { .. })) {
            client.retry_creating(|_| session.multi(&ops)).await?
        } else {
            client.retry(|_| session.multi(&ops)).await?
        };
        Ok(results
            .into_iter()
            .map(|r| match r {
                OpResult::Create { path, stat } => OpResult::Create {
                    path: client.unfixed_path(path),
                    stat,
                },
                other => other,
            })
            .collect())
    }
}

awaitable!(TransactionBuilder, Vec<OpResult>, "transaction", run);
