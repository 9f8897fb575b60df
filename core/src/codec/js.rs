//! The JS value rules (docs/FORMAT.md §2, the Node column), written once for both JS
//! bindings (the Node addon and the JS edge package): which `number` is an integer, which
//! integer fits a `number`, how many items a container may have, and the builders that turn
//! a payload straight into what V8 makes objects from: the Node addon's [`plan`] (or for an
//! array of numbers the numbers themselves, [`Transcode`]), and the JSON text `JSON.parse`
//! reads in the JS edge package ([`JsonText`]).

pub mod ahead;
pub mod plan;
pub mod tape;

use super::encoder::{json_float, json_str};
use super::{Build, DecodeLimits, VALUE_SLOT_BYTES};
use crate::error::{Error, Result};

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
    // Below 2^52, adding 2^52 rounds to a whole number, so a number is integral exactly
    // when that round trip leaves it as it was; from 2^52 on every `f64` is whole. Fewer
    // instructions than casting to i64 and back (a saturating cast), and no libm call
    // (`fract`): this runs for every number of a set.
    const TWO_52: f64 = 4_503_599_627_370_496.0;
    let a = n.abs();
    if a <= MAX_SAFE_INTEGER && (a >= TWO_52 || (a + TWO_52) - TWO_52 == a) {
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
///
/// The text is written straight into one buffer with the JSON layout of core's encoder
/// (its string escaping and float layout): every value is followed by a comma, which the
/// end of its container (or [`JsonText::finish`]) takes back, so no per-level state is kept.
#[derive(Debug)]
pub struct JsonText {
    out: Vec<u8>,
    /// A string written so far holds a byte outside ASCII.
    non_ascii: bool,
}

impl Default for JsonText {
    fn default() -> Self {
        JsonText {
            out: Vec::with_capacity(256),
            non_ascii: false,
        }
    }
}

/// The value holds something JSON cannot give JS exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotJson;

/// JSON text made by [`JsonText`] or [`Transcode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Json {
    /// The text.
    pub text: Vec<u8>,
    /// Every byte of the text is ASCII, so it is also its own Latin-1 (a JS engine may take
    /// it as one-byte text without decoding UTF-8).
    pub ascii: bool,
}

impl JsonText {
    /// The text written (after a successful decode into this builder).
    ///
    /// # Errors
    /// A codec error when no complete value was written.
    pub fn finish(self) -> Result<Vec<u8>> {
        self.finish_json().map(|json| json.text)
    }

    /// The text written and whether it is ASCII (after a successful decode into this
    /// builder).
    ///
    /// # Errors
    /// A codec error when no complete value was written.
    pub fn finish_json(mut self) -> Result<Json> {
        if self.out.pop() != Some(b',') {
            return Err(Error::codec("json: the value is incomplete"));
        }
        Ok(Json {
            text: self.out,
            ascii: !self.non_ascii,
        })
    }

    #[inline]
    fn put(&mut self, text: &[u8]) {
        self.out.extend_from_slice(text);
    }

    #[inline]
    fn close(&mut self, bracket: u8) {
        // The last item's comma becomes the bracket; an empty container has none.
        match self.out.last_mut() {
            Some(last @ b',') => *last = bracket,
            _ => self.out.push(bracket),
        }
        self.out.push(b',');
    }

    #[inline]
    fn safe_int(&mut self, v: i64) {
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(v).as_bytes();
        self.out.reserve(digits.len() + 1);
        self.put(digits);
        self.out.push(b',');
    }

    #[inline]
    fn finite_float(&mut self, v: f64) -> std::result::Result<(), NotJson> {
        json_float(&mut self.out, v).map_err(|_| NotJson)?;
        self.out.push(b',');
        Ok(())
    }
}

impl Build for JsonText {
    type Value = ();
    type Array = ();
    type Map = ();
    type Error = NotJson;

    fn nil(&mut self) -> std::result::Result<(), NotJson> {
        self.put(b"null,");
        Ok(())
    }
    fn bool(&mut self, v: bool) -> std::result::Result<(), NotJson> {
        self.put(if v { b"true," } else { b"false," });
        Ok(())
    }
    #[inline]
    fn int(&mut self, v: i64) -> std::result::Result<(), NotJson> {
        if !is_safe(v) {
            return Err(NotJson);
        }
        self.safe_int(v);
        Ok(())
    }
    fn uint(&mut self, _: u64) -> std::result::Result<(), NotJson> {
        Err(NotJson)
    }
    #[inline]
    fn float(&mut self, v: f64) -> std::result::Result<(), NotJson> {
        self.finite_float(v)
    }
    #[inline]
    fn str(&mut self, v: &str) -> std::result::Result<(), NotJson> {
        self.non_ascii |= !json_str(&mut self.out, v);
        self.out.push(b',');
        Ok(())
    }
    fn bytes(&mut self, _: &[u8]) -> std::result::Result<(), NotJson> {
        Err(NotJson)
    }
    fn array(&mut self, _: usize) -> std::result::Result<(), NotJson> {
        self.out.push(b'[');
        Ok(())
    }
    #[inline]
    fn push(&mut self, _: &mut (), _: ()) -> std::result::Result<(), NotJson> {
        Ok(())
    }
    fn end_array(&mut self, _: ()) -> std::result::Result<(), NotJson> {
        self.close(b']');
        Ok(())
    }
    fn map(&mut self, _: usize) -> std::result::Result<(), NotJson> {
        self.out.push(b'{');
        Ok(())
    }
    #[inline]
    fn key(&mut self, _: &mut (), key: &str) -> std::result::Result<(), NotJson> {
        self.non_ascii |= !json_str(&mut self.out, key);
        self.out.push(b':');
        Ok(())
    }
    #[inline]
    fn value(&mut self, _: &mut (), _: ()) -> std::result::Result<(), NotJson> {
        Ok(())
    }
    fn end_map(&mut self, _: ()) -> std::result::Result<(), NotJson> {
        self.close(b'}');
        Ok(())
    }
}

/// What V8 makes a payload from, chosen in one pass by [`Transcode`].
#[derive(Debug, Clone, PartialEq)]
pub enum Transcoded {
    /// The payload is one array of numbers (safe integers and floats, NaN and infinities
    /// included): the numbers, for one `Float64Array` copied into an array (measured an order
    /// of magnitude cheaper than `JSON.parse` of their text).
    Numbers(Vec<f64>),
    /// Anything else a JS value holds exactly: its [`plan`] for the binding's JS loop.
    Plan(Vec<u8>),
}

/// Transcodes a payload into [`Transcoded`] for V8: an array of numbers stays numbers
/// until an item that is not a number turns it into a [`plan`] (the numbers read so far
/// are written first); what a JS value cannot hold exactly (bytes, integers beyond 2⁵³)
/// stops it with [`NotJson`] and the binding builds that value another way.
#[derive(Debug, Default)]
pub struct Transcode {
    plan: plan::Plan,
    /// Containers open; the numbers mode only covers the top-level array.
    depth: usize,
    /// The top-level array's numbers, while every item so far is a number.
    numbers: Option<Vec<f64>>,
}

/// Top-level arrays of numbers up to this length are made from a plan, longer ones from
/// their numbers. Counted per `get` in the Node addon (callgrind): 5 numbers 34.3k
/// instructions from their numbers, 31.6k from a plan; 55 numbers 37.6k against 44.3k.
/// Making the `Float64Array` costs about 2,700 instructions, and a number then about 70
/// against about 250 read from a plan: even at about 14.
pub const SHORT_NUMBERS: usize = 8;

/// Numbers reserved up front at most: a claimed length reserves no more.
const PREALLOC_NUMBERS: usize = 1 << 16;

impl Transcode {
    /// A transcoder with room for a payload of about `bytes`.
    pub fn with_capacity(bytes: usize) -> Self {
        Transcode {
            plan: plan::Plan::with_capacity(bytes),
            depth: 0,
            numbers: None,
        }
    }

    /// What was transcoded (after a successful decode into this builder).
    ///
    /// # Errors
    /// A codec error when no complete value was written.
    pub fn finish(mut self) -> Result<Transcoded> {
        match self.numbers.take() {
            Some(numbers) if numbers.len() > SHORT_NUMBERS => Ok(Transcoded::Numbers(numbers)),
            Some(numbers) => {
                // A short list as a plan, which the addon copies into its loop's buffer:
                // making the numbers' own `Float64Array` costs more (SHORT_NUMBERS).
                let len = numbers.len() as u32;
                for n in numbers {
                    self.plan
                        .float(n)
                        .map_err(|_| Error::codec("js: a number"))?;
                }
                self.plan
                    .end_array(len)
                    .map_err(|_| Error::codec("js: a number"))?;
                Ok(Transcoded::Plan(self.plan.finish()))
            }
            None => {
                let plan = self.plan.finish();
                if plan.is_empty() {
                    return Err(Error::codec("js: the value is incomplete"));
                }
                Ok(Transcoded::Plan(plan))
            }
        }
    }

    /// Leaves numbers mode: the numbers so far become the plan's (the top-level array's
    /// count is kept by the decoder's calls, so its end counts them).
    #[cold]
    fn leave_numbers(&mut self) -> std::result::Result<(), NotJson> {
        if let Some(numbers) = self.numbers.take() {
            for n in numbers {
                // A JS number either way: an integral one is the same number.
                self.plan.float(n)?;
            }
        }
        Ok(())
    }

    /// A number item of the top-level array: kept as a number while in numbers mode.
    #[inline]
    fn number(&mut self, n: f64) -> bool {
        match &mut self.numbers {
            Some(numbers) if self.depth == 1 => {
                numbers.push(n);
                true
            }
            _ => false,
        }
    }
}

impl Build for Transcode {
    type Value = ();
    /// Items pushed so far.
    type Array = u32;
    type Map = ();
    type Error = NotJson;

    fn nil(&mut self) -> std::result::Result<(), NotJson> {
        self.leave_numbers()?;
        self.plan.nil()
    }
    fn bool(&mut self, v: bool) -> std::result::Result<(), NotJson> {
        self.leave_numbers()?;
        self.plan.bool(v)
    }
    #[inline]
    fn int(&mut self, v: i64) -> std::result::Result<(), NotJson> {
        if !is_safe(v) {
            return Err(NotJson);
        }
        if self.numbers.is_some() {
            if self.number(v as f64) {
                return Ok(());
            }
            self.leave_numbers()?;
        }
        self.plan.int(v)
    }
    fn uint(&mut self, _: u64) -> std::result::Result<(), NotJson> {
        Err(NotJson)
    }
    #[inline]
    fn float(&mut self, v: f64) -> std::result::Result<(), NotJson> {
        if self.numbers.is_some() {
            if self.number(v) {
                return Ok(());
            }
            self.leave_numbers()?;
        }
        self.plan.float(v)
    }
    #[inline]
    fn str(&mut self, v: &str) -> std::result::Result<(), NotJson> {
        if self.numbers.is_some() {
            self.leave_numbers()?;
        }
        self.plan.str(v)
    }
    fn bytes(&mut self, _: &[u8]) -> std::result::Result<(), NotJson> {
        Err(NotJson)
    }
    fn array(&mut self, len: usize) -> std::result::Result<u32, NotJson> {
        self.depth += 1;
        if self.depth == 1 {
            self.numbers = Some(Vec::with_capacity(len.min(PREALLOC_NUMBERS)));
            return Ok(0);
        }
        self.leave_numbers()?;
        self.plan.array(len)
    }
    #[inline]
    fn push(&mut self, array: &mut u32, _: ()) -> std::result::Result<(), NotJson> {
        *array += 1;
        Ok(())
    }
    fn end_array(&mut self, array: u32) -> std::result::Result<(), NotJson> {
        self.depth -= 1;
        if self.depth == 0 && self.numbers.is_some() {
            return Ok(());
        }
        self.plan.end_array(array)
    }
    fn map(&mut self, len: usize) -> std::result::Result<(), NotJson> {
        self.depth += 1;
        if self.numbers.is_some() {
            self.leave_numbers()?;
        }
        self.plan.map(len)
    }
    #[inline]
    fn key(&mut self, map: &mut (), key: &str) -> std::result::Result<(), NotJson> {
        self.plan.key(map, key)
    }
    #[inline]
    fn value(&mut self, _: &mut (), _: ()) -> std::result::Result<(), NotJson> {
        Ok(())
    }
    fn end_map(&mut self, map: ()) -> std::result::Result<(), NotJson> {
        self.depth -= 1;
        self.plan.end_map(map)
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
        // Around 2^52, where every f64 becomes whole, and 2^53.
        let two_52 = 4_503_599_627_370_496.0_f64;
        for n in [
            two_52 - 0.5,
            two_52 - 1.0,
            two_52,
            two_52 + 1.0,
            two_52 + 3.0,
            2.0 * two_52 - 1.0,
            0.499_999_999_999_999_94,
            2.5,
            -3.5,
            f64::MIN_POSITIVE,
            f64::MAX,
        ] {
            for n in [n, -n] {
                assert_eq!(number(n), by_definition(n), "{n}");
            }
        }
    }

    /// Core's rule as FORMAT.md §2 words it.
    fn by_definition(n: f64) -> Number {
        if n.abs() <= MAX_SAFE_INTEGER && n.fract() == 0.0 {
            Number::Int(n as i64)
        } else {
            Number::Float(n)
        }
    }

    proptest::proptest! {
        #[test]
        fn every_number_is_written_by_the_rule(
            bits in proptest::prelude::any::<u64>(),
            whole in -9_007_199_254_740_991i64..=9_007_199_254_740_991,
            half in proptest::prelude::any::<bool>(),
        ) {
            let n = f64::from_bits(bits);
            if !n.is_nan() {
                proptest::prop_assert_eq!(number(n), by_definition(n));
            }
            let near = whole as f64 + if half { 0.5 } else { 0.0 };
            proptest::prop_assert_eq!(number(near), by_definition(near));
        }
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

    #[test]
    fn json_text_is_the_encoders_json_and_knows_when_it_is_ascii() {
        let nested: Value = [
            ("", Value::Array(vec![])),
            ("empty map", Value::Map(Default::default())),
            (
                "q\" b\\ \u{1}\n",
                Value::Array(vec![
                    Value::Nil,
                    Value::Bool(true),
                    Value::Bool(false),
                    Value::from(-7),
                    Value::from(1e300),
                    Value::from(-0.0),
                    Value::Array(vec![Value::Array(vec![])]),
                ]),
            ),
            ("z", [("k", Value::from("v"))].into_iter().collect()),
        ]
        .into_iter()
        .collect();
        for (value, is_ascii) in [
            (nested.clone(), true),
            (Value::Array(vec![nested.clone(), Value::from("é")]), false),
            ([("日本", Value::Nil)].into_iter().collect(), false),
            (Value::from(""), true),
            (Value::Nil, true),
        ] {
            let mut out = JsonText::default();
            msgpack::decode_into(&msgpack::encode(&value), &DecodeLimits::default(), &mut out)
                .unwrap();
            let json = out.finish_json().unwrap();
            assert_eq!(json.text, json::encode(&value).unwrap(), "{value:?}");
            assert_eq!(json.ascii, is_ascii, "{value:?}");
        }
        assert!(JsonText::default().finish().is_err());
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
    fn arrays_of_numbers_stay_numbers_and_the_rest_is_a_plan() {
        let mut items = vec![
            Value::from(1),
            Value::from(-0.0),
            Value::Float(f64::NAN),
            Value::Float(f64::INFINITY),
        ];
        items.extend((0..SHORT_NUMBERS).map(|i| Value::Float(i as f64 + 0.5)));
        let Ok(Transcoded::Numbers(got)) = transcode(&Value::Array(items)) else {
            panic!("numbers")
        };
        assert_eq!(got[0].to_bits(), 1f64.to_bits());
        assert_eq!(got[1].to_bits(), (-0.0f64).to_bits());
        assert!(got[2].is_nan() && got[3] == f64::INFINITY);
        assert!((0..SHORT_NUMBERS).all(|i| got[4 + i] == i as f64 + 0.5));
        // A short one (the empty one too) is a plan, as a mixed one is.
        let mut short = vec![plan::FLOAT];
        short.extend_from_slice(&[0; 7]);
        short.extend_from_slice(&0.25f64.to_le_bytes());
        short.extend_from_slice(&[plan::ARRAY, 1, 0, 0, 0]);
        assert_eq!(
            transcode(&Value::Array(vec![Value::Float(0.25)])),
            Ok(Transcoded::Plan(short))
        );
        assert_eq!(
            transcode(&Value::Array(vec![])),
            Ok(Transcoded::Plan(vec![plan::ARRAY, 0, 0, 0, 0]))
        );
        // One item that is not a number turns the array into a plan, numbers first.
        let mixed = Value::Array(vec![
            Value::from(1),
            Value::from(0.5),
            Value::from("x"),
            Value::Array(vec![Value::from(2)]),
            Value::from(3),
        ]);
        let mut expected = vec![plan::FLOAT];
        expected.extend_from_slice(&[0; 7]);
        expected.extend_from_slice(&1f64.to_le_bytes());
        expected.push(plan::FLOAT);
        expected.extend_from_slice(&[0; 7]);
        expected.extend_from_slice(&0.5f64.to_le_bytes());
        expected.extend_from_slice(&[plan::ASCII, 1, b'x', plan::INT, 2, 0, 0, 0]);
        expected.extend_from_slice(&[plan::ARRAY, 1, 0, 0, 0, plan::INT, 3, 0, 0, 0]);
        expected.extend_from_slice(&[plan::ARRAY, 5, 0, 0, 0]);
        assert_eq!(transcode(&mixed), Ok(Transcoded::Plan(expected)));
        assert_eq!(
            transcode(&Value::from("s")),
            Ok(Transcoded::Plan(vec![plan::ASCII, 1, b's']))
        );
        // What neither holds exactly goes the exact way.
        for odd in [
            Value::Array(vec![Value::from(1), Value::Int(1 << 60)]),
            Value::Array(vec![Value::Bytes(vec![1])]),
            Value::UInt(u64::MAX),
        ] {
            assert_eq!(transcode(&odd), Err(NotJson), "{odd:?}");
        }
    }
}
