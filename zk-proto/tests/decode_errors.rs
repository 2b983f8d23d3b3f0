//! Malformed input yields a typed error, never a panic or an oversized allocation.

use bytes::BytesMut;
use zk_proto::frame::{split_frame, DEFAULT_MAX_FRAME_LEN};
use zk_proto::path::{validate_create_path, validate_path};
use zk_proto::*;

#[test]
fn one_gib_length_prefix_is_rejected_before_the_body() {
    let mut buf = BytesMut::from(&(1i32 << 30).to_be_bytes()[..]);
    buf.extend_from_slice(b"only a few bytes");
    assert_eq!(
        split_frame(&mut buf, DEFAULT_MAX_FRAME_LEN),
        Err(FrameError::TooLarge {
            len: 1 << 30,
            max: DEFAULT_MAX_FRAME_LEN
        })
    );
    assert!(
        buf.capacity() < 4096,
        "no room reserved for the announced body"
    );
}

#[test]
fn negative_frame_length() {
    let mut buf = BytesMut::from(&(-7i32).to_be_bytes()[..]);
    assert_eq!(
        split_frame(&mut buf, DEFAULT_MAX_FRAME_LEN),
        Err(FrameError::NegativeLength(-7))
    );
}

#[test]
fn vector_count_beyond_the_frame() {
    // A getChildren reply claiming i32::MAX children in a 20-byte frame.
    let mut frame = i32::MAX.to_be_bytes().to_vec();
    frame.extend_from_slice(&[0; 16]);
    assert_eq!(frame.len(), 20);
    assert_eq!(
        GetChildrenResponse::from_bytes(&frame),
        Err(DecodeError::LengthExceedsInput {
            what: "vector",
            len: i32::MAX,
            remaining: 16
        })
    );
    // 2^31 as a jute int is negative.
    frame[..4].copy_from_slice(&0x8000_0000u32.to_be_bytes());
    assert_eq!(
        GetChildrenResponse::from_bytes(&frame),
        Err(DecodeError::NegativeLength {
            what: "vector",
            len: i32::MIN
        })
    );
    // Five ACLs need at least 5 × 16 bytes; 16 are there.
    frame[..4].copy_from_slice(&5i32.to_be_bytes());
    assert!(matches!(
        GetAclResponse::from_bytes(&frame),
        Err(DecodeError::LengthExceedsInput { len: 5, .. })
    ));
}

#[test]
fn truncated_records() {
    let stat = Stat::default().to_bytes();
    assert!(matches!(
        Stat::from_bytes(&stat[..67]),
        Err(DecodeError::UnexpectedEof {
            needed: 8,
            remaining: 7,
            ..
        })
    ));
    let request = GetDataRequest {
        path: "/abc".into(),
        watch: false,
    }
    .to_bytes();
    assert!(matches!(
        GetDataRequest::from_bytes(&request[..6]),
        Err(DecodeError::LengthExceedsInput {
            len: 4,
            remaining: 2,
            ..
        })
    ));
    assert!(matches!(
        GetDataRequest::from_bytes(&request[..request.len() - 1]),
        Err(DecodeError::UnexpectedEof { .. })
    ));
    // A multi without its terminator.
    let multi = MultiRequest {
        ops: vec![MultiOp::Check(CheckVersionRequest {
            path: "/a".into(),
            version: 1,
        })],
    }
    .to_bytes();
    assert!(MultiRequest::from_bytes(&multi[..multi.len() - 9]).is_err());
}

/// As Java's reader: ill-formed UTF-8 is no decode error; it becomes U+FFFD, which makes the
/// path invalid (a write refuses it; a read finds no such node).
#[test]
fn invalid_utf8_in_a_path_becomes_a_replacement_character() {
    let raw = vec![0, 0, 0, 3, b'/', 0xff, b'a', 0];
    let request = GetDataRequest::from_bytes(&raw).expect("decodes");
    assert_eq!(request.path, "/\u{FFFD}a");
    assert!(zk_proto::path::validate_path(&request.path).is_err());
}

#[test]
fn unknown_enum_values_and_multi_op_types() {
    let event = [0, 0, 0, 99, 0, 0, 0, 3, 0, 0, 0, 0];
    assert_eq!(
        WatcherEvent::from_bytes(&event),
        Err(DecodeError::InvalidValue {
            what: "event type",
            value: 99
        })
    );
    // An exists op inside a multi.
    let multi = [0, 0, 0, 3, 0, 0xff, 0xff, 0xff, 0xff];
    assert_eq!(
        MultiRequest::from_bytes(&multi),
        Err(DecodeError::InvalidValue {
            what: "multi op type",
            value: 3
        })
    );
    assert!(Request::decode_for(OpCode::CreateSession, &mut Reader::new(&[])).is_err());
}

#[test]
fn every_invalid_path_class() {
    assert_eq!(validate_path(""), Err(PathError::Empty));
    assert!(matches!(
        validate_path("a/b"),
        Err(PathError::NotAbsolute { .. })
    ));
    assert!(matches!(
        validate_path("/a/"),
        Err(PathError::TrailingSlash { .. })
    ));
    assert_eq!(
        validate_path("/a//b"),
        Err(PathError::EmptySegment {
            path: "/a//b".into(),
            offset: 3
        })
    );
    for (path, segment) in [
        ("/.", "."),
        ("/a/..", ".."),
        ("/a/./b", "."),
        ("/../a", ".."),
    ] {
        assert_eq!(
            validate_path(path),
            Err(PathError::RelativeSegment {
                path: path.into(),
                segment: segment.into()
            }),
            "{path}"
        );
    }
    for ch in [
        '\0',
        '\u{1}',
        '\u{1f}',
        '\u{7f}',
        '\u{9f}',
        '\u{e000}',
        '\u{f8ff}',
        '\u{fff0}',
        '\u{ffff}',
        '\u{1f600}',
    ] {
        let path = format!("/ok/x{ch}y");
        let err = validate_path(&path).unwrap_err();
        assert_eq!(
            err,
            PathError::InvalidChar {
                path: path.clone(),
                ch,
                offset: 5
            }
        );
        assert!(
            err.to_string()
                .contains(&format!("U+{:04X}", u32::from(ch))),
            "{err}"
        );
    }
    // Neighbours of the forbidden ranges are fine.
    for ch in [' ', '~', '\u{a0}', '\u{f900}', '\u{ffef}'] {
        assert_eq!(validate_path(&format!("/x{ch}")), Ok(()), "{ch:?}");
    }
}

#[test]
fn sequential_create_paths_may_end_with_a_slash() {
    assert_eq!(validate_create_path("/queue/", true), Ok(()));
    assert!(validate_create_path("/queue/", false).is_err());
    assert_eq!(validate_create_path("/queue/item-", true), Ok(()));
    assert!(matches!(
        validate_create_path("/q//", true),
        Err(PathError::EmptySegment { .. })
    ));
    assert_eq!(validate_create_path("", true), Err(PathError::Empty));
}
