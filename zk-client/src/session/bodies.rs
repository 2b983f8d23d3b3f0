//! Request bodies written straight from an operation's borrowed arguments, for the requests
//! applications send most (getData, exists, getChildren, setData, create, delete): no owned
//! zk-proto record is built first, so the path is not joined to the chroot in a new `String`
//! and the data and ACL are not cloned before being encoded, and the buffer is allocated once
//! at its final size. The bytes are those of zk-proto's records (the tests compare them).

use bytes::{BufMut, BytesMut};
use zk_proto::jute::{put_buffer, put_vector};
use zk_proto::{Acl, Decode, RequestHeader};

use crate::error::{Error, Result};

/// A path as the server knows it: the session's chroot, if any, then the client's path (`/`
/// alone standing for the chroot itself). Written as one jute string.
#[derive(Debug, Clone, Copy)]
pub(super) struct ServerPath<'a> {
    /// The leading part (the chroot) and the rest.
    parts: (&'a str, &'a str),
}

impl<'a> ServerPath<'a> {
    pub(super) fn new(chroot: Option<&'a str>, path: &'a str) -> ServerPath<'a> {
        let parts = match chroot {
            None => ("", path),
            Some(root) if path == "/" => (root, ""),
            Some(root) => (root, path),
        };
        ServerPath { parts }
    }

    /// The path as one string (for the watch registry).
    pub(super) fn joined(self) -> String {
        [self.parts.0, self.parts.1].concat()
    }

    fn encoded_len(self) -> usize {
        4 + self.parts.0.len() + self.parts.1.len()
    }

    fn put(self, buf: &mut BytesMut) {
        let (root, rest) = self.parts;
        // Bounded by the body-length check long before it could exceed i32::MAX.
        buf.put_i32(i32::try_from(root.len() + rest.len()).unwrap_or(i32::MAX));
        buf.put_slice(root.as_bytes());
        buf.put_slice(rest.as_bytes());
    }
}

/// getData, exists, getChildren, getChildren2: the path and the watch flag.
pub(super) fn path_and_watch(path: ServerPath<'_>, watch: bool) -> BytesMut {
    written(path.encoded_len() + 1, |buf| {
        path.put(buf);
        buf.put_u8(u8::from(watch));
    })
}

/// setData: the path, the data and the expected version.
pub(super) fn set_data(path: ServerPath<'_>, data: &[u8], version: i32) -> BytesMut {
    written(path.encoded_len() + 4 + data.len() + 4, |buf| {
        path.put(buf);
        put_buffer(buf, Some(data));
        buf.put_i32(version);
    })
}

/// delete: the path and the expected version.
pub(super) fn delete(path: ServerPath<'_>, version: i32) -> BytesMut {
    written(path.encoded_len() + 4, |buf| {
        path.put(buf);
        buf.put_i32(version);
    })
}

/// create2 and createContainer, or with a TTL createTTL: the path, the data, the ACL, the
/// mode's flags (and the TTL).
pub(super) fn create(
    path: ServerPath<'_>,
    data: &[u8],
    acl: &[Acl],
    flags: i32,
    ttl: Option<i64>,
) -> BytesMut {
    // An ACL entry: perms, then the scheme and the id as strings.
    let acl_len: usize = acl
        .iter()
        .map(|a| 4 + 4 + a.id.scheme.len() + 4 + a.id.id.len())
        .sum();
    let len =
        path.encoded_len() + 4 + data.len() + 4 + acl_len + 4 + if ttl.is_some() { 8 } else { 0 };
    written(len, |buf| {
        path.put(buf);
        put_buffer(buf, Some(data));
        put_vector(buf, Some(acl));
        buf.put_i32(flags);
        if let Some(ttl) = ttl {
            buf.put_i64(ttl);
        }
    })
}

/// A body of `capacity` bytes written by `write`, refused if the server would refuse it.
fn written(capacity: usize, write: impl FnOnce(&mut BytesMut)) -> BytesMut {
    let mut buf = BytesMut::with_capacity(capacity);
    write(&mut buf);
    buf
}

/// `body`, unless its request (header included) is longer than `max_request_len`, the
/// servers' `jute.maxbuffer`.
pub(super) fn checked(body: BytesMut, max_request_len: usize) -> Result<BytesMut> {
    let max = max_request_len.saturating_sub(<RequestHeader as Decode>::MIN_LEN);
    if body.len() > max {
        return Err(Error::RequestTooLarge {
            len: body.len(),
            max,
        });
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use zk_proto::path::prepend_chroot;
    use zk_proto::{
        CreateRequest, CreateTtlRequest, DeleteRequest, Encode, GetDataRequest, Id, Perms,
        SetDataRequest,
    };

    use super::*;

    /// Every combination of these arguments, against zk-proto's records.
    #[test]
    fn bodies_are_the_records_bytes() {
        let chroots = [None, Some("/app"), Some("/a/b")];
        let paths = ["/", "/x", "/x/yz", "/ünï/cödé"];
        let datas: [&[u8]; 3] = [b"", b"v", &[7; 300]];
        let acls = [
            Vec::new(),
            Acl::open_unsafe(),
            vec![
                Acl::new(Perms::READ, Id::anyone()),
                Acl::new(Perms::ALL, Id::new("digest", "bob:c2VjcmV0")),
            ],
        ];
        for chroot in chroots {
            for path in paths {
                let server = ServerPath::new(chroot, path);
                let full = prepend_chroot(chroot, path);
                for watch in [false, true] {
                    let record = GetDataRequest {
                        path: full.clone(),
                        watch,
                    };
                    assert_eq!(path_and_watch(server, watch), record.to_bytes());
                }
                for version in [-1, 0, 7] {
                    let record = DeleteRequest {
                        path: full.clone(),
                        version,
                    };
                    assert_eq!(delete(server, version), record.to_bytes());
                }
                for data in datas {
                    let record = SetDataRequest {
                        path: full.clone(),
                        data: Some(data.to_vec()),
                        version: 3,
                    };
                    assert_eq!(set_data(server, data, 3), record.to_bytes());
                    for acl in &acls {
                        let record = CreateRequest {
                            path: full.clone(),
                            data: Some(data.to_vec()),
                            acl: acl.clone(),
                            flags: 2,
                        };
                        let body = create(server, data, acl, 2, None);
                        assert_eq!(body, record.to_bytes());
                        let record = CreateTtlRequest {
                            path: full.clone(),
                            data: Some(data.to_vec()),
                            acl: acl.clone(),
                            flags: 5,
                            ttl: 60_000,
                        };
                        let body = create(server, data, acl, 5, Some(60_000));
                        assert_eq!(body, record.to_bytes());
                    }
                }
            }
        }
    }

    #[test]
    fn a_request_longer_than_the_server_accepts_is_refused() {
        let max_request_len = 1000;
        let max_body = max_request_len - <RequestHeader as Decode>::MIN_LEN;
        let path = ServerPath::new(None, "/x");
        let data = vec![0; max_body];
        let too_long = set_data(path, &data, -1);
        assert_eq!(
            checked(too_long, max_request_len),
            Err(Error::RequestTooLarge {
                len: 4 + 2 + 4 + max_body + 4,
                max: max_body
            })
        );
        let fits = max_body - (4 + 2 + 4 + 4);
        assert!(checked(set_data(path, &data[..fits], -1), max_request_len).is_ok());
    }
}
