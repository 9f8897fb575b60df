//! Canonical MessagePack (docs/FORMAT.md §2): shortest integers, float64 always, map
//! entries in the order given, bin for bytes. Encoding uses `rmp`'s writers, which pick the shortest forms; the
//! decoder is hand-written so that every malformed input becomes a codec error (invalid
//! UTF-8 is an error, never silently bytes; nesting is bounded so hostile input cannot
//! exhaust the stack; the memory of the value built is counted against
//! [`DecodeLimits::max_value_bytes`] and no buffer is sized by a claimed length alone).

use super::build::{Build, DecodeError, Prealloc, Tree};
use super::encoder::Encoder;
use super::{Budget, Codec, DecodeLimits, Value, VALUE_SLOT_BYTES};
use crate::error::{Error, Result};

/// Deepest nesting a decoder accepts: the top-level value is at depth 0, the items of a
/// container at depth `d` are at depth `d + 1`, and a value deeper than this is refused.
/// The same limit applies to JSON (docs/FORMAT.md §1, "Limits").
pub const MAX_DEPTH: usize = 256;

/// Encodes `value` canonically.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut encoder = Encoder::new(Codec::Msgpack);
    // MessagePack holds every value; only nesting beyond MAX_DEPTH is refused, and a value
    // that deep is written anyway for callers that hash it (function keys).
    match encoder.value(value).and_then(|()| encoder.finish()) {
        Ok(encoded) => encoded.payload.into_vec(),
        Err(_) => unlimited(value),
    }
}

/// The canonical bytes of a value nested deeper than [`MAX_DEPTH`] (no reader takes it).
fn unlimited(value: &Value) -> Vec<u8> {
    fn write(out: &mut Vec<u8>, value: &Value) {
        match value {
            Value::Array(items) => {
                let _ = rmp::encode::write_array_len(out, items.len() as u32);
                items.iter().for_each(|item| write(out, item));
            }
            Value::Map(map) => {
                let _ = rmp::encode::write_map_len(out, map.len() as u32);
                for (k, v) in map {
                    let _ = rmp::encode::write_str(out, k);
                    write(out, v);
                }
            }
            scalar => out.extend_from_slice(&encode(scalar)),
        }
    }
    let mut out = Vec::new();
    write(&mut out, value);
    out
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
    decode_into(bytes, limits, &mut Tree).map_err(DecodeError::into_codec)
}

/// Decodes exactly one value spanning all of `bytes` into a host value made by `build`,
/// with the rules of [`decode_with`] checked before each call to the builder.
///
/// # Errors
/// As [`decode`], or the builder's own error.
pub fn decode_into<B: Build>(
    bytes: &[u8],
    limits: &DecodeLimits,
    build: &mut B,
) -> std::result::Result<B::Value, DecodeError<B::Error>> {
    let mut reader = Reader {
        bytes,
        pos: 0,
        budget: Budget::new(limits),
        prealloc: Prealloc::new(bytes.len(), limits),
        build,
        keys: [[""; KEY_MEMO]; KEY_MEMO_DEPTHS],
    };
    let value = reader.value(0)?;
    if reader.pos != bytes.len() {
        return Err(DecodeError::Codec(Error::codec(format!(
            "msgpack: {} trailing bytes after the value",
            bytes.len() - reader.pos
        ))));
    }
    Ok(value)
}

type Decoded<T, B> = std::result::Result<T, DecodeError<<B as Build>::Error>>;

struct Reader<'a, 'b, B: Build> {
    bytes: &'a [u8],
    pos: usize,
    budget: Budget,
    /// Slots the builder may still make up front, across the whole decode.
    prealloc: Prealloc,
    build: &'b mut B,
    /// The last key read at each of a map's first [`KEY_MEMO`] places, by depth (the
    /// first [`KEY_MEMO_DEPTHS`] levels of keys), its UTF-8 checked: a key with the same
    /// bytes is that key (records repeat their keys; a check cost about 65 instructions,
    /// 8% of a 10 KB records `get` in the Node addon).
    keys: [[&'a str; KEY_MEMO]; KEY_MEMO_DEPTHS],
}

/// Places of a map whose keys are remembered ([`Reader::keys`]).
const KEY_MEMO: usize = 8;
/// Levels of keys remembered ([`Reader::keys`]).
const KEY_MEMO_DEPTHS: usize = 4;

/// A builder call: its failure is the host's.
macro_rules! host {
    ($call:expr) => {
        $call.map_err(DecodeError::Host)
    };
}

impl<'a, B: Build> Reader<'a, '_, B> {
    #[inline]
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

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    #[inline]
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<usize> {
        Ok(u16::from_be_bytes(self.array()?) as usize)
    }
    fn u32(&mut self) -> Result<usize> {
        Ok(u32::from_be_bytes(self.array()?) as usize)
    }

    /// `len` bytes of UTF-8, counted. Inlined into its callers, which take the `&str` from
    /// `from_utf8` in registers: returned through memory it was reloaded as one 16-byte
    /// value written as two 8-byte halves, a store-forwarding stall per string (measured:
    /// a fifth of transcoding records to JSON text).
    #[inline(always)]
    fn text(&mut self, len: usize) -> Result<&'a str> {
        let raw = self.take(len)?;
        self.budget.charge(len)?;
        std::str::from_utf8(raw).map_err(|_| Error::codec("msgpack: string is not valid UTF-8"))
    }

    fn str(&mut self, len: usize) -> Decoded<B::Value, B> {
        let text = self.text(len)?;
        host!(self.build.str(text))
    }

    fn bin(&mut self, len: usize) -> Decoded<B::Value, B> {
        let raw = self.take(len)?;
        self.budget.charge(len)?;
        host!(self.build.bytes(raw))
    }

    fn value(&mut self, depth: usize) -> Decoded<B::Value, B> {
        if depth > MAX_DEPTH {
            return Err(Error::codec("msgpack: nesting too deep").into());
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
    fn scalar(&mut self, marker: u8) -> Decoded<B::Value, B> {
        match marker {
            0x00..=0x7f => host!(self.build.int(i64::from(marker))),
            0xa0..=0xbf => self.str((marker & 0x1f) as usize),
            0xc0 => host!(self.build.nil()),
            0xc2 => host!(self.build.bool(false)),
            0xc3 => host!(self.build.bool(true)),
            0xc4 => {
                let n = self.u8()? as usize;
                self.bin(n)
            }
            0xc5 => {
                let n = self.u16()?;
                self.bin(n)
            }
            0xc6 => {
                let n = self.u32()?;
                self.bin(n)
            }
            0xc7..=0xc9 | 0xd4..=0xd8 => {
                Err(Error::codec("msgpack: ext types are not part of the value model").into())
            }
            0xca => {
                let f = f64::from(f32::from_be_bytes(self.array()?));
                host!(self.build.float(f))
            }
            0xcb => {
                let f = f64::from_be_bytes(self.array()?);
                host!(self.build.float(f))
            }
            0xcc => {
                let i = i64::from(self.u8()?);
                host!(self.build.int(i))
            }
            0xcd => {
                let i = i64::from(u16::from_be_bytes(self.array()?));
                host!(self.build.int(i))
            }
            0xce => {
                let i = i64::from(u32::from_be_bytes(self.array()?));
                host!(self.build.int(i))
            }
            0xcf => {
                let u = u64::from_be_bytes(self.array()?);
                match i64::try_from(u) {
                    Ok(i) => host!(self.build.int(i)),
                    Err(_) => host!(self.build.uint(u)),
                }
            }
            0xd0 => {
                let i = i64::from(i8::from_be_bytes(self.array()?));
                host!(self.build.int(i))
            }
            0xd1 => {
                let i = i64::from(i16::from_be_bytes(self.array()?));
                host!(self.build.int(i))
            }
            0xd2 => {
                let i = i64::from(i32::from_be_bytes(self.array()?));
                host!(self.build.int(i))
            }
            0xd3 => {
                let i = i64::from_be_bytes(self.array()?);
                host!(self.build.int(i))
            }
            0xd9 => {
                let n = self.u8()? as usize;
                self.str(n)
            }
            0xda => {
                let n = self.u16()?;
                self.str(n)
            }
            0xdb => {
                let n = self.u32()?;
                self.str(n)
            }
            0xe0..=0xff => host!(self.build.int(i64::from(marker as i8))),
            0xc1 => Err(Error::codec("msgpack: reserved byte 0xc1").into()),
            // Containers are read in `value`, never here.
            0x80..=0x9f | 0xdc..=0xdf => Err(Error::codec("msgpack: misplaced container").into()),
        }
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

    fn seq(&mut self, len: usize, depth: usize) -> Decoded<B::Value, B> {
        // Every item takes at least one input byte and one counted slot.
        self.claim(len, 1, VALUE_SLOT_BYTES)?;
        let reserve = self.prealloc.take(len);
        let mut items = host!(self.build.array_reserved(len, reserve))?;
        // A float64 item (arrays of numbers) is read here, as `value` and `scalar` would
        // read it: one slot counted, the 9 bytes taken, without their dispatch.
        let floats_here = depth < MAX_DEPTH;
        for _ in 0..len {
            let item = match self.bytes.get(self.pos..self.pos + 9) {
                Some(&[0xcb, b0, b1, b2, b3, b4, b5, b6, b7]) if floats_here => {
                    self.budget.charge(VALUE_SLOT_BYTES)?;
                    self.pos += 9;
                    let f = f64::from_be_bytes([b0, b1, b2, b3, b4, b5, b6, b7]);
                    host!(self.build.float(f))?
                }
                _ => self.value(depth + 1)?,
            };
            host!(self.build.push(&mut items, item))?;
        }
        host!(self.build.end_array(items))
    }

    fn map(&mut self, len: usize, depth: usize) -> Decoded<B::Value, B> {
        // Every entry takes at least two input bytes and two counted slots (key and value).
        self.claim(len, 2, 2 * VALUE_SLOT_BYTES)?;
        let reserve = self.prealloc.take(len);
        let mut map = host!(self.build.map_reserved(len, reserve))?;
        for i in 0..len {
            let key = self.key(depth + 1, i)?;
            host!(self.build.key(&mut map, key))?;
            let value = self.value(depth + 1)?;
            host!(self.build.value(&mut map, value))?;
        }
        host!(self.build.end_map(map))
    }

    /// Key `i` of a map, at `depth`: a string, refused by its marker before anything else
    /// is decoded. Inlined as [`Reader::text`] is.
    #[inline(always)]
    fn key(&mut self, depth: usize, i: usize) -> Result<&'a str> {
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
        let (row, place) = (depth.wrapping_sub(1), i);
        if row >= KEY_MEMO_DEPTHS || place >= KEY_MEMO {
            return self.text(len);
        }
        let raw = self.take(len)?;
        self.budget.charge(len)?;
        let last = &mut self.keys[row][place];
        if last.as_bytes() != raw {
            *last = std::str::from_utf8(raw)
                .map_err(|_| Error::codec("msgpack: string is not valid UTF-8"))?;
        }
        Ok(*last)
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

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use crate::codec::Map;

    use super::*;

    /// Records what each container asked to reserve.
    #[derive(Default)]
    struct Reservations(Vec<(usize, usize)>);

    impl Build for Reservations {
        type Value = ();
        type Array = ();
        type Map = ();
        type Error = Infallible;

        fn nil(&mut self) -> std::result::Result<(), Infallible> {
            Ok(())
        }
        fn bool(&mut self, _: bool) -> std::result::Result<(), Infallible> {
            Ok(())
        }
        fn int(&mut self, _: i64) -> std::result::Result<(), Infallible> {
            Ok(())
        }
        fn uint(&mut self, _: u64) -> std::result::Result<(), Infallible> {
            Ok(())
        }
        fn float(&mut self, _: f64) -> std::result::Result<(), Infallible> {
            Ok(())
        }
        fn str(&mut self, _: &str) -> std::result::Result<(), Infallible> {
            Ok(())
        }
        fn bytes(&mut self, _: &[u8]) -> std::result::Result<(), Infallible> {
            Ok(())
        }
        fn array(&mut self, len: usize) -> std::result::Result<(), Infallible> {
            self.array_reserved(len, 0)
        }
        fn array_reserved(
            &mut self,
            len: usize,
            reserve: usize,
        ) -> std::result::Result<(), Infallible> {
            self.0.push((len, reserve));
            Ok(())
        }
        fn push(&mut self, _: &mut (), _: ()) -> std::result::Result<(), Infallible> {
            Ok(())
        }
        fn end_array(&mut self, _: ()) -> std::result::Result<(), Infallible> {
            Ok(())
        }
        fn map(&mut self, len: usize) -> std::result::Result<(), Infallible> {
            self.map_reserved(len, 0)
        }
        fn map_reserved(
            &mut self,
            len: usize,
            reserve: usize,
        ) -> std::result::Result<(), Infallible> {
            self.0.push((len, reserve));
            Ok(())
        }
        fn key(&mut self, _: &mut (), _: &str) -> std::result::Result<(), Infallible> {
            Ok(())
        }
        fn value(&mut self, _: &mut (), _: ()) -> std::result::Result<(), Infallible> {
            Ok(())
        }
        fn end_map(&mut self, _: ()) -> std::result::Result<(), Infallible> {
            Ok(())
        }
    }

    #[test]
    fn an_honest_payload_reserves_every_container_whole() {
        // Lists and maps well past PREALLOC_ITEMS, nested, as the records and floats a
        // cache holds.
        let floats: Vec<Value> = (0..5000)
            .map(|i| Value::Float(f64::from(i) * 0.5))
            .collect();
        let mut records = Map::new();
        for i in 0..3000 {
            let mut record = Map::new();
            record.insert("id".into(), Value::Int(i));
            record.insert("tags".into(), Value::Array(vec![Value::Str("a".into())]));
            records.insert(format!("field_{i}"), Value::Map(record));
        }
        let value = Value::Array(vec![Value::Array(floats), Value::Map(records)]);
        let payload = encode(&value);
        let mut seen = Reservations::default();
        decode_into(&payload, &DecodeLimits::default(), &mut seen).unwrap();
        assert_eq!(seen.0.len(), 1 + 1 + 1 + 3000 * 2);
        for (len, reserve) in seen.0 {
            assert_eq!(reserve, len);
        }
    }

    #[test]
    fn repeated_keys_are_read_as_themselves_and_bad_ones_refused() {
        // [{"id": 1, "ab": 2}, {"id": 3, "ac": 4}, {"": 5}]: a remembered key, one that
        // differs in its last byte at a remembered place, and the empty key.
        let payload = [
            0x93, 0x82, 0xa2, b'i', b'd', 1, 0xa2, b'a', b'b', 2, 0x82, 0xa2, b'i', b'd', 3, 0xa2,
            b'a', b'c', 4, 0x81, 0xa0, 5,
        ];
        let record = |entries: &[(&str, i64)]| {
            Value::Map(
                entries
                    .iter()
                    .map(|&(k, v)| (k.to_owned(), Value::Int(v)))
                    .collect(),
            )
        };
        assert_eq!(
            decode(&payload).unwrap(),
            Value::Array(vec![
                record(&[("id", 1), ("ab", 2)]),
                record(&[("id", 3), ("ac", 4)]),
                record(&[("", 5)]),
            ])
        );
        // Invalid UTF-8 where a valid key of the same length was read before.
        let bad = [0x92, 0x81, 0xa2, b'i', b'd', 1, 0x81, 0xa2, 0xff, b'd', 2];
        assert!(decode(&bad)
            .unwrap_err()
            .to_string()
            .contains("not valid UTF-8"));
    }

    #[test]
    fn nested_claims_reserve_no_more_than_the_payload_in_all() {
        // hostile.json's msgpack-nested-array32-claims-1m-x256: 256 nested claims of
        // 1,000,000 items, each backed by the same 1 MB of input.
        let mut payload = Vec::new();
        for _ in 0..256 {
            payload.extend_from_slice(&[0xdd, 0x00, 0x0f, 0x42, 0x40]);
        }
        payload.extend_from_slice(&[0xdb, 0x00, 0x0f, 0x42, 0x3b]);
        payload.resize(payload.len() + 999_995, b'a');
        let mut seen = Reservations::default();
        assert!(decode_into(&payload, &DecodeLimits::default(), &mut seen).is_err());
        assert_eq!(seen.0.len(), 256, "every claim passed the input check");
        let reserved: usize = seen.0.iter().map(|&(_, reserve)| reserve).sum();
        assert!(
            reserved <= payload.len(),
            "{reserved} slots for {} bytes",
            payload.len()
        );

        // And no more than the value budget can pay for.
        let limits = DecodeLimits {
            max_value_bytes: 1000 * VALUE_SLOT_BYTES,
            ..DecodeLimits::default()
        };
        let small = encode(&Value::Array(vec![Value::Nil; 500]));
        let mut seen = Reservations::default();
        decode_into(&small, &limits, &mut seen).unwrap();
        assert_eq!(seen.0, vec![(500, 500)]);
        let mut nested = Vec::new();
        for _ in 0..4 {
            nested.extend_from_slice(&[0xdc, 0x01, 0x2c]); // 300 items claimed
        }
        nested.resize(nested.len() + 400, 0xc0);
        let mut seen = Reservations::default();
        let _ = decode_into(&nested, &limits, &mut seen);
        let reserved: usize = seen.0.iter().map(|&(_, reserve)| reserve).sum();
        assert!(
            reserved <= 1000,
            "{reserved} slots for a budget of 1000 values"
        );
    }
}
