//! JS arguments -> Rust, checked by hand rather than by napi's generated glue, so that a
//! wrong argument is an error with an `E*` code (`EKEY` for keys, `ECONFIG` for options and
//! functions) which the methods return as a rejected promise, never a synchronous napi
//! throw (`StringExpected`, `InvalidArg`).
#![allow(unsafe_code)] // FromNapiValue on values whose type was checked first

use std::time::Duration;

use napi::bindgen_prelude::{FromNapiValue, JsObjectValue, Object, Unknown};
use napi::{Env, JsValue as _, Result, ValueType};
use polycache::ErrorKind;

use crate::errors;
use crate::patterns::JsFunction;

fn type_name(ty: ValueType) -> &'static str {
    match ty {
        ValueType::Undefined => "undefined",
        ValueType::Null => "null",
        ValueType::Boolean => "a boolean",
        ValueType::Number => "a number",
        ValueType::String => "a string",
        ValueType::Symbol => "a symbol",
        ValueType::Object => "an object",
        ValueType::Function => "a function",
        ValueType::External => "an external",
        ValueType::BigInt => "a bigint",
        _ => "an unknown value",
    }
}

/// A cache key: a string, else `EKEY` (a TypeError).
pub fn key(env: &Env, value: &Unknown<'_>) -> Result<String> {
    let ty = value.get_type()?;
    if ty != ValueType::String {
        return Err(errors::kind_type_error(
            env,
            ErrorKind::Key,
            format!("a key must be a string, not {}", type_name(ty)),
        ));
    }
    // SAFETY: a string, checked above.
    unsafe { String::from_napi_value(env.raw(), value.raw()) }
}

/// A string argument other than a key (a URL), else `ECONFIG`.
pub fn string(env: &Env, value: &Unknown<'_>, what: &str) -> Result<String> {
    let ty = value.get_type()?;
    if ty != ValueType::String {
        return Err(errors::kind_type_error(
            env,
            ErrorKind::Config,
            format!("{what} must be a string, not {}", type_name(ty)),
        ));
    }
    // SAFETY: a string, checked above.
    unsafe { String::from_napi_value(env.raw(), value.raw()) }
}

/// An array of keys, else `EKEY`.
pub fn keys(env: &Env, value: &Unknown<'_>) -> Result<Vec<String>> {
    if !value.is_array()? {
        return Err(errors::kind_type_error(
            env,
            ErrorKind::Key,
            format!(
                "keys must be an array of strings, not {}",
                type_name(value.get_type()?)
            ),
        ));
    }
    // SAFETY: an array, checked above.
    let array = unsafe { Object::from_napi_value(env.raw(), value.raw()) }?;
    let len: u32 = array.get_named_property("length")?;
    (0..len)
        .map(|i| {
            let item: Unknown<'_> = array.get_element(i)?;
            key(env, &item)
        })
        .collect()
}

/// A function argument (a loader), else `ECONFIG`.
pub fn function<'env>(env: &Env, value: Unknown<'env>, what: &str) -> Result<JsFunction<'env>> {
    let ty = value.get_type()?;
    if ty != ValueType::Function {
        return Err(errors::kind_type_error(
            env,
            ErrorKind::Config,
            format!("{what} must be a function, not {}", type_name(ty)),
        ));
    }
    // SAFETY: a function, checked above.
    unsafe { JsFunction::from_napi_value(env.raw(), value.raw()) }
}

/// An options object (`undefined` and `null` are none), else `ECONFIG`.
pub fn options<'env>(env: &Env, value: Option<Unknown<'env>>) -> Result<Option<Object<'env>>> {
    let Some(value) = value else {
        return Ok(None);
    };
    match value.get_type()? {
        ValueType::Undefined | ValueType::Null => Ok(None),
        // SAFETY: an object, checked.
        ValueType::Object => Ok(Some(unsafe {
            Object::from_napi_value(env.raw(), value.raw())
        }?)),
        ty => Err(errors::kind_type_error(
            env,
            ErrorKind::Config,
            format!("options must be an object, not {}", type_name(ty)),
        )),
    }
}

/// A string option of an options object (`undefined` is none), else `ECONFIG`.
pub fn string_option(
    env: &Env,
    options: Option<&Object<'_>>,
    name: &str,
) -> Result<Option<String>> {
    let Some(options) = options else {
        return Ok(None);
    };
    let value: Unknown<'_> = options.get_named_property(name)?;
    match value.get_type()? {
        ValueType::Undefined => Ok(None),
        // SAFETY: a string, checked.
        ValueType::String => Ok(Some(unsafe {
            String::from_napi_value(env.raw(), value.raw())
        }?)),
        ty => Err(errors::kind_type_error(
            env,
            ErrorKind::Config,
            format!("the {name} option must be a string, not {}", type_name(ty)),
        )),
    }
}

/// The `ttl` option of a per-call options object (`undefined` and `null`: the cache's),
/// checked by core: a finite number of seconds from 0 (no expiry) to core's maximum,
/// else `ECONFIG`.
pub fn ttl(env: &Env, options: Option<Unknown<'_>>) -> Result<Option<Duration>> {
    let Some(options) = self::options(env, options)? else {
        return Ok(None);
    };
    ttl_of(env, &options)
}

/// The `ttl` property of an options object.
pub fn ttl_of(env: &Env, options: &Object<'_>) -> Result<Option<Duration>> {
    let value: Unknown<'_> = options.get_named_property("ttl")?;
    match value.get_type()? {
        ValueType::Undefined | ValueType::Null => Ok(None),
        ValueType::Number => {
            // SAFETY: a number, checked.
            let secs = unsafe { f64::from_napi_value(env.raw(), value.raw()) }?;
            errors::check(env, polycache::ttl::from_secs(secs)).map(Some)
        }
        ty => Err(errors::kind_type_error(
            env,
            ErrorKind::Config,
            format!("ttl must be a number of seconds, not {}", type_name(ty)),
        )),
    }
}

/// The per-call options of an options argument (`undefined` and `null`: none).
pub fn load_options(env: &Env, options: Option<Unknown<'_>>) -> Result<polycache::LoadOptions> {
    match self::options(env, options)? {
        Some(options) => load_options_of(env, &options, &[]),
        None => Ok(polycache::LoadOptions::default()),
    }
}

/// The per-call options of an options object (see `LoadOptions` in index.d.ts). Every own
/// property but the `own` ones (which the caller reads itself) goes to core, which knows
/// the names and checks the values (`LoadOptions::from_overrides`): an unknown or misspelt
/// name is `ECONFIG`, as in Python, not silently ignored.
pub fn load_options_of(
    env: &Env,
    options: &Object<'_>,
    own: &[&str],
) -> Result<polycache::LoadOptions> {
    let mut given = serde_json::Map::new();
    for name in Object::keys(options)? {
        if own.contains(&name.as_str()) {
            continue;
        }
        let value: Unknown<'_> = options.get_named_property(&name)?;
        match value.get_type()? {
            ValueType::Undefined | ValueType::Null => {}
            ValueType::Number => {
                // SAFETY: a number, checked.
                let number = unsafe { f64::from_napi_value(env.raw(), value.raw()) }?;
                // JSON has no NaN or infinities: core sees them as text, and refuses them.
                let json = serde_json::Number::from_f64(number)
                    .map_or_else(|| number.to_string().into(), serde_json::Value::Number);
                given.insert(name, json);
            }
            ty => {
                return Err(errors::kind_type_error(
                    env,
                    ErrorKind::Config,
                    format!("the {name} option must be a number, not {}", type_name(ty)),
                ))
            }
        }
    }
    errors::check(env, polycache::LoadOptions::from_overrides(&given))
}
