use bytes::{BufMut, BytesMut};

use crate::error::DecodeError;
use crate::jute::{Decode, Encode, Reader};

/// The first frame a client sends on a new connection (no request header).
///
/// `read_only` is optional on the wire: clients older than 3.4 omit it. Its presence is kept so
/// that a server can mirror it in the response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ConnectRequest {
    /// Always 0.
    pub protocol_version: i32,
    /// The highest zxid the client has seen (0 for a fresh client).
    pub last_zxid_seen: i64,
    /// Requested session timeout, ms.
    pub timeout: i32,
    /// 0 for a new session, else the session to re-attach.
    pub session_id: i64,
    /// 16 zero bytes for a new session, else the session's password.
    pub passwd: Vec<u8>,
    /// "Can be read-only"; `None` when the client did not send the byte.
    pub read_only: Option<bool>,
}

impl Encode for ConnectRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_i32(self.protocol_version);
        buf.put_i64(self.last_zxid_seen);
        buf.put_i32(self.timeout);
        buf.put_i64(self.session_id);
        self.passwd.encode(buf);
        if let Some(read_only) = self.read_only {
            read_only.encode(buf);
        }
    }
}

impl Decode for ConnectRequest {
    const MIN_LEN: usize = 28;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ConnectRequest {
            protocol_version: r.read_i32("protocolVersion")?,
            last_zxid_seen: r.read_i64("lastZxidSeen")?,
            timeout: r.read_i32("timeOut")?,
            session_id: r.read_i64("sessionId")?,
            passwd: Vec::decode(r)?,
            read_only: read_optional_bool(r, "readOnly")?,
        })
    }
}

/// The server's answer to a [`ConnectRequest`] (no reply header).
///
/// A `timeout` ≤ 0 means the session is expired or invalid. `read_only` is present only when the
/// request carried it (the C client, however, always reads 41 bytes, so servers should send it).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ConnectResponse {
    /// Always 0.
    pub protocol_version: i32,
    /// Negotiated session timeout, ms; ≤ 0 means expired.
    pub timeout: i32,
    /// The session id (0 if invalid).
    pub session_id: i64,
    /// The session password (16 bytes).
    pub passwd: Vec<u8>,
    /// Whether the server is read-only; `None` when the byte was not sent.
    pub read_only: Option<bool>,
}

impl Encode for ConnectResponse {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_i32(self.protocol_version);
        buf.put_i32(self.timeout);
        buf.put_i64(self.session_id);
        self.passwd.encode(buf);
        if let Some(read_only) = self.read_only {
            read_only.encode(buf);
        }
    }
}

impl Decode for ConnectResponse {
    const MIN_LEN: usize = 20;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ConnectResponse {
            protocol_version: r.read_i32("protocolVersion")?,
            timeout: r.read_i32("timeOut")?,
            session_id: r.read_i64("sessionId")?,
            passwd: Vec::decode(r)?,
            read_only: read_optional_bool(r, "readOnly")?,
        })
    }
}

fn read_optional_bool(r: &mut Reader<'_>, what: &'static str) -> Result<Option<bool>, DecodeError> {
    if r.is_empty() {
        Ok(None)
    } else {
        r.read_bool(what).map(Some)
    }
}
