use bytes::BytesMut;

use super::children::{GetChildrenRequest, GetChildrenResponse};
use super::header::ErrorResponse;
use super::node::{
    CheckVersionRequest, Create2Response, CreateRequest, CreateResponse, CreateTtlRequest,
    DeleteRequest, GetDataRequest, GetDataResponse, SetDataRequest, SetDataResponse,
};
use crate::error::DecodeError;
use crate::jute::{record, Decode, Encode, Reader};
use crate::types::OpCode;

record! {
    /// Precedes each operation and each result of a multi, and terminates the list
    /// (`{type: -1, done: true, err: -1}`).
    pub struct MultiHeader {
        /// The op's opcode, or -1 (error result / terminator).
        pub op_type: i32,
        /// True only on the terminator.
        pub done: bool,
        /// -1 in requests; the result code in responses.
        pub err: i32,
    }
}

impl MultiHeader {
    /// The header that ends a multi request or response.
    pub const END: MultiHeader = MultiHeader {
        op_type: -1,
        done: true,
        err: -1,
    };
}

/// One operation of a multi (opcode multi: creates, delete, setData, check) or a multiRead
/// (opcode multiRead: getChildren, getData).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum MultiOp {
    /// create (result: path).
    Create(CreateRequest),
    /// create2 (result: path and stat).
    Create2(CreateRequest),
    /// createContainer.
    CreateContainer(CreateRequest),
    /// createTTL.
    CreateTtl(CreateTtlRequest),
    /// delete.
    Delete(DeleteRequest),
    /// setData.
    SetData(SetDataRequest),
    /// check.
    Check(CheckVersionRequest),
    /// getChildren (multiRead only).
    GetChildren(GetChildrenRequest),
    /// getData (multiRead only).
    GetData(GetDataRequest),
}

impl MultiOp {
    /// The op's opcode, as written in its header.
    pub fn op_code(&self) -> OpCode {
        match self {
            MultiOp::Create(_) => OpCode::Create,
            MultiOp::Create2(_) => OpCode::Create2,
            MultiOp::CreateContainer(_) => OpCode::CreateContainer,
            MultiOp::CreateTtl(_) => OpCode::CreateTtl,
            MultiOp::Delete(_) => OpCode::Delete,
            MultiOp::SetData(_) => OpCode::SetData,
            MultiOp::Check(_) => OpCode::Check,
            MultiOp::GetChildren(_) => OpCode::GetChildren,
            MultiOp::GetData(_) => OpCode::GetData,
        }
    }

    /// The path the op works on.
    pub fn path(&self) -> &str {
        match self {
            MultiOp::Create(r) | MultiOp::Create2(r) | MultiOp::CreateContainer(r) => &r.path,
            MultiOp::CreateTtl(r) => &r.path,
            MultiOp::Delete(r) => &r.path,
            MultiOp::SetData(r) => &r.path,
            MultiOp::Check(r) => &r.path,
            MultiOp::GetChildren(r) => &r.path,
            MultiOp::GetData(r) => &r.path,
        }
    }

    /// Whether the op is a read (allowed only in multiRead).
    pub fn is_read(&self) -> bool {
        matches!(self, MultiOp::GetChildren(_) | MultiOp::GetData(_))
    }

    fn encode_body(&self, buf: &mut BytesMut) {
        match self {
            MultiOp::Create(r) | MultiOp::Create2(r) | MultiOp::CreateContainer(r) => r.encode(buf),
            MultiOp::CreateTtl(r) => r.encode(buf),
            MultiOp::Delete(r) => r.encode(buf),
            MultiOp::SetData(r) => r.encode(buf),
            MultiOp::Check(r) => r.encode(buf),
            MultiOp::GetChildren(r) => r.encode(buf),
            MultiOp::GetData(r) => r.encode(buf),
        }
    }
}

/// The body of a multi or multiRead request (jute `MultiOperationRecord`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct MultiRequest {
    /// The operations, in order.
    #[cfg_attr(
        test,
        proptest(
            strategy = "proptest::collection::vec(proptest::arbitrary::any::<MultiOp>(), 0..8)"
        )
    )]
    pub ops: Vec<MultiOp>,
}

impl Encode for MultiRequest {
    fn encode(&self, buf: &mut BytesMut) {
        for op in &self.ops {
            MultiHeader {
                op_type: op.op_code().as_i32(),
                done: false,
                err: -1,
            }
            .encode(buf);
            op.encode_body(buf);
        }
        MultiHeader::END.encode(buf);
    }
}

impl Decode for MultiRequest {
    const MIN_LEN: usize = 9;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut ops = Vec::new();
        loop {
            let header = MultiHeader::decode(r)?;
            if header.done {
                return Ok(MultiRequest { ops });
            }
            let op = match OpCode::try_from(header.op_type) {
                Ok(OpCode::Create) => MultiOp::Create(Decode::decode(r)?),
                Ok(OpCode::Create2) => MultiOp::Create2(Decode::decode(r)?),
                Ok(OpCode::CreateContainer) => MultiOp::CreateContainer(Decode::decode(r)?),
                Ok(OpCode::CreateTtl) => MultiOp::CreateTtl(Decode::decode(r)?),
                Ok(OpCode::Delete) => MultiOp::Delete(Decode::decode(r)?),
                Ok(OpCode::SetData) => MultiOp::SetData(Decode::decode(r)?),
                Ok(OpCode::Check) => MultiOp::Check(Decode::decode(r)?),
                Ok(OpCode::GetChildren) => MultiOp::GetChildren(Decode::decode(r)?),
                Ok(OpCode::GetData) => MultiOp::GetData(Decode::decode(r)?),
                _ => {
                    return Err(DecodeError::InvalidValue {
                        what: "multi op type",
                        value: i64::from(header.op_type),
                    })
                }
            };
            ops.push(op);
        }
    }
}

/// One result of a multi or multiRead.
///
/// When a transactional multi fails, every result is an [`MultiResult::Error`]: ops before the
/// failing one carry 0, the failing op its code, and the ops after it -2 (RUNTIMEINCONSISTENCY).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum MultiResult {
    /// Result of a create op (type 1).
    Create(CreateResponse),
    /// Result of a create2, createContainer or createTTL op (type 15).
    Create2(Create2Response),
    /// Result of a delete op (type 2, no body).
    Delete,
    /// Result of a setData op (type 5).
    SetData(SetDataResponse),
    /// Result of a check op (type 13, no body).
    Check,
    /// Result of a getChildren op in a multiRead (type 8).
    GetChildren(GetChildrenResponse),
    /// Result of a getData op in a multiRead (type 4).
    GetData(GetDataResponse),
    /// An error result (type -1) with its code.
    Error(i32),
}

impl MultiResult {
    /// The result type written in the header.
    pub fn op_code(&self) -> OpCode {
        match self {
            MultiResult::Create(_) => OpCode::Create,
            MultiResult::Create2(_) => OpCode::Create2,
            MultiResult::Delete => OpCode::Delete,
            MultiResult::SetData(_) => OpCode::SetData,
            MultiResult::Check => OpCode::Check,
            MultiResult::GetChildren(_) => OpCode::GetChildren,
            MultiResult::GetData(_) => OpCode::GetData,
            MultiResult::Error(_) => OpCode::Error,
        }
    }
}

/// The body of a multi or multiRead reply (jute `MultiResponse`). The reply header's err is 0
/// even when a transactional multi failed; failure shows in the results.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct MultiResponse {
    /// One result per op, in order.
    #[cfg_attr(
        test,
        proptest(
            strategy = "proptest::collection::vec(proptest::arbitrary::any::<MultiResult>(), 0..8)"
        )
    )]
    pub results: Vec<MultiResult>,
}

impl Encode for MultiResponse {
    fn encode(&self, buf: &mut BytesMut) {
        for result in &self.results {
            let err = match result {
                MultiResult::Error(err) => *err,
                _ => 0,
            };
            MultiHeader {
                op_type: result.op_code().as_i32(),
                done: false,
                err,
            }
            .encode(buf);
            match result {
                MultiResult::Create(r) => r.encode(buf),
                MultiResult::Create2(r) => r.encode(buf),
                MultiResult::Delete | MultiResult::Check => {}
                MultiResult::SetData(r) => r.encode(buf),
                MultiResult::GetChildren(r) => r.encode(buf),
                MultiResult::GetData(r) => r.encode(buf),
                MultiResult::Error(err) => ErrorResponse { err: *err }.encode(buf),
            }
        }
        MultiHeader::END.encode(buf);
    }
}

impl Decode for MultiResponse {
    const MIN_LEN: usize = 9;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut results = Vec::new();
        loop {
            let header = MultiHeader::decode(r)?;
            if header.done {
                return Ok(MultiResponse { results });
            }
            let result = match OpCode::try_from(header.op_type) {
                Ok(OpCode::Create) => MultiResult::Create(Decode::decode(r)?),
                Ok(OpCode::Create2) => MultiResult::Create2(Decode::decode(r)?),
                Ok(OpCode::Delete) => MultiResult::Delete,
                Ok(OpCode::SetData) => MultiResult::SetData(Decode::decode(r)?),
                Ok(OpCode::Check) => MultiResult::Check,
                Ok(OpCode::GetChildren) => MultiResult::GetChildren(Decode::decode(r)?),
                Ok(OpCode::GetData) => MultiResult::GetData(Decode::decode(r)?),
                Ok(OpCode::Error) => MultiResult::Error(ErrorResponse::decode(r)?.err),
                _ => {
                    return Err(DecodeError::InvalidValue {
                        what: "multi result type",
                        value: i64::from(header.op_type),
                    })
                }
            };
            results.push(result);
        }
    }
}
