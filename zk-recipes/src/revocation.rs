//! [`Revoker`]: Curator's lock revocation — asking a lock's holder to release it.

use zk_client::{Client, Error as ZkError};

use crate::lock_internals::REVOKE_MESSAGE;
use crate::Result;

/// Asks lock holders to release (Curator's `Revoker`): writes `__REVOKE__` into a lock node.
///
/// Revocation is cooperative. The holder's guard notices the write through the watch it
/// keeps on its node ([`MutexGuard::revocation_requested`](crate::MutexGuard::revocation_requested)
/// resolves) and decides whether to release; nothing is deleted by the revoker. Works for
/// [`Mutex`](crate::Mutex) nodes and the read and write nodes of a
/// [`ReadWriteLock`](crate::ReadWriteLock), and on Curator's lock nodes (a Java holder made
/// revocable with `makeRevocable` gets its `RevocationListener` called). Writing the node
/// does not change its `czxid`, so the holder's fencing token stays valid.
///
/// ```no_run
/// # async fn f(client: zk_client::Client) -> zk_recipes::Result<()> {
/// use zk_recipes::{Mutex, Revoker};
///
/// let mutex = Mutex::new(client.clone(), "/app/locks/orders")?;
/// if let Some(holder) = mutex.participant_nodes().await?.first() {
///     Revoker::attempt_revoke(&client, &format!("/app/locks/orders/{holder}")).await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Revoker;

impl Revoker {
    /// Writes `__REVOKE__` into the lock node `lock_node_path` (client-relative, e.g. a lock
    /// path joined with a name from [`Mutex::participant_nodes`](crate::Mutex::participant_nodes)).
    /// A node that is gone already is not an error (its holder released).
    ///
    /// # Errors
    /// [`Error::Zk`](crate::Error::Zk) when the write fails (after the client's retries).
    ///
    /// # Cancellation safety
    /// The write may or may not have reached the server when the future is dropped.
    pub async fn attempt_revoke(client: &Client, lock_node_path: &str) -> Result<()> {
        match client.set_data(lock_node_path, REVOKE_MESSAGE).await {
            Ok(_) | Err(ZkError::NoNode) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
