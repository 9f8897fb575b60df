//! Decoding straight into host values: the decoders of this module's parent drive a
//! [`Build`] that a binding implements for its runtime's objects (Python objects, JS values),
//! so a payload becomes host objects in one pass, with no [`Value`] tree in between. The
//! rules stay here: canonical numbers, UTF-8 checks, the nesting limit and the
//! `maxValueBytes` budget are applied by the decoder before the builder is called.

use std::convert::Infallible;

use super::{DecodeLimits, Map, Value, VALUE_SLOT_BYTES};
use crate::error::Error;

/// What a decoder calls to build one value, bottom-up: scalars are made as they are read;
/// a container is opened, filled item by item (map entries as a key, then its value) and
/// closed. Calls for one container never interleave with another's except for its items.
pub trait Build {
    /// A finished host value.
    type Value;
    /// An array being filled.
    type Array;
    /// A map being filled.
    type Map;
    /// A failure of the host (out of memory, an exception): stops decoding as it is.
    type Error;

    /// Nil.
    fn nil(&mut self) -> Result<Self::Value, Self::Error>;
    /// A boolean.
    fn bool(&mut self, v: bool) -> Result<Self::Value, Self::Error>;
    /// An integer that fits `i64`.
    fn int(&mut self, v: i64) -> Result<Self::Value, Self::Error>;
    /// An integer above `i64::MAX`.
    fn uint(&mut self, v: u64) -> Result<Self::Value, Self::Error>;
    /// A float.
    fn float(&mut self, v: f64) -> Result<Self::Value, Self::Error>;
    /// A string (already checked to be UTF-8 and counted).
    fn str(&mut self, v: &str) -> Result<Self::Value, Self::Error>;
    /// Bytes.
    fn bytes(&mut self, v: &[u8]) -> Result<Self::Value, Self::Error>;
    /// Opens an array of `len` items (`0` when the codec does not say, as JSON). A claimed
    /// length has been checked against the input and the budget before this call, but not
    /// charged (nested claims share the same bytes): reserve at most [`PREALLOC_ITEMS`].
    fn array(&mut self, len: usize) -> Result<Self::Array, Self::Error>;
    /// Opens an array of `len` items with room for `reserve` of them made up front:
    /// `reserve` is what the decode's preallocation budget granted ([`Prealloc`]), so a
    /// builder may make exactly that many slots whatever the nesting. By default, as
    /// [`Build::array`].
    fn array_reserved(&mut self, len: usize, reserve: usize) -> Result<Self::Array, Self::Error> {
        let _ = reserve;
        self.array(len)
    }
    /// Appends the next item.
    fn push(&mut self, array: &mut Self::Array, item: Self::Value) -> Result<(), Self::Error>;
    /// Closes an array.
    fn end_array(&mut self, array: Self::Array) -> Result<Self::Value, Self::Error>;
    /// Opens a map of `len` entries (`0` when the codec does not say).
    fn map(&mut self, len: usize) -> Result<Self::Map, Self::Error>;
    /// Opens a map of `len` entries with room for `reserve` of them made up front, as
    /// [`Build::array_reserved`]. By default, as [`Build::map`].
    fn map_reserved(&mut self, len: usize, reserve: usize) -> Result<Self::Map, Self::Error> {
        let _ = reserve;
        self.map(len)
    }
    /// The key of the next entry, before its value is built.
    fn key(&mut self, map: &mut Self::Map, key: &str) -> Result<(), Self::Error>;
    /// The value of the entry whose key came last. A repeated key keeps its first position
    /// and takes this value (docs/FORMAT.md §2).
    fn value(&mut self, map: &mut Self::Map, value: Self::Value) -> Result<(), Self::Error>;
    /// Closes a map.
    fn end_map(&mut self, map: Self::Map) -> Result<Self::Value, Self::Error>;
}

/// Why decoding into a host stopped.
#[derive(Debug)]
pub enum DecodeError<E> {
    /// The bytes are not a valid value within the limits: a miss plus a counted decode
    /// error in a cache.
    Codec(Error),
    /// The builder failed; handed back as it is.
    Host(E),
}

impl<E> From<Error> for DecodeError<E> {
    fn from(err: Error) -> Self {
        DecodeError::Codec(err)
    }
}

impl DecodeError<Infallible> {
    /// The codec error (a [`Tree`] never fails).
    pub fn into_codec(self) -> Error {
        match self {
            DecodeError::Codec(err) => err,
            DecodeError::Host(never) => match never {},
        }
    }
}

impl Value {
    /// Makes this value's host counterpart with `build`: the calls a decoder would make
    /// for its bytes, so a binding converts core's values and payloads by one set of rules.
    ///
    /// # Errors
    /// The builder's own error.
    pub fn build_into<B: Build>(&self, build: &mut B) -> Result<B::Value, B::Error> {
        match self {
            Value::Nil => build.nil(),
            Value::Bool(b) => build.bool(*b),
            Value::Int(i) => build.int(*i),
            Value::UInt(u) => match i64::try_from(*u) {
                Ok(i) => build.int(i),
                Err(_) => build.uint(*u),
            },
            Value::Float(f) => build.float(*f),
            Value::Str(s) => build.str(s),
            Value::Bytes(b) => build.bytes(b),
            Value::Array(items) => {
                // A value in memory: its lengths are real, not claims.
                let mut array = build.array_reserved(items.len(), items.len())?;
                for item in items {
                    let item = item.build_into(build)?;
                    build.push(&mut array, item)?;
                }
                build.end_array(array)
            }
            Value::Map(map) => {
                let mut out = build.map_reserved(map.len(), map.len())?;
                for (k, v) in map {
                    build.key(&mut out, k)?;
                    let v = v.build_into(build)?;
                    build.value(&mut out, v)?;
                }
                build.end_map(out)
            }
        }
    }
}

/// Builds core's own [`Value`] tree: what `decode` returns.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tree;

/// Slots reserved up front for an array or map by [`Build::array`] / [`Build::map`], at
/// most: a claimed length reserves no more, and larger containers grow as their items are
/// actually read (and counted). A claim is checked against the remaining input and budget
/// but not charged, so nested claims are all backed by the same bytes: a [`Build`] that
/// preallocates from [`Build::array`] must cap it here too. [`Build::array_reserved`] is
/// given a reservation that needs no cap ([`Prealloc`]).
pub const PREALLOC_ITEMS: usize = 1024;

/// The decode-wide preallocation budget: every container's up-front reservation draws
/// `min(claimed length, what is left)` from one count that starts at the payload's length
/// in bytes (or at the number of values [`DecodeLimits::max_value_bytes`] can pay for, if
/// smaller). So all the slots reserved during one decode, however the claims nest, add up
/// to at most that, while an honest payload is never cut short: each of its items takes
/// at least one byte and one counted value, so the lengths of all its containers add up
/// to less than either.
#[derive(Debug, Clone, Copy)]
pub struct Prealloc {
    left: usize,
}

impl Prealloc {
    /// A budget for decoding `payload_len` bytes within `limits`.
    pub fn new(payload_len: usize, limits: &DecodeLimits) -> Self {
        Prealloc {
            left: payload_len.min(limits.max_value_bytes / VALUE_SLOT_BYTES),
        }
    }

    /// The slots a container claiming `len` items may reserve now; they are spent.
    #[inline]
    pub fn take(&mut self, len: usize) -> usize {
        let granted = len.min(self.left);
        self.left -= granted;
        granted
    }
}

impl Build for Tree {
    type Value = Value;
    type Array = Vec<Value>;
    type Map = (Map, Option<String>);
    type Error = Infallible;

    fn nil(&mut self) -> Result<Value, Infallible> {
        Ok(Value::Nil)
    }
    fn bool(&mut self, v: bool) -> Result<Value, Infallible> {
        Ok(Value::Bool(v))
    }
    fn int(&mut self, v: i64) -> Result<Value, Infallible> {
        Ok(Value::Int(v))
    }
    fn uint(&mut self, v: u64) -> Result<Value, Infallible> {
        Ok(Value::from(v))
    }
    fn float(&mut self, v: f64) -> Result<Value, Infallible> {
        Ok(Value::Float(v))
    }
    fn str(&mut self, v: &str) -> Result<Value, Infallible> {
        Ok(Value::Str(v.to_owned()))
    }
    fn bytes(&mut self, v: &[u8]) -> Result<Value, Infallible> {
        Ok(Value::Bytes(v.to_vec()))
    }
    fn array(&mut self, len: usize) -> Result<Vec<Value>, Infallible> {
        Ok(Vec::with_capacity(len.min(PREALLOC_ITEMS)))
    }

    fn push(&mut self, array: &mut Vec<Value>, item: Value) -> Result<(), Infallible> {
        array.push(item);
        Ok(())
    }
    fn end_array(&mut self, array: Vec<Value>) -> Result<Value, Infallible> {
        Ok(Value::Array(array))
    }
    fn map(&mut self, len: usize) -> Result<Self::Map, Infallible> {
        Ok((Map::with_capacity(len.min(PREALLOC_ITEMS)), None))
    }

    fn key(&mut self, map: &mut Self::Map, key: &str) -> Result<(), Infallible> {
        map.1 = Some(key.to_owned());
        Ok(())
    }
    fn value(&mut self, map: &mut Self::Map, value: Value) -> Result<(), Infallible> {
        if let Some(key) = map.1.take() {
            map.0.insert(key, value);
        }
        Ok(())
    }
    fn end_map(&mut self, map: Self::Map) -> Result<Value, Infallible> {
        Ok(Value::Map(map.0))
    }
}
