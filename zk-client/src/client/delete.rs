//! `client.delete(path)`: version, quietly, guaranteed, deleting children, idempotent.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

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
    idempotent: bool,
}

impl Client {
    /// Deletes the node at `path` (any version unless told otherwise).
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
            idempotent: false,
        }
    }

    /// Deletes `full_path` (namespace included) in the background until it is gone.
    pub(crate) fn delete_in_background(&self, full_path: String, version: i32) {
        spawn_guaranteed(Arc::downgrade(&self.inner), full_path, version, false);
    }
}

fn spawn_guaranteed(
    inner: std::sync::Weak<Inner>,
    full_path: String,
    version: i32,
    children: bool,
) {
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(50);
        loop {
            // Wait for a connection without keeping the client alive.
            let Some(mut rx) = inner.upgrade().map(|i| i.session.state_receiver()) else {
                return;
            };
            let connected = rx
                .wait_for(|s| s.is_connected() || s.is_terminal())
                .await
                .map(|s| s.is_connected())
                .unwrap_or(false);
            if !connected {
                return;
            }
            let Some(inner) = inner.upgrade() else { return };
            let result = delete_once(&inner.session, &full_path, version, children).await;
            let retry = result
                .as_ref()
                .err()
                .is_some_and(|e| inner.retry.allow_retry_on(e));
            drop(inner);
            match result {
                Ok(()) | Err(Error::NoNode) => {
                    tracing::debug!(path = %full_path, "guaranteed delete done");
                    return;
                }
                Err(_) if retry => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                Err(e) => {
                    tracing::warn!(path = %full_path, %e, "guaranteed delete gave up");
                    return;
                }
            }
        }
    });
}

/// One delete, deleting children first when asked.
fn delete_once<'a>(
    session: &'a Session,
    path: &'a str,
    version: i32,
    children: bool,
) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>> {
    Box::pin(async move {
        match session.delete(path, version).await {
            Err(Error::NotEmpty) if children => {
                let (kids, _) = match session.get_children(path, false).await {
                    Ok(k) => k,
                    Err(Error::NoNode) => return Err(Error::NoNode),
                    Err(e) => return Err(e),
                };
                for kid in kids {
                    let child = zk_proto::path::join(path, &kid);
                    match delete_once(session, &child, -1, true).await {
                        Ok(()) | Err(Error::NoNode) => {}
                        Err(e) => return Err(e),
                    }
                }
                session.delete(path, version).await
            }
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

    /// Delete the node's children (recursively) first.
    pub fn deleting_children_if_needed(mut self) -> Self {
        self.children = true;
        self
    }

    /// On a retry, NONODE counts as success (the first attempt probably deleted it).
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    fn span_path(&self) -> &str {
        &self.path
    }

    async fn run(self) -> Result<()> {
        zk_proto::path::validate_path(&self.path)?;
        if self.path == "/" {
            return Err(Error::InvalidArgument("cannot delete the root".to_owned()));
        }
        if self.guaranteed {
            // The whole call runs in its own task, so dropping this future (e.g. on a
            // timeout during a disconnect) does not stop the delete.
            let (tx, rx) = tokio::sync::oneshot::channel();
            tokio::spawn(async move {
                let result = self.delete_with_retries().await;
                let client = &self.client;
                if let Err(e) = &result {
                    if client.inner.retry.allow_retry_on(e) || matches!(e, Error::Connect(_)) {
                        let full = client.full_path(&self.path);
                        tracing::info!(path = %full, %e, "guaranteed delete continues in the background");
                        spawn_guaranteed(
                            Arc::downgrade(&client.inner),
                            full.into_owned(),
                            self.version,
                            self.children,
                        );
                    }
                }
                let _ = tx.send(result);
            });
            return rx.await.unwrap_or(Err(Error::Closed));
        }
        self.delete_with_retries().await
    }

    async fn delete_with_retries(&self) -> Result<()> {
        let client = &self.client;
        let full = client.full_path(&self.path);
        let session = &client.inner.session;
        client
            .retry(|attempt| {
                let full = &full;
                async move {
                    match delete_once(session, full, self.version, self.children).await {
                        Err(Error::NoNode) if self.quietly || (self.idempotent && attempt > 0) => {
                            Ok(())
                        }
                        other => other,
                    }
                }
            })
            .await
    }
}

awaitable!(DeleteBuilder, (), "delete", run);
