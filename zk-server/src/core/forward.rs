//! What a learner hands to its leader: its clients' writes (prepared into txns by the leader,
//! ZooKeeper's `Request` forwarded by `FollowerRequestProcessor`), new sessions, sessions
//! re-attached to it (Apache's REVALIDATE), and the liveness of the sessions connected to it
//! (what Apache's learners relay in their pings).

use bytes::{BufMut, Bytes, BytesMut};
use zk_proto::{DecodeError, Encode, Id, OpCode, Reader, Request};

/// One forwarded item.
#[derive(Debug, Clone, PartialEq)]
pub enum Forwarded {
    /// A session's write (closeSession and sync included) with the connection's identities,
    /// against which the leader checks ACLs.
    Request {
        /// The session.
        session_id: i64,
        /// The request's xid (the txn's cxid).
        cxid: i32,
        /// The connection's authenticated identities.
        auth: Vec<Id>,
        /// The request.
        request: Request,
    },
    /// A new session, with the id the learner chose (its server id in the top byte).
    CreateSession {
        /// The session id.
        session_id: i64,
        /// The negotiated timeout, ms.
        timeout_ms: i32,
    },
    /// A client re-attached a session at the learner: the session is the learner's now.
    Attach {
        /// The session.
        session_id: i64,
    },
    /// A client re-attaches a session the learner does not know (its creation may not have
    /// reached the learner yet): the leader answers with a no-op txn for the session —
    /// error code 0 if the session is alive (it is the learner's now), SESSIONEXPIRED if
    /// not — so that the learner, applying it, knows everything the leader knew.
    Revalidate {
        /// The session.
        session_id: i64,
    },
    /// Sessions connected to the learner and alive.
    Touch {
        /// Their ids.
        sessions: Vec<i64>,
    },
}

const REQUEST: u8 = 1;
const CREATE_SESSION: u8 = 2;
const TOUCH: u8 = 3;
const ATTACH: u8 = 4;
const REVALIDATE: u8 = 5;

/// The cxid of the txn answering a [`Forwarded::Revalidate`] (no client request has it:
/// clients number their requests from 1).
pub const REVALIDATE_CXID: i32 = i32::MIN;

impl Forwarded {
    /// The encoded form.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(128);
        match self {
            Forwarded::Request {
                session_id,
                cxid,
                auth,
                request,
            } => {
                buf.put_u8(REQUEST);
                buf.put_i64(*session_id);
                buf.put_i32(*cxid);
                zk_proto::jute::put_vector(&mut buf, Some(auth.as_slice()));
                buf.put_i32(request.op_code().as_i32());
                request.encode(&mut buf);
            }
            Forwarded::CreateSession {
                session_id,
                timeout_ms,
            } => {
                buf.put_u8(CREATE_SESSION);
                buf.put_i64(*session_id);
                buf.put_i32(*timeout_ms);
            }
            Forwarded::Attach { session_id } => {
                buf.put_u8(ATTACH);
                buf.put_i64(*session_id);
            }
            Forwarded::Revalidate { session_id } => {
                buf.put_u8(REVALIDATE);
                buf.put_i64(*session_id);
            }
            Forwarded::Touch { sessions } => {
                buf.put_u8(TOUCH);
                zk_proto::jute::put_vector(&mut buf, Some(sessions.as_slice()));
            }
        }
        buf.freeze()
    }

    /// Decodes what [`encode`](Self::encode) wrote.
    ///
    /// # Errors
    /// The bytes are not a forwarded item.
    pub fn decode(bytes: &[u8]) -> Result<Forwarded, DecodeError> {
        let mut r = Reader::new(bytes);
        match r.read_u8("forwarded kind")? {
            REQUEST => {
                let session_id = r.read_i64("session id")?;
                let cxid = r.read_i32("cxid")?;
                let auth = r.read_vector::<Id>("auth")?.unwrap_or_default();
                let op = r.read_i32("opcode")?;
                let op = OpCode::try_from(op).map_err(|_| DecodeError::InvalidValue {
                    what: "forwarded opcode",
                    value: i64::from(op),
                })?;
                let request = Request::decode_for(op, &mut r)?;
                Ok(Forwarded::Request {
                    session_id,
                    cxid,
                    auth,
                    request,
                })
            }
            CREATE_SESSION => Ok(Forwarded::CreateSession {
                session_id: r.read_i64("session id")?,
                timeout_ms: r.read_i32("timeout")?,
            }),
            ATTACH => Ok(Forwarded::Attach {
                session_id: r.read_i64("session id")?,
            }),
            REVALIDATE => Ok(Forwarded::Revalidate {
                session_id: r.read_i64("session id")?,
            }),
            TOUCH => Ok(Forwarded::Touch {
                sessions: r.read_vector::<i64>("sessions")?.unwrap_or_default(),
            }),
            other => Err(DecodeError::InvalidValue {
                what: "forwarded kind",
                value: i64::from(other),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zk_proto::{CreateRequest, SyncRequest};

    fn roundtrip(item: Forwarded) {
        assert_eq!(Forwarded::decode(&item.encode()), Ok(item));
    }

    #[test]
    fn every_kind_roundtrips() {
        roundtrip(Forwarded::Request {
            session_id: 0x0100_0000_0000_0007,
            cxid: 42,
            auth: vec![Id::new("ip", "127.0.0.1"), Id::new("digest", "u:h")],
            request: Request::Create(CreateRequest {
                path: "/a".into(),
                data: Some(b"x".to_vec()),
                acl: zk_proto::Acl::open_unsafe(),
                flags: 1,
            }),
        });
        roundtrip(Forwarded::Request {
            session_id: 5,
            cxid: 1,
            auth: Vec::new(),
            request: Request::Sync(SyncRequest { path: "/".into() }),
        });
        roundtrip(Forwarded::Request {
            session_id: 5,
            cxid: 2,
            auth: Vec::new(),
            request: Request::CloseSession,
        });
        roundtrip(Forwarded::CreateSession {
            session_id: 9,
            timeout_ms: 4000,
        });
        roundtrip(Forwarded::Touch {
            sessions: vec![1, 2, 3],
        });
        roundtrip(Forwarded::Attach { session_id: -7 });
        roundtrip(Forwarded::Revalidate { session_id: 9 });
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Forwarded::decode(&[]).is_err());
        assert!(Forwarded::decode(&[9]).is_err());
        assert!(Forwarded::decode(&[REQUEST, 0, 0]).is_err());
        let mut truncated = Forwarded::Touch {
            sessions: vec![1, 2],
        }
        .encode()
        .to_vec();
        truncated.pop();
        assert!(Forwarded::decode(&truncated).is_err());
    }
}
