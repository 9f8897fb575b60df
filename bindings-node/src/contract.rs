//! The pure contract functions of docs/FORMAT.md (envelope, keys, ring, function keys),
//! exported for the vector suite and for tools that inspect stored values.

use std::collections::BTreeMap;

use napi::bindgen_prelude::{Buffer, Unknown};
use napi::{Env, Result};
use napi_derive::napi;
use polycache::codec::{self, Codec, Compression, EncodeOptions, Meta};
use polycache::{key, KeySchema, KeyTemplate, Node, Ring as CoreRing, Value};

use crate::errors;
use crate::value::{JsValue, Made};

/// How `encodeEnvelope` writes a value; every field has the cache's default.
#[napi(object)]
#[derive(Debug, Default)]
pub struct EnvelopeOptions {
    /// `msgpack` (default), `json` or `bytes`.
    pub codec: Option<String>,
    /// `lz4` (default) or `none`.
    pub compression: Option<String>,
    /// Smallest payload worth compressing, in bytes (default 1024).
    pub compress_threshold: Option<u32>,
    /// Milliseconds since the Unix epoch (default 0).
    pub created_at: Option<i64>,
    /// End of the fresh window, ms since the epoch; 0 = none (default).
    pub fresh_until: Option<i64>,
    /// Schema id written in the header.
    pub schema: Option<String>,
    /// Tags written in the header, in order.
    pub tags: Option<Vec<String>>,
}

/// A decoded envelope: the value and the header fields.
#[napi(object)]
#[derive(Debug)]
pub struct Envelope {
    #[napi(ts_type = "CacheValue")]
    pub value: Made,
    pub codec: String,
    pub compression: String,
    pub created_at: i64,
    pub fresh_until: i64,
    pub schema: Option<String>,
    pub tags: Vec<String>,
    /// A cached "not found" (negative caching): `value` is `null`.
    pub not_found: bool,
}

/// Encodes a value into the bytes polycache stores (FORMAT.md §1–2).
#[napi(ts_args_type = "value: CacheValue, options?: EnvelopeOptions")]
pub fn encode_envelope(
    env: Env,
    value: Unknown<'_>,
    options: Option<EnvelopeOptions>,
) -> Result<Buffer> {
    let options = options.unwrap_or_default();
    // Names are core's (`FromStr`), and so are the defaults.
    let defaults = EncodeOptions::default();
    let encode = EncodeOptions {
        codec: match options.codec.as_deref() {
            Some(name) => errors::check(&env, name.parse::<Codec>())?,
            None => defaults.codec,
        },
        compression: match options.compression.as_deref() {
            Some(name) => errors::check(&env, name.parse::<Compression>())?,
            None => defaults.compression,
        },
        compress_threshold: options
            .compress_threshold
            .map_or(defaults.compress_threshold, |n| n as usize),
    };
    let meta = Meta {
        created_at_ms: options.created_at.unwrap_or(0).max(0) as u64,
        fresh_until_ms: options.fresh_until.unwrap_or(0).max(0) as u64,
        schema: options.schema,
        tags: options.tags.unwrap_or_default(),
        ..Meta::default()
    };
    // Straight from the JS value into the codec, as a `set` writes it.
    let payload = crate::value::encode_payload(&env, &value, encode.codec)?;
    let bytes = errors::check(&env, codec::seal(&payload, &encode, &meta))?;
    Ok(bytes.into())
}

/// Decodes stored bytes; an `ECODEC` error for anything that is not a valid v1 envelope.
#[napi]
pub fn decode_envelope(env: Env, bytes: &[u8]) -> Result<Envelope> {
    let (header, value) = crate::value::decode_envelope(&env, bytes)?;
    Ok(Envelope {
        value,
        codec: header.codec.as_str().to_owned(),
        compression: header.compression.as_str().to_owned(),
        created_at: header.meta.created_at_ms as i64,
        fresh_until: header.meta.fresh_until_ms as i64,
        schema: header.meta.schema,
        tags: header.meta.tags,
        not_found: header.meta.not_found,
    })
}

/// The Redis key of a user key under a prefix and namespace (FORMAT.md §3).
#[napi]
pub fn redis_key(
    env: Env,
    prefix: String,
    namespace: String,
    max_key_length: u32,
    key: String,
) -> Result<String> {
    let schema = errors::check(
        &env,
        KeySchema::new(&prefix, &namespace, max_key_length as usize),
    )?;
    errors::check(&env, schema.redis_key(&key))
}

/// The stampede-lock key that goes with a Redis key (same hash tag, same slot).
#[napi]
pub fn lock_key(redis_key: String) -> String {
    KeySchema::lock_key(&redis_key)
}

/// The Redis Cluster hash tag of a Redis key.
#[napi]
pub fn hash_tag(redis_key: String) -> String {
    String::from_utf8_lossy(key::hash_tag(redis_key.as_bytes())).into_owned()
}

/// The Redis Cluster slot of a Redis key.
#[napi]
pub fn slot(redis_key: String) -> u32 {
    u32::from(key::slot(redis_key.as_bytes()))
}

/// A node on the ring.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct RingNode {
    pub name: String,
    /// Relative share of keys, at least 1 (default 1).
    pub weight: Option<u32>,
}

/// The consistent-hash ring of `redis+shards://` (FORMAT.md §4).
#[napi]
#[derive(Debug)]
pub struct Ring {
    ring: CoreRing,
}

#[napi]
impl Ring {
    /// Builds the continuum; `ECONFIG` for an empty list, a zero weight or a repeated name.
    #[napi(constructor)]
    pub fn new(env: Env, nodes: Vec<RingNode>) -> Result<Self> {
        let nodes = nodes
            .into_iter()
            .map(|n| Node {
                name: n.name,
                weight: n.weight.unwrap_or(1),
            })
            .collect();
        Ok(Ring {
            ring: errors::check(&env, CoreRing::new(nodes))?,
        })
    }

    /// The number of points on the continuum.
    #[napi(getter)]
    pub fn size(&self) -> u32 {
        self.ring.len() as u32
    }

    /// The first `n` points as `[value, node name]`.
    #[napi(ts_return_type = "Array<[number, string]>")]
    pub fn head(&self, n: u32) -> Vec<(u32, String)> {
        self.ring
            .head(n as usize)
            .into_iter()
            .map(|(point, name)| (point, name.to_owned()))
            .collect()
    }

    /// The name of the node that owns a Redis key.
    #[napi]
    pub fn node_for(&self, redis_key: String) -> String {
        self.ring.node_for(&redis_key).to_owned()
    }
}

/// Renders a function-key template with positional and named arguments (FORMAT.md §5):
/// `ECONFIG` for a malformed template, `EKEY` for a missing or unrenderable argument.
#[napi(ts_args_type = "template: string, args: CacheValue[], named?: Record<string, CacheValue>")]
pub fn render_key(
    env: Env,
    template: String,
    args: Vec<JsValue>,
    named: Option<BTreeMap<String, JsValue>>,
) -> Result<String> {
    let template = errors::check(&env, KeyTemplate::parse(&template))?;
    let args: Vec<Value> = args.into_iter().map(|v| v.0).collect();
    let named: BTreeMap<String, Value> = named
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    errors::check(&env, template.render(&args, &named))
}

/// The key of a call when no template is given: `<name>:` + 32 hex digits of SHA-256 over
/// the canonical MessagePack of the arguments; `named` arguments (Python's `**kwargs`)
/// count whatever order they were given in (FORMAT.md §5).
#[napi(
    ts_args_type = "functionName: string, args: CacheValue[], named?: Record<string, CacheValue>"
)]
pub fn call_key(
    function_name: String,
    args: Vec<JsValue>,
    named: Option<BTreeMap<String, JsValue>>,
) -> String {
    let args: Vec<Value> = args.into_iter().map(|v| v.0).collect();
    let named: BTreeMap<String, Value> = named
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    polycache::contract::call_key(&function_name, &args, &named)
}

/// The config a cache would resolve from `url` and `options` (JSON text of an options
/// object), as canonical JSON with the credentials redacted; `ECONFIG` when invalid. The
/// URL vectors (tests/vectors/urls.json) check it.
#[napi]
pub fn resolve_config(env: Env, url: String, options: String) -> Result<String> {
    errors::check(&env, polycache::contract::resolve_config(&url, &options))
}

/// Early refresh (XFetch, docs/FORMAT.md §7): whether a read at `now` of a value fresh
/// until `freshUntil` whose last load took `delta` (all ms) refreshes it now; `beta` > 0,
/// `random` in [0, 1). tests/vectors/xfetch.json checks it.
#[napi]
pub fn should_refresh_early(
    now: i64,
    fresh_until: i64,
    delta: i64,
    beta: f64,
    random: f64,
) -> bool {
    let ms = |v: i64| v.max(0) as u64;
    polycache::contract::should_refresh_early(ms(now), ms(fresh_until), ms(delta), beta, random)
}
