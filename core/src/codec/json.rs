//! Canonical JSON (docs/FORMAT.md §2): no whitespace, keys in the order given, serde_json escaping,
//! ryu float layout. Bytes and non-finite floats cannot be written. Decoding follows the
//! same limits as MessagePack: nesting and counted memory.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::msgpack::MAX_DEPTH;
use super::{Budget, DecodeLimits, Map, Value, VALUE_SLOT_BYTES};
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

/// Decodes JSON text into a value with the default [`DecodeLimits`]; numbers with a
/// fraction or exponent become floats.
///
/// # Errors
/// A codec error for anything that is not one valid JSON document, nesting deeper than
/// [`MAX_DEPTH`] or a value above the limits.
pub fn decode(bytes: &[u8]) -> Result<Value> {
    decode_with(bytes, &DecodeLimits::default())
}

/// Decodes JSON text into a value whose counted memory stays within
/// `limits.max_value_bytes`, nesting at most [`MAX_DEPTH`] deep: the same rules as
/// MessagePack. serde_json's own recursion limit (128) is switched off so that one rule
/// applies to both codecs; the depth check below bounds the recursion instead.
///
/// # Errors
/// As [`decode`].
pub fn decode_with(bytes: &[u8], limits: &DecodeLimits) -> Result<Value> {
    let mut budget = Budget::new(limits);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    let value = ValueSeed {
        budget: &mut budget,
        depth: 0,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v))
    .map_err(|e| Error::codec(format!("json: {e}")))?;
    Ok(value)
}

/// Builds one value at `depth`, counting it against the budget before it is built.
struct ValueSeed<'b> {
    budget: &'b mut Budget,
    depth: usize,
}

impl ValueSeed<'_> {
    fn child(&mut self) -> ValueSeed<'_> {
        ValueSeed {
            budget: self.budget,
            depth: self.depth + 1,
        }
    }
}

fn custom<E: de::Error>(e: Error) -> E {
    E::custom(e.to_string())
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        if self.depth > MAX_DEPTH {
            return Err(de::Error::custom("nesting too deep"));
        }
        self.budget.charge(VALUE_SLOT_BYTES).map_err(custom)?;
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Value, E> {
        self.budget.charge(v.len()).map_err(custom)?;
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> std::result::Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.child())? {
            self.budget.grow(&mut items);
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> std::result::Result<Value, A::Error> {
        let mut out = Map::new();
        loop {
            let key = map.next_key_seed(KeySeed {
                budget: &mut *self.budget,
                depth: self.depth + 1,
            })?;
            let Some(key) = key else { break };
            let value = map.next_value_seed(self.child())?;
            out.insert(key, value);
        }
        Ok(Value::Map(out))
    }
}

/// An object key: counted like a string value.
struct KeySeed<'b> {
    budget: &'b mut Budget,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<String, D::Error> {
        if self.depth > MAX_DEPTH {
            return Err(de::Error::custom("nesting too deep"));
        }
        self.budget.charge(VALUE_SLOT_BYTES).map_err(custom)?;
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<String, E> {
        self.budget.charge(v.len()).map_err(custom)?;
        Ok(v.to_owned())
    }
}
