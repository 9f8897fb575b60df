//! Encoding straight from host values: a binding walks its runtime's object and tells an
//! [`Encoder`] what it finds, and the encoder writes the payload in one pass with the rules
//! of docs/FORMAT.md §2 (shortest integers, float64, map entries in the order given, JSON's
//! layout, the nesting limit). Core's own [`Value`] is written the same way
//! ([`Encoder::value`]), so there is one writer per codec.

use super::lz4::{Ahead, CHUNK};
use super::msgpack::MAX_DEPTH;
use super::{Codec, Framed, Value};
use crate::error::{Error, Result};

/// The payload length from which an encoder hands its complete pieces to a helper
/// ([`Encoder::compress_ahead`]): one piece and a half. The helper costs the caller a spawn
/// (about 35 µs here) and takes a while to start; handed at one piece, a payload a little
/// longer measured slower than compressing after the walk (76 KB of records payload: 371
/// µs a Python `set` against 331), since the walk ended, and the last piece was
/// compressed, before the helper had the first. Measured gains from about 120 KB of
/// payload (Python `set`s of records, ahead against after, best of 11–15: 158 KB 579 µs
/// against 682, 630 KB 1,852 against 2,209).
pub const AHEAD_FROM: usize = CHUNK + CHUNK / 2;

/// What is open at one nesting level (JSON needs to know where commas go).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    /// An array with no item yet.
    ArrayEmpty,
    /// An array with items.
    Array,
    /// A map (its keys write their own commas).
    Map { empty: bool },
}

/// Writes one value's payload. Calls mirror the value: a scalar, or `begin_array(n)`, `n`
/// items, `end_array()`, or `begin_map(n)`, `n` times a `key` then its value, `end_map()`.
/// Containers give their exact length up front (MessagePack writes it first).
#[derive(Debug)]
pub struct Encoder {
    codec: Codec,
    /// Raw mode: no codec, the one value must be bytes or a string (stored as its UTF-8).
    raw: bool,
    out: Vec<u8>,
    /// Bytes of `out` in front of the payload, left for headers (see [`Framed`]).
    room: usize,
    open: Vec<Open>,
    /// Whether a top-level value has started.
    started: bool,
    /// Raw mode: the value is a string.
    text: bool,
    /// The payload length from which its pieces are compressed ahead (`usize::MAX`: never;
    /// see [`Encoder::compress_ahead`]).
    ahead_from: usize,
    /// The length of `out` at which the next complete piece is handed to `ahead`.
    hand_at: usize,
    /// The pieces handed so far.
    ahead: Option<Ahead>,
}

/// Where an [`Encoder`] stood, to go back to with [`Encoder::rewind`]: a binding that
/// starts a value on a fast path and meets something only its general path handles
/// writes the value again from here.
#[derive(Debug, Clone, Copy)]
pub struct Checkpoint {
    len: usize,
    depth: usize,
    top: Option<Open>,
    started: bool,
    text: bool,
}

/// A finished payload and how it was written.
#[derive(Debug)]
pub struct Encoded {
    /// The codec the payload is written in.
    pub codec: Codec,
    /// Raw mode: stored as is, without an envelope.
    pub raw: bool,
    /// The codec output (or the raw bytes), with the room the encoder left in front;
    /// read-only ([`Encoded::payload`]), since pieces of it may be compressed already.
    pub(crate) payload: Framed,
    /// Raw mode: the value was a string (stored as its UTF-8).
    pub text: bool,
    /// Its first pieces, being compressed already (see [`Encoder::compress_ahead`]).
    pub(crate) ahead: Option<Ahead>,
}

impl Encoded {
    /// The codec output (or the raw bytes).
    pub fn payload(&self) -> &Framed {
        &self.payload
    }

    /// The payload, given up (what was compressed ahead of it is dropped).
    pub fn into_payload(self) -> Framed {
        self.payload
    }

    /// The value written, as core's [`Value`] (for a write-through cache's writer).
    ///
    /// # Errors
    /// A codec error when the payload is not valid for its codec.
    pub fn to_value(&self) -> Result<Value> {
        if self.raw {
            let payload = self.payload.bytes();
            return Ok(match (self.text, std::str::from_utf8(payload)) {
                (true, Ok(text)) => Value::Str(text.to_owned()),
                _ => Value::Bytes(payload.to_vec()),
            });
        }
        self.codec
            .decode_with(self.payload.bytes(), &super::DecodeLimits::UNLIMITED)
    }
}

impl Encoder {
    /// An encoder for `codec`.
    pub fn new(codec: Codec) -> Self {
        Encoder {
            codec,
            raw: false,
            // A cache's headroom (`with_room`) and a small payload in one allocation.
            out: Vec::with_capacity(super::HEADROOM + 256),
            room: 0,
            open: Vec::new(),
            started: false,
            text: false,
            ahead_from: usize::MAX,
            hand_at: usize::MAX,
            ahead: None,
        }
    }

    /// An encoder for a raw-mode cache: bytes or a string, stored without an envelope.
    pub fn raw() -> Self {
        Encoder {
            raw: true,
            ..Encoder::new(Codec::Bytes)
        }
    }

    /// Leaves `room` bytes in front of the payload (before anything is written), where the
    /// envelope header and a store's command head are written later without moving it.
    pub fn with_room(mut self, room: usize) -> Self {
        debug_assert!(
            self.out.len() == self.room,
            "with_room after a value was written"
        );
        self.out.truncate(self.room);
        self.out.resize(room, 0);
        self.out.reserve(256);
        self.room = room;
        self.hand_at = room.saturating_add(self.ahead_from);
        self
    }

    /// Compresses the payload's LZ4 pieces (docs/FORMAT.md §1) on a helper thread while the
    /// value is still being written, once the payload holds [`AHEAD_FROM`] bytes and at
    /// least `threshold`: a large value's compression then mostly overlaps its writing,
    /// instead of following it. For a payload stored LZ4-compressed; the bytes stored are
    /// the same either way.
    pub fn compress_ahead(mut self, threshold: usize) -> Self {
        self.ahead_from = threshold.max(AHEAD_FROM);
        self.hand_at = self.room.saturating_add(self.ahead_from);
        self
    }

    /// How many pieces were handed to the helper (none without one).
    #[cfg(test)]
    pub(crate) fn pieces_handed(&self) -> usize {
        self.ahead.as_ref().map_or(0, Ahead::handed)
    }

    /// Makes room for at least `additional` more payload bytes (a binding that knows the
    /// size of what it is about to write grows the payload once).
    pub fn reserve(&mut self, additional: usize) {
        self.out.reserve(additional);
    }

    /// The payload, once exactly one complete value was written.
    ///
    /// # Errors
    /// A codec error when no value or an unfinished one was written.
    pub fn finish(self) -> Result<Encoded> {
        if !self.started || !self.open.is_empty() {
            return Err(Error::codec("encoder: the value is incomplete"));
        }
        Ok(Encoded {
            codec: self.codec,
            raw: self.raw,
            payload: Framed::from_parts(self.out, self.room),
            text: self.text,
            ahead: self.ahead,
        })
    }

    /// The payload, for a reader that writes MessagePack values into it with this module's
    /// writers ([`super::js::tape`]), when this encoder writes MessagePack; call
    /// [`Encoder::wrote`] after each value written there.
    pub(super) fn msgpack_payload(&mut self) -> Option<&mut Vec<u8>> {
        (self.codec == Codec::Msgpack && !self.raw).then_some(&mut self.out)
    }

    /// After a value written into [`Encoder::msgpack_payload`], as [`Encoder::start`] before
    /// one: a top-level value has started, and complete pieces go to the compressing helper.
    #[inline]
    pub(super) fn wrote(&mut self) {
        self.started = true;
        if self.out.len() >= self.hand_at {
            self.hand_pieces();
        }
    }

    /// Where the encoder stands now.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            len: self.out.len(),
            depth: self.open.len(),
            top: self.open.last().copied(),
            started: self.started,
            text: self.text,
        }
    }

    /// Forgets everything written since `at` (a checkpoint of this encoder, taken while
    /// at least the containers open now were open).
    pub fn rewind(&mut self, at: Checkpoint) {
        let handed_end = self.room + self.ahead.as_ref().map_or(0, Ahead::handed) * CHUNK;
        if at.len < handed_end {
            // Pieces handed are being rewritten: start over from the first.
            self.ahead = None;
            self.hand_at = self.room.saturating_add(self.ahead_from);
        }
        self.out.truncate(at.len);
        self.open.truncate(at.depth);
        if let (Some(top), Some(saved)) = (self.open.last_mut(), at.top) {
            *top = saved;
        }
        self.started = at.started;
        self.text = at.text;
    }

    /// Writes core's own value.
    ///
    /// # Errors
    /// As the calls it makes.
    pub fn value(&mut self, value: &Value) -> Result<()> {
        match value {
            Value::Nil => self.nil(),
            Value::Bool(b) => self.bool(*b),
            Value::Int(i) => self.int(*i),
            Value::UInt(u) => self.uint(*u),
            Value::Float(f) => self.float(*f),
            Value::Str(s) => self.str(s),
            Value::Bytes(b) => self.bytes(b),
            Value::Array(items) => {
                self.begin_array(items.len())?;
                for item in items {
                    self.value(item)?;
                }
                self.end_array()
            }
            Value::Map(map) => {
                self.begin_map(map.len())?;
                for (k, v) in map {
                    self.key(k)?;
                    self.value(v)?;
                }
                self.end_map()
            }
        }
    }

    /// Before every value: only the payload codecs take anything but one bytes value, and a
    /// JSON array item after the first needs its comma.
    #[inline]
    fn start(&mut self, kind: &'static str) -> Result<()> {
        if self.out.len() >= self.hand_at {
            self.hand_pieces();
        }
        // MessagePack, the default, first and small: this is inlined into every value.
        if self.codec == Codec::Msgpack {
            self.started = true;
            return Ok(());
        }
        self.start_other(kind)
    }

    /// Hands the payload's complete pieces not handed yet to the helper (started now, the
    /// first time).
    #[cold]
    #[inline(never)]
    fn hand_pieces(&mut self) {
        let payload = &self.out[self.room..];
        let complete = payload.len() / CHUNK;
        let ahead = match &mut self.ahead {
            Some(ahead) => ahead,
            // Payload that does not compress (floats, say) will likely be stored as it is:
            // the sample decides when sealing, this one only whether to work ahead.
            None if !super::sample_shrinks(&payload[..complete * CHUNK]) => {
                self.hand_at = usize::MAX;
                return;
            }
            None => match Ahead::start() {
                Some(ahead) => self.ahead.insert(ahead),
                None => {
                    // No threads (a WASI component): compressed when sealed.
                    self.hand_at = usize::MAX;
                    return;
                }
            },
        };
        for index in ahead.handed()..complete {
            ahead.hand(index, &payload[index * CHUNK..(index + 1) * CHUNK]);
        }
        self.hand_at = self.room + (complete + 1) * CHUNK;
    }

    #[inline(never)]
    fn start_other(&mut self, kind: &'static str) -> Result<()> {
        if self.codec != Codec::Bytes {
            if self.codec == Codec::Json {
                if let Some(top @ (Open::Array | Open::ArrayEmpty)) = self.open.last_mut() {
                    if *top == Open::Array {
                        self.out.push(b',');
                    }
                    *top = Open::Array;
                }
            }
            self.started = true;
            return Ok(());
        }
        let allowed = kind == "bytes" || (self.raw && kind == "str");
        if !allowed || self.started {
            return Err(Error::codec(if self.raw {
                format!("raw mode stores bytes or strings, not {kind}")
            } else {
                format!("the bytes codec stores only bytes, not {kind}")
            }));
        }
        self.started = true;
        self.text = kind == "str";
        Ok(())
    }

    /// Nil.
    ///
    /// # Errors
    /// A codec error when the codec cannot hold it.
    #[inline]
    pub fn nil(&mut self) -> Result<()> {
        self.start("nil")?;
        match self.codec {
            Codec::Json => self.out.extend_from_slice(b"null"),
            _ => self.out.push(0xc0),
        }
        Ok(())
    }

    /// A boolean.
    ///
    /// # Errors
    /// As [`Encoder::nil`].
    #[inline]
    pub fn bool(&mut self, v: bool) -> Result<()> {
        self.start("bool")?;
        match self.codec {
            Codec::Json => self
                .out
                .extend_from_slice(if v { b"true" } else { b"false" }),
            _ => self.out.push(if v { 0xc3 } else { 0xc2 }),
        }
        Ok(())
    }

    /// An integer.
    ///
    /// # Errors
    /// As [`Encoder::nil`].
    #[inline]
    pub fn int(&mut self, v: i64) -> Result<()> {
        if v >= 0 {
            return self.uint(v as u64);
        }
        self.start("int")?;
        match self.codec {
            Codec::Json => self
                .out
                .extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
            _ => write_negative(&mut self.out, v),
        }
        Ok(())
    }

    /// A non-negative integer.
    ///
    /// # Errors
    /// As [`Encoder::nil`].
    #[inline]
    pub fn uint(&mut self, v: u64) -> Result<()> {
        self.start("int")?;
        match self.codec {
            Codec::Json => self
                .out
                .extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
            _ => write_unsigned(&mut self.out, v),
        }
        Ok(())
    }

    /// A float.
    ///
    /// # Errors
    /// A codec error for NaN or infinities in JSON, or when the codec cannot hold it.
    #[inline]
    pub fn float(&mut self, v: f64) -> Result<()> {
        self.start("float")?;
        if self.codec == Codec::Json {
            return json_float(&mut self.out, v);
        }
        write_float(&mut self.out, v);
        Ok(())
    }

    /// A string.
    ///
    /// # Errors
    /// As [`Encoder::nil`].
    #[inline]
    pub fn str(&mut self, v: &str) -> Result<()> {
        self.start("str")?;
        match self.codec {
            Codec::Json => {
                json_str(&mut self.out, v);
            }
            Codec::Msgpack => msgpack_str(&mut self.out, v.as_bytes()),
            Codec::Bytes => self.out.extend_from_slice(v.as_bytes()),
        }
        Ok(())
    }

    /// Bytes.
    ///
    /// # Errors
    /// A codec error in JSON, which cannot hold bytes.
    pub fn bytes(&mut self, v: &[u8]) -> Result<()> {
        self.start("bytes")?;
        match self.codec {
            Codec::Json => {
                return Err(Error::codec(
                    "json: bytes cannot be encoded as JSON; use the msgpack or bytes codec",
                ))
            }
            Codec::Msgpack => msgpack_bin(&mut self.out, v),
            Codec::Bytes => self.out.extend_from_slice(v),
        }
        Ok(())
    }

    /// Refuses a container whose items would be deeper than [`MAX_DEPTH`]: what no
    /// reader accepts is not written either.
    fn nest(&self, len: usize) -> Result<()> {
        if len > 0 && self.open.len() >= MAX_DEPTH {
            return Err(Error::codec(format!(
                "the value nests deeper than {MAX_DEPTH} levels (is it cyclic?)"
            )));
        }
        Ok(())
    }

    /// Opens an array of exactly `len` items.
    ///
    /// # Errors
    /// A codec error when the items would nest too deep or the codec cannot hold arrays.
    #[inline]
    pub fn begin_array(&mut self, len: usize) -> Result<()> {
        self.nest(len)?;
        self.start("array")?;
        match self.codec {
            Codec::Json => self.out.push(b'['),
            _ => container_len(&mut self.out, len, 0x90, 0xdc, 0xdd),
        }
        self.open.push(Open::ArrayEmpty);
        Ok(())
    }

    /// Closes the innermost array.
    ///
    /// # Errors
    /// A codec error when no array is open.
    #[inline]
    pub fn end_array(&mut self) -> Result<()> {
        match self.open.pop() {
            Some(Open::Array | Open::ArrayEmpty) => {}
            _ => return Err(Error::codec("encoder: end_array without an open array")),
        }
        if self.codec == Codec::Json {
            self.out.push(b']');
        }
        Ok(())
    }

    /// Opens a map of exactly `len` entries.
    ///
    /// # Errors
    /// As [`Encoder::begin_array`].
    #[inline]
    pub fn begin_map(&mut self, len: usize) -> Result<()> {
        self.nest(len)?;
        self.start("map")?;
        match self.codec {
            Codec::Json => self.out.push(b'{'),
            _ => container_len(&mut self.out, len, 0x80, 0xde, 0xdf),
        }
        self.open.push(Open::Map { empty: true });
        Ok(())
    }

    /// The next entry's key; its value follows.
    ///
    /// # Errors
    /// A codec error when no map is open.
    #[inline]
    pub fn key(&mut self, key: &str) -> Result<()> {
        let Some(Open::Map { empty }) = self.open.last_mut() else {
            return Err(Error::codec("encoder: a key outside a map"));
        };
        if self.codec == Codec::Json {
            if !*empty {
                self.out.push(b',');
            }
            *empty = false;
            json_str(&mut self.out, key);
            self.out.push(b':');
        } else {
            msgpack_str(&mut self.out, key.as_bytes());
        }
        Ok(())
    }

    /// Closes the innermost map.
    ///
    /// # Errors
    /// A codec error when no map is open.
    #[inline]
    pub fn end_map(&mut self) -> Result<()> {
        match self.open.pop() {
            Some(Open::Map { .. }) => {}
            _ => return Err(Error::codec("encoder: end_map without an open map")),
        }
        if self.codec == Codec::Json {
            self.out.push(b'}');
        }
        Ok(())
    }
}

#[inline(never)]
pub(super) fn json_float(out: &mut Vec<u8>, v: f64) -> Result<()> {
    if !v.is_finite() {
        return Err(Error::codec(format!("json: cannot encode the float {v}")));
    }
    // ryu's layout: serde_json's float layout changed between releases (1.0.154 switched
    // to `1e+16`), and these bytes are a cross-language contract.
    if !short_decimal(out, v) {
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    }
    Ok(())
}

/// Writes `v` as ryu does when its shortest form has at most four decimals and its
/// magnitude is in `[0.001, 1e9)` (prices, scores, measures: most floats people cache);
/// otherwise writes nothing and returns false. About twice as fast as ryu there.
///
/// Why it is ryu's output: the digits are the fewest decimals `k` (1 to 4) for which the
/// integer `c` nearest to `|v|·10^k` gives back `v` as `c / 10^k`. That division of two
/// exact numbers is correctly rounded, as reading the decimal text is, so the text reads
/// back as `v`; fewer decimals would have been found first (`c` ending in 0 is `c/10` at
/// `k − 1`), so it is the shortest, and in this range the two integers around `|v|·10^k`
/// are more than half a unit of `v` apart, so it is the only one that length. In this
/// range ryu prints plain decimals (`0.001`, `123.25`, `5.0`); `tests` compare the two.
#[inline]
fn short_decimal(out: &mut Vec<u8>, v: f64) -> bool {
    const SCALE: [f64; 4] = [10.0, 100.0, 1000.0, 10000.0];
    let a = v.abs();
    if !(0.001..1e9).contains(&a) {
        return false;
    }
    for (k, scale) in SCALE.iter().enumerate() {
        let below = (a * scale) as u64;
        for c in [below, below + 1] {
            if c as f64 / scale == a {
                write_decimal(out, v < 0.0, c, k + 1);
                return true;
            }
        }
    }
    false
}

/// `c / 10^decimals` in decimal, with at least one digit before the point.
fn write_decimal(out: &mut Vec<u8>, negative: bool, c: u64, decimals: usize) {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(c).as_bytes();
    if negative {
        out.push(b'-');
    }
    if digits.len() > decimals {
        let (whole, fraction) = digits.split_at(digits.len() - decimals);
        out.extend_from_slice(whole);
        out.push(b'.');
        out.extend_from_slice(fraction);
    } else {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', decimals - digits.len()));
        out.extend_from_slice(digits);
    }
}

/// A float64 (docs/FORMAT.md §2: floats are always 64-bit).
#[inline]
pub(super) fn write_float(out: &mut Vec<u8>, v: f64) {
    let mut cb = [0xcb; 9];
    cb[1..].copy_from_slice(&v.to_be_bytes());
    out.extend_from_slice(&cb);
}

pub(super) fn msgpack_bin(out: &mut Vec<u8>, v: &[u8]) {
    length_head(out, v.len(), 0xc4, 0xc5, 0xc6);
    out.extend_from_slice(v);
}

/// A MessagePack head of `n` bytes or entries with an 8-, 16- or 32-bit length (the
/// shortest; callers with a fix form write that first).
#[inline]
fn length_head(out: &mut Vec<u8>, n: usize, m8: u8, m16: u8, m32: u8) {
    if n <= 0xff {
        out.extend_from_slice(&[m8, n as u8]);
    } else if n <= 0xffff {
        out.push(m16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(m32);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

#[inline(always)]
pub(super) fn write_unsigned(out: &mut Vec<u8>, v: u64) {
    if v <= 0x7f {
        out.push(v as u8);
    } else if v <= 0xff {
        out.extend_from_slice(&[0xcc, v as u8]);
    } else if v <= 0xffff {
        out.push(0xcd);
        out.extend_from_slice(&(v as u16).to_be_bytes());
    } else if v <= 0xffff_ffff {
        out.push(0xce);
        out.extend_from_slice(&(v as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

#[inline(always)]
pub(super) fn write_negative(out: &mut Vec<u8>, v: i64) {
    if v >= -32 {
        out.push(v as i8 as u8);
    } else if v >= i64::from(i8::MIN) {
        out.extend_from_slice(&[0xd0, v as i8 as u8]);
    } else if v >= i64::from(i16::MIN) {
        out.push(0xd1);
        out.extend_from_slice(&(v as i16).to_be_bytes());
    } else if v >= i64::from(i32::MIN) {
        out.push(0xd2);
        out.extend_from_slice(&(v as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

// Always inlined: a call per string was about a tenth of a records `set` (measured in the
// Python walk, where it is most keys and values).
/// `s` is UTF-8: a `str`'s bytes, or bytes its caller checked.
#[inline(always)]
pub(super) fn msgpack_str(out: &mut Vec<u8>, s: &[u8]) {
    let n = s.len();
    if n < 32 {
        // Most strings and keys: 32 bytes are made room for, the marker and text written
        // there with fixed-size moves, and the rest cut off; a copy of `n` bytes would be
        // a call to memcpy (measured: about 5% of a 1 MB records `set`).
        // The room is a constant block of zeros (two vector stores; `resize` would call
        // memset: 5% of a Node records `set`), written in place: a block made on the stack
        // with these small moves and appended whole stalled each string on store
        // forwarding (a wide load of narrower stores: half of the tape reader's time).
        let at = out.len();
        out.extend_from_slice(&[0u8; 32]);
        let block = &mut out[at..at + 32];
        block[0] = 0xa0 | n as u8;
        copy_short(&mut block[1..], s);
        out.truncate(at + 1 + n);
        return;
    }
    length_head(out, n, 0xd9, 0xda, 0xdb);
    out.extend_from_slice(s);
}

/// Copies `src` (at most 31 bytes) to the start of `dst` (31 bytes) with fixed-size moves:
/// two overlapping ones cover every length within their range.
#[inline(always)]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if n >= 16 {
        dst[..16].copy_from_slice(&src[..16]);
        dst[n - 16..n].copy_from_slice(&src[n - 16..]);
    } else if n >= 8 {
        dst[..8].copy_from_slice(&src[..8]);
        dst[n - 8..n].copy_from_slice(&src[n - 8..]);
    } else if n >= 4 {
        dst[..4].copy_from_slice(&src[..4]);
        dst[n - 4..n].copy_from_slice(&src[n - 4..]);
    } else if n >= 2 {
        dst[..2].copy_from_slice(&src[..2]);
        dst[n - 2..n].copy_from_slice(&src[n - 2..]);
    } else if n == 1 {
        dst[0] = src[0];
    }
}

#[inline]
pub(super) fn container_len(out: &mut Vec<u8>, n: usize, fix: u8, m16: u8, m32: u8) {
    if n < 16 {
        out.push(fix | n as u8);
    } else if n <= 0xffff {
        out.push(m16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(m32);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// What follows a backslash for each byte JSON escapes (`u`: `\u00XX`), 0 for a byte
/// written as it is.
const JSON_ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[b'\n' as usize] = b'n';
    table[b'\r' as usize] = b'r';
    table[b'\t' as usize] = b't';
    table[0x08] = b'b';
    table[0x0c] = b'f';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Non-zero when one of the eight bytes of `word` is one JSON escapes (a control
/// character, `"` or `\`): the bit tricks for "a byte below n" and "a zero byte".
#[inline(always)]
fn needs_escape(word: u64) -> u64 {
    let control = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * u64::from(b'"'));
    let quote = quote.wrapping_sub(ONES) & !quote;
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let backslash = backslash.wrapping_sub(ONES) & !backslash;
    (control | quote | backslash) & HIGH_BITS
}

/// A JSON string as serde_json escapes it (`"` `\` and control characters; the short forms
/// `\n` `\r` `\t` `\b` `\f`, others `\u00XX`; everything else as UTF-8): the contract.
/// Returns whether the string is ASCII (what JS may then take as one-byte text).
#[inline]
pub(super) fn json_str(out: &mut Vec<u8>, s: &str) -> bool {
    let bytes = s.as_bytes();
    let n = bytes.len();
    if n < 32 {
        // Most keys and values: short, nothing to escape. Checked eight bytes at a time
        // (overlapping reads: only whether some byte needs escaping matters), then written
        // with fixed-size moves as `msgpack_str` does.
        let (any, high) = short_scan(bytes);
        if any == 0 {
            let at = out.len();
            let mut block = [0u8; 33];
            block[0] = b'"';
            copy_short(&mut block[1..32], bytes);
            block[1 + n] = b'"';
            out.extend_from_slice(&block);
            out.truncate(at + n + 2);
            return high & HIGH_BITS == 0;
        }
    }
    json_str_escaped(out, bytes)
}

/// Whether some byte of `bytes` (shorter than 32) needs escaping, and the bytes OR-ed
/// together (their high bits), read as words straight from `bytes`.
#[inline(always)]
fn short_scan(bytes: &[u8]) -> (u64, u64) {
    let n = bytes.len();
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(w)
    };
    let half = |at: usize| {
        let mut w = [0u8; 4];
        w.copy_from_slice(&bytes[at..at + 4]);
        u64::from(u32::from_le_bytes(w))
    };
    let pair = |at: usize| u64::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]));
    // Bytes not read are spaces: they need no escaping and are ASCII.
    const SPACES: u64 = ONES * 0x20;
    let mut all = SPACES;
    let mut any = 0u64;
    if n >= 8 {
        let mut at = 0;
        while at + 8 < n {
            let w = word(at);
            any |= needs_escape(w);
            all |= w;
            at += 8;
        }
        all |= word(n - 8);
        any |= needs_escape(word(n - 8));
        return (any, all);
    }
    let w = if n >= 4 {
        half(0) | half(n - 4) << 32
    } else if n >= 2 {
        (SPACES << 32) | pair(0) | pair(n - 2) << 16
    } else if n == 1 {
        (SPACES & !0xff) | u64::from(bytes[0])
    } else {
        SPACES
    };
    (needs_escape(w), w)
}

/// [`json_str`] of a string that may need escaping, byte by byte.
fn json_str_escaped(out: &mut Vec<u8>, bytes: &[u8]) -> bool {
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut high = 0u8;
    for (i, &b) in bytes.iter().enumerate() {
        high |= b;
        let escape = JSON_ESCAPE[b as usize];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        if escape == b'u' {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', escape]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
    high < 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape_as_serde_json_does() {
        for s in [
            "",
            "plain",
            "q\" b\\ s/",
            "\u{0}\u{1}\u{8}\u{c}\n\r\t\u{1f}\u{7f}",
            "日本 😀 \u{2028}",
        ] {
            let mut ours = Vec::new();
            assert_eq!(json_str(&mut ours, s), s.is_ascii());
            assert_eq!(ours, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
        // Every length around the short-string path, plain, escaped and non-ASCII.
        let text: String = ('a'..='z').chain('A'..='Z').collect();
        for n in 0..=40 {
            let mut cases = vec![
                text[..n].to_owned(),
                format!("{}é", &text[..n]),
                format!("é{}", &text[..n]),
            ];
            // An escaped byte at every position.
            for at in 0..n {
                for special in ['"', '\\', '\u{0}', '\u{1}', '\u{1f}', '\n'] {
                    let mut s = text[..n].to_owned();
                    s.replace_range(at..=at, &special.to_string());
                    cases.push(s);
                }
            }
            for s in cases {
                let mut ours = vec![b'x'];
                assert_eq!(json_str(&mut ours, &s), s.is_ascii(), "{s:?}");
                assert_eq!(ours[1..], serde_json::to_vec(&s).unwrap()[..], "{s:?}");
            }
        }
    }

    #[test]
    fn short_decimals_are_written_as_ryu_writes_them() {
        let ryu = |v: f64| ryu::Buffer::new().format_finite(v).to_owned();
        let check = |v: f64| {
            let mut ours = Vec::new();
            json_float(&mut ours, v).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                ryu(v),
                "{v:e} ({:#x})",
                v.to_bits()
            );
        };
        let mut rng = fastrand::Rng::with_seed(13);
        for i in 0..200_000u32 {
            let i = f64::from(i);
            check(i * 1.5 + 0.25);
            check(-(i * std::f64::consts::FRAC_1_PI + 0.1));
            check(i / 7.0);
        }
        for _ in 0..500_000 {
            // Decimals of every length around the fast path's, at every magnitude it takes.
            let width = rng.u32(1..=12);
            let digits = rng.u64(0..10u64.pow(width));
            let decimals = rng.i32(0..=7);
            let v = digits as f64 / 10f64.powi(decimals);
            check(v);
            check(-v);
            check(f64::from_bits(
                rng.u64(0x3f40_0000_0000_0000..0x41d0_0000_0000_0000),
            ));
        }
        for v in [
            0.001,
            0.0009999,
            0.00125,
            0.1,
            0.5,
            1.0,
            2.5,
            999_999_999.999_9,
            1e9,
            1e9 - 0.5,
            123_456_789.123_4,
            0.3,
            0.30000000000000004,
            1e-3 - 1e-19,
            5e-324,
            1e300,
        ] {
            check(v);
            check(-v);
        }
    }

    #[test]
    fn a_rewound_encoder_writes_as_if_the_abandoned_value_never_started() {
        for codec in [Codec::Msgpack, Codec::Json] {
            let mut direct = Encoder::new(codec);
            direct.begin_array(2).unwrap();
            direct.int(1).unwrap();
            direct.str("x").unwrap();
            direct.end_array().unwrap();

            let mut e = Encoder::new(codec);
            e.begin_array(2).unwrap();
            e.int(1).unwrap();
            let at = e.checkpoint();
            e.begin_map(1).unwrap();
            e.key("k").unwrap();
            e.begin_array(3).unwrap();
            e.float(0.5).unwrap();
            e.rewind(at);
            e.str("x").unwrap();
            e.end_array().unwrap();
            let (e, direct) = (e.finish().unwrap(), direct.finish().unwrap());
            assert_eq!(e.payload, direct.payload, "{codec:?}");
            assert_eq!(
                (e.codec, e.raw, e.text),
                (direct.codec, direct.raw, direct.text)
            );

            // From the very start: nothing is left, not even "started".
            let mut e = Encoder::new(codec);
            let at = e.checkpoint();
            e.begin_array(1).unwrap();
            e.rewind(at);
            assert!(e.checkpoint().len == 0 && !e.started && e.open.is_empty());
        }
    }

    #[test]
    fn strings_of_every_short_length_are_written_whole() {
        let text: String = ('a'..='z').chain('A'..='Z').collect();
        for n in 0..=40 {
            let s = &text[..n];
            let mut ours = vec![0x55];
            msgpack_str(&mut ours, s.as_bytes());
            let mut theirs = vec![0x55];
            rmp::encode::write_str(&mut theirs, s).unwrap();
            assert_eq!(ours, theirs, "{n}");
        }
    }

    #[test]
    fn containers_nest_to_the_limit_and_no_further() {
        let mut e = Encoder::new(Codec::Msgpack);
        for _ in 0..MAX_DEPTH {
            e.begin_array(1).unwrap();
        }
        // An empty container at the deepest level still decodes; one with items does not.
        e.begin_array(0).unwrap();
        e.end_array().unwrap();
        assert!(e.begin_array(1).is_err());
    }
}
