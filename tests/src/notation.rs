//! The files every suite reads (`tests/vectors/*.json`, `tests/interop/cases.json`) and the
//! typed value notation of tests/vectors/README.md, for the Rust suites and agents (core's
//! tests, the interop agent, the WASI host's tests and agent). JSON cannot tell bytes, int
//! and float apart or hold 64-bit integers, so values are written as `{"int": "42"}`,
//! `{"bytes": "00ff"}` ...
//!
//! Python and JS have one counterpart each: `tests/vectors/notation.py` and
//! `tests/vectors/notation.cjs`.

use std::path::{Path, PathBuf};

use polycache::Value;
use serde_json::Value as Json;

/// Whether `got` is `want` with every map's keys in the same order: `==` ignores map
/// order (docs/FORMAT.md §2), the canonical bytes of both do not.
pub fn same(got: &Value, want: &Value) -> bool {
    use polycache::codec::msgpack;
    got == want && msgpack::encode(got) == msgpack::encode(want)
}

/// The `cases` of `tests/vectors/<file>`.
///
/// # Panics
/// When the file is missing or not a vector file.
pub fn vectors(file: &str) -> Vec<Json> {
    cases_of(&tests_dir().join("vectors").join(file))
}

/// The `cases` of `tests/interop/cases.json` (the values every runtime writes and reads).
///
/// # Panics
/// When the file is missing or malformed.
pub fn interop_cases() -> Vec<Json> {
    cases_of(&tests_dir().join("interop").join("cases.json"))
}

fn tests_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cases_of(path: &Path) -> Vec<Json> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let doc: Json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    doc["cases"].as_array().expect("a `cases` array").clone()
}

/// A value from its typed notation.
///
/// # Panics
/// On JSON that is not in the notation (the inputs are the project's own files).
pub fn typed(v: &Json) -> Value {
    let (tag, inner) = v
        .as_object()
        .and_then(|o| o.iter().next())
        .expect("a typed value has one tag");
    let text = || inner.as_str().expect("a string payload");
    match tag.as_str() {
        "nil" => Value::Nil,
        "bool" => Value::Bool(inner.as_bool().expect("bool")),
        "int" => text()
            .parse::<i64>()
            .map(Value::Int)
            .unwrap_or_else(|_| Value::from(text().parse::<u64>().expect("int"))),
        "float" => Value::Float(match text() {
            "NaN" => f64::NAN,
            "inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            other => other.parse().expect("float"),
        }),
        "str" => Value::Str(text().to_owned()),
        "bytes" => Value::Bytes(hex::decode(text()).expect("hex")),
        "array" => Value::Array(inner.as_array().expect("array").iter().map(typed).collect()),
        "map" => Value::Map(
            inner
                .as_object()
                .expect("map")
                .iter()
                .map(|(k, v)| (k.clone(), typed(v)))
                .collect(),
        ),
        other => panic!("unknown typed tag {other}"),
    }
}

/// A value in the typed notation (the inverse of [`typed`]).
pub fn to_typed(value: &Value) -> Json {
    let tagged =
        |tag: &str, inner: Json| Json::Object([(tag.to_owned(), inner)].into_iter().collect());
    match value {
        Value::Nil => tagged("nil", Json::Null),
        Value::Bool(b) => tagged("bool", Json::Bool(*b)),
        Value::Int(i) => tagged("int", Json::from(i.to_string())),
        Value::UInt(u) => tagged("int", Json::from(u.to_string())),
        Value::Float(f) if f.is_nan() => tagged("float", Json::from("NaN")),
        Value::Float(f) if f.is_infinite() => {
            tagged("float", Json::from(if *f > 0.0 { "inf" } else { "-inf" }))
        }
        Value::Float(f) => tagged("float", Json::from(f.to_string())),
        Value::Str(s) => tagged("str", Json::from(s.as_str())),
        Value::Bytes(b) => tagged("bytes", Json::from(hex::encode(b))),
        Value::Array(items) => tagged("array", Json::Array(items.iter().map(to_typed).collect())),
        Value::Map(map) => tagged(
            "map",
            Json::Object(map.iter().map(|(k, v)| (k.clone(), to_typed(v))).collect()),
        ),
    }
}

/// Plain JSON for a value (bytes as hex; lossy): how the interop agents print a loaded
/// value, so the matrix can compare what every runtime returned.
pub fn to_plain_json(value: &Value) -> Json {
    match value {
        Value::Nil => Json::Null,
        Value::Bool(b) => Json::from(*b),
        Value::Int(i) => Json::from(*i),
        Value::UInt(u) => Json::from(*u),
        Value::Float(f) => Json::from(*f),
        Value::Str(s) => Json::from(s.as_str()),
        Value::Bytes(b) => Json::from(hex::encode(b)),
        Value::Array(items) => Json::Array(items.iter().map(to_plain_json).collect()),
        Value::Map(map) => Json::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), to_plain_json(v)))
                .collect(),
        ),
    }
}

/// The bytes of a hostile.json case: its `bytes` segments (hex strings and
/// `{"repeat": hex, "times": n}` runs) concatenated, checked against its `size`.
///
/// # Panics
/// On a malformed case.
pub fn hostile_bytes(case: &Json) -> Vec<u8> {
    let mut out = Vec::new();
    for segment in case["bytes"].as_array().expect("bytes segments") {
        match segment {
            Json::String(hex) => out.extend(hex::decode(hex).expect("hex")),
            run => {
                let unit = hex::decode(run["repeat"].as_str().expect("repeat")).expect("hex");
                for _ in 0..run["times"].as_u64().expect("times") {
                    out.extend_from_slice(&unit);
                }
            }
        }
    }
    assert_eq!(out.len() as u64, case["size"].as_u64().expect("size"));
    out
}

/// JSON equality with numbers compared by value (`60` equals `60.0`): how the URL vectors'
/// resolved configs are compared (tests/vectors/README.md, urls.json).
pub fn same_json(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64(),
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same_json(v, w))
        }
        _ => a == b,
    }
}
