//! How a URL and options resolve to a config (README "URLs"), as every binding does it.

use wasm_bindgen::prelude::*;

use crate::errors::js;

/// The config a cache would use for `url` with `options` (JSON text of an options object)
/// laid over its query, as canonical JSON with the credentials redacted.
///
/// # Errors
/// `ECONFIG` for an invalid URL, an unknown option or a bad value.
#[wasm_bindgen(js_name = resolveConfig)]
pub fn resolve_config(url: &str, options: &str) -> Result<String, JsValue> {
    js(polycache::contract::resolve_config(url, options))
}
