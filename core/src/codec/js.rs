//! The JS value rules (docs/FORMAT.md §2, the Node column), written once for both JS
//! bindings (the Node addon and the JS edge package): which `number` is an integer, which
//! integer fits a `number`, how many items a container may have, and the builders that turn
//! a payload straight into what V8 makes objects from: the JSON text `JSON.parse` reads
//! ([`JsonText`]), or for an array of numbers the numbers themselves ([`Transcode`]).

pub mod tape;

use super::{Build, Codec, DecodeLimits, Encoder, VALUE_SLOT_BYTES};
use crate::error::Result;

/// Largest integer a JS `number` holds exactly (`Number.MAX_SAFE_INTEGER`).
pub const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// A JS `number` in the value model: an integral safe number is an integer (so `1.0` is
/// `1`); everything else, NaN and infinities included, is a float.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// Written as an integer.
    Int(i64),
    /// Written as a float.
    Float(f64),
}

/// How a JS `number` is written.
#[inline]
pub fn number(n: f64) -> Number {
    // Within the safe range, integral exactly when the cast back is the same number (the
    // cast is exact there; `fract` is a libm call on the hot path of every number).
    if n.abs() <= MAX_SAFE_INTEGER && (n as i64) as f64 == n {
        Number::Int(n as i64)
    } else {
        Number::Float(n)
    }
}

/// Whether an integer reads back as a `number` (otherwise a `bigint`).
pub fn is_safe(i: i64) -> bool {
    (i as f64).abs() <= MAX_SAFE_INTEGER
}

/// Most items an array (or entries an object) may have for a reader with `limits`: each
/// costs a decoder at least one value slot of `maxValueBytes`, so a longer one could be
/// written but never read back. Checked before any item is read.
pub fn max_items(limits: &DecodeLimits) -> usize {
    limits.max_value_bytes / VALUE_SLOT_BYTES
}

/// Makes canonical JSON text of a payload that JSON holds exactly for JS (no bytes, no
/// integer beyond 2^53, no NaN or infinity); anything else stops it with [`NotJson`] and the
/// binding builds that value another way. V8's `JSON.parse` of this text is, measured, the
/// cheapest way to make many JS objects from native code; object keys keep the payload's
/// order (integer-like keys aside, which every JS object lists first).
#[derive(Debug)]
pub struct JsonText {
    encoder: Encoder,
}

/// The value holds something JSON cannot give JS exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotJson;

impl Default for JsonText {
    fn default() -> Self {
        JsonText {
            encoder: Encoder::new(Codec::Json),
        }
    }
}

impl JsonText {
    /// The text written (after a successful decode into this builder).
    ///
    /// # Errors
    /// A codec error when no complete value was written.
    pub fn finish(self) -> Result<Vec<u8>> {
        Ok(self.encoder.finish()?.payload.into_vec())
    }
}

fn text(r: Result<()>) -> std::result::Result<(), NotJson> {
    r.map_err(|_| NotJson)
}

impl Build for JsonText {
    type Value = ();
    type Array = ();
    type Map = ();
    type Error = NotJson;

    fn nil(&mut self) -> std::result::Result<(), NotJson> {
        text(self.encoder.nil())
    }
    fn bool(&mut self, v: bool) -> std::result::Result<(), NotJson> {
        text(self.encoder.bool(v))
    }
    fn int(&mut self, v: i64) -> std::result::Result<(), NotJson> {
        if !is_safe(v) {
            return Err(NotJson);
        }
        text(self.encoder.int(v))
    }
    fn uint(&mut self, _: u64) -> std::result::Result<(), NotJson> {
        Err(NotJson)
    }
    fn float(&mut self, v: f64) -> std::result::Result<(), NotJson> {
        text(self.encoder.float(v))
    }
    fn str(&mut self, v: &str) -> std::result::Result<(), NotJson> {
        text(self.encoder.str(v))
    }
    fn bytes(&mut self, _: &[u8]) -> std::result::Result<(), NotJson> {
        Err(NotJson)
    }
    fn array(&mut self, len: usize) -> std::result::Result<(), NotJson> {
        text(self.encoder.begin_array(len))
    }
    fn push(&mut self, _: &mut (), _: ()) -> std::result::Result<(), NotJson> {
        Ok(())
    }
    fn end_array(&mut self, _: ()) -> std::result::Result<(), NotJson> {
        text(self.encoder.end_array())
    }
    fn map(&mut self, len: usize) -> std::result::Result<(), NotJson> {
        text(self.encoder.begin_map(len))
    }
    fn key(&mut self, _: &mut (), key: &str) -> std::result::Result<(), NotJson> {
        text(self.encoder.key(key))
    }
    fn value(&mut self, _: &mut (), _: ()) -> std::result::Result<(), NotJson> {
        Ok(())
    }
    fn end_map(&mut self, _: ()) -> std::result::Result<(), NotJson> {
        text(self.encoder.end_map())
    }
}

/// What V8 makes a payload from, chosen in one pass off the JS thread by [`Transcode`].
#[derive(Debug, Clone, PartialEq)]
pub enum Transcoded {
    /// The payload is one array of numbers (safe integers and floats, NaN and infinities
    /// included): the numbers, for one `Float64Array` copied into an array (measured an order
    /// of magnitude cheaper than `JSON.parse` of their text).
    Numbers(Vec<f64>),
    /// Anything else JSON holds exactly for JS: [`JsonText`]'s text for `JSON.parse`.
    Json(Vec<u8>),
}

/// Transcodes a payload into [`Transcoded`] for V8: an array of numbers stays numbers
/// until an item that is not a number turns it into JSON text (the numbers read so far
/// are written first); anything JSON cannot give JS exactly stops it with [`NotJson`]
/// and the binding builds that value another way.
#[derive(Debug, Default)]
pub struct Transcode {
    text: JsonText,
    /// Containers open; the numbers mode only covers the top-level array.
    depth: usize,
    /// The top-level array's length and numbers, while every item so far is a number.
    numbers: Option<(usize, Vec<f64>)>,
}

/// Numbers reserved up front at most: a claimed length reserves no more.
const PREALLOC_NUMBERS: usize = 1 << 16;

impl Transcode {
    /// What was transcoded (after a successful decode into this builder).
    ///
    /// # Errors
    /// A codec error when no complete value was written.
    pub fn finish(self) -> Result<Transcoded> {
        match self.numbers {
            Some((_, numbers)) => Ok(Transcoded::Numbers(numbers)),
            None => self.text.finish().map(Transcoded::Json),
        }
    }

    /// Leaves numbers mode: the array's opening and its numbers so far become text.
    fn leave_numbers(&mut self) -> std::result::Result<(), NotJson> {
        if let Some((len, numbers)) = self.numbers.take() {
            self.text.array(len)?;
            for n in numbers {
                // A JS number either way: an integral one reads back the same as text.
                self.text.float(n)?;
            }
        }
        Ok(())
    }

    /// A number item of the top-level array: kept as a number while in numbers mode.
    fn number(&mut self, n: f64) -> bool {
        match &mut self.numbers {
            Some((_, numbers)) if self.depth == 1 => {
                numbers.push(n);
                true
            }
            _ => false,
        }
    }
}

impl Build for Transcode {
    type Value = ();
    type Array = ();
    type Map = ();
    type Error = NotJson;

    fn nil(&mut self) -> std::result::Result<(), NotJson> {
        self.leave_numbers()?;
        self.text.nil()
    }
    fn bool(&mut self, v: bool) -> std::result::Result<(), NotJson> {
        self.leave_numbers()?;
        self.text.bool(v)
    }
    fn int(&mut self, v: i64) -> std::result::Result<(), NotJson> {
        if is_safe(v) && self.number(v as f64) {
            return Ok(());
        }
        self.leave_numbers()?;
        self.text.int(v)
    }
    fn uint(&mut self, _: u64) -> std::result::Result<(), NotJson> {
        Err(NotJson)
    }
    fn float(&mut self, v: f64) -> std::result::Result<(), NotJson> {
        if self.number(v) {
            return Ok(());
        }
        self.leave_numbers()?;
        self.text.float(v)
    }
    fn str(&mut self, v: &str) -> std::result::Result<(), NotJson> {
        self.leave_numbers()?;
        self.text.str(v)
    }
    fn bytes(&mut self, _: &[u8]) -> std::result::Result<(), NotJson> {
        Err(NotJson)
    }
    fn array(&mut self, len: usize) -> std::result::Result<(), NotJson> {
        self.depth += 1;
        if self.depth == 1 {
            self.numbers = Some((len, Vec::with_capacity(len.min(PREALLOC_NUMBERS))));
            return Ok(());
        }
        self.leave_numbers()?;
        self.text.array(len)
    }
    fn push(&mut self, _: &mut (), _: ()) -> std::result::Result<(), NotJson> {
        Ok(())
    }
    fn end_array(&mut self, _: ()) -> std::result::Result<(), NotJson> {
        self.depth -= 1;
        if self.depth == 0 && self.numbers.is_some() {
            return Ok(());
        }
        self.text.end_array(())
    }
    fn map(&mut self, len: usize) -> std::result::Result<(), NotJson> {
        self.depth += 1;
        self.leave_numbers()?;
        self.text.map(len)
    }
    fn key(&mut self, map: &mut (), key: &str) -> std::result::Result<(), NotJson> {
        self.text.key(map, key)
    }
    fn value(&mut self, _: &mut (), _: ()) -> std::result::Result<(), NotJson> {
        Ok(())
    }
    fn end_map(&mut self, _: ()) -> std::result::Result<(), NotJson> {
        self.depth -= 1;
        self.text.end_map(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{json, msgpack, Value};

    #[test]
    fn integral_safe_numbers_are_integers() {
        assert_eq!(number(1.0), Number::Int(1));
        assert_eq!(number(-0.0), Number::Int(0));
        assert_eq!(number(1.5), Number::Float(1.5));
        assert_eq!(number(MAX_SAFE_INTEGER), Number::Int(9_007_199_254_740_991));
        assert_eq!(
            number(MAX_SAFE_INTEGER + 1.0),
            Number::Float(MAX_SAFE_INTEGER + 1.0)
        );
        assert!(matches!(number(f64::NAN), Number::Float(f) if f.is_nan()));
        assert_eq!(
            number(-MAX_SAFE_INTEGER),
            Number::Int(-9_007_199_254_740_991)
        );
        assert_eq!(number(0.5), Number::Float(0.5));
        assert_eq!(number(-1e-300), Number::Float(-1e-300));
        assert_eq!(number(f64::INFINITY), Number::Float(f64::INFINITY));
        assert_eq!(number(-2.0), Number::Int(-2));
    }

    #[test]
    fn json_text_is_canonical_json_or_refused() {
        let value: Value = [
            ("z", Value::from(1)),
            ("a", Value::from(vec![Value::from(0.5)])),
        ]
        .into_iter()
        .collect();
        let mut out = JsonText::default();
        msgpack::decode_into(&msgpack::encode(&value), &DecodeLimits::default(), &mut out).unwrap();
        assert_eq!(out.finish().unwrap(), json::encode(&value).unwrap());
        for odd in [
            Value::Bytes(vec![1]),
            Value::Int(1 << 60),
            Value::Float(f64::NAN),
        ] {
            let bytes = msgpack::encode(&Value::Array(vec![odd]));
            let result =
                msgpack::decode_into(&bytes, &DecodeLimits::default(), &mut JsonText::default());
            assert!(matches!(
                result,
                Err(crate::codec::DecodeError::Host(NotJson))
            ));
        }
    }

    fn transcode(value: &Value) -> std::result::Result<Transcoded, NotJson> {
        let mut out = Transcode::default();
        match msgpack::decode_into(&msgpack::encode(value), &DecodeLimits::default(), &mut out) {
            Ok(()) => Ok(out.finish().unwrap()),
            Err(crate::codec::DecodeError::Host(not)) => Err(not),
            Err(crate::codec::DecodeError::Codec(err)) => panic!("{err}"),
        }
    }

    #[test]
    fn arrays_of_numbers_stay_numbers_and_the_rest_is_json_text() {
        let numbers = Value::Array(vec![
            Value::from(1),
            Value::from(-0.0),
            Value::Float(f64::NAN),
            Value::Float(f64::INFINITY),
        ]);
        let Ok(Transcoded::Numbers(got)) = transcode(&numbers) else {
            panic!("numbers")
        };
        assert_eq!(got[0].to_bits(), 1f64.to_bits());
        assert_eq!(got[1].to_bits(), (-0.0f64).to_bits());
        assert!(got[2].is_nan() && got[3] == f64::INFINITY);
        assert_eq!(
            transcode(&Value::Array(vec![])),
            Ok(Transcoded::Numbers(vec![]))
        );
        // One item that is not a number turns the array into JSON text, numbers first.
        let mixed = Value::Array(vec![
            Value::from(1),
            Value::from(0.5),
            Value::from("x"),
            Value::Array(vec![Value::from(2)]),
            Value::from(3),
        ]);
        assert_eq!(
            transcode(&mixed),
            Ok(Transcoded::Json(br#"[1.0,0.5,"x",[2],3]"#.to_vec()))
        );
        let record: Value = [
            ("b", Value::from(1)),
            ("a", Value::from(vec![Value::from(0.5)])),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            transcode(&record),
            Ok(Transcoded::Json(json::encode(&record).unwrap()))
        );
        assert_eq!(
            transcode(&Value::from("s")),
            Ok(Transcoded::Json(b"\"s\"".to_vec()))
        );
        // What neither holds exactly goes the exact way.
        for odd in [
            Value::Array(vec![Value::from(1), Value::Int(1 << 60)]),
            Value::Array(vec![Value::from("x"), Value::Float(f64::NAN)]),
            Value::Array(vec![Value::Float(f64::NAN), Value::from("x")]),
            Value::Array(vec![Value::Bytes(vec![1])]),
            Value::UInt(u64::MAX),
        ] {
            assert_eq!(transcode(&odd), Err(NotJson), "{odd:?}");
        }
    }
}
