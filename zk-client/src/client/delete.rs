//! `client.delete(path)`: version, quietly, guaranteed, deleting children, idempotent.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::background::{guaranteed, spawn_until_done, Attempt};
use super::{awaitable, Client, Inner};
use crate::error::{Error, Result};
use crate::session::Session;

/// Deletes a node. Await it (see [`Client::delete`]).
#[must_use = "a builder does nothing unless awaited"]
#[derive(Debug, Clone)]
pub struct DeleteBuilder {
    client: Client,
    path: String,
    version: i32,
    quietly: bool,
    guaranteed: bool,
    children: bool,
}

impl Client {
    /// Deletes the node at `path` (any version unless told otherwise).
    ///
    /// Under a namespace, `"/"` is the namespace root (created again by the next call);
    /// without one, deleting `"/"` is an argument error.
    ///
    /// # Notable errors
    /// [`Error::NoNode`] (unless quietly), [`Error::BadVersion`], [`Error::NotEmpty`] (unless
    /// deleting children). With `guaranteed()`, a connection error is still returned but the
    /// delete goes on in the background until it succeeds.
    pub fn delete(&self, path: &str) -> DeleteBuilder {
        DeleteBuilder {
            client: self.clone(),
            path: path.to_owned(),
            version: -1,
            quietly: false,
            guaranteed: false,
            children: false,
        }
    }

    /// Deletes `full_path` (namespace included) in the background until it is gone.
    pub(crate) fn delete_in_background(&self, full_path: String, version: i32) {
        let path = full_path.clone();
        spawn_until_done(self, "delete", full_path, move |inner| {
            delete_until_gone(inner, path.clone(), version, false)
        });
    }
}

/// One background attempt of a guaranteed delete: done when the node is gone.
fn delete_until_gone(inner: Arc<Inner>, path: String, version: i32, children: bool) -> Attempt {
    Box::pin(async move {
        match delete_once(&inner.session, &path, version, children).await {
            Err(Error::NoNode) => Ok(()),
            other => other,
        }
    })
}

/// One delete, deleting children first when asked.
///
/// As Curator's `ZKPaths.deleteChildren`, once the node has been found with children:
/// children created meanwhile are deleted in their turn until the node goes, and a node
/// that someone else deleted meanwhile counts as deleted.
fn delete_once<'a>(
    session: &'a Session,
    path: &'a str,
    version: i32,
    children: bool,
) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>> {
    Box::pin(async move {
        match session.delete(path, version).await {
            Err(Error::NotEmpty) if children => loop {
                let kids = match session.get_children(path, false).await {
                    Ok((kids, _)) => kids,
                    Err(Error::NoNode) => return Ok(()),
                    Err(e) => return Err(e),
                };
                for kid in kids {
                    let child = zk_proto::path::join(path, &kid);
                    match delete_once(session, &child, -1, true).await {
                        Ok(()) | Err(Error::NoNode) => {}
                        Err(e) => return Err(e),
                    }
                }
                match session.delete(path, version).await {
                    Err(Error::NotEmpty) => continue,
                    Err(Error::NoNode) => return Ok(()),
                    other => return other,
                }
            },
            other => other,
        }
    })
}

impl DeleteBuilder {
    /// Delete only if the node's version matches.
    pub fn version(mut self, version: i32) -> Self {
        self.version = version;
        self
    }

    /// A missing node is not an error.
    pub fn quietly(mut self) -> Self {
        self.quietly = true;
        self
    }

    /// If the call fails on an error the retry policy would retry (a connection problem), keep
    /// deleting in the background (across reconnects) until the node is gone. The delete goes
    /// on even if the call's future is dropped.
    pub fn guaranteed(mut self) -> Self {
        self.guaranteed = true;
        self
    }

    /// Delete the node's children (recursively) first. As in Curator, children created
    /// meanwhile are deleted in their turn, and a node another client deletes meanwhile
    /// counts as deleted.
    pub fn deleting_children_if_needed(mut self) -> Self {
        self.children = true;
        self
    }

    /// NONODE counts as success: the node is gone, as this delete would have left it
    /// (whether an earlier attempt whose reply was lost deleted it or not). The same as
    /// [`quietly`](Self::quietly), as Curator's `idempotent()` for deletes.
    pub fn idempotent(self) -> Self {
        self.quietly()
    }

    fn span_path(&self) -> &str {
        &self.path
    }

    async fn run(self) -> Result<()> {
        zk_proto::path::validate_path(&self.path)?;
        let client = self.client.clone();
        let full = client.full_path(&self.path).into_owned();
        if full == "/" {
            return Err(Error::InvalidArgument("cannot delete the root".to_owned()));
        }
        // "/" under a namespace is its root, as in Curator (`delete().forPath("/")` on a
        // namespaced client): the next call creates it again.
        let namespace_root = self.path == "/";
        let result = if self.guaranteed {
            let (path, version, children) = (full.clone(), self.version, self.children);
            guaranteed(
                client.clone(),
                "delete",
                full,
                async move { self.delete_with_retries().await },
                move |inner| delete_until_gone(inner, path.clone(), version, children),
            )
            .await
        } else {
            self.delete_with_retries().await
        };
        if namespace_root {
            client.forget_namespace_root();
        }
        result
    }

    async fn delete_with_retries(&self) -> Result<()> {
        let client = &self.client;
        let full = client.full_path(&self.path);
        let session = &client.inner.session;
        client
            .retry(|_| {
                let full = &full;
                async move {
                    match delete_once(session, full, self.version, self.children).await {
                        Err(Error::NoNode) if self.quietly => Ok(()),
                        other => other,
                    }
                }
            })
            .await
    }
}

awaitable!(DeleteBuilder, (), "delete", run);
