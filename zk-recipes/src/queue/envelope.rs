//! The data of a queue item node: Curator's `ItemSerializer` format, one or more serialized
//! items in an envelope, so Java and Rust producers and consumers can share a queue.
//!
//! ```text
//! i32 BE  version = 0x00010001
//! ( u8 0x01, i32 BE length, length bytes )*   one per item
//! u8 0x02                                      end
//! ```

/// The envelope's version word.
const VERSION: i32 = 0x0001_0001;
/// An item follows.
const ITEM: u8 = 0x01;
/// No more items.
const END: u8 = 0x02;

/// The node data holding `items` (each already serialized).
pub(crate) fn encode<B: AsRef<[u8]>>(items: &[B]) -> Vec<u8> {
    let len: usize = items.iter().map(|i| i.as_ref().len() + 5).sum();
    let mut out = Vec::with_capacity(len + 5);
    out.extend_from_slice(&VERSION.to_be_bytes());
    for item in items {
        let item = item.as_ref();
        out.push(ITEM);
        // Node data is far below 2 GiB (ZooKeeper's limit is 1 MiB); saturate rather than
        // wrap if a caller tries anyway (the create is then refused for its size).
        let n = i32::try_from(item.len()).unwrap_or(i32::MAX);
        out.extend_from_slice(&n.to_be_bytes());
        out.extend_from_slice(item);
    }
    out.push(END);
    out
}

/// The serialized items in a node's data, or why the data is not an envelope.
pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut rest = bytes;
    let version = take_i32(&mut rest).ok_or("too short for the version word")?;
    if version != VERSION {
        return Err(format!("version {version:#x}, not {VERSION:#x}"));
    }
    let mut items = Vec::new();
    loop {
        let (&op, tail) = rest.split_first().ok_or("no end marker")?;
        rest = tail;
        match op {
            END => return Ok(items),
            ITEM => {
                let len = take_i32(&mut rest).ok_or("truncated item length")?;
                let len = usize::try_from(len).map_err(|_| format!("bad item length {len}"))?;
                if rest.len() < len {
                    return Err(format!("item of {len} bytes but only {} left", rest.len()));
                }
                let (item, tail) = rest.split_at(len);
                items.push(item.to_vec());
                rest = tail;
            }
            other => return Err(format!("opcode {other:#x}, not an item or the end")),
        }
    }
}

fn take_i32(rest: &mut &[u8]) -> Option<i32> {
    let (head, tail) = rest.split_first_chunk::<4>()?;
    *rest = tail;
    Some(i32::from_be_bytes(*head))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_item_is_curators_bytes() {
        assert_eq!(encode(&[b"hi"]), [0, 1, 0, 1, 1, 0, 0, 0, 2, b'h', b'i', 2]);
        assert_eq!(encode::<&[u8]>(&[]), [0, 1, 0, 1, 2]);
    }

    #[test]
    fn round_trips_and_rejects_garbage() {
        let items = vec![b"a".to_vec(), Vec::new(), vec![7; 300]];
        assert_eq!(decode(&encode(&items)).unwrap(), items);
        assert!(decode(b"").is_err());
        assert!(decode(&[0, 1, 0, 2, 2]).is_err(), "wrong version");
        assert!(decode(&[0, 1, 0, 1]).is_err(), "no end marker");
        assert!(
            decode(&[0, 1, 0, 1, 1, 0, 0, 0, 5, 1, 2]).is_err(),
            "truncated"
        );
        assert!(
            decode(&[0, 1, 0, 1, 1, 0xff, 0xff, 0xff, 0xff, 2]).is_err(),
            "negative"
        );
        assert!(decode(&[0, 1, 0, 1, 9, 2]).is_err(), "unknown opcode");
    }
}
