//! The Redis stores: one node, independent shards behind the ring, and Redis Cluster.
//! Every call is bounded by `command_timeout` here, whatever redis-rs does inside
//! (reconnects, cluster retries), so a dead or paused server never hangs a caller.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::try_join_all;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline};

use super::{Entry, Store};
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::key::slot;
use crate::ring::{Node, Ring};

async fn bounded<T>(
    limit: Duration,
    what: &str,
    fut: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => result.map_err(Error::from),
        Err(_) => Err(Error::new(
            ErrorKind::Timeout,
            format!("{what} did not finish within {limit:?}"),
        )),
    }
}

fn set_cmd(entry: &Entry) -> Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(&entry.key).arg(&entry.value);
    if let Some(ttl) = entry.ttl {
        cmd.arg("PX").arg(ttl.as_millis().max(1) as u64);
    }
    cmd
}

fn pttl(ms: i64) -> Option<Duration> {
    // -2: no such key, -1: no expiry.
    u64::try_from(ms).ok().map(Duration::from_millis)
}

/// One Redis node over a reconnecting multiplexed connection (`redis://`, `rediss://`).
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    name: String,
    timeout: Duration,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("node", &self.name)
            .finish()
    }
}

impl RedisStore {
    /// Connects to `url` within `config.connect_timeout`.
    ///
    /// # Errors
    /// A config error for a URL redis-rs rejects; a connection or timeout error otherwise.
    pub async fn connect(url: &str, config: &Config) -> Result<Self> {
        let client = redis::Client::open(url)
            .map_err(|e| Error::config(format!("invalid Redis URL: {e}")))?;
        let name = client.get_connection_info().addr().to_string();
        // One quick retry: the defaults (6 retries with backoff) take ~9 s to report
        // "connection refused", far past any sane cache timeout.
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.command_timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(100));
        let conn = bounded(
            config.connect_timeout,
            &format!("connecting to {name}"),
            ConnectionManager::new_with_config(client, manager_config),
        )
        .await?;
        Ok(RedisStore {
            conn,
            name,
            timeout: config.command_timeout,
        })
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> Result<T> {
        let mut conn = self.conn.clone();
        bounded(self.timeout, &self.name, cmd.query_async(&mut conn)).await
    }

    async fn pipeline(&self, pipe: &Pipeline) -> Result<()> {
        let mut conn = self.conn.clone();
        bounded(self.timeout, &self.name, pipe.query_async::<()>(&mut conn)).await
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.query(redis::cmd("GET").arg(key)).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.query(redis::cmd("MGET").arg(keys)).await
    }

    async fn set(&self, entry: Entry) -> Result<()> {
        self.query(&set_cmd(&entry)).await
    }

    async fn set_many(&self, entries: Vec<Entry>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for entry in &entries {
            pipe.add_command(set_cmd(entry)).ignore();
        }
        self.pipeline(&pipe).await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let removed: i64 = self.query(redis::cmd("DEL").arg(key)).await?;
        Ok(removed > 0)
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>> {
        Ok(pttl(self.query(redis::cmd("PTTL").arg(key)).await?))
    }
}

/// Independent Redis nodes; each key goes to the node the ring picks for its hash tag.
#[derive(Debug, Clone)]
pub struct ShardedStore {
    ring: Ring,
    nodes: Vec<RedisStore>,
}

impl ShardedStore {
    /// Connects to every node (concurrently) and builds the ring.
    ///
    /// # Errors
    /// As [`RedisStore::connect`] for any node; a config error for a bad node list.
    pub async fn connect(nodes: Vec<(String, Node)>, config: &Config) -> Result<Self> {
        let (urls, ring_nodes): (Vec<String>, Vec<Node>) = nodes.into_iter().unzip();
        let ring = Ring::new(ring_nodes)?;
        let nodes = try_join_all(urls.iter().map(|url| RedisStore::connect(url, config))).await?;
        Ok(ShardedStore { ring, nodes })
    }

    /// The ring that places keys.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    fn node(&self, key: &str) -> &RedisStore {
        &self.nodes[self.ring.node_for(key)]
    }

    /// Indices of `keys`, grouped by the node that owns them.
    fn group<'a>(&self, keys: impl Iterator<Item = &'a str>) -> BTreeMap<usize, Vec<usize>> {
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, key) in keys.enumerate() {
            groups.entry(self.ring.node_for(key)).or_default().push(i);
        }
        groups
    }
}

#[async_trait]
impl Store for ShardedStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.node(key).get(key).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        let groups = self.group(keys.iter().map(String::as_str));
        let replies = try_join_all(groups.iter().map(|(&node, indices)| {
            let node_keys: Vec<String> = indices.iter().map(|&i| keys[i].clone()).collect();
            async move { self.nodes[node].get_many(&node_keys).await }
        }))
        .await?;
        let mut out = vec![None; keys.len()];
        for ((_, indices), values) in groups.iter().zip(replies) {
            for (&i, value) in indices.iter().zip(values) {
                out[i] = value;
            }
        }
        Ok(out)
    }

    async fn set(&self, entry: Entry) -> Result<()> {
        self.node(&entry.key).set(entry).await
    }

    async fn set_many(&self, entries: Vec<Entry>) -> Result<()> {
        let groups = self.group(entries.iter().map(|e| e.key.as_str()));
        try_join_all(groups.iter().map(|(&node, indices)| {
            let batch: Vec<Entry> = indices.iter().map(|&i| entries[i].clone()).collect();
            self.nodes[node].set_many(batch)
        }))
        .await?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        self.node(key).delete(key).await
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>> {
        self.node(key).ttl(key).await
    }
}

/// Redis Cluster through redis-rs's cluster client (slot routing, MOVED/ASK handling).
#[derive(Clone)]
pub struct ClusterStore {
    conn: ClusterConnection,
    timeout: Duration,
}

impl std::fmt::Debug for ClusterStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterStore").finish_non_exhaustive()
    }
}

impl ClusterStore {
    /// Connects through the seed nodes and discovers the cluster.
    ///
    /// # Errors
    /// A config error for bad seeds; a connection, cluster or timeout error otherwise.
    pub async fn connect(seeds: &[String], config: &Config) -> Result<Self> {
        let client = ClusterClientBuilder::new(seeds.iter().map(String::as_str))
            .connection_timeout(config.connect_timeout)
            .response_timeout(config.command_timeout)
            .retries(2)
            .min_retry_wait(10)
            .max_retry_wait(100)
            .build()
            .map_err(|e| Error::config(format!("invalid cluster seeds: {e}")))?;
        let conn = bounded(
            config.connect_timeout,
            "connecting to the cluster",
            client.get_async_connection(),
        )
        .await?;
        Ok(ClusterStore {
            conn,
            timeout: config.command_timeout,
        })
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> Result<T> {
        let mut conn = self.conn.clone();
        bounded(self.timeout, "cluster command", cmd.query_async(&mut conn)).await
    }

    /// Indices of `keys`, grouped by slot: a multi-key command must stay within one slot.
    fn group<'a>(keys: impl Iterator<Item = &'a str>) -> BTreeMap<u16, Vec<usize>> {
        let mut groups: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
        for (i, key) in keys.enumerate() {
            groups.entry(slot(key.as_bytes())).or_default().push(i);
        }
        groups
    }
}

#[async_trait]
impl Store for ClusterStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.query(redis::cmd("GET").arg(key)).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        let groups = Self::group(keys.iter().map(String::as_str));
        let replies = try_join_all(groups.values().map(|indices| {
            let mut cmd = redis::cmd("MGET");
            for &i in indices {
                cmd.arg(&keys[i]);
            }
            async move { self.query::<Vec<Option<Vec<u8>>>>(&cmd).await }
        }))
        .await?;
        let mut out = vec![None; keys.len()];
        for (indices, values) in groups.values().zip(replies) {
            for (&i, value) in indices.iter().zip(values) {
                out[i] = value;
            }
        }
        Ok(out)
    }

    async fn set(&self, entry: Entry) -> Result<()> {
        self.query(&set_cmd(&entry)).await
    }

    async fn set_many(&self, entries: Vec<Entry>) -> Result<()> {
        // The multiplexed cluster connection pipelines concurrent commands per node.
        let cmds: Vec<Cmd> = entries.iter().map(set_cmd).collect();
        try_join_all(cmds.iter().map(|cmd| self.query::<()>(cmd))).await?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let removed: i64 = self.query(redis::cmd("DEL").arg(key)).await?;
        Ok(removed > 0)
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>> {
        Ok(pttl(self.query(redis::cmd("PTTL").arg(key)).await?))
    }
}
