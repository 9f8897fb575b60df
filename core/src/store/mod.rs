//! The only I/O seam: every cache pattern talks to a [`Store`], never to Redis directly.

mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

#[cfg(feature = "redis")]
pub use self::redis::{ClusterStore, RedisStore, ShardedStore};
pub use memory::MemoryStore;

use crate::clock::Clock;
use crate::config::{Config, Target};
#[cfg(not(feature = "redis"))]
use crate::error::Error;
use crate::error::Result;

/// One value to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The Redis key.
    pub key: String,
    /// The stored bytes (an envelope, or bare bytes in raw mode).
    pub value: Vec<u8>,
    /// Time to live; `None` keeps the value until evicted.
    pub ttl: Option<Duration>,
}

/// Byte storage with per-key TTL. Keys are full Redis keys (see [`crate::KeySchema`]).
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// The bytes under `key`, or `None`.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// The bytes under each key, in order, in as few round trips as the topology allows.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>>;
    /// Writes one value.
    async fn set(&self, entry: Entry) -> Result<()>;
    /// Writes several values, pipelined per node.
    async fn set_many(&self, entries: Vec<Entry>) -> Result<()>;
    /// Removes `key`; whether it existed.
    async fn delete(&self, key: &str) -> Result<bool>;
    /// Remaining time to live; `None` when the key is missing or never expires.
    async fn ttl(&self, key: &str) -> Result<Option<Duration>>;
    /// Entries dropped to respect a capacity bound (only the in-process store has one).
    fn evictions(&self) -> u64 {
        0
    }
}

/// Opens the store a config's URL names.
///
/// # Errors
/// A config error for a bad URL; a connection or timeout error when Redis cannot be reached
/// within `connect_timeout`.
pub async fn open(config: &Config, clock: Clock) -> Result<Arc<dyn Store>> {
    match Target::parse(&config.url)? {
        Target::Memory => Ok(Arc::new(MemoryStore::new(config.memory_capacity, clock))),
        #[cfg(feature = "redis")]
        Target::Redis(url) => Ok(Arc::new(RedisStore::connect(&url, config).await?)),
        #[cfg(feature = "redis")]
        Target::Shards(nodes) => Ok(Arc::new(ShardedStore::connect(nodes, config).await?)),
        #[cfg(feature = "redis")]
        Target::Cluster(seeds) => Ok(Arc::new(ClusterStore::connect(&seeds, config).await?)),
        #[cfg(not(feature = "redis"))]
        _ => Err(Error::config(
            "this build of polycache has no Redis support (feature `redis` is off)",
        )),
    }
}
