//! Native functions without napi-rs's per-call machinery (see docs/node.md, "The call
//! path"): each cache's own `get`, `set` …, and the callbacks that run once per call (a
//! socket's events, the tick's flush).
//!
//! A napi-rs class method pays, on every call, for finding and checking its receiver
//! (`napi_unwrap`, a type check) and for its borrow registry (a process-wide lock and a
//! hash map): about 3,000 instructions, as much as the rest of a `get`'s native work
//! before its reply. The hot methods are therefore also each instance's own
//! (non-enumerable) functions, made when the instance is, whose callback data is the
//! cache itself: nothing to look up. They run the class's very methods; the prototype's
//! stay for `Cache.prototype.get.call(cache, …)` and for instances of JS subclasses, which
//! get no own functions (those would hide the subclass's overrides).
#![allow(unsafe_code)] // raw Node-API functions and their data

use std::ffi::{c_void, CStr};
use std::ptr;

use napi::bindgen_prelude::{FromNapiValue, Function, Unknown};
use napi::{sys, Env, JsValue as _, Result};

use crate::cache::Cache;
use crate::evloop::check;

/// Most arguments an entry takes.
const ARGS: usize = 3;

/// A native function's arguments (missing ones are `undefined`).
pub type Args = [sys::napi_value; ARGS];
type Body = fn(&Env, &Cache, &Args) -> Result<sys::napi_value>;

/// An argument as napi-rs hands it to a method.
fn arg<'env>(env: &Env, value: sys::napi_value) -> Unknown<'env> {
    // SAFETY: a value of this callback's scope (a missing argument is `undefined`).
    unsafe { Unknown::from_raw_unchecked(env.raw(), value) }
}

/// An optional argument: `None` for `undefined` and `null`, as napi-rs reads `Option`.
fn opt<'env>(env: &Env, value: sys::napi_value) -> Result<Option<Unknown<'env>>> {
    // SAFETY: as `arg`.
    unsafe { Option::<Unknown<'env>>::from_napi_value(env.raw(), value) }
}

/// A method whose only argument is a key (or keys).
type KeyMethod = for<'env> fn(&Cache, &'env Env, Unknown<'_>) -> Result<Unknown<'env>>;

fn with_key(env: &Env, cache: &Cache, a: &Args, method: KeyMethod) -> Result<sys::napi_value> {
    Ok(method(cache, env, arg(env, a[0]))?.raw())
}

const ENTRIES: [(&CStr, Body); 7] = [
    (c"get", |env, cache, a| with_key(env, cache, a, Cache::get)),
    (c"getMany", |env, cache, a| {
        with_key(env, cache, a, Cache::get_many)
    }),
    (c"set", |env, cache, a| {
        let options = opt(env, a[2])?;
        Ok(cache
            .set(env, arg(env, a[0]), arg(env, a[1]), options)?
            .raw())
    }),
    (c"setMany", |env, cache, a| {
        let options = opt(env, a[1])?;
        Ok(cache.set_many(env, arg(env, a[0]), options)?.raw())
    }),
    (c"delete", |env, cache, a| {
        with_key(env, cache, a, Cache::delete)
    }),
    (c"ttl", |env, cache, a| with_key(env, cache, a, Cache::ttl)),
    (c"getOrLoad", |env, cache, a| {
        let options = opt(env, a[2])?;
        Ok(cache
            .get_or_load(env, arg(env, a[0]), arg(env, a[1]), options)?
            .raw())
    }),
];

/// Gives the instance `object` of `cache` its own hot methods, unless it is an instance of
/// a JS subclass: own functions would hide the subclass's overrides.
pub fn install(env: &Env, object: sys::napi_value, cache: &Cache) -> Result<()> {
    if !of_cache_itself(env, object)? {
        return Ok(());
    }
    let mut properties = Vec::with_capacity(ENTRIES.len());
    for (name, body) in ENTRIES {
        let cache = cache.clone();
        let value = function(env, name, move |env, args| body(env, &cache, args))?;
        properties.push(sys::napi_property_descriptor {
            utf8name: name.as_ptr(),
            name: ptr::null_mut(),
            method: None,
            getter: None,
            setter: None,
            value,
            attributes: sys::PropertyAttributes::writable | sys::PropertyAttributes::configurable,
            data: ptr::null_mut(),
        });
    }
    // SAFETY: a plain Node-API call on the JS thread; the descriptors live through it.
    unsafe {
        check(
            sys::napi_define_properties(env.raw(), object, properties.len(), properties.as_ptr()),
            "napi_define_properties",
        )
    }
}

/// Whether `object`'s prototype is `Cache.prototype` (not a subclass's).
fn of_cache_itself(env: &Env, object: sys::napi_value) -> Result<bool> {
    // The registry's key is the class's name with its NUL, as napi-rs's own generated
    // code looks it up; none found leaves the prototype's methods in use.
    let Some(class) = napi::bindgen_prelude::get_class_constructor("Cache\0") else {
        return Ok(false);
    };
    let raw = env.raw();
    let (mut constructor, mut prototype, mut own) =
        (ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
    let mut same = false;
    // SAFETY: plain Node-API calls on the JS thread with live handles.
    unsafe {
        check(
            sys::napi_get_reference_value(raw, class, &mut constructor),
            "napi_get_reference_value",
        )?;
        if constructor.is_null() {
            return Ok(false);
        }
        check(
            sys::napi_get_named_property(raw, constructor, c"prototype".as_ptr(), &mut prototype),
            "napi_get_named_property",
        )?;
        check(
            sys::napi_get_prototype(raw, object, &mut own),
            "napi_get_prototype",
        )?;
        check(
            sys::napi_strict_equals(raw, prototype, own, &mut same),
            "napi_strict_equals",
        )?;
    }
    Ok(same)
}

/// A JS function running `body` with its first [`ARGS`] arguments (a null value returned
/// is `undefined`; an error is thrown): napi-rs's
/// `create_function_from_closure` without its per-call argument vector and borrow scope
/// (the socket's events and the tick's flush run once per call too). `body` lives in the
/// function's callback data until the function is collected.
pub fn function<F>(env: &Env, name: &CStr, body: F) -> Result<sys::napi_value>
where
    F: Fn(&Env, &Args) -> Result<sys::napi_value> + 'static,
{
    let raw = env.raw();
    let data = Box::into_raw(Box::new(body));
    let mut function = ptr::null_mut();
    // SAFETY: plain Node-API calls on the JS thread; `data` is released by the function's
    // finalizer only, or right here if the function was not made.
    unsafe {
        let made = sys::napi_create_function(
            raw,
            name.as_ptr(),
            name.count_bytes() as isize,
            Some(call::<F>),
            data.cast(),
            &mut function,
        );
        if made != sys::Status::napi_ok {
            drop(Box::from_raw(data));
            check(made, "napi_create_function")?;
        }
        check(
            sys::napi_add_finalizer(
                raw,
                function,
                data.cast(),
                Some(release::<F>),
                ptr::null_mut(),
                ptr::null_mut(),
            ),
            "napi_add_finalizer",
        )?;
    }
    Ok(function)
}

/// [`function`] as napi-rs's `Function` (to keep a `FunctionRef` of it).
pub fn js_function<'env, F>(env: &'env Env, name: &CStr, body: F) -> Result<Function<'env, (), ()>>
where
    F: Fn(&Env, &Args) -> Result<sys::napi_value> + 'static,
{
    let made = function(env, name, body)?;
    // SAFETY: a function made just now, in this callback's scope.
    unsafe { Function::from_napi_value(env.raw(), made) }
}

unsafe extern "C" fn call<F>(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value
where
    F: Fn(&Env, &Args) -> Result<sys::napi_value>,
{
    let mut argc = ARGS;
    let mut args: Args = [ptr::null_mut(); ARGS];
    let mut data = ptr::null_mut();
    let status = sys::napi_get_cb_info(
        env,
        info,
        &mut argc,
        args.as_mut_ptr(),
        ptr::null_mut(),
        &mut data,
    );
    if status != sys::Status::napi_ok || data.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: the data `function` gave this function, alive until its finalizer.
    let body = &*(data as *const F);
    let js = Env::from_raw(env);
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&js, &args)));
    let err = match ran {
        Ok(Ok(value)) => return value,
        Ok(Err(err)) => err,
        Err(_) => napi::Error::from_reason("polycache: internal error (a panic) in the call"),
    };
    napi::JsError::from(err).throw_into(env);
    ptr::null_mut()
}

unsafe extern "C" fn release<F>(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: the `Box` `function` leaked for this function; Node finalizes it once.
    drop(Box::from_raw(data.cast::<F>()));
}
