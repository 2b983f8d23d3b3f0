use std::fmt;
use std::ops::{BitOr, BitOrAssign};

use base64::Engine as _;
use bytes::{BufMut, BytesMut};
use sha1::{Digest as _, Sha1};

use crate::error::DecodeError;
use crate::jute::{jute_vector, record, Decode, Encode, Reader};

/// A permission bit set (`ZooDefs.Perms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Perms(i32);

impl Perms {
    /// No permission.
    pub const NONE: Perms = Perms(0);
    /// Read data and list children.
    pub const READ: Perms = Perms(1);
    /// Write data.
    pub const WRITE: Perms = Perms(2);
    /// Create children.
    pub const CREATE: Perms = Perms(4);
    /// Delete children.
    pub const DELETE: Perms = Perms(8);
    /// Read and set the ACL.
    pub const ADMIN: Perms = Perms(16);
    /// Every permission.
    pub const ALL: Perms = Perms(31);

    /// Wraps raw bits as found on the wire (unknown bits are kept).
    pub const fn from_bits(bits: i32) -> Perms {
        Perms(bits)
    }

    /// The raw bits.
    pub const fn bits(self) -> i32 {
        self.0
    }

    /// Whether every bit of `other` is set in `self`.
    pub const fn contains(self, other: Perms) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for Perms {
    type Output = Perms;
    fn bitor(self, rhs: Perms) -> Perms {
        Perms(self.0 | rhs.0)
    }
}

impl BitOrAssign for Perms {
    fn bitor_assign(&mut self, rhs: Perms) {
        self.0 |= rhs.0;
    }
}

impl fmt::Display for Perms {
    /// zkCli's notation: `c`, `d`, `r`, `w`, `a` for each bit set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (bit, c) in [
            (Perms::CREATE, 'c'),
            (Perms::DELETE, 'd'),
            (Perms::READ, 'r'),
            (Perms::WRITE, 'w'),
            (Perms::ADMIN, 'a'),
        ] {
            if self.contains(bit) {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

impl Encode for Perms {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_i32(self.0);
    }
}

impl Decode for Perms {
    const MIN_LEN: usize = 4;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_i32("perms").map(Perms)
    }
}

record! {
    /// An identity: an authentication scheme and an id within it (`world:anyone`,
    /// `digest:user:BASE64`, `ip:10.0.0.0/8`, `auth:`, `super:…`).
    pub struct Id {
        /// The scheme: `world`, `auth`, `digest`, `ip`, `super`, `sasl`, `x509`.
        pub scheme: String,
        /// The id within the scheme.
        pub id: String,
    }
}

impl Id {
    /// An identity from its parts.
    pub fn new(scheme: impl Into<String>, id: impl Into<String>) -> Id {
        Id {
            scheme: scheme.into(),
            id: id.into(),
        }
    }

    /// `world:anyone`, everybody (`ZooDefs.Ids.ANYONE_ID_UNSAFE`).
    pub fn anyone() -> Id {
        Id::new("world", "anyone")
    }

    /// `auth:`, which the server expands to every authenticated identity of the connection
    /// (`ZooDefs.Ids.AUTH_IDS`).
    pub fn authenticated() -> Id {
        Id::new("auth", "")
    }

    /// The `digest` identity for a user and password, as the server derives it from an
    /// `addauth digest user:password`.
    pub fn digest(user: &str, password: &str) -> Id {
        Id::new("digest", digest_id(user, password))
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.scheme, self.id)
    }
}

record! {
    /// One access-control entry: permissions granted to an identity.
    pub struct Acl {
        /// The permissions granted.
        pub perms: Perms,
        /// Who they are granted to.
        pub id: Id,
    }
}

impl Acl {
    /// An entry from its parts.
    pub fn new(perms: Perms, id: Id) -> Acl {
        Acl { perms, id }
    }

    /// Everything for everybody (`ZooDefs.Ids.OPEN_ACL_UNSAFE`).
    pub fn open_unsafe() -> Vec<Acl> {
        vec![Acl::new(Perms::ALL, Id::anyone())]
    }

    /// Everything for the creator's authenticated identities (`ZooDefs.Ids.CREATOR_ALL_ACL`).
    pub fn creator_all() -> Vec<Acl> {
        vec![Acl::new(Perms::ALL, Id::authenticated())]
    }

    /// Read-only for everybody (`ZooDefs.Ids.READ_ACL_UNSAFE`).
    pub fn read_unsafe() -> Vec<Acl> {
        vec![Acl::new(Perms::READ, Id::anyone())]
    }
}

jute_vector!(Id, Acl);

/// The digest id for `user` and `password`: `user:` + base64(SHA-1(`user:password`)), as
/// `DigestAuthenticationProvider.generateDigest` computes it.
pub fn digest_id(user: &str, password: &str) -> String {
    digest_of(&format!("{user}:{password}"))
}

/// The digest id of an `addauth digest` text, as `DigestAuthenticationProvider.generateDigest`
/// computes it: the text up to its first `:` (all of it when there is none) + `:` +
/// base64(SHA-1(text)).
pub fn digest_of(text: &str) -> String {
    let user = text.split_once(':').map_or(text, |(user, _)| user);
    let hash = Sha1::digest(text.as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_apache() {
        // Value from `DigestAuthenticationProvider.generateDigest("super:test")`, the example in
        // ZooKeeper's administrator guide.
        assert_eq!(
            digest_id("super", "test"),
            "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
        );
    }

    #[test]
    fn perms_display_like_zkcli() {
        assert_eq!(Perms::ALL.to_string(), "cdrwa");
        assert_eq!((Perms::READ | Perms::ADMIN).to_string(), "ra");
        assert!(Perms::ALL.contains(Perms::WRITE | Perms::DELETE));
        assert!(!Perms::READ.contains(Perms::WRITE));
    }
}
