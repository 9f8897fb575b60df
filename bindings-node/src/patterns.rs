//! JS loaders and writers as core's [`Loader`] / [`Writer`]: core decides when they run; this
//! file only knows how to call a JS function from a Rust thread and await its result.
//!
//! Each cache owns two thread-safe functions over a small trampoline, `(f, args) =>
//! f(...args)` that turns a synchronous throw into a rejection (one whose value is used,
//! one whose result is ignored), so calling any JS function — the `loader` option, the
//! function given to `getOrLoad`, the `writer` — costs a reference, not a new thread-safe
//! function per call. Both are weak: a cache never keeps the process alive.
#![allow(unsafe_code)] // the JS values passed through the thread-safe functions

use std::sync::Arc;

use futures_util::future::BoxFuture;
use napi::bindgen_prelude::{
    FnArgs, FromNapiValue, Function, FunctionRef, JsObjectValue, Object, Promise, ToNapiValue,
    TypeName, Unknown, ValidateNapiValue,
};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::{sys, Env, JsValue as NapiJsValue, Result, Status, ValueType};
use polycache::{Loader, Value, Writer};

use crate::value::JsValue;

/// A JS function kept alive across threads.
pub type JsFunctionRef = FunctionRef<(), ()>;
/// A JS function argument (called only through the invoker).
pub type JsFunction<'env> = Function<'env, (), ()>;

/// What a JS loader returned: a promise of a value, or a value.
pub enum Returned {
    Promise(Promise<Loaded>),
    Value(Loaded),
}

/// A loaded value (`None`: the loader returned `NOT_FOUND`), or the TypeError it raised
/// when converted (kept as the JS object, so the caller gets that very error rather than
/// a rebuilt one).
pub struct Loaded(napi::Result<Option<Value>>);

impl FromNapiValue for Loaded {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
        if crate::fresh::is_not_found(env, value)? {
            return Ok(Loaded(Ok(None)));
        }
        Ok(Loaded(
            JsValue::from_napi_value(env, value).map(|v| Some(v.0)),
        ))
    }
}

/// What a JS writer returned; only whether it (or its promise) failed matters.
pub enum Settled {
    Promise(Promise<Ignored>),
    Done,
}

/// A JS value that is not looked at.
pub struct Ignored;

unsafe fn is_promise(env: sys::napi_env, value: sys::napi_value) -> Result<bool> {
    let mut is = false;
    let status = sys::napi_is_promise(env, value, &mut is);
    if status != sys::Status::napi_ok {
        return Err(napi::Error::new(
            Status::from(status),
            "napi_is_promise failed",
        ));
    }
    Ok(is)
}

impl FromNapiValue for Returned {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
        if is_promise(env, value)? {
            Ok(Returned::Promise(Promise::from_napi_value(env, value)?))
        } else {
            Ok(Returned::Value(Loaded::from_napi_value(env, value)?))
        }
    }
}

impl FromNapiValue for Settled {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
        if is_promise(env, value)? {
            Ok(Settled::Promise(Promise::from_napi_value(env, value)?))
        } else {
            Ok(Settled::Done)
        }
    }
}

impl FromNapiValue for Ignored {
    unsafe fn from_napi_value(_: sys::napi_env, _: sys::napi_value) -> Result<Self> {
        Ok(Ignored)
    }
}

macro_rules! any_type {
    ($($t:ty),*) => {$(
        impl TypeName for $t {
            fn type_name() -> &'static str {
                "unknown"
            }
            fn value_type() -> ValueType {
                ValueType::Unknown
            }
        }
        impl ValidateNapiValue for $t {}
    )*};
}
any_type!(Returned, Settled, Ignored, Loaded);

/// The function to call, turned back into a JS value on the JS thread.
pub struct Target(Arc<JsFunctionRef>);

impl ToNapiValue for Target {
    unsafe fn to_napi_value(env: sys::napi_env, target: Self) -> Result<sys::napi_value> {
        let env = Env::from_raw(env);
        Ok(NapiJsValue::raw(&target.0.borrow_back(&env)?))
    }
}

/// One invocation of a JS function through the trampoline: which function, with which
/// arguments, and for a load the key being loaded (`[cache id, key]`, else nil).
pub struct Invocation {
    target: Arc<JsFunctionRef>,
    args: Vec<Value>,
    loading: Value,
}

type ApplyArgs = FnArgs<(Target, Vec<JsValue>, JsValue)>;

/// Calls `f(...args)`; a synchronous throw becomes a rejection, as from an async function.
/// A rejection is carried in an `Error` under [`REJECTION_KEY`]: Node-API hands non-Error
/// rejection values (`42`, `{ status: 404 }`) back as new, empty `Error`s, so the wrapper
/// is what crosses the Rust side, and `settle` rejects the caller's promise with the value
/// inside it, unchanged.
///
/// A load runs inside an `AsyncLocalStorage` context naming its cache and key, which
/// `loading(cache, key)` looks up: a `getOrLoad` made from inside the load of its own key
/// (which would wait for itself forever) is recognised on the JS thread, where the async
/// context is known, and refused.
const TRAMPOLINE: &str = r#"(function () {
  let als = null
  try {
    const { AsyncLocalStorage } = process.getBuiltinModule('node:async_hooks')
    als = new AsyncLocalStorage()
  } catch {}
  const carry = (e) => {
    let message = 'the function rejected'
    try { if (e instanceof Error) message = String(e.message) } catch {}
    const w = new Error(message)
    w.__polycacheRejection = e
    return w
  }
  const apply = (f, args) => {
    let r
    try { r = f(...args) } catch (e) { return Promise.reject(carry(e)) }
    if (r instanceof Promise) return Promise.prototype.then.call(r, undefined, (e) => { throw carry(e) })
    return r
  }
  return {
    call(f, args, loading) {
      if (loading === null || als === null) return apply(f, args)
      const [cache, key] = loading
      return als.run({ cache, key, outer: als.getStore() }, apply, f, args)
    },
    loading(cache, key) {
      for (let s = als === null ? undefined : als.getStore(); s !== undefined; s = s.outer) {
        if (s.cache === cache && s.key === key) return true
      }
      return false
    },
  }
})()"#;

/// The property of the `Error` that carries a rejection value (see [`TRAMPOLINE`]).
pub const REJECTION_KEY: &std::ffi::CStr = c"__polycacheRejection";
type Apply<R> = ThreadsafeFunction<Invocation, R, ApplyArgs, Status, false, true>;

/// Calls JS functions from any thread (see the module docs).
#[derive(Clone)]
pub struct Invoker {
    /// Names this cache in load contexts.
    id: u32,
    load: Arc<Apply<Returned>>,
    write: Arc<Apply<Settled>>,
    /// The trampoline's `loading(cache, key)`; called on the JS thread only.
    loading: Arc<FunctionRef<FnArgs<(u32, String)>, bool>>,
}

impl std::fmt::Debug for Invoker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Invoker")
    }
}

fn apply_args(
    ctx: napi::threadsafe_function::ThreadsafeCallContext<Invocation>,
) -> Result<ApplyArgs> {
    let Invocation {
        target,
        args,
        loading,
    } = ctx.value;
    Ok(FnArgs::from((
        Target(target),
        args.into_iter().map(JsValue).collect(),
        JsValue(loading),
    )))
}

impl Invoker {
    /// Builds the two thread-safe functions over the trampoline.
    pub fn new(env: &Env) -> Result<Self> {
        static IDS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        let trampoline: Object<'_> = env.run_script(TRAMPOLINE)?;
        let apply: Function<'_, Unknown<'_>, Returned> = trampoline.get_named_property("call")?;
        let load = apply
            .build_threadsafe_function::<Invocation>()
            .weak::<true>()
            .callee_handled::<false>()
            .build_callback(apply_args)?;
        let apply: Function<'_, Unknown<'_>, Settled> = trampoline.get_named_property("call")?;
        let write = apply
            .build_threadsafe_function::<Invocation>()
            .weak::<true>()
            .callee_handled::<false>()
            .build_callback(apply_args)?;
        let loading: Function<'_, FnArgs<(u32, String)>, bool> =
            trampoline.get_named_property("loading")?;
        Ok(Invoker {
            id: IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            load: Arc::new(load),
            write: Arc::new(write),
            loading: Arc::new(loading.create_ref()?),
        })
    }

    /// Whether the JS code running now is (inside) a load of `key` by this cache; on the
    /// JS thread only.
    pub fn loading(&self, env: &Env, key: &str) -> Result<bool> {
        let loading = self.loading.borrow_back(env)?;
        loading.call(FnArgs::from((self.id, key.to_owned())))
    }

    /// Calls a loader with `args` and awaits the value it returns or resolves to.
    /// The call runs inside a load context for `key` (see [`TRAMPOLINE`]).
    pub fn load(
        &self,
        target: Arc<JsFunctionRef>,
        args: Vec<Value>,
        key: &str,
    ) -> BoxFuture<'static, polycache::Result<Value>> {
        let load = self.load.clone();
        let loading = Value::Array(vec![Value::from(u64::from(self.id)), Value::from(key)]);
        Box::pin(async move {
            let returned = load
                .call_async(Invocation {
                    target,
                    args,
                    loading,
                })
                .await
                .map_err(polycache::Error::loader)?;
            let loaded = match returned {
                Returned::Value(loaded) => loaded,
                Returned::Promise(promise) => promise.await.map_err(polycache::Error::loader)?,
            };
            match loaded.0.map_err(polycache::Error::loader)? {
                Some(value) => Ok(value),
                None => Err(polycache::Error::not_found()),
            }
        })
    }

    /// Calls a writer with `(key, value)` and awaits it.
    pub fn write(
        &self,
        target: Arc<JsFunctionRef>,
        key: &str,
        value: &Value,
    ) -> BoxFuture<'static, polycache::Result<()>> {
        let write = self.write.clone();
        let args = vec![Value::from(key), value.clone()];
        Box::pin(async move {
            let settled = write
                .call_async(Invocation {
                    target,
                    args,
                    loading: Value::Nil,
                })
                .await
                .map_err(polycache::Error::writer)?;
            if let Settled::Promise(promise) = settled {
                promise.await.map_err(polycache::Error::writer)?;
            }
            Ok(())
        })
    }
}

/// The `loader` option: read-through for `get` and `getMany`.
pub struct JsLoader {
    pub invoker: Invoker,
    pub target: Arc<JsFunctionRef>,
}

impl Loader for JsLoader {
    fn load(&self, key: &str) -> BoxFuture<'static, polycache::Result<Value>> {
        self.invoker
            .load(self.target.clone(), vec![Value::from(key)], key)
    }
}

/// A thunk as a loader: the function given to `getOrLoad`, or a `wrap`ped function bound to
/// its caller's arguments, called with no arguments.
pub struct JsThunk {
    pub invoker: Invoker,
    pub target: Arc<JsFunctionRef>,
}

impl Loader for JsThunk {
    fn load(&self, key: &str) -> BoxFuture<'static, polycache::Result<Value>> {
        self.invoker.load(self.target.clone(), Vec::new(), key)
    }
}

/// The `writer` option: write-through for `set` and `setMany`.
pub struct JsWriter {
    pub invoker: Invoker,
    pub target: Arc<JsFunctionRef>,
}

impl Writer for JsWriter {
    fn write(&self, key: &str, value: &Value) -> BoxFuture<'static, polycache::Result<()>> {
        self.invoker.write(self.target.clone(), key, value)
    }
}

/// `target.bind(undefined, ...args)`, kept: the loader of one `wrap`ped call, which runs
/// the function with the caller's own arguments.
pub fn bind(
    env: &Env,
    target: &JsFunctionRef,
    args: &[sys::napi_value],
) -> Result<Arc<JsFunctionRef>> {
    let function = target.borrow_back(env)?;
    let bind: Function<'_, (), ()> = function.get_named_property("bind")?;
    let raw = env.raw();
    let mut argv = Vec::with_capacity(args.len() + 1);
    let mut undefined = std::ptr::null_mut();
    let mut bound = std::ptr::null_mut();
    // SAFETY: live handles of the current call on the JS thread.
    unsafe {
        sys::napi_get_undefined(raw, &mut undefined);
        argv.push(undefined);
        argv.extend_from_slice(args);
        let status = sys::napi_call_function(
            raw,
            NapiJsValue::raw(&function),
            NapiJsValue::raw(&bind),
            argv.len(),
            argv.as_ptr(),
            &mut bound,
        );
        if status != sys::Status::napi_ok {
            return Err(napi::Error::new(
                Status::from(status),
                "Function.prototype.bind failed",
            ));
        }
        let bound = JsFunction::from_napi_value(raw, bound)?;
        keep(&bound)
    }
}

/// Calls `function(...args)` with `this` undefined, on the JS thread.
pub fn call(
    env: &Env,
    function: &Function<'_, (), ()>,
    args: &[sys::napi_value],
) -> Result<sys::napi_value> {
    let raw = env.raw();
    let mut undefined = std::ptr::null_mut();
    let mut out = std::ptr::null_mut();
    // SAFETY: live handles on the JS thread.
    let status = unsafe {
        sys::napi_get_undefined(raw, &mut undefined);
        sys::napi_call_function(
            raw,
            undefined,
            NapiJsValue::raw(function),
            args.len(),
            args.as_ptr(),
            &mut out,
        )
    };
    if status != sys::Status::napi_ok {
        return Err(napi::Error::new(
            Status::from(status),
            "calling a JS function failed",
        ));
    }
    Ok(out)
}

/// Keeps a JS function for calls from other threads.
pub fn keep(function: &JsFunction<'_>) -> Result<Arc<JsFunctionRef>> {
    Ok(Arc::new(function.create_ref()?))
}
