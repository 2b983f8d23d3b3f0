//! `TestingServer`: an in-process server for tests, on a random loopback port with a temporary
//! data directory that is removed when the server is dropped; `TestingCluster`: an ensemble of
//! them.

mod cluster;
mod fault_proxy;
mod ports;

pub use cluster::{TestingCluster, TestingClusterBuilder};
pub use fault_proxy::{FaultMode, FaultProxy};
pub use ports::reserve_port;

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use tempfile::TempDir;

use crate::config::{FourLetterWhitelist, ServerConfig};
use crate::net::{Server, ServerError};

/// Options for a [`TestingServer`].
#[derive(Debug, Clone)]
#[must_use]
pub struct TestingServerBuilder {
    tick_time_ms: u32,
    extended_types: bool,
    super_digest: Option<String>,
    snap_count: u64,
    container_check_interval_ms: u64,
    emulate_3_5: bool,
    jute_max_buffer: usize,
}

impl Default for TestingServerBuilder {
    fn default() -> Self {
        TestingServerBuilder {
            tick_time_ms: 200,
            extended_types: true,
            super_digest: None,
            snap_count: 100_000,
            container_check_interval_ms: 1000,
            emulate_3_5: false,
            jute_max_buffer: zk_proto::frame::DEFAULT_MAX_FRAME_LEN,
        }
    }
}

impl TestingServerBuilder {
    /// The tick (default 200 ms): sessions may negotiate timeouts from 2 ticks up to 60 s.
    pub fn tick_time_ms(mut self, ms: u32) -> Self {
        self.tick_time_ms = ms;
        self
    }

    /// Whether TTL nodes are enabled (default true).
    pub fn extended_types(mut self, enabled: bool) -> Self {
        self.extended_types = enabled;
        self
    }

    /// A `user:BASE64` digest with super-user rights (see [`zk_proto::digest_id`]).
    pub fn super_digest(mut self, digest: impl Into<String>) -> Self {
        self.super_digest = Some(digest.into());
        self
    }

    /// Txns between snapshots (default 100,000).
    pub fn snap_count(mut self, count: u64) -> Self {
        self.snap_count = count;
        self
    }

    /// How often containers and TTL nodes are cleaned (default 1 s).
    pub fn container_check_interval_ms(mut self, ms: u64) -> Self {
        self.container_check_interval_ms = ms;
        self
    }

    /// Behave like a ZooKeeper 3.5 server (default false): the opcodes added in 3.6 and
    /// later — multiRead, getEphemerals, getAllChildrenNumber, setWatches2, addWatch (so no
    /// persistent watches) and whoAmI — are answered UNIMPLEMENTED and the connection is
    /// closed (the session lives on, the client reconnects), as 3.5's
    /// `UnimplementedRequestProcessor` does. Everything else (TTL nodes included, if
    /// [`extended_types`](Self::extended_types)) works as before. For testing clients'
    /// and recipes' fallbacks.
    pub fn emulate_3_5(mut self, enabled: bool) -> Self {
        self.emulate_3_5 = enabled;
        self
    }

    /// The largest request a client may send (Apache's `jute.maxbuffer`, default 0xfffff);
    /// see [`ServerConfig::jute_max_buffer`](crate::config::ServerConfig::jute_max_buffer).
    pub fn jute_max_buffer(mut self, bytes: usize) -> Self {
        self.jute_max_buffer = bytes;
        self
    }

    /// Starts the server.
    pub async fn start(self) -> io::Result<TestingServer> {
        let dir = tempfile::Builder::new()
            .prefix("zk-testing-server")
            .tempdir()?;
        let mut server = TestingServer {
            server: None,
            port: 0,
            dir,
            options: self,
        };
        // Another process may take the port between its reservation and the bind.
        let mut attempt = 0;
        loop {
            match server.start_on(reserve_port()?).await {
                Ok(()) => return Ok(server),
                Err(e) if attempt < 5 => {
                    attempt += 1;
                    tracing::debug!(error = %e, "start: trying another port");
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// An in-process ZooKeeper-compatible server for tests.
pub struct TestingServer {
    server: Option<Server>,
    port: u16,
    dir: TempDir,
    options: TestingServerBuilder,
}

fn to_io(e: ServerError) -> io::Error {
    io::Error::other(e)
}

impl TestingServer {
    /// Starts a server with the default options.
    pub async fn start() -> io::Result<TestingServer> {
        TestingServerBuilder::default().start().await
    }

    /// Options for a server.
    pub fn builder() -> TestingServerBuilder {
        TestingServerBuilder::default()
    }

    fn config(&self, port: u16) -> ServerConfig {
        let mut config = ServerConfig::new(self.dir.path());
        config.client_port = port;
        config.client_port_address = IpAddr::V4(Ipv4Addr::LOCALHOST);
        config.tick_time_ms = self.options.tick_time_ms;
        config.max_session_timeout_ms = Some(60_000);
        config.max_client_cnxns = 0;
        config.four_letter_words = FourLetterWhitelist::All;
        config.extended_types = self.options.extended_types;
        config.super_digest = self.options.super_digest.clone();
        config.snap_count = self.options.snap_count;
        // Autopurge on, so snapshots and logs do not pile up in long test runs.
        config.purge_interval_hours = 1;
        config.container_check_interval_ms = self.options.container_check_interval_ms;
        config.emulate_3_5 = self.options.emulate_3_5;
        config.jute_max_buffer = self.options.jute_max_buffer;
        config
    }

    async fn start_on(&mut self, port: u16) -> io::Result<()> {
        let server = Server::start(self.config(port)).await.map_err(to_io)?;
        self.port = server.local_addr().port();
        self.server = Some(server);
        Ok(())
    }

    /// `127.0.0.1:PORT`, for a client's connect string.
    pub fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The client port (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the server is running.
    pub fn is_running(&self) -> bool {
        self.server.is_some()
    }

    /// Stops the server; connected clients see their connection drop. Data is kept.
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            if let Err(e) = server.shutdown().await {
                tracing::warn!(error = %e, "testing server stopped with an error");
            }
        }
    }

    /// Stops (if running) and starts again on the same port with the same data; sessions
    /// that have not timed out yet can re-attach.
    pub async fn restart(&mut self) -> io::Result<()> {
        self.stop().await;
        let port = self.port;
        // The port was just released; retry briefly in case the OS is slow to free it.
        let mut attempt = 0;
        loop {
            match self.start_on(port).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt < 50 => {
                    attempt += 1;
                    tracing::debug!(error = %e, "restart: port not free yet");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Expires a session as its timeout would: its ephemerals are deleted and its connection
    /// closed. False if the session is unknown (or the server is stopped).
    pub async fn expire_session(&self, session_id: i64) -> bool {
        match &self.server {
            Some(server) => server.expire_session(session_id).await,
            None => false,
        }
    }

    /// Answers a four-letter word (all are enabled on a testing server).
    pub async fn four_letter_word(&self, word: &str) -> Option<String> {
        self.server.as_ref()?.four_letter_word(word).await
    }
}
