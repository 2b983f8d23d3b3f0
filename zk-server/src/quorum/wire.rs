//! The wire form of [`zab::Message`](crate::zab::Message): length-prefixed jute `QuorumPacket`s.
//!
//! # Frames
//!
//! Every message is one frame: `int length · QuorumPacket`, where `length` counts the bytes
//! after itself and the packet is jute `QuorumPacket{int type, long zxid, buffer data,
//! vector<Id> authinfo}` (PROTOCOL.md §17.2). `authinfo` is always empty (count 0). Unlike
//! Apache, which writes raw packets on the quorum port and a second framing on the election
//! port, one connection carries both election notifications and learner traffic, so every
//! packet — notifications included — is length-prefixed.
//!
//! A frame is checked before its body is read: a negative length, a length too short for a
//! packet, an unknown packet type, or a length above the [`FrameLimits`] for its type (read
//! from the 4 bytes after the length) is a [`WireError`], and the reader stops there. SNAP and
//! DIFF frames may be large (a whole state, a whole sync); everything else is small.
//!
//! # Packets
//!
//! The packet types and their `zxid` follow Apache's `Leader.java` where a ZooKeeper packet
//! exists; the `data` layouts are ours wherever the ZAB core carries more than Apache does.
//! **Mixed ensembles with Apache ZooKeeper peers are not a goal**: the numbers are kept for
//! readability (and packet dumps), not for interoperability. In the layouts below `int` and
//! `long` are big-endian 32 and 64-bit; epochs and counters (unsigned 32-bit in the core) are
//! written as `int` with the same bits; `buffer` is jute's `int length · bytes` (`-1` = null).
//!
//! | Message | type | zxid | data |
//! |---|---|---|---|
//! | [`Notification`](Message::Notification) | 100 (ours) | -1 | zk-proto's [`Notification`], version 2, no config |
//! | [`Request`](Message::Request) | 1 REQUEST | -1 | the request bytes |
//! | [`Proposal`](Message::Proposal) | 2 PROPOSAL | the txn's | the txn bytes |
//! | [`Ack`](Message::Ack) | 3 ACK | highest durable | null |
//! | [`AckNewLeader`](Message::AckNewLeader) | 3 ACK | `epoch << 32` | `int 10` (the NEWLEADER type it acks) |
//! | [`Commit`](Message::Commit) | 4 COMMIT | commit point | null |
//! | [`Ping`](Message::Ping) | 5 PING | commit point | null (leader → learner) |
//! | [`PingReply`](Message::PingReply) | 5 PING | -1 | empty, not null (learner → leader; Apache puts session data here) |
//! | [`Inform`](Message::Inform) | 8 INFORM | the txn's | the txn bytes |
//! | [`NewLeader`](Message::NewLeader) | 10 NEWLEADER | `epoch << 32` | null |
//! | [`LearnerInfo`](Message::LearnerInfo) | 11 FOLLOWERINFO / 16 OBSERVERINFO | `acceptedEpoch << 32` | `int currentEpoch · long base · int n · n × (int epoch · int first · int last)` (the [`EpochSummary`]) |
//! | [`UpToDate`](Message::UpToDate) | 12 UPTODATE | commit point | null |
//! | [`Diff`](Message::Diff) | 13 DIFF | common zxid | `long committed · int n · n × (long zxid · buffer txn)` |
//! | [`Snap`](Message::Snap) | 15 SNAP | the state's zxid | the state bytes |
//! | [`LeaderInfo`](Message::LeaderInfo) | 17 LEADERINFO | `newEpoch << 32` | `int 0x10000` (protocol version) |
//! | [`AckEpoch`](Message::AckEpoch) | 18 ACKEPOCH | last logged zxid | `int currentEpoch` (-1: an epoch it had already accepted) |
//!
//! Where Apache sends TRUNC + DIFF + PROPOSAL/COMMIT pairs, or SNAP followed by a stream, the
//! core sends one [`Diff`](Message::Diff) (its `zxid` is the point to truncate to) or one
//! [`Snap`](Message::Snap) carrying the whole state.
//!
//! Decoding is strict: bytes left over in `data` or after the packet, a null where bytes are
//! required, a counter where an epoch boundary (`epoch << 32`) is required, or an id or epoch
//! out of range is an error. Decoding never panics and never allocates more than the frame
//! holds; payloads are slices of the received frame (no copy).

use bytes::{BufMut, Bytes, BytesMut};
use zk_proto::jute::{put_buffer, Encode};
use zk_proto::{DecodeError, Notification, QuorumPacketType, Reader};

use crate::zab::{epoch_of, make_zxid, Entry, EpochSummary, Message, Vote, Zxid};

/// The packet type of an election notification (not an Apache `QuorumPacket` type: Apache
/// sends notifications on a separate port).
pub const NOTIFICATION_TYPE: i32 = 100;

/// The protocol version a LEADERINFO carries (Apache's `0x10000`).
pub const LEADER_INFO_PROTOCOL_VERSION: i32 = 0x10000;

/// Bytes of the frame's length prefix.
pub const LENGTH_PREFIX_LEN: usize = 4;

/// The fewest bytes a packet can take: type, zxid, data length, authinfo count.
pub const MIN_PACKET_LEN: usize = 4 + 8 + 4 + 4;

/// Default [`FrameLimits::max_bulk`]: 256 MiB.
pub const DEFAULT_MAX_BULK: usize = 256 * 1024 * 1024;

/// Default [`FrameLimits::max_message`]: 2 MiB (a txn is bounded by `jute.maxbuffer`, 1 MiB).
pub const DEFAULT_MAX_MESSAGE: usize = 2 * 1024 * 1024;

/// The largest packets (the bytes after the length prefix) a peer accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// For SNAP and DIFF, which carry a whole state or a whole sync.
    pub max_bulk: usize,
    /// For every other packet.
    pub max_message: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        FrameLimits {
            max_bulk: DEFAULT_MAX_BULK,
            max_message: DEFAULT_MAX_MESSAGE,
        }
    }
}

impl FrameLimits {
    /// The limit for a packet of this type.
    pub fn for_type(&self, packet_type: i32) -> usize {
        if is_bulk(packet_type) {
            self.max_bulk
        } else {
            self.max_message
        }
    }
}

fn is_bulk(packet_type: i32) -> bool {
    packet_type == QuorumPacketType::Snap.as_i32() || packet_type == QuorumPacketType::Diff.as_i32()
}

/// A frame or packet could not be decoded. The connection it came on must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The length prefix is negative.
    #[error("negative frame length {0}")]
    NegativeLength(i32),
    /// The length prefix is too small for any packet.
    #[error("frame length {len} is below the minimum packet size of {min} bytes")]
    TooShort {
        /// The announced length.
        len: usize,
        /// The least packet size.
        min: usize,
    },
    /// The length prefix exceeds the limit for the packet's type.
    #[error("a packet of {len} bytes (type {packet_type:?}) exceeds the limit of {max} bytes")]
    TooLarge {
        /// The packet type (when already known; the bulk limit applies before it is).
        packet_type: Option<i32>,
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The packet type is not one this codec knows.
    #[error("unknown quorum packet type {0}")]
    UnknownType(i32),
    /// A field could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A field holds a value the message does not allow.
    #[error("invalid {what} in a type {packet_type} packet: {value}")]
    InvalidField {
        /// The packet type.
        packet_type: i32,
        /// The field.
        what: &'static str,
        /// The value found.
        value: i64,
    },
    /// Bytes were left after the last field.
    #[error("{count} unexpected bytes after the {what} of a type {packet_type} packet")]
    TrailingBytes {
        /// The packet type.
        packet_type: i32,
        /// What they followed.
        what: &'static str,
        /// How many.
        count: usize,
    },
}

// ----- encoding -----

struct Packet {
    packet_type: i32,
    zxid: Zxid,
    data: Option<Bytes>,
}

fn packet(message: &Message) -> Packet {
    let t = |t: QuorumPacketType| t.as_i32();
    let (packet_type, zxid, data) = match message {
        Message::Notification {
            state,
            vote,
            election_epoch,
        } => {
            let n = Notification {
                state: *state,
                leader: i64::try_from(vote.leader).unwrap_or(i64::MAX),
                zxid: vote.zxid,
                election_epoch: i64::try_from(*election_epoch).unwrap_or(i64::MAX),
                peer_epoch: i64::from(vote.peer_epoch),
                config: Vec::new(),
            };
            (NOTIFICATION_TYPE, -1, Some(n.to_bytes().freeze()))
        }
        Message::LearnerInfo {
            observer,
            accepted_epoch,
            current_epoch,
            summary,
        } => {
            let mut d = BytesMut::with_capacity(16 + 12 * summary.runs.len());
            d.put_u32(*current_epoch);
            d.put_i64(summary.base);
            d.put_i32(i32::try_from(summary.runs.len()).unwrap_or(i32::MAX));
            for &(epoch, first, last) in &summary.runs {
                d.put_u32(epoch);
                d.put_u32(first);
                d.put_u32(last);
            }
            let ty = if *observer {
                QuorumPacketType::ObserverInfo
            } else {
                QuorumPacketType::FollowerInfo
            };
            (t(ty), make_zxid(*accepted_epoch, 0), Some(d.freeze()))
        }
        Message::LeaderInfo { new_epoch } => (
            t(QuorumPacketType::LeaderInfo),
            make_zxid(*new_epoch, 0),
            Some(Bytes::copy_from_slice(
                &LEADER_INFO_PROTOCOL_VERSION.to_be_bytes(),
            )),
        ),
        Message::AckEpoch {
            current_epoch,
            last_zxid,
        } => (
            t(QuorumPacketType::AckEpoch),
            *last_zxid,
            // Apache's learner writes -1 for an epoch it had already accepted.
            Some(Bytes::copy_from_slice(
                &current_epoch.map_or(-1, |e| e as i32).to_be_bytes(),
            )),
        ),
        Message::Snap { zxid, state } => (t(QuorumPacketType::Snap), *zxid, Some(state.clone())),
        Message::Diff {
            common,
            entries,
            committed,
        } => {
            let size: usize = entries.iter().map(|e| 12 + e.txn.len()).sum();
            let mut d = BytesMut::with_capacity(12 + size);
            d.put_i64(*committed);
            d.put_i32(i32::try_from(entries.len()).unwrap_or(i32::MAX));
            for e in entries {
                d.put_i64(e.zxid);
                put_buffer(&mut d, Some(&e.txn));
            }
            (t(QuorumPacketType::Diff), *common, Some(d.freeze()))
        }
        Message::NewLeader { epoch } => {
            (t(QuorumPacketType::NewLeader), make_zxid(*epoch, 0), None)
        }
        Message::AckNewLeader { epoch } => (
            t(QuorumPacketType::Ack),
            make_zxid(*epoch, 0),
            Some(Bytes::copy_from_slice(
                &QuorumPacketType::NewLeader.as_i32().to_be_bytes(),
            )),
        ),
        Message::UpToDate { committed } => (t(QuorumPacketType::UpToDate), *committed, None),
        Message::Proposal(e) => (t(QuorumPacketType::Proposal), e.zxid, Some(e.txn.clone())),
        Message::Ack { zxid } => (t(QuorumPacketType::Ack), *zxid, None),
        Message::Commit { zxid } => (t(QuorumPacketType::Commit), *zxid, None),
        Message::Inform(e) => (t(QuorumPacketType::Inform), e.zxid, Some(e.txn.clone())),
        Message::Ping { committed } => (t(QuorumPacketType::Ping), *committed, None),
        Message::PingReply => (t(QuorumPacketType::Ping), -1, Some(Bytes::new())),
        Message::Request { data } => (t(QuorumPacketType::Request), -1, Some(data.clone())),
    };
    Packet {
        packet_type,
        zxid,
        data,
    }
}

/// Encodes `message` as one frame: the length prefix and the packet.
pub fn encode_frame(message: &Message) -> Bytes {
    let p = packet(message);
    let data_len = p.data.as_ref().map_or(0, Bytes::len);
    let len = MIN_PACKET_LEN + data_len;
    let mut buf = BytesMut::with_capacity(LENGTH_PREFIX_LEN + len);
    // A frame above i32::MAX is refused by every receiver (limits are far below it).
    buf.put_i32(i32::try_from(len).unwrap_or(i32::MAX));
    buf.put_i32(p.packet_type);
    buf.put_i64(p.zxid);
    put_buffer(&mut buf, p.data.as_deref());
    buf.put_i32(0); // authinfo: an empty vector
    buf.freeze()
}

/// The size of the packet `encode_frame` writes, without the length prefix (what the
/// receiver's [`FrameLimits`] apply to).
pub fn packet_len(frame: &Bytes) -> usize {
    frame.len().saturating_sub(LENGTH_PREFIX_LEN)
}

// ----- decoding -----

/// Checks a frame's header: the length prefix, and the packet type when `type_bytes` are
/// already available. Returns the packet length (the bytes after the prefix).
///
/// # Errors
/// A negative or too short length, an unknown type, or a length above the limit for the
/// type (or, before the type is known, above the largest limit).
pub fn check_header(
    length: i32,
    packet_type: Option<i32>,
    limits: &FrameLimits,
) -> Result<usize, WireError> {
    let Ok(len) = usize::try_from(length) else {
        return Err(WireError::NegativeLength(length));
    };
    if len < MIN_PACKET_LEN {
        return Err(WireError::TooShort {
            len,
            min: MIN_PACKET_LEN,
        });
    }
    let max = match packet_type {
        Some(t) => {
            if !known_type(t) {
                return Err(WireError::UnknownType(t));
            }
            limits.for_type(t)
        }
        None => limits.max_bulk.max(limits.max_message),
    };
    if len > max {
        return Err(WireError::TooLarge {
            packet_type,
            len,
            max,
        });
    }
    Ok(len)
}

fn known_type(t: i32) -> bool {
    use QuorumPacketType as Q;
    t == NOTIFICATION_TYPE
        || [
            Q::Request,
            Q::Proposal,
            Q::Ack,
            Q::Commit,
            Q::Ping,
            Q::Inform,
            Q::NewLeader,
            Q::FollowerInfo,
            Q::UpToDate,
            Q::Diff,
            Q::Snap,
            Q::ObserverInfo,
            Q::LeaderInfo,
            Q::AckEpoch,
        ]
        .iter()
        .any(|q| q.as_i32() == t)
}

fn read_be_i32(bytes: &[u8]) -> Option<i32> {
    let b: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    Some(i32::from_be_bytes(b))
}

/// Takes one whole frame off the front of `buf`, mini-redis style.
///
/// Returns `Ok(None)` when `buf` does not yet hold a whole frame (read more and call again);
/// the header is checked as soon as its bytes are there, so an oversized or unknown frame is
/// refused before its body arrives.
///
/// # Errors
/// [`WireError`]: the connection must be closed.
pub fn decode_frame(
    buf: &mut BytesMut,
    limits: &FrameLimits,
) -> Result<Option<Message>, WireError> {
    let Some(length) = read_be_i32(buf) else {
        return Ok(None);
    };
    let packet_type = buf.get(LENGTH_PREFIX_LEN..).and_then(read_be_i32);
    let len = check_header(length, packet_type, limits)?;
    if packet_type.is_none() || buf.len() < LENGTH_PREFIX_LEN + len {
        return Ok(None);
    }
    let mut frame = buf.split_to(LENGTH_PREFIX_LEN + len);
    let packet = frame.split_off(LENGTH_PREFIX_LEN).freeze();
    decode_packet(&packet).map(Some)
}

/// Decodes one packet (a frame without its length prefix). Payloads are slices of `packet`.
///
/// # Errors
/// [`WireError`] for anything but exactly one well-formed packet.
pub fn decode_packet(packet: &Bytes) -> Result<Message, WireError> {
    let mut r = Reader::new(packet);
    let packet_type = r.read_i32("quorum packet type")?;
    let zxid = r.read_i64("quorum packet zxid")?;
    let data = r
        .read_buffer("quorum packet data")?
        .map(|d| packet.slice_ref(d));
    let auth = r.read_i32("quorum packet authinfo count")?;
    if auth != 0 && auth != -1 {
        return Err(WireError::InvalidField {
            packet_type,
            what: "authinfo count",
            value: i64::from(auth),
        });
    }
    if !r.is_empty() {
        return Err(WireError::TrailingBytes {
            packet_type,
            what: "packet",
            count: r.remaining(),
        });
    }
    message(packet_type, zxid, data)
}

/// Field checks for one packet.
struct Fields {
    packet_type: i32,
}

impl Fields {
    fn invalid(&self, what: &'static str, value: i64) -> WireError {
        WireError::InvalidField {
            packet_type: self.packet_type,
            what,
            value,
        }
    }

    fn data(&self, data: Option<Bytes>) -> Result<Bytes, WireError> {
        data.ok_or_else(|| self.invalid("data length (null)", -1))
    }

    fn null(&self, data: &Option<Bytes>) -> Result<(), WireError> {
        match data {
            None => Ok(()),
            Some(d) => Err(self.invalid("data length (must be null)", d.len() as i64)),
        }
    }

    /// An `epoch << 32` zxid.
    fn epoch(&self, zxid: Zxid) -> Result<u32, WireError> {
        if make_zxid(epoch_of(zxid), 0) != zxid {
            return Err(self.invalid("epoch zxid", zxid));
        }
        Ok(epoch_of(zxid))
    }

    fn done(&self, r: &Reader<'_>, what: &'static str) -> Result<(), WireError> {
        if r.is_empty() {
            Ok(())
        } else {
            Err(WireError::TrailingBytes {
                packet_type: self.packet_type,
                what,
                count: r.remaining(),
            })
        }
    }

    fn int_data(&self, data: Option<Bytes>, what: &'static str) -> Result<i32, WireError> {
        let data = self.data(data)?;
        let mut r = Reader::new(&data);
        let v = r.read_i32(what)?;
        self.done(&r, what)?;
        Ok(v)
    }
}

fn message(packet_type: i32, zxid: Zxid, data: Option<Bytes>) -> Result<Message, WireError> {
    use QuorumPacketType as Q;
    let f = Fields { packet_type };
    if packet_type == NOTIFICATION_TYPE {
        let data = f.data(data)?;
        let (n, _format) = Notification::parse(&data)?;
        let leader = u64::try_from(n.leader).map_err(|_| f.invalid("leader", n.leader))?;
        let election_epoch = u64::try_from(n.election_epoch)
            .map_err(|_| f.invalid("election epoch", n.election_epoch))?;
        let peer_epoch =
            u32::try_from(n.peer_epoch).map_err(|_| f.invalid("peer epoch", n.peer_epoch))?;
        return Ok(Message::Notification {
            state: n.state,
            vote: Vote {
                leader,
                zxid: n.zxid,
                peer_epoch,
            },
            election_epoch,
        });
    }
    let Ok(ty) = Q::try_from(packet_type) else {
        return Err(WireError::UnknownType(packet_type));
    };
    let message = match ty {
        Q::Request => Message::Request {
            data: f.data(data)?,
        },
        Q::Proposal => Message::Proposal(Entry {
            zxid,
            txn: f.data(data)?,
        }),
        Q::Inform => Message::Inform(Entry {
            zxid,
            txn: f.data(data)?,
        }),
        Q::Ack => match data {
            None => Message::Ack { zxid },
            Some(d) => {
                let acked = f.int_data(Some(d), "acked packet type")?;
                if acked != Q::NewLeader.as_i32() {
                    return Err(f.invalid("acked packet type", i64::from(acked)));
                }
                Message::AckNewLeader {
                    epoch: f.epoch(zxid)?,
                }
            }
        },
        Q::Commit => {
            f.null(&data)?;
            Message::Commit { zxid }
        }
        Q::Ping => match data {
            None => Message::Ping { committed: zxid },
            Some(d) if d.is_empty() => Message::PingReply,
            Some(d) => return Err(f.invalid("ping reply data length", d.len() as i64)),
        },
        Q::NewLeader => {
            f.null(&data)?;
            Message::NewLeader {
                epoch: f.epoch(zxid)?,
            }
        }
        Q::UpToDate => {
            f.null(&data)?;
            Message::UpToDate { committed: zxid }
        }
        Q::FollowerInfo | Q::ObserverInfo => {
            let data = f.data(data)?;
            let mut r = Reader::new(&data);
            let current_epoch = r.read_i32("learner current epoch")? as u32;
            let base = r.read_i64("learner base zxid")?;
            let count = r
                .read_len("learner epoch runs", 12)?
                .ok_or_else(|| f.invalid("epoch run count (null)", -1))?;
            let mut runs = Vec::with_capacity(count);
            for _ in 0..count {
                let epoch = r.read_i32("run epoch")? as u32;
                let first = r.read_i32("run first counter")? as u32;
                let last = r.read_i32("run last counter")? as u32;
                runs.push((epoch, first, last));
            }
            f.done(&r, "learner info")?;
            Message::LearnerInfo {
                observer: ty == Q::ObserverInfo,
                accepted_epoch: f.epoch(zxid)?,
                current_epoch,
                summary: EpochSummary { base, runs },
            }
        }
        Q::LeaderInfo => {
            let version = f.int_data(data, "protocol version")?;
            if version != LEADER_INFO_PROTOCOL_VERSION {
                return Err(f.invalid("protocol version", i64::from(version)));
            }
            Message::LeaderInfo {
                new_epoch: f.epoch(zxid)?,
            }
        }
        Q::AckEpoch => Message::AckEpoch {
            current_epoch: match f.int_data(data, "current epoch")? {
                -1 => None,
                epoch => Some(epoch as u32),
            },
            last_zxid: zxid,
        },
        Q::Snap => Message::Snap {
            zxid,
            state: f.data(data)?,
        },
        Q::Diff => {
            let data = f.data(data)?;
            let mut r = Reader::new(&data);
            let committed = r.read_i64("diff committed zxid")?;
            let count = r
                .read_len("diff entries", 12)?
                .ok_or_else(|| f.invalid("diff entry count (null)", -1))?;
            let mut entries = Vec::with_capacity(count);
            for _ in 0..count {
                let zxid = r.read_i64("diff entry zxid")?;
                let txn = r
                    .read_buffer("diff entry txn")?
                    .ok_or_else(|| f.invalid("diff entry txn length (null)", -1))?;
                entries.push(Entry {
                    zxid,
                    txn: data.slice_ref(txn),
                });
            }
            f.done(&r, "diff")?;
            Message::Diff {
                common: zxid,
                entries,
                committed,
            }
        }
        Q::Revalidate | Q::Sync | Q::CommitAndActivate | Q::Trunc | Q::InformAndActivate => {
            return Err(WireError::UnknownType(packet_type))
        }
    };
    Ok(message)
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
