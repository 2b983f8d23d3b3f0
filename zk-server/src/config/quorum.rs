//! The ensemble part of the configuration: the `server.N` list, this server's id (`myid`), the
//! ZAB time limits and the quorum peer secret.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use zk_proto::{split_host_and_ports, HostPort};

use super::ConfigError;

/// A server id (`server.N`, `myid`). Apache uses a Java `long`; ours are limited to
/// `1..=`[`MAX_SERVER_ID`] because the id is the top byte of every session id the server
/// creates (`SessionTrackerImpl.initializeNextSessionId`: `id << 56`).
pub type ServerId = u64;

/// The largest server id: 255, the largest value of a session id's top byte (Apache's
/// documented range is 1–255).
pub const MAX_SERVER_ID: ServerId = 255;

/// The largest server id when TTL nodes are enabled (`extendedTypesEnabled`): 254, because a
/// TTL node's ephemeralOwner has 0xFF in its top byte (Apache `EphemeralType.MAX_EXTENDED_SERVER_ID`,
/// enforced by `EphemeralType.validateServerId`).
pub const MAX_EXTENDED_SERVER_ID: ServerId = 254;

/// The least length of the quorum peer secret, bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// A server's role in the ensemble (Apache `QuorumPeer.LearnerType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LearnerType {
    /// A voting member: it votes in elections and acks proposals.
    #[default]
    Participant,
    /// A non-voting learner: it only receives committed txns.
    Observer,
}

impl LearnerType {
    /// Parses `participant` / `observer`, ignoring case and surrounding spaces, as Apache's
    /// `QuorumServer.getType`.
    pub fn parse(text: &str) -> Option<LearnerType> {
        match text.trim().to_ascii_lowercase().as_str() {
            "participant" => Some(LearnerType::Participant),
            "observer" => Some(LearnerType::Observer),
            _ => None,
        }
    }
}

impl fmt::Display for LearnerType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LearnerType::Participant => "participant",
            LearnerType::Observer => "observer",
        })
    }
}

/// One `server.N` line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QuorumServer {
    /// `N`.
    pub id: ServerId,
    /// Where learners connect to the leader (the first port, default 2888).
    pub quorum_addr: HostPort,
    /// Where peers connect for leader election (the second port, default 3888).
    pub election_addr: HostPort,
    /// Voter or observer.
    pub role: LearnerType,
    /// The client address after `;`, when given (`0.0.0.0:port` for a bare port).
    pub client_addr: Option<HostPort>,
}

impl QuorumServer {
    /// Parses the value of a `server.N` line, with Apache's grammar
    /// (`QuorumPeer.QuorumServer.initializeWithAddressString`):
    ///
    /// ```text
    /// host:quorumPort:electionPort[:participant|:observer][;[clientHost:]clientPort]
    /// ```
    ///
    /// An IPv6 host is written in brackets (`[fd00::1]:2888:3888`), also in the client part.
    /// The quorum and election ports must differ. Not supported (errors): several `|`-separated
    /// addresses (Apache too refuses them unless `zookeeper.multiAddress.enabled`), and a third
    /// `;` part (a TLS secure client port).
    pub fn parse(id: ServerId, spec: &str) -> Result<QuorumServer, String> {
        let wrong_format = || {
            format!(
                "{spec:?} does not have the form host:port:port[:participant|:observer][;[host:]clientPort]"
            )
        };
        // Java's String.split drops trailing empty parts: "a:1:2;" is "a:1:2".
        let mut parts: Vec<&str> = spec.split(';').collect();
        while parts.len() > 1 && parts.last().is_some_and(|p| p.is_empty()) {
            parts.pop();
        }
        let (server_part, client_part) = match parts.as_slice() {
            [server] => (*server, None),
            [server, client] => (*server, Some(*client).filter(|c| !c.is_empty())),
            [_, _, _] => return Err(
                "a secure client port (third ';' part) is not supported: this server has no TLS"
                    .into(),
            ),
            _ => return Err(wrong_format()),
        };
        if server_part.contains('|') {
            return Err("several '|'-separated addresses (multiAddress) are not supported".into());
        }
        let fields = split_host_and_ports(server_part.trim()).ok_or_else(wrong_format)?;
        let (host, quorum_port, election_port, role) = match fields.as_slice() {
            [host, q, e] => (*host, *q, *e, LearnerType::Participant),
            [host, q, e, role] => (
                *host,
                *q,
                *e,
                LearnerType::parse(role)
                    .ok_or_else(|| format!("unrecognised peer type {role:?}"))?,
            ),
            _ => return Err(wrong_format()),
        };
        if host.is_empty() {
            return Err(wrong_format());
        }
        let port = |text: &str| -> Result<u16, String> {
            text.trim()
                .parse()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{text:?} is not a port number (1-65535)"))
        };
        let (quorum_port, election_port) = (port(quorum_port)?, port(election_port)?);
        if quorum_port == election_port {
            return Err(format!(
                "the quorum and election ports must be different (both are {quorum_port})"
            ));
        }
        let client_addr = match client_part {
            None => None,
            Some(client) => Some(match split_host_and_ports(client.trim()).as_deref() {
                Some([port_text]) => HostPort::new("0.0.0.0", port(port_text)?),
                Some([host, port_text]) if !host.is_empty() => {
                    HostPort::new(*host, port(port_text)?)
                }
                _ => return Err(wrong_format()),
            }),
        };
        Ok(QuorumServer {
            id,
            quorum_addr: HostPort::new(host, quorum_port),
            election_addr: HostPort::new(host, election_port),
            role,
            client_addr,
        })
    }

    /// Whether the server votes.
    pub fn is_voter(&self) -> bool {
        self.role == LearnerType::Participant
    }
}

impl fmt::Display for QuorumServer {
    /// The `server.N` value in Apache's dynamic-config form (`QuorumServer.toString`):
    /// `host:port:port:role[;clientHost:clientPort]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.quorum_addr, self.election_addr.port, self.role
        )?;
        if let Some(client) = &self.client_addr {
            write!(f, ";{client}")?;
        }
        Ok(())
    }
}

/// The shared secret quorum peers prove they hold before they may take part in election or
/// replication (`quorum.auth.secret` / `quorum.auth.secretFile`). Its `Debug` form never shows
/// the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct QuorumSecret(Vec<u8>);

impl QuorumSecret {
    /// A secret of at least [`MIN_SECRET_LEN`] bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Option<QuorumSecret> {
        let bytes = bytes.into();
        (bytes.len() >= MIN_SECRET_LEN).then_some(QuorumSecret(bytes))
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for QuorumSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QuorumSecret({} bytes, redacted)", self.0.len())
    }
}

/// How this server takes part in a ZAB ensemble. Present in [`super::ServerConfig::quorum`]
/// only when the configuration is distributed (see [`super::parse_zoo_cfg`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumConfig {
    /// This server's id (the `myid` file).
    pub my_id: ServerId,
    /// Every `server.N` line, by id; `my_id` is one of them.
    pub servers: BTreeMap<ServerId, QuorumServer>,
    /// Ticks a learner has to connect to and sync with the leader (`initLimit`).
    pub init_limit: u32,
    /// Ticks a learner may lag behind the leader before it is dropped (`syncLimit`).
    pub sync_limit: u32,
    /// Whether the quorum and election ports listen on every address rather than on the
    /// configured host (`quorumListenOnAllIPs`).
    pub listen_on_all_ips: bool,
    /// The peer authentication secret; `None` only when `quorum.auth.enabled=false`.
    pub secret: Option<QuorumSecret>,
}

impl QuorumConfig {
    /// The membership in Apache's dynamic-config form (`QuorumMaj.toString`), as
    /// `/zookeeper/config` shows it: a `server.N=…` line per member by id, then `version=0`
    /// (the version of a static configuration, in hex). Apache raises that version to the
    /// zxid of the first NEWLEADER (ZOOKEEPER-1783) and keeps it in a dynamic configuration
    /// file; without reconfig this server has no dynamic configuration, so it stays 0.
    pub fn dynamic_config(&self) -> String {
        let mut text = String::new();
        for (id, server) in &self.servers {
            text += &format!("server.{id}={server}\n");
        }
        text + "version=0"
    }

    /// The voting members, by id.
    pub fn voters(&self) -> impl Iterator<Item = &QuorumServer> + '_ {
        self.servers.values().filter(|s| s.is_voter())
    }

    /// The observers, by id.
    pub fn observers(&self) -> impl Iterator<Item = &QuorumServer> + '_ {
        self.servers.values().filter(|s| !s.is_voter())
    }

    /// The member with id `sid`, voter or observer.
    pub fn member(&self, sid: ServerId) -> Option<&QuorumServer> {
        self.servers.get(&sid)
    }

    /// This server's own line.
    pub fn me(&self) -> Option<&QuorumServer> {
        self.member(self.my_id)
    }

    /// This server's role (from the server list, as Apache's `setupPeerType`).
    pub fn my_role(&self) -> LearnerType {
        self.me().map_or(LearnerType::Participant, |s| s.role)
    }

    /// Whether `sid` is a voting member.
    pub fn is_voter(&self, sid: ServerId) -> bool {
        self.member(sid).is_some_and(QuorumServer::is_voter)
    }

    /// How many voters make a quorum: a strict majority, `voters / 2 + 1`.
    pub fn quorum_size(&self) -> usize {
        self.voters().count() / 2 + 1
    }

    /// Whether `sids` contain a quorum: more than half of the voters (Apache
    /// `QuorumMaj.containsQuorum`). Observers, unknown ids and duplicates do not count.
    pub fn is_quorum<'a>(&self, sids: impl IntoIterator<Item = &'a ServerId>) -> bool {
        let voters: BTreeSet<ServerId> = sids
            .into_iter()
            .copied()
            .filter(|sid| self.is_voter(*sid))
            .collect();
        voters.len() >= self.quorum_size()
    }

    /// The byte session ids created by this server start with (`my_id`, which the parser
    /// limits to [`MAX_SERVER_ID`]).
    pub fn session_id_byte(&self) -> u8 {
        u8::try_from(self.my_id).unwrap_or(u8::MAX)
    }
}

/// Parses the content of a `myid` file: the first line, surrounding whitespace trimmed, a
/// decimal id in `1..=max` (`max` is [`MAX_SERVER_ID`], or [`MAX_EXTENDED_SERVER_ID`] when TTL
/// nodes are enabled). `path` is only used in errors.
pub fn parse_myid(text: &str, max: ServerId, path: &Path) -> Result<ServerId, ConfigError> {
    let found = text.lines().next().unwrap_or("").trim();
    let invalid = |reason: String| ConfigError::MyIdInvalid {
        path: path.display().to_string(),
        found: found.chars().take(64).collect(),
        reason,
    };
    let id: ServerId = found
        .parse()
        .map_err(|_| invalid("not a decimal number".into()))?;
    if id == 0 || id > max {
        return Err(invalid(format!("server ids must be in 1..={max}")));
    }
    Ok(id)
}

/// Reads `<data_dir>/myid`: `None` when there is no such file.
pub fn read_myid(data_dir: &Path, max: ServerId) -> Result<Option<ServerId>, ConfigError> {
    let path = data_dir.join("myid");
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.display().to_string(),
                source,
            })
        }
    };
    parse_myid(&String::from_utf8_lossy(&bytes), max, &path).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(id: ServerId, spec: &str) -> QuorumServer {
        QuorumServer::parse(id, spec).unwrap()
    }

    #[test]
    fn server_specs_in_apache_grammar() {
        let s = server(1, "zk1:2888:3888");
        assert_eq!(s.quorum_addr, HostPort::new("zk1", 2888));
        assert_eq!(s.election_addr, HostPort::new("zk1", 3888));
        assert_eq!(s.role, LearnerType::Participant);
        assert_eq!(s.client_addr, None);
        assert_eq!(s.to_string(), "zk1:2888:3888:participant");

        let s = server(2, "10.0.0.2:2888:3888:OBSERVER;2181");
        assert_eq!(s.role, LearnerType::Observer);
        assert_eq!(s.client_addr, Some(HostPort::new("0.0.0.0", 2181)));

        let s = server(3, "[fd00::3]:2888:3888:participant;[fd00::3]:2181");
        assert_eq!(s.quorum_addr, HostPort::new("fd00::3", 2888));
        assert_eq!(s.client_addr, Some(HostPort::new("fd00::3", 2181)));
        assert_eq!(
            s.to_string(),
            "[fd00::3]:2888:3888:participant;[fd00::3]:2181"
        );

        let s = server(4, "zk4:2888:3888;127.0.0.1:2184");
        assert_eq!(s.client_addr, Some(HostPort::new("127.0.0.1", 2184)));
        assert_eq!(server(5, "zk5:1:2;").client_addr, None);
    }

    #[test]
    fn bad_server_specs() {
        for spec in [
            "zk1",
            "zk1:2888",
            "zk1:2888:3888:observer:x",
            "zk1:2888:3888:leader",
            "zk1:2888:2888",
            "zk1:0:3888",
            "zk1:70000:3888",
            ":2888:3888",
            "fd00::1:2888:3888",
            "[fd00::1:2888:3888",
            "zk1:2888:3888;x",
            "zk1:2888:3888;a:b:2181",
            "zk1:2888:3888;2181;2281",
            "zk1:2888:3888|zk1b:2888:3888",
            "zk1:2888:3888;1;2;3",
        ] {
            assert!(QuorumServer::parse(1, spec).is_err(), "{spec}");
        }
    }

    fn ensemble(roles: &[(ServerId, LearnerType)]) -> QuorumConfig {
        let servers = roles
            .iter()
            .map(|(id, role)| {
                let mut s = server(*id, &format!("zk{id}:2888:3888"));
                s.role = *role;
                (*id, s)
            })
            .collect();
        QuorumConfig {
            my_id: 1,
            servers,
            init_limit: 10,
            sync_limit: 5,
            listen_on_all_ips: false,
            secret: None,
        }
    }

    #[test]
    fn dynamic_config_text_as_apache_shows_it() {
        let mut config = ensemble(&[
            (1, LearnerType::Participant),
            (2, LearnerType::Participant),
            (3, LearnerType::Observer),
        ]);
        if let Some(s) = config.servers.get_mut(&2) {
            s.client_addr = Some(HostPort::new("10.0.0.2", 2181));
        }
        assert_eq!(
            config.dynamic_config(),
            "server.1=zk1:2888:3888:participant\n\
             server.2=zk2:2888:3888:participant;10.0.0.2:2181\n\
             server.3=zk3:2888:3888:observer\n\
             version=0"
        );
    }

    #[test]
    fn majority_of_voters() {
        use LearnerType::*;
        let q = ensemble(&[
            (1, Participant),
            (2, Participant),
            (3, Participant),
            (4, Observer),
            (5, Observer),
        ]);
        assert_eq!(q.voters().map(|s| s.id).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(q.observers().map(|s| s.id).collect::<Vec<_>>(), [4, 5]);
        assert_eq!(q.quorum_size(), 2);
        assert!(q.is_quorum(&[1, 3]));
        assert!(q.is_quorum(&BTreeSet::from([1, 2, 3])));
        assert!(!q.is_quorum(&[1]));
        assert!(!q.is_quorum(&[1, 4, 5]), "observers do not count");
        assert!(!q.is_quorum(&[1, 1]), "duplicates count once");
        assert!(!q.is_quorum(&[1, 9]), "unknown ids do not count");
        assert_eq!(q.member(4).map(|s| s.role), Some(Observer));
        assert_eq!(q.member(6), None);
        assert!(q.is_voter(2) && !q.is_voter(5));
        assert_eq!(q.my_role(), Participant);
        assert_eq!(q.session_id_byte(), 1);

        let even = ensemble(&[
            (1, Participant),
            (2, Participant),
            (3, Participant),
            (4, Participant),
        ]);
        assert_eq!(even.quorum_size(), 3);
        assert!(!even.is_quorum(&[1, 2]));
        assert!(even.is_quorum(&[1, 2, 4]));
    }

    #[test]
    fn myid_parsing() {
        let path = Path::new("/data/myid");
        assert_eq!(parse_myid("3", 255, path).unwrap(), 3);
        assert_eq!(parse_myid(" 17 \n", 255, path).unwrap(), 17);
        assert_eq!(parse_myid("255\nignored", 255, path).unwrap(), 255);
        for bad in ["", "0", "256", "-1", "abc", "1.0", "0x10"] {
            let err = parse_myid(bad, 255, path).unwrap_err();
            assert!(
                matches!(err, ConfigError::MyIdInvalid { .. }),
                "{bad}: {err}"
            );
            assert!(err.to_string().contains("/data/myid"), "{err}");
        }
        assert!(parse_myid("255", MAX_EXTENDED_SERVER_ID, path).is_err());
    }

    #[test]
    fn secrets_are_long_and_redacted() {
        assert!(QuorumSecret::new(b"short".to_vec()).is_none());
        let secret = QuorumSecret::new(b"0123456789abcdef".to_vec()).unwrap();
        assert_eq!(secret.as_bytes(), b"0123456789abcdef");
        assert!(!format!("{secret:?}").contains("0123"));
    }
}
