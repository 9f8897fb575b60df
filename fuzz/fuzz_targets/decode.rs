//! The envelope decoder on arbitrary bytes: never a panic, never a value above the budget,
//! and what decodes re-encodes to something that decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use polycache::codec::{self, json, msgpack, DecodeLimits, EncodeOptions, Value, VALUE_SLOT_BYTES};

const LIMITS: DecodeLimits = DecodeLimits {
    max_payload_bytes: 1 << 16,
    max_value_bytes: 1 << 16,
};

/// The counted size of docs/FORMAT.md §1 ("Limits").
fn counted(value: &Value) -> usize {
    VALUE_SLOT_BYTES
        + match value {
            Value::Str(s) => s.len(),
            Value::Bytes(b) => b.len(),
            Value::Array(items) => items.iter().map(counted).sum(),
            Value::Map(map) => map
                .iter()
                .map(|(k, v)| VALUE_SLOT_BYTES + k.len() + counted(v))
                .sum(),
            _ => 0,
        }
}

fn check(value: &Value) {
    assert!(counted(value) <= LIMITS.max_value_bytes);
    let again = msgpack::decode_with(&msgpack::encode(value), &DecodeLimits::UNLIMITED)
        .expect("canonical MessagePack of a decoded value decodes");
    assert_eq!(&again, value);
}

fuzz_target!(|data: &[u8]| {
    if let Ok((header, value)) = codec::decode_with(data, &LIMITS) {
        check(&value);
        let options = EncodeOptions {
            codec: header.codec,
            ..EncodeOptions::default()
        };
        if let Ok(bytes) = codec::encode(&value, &options, &header.meta) {
            let (_, again) = codec::decode_with(&bytes, &DecodeLimits::UNLIMITED)
                .expect("a re-encoded envelope decodes");
            assert_eq!(again, value);
        }
    }
    // The payload decoders alone, without the envelope in front.
    if let Ok(value) = msgpack::decode_with(data, &LIMITS) {
        check(&value);
    }
    if let Ok(value) = json::decode_with(data, &LIMITS) {
        check(&value);
    }
});
