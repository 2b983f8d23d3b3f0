//! The loop of a recipe task that keeps a persistent watch: add it, follow it until it ends,
//! add it again — with a backoff when adding fails — until the recipe stops.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use zk_client::{ConnectionStates, Error as ZkError};

use crate::util::stopped;

/// Why following one watch ended.
pub(crate) enum Followed {
    /// Closed (by the recipe or the client): end the task.
    Stop,
    /// The watch ended (session expired, or removed), or adding it failed: add it again.
    Rewatch,
}

/// A recipe's watch, as [`keep_watch`] drives it.
pub(crate) trait KeptWatch: Sync {
    /// The watch (a stream, or the first of several).
    type Watch: Send;

    /// Adds the watch.
    fn add(&self) -> impl Future<Output = Result<Self::Watch, ZkError>> + Send;

    /// Follows an added watch until it ends.
    fn follow(
        &self,
        watch: Self::Watch,
        states: &mut ConnectionStates,
        stop: &mut watch::Receiver<bool>,
    ) -> impl Future<Output = Followed> + Send;

    /// What to do after adding failed with `error` (never `Closed` or `AuthFailed`, which
    /// stop).
    fn add_failed(
        &self,
        error: ZkError,
        states: &mut ConnectionStates,
        stop: &mut watch::Receiver<bool>,
    ) -> impl Future<Output = Followed> + Send;
}

const MIN_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Keeps `kept`'s watch until `stop` is set or following it says to stop. After a failed
/// add, waits 20 ms, doubling up to 1 s, before the next.
pub(crate) async fn keep_watch<K: KeptWatch>(
    kept: &K,
    states: &mut ConnectionStates,
    stop: &mut watch::Receiver<bool>,
) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let added = tokio::select! {
            _ = stopped(stop) => return,
            r = kept.add() => r,
        };
        let followed = match added {
            Ok(watch) => {
                backoff = MIN_BACKOFF;
                kept.follow(watch, states, stop).await
            }
            // The client is closed, or its credentials were refused for good.
            Err(ZkError::Closed | ZkError::AuthFailed) => Followed::Stop,
            Err(e) => kept.add_failed(e, states, stop).await,
        };
        match followed {
            Followed::Stop => return,
            Followed::Rewatch => {
                tokio::select! {
                    _ = stopped(stop) => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
