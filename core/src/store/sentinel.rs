//! Redis Sentinel (`redis+sentinel://s1:26379,s2:26380,s3:26381/mymaster`): the sentinels
//! name the current master of a replicated set; every call goes to that master, unless
//! `?replicaReads=true` sends reads (`get`, `get_many`, `ttl`) to a replica the sentinels
//! list (replication is asynchronous: a read may miss a write just made).
//!
//! The store keeps one node store (async or blocking, as the cache's I/O mode says) for the
//! master it last resolved. A call that fails in a way a failover explains (the connection
//! broke or timed out, or the node answers `READONLY` because it is now a replica) drops
//! that store, so the next call asks the sentinels again and connects to whoever they name.
//! A failed call is never retried inside itself: its deadline is the cache's timeouts.
//!
//! Async mode asks through redis-rs's [`redis::sentinel::Sentinel`] (which also checks the
//! named node's role), bounded by `connect_timeout`. Blocking mode asks each sentinel with
//! `SENTINEL GET-MASTER-ADDR-BY-NAME` over a connection with read and write timeouts:
//! redis-rs's blocking sentinel client has none, and a paused sentinel would hang the caller.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{Entry, Io, Store};
use crate::config::{Config, SentinelTarget};
use crate::error::{Error, ErrorKind, Result};
use crate::lock::Script;

/// The master of a Sentinel-managed set, found through its sentinels.
pub struct SentinelStore {
    target: SentinelTarget,
    config: Config,
    io: Io,
    /// The master's address and a store connected to it; `None` until resolved, and again
    /// after a call fails in a way that suggests a failover.
    current: RwLock<Option<(String, Arc<dyn Store>)>>,
    /// The same for the replica that serves reads, with `replicaReads=true`.
    replica: RwLock<Option<(String, Arc<dyn Store>)>>,
    /// One resolution at a time; holds redis-rs's sentinel client (and its connections to
    /// the sentinels) in async mode.
    resolver: tokio::sync::Mutex<Resolver>,
}

#[derive(Default)]
struct Resolver {
    #[cfg(feature = "tokio-redis")]
    sentinel: Option<redis::sentinel::Sentinel>,
}

impl std::fmt::Debug for SentinelStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let master = self.current_store().map(|(addr, _)| addr);
        f.debug_struct("SentinelStore")
            .field("sentinels", &self.target.sentinels)
            .field("master_name", &self.target.master_name)
            .field("master", &master)
            .finish()
    }
}

impl SentinelStore {
    /// Asks the sentinels for the master and connects to it.
    ///
    /// # Errors
    /// A connection or timeout error when no sentinel answers or the master cannot be
    /// reached within `connect_timeout`; a server error when no sentinel knows the name.
    pub async fn connect(target: SentinelTarget, config: &Config, io: Io) -> Result<Self> {
        let store = SentinelStore {
            target,
            config: config.clone(),
            io,
            current: RwLock::new(None),
            replica: RwLock::new(None),
            resolver: tokio::sync::Mutex::new(Resolver::default()),
        };
        store.master().await?;
        Ok(store)
    }

    fn current_store(&self) -> Option<(String, Arc<dyn Store>)> {
        self.current.read().ok().and_then(|current| current.clone())
    }

    fn replica_store(&self) -> Option<Arc<dyn Store>> {
        let replica = self.replica.read().ok()?;
        replica.as_ref().map(|(_, store)| store.clone())
    }

    /// Where reads go: the master, or with `replicaReads=true` a replica.
    async fn reader(&self) -> Result<Arc<dyn Store>> {
        if !self.target.replica_reads {
            return self.master().await;
        }
        if let Some(store) = self.replica_store() {
            return Ok(store);
        }
        let mut resolver = self.resolver.lock().await;
        if let Some(store) = self.replica_store() {
            return Ok(store);
        }
        let deadline = self.lookup_deadline();
        let addr = match self.io {
            Io::Async => self.replica_async(&mut resolver).await?,
            Io::Blocking => self.replica_blocking(deadline)?,
        };
        let url = self.target.node_url(&addr);
        let store: Arc<dyn Store> = match self.io {
            Io::Async => connect_async(&url, &self.config).await?,
            Io::Blocking => self.connect_blocking(&url, deadline)?,
        };
        if let Ok(mut replica) = self.replica.write() {
            *replica = Some((addr, store.clone()));
        }
        Ok(store)
    }

    /// The store of the current master, resolving and connecting when there is none.
    async fn master(&self) -> Result<Arc<dyn Store>> {
        if let Some((_, store)) = self.current_store() {
            return Ok(store);
        }
        let mut resolver = self.resolver.lock().await;
        // Another call may have resolved it while this one waited.
        if let Some((_, store)) = self.current_store() {
            return Ok(store);
        }
        let deadline = self.lookup_deadline();
        let addr = match self.io {
            Io::Async => self.resolve_async(&mut resolver).await?,
            Io::Blocking => self.resolve_blocking(deadline)?,
        };
        let url = self.target.node_url(&addr);
        let store: Arc<dyn Store> = match self.io {
            Io::Async => connect_async(&url, &self.config).await?,
            Io::Blocking => self.connect_blocking(&url, deadline)?,
        };
        if let Ok(mut current) = self.current.write() {
            *current = Some((addr, store.clone()));
        }
        Ok(store)
    }

    #[cfg(feature = "tokio-redis")]
    async fn resolve_async(&self, resolver: &mut Resolver) -> Result<String> {
        let limit = self.config.connect_timeout;
        let sentinel = match resolver.sentinel.as_mut() {
            Some(sentinel) => sentinel,
            None => {
                let urls: Vec<String> = self
                    .target
                    .sentinels
                    .iter()
                    .map(|addr| format!("redis://{addr}"))
                    .collect();
                let sentinel = redis::sentinel::Sentinel::build(urls)
                    .map_err(|e| Error::config(format!("invalid sentinel addresses: {e}")))?;
                resolver.sentinel.insert(sentinel)
            }
        };
        let asked = sentinel.async_master_for(&self.target.master_name, None);
        let client = match tokio::time::timeout(limit, asked).await {
            Ok(Ok(client)) => client,
            Ok(Err(err)) => {
                // Its cached connections may be the broken ones: start afresh next time.
                resolver.sentinel = None;
                return Err(self.lookup_failed(Error::from(err)));
            }
            Err(_) => {
                resolver.sentinel = None;
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "no sentinel of {:?} ({}) named its master within {limit:?}",
                        self.target.master_name,
                        self.target.sentinels.join(",")
                    ),
                ));
            }
        };
        Ok(client.get_connection_info().addr().to_string())
    }

    #[cfg(not(feature = "tokio-redis"))]
    async fn resolve_async(&self, _: &mut Resolver) -> Result<String> {
        Err(Error::config(
            "this build of polycache has no async Redis stores (feature `tokio-redis` is off)",
        ))
    }

    /// When a blocking lookup (asking the sentinels, then connecting) must be done: it
    /// happens inside a call, so it gets the smaller of the two timeouts, all told.
    fn lookup_deadline(&self) -> Instant {
        Instant::now() + self.config.connect_timeout.min(self.config.command_timeout)
    }

    /// The time the `i`-th of the sentinels may take: its share of what is left, so paused
    /// sentinels cannot add one timeout each.
    fn share(&self, deadline: Instant, i: usize) -> Option<Duration> {
        let left = deadline.saturating_duration_since(Instant::now());
        let count = self.target.sentinels.len().saturating_sub(i).max(1) as u32;
        (!left.is_zero()).then(|| (left / count).max(Duration::from_millis(50)).min(left))
    }

    fn connect_blocking(&self, url: &str, deadline: Instant) -> Result<Arc<dyn Store>> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "the master {:?} was found but not reached in time",
                    self.target.master_name
                ),
            ));
        }
        let mut config = self.config.clone();
        config.connect_timeout = left;
        Ok(Arc::new(super::BlockingRedisStore::connect(url, &config)?))
    }

    fn resolve_blocking(&self, deadline: Instant) -> Result<String> {
        let mut last = None;
        for (i, addr) in self.target.sentinels.iter().enumerate() {
            let Some(limit) = self.share(deadline, i) else {
                break;
            };
            match ask_sentinel(addr, &self.target.master_name, limit) {
                Ok(Some(master)) => return Ok(master),
                Ok(None) => {
                    last = Some(Error::new(
                        ErrorKind::Server,
                        format!(
                            "sentinel {addr} knows no master named {:?}",
                            self.target.master_name
                        ),
                    ))
                }
                Err(err) => last = Some(err),
            }
        }
        Err(self.lookup_failed(last.unwrap_or_else(|| Error::config("no sentinel addresses"))))
    }

    /// A replica in sync that the sentinels list, checked by its role (redis-rs).
    #[cfg(feature = "tokio-redis")]
    async fn replica_async(&self, resolver: &mut Resolver) -> Result<String> {
        let limit = self.config.connect_timeout;
        let Some(sentinel) = resolver.sentinel.as_mut() else {
            // Built by the master's resolution, which always runs first.
            return Err(Error::new(ErrorKind::Connection, "no sentinel client yet"));
        };
        let asked = sentinel.async_get_replica_clients(&self.target.master_name, None);
        let clients = match tokio::time::timeout(limit, asked).await {
            Ok(Ok(clients)) => clients,
            Ok(Err(err)) => return Err(self.lookup_failed(Error::from(err))),
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "no replica of {:?} found within {limit:?}",
                        self.target.master_name
                    ),
                ))
            }
        };
        let pick = clients.get(fastrand::usize(..clients.len().max(1)));
        pick.map(|client| client.get_connection_info().addr().to_string())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Connection,
                    format!(
                        "the sentinels list no usable replica of {:?}",
                        self.target.master_name
                    ),
                )
            })
    }

    #[cfg(not(feature = "tokio-redis"))]
    async fn replica_async(&self, _: &mut Resolver) -> Result<String> {
        self.resolve_async(&mut Resolver::default()).await
    }

    /// A replica that the first answering sentinel lists as up and linked to its master.
    fn replica_blocking(&self, deadline: Instant) -> Result<String> {
        let mut last = None;
        for (i, addr) in self.target.sentinels.iter().enumerate() {
            let Some(limit) = self.share(deadline, i) else {
                break;
            };
            match ask_replicas(addr, &self.target.master_name, limit) {
                Ok(replicas) if !replicas.is_empty() => {
                    return Ok(replicas[fastrand::usize(..replicas.len())].clone())
                }
                Ok(_) => {
                    last = Some(Error::new(
                        ErrorKind::Connection,
                        format!("sentinel {addr} lists no usable replica"),
                    ))
                }
                Err(err) => last = Some(err),
            }
        }
        Err(self.lookup_failed(last.unwrap_or_else(|| Error::config("no sentinel addresses"))))
    }

    fn lookup_failed(&self, err: Error) -> Error {
        Error::new(
            err.kind(),
            format!(
                "asking the sentinels ({}) for the master {:?}: {}",
                self.target.sentinels.join(","),
                self.target.master_name,
                err.message()
            ),
        )
    }

    /// Runs one call within `command_timeout` in async mode: finding the master after a
    /// failover, connecting to it and the command itself draw from that one deadline. (In
    /// blocking mode the socket timeouts bound each step.)
    async fn bounded<T>(&self, call: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        #[cfg(feature = "tokio-redis")]
        if self.io == Io::Async {
            let limit = self.config.command_timeout;
            return match tokio::time::timeout(limit, call).await {
                Ok(result) => result,
                Err(_) => {
                    // Which node stalled is unknown here: ask the sentinels again next time.
                    for slot in [&self.current, &self.replica] {
                        if let Ok(mut node) = slot.write() {
                            *node = None;
                        }
                    }
                    Err(Error::new(
                        ErrorKind::Timeout,
                        format!(
                            "master {:?} (via sentinels {}): no reply within {limit:?}",
                            self.target.master_name,
                            self.target.sentinels.join(",")
                        ),
                    ))
                }
            };
        }
        call.await
    }

    /// Passes a call's result through, forgetting the node that served it (master or
    /// replica) when the failure suggests that it is gone or demoted.
    fn watch<T>(&self, store: &Arc<dyn Store>, result: Result<T>) -> Result<T> {
        if let Err(err) = &result {
            let failover = match err.kind() {
                ErrorKind::Connection | ErrorKind::Timeout => true,
                ErrorKind::Server => err.message().contains("READONLY"),
                _ => false,
            };
            if failover {
                for slot in [&self.current, &self.replica] {
                    if let Ok(mut node) = slot.write() {
                        if node.as_ref().is_some_and(|(_, s)| Arc::ptr_eq(s, store)) {
                            *node = None;
                        }
                    }
                }
            }
        }
        result
    }
}

#[cfg(feature = "tokio-redis")]
async fn connect_async(url: &str, config: &Config) -> Result<Arc<dyn Store>> {
    Ok(Arc::new(super::RedisStore::connect(url, config).await?))
}

#[cfg(not(feature = "tokio-redis"))]
async fn connect_async(_: &str, _: &Config) -> Result<Arc<dyn Store>> {
    Err(Error::config(
        "this build of polycache has no async Redis stores (feature `tokio-redis` is off)",
    ))
}

/// A connection to one sentinel, every step bounded by `limit`. No `CLIENT SETINFO`: redis-rs
/// gives each of its replies the whole timeout, so a paused sentinel would cost three.
fn sentinel_connection(addr: &str, limit: Duration) -> Result<redis::Connection> {
    let invalid =
        |e: redis::RedisError| Error::config(format!("invalid sentinel address {addr:?}: {e}"));
    let info = redis::Client::open(format!("redis://{addr}"))
        .map_err(invalid)?
        .get_connection_info()
        .clone();
    let settings = info.redis_settings().clone().set_skip_set_lib_name();
    let client = redis::Client::open(info.set_redis_settings(settings)).map_err(invalid)?;
    let failed = |e| super::blocking::node_error(e, addr, limit);
    let conn = client.get_connection_with_timeout(limit).map_err(failed)?;
    conn.set_read_timeout(Some(limit)).map_err(failed)?;
    conn.set_write_timeout(Some(limit)).map_err(failed)?;
    Ok(conn)
}

/// `SENTINEL GET-MASTER-ADDR-BY-NAME` on one sentinel, every step bounded by `limit`.
pub(crate) fn ask_sentinel(addr: &str, name: &str, limit: Duration) -> Result<Option<String>> {
    let mut conn = sentinel_connection(addr, limit)?;
    let reply: Option<(String, u16)> = redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(name)
        .query(&mut conn)
        .map_err(|e| super::blocking::node_error(e, addr, limit))?;
    Ok(reply.map(|(host, port)| format!("{host}:{port}")))
}

/// `SENTINEL REPLICAS`: the replicas that are up and linked to their master, as `host:port`.
fn ask_replicas(addr: &str, name: &str, limit: Duration) -> Result<Vec<String>> {
    let mut conn = sentinel_connection(addr, limit)?;
    let replicas: Vec<std::collections::HashMap<String, String>> = redis::cmd("SENTINEL")
        .arg("REPLICAS")
        .arg(name)
        .query(&mut conn)
        .map_err(|e| super::blocking::node_error(e, addr, limit))?;
    Ok(replicas
        .iter()
        .filter(|r| {
            let flags = r.get("flags").map_or("", String::as_str);
            !flags.contains("down")
                && !flags.contains("disconnected")
                && r.get("master-link-status").map(String::as_str) == Some("ok")
        })
        .filter_map(|r| Some(format!("{}:{}", r.get("ip")?, r.get("port")?)))
        .collect())
}

#[async_trait]
impl Store for SentinelStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.bounded(async {
            let store = self.reader().await?;
            let result = store.get(key).await;
            self.watch(&store, result)
        })
        .await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        self.bounded(async {
            let store = self.reader().await?;
            let result = store.get_many(keys).await;
            self.watch(&store, result)
        })
        .await
    }

    async fn set(&self, entry: Entry) -> Result<()> {
        self.bounded(async {
            let store = self.master().await?;
            let result = store.set(entry).await;
            self.watch(&store, result)
        })
        .await
    }

    async fn set_many(&self, entries: Vec<Entry>) -> Result<()> {
        self.bounded(async {
            let store = self.master().await?;
            let result = store.set_many(entries).await;
            self.watch(&store, result)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        self.bounded(async {
            let store = self.master().await?;
            let result = store.delete(key).await;
            self.watch(&store, result)
        })
        .await
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>> {
        self.bounded(async {
            let store = self.reader().await?;
            let result = store.ttl(key).await;
            self.watch(&store, result)
        })
        .await
    }

    async fn set_if_absent(&self, entry: Entry) -> Result<bool> {
        self.bounded(async {
            let store = self.master().await?;
            let result = store.set_if_absent(entry).await;
            self.watch(&store, result)
        })
        .await
    }

    async fn eval(&self, script: &Script, keys: &[String], args: &[Vec<u8>]) -> Result<i64> {
        self.bounded(async {
            let store = self.master().await?;
            let result = store.eval(script, keys, args).await;
            self.watch(&store, result)
        })
        .await
    }
}
