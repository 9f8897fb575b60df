//! polycache as a WASI Preview 2 component. `wit/polycache.wit` is the contract; this
//! crate only converts between WIT types and `polycache` calls. The cache uses core's
//! blocking stores: redis-rs over std::net, which wasi-libc maps onto wasi:sockets, driven
//! by [`polycache::block_on`] on the component's one thread (no async runtime inside).
//!
//! Built for any other target the crate is empty.
#![cfg(all(target_arch = "wasm32", target_os = "wasi"))]

mod cache;
mod config;
mod envelope;
mod errors;
mod freshness;
mod keys;
mod ring;
mod value;

/// The generated bindings and the export glue, private to this crate (nothing generated is
/// committed). The glue is unsafe FFI code, allowed here only.
#[allow(unsafe_code, missing_debug_implementations, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "polycache",
    });

    use super::Component;
    export!(Component with_types_in self);
}

/// The component: one type implements every exported interface.
#[derive(Debug)]
struct Component;
