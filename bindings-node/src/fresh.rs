//! Freshness in JS: the `Entry` object `getEntry` resolves to (index.d.ts, `Entry<T>`), and
//! `NOT_FOUND`, what a loader returns to say the key has no value.

#![allow(unsafe_code)] // NOT_FOUND: a registered symbol, made and compared with Node-API

use napi::bindgen_prelude::ToNapiValue;
use napi::{sys, Env, Result};
use polycache::{LoadedEntry, Value};

use crate::value;

/// `{ value, found, stale, freshness, age }` (core's [`LoadedEntry`]): `age` in seconds,
/// `null` when unknown or not found.
pub fn entry_to_js(env: &Env, entry: &LoadedEntry) -> Result<sys::napi_value> {
    let age = entry
        .age
        .map_or(Value::Nil, |age| Value::Float(age.as_secs_f64()));
    let entry = Value::Map(
        [
            ("value", entry.value.clone()),
            ("found", Value::Bool(entry.found)),
            ("stale", Value::Bool(entry.stale)),
            ("freshness", Value::from(entry.freshness.as_str())),
            ("age", age),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect(),
    );
    value::to_js(env, &entry)
}

/// `NOT_FOUND`'s key in the global symbol registry: the symbol is
/// `Symbol.for('polycache.NOT_FOUND')`, the same in every copy of the addon and realm.
const NOT_FOUND_KEY: &str = "polycache.NOT_FOUND";

/// The type of `NOT_FOUND` (index.d.ts: `NotFound`, a symbol).
pub struct NotFound;

/// What a loader returns to say the key has no value (negative caching): `getOrLoad`
/// then resolves to `undefined`, `getEntry` to `{ found: false }`, and with `negativeTtl`
/// the answer is cached. `null` is a value like any other.
#[napi_derive::napi]
pub const NOT_FOUND: NotFound = NotFound;

impl ToNapiValue for NotFound {
    unsafe fn to_napi_value(env: sys::napi_env, _: Self) -> Result<sys::napi_value> {
        symbol(env)
    }
}

fn check(status: sys::napi_status, what: &str) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(napi::Error::new(
            napi::Status::from(status),
            what.to_owned(),
        ))
    }
}

/// `Symbol.for('polycache.NOT_FOUND')`.
unsafe fn symbol(env: sys::napi_env) -> Result<sys::napi_value> {
    let mut global = std::ptr::null_mut();
    let mut symbol_class = std::ptr::null_mut();
    let mut symbol_for = std::ptr::null_mut();
    let mut key = std::ptr::null_mut();
    let mut out = std::ptr::null_mut();
    check(sys::napi_get_global(env, &mut global), "napi_get_global")?;
    check(
        sys::napi_get_named_property(env, global, c"Symbol".as_ptr(), &mut symbol_class),
        "Symbol",
    )?;
    check(
        sys::napi_get_named_property(env, symbol_class, c"for".as_ptr(), &mut symbol_for),
        "Symbol.for",
    )?;
    check(
        sys::napi_create_string_utf8(
            env,
            NOT_FOUND_KEY.as_ptr().cast(),
            NOT_FOUND_KEY.len() as isize,
            &mut key,
        ),
        "napi_create_string_utf8",
    )?;
    check(
        sys::napi_call_function(env, symbol_class, symbol_for, 1, &key, &mut out),
        "Symbol.for()",
    )?;
    Ok(out)
}

/// Whether a JS value is `NOT_FOUND`.
///
/// # Safety
/// `env` and `value` are live handles on the JS thread.
pub unsafe fn is_not_found(env: sys::napi_env, value: sys::napi_value) -> Result<bool> {
    let mut ty = 0;
    check(sys::napi_typeof(env, value, &mut ty), "napi_typeof")?;
    if ty != sys::ValueType::napi_symbol {
        return Ok(false);
    }
    let mut same = false;
    check(
        sys::napi_strict_equals(env, value, symbol(env)?, &mut same),
        "napi_strict_equals",
    )?;
    Ok(same)
}
