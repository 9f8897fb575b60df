//! JS values <-> core's payloads and [`Value`] (docs/FORMAT.md §2, the Node column).
//!
//! The one file that walks JS values, written against raw Node-API calls because it runs on
//! every `get` and `set` (docs/node.md, "Values in and out"). A `set` walks its value
//! straight into core's [`Encoder`]; a read's bytes are transcoded by core on a runtime
//! thread ([`prepare`]) into what V8 makes objects from, and only what JSON cannot carry is
//! built here one value at a time ([`NapiBuild`]). The rules: `null` (and `undefined` inside arrays and objects) is nil, an
//! integral safe `number` is an integer and any other `number` a float, a `bigint` is an
//! integer of at most 64 bits, `Buffer`/`Uint8Array` are bytes, arrays are arrays and plain
//! objects (prototype `Object.prototype` or `null`) are maps. Anything else — functions,
//! symbols, wider bigints, class instances, `Date`, `Map`, cyclic objects — is a TypeError
//! (code `ECODEC`), raised before anything reaches Redis.
#![allow(unsafe_code)] // Node-API is a C API; every call below checks its status.

use std::ptr;

use napi::bindgen_prelude::{FromNapiValue, ToNapiValue, TypeName, ValidateNapiValue};
use napi::{sys, Env, Error, Result, Status, ValueType};
use polycache::codec::js::{self, Transcode, Transcoded};
use polycache::codec::{
    self, Build, DecodeError, DecodeLimits, Encoded, Encoder, Header, Map, PREALLOC_ITEMS,
};
use polycache::Stored;
use polycache::Value;

use crate::errors;

/// Names a JS value type `CacheValue` to napi (any JS value; this file checks it).
macro_rules! cache_value_type {
    ($name:ty) => {
        impl TypeName for $name {
            fn type_name() -> &'static str {
                "CacheValue"
            }
            fn value_type() -> ValueType {
                ValueType::Unknown
            }
        }

        impl ValidateNapiValue for $name {}
    };
}

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
    /// Core's encoder refused what it was given (bytes in a JSON cache).
    Core(polycache::Error),
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

/// Where a walk of a JS value goes: core's [`Encoder`] (a `set`: the payload in one pass)
/// or a [`Value`] tree (function arguments, loader results). Calls mirror the encoder's.
trait Sink {
    fn nil(&mut self) -> std::result::Result<(), Fault>;
    fn bool(&mut self, v: bool) -> std::result::Result<(), Fault>;
    fn int(&mut self, v: i64) -> std::result::Result<(), Fault>;
    fn uint(&mut self, v: u64) -> std::result::Result<(), Fault>;
    fn float(&mut self, v: f64) -> std::result::Result<(), Fault>;
    fn str(&mut self, v: &str) -> std::result::Result<(), Fault>;
    fn bytes(&mut self, v: &[u8]) -> std::result::Result<(), Fault>;
    fn begin_array(&mut self, len: usize) -> std::result::Result<(), Fault>;
    fn end_array(&mut self) -> std::result::Result<(), Fault>;
    fn begin_map(&mut self, len: usize) -> std::result::Result<(), Fault>;
    fn key(&mut self, key: &str) -> std::result::Result<(), Fault>;
    fn end_map(&mut self) -> std::result::Result<(), Fault>;
}

fn core(r: polycache::Result<()>) -> std::result::Result<(), Fault> {
    r.map_err(Fault::Core)
}

impl Sink for Encoder {
    fn nil(&mut self) -> std::result::Result<(), Fault> {
        core(Encoder::nil(self))
    }
    fn bool(&mut self, v: bool) -> std::result::Result<(), Fault> {
        core(Encoder::bool(self, v))
    }
    fn int(&mut self, v: i64) -> std::result::Result<(), Fault> {
        core(Encoder::int(self, v))
    }
    fn uint(&mut self, v: u64) -> std::result::Result<(), Fault> {
        core(Encoder::uint(self, v))
    }
    fn float(&mut self, v: f64) -> std::result::Result<(), Fault> {
        core(Encoder::float(self, v))
    }
    fn str(&mut self, v: &str) -> std::result::Result<(), Fault> {
        core(Encoder::str(self, v))
    }
    fn bytes(&mut self, v: &[u8]) -> std::result::Result<(), Fault> {
        core(Encoder::bytes(self, v))
    }
    fn begin_array(&mut self, len: usize) -> std::result::Result<(), Fault> {
        core(Encoder::begin_array(self, len))
    }
    fn end_array(&mut self) -> std::result::Result<(), Fault> {
        core(Encoder::end_array(self))
    }
    fn begin_map(&mut self, len: usize) -> std::result::Result<(), Fault> {
        core(Encoder::begin_map(self, len))
    }
    fn key(&mut self, key: &str) -> std::result::Result<(), Fault> {
        core(Encoder::key(self, key))
    }
    fn end_map(&mut self) -> std::result::Result<(), Fault> {
        core(Encoder::end_map(self))
    }
}

/// Builds a [`Value`]: containers being filled, innermost last.
#[derive(Default)]
struct TreeSink {
    open: Vec<Open>,
    done: Option<Value>,
}

enum Open {
    Array(Vec<Value>),
    Map(Map, Option<String>),
}

impl TreeSink {
    fn put(&mut self, value: Value) -> std::result::Result<(), Fault> {
        match self.open.last_mut() {
            Some(Open::Array(items)) => items.push(value),
            Some(Open::Map(map, key)) => {
                if let Some(key) = key.take() {
                    map.insert(key, value);
                }
            }
            None => self.done = Some(value),
        }
        Ok(())
    }
}

impl Sink for TreeSink {
    fn nil(&mut self) -> std::result::Result<(), Fault> {
        self.put(Value::Nil)
    }
    fn bool(&mut self, v: bool) -> std::result::Result<(), Fault> {
        self.put(Value::Bool(v))
    }
    fn int(&mut self, v: i64) -> std::result::Result<(), Fault> {
        self.put(Value::Int(v))
    }
    fn uint(&mut self, v: u64) -> std::result::Result<(), Fault> {
        self.put(Value::from(v))
    }
    fn float(&mut self, v: f64) -> std::result::Result<(), Fault> {
        self.put(Value::Float(v))
    }
    fn str(&mut self, v: &str) -> std::result::Result<(), Fault> {
        self.put(Value::Str(v.to_owned()))
    }
    fn bytes(&mut self, v: &[u8]) -> std::result::Result<(), Fault> {
        self.put(Value::Bytes(v.to_vec()))
    }
    fn begin_array(&mut self, len: usize) -> std::result::Result<(), Fault> {
        self.open
            .push(Open::Array(Vec::with_capacity(len.min(1024))));
        Ok(())
    }
    fn end_array(&mut self) -> std::result::Result<(), Fault> {
        match self.open.pop() {
            Some(Open::Array(items)) => self.put(Value::Array(items)),
            _ => Ok(()),
        }
    }
    fn begin_map(&mut self, len: usize) -> std::result::Result<(), Fault> {
        self.open
            .push(Open::Map(Map::with_capacity(len.min(1024)), None));
        Ok(())
    }
    fn key(&mut self, key: &str) -> std::result::Result<(), Fault> {
        if let Some(Open::Map(_, slot)) = self.open.last_mut() {
            *slot = Some(key.to_owned());
        }
        Ok(())
    }
    fn end_map(&mut self) -> std::result::Result<(), Fault> {
        match self.open.pop() {
            Some(Open::Map(map, _)) => self.put(Value::Map(map)),
            _ => Ok(()),
        }
    }
}

/// Walks one JS value into a [`Sink`], applying the JS value rules (module docs).
struct Reader<'s, S> {
    env: sys::napi_env,
    sink: &'s mut S,
    /// `Object.prototype`, fetched on the first object met.
    object_prototype: sys::napi_value,
    /// The arrays and objects being read, to detect cycles.
    ancestors: Vec<sys::napi_value>,
    /// Most items an array or object may have (see [`max_items`]).
    max_items: usize,
    /// Reused for every string read (one Node-API call for a short string, not two).
    text: Vec<u8>,
}

impl<S: Sink> Reader<'_, S> {
    unsafe fn read(
        &mut self,
        value: sys::napi_value,
        nested: bool,
    ) -> std::result::Result<(), Fault> {
        let env = self.env;
        let mut ty = 0;
        ok(sys::napi_typeof(env, value, &mut ty))?;
        match ty {
            sys::ValueType::napi_null => self.sink.nil(),
            sys::ValueType::napi_undefined if nested => self.sink.nil(),
            sys::ValueType::napi_boolean => {
                let mut b = false;
                ok(sys::napi_get_value_bool(env, value, &mut b))?;
                self.sink.bool(b)
            }
            sys::ValueType::napi_number => {
                let mut n = 0f64;
                ok(sys::napi_get_value_double(env, value, &mut n))?;
                self.number(n)
            }
            sys::ValueType::napi_string => self.string(value, S::str),
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

    /// A `number` by core's rule: an integral safe one is an integer, any other a float.
    fn number(&mut self, n: f64) -> std::result::Result<(), Fault> {
        match js::number(n) {
            js::Number::Int(i) => self.sink.int(i),
            js::Number::Float(f) => self.sink.float(f),
        }
    }

    /// Reads the JS string `value` through the reused buffer and hands it to `put` (a
    /// string value or a map key).
    unsafe fn string(
        &mut self,
        value: sys::napi_value,
        put: impl FnOnce(&mut S, &str) -> std::result::Result<(), Fault>,
    ) -> std::result::Result<(), Fault> {
        let mut text = std::mem::take(&mut self.text);
        let written = match read_string_into(self.env, value, &mut text) {
            Ok(s) => put(self.sink, s),
            Err(err) => Err(Fault::Napi(err)),
        };
        self.text = text;
        written
    }

    unsafe fn bigint(&mut self, value: sys::napi_value) -> std::result::Result<(), Fault> {
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
            return self.sink.uint(magnitude);
        }
        // -2^63 is the smallest integer of the model.
        if magnitude <= i64::MAX as u64 {
            self.sink.int(-(magnitude as i64))
        } else if magnitude == 1 << 63 {
            self.sink.int(i64::MIN)
        } else {
            refuse("a bigint below -2^63 cannot be cached")
        }
    }

    unsafe fn object(&mut self, value: sys::napi_value) -> std::result::Result<(), Fault> {
        let env = self.env;
        if let Some((kind, len, data)) = typed_array(env, value)? {
            if kind != sys::TypedarrayType::uint8_array {
                return refuse(
                    "only Buffer and Uint8Array are cached as bytes (not other typed arrays)",
                );
            }
            let bytes: &[u8] = if len == 0 {
                &[]
            } else {
                std::slice::from_raw_parts(data.cast::<u8>(), len)
            };
            return self.sink.bytes(bytes);
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
        let mut is = false;
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

    unsafe fn array(&mut self, value: sys::napi_value) -> std::result::Result<(), Fault> {
        let env = self.env;
        let mut len = 0u32;
        ok(sys::napi_get_array_length(env, value, &mut len))?;
        if len as usize > self.max_items {
            return refuse(format!(
                "an array of {len} items cannot be cached (at most {}, from maxValueBytes)",
                self.max_items
            ));
        }
        if len >= NUMBERS_FROM {
            if let Some(numbers) = self.numbers(value)? {
                self.sink.begin_array(numbers.len())?;
                for &n in numbers {
                    self.number(n)?;
                }
                return self.sink.end_array();
            }
        }
        self.sink.begin_array(len as usize)?;
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
            self.read(item, true)?;
        }
        self.sink.end_array()
    }

    /// The items of an array whose items are all numbers, copied by one JS call into a
    /// `Float64Array` (a few ns per item, where reading each with Node-API costs ~100);
    /// `None` for any other array (a hole, or any item that is not a `number`, stops it).
    /// Valid while `value`'s scope is.
    unsafe fn numbers<'scope>(
        &self,
        value: sys::napi_value,
    ) -> std::result::Result<Option<&'scope [f64]>, Fault> {
        let env = self.env;
        let typed = call_helper(env, Helper::ArrayToNumbers, value)?;
        let Some((kind, len, data)) = typed_array(env, typed)? else {
            return Ok(None);
        };
        if kind != sys::TypedarrayType::float64_array || len == 0 {
            return Ok(None);
        }
        Ok(Some(std::slice::from_raw_parts(data.cast::<f64>(), len)))
    }

    unsafe fn map(&mut self, value: sys::napi_value) -> std::result::Result<(), Fault> {
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
        self.sink.begin_map(len as usize)?;
        for i in 0..len {
            let mut key = ptr::null_mut();
            ok(sys::napi_get_element(env, keys, i, &mut key))?;
            let mut item = ptr::null_mut();
            ok(sys::napi_get_property(env, value, key, &mut item))?;
            self.string(key, S::key)?;
            self.read(item, true)?;
        }
        self.sink.end_map()
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

/// A typed array's element type, length (in elements) and data; `None` for any other value.
/// The data is valid while `value`'s scope is.
unsafe fn typed_array(
    env: sys::napi_env,
    value: sys::napi_value,
) -> Result<Option<(sys::napi_typedarray_type, usize, *mut std::ffi::c_void)>> {
    let mut is = false;
    check(sys::napi_is_typedarray(env, value, &mut is))?;
    if !is {
        return Ok(None);
    }
    let mut kind = 0;
    let mut len = 0usize;
    let mut data = ptr::null_mut();
    check(sys::napi_get_typedarray_info(
        env,
        value,
        &mut kind,
        &mut len,
        &mut data,
        ptr::null_mut(),
        ptr::null_mut(),
    ))?;
    Ok(Some((kind, len, data)))
}

/// Reads a JS string's UTF-8 into `buf` (reused): one Node-API call when it fits, a second
/// to size the buffer when it may not have.
unsafe fn read_string_into(
    env: sys::napi_env,
    value: sys::napi_value,
    buf: &mut Vec<u8>,
) -> Result<&str> {
    if buf.len() < 256 {
        buf.resize(256, 0);
    }
    // Copies into `buf` (NUL-terminated) or, with `None`, only measures; the byte count.
    let utf8 = |buf: Option<&mut [u8]>| -> Result<usize> {
        let (data, len) = buf.map_or((ptr::null_mut(), 0), |b| (b.as_mut_ptr(), b.len()));
        let mut written = 0usize;
        check(sys::napi_get_value_string_utf8(
            env,
            value,
            data.cast(),
            len,
            &mut written,
        ))?;
        Ok(written)
    };
    let mut written = utf8(Some(buf))?;
    // Node-API writes whole characters, at most `len - 1` bytes: with 4 bytes to spare the
    // string was complete.
    if written + 4 >= buf.len() {
        let len = utf8(None)?;
        if len + 1 > buf.len() {
            buf.resize(len + 1, 0);
            written = utf8(Some(buf))?;
        }
    }
    // Node-API writes UTF-8 (lone surrogates become U+FFFD), so this does not fail.
    std::str::from_utf8(&buf[..written]).map_err(|e| Error::new(Status::InvalidArg, e.to_string()))
}

/// A JS function the walkers call, made once per environment and kept by reference. The
/// copies are JIT-compiled loops: a few ns per item, where a Node-API call per item costs
/// ~100. They only move numbers; which number is an integer stays core's rule.
#[derive(Clone, Copy)]
enum Helper {
    /// `JSON.parse`.
    JsonParse,
    /// Copies a `Float64Array` into an array.
    NumbersToArray,
    /// Copies an array whose items are all `number`s into a `Float64Array`, else
    /// `undefined` (a hole or any other item stops it).
    ArrayToNumbers,
}

const HELPERS_COUNT: usize = 3;

const NUMBERS_TO_ARRAY: &str = "(function (t) { const n = t.length; const a = new Array(n); \
    for (let i = 0; i < n; i++) a[i] = t[i]; return a })";

const ARRAY_TO_NUMBERS: &str = "(function (a) { const n = a.length; \
    if (n === 0 || typeof a[0] !== 'number') return undefined; \
    const t = new Float64Array(n); \
    for (let i = 0; i < n; i++) { const x = a[i]; if (typeof x !== 'number') return undefined; \
    t[i] = x } return t })";

/// Arrays at least this long try [`Helper::ArrayToNumbers`] first: below, the JS call costs
/// more than the Node-API reads it saves.
const NUMBERS_FROM: u32 = 16;

thread_local! {
    /// This thread's environment and its helpers, by [`Helper`].
    static HELPERS: std::cell::Cell<(sys::napi_env, [sys::napi_ref; HELPERS_COUNT])> =
        const { std::cell::Cell::new((ptr::null_mut(), [ptr::null_mut(); HELPERS_COUNT])) };
}

unsafe fn helper(env: sys::napi_env, which: Helper) -> Result<sys::napi_value> {
    let (cached_env, mut references) = HELPERS.get();
    if cached_env != env {
        references = [ptr::null_mut(); HELPERS_COUNT];
    }
    let reference = references[which as usize];
    let mut function = ptr::null_mut();
    if !reference.is_null() {
        check(sys::napi_get_reference_value(env, reference, &mut function))?;
        if !function.is_null() {
            return Ok(function);
        }
    }
    match which {
        Helper::JsonParse => {
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
                &mut function,
            ))?;
        }
        Helper::NumbersToArray | Helper::ArrayToNumbers => {
            let source = match which {
                Helper::NumbersToArray => NUMBERS_TO_ARRAY,
                _ => ARRAY_TO_NUMBERS,
            };
            let source = create_string(env, source.as_bytes())?;
            check(sys::napi_run_script(env, source, &mut function))?;
        }
    }
    let mut reference = ptr::null_mut();
    check(sys::napi_create_reference(env, function, 1, &mut reference))?;
    references[which as usize] = reference;
    HELPERS.set((env, references));
    Ok(function)
}

unsafe fn call_helper(
    env: sys::napi_env,
    which: Helper,
    arg: sys::napi_value,
) -> Result<sys::napi_value> {
    let function = helper(env, which)?;
    let mut undefined = ptr::null_mut();
    check(sys::napi_get_undefined(env, &mut undefined))?;
    let mut out = ptr::null_mut();
    check(sys::napi_call_function(
        env, undefined, function, 1, &arg, &mut out,
    ))?;
    Ok(out)
}

/// What V8 makes of core's [`Transcoded`]: `JSON.parse` of the JSON text (measured several
/// times faster than one Node-API call per property; `"__proto__"` becomes an own property
/// either way), or an array copied from one `Float64Array` of the numbers.
///
/// # Safety
/// On the JS thread of `env`.
unsafe fn transcoded_to_js(env: sys::napi_env, transcoded: &Transcoded) -> Result<sys::napi_value> {
    match transcoded {
        Transcoded::Json(text) => call_helper(env, Helper::JsonParse, create_string(env, text)?),
        Transcoded::Numbers(numbers) => {
            let mut data = ptr::null_mut();
            let mut buffer = ptr::null_mut();
            let bytes = std::mem::size_of_val(numbers.as_slice());
            check(sys::napi_create_arraybuffer(
                env,
                bytes,
                &mut data,
                &mut buffer,
            ))?;
            if bytes > 0 {
                ptr::copy_nonoverlapping(numbers.as_ptr().cast::<u8>(), data.cast::<u8>(), bytes);
            }
            let mut typed = ptr::null_mut();
            check(sys::napi_create_typedarray(
                env,
                sys::TypedarrayType::float64_array,
                numbers.len(),
                buffer,
                0,
                &mut typed,
            ))?;
            call_helper(env, Helper::NumbersToArray, typed)
        }
    }
}

/// A container core's [`Transcode`] takes (JSON holds it exactly for JS) made by V8, else
/// `None`.
unsafe fn write_transcoded(env: sys::napi_env, value: &Value) -> Result<Option<sys::napi_value>> {
    let mut transcode = Transcode::default();
    if value.build_into(&mut transcode).is_err() {
        return Ok(None);
    }
    match transcode.finish() {
        Ok(transcoded) => transcoded_to_js(env, &transcoded).map(Some),
        Err(_) => Ok(None),
    }
}

unsafe fn write(env: sys::napi_env, value: &Value) -> Result<sys::napi_value> {
    if matches!(value, Value::Array(_) | Value::Map(_)) {
        if let Some(out) = write_transcoded(env, value)? {
            return Ok(out);
        }
    }
    write_direct(env, value)
}

/// `value` made one Node-API call at a time ([`NapiBuild`]); each container item goes through
/// [`write`], so a nested container JSON can carry is still made by V8.
unsafe fn write_direct(env: sys::napi_env, value: &Value) -> Result<sys::napi_value> {
    let mut build = NapiBuild { env };
    match value {
        Value::Nil => build.nil(),
        Value::Bool(b) => build.bool(*b),
        Value::Int(i) => build.int(*i),
        Value::UInt(u) => build.uint(*u),
        Value::Float(f) => build.float(*f),
        Value::Str(s) => build.str(s),
        Value::Bytes(b) => build.bytes(b),
        Value::Array(items) => {
            let mut array = build.array(items.len())?;
            for item in items {
                build.push(&mut array, write(env, item)?)?;
            }
            build.end_array(array)
        }
        Value::Map(map) => {
            let mut object = build.map(map.len())?;
            for (key, item) in map {
                build.key(&mut object, key)?;
                build.value(&mut object, write(env, item)?)?;
            }
            build.end_map(object)
        }
    }
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
    let mut sink = TreeSink::default();
    walk(env, value, nested, max_items, &mut sink)?;
    sink.done
        .ok_or_else(|| Error::new(Status::GenericFailure, "no value was read"))
}

/// Walks `value` into `sink`; a refused value is a TypeError (`ECODEC`).
unsafe fn walk<S: Sink>(
    env: sys::napi_env,
    value: sys::napi_value,
    nested: bool,
    max_items: usize,
    sink: &mut S,
) -> Result<()> {
    let mut reader = Reader {
        env,
        sink,
        object_prototype: ptr::null_mut(),
        ancestors: Vec::new(),
        max_items,
        text: Vec::new(),
    };
    match reader.read(value, nested) {
        Ok(()) => Ok(()),
        Err(Fault::Refused(message)) => Err(errors::type_error(&Env::from_raw(env), message)),
        Err(Fault::Napi(err)) => Err(err),
        Err(Fault::Core(err)) => Err(errors::to_js(&Env::from_raw(env), &err)),
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

cache_value_type!(JsValue);

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
        None => made(|out| sys::napi_get_undefined(env, out)),
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

/// Writes a JS value to store in a cache with `config` straight into its encoder: the
/// payload in one pass, no [`Value`] on the way (`undefined` at the top is refused).
pub fn encode_for(
    env: &Env,
    value: &napi::bindgen_prelude::Unknown<'_>,
    config: &polycache::Config,
) -> Result<Encoded> {
    use napi::JsValue as _;
    let mut encoder = config.encoder();
    // SAFETY: a live `Env` and a value of the current call.
    unsafe {
        walk(
            env.raw(),
            value.raw(),
            false,
            max_items(config),
            &mut encoder,
        )?;
    }
    encoder.finish().map_err(|err| errors::to_js(env, &err))
}

/// Makes JS values for a decoder (core's [`Build`]), one Node-API call per value: the exact
/// path, for what JSON text cannot carry (bytes, bigints, NaN and infinities) and for
/// payloads too small for `JSON.parse` to pay off. Objects keep the wire order (integer-like
/// keys aside) and a repeated key keeps its first place and takes its last value, as an
/// assignment does; `"__proto__"` becomes an own property.
pub(crate) struct NapiBuild {
    env: sys::napi_env,
}

impl NapiBuild {
    /// A builder for `env` (on its JS thread).
    pub(crate) fn new(env: &Env) -> Self {
        NapiBuild { env: env.raw() }
    }
}

impl Build for NapiBuild {
    type Value = sys::napi_value;
    /// The array and the index of its next item.
    type Array = (sys::napi_value, u32);
    /// The object and the key of the entry whose value comes next.
    type Map = (sys::napi_value, sys::napi_value, bool);
    type Error = Error;

    fn nil(&mut self) -> Result<sys::napi_value> {
        // SAFETY: on the JS thread of `env` (the builder is made there and not sent).
        made(|out| unsafe { sys::napi_get_null(self.env, out) })
    }
    fn bool(&mut self, v: bool) -> Result<sys::napi_value> {
        // SAFETY: as `nil`.
        made(|out| unsafe { sys::napi_get_boolean(self.env, v, out) })
    }
    fn int(&mut self, v: i64) -> Result<sys::napi_value> {
        // SAFETY: as `nil`.
        made(|out| unsafe {
            if js::is_safe(v) {
                sys::napi_create_int64(self.env, v, out)
            } else {
                sys::napi_create_bigint_int64(self.env, v, out)
            }
        })
    }
    fn uint(&mut self, v: u64) -> Result<sys::napi_value> {
        // SAFETY: as `nil`.
        made(|out| unsafe { sys::napi_create_bigint_uint64(self.env, v, out) })
    }
    fn float(&mut self, v: f64) -> Result<sys::napi_value> {
        // SAFETY: as `nil`.
        made(|out| unsafe { sys::napi_create_double(self.env, v, out) })
    }
    fn str(&mut self, v: &str) -> Result<sys::napi_value> {
        // SAFETY: as `nil`.
        unsafe { create_string(self.env, v.as_bytes()) }
    }
    fn bytes(&mut self, v: &[u8]) -> Result<sys::napi_value> {
        // SAFETY: as `nil`; Node copies `v`.
        made(|out| unsafe {
            sys::napi_create_buffer_copy(self.env, v.len(), v.as_ptr().cast(), ptr::null_mut(), out)
        })
    }
    fn array(&mut self, len: usize) -> Result<Self::Array> {
        // A claim is checked against the input and budget but not charged (nested claims
        // share the same bytes), and V8 fills the whole length: reserve at most
        // PREALLOC_ITEMS; `push` sets later items past it.
        let len = len.min(PREALLOC_ITEMS);
        // SAFETY: as `nil`.
        let out = made(|out| unsafe { sys::napi_create_array_with_length(self.env, len, out) })?;
        Ok((out, 0))
    }
    fn push(&mut self, array: &mut Self::Array, item: sys::napi_value) -> Result<()> {
        // SAFETY: as `nil`.
        check(unsafe { sys::napi_set_element(self.env, array.0, array.1, item) })?;
        array.1 += 1;
        Ok(())
    }
    fn end_array(&mut self, array: Self::Array) -> Result<sys::napi_value> {
        Ok(array.0)
    }
    fn map(&mut self, _len: usize) -> Result<Self::Map> {
        // SAFETY: as `nil`.
        let out = made(|out| unsafe { sys::napi_create_object(self.env, out) })?;
        Ok((out, ptr::null_mut(), false))
    }
    fn key(&mut self, map: &mut Self::Map, key: &str) -> Result<()> {
        // SAFETY: as `nil`.
        map.1 = unsafe { create_string(self.env, key.as_bytes()) }?;
        map.2 = key == "__proto__";
        Ok(())
    }
    fn value(&mut self, map: &mut Self::Map, value: sys::napi_value) -> Result<()> {
        // SAFETY: as `nil`; the key was made by `key` in this scope.
        unsafe { set_property(self.env, map.0, map.1, value, map.2) }
    }
    fn end_map(&mut self, map: Self::Map) -> Result<sys::napi_value> {
        Ok(map.0)
    }
}

/// The value a Node-API call writes through its out-pointer.
fn made(call: impl FnOnce(&mut sys::napi_value) -> sys::napi_status) -> Result<sys::napi_value> {
    let mut out = ptr::null_mut();
    check(call(&mut out))?;
    Ok(out)
}

/// A JS string from UTF-8.
unsafe fn create_string(env: sys::napi_env, s: &[u8]) -> Result<sys::napi_value> {
    made(|out| sys::napi_create_string_utf8(env, s.as_ptr().cast(), s.len() as isize, out))
}

/// `object[name] = item`, except that `"__proto__"` is defined as an own property
/// (assignment would replace the prototype).
unsafe fn set_property(
    env: sys::napi_env,
    object: sys::napi_value,
    name: sys::napi_value,
    item: sys::napi_value,
    proto: bool,
) -> Result<()> {
    if !proto {
        return check(sys::napi_set_property(env, object, name, item));
    }
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
    check(sys::napi_define_properties(env, object, 1, &descriptor))
}

/// A stored value made ready for the JS thread by [`prepare`], on a runtime thread.
#[derive(Debug)]
pub enum Found {
    /// Nothing usable was stored (a miss, counted).
    Missing,
    /// What V8 makes the value from (the hit is counted).
    Ready(Transcoded),
    /// What JSON cannot carry exactly (bytes, bigints, NaN inside a map …): decoded on the
    /// JS thread, one Node-API call per value, and counted then.
    Exact(Stored),
}

/// Transcodes what a read found for V8 off the JS thread (decompression and the payload's
/// walk included), so the JS thread only runs `JSON.parse` or one copy. Counts a hit or a
/// miss as [`polycache::Cache::decode_stored`] does, except for [`Found::Exact`].
pub fn prepare(cache: &polycache::Cache, stored: Stored) -> Found {
    let mut transcode = Transcode::default();
    match cache.decode_stored(&stored, &mut transcode) {
        Ok(None) => Found::Missing,
        Ok(Some(())) => match transcode.finish() {
            Ok(transcoded) => Found::Ready(transcoded),
            Err(_) => Found::Exact(stored),
        },
        Err(js::NotJson) => Found::Exact(stored),
    }
}

/// What a read found as a JS value (`undefined` for a miss), on the JS thread.
pub fn found_to_js(env: &Env, cache: &polycache::Cache, found: &Found) -> Result<sys::napi_value> {
    let raw = env.raw();
    // SAFETY: a live `Env` means we are on its JS thread.
    unsafe {
        let value = match found {
            Found::Missing => None,
            Found::Ready(transcoded) => Some(transcoded_to_js(raw, transcoded)?),
            Found::Exact(stored) => cache.decode_stored(stored, &mut NapiBuild::new(env))?,
        };
        match value {
            Some(value) => Ok(value),
            None => write_option(raw, None),
        }
    }
}

/// An array of what several reads found (`undefined` for misses).
pub fn found_many_to_js(
    env: &Env,
    cache: &polycache::Cache,
    found: &[Found],
) -> Result<sys::napi_value> {
    let raw = env.raw();
    let mut array = ptr::null_mut();
    // SAFETY: as `found_to_js`.
    unsafe {
        check(sys::napi_create_array_with_length(
            raw,
            found.len(),
            &mut array,
        ))?;
        for (i, item) in found.iter().enumerate() {
            check(sys::napi_set_element(
                raw,
                array,
                i as u32,
                found_to_js(env, cache, item)?,
            ))?;
        }
    }
    Ok(array)
}

/// A JS value already made on the JS thread, handed to napi as it is (typed `CacheValue`).
#[derive(Debug, Clone, Copy)]
pub struct Made(sys::napi_value);

impl ToNapiValue for Made {
    unsafe fn to_napi_value(_: sys::napi_env, value: Self) -> Result<sys::napi_value> {
        Ok(value.0)
    }
}

impl FromNapiValue for Made {
    unsafe fn from_napi_value(_: sys::napi_env, value: sys::napi_value) -> Result<Self> {
        Ok(Made(value))
    }
}

cache_value_type!(Made);

/// Decodes an envelope (default limits) straight into a JS value, as a read does: core's
/// [`Transcode`] for V8, or the exact [`NapiBuild`] for what JSON cannot carry; no
/// [`Value`] on the way. A codec error for bytes that are not a valid envelope.
pub fn decode_envelope(env: &Env, bytes: &[u8]) -> Result<(Header, Made)> {
    let limits = DecodeLimits::default();
    let codec_error = |err: polycache::Error| errors::to_js(env, &err);
    let mut transcode = Transcode::default();
    match codec::decode_into(bytes, &limits, &mut transcode) {
        Ok((header, ())) => {
            let transcoded = transcode.finish().map_err(codec_error)?;
            // SAFETY: a live `Env` means we are on its JS thread.
            let value = unsafe { transcoded_to_js(env.raw(), &transcoded) }?;
            Ok((header, Made(value)))
        }
        Err(DecodeError::Codec(err)) => Err(codec_error(err)),
        Err(DecodeError::Host(js::NotJson)) => {
            match codec::decode_into(bytes, &limits, &mut NapiBuild::new(env)) {
                Ok((header, value)) => Ok((header, Made(value))),
                Err(DecodeError::Codec(err)) => Err(codec_error(err)),
                Err(DecodeError::Host(err)) => Err(err),
            }
        }
    }
}
