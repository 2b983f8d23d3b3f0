//! Encode+decode cost of the two most common read replies, and the path check every request
//! makes.
//!
//! Run with `cargo bench -p zk-proto --bench codec`.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion};
use zk_proto::{Decode, Encode, GetChildrenResponse, GetDataResponse, ReplyHeader, Stat};

fn stat() -> Stat {
    Stat {
        czxid: 0x1_0000_0001,
        mzxid: 0x1_0000_0002,
        ctime: 1_700_000_000_000,
        mtime: 1_700_000_000_001,
        version: 1,
        cversion: 0,
        aversion: 0,
        ephemeral_owner: 0,
        data_length: 1024,
        num_children: 0,
        pzxid: 0x1_0000_0001,
    }
}

fn round_trip<T: Encode + Decode>(buf: &mut BytesMut, header: &ReplyHeader, body: &T) -> T {
    buf.clear();
    header.encode(buf);
    body.encode(buf);
    let mut reader = zk_proto::Reader::new(buf);
    let _ = ReplyHeader::decode(&mut reader).expect("header decodes");
    T::decode(&mut reader).expect("body decodes")
}

fn bench_codec(c: &mut Criterion) {
    let header = ReplyHeader {
        xid: 42,
        zxid: 0x1_0000_0002,
        err: 0,
    };
    let mut buf = BytesMut::with_capacity(8192);

    let get_data = GetDataResponse {
        data: Some(vec![0xab; 1024]),
        stat: stat(),
    };
    c.bench_function("getData response 1 KiB: encode+decode", |b| {
        b.iter(|| round_trip(&mut buf, &header, black_box(&get_data)))
    });

    let children = GetChildrenResponse {
        children: (0..100).map(|i| format!("lock-{i:010}")).collect(),
    };
    c.bench_function("getChildren response 100 children: encode+decode", |b| {
        b.iter(|| round_trip(&mut buf, &header, black_box(&children)))
    });

    // A client checks each path twice (as given, then under its namespace) and the server
    // once more.
    for path in [
        "/bench-5f0c2a9d8e7b4c1f9a3e6d2b7c8a1f4e/w-0-12",
        "/services/greeter/.instances/1f4e9a3e-6d2b-7c8a",
    ] {
        c.bench_function(&format!("validate_path {path}"), |b| {
            b.iter(|| zk_proto::path::validate_path(black_box(path)))
        });
    }
}

criterion_group!(benches, bench_codec);
criterion_main!(benches);
