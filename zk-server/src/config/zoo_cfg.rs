//! The `zoo.cfg` format: `key=value` lines, `#` comments.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::properties::{self, Entry};
use super::quorum::{
    read_myid, LearnerType, QuorumConfig, QuorumSecret, QuorumServer, ServerId,
    MAX_EXTENDED_SERVER_ID, MAX_SERVER_ID, MIN_SECRET_LEN,
};
use super::{FourLetterWhitelist, ServerConfig, MAX_JUTE_MAXBUFFER};

/// A configuration file that cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A line the properties syntax cannot read (a malformed `\uXXXX` escape).
    #[error("line {line}: malformed \\uXXXX escape in {text:?}")]
    Syntax {
        /// Line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// A value does not fit its key.
    #[error("line {line}: invalid value {value:?} for {key}: {reason}")]
    Value {
        /// Line number.
        line: usize,
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// What is expected.
        reason: String,
    },
    /// A required key is missing.
    #[error("{0} is required")]
    Missing(&'static str),
    /// A key names a feature this server does not have.
    #[error("line {line}: {key} is not supported: {reason}")]
    Unsupported {
        /// Line number.
        line: usize,
        /// The key.
        key: String,
        /// Why, and what to use instead.
        reason: String,
    },
    /// The configuration is distributed but `<dataDir>/myid` does not exist.
    #[error(
        "{path} is missing: every member of an ensemble needs a myid file holding its server id"
    )]
    MyIdMissing {
        /// The expected file.
        path: String,
    },
    /// `<dataDir>/myid` does not hold a valid server id.
    #[error("{path}: invalid server id {found:?}: {reason}")]
    MyIdInvalid {
        /// The file.
        path: String,
        /// Its first line, trimmed (at most 64 characters).
        found: String,
        /// What is expected.
        reason: String,
    },
    /// `myid` names no `server.N` line.
    #[error("myid is {my_id} but there is no server.{my_id} line (configured: {servers:?})")]
    MyIdNotInServers {
        /// This server's id.
        my_id: ServerId,
        /// The configured ids.
        servers: Vec<ServerId>,
    },
    /// The server list, or a key that depends on it, is inconsistent.
    #[error("invalid ensemble configuration: {0}")]
    InvalidQuorum(String),
}

/// The ensemble keys as read, before they are checked against each other.
#[derive(Default)]
struct QuorumKeys {
    /// `server.N` lines with their line numbers.
    servers: BTreeMap<ServerId, (usize, QuorumServer)>,
    init_limit: Option<u32>,
    sync_limit: Option<u32>,
    peer_type: Option<LearnerType>,
    standalone_disabled: bool,
    listen_on_all_ips: bool,
    auth_disabled: bool,
    secret: Option<(usize, String)>,
    secret_file: Option<(usize, PathBuf)>,
    client_port_set: bool,
    client_address_set: bool,
}

/// Parses `zoo.cfg` text. Returns the configuration and warnings about keys it ignores.
///
/// With `server.N` lines the configuration may be distributed (see the
/// [module docs](super#ensemble-keys)); then `<dataDir>/myid` and `quorum.auth.secretFile` are
/// read from the file system.
pub fn parse_zoo_cfg(text: &str) -> Result<(ServerConfig, Vec<String>), ConfigError> {
    let mut config = ServerConfig::new(PathBuf::new());
    let mut data_dir_set = false;
    let mut warnings = Vec::new();
    let mut quorum = QuorumKeys::default();
    for Entry { line, key, value } in properties::entries(text)? {
        let (key, value) = (key.as_str(), value.as_str());
        let bad = |reason: &str| ConfigError::Value {
            line,
            key: key.to_owned(),
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        fn num<T: std::str::FromStr>(value: &str) -> Option<T> {
            value.parse().ok()
        }
        match key {
            "tickTime" => {
                config.tick_time_ms = num(value)
                    .filter(|t| *t > 0)
                    .ok_or_else(|| bad("a positive number of ms"))?
            }
            "dataDir" => {
                config.data_dir = PathBuf::from(value);
                data_dir_set = true;
            }
            "dataLogDir" => config.data_log_dir = Some(PathBuf::from(value)),
            "clientPort" => {
                config.client_port = num(value).ok_or_else(|| bad("a port number"))?;
                quorum.client_port_set = true;
            }
            "clientPortAddress" => {
                config.client_port_address = resolve_ip(value)
                    .ok_or_else(|| bad("an IP address or a host name that resolves"))?;
                quorum.client_address_set = true;
            }
            "maxClientCnxns" => {
                config.max_client_cnxns = num(value).ok_or_else(|| bad("a number"))?
            }
            // -1 is Apache's "the default" (2 and 20 ticks).
            "minSessionTimeout" => {
                config.min_session_timeout_ms =
                    session_timeout(value).ok_or_else(|| bad("a number of ms, or -1"))?
            }
            "maxSessionTimeout" => {
                config.max_session_timeout_ms =
                    session_timeout(value).ok_or_else(|| bad("a number of ms, or -1"))?
            }
            "snapCount" => {
                config.snap_count = num(value)
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad("a positive number"))?
            }
            "autopurge.snapRetainCount" => {
                let n: usize = num(value).ok_or_else(|| bad("a number"))?;
                config.snap_retain_count = n.max(3);
            }
            "autopurge.purgeInterval" => {
                config.purge_interval_hours = num(value).ok_or_else(|| bad("a number of hours"))?
            }
            "4lw.commands.whitelist" => {
                // As Apache: `*` anywhere in the list enables every word.
                let words = value.split(',').map(str::trim).filter(|w| !w.is_empty());
                config.four_letter_words = if words.clone().any(|w| w == "*") {
                    FourLetterWhitelist::All
                } else {
                    FourLetterWhitelist::Only(words.map(str::to_owned).collect())
                }
            }
            "DigestAuthenticationProvider.superDigest"
            | "zookeeper.DigestAuthenticationProvider.superDigest"
            | "superDigest" => {
                if value.split(':').count() != 2 {
                    return Err(bad("user:BASE64 digest"));
                }
                config.super_digest = Some(value.to_owned());
            }
            // Apache reads it from a JVM property (Integer.getInteger: decimal or 0x hex).
            "jute.maxbuffer" => {
                config.jute_max_buffer = jute_max_buffer(value).ok_or_else(|| {
                    bad(&format!(
                        "a number of bytes from 1024 to {MAX_JUTE_MAXBUFFER}"
                    ))
                })?
            }
            "extendedTypesEnabled" | "zookeeper.extendedTypesEnabled" => {
                config.extended_types = parse_bool(value).ok_or_else(|| bad("true or false"))?
            }
            "znode.container.checkIntervalMs" => {
                config.container_check_interval_ms = num(value)
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad("a positive number of ms"))?
            }
            "znode.container.maxPerMinute" => {
                config.container_max_per_minute = num(value).ok_or_else(|| bad("a number"))?
            }
            "znode.container.maxNeverUsedIntervalMs" => {
                config.container_max_never_used_ms =
                    num(value).ok_or_else(|| bad("a number of ms"))?
            }
            _ if key.starts_with("server.") => {
                let id = key
                    .strip_prefix("server.")
                    .and_then(|n| n.parse::<ServerId>().ok())
                    .filter(|n| (1..=MAX_SERVER_ID).contains(n))
                    .ok_or_else(|| ConfigError::Value {
                        line,
                        key: key.to_owned(),
                        value: value.to_owned(),
                        reason: format!("server.N needs an id N in 1..={MAX_SERVER_ID}"),
                    })?;
                let server = QuorumServer::parse(id, value).map_err(|reason| bad(&reason))?;
                if let Some((first, _)) = quorum.servers.insert(id, (line, server)) {
                    return Err(bad(&format!(
                        "server.{id} is already given on line {first}"
                    )));
                }
            }
            "initLimit" => {
                quorum.init_limit = Some(
                    num(value)
                        .filter(|n| *n > 0)
                        .ok_or_else(|| bad("a positive number of ticks"))?,
                )
            }
            "syncLimit" => {
                quorum.sync_limit = Some(
                    num(value)
                        .filter(|n| *n > 0)
                        .ok_or_else(|| bad("a positive number of ticks"))?,
                )
            }
            "electionAlg" => {
                if num::<i32>(value) != Some(3) {
                    return Err(bad("only 3 (FastLeaderElection) is supported"));
                }
            }
            "peerType" => {
                quorum.peer_type =
                    Some(LearnerType::parse(value).ok_or_else(|| bad("participant or observer"))?)
            }
            "standaloneEnabled" => {
                quorum.standalone_disabled =
                    !parse_bool(value).ok_or_else(|| bad("true or false"))?
            }
            "quorumListenOnAllIPs" => {
                quorum.listen_on_all_ips = parse_bool(value).ok_or_else(|| bad("true or false"))?
            }
            "quorum.auth.enabled" => {
                quorum.auth_disabled = !parse_bool(value).ok_or_else(|| bad("true or false"))?
            }
            "quorum.auth.secret" => {
                if value.len() < MIN_SECRET_LEN {
                    return Err(ConfigError::Value {
                        line,
                        key: key.to_owned(),
                        value: "(redacted)".to_owned(),
                        reason: format!("the secret needs at least {MIN_SECRET_LEN} bytes"),
                    });
                }
                quorum.secret = Some((line, value.to_owned()));
            }
            "quorum.auth.secretFile" => {
                if value.is_empty() {
                    return Err(bad("a file path"));
                }
                quorum.secret_file = Some((line, PathBuf::from(value)));
            }
            "quorum.auth.enableSasl"
            | "quorum.auth.learnerRequireSasl"
            | "quorum.auth.serverRequireSasl"
            | "sslQuorum" => {
                if parse_bool(value).ok_or_else(|| bad("true or false"))? {
                    return Err(ConfigError::Unsupported {
                        line,
                        key: key.to_owned(),
                        reason: "quorum peers authenticate with a shared secret \
                                 (quorum.auth.secret or quorum.auth.secretFile), not SASL or TLS"
                            .to_owned(),
                    });
                }
                warnings.push(format!("line {line}: {key} is accepted but has no effect"));
            }
            "dynamicConfigFile" => return Err(ConfigError::Unsupported {
                line,
                key: key.to_owned(),
                reason:
                    "dynamic reconfiguration is not supported; put the server.N lines in zoo.cfg"
                        .to_owned(),
            }),
            // Client security this server does not have: refused rather than ignored, which
            // would serve in plain text, or without the authentication the operator required.
            "secureClientPort" | "secureClientPortAddress" | "requireClientAuthScheme" => {
                return Err(ConfigError::Unsupported {
                    line,
                    key: key.to_owned(),
                    reason: "client TLS and client authentication requirements are not \
                             supported; clients connect in plain text to clientPort"
                        .to_owned(),
                })
            }
            "enforce.auth.enabled" => {
                if parse_bool(value).ok_or_else(|| bad("true or false"))? {
                    return Err(ConfigError::Unsupported {
                        line,
                        key: key.to_owned(),
                        reason: "enforcing client authentication is not supported".to_owned(),
                    });
                }
            }
            _ if key.starts_with("authProvider.") => {
                return Err(ConfigError::Unsupported {
                    line,
                    key: key.to_owned(),
                    reason: "authentication providers are built in: digest and ip (SASL, \
                             x509 and custom providers are not supported)"
                        .to_owned(),
                })
            }
            _ if key.starts_with("group.") || key.starts_with("weight.") => {
                return Err(ConfigError::Unsupported {
                    line,
                    key: key.to_owned(),
                    reason:
                        "hierarchical quorums are not supported; every participant has one vote"
                            .to_owned(),
                })
            }
            "admin.enableServer"
            | "admin.serverPort"
            | "preAllocSize"
            | "globalOutstandingLimit"
            | "reconfigEnabled"
            | "syncEnabled"
            | "cnxTimeout"
            | "connectToLearnerMasterLimit"
            | "observerMasterPort"
            | "electionPortBindRetry"
            | "quorum.cnxn.threads.size"
            | "quorum.auth.kerberos.servicePrincipal"
            | "quorum.auth.learner.saslLoginContext"
            | "quorum.auth.server.saslLoginContext" => {
                warnings.push(format!("line {line}: {key} is accepted but has no effect"));
            }
            _ => warnings.push(format!("line {line}: unknown key {key} ignored")),
        }
    }
    if !data_dir_set {
        return Err(ConfigError::Missing("dataDir"));
    }
    config.quorum = resolve_quorum(quorum, &mut config, &mut warnings)?;
    // As Apache, after the defaults: a minimum above the (default) maximum is an error, not
    // a silently raised maximum.
    let (min, max) = (
        config.min_session_timeout(),
        config.configured_max_session_timeout(),
    );
    if min > max {
        return Err(ConfigError::Value {
            line: 0,
            key: "minSessionTimeout".into(),
            value: min.to_string(),
            reason: format!("must not exceed maxSessionTimeout ({max})"),
        });
    }
    Ok((config, warnings))
}

/// A session-timeout value: milliseconds, or -1 for the default (`Some(None)`).
fn session_timeout(value: &str) -> Option<Option<i32>> {
    match value.parse::<i32>().ok()? {
        -1 => Some(None),
        ms if ms >= 0 => Some(Some(ms)),
        _ => None,
    }
}

/// Decides between standalone and distributed as Apache's `QuorumPeerConfig.parseDynamicConfig`
/// and `isDistributed` do, then reads `myid` and the secret and checks the ensemble keys
/// (`setupMyId`, `setupClientPort`, `setupPeerType`, `checkValidity`).
fn resolve_quorum(
    mut keys: QuorumKeys,
    config: &mut ServerConfig,
    warnings: &mut Vec<String>,
) -> Result<Option<QuorumConfig>, ConfigError> {
    let voters = keys.servers.values().filter(|(_, s)| s.is_voter()).count();
    let observers = keys.servers.len() - voters;
    if voters == 0 {
        if keys.standalone_disabled {
            return Err(ConfigError::InvalidQuorum(
                "standaloneEnabled=false needs at least one participant server.N line".into(),
            ));
        }
        if observers > 0 {
            return Err(ConfigError::InvalidQuorum(
                "observers without participants".into(),
            ));
        }
        return Ok(None);
    }
    if voters == 1 && !keys.standalone_disabled {
        if observers > 0 {
            return Err(ConfigError::InvalidQuorum(
                "observers with a single participant: set standaloneEnabled=false for an ensemble of one voter"
                    .into(),
            ));
        }
        warnings.push(
            "only one server.N line: running standalone and ignoring it (set standaloneEnabled=false for an ensemble of one)"
                .into(),
        );
        return Ok(None);
    }
    if voters == 2 {
        warnings
            .push("no server failure will be tolerated: you need at least 3 participants".into());
    } else if voters % 2 == 0 {
        warnings.push(format!(
            "{voters} participants tolerate no more failures than {}: consider an odd number",
            voters - 1
        ));
    }

    let init_limit = keys.init_limit.ok_or(ConfigError::Missing("initLimit"))?;
    let sync_limit = keys.sync_limit.ok_or(ConfigError::Missing("syncLimit"))?;

    let max_id = if config.extended_types {
        MAX_EXTENDED_SERVER_ID
    } else {
        MAX_SERVER_ID
    };
    if let Some((line, server)) = keys.servers.values().find(|(_, s)| s.id > max_id) {
        return Err(ConfigError::Value {
            line: *line,
            key: format!("server.{}", server.id),
            value: server.to_string(),
            reason: format!(
                "server ids must be at most {max_id} when extendedTypesEnabled (TTL nodes) is on"
            ),
        });
    }
    check_distinct_addresses(&keys.servers)?;

    let my_id = read_myid(&config.data_dir, max_id)?.ok_or_else(|| ConfigError::MyIdMissing {
        path: config.data_dir.join("myid").display().to_string(),
    })?;
    let servers: BTreeMap<ServerId, QuorumServer> = std::mem::take(&mut keys.servers)
        .into_iter()
        .map(|(id, (_, server))| (id, server))
        .collect();
    let Some(me) = servers.get(&my_id) else {
        return Err(ConfigError::MyIdNotInServers {
            my_id,
            servers: servers.keys().copied().collect(),
        });
    };

    if let Some(peer_type) = keys.peer_type {
        if peer_type != me.role {
            warnings.push(format!(
                "peerType={peer_type} but server.{my_id} is a {}: the server list wins",
                me.role
            ));
        }
    }
    if let Some(client) = &me.client_addr {
        apply_client_addr(
            my_id,
            client,
            keys.client_port_set,
            keys.client_address_set,
            config,
        )?;
    }

    let secret = load_secret(&keys)?;
    if secret.is_none() {
        warnings.push(
            "quorum.auth.enabled=false: quorum peers are not authenticated (CVE-2023-44981); \
             anyone who can reach the quorum and election ports can join the ensemble"
                .into(),
        );
    }
    Ok(Some(QuorumConfig {
        my_id,
        servers,
        init_limit,
        sync_limit,
        listen_on_all_ips: keys.listen_on_all_ips,
        secret,
    }))
}

/// No two servers share a quorum or election address.
fn check_distinct_addresses(
    servers: &BTreeMap<ServerId, (usize, QuorumServer)>,
) -> Result<(), ConfigError> {
    let mut seen = BTreeMap::new();
    for (_, server) in servers.values() {
        for addr in [&server.quorum_addr, &server.election_addr] {
            if let Some(other) = seen.insert(addr.clone(), server.id) {
                return Err(ConfigError::InvalidQuorum(format!(
                    "server.{other} and server.{} both use {addr}",
                    server.id
                )));
            }
        }
    }
    Ok(())
}

/// The client address from this server's `server.N` line replaces `clientPort` /
/// `clientPortAddress`, which must agree with it when given (Apache `setupClientPort`).
fn apply_client_addr(
    my_id: ServerId,
    client: &zk_proto::HostPort,
    client_port_set: bool,
    client_address_set: bool,
    config: &mut ServerConfig,
) -> Result<(), ConfigError> {
    let ip = resolve_ip(&client.host).ok_or_else(|| {
        ConfigError::InvalidQuorum(format!(
            "the client address of server.{my_id}, {client}, does not resolve"
        ))
    })?;
    let static_addr = config.client_port_address;
    let conflicts = client_port_set
        && (config.client_port != client.port
            || (client_address_set && !static_addr.is_unspecified() && static_addr != ip));
    if conflicts {
        return Err(ConfigError::InvalidQuorum(format!(
            "clientPort/clientPortAddress ({static_addr}, port {}) differ from the client address of server.{my_id} ({client})",
            config.client_port
        )));
    }
    config.client_port = client.port;
    config.client_port_address = ip;
    Ok(())
}

/// The quorum peer secret from `quorum.auth.secret` or `quorum.auth.secretFile` (whose content
/// is trimmed of surrounding whitespace); required unless `quorum.auth.enabled=false`.
fn load_secret(keys: &QuorumKeys) -> Result<Option<QuorumSecret>, ConfigError> {
    let bytes = match (&keys.secret, &keys.secret_file) {
        (Some((line, _)), Some(_)) => {
            return Err(ConfigError::Value {
                line: *line,
                key: "quorum.auth.secret".into(),
                value: "(redacted)".into(),
                reason: "give quorum.auth.secret or quorum.auth.secretFile, not both".into(),
            })
        }
        (Some((_, secret)), None) => secret.as_bytes().to_vec(),
        (None, Some((line, path))) => read_secret_file(*line, path)?,
        (None, None) if keys.auth_disabled => return Ok(None),
        (None, None) => {
            return Err(ConfigError::Missing(
                "quorum.auth.secret or quorum.auth.secretFile (or quorum.auth.enabled=false)",
            ))
        }
    };
    if keys.auth_disabled {
        return Err(ConfigError::InvalidQuorum(
            "quorum.auth.enabled=false together with a quorum secret".into(),
        ));
    }
    // The inline secret's length was checked on its line.
    Ok(QuorumSecret::new(bytes))
}

fn read_secret_file(line: usize, path: &Path) -> Result<Vec<u8>, ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let trimmed = bytes.trim_ascii();
    if trimmed.len() < MIN_SECRET_LEN {
        return Err(ConfigError::Value {
            line,
            key: "quorum.auth.secretFile".into(),
            value: path.display().to_string(),
            reason: format!("the secret in the file needs at least {MIN_SECRET_LEN} bytes"),
        });
    }
    Ok(trimmed.to_vec())
}

/// An IP address, or the address a host name resolves to as Apache's
/// `InetAddress.getByName` picks it: IPv4 first (Java's default `preferIPv6Addresses=false`),
/// so `localhost` is 127.0.0.1 even where the resolver lists `::1` first.
fn resolve_ip(host: &str) -> Option<IpAddr> {
    use std::net::ToSocketAddrs;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse() {
        return Some(ip);
    }
    let addrs: Vec<IpAddr> = (host, 0)
        .to_socket_addrs()
        .ok()?
        .map(|addr| addr.ip())
        .collect();
    addrs
        .iter()
        .find(|ip| ip.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
}

/// A `jute.maxbuffer` value: decimal or `0x` hexadecimal, 1 KiB to [`MAX_JUTE_MAXBUFFER`].
fn jute_max_buffer(value: &str) -> Option<usize> {
    let n = match value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        Some(hex) => usize::from_str_radix(hex, 16).ok()?,
        None => value.parse().ok()?,
    };
    (1024..=MAX_JUTE_MAXBUFFER).contains(&n).then_some(n)
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" => Some(true),
        "false" | "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_apache_keys() {
        let text = "# comment\ntickTime=2000\ndataDir=/tmp/zk\nclientPort=2191\nclientPortAddress=127.0.0.1\n\
                    maxClientCnxns=0\nsnapCount=1000\nautopurge.snapRetainCount=5\nautopurge.purgeInterval=1\n\
                    4lw.commands.whitelist=ruok, srvr,mntr\nextendedTypesEnabled=true\nadmin.enableServer=false\nfoo=bar\n";
        let (config, warnings) = parse_zoo_cfg(text).unwrap();
        assert_eq!(config.tick_time_ms, 2000);
        assert_eq!(config.client_port, 2191);
        assert_eq!(config.max_client_cnxns, 0);
        assert_eq!(config.snap_count, 1000);
        assert_eq!(config.snap_retain_count, 5);
        assert!(config.four_letter_words.allows("mntr"));
        assert!(!config.four_letter_words.allows("dump"));
        assert!(config.extended_types);
        assert_eq!(config.min_session_timeout(), 4000);
        assert_eq!(config.max_session_timeout(), 40_000);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[1].contains("foo"));
    }

    /// -1 means the default, as in Apache; a minimum above the (default) maximum is refused.
    #[test]
    fn session_timeout_bounds_follow_apache() {
        let (config, _) =
            parse_zoo_cfg("dataDir=/x\ntickTime=100\nminSessionTimeout=-1\nmaxSessionTimeout=-1")
                .unwrap();
        assert_eq!(config.min_session_timeout(), 200);
        assert_eq!(config.max_session_timeout(), 2000);
        let err = parse_zoo_cfg("dataDir=/x\ntickTime=100\nminSessionTimeout=5000")
            .unwrap_err()
            .to_string();
        assert!(err.contains("maxSessionTimeout"), "{err}");
        assert!(parse_zoo_cfg("dataDir=/x\nmaxSessionTimeout=-5").is_err());
    }

    /// Read as Java's Properties.load reads it, as Apache does: other separators, `!`
    /// comments, continued lines; a key without a value is an (unknown) key, not an error.
    #[test]
    fn the_java_properties_syntax_is_accepted() {
        let text = "! comment\ntickTime: 100\ndataDir /tmp/zk\nclientPort = 2191\n\
                    4lw.commands.whitelist=ruok,\\\n    mntr\nnonsense\n";
        let (config, warnings) = parse_zoo_cfg(text).unwrap();
        assert_eq!(config.tick_time_ms, 100);
        assert_eq!(config.data_dir, PathBuf::from("/tmp/zk"));
        assert_eq!(config.client_port, 2191);
        assert!(config.four_letter_words.allows("mntr"));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("line 7: unknown key nonsense"),
            "{warnings:?}"
        );
    }

    /// `jute.maxbuffer` as Java's Integer.getInteger reads it (decimal or 0x hex), bounded.
    #[test]
    fn jute_maxbuffer_is_read_in_decimal_or_hex() {
        let (config, _) = parse_zoo_cfg("dataDir=/x").unwrap();
        assert_eq!(config.jute_max_buffer, 0xfffff);
        let (config, _) = parse_zoo_cfg("dataDir=/x\njute.maxbuffer=4194304").unwrap();
        assert_eq!(config.jute_max_buffer, 4 << 20);
        let (config, warnings) = parse_zoo_cfg("dataDir=/x\njute.maxbuffer=0x1fffff").unwrap();
        assert_eq!(config.jute_max_buffer, 0x1fffff);
        assert!(warnings.is_empty(), "{warnings:?}");
        for bad in ["100", "0x", "-1", "1M", "134217728"] {
            let result = parse_zoo_cfg(&format!("dataDir=/x\njute.maxbuffer={bad}"));
            assert!(
                matches!(result, Err(ConfigError::Value { .. })),
                "{bad}: {result:?}"
            );
        }
    }

    /// Client security keys are refused, not ignored (which would serve in plain text).
    #[test]
    fn client_security_keys_are_refused() {
        for line in [
            "secureClientPort=2281",
            "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider",
            "requireClientAuthScheme=sasl",
            "enforce.auth.enabled=true",
        ] {
            let result = parse_zoo_cfg(&format!("dataDir=/x\n{line}"));
            assert!(
                matches!(result, Err(ConfigError::Unsupported { .. })),
                "{line}: {result:?}"
            );
        }
        assert!(parse_zoo_cfg("dataDir=/x\nenforce.auth.enabled=false").is_ok());
    }

    #[test]
    fn bad_values_are_errors() {
        for text in [
            "dataDir=/x\ntickTime=abc",
            "dataDir=/x\nclientPort=70000",
            "tickTime=2000",
            "dataDir=/x\nclientPortAddress=\\u12",
        ] {
            assert!(parse_zoo_cfg(text).is_err(), "{text}");
        }
        let err = parse_zoo_cfg("dataDir=/x\nclientPort=x")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("clientPort") && err.contains("line 2"),
            "{err}"
        );
    }

    mod ensemble {
        use super::super::*;
        use crate::config::quorum::LearnerType;

        const SECRET: &str = "quorum.auth.secret=0123456789abcdef0123\n";

        /// A data directory with `myid` (when given) and a zoo.cfg text using it.
        fn setup(myid: Option<&str>, body: &str) -> (tempfile::TempDir, String) {
            let dir = tempfile::tempdir().unwrap();
            if let Some(id) = myid {
                std::fs::write(dir.path().join("myid"), id).unwrap();
            }
            let text = format!("dataDir={}\n{body}", dir.path().display());
            (dir, text)
        }

        fn three(extra: &str) -> String {
            format!(
                "tickTime=2000\ninitLimit=10\nsyncLimit=5\n\
                 server.1=zk1:2888:3888\nserver.2=zk2:2888:3888\nserver.3=zk3:2888:3888\n\
                 server.4=zk4:2888:3888:observer\n{SECRET}{extra}"
            )
        }

        fn parse(
            myid: Option<&str>,
            body: &str,
        ) -> Result<(ServerConfig, Vec<String>), ConfigError> {
            let (_dir, text) = setup(myid, body);
            parse_zoo_cfg(&text)
        }

        #[test]
        fn a_three_voter_ensemble_with_an_observer() {
            let (config, warnings) = parse(Some("2\n"), &three("electionAlg=3\n")).unwrap();
            let quorum = config.quorum.expect("distributed");
            assert_eq!(quorum.my_id, 2);
            assert_eq!((quorum.init_limit, quorum.sync_limit), (10, 5));
            assert_eq!(quorum.voters().map(|s| s.id).collect::<Vec<_>>(), [1, 2, 3]);
            assert_eq!(quorum.observers().map(|s| s.id).collect::<Vec<_>>(), [4]);
            assert!(quorum.is_quorum(&[1, 3]));
            assert!(!quorum.is_quorum(&[3, 4]));
            assert_eq!(
                quorum.member(3).map(|s| s.election_addr.to_string()),
                Some("zk3:3888".into())
            );
            assert_eq!(quorum.secret.as_ref().map(|s| s.as_bytes().len()), Some(20));
            assert!(!quorum.listen_on_all_ips);
            assert!(warnings.is_empty(), "{warnings:?}");
        }

        #[test]
        fn standalone_unless_two_voters_or_standalone_disabled() {
            let (config, _) = parse(None, "clientPort=2181\n").unwrap();
            assert!(config.quorum.is_none());
            // One participant line: Apache ignores it and runs standalone.
            let (config, warnings) = parse(None, "server.1=zk1:2888:3888\n").unwrap();
            assert!(config.quorum.is_none());
            assert!(
                warnings.iter().any(|w| w.contains("standalone")),
                "{warnings:?}"
            );
            // Observers without a quorum are invalid.
            for body in [
                "server.1=zk1:2888:3888\nserver.2=zk2:2888:3888:observer\n",
                "server.2=zk2:2888:3888:observer\n",
            ] {
                assert!(
                    matches!(parse(None, body), Err(ConfigError::InvalidQuorum(_))),
                    "{body}"
                );
            }
            // standaloneEnabled=false: an ensemble of one.
            let body = format!(
                "standaloneEnabled=false\ninitLimit=5\nsyncLimit=2\nserver.1=zk1:2888:3888\n{SECRET}"
            );
            let (config, _) = parse(Some("1"), &body).unwrap();
            let quorum = config.quorum.unwrap();
            assert_eq!(quorum.quorum_size(), 1);
            assert!(quorum.is_quorum(&[1]));
            assert!(matches!(
                parse(None, "standaloneEnabled=false\n"),
                Err(ConfigError::InvalidQuorum(_))
            ));
        }

        #[test]
        fn myid_is_required_valid_and_listed() {
            let err = parse(None, &three("")).unwrap_err();
            assert!(matches!(err, ConfigError::MyIdMissing { .. }), "{err}");
            assert!(err.to_string().contains("myid"), "{err}");
            for bad in ["x", "0", "256", ""] {
                let err = parse(Some(bad), &three("")).unwrap_err();
                assert!(
                    matches!(err, ConfigError::MyIdInvalid { .. }),
                    "{bad}: {err}"
                );
            }
            let err = parse(Some("9"), &three("")).unwrap_err();
            assert!(
                matches!(err, ConfigError::MyIdNotInServers { my_id: 9, .. }),
                "{err}"
            );
            // An observer's own myid is fine.
            let (config, _) = parse(Some(" 4 \n"), &three("")).unwrap();
            assert_eq!(config.quorum.unwrap().my_role(), LearnerType::Observer);
        }

        #[test]
        fn server_ids_fit_the_session_id_byte() {
            for key in [
                "server.0",
                "server.256",
                "server.x",
                "server.1.5",
                "server.",
            ] {
                let body = format!("{key}=zk9:2888:3888\n");
                assert!(
                    matches!(parse(None, &body), Err(ConfigError::Value { .. })),
                    "{key}"
                );
            }
            let body =
                format!("initLimit=1\nsyncLimit=1\nserver.255=a:1:2\nserver.1=b:1:2\n{SECRET}");
            assert!(parse(Some("255"), &body).is_ok());
            // With TTL nodes the top byte 0xFF is reserved (EphemeralType.MAX_EXTENDED_SERVER_ID).
            let extended = format!("extendedTypesEnabled=true\n{body}");
            let err = parse(Some("1"), &extended).unwrap_err();
            assert!(err.to_string().contains("254"), "{err}");
        }

        #[test]
        fn limits_and_election_algorithm() {
            let body = "server.1=zk1:2888:3888\nserver.2=zk2:2888:3888\nsyncLimit=5\n";
            assert!(matches!(
                parse(Some("1"), body),
                Err(ConfigError::Missing("initLimit"))
            ));
            for line in [
                "initLimit=0",
                "syncLimit=-1",
                "electionAlg=1",
                "electionAlg=x",
                "peerType=leader",
            ] {
                let err = parse(Some("1"), &three(&format!("{line}\n"))).unwrap_err();
                assert!(matches!(err, ConfigError::Value { .. }), "{line}: {err}");
            }
        }

        #[test]
        fn server_lines_are_checked() {
            for extra in [
                "server.1=zk9:2888:3888\n",
                "server.5=zk1:2888:3999\n",
                "server.5=zk5:2888\n",
            ] {
                assert!(parse(Some("1"), &three(extra)).is_err(), "{extra}");
            }
            let err = parse(Some("1"), &three("server.1=zk9:2888:3888\n")).unwrap_err();
            assert!(err.to_string().contains("already given on line 5"), "{err}");
            assert!(matches!(
                parse(Some("1"), &three("server.5=zk1:2888:3999\n")),
                Err(ConfigError::InvalidQuorum(_))
            ));
        }

        #[test]
        fn ipv6_hosts_and_the_client_part() {
            let body = format!(
                "initLimit=10\nsyncLimit=5\n\
                 server.1=[fd00::1]:2888:3888;2181\n\
                 server.2=[fd00::2]:2888:3888:participant;[fd00::2]:2182\n{SECRET}"
            );
            let (config, _) = parse(Some("2"), &body).unwrap();
            assert_eq!(config.client_port, 2182);
            assert_eq!(
                config.client_port_address,
                "fd00::2".parse::<IpAddr>().unwrap()
            );
            let quorum = config.quorum.unwrap();
            assert_eq!(
                quorum.member(1).unwrap().quorum_addr.to_string(),
                "[fd00::1]:2888"
            );
            // A bare client port listens on every address.
            let (config, _) = parse(Some("1"), &format!("clientPort=2181\n{body}")).unwrap();
            assert_eq!(config.client_port, 2181);
            assert!(config.client_port_address.is_unspecified());
            // clientPort contradicting the server line (QuorumPeerConfig.setupClientPort).
            let err = parse(Some("1"), &format!("clientPort=2999\n{body}")).unwrap_err();
            assert!(matches!(err, ConfigError::InvalidQuorum(_)), "{err}");
            let err = parse(
                Some("2"),
                &format!("clientPort=2182\nclientPortAddress=10.1.1.1\n{body}"),
            )
            .unwrap_err();
            assert!(matches!(err, ConfigError::InvalidQuorum(_)), "{err}");
        }

        /// Host names resolve, as Apache's InetAddress.getByName does.
        #[test]
        fn host_names_in_client_addresses() {
            let body = format!(
                "initLimit=10\nsyncLimit=5\n\
                 server.1=localhost:2888:3888;localhost:2181\n\
                 server.2=localhost:2889:3889;localhost:2182\n{SECRET}"
            );
            let localhost = IpAddr::from([127, 0, 0, 1]);
            let (config, _) = parse(Some("2"), &body).unwrap();
            assert_eq!(config.client_port, 2182);
            assert_eq!(config.client_port_address, localhost);
            let (config, _) = parse(None, "clientPortAddress=localhost\n").unwrap();
            assert_eq!(config.client_port_address, localhost);
        }

        #[test]
        fn peer_type_disagreeing_with_the_list_is_a_warning() {
            let (config, warnings) = parse(Some("1"), &three("peerType=observer\n")).unwrap();
            assert_eq!(config.quorum.unwrap().my_role(), LearnerType::Participant);
            assert!(
                warnings.iter().any(|w| w.contains("peerType")),
                "{warnings:?}"
            );
        }

        #[test]
        fn the_quorum_secret() {
            let without = three("").replace(SECRET, "");
            assert!(matches!(
                parse(Some("1"), &without),
                Err(ConfigError::Missing(_))
            ));
            let err =
                parse(Some("1"), &format!("{without}quorum.auth.secret=short\n")).unwrap_err();
            assert!(
                !err.to_string().contains("short"),
                "the secret leaks: {err}"
            );
            // Opting out is possible but warned about.
            let (config, warnings) =
                parse(Some("1"), &format!("{without}quorum.auth.enabled=false\n")).unwrap();
            assert!(config.quorum.unwrap().secret.is_none());
            assert!(
                warnings.iter().any(|w| w.contains("CVE-2023-44981")),
                "{warnings:?}"
            );
            // From a file, trimmed.
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("secret");
            std::fs::write(&file, "  abcdefghijklmnopqrstuvwxyz\n").unwrap();
            let body = format!("{without}quorum.auth.secretFile={}\n", file.display());
            let (config, _) = parse(Some("1"), &body).unwrap();
            assert_eq!(
                config.quorum.unwrap().secret.unwrap().as_bytes(),
                b"abcdefghijklmnopqrstuvwxyz"
            );
            std::fs::write(&file, "tiny\n").unwrap();
            assert!(matches!(
                parse(Some("1"), &body),
                Err(ConfigError::Value { .. })
            ));
            std::fs::remove_file(&file).unwrap();
            assert!(matches!(
                parse(Some("1"), &body),
                Err(ConfigError::Read { .. })
            ));
            // Both forms at once.
            let both = format!("{}quorum.auth.secretFile={}\n", three(""), file.display());
            assert!(parse(Some("1"), &both).is_err());
        }

        #[test]
        fn apache_features_we_refuse() {
            for line in [
                "quorum.auth.enableSasl=true",
                "sslQuorum=true",
                "dynamicConfigFile=/etc/zk/zoo.cfg.dynamic",
                "group.1=1:2:3",
                "weight.1=2",
            ] {
                let err = parse(Some("1"), &three(&format!("{line}\n"))).unwrap_err();
                assert!(
                    matches!(err, ConfigError::Unsupported { .. }),
                    "{line}: {err}"
                );
            }
            let (_, warnings) = parse(
                Some("1"),
                &three("quorum.auth.enableSasl=false\nreconfigEnabled=true\n"),
            )
            .unwrap();
            assert_eq!(warnings.len(), 2, "{warnings:?}");
            let (config, _) = parse(Some("1"), &three("quorumListenOnAllIPs=true\n")).unwrap();
            assert!(config.quorum.unwrap().listen_on_all_ips);
        }
    }
}
