//! Feeds arbitrary bytes through frame splitting and then through every decoder a server or a
//! client would apply to a frame: the handshake records, request header + typed request body,
//! reply header + every reply body, txn-log entries and quorum packets.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use zk_proto::frame::{split_frame, DEFAULT_MAX_FRAME_LEN};
use zk_proto::*;

fn decode_as_request(frame: &[u8]) {
    let mut r = Reader::new(frame);
    if let Ok(header) = RequestHeader::decode(&mut r) {
        if let Ok(op) = header.op_code() {
            if let Ok(Request::Multi(multi) | Request::MultiRead(multi)) = Request::decode_for(op, &mut r) {
                for op in &multi.ops {
                    let _ = path::validate_path(op.path());
                }
            }
        }
    }
}

fn decode_as_reply(frame: &[u8]) {
    let mut r = Reader::new(frame);
    if ReplyHeader::decode(&mut r).is_err() {
        return;
    }
    let rest = r.rest();
    let _ = WatcherEvent::from_bytes(rest);
    let _ = CreateResponse::from_bytes(rest);
    let _ = Create2Response::from_bytes(rest);
    let _ = ExistsResponse::from_bytes(rest);
    let _ = GetDataResponse::from_bytes(rest);
    let _ = SetDataResponse::from_bytes(rest);
    let _ = GetAclResponse::from_bytes(rest);
    let _ = SetAclResponse::from_bytes(rest);
    let _ = GetChildrenResponse::from_bytes(rest);
    let _ = GetChildren2Response::from_bytes(rest);
    let _ = SyncResponse::from_bytes(rest);
    let _ = MultiResponse::from_bytes(rest);
    let _ = GetEphemeralsResponse::from_bytes(rest);
    let _ = GetAllChildrenNumberResponse::from_bytes(rest);
    let _ = WhoAmIResponse::from_bytes(rest);
    let _ = SetSaslResponse::from_bytes(rest);
    let _ = ErrorResponse::from_bytes(rest);
}

fn decode_as_persisted(frame: &[u8]) {
    if let Ok(Txn { body: TxnBody::Multi(multi), .. }) = Txn::from_bytes(frame) {
        let _ = multi.bodies();
    }
    let _ = QuorumPacket::from_bytes(frame);
    let _ = FileHeader::from_bytes(frame);
    let _ = StatPersisted::from_bytes(frame);
}

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    let mut first = true;
    while let Ok(Some(frame)) = split_frame(&mut buf, DEFAULT_MAX_FRAME_LEN) {
        if first {
            let _ = ConnectRequest::from_bytes(&frame);
            let _ = ConnectResponse::from_bytes(&frame);
            first = false;
        }
        decode_as_request(&frame);
        decode_as_reply(&frame);
        decode_as_persisted(&frame);
    }
    // Unframed input too, so short inputs exercise the decoders directly.
    decode_as_request(data);
    decode_as_reply(data);
    decode_as_persisted(data);
});
