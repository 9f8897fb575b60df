//! Property tests of the decoders: arbitrary bytes never panic and never build more than
//! the budget allows; every value round-trips through every codec that can hold it.

use proptest::prelude::*;

use super::{
    decode_with, encode, json, msgpack, Codec, Compression, DecodeLimits, EncodeOptions, Meta,
    Value, VALUE_SLOT_BYTES,
};

/// The counted size of docs/FORMAT.md §1 ("Limits"), written from the spec.
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

fn value(json_safe: bool) -> impl Strategy<Value = Value> {
    let float = if json_safe {
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .boxed()
    } else {
        any::<f64>().boxed()
    };
    let mut leaves = vec![
        Just(Value::Nil).boxed(),
        any::<bool>().prop_map(Value::Bool).boxed(),
        any::<i64>().prop_map(Value::Int).boxed(),
        (i64::MAX as u64 + 1..=u64::MAX)
            .prop_map(Value::UInt)
            .boxed(),
        float.prop_map(Value::Float).boxed(),
        ".{0,40}".prop_map(Value::Str).boxed(),
    ];
    if !json_safe {
        leaves.push(
            proptest::collection::vec(any::<u8>(), 0..40)
                .prop_map(Value::Bytes)
                .boxed(),
        );
    }
    proptest::strategy::Union::new(leaves).prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            // Entries in arbitrary (unsorted) order: the order is part of the value.
            proptest::collection::vec((".{0,12}", inner), 0..8)
                .prop_map(|entries| Value::Map(entries.into_iter().collect())),
        ]
    })
}

/// Small caps, so arbitrary input reaches them.
const SMALL: DecodeLimits = DecodeLimits {
    max_payload_bytes: 4096,
    max_value_bytes: 2048,
};

/// An envelope header for `codec` and `compression`, so arbitrary payloads get past it.
fn header(codec: u8, compression: u8) -> Vec<u8> {
    let mut out = vec![0xC1, b'P', b'C', 1, codec, compression, 0, 16];
    out.extend_from_slice(&[0; 16]);
    out
}

/// Whether every map in `a` and `b` lists its keys in the same order (`==` ignores order).
fn same_order(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => x.iter().zip(y).all(|(x, y)| same_order(x, y)),
        (Value::Map(x), Value::Map(y)) => {
            x.keys().eq(y.keys()) && x.values().zip(y.values()).all(|(x, y)| same_order(x, y))
        }
        _ => true,
    }
}

fn within(result: crate::Result<Value>, limits: &DecodeLimits) -> Result<(), TestCaseError> {
    if let Ok(v) = result {
        prop_assert!(
            counted(&v) <= limits.max_value_bytes,
            "{} bytes",
            counted(&v)
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_envelopes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_with(&bytes, &SMALL);
        let _ = decode_with(&bytes, &DecodeLimits::default());
    }

    #[test]
    fn arbitrary_payloads_respect_the_budget(
        codec in 0u8..3,
        compression in 0u8..2,
        payload in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut bytes = header(codec, compression);
        bytes.extend_from_slice(&payload);
        within(decode_with(&bytes, &SMALL).map(|(_, v)| v), &SMALL)?;
        within(msgpack::decode_with(&payload, &SMALL), &SMALL)?;
        within(json::decode_with(&payload, &SMALL), &SMALL)?;
    }

    #[test]
    fn arbitrary_lz4_blocks_respect_both_caps(
        stated in any::<u32>(),
        block in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut bytes = header(1, 1);
        bytes.extend_from_slice(&stated.to_be_bytes());
        bytes.extend_from_slice(&block);
        let result = decode_with(&bytes, &SMALL);
        if result.is_ok() {
            prop_assert!(stated as usize <= SMALL.max_payload_bytes);
            prop_assert!(stated as usize <= block.len() * 255);
        }
        within(result.map(|(_, v)| v), &SMALL)?;
    }

    #[test]
    fn msgpack_round_trips_and_counts_exactly(v in value(false)) {
        let bytes = msgpack::encode(&v);
        let size = counted(&v);
        let exact = DecodeLimits { max_value_bytes: size, ..DecodeLimits::default() };
        let back = msgpack::decode_with(&bytes, &exact)?;
        prop_assert!(same_order(&back, &v));
        prop_assert_eq!(back, v.clone());
        let short = DecodeLimits { max_value_bytes: size - 1, ..exact };
        prop_assert!(msgpack::decode_with(&bytes, &short).is_err());
    }

    #[test]
    fn json_round_trips_and_counts_exactly(v in value(true)) {
        let bytes = json::encode(&v)?;
        let size = counted(&v);
        let exact = DecodeLimits { max_value_bytes: size, ..DecodeLimits::default() };
        let back = json::decode_with(&bytes, &exact)?;
        prop_assert!(same_order(&back, &v));
        prop_assert_eq!(back, v.clone());
        let short = DecodeLimits { max_value_bytes: size - 1, ..exact };
        prop_assert!(json::decode_with(&bytes, &short).is_err());
    }

    #[test]
    fn envelopes_round_trip_compressed_or_not(v in value(false), threshold in 0usize..64) {
        let options = EncodeOptions {
            codec: Codec::Msgpack,
            compression: Compression::Lz4,
            compress_threshold: threshold,
        };
        let bytes = encode(&v, &options, &Meta::default())?;
        prop_assert_eq!(decode_with(&bytes, &DecodeLimits::default())?.1, v);
    }

    #[test]
    fn the_payload_cap_is_exact(v in value(false)) {
        let payload = msgpack::encode(&v);
        let options = EncodeOptions {
            codec: Codec::Msgpack,
            compression: Compression::Lz4,
            compress_threshold: 0,
        };
        let bytes = encode(&v, &options, &Meta::default())?;
        let at = DecodeLimits { max_payload_bytes: payload.len(), ..DecodeLimits::default() };
        prop_assert!(decode_with(&bytes, &at).is_ok());
        let below = DecodeLimits { max_payload_bytes: payload.len() - 1, ..at };
        prop_assert!(decode_with(&bytes, &below).is_err());
    }
}

#[test]
fn nesting_limit_is_the_same_for_both_codecs() {
    let nested = |n: usize| (0..n).fold(Value::Int(1), |inner, _| Value::Array(vec![inner]));
    // 256 arrays around a scalar: the scalar is at depth 256.
    let ok = nested(super::msgpack::MAX_DEPTH);
    let deep = nested(super::msgpack::MAX_DEPTH + 1);
    assert_eq!(msgpack::decode(&msgpack::encode(&ok)).unwrap(), ok);
    assert!(msgpack::decode(&msgpack::encode(&deep)).is_err());
    assert_eq!(json::decode(&json::encode(&ok).unwrap()).unwrap(), ok);
    // No encoder writes the deeper one; its text is written by hand.
    assert!(json::encode(&deep).is_err());
    let n = super::msgpack::MAX_DEPTH + 1;
    let text = format!("{}1{}", "[".repeat(n), "]".repeat(n));
    assert!(json::decode(text.as_bytes()).is_err());
}
