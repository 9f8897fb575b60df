//! Redis keys, cluster slots (docs/FORMAT.md §3) and function keys (§5).

use std::collections::BTreeMap;

use js_sys::{Object, Reflect};
use polycache::key::{hash_tag, slot as cluster_slot};
use polycache::{call_key, KeySchema, KeyTemplate};
use wasm_bindgen::prelude::*;

use crate::errors::js;
use crate::value;

/// The Redis key of a user key under a prefix and namespace.
///
/// # Errors
/// `ECONFIG` for an empty prefix or namespace or one with braces; `EKEY` for an empty key.
#[wasm_bindgen(js_name = redisKey)]
pub fn redis_key(
    prefix: &str,
    namespace: &str,
    max_key_length: u32,
    key: &str,
) -> Result<String, JsValue> {
    js(KeySchema::new(prefix, namespace, max_key_length as usize)
        .and_then(|schema| schema.redis_key(key)))
}

/// The stampede-lock key that goes with a Redis key (same hash tag, same slot).
#[wasm_bindgen(js_name = lockKey)]
pub fn lock_key(redis_key: &str) -> String {
    KeySchema::lock_key(redis_key)
}

/// The Redis Cluster hash tag of a Redis key.
#[wasm_bindgen(js_name = hashTag)]
pub fn hash_tag_of(redis_key: &str) -> String {
    // `{` and `}` are ASCII, so the tag of a UTF-8 key is UTF-8.
    String::from_utf8_lossy(hash_tag(redis_key.as_bytes())).into_owned()
}

/// The Redis Cluster slot of a Redis key.
#[wasm_bindgen]
pub fn slot(redis_key: &str) -> u16 {
    cluster_slot(redis_key.as_bytes())
}

/// Renders a function-key template with positional and named arguments: `ECONFIG` for a
/// malformed template, `EKEY` for a missing or unrenderable argument.
#[wasm_bindgen(js_name = renderKey)]
pub fn render_key(
    template: &str,
    #[wasm_bindgen(unchecked_param_type = "CacheValue[]")] args: JsValue,
    #[wasm_bindgen(unchecked_param_type = "Record<string, CacheValue> | undefined")] named: JsValue,
) -> Result<String, JsValue> {
    let args = value::list_from_js(&args)?;
    let mut by_name = BTreeMap::new();
    if named.is_object() {
        let object: &Object = named.unchecked_ref();
        for key in Object::keys(object).iter() {
            let v = Reflect::get(object, &key)?;
            by_name.insert(key.as_string().unwrap_or_default(), value::from_js(&v)?);
        }
    }
    js(KeyTemplate::parse(template).and_then(|t| t.render(&args, &by_name)))
}

/// The key of a call when no template is given: `<name>:` + 32 hex digits of SHA-256 over
/// the canonical MessagePack of the arguments.
#[wasm_bindgen(js_name = callKey)]
pub fn call_key_of(
    function_name: &str,
    #[wasm_bindgen(unchecked_param_type = "CacheValue[]")] args: JsValue,
) -> Result<String, JsValue> {
    Ok(call_key(function_name, &value::list_from_js(&args)?))
}
