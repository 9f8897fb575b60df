//! The pure polycache contract for JS edge runtimes (workers-style hosts that give Wasm no
//! raw sockets): envelope encode/decode, key schema, cluster slots, ring placement and
//! function keys, with the same names and semantics as the Node package's contract
//! functions. An edge function does its Redis I/O with the platform's own transport and
//! uses these to read and write the same keys, bytes and shards as every other runtime.
//!
//! Built with wasm-bindgen for `wasm32-unknown-unknown`; on any other target the crate is
//! empty. Every function converts its arguments, calls core and converts the result.
#![cfg(all(target_arch = "wasm32", target_os = "unknown"))]

// `#[wasm_bindgen]` expands to unsafe FFI glue, so the exporting modules allow it.
#[allow(unsafe_code)]
mod config;
#[allow(unsafe_code)]
mod envelope;
mod errors;
mod freshness;
#[allow(unsafe_code)]
mod keys;
#[allow(unsafe_code)]
mod ring;
mod value;
