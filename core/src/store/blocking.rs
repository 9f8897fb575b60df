//! Blocking Redis stores: synchronous redis-rs connections from a small pool, used on the
//! caller's thread (see the module docs of [`super`]). Socket read and write timeouts bound
//! every call by `command_timeout`; connecting is bounded by `connect_timeout`.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use redis::cluster::{ClusterClientBuilder, ClusterConnection};
use redis::{Cmd, ConnectionLike, RedisResult};

use super::{pttl, set_cmd, Entry, Store};
use crate::config::Config;
use crate::error::{Error, Result};

/// Idle connections kept per store; more callers than this open extra connections.
const MAX_IDLE: usize = 16;

/// The id of this process. WASI has no `fork` (and `std::process::id` panics there), so the
/// component always reports one id.
fn process_id() -> u32 {
    if cfg!(target_os = "wasi") {
        0
    } else {
        std::process::id()
    }
}

/// A pool of connections of type `C` with a way to make more.
struct Pool<C> {
    /// Idle connections and the pid of the process that opened them: after `fork()` a
    /// child must not talk on its parent's sockets, so it leaves them alone and reconnects.
    idle: Mutex<(u32, Vec<C>)>,
    connect: Box<dyn Fn() -> RedisResult<C> + Send + Sync>,
}

impl<C: ConnectionLike> Pool<C> {
    fn new(connect: impl Fn() -> RedisResult<C> + Send + Sync + 'static) -> Self {
        Pool {
            idle: Mutex::new((process_id(), Vec::new())),
            connect: Box::new(connect),
        }
    }

    /// Runs `call` on a connection. A pooled connection that turns out to be broken (the
    /// server restarted since it was used) is dropped and the call retried once on a
    /// fresh one; a connection that failed on I/O is never returned to the pool.
    fn with<T>(&self, call: impl Fn(&mut C) -> RedisResult<T>) -> Result<T> {
        let pooled = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            let pid = process_id();
            if idle.0 != pid {
                // Forked: leak the parent's connections; closing them here could send a
                // TLS close_notify on the parent's stream.
                std::mem::forget(std::mem::take(&mut idle.1));
                idle.0 = pid;
            }
            idle.1.pop()
        };
        let was_pooled = pooled.is_some();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => (self.connect)()?,
        };
        let mut result = call(&mut conn);
        if was_pooled
            && result
                .as_ref()
                .is_err_and(|e| e.is_connection_dropped() || e.is_io_error())
        {
            conn = (self.connect)()?;
            result = call(&mut conn);
        }
        match &result {
            Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() => {}
            _ => {
                let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
                // No pid check here: a forked child has only the forking thread, so a
                // connection checked out before the fork never comes back in the child.
                if idle.1.len() < MAX_IDLE && conn.is_open() {
                    idle.1.push(conn);
                }
            }
        }
        result.map_err(Error::from)
    }
}

/// How a connection type batches several keys: one node takes `MGET` and one pipeline;
/// a cluster connection splits a cluster pipeline per node.
pub trait Batching: ConnectionLike + Send + 'static {
    /// The values of `keys`, in order.
    fn get_many(&mut self, keys: &[String]) -> RedisResult<Vec<Option<Vec<u8>>>>;
    /// Writes every entry.
    fn set_many(&mut self, entries: &[Entry]) -> RedisResult<()>;
}

impl Batching for redis::Connection {
    fn get_many(&mut self, keys: &[String]) -> RedisResult<Vec<Option<Vec<u8>>>> {
        redis::cmd("MGET").arg(keys).query(self)
    }

    fn set_many(&mut self, entries: &[Entry]) -> RedisResult<()> {
        let mut pipe = redis::pipe();
        for entry in entries {
            pipe.add_command(set_cmd(entry)).ignore();
        }
        pipe.query(self)
    }
}

impl Batching for ClusterConnection {
    fn get_many(&mut self, keys: &[String]) -> RedisResult<Vec<Option<Vec<u8>>>> {
        let mut pipe = redis::cluster::cluster_pipe();
        for key in keys {
            pipe.add_command(redis::cmd("GET").arg(key).to_owned());
        }
        pipe.query(self)
    }

    fn set_many(&mut self, entries: &[Entry]) -> RedisResult<()> {
        let mut pipe = redis::cluster::cluster_pipe();
        for entry in entries {
            pipe.add_command(set_cmd(entry)).ignore();
        }
        pipe.query(self)
    }
}

/// Redis over pooled blocking connections: one node (`C` = [`redis::Connection`]) or a
/// cluster (`C` = [`ClusterConnection`], with slot routing and MOVED/ASK handling).
pub struct BlockingStore<C> {
    pool: Pool<C>,
    name: String,
}

/// One Redis node over blocking connections (`redis://`, `rediss://`).
pub type BlockingRedisStore = BlockingStore<redis::Connection>;
/// Redis Cluster over blocking cluster connections.
pub type BlockingClusterStore = BlockingStore<ClusterConnection>;

impl<C> std::fmt::Debug for BlockingStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingStore")
            .field("redis", &self.name)
            .finish()
    }
}

impl<C: Batching> BlockingStore<C> {
    /// Wraps a pool, connecting once now so a wrong address fails at open time, like the
    /// async stores.
    fn open(pool: Pool<C>, name: String) -> Result<Self> {
        pool.with(|conn| redis::cmd("PING").query::<()>(conn))?;
        Ok(BlockingStore { pool, name })
    }

    fn query<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> Result<T> {
        self.pool.with(|conn| cmd.query(conn))
    }
}

impl BlockingStore<redis::Connection> {
    /// Connects to `url` (one connection now, more on demand).
    ///
    /// # Errors
    /// A config error for a URL redis-rs rejects; a connection or timeout error otherwise.
    pub fn connect(url: &str, config: &Config) -> Result<Self> {
        let client = redis::Client::open(url)
            .map_err(|e| Error::config(format!("invalid Redis URL: {e}")))?;
        let name = client.get_connection_info().addr().to_string();
        let (connect_timeout, command_timeout) = (config.connect_timeout, config.command_timeout);
        let pool = Pool::new(move || {
            let conn = client.get_connection_with_timeout(connect_timeout)?;
            conn.set_read_timeout(Some(command_timeout))?;
            conn.set_write_timeout(Some(command_timeout))?;
            Ok(conn)
        });
        BlockingStore::open(pool, name)
    }
}

impl BlockingStore<ClusterConnection> {
    /// Connects through the seed nodes and discovers the cluster.
    ///
    /// # Errors
    /// A config error for bad seeds; a connection, cluster or timeout error otherwise.
    pub fn connect(seeds: &[String], config: &Config) -> Result<Self> {
        let client = ClusterClientBuilder::new(seeds.iter().map(String::as_str))
            .connection_timeout(config.connect_timeout)
            .response_timeout(config.command_timeout)
            .retries(2)
            .min_retry_wait(10)
            .max_retry_wait(100)
            .build()
            .map_err(|e| Error::config(format!("invalid cluster seeds: {e}")))?;
        let command_timeout = config.command_timeout;
        let pool = Pool::new(move || {
            let conn = client.get_connection()?;
            conn.set_read_timeout(Some(command_timeout))?;
            conn.set_write_timeout(Some(command_timeout))?;
            Ok(conn)
        });
        BlockingStore::open(pool, format!("cluster {}", seeds.join(",")))
    }
}

#[async_trait]
impl<C: Batching> Store for BlockingStore<C> {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.query(redis::cmd("GET").arg(key))
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.pool.with(|conn| conn.get_many(keys))
    }

    async fn set(&self, entry: Entry) -> Result<()> {
        self.query(&set_cmd(&entry))
    }

    async fn set_many(&self, entries: Vec<Entry>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.pool.with(|conn| conn.set_many(&entries))
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let removed: i64 = self.query(redis::cmd("DEL").arg(key))?;
        Ok(removed > 0)
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>> {
        Ok(pttl(self.query(redis::cmd("PTTL").arg(key))?))
    }
}
