//! JS values <-> core's payloads and [`Value`] (docs/FORMAT.md §2, the Node column).
//!
//! The one file that moves JS values across, written against raw Node-API calls because it
//! runs on every `get` and `set` (docs/node.md, "Values in and out"). A JS value is read by
//! one call into a JIT-compiled walk that writes its tape ([`crate::tape`]), which core reads
//! with every rule applied (`codec::js::tape`): straight into the [`Encoder`] for a `set`,
//! into a [`Value`] otherwise. A read's bytes are transcoded by core in the batch task
//! ([`prepare`]) into what V8 makes objects from, and only what its plan cannot carry is built
//! here one value at a time ([`NapiBuild`]). The rules: `null` (and `undefined` inside
//! arrays and objects) is nil, an integral safe `number` is an integer and any other
//! `number` a float, a `bigint` is an integer of at most 64 bits, `Buffer`/`Uint8Array` are
//! bytes, arrays are arrays and plain objects (prototype `Object.prototype` or `null`) are
//! maps. Anything else — functions, symbols, wider bigints, class instances, `Date`, `Map`,
//! cyclic objects, strings with lone surrogates — is a TypeError (code `ECODEC`), raised
//! before anything reaches Redis.
#![allow(unsafe_code)] // Node-API is a C API; every call below checks its status.

use std::ptr;

use napi::bindgen_prelude::{FromNapiValue, ToNapiValue, TypeName, ValidateNapiValue};
use napi::{sys, Env, Error, Result, Status, ValueType};
use polycache::codec::js::tape::{encode_tape, read_tape, TapeError, Undefined};
use polycache::codec::js::{self, Transcode, Transcoded};
use polycache::codec::{
    self, Build, DecodeError, DecodeLimits, Encoded, Encoder, Header, Tree, PREALLOC_ITEMS,
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

/// A JS function this file calls, made once per environment and kept by reference. The
/// copy and the walk are JIT-compiled: a few ns per item, where a Node-API call per item
/// costs ~100. They only move values; the rules stay core's.
#[derive(Clone, Copy)]
enum Helper {
    /// Makes the value a read's plan describes ([`crate::plan`]).
    Plan,
    /// Copies a `Float64Array` into an array.
    NumbersToArray,
    /// Writes a JS value's tape ([`crate::tape`]).
    Tape,
    /// Starts reading a tape ahead (native, [`crate::ahead`]); handed to the walk.
    Ahead,
}

const HELPERS_COUNT: usize = 4;

const NUMBERS_TO_ARRAY: &str = "(function (t) { const n = t.length; const a = new Array(n); \
    for (let i = 0; i < n; i++) a[i] = t[i]; return a })";

/// One environment's helpers (by [`Helper`]) and the plan loop's scratch `Buffer`
/// (`make.scratch`), kept by reference.
#[derive(Clone, Copy)]
struct EnvState {
    env: sys::napi_env,
    helpers: [sys::napi_ref; HELPERS_COUNT],
    scratch: sys::napi_ref,
}

thread_local! {
    /// This thread's environments (one, unless an embedder runs several) and what each
    /// keeps; an environment's entry is dropped when it is torn down ([`forget_env`]), so
    /// a later one at the same address starts afresh.
    static ENVS: std::cell::RefCell<Vec<EnvState>> = const { std::cell::RefCell::new(Vec::new()) };
    /// A plan is in the scratch buffer and being made.
    static SCRATCH_BUSY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// What `env` keeps (nothing yet for an environment met for the first time, whose
/// teardown is then hooked).
unsafe fn env_state(env: sys::napi_env) -> Result<EnvState> {
    if let Some(state) = ENVS.with_borrow(|envs| envs.iter().find(|s| s.env == env).copied()) {
        return Ok(state);
    }
    check(sys::napi_add_env_cleanup_hook(
        env,
        Some(forget_env),
        env.cast(),
    ))?;
    let state = EnvState {
        env,
        helpers: [ptr::null_mut(); HELPERS_COUNT],
        scratch: ptr::null_mut(),
    };
    ENVS.with_borrow_mut(|envs| envs.push(state));
    Ok(state)
}

fn set_env_state(state: EnvState) {
    ENVS.with_borrow_mut(|envs| {
        if let Some(kept) = envs.iter_mut().find(|s| s.env == state.env) {
            *kept = state;
        }
    });
}

unsafe extern "C" fn forget_env(env: *mut std::ffi::c_void) {
    let env: sys::napi_env = env.cast();
    ENVS.with_borrow_mut(|envs| envs.retain(|s| s.env != env));
}

/// The plan loop's scratch buffer and its bytes now, or `None` when it cannot take `len`
/// bytes (its `ArrayBuffer` was detached: the loop calls builtins through bindings made
/// when it was created, but the `Buffer` is asked each time, not trusted).
unsafe fn plan_scratch(
    env: sys::napi_env,
    state: &EnvState,
    len: usize,
) -> Result<Option<(sys::napi_value, *mut u8)>> {
    if state.scratch.is_null() {
        return Ok(None);
    }
    let mut buffer = ptr::null_mut();
    check(sys::napi_get_reference_value(
        env,
        state.scratch,
        &mut buffer,
    ))?;
    if buffer.is_null() {
        return Ok(None);
    }
    let mut data = ptr::null_mut();
    let mut size = 0;
    check(sys::napi_get_buffer_info(env, buffer, &mut data, &mut size))?;
    Ok((len <= size && !data.is_null()).then_some((buffer, data.cast())))
}

unsafe fn helper(env: sys::napi_env, which: Helper) -> Result<sys::napi_value> {
    helper_and_state(env, which).map(|(function, _)| function)
}

/// A helper and what its environment keeps (one lookup for a read that needs both).
unsafe fn helper_and_state(
    env: sys::napi_env,
    which: Helper,
) -> Result<(sys::napi_value, EnvState)> {
    let mut state = env_state(env)?;
    let reference = state.helpers[which as usize];
    let mut function = ptr::null_mut();
    if !reference.is_null() {
        check(sys::napi_get_reference_value(env, reference, &mut function))?;
        if !function.is_null() {
            return Ok((function, state));
        }
    }
    match which {
        Helper::Plan => {
            let source = crate::plan::loop_source();
            let source = create_string(env, source.as_bytes())?;
            check(sys::napi_run_script(env, source, &mut function))?;
            let mut scratch = ptr::null_mut();
            check(sys::napi_get_named_property(
                env,
                function,
                c"scratch".as_ptr(),
                &mut scratch,
            ))?;
            let mut reference = ptr::null_mut();
            check(sys::napi_create_reference(env, scratch, 1, &mut reference))?;
            state.scratch = reference;
        }
        Helper::NumbersToArray => {
            let source = create_string(env, NUMBERS_TO_ARRAY.as_bytes())?;
            check(sys::napi_run_script(env, source, &mut function))?;
        }
        Helper::Tape => {
            let source = crate::tape::walk_source();
            let source = create_string(env, source.as_bytes())?;
            check(sys::napi_run_script(env, source, &mut function))?;
        }
        Helper::Ahead => function = crate::ahead::function(env)?,
    }
    let mut reference = ptr::null_mut();
    check(sys::napi_create_reference(env, function, 1, &mut reference))?;
    state.helpers[which as usize] = reference;
    set_env_state(state);
    Ok((function, state))
}

unsafe fn call_helper(
    env: sys::napi_env,
    which: Helper,
    arg: sys::napi_value,
) -> Result<sys::napi_value> {
    call_helper_with(env, which, &[arg])
}

unsafe fn call_helper_with(
    env: sys::napi_env,
    which: Helper,
    args: &[sys::napi_value],
) -> Result<sys::napi_value> {
    call_function(env, helper(env, which)?, args)
}

unsafe fn call_function(
    env: sys::napi_env,
    function: sys::napi_value,
    args: &[sys::napi_value],
) -> Result<sys::napi_value> {
    let mut undefined = ptr::null_mut();
    check(sys::napi_get_undefined(env, &mut undefined))?;
    let mut out = ptr::null_mut();
    check(sys::napi_call_function(
        env,
        undefined,
        function,
        args.len(),
        args.as_ptr(),
        &mut out,
    ))?;
    Ok(out)
}

/// The tape of `value` ([`crate::tape`]), written by one call into JS: valid while the
/// current scope is and until the next walk. With `ahead`, a large tape starts being read
/// on a helper thread while it is written ([`crate::ahead`]).
///
/// # Safety
/// `env` and `value` must be live handles of the current Node-API call.
unsafe fn tape<'scope>(
    env: sys::napi_env,
    value: sys::napi_value,
    max_items: usize,
    ahead: bool,
) -> Result<&'scope [u8]> {
    let mut cap = ptr::null_mut();
    check(sys::napi_create_double(env, max_items as f64, &mut cap))?;
    let out = if ahead {
        let start = helper(env, Helper::Ahead)?;
        call_helper_with(env, Helper::Tape, &[value, cap, start])?
    } else {
        call_helper_with(env, Helper::Tape, &[value, cap])?
    };
    match typed_array(env, out)? {
        Some((sys::TypedarrayType::uint8_array, len, data)) if len > 0 => {
            Ok(std::slice::from_raw_parts(data.cast::<u8>(), len))
        }
        Some((sys::TypedarrayType::uint8_array, _, _)) => Ok(&[]),
        _ => Err(Error::new(
            Status::GenericFailure,
            "the value walk did not return its tape",
        )),
    }
}

/// A tape that did not become a value, as a JS error: a refusal is a `TypeError`
/// (`ECODEC`), anything else core's error.
fn tape_error<E>(env: sys::napi_env, err: TapeError<E>, host: impl FnOnce(E) -> Error) -> Error {
    let env = Env::from_raw(env);
    match err {
        TapeError::Refused(message) => errors::type_error(&env, message),
        TapeError::Malformed(err) => errors::to_js(&env, &err),
        TapeError::Host(err) => host(err),
    }
}

/// What V8 makes of core's [`Transcoded`]: the value its plan describes, made by one call
/// into a JIT-compiled loop ([`crate::plan`]; measured faster than `JSON.parse` of core's
/// JSON text, which was several times faster than one Node-API call per property), or an
/// array copied from one `Float64Array` of the numbers.
///
/// # Safety
/// On the JS thread of `env`.
unsafe fn transcoded_to_js(env: sys::napi_env, transcoded: &Transcoded) -> Result<sys::napi_value> {
    match transcoded {
        Transcoded::Plan(plan) => {
            let (make, state) = helper_and_state(env, Helper::Plan)?;
            let mut len = ptr::null_mut();
            check(sys::napi_create_double(env, plan.len() as f64, &mut len))?;
            // A small plan goes through the loop's scratch buffer (no `Buffer` per read),
            // unless a read is being made already (never seen: the loop runs no JS of
            // anyone's with it, but a clobbered plan would be a wrong value).
            if plan.len() <= crate::plan::SCRATCH && !SCRATCH_BUSY.get() {
                if let Some((scratch, data)) = plan_scratch(env, &state, plan.len())? {
                    SCRATCH_BUSY.set(true);
                    ptr::copy_nonoverlapping(plan.as_ptr(), data, plan.len());
                    let made = call_function(env, make, &[scratch, len]);
                    SCRATCH_BUSY.set(false);
                    return made;
                }
            }
            let buffer = made(|out| {
                sys::napi_create_buffer_copy(
                    env,
                    plan.len(),
                    plan.as_ptr().cast(),
                    ptr::null_mut(),
                    out,
                )
            })?;
            call_function(env, make, &[buffer, len])
        }
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

/// A container core's [`Transcode`] takes (a plan or numbers) made by V8, else `None`.
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
/// [`write`], so a nested container a plan can carry is still made by V8.
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
    read_top(env, value, Undefined::Nested, default_max_items())
}

fn default_max_items() -> usize {
    js::max_items(&polycache::codec::DecodeLimits::default())
}

/// Reads `value` through its tape into core's [`Value`].
unsafe fn read_top(
    env: sys::napi_env,
    value: sys::napi_value,
    undefined: Undefined,
    max_items: usize,
) -> Result<Value> {
    let tape = tape(env, value, max_items, false)?;
    read_tape(tape, max_items, undefined, &mut Tree)
        .map_err(|err| tape_error(env, err, |never| match never {}))
}

/// Like [`read_value`], with `undefined` read as nil (function arguments used in keys).
///
/// # Safety
/// As [`read_value`].
pub(crate) unsafe fn read_value_lenient(
    env: sys::napi_env,
    value: sys::napi_value,
) -> Result<Value> {
    read_top(env, value, Undefined::Anywhere, default_max_items())
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
    unsafe { read_top(env.raw(), value.raw(), Undefined::Nested, max_items(config)) }
}

/// Writes a JS value to store in a cache with `config` straight into its encoder: the
/// payload in one pass, no [`Value`] on the way (`undefined` at the top is refused).
pub fn encode_for(
    env: &Env,
    value: &napi::bindgen_prelude::Unknown<'_>,
    config: &polycache::Config,
) -> Result<Encoded> {
    use napi::JsValue as _;
    let max_items = max_items(config);
    // SAFETY: a live `Env` and a value of the current call; the tape is read before
    // anything else runs on this thread (the helper reading it ahead is finished here).
    let encoder = unsafe {
        let (tape, walked) = crate::ahead::around(config.encoder(), max_items, || {
            tape(env.raw(), value.raw(), max_items, true)
        });
        let (tape, walked) = (tape?, walked?);
        let to_js = |err| tape_error(env.raw(), err, |err| errors::to_js(env, &err));
        match walked {
            crate::ahead::Walked::Here(mut encoder) => {
                encode_tape(tape, max_items, &mut encoder).map_err(to_js)?;
                encoder
            }
            crate::ahead::Walked::Ahead(ahead) => {
                ahead.finish(tape, || config.encoder()).map_err(to_js)?
            }
        }
    };
    encoder.finish().map_err(|err| errors::to_js(env, &err))
}

/// A JS value's payload in `codec` (default limits), as `encode_for` writes it.
pub fn encode_payload(
    env: &Env,
    value: &napi::bindgen_prelude::Unknown<'_>,
    codec: codec::Codec,
) -> Result<Vec<u8>> {
    use napi::JsValue as _;
    let mut encoder = Encoder::new(codec);
    let max_items = default_max_items();
    // SAFETY: as `encode_for`.
    unsafe {
        let tape = tape(env.raw(), value.raw(), max_items, false)?;
        encode_tape(tape, max_items, &mut encoder)
            .map_err(|err| tape_error(env.raw(), err, |err| errors::to_js(env, &err)))?;
    }
    encoder
        .finish()
        .map(|encoded| encoded.into_payload().into_vec())
        .map_err(|err| errors::to_js(env, &err))
}

/// Makes JS values for a decoder (core's [`Build`]), one Node-API call per value: the exact
/// path, for what a plan cannot carry (bytes, bigints). Objects keep the wire order (integer-like
/// keys aside) and a repeated key keeps its first place and takes its last value; every
/// key is defined as an own property (`"__proto__"` included), as `JSON.parse` does.
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
    type Map = (sys::napi_value, sys::napi_value);
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
        Ok((out, ptr::null_mut()))
    }
    fn key(&mut self, map: &mut Self::Map, key: &str) -> Result<()> {
        // SAFETY: as `nil`.
        map.1 = unsafe { create_string(self.env, key.as_bytes()) }?;
        Ok(())
    }
    fn value(&mut self, map: &mut Self::Map, value: sys::napi_value) -> Result<()> {
        // SAFETY: as `nil`; the key was made by `key` in this scope.
        unsafe { define_property(self.env, map.0, map.1, value) }
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

/// Defines `object[name] = item` as an own property, as `JSON.parse` does: no setter on the
/// prototype runs, a frozen prototype refuses nothing, and `"__proto__"` stays a key.
unsafe fn define_property(
    env: sys::napi_env,
    object: sys::napi_value,
    name: sys::napi_value,
    item: sys::napi_value,
) -> Result<()> {
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

/// A stored value made ready for V8 by [`prepare`], in the batch task.
#[derive(Debug)]
pub enum Found {
    /// Nothing usable was stored (a miss, counted).
    Missing,
    /// What V8 makes the value from (the hit is counted).
    Ready(Transcoded),
    /// What a plan cannot carry (bytes, bigints): decoded on the JS thread, one Node-API
    /// call per value, and counted then.
    Exact(Stored),
}

/// Transcodes what a read found for V8 off the JS thread (decompression and the payload's
/// walk included), so the JS thread only follows the plan or makes one copy. Counts a hit or a
/// miss as [`polycache::Cache::decode_stored`] does, except for [`Found::Exact`].
pub fn prepare(cache: &polycache::Cache, stored: Stored) -> Found {
    let mut transcode = Transcode::with_capacity(match &stored {
        Stored::Bytes(Some(bytes)) => bytes.len(),
        _ => 0,
    });
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
    let mut transcode = Transcode::with_capacity(bytes.len());
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
