//! Redis keys, cluster slots (docs/FORMAT.md §3) and function keys (§5), through
//! `polycache::contract`.

use std::collections::BTreeMap;

use js_sys::{Object, Reflect};
use polycache::{contract, Value};
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
    #[wasm_bindgen(js_name = maxKeyLength)] max_key_length: u32,
    key: &str,
) -> Result<String, JsValue> {
    js(contract::redis_key(
        prefix,
        namespace,
        max_key_length as usize,
        key,
    ))
}

/// The stampede-lock key that goes with a Redis key (same hash tag, same slot).
#[wasm_bindgen(js_name = lockKey)]
pub fn lock_key(#[wasm_bindgen(js_name = redisKey)] redis_key: &str) -> String {
    contract::lock_key(redis_key)
}

/// The Redis Cluster hash tag of a Redis key.
#[wasm_bindgen(js_name = hashTag)]
pub fn hash_tag(#[wasm_bindgen(js_name = redisKey)] redis_key: &str) -> String {
    contract::hash_tag(redis_key).to_owned()
}

/// The Redis Cluster slot of a Redis key.
#[wasm_bindgen]
pub fn slot(#[wasm_bindgen(js_name = redisKey)] redis_key: &str) -> u16 {
    contract::slot(redis_key)
}

/// Named arguments from a plain object (none when `named` is not an object).
fn named_values(named: &JsValue) -> Result<BTreeMap<String, Value>, JsValue> {
    let mut by_name = BTreeMap::new();
    if named.is_object() {
        let object: &Object = named.unchecked_ref();
        for key in Object::keys(object).iter() {
            let v = Reflect::get(object, &key)?;
            by_name.insert(key.as_string().unwrap_or_default(), value::from_js(&v)?);
        }
    }
    Ok(by_name)
}

/// Renders a function-key template with positional and named arguments: `ECONFIG` for a
/// malformed template, `EKEY` for a missing or unrenderable argument.
#[wasm_bindgen(js_name = renderKey)]
pub fn render_key(
    template: &str,
    #[wasm_bindgen(unchecked_param_type = "CacheValue[]")] args: JsValue,
    #[wasm_bindgen(unchecked_optional_param_type = "Record<string, CacheValue>")] named: JsValue,
) -> Result<String, JsValue> {
    let args = value::list_from_js(&args)?;
    js(contract::render_key(
        template,
        &args,
        &named_values(&named)?,
    ))
}

/// The key of a call when no template is given: `<name>:` + 32 hex digits of SHA-256 over
/// the canonical MessagePack of the arguments; `named` arguments (Python's `**kwargs`)
/// count whatever order they were given in.
#[wasm_bindgen(js_name = callKey)]
pub fn call_key(
    #[wasm_bindgen(js_name = functionName)] function_name: &str,
    #[wasm_bindgen(unchecked_param_type = "CacheValue[]")] args: JsValue,
    #[wasm_bindgen(unchecked_optional_param_type = "Record<string, CacheValue>")] named: JsValue,
) -> Result<String, JsValue> {
    let args = value::list_from_js(&args)?;
    Ok(contract::call_key(
        function_name,
        &args,
        &named_values(&named)?,
    ))
}
