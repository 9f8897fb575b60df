//! Canonical JSON (docs/FORMAT.md §2): no whitespace, keys in the order given, serde_json
//! escaping, ryu float layout. Bytes and non-finite floats cannot be written. Decoding
//! follows the same limits as MessagePack: nesting and counted memory.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::build::{Build, DecodeError, Tree};
use super::encoder::Encoder;
use super::msgpack::MAX_DEPTH;
use super::{Budget, Codec, DecodeLimits, Value, VALUE_SLOT_BYTES};
use crate::error::{Error, Result};

/// Encodes `value` as canonical JSON text.
///
/// # Errors
/// A codec error for bytes, NaN or infinities, which JSON cannot represent, or nesting
/// deeper than [`MAX_DEPTH`].
pub fn encode(value: &Value) -> Result<Vec<u8>> {
    let mut encoder = Encoder::new(Codec::Json);
    encoder.value(value)?;
    Ok(encoder.finish()?.payload.into_vec())
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
    decode_into(bytes, limits, &mut Tree).map_err(DecodeError::into_codec)
}

/// Decodes JSON text into a host value made by `build`, with the rules of
/// [`decode_with`].
///
/// # Errors
/// As [`decode`], or the builder's own error.
pub fn decode_into<B: Build>(
    bytes: &[u8],
    limits: &DecodeLimits,
    build: &mut B,
) -> std::result::Result<B::Value, DecodeError<B::Error>> {
    let mut ctx = Ctx {
        budget: Budget::new(limits),
        build,
        failed: None,
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    let result = Seed {
        ctx: &mut ctx,
        depth: 0,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    match (result, ctx.failed.take()) {
        (Ok(value), _) => Ok(value),
        (Err(_), Some(host)) => Err(DecodeError::Host(host)),
        (Err(e), None) => Err(DecodeError::Codec(Error::codec(format!("json: {e}")))),
    }
}

/// What every level of the decoder shares: the budget, the builder and a builder failure
/// (serde's errors are strings, so the host's own error waits here).
struct Ctx<'b, B: Build> {
    budget: Budget,
    build: &'b mut B,
    failed: Option<B::Error>,
}

impl<B: Build> Ctx<'_, B> {
    fn host<T, E: de::Error>(
        &mut self,
        result: std::result::Result<T, B::Error>,
    ) -> std::result::Result<T, E> {
        result.map_err(|err| {
            self.failed = Some(err);
            E::custom("the host failed while building the value")
        })
    }
}

fn custom<E: de::Error>(e: Error) -> E {
    E::custom(e.to_string())
}

/// Builds one value at `depth`, counting it against the budget before it is built.
struct Seed<'c, 'b, B: Build> {
    ctx: &'c mut Ctx<'b, B>,
    depth: usize,
}

impl<'de, B: Build> DeserializeSeed<'de> for Seed<'_, '_, B> {
    type Value = B::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<B::Value, D::Error> {
        if self.depth > MAX_DEPTH {
            return Err(de::Error::custom("nesting too deep"));
        }
        self.ctx.budget.charge(VALUE_SLOT_BYTES).map_err(custom)?;
        d.deserialize_any(self)
    }
}

impl<'de, B: Build> Visitor<'de> for Seed<'_, '_, B> {
    type Value = B::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> std::result::Result<B::Value, E> {
        let r = self.ctx.build.nil();
        self.ctx.host(r)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<B::Value, E> {
        let r = self.ctx.build.bool(v);
        self.ctx.host(r)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<B::Value, E> {
        let r = self.ctx.build.int(v);
        self.ctx.host(r)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<B::Value, E> {
        let r = match i64::try_from(v) {
            Ok(i) => self.ctx.build.int(i),
            Err(_) => self.ctx.build.uint(v),
        };
        self.ctx.host(r)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<B::Value, E> {
        let r = self.ctx.build.float(v);
        self.ctx.host(r)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<B::Value, E> {
        self.ctx.budget.charge(v.len()).map_err(custom)?;
        let r = self.ctx.build.str(v);
        self.ctx.host(r)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<B::Value, A::Error> {
        let r = self.ctx.build.array(0);
        let mut items = self.ctx.host(r)?;
        let depth = self.depth + 1;
        while let Some(item) = seq.next_element_seed(Seed {
            ctx: &mut *self.ctx,
            depth,
        })? {
            let r = self.ctx.build.push(&mut items, item);
            self.ctx.host(r)?;
        }
        let r = self.ctx.build.end_array(items);
        self.ctx.host(r)
    }
    fn visit_map<A: MapAccess<'de>>(
        self,
        mut access: A,
    ) -> std::result::Result<B::Value, A::Error> {
        let r = self.ctx.build.map(0);
        let mut map = self.ctx.host(r)?;
        let depth = self.depth + 1;
        loop {
            let key = access.next_key_seed(KeySeed {
                budget: &mut self.ctx.budget,
                depth,
            })?;
            let Some(key) = key else { break };
            let r = self.ctx.build.key(&mut map, &key);
            self.ctx.host(r)?;
            let value = access.next_value_seed(Seed {
                ctx: &mut *self.ctx,
                depth,
            })?;
            let r = self.ctx.build.value(&mut map, value);
            self.ctx.host(r)?;
        }
        let r = self.ctx.build.end_map(map);
        self.ctx.host(r)
    }
}

/// An object key: counted like a string value; borrowed from the input when it has no
/// escapes.
struct KeySeed<'b> {
    budget: &'b mut Budget,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        if self.depth > MAX_DEPTH {
            return Err(de::Error::custom("nesting too deep"));
        }
        self.budget.charge(VALUE_SLOT_BYTES).map_err(custom)?;
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> std::result::Result<Self::Value, E> {
        self.budget.charge(v.len()).map_err(custom)?;
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
        self.budget.charge(v.len()).map_err(custom)?;
        Ok(Cow::Owned(v.to_owned()))
    }
}
