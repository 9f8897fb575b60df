//! The async Redis stores (tokio): one node and Redis Cluster.
//! Every call is bounded by `command_timeout` here, whatever redis-rs does inside
//! (reconnects, cluster retries), so a dead or paused server never hangs a caller.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::{join_all, try_join_all};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline};

use super::connector::{Connector, NodeAddr, Pipelined, Reconnecting};
use super::{
    eval_cmds, group_by_slot, is_noscript, key_cmd, pack_key_cmd, packed_set, pttl, set_cmd,
    set_cmd_of, set_nx_cmd, wrote, Entry, Store,
};
use crate::codec::Framed;
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::lock::Script;

async fn bounded<T>(
    limit: Duration,
    what: &str,
    fut: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => result.map_err(|e| Error::from(e).on_node(what)),
        Err(_) => Err(Error::new(
            ErrorKind::Timeout,
            format!("{what} did not finish within {limit:?}"),
        )),
    }
}

/// The connection a node store talks through.
#[derive(Clone)]
enum Conn {
    /// redis-rs's reconnecting manager over its own tokio sockets.
    Manager(ConnectionManager),
    /// A reconnecting connection over a [`Connector`]'s streams.
    Direct(Arc<Reconnecting>),
}

/// One Redis node over a reconnecting multiplexed connection (`redis://`, `rediss://`).
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
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
        Self::connect_via(url, config, None).await
    }

    /// Like [`RedisStore::connect`]; a plain (non-TLS) node's streams come from
    /// `connector` when one is given.
    ///
    /// # Errors
    /// As [`RedisStore::connect`].
    pub async fn connect_via(
        url: &str,
        config: &Config,
        connector: Option<&Arc<dyn Connector>>,
    ) -> Result<Self> {
        let client = redis::Client::open(url)
            .map_err(|e| Error::config(format!("invalid Redis URL: {e}")))?;
        let name = client.get_connection_info().addr().to_string();
        let info = client.get_connection_info();
        if let (Some(connector), Some(addr)) = (connector, NodeAddr::of(info.addr())) {
            let direct = Arc::new(Reconnecting::new(
                info.redis_settings().clone(),
                addr,
                connector.clone(),
                config.connect_timeout,
            ));
            // Connect up front, as the manager does: an unreachable node fails the open.
            bounded(
                config.connect_timeout,
                &format!("connecting to {name}"),
                direct.connection(),
            )
            .await?;
            return Ok(RedisStore {
                conn: Conn::Direct(direct),
                name,
                timeout: config.command_timeout,
            });
        }
        // One quick retry: the defaults (6 retries with backoff) take ~9 s to report
        // "connection refused", far past any sane cache timeout.
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.command_timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(100));
        let tls = matches!(
            client.get_connection_info().addr(),
            redis::ConnectionAddr::TcpTls { .. }
        );
        let conn = bounded(
            config.connect_timeout,
            &format!("connecting to {name}"),
            ConnectionManager::new_with_config(client, manager_config),
        )
        .await
        .map_err(|e| match e.kind() {
            ErrorKind::Timeout if tls => super::tls_timeout(&name, config.connect_timeout),
            _ => e,
        })?;
        Ok(RedisStore {
            conn: Conn::Manager(conn),
            name,
            timeout: config.command_timeout,
        })
    }

    /// The node's `host:port`.
    pub fn node(&self) -> &str {
        &self.name
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> Result<T> {
        self.query_within(cmd, self.timeout).await
    }

    async fn query_within<T: redis::FromRedisValue>(
        &self,
        cmd: &Cmd,
        budget: Duration,
    ) -> Result<T> {
        let limit = budget.min(self.timeout);
        match &self.conn {
            Conn::Manager(conn) => {
                let mut conn = conn.clone();
                bounded(limit, &self.name, cmd.query_async(&mut conn)).await
            }
            Conn::Direct(direct) => {
                self.on_direct(direct, limit, |mut conn| async move {
                    cmd.query_async(&mut conn).await
                })
                .await
            }
        }
    }

    /// `call` on a connector's live connection (opened first when there is none), within
    /// `limit`; a reply that says the connection broke retires it for the next call.
    async fn on_direct<T, F>(
        &self,
        direct: &Reconnecting,
        limit: Duration,
        call: impl FnOnce(Pipelined) -> F,
    ) -> Result<T>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        let call = async {
            let (conn, generation) = direct.connection().await?;
            direct.checked(generation, call(conn).await)
        };
        bounded(limit, &self.name, call).await
    }

    /// On a connector's connection: sends the one command `pack` writes as RESP bytes
    /// (core's own packing, no `Cmd` on the way: about 500 instructions of a small `GET`)
    /// and reads its reply as `T`, within the command timeout.
    async fn send_direct<T: redis::FromRedisValue>(
        &self,
        direct: &Reconnecting,
        pack: impl FnOnce(&mut Vec<u8>),
    ) -> Result<T> {
        self.on_direct(direct, self.timeout, |conn| async move {
            conn.send(pack)
                .await
                .and_then(|reply| T::from_redis_value(reply).map_err(redis::RedisError::from))
        })
        .await
    }

    async fn pipeline(&self, pipe: &Pipeline) -> Result<()> {
        match &self.conn {
            Conn::Manager(conn) => {
                let mut conn = conn.clone();
                bounded(self.timeout, &self.name, pipe.query_async::<()>(&mut conn)).await
            }
            Conn::Direct(direct) => {
                self.on_direct(direct, self.timeout, |mut conn| async move {
                    pipe.query_async::<()>(&mut conn).await
                })
                .await
            }
        }
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match &self.conn {
            Conn::Direct(direct) => {
                self.send_direct(direct, |out| pack_key_cmd(out, "GET", key))
                    .await
            }
            Conn::Manager(_) => self.query(&key_cmd("GET", key)).await,
        }
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

    async fn set_framed(&self, key: &str, value: Framed, ttl: Option<Duration>) -> Result<()> {
        match &self.conn {
            // The command is framed around the value, in the room in front of it, and
            // written as it is: no `Cmd` holding a copy of the value, and no second pass
            // packing it (a small set: about 1,000 instructions fewer).
            Conn::Direct(direct) => {
                let packed = packed_set(key, value, ttl, false);
                self.send_direct::<()>(direct, |out| out.extend_from_slice(packed.bytes()))
                    .await
            }
            // Copied into the command as they are: moving them to the front first would
            // be a second pass over a large value.
            Conn::Manager(_) => self.query(&set_cmd_of(key, value.bytes(), ttl)).await,
        }
    }

    async fn set_within(&self, entry: Entry, budget: Duration) -> Result<()> {
        self.query_within(&set_cmd(&entry), budget).await
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
        let removed: i64 = self.query(&key_cmd("DEL", key)).await?;
        Ok(removed > 0)
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>> {
        Ok(pttl(self.query(&key_cmd("PTTL", key)).await?))
    }

    async fn set_if_absent(&self, entry: Entry) -> Result<bool> {
        Ok(wrote(
            &self.query::<redis::Value>(&set_nx_cmd(&entry)).await?,
        ))
    }

    async fn eval(&self, script: &Script, keys: &[String], args: &[Vec<u8>]) -> Result<i64> {
        let [evalsha, eval] = eval_cmds(script, keys, args);
        match self.query(&evalsha).await {
            Err(err) if is_noscript(&err) => self.query(&eval).await,
            result => result,
        }
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
        self.query_within(cmd, self.timeout).await
    }

    async fn query_within<T: redis::FromRedisValue>(
        &self,
        cmd: &Cmd,
        budget: Duration,
    ) -> Result<T> {
        let mut conn = self.conn.clone();
        let budget = budget.min(self.timeout);
        bounded(budget, "cluster command", cmd.query_async(&mut conn)).await
    }
}

#[async_trait]
impl Store for ClusterStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.query(&key_cmd("GET", key)).await
    }

    async fn get_each(&self, keys: &[String]) -> Vec<Result<Option<Vec<u8>>>> {
        let groups = group_by_slot(keys.iter().map(String::as_str));
        let replies = join_all(groups.values().map(|indices| {
            let mut cmd = redis::cmd("MGET");
            for &i in indices {
                cmd.arg(&keys[i]);
            }
            async move { self.query::<Vec<Option<Vec<u8>>>>(&cmd).await }
        }))
        .await;
        let mut out: Vec<Result<Option<Vec<u8>>>> = keys.iter().map(|_| Ok(None)).collect();
        for (indices, reply) in groups.values().zip(replies) {
            match reply {
                Ok(values) => {
                    for (&i, value) in indices.iter().zip(values) {
                        out[i] = Ok(value);
                    }
                }
                Err(err) => {
                    for &i in indices {
                        out[i] = Err(err.clone());
                    }
                }
            }
        }
        out
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        let groups = group_by_slot(keys.iter().map(String::as_str));
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

    async fn set_within(&self, entry: Entry, budget: Duration) -> Result<()> {
        self.query_within(&set_cmd(&entry), budget).await
    }

    async fn set_many(&self, entries: Vec<Entry>) -> Result<()> {
        // The multiplexed cluster connection pipelines concurrent commands per node.
        let cmds: Vec<Cmd> = entries.iter().map(set_cmd).collect();
        try_join_all(cmds.iter().map(|cmd| self.query::<()>(cmd))).await?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let removed: i64 = self.query(&key_cmd("DEL", key)).await?;
        Ok(removed > 0)
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>> {
        Ok(pttl(self.query(&key_cmd("PTTL", key)).await?))
    }

    async fn set_if_absent(&self, entry: Entry) -> Result<bool> {
        Ok(wrote(
            &self.query::<redis::Value>(&set_nx_cmd(&entry)).await?,
        ))
    }

    async fn eval(&self, script: &Script, keys: &[String], args: &[Vec<u8>]) -> Result<i64> {
        let [evalsha, eval] = eval_cmds(script, keys, args);
        match self.query(&evalsha).await {
            Err(err) if is_noscript(&err) => self.query(&eval).await,
            result => result,
        }
    }
}
