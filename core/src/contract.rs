//! The contract API: the pure functions of docs/FORMAT.md that every binding exports with
//! these parameters, in this order, with these results (Python in snake_case, Node and
//! the JS edge package in camelCase, WIT in kebab-case). `tests/vectors/contract.json`
//! describes them once; a test in every language checks its binding against it, and this
//! module is the reference the description was taken from.
//!
//! ```
//! use polycache::contract;
//!
//! let key = contract::redis_key("pc", "users", 200, "user:42")?;
//! assert_eq!(key, "pc:users:{user:42}");
//! assert_eq!(contract::lock_key(&key), "pc:users:{user:42}:lock");
//! assert_eq!(contract::hash_tag(&key), "user:42");
//! # Ok::<(), polycache::Error>(())
//! ```

use std::collections::BTreeMap;

use crate::codec::{self, EncodeOptions, Meta};
use crate::error::Result;
use crate::patterns::{call_key_named, KeyTemplate};
use crate::{Codec, Compression, KeySchema, Value};

pub use crate::ring::{Node, Ring};

/// How [`encode_envelope`] writes a value: the codec settings and the header fields.
/// Every binding gives each field the default below when it is left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeOptions {
    /// The payload codec (default MessagePack).
    pub codec: Codec,
    /// Compression for payloads of at least `compress_threshold` bytes (default LZ4).
    pub compression: Compression,
    /// Smallest payload worth compressing, in bytes (default 1024).
    pub compress_threshold: usize,
    /// When the value was written, ms since the Unix epoch (default 0).
    pub created_at: u64,
    /// End of the fresh window, ms since the epoch; 0 = none (default).
    pub fresh_until: u64,
    /// Schema id of the value's shape (default none).
    pub schema: Option<String>,
    /// Tags, in order (default none).
    pub tags: Vec<String>,
}

impl Default for EnvelopeOptions {
    fn default() -> Self {
        let codec = EncodeOptions::default();
        EnvelopeOptions {
            codec: codec.codec,
            compression: codec.compression,
            compress_threshold: codec.compress_threshold,
            created_at: 0,
            fresh_until: 0,
            schema: None,
            tags: Vec::new(),
        }
    }
}

/// A decoded envelope: the value and the header fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The stored value.
    pub value: Value,
    /// The payload codec.
    pub codec: Codec,
    /// The compression actually applied to this payload.
    pub compression: Compression,
    /// When the value was written, ms since the Unix epoch.
    pub created_at: u64,
    /// End of the fresh window, ms since the epoch; 0 = none.
    pub fresh_until: u64,
    /// Schema id, when the writer gave one.
    pub schema: Option<String>,
    /// Tags, in order.
    pub tags: Vec<String>,
    /// A cached "not found" (negative caching): `value` is nil.
    pub not_found: bool,
}

/// The bytes polycache stores for `value` (FORMAT.md §1–2).
///
/// # Errors
/// A codec error when the codec cannot hold the value or a header string is too long.
pub fn encode_envelope(value: &Value, options: &EnvelopeOptions) -> Result<Vec<u8>> {
    let encode = EncodeOptions {
        codec: options.codec,
        compression: options.compression,
        compress_threshold: options.compress_threshold,
    };
    let meta = Meta {
        created_at_ms: options.created_at,
        fresh_until_ms: options.fresh_until,
        schema: options.schema.clone(),
        tags: options.tags.clone(),
        ..Meta::default()
    };
    codec::encode(value, &encode, &meta)
}

/// The value and header fields of stored bytes.
///
/// # Errors
/// A codec error for anything that is not a valid v1 envelope (foreign bytes, a newer
/// version, corruption, a value over the decode limits).
pub fn decode_envelope(bytes: &[u8]) -> Result<Envelope> {
    let (header, value) = codec::decode(bytes)?;
    Ok(Envelope {
        value,
        codec: header.codec,
        compression: header.compression,
        created_at: header.meta.created_at_ms,
        fresh_until: header.meta.fresh_until_ms,
        schema: header.meta.schema,
        tags: header.meta.tags,
        not_found: header.meta.not_found,
    })
}

/// `<prefix>:<namespace>:{<key>}`, with keys longer than `max_key_length` bytes hashed
/// (FORMAT.md §3).
///
/// # Errors
/// A config error for an empty prefix or namespace or one with braces; a key error for an
/// empty key.
pub fn redis_key(
    prefix: &str,
    namespace: &str,
    max_key_length: usize,
    key: &str,
) -> Result<String> {
    KeySchema::new(prefix, namespace, max_key_length)?.redis_key(key)
}

/// The stampede-lock key of a Redis key (same hash tag, same slot).
pub fn lock_key(redis_key: &str) -> String {
    KeySchema::lock_key(redis_key)
}

/// The Redis Cluster hash tag of a Redis key: the text between the first `{` and the next
/// `}` when that is non-empty, otherwise the whole key.
pub fn hash_tag(redis_key: &str) -> &str {
    // `{` and `}` are ASCII, so the tag of UTF-8 text is UTF-8.
    std::str::from_utf8(crate::key::hash_tag(redis_key.as_bytes())).unwrap_or(redis_key)
}

/// The Redis Cluster slot of a Redis key.
pub fn slot(redis_key: &str) -> u16 {
    crate::key::slot(redis_key.as_bytes())
}

/// Renders a function-key template with positional and named arguments (FORMAT.md §5).
///
/// # Errors
/// A config error for a malformed template; a key error for a missing or unrenderable
/// argument.
pub fn render_key(
    template: &str,
    args: &[Value],
    named: &BTreeMap<String, Value>,
) -> Result<String> {
    KeyTemplate::parse(template)?.render(args, named)
}

/// The key of a call without a template: `<function_name>:` and 32 hex digits of SHA-256
/// over the canonical MessagePack of the arguments (FORMAT.md §5); named arguments count
/// whatever order they were given in.
pub fn call_key(function_name: &str, args: &[Value], named: &BTreeMap<String, Value>) -> String {
    call_key_named(function_name, args, named)
}

/// Early refresh, probabilistic (XFetch): whether a read at `now` of a value fresh until
/// `fresh_until` whose last load took `delta` refreshes it now (all in ms; `beta` > 0
/// weighs it, `random` is uniform in [0, 1)); FORMAT.md §7, tests/vectors/xfetch.json.
pub fn should_refresh_early(
    now: u64,
    fresh_until: u64,
    delta: u64,
    beta: f64,
    random: f64,
) -> bool {
    crate::patterns::fresh::should_refresh_early(now, fresh_until, delta, beta, random)
}

/// The config every binding builds from `url` and `options` (a JSON object of option
/// names, camelCase or snake_case, to values), as canonical JSON: keys sorted, durations in
/// seconds, the URL's credentials redacted ([`crate::Config::resolve`]). The URL vectors
/// (tests/vectors/urls.json) check it in every language.
///
/// # Errors
/// A config error for an invalid URL, an unknown option or an invalid value.
pub fn resolve_config(url: &str, options: &str) -> Result<String> {
    crate::Config::resolve(url, options)
}
