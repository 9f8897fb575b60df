//! A read's *plan*: a payload as postfix instructions a JS loop follows to make its value
//! (the Node addon's `bindings-node/src/plan.rs`). Every rule was applied while decoding
//! (canonical numbers, UTF-8, limits, the JS number rule); the loop only makes what each
//! instruction names: a scalar is pushed on its value stack, an array or an object takes
//! the values on top. Measured against `JSON.parse` of core's JSON text, which V8 parses
//! key by key: maps that share their keys (records) are made by one constructor per
//! *shape* — a function V8 compiles once, `(s, i) => ({"id": s[i], "name": s[i + 1], …})`,
//! whose objects V8 allocates whole — so the keys are neither written nor read again.
//!
//! Layout: one byte per instruction, then its operands (`u32`s little-endian):
//! - `NULL`, `TRUE`, `FALSE`;
//! - `INT` `i32`: an integer that fits 32 bits;
//! - `FLOAT`: zero bytes up to the next multiple of 8 of the plan's offset, then an `f64`
//!   (a safe integer beyond 32 bits is one too; NaN and infinities included);
//! - `ASCII` `u8 len` bytes, `ASCII_LONG` `u32 len` bytes, `UTF8` `u32 len` bytes: a string
//!   (ASCII ones are their own Latin-1);
//! - `ARRAY` `u32 n`: the top `n` values become an array;
//! - `SHAPE` `u64 id` (below 2⁵³, little-endian) `u32 n` then `n` keys (`u32 len` + UTF-8
//!   each): defines the next shape number (0, 1, … in order of definition, per plan) as these keys, which the
//!   process names `id`: an id is given to one set of keys only, for the life of the
//!   process (whichever thread's plan gives it), so the loop keeps what it made for an id
//!   and reads the keys only for an id it does not hold; [`NO_ID`] when the ids ran out;
//! - `SHAPED` `u32 shape`: the top values (one per key of the shape) become an object;
//! - `OBJECT` `u32 n` then `n` keys: the top `n` values become an object with these keys,
//!   one property at a time (maps with many keys, a `"__proto__"` key, no keys).
//!
//! An object keeps the wire order of its keys (integer-like ones aside, which a JS object
//! lists first); a repeated key keeps its first place and takes its last value, as in an
//! object literal or an assignment.

use std::collections::HashMap;

use super::{is_safe, NotJson};
use crate::codec::Build;

/// `null`.
pub const NULL: u8 = 0;
/// `true`.
pub const TRUE: u8 = 1;
/// `false`.
pub const FALSE: u8 = 2;
/// An `i32`.
pub const INT: u8 = 3;
/// An aligned `f64`.
pub const FLOAT: u8 = 4;
/// An ASCII string of at most 255 bytes.
pub const ASCII: u8 = 5;
/// A longer ASCII string.
pub const ASCII_LONG: u8 = 6;
/// A string with bytes outside ASCII.
pub const UTF8: u8 = 7;
/// An array of the top values.
pub const ARRAY: u8 = 8;
/// A shape's keys.
pub const SHAPE: u8 = 9;
/// An object of a shape.
pub const SHAPED: u8 = 10;
/// An object with its keys inline.
pub const OBJECT: u8 = 11;

/// Every instruction by its name, for the loop's source.
pub const OPS: [(&str, u8); 12] = [
    ("ASCII_LONG", ASCII_LONG),
    ("NULL", NULL),
    ("TRUE", TRUE),
    ("FALSE", FALSE),
    ("INT", INT),
    ("FLOAT", FLOAT),
    ("ASCII", ASCII),
    ("UTF8", UTF8),
    ("ARRAY", ARRAY),
    ("SHAPE", SHAPE),
    ("SHAPED", SHAPED),
    ("OBJECT", OBJECT),
];

/// Most keys a shape has: larger maps are made key by key (a literal of hundreds of keys
/// is no faster to run, and slow to compile).
pub const SHAPE_KEYS: usize = 32;
/// Most bytes of keys a shape has (longer keys are rarely repeated).
const SHAPE_BYTES: usize = 1024;
/// Most shapes one plan defines; later maps are made key by key.
const SHAPES: usize = 4096;
/// The id of a shape whose keys have none (every id below 2⁵³, what a JS number holds
/// exactly, was given): made from its keys. A `u32` ran out: key sets that keep changing
/// (maps keyed by user ids), or values written to make them, take ids by the thousand a read.
pub const NO_ID: u64 = 1 << 53;
/// Key sets a thread remembers the ids of; past this many it forgets them all (they are
/// given new ids when seen again).
const REMEMBERED: usize = 4096;

/// The next id of a set of keys, process-wide (ids are never given twice).
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Key sets whose ids a thread keeps at hand, compared before the map is hashed.
const RECENT: usize = 4;

/// The ids a thread gave (see [`id_of`]).
#[derive(Default)]
struct Ids {
    /// By the keys' bytes. Hashed with std's keyed hasher: the keys come from stored
    /// values, which anyone who can write to Redis may have chosen to collide under an
    /// unkeyed hash (every read would then compare each one).
    all: HashMap<Box<[u8]>, u64>,
    /// The last key sets asked for, and where the next one goes: reads repeat their
    /// shapes, and comparing a few bytes costs less than the keyed hash (about 250
    /// instructions a shape, two or more in every small read of records).
    recent: [(Vec<u8>, u64); RECENT],
    next: usize,
}

thread_local! {
    static IDS: std::cell::RefCell<Ids> = std::cell::RefCell::default();
}

/// The id of the keys `keys` (their bytes as a plan writes them). Measured: the loop's
/// lookup of a shape by the text of its keys (a string made from the plan, then hashed)
/// cost about 2,000 instructions of a small read; by an id, this map's lookup included,
/// a few hundred.
fn id_of(keys: &[u8]) -> u64 {
    IDS.with(|ids| {
        let ids = &mut *ids.borrow_mut();
        if let Some((_, id)) = ids
            .recent
            .iter()
            .find(|(known, _)| known.as_slice() == keys)
        {
            return *id;
        }
        let id = id_by_map(&mut ids.all, keys);
        // At most SHAPE_BYTES kept per slot: only shapes get ids.
        if id != NO_ID {
            let slot = &mut ids.recent[ids.next];
            slot.0.clear();
            slot.0.extend_from_slice(keys);
            slot.1 = id;
            ids.next = (ids.next + 1) % RECENT;
        }
        id
    })
}

/// [`id_of`] by the thread's map of every id it gave.
fn id_by_map(ids: &mut HashMap<Box<[u8]>, u64>, keys: &[u8]) -> u64 {
    if let Some(id) = ids.get(keys) {
        return *id;
    }
    let given = NEXT_ID.fetch_update(
        std::sync::atomic::Ordering::Relaxed,
        std::sync::atomic::Ordering::Relaxed,
        |next| (next < NO_ID).then_some(next + 1),
    );
    let Ok(id) = given else {
        return NO_ID;
    };
    if ids.len() >= REMEMBERED {
        ids.clear();
    }
    ids.insert(keys.into(), id);
    id
}

/// The map being read at one level: where its keys start in `keys`, how many, and
/// whether one is `"__proto__"` (a literal would set the prototype).
#[derive(Debug)]
struct Open {
    keys_at: usize,
    count: u32,
    proto: bool,
}

/// Writes a payload's [`plan`](self); bytes, integers beyond 2⁵³ and anything else a JS
/// value cannot hold exactly stop it with [`NotJson`] (the binding builds that value
/// another way).
#[derive(Debug)]
pub struct Plan {
    out: Vec<u8>,
    work: Work,
}

/// What a plan keeps while it is written, reused by the next plan of the same thread: a
/// small read made these buffers (and their growth) anew each time, a tenth of its cost.
#[derive(Debug, Default)]
struct Work {
    /// The keys of every map being read, innermost last, each as `u32 len` + bytes.
    keys: Vec<u8>,
    maps: Vec<Open>,
    /// The shapes defined so far by their keys' bytes, once there are more than
    /// [`LINEAR_SHAPES`] (fewer are found by comparing each).
    shapes: HashMap<Box<[u8]>, u32>,
    /// The last shape used at each depth, checked first (records repeat it).
    last: Vec<Option<u32>>,
    /// Key bytes of each shape, by number.
    shape_keys: Vec<u8>,
    shape_at: Vec<(usize, usize)>,
}

/// Shapes looked up by comparing each one's keys; past this many, by a hash map.
const LINEAR_SHAPES: usize = 8;
/// Work kept for the next plan only up to this many bytes of keys.
const KEEP_WORK: usize = 64 << 10;

thread_local! {
    static SPARE: std::cell::Cell<Option<Work>> = const { std::cell::Cell::new(None) };
}

impl Work {
    fn take() -> Work {
        SPARE.with(std::cell::Cell::take).unwrap_or_default()
    }

    fn keep(mut self) {
        if self.keys.capacity() + self.shape_keys.capacity() > KEEP_WORK
            || self.shapes.capacity() > SHAPES
        {
            return;
        }
        self.keys.clear();
        self.maps.clear();
        self.shapes.clear();
        self.last.clear();
        self.shape_keys.clear();
        self.shape_at.clear();
        SPARE.with(|spare| spare.set(Some(self)));
    }
}

impl Drop for Plan {
    /// The working buffers go to the thread's next plan, whether this one was finished,
    /// stopped (`NotJson`) or left for numbers.
    fn drop(&mut self) {
        std::mem::take(&mut self.work).keep();
    }
}

impl Default for Plan {
    fn default() -> Self {
        Plan::with_capacity(0)
    }
}

impl Plan {
    /// A plan with room for `bytes` (a payload's plan is about its size).
    pub fn with_capacity(bytes: usize) -> Self {
        Plan {
            out: Vec::with_capacity(bytes.max(256)),
            work: Work::take(),
        }
    }

    /// The plan written (after a successful decode into this builder).
    pub fn finish(mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    #[inline]
    fn u32(&mut self, n: u32) {
        self.out.extend_from_slice(&n.to_le_bytes());
    }

    #[inline]
    fn len(n: usize) -> Result<u32, NotJson> {
        u32::try_from(n).map_err(|_| NotJson)
    }

    #[inline]
    fn put_f64(&mut self, v: f64) {
        self.out.push(FLOAT);
        let pad = self.out.len().wrapping_neg() & 7;
        self.out.resize(self.out.len() + pad, 0);
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    /// The shape number of the keys `keys_at..` at `depth`, defining it if new; `None`
    /// when the plan has defined as many as it may.
    fn shape(&mut self, keys_at: usize, count: u32, depth: usize) -> Option<u32> {
        let work = &mut self.work;
        let keys = &work.keys[keys_at..];
        let known = |id: u32| {
            let (at, end) = work.shape_at[id as usize];
            &work.shape_keys[at..end] == keys
        };
        if let Some(Some(id)) = work.last.get(depth) {
            if known(*id) {
                return Some(*id);
            }
        }
        let found = if work.shape_at.len() <= LINEAR_SHAPES {
            (0..work.shape_at.len() as u32).find(|id| known(*id))
        } else {
            work.shapes.get(keys).copied()
        };
        let id = match found {
            Some(id) => id,
            None => {
                if work.shape_at.len() >= SHAPES {
                    return None;
                }
                let id = work.shape_at.len() as u32;
                let at = work.shape_keys.len();
                work.shape_keys.extend_from_slice(keys);
                work.shape_at.push((at, work.shape_keys.len()));
                if work.shape_at.len() > LINEAR_SHAPES {
                    // The map holds every shape once they are too many to compare.
                    for (id, (at, end)) in work.shape_at.iter().enumerate().skip(work.shapes.len())
                    {
                        work.shapes
                            .insert(work.shape_keys[*at..*end].into(), id as u32);
                    }
                }
                self.out.push(SHAPE);
                self.out.extend_from_slice(&id_of(keys).to_le_bytes());
                self.out.extend_from_slice(&count.to_le_bytes());
                self.out.extend_from_slice(&work.keys[keys_at..]);
                id
            }
        };
        if work.last.len() <= depth {
            work.last.resize(depth + 1, None);
        }
        work.last[depth] = Some(id);
        Some(id)
    }
}

impl Build for Plan {
    type Value = ();
    /// Items pushed so far.
    type Array = u32;
    type Map = ();
    type Error = NotJson;

    fn nil(&mut self) -> Result<(), NotJson> {
        self.out.push(NULL);
        Ok(())
    }
    fn bool(&mut self, v: bool) -> Result<(), NotJson> {
        self.out.push(if v { TRUE } else { FALSE });
        Ok(())
    }
    #[inline]
    fn int(&mut self, v: i64) -> Result<(), NotJson> {
        match i32::try_from(v) {
            Ok(small) => {
                self.out.push(INT);
                self.out.extend_from_slice(&small.to_le_bytes());
            }
            Err(_) if is_safe(v) => self.put_f64(v as f64),
            Err(_) => return Err(NotJson),
        }
        Ok(())
    }
    fn uint(&mut self, _: u64) -> Result<(), NotJson> {
        Err(NotJson)
    }
    #[inline]
    fn float(&mut self, v: f64) -> Result<(), NotJson> {
        self.put_f64(v);
        Ok(())
    }
    #[inline]
    fn str(&mut self, v: &str) -> Result<(), NotJson> {
        let bytes = v.as_bytes();
        match (bytes.is_ascii(), u8::try_from(bytes.len())) {
            (true, Ok(len)) => self.out.extend_from_slice(&[ASCII, len]),
            (true, Err(_)) => {
                self.out.push(ASCII_LONG);
                self.u32(Plan::len(bytes.len())?);
            }
            (false, _) => {
                self.out.push(UTF8);
                self.u32(Plan::len(bytes.len())?);
            }
        }
        self.out.extend_from_slice(bytes);
        Ok(())
    }
    fn bytes(&mut self, _: &[u8]) -> Result<(), NotJson> {
        Err(NotJson)
    }
    fn array(&mut self, _: usize) -> Result<u32, NotJson> {
        Ok(0)
    }
    #[inline]
    fn push(&mut self, array: &mut u32, _: ()) -> Result<(), NotJson> {
        *array += 1;
        Ok(())
    }
    fn end_array(&mut self, array: u32) -> Result<(), NotJson> {
        self.out.push(ARRAY);
        self.u32(array);
        Ok(())
    }
    fn map(&mut self, _: usize) -> Result<(), NotJson> {
        self.work.maps.push(Open {
            keys_at: self.work.keys.len(),
            count: 0,
            proto: false,
        });
        Ok(())
    }
    #[inline]
    fn key(&mut self, _: &mut (), key: &str) -> Result<(), NotJson> {
        let len = Plan::len(key.len())?;
        self.work.keys.extend_from_slice(&len.to_le_bytes());
        self.work.keys.extend_from_slice(key.as_bytes());
        if let Some(open) = self.work.maps.last_mut() {
            open.count += 1;
            open.proto |= key == "__proto__";
        }
        Ok(())
    }
    #[inline]
    fn value(&mut self, _: &mut (), _: ()) -> Result<(), NotJson> {
        Ok(())
    }
    fn end_map(&mut self, _: ()) -> Result<(), NotJson> {
        let open = self.work.maps.pop().ok_or(NotJson)?;
        let count = open.count as usize;
        let shaped = count > 0
            && count <= SHAPE_KEYS
            && !open.proto
            && self.work.keys.len() - open.keys_at <= SHAPE_BYTES;
        let shape = if shaped {
            self.shape(open.keys_at, open.count, self.work.maps.len())
        } else {
            None
        };
        match shape {
            Some(id) => {
                self.out.push(SHAPED);
                self.u32(id);
            }
            None => {
                self.out.push(OBJECT);
                self.u32(open.count);
                self.out.extend_from_slice(&self.work.keys[open.keys_at..]);
            }
        }
        self.work.keys.truncate(open.keys_at);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{msgpack, DecodeLimits, Map, Value};

    /// The keys of every id the plans of these tests gave.
    static NAMED: std::sync::Mutex<std::collections::BTreeMap<u64, Vec<String>>> =
        std::sync::Mutex::new(std::collections::BTreeMap::new());

    /// Follows a plan as the JS loop does, making core values (a test's reference reader).
    fn follow(plan: &[u8]) -> Value {
        let mut stack: Vec<Value> = Vec::new();
        let mut shapes: Vec<Vec<String>> = Vec::new();
        let mut at = 0;
        let u32_at = |at: &mut usize| {
            let n = u32::from_le_bytes(plan[*at..*at + 4].try_into().unwrap());
            *at += 4;
            n as usize
        };
        let text = |at: &mut usize, len: usize| {
            let s = std::str::from_utf8(&plan[*at..*at + len])
                .unwrap()
                .to_owned();
            *at += len;
            s
        };
        let keys = |at: &mut usize, n: usize| -> Vec<String> {
            (0..n)
                .map(|_| {
                    let len = u32_at(at);
                    text(at, len)
                })
                .collect()
        };
        let object = |stack: &mut Vec<Value>, keys: &[String]| {
            let values = stack.split_off(stack.len() - keys.len());
            let mut map = Map::new();
            for (k, v) in keys.iter().zip(values) {
                map.insert(k.clone(), v);
            }
            stack.push(Value::Map(map));
        };
        while at < plan.len() {
            let op = plan[at];
            at += 1;
            match op {
                NULL => stack.push(Value::Nil),
                TRUE => stack.push(Value::Bool(true)),
                FALSE => stack.push(Value::Bool(false)),
                INT => {
                    let v = i32::from_le_bytes(plan[at..at + 4].try_into().unwrap());
                    at += 4;
                    stack.push(Value::Int(v.into()));
                }
                FLOAT => {
                    at = (at + 7) & !7;
                    let v = f64::from_le_bytes(plan[at..at + 8].try_into().unwrap());
                    at += 8;
                    // As JS sees it: one kind of number (the test values hold no integral
                    // float but -0).
                    stack.push(match super::super::number(v) {
                        super::super::Number::Int(i) if v.to_bits() != (-0.0f64).to_bits() => {
                            Value::Int(i)
                        }
                        _ => Value::Float(v),
                    });
                }
                ASCII => {
                    let len = plan[at] as usize;
                    at += 1;
                    let s = text(&mut at, len);
                    assert!(s.is_ascii());
                    stack.push(Value::Str(s));
                }
                ASCII_LONG | UTF8 => {
                    let len = u32_at(&mut at);
                    let s = text(&mut at, len);
                    assert_eq!(s.is_ascii(), op == ASCII_LONG);
                    stack.push(Value::Str(s));
                }
                ARRAY => {
                    let n = u32_at(&mut at);
                    let items = stack.split_off(stack.len() - n);
                    stack.push(Value::Array(items));
                }
                SHAPE => {
                    let id = u32_at(&mut at) as u64 | (u32_at(&mut at) as u64) << 32;
                    let n = u32_at(&mut at);
                    let names = keys(&mut at, n);
                    // An id names one set of keys, whatever plan (of any thread) gives it.
                    let mut named = NAMED.lock().unwrap();
                    let first = named.entry(id).or_insert_with(|| names.clone());
                    assert!(
                        id == NO_ID || *first == names,
                        "id {id}: {first:?}, {names:?}"
                    );
                    shapes.push(names);
                }
                SHAPED => {
                    let id = u32_at(&mut at);
                    object(&mut stack, &shapes[id].clone());
                }
                OBJECT => {
                    let n = u32_at(&mut at);
                    let names = keys(&mut at, n);
                    object(&mut stack, &names);
                }
                other => panic!("op {other}"),
            }
        }
        assert_eq!(stack.len(), 1, "one value left");
        stack.pop().unwrap()
    }

    fn plan_of(payload: &[u8]) -> Result<Vec<u8>, NotJson> {
        let mut plan = Plan::default();
        match msgpack::decode_into(payload, &DecodeLimits::default(), &mut plan) {
            Ok(()) => Ok(plan.finish()),
            Err(crate::codec::DecodeError::Host(not)) => Err(not),
            Err(crate::codec::DecodeError::Codec(err)) => panic!("{err}"),
        }
    }

    fn record(i: i64) -> Value {
        [
            ("id", Value::from(i)),
            ("name", Value::from(format!("user {i}"))),
            ("score", Value::from(i as f64 * 1.5 + 0.25)),
            (
                "tags",
                Value::from(vec![Value::from("a"), Value::from("b")]),
            ),
            ("ok", Value::from(true)),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn a_plan_makes_the_value_back_in_wire_order() {
        let records: Value = (0..100)
            .map(|i| (format!("field_{i}"), record(i)))
            .collect::<Map>()
            .into();
        let long = "x".repeat(300);
        let values = [
            records,
            Value::from(vec![
                Value::Nil,
                Value::from(false),
                Value::from(-7),
                Value::from(i64::from(i32::MIN)),
                Value::from(1i64 << 40),
                Value::from(-(1i64 << 53) + 1),
                Value::from(0.1),
                Value::from(-0.0),
                Value::from("héllo ☃"),
                Value::from(long.as_str()),
                Value::from(""),
                Value::Array(vec![]),
                Value::Map(Map::new()),
            ]),
            // Keys in an order that is not sorted, a "__proto__" key, NaN in a map.
            [
                ("zeta", Value::from(1)),
                ("alpha", Value::from(2)),
                ("__proto__", Value::from(3)),
            ]
            .into_iter()
            .collect(),
            (0..SHAPE_KEYS as i64 + 1)
                .map(|i| (format!("k{i}"), Value::from(i)))
                .collect::<Map>()
                .into(),
            Value::from("top"),
            Value::from(5),
        ];
        for value in values {
            let plan = plan_of(&msgpack::encode(&value)).unwrap();
            assert_eq!(follow(&plan), value, "{value:?}");
        }
        let nan: Value = [("x", Value::from(f64::NAN))].into_iter().collect();
        let Value::Map(made) = follow(&plan_of(&msgpack::encode(&nan)).unwrap()) else {
            panic!("a map")
        };
        assert!(matches!(made["x"], Value::Float(f) if f.is_nan()));
    }

    /// Each instruction of a plan and where its operands start (skipped as `follow` reads
    /// them).
    fn instructions(plan: &[u8]) -> Vec<(u8, usize)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < plan.len() {
            let this = plan[at];
            at += 1;
            out.push((this, at));
            at += match this {
                INT => 4,
                FLOAT => ((at + 7) & !7) - at + 8,
                ASCII => 1 + plan[at] as usize,
                ASCII_LONG | UTF8 => {
                    4 + u32::from_le_bytes(plan[at..at + 4].try_into().unwrap()) as usize
                }
                ARRAY | SHAPED => 4,
                SHAPE | OBJECT => {
                    let id = if this == SHAPE { 8 } else { 0 }; // a shape's id comes first
                    let keys = u32::from_le_bytes(plan[at + id..at + id + 4].try_into().unwrap());
                    let mut skip = id + 4;
                    for _ in 0..keys {
                        let len =
                            u32::from_le_bytes(plan[at + skip..at + skip + 4].try_into().unwrap());
                        skip += 4 + len as usize;
                    }
                    skip
                }
                _ => 0,
            };
        }
        out
    }

    /// How many instructions `op` a plan holds.
    fn count(plan: &[u8], op: u8) -> usize {
        instructions(plan)
            .iter()
            .filter(|(this, _)| *this == op)
            .count()
    }

    /// The ids of the shapes a plan defines, in order.
    fn shape_ids(plan: &[u8]) -> Vec<u64> {
        instructions(plan)
            .into_iter()
            .filter(|(op, _)| *op == SHAPE)
            .map(|(_, at)| u64::from_le_bytes(plan[at..at + 8].try_into().unwrap()))
            .collect()
    }

    #[test]
    fn a_set_of_keys_keeps_its_id_and_an_id_names_one_set_of_keys() {
        let records = |from: i64| {
            let fields = (from..from + 3).map(|i| (format!("f{i}"), record(i)));
            msgpack::encode(&fields.collect::<Map>().into())
        };
        // One shape per plan (the records'), the root's keys another.
        let first = shape_ids(&plan_of(&records(0)).unwrap());
        let again = shape_ids(&plan_of(&records(0)).unwrap());
        let other_root = shape_ids(&plan_of(&records(10)).unwrap());
        assert_eq!(first.len(), 2);
        assert_eq!(first, again, "the same keys, the same ids");
        assert_eq!(first[0], other_root[0], "the records' keys, one id");
        assert_ne!(first[1], other_root[1], "other root keys, another id");
        // Another thread names the same keys afresh, never with an id of other keys;
        // `follow` checks every id against the keys it named first.
        let elsewhere = std::thread::spawn(move || plan_of(&records(0)).unwrap());
        let elsewhere = elsewhere.join().unwrap();
        let ids = shape_ids(&elsewhere);
        assert!(ids
            .iter()
            .all(|id| !first.contains(id) && !other_root.contains(id)));
        follow(&plan_of(&records(10)).unwrap());
        assert_eq!(follow(&elsewhere), follow(&plan_of(&records(0)).unwrap()));
    }

    #[test]
    fn an_id_outlives_the_key_sets_kept_at_hand() {
        let records = |from: i64| {
            let fields = (from..from + 2).map(|i| (format!("g{i}"), record(i)));
            plan_of(&msgpack::encode(&fields.collect::<Map>().into())).unwrap()
        };
        let first = shape_ids(&records(0));
        assert_eq!(first, shape_ids(&records(0)), "kept at hand");
        // More other root key sets than are kept at hand: the first is asked of the map.
        let others: Vec<Vec<u64>> = (1..=RECENT as i64 + 1)
            .map(|i| shape_ids(&records(i * 100)))
            .collect();
        assert_eq!(first, shape_ids(&records(0)), "from the map");
        for (i, ids) in others.iter().enumerate() {
            assert_eq!(ids[0], first[0], "the records' keys, one id");
            assert!(
                !others[..i].iter().any(|o| o[1] == ids[1]),
                "a new id per key set"
            );
            assert_eq!(*ids, shape_ids(&records((i as i64 + 1) * 100)));
        }
    }

    #[test]
    fn maps_with_the_same_keys_share_one_shape() {
        let value = Value::from((0..50).map(record).collect::<Vec<_>>());
        let plan = plan_of(&msgpack::encode(&value)).unwrap();
        assert_eq!(count(&plan, SHAPE), 1);
        assert_eq!(count(&plan, SHAPED), 50);
        assert_eq!(count(&plan, OBJECT), 0);
        assert_eq!(follow(&plan), value);
    }

    #[test]
    fn many_shapes_are_each_defined_once_and_plans_start_afresh() {
        // More shapes than are compared one by one: the hash map takes over.
        let kinds = LINEAR_SHAPES as i64 * 3;
        let value = Value::from(
            (0..kinds * 4)
                .map(|i| {
                    let kind = (i * 7) % kinds;
                    [
                        (format!("a{kind}"), Value::from(i)),
                        (format!("b{kind}"), Value::Nil),
                    ]
                    .into_iter()
                    .collect::<Map>()
                    .into()
                })
                .collect::<Vec<Value>>(),
        );
        let payload = msgpack::encode(&value);
        let plan = plan_of(&payload).unwrap();
        assert_eq!(count(&plan, SHAPE), kinds as usize);
        assert_eq!(count(&plan, SHAPED), kinds as usize * 4);
        assert_eq!(follow(&plan), value);
        // The next plan of this thread reuses the buffers, not the shapes.
        assert_eq!(plan_of(&payload).unwrap(), plan);
    }

    #[test]
    fn a_repeated_key_keeps_its_first_place_and_takes_its_last_value() {
        // {"b": 1, "a": 2, "b": 3}, written by hand (core's encoder never repeats a key).
        let payload = [0x83, 0xa1, b'b', 0x01, 0xa1, b'a', 0x02, 0xa1, b'b', 0x03];
        let plan = plan_of(&payload).unwrap();
        let expected: Value = [("b", Value::from(3)), ("a", Value::from(2))]
            .into_iter()
            .collect();
        assert_eq!(follow(&plan), expected);
    }

    #[test]
    fn what_js_cannot_hold_exactly_is_refused() {
        for odd in [
            Value::from(vec![Value::Bytes(vec![1])]),
            Value::Int(1 << 60),
            Value::UInt(u64::MAX),
        ] {
            assert_eq!(plan_of(&msgpack::encode(&odd)), Err(NotJson), "{odd:?}");
        }
    }
}
