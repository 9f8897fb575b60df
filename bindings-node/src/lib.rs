//! Node binding of polycache (package `polycache`): a thin napi-rs layer over the `polycache`
//! crate. Files mirror core: `cache.rs` (the `Cache` class), `args.rs` (checked arguments),
//! `config.rs` (options -> `Config`), `value.rs` (JS values <-> `Value` and payloads; `tape.rs` is its JS walk), `patterns.rs` (JS loaders and writers),
//! `fresh.rs` (the `getEntry` answer), `batch.rs` (the call path: a tick's calls handed to core's batcher), `settle.rs` (settling
//! promises from other threads; both described in docs/node.md), `contract.rs` (the FORMAT.md functions) and `errors.rs`
//! (the one place errors become JS errors with `err.code`).

// napi registers the exported items only outside `cfg(test)`, so unit-test builds see them
// as unused.
#![cfg_attr(test, allow(dead_code))]

mod ahead;
mod args;
mod batch;
mod cache;
mod config;
mod contract;
mod entry;
mod errors;
mod evloop;
mod fresh;
mod patterns;
mod plan;
mod settle;
mod socket;
mod tape;
mod value;

/// Rust-side allocations of the addon (values, keys, batches): glibc malloc was ~20% of a
/// batched `get` in perf profiles (malloc_consolidate, unlink_chunk).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
