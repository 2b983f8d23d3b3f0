//! `get_config` and `reconfig`: the ensemble's dynamic configuration.

use zk_proto::{ReconfigRequest, Stat};

use super::{awaitable, Client};
use crate::error::{Error, Result};
use crate::session::WatchFuture;

/// Reads the ensemble's configuration. Await it (see [`Client::get_config`]).
#[must_use = "a builder does nothing unless awaited"]
#[derive(Debug, Clone)]
pub struct GetConfigBuilder {
    client: Client,
}

/// Reads the ensemble's configuration and leaves a watch on it. Await it.
#[must_use = "a builder does nothing unless awaited"]
#[derive(Debug, Clone)]
pub struct WatchedGetConfig {
    inner: GetConfigBuilder,
}

/// Changes the ensemble's membership. Await it (see [`Client::reconfig`]).
#[must_use = "a builder does nothing unless awaited"]
#[derive(Debug, Clone)]
pub struct ReconfigBuilder {
    client: Client,
    joining: Vec<String>,
    leaving: Vec<String>,
    members: Option<Vec<String>>,
    from_config: i64,
}

impl Client {
    /// The ensemble's dynamic configuration (Curator's `getConfig()`): the data of
    /// `/zookeeper/config` (`server.N=…` lines and `version=…`) and its stat. It is read at
    /// that absolute path whatever the chroot and namespace. A standalone server has an
    /// empty configuration.
    pub fn get_config(&self) -> GetConfigBuilder {
        GetConfigBuilder {
            client: self.clone(),
        }
    }

    /// Changes the ensemble's membership (Curator's `reconfig()`): either incrementally
    /// ([`joining`](ReconfigBuilder::joining) / [`leaving`](ReconfigBuilder::leaving)) or
    /// as a whole ([`with_new_members`](ReconfigBuilder::with_new_members)). Returns the new
    /// configuration and its stat.
    ///
    /// # Notable errors
    /// [`Error::ReconfigDisabled`] unless the servers run with `reconfigEnabled=true`;
    /// [`Error::NoAuth`] unless the client may write `/zookeeper/config`;
    /// [`Error::BadVersion`] when [`from_config`](ReconfigBuilder::from_config) is stale;
    /// [`Error::NewConfigNoQuorum`] when no quorum of the new membership is connected and
    /// current (not retried: try again once the new servers are up);
    /// [`Error::InvalidArgument`] before sending when no change, or both modes, are given.
    pub fn reconfig(&self) -> ReconfigBuilder {
        ReconfigBuilder {
            client: self.clone(),
            joining: Vec::new(),
            leaving: Vec::new(),
            members: None,
            from_config: -1,
        }
    }
}

impl GetConfigBuilder {
    /// Also leave a one-shot watch that fires when the configuration changes.
    pub fn watched(self) -> WatchedGetConfig {
        WatchedGetConfig { inner: self }
    }

    fn span_path(&self) -> &str {
        zk_proto::path::CONFIG_NODE
    }

    async fn fetch(&self, watch: bool) -> Result<(Vec<u8>, Stat, Option<WatchFuture>)> {
        let session = &self.client.inner.session;
        self.client.retry(|_| session.get_config(watch)).await
    }

    async fn run(self) -> Result<(Vec<u8>, Stat)> {
        let (data, stat, _) = self.fetch(false).await?;
        Ok((data, stat))
    }
}

impl WatchedGetConfig {
    fn span_path(&self) -> &str {
        self.inner.span_path()
    }

    async fn run(self) -> Result<(Vec<u8>, Stat, WatchFuture)> {
        let (data, stat, watch) = self.inner.fetch(true).await?;
        let watch = watch.ok_or_else(|| Error::Protocol("watch not registered".to_owned()))?;
        Ok((data, stat, watch))
    }
}

impl ReconfigBuilder {
    /// Servers to add, each as `server.N=host:quorumPort:electionPort[:role];[clientHost:]clientPort`.
    pub fn joining(mut self, servers: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.joining.extend(servers.into_iter().map(Into::into));
        self
    }

    /// Server ids to remove.
    pub fn leaving(mut self, ids: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.leaving.extend(ids.into_iter().map(Into::into));
        self
    }

    /// The complete new membership (non-incremental), in the `joining` format.
    pub fn with_new_members(
        mut self,
        servers: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.members = Some(servers.into_iter().map(Into::into).collect());
        self
    }

    /// Apply only if the current configuration's version is `version` (the `version=` of
    /// [`Client::get_config`], in hex there); default any.
    pub fn from_config(mut self, version: i64) -> Self {
        self.from_config = version;
        self
    }

    fn span_path(&self) -> &str {
        zk_proto::path::CONFIG_NODE
    }

    fn request(&self) -> Result<ReconfigRequest> {
        let list = |items: &[String]| (!items.is_empty()).then(|| items.join(","));
        let (joining, leaving) = (list(&self.joining), list(&self.leaving));
        let new_members = match &self.members {
            Some(_) if joining.is_some() || leaving.is_some() => {
                return Err(Error::InvalidArgument(
                    "reconfig: give either joining/leaving servers or the new members, not both"
                        .to_owned(),
                ))
            }
            Some(members) if members.is_empty() => {
                return Err(Error::InvalidArgument(
                    "reconfig: the new membership is empty".to_owned(),
                ))
            }
            Some(members) => Some(members.join(",")),
            None if joining.is_none() && leaving.is_none() => {
                return Err(Error::InvalidArgument(
                    "reconfig: no server joining or leaving".to_owned(),
                ))
            }
            None => None,
        };
        Ok(ReconfigRequest {
            joining_servers: joining,
            leaving_servers: leaving,
            new_members,
            cur_config_id: self.from_config,
        })
    }

    async fn run(self) -> Result<(Vec<u8>, Stat)> {
        let request = self.request()?;
        let session = &self.client.inner.session;
        self.client
            .retry(|_| session.reconfig(request.clone()))
            .await
    }
}

awaitable!(GetConfigBuilder, (Vec<u8>, Stat), "get_config", run);
awaitable!(
    WatchedGetConfig,
    (Vec<u8>, Stat, WatchFuture),
    "get_config",
    run
);
awaitable!(ReconfigBuilder, (Vec<u8>, Stat), "reconfig", run);

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        Client::connect("127.0.0.1:1").unwrap()
    }

    #[tokio::test]
    async fn reconfig_arguments_are_checked_before_sending() {
        let c = client();
        let bad = [
            c.reconfig(),
            c.reconfig()
                .joining(["server.4=h:1:2;3"])
                .with_new_members(["server.1=h:1:2;3"]),
            c.reconfig()
                .leaving(["2"])
                .with_new_members(["server.1=h:1:2;3"]),
            c.reconfig().with_new_members(Vec::<String>::new()),
        ];
        for b in bad {
            assert!(
                matches!(b.request(), Err(Error::InvalidArgument(_))),
                "{b:?}"
            );
        }
        let r = c
            .reconfig()
            .joining(["server.4=h:1:2;3", "server.5=h:4:5;6"])
            .leaving(["2"])
            .from_config(0x1_0000_0000)
            .request()
            .unwrap();
        assert_eq!(
            r,
            ReconfigRequest {
                joining_servers: Some("server.4=h:1:2;3,server.5=h:4:5;6".to_owned()),
                leaving_servers: Some("2".to_owned()),
                new_members: None,
                cur_config_id: 0x1_0000_0000,
            }
        );
        let r = c
            .reconfig()
            .with_new_members(["server.1=h:1:2;3"])
            .request()
            .unwrap();
        assert_eq!(r.joining_servers, None);
        assert_eq!(r.leaving_servers, None);
        assert_eq!(r.new_members.as_deref(), Some("server.1=h:1:2;3"));
        assert_eq!(r.cur_config_id, -1);
        // Through the future too, with no server to send to.
        let err = c.reconfig().await.unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    }
}
