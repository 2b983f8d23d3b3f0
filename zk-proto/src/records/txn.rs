use bytes::BytesMut;

use crate::error::DecodeError;
use crate::jute::{jute_vector, record, Decode, Encode, Reader};
use crate::types::{Acl, OpCode};

record! {
    /// Precedes every transaction in the log, in proposals and in multi sub-txns' parent.
    pub struct TxnHeader {
        /// The session that issued the request.
        pub client_id: i64,
        /// The request's xid.
        pub cxid: i32,
        /// The txn's zxid.
        pub zxid: i64,
        /// The leader's clock when the txn was created, ms since the epoch.
        pub time: i64,
        /// The txn type (an opcode).
        pub txn_type: i32,
    }
}

record! {
    /// Creates a persistent, ephemeral or sequential node (types create and create2).
    pub struct CreateTxn {
        /// The final path (with the sequence suffix).
        pub path: String,
        /// Initial data.
        pub data: Option<Vec<u8>>,
        /// The ACL.
        pub acl: Vec<Acl>,
        /// Whether the node is ephemeral (owned by the txn's session).
        pub ephemeral: bool,
        /// The parent's stored cversion after this create.
        pub parent_cversion: i32,
    }
}

record! {
    /// Creates a container node.
    pub struct CreateContainerTxn {
        /// The path.
        pub path: String,
        /// Initial data.
        pub data: Option<Vec<u8>>,
        /// The ACL.
        pub acl: Vec<Acl>,
        /// The parent's stored cversion after this create.
        pub parent_cversion: i32,
    }
}

record! {
    /// Creates a TTL node.
    pub struct CreateTtlTxn {
        /// The final path.
        pub path: String,
        /// Initial data.
        pub data: Option<Vec<u8>>,
        /// The ACL.
        pub acl: Vec<Acl>,
        /// The parent's stored cversion after this create.
        pub parent_cversion: i32,
        /// Time to live, ms.
        pub ttl: i64,
    }
}

record! {
    /// Deletes a node (types delete and deleteContainer).
    pub struct DeleteTxn {
        /// The path.
        pub path: String,
    }
}

record! {
    /// Sets a node's data.
    pub struct SetDataTxn {
        /// The path.
        pub path: String,
        /// The new data.
        pub data: Option<Vec<u8>>,
        /// The node's version after the change.
        pub version: i32,
    }
}

record! {
    /// Sets a node's ACL.
    pub struct SetAclTxn {
        /// The path.
        pub path: String,
        /// The new ACL.
        pub acl: Vec<Acl>,
        /// The node's ACL version after the change.
        pub version: i32,
    }
}

record! {
    /// A version check inside a multi.
    pub struct CheckVersionTxn {
        /// The path.
        pub path: String,
        /// The version checked.
        pub version: i32,
    }
}

record! {
    /// Creates a session.
    pub struct CreateSessionTxn {
        /// Negotiated timeout, ms.
        pub time_out: i32,
    }
}

/// Closes a session and deletes its ephemerals. The path list was added in 3.6; older logs have
/// an empty body, read here as an empty list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct CloseSessionTxn {
    /// The ephemerals deleted with the session.
    pub paths_to_delete: Vec<String>,
}

impl Encode for CloseSessionTxn {
    fn encode(&self, buf: &mut BytesMut) {
        self.paths_to_delete.encode(buf);
    }
}

impl Decode for CloseSessionTxn {
    const MIN_LEN: usize = 0;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        if r.is_empty() {
            return Ok(CloseSessionTxn::default());
        }
        Ok(CloseSessionTxn {
            paths_to_delete: Vec::decode(r)?,
        })
    }
}

record! {
    /// A failed request (also a failed multi's sub-results).
    pub struct ErrorTxn {
        /// The result code.
        pub err: i32,
    }
}

record! {
    /// One sub-transaction of a [`MultiTxn`] (jute `Txn`).
    pub struct SubTxn {
        /// The sub-txn's type (an opcode).
        pub txn_type: i32,
        /// The encoded sub-txn record.
        pub data: Vec<u8>,
    }
}

jute_vector!(SubTxn);

record! {
    /// A multi: its sub-transactions, all sharing the header's zxid.
    pub struct MultiTxn {
        /// The sub-transactions, in order.
        pub txns: Vec<SubTxn>,
    }
}

impl MultiTxn {
    /// Packs typed bodies into sub-txns.
    pub fn from_bodies<'a>(bodies: impl IntoIterator<Item = &'a TxnBody>) -> MultiTxn {
        MultiTxn {
            txns: bodies
                .into_iter()
                .map(|body| SubTxn {
                    txn_type: body.op_code().as_i32(),
                    data: body.to_bytes().to_vec(),
                })
                .collect(),
        }
    }

    /// Unpacks the sub-txns into typed bodies.
    pub fn bodies(&self) -> Result<Vec<TxnBody>, DecodeError> {
        self.txns
            .iter()
            .map(|sub| TxnBody::decode_for(sub.txn_type, &mut Reader::new(&sub.data)))
            .collect()
    }
}

/// The version of Apache's txn digest (`DigestCalculator.DIGEST_VERSION`).
pub(crate) const DIGEST_VERSION: i32 = 2;

record! {
    /// The tree digest after a txn (3.6+), appended after the txn record.
    pub struct TxnDigest {
        /// Digest algorithm version.
        pub version: i32,
        /// The digest.
        pub tree_digest: i64,
    }
}

/// A transaction record, typed by the header's txn type.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum TxnBody {
    /// Type create.
    Create(CreateTxn),
    /// Type create2 (same record as create).
    Create2(CreateTxn),
    /// Type createContainer.
    CreateContainer(CreateContainerTxn),
    /// Type createTTL.
    CreateTtl(CreateTtlTxn),
    /// Type delete.
    Delete(DeleteTxn),
    /// Type deleteContainer (same record as delete).
    DeleteContainer(DeleteTxn),
    /// Type setData.
    SetData(SetDataTxn),
    /// Type reconfig: the new dynamic configuration written to `/zookeeper/config` (same
    /// record as setData; Apache's ensembles log it after a `reconfig`).
    Reconfig(SetDataTxn),
    /// Type setACL.
    SetAcl(SetAclTxn),
    /// Type check.
    Check(CheckVersionTxn),
    /// Type createSession.
    CreateSession(CreateSessionTxn),
    /// Type closeSession.
    CloseSession(CloseSessionTxn),
    /// Type error.
    Error(ErrorTxn),
    /// Type multi.
    Multi(MultiTxn),
}

impl TxnBody {
    /// The txn type to write in the header.
    pub fn op_code(&self) -> OpCode {
        match self {
            TxnBody::Create(_) => OpCode::Create,
            TxnBody::Create2(_) => OpCode::Create2,
            TxnBody::CreateContainer(_) => OpCode::CreateContainer,
            TxnBody::CreateTtl(_) => OpCode::CreateTtl,
            TxnBody::Delete(_) => OpCode::Delete,
            TxnBody::DeleteContainer(_) => OpCode::DeleteContainer,
            TxnBody::SetData(_) => OpCode::SetData,
            TxnBody::Reconfig(_) => OpCode::Reconfig,
            TxnBody::SetAcl(_) => OpCode::SetAcl,
            TxnBody::Check(_) => OpCode::Check,
            TxnBody::CreateSession(_) => OpCode::CreateSession,
            TxnBody::CloseSession(_) => OpCode::CloseSession,
            TxnBody::Error(_) => OpCode::Error,
            TxnBody::Multi(_) => OpCode::Multi,
        }
    }

    /// Reads the record that txn type `txn_type` carries.
    pub fn decode_for(txn_type: i32, r: &mut Reader<'_>) -> Result<TxnBody, DecodeError> {
        Ok(match OpCode::try_from(txn_type) {
            Ok(OpCode::Create) => TxnBody::Create(Decode::decode(r)?),
            Ok(OpCode::Create2) => TxnBody::Create2(Decode::decode(r)?),
            Ok(OpCode::CreateContainer) => TxnBody::CreateContainer(Decode::decode(r)?),
            Ok(OpCode::CreateTtl) => TxnBody::CreateTtl(Decode::decode(r)?),
            Ok(OpCode::Delete) => TxnBody::Delete(Decode::decode(r)?),
            Ok(OpCode::DeleteContainer) => TxnBody::DeleteContainer(Decode::decode(r)?),
            Ok(OpCode::SetData) => TxnBody::SetData(Decode::decode(r)?),
            Ok(OpCode::Reconfig) => TxnBody::Reconfig(Decode::decode(r)?),
            Ok(OpCode::SetAcl) => TxnBody::SetAcl(Decode::decode(r)?),
            Ok(OpCode::Check) => TxnBody::Check(Decode::decode(r)?),
            Ok(OpCode::CreateSession) => TxnBody::CreateSession(Decode::decode(r)?),
            Ok(OpCode::CloseSession) => TxnBody::CloseSession(Decode::decode(r)?),
            Ok(OpCode::Error) => TxnBody::Error(Decode::decode(r)?),
            Ok(OpCode::Multi) => TxnBody::Multi(Decode::decode(r)?),
            _ => {
                return Err(DecodeError::InvalidValue {
                    what: "txn type",
                    value: i64::from(txn_type),
                })
            }
        })
    }
}

impl Encode for TxnBody {
    fn encode(&self, buf: &mut BytesMut) {
        match self {
            TxnBody::Create(t) | TxnBody::Create2(t) => t.encode(buf),
            TxnBody::CreateContainer(t) => t.encode(buf),
            TxnBody::CreateTtl(t) => t.encode(buf),
            TxnBody::Delete(t) | TxnBody::DeleteContainer(t) => t.encode(buf),
            TxnBody::SetData(t) | TxnBody::Reconfig(t) => t.encode(buf),
            TxnBody::SetAcl(t) => t.encode(buf),
            TxnBody::Check(t) => t.encode(buf),
            TxnBody::CreateSession(t) => t.encode(buf),
            TxnBody::CloseSession(t) => t.encode(buf),
            TxnBody::Error(t) => t.encode(buf),
            TxnBody::Multi(t) => t.encode(buf),
        }
    }
}

/// A complete logged transaction: header, typed body and optional digest, as stored in one
/// txn-log entry and carried in a PROPOSAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    /// The header; its `txn_type` selects the body's record.
    pub header: TxnHeader,
    /// The body.
    pub body: TxnBody,
    /// The tree digest, when the writer appended one.
    pub digest: Option<TxnDigest>,
}

impl Txn {
    /// A txn whose header type is taken from the body.
    pub fn new(client_id: i64, cxid: i32, zxid: i64, time: i64, body: TxnBody) -> Txn {
        Txn {
            header: TxnHeader {
                client_id,
                cxid,
                zxid,
                time,
                txn_type: body.op_code().as_i32(),
            },
            body,
            digest: None,
        }
    }
}

impl Encode for Txn {
    fn encode(&self, buf: &mut BytesMut) {
        self.header.encode(buf);
        self.body.encode(buf);
        if let Some(digest) = &self.digest {
            digest.encode(buf);
        }
    }
}

impl Decode for Txn {
    const MIN_LEN: usize = TxnHeader::MIN_LEN;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let header = TxnHeader::decode(r)?;
        // Apache 3.6+ with zookeeper.closeSessionTxn.enabled=false writes a closeSession
        // without its path list but with a digest: exactly a digest's bytes remain, starting
        // with its version (2). (A path list plus a digest is longer; a path list alone of
        // that length starts with a count of 1.)
        let body = if header.txn_type == OpCode::CloseSession.as_i32()
            && r.remaining() == TxnDigest::MIN_LEN
            && r.rest().get(..4) == Some(&DIGEST_VERSION.to_be_bytes()[..])
        {
            TxnBody::CloseSession(CloseSessionTxn::default())
        } else {
            TxnBody::decode_for(header.txn_type, r)?
        };
        let digest = if r.remaining() >= TxnDigest::MIN_LEN {
            Some(TxnDigest::decode(r)?)
        } else {
            None
        };
        Ok(Txn {
            header,
            body,
            digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(txn_type: OpCode) -> TxnHeader {
        TxnHeader {
            client_id: 0x100,
            cxid: 3,
            zxid: 0x1_0000_0007,
            time: 1_700_000_000_000,
            txn_type: txn_type.as_i32(),
        }
    }

    /// What Apache 3.6+ writes with zookeeper.closeSessionTxn.enabled=false: the header, no
    /// path list, and a digest.
    #[test]
    fn a_close_session_with_only_a_digest_decodes() {
        let mut bytes = BytesMut::new();
        header(OpCode::CloseSession).encode(&mut bytes);
        let digest = TxnDigest {
            version: 2,
            tree_digest: 0x1234_5678_9abc_def0,
        };
        digest.encode(&mut bytes);
        let txn = Txn::from_bytes(&bytes).expect("decodes");
        assert_eq!(txn.body, TxnBody::CloseSession(CloseSessionTxn::default()));
        assert_eq!(txn.digest, Some(digest));
    }

    /// A closeSession path list as long as a digest (one 4-character path) stays a path list.
    #[test]
    fn a_close_session_path_list_as_long_as_a_digest_is_a_path_list() {
        let mut bytes = BytesMut::new();
        header(OpCode::CloseSession).encode(&mut bytes);
        let body = CloseSessionTxn {
            paths_to_delete: vec!["/abc".to_owned()],
        };
        body.encode(&mut bytes);
        let txn = Txn::from_bytes(&bytes).expect("decodes");
        assert_eq!(txn.body, TxnBody::CloseSession(body));
        assert_eq!(txn.digest, None);
    }

    /// Apache logs a reconfig as a setData of /zookeeper/config under txn type 16.
    #[test]
    fn a_reconfig_txn_round_trips_as_set_data_under_its_own_type() {
        let mut bytes = BytesMut::new();
        header(OpCode::Reconfig).encode(&mut bytes);
        let record = SetDataTxn {
            path: "/zookeeper/config".into(),
            data: Some(b"server.1=h:2888:3888;2181\nversion=100000002".to_vec()),
            version: -1,
        };
        record.encode(&mut bytes);
        let txn = Txn::from_bytes(&bytes).expect("decodes");
        assert_eq!(txn.body, TxnBody::Reconfig(record));
        assert_eq!(txn.to_bytes(), bytes);
    }
}
