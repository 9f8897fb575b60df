//! `polycache.wasm` in wasmtime: every vector of `tests/vectors/`, the cache against real
//! Redis (standalone, shards, cluster) read and written from both the component and Rust,
//! and the host's network policy.
//!
//! Needs the component built first (`make test-wasm` does it; or set `POLYCACHE_WASM`).

mod cache;
mod contract;
mod interop;
mod network;
mod vectors;

use std::sync::OnceLock;

use polycache::codec::msgpack;
use polycache::Value;
pub(crate) use polycache_harness::notation::{to_typed, typed};
use polycache_wasm_host::{default_component_path, Guest, Host, Network, Options};

/// The component, compiled once per test process.
fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        let path = default_component_path();
        Host::load(&path).unwrap_or_else(|e| {
            panic!("{e:?}\nbuild the component first: `make test-wasm`, or set POLYCACHE_WASM")
        })
    })
}

/// An instance with TCP to loopback and a loader that refuses every key.
fn guest() -> Guest {
    host()
        .instantiate(Network::Loopback, |key: &str| {
            Err(format!("no loader for {key}"))
        })
        .expect("instantiate")
}

/// Options that change nothing.
fn no_options() -> Options {
    Options {
        prefix: None,
        namespace: None,
        ttl: None,
        jitter: None,
        codec: None,
        compression: None,
        compress_threshold: None,
        raw: None,
        connect_timeout: None,
        command_timeout: None,
        max_key_length: None,
        memory_capacity: None,
        read_through: None,
    }
}

/// Options with only a namespace, unique per test and process so runs never collide.
fn in_namespace(test: &str) -> Options {
    Options {
        namespace: Some(namespace(test)),
        ..no_options()
    }
}

fn namespace(test: &str) -> String {
    format!("wasm-{test}-{}", std::process::id())
}

/// A value as it crosses the WIT boundary (canonical MessagePack).
fn pack(value: &Value) -> Vec<u8> {
    msgpack::encode(value)
}

fn unpack(bytes: &[u8]) -> Value {
    msgpack::decode(bytes).expect("the component returns valid MessagePack")
}
