//! Canonical JSON (docs/FORMAT.md §2): no whitespace, sorted keys, serde_json escaping,
//! ryu float layout. Bytes and non-finite floats cannot be written.

use super::Value;
use crate::error::{Error, Result};

/// Encodes `value` as canonical JSON text.
///
/// # Errors
/// A codec error for bytes, NaN or infinities, which JSON cannot represent.
pub fn encode(value: &Value) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(64);
    write_value(&mut out, value)?;
    Ok(out)
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's string escaping is the contract; writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn write_value(out: &mut Vec<u8>, value: &Value) -> Result<()> {
    match value {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::UInt(u) => out.extend_from_slice(u.to_string().as_bytes()),
        Value::Float(f) => {
            if !f.is_finite() {
                return Err(Error::codec(format!("json: cannot encode the float {f}")));
            }
            // ryu directly: serde_json's float layout changed between releases (1.0.154
            // switched to `1e+16`), and these bytes are a cross-language contract.
            out.extend_from_slice(ryu::Buffer::new().format_finite(*f).as_bytes());
        }
        Value::Str(s) => write_str(out, s),
        Value::Bytes(_) => {
            return Err(Error::codec(
                "json: bytes cannot be encoded as JSON; use the msgpack or bytes codec",
            ))
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item)?;
            }
            out.push(b']');
        }
        Value::Map(map) => {
            out.push(b'{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, k);
                out.push(b':');
                write_value(out, v)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// Decodes JSON text into a value; numbers with a fraction or exponent become floats.
///
/// # Errors
/// A codec error for anything that is not one valid JSON document.
pub fn decode(bytes: &[u8]) -> Result<Value> {
    let parsed: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| Error::codec(format!("json: {e}")))?;
    Ok(from_json(parsed))
}

fn from_json(v: serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::UInt(u)
            } else {
                Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Value::Str(s),
        serde_json::Value::Array(items) => Value::Array(items.into_iter().map(from_json).collect()),
        serde_json::Value::Object(map) => {
            Value::Map(map.into_iter().map(|(k, v)| (k, from_json(v))).collect())
        }
    }
}
