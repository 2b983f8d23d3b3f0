use bytes::BytesMut;

use super::auth::{AuthPacket, GetSaslRequest};
use super::children::{
    GetAllChildrenNumberRequest, GetChildren2Request, GetChildrenRequest, GetEphemeralsRequest,
};
use super::multi::MultiRequest;
use super::node::{
    CheckVersionRequest, CreateRequest, CreateTtlRequest, DeleteRequest, ExistsRequest,
    GetAclRequest, GetDataRequest, SetAclRequest, SetDataRequest, SyncRequest,
};
use super::reconfig::ReconfigRequest;
use super::watch::{
    AddWatchRequest, CheckWatchesRequest, RemoveWatchesRequest, SetWatches, SetWatches2,
};
use crate::error::DecodeError;
use crate::jute::{Decode, Encode, Reader};
use crate::types::OpCode;

/// The body of a client request, typed by the opcode of its [`RequestHeader`](super::RequestHeader).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum Request {
    /// create (1).
    Create(CreateRequest),
    /// create2 (15).
    Create2(CreateRequest),
    /// createContainer (19).
    CreateContainer(CreateRequest),
    /// createTTL (21).
    CreateTtl(CreateTtlRequest),
    /// delete (2).
    Delete(DeleteRequest),
    /// exists (3).
    Exists(ExistsRequest),
    /// getData (4).
    GetData(GetDataRequest),
    /// setData (5).
    SetData(SetDataRequest),
    /// getACL (6).
    GetAcl(GetAclRequest),
    /// setACL (7).
    SetAcl(SetAclRequest),
    /// getChildren (8).
    GetChildren(GetChildrenRequest),
    /// getChildren2 (12).
    GetChildren2(GetChildren2Request),
    /// sync (9).
    Sync(SyncRequest),
    /// check (13); valid only inside a multi, but decodable on its own.
    Check(CheckVersionRequest),
    /// multi (14).
    Multi(MultiRequest),
    /// multiRead (22).
    MultiRead(MultiRequest),
    /// reconfig (16).
    Reconfig(ReconfigRequest),
    /// checkWatches (17).
    CheckWatches(CheckWatchesRequest),
    /// removeWatches (18).
    RemoveWatches(RemoveWatchesRequest),
    /// auth (100).
    Auth(AuthPacket),
    /// setWatches (101).
    SetWatches(SetWatches),
    /// setWatches2 (105).
    SetWatches2(SetWatches2),
    /// sasl (102).
    Sasl(GetSaslRequest),
    /// getEphemerals (103).
    GetEphemerals(GetEphemeralsRequest),
    /// getAllChildrenNumber (104).
    GetAllChildrenNumber(GetAllChildrenNumberRequest),
    /// addWatch (106).
    AddWatch(AddWatchRequest),
    /// whoAmI (107), no body.
    WhoAmI,
    /// ping (11), no body.
    Ping,
    /// closeSession (-11), no body.
    CloseSession,
}

impl Request {
    /// The opcode to put in the request header.
    pub fn op_code(&self) -> OpCode {
        match self {
            Request::Create(_) => OpCode::Create,
            Request::Create2(_) => OpCode::Create2,
            Request::CreateContainer(_) => OpCode::CreateContainer,
            Request::CreateTtl(_) => OpCode::CreateTtl,
            Request::Delete(_) => OpCode::Delete,
            Request::Exists(_) => OpCode::Exists,
            Request::GetData(_) => OpCode::GetData,
            Request::SetData(_) => OpCode::SetData,
            Request::GetAcl(_) => OpCode::GetAcl,
            Request::SetAcl(_) => OpCode::SetAcl,
            Request::GetChildren(_) => OpCode::GetChildren,
            Request::GetChildren2(_) => OpCode::GetChildren2,
            Request::Sync(_) => OpCode::Sync,
            Request::Check(_) => OpCode::Check,
            Request::Multi(_) => OpCode::Multi,
            Request::MultiRead(_) => OpCode::MultiRead,
            Request::Reconfig(_) => OpCode::Reconfig,
            Request::CheckWatches(_) => OpCode::CheckWatches,
            Request::RemoveWatches(_) => OpCode::RemoveWatches,
            Request::Auth(_) => OpCode::Auth,
            Request::SetWatches(_) => OpCode::SetWatches,
            Request::SetWatches2(_) => OpCode::SetWatches2,
            Request::Sasl(_) => OpCode::Sasl,
            Request::GetEphemerals(_) => OpCode::GetEphemerals,
            Request::GetAllChildrenNumber(_) => OpCode::GetAllChildrenNumber,
            Request::AddWatch(_) => OpCode::AddWatch,
            Request::WhoAmI => OpCode::WhoAmI,
            Request::Ping => OpCode::Ping,
            Request::CloseSession => OpCode::CloseSession,
        }
    }

    /// Reads the body that a request with opcode `op` carries. Opcodes that clients never send
    /// (notification, deleteContainer, createSession, error) are an error.
    pub fn decode_for(op: OpCode, r: &mut Reader<'_>) -> Result<Request, DecodeError> {
        Ok(match op {
            OpCode::Create => Request::Create(Decode::decode(r)?),
            OpCode::Create2 => Request::Create2(Decode::decode(r)?),
            OpCode::CreateContainer => Request::CreateContainer(Decode::decode(r)?),
            OpCode::CreateTtl => Request::CreateTtl(Decode::decode(r)?),
            OpCode::Delete => Request::Delete(Decode::decode(r)?),
            OpCode::Exists => Request::Exists(Decode::decode(r)?),
            OpCode::GetData => Request::GetData(Decode::decode(r)?),
            OpCode::SetData => Request::SetData(Decode::decode(r)?),
            OpCode::GetAcl => Request::GetAcl(Decode::decode(r)?),
            OpCode::SetAcl => Request::SetAcl(Decode::decode(r)?),
            OpCode::GetChildren => Request::GetChildren(Decode::decode(r)?),
            OpCode::GetChildren2 => Request::GetChildren2(Decode::decode(r)?),
            OpCode::Sync => Request::Sync(Decode::decode(r)?),
            OpCode::Check => Request::Check(Decode::decode(r)?),
            OpCode::Multi => Request::Multi(Decode::decode(r)?),
            OpCode::MultiRead => Request::MultiRead(Decode::decode(r)?),
            OpCode::Reconfig => Request::Reconfig(Decode::decode(r)?),
            OpCode::CheckWatches => Request::CheckWatches(Decode::decode(r)?),
            OpCode::RemoveWatches => Request::RemoveWatches(Decode::decode(r)?),
            OpCode::Auth => Request::Auth(Decode::decode(r)?),
            OpCode::SetWatches => Request::SetWatches(Decode::decode(r)?),
            OpCode::SetWatches2 => Request::SetWatches2(Decode::decode(r)?),
            OpCode::Sasl => Request::Sasl(Decode::decode(r)?),
            OpCode::GetEphemerals => Request::GetEphemerals(Decode::decode(r)?),
            OpCode::GetAllChildrenNumber => Request::GetAllChildrenNumber(Decode::decode(r)?),
            OpCode::AddWatch => Request::AddWatch(Decode::decode(r)?),
            OpCode::WhoAmI => Request::WhoAmI,
            OpCode::Ping => Request::Ping,
            OpCode::CloseSession => Request::CloseSession,
            OpCode::Notification
            | OpCode::DeleteContainer
            | OpCode::CreateSession
            | OpCode::Error => {
                return Err(DecodeError::InvalidValue {
                    what: "client request opcode",
                    value: i64::from(op.as_i32()),
                })
            }
        })
    }
}

impl Encode for Request {
    fn encode(&self, buf: &mut BytesMut) {
        match self {
            Request::Create(r) | Request::Create2(r) | Request::CreateContainer(r) => r.encode(buf),
            Request::CreateTtl(r) => r.encode(buf),
            Request::Delete(r) => r.encode(buf),
            Request::Exists(r) => r.encode(buf),
            Request::GetData(r) => r.encode(buf),
            Request::SetData(r) => r.encode(buf),
            Request::GetAcl(r) => r.encode(buf),
            Request::SetAcl(r) => r.encode(buf),
            Request::GetChildren(r) => r.encode(buf),
            Request::GetChildren2(r) => r.encode(buf),
            Request::Sync(r) => r.encode(buf),
            Request::Check(r) => r.encode(buf),
            Request::Multi(r) | Request::MultiRead(r) => r.encode(buf),
            Request::Reconfig(r) => r.encode(buf),
            Request::CheckWatches(r) => r.encode(buf),
            Request::RemoveWatches(r) => r.encode(buf),
            Request::Auth(r) => r.encode(buf),
            Request::SetWatches(r) => r.encode(buf),
            Request::SetWatches2(r) => r.encode(buf),
            Request::Sasl(r) => r.encode(buf),
            Request::GetEphemerals(r) => r.encode(buf),
            Request::GetAllChildrenNumber(r) => r.encode(buf),
            Request::AddWatch(r) => r.encode(buf),
            Request::WhoAmI | Request::Ping | Request::CloseSession => {}
        }
    }
}
