//! Leader-election messages on the election port (default 3888): the connection's initial
//! message (Apache `QuorumCnxManager.InitialMessage`) and the FastLeaderElection notification
//! (Apache `FastLeaderElection.buildMsg` / `WorkerReceiver.run`).
//!
//! Unlike the jute records, these are raw `DataOutputStream` / `ByteBuffer` layouts. After the
//! initial message every election message is framed as `int length · payload` with
//! `0 < length ≤` [`ELECTION_MESSAGE_MAX_LEN`]; a notification is decoded from the whole payload
//! with [`Notification::parse`], because its format is told apart by the payload length.

use std::fmt;
use std::net::IpAddr;

use bytes::{BufMut, BytesMut};

use crate::error::DecodeError;
use crate::jute::{int_enum_codec, Decode, Encode, Reader};
use crate::types::int_enum;

/// The initial message's protocol version since 3.5.0 (ZOOKEEPER-107): one election address.
/// (`QuorumCnxManager.PROTOCOL_VERSION_V1`.)
pub const PROTOCOL_VERSION_V1: i64 = -65536;

/// The initial message's protocol version since 3.6.0 (ZOOKEEPER-3188): `|`-separated election
/// addresses. (`QuorumCnxManager.PROTOCOL_VERSION_V2`.)
pub const PROTOCOL_VERSION_V2: i64 = -65535;

/// Largest address string an initial message may carry, bytes (`QuorumCnxManager.maxBuffer`).
/// A length of 0 is rejected as well.
pub const INITIAL_MESSAGE_MAX_ADDRESS_LEN: usize = 2048;

/// Largest framed election message, bytes (`QuorumCnxManager.PACKETMAXSIZE`, 512 KiB). A
/// frame length of 0 or above this closes the connection.
pub const ELECTION_MESSAGE_MAX_LEN: usize = 512 * 1024;

/// The server id an observer without an id sends (`QuorumPeer.OBSERVER_ID`, `Long.MAX_VALUE`);
/// Apache replaces it with a made-up negative id for the connection.
pub const OBSERVER_ID: i64 = i64::MAX;

/// The notification format version written since 3.5 (`FastLeaderElection.Notification.CURRENTVERSION`):
/// versions above 1 carry the sender's quorum configuration.
pub const NOTIFICATION_VERSION: i32 = 2;

int_enum! {
    /// A peer's role as carried in a notification (`QuorumPeer.ServerState`, sent as its
    /// ordinal).
    pub enum ServerState {
        /// Electing a leader.
        Looking = 0,
        /// Following an elected leader.
        Following = 1,
        /// Leading the ensemble.
        Leading = 2,
        /// Observing (a non-voting learner).
        Observing = 3,
    }
}
int_enum_codec!(ServerState, "server state");

/// A FastLeaderElection notification: the sender's current vote and state.
///
/// Encoded (always in the current, version 2 layout, `44 + config.len()` bytes) as
/// `int state · long leader · long zxid · long electionEpoch · long peerEpoch · int version (2) ·
/// int configLength · config bytes` (Apache `FastLeaderElection.buildMsg` with `configData`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Notification {
    /// The sender's state.
    pub state: ServerState,
    /// The proposed leader's server id.
    pub leader: i64,
    /// The proposed leader's last logged zxid.
    pub zxid: i64,
    /// The sender's logical clock (election round).
    pub election_epoch: i64,
    /// The proposed leader's epoch.
    pub peer_epoch: i64,
    /// The sender's quorum configuration in `zoo.cfg` dynamic-config text (`server.N=…` lines
    /// and `version=…`), UTF-8. Empty when the received format carries none.
    pub config: Vec<u8>,
}

/// Which layout a received notification had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotificationFormat {
    /// 28 bytes, before ZOOKEEPER-107: no peer epoch. The peer epoch is taken from the zxid's
    /// upper 32 bits, as Apache does.
    Legacy28,
    /// 40 bytes: a peer epoch but no format version (the last 4 bytes are not read).
    Legacy40,
    /// A format version (3.4.6+); versions above 1 carry a configuration.
    Versioned(i32),
}

impl Notification {
    /// Length of the oldest layout (no peer epoch).
    pub const LEGACY_28_LEN: usize = 28;
    /// Length of the layout without a format version.
    pub const LEGACY_40_LEN: usize = 40;
    /// Length of the current layout without its configuration bytes.
    pub const HEADER_LEN: usize = 44;

    /// Decodes one notification from a whole election message payload (the bytes after the
    /// frame's length prefix), accepting the same layouts as Apache's
    /// `FastLeaderElection.Messenger.WorkerReceiver.run`:
    ///
    /// * fewer than 28 bytes: rejected;
    /// * exactly 28 bytes: no peer epoch (taken from `zxid >> 32`), [`NotificationFormat::Legacy28`];
    /// * exactly 40 bytes: no version, [`NotificationFormat::Legacy40`];
    /// * otherwise: peer epoch and an `int` version; a version above 1 is followed by
    ///   `int configLength` (`0 ≤ configLength ≤` message length) and the configuration.
    ///
    /// Bytes after the last field read are ignored, as Apache ignores them. An unknown state
    /// number is an error (Apache drops such a message from a voter).
    pub fn parse(message: &[u8]) -> Result<(Notification, NotificationFormat), DecodeError> {
        let capacity = message.len();
        if capacity < Self::LEGACY_28_LEN {
            return Err(DecodeError::UnexpectedEof {
                what: "notification",
                needed: Self::LEGACY_28_LEN,
                remaining: capacity,
            });
        }
        let mut r = Reader::new(message);
        let state = ServerState::decode(&mut r)?;
        let leader = r.read_i64("notification leader")?;
        let zxid = r.read_i64("notification zxid")?;
        let election_epoch = r.read_i64("notification election epoch")?;
        let mut notification = Notification {
            state,
            leader,
            zxid,
            election_epoch,
            // ZxidUtils.getEpochFromZxid: an arithmetic shift of the signed zxid.
            peer_epoch: zxid >> 32,
            config: Vec::new(),
        };
        if capacity == Self::LEGACY_28_LEN {
            return Ok((notification, NotificationFormat::Legacy28));
        }
        notification.peer_epoch = r.read_i64("notification peer epoch")?;
        if capacity == Self::LEGACY_40_LEN {
            return Ok((notification, NotificationFormat::Legacy40));
        }
        let version = r.read_i32("notification version")?;
        if version > 1 {
            let len = r.read_i32("notification config length")?;
            let Ok(config_len) = usize::try_from(len) else {
                return Err(DecodeError::NegativeLength {
                    what: "notification config",
                    len,
                });
            };
            // Apache's bound is the message length; the bytes left are a tighter one.
            if config_len > capacity || config_len > r.remaining() {
                return Err(DecodeError::LengthExceedsInput {
                    what: "notification config",
                    len,
                    remaining: r.remaining(),
                });
            }
            notification.config = r.take("notification config", config_len)?.to_vec();
        }
        Ok((notification, NotificationFormat::Versioned(version)))
    }
}

impl Encode for Notification {
    fn encode(&self, buf: &mut BytesMut) {
        self.state.encode(buf);
        buf.put_i64(self.leader);
        buf.put_i64(self.zxid);
        buf.put_i64(self.election_epoch);
        buf.put_i64(self.peer_epoch);
        buf.put_i32(NOTIFICATION_VERSION);
        // A configuration is a few hundred bytes; a length beyond i32 cannot be framed anyway.
        buf.put_i32(i32::try_from(self.config.len()).unwrap_or(i32::MAX));
        buf.put_slice(&self.config);
    }
}

/// A `host:port` address as written in `zoo.cfg` server lines and in the initial message. An
/// IPv6 literal host is written in brackets: `[::1]:3888`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    /// A host name or an IP literal (without brackets).
    pub host: String,
    /// The port.
    pub port: u16,
}

impl HostPort {
    /// Builds an address.
    pub fn new(host: impl Into<String>, port: u16) -> HostPort {
        HostPort {
            host: host.into(),
            port,
        }
    }

    /// Parses `host:port` or `[ipv6]:port`. `None` when the text is not exactly a non-empty
    /// host and a port in `0..=65535`.
    pub fn parse(text: &str) -> Option<HostPort> {
        let parts = split_host_and_ports(text)?;
        match parts.as_slice() {
            [host, port] if !host.is_empty() => Some(HostPort {
                host: (*host).to_owned(),
                port: port.parse().ok()?,
            }),
            _ => None,
        }
    }

    /// The host as an IP address, when it is an IP literal.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// Whether the host is the wildcard address (`0.0.0.0` or `::`). Host names are never
    /// resolved, so only IP literals can be wildcards.
    pub fn is_wildcard(&self) -> bool {
        self.ip().is_some_and(|ip| ip.is_unspecified())
    }
}

impl fmt::Display for HostPort {
    /// `host:port`, with an IPv6 host in brackets (as Apache's `NetUtils.formatInetAddr`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Splits `host:a:b…` into `[host, a, b, …]` as Apache's `ConfigUtils.getHostAndPort`: a host in
/// brackets (`[::1]:2888:3888`) may contain `:`, and `[host]` alone is just the host.
///
/// Stricter than Apache in two corners: the character after `]` must be `:`, and empty trailing
/// parts are kept (Java's `split` drops them), so that `host:1:` is not silently `host:1`.
/// `None` for an unclosed bracket or a `]:` with nothing after it.
pub fn split_host_and_ports(text: &str) -> Option<Vec<&str>> {
    let Some(bracketed) = text.strip_prefix('[') else {
        return Some(text.split(':').collect());
    };
    let (host, rest) = bracketed.split_once(']')?;
    if rest.is_empty() {
        return Some(vec![host]);
    }
    let ports = rest.strip_prefix(':')?;
    if ports.is_empty() {
        return None;
    }
    let mut parts = vec![host];
    parts.extend(ports.split(':'));
    Some(parts)
}

/// The initial message's protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum InitialMessageVersion {
    /// Before 3.5.0: the connection starts with the sender's server id (a non-negative long)
    /// and nothing else.
    Legacy,
    /// [`PROTOCOL_VERSION_V1`]: one election address.
    V1,
    /// [`PROTOCOL_VERSION_V2`]: `|`-separated election addresses.
    V2,
}

impl InitialMessageVersion {
    /// The version number on the wire (`None` for [`InitialMessageVersion::Legacy`], which
    /// sends none).
    pub const fn as_i64(self) -> Option<i64> {
        match self {
            InitialMessageVersion::Legacy => None,
            InitialMessageVersion::V1 => Some(PROTOCOL_VERSION_V1),
            InitialMessageVersion::V2 => Some(PROTOCOL_VERSION_V2),
        }
    }
}

/// What the connecting side sends first on an election connection
/// (`QuorumCnxManager.startConnection` writes it, `InitialMessage.parse` reads it):
/// `long protocolVersion · long sid · int length · UTF-8 "host:port[|host:port…]"`.
///
/// Decoding applies Apache's limits: an unknown negative version, a length `≤ 0` or above
/// [`INITIAL_MESSAGE_MAX_ADDRESS_LEN`], or an address that is not `host:port` is an error;
/// wildcard addresses (`0.0.0.0`, `::`) are dropped. A first long `≥ 0` is the pre-3.5 form
/// ([`InitialMessageVersion::Legacy`]): that long is the sid and nothing follows.
///
/// Only the server with the higher sid keeps a connection: a receiver whose own sid is higher
/// than the sender's closes it and dials back.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InitialMessage {
    /// The protocol version.
    pub version: InitialMessageVersion,
    /// The sender's server id.
    pub sid: i64,
    /// The sender's election addresses (V1 sends exactly one; none for the legacy form).
    pub election_addrs: Vec<HostPort>,
}

impl Encode for InitialMessage {
    /// Writes the message. The legacy form writes only the sid; V1/V2 join all addresses with
    /// `|` (a V1 sender should give exactly one).
    fn encode(&self, buf: &mut BytesMut) {
        let Some(version) = self.version.as_i64() else {
            buf.put_i64(self.sid);
            return;
        };
        buf.put_i64(version);
        buf.put_i64(self.sid);
        let joined = self
            .election_addrs
            .iter()
            .map(HostPort::to_string)
            .collect::<Vec<_>>()
            .join("|");
        buf.put_i32(i32::try_from(joined.len()).unwrap_or(i32::MAX));
        buf.put_slice(joined.as_bytes());
    }
}

impl Decode for InitialMessage {
    const MIN_LEN: usize = 8;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let first = r.read_i64("protocol version")?;
        if first >= 0 {
            return Ok(InitialMessage {
                version: InitialMessageVersion::Legacy,
                sid: first,
                election_addrs: Vec::new(),
            });
        }
        let version = match first {
            PROTOCOL_VERSION_V1 => InitialMessageVersion::V1,
            PROTOCOL_VERSION_V2 => InitialMessageVersion::V2,
            other => {
                return Err(DecodeError::InvalidValue {
                    what: "protocol version",
                    value: other,
                })
            }
        };
        let sid = r.read_i64("initial message sid")?;
        let len = r.read_i32("initial message address length")?;
        let in_range = usize::try_from(len)
            .ok()
            .filter(|n| (1..=INITIAL_MESSAGE_MAX_ADDRESS_LEN).contains(n));
        let Some(len) = in_range else {
            return Err(DecodeError::InvalidValue {
                what: "initial message address length",
                value: i64::from(len),
            });
        };
        let bytes = r.take("initial message addresses", len)?;
        let text = std::str::from_utf8(bytes).map_err(|e| DecodeError::InvalidUtf8 {
            what: "initial message addresses",
            valid_up_to: e.valid_up_to(),
        })?;
        let mut election_addrs = Vec::new();
        for part in text.split('|') {
            let addr = HostPort::parse(part).ok_or_else(|| DecodeError::MalformedText {
                what: "election address",
                text: part.to_owned(),
            })?;
            if !addr.is_wildcard() {
                election_addrs.push(addr);
            }
        }
        Ok(InitialMessage {
            version,
            sid,
            election_addrs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_ports_split_like_apache() {
        assert_eq!(
            split_host_and_ports("zk1:2888:3888"),
            Some(vec!["zk1", "2888", "3888"])
        );
        assert_eq!(
            split_host_and_ports("[::1]:2888:3888:observer"),
            Some(vec!["::1", "2888", "3888", "observer"])
        );
        assert_eq!(split_host_and_ports("[fe80::1]"), Some(vec!["fe80::1"]));
        assert_eq!(split_host_and_ports("[::1"), None);
        assert_eq!(split_host_and_ports("[::1]:"), None);
        assert_eq!(split_host_and_ports("[::1]x1"), None);
    }

    #[test]
    fn host_port_parse_and_display() {
        let v6 = HostPort::parse("[2001:db8::7]:3888").unwrap();
        assert_eq!(v6, HostPort::new("2001:db8::7", 3888));
        assert_eq!(v6.to_string(), "[2001:db8::7]:3888");
        assert_eq!(HostPort::parse("zk1:3888").unwrap().to_string(), "zk1:3888");
        for bad in [
            "zk1",
            "zk1:",
            ":3888",
            "zk1:70000",
            "zk1:1:2",
            "::1:3888",
            "zk1:x",
        ] {
            assert_eq!(HostPort::parse(bad), None, "{bad}");
        }
        assert!(HostPort::new("0.0.0.0", 1).is_wildcard());
        assert!(HostPort::new("::", 1).is_wildcard());
        assert!(!HostPort::new("zk1", 1).is_wildcard());
    }

    #[test]
    fn server_state_numbers() {
        assert_eq!(ServerState::Looking.as_i32(), 0);
        assert_eq!(ServerState::Observing.as_i32(), 3);
        assert_eq!(ServerState::try_from(4), Err(4));
    }
}
