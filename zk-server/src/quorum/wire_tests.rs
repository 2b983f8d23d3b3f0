use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;

use super::*;
use crate::zab::ServerState;

fn roundtrip(message: &Message) -> Message {
    let frame = encode_frame(message);
    let mut buf = BytesMut::from(&frame[..]);
    let decoded = decode_frame(&mut buf, &FrameLimits::default())
        .expect("decodes")
        .expect("a whole frame");
    assert!(buf.is_empty(), "the frame was consumed exactly");
    decoded
}

fn bytes() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from)
}

fn entry() -> impl Strategy<Value = Entry> {
    (any::<i64>(), bytes()).prop_map(|(zxid, txn)| Entry { zxid, txn })
}

fn state() -> impl Strategy<Value = ServerState> {
    prop_oneof![
        Just(ServerState::Looking),
        Just(ServerState::Following),
        Just(ServerState::Leading),
        Just(ServerState::Observing),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (
            state(),
            0..=i64::MAX as u64,
            any::<i64>(),
            any::<u32>(),
            0..=i64::MAX as u64
        )
            .prop_map(|(state, leader, zxid, peer_epoch, election_epoch)| {
                Message::Notification {
                    state,
                    vote: Vote {
                        leader,
                        zxid,
                        peer_epoch,
                    },
                    election_epoch,
                }
            }),
        (
            any::<bool>(),
            any::<u32>(),
            any::<u32>(),
            any::<i64>(),
            proptest::collection::vec(any::<(u32, u32, u32)>(), 0..5)
        )
            .prop_map(|(observer, accepted_epoch, current_epoch, base, runs)| {
                Message::LearnerInfo {
                    observer,
                    accepted_epoch,
                    current_epoch,
                    summary: EpochSummary { base, runs },
                }
            }),
        any::<u32>().prop_map(|new_epoch| Message::LeaderInfo { new_epoch }),
        (proptest::option::of(0..u32::MAX), any::<i64>()).prop_map(|(current_epoch, last_zxid)| {
            Message::AckEpoch {
                current_epoch,
                last_zxid,
            }
        }),
        (any::<i64>(), bytes()).prop_map(|(zxid, state)| Message::Snap { zxid, state }),
        (
            any::<i64>(),
            proptest::collection::vec(entry(), 0..5),
            any::<i64>()
        )
            .prop_map(|(common, entries, committed)| Message::Diff {
                common,
                entries,
                committed
            }),
        any::<u32>().prop_map(|epoch| Message::NewLeader { epoch }),
        any::<u32>().prop_map(|epoch| Message::AckNewLeader { epoch }),
        any::<i64>().prop_map(|committed| Message::UpToDate { committed }),
        entry().prop_map(Message::Proposal),
        any::<i64>().prop_map(|zxid| Message::Ack { zxid }),
        any::<i64>().prop_map(|zxid| Message::Commit { zxid }),
        entry().prop_map(Message::Inform),
        any::<i64>().prop_map(|committed| Message::Ping { committed }),
        Just(Message::PingReply),
        bytes().prop_map(|data| Message::Request { data }),
    ]
}

proptest! {
    #[test]
    fn every_message_round_trips(m in message()) {
        prop_assert_eq!(roundtrip(&m), m);
    }

    #[test]
    fn frames_split_anywhere_decode_once_complete(m in message(), cut in any::<prop::sample::Index>()) {
        let frame = encode_frame(&m);
        let at = cut.index(frame.len());
        let mut buf = BytesMut::from(&frame[..at]);
        prop_assert_eq!(decode_frame(&mut buf, &FrameLimits::default()), Ok(None));
        buf.extend_from_slice(&frame[at..]);
        prop_assert_eq!(decode_frame(&mut buf, &FrameLimits::default()), Ok(Some(m)));
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut buf = BytesMut::from(&data[..]);
        // Decode frames until an error or an incomplete frame; nothing may panic.
        while let Ok(Some(_)) = decode_frame(&mut buf, &FrameLimits::default()) {}
        let _ = decode_packet(&Bytes::from(data));
    }

    #[test]
    fn mutated_frames_never_panic(m in message(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut frame = BytesMut::from(&encode_frame(&m)[..]);
        let i = at.index(frame.len());
        frame[i] = byte;
        while let Ok(Some(_)) = decode_frame(&mut frame, &FrameLimits::default()) {}
    }

    #[test]
    fn truncated_packets_are_errors(m in message(), at in any::<prop::sample::Index>()) {
        let frame = encode_frame(&m);
        let packet = frame.slice(LENGTH_PREFIX_LEN..);
        let cut = packet.slice(..at.index(packet.len()));
        prop_assert!(decode_packet(&cut).is_err());
    }
}

#[test]
fn golden_commit() {
    let frame = encode_frame(&Message::Commit {
        zxid: make_zxid(1, 2),
    });
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0, 0, 0, 20,             // length
        0, 0, 0, 4,              // COMMIT
        0, 0, 0, 1, 0, 0, 0, 2,  // zxid 1:2
        0xff, 0xff, 0xff, 0xff,  // data: null
        0, 0, 0, 0,              // authinfo: empty
    ];
    assert_eq!(&frame[..], expected);
}

#[test]
fn golden_notification() {
    let frame = encode_frame(&Message::Notification {
        state: ServerState::Leading,
        vote: Vote {
            leader: 3,
            zxid: make_zxid(2, 7),
            peer_epoch: 2,
        },
        election_epoch: 5,
    });
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0, 0, 0, 64,                    // length: 20 + 44
        0, 0, 0, 100,                   // NOTIFICATION (ours)
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // zxid -1
        0, 0, 0, 44,                    // data length
        0, 0, 0, 2,                     // LEADING
        0, 0, 0, 0, 0, 0, 0, 3,         // leader
        0, 0, 0, 2, 0, 0, 0, 7,         // zxid
        0, 0, 0, 0, 0, 0, 0, 5,         // election epoch
        0, 0, 0, 0, 0, 0, 0, 2,         // peer epoch
        0, 0, 0, 2,                     // version
        0, 0, 0, 0,                     // config length
        0, 0, 0, 0,                     // authinfo
    ];
    assert_eq!(&frame[..], expected);
}

#[test]
fn golden_ack_new_leader_and_ping_reply() {
    let frame = encode_frame(&Message::AckNewLeader { epoch: 4 });
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0, 0, 0, 24, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 0,
        0, 0, 0, 4, 0, 0, 0, 10, 0, 0, 0, 0,
    ];
    assert_eq!(&frame[..], expected);
    let frame = encode_frame(&Message::PingReply);
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0, 0, 0, 20, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0, 0, 0, 0, 0, 0, 0, 0,
    ];
    assert_eq!(&frame[..], expected);
}

fn header(len: i32, ty: i32) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_i32(len);
    b.put_i32(ty);
    b
}

#[test]
fn oversized_frames_are_refused_before_the_body() {
    let limits = FrameLimits {
        max_bulk: 1000,
        max_message: 100,
    };
    // A PROPOSAL of 101 bytes: refused from the 8 header bytes alone.
    let mut b = header(101, 2);
    assert_eq!(
        decode_frame(&mut b, &limits),
        Err(WireError::TooLarge {
            packet_type: Some(2),
            len: 101,
            max: 100
        })
    );
    // A SNAP of 1000 bytes may come; 1001 may not.
    assert_eq!(decode_frame(&mut header(1000, 15), &limits), Ok(None));
    assert!(matches!(
        decode_frame(&mut header(1001, 15), &limits),
        Err(WireError::TooLarge { .. })
    ));
    // Before the type is known, only the largest limit applies.
    let mut b = BytesMut::new();
    b.put_i32(5000);
    assert!(matches!(
        decode_frame(&mut b, &limits),
        Err(WireError::TooLarge {
            packet_type: None,
            ..
        })
    ));
    assert_eq!(
        decode_frame(&mut header(-4, 2), &limits),
        Err(WireError::NegativeLength(-4))
    );
    assert!(matches!(
        decode_frame(&mut header(8, 2), &limits),
        Err(WireError::TooShort { .. })
    ));
    assert_eq!(
        decode_frame(&mut header(50, 42), &limits),
        Err(WireError::UnknownType(42))
    );
    assert_eq!(
        decode_frame(&mut header(50, 14), &limits),
        Err(WireError::UnknownType(14)),
        "TRUNC is folded into DIFF"
    );
}

#[test]
fn garbage_packets_are_typed_errors() {
    // Trailing bytes after the packet.
    let frame = encode_frame(&Message::Commit { zxid: 1 });
    let mut packet = BytesMut::from(&frame[LENGTH_PREFIX_LEN..]);
    packet.put_u8(0);
    assert!(matches!(
        decode_packet(&packet.freeze()),
        Err(WireError::TrailingBytes { .. })
    ));
    // A NEWLEADER whose zxid is not an epoch boundary.
    let mut p = BytesMut::new();
    p.put_i32(10);
    p.put_i64(make_zxid(3, 1));
    p.put_i32(-1);
    p.put_i32(0);
    assert!(matches!(
        decode_packet(&p.freeze()),
        Err(WireError::InvalidField {
            what: "epoch zxid",
            ..
        })
    ));
    // A DIFF claiming more entries than it holds.
    let mut data = BytesMut::new();
    data.put_i64(0);
    data.put_i32(1_000_000);
    let mut p = BytesMut::new();
    p.put_i32(13);
    p.put_i64(0);
    p.put_i32(data.len() as i32);
    p.put_slice(&data);
    p.put_i32(0);
    assert!(matches!(
        decode_packet(&p.freeze()),
        Err(WireError::Decode(DecodeError::LengthExceedsInput { .. }))
    ));
    // A PROPOSAL without data, a COMMIT with data, a notification voting for a negative sid.
    let mut p = BytesMut::new();
    p.put_i32(2);
    p.put_i64(1);
    p.put_i32(-1);
    p.put_i32(0);
    assert!(decode_packet(&p.freeze()).is_err());
    let mut p = BytesMut::new();
    p.put_i32(4);
    p.put_i64(1);
    p.put_i32(1);
    p.put_u8(9);
    p.put_i32(0);
    assert!(decode_packet(&p.freeze()).is_err());
    let n = Notification {
        state: ServerState::Looking,
        leader: -1,
        zxid: 0,
        election_epoch: 1,
        peer_epoch: 0,
        config: Vec::new(),
    };
    let nb = n.to_bytes();
    let mut p = BytesMut::new();
    p.put_i32(NOTIFICATION_TYPE);
    p.put_i64(-1);
    p.put_i32(nb.len() as i32);
    p.put_slice(&nb);
    p.put_i32(0);
    assert!(matches!(
        decode_packet(&p.freeze()),
        Err(WireError::InvalidField { what: "leader", .. })
    ));
}

#[test]
fn payloads_are_slices_of_the_frame() {
    let m = Message::Snap {
        zxid: 9,
        state: Bytes::from(vec![7u8; 1000]),
    };
    let frame = encode_frame(&m);
    let mut buf = BytesMut::from(&frame[..]);
    let Some(Message::Snap { state, .. }) =
        decode_frame(&mut buf, &FrameLimits::default()).expect("ok")
    else {
        panic!("a snap");
    };
    assert_eq!(state.len(), 1000);
}
