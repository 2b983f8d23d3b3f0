//! Every jute record of the client protocol, the transaction log and the quorum protocol, and
//! the raw leader-election messages, one module per family.

mod auth;
mod children;
mod connect;
mod election;
mod header;
mod multi;
mod node;
mod persistence;
mod quorum;
mod reconfig;
mod request;
mod txn;
mod watch;

pub use auth::{
    AuthPacket, ClientInfo, GetSaslRequest, SetSaslRequest, SetSaslResponse, WhoAmIResponse,
};
pub use children::{
    GetAllChildrenNumberRequest, GetAllChildrenNumberResponse, GetChildren2Request,
    GetChildren2Response, GetChildrenRequest, GetChildrenResponse, GetEphemeralsRequest,
    GetEphemeralsResponse,
};
pub use connect::{ConnectRequest, ConnectResponse};
pub use election::{
    split_host_and_ports, HostPort, InitialMessage, InitialMessageVersion, Notification,
    NotificationFormat, ServerState, ELECTION_MESSAGE_MAX_LEN, INITIAL_MESSAGE_MAX_ADDRESS_LEN,
    NOTIFICATION_VERSION, OBSERVER_ID, PROTOCOL_VERSION_V1, PROTOCOL_VERSION_V2,
};
pub use header::{ErrorResponse, ReplyHeader, RequestHeader};
pub use multi::{MultiHeader, MultiOp, MultiRequest, MultiResponse, MultiResult};
pub use node::{
    CheckVersionRequest, Create2Response, CreateRequest, CreateResponse, CreateTtlRequest,
    DeleteRequest, ExistsRequest, ExistsResponse, GetAclRequest, GetAclResponse, GetDataRequest,
    GetDataResponse, SetAclRequest, SetAclResponse, SetDataRequest, SetDataResponse, SyncRequest,
    SyncResponse,
};
pub use persistence::FileHeader;
pub use quorum::{LearnerInfo, QuorumPacket, QuorumPacketType};
pub use reconfig::ReconfigRequest;
pub use request::Request;
pub use txn::{
    CheckVersionTxn, CloseSessionTxn, CreateContainerTxn, CreateSessionTxn, CreateTtlTxn,
    CreateTxn, DeleteTxn, ErrorTxn, MultiTxn, SetAclTxn, SetDataTxn, SubTxn, Txn, TxnBody,
    TxnDigest, TxnHeader,
};
pub use watch::{
    AddWatchRequest, CheckWatchesRequest, RemoveWatchesRequest, SetWatches, SetWatches2,
    WatcherEvent,
};
