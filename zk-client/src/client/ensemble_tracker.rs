//! Curator's `EnsembleTracker`: the client follows the ensemble's membership in
//! `/zookeeper/config` and connects to its members' client addresses from then on.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::background::connected;
use super::{Client, Inner};
use crate::dynamic_config;

/// Starts the tracker of the client behind `inner`. It holds the client only weakly and
/// ends with it.
pub(crate) fn spawn(inner: Weak<Inner>) {
    tokio::spawn(async move {
        loop {
            let Some(strong) = connected(&inner).await else {
                return;
            };
            let mut states = strong.session.state_receiver();
            let client = Client::from_inner(strong);
            let watch = match client.get_config().watched().await {
                Ok((data, _, watch)) => {
                    follow(&client.inner, &String::from_utf8_lossy(&data));
                    watch
                }
                Err(e) if e.is_retryable() => {
                    tracing::debug!(%e, "reading the ensemble configuration failed; retrying");
                    drop(client);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                Err(e) => {
                    // Will not change on its own (e.g. no config node on a 3.4 server): try
                    // again after the next disconnection.
                    tracing::warn!(%e, "cannot read the ensemble configuration; the server list stays");
                    drop(client);
                    let _ = states.wait_for(|s| !s.is_connected()).await;
                    continue;
                }
            };
            drop(client);
            // Fires when the configuration changes, the session expires or the client closes.
            watch.await;
        }
    });
}

/// Points the session at the configuration's members, if it names any (a standalone server's
/// configuration is empty) and they differ from the servers it has.
fn follow(inner: &Arc<Inner>, config: &str) {
    let servers = dynamic_config::parse(config).client_servers();
    if servers.is_empty() {
        return;
    }
    let known = inner.session.servers();
    let same = servers.len() == known.len() && servers.iter().all(|s| known.contains(s));
    if !same {
        tracing::info!(
            ?servers,
            "the ensemble configuration names other servers: following it"
        );
        let _ = inner.session.set_servers(servers);
    }
}
