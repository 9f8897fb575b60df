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
mod breaker;
#[cfg(feature = "tokio-redis")]
mod connector;
mod lazy;
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
#[allow(unused_imports)] // unused in builds without Redis
use futures_util::future::BoxFuture;

#[cfg(all(feature = "redis", not(target_os = "wasi")))]
pub(crate) use self::blocking::node_url;
#[cfg(feature = "redis")]
pub use self::blocking::{BlockingClusterStore, BlockingRedisStore};
#[cfg(feature = "tokio-redis")]
pub use self::connector::{Connector, NodeAddr, NodeStream};
#[cfg(feature = "tokio-redis")]
pub use self::redis::{ClusterStore, RedisStore};
#[cfg(all(feature = "redis", not(target_os = "wasi")))]
pub(crate) use self::sentinel::ask_sentinel;
#[cfg(feature = "redis")]
pub use self::sentinel::SentinelStore;
pub(crate) use breaker::is_rejected;
pub use breaker::{Breaker, BreakerState, BreakerStats, BreakerStore};
pub use lazy::{LazyStore, RETRY_AFTER};
#[cfg(feature = "memory")]
pub use memory::MemoryStore;
pub use sharded::ShardedStore;

use crate::clock::Clock;
use crate::codec::Framed;
use crate::config::{Config, Target};
#[cfg(not(all(feature = "redis", feature = "tokio-redis", feature = "memory")))]
use crate::error::Error;
use crate::error::Result;
use crate::key::slot;
use crate::lock::Script;

/// One value to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The Redis key.
    pub key: String,
    /// The stored bytes (an envelope, or bare bytes in raw mode).
    pub value: Vec<u8>,
    /// Time to live; `None` (or zero) keeps the value until evicted.
    pub ttl: Option<Duration>,
}

/// Byte storage with per-key TTL. Keys are full Redis keys (see [`crate::KeySchema`]).
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// The bytes under `key`, or `None`.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// The bytes under each key, in order, in as few round trips as the topology allows.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>>;
    /// Like [`Store::get_many`] with a result per key, so that over several nodes a failing
    /// node fails only its own keys. The default fails every key with the one error.
    async fn get_each(&self, keys: &[String]) -> Vec<Result<Option<Vec<u8>>>> {
        match self.get_many(keys).await {
            Ok(values) => values.into_iter().map(Ok).collect(),
            Err(err) => vec![Err(err); keys.len()],
        }
    }
    /// Writes one value.
    async fn set(&self, entry: Entry) -> Result<()>;
    /// [`Store::set`] for stored bytes with room in front of them ([`Framed`], what
    /// [`crate::Cache::set_encoded`] writes): a store that builds its command around the
    /// bytes writes the command's head into that room instead of copying them. By default
    /// the bytes are moved to the front of their buffer and written with `set`.
    async fn set_framed(&self, key: &str, value: Framed, ttl: Option<Duration>) -> Result<()> {
        self.set(Entry {
            key: key.to_owned(),
            value: value.into_vec(),
            ttl,
        })
        .await
    }
    /// Writes one value within `budget` instead of the command timeout: the last step of
    /// a call that already spent part of its deadline.
    async fn set_within(&self, entry: Entry, budget: Duration) -> Result<()> {
        let _ = budget;
        self.set(entry).await
    }
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
    /// The circuit breakers in front of this store's nodes (none unless
    /// `breaker_failures` > 0; see [`BreakerStore`]).
    fn breakers(&self) -> BreakerStats {
        BreakerStats::default()
    }
    /// `SET key value NX PX ttl`: writes only when `key` is absent; whether it wrote. The
    /// stampede lock's acquire (FORMAT.md §6); stores without Redis do not have it.
    async fn set_if_absent(&self, entry: Entry) -> Result<bool> {
        let _ = entry;
        Err(no_scripts(self))
    }
    /// Runs one of the lock protocol's scripts on the node of `keys` (which share one hash
    /// tag): `EVALSHA`, then `EVAL` when the server does not have it yet; its integer reply.
    async fn eval(&self, script: &Script, keys: &[String], args: &[Vec<u8>]) -> Result<i64> {
        let _ = (script, keys, args);
        Err(no_scripts(self))
    }
}

fn no_scripts(store: &(impl fmt::Debug + ?Sized)) -> crate::Error {
    crate::Error::config(format!("{store:?} has no stampede lock (it needs Redis)"))
}

/// `EVALSHA` of `script`, and the `EVAL` to send when the server answers `NOSCRIPT`.
#[cfg(feature = "redis")]
fn eval_cmds(script: &Script, keys: &[String], args: &[Vec<u8>]) -> [::redis::Cmd; 2] {
    [("EVALSHA", script.sha1), ("EVAL", script.text)].map(|(name, body)| {
        let mut cmd = ::redis::cmd(name);
        cmd.arg(body).arg(keys.len()).arg(keys).arg(args);
        cmd
    })
}

/// Whether a script call failed because the server does not have the script cached.
#[cfg(feature = "redis")]
fn is_noscript(err: &crate::Error) -> bool {
    err.message().contains("NOSCRIPT")
        || std::error::Error::source(err)
            .and_then(|s| s.downcast_ref::<::redis::RedisError>())
            .is_some_and(|e| {
                e.kind() == ::redis::ErrorKind::Server(::redis::ServerErrorKind::NoScript)
            })
}

/// `SET key value NX PX ttl`.
#[cfg(feature = "redis")]
fn set_nx_cmd(entry: &Entry) -> ::redis::Cmd {
    let mut cmd = set_cmd(entry);
    cmd.arg("NX");
    cmd
}

/// A `SET … NX` reply: `OK` when it wrote, nil when the key was there.
#[cfg(feature = "redis")]
fn wrote(reply: &::redis::Value) -> bool {
    !matches!(reply, ::redis::Value::Nil)
}

/// The error of a TLS connect that timed out: a plain Redis port never answers a TLS hello,
/// so this is almost always `rediss://` pointed at a server without TLS.
#[allow(dead_code)] // unused in builds without Redis
pub(crate) fn tls_timeout(node: &str, limit: Duration) -> crate::Error {
    crate::Error::new(
        crate::ErrorKind::Connection,
        format!(
            "{node}: no TLS handshake within {limit:?}: is this port serving TLS? \
             (a plain Redis port never answers; use redis:// for it)"
        ),
    )
}

/// The id of this process. WASI has no `fork` (and `std::process::id` panics there), so the
/// component always reports one id.
pub(crate) fn process_id() -> u32 {
    if cfg!(target_os = "wasi") {
        0
    } else {
        std::process::id()
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
    open_via(config, clock, io, None).await
}

/// A connector for the plain Redis nodes of an async store (see [`Connector`]); a
/// placeholder type in builds without async Redis stores.
#[cfg(feature = "tokio-redis")]
pub type SharedConnector = Arc<dyn Connector>;
/// A connector for the plain Redis nodes of an async store; none exist in this build.
#[cfg(not(feature = "tokio-redis"))]
pub type SharedConnector = Arc<dyn fmt::Debug + Send + Sync>;

/// [`open`], with the streams of plain `redis://` nodes (standalone and shards) of an
/// async store coming from `connector`; other topologies and blocking stores ignore it.
///
/// # Errors
/// As [`open`].
pub async fn open_via(
    config: &Config,
    clock: Clock,
    io: Io,
    connector: Option<SharedConnector>,
) -> Result<Arc<dyn Store>> {
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
        Io::Async => open_async(target, config, clock, connector).await,
        Io::Blocking => open_blocking(target, config, clock).await,
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
async fn open_async(
    target: Target,
    config: &Config,
    clock: Clock,
    connector: Option<SharedConnector>,
) -> Result<Arc<dyn Store>> {
    Ok(match target {
        Target::Memory => unreachable!("handled by open"),
        Target::Redis(url) => {
            let store = RedisStore::connect_via(&url, config, connector.as_ref()).await?;
            let node = store.node().to_owned();
            guarded(Arc::new(store), node, config, &clock)
        }
        Target::Cluster(seeds) => {
            let store = ClusterStore::connect(&seeds, config).await?;
            guarded(Arc::new(store), config.redacted_url(), config, &clock)
        }
        Target::Sentinel(target) => {
            let store = SentinelStore::connect(target, config, Io::Async).await?;
            guarded(Arc::new(store), config.redacted_url(), config, &clock)
        }
        Target::Shards(nodes) => {
            let (urls, ring_nodes): (Vec<String>, Vec<_>) = nodes.into_iter().unzip();
            let ring = crate::Ring::new(ring_nodes)?;
            let node_config = node_config(config);
            let stores = futures_util::future::join_all(urls.into_iter().map(|url| {
                let (config, clock) = (node_config.clone(), clock.clone());
                let connector = connector.clone();
                async move {
                    let first = RedisStore::connect_via(&url, &config, connector.as_ref()).await;
                    let name = crate::redact_url(&url);
                    let reopen = move || {
                        let (url, config) = (url.clone(), config.clone());
                        let connector = connector.clone();
                        Box::pin(async move {
                            let store =
                                RedisStore::connect_via(&url, &config, connector.as_ref()).await?;
                            Ok(Arc::new(store) as Arc<dyn Store>)
                        }) as BoxFuture<'static, _>
                    };
                    LazyStore::new(name, clock, first.map(arc), Box::new(reopen))
                }
            }))
            .await;
            sharded(ring, stores, config, &clock)?
        }
    })
}

/// The config a shard's node opens with: a node reopened during a call must not take
/// longer than the call may.
#[cfg(feature = "redis")]
fn node_config(config: &Config) -> Config {
    let mut config = config.clone();
    config.connect_timeout = config.connect_timeout.min(config.command_timeout);
    config
}

/// `store` behind a circuit breaker named `node`, when `breaker_failures` turns it on.
#[allow(dead_code)] // unused in builds without Redis
fn guarded(store: Arc<dyn Store>, node: String, config: &Config, clock: &Clock) -> Arc<dyn Store> {
    if config.breaker_failures == 0 {
        return store;
    }
    let breaker = Breaker::new(
        node,
        config.breaker_failures,
        config.breaker_cooldown,
        clock.clone(),
    );
    Arc::new(BreakerStore::new(store, breaker))
}

/// The sharded store over nodes that may be down, each behind its own breaker; an error
/// when none is up.
#[cfg(feature = "redis")]
fn sharded(
    ring: crate::Ring,
    nodes: Vec<LazyStore>,
    config: &Config,
    clock: &Clock,
) -> Result<Arc<dyn Store>> {
    if let Some(down) = nodes.iter().find(|node| !node.is_up()) {
        if nodes.iter().all(|node| !node.is_up()) {
            return Err(crate::Error::new(
                crate::ErrorKind::Connection,
                format!("no shard is reachable (first: {down:?})"),
            ));
        }
    }
    let nodes = nodes
        .into_iter()
        .zip(ring.nodes())
        .map(|(node, ring_node)| guarded(Arc::new(node), ring_node.name.clone(), config, clock))
        .collect();
    Ok(Arc::new(ShardedStore::new(ring, nodes)?))
}

#[cfg(not(feature = "tokio-redis"))]
async fn open_async(
    _: Target,
    _: &Config,
    _: Clock,
    _: Option<SharedConnector>,
) -> Result<Arc<dyn Store>> {
    Err(Error::config(
        "this build of polycache has no async Redis stores (feature `tokio-redis` is off)",
    ))
}

#[cfg(feature = "redis")]
async fn open_blocking(target: Target, config: &Config, clock: Clock) -> Result<Arc<dyn Store>> {
    Ok(match target {
        Target::Memory => unreachable!("handled by open"),
        Target::Redis(url) => {
            let store = BlockingRedisStore::connect(&url, config)?;
            let node = store.node().to_owned();
            guarded(Arc::new(store), node, config, &clock)
        }
        Target::Cluster(seeds) => {
            let store = BlockingClusterStore::connect(&seeds, config)?;
            guarded(Arc::new(store), config.redacted_url(), config, &clock)
        }
        Target::Sentinel(target) => {
            let store = crate::block_on(SentinelStore::connect(target, config, Io::Blocking))?;
            guarded(Arc::new(store), config.redacted_url(), config, &clock)
        }
        Target::Shards(nodes) => {
            let (urls, ring_nodes): (Vec<String>, Vec<_>) = nodes.into_iter().unzip();
            let ring = crate::Ring::new(ring_nodes)?;
            // Nodes open one after another on this thread, all within one connect_timeout.
            let deadline = std::time::Instant::now() + config.connect_timeout;
            let node_config = node_config(config);
            let mut stores = Vec::with_capacity(urls.len());
            for url in urls {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                let first = if left.is_zero() {
                    Err(crate::Error::new(
                        crate::ErrorKind::Timeout,
                        format!(
                            "{}: not opened within connectTimeout",
                            crate::redact_url(&url)
                        ),
                    ))
                } else {
                    let mut first = node_config.clone();
                    first.connect_timeout = left.min(first.connect_timeout);
                    BlockingRedisStore::connect(&url, &first).map(arc)
                };
                let name = crate::redact_url(&url);
                let config = node_config.clone();
                let reopen = move || {
                    let opened = BlockingRedisStore::connect(&url, &config).map(arc);
                    Box::pin(std::future::ready(opened)) as BoxFuture<'static, _>
                };
                stores.push(LazyStore::new(name, clock.clone(), first, Box::new(reopen)));
            }
            sharded(ring, stores, config, &clock)?
        }
    })
}

#[allow(dead_code)] // unused in builds without Redis
fn arc<S: Store + 'static>(store: S) -> Arc<dyn Store> {
    Arc::new(store)
}

#[cfg(not(feature = "redis"))]
async fn open_blocking(_: Target, _: &Config, _: Clock) -> Result<Arc<dyn Store>> {
    Err(Error::config(
        "this build of polycache has no Redis support (feature `redis` is off)",
    ))
}

#[cfg(feature = "redis")]
fn set_cmd(entry: &Entry) -> ::redis::Cmd {
    set_cmd_of(&entry.key, &entry.value, entry.ttl)
}

/// `name key` (`GET`, `DEL`, `PTTL`), built at its size: `redis::cmd` grows its two
/// vectors as arguments come, three allocations where one each does.
#[cfg(feature = "tokio-redis")]
fn key_cmd(name: &str, key: &str) -> ::redis::Cmd {
    let mut cmd = ::redis::Cmd::with_capacity(2, name.len() + key.len());
    cmd.arg(name).arg(key);
    cmd
}

/// `SET key value [PX ms]`.
#[cfg(feature = "redis")]
fn set_cmd_of(key: &str, value: &[u8], ttl: Option<Duration>) -> ::redis::Cmd {
    let mut cmd = ::redis::Cmd::with_capacity(5, 3 + key.len() + value.len() + 2 + 20);
    cmd.arg("SET").arg(key).arg(value);
    if let Some(px) = ttl.and_then(crate::ttl::as_px) {
        cmd.arg("PX").arg(px);
    }
    cmd
}

/// `SET key value [PX ms] [NX]` as the RESP bytes to send (the same bytes as [`set_cmd`]
/// and [`set_nx_cmd`]), built around `value` in its own buffer when the room in front of it
/// holds the command's head: a large value is then sent without being copied. Otherwise
/// it is copied once, into a buffer of the command's size.
#[cfg(feature = "redis")]
fn packed_set(key: &str, mut value: Framed, ttl: Option<Duration>, nx: bool) -> Framed {
    let px = ttl.and_then(crate::ttl::as_px);
    let args = 3 + if px.is_some() { 2 } else { 0 } + usize::from(nx);
    let mut head = Vec::with_capacity(48 + key.len());
    head.extend_from_slice(b"*");
    head.extend_from_slice(itoa::Buffer::new().format(args).as_bytes());
    head.extend_from_slice(b"\r\n$3\r\nSET\r\n");
    bulk(&mut head, key.as_bytes());
    head.push(b'$');
    head.extend_from_slice(itoa::Buffer::new().format(value.bytes().len()).as_bytes());
    head.extend_from_slice(b"\r\n");
    let mut tail = Vec::with_capacity(48);
    tail.extend_from_slice(b"\r\n");
    if let Some(px) = px {
        bulk(&mut tail, b"PX");
        bulk(&mut tail, itoa::Buffer::new().format(px).as_bytes());
    }
    if nx {
        bulk(&mut tail, b"NX");
    }
    if !value.prepend(&head) {
        let mut whole = Framed::with_room(0, head.len() + value.bytes().len() + tail.len());
        whole.extend_from_slice(&head);
        whole.extend_from_slice(value.bytes());
        value = whole;
    }
    value.extend_from_slice(&tail);
    value
}

/// `name key` (`GET`, `DEL`, `PTTL`) as RESP bytes appended to `out`: the bytes
/// [`key_cmd`] packs to.
#[cfg(feature = "tokio-redis")]
fn pack_key_cmd(out: &mut Vec<u8>, name: &str, key: &str) {
    out.extend_from_slice(b"*2\r\n");
    bulk(out, name.as_bytes());
    bulk(out, key.as_bytes());
}

/// One RESP bulk string: `$len\r\nbytes\r\n`.
#[cfg(feature = "redis")]
fn bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'$');
    out.extend_from_slice(itoa::Buffer::new().format(bytes.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
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

#[cfg(all(test, feature = "redis"))]
mod tests {
    use super::*;

    #[cfg(feature = "tokio-redis")]
    #[test]
    fn a_packed_key_command_is_the_command_redis_rs_packs() {
        for name in ["GET", "DEL", "PTTL"] {
            for key in ["", "k", "a:b:{c}", &"é".repeat(300)] {
                let mut out = b"before".to_vec();
                pack_key_cmd(&mut out, name, key);
                let expected = [&b"before"[..], &key_cmd(name, key).get_packed_command()].concat();
                assert_eq!(out, expected, "{name} {key}");
            }
        }
    }

    #[test]
    fn a_packed_set_is_the_command_redis_rs_packs() {
        for key in ["k", "a:b:c", &"long".repeat(50)] {
            for len in [0usize, 1, 9, 10, 100, 70_000] {
                let value: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
                for ttl in [
                    None,
                    Some(Duration::ZERO),
                    Some(Duration::from_millis(1500)),
                ] {
                    for nx in [false, true] {
                        let entry = Entry {
                            key: key.to_owned(),
                            value: value.clone(),
                            ttl,
                        };
                        let expected = if nx {
                            set_nx_cmd(&entry)
                        } else {
                            set_cmd(&entry)
                        }
                        .get_packed_command();
                        for room in [0, 10, crate::codec::HEADROOM, 4096] {
                            let mut framed = Framed::with_room(room, len);
                            framed.extend_from_slice(&value);
                            let packed = packed_set(key, framed, ttl, nx);
                            assert_eq!(packed.bytes(), &expected[..], "{key} {len} {ttl:?} {nx}");
                        }
                    }
                }
            }
        }
    }
}
