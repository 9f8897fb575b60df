//! `encodeEnvelope` / `decodeEnvelope`: core's value envelope (docs/FORMAT.md §1).

use js_sys::{Array, Object, Reflect, Uint8Array};
use polycache::codec::{self, Codec, Compression};
use polycache::contract::{self, EnvelopeOptions};
use wasm_bindgen::prelude::*;

use crate::errors::{config_error, js};
use crate::value;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
/** A cacheable value (docs/FORMAT.md §2, Node column). */
export type CacheValue = null | boolean | number | bigint | string | Uint8Array | CacheValue[] | { [key: string]: CacheValue };

/** How `encodeEnvelope` writes a value; every field has the cache's default. */
export interface EnvelopeOptions {
  /** `msgpack` (default), `json` or `bytes`. */
  codec?: string
  /** `lz4` (default) or `none`. */
  compression?: string
  /** Smallest payload worth compressing, in bytes (default 1024). */
  compressThreshold?: number
  /** Milliseconds since the Unix epoch (default 0). */
  createdAt?: number
  /** End of the fresh window, ms since the epoch; 0 = none (default). */
  freshUntil?: number
  /** Schema id written in the header. */
  schema?: string
  /** Tags written in the header, in order. */
  tags?: string[]
}

/** A decoded envelope: the value and the header fields. */
export interface Envelope {
  value: CacheValue
  codec: string
  compression: string
  createdAt: number
  freshUntil: number
  schema?: string
  tags: string[]
  /** A cached "not found" (negative caching): `value` is `null`. */
  notFound: boolean
}
"#;

/// Encodes a value into the bytes polycache stores (FORMAT.md §1–2).
///
/// # Errors
/// `ECODEC` for a value the codec cannot hold (a `TypeError` for a JS value that cannot be
/// cached at all); `ECONFIG` for an unknown codec or compression name.
#[wasm_bindgen(js_name = encodeEnvelope)]
pub fn encode_envelope(
    #[wasm_bindgen(unchecked_param_type = "CacheValue")] value: JsValue,
    #[wasm_bindgen(unchecked_optional_param_type = "EnvelopeOptions")] options: JsValue,
) -> Result<Uint8Array, JsValue> {
    let value = value::from_js(&value)?;
    let defaults = EnvelopeOptions::default();
    let field = |name: &str| -> Result<Option<JsValue>, JsValue> {
        if options.is_undefined() || options.is_null() {
            return Ok(None);
        }
        let v = Reflect::get(&options, &name.into())?;
        Ok((!v.is_undefined()).then_some(v))
    };
    let options = EnvelopeOptions {
        codec: match field("codec")? {
            Some(name) => named::<Codec>(&name, "codec")?,
            None => defaults.codec,
        },
        compression: match field("compression")? {
            Some(name) => named::<Compression>(&name, "compression")?,
            None => defaults.compression,
        },
        compress_threshold: match field("compressThreshold")? {
            Some(n) => whole(&n, "compressThreshold")? as usize,
            None => defaults.compress_threshold,
        },
        created_at: field("createdAt")?.map_or(Ok(0), |n| whole(&n, "createdAt"))?,
        fresh_until: field("freshUntil")?.map_or(Ok(0), |n| whole(&n, "freshUntil"))?,
        schema: field("schema")?.and_then(|s| s.as_string()),
        tags: match field("tags")? {
            Some(tags) if Array::is_array(&tags) => Array::from(&tags)
                .iter()
                .map(|t| {
                    t.as_string()
                        .ok_or_else(|| config_error("tags must be strings"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(config_error("tags must be an array of strings")),
            None => Vec::new(),
        },
    };
    let bytes = js(contract::encode_envelope(&value, &options))?;
    Ok(Uint8Array::from(bytes.as_slice()))
}

/// Decodes stored bytes into the value and the header fields.
///
/// # Errors
/// `ECODEC` for anything that is not a valid v1 envelope (foreign bytes, a newer version,
/// corruption).
#[wasm_bindgen(js_name = decodeEnvelope, unchecked_return_type = "Envelope")]
pub fn decode_envelope(
    #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: &[u8],
) -> Result<JsValue, JsValue> {
    let envelope = js(contract::decode_envelope(bytes))?;
    let object = Object::new();
    let set = |name: &str, v: JsValue| Reflect::set(&object, &name.into(), &v).map(|_| ());
    set("value", value::to_js(&envelope.value))?;
    set("codec", envelope.codec.as_str().into())?;
    set("compression", envelope.compression.as_str().into())?;
    set("createdAt", (envelope.created_at as f64).into())?;
    set("freshUntil", (envelope.fresh_until as f64).into())?;
    if let Some(schema) = &envelope.schema {
        set("schema", schema.into())?;
    }
    let tags: Array = envelope.tags.iter().map(JsValue::from).collect();
    set("tags", tags.into())?;
    set("notFound", envelope.not_found.into())?;
    Ok(object.into())
}

/// A codec or compression from its name: core's `FromStr`, which owns the names.
fn named<T: std::str::FromStr<Err = polycache::Error>>(
    name: &JsValue,
    what: &str,
) -> Result<T, JsValue> {
    let text = name
        .as_string()
        .ok_or_else(|| config_error(&format!("{what} must be a string")))?;
    text.parse()
        .map_err(|e: polycache::Error| config_error(e.message()))
}

/// A non-negative integer from a JS number.
fn whole(n: &JsValue, what: &str) -> Result<u64, JsValue> {
    match n.as_f64() {
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= 9_007_199_254_740_991.0 => Ok(f as u64),
        _ => Err(config_error(&format!(
            "{what} must be a non-negative integer"
        ))),
    }
}

/// The TTL a cache would write for `ttlSeconds` with `jitter` (0–1): shortened by
/// `jitter × random`, never below 1 ms (core's `ttl::jittered`). `random` defaults to
/// `Math.random()`; pass it to make the decision reproducible.
#[wasm_bindgen(js_name = jitteredTtl)]
pub fn jittered_ttl(ttl_seconds: f64, jitter: f64, random: Option<f64>) -> Result<f64, JsValue> {
    let ttl = js(polycache::ttl::from_secs(ttl_seconds))?;
    let unit = random.unwrap_or_else(js_sys::Math::random);
    Ok(polycache::ttl::jittered(ttl, jitter, unit).as_secs_f64())
}

/// Whether stored envelope bytes are inside their fresh window at `nowMs` (ms since the
/// epoch; stale-while-revalidate). A value without a window is fresh until it expires.
///
/// # Errors
/// `ECODEC` for bytes that are not a valid envelope.
#[wasm_bindgen(js_name = isFresh)]
pub fn is_fresh(bytes: &[u8], now_ms: f64) -> Result<bool, JsValue> {
    let (header, _) = js(codec::decode(bytes))?;
    Ok(polycache::ttl::is_fresh(&header.meta, now_ms as u64))
}
