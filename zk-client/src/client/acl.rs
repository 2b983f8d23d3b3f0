//! `get_acl` and `set_acl`.

use zk_proto::{Acl, Stat};

use super::{awaitable, Client};
use crate::error::Result;

/// Reads a node's ACL. Await it (see [`Client::get_acl`]).
#[must_use = "a builder does nothing unless awaited"]
#[derive(Debug, Clone)]
pub struct GetAclBuilder {
    client: Client,
    path: String,
}

/// Replaces a node's ACL. Await it (see [`Client::set_acl`]).
#[must_use = "a builder does nothing unless awaited"]
#[derive(Debug, Clone)]
pub struct SetAclBuilder {
    client: Client,
    path: String,
    acl: Vec<Acl>,
    version: i32,
}

impl Client {
    /// A node's ACL and stat (digest ids are masked without ADMIN permission).
    pub fn get_acl(&self, path: &str) -> GetAclBuilder {
        GetAclBuilder {
            client: self.clone(),
            path: path.to_owned(),
        }
    }

    /// Replaces a node's ACL (any ACL version unless told otherwise); returns the new stat.
    ///
    /// # Notable errors
    /// [`Error::NoAuth`](crate::Error::NoAuth) without ADMIN, [`Error::InvalidAcl`](crate::Error::InvalidAcl),
    /// [`Error::BadVersion`](crate::Error::BadVersion).
    pub fn set_acl(&self, path: &str, acl: Vec<Acl>) -> SetAclBuilder {
        SetAclBuilder {
            client: self.clone(),
            path: path.to_owned(),
            acl,
            version: -1,
        }
    }
}

impl GetAclBuilder {
    fn span_path(&self) -> &str {
        &self.path
    }

    async fn run(self) -> Result<(Vec<Acl>, Stat)> {
        zk_proto::path::validate_path(&self.path)?;
        let client = &self.client;
        let full = client.full_path(&self.path);
        let session = &client.inner.session;
        client.retry(|_| session.get_acl(&full)).await
    }
}

impl SetAclBuilder {
    /// Replace only if the node's ACL version (aversion) matches.
    pub fn version(mut self, version: i32) -> Self {
        self.version = version;
        self
    }

    fn span_path(&self) -> &str {
        &self.path
    }

    async fn run(self) -> Result<Stat> {
        zk_proto::path::validate_path(&self.path)?;
        crate::session::ops::check_acl(&self.acl)?;
        let client = &self.client;
        let full = client.full_path(&self.path);
        let session = &client.inner.session;
        client
            .retry(|_| session.set_acl(&full, &self.acl, self.version))
            .await
    }
}

awaitable!(GetAclBuilder, (Vec<Acl>, Stat), "get_acl", run);
awaitable!(SetAclBuilder, Stat, "set_acl", run);
