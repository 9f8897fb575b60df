//! Codecs and the value envelope (docs/FORMAT.md §1–2). Pure: no I/O, no clock.

mod build;
mod encoder;
pub mod js;
pub mod json;
mod lz4;
pub mod msgpack;
#[cfg(test)]
mod props;
mod value;

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

pub use build::{Build, DecodeError, Prealloc, Tree, PREALLOC_ITEMS};
pub use encoder::{Checkpoint, Encoded, Encoder};
pub use value::{from_value, to_value, Map, Value};

use crate::error::{Error, Result};

/// First bytes of every envelope: `0xC1` never starts MessagePack, JSON or UTF-8 text.
pub const MAGIC: [u8; 3] = [0xC1, b'P', b'C'];
/// The envelope version this build writes and reads.
pub const VERSION: u8 = 1;
/// Fixed header bytes after the length field: created-at and fresh-until.
const FIXED_HEADER: usize = 16;
/// Default [`DecodeLimits::max_payload_bytes`]: 64 MiB.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 64 * 1024 * 1024;
/// Default [`DecodeLimits::max_value_bytes`]: 256 MiB.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 256 * 1024 * 1024;
/// What every decoded value counts against [`DecodeLimits::max_value_bytes`], on top of the
/// bytes of its string or binary content (docs/FORMAT.md §1, "Limits"). It is the size of
/// one [`Value`] here, so the count follows the memory the decoder really holds.
pub const VALUE_SLOT_BYTES: usize = 32;
/// No LZ4 block expands more than this many times: one input byte of a length field adds
/// at most 255 output bytes. A larger stated length is refused before anything is allocated.
pub const LZ4_MAX_EXPANSION: usize = 255;

const EXT_SCHEMA: u8 = 0x01;
const EXT_TAG: u8 = 0x02;
/// The last load's duration in ms, a u32 (FORMAT.md §1): what early refresh weighs.
const EXT_LOAD_MS: u8 = 0x03;
/// "Not found" (FORMAT.md §1): the envelope caches a loader's answer that the key has no
/// value; length 0, and the payload is empty.
const EXT_NOT_FOUND: u8 = 0x04;

/// How a value's payload is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// The bytes of a bytes value, unchanged.
    Bytes,
    /// Canonical MessagePack (the default).
    #[default]
    #[serde(alias = "messagepack")]
    Msgpack,
    /// Canonical JSON text.
    Json,
}

impl Codec {
    /// The name used in options and URLs (`"msgpack"`, `"json"`, `"bytes"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Codec::Bytes => "bytes",
            Codec::Msgpack => "msgpack",
            Codec::Json => "json",
        }
    }

    /// The id written in the envelope.
    pub fn id(self) -> u8 {
        match self {
            Codec::Bytes => 0,
            Codec::Msgpack => 1,
            Codec::Json => 2,
        }
    }

    fn from_id(id: u8) -> Result<Self> {
        match id {
            0 => Ok(Codec::Bytes),
            1 => Ok(Codec::Msgpack),
            2 => Ok(Codec::Json),
            other => Err(Error::codec(format!("envelope: unknown codec id {other}"))),
        }
    }

    /// Encodes `value` with this codec, without an envelope.
    ///
    /// # Errors
    /// A codec error when the codec cannot represent the value.
    pub fn encode(self, value: &Value) -> Result<Vec<u8>> {
        let mut encoder = Encoder::new(self);
        encoder.value(value)?;
        Ok(encoder.finish()?.into_payload().into_vec())
    }

    /// Decodes a payload written by this codec, with the default [`DecodeLimits`].
    ///
    /// # Errors
    /// A codec error when the payload is not valid for the codec or exceeds a limit.
    pub fn decode(self, payload: &[u8]) -> Result<Value> {
        self.decode_with(payload, &DecodeLimits::default())
    }

    /// Decodes a payload written by this codec within `limits`.
    ///
    /// # Errors
    /// A codec error when the payload is not valid for the codec or exceeds a limit.
    pub fn decode_with(self, payload: &[u8], limits: &DecodeLimits) -> Result<Value> {
        self.decode_into(payload, limits, &mut Tree)
            .map_err(DecodeError::into_codec)
    }

    /// Decodes a payload written by this codec within `limits` into a host value made by
    /// `build`.
    ///
    /// # Errors
    /// As [`Codec::decode_with`], or the builder's own error.
    pub fn decode_into<B: Build>(
        self,
        payload: &[u8],
        limits: &DecodeLimits,
        build: &mut B,
    ) -> std::result::Result<B::Value, DecodeError<B::Error>> {
        if payload.len() > limits.max_payload_bytes {
            return Err(DecodeError::Codec(Error::codec(format!(
                "payload of {} bytes exceeds maxPayloadBytes ({})",
                payload.len(),
                limits.max_payload_bytes
            ))));
        }
        match self {
            Codec::Msgpack => msgpack::decode_into(payload, limits, build),
            Codec::Json => json::decode_into(payload, limits, build),
            Codec::Bytes => {
                Budget::new(limits).charge(VALUE_SLOT_BYTES.saturating_add(payload.len()))?;
                build.bytes(payload).map_err(DecodeError::Host)
            }
        }
    }
}

/// Compression applied to a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Stored as is.
    None,
    /// One LZ4 block, prefixed by the uncompressed length (the default above the threshold).
    #[default]
    Lz4,
}

impl Compression {
    /// The name used in options and URLs (`"none"`, `"lz4"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
        }
    }

    /// The id written in the envelope.
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Lz4 => 1,
        }
    }

    fn from_id(id: u8) -> Result<Self> {
        match id {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Lz4),
            other => Err(Error::codec(format!(
                "envelope: unknown compression id {other}"
            ))),
        }
    }
}

/// A codec from its option name (`"messagepack"` is accepted for `"msgpack"`).
impl std::str::FromStr for Codec {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        match name {
            "msgpack" | "messagepack" => Ok(Codec::Msgpack),
            "json" => Ok(Codec::Json),
            "bytes" => Ok(Codec::Bytes),
            other => Err(Error::config(format!(
                "unknown codec {other:?} (expected msgpack, json or bytes)"
            ))),
        }
    }
}

/// A compression from its option name.
impl std::str::FromStr for Compression {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        match name {
            "none" => Ok(Compression::None),
            "lz4" => Ok(Compression::Lz4),
            other => Err(Error::config(format!(
                "unknown compression {other:?} (expected none or lz4)"
            ))),
        }
    }
}

/// How a writer encodes values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeOptions {
    /// The payload codec.
    pub codec: Codec,
    /// Compression used for payloads of at least `compress_threshold` bytes.
    pub compression: Compression,
    /// Smallest codec output worth compressing.
    pub compress_threshold: usize,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            codec: Codec::Msgpack,
            compression: Compression::Lz4,
            compress_threshold: 1024,
        }
    }
}

/// Bounds a reader applies to bytes it did not write (docs/FORMAT.md §1, "Limits"). Every
/// stored value is untrusted: anyone who can write a key can hand every reader these bytes.
///
/// ```
/// use polycache::codec::{self, DecodeLimits};
///
/// let limits = DecodeLimits { max_payload_bytes: 1024, ..DecodeLimits::default() };
/// // An LZ4 payload claiming 1 MiB is refused before anything is allocated.
/// let mut bomb = vec![0xC1, b'P', b'C', 1, 1, 1, 0, 16];
/// bomb.extend_from_slice(&[0; 16]);
/// bomb.extend_from_slice(&(1u32 << 20).to_be_bytes());
/// bomb.extend_from_slice(&[0x1f, 0x00, 0x01, 0x00, 0xff, 0xff, 0xff]);
/// assert!(codec::decode_with(&bomb, &limits).unwrap_err().is_codec_error());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecodeLimits {
    /// Largest payload after decompression, in bytes. An envelope stating a larger LZ4
    /// length is a decode error before anything is allocated.
    pub max_payload_bytes: usize,
    /// Largest decoded value, counted while decoding: [`VALUE_SLOT_BYTES`] per value (map
    /// keys included) plus the bytes of every string, bytes value and map key.
    pub max_value_bytes: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
        }
    }
}

impl DecodeLimits {
    /// No caps beyond the nesting limit: for bytes this process produced itself.
    pub const UNLIMITED: DecodeLimits = DecodeLimits {
        max_payload_bytes: usize::MAX,
        max_value_bytes: usize::MAX,
    };
}

/// The memory a decoder may still spend on the value it builds.
#[derive(Debug)]
pub(crate) struct Budget {
    left: usize,
    limit: usize,
}

impl Budget {
    pub(crate) fn new(limits: &DecodeLimits) -> Self {
        Budget {
            left: limits.max_value_bytes,
            limit: limits.max_value_bytes,
        }
    }

    /// Spends `bytes`, or fails when the value would outgrow the limit.
    #[inline]
    pub(crate) fn charge(&mut self, bytes: usize) -> Result<()> {
        self.require(bytes)?;
        self.left -= bytes;
        Ok(())
    }

    /// Fails unless `bytes` could still be spent: a claimed length checked before the
    /// items it announces are read.
    #[inline]
    pub(crate) fn require(&self, bytes: usize) -> Result<()> {
        if bytes > self.left {
            return Err(self.exceeded());
        }
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn exceeded(&self) -> Error {
        Error::codec(format!(
            "decoded value exceeds maxValueBytes ({} bytes)",
            self.limit
        ))
    }
}

/// Per-value metadata carried in the envelope header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// When the value was written, ms since the Unix epoch.
    pub created_at_ms: u64,
    /// End of the fresh window for stale-while-revalidate, ms since the epoch; 0 = none.
    pub fresh_until_ms: u64,
    /// Optional schema id of the value's shape.
    pub schema: Option<String>,
    /// Tags attached to the value, in order.
    pub tags: Vec<String>,
    /// How long the load that produced the value took, in ms (extension `03`); `None` for
    /// a value that was set, not loaded.
    pub load_ms: Option<u32>,
    /// The envelope says "not found" (extension `04`, negative caching): it has no value,
    /// and its payload is empty.
    pub not_found: bool,
}

/// What a reader found in an envelope header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The payload codec.
    pub codec: Codec,
    /// The payload compression.
    pub compression: Compression,
    /// Metadata.
    pub meta: Meta,
}

/// Encodes `value` into an envelope.
///
/// # Errors
/// A codec error when the codec cannot represent the value or a header string exceeds
/// 65535 bytes.
pub fn encode(value: &Value, options: &EncodeOptions, meta: &Meta) -> Result<Vec<u8>> {
    seal(&options.codec.encode(value)?, options, meta)
}

/// Wraps a payload written in `options.codec` (by [`Codec::encode`] or an [`Encoder`]) in
/// an envelope, compressed as `options` say.
///
/// # Errors
/// A codec error when a header string exceeds 65535 bytes.
pub fn seal(payload: &[u8], options: &EncodeOptions, meta: &Meta) -> Result<Vec<u8>> {
    let (mut out, block) = envelope_head(payload, None, options, meta)?;
    let body = block.as_deref().unwrap_or(payload);
    out.reserve_exact(body.len());
    out.extend_from_slice(body);
    Ok(out)
}

/// [`seal`] for a payload the caller hands over: stored uncompressed, the payload's own
/// buffer becomes the envelope (the header is inserted in front, within its spare
/// capacity when there is room), so a large payload is not copied into fresh memory.
///
/// # Errors
/// As [`seal`].
pub fn seal_owned(payload: Vec<u8>, options: &EncodeOptions, meta: &Meta) -> Result<Vec<u8>> {
    Ok(seal_framed(Framed::from(payload), options, meta)?.into_vec())
}

/// [`seal_owned`] for a payload with room in front of it (an [`Encoder`] from
/// [`crate::Cache::encoder`] leaves [`HEADROOM`]): stored uncompressed, the header is
/// written into that room, and a compressed block gets room of its own, so the store can
/// write its command's head there too without moving the bytes.
///
/// # Errors
/// As [`seal`].
pub fn seal_framed(payload: Framed, options: &EncodeOptions, meta: &Meta) -> Result<Framed> {
    seal_ahead(payload, None, options, meta)
}

/// [`seal_framed`] for an [`Encoder`]'s payload whose pieces it compressed ahead.
pub(crate) fn seal_encoded(
    encoded: Encoded,
    options: &EncodeOptions,
    meta: &Meta,
) -> Result<Framed> {
    seal_ahead(encoded.payload, encoded.ahead, options, meta)
}

fn seal_ahead(
    mut payload: Framed,
    ahead: Option<lz4::Ahead>,
    options: &EncodeOptions,
    meta: &Meta,
) -> Result<Framed> {
    let (head, block) = envelope_head(payload.bytes(), ahead, options, meta)?;
    match block {
        Some(block) => {
            let mut out = Framed::with_room(HEADROOM, head.len() + block.len() + TAILROOM);
            out.extend_from_slice(&head);
            out.extend_from_slice(&block);
            Ok(out)
        }
        None if payload.prepend(&head) => Ok(payload),
        None => {
            let mut bytes = payload.into_vec();
            bytes.splice(0..0, head);
            Ok(Framed::from(bytes))
        }
    }
}

/// The envelope's bytes up to its body (with a compressed body's length field), and the
/// LZ4 block when `payload` is stored compressed.
fn envelope_head(
    payload: &[u8],
    ahead: Option<lz4::Ahead>,
    options: &EncodeOptions,
    meta: &Meta,
) -> Result<(Vec<u8>, Option<Vec<u8>>)> {
    let mut ext_len = 0usize;
    if let Some(schema) = &meta.schema {
        ext_len += 3 + ext_value_len(schema)?;
    }
    for tag in &meta.tags {
        ext_len += 3 + ext_value_len(tag)?;
    }
    if meta.load_ms.is_some() {
        ext_len += 3 + 4;
    }
    if meta.not_found {
        ext_len += 3;
    }
    let header_len = FIXED_HEADER + ext_len;
    let header_len_u16 = u16::try_from(header_len)
        .map_err(|_| Error::codec("envelope: header longer than 65535 bytes"))?;

    let compressed = if options.compression == Compression::Lz4
        && payload.len() >= options.compress_threshold
        && sample_shrinks(payload)
    {
        let block = match ahead {
            Some(ahead) => ahead.finish(payload),
            None => lz4::compress(payload),
        };
        (block.len() + 4 < payload.len()).then_some(block)
    } else {
        None
    };

    // The head only: `seal` reserves the body itself, and `seal_framed` never copies the
    // body into this buffer (sized for it, a 1 MB set allocated and freed 1 MB here).
    let length_field = if compressed.is_some() { 4 } else { 0 };
    let mut out = Vec::with_capacity(8 + header_len + length_field);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(options.codec.id());
    out.push(if compressed.is_some() {
        Compression::Lz4.id()
    } else {
        Compression::None.id()
    });
    out.extend_from_slice(&header_len_u16.to_be_bytes());
    out.extend_from_slice(&meta.created_at_ms.to_be_bytes());
    out.extend_from_slice(&meta.fresh_until_ms.to_be_bytes());
    if let Some(schema) = &meta.schema {
        push_ext(&mut out, EXT_SCHEMA, schema);
    }
    for tag in &meta.tags {
        push_ext(&mut out, EXT_TAG, tag);
    }
    if let Some(ms) = meta.load_ms {
        out.push(EXT_LOAD_MS);
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&ms.to_be_bytes());
    }
    if meta.not_found {
        out.push(EXT_NOT_FOUND);
        out.extend_from_slice(&0u16.to_be_bytes());
    }
    if compressed.is_some() {
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    }
    Ok((out, compressed))
}

/// Room an [`Encoder`] from [`crate::Cache::encoder`] leaves in front of its payload: the
/// envelope header of a set (24 bytes) and a Redis `SET`'s head with a key of up to about
/// 70 bytes fit in it, so neither moves the payload.
pub const HEADROOM: usize = 128;
/// Spare capacity after a compressed block: a `SET`'s tail (`PX ms`, `NX`) fits in it.
const TAILROOM: usize = 64;

/// Bytes with unused room in front of them: a header (the envelope's, then a command's)
/// is written into that room instead of moving the bytes behind it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Framed {
    buf: Vec<u8>,
    start: usize,
}

impl From<Vec<u8>> for Framed {
    /// Bytes without room in front.
    fn from(bytes: Vec<u8>) -> Self {
        Framed {
            buf: bytes,
            start: 0,
        }
    }
}

impl Framed {
    /// Empty, with `room` bytes in front and capacity for `len` more.
    pub fn with_room(room: usize, len: usize) -> Self {
        let mut buf = Vec::with_capacity(room + len);
        buf.resize(room, 0);
        Framed { buf, start: room }
    }

    /// `buf` whose first `room` bytes are room, not content.
    pub(crate) fn from_parts(buf: Vec<u8>, room: usize) -> Self {
        debug_assert!(room <= buf.len());
        Framed { buf, start: room }
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// How many bytes can still be written in front.
    pub fn room(&self) -> usize {
        self.start
    }

    /// Writes `head` in front of the bytes, if the room holds it (otherwise nothing).
    pub fn prepend(&mut self, head: &[u8]) -> bool {
        let Some(start) = self.start.checked_sub(head.len()) else {
            return false;
        };
        self.buf[start..self.start].copy_from_slice(head);
        self.start = start;
        true
    }

    /// Appends `tail` to the bytes.
    pub fn extend_from_slice(&mut self, tail: &[u8]) {
        self.buf.extend_from_slice(tail);
    }

    /// The bytes in a vector of their own (moved to the front of the buffer).
    pub fn into_vec(mut self) -> Vec<u8> {
        if self.start > 0 {
            self.buf.drain(..self.start);
        }
        self.buf
    }
}

/// Payloads from this size on are compressed only when a sample of them shrinks by at
/// least an eighth.
const LZ4_PROBE_FROM: usize = 16 * 1024;
/// The sample: this many bytes from the middle of the payload.
const LZ4_PROBE_BYTES: usize = 4 * 1024;

/// Whether compressing `payload` is worth a try: a large payload that barely compresses
/// (floats: a list of them came out 0.4% larger, its middle 8% smaller; bytes already
/// compressed) would cost a full LZ4 pass for little or nothing (measured: 10–20% of a
/// floats `set` from 100 KB up), so a sample from its middle decides. Records-like
/// payloads shrink to about a quarter.
pub(super) fn sample_shrinks(payload: &[u8]) -> bool {
    if payload.len() < LZ4_PROBE_FROM {
        return true;
    }
    let start = (payload.len() - LZ4_PROBE_BYTES) / 2;
    let sample = &payload[start..start + LZ4_PROBE_BYTES];
    lz4_flex::block::compress(sample).len() < sample.len() - sample.len() / 8
}

fn ext_value_len(s: &str) -> Result<usize> {
    if s.len() > u16::MAX as usize {
        return Err(Error::codec(
            "envelope: header string longer than 65535 bytes",
        ));
    }
    Ok(s.len())
}

fn push_ext(out: &mut Vec<u8>, ty: u8, value: &str) {
    out.push(ty);
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value.as_bytes());
}

/// The envelope of a cached "not found" (negative caching, FORMAT.md §1): MessagePack
/// codec id (so a reader that does not know extension `04` finds an empty, invalid
/// payload and sees a miss), no compression, `meta` with `not_found` set, no payload.
pub fn encode_not_found(meta: &Meta) -> Vec<u8> {
    let meta = Meta {
        not_found: true,
        ..meta.clone()
    };
    let options = EncodeOptions {
        codec: Codec::Msgpack,
        compression: Compression::None,
        compress_threshold: usize::MAX,
    };
    // Only an over-long schema or tag can fail, and a cache writes neither.
    seal(&[], &options, &meta).unwrap_or_default()
}

/// Whether `bytes` starts like an envelope (the magic). Cheap; does not validate.
pub fn looks_like_envelope(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

/// Decodes an envelope into its header and value, with the default [`DecodeLimits`].
///
/// # Errors
/// A codec error for anything that is not a complete, valid v1 envelope: foreign bytes,
/// newer versions, unknown ids, truncation, bad compression, an invalid payload, or a
/// payload or value above the limits.
pub fn decode(bytes: &[u8]) -> Result<(Header, Value)> {
    decode_with(bytes, &DecodeLimits::default())
}

/// Decodes an envelope into its header and value within `limits`. Memory use is bounded by
/// the limits and the input, never by a length the input claims.
///
/// # Errors
/// As [`decode`], with these limits.
pub fn decode_with(bytes: &[u8], limits: &DecodeLimits) -> Result<(Header, Value)> {
    decode_into(bytes, limits, &mut Tree).map_err(DecodeError::into_codec)
}

/// Decodes an envelope into its header and a host value made by `build`, within `limits`.
///
/// # Errors
/// As [`decode`], or the builder's own error.
pub fn decode_into<B: Build>(
    bytes: &[u8],
    limits: &DecodeLimits,
    build: &mut B,
) -> std::result::Result<(Header, B::Value), DecodeError<B::Error>> {
    let (header, body) = open(bytes, limits)?;
    if header.meta.not_found {
        // A cached "not found" carries no value: its payload is empty, read as nil.
        if !body.is_empty() {
            return Err(Error::codec("envelope: a not-found envelope has a payload").into());
        }
        let nil = build.nil().map_err(DecodeError::Host)?;
        return Ok((header, nil));
    }
    let value = header.codec.decode_into(&body, limits, build)?;
    Ok((header, value))
}

/// Reads an envelope's header and returns its payload, decompressed and checked against
/// `limits.max_payload_bytes`.
fn open<'a>(bytes: &'a [u8], limits: &DecodeLimits) -> Result<(Header, Cow<'a, [u8]>)> {
    if bytes.len() < 8 {
        return Err(Error::codec(if looks_like_envelope(bytes) {
            "envelope: truncated header"
        } else {
            "not a polycache envelope"
        }));
    }
    if !looks_like_envelope(bytes) {
        return Err(Error::codec("not a polycache envelope (wrong magic)"));
    }
    if bytes[3] != VERSION {
        return Err(Error::codec(format!(
            "envelope: unsupported version {} (this build reads {VERSION})",
            bytes[3]
        )));
    }
    let codec = Codec::from_id(bytes[4])?;
    let compression = Compression::from_id(bytes[5])?;
    let header_len = u16::from_be_bytes([bytes[6], bytes[7]]) as usize;
    if header_len < FIXED_HEADER {
        return Err(Error::codec("envelope: header shorter than 16 bytes"));
    }
    let header = bytes
        .get(8..8 + header_len)
        .ok_or_else(|| Error::codec("envelope: truncated header"))?;
    let mut meta = Meta {
        created_at_ms: u64::from_be_bytes(header[0..8].try_into().unwrap_or_default()),
        fresh_until_ms: u64::from_be_bytes(header[8..16].try_into().unwrap_or_default()),
        ..Meta::default()
    };
    let mut ext = &header[FIXED_HEADER..];
    while !ext.is_empty() {
        if ext.len() < 3 {
            return Err(Error::codec("envelope: truncated header extension"));
        }
        let ty = ext[0];
        let len = u16::from_be_bytes([ext[1], ext[2]]) as usize;
        let value = ext
            .get(3..3 + len)
            .ok_or_else(|| Error::codec("envelope: header extension overruns the header"))?;
        let text = || {
            std::str::from_utf8(value)
                .map(str::to_owned)
                .map_err(|_| Error::codec("envelope: header string is not valid UTF-8"))
        };
        match ty {
            EXT_SCHEMA => meta.schema = Some(text()?),
            EXT_TAG => meta.tags.push(text()?),
            EXT_LOAD_MS => {
                let ms: [u8; 4] = value
                    .try_into()
                    .map_err(|_| Error::codec("envelope: load duration is not 4 bytes"))?;
                meta.load_ms = Some(u32::from_be_bytes(ms));
            }
            EXT_NOT_FOUND => {
                if len != 0 {
                    return Err(Error::codec(
                        "envelope: the not-found extension is not empty",
                    ));
                }
                meta.not_found = true;
            }
            _ => {} // unknown extensions are skipped: the header is forward-compatible
        }
        ext = &ext[3 + len..];
    }

    let body = &bytes[8 + header_len..];
    let payload = match compression {
        Compression::None => Cow::Borrowed(body),
        Compression::Lz4 => {
            if body.len() < 4 {
                return Err(Error::codec("envelope: truncated compressed payload"));
            }
            let size = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) as usize;
            let block = &body[4..];
            // Both checks come before the output buffer is allocated: the stated length is
            // a claim, and only the cap and the block's own length bound it.
            if size > limits.max_payload_bytes {
                return Err(Error::codec(format!(
                    "envelope: uncompressed size {size} exceeds maxPayloadBytes ({})",
                    limits.max_payload_bytes
                )));
            }
            if size > block.len().saturating_mul(LZ4_MAX_EXPANSION) {
                return Err(Error::codec(format!(
                    "envelope: an lz4 block of {} bytes cannot expand to {size}",
                    block.len()
                )));
            }
            let payload = lz4_flex::block::decompress(block, size)
                .map_err(|e| Error::codec(format!("envelope: lz4: {e}")))?;
            if payload.len() != size {
                return Err(Error::codec("envelope: lz4 block has the wrong length"));
            }
            Cow::Owned(payload)
        }
    };
    Ok((
        Header {
            codec,
            compression,
            meta,
        },
        payload,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed_compression(payload: &[u8]) -> u8 {
        seal(payload, &EncodeOptions::default(), &Meta::default()).unwrap()[5]
    }

    #[test]
    fn a_large_payload_is_compressed_when_its_sample_shrinks_and_stored_as_is_otherwise() {
        // Noise (as floats' low bytes are): no LZ4 pass, stored as is; so are floats.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let noise: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert_eq!(sealed_compression(&noise), Compression::None.id());
        let floats = Value::Array(
            (0..51_000)
                .map(|i| Value::Float(f64::from(i) * std::f64::consts::FRAC_1_PI + 0.1))
                .collect(),
        );
        assert_eq!(
            sealed_compression(&msgpack::encode(&floats)),
            Compression::None.id()
        );
        // Repetitive text, large and small: compressed.
        let text = "{\"id\": 1, \"name\": \"user\"} ".repeat(10_000);
        assert_eq!(sealed_compression(text.as_bytes()), Compression::Lz4.id());
        assert_eq!(
            sealed_compression(&text.as_bytes()[..5000]),
            Compression::Lz4.id()
        );
        // Both read back.
        for payload in [&noise[..], text.as_bytes()] {
            let bytes = seal(payload, &EncodeOptions::default(), &Meta::default()).unwrap();
            assert_eq!(decompress_for_test(&bytes), payload);
        }
    }

    #[test]
    fn an_owned_payload_is_sealed_as_a_borrowed_one() {
        let meta = Meta {
            created_at_ms: 7,
            schema: Some("s".into()),
            tags: vec!["t".into()],
            ..Meta::default()
        };
        let text = "{\"id\": 1} ".repeat(5000).into_bytes();
        let mut x: u32 = 1;
        let noise: Vec<u8> = (0..100_000)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 24) as u8
            })
            .collect();
        for payload in [&b""[..], b"\x93\x01\x02\x03", &text, &noise] {
            for options in [
                EncodeOptions::default(),
                EncodeOptions {
                    compression: Compression::None,
                    ..EncodeOptions::default()
                },
            ] {
                let mut spare = Vec::with_capacity(payload.len() + 100);
                spare.extend_from_slice(payload);
                let borrowed = seal(payload, &options, &meta).unwrap();
                assert_eq!(
                    seal_owned(payload.to_vec(), &options, &meta).unwrap(),
                    borrowed
                );
                assert_eq!(seal_owned(spare, &options, &meta).unwrap(), borrowed);
                // With room in front (an encoder's), too little room, and none.
                for room in [0, 5, HEADROOM] {
                    let mut framed = Framed::with_room(room, payload.len());
                    framed.extend_from_slice(payload);
                    let sealed = seal_framed(framed, &options, &meta).unwrap();
                    assert_eq!(sealed.bytes(), &borrowed[..]);
                    assert_eq!(sealed.into_vec(), borrowed);
                }
            }
        }
    }

    /// A map of `n` records, written by `encoder`.
    fn write_records(encoder: &mut Encoder, n: usize, name: &str) {
        encoder.begin_map(n).unwrap();
        for i in 0..n {
            encoder.key(&format!("field_{i}")).unwrap();
            encoder.begin_map(3).unwrap();
            encoder.key("id").unwrap();
            encoder.uint(i as u64).unwrap();
            encoder.key("name").unwrap();
            encoder.str(&format!("{name} {i}")).unwrap();
            encoder.key("score").unwrap();
            encoder.float(i as f64 * 1.5).unwrap();
            encoder.end_map().unwrap();
        }
        encoder.end_map().unwrap();
    }

    #[test]
    fn pieces_compressed_ahead_are_sealed_as_the_whole_payload() {
        let options = EncodeOptions::default();
        let meta = Meta::default();
        // The pieces handed (all complete ones, the last perhaps not yet: they are handed
        // as the next value starts) and the sealed bytes, checked against `seal`'s.
        let sealed = |encoder: Encoder| {
            let encoded = encoder.finish().unwrap();
            let payload = encoded.payload.bytes().to_vec();
            let handed = encoded.ahead.as_ref().map_or(0, lz4::Ahead::handed);
            let bytes = seal_encoded(encoded, &options, &meta).unwrap().into_vec();
            assert_eq!(bytes, seal(&payload, &options, &meta).unwrap());
            assert_eq!(decompress_for_test(&bytes), payload);
            // The block is the pieces compressed one by one on this thread.
            let header_len = u16::from_be_bytes([bytes[6], bytes[7]]) as usize;
            assert_eq!(&bytes[8 + header_len + 4..], lz4::in_pieces(&payload));
            (handed, payload.len() / lz4::CHUNK)
        };
        let all_but_the_last =
            |(handed, complete): (usize, usize)| handed == complete || handed + 1 == complete;
        // From one piece to several (the pieces handed while writing), and below one.
        for (n, least) in [(100, 0), (2_000, 0), (12_000, 7), (30_000, 19)] {
            let mut encoder = Encoder::new(Codec::Msgpack)
                .with_room(HEADROOM)
                .compress_ahead(1024);
            write_records(&mut encoder, n, "user");
            let (handed, complete) = sealed(encoder);
            assert!(
                all_but_the_last((handed, complete)) && handed >= least,
                "{n}"
            );
        }
        // Payload that does not compress (floats): no work ahead, stored as it is.
        let mut encoder = Encoder::new(Codec::Msgpack).compress_ahead(1024);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        encoder.begin_array(100_000).unwrap();
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            encoder.float(f64::from_bits(x >> 2)).unwrap();
        }
        encoder.end_array().unwrap();
        let encoded = encoder.finish().unwrap();
        assert!(encoded.ahead.is_none());
        let bytes = seal_encoded(encoded, &options, &meta).unwrap().into_vec();
        assert_eq!(bytes[5], Compression::None.id());
        // A threshold above the first pieces: nothing is handed before it.
        let mut encoder = Encoder::new(Codec::Msgpack).compress_ahead(10 * lz4::CHUNK);
        write_records(&mut encoder, 12_000, "user");
        assert_eq!(sealed(encoder).0, 0);
        // Rewound over pieces handed (a binding's fast path giving up), then written
        // again differently: the pieces are those of what was written last.
        let mut encoder = Encoder::new(Codec::Msgpack).compress_ahead(1024);
        encoder.begin_array(2).unwrap();
        encoder.str("first").unwrap();
        let at = encoder.checkpoint();
        write_records(&mut encoder, 12_000, "user");
        encoder.rewind(at);
        write_records(&mut encoder, 11_000, "someone else");
        encoder.end_array().unwrap();
        assert!(all_but_the_last(sealed(encoder)));
        // Rewound within the piece being written: the pieces handed are kept.
        let mut encoder = Encoder::new(Codec::Msgpack).compress_ahead(1024);
        encoder.begin_array(3).unwrap();
        write_records(&mut encoder, 12_000, "user");
        encoder.str("handed").unwrap();
        let kept = encoder.pieces_handed();
        let at = encoder.checkpoint();
        encoder.str("written, then rewound").unwrap();
        encoder.rewind(at);
        assert!(encoder.pieces_handed() >= kept);
        encoder.str("written").unwrap();
        encoder.str("last").unwrap();
        encoder.end_array().unwrap();
        assert!(kept >= 7 && sealed(encoder).0 >= kept);
        // Rewound to a checkpoint taken after pieces were handed, over pieces handed since.
        let mut encoder = Encoder::new(Codec::Msgpack).compress_ahead(1024);
        encoder.begin_array(2).unwrap();
        write_records(&mut encoder, 12_000, "user");
        let at = encoder.checkpoint();
        write_records(&mut encoder, 12_000, "user");
        encoder.rewind(at);
        encoder.str("last").unwrap();
        encoder.end_array().unwrap();
        assert!(all_but_the_last(sealed(encoder)));
    }

    fn decompress_for_test(bytes: &[u8]) -> Vec<u8> {
        let header_len = u16::from_be_bytes([bytes[6], bytes[7]]) as usize;
        let body = &bytes[8 + header_len..];
        if bytes[5] == Compression::Lz4.id() {
            let len = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) as usize;
            lz4_flex::block::decompress(&body[4..], len).unwrap()
        } else {
            body.to_vec()
        }
    }
}
