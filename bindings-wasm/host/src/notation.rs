//! The typed value notation of tests/vectors/README.md, shared by the tests and the interop
//! agent: JSON cannot tell bytes, int and float apart or hold 64-bit integers, so values are
//! written as `{"int": "42"}`, `{"bytes": "00ff"}` ...

use polycache::Value;
use serde_json::Value as Json;

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
