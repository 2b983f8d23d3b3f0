//! Server configuration, from code or from a `zoo.cfg` file.
//!
//! # Ensemble keys
//!
//! `zoo.cfg` describes an ensemble as Apache ZooKeeper's does (`QuorumPeerConfig`); the result
//! is [`ServerConfig::quorum`]:
//!
//! | Key | Meaning |
//! |---|---|
//! | `server.N=host:quorumPort:electionPort[:participant\|:observer][;[clientHost:]clientPort]` | a member with id `N` (1–255; 1–254 with `extendedTypesEnabled`). IPv6 hosts go in brackets: `[fd00::1]:2888:3888`. The optional client part sets this member's client address (a bare port means `0.0.0.0:port`); for this server it replaces `clientPort`/`clientPortAddress`, which must agree with it if given. Several `\|`-separated addresses and a secure (TLS) client part are not supported. |
//! | `initLimit`, `syncLimit` | ticks a learner has for its initial sync, and may lag behind the leader; required in an ensemble |
//! | `electionAlg` | only `3` (FastLeaderElection) is accepted |
//! | `peerType` | `participant` or `observer`; if it disagrees with this server's `server.N` line, the line wins (with a warning) |
//! | `standaloneEnabled` | default `true`: a single participant line runs standalone (the line is ignored). `false` makes even one participant an ensemble |
//! | `quorumListenOnAllIPs` | listen on every address for quorum and election connections |
//! | `quorum.auth.secret` / `quorum.auth.secretFile` | the shared secret (at least 16 bytes; a file's content is trimmed of surrounding whitespace) with which peers prove they are configured members (CVE-2023-44981). Required in an ensemble unless `quorum.auth.enabled=false` |
//! | `quorum.auth.enabled` | `false` runs the ensemble without peer authentication (warned about) |
//!
//! The configuration is **distributed** when it has at least two participant `server.N` lines,
//! or one with `standaloneEnabled=false`; otherwise the server runs standalone and
//! [`ServerConfig::quorum`] is `None` (observers without a quorum are an error). A distributed
//! configuration needs `<dataDir>/myid`: one line, the decimal id of a `server.N` line.
//!
//! **Not interoperable with Apache ZooKeeper peers.** Apache authenticates quorum peers with
//! SASL (`quorum.auth.enableSasl`, Kerberos or DIGEST-MD5) or TLS (`sslQuorum`); those keys set to
//! `true` are refused here, and the shared-secret handshake is this project's own. An ensemble
//! must consist only of these servers: mixed ensembles are not supported. Also refused:
//! `dynamicConfigFile` (dynamic reconfiguration) and `group.*`/`weight.*` (hierarchical quorums).

mod properties;
pub mod quorum;
mod zoo_cfg;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

pub use quorum::{LearnerType, QuorumConfig, QuorumSecret, QuorumServer, ServerId};
pub use zoo_cfg::{parse_zoo_cfg, ConfigError};

/// Which four-letter words are enabled (`4lw.commands.whitelist`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FourLetterWhitelist {
    /// `*`: every word.
    All,
    /// Only these words.
    Only(Vec<String>),
}

impl FourLetterWhitelist {
    /// Whether `word` may run. `srvr` always may, as in Apache (zkServer.sh status uses it).
    pub fn allows(&self, word: &str) -> bool {
        match self {
            FourLetterWhitelist::All => true,
            FourLetterWhitelist::Only(words) => word == "srvr" || words.iter().any(|w| w == word),
        }
    }
}

impl Default for FourLetterWhitelist {
    /// Apache's default: only `srvr`.
    fn default() -> Self {
        FourLetterWhitelist::Only(vec!["srvr".into()])
    }
}

/// The largest `jute.maxbuffer` this server takes. Its txn-log reader accepts entries this
/// large whatever the configured limit, so that lowering the limit never hides logged txns.
pub const MAX_JUTE_MAXBUFFER: usize = 64 << 20;

/// Everything a standalone server needs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The basic time unit, ms (`tickTime`).
    pub tick_time_ms: u32,
    /// Snapshot directory (`dataDir`).
    pub data_dir: PathBuf,
    /// Txn-log directory (`dataLogDir`); defaults to `data_dir`.
    pub data_log_dir: Option<PathBuf>,
    /// Client port (`clientPort`); 0 picks a free port.
    pub client_port: u16,
    /// Address to listen on (`clientPortAddress`).
    pub client_port_address: IpAddr,
    /// Connections allowed per client IP, 0 = unlimited (`maxClientCnxns`).
    pub max_client_cnxns: u32,
    /// Lower bound of session timeouts, ms; default 2 × tickTime (`minSessionTimeout`).
    pub min_session_timeout_ms: Option<i32>,
    /// Upper bound of session timeouts, ms; default 20 × tickTime (`maxSessionTimeout`).
    pub max_session_timeout_ms: Option<i32>,
    /// Txns between snapshots (`snapCount`).
    pub snap_count: u64,
    /// Snapshots kept by purging (`autopurge.snapRetainCount`, at least 3).
    pub snap_retain_count: usize,
    /// Hours between purges, 0 = never (`autopurge.purgeInterval`).
    pub purge_interval_hours: u32,
    /// Enabled four-letter words (`4lw.commands.whitelist`).
    pub four_letter_words: FourLetterWhitelist,
    /// `user:BASE64` digest granting super-user rights
    /// (`DigestAuthenticationProvider.superDigest`).
    pub super_digest: Option<String>,
    /// The largest request a client may send, in bytes (the frame after its length prefix):
    /// Apache's `jute.maxbuffer`, default 0xfffff (1 MiB − 1), at most
    /// [`MAX_JUTE_MAXBUFFER`]. A larger request closes its connection. Apache reads it from
    /// the JVM's `-Djute.maxbuffer`; this server from `zoo.cfg`. Every member of an ensemble
    /// needs the same value.
    pub jute_max_buffer: usize,
    /// Whether TTL nodes are enabled (`extendedTypesEnabled`).
    pub extended_types: bool,
    /// How often containers and TTL nodes are checked, ms (`znode.container.checkIntervalMs`).
    pub container_check_interval_ms: u64,
    /// Container/TTL deletions per minute at most (`znode.container.maxPerMinute`).
    pub container_max_per_minute: u64,
    /// Never-used containers are deleted after this long, 0 = never
    /// (`znode.container.maxNeverUsedIntervalMs`).
    pub container_max_never_used_ms: i64,
    /// The ensemble this server belongs to; `None` runs standalone (the default, and what a
    /// `zoo.cfg` without at least two participant `server.N` lines gives).
    pub quorum: Option<QuorumConfig>,
    /// Behave like a ZooKeeper 3.5 server towards the opcodes added in 3.6 and later
    /// (multiRead, getEphemerals, getAllChildrenNumber, setWatches2, addWatch, whoAmI): answer
    /// them UNIMPLEMENTED and close the connection (the session lives on), as 3.5 does with
    /// any opcode it does not know. For testing clients' fallbacks; not a `zoo.cfg` setting.
    /// Default false.
    pub emulate_3_5: bool,
}

impl ServerConfig {
    /// Defaults as Apache ZooKeeper's, with the given data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig {
            tick_time_ms: 3000,
            data_dir: data_dir.into(),
            data_log_dir: None,
            client_port: 2181,
            client_port_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            max_client_cnxns: 60,
            min_session_timeout_ms: None,
            max_session_timeout_ms: None,
            snap_count: 100_000,
            snap_retain_count: 3,
            purge_interval_hours: 0,
            four_letter_words: FourLetterWhitelist::default(),
            super_digest: None,
            jute_max_buffer: zk_proto::frame::DEFAULT_MAX_FRAME_LEN,
            extended_types: false,
            container_check_interval_ms: 60_000,
            container_max_per_minute: 10_000,
            container_max_never_used_ms: 0,
            quorum: None,
            emulate_3_5: false,
        }
    }

    /// The txn-log directory.
    pub fn log_dir(&self) -> PathBuf {
        self.data_log_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.clone())
    }

    /// The effective minimum session timeout.
    pub fn min_session_timeout(&self) -> i32 {
        self.min_session_timeout_ms.unwrap_or_else(|| {
            i32::try_from(self.tick_time_ms.saturating_mul(2)).unwrap_or(i32::MAX)
        })
    }

    /// The effective maximum session timeout.
    pub fn max_session_timeout(&self) -> i32 {
        self.configured_max_session_timeout()
            .max(self.min_session_timeout())
    }

    /// `maxSessionTimeout`, or its default of 20 ticks (not yet raised to the minimum).
    pub(crate) fn configured_max_session_timeout(&self) -> i32 {
        self.max_session_timeout_ms.unwrap_or_else(|| {
            i32::try_from(self.tick_time_ms.saturating_mul(20)).unwrap_or(i32::MAX)
        })
    }
}
