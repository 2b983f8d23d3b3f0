use std::fmt;

use super::int_enum;

int_enum! {
    /// Result codes (`KeeperException.Code`, and the C client's `ZOO_ERRORS`), carried in
    /// `ReplyHeader.err`, `MultiHeader.err`, `ErrorResponse` and `ErrorTxn`.
    pub enum ErrorCode {
        /// Success.
        Ok = 0,
        /// Base of the system errors.
        SystemError = -1,
        /// A state inconsistency; also the result of ops after a failed op in a multi.
        RuntimeInconsistency = -2,
        /// Data inconsistency.
        DataInconsistency = -3,
        /// The connection to the server was lost (client-side).
        ConnectionLoss = -4,
        /// The server could not parse the request.
        MarshallingError = -5,
        /// The operation is not implemented (unknown opcode, or TTL nodes disabled).
        Unimplemented = -6,
        /// The operation timed out (client-side).
        OperationTimeout = -7,
        /// Invalid arguments: bad path, flags or TTL.
        BadArguments = -8,
        /// Invalid client state (C client only).
        InvalidState = -9,
        /// The session is unknown to the server.
        UnknownSession = -12,
        /// A reconfiguration has no quorum of the new configuration.
        NewConfigNoQuorum = -13,
        /// Another reconfiguration is in progress.
        ReconfigInProgress = -14,
        /// TLS connection error (C client only).
        SslConnectionError = -15,
        /// Base of the API errors.
        ApiError = -100,
        /// The node does not exist.
        NoNode = -101,
        /// Not authorized.
        NoAuth = -102,
        /// The expected version does not match.
        BadVersion = -103,
        /// Ephemeral nodes may not have children.
        NoChildrenForEphemerals = -108,
        /// The node already exists.
        NodeExists = -110,
        /// The node has children.
        NotEmpty = -111,
        /// The session has expired.
        SessionExpired = -112,
        /// Invalid callback (client-side).
        InvalidCallback = -113,
        /// Invalid ACL.
        InvalidAcl = -114,
        /// Authentication failed.
        AuthFailed = -115,
        /// The client is closing (C client only).
        Closing = -116,
        /// No server response to process (C client only).
        Nothing = -117,
        /// The session moved to another server.
        SessionMoved = -118,
        /// A write was sent to a read-only server.
        NotReadOnly = -119,
        /// Ephemeral nodes need a global session.
        EphemeralOnLocalSession = -120,
        /// No such watch.
        NoWatcher = -121,
        /// The request timed out (Java client-side).
        RequestTimeout = -122,
        /// Reconfiguration is disabled.
        ReconfigDisabled = -123,
        /// The session was closed because it did not authenticate with SASL.
        SessionClosedRequireSaslAuth = -124,
        /// A hard quota was exceeded.
        QuotaExceeded = -125,
        /// The operation was throttled.
        ThrottledOp = -127,
    }
}

impl ErrorCode {
    /// A human-readable description, as Apache ZooKeeper's `KeeperException` words it.
    pub const fn description(self) -> &'static str {
        match self {
            ErrorCode::Ok => "ok",
            ErrorCode::SystemError => "system error",
            ErrorCode::RuntimeInconsistency => "runtime inconsistency",
            ErrorCode::DataInconsistency => "data inconsistency",
            ErrorCode::ConnectionLoss => "connection loss",
            ErrorCode::MarshallingError => "marshalling error",
            ErrorCode::Unimplemented => "unimplemented",
            ErrorCode::OperationTimeout => "operation timeout",
            ErrorCode::BadArguments => "bad arguments",
            ErrorCode::InvalidState => "invalid zhandle state",
            ErrorCode::UnknownSession => "unknown session",
            ErrorCode::NewConfigNoQuorum => "no quorum of new config is connected and up-to-date with the leader of last committed config",
            ErrorCode::ReconfigInProgress => "another reconfiguration is in progress",
            ErrorCode::SslConnectionError => "ssl connection error",
            ErrorCode::ApiError => "api error",
            ErrorCode::NoNode => "no node",
            ErrorCode::NoAuth => "not authenticated",
            ErrorCode::BadVersion => "bad version",
            ErrorCode::NoChildrenForEphemerals => "no children for ephemerals",
            ErrorCode::NodeExists => "node exists",
            ErrorCode::NotEmpty => "directory not empty",
            ErrorCode::SessionExpired => "session expired",
            ErrorCode::InvalidCallback => "invalid callback",
            ErrorCode::InvalidAcl => "invalid acl",
            ErrorCode::AuthFailed => "auth failed",
            ErrorCode::Closing => "zookeeper is closing",
            ErrorCode::Nothing => "no server responses to process",
            ErrorCode::SessionMoved => "session moved",
            ErrorCode::NotReadOnly => "not a read-only call",
            ErrorCode::EphemeralOnLocalSession => "ephemeral node on local session",
            ErrorCode::NoWatcher => "no watcher",
            ErrorCode::RequestTimeout => "request timeout",
            ErrorCode::ReconfigDisabled => "reconfig is disabled",
            ErrorCode::SessionClosedRequireSaslAuth => "session closed because client failed to authenticate",
            ErrorCode::QuotaExceeded => "quota has exceeded",
            ErrorCode::ThrottledOp => "op throttled due to high load",
        }
    }

    /// The name Apache ZooKeeper's `KeeperException.Code` gives this code (e.g. `NONODE`).
    pub const fn name(self) -> &'static str {
        match self {
            ErrorCode::Ok => "OK",
            ErrorCode::SystemError => "SYSTEMERROR",
            ErrorCode::RuntimeInconsistency => "RUNTIMEINCONSISTENCY",
            ErrorCode::DataInconsistency => "DATAINCONSISTENCY",
            ErrorCode::ConnectionLoss => "CONNECTIONLOSS",
            ErrorCode::MarshallingError => "MARSHALLINGERROR",
            ErrorCode::Unimplemented => "UNIMPLEMENTED",
            ErrorCode::OperationTimeout => "OPERATIONTIMEOUT",
            ErrorCode::BadArguments => "BADARGUMENTS",
            ErrorCode::InvalidState => "INVALIDSTATE",
            ErrorCode::UnknownSession => "UNKNOWNSESSION",
            ErrorCode::NewConfigNoQuorum => "NEWCONFIGNOQUORUM",
            ErrorCode::ReconfigInProgress => "RECONFIGINPROGRESS",
            ErrorCode::SslConnectionError => "SSLCONNECTIONERROR",
            ErrorCode::ApiError => "APIERROR",
            ErrorCode::NoNode => "NONODE",
            ErrorCode::NoAuth => "NOAUTH",
            ErrorCode::BadVersion => "BADVERSION",
            ErrorCode::NoChildrenForEphemerals => "NOCHILDRENFOREPHEMERALS",
            ErrorCode::NodeExists => "NODEEXISTS",
            ErrorCode::NotEmpty => "NOTEMPTY",
            ErrorCode::SessionExpired => "SESSIONEXPIRED",
            ErrorCode::InvalidCallback => "INVALIDCALLBACK",
            ErrorCode::InvalidAcl => "INVALIDACL",
            ErrorCode::AuthFailed => "AUTHFAILED",
            ErrorCode::Closing => "CLOSING",
            ErrorCode::Nothing => "NOTHING",
            ErrorCode::SessionMoved => "SESSIONMOVED",
            ErrorCode::NotReadOnly => "NOTREADONLY",
            ErrorCode::EphemeralOnLocalSession => "EPHEMERALONLOCALSESSION",
            ErrorCode::NoWatcher => "NOWATCHER",
            ErrorCode::RequestTimeout => "REQUESTTIMEOUT",
            ErrorCode::ReconfigDisabled => "RECONFIGDISABLED",
            ErrorCode::SessionClosedRequireSaslAuth => "SESSIONCLOSEDREQUIRESASLAUTH",
            ErrorCode::QuotaExceeded => "QUOTAEXCEEDED",
            ErrorCode::ThrottledOp => "THROTTLEDOP",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, {})",
            self.description(),
            self.name(),
            self.as_i32()
        )
    }
}
