//! Framing: every message is a 4-byte big-endian signed length followed by that many bytes.

use bytes::{Buf, BufMut, BytesMut};

use crate::error::FrameError;

/// Apache ZooKeeper's default `jute.maxbuffer`: 0xfffff = 1,048,575 bytes.
pub const DEFAULT_MAX_FRAME_LEN: usize = 0xfffff;

/// Size of the length prefix.
pub const LENGTH_PREFIX_LEN: usize = 4;

/// Reads the length prefix at the start of `buf`, if all four bytes are there, and checks it
/// against `max_len` (a length equal to `max_len` is accepted, as Apache does).
pub fn peek_frame_len(buf: &[u8], max_len: usize) -> Result<Option<usize>, FrameError> {
    let Some(prefix) = buf.first_chunk::<LENGTH_PREFIX_LEN>() else {
        return Ok(None);
    };
    let len = i32::from_be_bytes(*prefix);
    let len = usize::try_from(len).map_err(|_| FrameError::NegativeLength(len))?;
    if len > max_len {
        return Err(FrameError::TooLarge { len, max: max_len });
    }
    Ok(Some(len))
}

/// Splits the next complete frame body off the front of `buf`.
///
/// Returns `Ok(None)` while the frame is incomplete (reserving room for the rest of it, which the
/// length check bounds). A bad length prefix is an error as soon as its four bytes have arrived,
/// before any of the body is read.
pub fn split_frame(buf: &mut BytesMut, max_len: usize) -> Result<Option<BytesMut>, FrameError> {
    let Some(len) = peek_frame_len(buf, max_len)? else {
        return Ok(None);
    };
    let total = LENGTH_PREFIX_LEN + len;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    buf.advance(LENGTH_PREFIX_LEN);
    Ok(Some(buf.split_to(len)))
}

/// Appends one frame: writes a placeholder length, lets `body` append the payload, then patches
/// the length in.
pub fn write_frame(buf: &mut BytesMut, body: impl FnOnce(&mut BytesMut)) {
    let start = buf.len();
    buf.put_i32(0);
    body(buf);
    let len = buf.len() - start - LENGTH_PREFIX_LEN;
    let len = i32::try_from(len).unwrap_or(i32::MAX).to_be_bytes();
    if let Some(prefix) = buf.get_mut(start..start + LENGTH_PREFIX_LEN) {
        prefix.copy_from_slice(&len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_complete_frames_and_waits_for_partial_ones() {
        let mut buf = BytesMut::new();
        write_frame(&mut buf, |b| b.put_slice(b"hello"));
        write_frame(&mut buf, |b| b.put_slice(b"hi"));
        buf.put_slice(&[0, 0, 0, 3, b'x']);
        assert_eq!(&split_frame(&mut buf, 100).unwrap().unwrap()[..], b"hello");
        assert_eq!(&split_frame(&mut buf, 100).unwrap().unwrap()[..], b"hi");
        assert_eq!(split_frame(&mut buf, 100), Ok(None));
        buf.put_slice(b"yz");
        assert_eq!(&split_frame(&mut buf, 100).unwrap().unwrap()[..], b"xyz");
        assert!(buf.is_empty());
        assert_eq!(split_frame(&mut buf, 100), Ok(None));
    }

    #[test]
    fn empty_frame_is_valid() {
        let mut buf = BytesMut::from(&[0u8, 0, 0, 0][..]);
        assert_eq!(
            split_frame(&mut buf, 100).unwrap().map(|f| f.len()),
            Some(0)
        );
    }

    #[test]
    fn length_is_checked_before_the_body_arrives() {
        let mut buf = BytesMut::from(&0x4000_0000i32.to_be_bytes()[..]);
        assert_eq!(
            split_frame(&mut buf, DEFAULT_MAX_FRAME_LEN),
            Err(FrameError::TooLarge {
                len: 1 << 30,
                max: DEFAULT_MAX_FRAME_LEN
            })
        );
        // Nothing was reserved for the announced gigabyte.
        assert!(buf.capacity() < 1024);
        let mut buf = BytesMut::from(&(-1i32).to_be_bytes()[..]);
        assert_eq!(
            split_frame(&mut buf, 100),
            Err(FrameError::NegativeLength(-1))
        );
    }

    #[test]
    fn limit_is_inclusive() {
        let max = DEFAULT_MAX_FRAME_LEN;
        let at = u32::try_from(max).unwrap().to_be_bytes();
        assert_eq!(peek_frame_len(&at, max), Ok(Some(max)));
        let over = u32::try_from(max + 1).unwrap().to_be_bytes();
        assert!(peek_frame_len(&over, max).is_err());
    }
}
