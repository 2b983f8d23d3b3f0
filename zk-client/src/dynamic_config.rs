//! The ensemble's dynamic configuration as `/zookeeper/config` holds it (`server.N=…` lines
//! and `version=…`), read for its members' client addresses.

use crate::connect_string::HostPort;

/// One `server.N` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    /// The host of the quorum address (before the ports).
    pub(crate) quorum_host: String,
    /// The client address after `;`, if any (`0.0.0.0` for a bare port).
    pub(crate) client: Option<HostPort>,
}

/// A parsed configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DynamicConfig {
    /// The `version=` value (hex, as written), empty if none.
    pub(crate) version: String,
    /// The members, in the order written.
    pub(crate) members: Vec<Member>,
}

/// Parses the text of `/zookeeper/config`; lines it does not understand are skipped.
pub(crate) fn parse(text: &str) -> DynamicConfig {
    let mut config = DynamicConfig::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if key == "version" {
            value.clone_into(&mut config.version);
        } else if key.starts_with("server.") {
            let mut parts = value.splitn(2, ';');
            let server = parts.next().unwrap_or_default();
            let quorum_host = match server.strip_prefix('[') {
                Some(rest) => rest.split(']').next().unwrap_or_default(),
                None => server.split(':').next().unwrap_or_default(),
            };
            let client = parts
                .next()
                .map(|c| c.split(';').next().unwrap_or_default().trim())
                .filter(|c| !c.is_empty())
                .and_then(parse_client);
            config.members.push(Member {
                quorum_host: quorum_host.to_owned(),
                client,
            });
        }
    }
    config
}

/// `[host:]port`, an IPv6 host in brackets.
fn parse_client(text: &str) -> Option<HostPort> {
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (host.trim_start_matches('[').trim_end_matches(']'), port),
        None => ("0.0.0.0", text),
    };
    Some(HostPort {
        host: host.to_owned(),
        port: port.trim().parse().ok()?,
    })
}

impl DynamicConfig {
    /// Where clients connect: each member's client address, with the member's quorum host
    /// in place of a wildcard address (as Curator's `EnsembleTracker`); members without a
    /// client address are left out.
    pub(crate) fn client_servers(&self) -> Vec<HostPort> {
        self.members
            .iter()
            .filter_map(|m| {
                let client = m.client.as_ref()?;
                let host = if matches!(client.host.as_str(), "0.0.0.0" | "::" | "0:0:0:0:0:0:0:0") {
                    m.quorum_host.clone()
                } else {
                    client.host.clone()
                };
                Some(HostPort {
                    host,
                    port: client.port,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_and_their_client_addresses() {
        let config = parse(
            "server.1=10.0.0.1:2888:3888:participant;10.0.0.1:2181\n\
             server.2=[fd00::2]:2888:3888:participant;[fd00::2]:2182\n\
             server.3=zk3:2888:3888:observer;2183\n\
             server.4=zk4:2888:3888:participant\n\
             version=100000000",
        );
        assert_eq!(config.version, "100000000");
        assert_eq!(config.members.len(), 4);
        assert_eq!(config.members[1].quorum_host, "fd00::2");
        assert_eq!(
            config.members[2].client,
            Some(HostPort {
                host: "0.0.0.0".to_owned(),
                port: 2183
            })
        );
        assert_eq!(config.members[3].client, None);
        let servers: Vec<String> = config
            .client_servers()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(servers, ["10.0.0.1:2181", "[fd00::2]:2182", "zk3:2183"]);
        assert_eq!(parse(""), DynamicConfig::default());
        assert!(parse("server.1=h:1:2;h:notaport")
            .client_servers()
            .is_empty());
    }
}
