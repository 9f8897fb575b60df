//! Criterion benches of the pure parts: the envelope (≈200-byte object) and the ring.
//! Run with `make bench`; numbers go in the closing notes, never into tests.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use polycache::codec::{self, Codec, Compression, EncodeOptions, Meta};
use polycache::{KeySchema, Node, Ring, Value};

/// A typical cached object: a user profile of about 200 bytes in MessagePack.
fn profile() -> Value {
    Value::from_iter([
        ("id", Value::from(123_456_789u64)),
        ("name", Value::from("Ada Lovelace")),
        ("email", Value::from("ada@example.com")),
        ("plan", Value::from("pro")),
        ("score", Value::from(98.25)),
        ("active", Value::from(true)),
        (
            "roles",
            Value::Array(vec!["admin".into(), "editor".into(), "viewer".into()]),
        ),
        (
            "address",
            Value::from_iter([
                ("street", "12 Analytical Engine Way"),
                ("city", "London"),
                ("country", "GB"),
            ]),
        ),
        (
            "tags",
            Value::Array((0..6).map(|i| Value::from(format!("tag-{i}"))).collect()),
        ),
    ])
}

fn envelope(c: &mut Criterion) {
    let value = profile();
    let meta = Meta {
        created_at_ms: 1_700_000_000_000,
        ..Meta::default()
    };
    for codec in [Codec::Msgpack, Codec::Json] {
        let options = EncodeOptions {
            codec,
            ..EncodeOptions::default()
        };
        let bytes = codec::encode(&value, &options, &meta).expect("encodes");
        let name = format!("{codec:?}").to_lowercase();
        println!("envelope {name}: {} bytes", bytes.len());
        c.bench_function(&format!("envelope/encode/{name}"), |b| {
            b.iter(|| codec::encode(black_box(&value), &options, &meta))
        });
        c.bench_function(&format!("envelope/decode/{name}"), |b| {
            b.iter(|| codec::decode(black_box(&bytes)))
        });
    }
    // A 16 KiB payload above the threshold: what LZ4 costs and saves.
    let big = Value::Array((0..80).map(|_| profile()).collect());
    let options = EncodeOptions {
        compression: Compression::Lz4,
        ..EncodeOptions::default()
    };
    let plain = EncodeOptions {
        compression: Compression::None,
        ..EncodeOptions::default()
    };
    let packed = codec::encode(&big, &options, &meta).expect("encodes");
    let unpacked = codec::encode(&big, &plain, &meta).expect("encodes");
    println!(
        "80 profiles: {} bytes plain, {} bytes lz4",
        unpacked.len(),
        packed.len()
    );
    c.bench_function("envelope/encode/lz4-16k", |b| {
        b.iter(|| codec::encode(black_box(&big), &options, &meta))
    });
    c.bench_function("envelope/decode/lz4-16k", |b| {
        b.iter(|| codec::decode(black_box(&packed)))
    });
}

fn ring(c: &mut Criterion) {
    let keys = KeySchema::new("pc", "default", 200).expect("schema");
    let redis_keys: Vec<String> = (0..1024)
        .map(|i| keys.redis_key(&format!("user:{i}")).expect("key"))
        .collect();
    for n in [3, 10] {
        let ring = Ring::new(
            (0..n)
                .map(|i| Node::new(format!("10.0.0.{i}:6379")))
                .collect(),
        )
        .expect("ring");
        let mut i = 0;
        c.bench_function(&format!("ring/node_for/{n}-nodes"), |b| {
            b.iter(|| {
                i = (i + 1) & 1023;
                ring.node_for(black_box(&redis_keys[i]))
            })
        });
    }
    c.bench_function("keys/redis_key", |b| {
        b.iter(|| keys.redis_key(black_box("user:123456")))
    });
}

criterion_group!(benches, envelope, ring);
criterion_main!(benches);
