//! JS values <-> core's language-neutral [`Value`] (docs/FORMAT.md §2, the Node column).
//!
//! The one file that walks JS values, written against raw Node-API calls because it runs on
//! every `get` and `set`: `null` (and `undefined` inside arrays and objects) is nil, an
//! integral safe `number` is an integer and any other `number` a float, a `bigint` is an
//! integer of at most 64 bits, `Buffer`/`Uint8Array` are bytes, arrays are arrays and plain
//! objects (prototype `Object.prototype` or `null`) are maps. Anything else — functions,
//! symbols, wider bigints, class instances, `Date`, `Map`, cyclic objects — is a TypeError
//! (code `ECODEC`), raised before anything reaches Redis.
#![allow(unsafe_code)] // Node-API is a C API; every call below checks its status.

use std::ptr;

use napi::bindgen_prelude::{FromNapiValue, ToNapiValue, TypeName, ValidateNapiValue};
use napi::{sys, Env, Error, Result, Status, ValueType};
use polycache::codec::{js, Map};
use polycache::Value;

use crate::errors;

/// A [`Value`] crossing the JS boundary in either direction.
#[derive(Debug, Clone, PartialEq)]
pub struct JsValue(pub Value);

/// Nesting deeper than core's decoders accept is refused before anything is stored (a
/// cycle is reported as such before it gets here): the top-level value is at depth 0.
const MAX_DEPTH: usize = polycache::codec::msgpack::MAX_DEPTH;
/// Longest array (and largest object) a cache with `config` accepts: every item costs a
/// decoder at least one value slot of its `maxValueBytes` budget, so a longer array could be
/// written but never read back. Checked before any item is read, so a huge or sparse
/// `length` costs nothing.
pub fn max_items(config: &polycache::Config) -> usize {
    js::max_items(&config.decode_limits())
}

fn check(status: sys::napi_status) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(Error::new(
            Status::from(status),
            "Node-API call failed while converting a value",
        ))
    }
}

/// Why reading stopped: a value that cannot be cached (raised as a TypeError once the
/// recursion has unwound), or a failed Node-API call.
enum Fault {
    Refused(String),
    Napi(Error),
}

impl From<Error> for Fault {
    fn from(err: Error) -> Self {
        Fault::Napi(err)
    }
}

fn refuse<T>(message: impl Into<String>) -> std::result::Result<T, Fault> {
    Err(Fault::Refused(message.into()))
}

fn ok(status: sys::napi_status) -> std::result::Result<(), Fault> {
    check(status).map_err(Fault::Napi)
}

struct Reader {
    env: sys::napi_env,
    /// `Object.prototype`, fetched on the first object met.
    object_prototype: sys::napi_value,
    /// The arrays and objects being read, to detect cycles.
    ancestors: Vec<sys::napi_value>,
    /// Most items an array or object may have (see [`max_items`]).
    max_items: usize,
}

impl Reader {
    unsafe fn read(
        &mut self,
        value: sys::napi_value,
        nested: bool,
    ) -> std::result::Result<Value, Fault> {
        let env = self.env;
        let mut ty = 0;
        ok(sys::napi_typeof(env, value, &mut ty))?;
        match ty {
            sys::ValueType::napi_null => Ok(Value::Nil),
            sys::ValueType::napi_undefined if nested => Ok(Value::Nil),
            sys::ValueType::napi_boolean => {
                let mut b = false;
                ok(sys::napi_get_value_bool(env, value, &mut b))?;
                Ok(Value::Bool(b))
            }
            sys::ValueType::napi_number => {
                let mut n = 0f64;
                ok(sys::napi_get_value_double(env, value, &mut n))?;
                Ok(number(n))
            }
            sys::ValueType::napi_string => Ok(Value::Str(read_string(env, value)?)),
            sys::ValueType::napi_bigint => self.bigint(value),
            sys::ValueType::napi_object => self.object(value),
            sys::ValueType::napi_undefined => {
                refuse("undefined cannot be cached (use null for an empty value)")
            }
            sys::ValueType::napi_function => refuse("a function cannot be cached"),
            sys::ValueType::napi_symbol => refuse("a symbol cannot be cached"),
            _ => refuse("this kind of value cannot be cached"),
        }
    }

    unsafe fn bigint(&mut self, value: sys::napi_value) -> std::result::Result<Value, Fault> {
        let env = self.env;
        let mut sign = 0i32;
        let mut count = 0usize;
        // With both out-pointers null, Node-API reports the number of words.
        ok(sys::napi_get_value_bigint_words(
            env,
            value,
            ptr::null_mut(),
            &mut count,
            ptr::null_mut(),
        ))?;
        if count > 1 {
            return refuse("a bigint wider than 64 bits cannot be cached");
        }
        let mut words = [0u64; 1];
        ok(sys::napi_get_value_bigint_words(
            env,
            value,
            &mut sign,
            &mut count,
            words.as_mut_ptr(),
        ))?;
        let magnitude = if count == 0 { 0 } else { words[0] };
        if sign == 0 {
            return Ok(Value::from(magnitude));
        }
        // -2^63 is the smallest integer of the model.
        if magnitude <= i64::MAX as u64 {
            Ok(Value::Int(-(magnitude as i64)))
        } else if magnitude == 1 << 63 {
            Ok(Value::Int(i64::MIN))
        } else {
            refuse("a bigint below -2^63 cannot be cached")
        }
    }

    unsafe fn object(&mut self, value: sys::napi_value) -> std::result::Result<Value, Fault> {
        let env = self.env;
        let mut is = false;
        ok(sys::napi_is_typedarray(env, value, &mut is))?;
        if is {
            let mut kind = 0;
            let mut len = 0usize;
            let mut data = ptr::null_mut();
            ok(sys::napi_get_typedarray_info(
                env,
                value,
                &mut kind,
                &mut len,
                &mut data,
                ptr::null_mut(),
                ptr::null_mut(),
            ))?;
            if kind != sys::TypedarrayType::uint8_array {
                return refuse(
                    "only Buffer and Uint8Array are cached as bytes (not other typed arrays)",
                );
            }
            let bytes = if len == 0 {
                Vec::new()
            } else {
                std::slice::from_raw_parts(data.cast::<u8>(), len).to_vec()
            };
            return Ok(Value::Bytes(bytes));
        }
        if self.ancestors.len() >= MAX_DEPTH {
            // This container's items would be deeper than MAX_DEPTH.
            return refuse(format!(
                "values nested deeper than {MAX_DEPTH} levels cannot be cached"
            ));
        }
        for &ancestor in &self.ancestors {
            let mut same = false;
            ok(sys::napi_strict_equals(env, ancestor, value, &mut same))?;
            if same {
                return refuse("a cyclic value cannot be cached");
            }
        }
        ok(sys::napi_is_array(env, value, &mut is))?;
        self.ancestors.push(value);
        let result = if is {
            self.array(value)
        } else {
            self.map(value)
        };
        self.ancestors.pop();
        result
    }

    unsafe fn array(&mut self, value: sys::napi_value) -> std::result::Result<Value, Fault> {
        let env = self.env;
        let mut len = 0u32;
        ok(sys::napi_get_array_length(env, value, &mut len))?;
        if len as usize > self.max_items {
            return refuse(format!(
                "an array of {len} items cannot be cached (at most {}, from maxValueBytes)",
                self.max_items
            ));
        }
        let mut items = Vec::with_capacity((len as usize).min(1024));
        for i in 0..len {
            let mut item = ptr::null_mut();
            ok(sys::napi_get_element(env, value, i, &mut item))?;
            let mut ty = 0;
            ok(sys::napi_typeof(env, item, &mut ty))?;
            if ty == sys::ValueType::napi_undefined {
                // A hole reads as undefined too: a sparse array is refused at its first hole
                // rather than stored as a run of nils.
                let mut has = false;
                ok(sys::napi_has_element(env, value, i, &mut has))?;
                if !has {
                    return refuse(format!(
                        "a sparse array cannot be cached (index {i} of {len} is a hole)"
                    ));
                }
            }
            items.push(self.read(item, true)?);
        }
        Ok(Value::Array(items))
    }

    unsafe fn map(&mut self, value: sys::napi_value) -> std::result::Result<Value, Fault> {
        let env = self.env;
        let mut proto = ptr::null_mut();
        ok(sys::napi_get_prototype(env, value, &mut proto))?;
        let mut proto_type = 0;
        ok(sys::napi_typeof(env, proto, &mut proto_type))?;
        if proto_type != sys::ValueType::napi_null {
            let mut plain = false;
            ok(sys::napi_strict_equals(
                env,
                proto,
                self.object_prototype()?,
                &mut plain,
            ))?;
            if !plain {
                return refuse(
                    "only plain objects are cached as maps (not class instances, Date, Map, Set …)",
                );
            }
        }
        let mut keys = ptr::null_mut();
        ok(sys::napi_get_all_property_names(
            env,
            value,
            sys::KeyCollectionMode::own_only,
            sys::KeyFilter::enumerable | sys::KeyFilter::skip_symbols,
            sys::KeyConversion::numbers_to_strings,
            &mut keys,
        ))?;
        let mut len = 0u32;
        ok(sys::napi_get_array_length(env, keys, &mut len))?;
        if len as usize > self.max_items {
            return refuse(format!(
                "an object of {len} properties cannot be cached (at most {}, from maxValueBytes)",
                self.max_items
            ));
        }
        let mut map = Map::with_capacity(len as usize);
        for i in 0..len {
            let mut key = ptr::null_mut();
            ok(sys::napi_get_element(env, keys, i, &mut key))?;
            let mut item = ptr::null_mut();
            ok(sys::napi_get_property(env, value, key, &mut item))?;
            map.insert(read_string(env, key)?, self.read(item, true)?);
        }
        Ok(Value::Map(map))
    }

    unsafe fn object_prototype(&mut self) -> std::result::Result<sys::napi_value, Fault> {
        if self.object_prototype.is_null() {
            let env = self.env;
            let mut global = ptr::null_mut();
            ok(sys::napi_get_global(env, &mut global))?;
            let mut object = ptr::null_mut();
            ok(sys::napi_get_named_property(
                env,
                global,
                c"Object".as_ptr(),
                &mut object,
            ))?;
            ok(sys::napi_get_named_property(
                env,
                object,
                c"prototype".as_ptr(),
                &mut self.object_prototype,
            ))?;
        }
        Ok(self.object_prototype)
    }
}

/// A `number` by core's JS rule: an integral safe number is an integer (so `1.0` is `1`).
fn number(n: f64) -> Value {
    match js::number(n) {
        js::Number::Int(i) => Value::Int(i),
        js::Number::Float(f) => Value::Float(f),
    }
}

unsafe fn read_string(env: sys::napi_env, value: sys::napi_value) -> Result<String> {
    let mut len = 0usize;
    check(sys::napi_get_value_string_utf8(
        env,
        value,
        ptr::null_mut(),
        0,
        &mut len,
    ))?;
    let mut buf = vec![0u8; len + 1];
    let mut written = 0usize;
    check(sys::napi_get_value_string_utf8(
        env,
        value,
        buf.as_mut_ptr().cast(),
        buf.len(),
        &mut written,
    ))?;
    buf.truncate(written);
    // Node-API writes UTF-8 (lone surrogates become U+FFFD), so this does not fail.
    String::from_utf8(buf).map_err(|e| Error::new(Status::InvalidArg, e.to_string()))
}

thread_local! {
    /// `JSON.parse` of this thread's environment, kept by reference.
    static JSON_PARSE: std::cell::Cell<(sys::napi_env, sys::napi_ref)> =
        const { std::cell::Cell::new((ptr::null_mut(), ptr::null_mut())) };
}

unsafe fn json_parse(env: sys::napi_env) -> Result<sys::napi_value> {
    let (cached_env, reference) = JSON_PARSE.get();
    let mut parse = ptr::null_mut();
    if cached_env == env && !reference.is_null() {
        check(sys::napi_get_reference_value(env, reference, &mut parse))?;
        if !parse.is_null() {
            return Ok(parse);
        }
    }
    let mut global = ptr::null_mut();
    let mut json = ptr::null_mut();
    check(sys::napi_get_global(env, &mut global))?;
    check(sys::napi_get_named_property(
        env,
        global,
        c"JSON".as_ptr(),
        &mut json,
    ))?;
    check(sys::napi_get_named_property(
        env,
        json,
        c"parse".as_ptr(),
        &mut parse,
    ))?;
    let mut reference = ptr::null_mut();
    check(sys::napi_create_reference(env, parse, 1, &mut reference))?;
    JSON_PARSE.set((env, reference));
    Ok(parse)
}

/// Maps and arrays that JSON holds exactly for JS are built by V8's `JSON.parse` from the
/// text core's [`js::JsonText`] writes: measured, several times faster than one Node-API
/// call per property (and, like it, `"__proto__"` becomes an own property).
unsafe fn write_json(env: sys::napi_env, value: &Value) -> Result<Option<sys::napi_value>> {
    let mut text = js::JsonText::default();
    if value.build_into(&mut text).is_err() {
        return Ok(None);
    }
    let Ok(text) = text.finish() else {
        return Ok(None);
    };
    let mut string = ptr::null_mut();
    check(sys::napi_create_string_utf8(
        env,
        text.as_ptr().cast(),
        text.len() as isize,
        &mut string,
    ))?;
    let parse = json_parse(env)?;
    let mut undefined = ptr::null_mut();
    check(sys::napi_get_undefined(env, &mut undefined))?;
    let mut out = ptr::null_mut();
    check(sys::napi_call_function(
        env, undefined, parse, 1, &string, &mut out,
    ))?;
    Ok(Some(out))
}

unsafe fn write(env: sys::napi_env, value: &Value) -> Result<sys::napi_value> {
    if matches!(value, Value::Array(_) | Value::Map(_)) {
        if let Some(out) = write_json(env, value)? {
            return Ok(out);
        }
    }
    write_direct(env, value)
}

unsafe fn write_direct(env: sys::napi_env, value: &Value) -> Result<sys::napi_value> {
    let mut out = ptr::null_mut();
    match value {
        Value::Nil => check(sys::napi_get_null(env, &mut out))?,
        Value::Bool(b) => check(sys::napi_get_boolean(env, *b, &mut out))?,
        Value::Int(i) if js::is_safe(*i) => check(sys::napi_create_int64(env, *i, &mut out))?,
        Value::Int(i) => check(sys::napi_create_bigint_int64(env, *i, &mut out))?,
        Value::UInt(u) => check(sys::napi_create_bigint_uint64(env, *u, &mut out))?,
        Value::Float(f) => check(sys::napi_create_double(env, *f, &mut out))?,
        Value::Str(s) => check(sys::napi_create_string_utf8(
            env,
            s.as_ptr().cast(),
            s.len() as isize,
            &mut out,
        ))?,
        Value::Bytes(b) => check(sys::napi_create_buffer_copy(
            env,
            b.len(),
            b.as_ptr().cast(),
            ptr::null_mut(),
            &mut out,
        ))?,
        Value::Array(items) => {
            check(sys::napi_create_array_with_length(
                env,
                items.len(),
                &mut out,
            ))?;
            for (i, item) in items.iter().enumerate() {
                check(sys::napi_set_element(env, out, i as u32, write(env, item)?))?;
            }
        }
        Value::Map(map) => {
            check(sys::napi_create_object(env, &mut out))?;
            for (key, item) in map {
                let mut name = ptr::null_mut();
                check(sys::napi_create_string_utf8(
                    env,
                    key.as_ptr().cast(),
                    key.len() as isize,
                    &mut name,
                ))?;
                let item = write(env, item)?;
                if key == "__proto__" {
                    // Assignment would replace the prototype; define an own property.
                    let descriptor = sys::napi_property_descriptor {
                        utf8name: ptr::null(),
                        name,
                        method: None,
                        getter: None,
                        setter: None,
                        value: item,
                        attributes: sys::PropertyAttributes::writable
                            | sys::PropertyAttributes::enumerable
                            | sys::PropertyAttributes::configurable,
                        data: ptr::null_mut(),
                    };
                    check(sys::napi_define_properties(env, out, 1, &descriptor))?;
                } else {
                    check(sys::napi_set_property(env, out, name, item))?;
                }
            }
        }
    }
    Ok(out)
}

/// Reads a JS value; `undefined` at the top is refused (it is nil only inside containers).
///
/// # Safety
/// `env` and `value` must be live handles of the current Node-API call.
pub(crate) unsafe fn read_value(env: sys::napi_env, value: sys::napi_value) -> Result<Value> {
    read_top(env, value, false, default_max_items())
}

fn default_max_items() -> usize {
    js::max_items(&polycache::codec::DecodeLimits::default())
}

unsafe fn read_top(
    env: sys::napi_env,
    value: sys::napi_value,
    nested: bool,
    max_items: usize,
) -> Result<Value> {
    let mut reader = Reader {
        env,
        object_prototype: ptr::null_mut(),
        ancestors: Vec::new(),
        max_items,
    };
    match reader.read(value, nested) {
        Ok(value) => Ok(value),
        Err(Fault::Refused(message)) => Err(errors::type_error(&Env::from_raw(env), message)),
        Err(Fault::Napi(err)) => Err(err),
    }
}

/// Like [`read_value`], with `undefined` read as nil (function arguments used in keys).
///
/// # Safety
/// As [`read_value`].
pub(crate) unsafe fn read_value_lenient(
    env: sys::napi_env,
    value: sys::napi_value,
) -> Result<Value> {
    read_top(env, value, true, default_max_items())
}

/// A JS value handed back as it is (a promise, a function).
#[derive(Debug, Clone, Copy)]
pub struct RawValue(pub sys::napi_value);

impl ToNapiValue for RawValue {
    unsafe fn to_napi_value(_: sys::napi_env, value: Self) -> Result<sys::napi_value> {
        Ok(value.0)
    }
}

impl FromNapiValue for JsValue {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
        read_value(env, value).map(JsValue)
    }
}

impl ToNapiValue for JsValue {
    unsafe fn to_napi_value(env: sys::napi_env, value: Self) -> Result<sys::napi_value> {
        write(env, &value.0)
    }
}

impl ToNapiValue for &JsValue {
    unsafe fn to_napi_value(env: sys::napi_env, value: Self) -> Result<sys::napi_value> {
        write(env, &value.0)
    }
}

impl TypeName for JsValue {
    fn type_name() -> &'static str {
        "CacheValue"
    }
    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

impl ValidateNapiValue for JsValue {}

/// Writes an optional value: `undefined` for a miss, so a cached `null` stays distinct.
///
/// # Safety
/// `env` must be live on the current thread.
pub(crate) unsafe fn write_option(
    env: sys::napi_env,
    value: Option<&Value>,
) -> Result<sys::napi_value> {
    match value {
        Some(value) => write(env, value),
        None => {
            let mut out = ptr::null_mut();
            check(sys::napi_get_undefined(env, &mut out))?;
            Ok(out)
        }
    }
}

/// `value` as a JS value (safe wrapper for code outside this file).
pub fn to_js(env: &Env, value: &Value) -> Result<sys::napi_value> {
    // SAFETY: a live `Env` means we are on its JS thread.
    unsafe { write(env.raw(), value) }
}

/// A found value, or `undefined` for a miss.
pub fn to_js_option(env: &Env, value: Option<&Value>) -> Result<sys::napi_value> {
    // SAFETY: as `to_js`.
    unsafe { write_option(env.raw(), value) }
}

/// An array of found values (`undefined` for misses).
pub fn to_js_options(env: &Env, values: &[Option<Value>]) -> Result<sys::napi_value> {
    let raw = env.raw();
    let mut array = ptr::null_mut();
    // SAFETY: as `to_js`.
    unsafe {
        check(sys::napi_create_array_with_length(
            raw,
            values.len(),
            &mut array,
        ))?;
        for (i, item) in values.iter().enumerate() {
            check(sys::napi_set_element(
                raw,
                array,
                i as u32,
                write_option(raw, item.as_ref())?,
            ))?;
        }
    }
    Ok(array)
}

/// Reads a function argument for a key: `undefined` is nil.
pub fn read_lenient(env: &Env, value: &napi::bindgen_prelude::Unknown<'_>) -> Result<Value> {
    use napi::JsValue as _;
    // SAFETY: a live `Env` and a value of the current call.
    unsafe { read_value_lenient(env.raw(), value.raw()) }
}

/// Reads a JS value to store in a cache with `config` (its `maxValueBytes` bounds arrays).
pub fn read_for(
    env: &Env,
    value: &napi::bindgen_prelude::Unknown<'_>,
    config: &polycache::Config,
) -> Result<Value> {
    use napi::JsValue as _;
    // SAFETY: a live `Env` and a value of the current call.
    unsafe { read_top(env.raw(), value.raw(), false, max_items(config)) }
}
