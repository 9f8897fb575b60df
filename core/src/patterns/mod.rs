//! The pieces the cache patterns are built from: host-supplied loaders and writers,
//! single-flight, and the batcher of hosts that collect calls per event-loop turn.
//! [`crate::Cache`] decides *when* they run; bindings only know *how to call* the host
//! function.

pub mod batch;
pub mod fresh;
mod single_flight;
mod template;

use std::future::Future;

use futures_util::future::BoxFuture;

pub use fresh::{found, Freshness, LoadOptions, Loaded, LoadedEntry};
pub use single_flight::{reentrant_load, SingleFlight};
pub use template::{call_key, call_key_named, KeyTemplate};

use crate::codec::Value;
use crate::error::Result;

/// Produces the value of a key on a miss (read-through and `get_or_load`).
pub trait Loader: Send + Sync {
    /// Loads the value of the user key `key`.
    fn load(&self, key: &str) -> BoxFuture<'static, Result<Value>>;
}

impl<F, Fut> Loader for F
where
    F: Fn(String) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Value>> + Send + 'static,
{
    fn load(&self, key: &str) -> BoxFuture<'static, Result<Value>> {
        Box::pin(self(key.to_owned()))
    }
}

/// Persists a value to the system of record before the cache is touched (write-through).
pub trait Writer: Send + Sync {
    /// Writes `value` for the user key `key`.
    fn write(&self, key: &str, value: &Value) -> BoxFuture<'static, Result<()>>;
}

impl<F, Fut> Writer for F
where
    F: Fn(String, Value) -> Fut + Send + Sync,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    fn write(&self, key: &str, value: &Value) -> BoxFuture<'static, Result<()>> {
        Box::pin(self(key.to_owned(), value.clone()))
    }
}
