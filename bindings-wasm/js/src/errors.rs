//! Core errors to JS errors: the one place the mapping lives. As in the Node package, every
//! error is an `Error` whose `code` is `E` + the upper-cased `ErrorKind` name (`ECODEC`,
//! `EKEY`, `ECONFIG` …); a JS value that cannot be cached is a `TypeError` with `ECODEC`.

use js_sys::Reflect;
use polycache::ErrorKind;
use wasm_bindgen::{JsCast, JsValue};

/// The `code` of a kind: core's [`ErrorKind::code`].
pub(crate) fn code(kind: ErrorKind) -> &'static str {
    kind.code()
}

fn with_code(err: js_sys::Error, code: &str) -> JsValue {
    // Setting a property on a fresh Error object cannot fail.
    let _ = Reflect::set(&err, &"code".into(), &code.into());
    err.unchecked_into()
}

/// A JS `Error` for a core error: core's message without the kind, which is the `code`.
pub(crate) fn to_js(err: polycache::Error) -> JsValue {
    with_code(js_sys::Error::new(err.message()), code(err.kind()))
}

/// A JS `TypeError` (code `ECODEC`) for a value that cannot be cached.
pub(crate) fn type_error(message: &str) -> JsValue {
    let err: js_sys::Error = js_sys::TypeError::new(message).unchecked_into();
    with_code(err, code(ErrorKind::Codec))
}

/// A JS `TypeError` (code `ECONFIG`) for a malformed argument such as a node list.
pub(crate) fn config_error(message: &str) -> JsValue {
    let err: js_sys::Error = js_sys::TypeError::new(message).unchecked_into();
    with_code(err, code(ErrorKind::Config))
}

/// Maps a core result.
pub(crate) fn js<T>(result: polycache::Result<T>) -> Result<T, JsValue> {
    result.map_err(to_js)
}
