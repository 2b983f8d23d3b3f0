//! Connect strings: `host:port[,host:port…][/chroot]`.

use std::fmt;

use crate::error::{Error, Result};

/// ZooKeeper's default client port, used when a host has no port.
pub const DEFAULT_PORT: u16 = 2181;

/// One server address of a connect string, not yet resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// A host name or an IP address (IPv6 without brackets).
    pub host: String,
    /// The TCP port.
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A parsed connect string.
///
/// ```
/// use zk_client::ConnectString;
/// let cs: ConnectString = "zk1:2181,[::1]:2182,zk3/app/config".parse()?;
/// assert_eq!(cs.hosts().len(), 3);
/// assert_eq!(cs.hosts()[1].host, "::1");
/// assert_eq!(cs.hosts()[2].port, 2181);
/// assert_eq!(cs.chroot(), Some("/app/config"));
/// # Ok::<(), zk_client::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectString {
    hosts: Vec<HostPort>,
    chroot: Option<String>,
}

impl ConnectString {
    /// The servers, in the order written.
    pub fn hosts(&self) -> &[HostPort] {
        &self.hosts
    }

    /// The chroot, if any (never `/`).
    pub fn chroot(&self) -> Option<&str> {
        self.chroot.as_deref()
    }
}

impl fmt::Display for ConnectString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, h) in self.hosts.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{h}")?;
        }
        if let Some(chroot) = &self.chroot {
            f.write_str(chroot)?;
        }
        Ok(())
    }
}

impl std::str::FromStr for ConnectString {
    type Err = Error;

    fn from_str(s: &str) -> Result<ConnectString> {
        let bad = |why: &str| Error::InvalidConnectString(format!("{s:?}: {why}"));
        let s_trim = s.trim();
        // The chroot starts at the first '/' (hosts never contain one).
        let (hosts_part, chroot) = match s_trim.find('/') {
            Some(i) => (
                s_trim.get(..i).unwrap_or_default(),
                s_trim.get(i..).unwrap_or_default(),
            ),
            None => (s_trim, ""),
        };
        let chroot = zk_proto::path::parse_chroot(chroot)
            .map_err(|e| bad(&format!("invalid chroot: {e}")))?;
        let mut hosts = Vec::new();
        for part in hosts_part.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            hosts.push(parse_host_port(part).map_err(|why| bad(&why))?);
        }
        if hosts.is_empty() {
            return Err(bad("no host"));
        }
        Ok(ConnectString { hosts, chroot })
    }
}

fn parse_host_port(part: &str) -> std::result::Result<HostPort, String> {
    let (host, port) = if let Some(rest) = part.strip_prefix('[') {
        let close = rest
            .find(']')
            .ok_or_else(|| format!("unclosed '[' in {part:?}"))?;
        let host = rest.get(..close).unwrap_or_default();
        let after = rest.get(close + 1..).unwrap_or_default();
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(format!("unexpected {after:?} after ']' in {part:?}")),
        };
        (host, port)
    } else if part.matches(':').count() > 1 {
        // Apache's client reads the last ':' as the port's ("::1:2182" is ::1, port 2182);
        // another reading would connect elsewhere without a word: refused instead.
        return Err(format!(
            "IPv6 addresses need brackets, as in [::1]:2181: {part:?} is ambiguous"
        ));
    } else {
        match part.split_once(':') {
            // "host:" means the default port, as for Apache's client and kazoo.
            Some((h, "")) => (h, None),
            Some((h, p)) => (h, Some(p)),
            None => (part, None),
        }
    };
    if host.is_empty() {
        return Err(format!("empty host in {part:?}"));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("invalid port {p:?} in {part:?}"))?,
    };
    Ok(HostPort {
        host: host.to_owned(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(host: &str, port: u16) -> HostPort {
        HostPort {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn parses_hosts_ports_ipv6_and_chroot() {
        let cs: ConnectString = "a:1, b: ,[::1]:3,[fe80::1],10.0.0.1:4/x/y".parse().unwrap();
        assert_eq!(
            cs.hosts(),
            &[
                hp("a", 1),
                hp("b", 2181),
                hp("::1", 3),
                hp("fe80::1", 2181),
                hp("10.0.0.1", 4)
            ]
        );
        assert_eq!(cs.chroot(), Some("/x/y"));
        assert_eq!(
            cs.to_string(),
            "a:1,b:2181,[::1]:3,[fe80::1]:2181,10.0.0.1:4/x/y"
        );
        let cs: ConnectString = "127.0.0.1:2181/".parse().unwrap();
        assert_eq!(cs.chroot(), None);
    }

    #[test]
    fn rejects_bad_strings() {
        for s in [
            "",
            "/app",
            "a:notaport",
            "a:0",
            "[::1",
            "::1",
            "::1:2182",
            "a:1/bad/",
            "a:1//x",
            "[::1]x",
        ] {
            assert!(
                matches!(
                    s.parse::<ConnectString>(),
                    Err(Error::InvalidConnectString(_))
                ),
                "{s:?}"
            );
        }
    }
}
