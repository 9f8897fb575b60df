//! The Node half of reading a tape ahead (core's `codec::js::ahead`): the native function the
//! walk calls once its tape is large ([`start`]), and the view of the walk's buffer that
//! core's helper thread reads ([`JsTape`]). `value::encode_for` opens a [`Slot`] around
//! each walk of a value to store; the walk's call starts the helper with the slot's
//! encoder, and `encode_for` finishes what the helper started.
#![allow(unsafe_code)] // Node-API is a C API; and the helper reads the walk's buffer.

use std::cell::RefCell;
use std::ops::Range;
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};

use napi::sys;
use polycache::codec::js::ahead::{TapeAhead, Written};
use polycache::codec::js::tape::TapeError;
use polycache::codec::Encoder;

/// The value being stored on this thread: its encoder until a helper takes it.
struct Slot {
    encoder: Option<Encoder>,
    max_items: usize,
    ahead: Option<Ahead>,
}

/// A helper reading the walk's buffer, and references that keep the buffer and the
/// published length alive until it is done (a getter's own walk drops its writer, and
/// with it both, as soon as it returns).
pub struct Ahead {
    // Declared first: dropped (the work taken back) before the references go.
    ahead: TapeAhead,
    kept: Kept,
}

impl Ahead {
    /// The encoder with the whole `tape` read into it (`TapeAhead::finish`), then the
    /// buffer let go.
    pub fn finish(
        self,
        tape: &[u8],
        again: impl FnOnce() -> Encoder,
    ) -> Result<Encoder, TapeError<polycache::Error>> {
        let Ahead { ahead, kept } = self;
        let encoder = ahead.finish(tape, again);
        drop(kept);
        encoder
    }
}

struct Kept {
    env: sys::napi_env,
    refs: [sys::napi_ref; 2],
}

impl Drop for Kept {
    fn drop(&mut self) {
        for reference in self.refs {
            if !reference.is_null() {
                // SAFETY: made on this thread for `env` (slots never leave their thread),
                // which is alive while one of its calls runs.
                unsafe { sys::napi_delete_reference(self.env, reference) };
            }
        }
    }
}

thread_local! {
    /// Innermost last: a getter that stores a value while its parent is walked has its own.
    static SLOTS: RefCell<Vec<Slot>> = const { RefCell::new(Vec::new()) };
}

/// What a walk left: the encoder to read its tape into, or the helper reading it already.
pub enum Walked {
    Here(Encoder),
    Ahead(Ahead),
}

/// Runs `walk` (one walk of a value) with `encoder` ready for the walk's [`start`].
pub fn around<T>(
    encoder: Encoder,
    max_items: usize,
    walk: impl FnOnce() -> T,
) -> (T, napi::Result<Walked>) {
    SLOTS.with_borrow_mut(|slots| {
        slots.push(Slot {
            encoder: Some(encoder),
            max_items,
            ahead: None,
        })
    });
    let walked = walk();
    // Pushed above; the walk's nested walks popped their own.
    let slot = SLOTS.with_borrow_mut(Vec::pop);
    let left = match slot {
        Some(Slot {
            ahead: Some(ahead), ..
        }) => Ok(Walked::Ahead(ahead)),
        Some(Slot {
            encoder: Some(encoder),
            ..
        }) => Ok(Walked::Here(encoder)),
        // Never: the helper is kept whenever the encoder is taken.
        _ => Err(napi::Error::from_reason(
            "polycache: the value's encoder was lost",
        )),
    };
    (walked, left)
}

/// The walk's buffer and its published length, read from core's helper thread.
struct JsTape {
    data: *const u8,
    len: usize,
    written: *const AtomicU32,
}

// SAFETY: the helper reads the buffer only below what the walk published and past the
// root's head (the walk writes neither again while the helper runs; the head's count may
// be written again, and core reads it on the JS thread only), and `written` only
// atomically. Both stay alive while the helper may read them: the slot holds a reference
// to each until `encode_for` has taken the work back (`TapeAhead::finish`, or its drop).
unsafe impl Send for JsTape {}

impl Written for JsTape {
    fn written(&self) -> usize {
        // SAFETY: an aligned `Int32Array` element the walk only writes with `Atomics.store`.
        let written = unsafe { (*self.written).load(Ordering::Acquire) };
        (written as usize).min(self.len)
    }

    fn bytes(&self, range: Range<usize>) -> &[u8] {
        let end = range.end.min(self.len);
        let start = range.start.min(end);
        // SAFETY: the range ends at most where the walk published, and no thread writes
        // there any more but the root's head, which core reads only on the JS thread (see
        // the `Send` implementation); the buffer lives until the work is taken back.
        unsafe { std::slice::from_raw_parts(self.data.add(start), end - start) }
    }
}

/// The data and length of a typed array of `kind`, or `None`.
unsafe fn typed(
    env: sys::napi_env,
    value: sys::napi_value,
    kind: sys::napi_typedarray_type,
) -> Option<(*mut u8, usize)> {
    let mut is = false;
    if sys::napi_is_typedarray(env, value, &mut is) != sys::Status::napi_ok || !is {
        return None;
    }
    let (mut found, mut len, mut data) = (0, 0usize, ptr::null_mut());
    let status = sys::napi_get_typedarray_info(
        env,
        value,
        &mut found,
        &mut len,
        &mut data,
        ptr::null_mut(),
        ptr::null_mut(),
    );
    (status == sys::Status::napi_ok && found == kind && !data.is_null())
        .then_some((data.cast(), len))
}

/// `start(buf, written)`, called by the walk: starts a helper reading `buf` (the tape's
/// `Buffer`) as far as `written[0]` says, with the innermost slot's encoder. Returns
/// whether it did (no slot, no thread: the JS thread reads the whole tape after the walk).
unsafe extern "C" fn start(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let mut argc = 2;
    let mut argv = [ptr::null_mut(); 2];
    let status = sys::napi_get_cb_info(
        env,
        info,
        &mut argc,
        argv.as_mut_ptr(),
        ptr::null_mut(),
        ptr::null_mut(),
    );
    let mut started = false;
    if status == sys::Status::napi_ok && argc == 2 {
        let buf = typed(env, argv[0], sys::TypedarrayType::uint8_array);
        let written = typed(env, argv[1], sys::TypedarrayType::int32_array);
        if let (Some((data, len)), Some((written, 1..))) = (buf, written) {
            let tape = JsTape {
                data,
                len,
                written: written.cast(),
            };
            let mut refs = [ptr::null_mut(); 2];
            let mut kept_all = true;
            for (value, reference) in argv.iter().zip(refs.iter_mut()) {
                kept_all &=
                    sys::napi_create_reference(env, *value, 1, reference) == sys::Status::napi_ok;
            }
            let kept = Kept { env, refs };
            started = kept_all
                && SLOTS.with_borrow_mut(|slots| {
                    let Some(slot) = slots.last_mut() else {
                        return false;
                    };
                    let Some(encoder) = slot.encoder.take() else {
                        return false;
                    };
                    match TapeAhead::start(encoder, slot.max_items, Box::new(tape)) {
                        Ok(ahead) => {
                            slot.ahead = Some(Ahead { ahead, kept });
                            true
                        }
                        Err(encoder) => {
                            slot.encoder = Some(*encoder);
                            false
                        }
                    }
                });
        }
    }
    let mut out = ptr::null_mut();
    sys::napi_get_boolean(env, started, &mut out);
    out
}

const NAME: &std::ffi::CStr = c"polycacheReadAhead";

/// The native function the walk calls ([`start`]).
///
/// # Safety
/// On the JS thread of `env`.
pub unsafe fn function(env: sys::napi_env) -> napi::Result<sys::napi_value> {
    let mut function = ptr::null_mut();
    let status = sys::napi_create_function(
        env,
        NAME.as_ptr(),
        NAME.count_bytes() as isize,
        Some(start),
        ptr::null_mut(),
        &mut function,
    );
    if status != sys::Status::napi_ok {
        return Err(napi::Error::new(
            napi::Status::from(status),
            "cannot make the read-ahead function",
        ));
    }
    Ok(function)
}
