//! `TestingCluster`: an in-process ensemble on loopback, with crashes and partitions.

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use tempfile::TempDir;

use super::{reserve_port, to_io};
use crate::config::{FourLetterWhitelist, QuorumConfig, QuorumSecret, QuorumServer, ServerConfig};
use crate::net::Server;

/// Options for a [`TestingCluster`].
#[derive(Debug, Clone)]
#[must_use]
pub struct TestingClusterBuilder {
    voters: usize,
    observers: usize,
    tick_time_ms: u32,
    snap_count: u64,
    jute_max_buffer: usize,
}

impl Default for TestingClusterBuilder {
    fn default() -> Self {
        TestingClusterBuilder {
            voters: 3,
            observers: 0,
            tick_time_ms: 200,
            snap_count: 100_000,
            jute_max_buffer: zk_proto::frame::DEFAULT_MAX_FRAME_LEN,
        }
    }
}

impl TestingClusterBuilder {
    /// Voting members (default 3).
    pub fn voters(mut self, n: usize) -> Self {
        self.voters = n;
        self
    }

    /// Observers (default 0), numbered after the voters.
    pub fn observers(mut self, n: usize) -> Self {
        self.observers = n;
        self
    }

    /// The tick (default 200 ms); initLimit is 20 ticks, syncLimit 10 (a follower silent
    /// for 2 s is dropped: room for a loaded test machine), sessions may negotiate timeouts
    /// from 2 ticks up to 60 s.
    pub fn tick_time_ms(mut self, ms: u32) -> Self {
        self.tick_time_ms = ms;
        self
    }

    /// Committed txns between a member's snapshots (default 100,000): each snapshot
    /// compacts the member's log, and a member that missed compacted txns gets the
    /// leader's snapshot instead of a diff.
    pub fn snap_count(mut self, count: u64) -> Self {
        self.snap_count = count;
        self
    }

    /// The largest request a client may send, on every member (Apache's `jute.maxbuffer`,
    /// default 0xfffff).
    pub fn jute_max_buffer(mut self, bytes: usize) -> Self {
        self.jute_max_buffer = bytes;
        self
    }

    /// Starts every member (without waiting for a leader: see
    /// [`TestingCluster::wait_for_leader`]).
    ///
    /// # Errors
    /// Ports could not be reserved or a member could not start.
    pub async fn start(self) -> io::Result<TestingCluster> {
        let size = self.voters + self.observers;
        if self.voters == 0 || size > 250 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a cluster needs 1 to 250 members, at least one voting",
            ));
        }
        let dir = tempfile::Builder::new()
            .prefix("zk-testing-cluster")
            .tempdir()?;
        let mut members = Vec::with_capacity(size);
        for i in 0..size {
            let (client_port, quorum_port, election_port) =
                (reserve_port()?, reserve_port()?, reserve_port()?);
            let role = if i < self.voters {
                "participant"
            } else {
                "observer"
            };
            let spec =
                format!("127.0.0.1:{quorum_port}:{election_port}:{role};127.0.0.1:{client_port}");
            let sid = i as u64 + 1;
            let server = QuorumServer::parse(sid, &spec)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let data_dir = dir.path().join(format!("member-{sid}"));
            std::fs::create_dir_all(&data_dir)?;
            members.push(Member {
                server: None,
                spec: server,
                client_port,
                data_dir,
                partitioned_from: BTreeSet::new(),
            });
        }
        let secret = QuorumSecret::new(format!("testing-cluster-{:032x}", rand::random::<u128>()))
            .ok_or_else(|| io::Error::other("secret too short"))?;
        let mut cluster = TestingCluster {
            members,
            secret,
            options: self,
            _dir: dir,
        };
        for i in 0..size {
            cluster.start_member(i).await?;
        }
        Ok(cluster)
    }
}

struct Member {
    server: Option<Server>,
    spec: QuorumServer,
    client_port: u16,
    data_dir: std::path::PathBuf,
    partitioned_from: BTreeSet<u64>,
}

/// An in-process ensemble of zk-server members on loopback ports, each with its own
/// temporary data directory, for tests of failover, partitions and lagging members.
///
/// Members are numbered from 0 (server id `i + 1`). Killing a member stops it as a crash
/// would (what it acknowledged is durable), restarting it recovers its data directory.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use std::time::Duration;
/// let mut cluster = zk_server::TestingCluster::start(3).await?;
/// let leader = cluster.wait_for_leader(Duration::from_secs(10)).await.expect("a leader");
/// // point clients at cluster.connect_string(), then:
/// cluster.kill(leader).await;
/// let next = cluster.wait_for_leader(Duration::from_secs(10)).await.expect("a new leader");
/// assert_ne!(next, leader);
/// cluster.restart(leader).await?;
/// # Ok(()) }
/// ```
pub struct TestingCluster {
    members: Vec<Member>,
    secret: QuorumSecret,
    options: TestingClusterBuilder,
    _dir: TempDir,
}

impl TestingCluster {
    /// Starts `voters` voting members with the default options.
    ///
    /// # Errors
    /// As [`TestingClusterBuilder::start`].
    pub async fn start(voters: usize) -> io::Result<TestingCluster> {
        TestingClusterBuilder::default()
            .voters(voters)
            .start()
            .await
    }

    /// Options for a cluster.
    pub fn builder() -> TestingClusterBuilder {
        TestingClusterBuilder::default()
    }

    /// How many members (voters and observers).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the cluster has no member (never: it has at least one voter).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    fn config(&self, i: usize) -> ServerConfig {
        let member = &self.members[i];
        let mut config = ServerConfig::new(&member.data_dir);
        config.client_port = member.client_port;
        config.client_port_address = IpAddr::V4(Ipv4Addr::LOCALHOST);
        config.tick_time_ms = self.options.tick_time_ms;
        config.max_session_timeout_ms = Some(60_000);
        config.max_client_cnxns = 0;
        config.four_letter_words = FourLetterWhitelist::All;
        config.snap_count = self.options.snap_count;
        config.jute_max_buffer = self.options.jute_max_buffer;
        config.quorum = Some(QuorumConfig {
            my_id: member.spec.id,
            servers: self
                .members
                .iter()
                .map(|m| (m.spec.id, m.spec.clone()))
                .collect(),
            init_limit: 20,
            sync_limit: 10,
            listen_on_all_ips: false,
            secret: Some(self.secret.clone()),
        });
        config
    }

    async fn start_member(&mut self, i: usize) -> io::Result<()> {
        let config = self.config(i);
        // A port released by a member just killed may take a moment to be free again.
        let mut attempt = 0;
        let server = loop {
            match Server::start(config.clone()).await {
                Ok(server) => break server,
                Err(e) if attempt < 100 => {
                    attempt += 1;
                    tracing::debug!(member = i, error = %e, "member start: retrying");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(to_io(e)),
            }
        };
        let member = &mut self.members[i];
        server.set_partitioned_from(member.partitioned_from.clone());
        member.server = Some(server);
        Ok(())
    }

    /// Every member's client address, `127.0.0.1:P1,127.0.0.1:P2,…`.
    pub fn connect_string(&self) -> String {
        (0..self.members.len())
            .map(|i| self.member_connect_string(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Member `i`'s client address alone.
    pub fn member_connect_string(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.members[i].client_port)
    }

    /// The member whose client port is `port` (Curator's `findConnectionInstance`): with
    /// `client.connected_server()`, which member a client is connected to, e.g. to kill it.
    pub fn member_with_client_port(&self, port: u16) -> Option<usize> {
        self.members.iter().position(|m| m.client_port == port)
    }

    /// Member `i`'s server id.
    pub fn server_id(&self, i: usize) -> u64 {
        self.members[i].spec.id
    }

    /// Member `i`'s data directory (its `version-2` holds the log, snapshots and epochs).
    pub fn data_dir(&self, i: usize) -> &std::path::Path {
        &self.members[i].data_dir
    }

    /// Whether member `i` runs.
    pub fn is_running(&self, i: usize) -> bool {
        self.members[i].server.is_some()
    }

    /// Stops member `i` as a crash would (no goodbye to peers or clients).
    pub async fn kill(&mut self, i: usize) {
        if let Some(server) = self.members[i].server.take() {
            if let Err(e) = server.shutdown().await {
                tracing::warn!(member = i, error = %e, "member stopped with an error");
            }
        }
    }

    /// Starts member `i` again from its data directory (kills it first if it runs).
    ///
    /// # Errors
    /// It could not start.
    pub async fn restart(&mut self, i: usize) -> io::Result<()> {
        self.kill(i).await;
        self.start_member(i).await
    }

    /// Cuts the quorum connections between members `a` and `b` (both ways) until
    /// [`heal`](Self::heal). Clients can still reach both.
    pub fn partition(&mut self, a: usize, b: usize) {
        let (sa, sb) = (self.server_id(a), self.server_id(b));
        self.members[a].partitioned_from.insert(sb);
        self.members[b].partitioned_from.insert(sa);
        self.apply_partitions();
    }

    /// Cuts member `i` off from every other member.
    pub fn isolate(&mut self, i: usize) {
        for other in 0..self.members.len() {
            if other != i {
                self.partition(i, other);
            }
        }
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        for m in &mut self.members {
            m.partitioned_from.clear();
        }
        self.apply_partitions();
    }

    fn apply_partitions(&self) {
        for m in &self.members {
            if let Some(server) = &m.server {
                server.set_partitioned_from(m.partitioned_from.clone());
            }
        }
    }

    /// Member `i`'s mode as `srvr` reports it: `leader`, `follower`, `observer`, or `None`
    /// when it is down, electing or syncing.
    pub async fn mode(&self, i: usize) -> Option<String> {
        let reply = self.four_letter_word(i, "srvr").await?;
        reply
            .lines()
            .find_map(|l| l.strip_prefix("Mode: "))
            .map(str::to_owned)
    }

    /// The member that leads now, if one does.
    pub async fn leader(&self) -> Option<usize> {
        for i in 0..self.members.len() {
            if self.mode(i).await.as_deref() == Some("leader") {
                return Some(i);
            }
        }
        None
    }

    /// Waits until a leader serves and every running member that is not partitioned from
    /// it serves too; returns the leader.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Option<usize> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(leader) = self.leader().await {
                let leader_id = self.server_id(leader);
                let mut all = true;
                for (i, m) in self.members.iter().enumerate() {
                    let reachable = m.server.is_some() && !m.partitioned_from.contains(&leader_id);
                    if reachable && self.mode(i).await.is_none() {
                        all = false;
                    }
                }
                if all {
                    return Some(leader);
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Answers a four-letter word on member `i` (all are enabled).
    pub async fn four_letter_word(&self, i: usize, word: &str) -> Option<String> {
        self.members[i]
            .server
            .as_ref()?
            .four_letter_word(word)
            .await
    }

    /// Expires a session as its timeout would, through the leader. False if there is no
    /// leader or the session is unknown.
    pub async fn expire_session(&self, session_id: i64) -> bool {
        let Some(leader) = self.leader().await else {
            return false;
        };
        match &self.members[leader].server {
            Some(server) => server.expire_session(session_id).await,
            None => false,
        }
    }
}
