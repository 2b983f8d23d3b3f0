//! One znode.

use std::sync::Arc;

use zk_proto::{Acl, Stat, StatPersisted};

use super::Children;

/// `ephemeralOwner` marker of container nodes (`Long.MIN_VALUE`).
pub const CONTAINER_OWNER: i64 = i64::MIN;
/// High byte of the `ephemeralOwner` of TTL nodes; the low 40 bits hold the TTL in ms.
const TTL_OWNER_MARKER: i64 = 0xFF00_0000_0000_0000_u64 as i64;
const TTL_MASK: i64 = (1 << 40) - 1;
/// The largest TTL a node can carry (2^40 - 1 ms, about 34 years).
pub const MAX_TTL_MS: i64 = TTL_MASK;

/// What kind of owner an `ephemeralOwner` value encodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// A persistent node (owner 0).
    None,
    /// An ephemeral node of this session.
    Session(i64),
    /// A container node.
    Container,
    /// A TTL node with this TTL in ms.
    Ttl(i64),
}

impl Owner {
    /// Decodes a stored `ephemeralOwner`.
    pub fn from_stored(owner: i64) -> Owner {
        if owner == 0 {
            Owner::None
        } else if owner == CONTAINER_OWNER {
            Owner::Container
        } else if owner & !TTL_MASK == TTL_OWNER_MARKER {
            Owner::Ttl(owner & TTL_MASK)
        } else {
            Owner::Session(owner)
        }
    }

    /// The stored `ephemeralOwner` value.
    pub fn to_stored(self) -> i64 {
        match self {
            Owner::None => 0,
            Owner::Session(id) => id,
            Owner::Container => CONTAINER_OWNER,
            Owner::Ttl(ttl) => TTL_OWNER_MARKER | (ttl & TTL_MASK),
        }
    }
}

/// A znode: data, ACL, persisted stat and child names.
#[derive(Debug, Clone)]
pub struct DataNode {
    /// The data; `None` is null data.
    pub data: Option<Vec<u8>>,
    /// The ACL (shared between nodes with equal ACLs).
    pub acl: Arc<Vec<Acl>>,
    /// The persisted stat (stored cversion, raw ephemeral owner).
    pub stat: StatPersisted,
    /// Names of the direct children.
    pub children: Children,
}

impl DataNode {
    /// The owner encoded in the stat.
    pub fn owner(&self) -> Owner {
        Owner::from_stored(self.stat.ephemeral_owner)
    }

    /// The stat as clients see it: cversion = 2 × creates − children, ephemeralOwner 0 for
    /// containers and TTL nodes, dataLength 0 for null data.
    pub fn client_stat(&self) -> Stat {
        let num_children = i32::try_from(self.children.len()).unwrap_or(i32::MAX);
        let ephemeral_owner = match self.owner() {
            Owner::Session(id) => id,
            Owner::None | Owner::Container | Owner::Ttl(_) => 0,
        };
        Stat {
            czxid: self.stat.czxid,
            mzxid: self.stat.mzxid,
            ctime: self.stat.ctime,
            mtime: self.stat.mtime,
            version: self.stat.version,
            cversion: self
                .stat
                .cversion
                .wrapping_mul(2)
                .wrapping_sub(num_children),
            aversion: self.stat.aversion,
            ephemeral_owner,
            data_length: self
                .data
                .as_ref()
                .map_or(0, |d| i32::try_from(d.len()).unwrap_or(i32::MAX)),
            num_children,
            pzxid: self.stat.pzxid,
        }
    }

    /// Approximate bytes of data held (for `zk_approximate_data_size`).
    pub fn approximate_size(&self, path: &str) -> usize {
        path.len() + self.data.as_ref().map_or(0, Vec::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_encodings() {
        for owner in [
            Owner::None,
            Owner::Session(0x0100_0000_0000_0001),
            Owner::Container,
            Owner::Ttl(1),
            Owner::Ttl(MAX_TTL_MS),
        ] {
            assert_eq!(Owner::from_stored(owner.to_stored()), owner);
        }
        assert_eq!(Owner::Container.to_stored(), i64::MIN);
        assert_eq!(Owner::Ttl(5).to_stored() as u64, 0xFF00_0000_0000_0005);
    }
}
