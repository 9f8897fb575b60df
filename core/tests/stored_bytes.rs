//! The bytes a set (`Cache::set_encoded`, the bindings' set path) leaves in Redis are the
//! envelope vectors' bytes, whichever way the
//! store sends them: a blocking store writes `SET`'s RESP around the payload in the
//! encoder's own buffer (falling back to a copy when the key is too long for the room in
//! front), an async store through redis-rs's command; with and without `PX`, and the `NX`
//! form of the stampede lock. Read back with a plain `GET`.

#[macro_use]
mod common;

use std::time::Duration;

use common::{unique, Driver, Target};
use polycache::codec::{self, Codec, Compression, EncodeOptions, Meta};
use polycache::{Cache, Clock, Entry, Value};
use polycache_harness::notation::{typed, vectors};

on_every_redis_store!(
    sets_store_the_envelope_vectors,
    set_if_absent_stores_the_bytes
);

/// What one `set` must leave in Redis.
struct Case {
    name: String,
    codec: Codec,
    compression: Compression,
    threshold: usize,
    raw: bool,
    value: Value,
    expected: Vec<u8>,
}

/// The vectors a plain `set` at the mock clock's time writes (no header extensions, no
/// fresh window); compressed ones, whose block the vectors do not fix, against core's
/// own envelope of the value; and large values (compressed, and floats that LZ4 leaves
/// as they are) and raw mode's bytes.
fn cases() -> Vec<Case> {
    let (clock, _) = Clock::mock();
    let meta = Meta {
        created_at_ms: clock.now_ms(),
        ..Meta::default()
    };
    let mut cases: Vec<Case> = vectors("envelope.json")
        .into_iter()
        .filter(|c| {
            c["op"] == "roundtrip"
                && c["createdAt"] == clock.now_ms()
                && c["schema"].is_null()
                && c["tags"].as_array().is_some_and(Vec::is_empty)
                && c["freshUntil"] == 0
                && c.get("loadMs").is_none()
                && c.get("notFound").is_none()
        })
        .map(|c| {
            let codec: Codec = serde_json::from_value(c["codec"].clone()).expect("codec");
            let compression: Compression =
                serde_json::from_value(c["compression"].clone()).expect("compression");
            let threshold = c["compressThreshold"].as_u64().expect("threshold") as usize;
            let value = typed(&c["value"]);
            let hex = hex::decode(c["hex"].as_str().expect("hex")).expect("hex");
            let expected = if c["exact"] == true {
                hex
            } else {
                let options = EncodeOptions {
                    codec,
                    compression,
                    compress_threshold: threshold,
                };
                let bytes = codec::encode(&value, &options, &meta).expect("encode");
                // Same header (8 bytes and the 16 fixed ones); the block is core's own.
                assert_eq!(bytes[..24], hex[..24], "{}", c["name"]);
                bytes
            };
            Case {
                name: c["name"].as_str().expect("name").to_owned(),
                codec,
                compression,
                threshold,
                raw: false,
                value,
                expected,
            }
        })
        .collect();
    let records = Value::Array(
        (0..3000)
            .map(|i| {
                Value::Map(
                    [("id".into(), Value::from(i)), ("ok".into(), true.into())]
                        .into_iter()
                        .collect(),
                )
            })
            .collect(),
    );
    let floats = Value::Array(
        (0..30_000)
            .map(|i| Value::Float(f64::from(i) * 0.271))
            .collect(),
    );
    for (name, value) in [("large-records", records), ("large-floats", floats)] {
        let options = EncodeOptions::default();
        cases.push(Case {
            name: name.into(),
            codec: options.codec,
            compression: options.compression,
            threshold: options.compress_threshold,
            raw: false,
            expected: codec::encode(&value, &options, &meta).expect("encode"),
            value,
        });
    }
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    cases.push(Case {
        name: "raw-bytes".into(),
        codec: Codec::Bytes,
        compression: Compression::None,
        threshold: 0,
        raw: true,
        expected: bytes.clone(),
        value: Value::Bytes(bytes),
    });
    cases
}

fn cache_for(driver: &Driver, target: Target, case: &Case) -> Cache {
    let config = target
        .config(&unique("stored-bytes"))
        .codec(case.codec)
        .compression(case.compression)
        .compress_threshold(case.threshold)
        .raw(case.raw)
        .ttl(None)
        .jitter(0.0);
    let (clock, _) = Clock::mock();
    driver
        .build(Cache::builder(config).clock(clock))
        .expect("cache")
}

fn sets_store_the_envelope_vectors(target: Target) {
    let driver = Driver::new(target.io);
    let cases = cases();
    assert!(cases.len() >= 100, "only {} cases", cases.len());
    // Longer than the room in front of the payload, short enough not to be hashed (a user
    // key over 200 bytes becomes a digest), so the store's copy fallback runs.
    let long_key = "k".repeat(150);
    for (i, case) in cases.iter().enumerate() {
        let cache = cache_for(&driver, target, case);
        for (key, ttl) in [
            (format!("v{i}"), None),
            (format!("v{i}-px"), Some(Duration::from_secs(600))),
            (
                format!("{long_key}{i}"),
                Some(Duration::from_millis(90_500)),
            ),
        ] {
            let mut encoder = cache.encoder();
            encoder.value(&case.value).expect("encode");
            let encoded = encoder.finish().expect("finish");
            driver
                .run(cache.set_encoded(&key, encoded, ttl))
                .unwrap_or_else(|e| panic!("{}: set: {e}", case.name));
            let redis_key = cache.redis_key(&key).expect("key");
            if key.starts_with(&long_key) {
                assert!(redis_key.len() > codec::HEADROOM, "{redis_key}");
            }
            let stored = driver.run(cache.store().get(&redis_key)).expect("get");
            assert!(
                stored.as_deref() == Some(&case.expected[..]),
                "{} (key {} bytes, ttl {ttl:?}): stored {:?}",
                case.name,
                key.len(),
                stored.map(|s| hex::encode(&s[..s.len().min(64)]))
            );
            let left = driver.run(cache.store().ttl(&redis_key)).expect("ttl");
            match ttl {
                None => assert_eq!(left, None, "{}", case.name),
                Some(ttl) => assert!(
                    left.is_some_and(|left| left <= ttl && left > ttl - Duration::from_secs(60)),
                    "{}: ttl {left:?}, set {ttl:?}",
                    case.name
                ),
            }
        }
    }
}

fn set_if_absent_stores_the_bytes(target: Target) {
    let driver = Driver::new(target.io);
    let cache = driver
        .open(target.config(&unique("stored-bytes-nx")))
        .expect("cache");
    let store = cache.store();
    for (i, len) in [0usize, 1, 200, 70_000].into_iter().enumerate() {
        let key = cache.redis_key(&format!("nx{i}")).expect("key");
        let bytes: Vec<u8> = (0..len).map(|b| (b * 7 % 251) as u8).collect();
        let entry = Entry {
            key: key.clone(),
            value: bytes.clone(),
            ttl: Some(Duration::from_secs(600)),
        };
        assert!(driver.run(store.set_if_absent(entry.clone())).expect("nx"));
        let other = Entry {
            value: b"other".to_vec(),
            ..entry
        };
        assert!(!driver.run(store.set_if_absent(other)).expect("nx again"));
        let stored = driver.run(store.get(&key)).expect("get");
        assert_eq!(stored.as_deref(), Some(&bytes[..]), "{len} bytes");
        let left = driver.run(store.ttl(&key)).expect("ttl");
        assert!(left.is_some_and(|left| left > Duration::from_secs(500)));
    }
}
