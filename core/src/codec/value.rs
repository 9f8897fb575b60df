//! The language-neutral value model (docs/FORMAT.md §2).

use std::collections::BTreeMap;
use std::fmt;

use indexmap::IndexMap;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// A map's entries in the order they were written (docs/FORMAT.md §2): the host's insertion
/// order when encoding, the wire order when decoding. A duplicate key read from the wire
/// keeps its first position and takes its last value, as a Python dict or a JS object does.
pub type Map = IndexMap<String, Value>;

/// A cached value as every runtime sees it. Maps keep their entries' order ([`Map`]);
/// equality compares maps as sets of entries, whatever their order.
///
/// Integers that fit `i64` are `Int`; `UInt` holds only values above `i64::MAX`. The
/// constructors (`From<u64>`) and decoders keep that rule, and equality compares integers
/// by value either way.
#[derive(Debug, Clone, Default)]
pub enum Value {
    /// Absent value (`None`, `null`).
    #[default]
    Nil,
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer above `i64::MAX`.
    UInt(u64),
    /// An IEEE 754 binary64 float.
    Float(f64),
    /// A UTF-8 string.
    Str(String),
    /// Binary data.
    Bytes(Vec<u8>),
    /// An ordered list.
    Array(Vec<Value>),
    /// A map with string keys, in insertion (or wire) order.
    Map(Map),
}

impl Value {
    /// The kind's name as used in error messages and docs (`"int"`, `"map"` …).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::UInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
        }
    }

    /// The string inside a `Str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A copy with every map's keys sorted byte-wise: the order-independent form that
    /// function keys hash and render (docs/FORMAT.md §5), so equal maps give equal keys.
    pub fn sorted(&self) -> Value {
        match self {
            Value::Array(items) => Value::Array(items.iter().map(Value::sorted).collect()),
            Value::Map(map) => {
                let mut entries: Vec<(String, Value)> =
                    map.iter().map(|(k, v)| (k.clone(), v.sorted())).collect();
                entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                Value::Map(entries.into_iter().collect())
            }
            other => other.clone(),
        }
    }

    /// The integer inside an `Int` (or a `UInt` that fits).
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int(i) => Some(i),
            Value::UInt(u) => i64::try_from(u).ok(),
            _ => None,
        }
    }
}

impl PartialEq for Value {
    /// Integers compare by value; floats by bits, with every NaN equal to every NaN, so a
    /// round-trip through the wire format compares equal.
    fn eq(&self, other: &Self) -> bool {
        use Value::*;
        match (self, other) {
            (Nil, Nil) => true,
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (UInt(a), UInt(b)) => a == b,
            (Int(a), UInt(b)) | (UInt(b), Int(a)) => u64::try_from(*a).is_ok_and(|a| a == *b),
            (Float(a), Float(b)) => a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
            (Str(a), Str(b)) => a == b,
            (Bytes(a), Bytes(b)) => a == b,
            (Array(a), Array(b)) => a == b,
            (Map(a), Map(b)) => a == b,
            _ => false,
        }
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self { Value::Int(i64::from(v)) }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        match i64::try_from(v) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::UInt(v),
        }
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}

impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::Array(v)
    }
}

impl From<BTreeMap<String, Value>> for Value {
    fn from(v: BTreeMap<String, Value>) -> Self {
        Value::Map(v.into_iter().collect())
    }
}

impl From<Map> for Value {
    fn from(v: Map) -> Self {
        Value::Map(v)
    }
}

impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for Value {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Value::Map(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// Converts any serde-serializable Rust value into a [`Value`] (structs become maps).
///
/// # Errors
/// A codec error when `T` produces something the value model cannot hold (a map with
/// non-string keys, for example).
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value> {
    let bytes = rmp_serde::to_vec_named(value).map_err(|e| Error::codec(e.to_string()))?;
    super::msgpack::decode_with(&bytes, &super::DecodeLimits::UNLIMITED)
}

/// Converts a [`Value`] into any serde-deserializable Rust type.
///
/// # Errors
/// A codec error when the value does not have the shape `T` expects.
pub fn from_value<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T> {
    let bytes = super::msgpack::encode(value);
    rmp_serde::from_slice(&bytes).map_err(|e| Error::codec(e.to_string()))
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Nil => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::UInt(u) => s.serialize_u64(*u),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(v) => s.serialize_str(v),
            Value::Bytes(b) => s.serialize_bytes(b),
            Value::Array(a) => a.serialize(s),
            Value::Map(m) => s.collect_map(m),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a polycache value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(v.to_vec()))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            out.insert(k, v);
        }
        Ok(Value::Map(out))
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, _d: D) -> Result<Value, D::Error> {
        Err(de::Error::custom(
            "extension types are not part of the value model",
        ))
    }
}
