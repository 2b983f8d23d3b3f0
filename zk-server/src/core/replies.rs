//! Building reply frames.

use bytes::{Bytes, BytesMut};
use zk_proto::frame::{write_frame, LENGTH_PREFIX_LEN};
use zk_proto::{Decode, Encode, ErrorCode, EventType, KeeperState, ReplyHeader, WatcherEvent};

/// Length prefix and reply header (fixed-size: its `MIN_LEN` is its length).
const HEADER_LEN: usize = LENGTH_PREFIX_LEN + <ReplyHeader as Decode>::MIN_LEN;
/// Room for a typical reply with a body (a stat and 100 bytes of data) without reallocating.
const TYPICAL_LEN: usize = 256;

/// A reply frame: header and optional body, in a buffer of `capacity` bytes to begin with.
fn reply(
    xid: i32,
    zxid: i64,
    err: ErrorCode,
    body: Option<&dyn EncodeDyn>,
    capacity: usize,
) -> Bytes {
    let mut buf = BytesMut::with_capacity(capacity);
    write_frame(&mut buf, |b| {
        ReplyHeader {
            xid,
            zxid,
            err: err.as_i32(),
        }
        .encode(b);
        if let Some(body) = body {
            body.encode_dyn(b);
        }
    });
    buf.freeze()
}

/// A successful reply with a body.
pub(crate) fn ok<T: Encode>(xid: i32, zxid: i64, body: &T) -> Bytes {
    reply(xid, zxid, ErrorCode::Ok, Some(body), TYPICAL_LEN)
}

/// A reply without a body (success or error).
pub(crate) fn bare(xid: i32, zxid: i64, err: ErrorCode) -> Bytes {
    reply(xid, zxid, err, None, HEADER_LEN)
}

/// `frame` (a reply) with its header's zxid raised to `zxid` when it is lower, for a reply
/// built early and sent after later writes' replies: Java and C clients take each positive
/// reply zxid as their last seen one, so it must never go down on a connection (Apache stamps
/// a reply when it leaves the pipeline). A zxid of 0 (auth replies) stays: clients skip it.
pub(crate) fn with_zxid_at_least(frame: Bytes, zxid: i64) -> Bytes {
    // The length prefix, then the header: xid (4 bytes), zxid (8 bytes), err.
    const ZXID_AT: usize = LENGTH_PREFIX_LEN + 4;
    let Some(stamped) = frame
        .get(ZXID_AT..ZXID_AT + 8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(i64::from_be_bytes)
    else {
        return frame;
    };
    if stamped <= 0 || stamped >= zxid {
        return frame;
    }
    let mut raised = BytesMut::from(&frame[..]);
    raised[ZXID_AT..ZXID_AT + 8].copy_from_slice(&zxid.to_be_bytes());
    raised.freeze()
}

/// A watch notification frame.
pub(crate) fn notification(zxid: i64, event: EventType, path: &str) -> Bytes {
    let body = WatcherEvent {
        event_type: event,
        state: KeeperState::SyncConnected,
        path: path.to_owned(),
    };
    // Type, state, the path's length and the path.
    let len = HEADER_LEN + 12 + path.len();
    reply(-1, zxid, ErrorCode::Ok, Some(&body), len)
}

/// Object-safe encoding, so replies can take any record.
pub(crate) trait EncodeDyn {
    fn encode_dyn(&self, buf: &mut BytesMut);
}

impl<T: Encode> EncodeDyn for T {
    fn encode_dyn(&self, buf: &mut BytesMut) {
        self.encode(buf);
    }
}
