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

/// The tape the Node walk writes for `n` records `{ id, name, score, tags: ['a', 'b'], ok }`
/// keyed `field_i` (the issue-13 value), keys repeated as `KEY_AGAIN`.
fn records_tape(n: usize) -> Vec<u8> {
    use polycache::codec::js::tape::{ARRAY, KEY_AGAIN, MAP, NUMBER, STRING, TRUE};
    fn head(t: &mut Vec<u8>, tag: u8, n: usize) {
        t.push(tag);
        t.extend_from_slice(&(n as u32).to_le_bytes());
    }
    fn text(t: &mut Vec<u8>, s: &str) {
        head(t, STRING, s.len());
        t.extend_from_slice(s.as_bytes());
    }
    fn number(t: &mut Vec<u8>, n: f64) {
        t.push(NUMBER);
        t.extend_from_slice(&n.to_le_bytes());
    }
    let mut t = Vec::new();
    head(&mut t, MAP, n);
    for i in 0..n {
        text(&mut t, &format!("field_{i}"));
        head(&mut t, MAP, 5);
        let again = i > 0;
        for (k, key) in ["id", "name", "score", "tags", "ok"].iter().enumerate() {
            if again {
                t.push(KEY_AGAIN);
            } else {
                text(&mut t, key);
            }
            match k {
                0 => number(&mut t, i as f64),
                1 => text(&mut t, &format!("user {i}")),
                2 => number(&mut t, i as f64 * 1.5 + 0.25),
                3 => {
                    head(&mut t, ARRAY, 2);
                    text(&mut t, "a");
                    text(&mut t, "b");
                }
                _ => t.push(TRUE),
            }
        }
    }
    t
}

/// The tape of a list of `n` numbers `number(i)`: one run, aligned as the walk aligns it.
fn numbers_tape(n: usize, number: impl Fn(usize) -> f64) -> Vec<u8> {
    use polycache::codec::js::tape::{ARRAY, NUMBERS};
    let mut t = vec![ARRAY];
    t.extend_from_slice(&(n as u32).to_le_bytes());
    t.push(NUMBERS);
    t.extend_from_slice(&(n as u32).to_le_bytes());
    t.resize(16, 0);
    for i in 0..n {
        t.extend_from_slice(&number(i).to_le_bytes());
    }
    t
}

/// Core's half of a Node `set`: a walk's tape into a MessagePack payload.
fn tape(c: &mut Criterion) {
    use polycache::codec::js::tape::encode_tape;
    use polycache::codec::Encoder;
    for (name, tape) in [
        ("records-10k", records_tape(105)),
        (
            "floats-1m",
            numbers_tape(55_000, |i| i as f64 * std::f64::consts::FRAC_1_PI + 0.1),
        ),
        ("ints-100k", numbers_tape(100_000, |i| i as f64)),
    ] {
        c.bench_function(&format!("tape/encode/{name}"), |b| {
            b.iter(|| {
                let mut encoder = Encoder::new(Codec::Msgpack);
                encode_tape(black_box(&tape), usize::MAX, &mut encoder).expect("encodes");
                encoder.finish().expect("finished")
            })
        });
    }
}

criterion_group!(benches, envelope, ring, tape);
criterion_main!(benches);
