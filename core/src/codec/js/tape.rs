//! The value tape: how a JS value crosses into core in one piece. A JIT-compiled JS walk
//! (the Node addon installs it) writes, value by value, only what JS alone can tell — the
//! JS type it saw and its raw content — and [`read_tape`] applies every rule of
//! docs/FORMAT.md §2 while it drives a [`Build`] (core's [`Encoder`] for a `set`, a
//! [`Value`](super::super::Value) tree for arguments and loader results): the integer rule
//! for `number`, the bigint range, strings without a UTF-8 form, the nesting limit, the
//! item cap, and the messages of every refusal. The walk holds no format rule: it cuts off
//! (writes a stop tag and ends) at a value it can never send, and at a container deeper or
//! longer than the limits it is given, which are core's ([`MAX_DEPTH`], [`max_items`]).
//!
//! Layout: a tag byte, then its content; lengths and counts are `u32`, numbers `f64`, both
//! little-endian.
//!
//! | tag | content |
//! |---|---|
//! | [`NULL`], [`UNDEFINED`], [`FALSE`], [`TRUE`] | — |
//! | [`NUMBER`] | the `f64` |
//! | [`BIGINT`] | length, its decimal text (`String(b)`) |
//! | [`STRING`], [`STRING_LONE`] | length, UTF-8 (`STRING_LONE`: the string has lone surrogates, written as U+FFFD) |
//! | [`BYTES`] | length, the bytes of a `Uint8Array` (a `Buffer`) |
//! | [`ARRAY`] | length, then the items (none when the length is over the cap) |
//! | [`NUMBERS`] | inside an array, items that are `number`s in a row: their count, then their `f64`s from the next offset that is a multiple of 8 |
//! | [`MAP`] | count, then each key (a string tag, or [`KEY_AGAIN`]) and its value (none when over the cap) |
//! | [`KEY_AGAIN`] | a key equal to the last key written at the same position (below [`KEY_ROW`]) of an object at the same depth: records repeat their keys, which are then written and read once |
//! | [`HOLE`] | an array item that is a hole; the walk stops |
//! | [`TYPED_OTHER`], [`NOT_PLAIN`], [`FUNCTION`], [`SYMBOL`], [`CYCLE`], [`DEEP`], [`UNKNOWN`] | what cannot be cached; the walk stops |
//!
//! [`max_items`]: super::max_items

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

use super::super::encoder::{
    container_len, msgpack_bin, msgpack_str, write_float, write_negative, write_unsigned,
};
use super::super::msgpack::MAX_DEPTH;
use super::super::{Build, Encoder};
use super::{number, Number};
use crate::error::Error;

/// `null`.
pub const NULL: u8 = 0;
/// `undefined` (nil inside a container).
pub const UNDEFINED: u8 = 1;
/// `false`.
pub const FALSE: u8 = 2;
/// `true`.
pub const TRUE: u8 = 3;
/// A `number`.
pub const NUMBER: u8 = 4;
/// A `bigint`.
pub const BIGINT: u8 = 5;
/// A well-formed string.
pub const STRING: u8 = 6;
/// A string with lone surrogates.
pub const STRING_LONE: u8 = 7;
/// An array.
pub const ARRAY: u8 = 8;
/// A plain object.
pub const MAP: u8 = 9;
/// A `Uint8Array` or `Buffer`.
pub const BYTES: u8 = 10;
/// A hole in an array.
pub const HOLE: u8 = 11;
/// A typed array other than `Uint8Array`.
pub const TYPED_OTHER: u8 = 12;
/// An object that is not plain (a class instance, `Date`, `Map` …).
pub const NOT_PLAIN: u8 = 13;
/// A function.
pub const FUNCTION: u8 = 14;
/// A symbol.
pub const SYMBOL: u8 = 15;
/// An object met again inside itself.
pub const CYCLE: u8 = 16;
/// A container deeper than [`MAX_DEPTH`].
pub const DEEP: u8 = 17;
/// Any other kind of JS value.
pub const UNKNOWN: u8 = 18;
/// Array items that are `number`s, in a row.
pub const NUMBERS: u8 = 19;
/// A key written before at this position and depth.
pub const KEY_AGAIN: u8 = 20;

/// Key positions remembered for [`KEY_AGAIN`] (later keys are always written out).
pub const KEY_ROW: usize = 64;

/// Every tag by its name, for the writer's source (the walk uses these numbers).
pub const TAGS: [(&str, u8); 21] = [
    ("NUMBERS", NUMBERS),
    ("KEY_AGAIN", KEY_AGAIN),
    ("NULL", NULL),
    ("UNDEFINED", UNDEFINED),
    ("FALSE", FALSE),
    ("TRUE", TRUE),
    ("NUMBER", NUMBER),
    ("BIGINT", BIGINT),
    ("STRING_LONE", STRING_LONE),
    ("STRING", STRING),
    ("ARRAY", ARRAY),
    ("MAP", MAP),
    ("BYTES", BYTES),
    ("HOLE", HOLE),
    ("TYPED_OTHER", TYPED_OTHER),
    ("NOT_PLAIN", NOT_PLAIN),
    ("FUNCTION", FUNCTION),
    ("SYMBOL", SYMBOL),
    ("CYCLE", CYCLE),
    ("DEEP", DEEP),
    ("UNKNOWN", UNKNOWN),
];

/// Why a tape did not become a value.
#[derive(Debug)]
pub enum TapeError<E> {
    /// The JS value cannot be cached (a `TypeError` in JS); the reason.
    Refused(String),
    /// The tape is not one the walk writes (a bug, not the caller's value).
    Malformed(Error),
    /// The builder refused or failed (core's encoder: bytes in a JSON cache …).
    Host(E),
}

/// Where `undefined` may stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undefined {
    /// Only inside arrays and objects (a value to cache).
    Nested,
    /// Anywhere, as nil (a function argument used in a key).
    Anywhere,
}

/// Reads one value's tape into `build`. `max_items` is the longest array (and largest
/// object) accepted ([`super::max_items`] of the reader's limits).
///
/// # Errors
/// [`TapeError::Refused`] for a value that cannot be cached, with the message JS shows.
pub fn read_tape<B: Build>(
    tape: &[u8],
    max_items: usize,
    undefined: Undefined,
    build: &mut B,
) -> Result<B::Value, TapeError<B::Error>> {
    let mut reader = Reader::new(tape, max_items);
    let value = reader.value(build, 0, undefined == Undefined::Anywhere)?;
    if reader.at != tape.len() {
        return Err(reader.malformed());
    }
    Ok(value)
}

/// Writes one value's tape with `encoder` (a `set`: the payload in one pass).
///
/// # Errors
/// As [`read_tape`]; the encoder's own errors as [`TapeError::Host`].
pub fn encode_tape(
    tape: &[u8],
    max_items: usize,
    encoder: &mut Encoder,
) -> Result<(), TapeError<Error>> {
    // No MessagePack form is longer than its tape entry (a tag and a length or an `f64`
    // against the codec's shortest form) but a number in a run, written as 8 bytes and at
    // most 9 in MessagePack: so the payload grows once (a 1 MB list of floats was copied
    // when it outgrew the tape's length); JSON's may grow more.
    encoder.reserve(tape.len() + tape.len() / 8);
    let at = encoder.checkpoint();
    if encode_msgpack(tape, max_items, encoder).is_ok() {
        return Ok(());
    }
    encoder.rewind(at);
    read_tape(tape, max_items, Undefined::Nested, &mut Encoding(encoder))
}

/// The whole tape into a MessagePack encoder by the [`Reader`]'s MessagePack path.
fn encode_msgpack(tape: &[u8], max_items: usize, encoder: &mut Encoder) -> Fast {
    encoder.msgpack_payload().ok_or(Redo)?;
    let mut reader = Reader::new(tape, max_items);
    match tape.first() {
        Some(&MAP) | Some(&ARRAY) => {
            let map = reader.next_u8()? == MAP;
            let len = reader.fast_len(0)?;
            let out = encoder.msgpack_payload().ok_or(Redo)?;
            if map {
                container_len(out, len, 0x80, 0xde, 0xdf);
            } else {
                container_len(out, len, 0x90, 0xdc, 0xdd);
            }
            encoder.wrote();
            let mut done = 0;
            while done < len {
                done += reader.fast_root_items(encoder, map, done, len)?;
            }
        }
        _ => {
            let out = encoder.msgpack_payload().ok_or(Redo)?;
            reader.fast_value(out, 0, false)?;
            encoder.wrote();
        }
    }
    if reader.at != tape.len() {
        return Err(Redo);
    }
    Ok(())
}

/// How far a tape's root container has been read into an encoder, kept without
/// borrowing the tape, so that another thread, with its own view of the same tape, goes
/// on from there ([`super::ahead`]): a reader's place between two items of the root.
#[derive(Debug, Default)]
pub(super) struct Place {
    pub(super) at: usize,
    /// The keys remembered for [`KEY_AGAIN`], by depth, as ranges of the tape.
    keys: Vec<Vec<Range<usize>>>,
    /// The root container, once its head is read.
    root: Option<Root>,
    /// The MessagePack path met what only the general reader reads: the whole tape is to
    /// be read again by [`encode_tape`] (rare: a refusal, a malformed tape).
    redo: bool,
}

/// A root container being read: an object or an array, its length, and the items read.
#[derive(Debug, Clone, Copy)]
struct Root {
    map: bool,
    len: usize,
    done: usize,
}

/// The root container's head: a tag and a count.
pub(super) const ROOT_HEAD: usize = 5;

impl Place {
    /// Whether the tape's first `written` bytes hold root items not read yet.
    pub(super) fn behind(&self, written: usize) -> bool {
        !self.redo && self.at < written && self.root.is_some_and(|root| root.done < root.len)
    }

    /// Whether the tape is to be read again whole (see [`Place::redo`]).
    pub(super) fn redo(&self) -> bool {
        self.redo
    }
}

/// Reads the head of the tape's root container (its first [`ROOT_HEAD`] bytes, which
/// `tape` starts with) into `encoder`: where [`encode_items`] starts.
pub(super) fn encode_head(
    tape: &[u8],
    max_items: usize,
    encoder: &mut Encoder,
) -> Result<Place, TapeError<Error>> {
    let mut reader = Reader::resume(tape, 0, max_items, &Place::default())?;
    let build = &mut Encoding(encoder);
    let map = match reader.tag()? {
        MAP => true,
        ARRAY => false,
        // Only a container's items are read ahead.
        _ => return Err(reader.malformed()),
    };
    let len = if map {
        let len = reader.container_len(0, "an object", "properties")?;
        build.map(len).map_err(TapeError::Host)?;
        len
    } else {
        let len = reader.container_len(0, "an array", "items")?;
        build.array(len).map_err(TapeError::Host)?;
        len
    };
    Ok(reader.park(Some(Root { map, len, done: 0 })))
}

/// Reads the root container's items from `place` (after [`encode_head`]) to the end of
/// `tape`, which holds the tape's bytes from `base` on and ends between two root items,
/// into `encoder`. Stops early, between two items, once `stop` is set.
pub(super) fn encode_items(
    tape: &[u8],
    base: usize,
    max_items: usize,
    place: &mut Place,
    encoder: &mut Encoder,
    stop: &AtomicBool,
) -> Result<(), TapeError<Error>> {
    let Some(mut root) = place.root else {
        return Err(TapeError::Malformed(Error::codec(
            "value tape: items before the head",
        )));
    };
    let mut reader = Reader::resume(tape, base, max_items, place)?;
    if encoder.msgpack_payload().is_some() {
        let mut redo = false;
        while reader.at < tape.len() && root.done < root.len && !stop.load(Ordering::Relaxed) {
            match reader.fast_root_items(encoder, root.map, root.done, root.len) {
                Ok(done) => root.done += done,
                Err(Redo) => {
                    redo = true;
                    break;
                }
            }
        }
        *place = reader.park(Some(root));
        place.redo = redo;
        return Ok(());
    }
    let build = &mut Encoding(encoder);
    let read = (|| {
        while reader.at < tape.len() && root.done < root.len && !stop.load(Ordering::Relaxed) {
            if root.map {
                reader.entry(build, 0, &mut (), root.done)?;
                root.done += 1;
            } else {
                root.done += reader.array_items(build, 0, &mut (), root.done, root.len)?;
            }
        }
        Ok(())
    })();
    *place = reader.park(Some(root));
    read
}

/// Whether `tape`'s root container still has the length `place` read it with: the walk
/// writes a root object's count before its entries, and writes it again if a getter
/// changed the keys meanwhile.
pub(super) fn same_root(tape: &[u8], place: &Place) -> bool {
    match (place.root, tape.get(1..ROOT_HEAD)) {
        (Some(root), Some(&[a, b, c, d])) => u32::from_le_bytes([a, b, c, d]) as usize == root.len,
        _ => false,
    }
}

/// Ends the root container read by [`encode_items`] up to the end of `tape`, the whole
/// tape.
pub(super) fn encode_end(
    tape: &[u8],
    place: &Place,
    encoder: &mut Encoder,
) -> Result<(), TapeError<Error>> {
    let malformed = || {
        TapeError::Malformed(Error::codec(format!(
            "value tape: malformed at byte {} of {}",
            place.at,
            tape.len()
        )))
    };
    match place.root {
        Some(root) if root.done == root.len && place.at == tape.len() => {
            let build = &mut Encoding(encoder);
            if root.map {
                build.end_map(()).map_err(TapeError::Host)
            } else {
                build.end_array(()).map_err(TapeError::Host)
            }
        }
        _ => Err(malformed()),
    }
}

/// Refusal messages (the Node binding's since its first walk; tests match on them).
fn refused<T, E>(message: impl Into<String>) -> Result<T, TapeError<E>> {
    Err(TapeError::Refused(message.into()))
}

struct Reader<'t> {
    tape: &'t [u8],
    /// Where `tape` starts in the whole tape (read ahead: past the root's head).
    base: usize,
    at: usize,
    max_items: usize,
    /// By depth, the last key read at each position below [`KEY_ROW`] ([`KEY_AGAIN`]),
    /// checked UTF-8.
    keys: Vec<Vec<&'t [u8]>>,
}

impl<'t> Reader<'t> {
    /// A reader of a whole tape, at its start.
    fn new(tape: &'t [u8], max_items: usize) -> Self {
        Reader {
            tape,
            base: 0,
            at: 0,
            max_items,
            keys: Vec::new(),
        }
    }

    /// A reader of `tape`, the whole tape's bytes from `base` on, at `place` (its keys'
    /// ranges are checked against this tape: another thread kept them; their UTF-8 was
    /// checked when they were first read, and published bytes never change).
    fn resume<E>(
        tape: &'t [u8],
        base: usize,
        max_items: usize,
        place: &Place,
    ) -> Result<Self, TapeError<E>> {
        let mut reader = Reader {
            tape,
            base,
            at: place.at.saturating_sub(base),
            max_items,
            keys: Vec::with_capacity(place.keys.len()),
        };
        if place.at < base {
            return Err(reader.malformed());
        }
        for row in &place.keys {
            let row = row
                .iter()
                .map(|range| {
                    let range = range.start.checked_sub(base)?..range.end.checked_sub(base)?;
                    tape.get(range)
                })
                .collect::<Option<Vec<&'t [u8]>>>()
                .ok_or_else(|| reader.malformed())?;
            reader.keys.push(row);
        }
        Ok(reader)
    }

    /// Where this reader stands, in offsets of the whole tape.
    fn park(self, root: Option<Root>) -> Place {
        let start = self.tape.as_ptr() as usize;
        let keys = self
            .keys
            .iter()
            .map(|row| {
                row.iter()
                    .map(|key| {
                        let at = self.base + key.as_ptr() as usize - start;
                        at..at + key.len()
                    })
                    .collect()
            })
            .collect();
        Place {
            at: self.base + self.at,
            keys,
            root,
            redo: false,
        }
    }

    fn malformed<E>(&self) -> TapeError<E> {
        TapeError::Malformed(Error::codec(format!(
            "value tape: malformed at byte {} of {}",
            self.at,
            self.tape.len()
        )))
    }

    fn take<E>(&mut self, n: usize) -> Result<&'t [u8], TapeError<E>> {
        match self.tape.get(self.at..self.at.saturating_add(n)) {
            Some(bytes) => {
                self.at += n;
                Ok(bytes)
            }
            None => Err(self.malformed()),
        }
    }

    #[inline]
    fn tag<E>(&mut self) -> Result<u8, TapeError<E>> {
        match self.tape.get(self.at) {
            Some(&tag) => {
                self.at += 1;
                Ok(tag)
            }
            None => Err(self.malformed()),
        }
    }

    #[inline]
    fn len<E>(&mut self) -> Result<usize, TapeError<E>> {
        let bytes = self.take(4)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize)
    }

    /// A string's text after its tag; `what` names it in a refusal.
    #[inline]
    fn text<E>(&mut self, tag: u8, what: &str) -> Result<&'t str, TapeError<E>> {
        let len = self.len()?;
        let bytes = self.take(len)?;
        let text = std::str::from_utf8(bytes).map_err(|_| self.malformed())?;
        if tag == STRING_LONE {
            return refused(lone_surrogates(what, text));
        }
        Ok(text)
    }

    fn value<B: Build>(
        &mut self,
        build: &mut B,
        depth: usize,
        nested: bool,
    ) -> Result<B::Value, TapeError<B::Error>> {
        let tag = self.tag()?;
        let made = match tag {
            NUMBER => {
                let bytes = self.take(8)?;
                Self::number(build, bytes)
            }
            STRING | STRING_LONE => {
                let text = self.text(tag, "string")?;
                build.str(text)
            }
            NULL => build.nil(),
            TRUE => build.bool(true),
            FALSE => build.bool(false),
            UNDEFINED if nested => build.nil(),
            UNDEFINED => {
                return refused("undefined cannot be cached (use null for an empty value)")
            }
            ARRAY => return self.array(build, depth),
            MAP => return self.map(build, depth),
            BYTES => {
                let len = self.len()?;
                let bytes = self.take(len)?;
                build.bytes(bytes)
            }
            BIGINT => {
                let len = self.len()?;
                let digits = self.take(len)?;
                match bigint(digits) {
                    Some(Ok(i)) => build.int(i),
                    Some(Err(u)) => build.uint(u),
                    None => return Err(self.bigint_refusal(digits)),
                }
            }
            HOLE => return Err(self.malformed()),
            other => return Err(self.stop(other)),
        };
        made.map_err(TapeError::Host)
    }

    /// A JS `number` by core's rule: an integral safe one is an integer, any other a float.
    #[inline]
    fn number<B: Build>(build: &mut B, bytes: &[u8]) -> Result<B::Value, B::Error> {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(bytes);
        match number(f64::from_le_bytes(raw)) {
            Number::Int(i) => build.int(i),
            Number::Float(f) => build.float(f),
        }
    }

    /// Refuses a container whose items would be deeper than [`MAX_DEPTH`] (the walk stops
    /// there with [`DEEP`]; a tape that goes on is refused here all the same).
    fn nest<E>(depth: usize) -> Result<(), TapeError<E>> {
        if depth >= MAX_DEPTH {
            return refused(format!(
                "values nested deeper than {MAX_DEPTH} levels cannot be cached"
            ));
        }
        Ok(())
    }

    /// Opens an array or object at `depth`: checks the nesting, then reads its length and
    /// refuses more than `max_items` (`what` and `unit` name it in the message).
    fn container_len<E>(
        &mut self,
        depth: usize,
        what: &str,
        unit: &str,
    ) -> Result<usize, TapeError<E>> {
        Self::nest(depth)?;
        let len = self.len()?;
        if len > self.max_items {
            return refused(format!(
                "{what} of {len} {unit} cannot be cached (at most {}, from maxValueBytes)",
                self.max_items
            ));
        }
        Ok(len)
    }

    fn array<B: Build>(
        &mut self,
        build: &mut B,
        depth: usize,
    ) -> Result<B::Value, TapeError<B::Error>> {
        let len = self.container_len(depth, "an array", "items")?;
        let mut array = build.array(len).map_err(TapeError::Host)?;
        let mut i = 0;
        while i < len {
            i += self.array_items(build, depth, &mut array, i, len)?;
        }
        build.end_array(array).map_err(TapeError::Host)
    }

    /// Item `i` of an array of `len` at `depth`, or the run of numbers it starts: how many
    /// items were read.
    #[inline]
    fn array_items<B: Build>(
        &mut self,
        build: &mut B,
        depth: usize,
        array: &mut B::Array,
        i: usize,
        len: usize,
    ) -> Result<usize, TapeError<B::Error>> {
        match self.tape.get(self.at) {
            Some(&HOLE) => refused(format!(
                "a sparse array cannot be cached (index {i} of {len} is a hole)"
            )),
            Some(&NUMBERS) => {
                self.at += 1;
                let count = self.len()?;
                if count == 0 || count > len - i {
                    return Err(self.malformed());
                }
                // The f64s start at the next multiple of 8.
                self.take((8 - (self.base + self.at) % 8) % 8)?;
                let run = self.take(count.checked_mul(8).ok_or_else(|| self.malformed())?)?;
                for bytes in run.chunks_exact(8) {
                    let item = Self::number(build, bytes).map_err(TapeError::Host)?;
                    build.push(array, item).map_err(TapeError::Host)?;
                }
                Ok(count)
            }
            _ => {
                let item = self.value(build, depth + 1, true)?;
                build.push(array, item).map_err(TapeError::Host)?;
                Ok(1)
            }
        }
    }

    fn map<B: Build>(
        &mut self,
        build: &mut B,
        depth: usize,
    ) -> Result<B::Value, TapeError<B::Error>> {
        let len = self.container_len(depth, "an object", "properties")?;
        let mut map = build.map(len).map_err(TapeError::Host)?;
        for i in 0..len {
            self.entry(build, depth, &mut map, i)?;
        }
        build.end_map(map).map_err(TapeError::Host)
    }

    /// Entry `i` (its key and value) of an object at `depth`.
    #[inline]
    fn entry<B: Build>(
        &mut self,
        build: &mut B,
        depth: usize,
        map: &mut B::Map,
        i: usize,
    ) -> Result<(), TapeError<B::Error>> {
        let key = self.key(depth, i)?;
        build.key(map, key).map_err(TapeError::Host)?;
        let item = self.value(build, depth + 1, true)?;
        build.value(map, item).map_err(TapeError::Host)
    }

    /// The key at position `i` of an object at `depth`: written out (and remembered, below
    /// [`KEY_ROW`]), or [`KEY_AGAIN`].
    #[inline]
    fn key<E>(&mut self, depth: usize, i: usize) -> Result<&'t str, TapeError<E>> {
        let tag = self.tag()?;
        if tag == KEY_AGAIN {
            return match self.keys.get(depth).and_then(|row| row.get(i)) {
                // Checked when it was first read.
                Some(key) if i < KEY_ROW => std::str::from_utf8(key).map_err(|_| self.malformed()),
                _ => Err(self.malformed()),
            };
        }
        if tag != STRING && tag != STRING_LONE {
            return Err(self.malformed());
        }
        let key = self.text(tag, "object key")?;
        if i < KEY_ROW && !self.remember(depth, i, key.as_bytes()) {
            return Err(self.malformed());
        }
        Ok(key)
    }

    /// Keeps `key` as the last one at position `i` (below [`KEY_ROW`]) of an object at
    /// `depth`; false when the positions before it have none (not a tape the walk writes).
    #[inline]
    fn remember(&mut self, depth: usize, i: usize, key: &'t [u8]) -> bool {
        if self.keys.len() <= depth {
            // A record's keys fit in the first allocation of its row.
            self.keys.resize_with(depth + 1, || Vec::with_capacity(8));
        }
        let row = &mut self.keys[depth];
        if i < row.len() {
            row[i] = key;
        } else if i == row.len() {
            // Positions fill in order, so a new one is the next.
            row.push(key);
        } else {
            return false;
        }
        true
    }

    /// The refusal for a stop tag.
    fn stop<E>(&self, tag: u8) -> TapeError<E> {
        let message = match tag {
            TYPED_OTHER => {
                "only Buffer and Uint8Array are cached as bytes (not other typed arrays)".to_owned()
            }
            NOT_PLAIN => {
                "only plain objects are cached as maps (not class instances, Date, Map, Set …)"
                    .to_owned()
            }
            FUNCTION => "a function cannot be cached".to_owned(),
            SYMBOL => "a symbol cannot be cached".to_owned(),
            CYCLE => "a cyclic value cannot be cached".to_owned(),
            DEEP => format!("values nested deeper than {MAX_DEPTH} levels cannot be cached"),
            UNKNOWN => "this kind of value cannot be cached".to_owned(),
            _ => return self.malformed(),
        };
        TapeError::Refused(message)
    }

    fn bigint_refusal<E>(&self, digits: &[u8]) -> TapeError<E> {
        match digits.first() {
            // Negative and within 64 bits of magnitude: below the model's smallest integer.
            Some(b'-') if parse_magnitude(&digits[1..]).is_some() => {
                TapeError::Refused("a bigint below -2^63 cannot be cached".to_owned())
            }
            Some(_) => {
                TapeError::Refused("a bigint wider than 64 bits cannot be cached".to_owned())
            }
            None => self.malformed(),
        }
    }
}

/// Why the MessagePack path stopped: the tape holds what only the general reader reads (a
/// refusal, which it words, or a malformed tape); it then reads the whole tape again.
#[derive(Debug)]
struct Redo;

/// What a step of the MessagePack path returns.
type Fast<T = ()> = Result<T, Redo>;

/// Numbers of a root run written between two looks at the compressing helper (a root list
/// of numbers is one run, one item of the root).
const RUN_STEP: usize = 8 * 1024;

/// The MessagePack path: the tags a value to cache is made of, read by the same rules as
/// the general reader above, and written with the encoder's own MessagePack writers straight
/// into the payload, without a [`Build`] call per value (a 10 KB records tape in a fifth of
/// the general reader's time, see `benches/core.rs`). Anything else ends it with [`Redo`].
impl<'t> Reader<'t> {
    #[inline(always)]
    fn next_u8(&mut self) -> Fast<u8> {
        let byte = *self.tape.get(self.at).ok_or(Redo)?;
        self.at += 1;
        Ok(byte)
    }

    #[inline(always)]
    fn next_bytes(&mut self, n: usize) -> Fast<&'t [u8]> {
        let end = self.at.checked_add(n).ok_or(Redo)?;
        let bytes = self.tape.get(self.at..end).ok_or(Redo)?;
        self.at = end;
        Ok(bytes)
    }

    #[inline(always)]
    fn next_u32(&mut self) -> Fast<usize> {
        let b = self.next_bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    /// A well-formed string's UTF-8, after its [`STRING`] tag.
    #[inline(always)]
    fn next_text(&mut self) -> Fast<&'t [u8]> {
        let n = self.next_u32()?;
        let text = self.next_bytes(n)?;
        if text.is_ascii() || std::str::from_utf8(text).is_ok() {
            Ok(text)
        } else {
            Err(Redo)
        }
    }

    /// The length of a container at `depth`, after its tag: within the nesting limit and
    /// the item cap.
    #[inline]
    fn fast_len(&mut self, depth: usize) -> Fast<usize> {
        let len = self.next_u32()?;
        if depth >= MAX_DEPTH || len > self.max_items {
            return Err(Redo);
        }
        Ok(len)
    }

    /// A value at `depth`: a scalar here (most values, so no call), a container by
    /// [`Reader::fast_container`].
    #[inline(always)]
    fn fast_value(&mut self, out: &mut Vec<u8>, depth: usize, nested: bool) -> Fast {
        match self.next_u8()? {
            NUMBER => write_number(out, self.next_bytes(8)?),
            STRING => msgpack_str(out, self.next_text()?),
            NULL => out.push(0xc0),
            UNDEFINED if nested => out.push(0xc0),
            TRUE => out.push(0xc3),
            FALSE => out.push(0xc2),
            tag => return self.fast_container(out, depth, tag),
        }
        Ok(())
    }

    /// A value at `depth` whose `tag` is read: a container, bytes or a bigint. The one
    /// call of the path that recurses; what it calls is inlined into it.
    #[inline(never)]
    fn fast_container(&mut self, out: &mut Vec<u8>, depth: usize, tag: u8) -> Fast {
        match tag {
            MAP => {
                let len = self.fast_len(depth)?;
                container_len(out, len, 0x80, 0xde, 0xdf);
                for i in 0..len {
                    self.fast_entry(out, depth, i)?;
                }
            }
            ARRAY => {
                let len = self.fast_len(depth)?;
                container_len(out, len, 0x90, 0xdc, 0xdd);
                let mut i = 0;
                while i < len {
                    i += self.fast_items(out, depth, i, len)?;
                }
            }
            BYTES => {
                let n = self.next_u32()?;
                msgpack_bin(out, self.next_bytes(n)?);
            }
            BIGINT => {
                let n = self.next_u32()?;
                match bigint(self.next_bytes(n)?) {
                    Some(Ok(i)) if i < 0 => write_negative(out, i),
                    Some(Ok(i)) => write_unsigned(out, i as u64),
                    Some(Err(u)) => write_unsigned(out, u),
                    None => return Err(Redo),
                }
            }
            _ => return Err(Redo),
        }
        Ok(())
    }

    /// Entry `i` of an object at `depth`, as [`Reader::entry`].
    #[inline(always)]
    fn fast_entry(&mut self, out: &mut Vec<u8>, depth: usize, i: usize) -> Fast {
        let key = match self.next_u8()? {
            KEY_AGAIN if i < KEY_ROW => *self
                .keys
                .get(depth)
                .and_then(|row| row.get(i))
                .ok_or(Redo)?,
            STRING => {
                let key = self.next_text()?;
                if i < KEY_ROW && !self.remember(depth, i, key) {
                    return Err(Redo);
                }
                key
            }
            _ => return Err(Redo),
        };
        msgpack_str(out, key);
        self.fast_value(out, depth + 1, true)
    }

    /// Item `i` of an array of `len` at `depth`, or the run of numbers it starts, as
    /// [`Reader::array_items`]: how many items were written.
    #[inline(always)]
    fn fast_items(&mut self, out: &mut Vec<u8>, depth: usize, i: usize, len: usize) -> Fast<usize> {
        if self.tape.get(self.at) == Some(&NUMBERS) {
            let run = self.fast_run(len - i)?;
            write_numbers(out, run);
            return Ok(run.len() / 8);
        }
        self.fast_value(out, depth + 1, true)?;
        Ok(1)
    }

    /// The `f64`s of the run of numbers at the reader (of at most `left` items).
    fn fast_run(&mut self, left: usize) -> Fast<&'t [u8]> {
        self.at += 1;
        let count = self.next_u32()?;
        if count == 0 || count > left {
            return Err(Redo);
        }
        // The f64s start at the next multiple of 8.
        self.next_bytes((8 - (self.base + self.at) % 8) % 8)?;
        self.next_bytes(count.checked_mul(8).ok_or(Redo)?)
    }

    /// The root container's next entry, item, or run of numbers (`done` of its `len`
    /// written) into `encoder`: how many items.
    fn fast_root_items(
        &mut self,
        encoder: &mut Encoder,
        map: bool,
        done: usize,
        len: usize,
    ) -> Fast<usize> {
        let out = encoder.msgpack_payload().ok_or(Redo)?;
        if map {
            self.fast_entry(out, 0, done)?;
        } else if self.tape.get(self.at) == Some(&NUMBERS) {
            let run = self.fast_run(len - done)?;
            for part in run.chunks(8 * RUN_STEP) {
                write_numbers(encoder.msgpack_payload().ok_or(Redo)?, part);
                encoder.wrote();
            }
            return Ok(run.len() / 8);
        } else {
            self.fast_value(out, 1, true)?;
        }
        encoder.wrote();
        Ok(1)
    }
}

/// A JS `number` (its `f64`, little-endian) by core's rule, as the encoder writes it.
#[inline(always)]
fn write_number(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(bytes);
    match number(f64::from_le_bytes(raw)) {
        Number::Int(i) if i < 0 => write_negative(out, i),
        Number::Int(i) => write_unsigned(out, i as u64),
        Number::Float(f) => write_float(out, f),
    }
}

/// A run's `f64`s (a multiple of 8 bytes), each as [`write_number`].
fn write_numbers(out: &mut Vec<u8>, run: &[u8]) {
    out.reserve(run.len() / 8 * 9);
    for bytes in run.chunks_exact(8) {
        write_number(out, bytes);
    }
}

/// A bigint's decimal text as the model's integer: `Ok` an `i64`, `Err` a `u64` above
/// `i64::MAX`; `None` beyond −2⁶³ … 2⁶⁴−1.
fn bigint(digits: &[u8]) -> Option<Result<i64, u64>> {
    match digits.split_first() {
        Some((b'-', magnitude)) => {
            let magnitude = parse_magnitude(magnitude)?;
            if magnitude <= 1 << 63 {
                // -2^63 is the smallest integer of the model.
                Some(Ok((magnitude as i64).wrapping_neg()))
            } else {
                None
            }
        }
        _ => {
            let value = parse_magnitude(digits)?;
            Some(i64::try_from(value).map_err(|_| value))
        }
    }
}

/// Decimal digits as a `u64`; `None` when empty, not digits, or over `u64::MAX`.
fn parse_magnitude(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        if !d.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// The refusal for a string with lone surrogates (as the Python binding words it).
fn lone_surrogates(what: &str, text: &str) -> String {
    const SHOWN: usize = 60;
    let mut shown: String = text.chars().take(SHOWN).collect();
    if text.chars().nth(SHOWN).is_some() {
        shown.push('…');
    }
    format!(
        "polycache cannot store the {what} '{shown}': it holds lone surrogates (shown as \
         U+FFFD), which have no UTF-8 form"
    )
}

/// Core's [`Encoder`] as a [`Build`]: what a tape writes goes straight into the payload.
struct Encoding<'e>(&'e mut Encoder);

impl Build for Encoding<'_> {
    type Value = ();
    type Array = ();
    type Map = ();
    type Error = Error;

    #[inline]
    fn nil(&mut self) -> Result<(), Error> {
        self.0.nil()
    }
    #[inline]
    fn bool(&mut self, v: bool) -> Result<(), Error> {
        self.0.bool(v)
    }
    #[inline]
    fn int(&mut self, v: i64) -> Result<(), Error> {
        self.0.int(v)
    }
    #[inline]
    fn uint(&mut self, v: u64) -> Result<(), Error> {
        self.0.uint(v)
    }
    #[inline]
    fn float(&mut self, v: f64) -> Result<(), Error> {
        self.0.float(v)
    }
    #[inline]
    fn str(&mut self, v: &str) -> Result<(), Error> {
        self.0.str(v)
    }
    fn bytes(&mut self, v: &[u8]) -> Result<(), Error> {
        self.0.bytes(v)
    }
    #[inline]
    fn array(&mut self, len: usize) -> Result<(), Error> {
        self.0.begin_array(len)
    }
    #[inline]
    fn push(&mut self, _: &mut (), _: ()) -> Result<(), Error> {
        Ok(())
    }
    #[inline]
    fn end_array(&mut self, _: ()) -> Result<(), Error> {
        self.0.end_array()
    }
    #[inline]
    fn map(&mut self, len: usize) -> Result<(), Error> {
        self.0.begin_map(len)
    }
    #[inline]
    fn key(&mut self, _: &mut (), key: &str) -> Result<(), Error> {
        self.0.key(key)
    }
    #[inline]
    fn value(&mut self, _: &mut (), _: ()) -> Result<(), Error> {
        Ok(())
    }
    #[inline]
    fn end_map(&mut self, _: ()) -> Result<(), Error> {
        self.0.end_map()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use proptest::prelude::{any, prop_oneof, Just, Strategy};
    use proptest::{prop_assert, prop_assert_eq};

    use super::*;
    use crate::codec::{msgpack, Codec, Tree, Value};

    /// A tape writer for tests (what the JS walk writes).
    #[derive(Default)]
    pub(in super::super) struct Tape(pub(in super::super) Vec<u8>);

    impl Tape {
        pub(in super::super) fn tag(mut self, tag: u8) -> Self {
            self.0.push(tag);
            self
        }
        pub(in super::super) fn len(mut self, n: usize) -> Self {
            self.0.extend_from_slice(&(n as u32).to_le_bytes());
            self
        }
        pub(in super::super) fn num(self, n: f64) -> Self {
            let mut t = self.tag(NUMBER);
            t.0.extend_from_slice(&n.to_le_bytes());
            t
        }
        pub(in super::super) fn text(self, tag: u8, s: &str) -> Self {
            let mut t = self.tag(tag).len(s.len());
            t.0.extend_from_slice(s.as_bytes());
            t
        }
        pub(in super::super) fn str(self, s: &str) -> Self {
            self.text(STRING, s)
        }
        /// A run of numbers ([`NUMBERS`]), aligned as the walk aligns it.
        pub(in super::super) fn numbers(self, run: &[f64]) -> Self {
            let mut t = self.tag(NUMBERS).len(run.len());
            while t.0.len() % 8 != 0 {
                t.0.push(0);
            }
            for n in run {
                t.0.extend_from_slice(&n.to_le_bytes());
            }
            t
        }
    }

    fn value(tape: &Tape) -> Result<Value, String> {
        match read_tape(&tape.0, 1000, Undefined::Nested, &mut Tree) {
            Ok(v) => Ok(v),
            Err(TapeError::Refused(m)) => Err(m),
            Err(TapeError::Malformed(e)) => Err(format!("malformed: {e}")),
            Err(TapeError::Host(never)) => match never {},
        }
    }

    #[test]
    fn a_tape_becomes_the_payload_core_writes_for_the_same_value() {
        let tape = Tape::default()
            .tag(MAP)
            .len(3)
            .str("z")
            .num(1.0)
            .str("a")
            .tag(ARRAY)
            .len(4)
            .num(-0.0)
            .num(0.5)
            .tag(UNDEFINED)
            .tag(TRUE)
            .str("b")
            .text(BIGINT, "-9223372036854775808");
        let expected: Value = [
            ("z", Value::from(1)),
            (
                "a",
                Value::Array(vec![
                    Value::Int(0),
                    Value::Float(0.5),
                    Value::Nil,
                    Value::Bool(true),
                ]),
            ),
            ("b", Value::Int(i64::MIN)),
        ]
        .into_iter()
        .collect();
        assert_eq!(value(&tape).unwrap(), expected);
        let mut encoder = Encoder::new(Codec::Msgpack);
        encode_tape(&tape.0, 1000, &mut encoder).unwrap();
        assert_eq!(
            encoder.finish().unwrap().payload.into_vec(),
            msgpack::encode(&expected)
        );
    }

    #[test]
    fn a_run_of_numbers_is_aligned_and_read_by_the_number_rule() {
        // At 0: ARRAY (5 bytes); at 5: NUMBERS, its count (to 10), padding to 16, 3 f64s.
        let tape = Tape::default()
            .tag(ARRAY)
            .len(4)
            .numbers(&[1.0, -0.0, 0.5])
            .str("x");
        let expected = Value::Array(vec![
            Value::Int(1),
            Value::Int(0),
            Value::Float(0.5),
            Value::from("x"),
        ]);
        assert_eq!(value(&tape).unwrap(), expected);
        let mut encoder = Encoder::new(Codec::Msgpack);
        encode_tape(&tape.0, 1000, &mut encoder).unwrap();
        assert_eq!(
            encoder.finish().unwrap().payload.into_vec(),
            msgpack::encode(&expected)
        );
        // A run longer than what is left of its array, or outside an array, is malformed.
        let mut long = Tape::default().tag(ARRAY).len(1).tag(NUMBERS).len(2);
        long.0.extend_from_slice(&[0; 22]);
        assert!(value(&long).unwrap_err().starts_with("malformed"));
        assert!(encoded(&long.0, 1000).unwrap_err().contains("malformed"));
        assert!(value(&Tape::default().tag(NUMBERS).len(0))
            .unwrap_err()
            .starts_with("malformed"));
    }

    #[test]
    fn a_key_again_is_the_last_key_at_its_position_and_depth() {
        // [{"id": 1, "n": {"id": 2}}, {"id": 3, "x": {"id": 4}}]: the second object's first
        // key is the first's (depth 1, position 0); its inner object's is the inner one's
        // (depth 2, position 0); "x" replaces "n" at depth 1, position 1.
        let inner = |t: Tape, id: f64| t.tag(MAP).len(1).tag(KEY_AGAIN).num(id);
        let tape = Tape::default()
            .tag(ARRAY)
            .len(2)
            .tag(MAP)
            .len(2)
            .str("id")
            .num(1.0)
            .str("n")
            .tag(MAP)
            .len(1)
            .str("id")
            .num(2.0);
        let tape = inner(tape.tag(MAP).len(2).tag(KEY_AGAIN).num(3.0).str("x"), 4.0);
        let record = |id: i64, name: &str, inner: i64| -> Value {
            let nested: Value = [("id", Value::from(inner))].into_iter().collect();
            [("id", Value::from(id)), (name, nested)]
                .into_iter()
                .collect()
        };
        let expected = Value::Array(vec![record(1, "n", 2), record(3, "x", 4)]);
        assert_eq!(value(&tape).unwrap(), expected);
        let mut encoder = Encoder::new(Codec::Msgpack);
        encode_tape(&tape.0, 1000, &mut encoder).unwrap();
        assert_eq!(
            encoder.finish().unwrap().payload.into_vec(),
            msgpack::encode(&expected)
        );
        // With no key written before at its position and depth, it is malformed.
        for tape in [
            Tape::default().tag(MAP).len(1).tag(KEY_AGAIN).num(1.0),
            Tape::default()
                .tag(MAP)
                .len(2)
                .str("a")
                .num(1.0)
                .tag(KEY_AGAIN)
                .num(2.0),
        ] {
            assert!(value(&tape).unwrap_err().starts_with("malformed"));
        }
    }

    #[test]
    fn bigints_are_the_models_integers_or_refused() {
        let big = |s: &str| value(&Tape::default().text(BIGINT, s));
        assert_eq!(big("5"), Ok(Value::Int(5)));
        assert_eq!(big("18446744073709551615"), Ok(Value::UInt(u64::MAX)));
        assert_eq!(big("-9223372036854775808"), Ok(Value::Int(i64::MIN)));
        assert_eq!(big("-0"), Ok(Value::Int(0)));
        for (wide, why) in [
            ("18446744073709551616", "wider than 64 bits"),
            ("-18446744073709551616", "wider than 64 bits"),
            ("-9223372036854775809", "below -2^63"),
            ("-18446744073709551615", "below -2^63"),
        ] {
            assert!(big(wide).unwrap_err().contains(why), "{wide}");
        }
    }

    #[test]
    fn refusals_say_what_and_where() {
        let lone = value(
            &Tape::default()
                .tag(MAP)
                .len(1)
                .text(STRING_LONE, "a\u{FFFD}"),
        );
        assert!(lone.unwrap_err().contains("object key 'a\u{FFFD}'"));
        let lone = value(&Tape::default().text(STRING_LONE, "\u{FFFD}"));
        assert!(lone.unwrap_err().contains("the string"));
        let hole = value(&Tape::default().tag(ARRAY).len(3).num(1.0).tag(HOLE));
        assert_eq!(
            hole.unwrap_err(),
            "a sparse array cannot be cached (index 1 of 3 is a hole)"
        );
        let long = value(&Tape::default().tag(ARRAY).len(1001));
        assert!(long.unwrap_err().contains("1001 items"));
        let wide = value(&Tape::default().tag(MAP).len(1001));
        assert!(wide.unwrap_err().contains("1001 properties"));
        assert!(value(&Tape::default().tag(UNDEFINED))
            .unwrap_err()
            .contains("undefined"));
        let top = read_tape(&[UNDEFINED], 10, Undefined::Anywhere, &mut Tree);
        assert_eq!(top.ok(), Some(Value::Nil));
        for tag in [
            TYPED_OTHER,
            NOT_PLAIN,
            FUNCTION,
            SYMBOL,
            CYCLE,
            DEEP,
            UNKNOWN,
        ] {
            let at_the_end = Tape::default().tag(ARRAY).len(2).num(1.0).tag(tag);
            let refused = value(&at_the_end).unwrap_err();
            assert!(refused.contains("cached") && !refused.starts_with("malformed"));
        }
        for bad in [vec![ARRAY, 1, 0], vec![99], vec![NULL, NULL], vec![]] {
            assert!(value(&Tape(bad)).unwrap_err().starts_with("malformed"));
        }
    }

    /// A JS value as the walk sees it.
    #[derive(Debug, Clone)]
    enum Js {
        Null,
        Undefined,
        Bool(bool),
        Number(f64),
        BigInt(String),
        Str(String),
        /// A string with lone surrogates (its U+FFFD form).
        Lone(String),
        Bytes(Vec<u8>),
        Array(Vec<Js>),
        Object(Vec<(String, Js)>),
    }

    fn js() -> impl Strategy<Value = Js> {
        let number = prop_oneof![
            any::<f64>(),
            (-70_000i64..70_000).prop_map(|i| i as f64),
            Just(9_007_199_254_740_993.0),
            Just(-0.0),
        ];
        let leaf = prop_oneof![
            Just(Js::Null),
            Just(Js::Undefined),
            any::<bool>().prop_map(Js::Bool),
            number.clone().prop_map(Js::Number),
            number.clone().prop_map(Js::Number),
            "-?[0-9]{1,21}".prop_map(Js::BigInt),
            ".{0,40}".prop_map(Js::Str),
            "[a-z]{0,3}".prop_map(Js::Str),
            Just(Js::Lone("a\u{FFFD}".into())),
            proptest::collection::vec(any::<u8>(), 0..300).prop_map(Js::Bytes),
        ];
        leaf.prop_recursive(4, 96, 12, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..12).prop_map(Js::Array),
                // Keys from a few, so that objects repeat them (KEY_AGAIN).
                proptest::collection::vec(("[a-c]{1,2}|.{0,6}", inner), 0..6).prop_map(Js::Object),
            ]
        })
    }

    /// The tape the walk writes for `v`: runs of numbers in arrays, repeated keys as
    /// [`KEY_AGAIN`].
    fn write(t: &mut Vec<u8>, v: &Js, depth: usize, rows: &mut Vec<Vec<String>>) {
        let head = |t: &mut Vec<u8>, tag: u8, n: usize| {
            t.push(tag);
            t.extend_from_slice(&(n as u32).to_le_bytes());
        };
        match v {
            Js::Null => t.push(NULL),
            Js::Undefined => t.push(UNDEFINED),
            Js::Bool(b) => t.push(if *b { TRUE } else { FALSE }),
            Js::Number(n) => {
                t.push(NUMBER);
                t.extend_from_slice(&n.to_le_bytes());
            }
            Js::BigInt(d) => {
                head(t, BIGINT, d.len());
                t.extend_from_slice(d.as_bytes());
            }
            Js::Str(s) | Js::Lone(s) => {
                head(
                    t,
                    if matches!(v, Js::Str(_)) {
                        STRING
                    } else {
                        STRING_LONE
                    },
                    s.len(),
                );
                t.extend_from_slice(s.as_bytes());
            }
            Js::Bytes(b) => {
                head(t, BYTES, b.len());
                t.extend_from_slice(b);
            }
            Js::Array(items) => {
                head(t, ARRAY, items.len());
                let mut i = 0;
                while i < items.len() {
                    let run = items[i..]
                        .iter()
                        .take_while(|x| matches!(x, Js::Number(_)))
                        .count();
                    if run == 0 {
                        write(t, &items[i], depth + 1, rows);
                        i += 1;
                        continue;
                    }
                    head(t, NUMBERS, run);
                    while t.len() % 8 != 0 {
                        t.push(0);
                    }
                    for item in &items[i..i + run] {
                        if let Js::Number(n) = item {
                            t.extend_from_slice(&n.to_le_bytes());
                        }
                    }
                    i += run;
                }
            }
            Js::Object(entries) => {
                head(t, MAP, entries.len());
                for (i, (k, item)) in entries.iter().enumerate() {
                    if rows.len() <= depth {
                        rows.resize_with(depth + 1, Vec::new);
                    }
                    let row = &mut rows[depth];
                    if i < KEY_ROW && row.get(i) == Some(k) {
                        t.push(KEY_AGAIN);
                    } else {
                        if i < KEY_ROW {
                            if i < row.len() {
                                row[i] = k.clone();
                            } else {
                                row.push(k.clone());
                            }
                        }
                        head(t, STRING, k.len());
                        t.extend_from_slice(k.as_bytes());
                    }
                    write(t, item, depth + 1, rows);
                }
            }
        }
    }

    /// The general reader's payload (or refusal) for `tape`.
    fn general(tape: &[u8], max_items: usize) -> Result<Vec<u8>, String> {
        let mut encoder = Encoder::new(Codec::Msgpack);
        read_tape(
            tape,
            max_items,
            Undefined::Nested,
            &mut Encoding(&mut encoder),
        )
        .map_err(|e| format!("{e:?}"))?;
        Ok(encoder.finish().unwrap().payload.into_vec())
    }

    fn encoded(tape: &[u8], max_items: usize) -> Result<Vec<u8>, String> {
        let mut encoder = Encoder::new(Codec::Msgpack);
        encode_tape(tape, max_items, &mut encoder).map_err(|e| format!("{e:?}"))?;
        Ok(encoder.finish().unwrap().payload.into_vec())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2048, ..Default::default() })]

        /// The MessagePack path writes exactly what the general reader writes, and refuses
        /// (through it) exactly what it refuses, for tapes the walk writes and for tapes
        /// with bytes changed.
        #[test]
        fn the_msgpack_path_writes_what_the_general_reader_writes(
            root in js(),
            changes in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 0..3),
            max_items in prop_oneof![Just(1000usize), 0usize..8],
        ) {
            let mut tape = Vec::new();
            write(&mut tape, &root, 0, &mut Vec::new());
            let expected = general(&tape, max_items);
            prop_assert_eq!(encoded(&tape, max_items), expected.clone());
            if expected.is_ok() && max_items == 1000 {
                let mut encoder = Encoder::new(Codec::Msgpack);
                prop_assert!(encode_msgpack(&tape, max_items, &mut encoder).is_ok());
            }
            for (at, byte) in changes {
                if !tape.is_empty() {
                    let at = at.index(tape.len());
                    tape[at] = byte;
                }
            }
            prop_assert_eq!(encoded(&tape, max_items), general(&tape, max_items));
        }
    }

    #[test]
    fn nesting_stops_at_the_decoders_limit_whatever_the_tape_says() {
        let nested = |depth: usize| {
            let mut t = Tape::default();
            for _ in 0..depth {
                t = t.tag(ARRAY).len(1);
            }
            t.num(1.0)
        };
        assert!(value(&nested(MAX_DEPTH)).is_ok());
        assert!(value(&nested(MAX_DEPTH + 1))
            .unwrap_err()
            .contains("nested deeper than 256"));
    }
}
