//! The only I/O seam: every cache pattern talks to a [`Store`], never to Redis directly.
//!
//! Stores come in two I/O modes with the same semantics. **Async** stores (tokio) serve
//! Rust async code, Python's `AsyncCache` and Node. **Blocking** stores do their socket
//! I/O inside `poll` and complete on the first poll; a cache built on them is driven with
//! [`crate::block_on`] on the caller's own thread, with no hop to another thread. That is
//! what makes Python's sync `Cache` as fast as a plain synchronous client, and what the
//! single-threaded WASI component uses. Never poll a blocking store inside an async runtime.

#[cfg(feature = "redis")]
mod blocking;
#[cfg(feature = "memory")]
mod memory;
#[cfg(feature = "tokio-redis")]
mod redis;
#[cfg(feature = "redis")]
mod sentinel;
mod sharded;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

#[cfg(feature = "redis")]
pub use self::blocking::{Batching, BlockingClusterStore, BlockingRedisStore, BlockingStore};
#[cfg(feature = "tokio-redis")]
pub use self::redis::{ClusterStore, RedisStore};
#[cfg(feature = "redis")]
pub use self::sentinel::SentinelStore;
#[cfg(feature = "memory")]
pub use memory::MemoryStore;
pub use sharded::ShardedStore;

use crate::clock::Clock;
use crate::config::{Config, Target};
#[cfg(not(all(feature = "redis", feature = "tokio-redis", feature = "memory")))]
use crate::error::Error;
use crate::error::Result;
use crate::key::slot;

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

/// How a cache's stores do I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Io {
    /// tokio stores; calls are awaited inside a tokio runtime.
    #[default]
    Async,
    /// Blocking stores; calls are driven with [`crate::block_on`] on the caller's thread.
    Blocking,
}

/// Opens the store a config's URL names, in the given I/O mode.
///
/// # Errors
/// A config error for a bad URL or a mode this build lacks; a connection or timeout error
/// when Redis cannot be reached within `connect_timeout`.
pub async fn open(config: &Config, clock: Clock, io: Io) -> Result<Arc<dyn Store>> {
    let target = Target::parse(&config.url)?;
    #[cfg(feature = "tls")]
    if config.url.starts_with("rediss") {
        // rustls needs a process-wide crypto provider; a second install is a no-op error.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    if let Target::Memory = target {
        return open_memory(config, clock);
    }
    match io {
        Io::Async => open_async(target, config).await,
        Io::Blocking => open_blocking(target, config),
    }
}

#[cfg(feature = "memory")]
fn open_memory(config: &Config, clock: Clock) -> Result<Arc<dyn Store>> {
    Ok(Arc::new(MemoryStore::new(config.memory_capacity, clock)))
}

#[cfg(not(feature = "memory"))]
fn open_memory(_: &Config, _: Clock) -> Result<Arc<dyn Store>> {
    Err(Error::config(
        "this build of polycache has no memory:// store (feature `memory` is off)",
    ))
}

#[cfg(feature = "tokio-redis")]
async fn open_async(target: Target, config: &Config) -> Result<Arc<dyn Store>> {
    use futures_util::future::try_join_all;
    Ok(match target {
        Target::Memory => unreachable!("handled by open"),
        Target::Redis(url) => Arc::new(RedisStore::connect(&url, config).await?),
        Target::Cluster(seeds) => Arc::new(ClusterStore::connect(&seeds, config).await?),
        Target::Sentinel(target) => {
            Arc::new(SentinelStore::connect(target, config, Io::Async).await?)
        }
        Target::Shards(nodes) => {
            let (urls, ring_nodes): (Vec<String>, Vec<_>) = nodes.into_iter().unzip();
            let ring = crate::Ring::new(ring_nodes)?;
            let stores = try_join_all(urls.iter().map(|url| RedisStore::connect(url, config)))
                .await?
                .into_iter()
                .map(|store| Arc::new(store) as Arc<dyn Store>)
                .collect();
            Arc::new(ShardedStore::new(ring, stores)?)
        }
    })
}

#[cfg(not(feature = "tokio-redis"))]
async fn open_async(_: Target, _: &Config) -> Result<Arc<dyn Store>> {
    Err(Error::config(
        "this build of polycache has no async Redis stores (feature `tokio-redis` is off)",
    ))
}

#[cfg(feature = "redis")]
fn open_blocking(target: Target, config: &Config) -> Result<Arc<dyn Store>> {
    Ok(match target {
        Target::Memory => unreachable!("handled by open"),
        Target::Redis(url) => Arc::new(BlockingRedisStore::connect(&url, config)?),
        Target::Cluster(seeds) => Arc::new(BlockingClusterStore::connect(&seeds, config)?),
        Target::Sentinel(target) => Arc::new(crate::block_on(SentinelStore::connect(
            target,
            config,
            Io::Blocking,
        ))?),
        Target::Shards(nodes) => {
            let (urls, ring_nodes): (Vec<String>, Vec<_>) = nodes.into_iter().unzip();
            let ring = crate::Ring::new(ring_nodes)?;
            let stores = urls
                .iter()
                .map(|url| {
                    BlockingRedisStore::connect(url, config)
                        .map(|store| Arc::new(store) as Arc<dyn Store>)
                })
                .collect::<Result<Vec<_>>>()?;
            Arc::new(ShardedStore::new(ring, stores)?)
        }
    })
}

#[cfg(not(feature = "redis"))]
fn open_blocking(_: Target, _: &Config) -> Result<Arc<dyn Store>> {
    Err(Error::config(
        "this build of polycache has no Redis support (feature `redis` is off)",
    ))
}

#[cfg(feature = "redis")]
fn set_cmd(entry: &Entry) -> ::redis::Cmd {
    let mut cmd = ::redis::cmd("SET");
    cmd.arg(&entry.key).arg(&entry.value);
    if let Some(ttl) = entry.ttl {
        cmd.arg("PX").arg(ttl.as_millis().max(1) as u64);
    }
    cmd
}

/// Redis `PTTL` reply to a TTL: -2 means no such key, -1 no expiry.
#[cfg(feature = "redis")]
fn pttl(ms: i64) -> Option<Duration> {
    u64::try_from(ms).ok().map(Duration::from_millis)
}

/// Indices of `keys`, grouped by cluster slot: a multi-key command must stay in one slot.
#[allow(dead_code)] // unused in builds without Redis
fn group_by_slot<'a>(keys: impl Iterator<Item = &'a str>) -> BTreeMap<u16, Vec<usize>> {
    let mut groups: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
    for (i, key) in keys.enumerate() {
        groups.entry(slot(key.as_bytes())).or_default().push(i);
    }
    groups
}
