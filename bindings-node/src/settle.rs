//! Settling JS promises: on the JS thread right away when the call finishes there (inside
//! one of the executor's callbacks, see evloop.rs), else through one thread-safe function
//! per cache.
//!
//! napi-rs's `async fn` / `spawn_future` create (and tear down) a thread-safe function for
//! every call; measured, that dominated a sequential `await cache.get()` (see docs/node.md,
//! "Settling promises"). Here a call costs `napi_create_promise` on the JS thread and, when
//! it finishes on another thread, one `napi_call_threadsafe_function`; completions that
//! arrive together are settled in one turn of the event loop. The function is referenced
//! only while promises are pending, so an idle cache never keeps the process alive, and a
//! pending promise does (whatever settles it).
#![allow(unsafe_code)] // Node-API thread-safe functions and deferreds are raw C handles

use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use napi::bindgen_prelude::{JsError, Unknown};
use napi::{sys, Env, Error, Result, Status};

fn check(status: sys::napi_status, what: &str) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(Error::new(Status::from(status), format!("{what} failed")))
    }
}

/// Turns a worker's result into a JS value on the JS thread.
type Settle = Box<dyn FnOnce(&Env) -> Result<sys::napi_value> + Send>;

struct Settlement {
    /// Keeps the function alive until this settlement has run.
    settler: Arc<Settler>,
    deferred: sys::napi_deferred,
    settle: Settle,
}

/// What the thread-safe function carries to the JS thread.
enum Message {
    Settle(Settlement),
    /// A [`Held`] object's reference, to delete on the JS thread.
    Release(Arc<Settler>, sys::napi_ref),
}

/// One thread-safe function that settles promises (see the module docs).
pub struct Settler {
    /// The environment the promises belong to (compared, never used off its thread).
    env: sys::napi_env,
    tsfn: sys::napi_threadsafe_function,
    /// Set when Node finalizes the function (environment teardown): then it must not be
    /// released again.
    finalized: Arc<AtomicBool>,
    /// Promises created and not yet settled; touched on the JS thread only.
    pending: AtomicUsize,
}

// SAFETY: a thread-safe function handle may be called and released from any thread; the
// ref/unref calls that need the JS thread are made only from the JS thread.
unsafe impl Send for Settler {}
unsafe impl Sync for Settler {}

impl std::fmt::Debug for Settler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settler")
            .field("pending", &self.pending.load(Ordering::Relaxed))
            .finish()
    }
}

impl Settler {
    /// Creates the thread-safe function (unreferenced until a promise is pending).
    pub fn new(env: &Env) -> Result<Arc<Settler>> {
        let raw = env.raw();
        let mut name = ptr::null_mut();
        let mut tsfn = ptr::null_mut();
        let finalized = Arc::new(AtomicBool::new(false));
        let finalize_data = Arc::into_raw(finalized.clone()) as *mut c_void;
        // SAFETY: plain Node-API calls with live handles.
        unsafe {
            check(
                sys::napi_create_string_utf8(raw, c"polycache".as_ptr(), 9, &mut name),
                "napi_create_string_utf8",
            )?;
            check(
                sys::napi_create_threadsafe_function(
                    raw,
                    ptr::null_mut(),
                    ptr::null_mut(),
                    name,
                    0,
                    1,
                    finalize_data,
                    Some(on_finalize),
                    ptr::null_mut(),
                    Some(call_js),
                    &mut tsfn,
                ),
                "napi_create_threadsafe_function",
            )?;
            check(
                sys::napi_unref_threadsafe_function(raw, tsfn),
                "napi_unref_threadsafe_function",
            )?;
        }
        Ok(Arc::new(Settler {
            env: raw,
            tsfn,
            finalized,
            pending: AtomicUsize::new(0),
        }))
    }

    /// A new promise (to return to JS) and the handle that settles it from any thread.
    pub fn promise<'env>(self: &Arc<Self>, env: &'env Env) -> Result<(Unknown<'env>, Pending)> {
        let mut deferred = ptr::null_mut();
        let mut promise = ptr::null_mut();
        // SAFETY: live env on the JS thread.
        unsafe {
            check(
                sys::napi_create_promise(env.raw(), &mut deferred, &mut promise),
                "napi_create_promise",
            )?;
            if self.pending.fetch_add(1, Ordering::Relaxed) == 0 {
                check(
                    sys::napi_ref_threadsafe_function(env.raw(), self.tsfn),
                    "napi_ref_threadsafe_function",
                )?;
            }
            Ok((
                Unknown::from_raw_unchecked(env.raw(), promise),
                Pending {
                    settler: self.clone(),
                    deferred: Some(deferred),
                },
            ))
        }
    }
}

impl Settler {
    /// Hands `message` to `call_js` on the JS thread.
    fn send(&self, message: Message) {
        let data = Box::into_raw(Box::new(message));
        // SAFETY: `data` is reclaimed by `call_js` (or leaked if Node is shutting down,
        // when the function no longer runs).
        let status = unsafe {
            sys::napi_call_threadsafe_function(
                self.tsfn,
                data.cast(),
                sys::ThreadsafeFunctionCallMode::nonblocking,
            )
        };
        if status != sys::Status::napi_ok {
            // SAFETY: not handed to Node, so still ours.
            drop(unsafe { Box::from_raw(data) });
        }
    }
}

impl Drop for Settler {
    fn drop(&mut self) {
        if self.finalized.load(Ordering::Acquire) {
            return;
        }
        // SAFETY: releasing may happen on any thread; the function is not used afterwards.
        unsafe {
            sys::napi_release_threadsafe_function(
                self.tsfn,
                sys::ThreadsafeFunctionReleaseMode::release,
            );
        }
    }
}

/// A promise waiting to be settled. Dropping it unsettled rejects the promise.
pub struct Pending {
    settler: Arc<Settler>,
    deferred: Option<sys::napi_deferred>,
}

// SAFETY: the deferred is only dereferenced by Node on the JS thread, in `call_js`.
unsafe impl Send for Pending {}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pending")
    }
}

impl Pending {
    /// Settles the promise with what `settle` returns on the JS thread (an `Err` rejects).
    pub fn settle(mut self, settle: impl FnOnce(&Env) -> Result<sys::napi_value> + Send + 'static) {
        if let Some(deferred) = self.deferred.take() {
            self.send(deferred, Box::new(settle));
        }
    }

    fn send(&self, deferred: sys::napi_deferred, settle: Settle) {
        if let Some(env) = crate::evloop::active_env(self.settler.env) {
            let raw = env.raw();
            let mut scope = ptr::null_mut();
            // SAFETY: on the JS thread inside a native callback of this environment.
            unsafe {
                sys::napi_open_handle_scope(raw, &mut scope);
                finish(&env, &self.settler, deferred, settle);
                sys::napi_close_handle_scope(raw, scope);
            }
            return;
        }
        self.settler.send(Message::Settle(Settlement {
            settler: self.settler.clone(),
            deferred,
            settle,
        }));
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(deferred) = self.deferred.take() {
            self.send(
                deferred,
                Box::new(|_| {
                    Err(Error::new(
                        Status::Cancelled,
                        "the operation was dropped before it finished",
                    ))
                }),
            );
        }
    }
}

unsafe extern "C" fn on_finalize(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    let finalized = Arc::from_raw(data as *const AtomicBool);
    finalized.store(true, Ordering::Release);
}

unsafe extern "C" fn call_js(
    env: sys::napi_env,
    _callback: sys::napi_value,
    _context: *mut c_void,
    data: *mut c_void,
) {
    let message = Box::from_raw(data.cast::<Message>());
    if env.is_null() {
        return; // the environment is going away; nothing can be settled or released
    }
    crate::evloop::new_turn();
    match *message {
        Message::Settle(Settlement {
            settler,
            deferred,
            settle,
        }) => finish(&Env::from_raw(env), &settler, deferred, settle),
        Message::Release(_settler, reference) => {
            sys::napi_delete_reference(env, reference);
        }
    }
}

/// Settles `deferred` on the JS thread and drops the function's reference when nothing is
/// pending any more.
fn finish(env: &Env, settler: &Settler, deferred: sys::napi_deferred, settle: Settle) {
    let raw = env.raw();
    // SAFETY: on the JS thread with a live env; each deferred is settled exactly once.
    unsafe {
        match settle(env) {
            Ok(value) => {
                sys::napi_resolve_deferred(raw, deferred, value);
            }
            Err(err) => {
                let value = carried(raw, JsError::from(err).into_value(raw));
                sys::napi_reject_deferred(raw, deferred, value);
            }
        }
        if settler.pending.fetch_sub(1, Ordering::Relaxed) == 1 {
            sys::napi_unref_threadsafe_function(raw, settler.tsfn);
        }
    }
}

/// The value a loader or writer rejected with when `error` carries one (see
/// `patterns::TRAMPOLINE`), else `error` itself.
///
/// # Safety
/// On the JS thread, with a live `env` and `error`.
unsafe fn carried(env: sys::napi_env, error: sys::napi_value) -> sys::napi_value {
    if error.is_null() {
        return error;
    }
    let key = crate::patterns::REJECTION_KEY;
    let mut name = ptr::null_mut();
    let mut has = false;
    let mut inner = ptr::null_mut();
    let found =
        sys::napi_create_string_utf8(env, key.as_ptr(), key.count_bytes() as isize, &mut name)
            == sys::Status::napi_ok
            && sys::napi_has_own_property(env, error, name, &mut has) == sys::Status::napi_ok
            && has
            && sys::napi_get_property(env, error, name, &mut inner) == sys::Status::napi_ok;
    if found {
        inner
    } else {
        error
    }
}

/// A promise already resolved with `value` (a near-tier hit: no hop off the JS thread).
pub fn resolved<'env>(env: &'env Env, value: sys::napi_value) -> Result<Unknown<'env>> {
    let mut deferred = ptr::null_mut();
    let mut promise = ptr::null_mut();
    // SAFETY: live env on the JS thread; the deferred is settled right away.
    unsafe {
        check(
            sys::napi_create_promise(env.raw(), &mut deferred, &mut promise),
            "napi_create_promise",
        )?;
        check(
            sys::napi_resolve_deferred(env.raw(), deferred, value),
            "napi_resolve_deferred",
        )?;
        Ok(Unknown::from_raw_unchecked(env.raw(), promise))
    }
}

/// A promise already rejected with `err`.
pub fn rejected<'env>(env: &'env Env, err: Error) -> Result<Unknown<'env>> {
    let mut deferred = ptr::null_mut();
    let mut promise = ptr::null_mut();
    // SAFETY: live env on the JS thread; the deferred is settled right away.
    unsafe {
        check(
            sys::napi_create_promise(env.raw(), &mut deferred, &mut promise),
            "napi_create_promise",
        )?;
        let value = JsError::from(err).into_value(env.raw());
        sys::napi_reject_deferred(env.raw(), deferred, value);
        Ok(Unknown::from_raw_unchecked(env.raw(), promise))
    }
}

/// A JS value kept alive until it is taken back on the JS thread (used once).
pub struct Kept(sys::napi_ref);

// SAFETY: the reference is created and deleted on the JS thread only (`keep`, `take`).
unsafe impl Send for Kept {}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kept")
    }
}

impl Kept {
    /// Keeps `value` (a JS object) alive.
    pub fn keep(env: &Env, value: sys::napi_value) -> Result<Kept> {
        let mut reference = ptr::null_mut();
        // SAFETY: live env and value on the JS thread.
        check(
            unsafe { sys::napi_create_reference(env.raw(), value, 1, &mut reference) },
            "napi_create_reference",
        )?;
        Ok(Kept(reference))
    }

    /// The kept value; the reference is released.
    pub fn take(self, env: &Env) -> Result<sys::napi_value> {
        let mut value = ptr::null_mut();
        // SAFETY: on the JS thread; the reference was created in this env.
        unsafe {
            check(
                sys::napi_get_reference_value(env.raw(), self.0, &mut value),
                "napi_get_reference_value",
            )?;
            sys::napi_delete_reference(env.raw(), self.0);
        }
        Ok(value)
    }
}

/// The JS object of a near-tier entry, kept alive by a strong reference for the entry's
/// life: every hit returns this same object, as Python's hits do (docs: do not mutate it).
/// Made and read on the JS thread; the entry holding it may be dropped on any thread (an
/// invalidation is applied on the tracking thread), so dropping sends the reference to
/// the JS thread through the cache's thread-safe function to be deleted there.
pub struct Held {
    settler: Arc<Settler>,
    reference: sys::napi_ref,
}

// SAFETY: the reference is created and read on the JS thread only (`new`, `value`), and
// deleted there too (`Drop` posts it to `call_js`); other threads only move the handle.
unsafe impl Send for Held {}
unsafe impl Sync for Held {}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Held")
    }
}

impl Held {
    /// Keeps `value` alive; `settler` is the cache's, whose function deletes the reference.
    pub fn new(settler: &Arc<Settler>, env: &Env, value: sys::napi_value) -> Result<Held> {
        let mut reference = ptr::null_mut();
        // SAFETY: live env and value on the JS thread.
        check(
            unsafe { sys::napi_create_reference(env.raw(), value, 1, &mut reference) },
            "napi_create_reference",
        )?;
        Ok(Held {
            settler: settler.clone(),
            reference,
        })
    }

    /// The held object (`env` is the one it was made in: a cache lives in one env).
    pub fn value(&self, env: &Env) -> Result<sys::napi_value> {
        let mut value = ptr::null_mut();
        // SAFETY: on the JS thread; the reference is live until `Drop` posts it away.
        check(
            unsafe { sys::napi_get_reference_value(env.raw(), self.reference, &mut value) },
            "napi_get_reference_value",
        )?;
        Ok(value)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // Once Node has finalized the function the env is gone, and the reference with it.
        if !self.settler.finalized.load(Ordering::Acquire) {
            self.settler
                .send(Message::Release(self.settler.clone(), self.reference));
        }
    }
}
