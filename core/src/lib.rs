//! # polycache
//!
//! One Redis cache layer for Rust, Python, Node and WASI: the same keys, the same value
//! bytes, the same shard for a key, across every runtime. This crate holds all the logic;
//! the bindings only convert arguments and map results.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::time::Duration;
//! use polycache::{Cache, Config, Value};
//!
//! // The embedded default: an in-process store, no Redis needed.
//! let cache = Cache::new(Config::default().namespace("docs")).await?;
//! cache.set("greeting", &Value::from("hello"), Some(Duration::from_secs(60))).await?;
//! assert_eq!(cache.get("greeting").await?, Some(Value::from("hello")));
//!
//! // Cache-aside with single-flight: the loader runs once, later calls hit.
//! let n = cache.get_or_load("answer", || async { Ok(Value::from(42)) }, None).await?;
//! assert_eq!(n, Value::from(42));
//! assert_eq!(cache.metrics().loads, 1);
//! # Ok::<(), polycache::Error>(())
//! # }).unwrap();
//! ```
//!
//! The wire format (envelope, keys, ring) is specified byte for byte in `docs/FORMAT.md`
//! and checked by the vectors in `tests/vectors/`.

mod block_on;
mod cache;
pub mod clock;
pub mod codec;
mod config;
pub mod contract;
mod error;
pub mod key;
pub mod lock;
mod metrics;
mod near;
pub mod patterns;
mod redact;
pub mod ring;
pub mod store;
pub mod ttl;

pub use block_on::block_on;
pub use cache::{Cache, CacheBuilder, Stored};
pub use clock::{Clock, MockClock};
pub use codec::{from_value, to_value, Codec, Compression, Value};
pub use config::Config;
pub use error::{Error, ErrorKind, Result};
pub use key::KeySchema;
pub use metrics::{MetricsSnapshot, LATENCY_BUCKETS_US};
pub use near::{after_fork, NearValue};
pub use patterns::{
    call_key, call_key_named, found, Freshness, KeyTemplate, LoadOptions, Loaded, LoadedEntry,
    Loader, SingleFlight, Writer,
};
pub use redact::redact_url;
pub use ring::{Node, Ring};
#[cfg(feature = "memory")]
pub use store::MemoryStore;
pub use store::{Entry, Io, Store};

/// The README's Rust examples run as doctests, so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
