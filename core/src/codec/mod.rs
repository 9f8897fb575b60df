//! Codecs and the value envelope (docs/FORMAT.md §1–2). Pure: no I/O, no clock.

pub mod json;
pub mod msgpack;
mod value;

use serde::{Deserialize, Serialize};

pub use value::{from_value, to_value, Value};

use crate::error::{Error, Result};

/// First bytes of every envelope: `0xC1` never starts MessagePack, JSON or UTF-8 text.
pub const MAGIC: [u8; 3] = [0xC1, b'P', b'C'];
/// The envelope version this build writes and reads.
pub const VERSION: u8 = 1;
/// Fixed header bytes after the length field: created-at and fresh-until.
const FIXED_HEADER: usize = 16;
/// Largest uncompressed payload a reader accepts from an LZ4 block.
pub const MAX_UNCOMPRESSED: usize = 512 * 1024 * 1024;

const EXT_SCHEMA: u8 = 0x01;
const EXT_TAG: u8 = 0x02;

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
        match self {
            Codec::Msgpack => Ok(msgpack::encode(value)),
            Codec::Json => json::encode(value),
            Codec::Bytes => match value {
                Value::Bytes(b) => Ok(b.clone()),
                other => Err(Error::codec(format!(
                    "the bytes codec stores only bytes, not {}",
                    other.kind_name()
                ))),
            },
        }
    }

    /// Decodes a payload written by this codec.
    ///
    /// # Errors
    /// A codec error when the payload is not valid for the codec.
    pub fn decode(self, payload: &[u8]) -> Result<Value> {
        match self {
            Codec::Msgpack => msgpack::decode(payload),
            Codec::Json => json::decode(payload),
            Codec::Bytes => Ok(Value::Bytes(payload.to_vec())),
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
    let payload = options.codec.encode(value)?;
    let mut ext_len = 0usize;
    if let Some(schema) = &meta.schema {
        ext_len += 3 + ext_value_len(schema)?;
    }
    for tag in &meta.tags {
        ext_len += 3 + ext_value_len(tag)?;
    }
    let header_len = FIXED_HEADER + ext_len;
    let header_len_u16 = u16::try_from(header_len)
        .map_err(|_| Error::codec("envelope: header longer than 65535 bytes"))?;

    let compressed =
        if options.compression == Compression::Lz4 && payload.len() >= options.compress_threshold {
            let block = lz4_flex::block::compress(&payload);
            (block.len() + 4 < payload.len()).then_some(block)
        } else {
            None
        };

    let body_len = compressed.as_ref().map_or(payload.len(), |b| b.len() + 4);
    let mut out = Vec::with_capacity(8 + header_len + body_len);
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
    match compressed {
        Some(block) => {
            out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            out.extend_from_slice(&block);
        }
        None => out.extend_from_slice(&payload),
    }
    Ok(out)
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

/// Whether `bytes` starts like an envelope (the magic). Cheap; does not validate.
pub fn looks_like_envelope(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

/// Decodes an envelope into its header and value.
///
/// # Errors
/// A codec error for anything that is not a complete, valid v1 envelope: foreign bytes,
/// newer versions, unknown ids, truncation, bad compression or an invalid payload.
pub fn decode(bytes: &[u8]) -> Result<(Header, Value)> {
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
            _ => {} // unknown extensions are skipped: the header is forward-compatible
        }
        ext = &ext[3 + len..];
    }

    let body = &bytes[8 + header_len..];
    let value = match compression {
        Compression::None => codec.decode(body)?,
        Compression::Lz4 => {
            if body.len() < 4 {
                return Err(Error::codec("envelope: truncated compressed payload"));
            }
            let size = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) as usize;
            if size > MAX_UNCOMPRESSED {
                return Err(Error::codec(format!(
                    "envelope: uncompressed size {size} exceeds {MAX_UNCOMPRESSED}"
                )));
            }
            let payload = lz4_flex::block::decompress(&body[4..], size)
                .map_err(|e| Error::codec(format!("envelope: lz4: {e}")))?;
            if payload.len() != size {
                return Err(Error::codec("envelope: lz4 block has the wrong length"));
            }
            codec.decode(&payload)?
        }
    };
    Ok((
        Header {
            codec,
            compression,
            meta,
        },
        value,
    ))
}
