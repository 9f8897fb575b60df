//! Canonical MessagePack (docs/FORMAT.md §2): shortest integers, float64 always, map
//! entries in the order given, bin for bytes. Encoding uses `rmp`'s writers, which pick the shortest forms; the
//! decoder is hand-written so that every malformed input becomes a codec error (invalid
//! UTF-8 is an error, never silently bytes; nesting is bounded so hostile input cannot
//! exhaust the stack; the memory of the value built is counted against
//! [`DecodeLimits::max_value_bytes`] and no buffer is sized by a claimed length alone).

use super::{Budget, DecodeLimits, Map, Value, VALUE_SLOT_BYTES};
use crate::error::{Error, Result};

/// Deepest nesting a decoder accepts: the top-level value is at depth 0, the items of a
/// container at depth `d` are at depth `d + 1`, and a value deeper than this is refused.
/// The same limit applies to JSON (docs/FORMAT.md §1, "Limits").
pub const MAX_DEPTH: usize = 256;

/// Slots reserved up front for an array, at most: a claimed length reserves no more, and
/// larger arrays grow as their items are actually read (and counted).
const PREALLOC_ITEMS: usize = 1024;

/// Encodes `value` canonically.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut Vec<u8>, value: &Value) {
    use rmp::encode as w;
    // Writing into a Vec cannot fail, so the io results are ignored on purpose.
    match value {
        Value::Nil => {
            let _ = w::write_nil(out);
        }
        Value::Bool(b) => {
            let _ = w::write_bool(out, *b);
        }
        Value::Int(i) => {
            if *i >= 0 {
                let _ = w::write_uint(out, *i as u64);
            } else {
                let _ = w::write_sint(out, *i);
            }
        }
        Value::UInt(u) => {
            let _ = w::write_uint(out, *u);
        }
        Value::Float(f) => {
            let _ = w::write_f64(out, *f);
        }
        Value::Str(s) => {
            let _ = w::write_str(out, s);
        }
        Value::Bytes(b) => {
            let _ = w::write_bin(out, b);
        }
        Value::Array(items) => {
            let _ = w::write_array_len(out, items.len() as u32);
            for item in items {
                write_value(out, item);
            }
        }
        Value::Map(map) => {
            let _ = w::write_map_len(out, map.len() as u32);
            for (k, v) in map {
                let _ = w::write_str(out, k);
                write_value(out, v);
            }
        }
    }
}

/// Decodes exactly one value spanning all of `bytes`, with the default [`DecodeLimits`].
///
/// # Errors
/// A codec error for truncated input, trailing bytes, `ext` types, non-string map keys,
/// invalid UTF-8, nesting deeper than [`MAX_DEPTH`] or a value above the limits.
pub fn decode(bytes: &[u8]) -> Result<Value> {
    decode_with(bytes, &DecodeLimits::default())
}

/// Decodes exactly one value spanning all of `bytes`; the value's counted memory must stay
/// within `limits.max_value_bytes` (the payload cap is the envelope's business).
///
/// # Errors
/// As [`decode`].
pub fn decode_with(bytes: &[u8], limits: &DecodeLimits) -> Result<Value> {
    let mut reader = Reader {
        bytes,
        pos: 0,
        budget: Budget::new(limits),
    };
    let value = reader.value(0)?;
    if reader.pos != bytes.len() {
        return Err(Error::codec(format!(
            "msgpack: {} trailing bytes after the value",
            bytes.len() - reader.pos
        )));
    }
    Ok(value)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    budget: Budget,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| Error::codec("msgpack: truncated value"))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<usize> {
        Ok(u16::from_be_bytes(self.array()?) as usize)
    }
    fn u32(&mut self) -> Result<usize> {
        Ok(u32::from_be_bytes(self.array()?) as usize)
    }

    fn str(&mut self, len: usize) -> Result<String> {
        let raw = self.take(len)?;
        self.budget.charge(len)?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| Error::codec("msgpack: string is not valid UTF-8"))
    }

    fn bin(&mut self, len: usize) -> Result<Value> {
        let raw = self.take(len)?;
        self.budget.charge(len)?;
        Ok(Value::Bytes(raw.to_vec()))
    }

    fn value(&mut self, depth: usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            return Err(Error::codec("msgpack: nesting too deep"));
        }
        self.budget.charge(VALUE_SLOT_BYTES)?;
        let marker = self.u8()?;
        // Only containers recurse; everything else is read in `scalar`, so this frame,
        // repeated once per nesting level, stays small (a debug build would otherwise need
        // more than a 2 MiB thread stack for 256 levels).
        match marker {
            0x80..=0x8f => self.map((marker & 0x0f) as usize, depth),
            0x90..=0x9f => self.seq((marker & 0x0f) as usize, depth),
            0xdc => {
                let n = self.u16()?;
                self.seq(n, depth)
            }
            0xdd => {
                let n = self.u32()?;
                self.seq(n, depth)
            }
            0xde => {
                let n = self.u16()?;
                self.map(n, depth)
            }
            0xdf => {
                let n = self.u32()?;
                self.map(n, depth)
            }
            _ => self.scalar(marker),
        }
    }

    #[inline(never)]
    fn scalar(&mut self, marker: u8) -> Result<Value> {
        Ok(match marker {
            0x00..=0x7f => Value::Int(i64::from(marker)),
            0xa0..=0xbf => Value::Str(self.str((marker & 0x1f) as usize)?),
            0xc0 => Value::Nil,
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4 => {
                let n = self.u8()? as usize;
                self.bin(n)?
            }
            0xc5 => {
                let n = self.u16()?;
                self.bin(n)?
            }
            0xc6 => {
                let n = self.u32()?;
                self.bin(n)?
            }
            0xc7..=0xc9 | 0xd4..=0xd8 => {
                return Err(Error::codec(
                    "msgpack: ext types are not part of the value model",
                ))
            }
            0xca => Value::Float(f64::from(f32::from_be_bytes(self.array()?))),
            0xcb => Value::Float(f64::from_be_bytes(self.array()?)),
            0xcc => Value::Int(i64::from(self.u8()?)),
            0xcd => Value::Int(i64::from(u16::from_be_bytes(self.array()?))),
            0xce => Value::Int(i64::from(u32::from_be_bytes(self.array()?))),
            0xcf => Value::from(u64::from_be_bytes(self.array()?)),
            0xd0 => Value::Int(i64::from(i8::from_be_bytes(self.array()?))),
            0xd1 => Value::Int(i64::from(i16::from_be_bytes(self.array()?))),
            0xd2 => Value::Int(i64::from(i32::from_be_bytes(self.array()?))),
            0xd3 => Value::Int(i64::from_be_bytes(self.array()?)),
            0xd9 => {
                let n = self.u8()? as usize;
                Value::Str(self.str(n)?)
            }
            0xda => {
                let n = self.u16()?;
                Value::Str(self.str(n)?)
            }
            0xdb => {
                let n = self.u32()?;
                Value::Str(self.str(n)?)
            }
            0xe0..=0xff => Value::Int(i64::from(marker as i8)),
            0xc1 => return Err(Error::codec("msgpack: reserved byte 0xc1")),
            // Containers are read in `value`, never here.
            0x80..=0x9f | 0xdc..=0xdf => return Err(Error::codec("msgpack: misplaced container")),
        })
    }

    /// Fails unless `len` items of at least `min_bytes` input bytes and `min_cost` counted
    /// bytes each can still exist: a claim the input or the budget cannot back is refused
    /// before any item is read.
    fn claim(&self, len: usize, min_bytes: usize, min_cost: usize) -> Result<()> {
        if len.saturating_mul(min_bytes) > self.bytes.len() - self.pos {
            return Err(Error::codec("msgpack: truncated value"));
        }
        self.budget.require(len.saturating_mul(min_cost))
    }

    fn seq(&mut self, len: usize, depth: usize) -> Result<Value> {
        // Every item takes at least one input byte and one counted slot.
        self.claim(len, 1, VALUE_SLOT_BYTES)?;
        let mut items = Vec::with_capacity(len.min(PREALLOC_ITEMS));
        for _ in 0..len {
            let item = self.value(depth + 1)?;
            self.budget.grow(&mut items);
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, len: usize, depth: usize) -> Result<Value> {
        // Every entry takes at least two input bytes and two counted slots (key and value).
        self.claim(len, 2, 2 * VALUE_SLOT_BYTES)?;
        let mut map = Map::new();
        for _ in 0..len {
            let key = self.key(depth + 1)?;
            let value = self.value(depth + 1)?;
            map.insert(key, value);
        }
        Ok(Value::Map(map))
    }

    /// A map key: a string, refused by its marker before anything else is decoded.
    fn key(&mut self, depth: usize) -> Result<String> {
        if depth > MAX_DEPTH {
            return Err(Error::codec("msgpack: nesting too deep"));
        }
        self.budget.charge(VALUE_SLOT_BYTES)?;
        let marker = self.u8()?;
        let len = match marker {
            0xa0..=0xbf => (marker & 0x1f) as usize,
            0xd9 => self.u8()? as usize,
            0xda => self.u16()?,
            0xdb => self.u32()?,
            other => {
                return Err(Error::codec(format!(
                    "msgpack: map keys must be strings, found {}",
                    kind_of_marker(other)
                )))
            }
        };
        self.str(len)
    }
}

/// The kind a MessagePack marker byte starts, for error messages.
fn kind_of_marker(marker: u8) -> &'static str {
    match marker {
        0x00..=0x7f | 0xcc..=0xd3 | 0xe0..=0xff => "int",
        0x80..=0x8f | 0xde | 0xdf => "map",
        0x90..=0x9f | 0xdc | 0xdd => "array",
        0xa0..=0xbf | 0xd9..=0xdb => "str",
        0xc0 => "nil",
        0xc2 | 0xc3 => "bool",
        0xc4..=0xc6 => "bytes",
        0xca | 0xcb => "float",
        0xc7..=0xc9 | 0xd4..=0xd8 => "ext",
        0xc1 => "reserved byte 0xc1",
    }
}
