//! The client's error type: every ZooKeeper result code plus the conditions the client itself
//! detects (bad arguments, lost connections, a closed client, a malformed reply).

use thiserror::Error as ThisError;
use zk_proto::{ErrorCode, OpCode, PathError};

/// The largest node data the client sends by default: Apache ZooKeeper's default
/// `jute.maxbuffer` (1 MiB − 1). Larger data is rejected before anything is sent; servers
/// with a larger limit take larger data once the client is told
/// ([`SessionConfig::max_request_len`](crate::SessionConfig::max_request_len)).
pub const MAX_DATA_LEN: usize = 0xfffff;

/// A `Result` whose error is the client's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a ZooKeeper call.
///
/// Server result codes map one to one onto variants (see [`Error::from_code`]); client-side
/// conditions have their own variants. Use the predicates ([`Error::is_retryable`],
/// [`Error::is_session_terminal`], [`Error::code`]) rather than matching many variants.
#[derive(Debug, Clone, PartialEq, Eq, ThisError)]
#[non_exhaustive]
pub enum Error {
    // ----- server result codes -----
    /// SYSTEMERROR (-1).
    #[error("system error (SYSTEMERROR)")]
    SystemError,
    /// RUNTIMEINCONSISTENCY (-2); also the result of ops after the failing op of a transaction.
    #[error("runtime inconsistency (RUNTIMEINCONSISTENCY)")]
    RuntimeInconsistency,
    /// DATAINCONSISTENCY (-3).
    #[error("data inconsistency (DATAINCONSISTENCY)")]
    DataInconsistency,
    /// CONNECTIONLOSS (-4): the connection dropped (or none could be made in time) before the
    /// reply arrived. The outcome of a write is unknown.
    #[error("connection loss (CONNECTIONLOSS)")]
    ConnectionLoss,
    /// MARSHALLINGERROR (-5): the server could not parse the request.
    #[error("marshalling error (MARSHALLINGERROR)")]
    MarshallingError,
    /// UNIMPLEMENTED (-6): the server does not know the operation (an older server, or TTL
    /// nodes without `zookeeper.extendedTypesEnabled=true`). Apache ZooKeeper also closes the
    /// connection after this reply: the client reconnects (SUSPENDED, then RECONNECTED, same
    /// session).
    #[error("{}", unimplemented_message(*.op))]
    Unimplemented {
        /// The operation the server refused, when known.
        op: Option<OpCode>,
    },
    /// OPERATIONTIMEOUT (-7).
    #[error("operation timeout (OPERATIONTIMEOUT)")]
    OperationTimeout,
    /// BADARGUMENTS (-8): the server rejected a path, flags or TTL.
    #[error("bad arguments (BADARGUMENTS)")]
    BadArguments,
    /// INVALIDSTATE (-9, C client only).
    #[error("invalid state (INVALIDSTATE)")]
    InvalidState,
    /// UNKNOWNSESSION (-12).
    #[error("unknown session (UNKNOWNSESSION)")]
    UnknownSession,
    /// NEWCONFIGNOQUORUM (-13).
    #[error("no quorum of the new config (NEWCONFIGNOQUORUM)")]
    NewConfigNoQuorum,
    /// RECONFIGINPROGRESS (-14).
    #[error("another reconfiguration is in progress (RECONFIGINPROGRESS)")]
    ReconfigInProgress,
    /// SSLCONNECTIONERROR (-15, C client only).
    #[error("ssl connection error (SSLCONNECTIONERROR)")]
    SslConnectionError,
    /// APIERROR (-100).
    #[error("api error (APIERROR)")]
    ApiError,
    /// NONODE (-101).
    #[error("no node (NONODE)")]
    NoNode,
    /// NOAUTH (-102).
    #[error("not authorized (NOAUTH)")]
    NoAuth,
    /// BADVERSION (-103).
    #[error("bad version (BADVERSION)")]
    BadVersion,
    /// NOCHILDRENFOREPHEMERALS (-108).
    #[error("ephemeral nodes may not have children (NOCHILDRENFOREPHEMERALS)")]
    NoChildrenForEphemerals,
    /// NODEEXISTS (-110).
    #[error("node exists (NODEEXISTS)")]
    NodeExists,
    /// NOTEMPTY (-111).
    #[error("node has children (NOTEMPTY)")]
    NotEmpty,
    /// SESSIONEXPIRED (-112): the session is gone, with its ephemeral nodes and watches.
    #[error("session expired (SESSIONEXPIRED)")]
    SessionExpired,
    /// INVALIDCALLBACK (-113).
    #[error("invalid callback (INVALIDCALLBACK)")]
    InvalidCallback,
    /// INVALIDACL (-114).
    #[error("invalid ACL (INVALIDACL)")]
    InvalidAcl,
    /// AUTHFAILED (-115): the server refused the credentials; the session is unusable.
    #[error("authentication failed (AUTHFAILED)")]
    AuthFailed,
    /// CLOSING (-116, C client only).
    #[error("closing (CLOSING)")]
    Closing,
    /// NOTHING (-117, C client only).
    #[error("nothing (NOTHING)")]
    Nothing,
    /// SESSIONMOVED (-118).
    #[error("session moved to another server (SESSIONMOVED)")]
    SessionMoved,
    /// NOTREADONLY (-119): a write was sent to a read-only server.
    #[error("write on a read-only server (NOTREADONLY)")]
    NotReadOnly,
    /// EPHEMERALONLOCALSESSION (-120).
    #[error("ephemeral node on a local session (EPHEMERALONLOCALSESSION)")]
    EphemeralOnLocalSession,
    /// NOWATCHER (-121).
    #[error("no such watcher (NOWATCHER)")]
    NoWatcher,
    /// REQUESTTIMEOUT (-122).
    #[error("request timeout (REQUESTTIMEOUT)")]
    RequestTimeout,
    /// RECONFIGDISABLED (-123).
    #[error("reconfig is disabled (RECONFIGDISABLED)")]
    ReconfigDisabled,
    /// SESSIONCLOSEDREQUIRESASLAUTH (-124).
    #[error("session closed: SASL authentication required (SESSIONCLOSEDREQUIRESASLAUTH)")]
    SessionClosedRequireSaslAuth,
    /// QUOTAEXCEEDED (-125).
    #[error("quota exceeded (QUOTAEXCEEDED)")]
    QuotaExceeded,
    /// THROTTLEDOP (-127).
    #[error("operation throttled (THROTTLEDOP)")]
    ThrottledOp,
    /// A result code this client does not know.
    #[error("unknown ZooKeeper error code {0}")]
    UnknownCode(i32),

    // ----- client-side conditions -----
    /// The path is not a valid znode path (checked before sending).
    #[error("invalid path: {0}")]
    InvalidPath(#[from] PathError),
    /// Node data larger than the servers accept ([`MAX_DATA_LEN`] unless
    /// [`max_request_len`](crate::SessionConfig::max_request_len) says otherwise; checked
    /// before sending).
    #[error("data of {len} bytes exceeds the maximum of {max} bytes (jute.maxbuffer)")]
    DataTooLarge {
        /// The data's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An encoded request larger than the server's `jute.maxbuffer`.
    #[error("request of {len} bytes exceeds the maximum of {max} bytes (jute.maxbuffer)")]
    RequestTooLarge {
        /// The encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A reply larger than this client accepts ([`SessionConfig::max_reply_len`], as the
    /// Apache client's `jute.maxbuffer`): typically the children of a node with very many.
    /// Only that request fails; the connection stays up (Apache's client drops the connection
    /// instead, failing every pending request with CONNECTIONLOSS, and a retried call meets
    /// the same reply again). Not retryable: the reply would be as large again. The server
    /// did execute the request: a write (a large transaction's reply) was applied.
    ///
    /// [`SessionConfig::max_reply_len`]: crate::SessionConfig::max_reply_len
    #[error("reply of {len} bytes exceeds this client's maximum of {max} bytes (max_reply_len)")]
    ReplyTooLarge {
        /// The reply's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A TTL was given for a mode that is not a TTL mode, or a TTL mode without a TTL.
    #[error("a TTL needs a TTL create mode and a TTL create mode needs a TTL")]
    TtlWithoutTtlMode,
    /// The TTL is outside 1 ..= 2^40 − 1 ms.
    #[error("TTL {0} ms is outside 1 ..= 2^40 - 1")]
    TtlOutOfRange(i64),
    /// Some other argument is invalid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The connect string could not be parsed or names no host.
    #[error("invalid connect string: {0}")]
    InvalidConnectString(String),
    /// No server could be reached, or the connection timed out.
    #[error("could not connect: {0}")]
    Connect(String),
    /// The client (or session) was closed.
    #[error("the client is closed")]
    Closed,
    /// A multi (transaction) failed: nothing was applied.
    #[error("transaction failed at op {index}: {error}")]
    Transaction {
        /// Index of the first failing op.
        index: usize,
        /// That op's error.
        error: Box<Error>,
    },
    /// Node data could not be compressed, or what was read is not compressed data (see
    /// [`CompressionProvider`](crate::CompressionProvider)).
    #[error("compression: {0}")]
    Compression(String),
    /// The server sent bytes this client cannot decode. The connection is closed when this
    /// happens in a header; a malformed reply body fails only its request.
    #[error("protocol error: {0}")]
    Protocol(String),
}

fn unimplemented_message(op: Option<OpCode>) -> String {
    match op {
        Some(op @ (OpCode::GetEphemerals | OpCode::GetAllChildrenNumber | OpCode::AddWatch | OpCode::MultiRead | OpCode::SetWatches2)) => format!(
            "the server does not implement {op:?} (UNIMPLEMENTED): it needs ZooKeeper 3.6 or newer"
        ),
        Some(OpCode::WhoAmI) => {
            "the server does not implement WhoAmI (UNIMPLEMENTED): it needs ZooKeeper 3.7 or newer"
                .to_owned()
        }
        Some(OpCode::CreateTtl) => "the server does not implement TTL nodes (UNIMPLEMENTED): they need ZooKeeper 3.5.3+ started with -Dzookeeper.extendedTypesEnabled=true (zk-server: extendedTypesEnabled=true in zoo.cfg)".to_owned(),
        Some(op) => format!("the server does not implement {op:?} (UNIMPLEMENTED)"),
        None => "unimplemented (UNIMPLEMENTED)".to_owned(),
    }
}

impl Error {
    /// The error for a non-zero result code from the server. `op` names the request, for a
    /// clearer UNIMPLEMENTED message.
    pub fn from_code(code: i32, op: Option<OpCode>) -> Error {
        match ErrorCode::try_from(code) {
            Ok(c) => Error::from_error_code(c, op),
            Err(other) => Error::UnknownCode(other),
        }
    }

    fn from_error_code(code: ErrorCode, op: Option<OpCode>) -> Error {
        match code {
            // 0 is not an error; treat a stray OK as a protocol violation rather than panic.
            ErrorCode::Ok => Error::Protocol("result code 0 reported as an error".to_owned()),
            ErrorCode::SystemError => Error::SystemError,
            ErrorCode::RuntimeInconsistency => Error::RuntimeInconsistency,
            ErrorCode::DataInconsistency => Error::DataInconsistency,
            ErrorCode::ConnectionLoss => Error::ConnectionLoss,
            ErrorCode::MarshallingError => Error::MarshallingError,
            ErrorCode::Unimplemented => Error::Unimplemented { op },
            ErrorCode::OperationTimeout => Error::OperationTimeout,
            ErrorCode::BadArguments => Error::BadArguments,
            ErrorCode::InvalidState => Error::InvalidState,
            ErrorCode::UnknownSession => Error::UnknownSession,
            ErrorCode::NewConfigNoQuorum => Error::NewConfigNoQuorum,
            ErrorCode::ReconfigInProgress => Error::ReconfigInProgress,
            ErrorCode::SslConnectionError => Error::SslConnectionError,
            ErrorCode::ApiError => Error::ApiError,
            ErrorCode::NoNode => Error::NoNode,
            ErrorCode::NoAuth => Error::NoAuth,
            ErrorCode::BadVersion => Error::BadVersion,
            ErrorCode::NoChildrenForEphemerals => Error::NoChildrenForEphemerals,
            ErrorCode::NodeExists => Error::NodeExists,
            ErrorCode::NotEmpty => Error::NotEmpty,
            ErrorCode::SessionExpired => Error::SessionExpired,
            ErrorCode::InvalidCallback => Error::InvalidCallback,
            ErrorCode::InvalidAcl => Error::InvalidAcl,
            ErrorCode::AuthFailed => Error::AuthFailed,
            ErrorCode::Closing => Error::Closing,
            ErrorCode::Nothing => Error::Nothing,
            ErrorCode::SessionMoved => Error::SessionMoved,
            ErrorCode::NotReadOnly => Error::NotReadOnly,
            ErrorCode::EphemeralOnLocalSession => Error::EphemeralOnLocalSession,
            ErrorCode::NoWatcher => Error::NoWatcher,
            ErrorCode::RequestTimeout => Error::RequestTimeout,
            ErrorCode::ReconfigDisabled => Error::ReconfigDisabled,
            ErrorCode::SessionClosedRequireSaslAuth => Error::SessionClosedRequireSaslAuth,
            ErrorCode::QuotaExceeded => Error::QuotaExceeded,
            ErrorCode::ThrottledOp => Error::ThrottledOp,
        }
    }

    /// The ZooKeeper result code this error corresponds to, if any. Client-side conditions
    /// without a ZooKeeper code return `None`; [`Error::Closed`] maps to CONNECTIONLOSS's
    /// sibling `CLOSING` only in the C client, so it returns `None` too.
    pub fn code(&self) -> Option<ErrorCode> {
        Some(match self {
            Error::SystemError => ErrorCode::SystemError,
            Error::RuntimeInconsistency => ErrorCode::RuntimeInconsistency,
            Error::DataInconsistency => ErrorCode::DataInconsistency,
            Error::ConnectionLoss => ErrorCode::ConnectionLoss,
            Error::MarshallingError => ErrorCode::MarshallingError,
            Error::Unimplemented { .. } => ErrorCode::Unimplemented,
            Error::OperationTimeout => ErrorCode::OperationTimeout,
            Error::BadArguments => ErrorCode::BadArguments,
            Error::InvalidState => ErrorCode::InvalidState,
            Error::UnknownSession => ErrorCode::UnknownSession,
            Error::NewConfigNoQuorum => ErrorCode::NewConfigNoQuorum,
            Error::ReconfigInProgress => ErrorCode::ReconfigInProgress,
            Error::SslConnectionError => ErrorCode::SslConnectionError,
            Error::ApiError => ErrorCode::ApiError,
            Error::NoNode => ErrorCode::NoNode,
            Error::NoAuth => ErrorCode::NoAuth,
            Error::BadVersion => ErrorCode::BadVersion,
            Error::NoChildrenForEphemerals => ErrorCode::NoChildrenForEphemerals,
            Error::NodeExists => ErrorCode::NodeExists,
            Error::NotEmpty => ErrorCode::NotEmpty,
            Error::SessionExpired => ErrorCode::SessionExpired,
            Error::InvalidCallback => ErrorCode::InvalidCallback,
            Error::InvalidAcl => ErrorCode::InvalidAcl,
            Error::AuthFailed => ErrorCode::AuthFailed,
            Error::Closing => ErrorCode::Closing,
            Error::Nothing => ErrorCode::Nothing,
            Error::SessionMoved => ErrorCode::SessionMoved,
            Error::NotReadOnly => ErrorCode::NotReadOnly,
            Error::EphemeralOnLocalSession => ErrorCode::EphemeralOnLocalSession,
            Error::NoWatcher => ErrorCode::NoWatcher,
            Error::RequestTimeout => ErrorCode::RequestTimeout,
            Error::ReconfigDisabled => ErrorCode::ReconfigDisabled,
            Error::SessionClosedRequireSaslAuth => ErrorCode::SessionClosedRequireSaslAuth,
            Error::QuotaExceeded => ErrorCode::QuotaExceeded,
            Error::ThrottledOp => ErrorCode::ThrottledOp,
            Error::Transaction { error, .. } => return error.code(),
            _ => return None,
        })
    }

    /// Whether a retry policy may retry the call: CONNECTIONLOSS, OPERATIONTIMEOUT,
    /// SESSIONMOVED and SESSIONEXPIRED, as Curator's `RetryPolicy.allowRetry`.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::ConnectionLoss
                | Error::OperationTimeout
                | Error::SessionMoved
                | Error::SessionExpired
        )
    }

    /// Whether the error means the session is gone for good (expired, auth failed, closed).
    pub fn is_session_terminal(&self) -> bool {
        matches!(
            self,
            Error::SessionExpired | Error::AuthFailed | Error::Closed
        )
    }

    /// Whether the error was detected by the client before anything was sent.
    pub fn is_argument_error(&self) -> bool {
        matches!(
            self,
            Error::InvalidPath(_)
                | Error::DataTooLarge { .. }
                | Error::RequestTooLarge { .. }
                | Error::TtlWithoutTtlMode
                | Error::TtlOutOfRange(_)
                | Error::InvalidArgument(_)
        )
    }
}

impl From<ErrorCode> for Error {
    fn from(code: ErrorCode) -> Error {
        Error::from_error_code(code, None)
    }
}

impl From<zk_proto::DecodeError> for Error {
    fn from(e: zk_proto::DecodeError) -> Error {
        Error::Protocol(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_to_a_variant_and_back() {
        for &code in ErrorCode::ALL {
            let err = Error::from_code(code.as_i32(), None);
            if code == ErrorCode::Ok {
                assert!(matches!(err, Error::Protocol(_)));
                continue;
            }
            assert_eq!(err.code(), Some(code), "{code:?} -> {err:?}");
            assert!(!err.to_string().is_empty());
            assert!(
                err.to_string().contains(code.name()),
                "{err} should name {}",
                code.name()
            );
        }
        assert_eq!(Error::from_code(-999, None), Error::UnknownCode(-999));
        assert_eq!(Error::UnknownCode(-999).code(), None);
    }

    #[test]
    fn retryable_codes_are_curators() {
        let retryable: Vec<ErrorCode> = ErrorCode::ALL
            .iter()
            .copied()
            .filter(|&c| c != ErrorCode::Ok && Error::from(c).is_retryable())
            .collect();
        assert_eq!(
            retryable,
            vec![
                ErrorCode::ConnectionLoss,
                ErrorCode::OperationTimeout,
                ErrorCode::SessionExpired,
                ErrorCode::SessionMoved
            ]
        );
        assert!(!Error::Closed.is_retryable());
        assert!(!Error::TtlWithoutTtlMode.is_retryable());
    }

    #[test]
    fn unimplemented_names_the_operation_and_the_version() {
        let e = Error::from_code(-6, Some(OpCode::AddWatch));
        assert_eq!(
            e,
            Error::Unimplemented {
                op: Some(OpCode::AddWatch)
            }
        );
        assert!(e.to_string().contains("AddWatch"));
        assert!(e.to_string().contains("3.6"));
        let ttl = Error::from_code(-6, Some(OpCode::CreateTtl)).to_string();
        assert!(ttl.contains("extendedTypesEnabled"), "{ttl}");
    }
}
