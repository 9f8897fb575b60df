//! The one place where failures become JS errors.
//!
//! Every polycache error is a JS `Error` whose `code` is `E` + the upper-cased name of
//! core's [`ErrorKind`]: `ECONFIG`, `EKEY`, `ECODEC`, `ECONNECTION`, `ETIMEOUT`, `ESERVER`,
//! `ECLUSTER`, `ELOADER`, `EWRITER` (the `ECONNREFUSED` style of Node's own errors). A value
//! that cannot be cached is a `TypeError` with code `ECODEC`. When a loader or writer
//! rejects, the caller gets the loader's own rejection value unchanged, not a wrapper.
#![allow(unsafe_code)] // creating JS error objects is a Node-API call

use std::ptr;

use napi::bindgen_prelude::Unknown;
use napi::{sys, Env, Error, Result, Status};
use napi_derive::napi;
use polycache::ErrorKind;

/// The `code` of every error polycache raises, one per core `ErrorKind`.
#[napi(string_enum)]
#[derive(Debug, PartialEq, Eq)]
#[allow(clippy::upper_case_acronyms)]
pub enum ErrorCode {
    /// Invalid options or URL.
    ECONFIG,
    /// An unusable cache key (for example an empty one).
    EKEY,
    /// A value that cannot be encoded (also a `TypeError`), or bytes that cannot be decoded.
    ECODEC,
    /// Redis could not be reached or the connection broke.
    ECONNECTION,
    /// Redis did not answer within `commandTimeout`.
    ETIMEOUT,
    /// Redis answered with an error reply.
    ESERVER,
    /// Redis Cluster could not route the request.
    ECLUSTER,
    /// A loader failed (a loader's own rejection is passed through as it is).
    ELOADER,
    /// The write-through writer failed; the cache was not touched.
    EWRITER,
}

/// The code for a kind: core's [`ErrorKind::code`].
pub fn code(kind: ErrorKind) -> &'static str {
    kind.code()
}

/// Converts a core error into a JS error object (see the module docs).
pub fn to_js(env: &Env, err: &polycache::Error) -> Error {
    if matches!(err.kind(), ErrorKind::Loader | ErrorKind::Writer) {
        if let Some(own) = err.source_as::<Error>() {
            if let Ok(own) = own.try_clone() {
                return own;
            }
        }
    }
    // Core's one message format: the message without the kind, which is in `code`.
    make(env.raw(), code(err.kind()), err.message(), false)
}

/// A `TypeError` with code `ECODEC` for a JS value that cannot be cached.
pub fn type_error(env: &Env, message: impl AsRef<str>) -> Error {
    make(env.raw(), code(ErrorKind::Codec), message.as_ref(), true)
}

/// A `TypeError` with code `ECONFIG` for a bad argument (a loader that is not a function …).
pub fn config_type_error(env: &Env, message: impl AsRef<str>) -> Error {
    kind_type_error(env, ErrorKind::Config, message)
}

/// A `TypeError` with the code of `kind` for an argument of the wrong type.
pub fn kind_type_error(env: &Env, kind: ErrorKind, message: impl AsRef<str>) -> Error {
    make(env.raw(), code(kind), message.as_ref(), true)
}

fn make(env: sys::napi_env, code: &str, message: &str, type_error: bool) -> Error {
    let fallback = || Error::new(Status::GenericFailure, message.to_owned());
    let mut js_code = ptr::null_mut();
    let mut js_message = ptr::null_mut();
    let mut out = ptr::null_mut();
    // SAFETY: `env` comes from a live `Env` on the JS thread; every out-pointer is local.
    let created = unsafe {
        sys::napi_create_string_utf8(env, code.as_ptr().cast(), code.len() as isize, &mut js_code)
            == sys::Status::napi_ok
            && sys::napi_create_string_utf8(
                env,
                message.as_ptr().cast(),
                message.len() as isize,
                &mut js_message,
            ) == sys::Status::napi_ok
            && if type_error {
                sys::napi_create_type_error(env, js_code, js_message, &mut out)
            } else {
                sys::napi_create_error(env, js_code, js_message, &mut out)
            } == sys::Status::napi_ok
    };
    if !created {
        return fallback();
    }
    // An `Error` holding a reference to the object: napi throws or rejects with the object.
    // SAFETY: `out` is the error object just created in `env`.
    Error::from(unsafe { Unknown::from_raw_unchecked(env, out) })
}

/// Turns a core result into a napi result, on the JS thread.
pub fn check<T>(env: &Env, result: polycache::Result<T>) -> Result<T> {
    result.map_err(|err| to_js(env, &err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_declared_code() {
        let declared = [
            ErrorCode::ECONFIG,
            ErrorCode::EKEY,
            ErrorCode::ECODEC,
            ErrorCode::ECONNECTION,
            ErrorCode::ETIMEOUT,
            ErrorCode::ESERVER,
            ErrorCode::ECLUSTER,
            ErrorCode::ELOADER,
            ErrorCode::EWRITER,
        ];
        let codes: Vec<&str> = ErrorKind::ALL.iter().map(|&k| code(k)).collect();
        let names: Vec<String> = declared.iter().map(|c| format!("{c:?}")).collect();
        assert_eq!(codes, names);
    }
}
