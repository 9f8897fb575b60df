//! Blocking Redis stores: synchronous redis-rs connections from a small pool per node, used
//! on the caller's thread (see the module docs of [`super`]).
//!
//! Every call has one deadline, `command_timeout` from its start, and every step draws on
//! it: taking or opening a connection, the command, a redirect, a slot refresh. A command
//! that timed out is never sent again (its connection is dropped, so a late reply cannot be
//! read as the answer to another command); only a pooled connection found broken *before*
//! it could answer (the server restarted) is replaced once, within the same deadline.
//! Errors name the node they happened on.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::{Cmd, ConnectionLike, RedisError, RedisResult};

use super::{
    eval_cmds, is_noscript, packed_set, process_id, pttl, set_cmd, set_nx_cmd, tls_timeout, wrote,
    Entry, Store,
};
use crate::codec::Framed;
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::key::slot;
use crate::lock::Script;

/// Idle connections kept per node; more callers than this open extra connections.
const MAX_IDLE: usize = 16;
/// How far a socket timeout may exceed what is left of a deadline before it is lowered
/// (setting it costs two system calls, so calls with a fresh deadline keep the last one).
const TIMEOUT_SLACK: Duration = Duration::from_millis(10);
/// Redirects (MOVED/ASK) and refreshes one cluster call may follow.
const MAX_REDIRECTS: usize = 16;
const SLOTS: usize = 16384;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What is left of `deadline`, or a timeout error naming `node`.
fn remaining(deadline: Instant, budget: Duration, node: &str) -> Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(timeout(node, budget));
    }
    Ok(left)
}

fn timeout(node: &str, budget: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!("{node}: no reply within {budget:?}"),
    )
}

/// A redis-rs error as a polycache error naming the node; socket timeouts (which the OS
/// reports as "Resource temporarily unavailable") become plain timeout errors.
pub(super) fn node_error(err: RedisError, node: &str, budget: Duration) -> Error {
    if err.is_timeout() {
        return timeout(node, budget).with_source(err);
    }
    Error::from(err).on_node(node)
}

/// A connection and the socket timeout it currently has.
struct Conn {
    conn: redis::Connection,
    timeout: Duration,
}

impl Conn {
    /// Makes the socket give up no later than `left` from now.
    fn bound(&mut self, left: Duration) -> RedisResult<()> {
        if self.timeout > left + TIMEOUT_SLACK || self.timeout + TIMEOUT_SLACK < left {
            self.conn.set_read_timeout(Some(left))?;
            self.conn.set_write_timeout(Some(left))?;
            self.timeout = left;
        }
        Ok(())
    }
}

/// Blocking connections to one Redis node, every call bounded by the caller's deadline.
pub struct Node {
    name: String,
    client: redis::Client,
    /// Replies redis-rs reads while connecting (AUTH or HELLO, SELECT); it gives each read
    /// the whole connect timeout, so the timeout is divided among them.
    handshake_replies: u32,
    tls: bool,
    connect_timeout: Duration,
    /// Idle connections and the pid of the process that opened them: after `fork()` a
    /// child must not talk on its parent's sockets, so it leaves them alone and reconnects.
    idle: Mutex<(u32, Vec<Conn>)>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("addr", &self.name).finish()
    }
}

impl Node {
    fn new(url: &str, config: &Config) -> Result<Node> {
        let invalid = |e: RedisError| Error::config(format!("invalid Redis URL: {e}"));
        let info = redis::Client::open(url)
            .map_err(invalid)?
            .get_connection_info()
            .clone();
        // No CLIENT SETINFO: two more replies to wait for on every connect, for a label.
        let settings = info.redis_settings().clone().set_skip_set_lib_name();
        let handshake_replies = u32::from(
            settings.password().is_some() || settings.protocol() != redis::ProtocolVersion::RESP2,
        ) + u32::from(settings.db() != 0);
        let client = redis::Client::open(info.set_redis_settings(settings)).map_err(invalid)?;
        let tls = matches!(
            client.get_connection_info().addr(),
            redis::ConnectionAddr::TcpTls { .. }
        );
        Ok(Node {
            name: client.get_connection_info().addr().to_string(),
            client,
            handshake_replies,
            tls,
            connect_timeout: config.connect_timeout,
            idle: Mutex::new((process_id(), Vec::new())),
        })
    }

    /// The node's `host:port`.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn take(&self) -> Option<Conn> {
        let mut idle = lock(&self.idle);
        let pid = process_id();
        if idle.0 != pid {
            // Forked: leak the parent's connections; closing them here could send a TLS
            // close_notify on the parent's stream.
            std::mem::forget(std::mem::take(&mut idle.1));
            idle.0 = pid;
        }
        idle.1.pop()
    }

    fn give_back(&self, conn: Conn) {
        let mut idle = lock(&self.idle);
        // No pid check here: a forked child has only the forking thread, so a connection
        // checked out before the fork never comes back in the child.
        if idle.1.len() < MAX_IDLE && conn.conn.is_open() {
            idle.1.push(conn);
        }
    }

    fn connect(&self, deadline: Instant, budget: Duration) -> Result<Conn> {
        let left = remaining(deadline, budget, &self.name)?;
        let limit = left.min(self.connect_timeout);
        let per_step = limit / self.handshake_replies.max(1);
        let conn = self
            .client
            .get_connection_with_timeout(per_step)
            .map_err(|e| {
                if e.is_timeout() && self.tls {
                    tls_timeout(&self.name, limit).with_source(e)
                } else if e.is_timeout() {
                    Error::new(
                        ErrorKind::Timeout,
                        format!("{}: no connection within {limit:?}", self.name),
                    )
                    .with_source(e)
                } else {
                    node_error(e, &self.name, budget)
                }
            })?;
        // redis-rs clears the socket timeouts after its handshake: set them for real.
        let mut conn = Conn {
            conn,
            timeout: Duration::ZERO,
        };
        let left = remaining(deadline, budget, &self.name)?;
        conn.bound(left)
            .map_err(|e| node_error(e, &self.name, budget))?;
        if self.tls && self.handshake_replies == 0 {
            // Nothing was sent yet, so TLS has not shaken hands (rustls does it on first
            // use): do it now, so a port without TLS is reported as such.
            conn.bound(left.min(limit))
                .and_then(|()| redis::cmd("PING").query::<()>(&mut conn.conn))
                .map_err(|e| match e.is_timeout() {
                    true => tls_timeout(&self.name, limit).with_source(e),
                    false => node_error(e, &self.name, budget),
                })?;
        }
        Ok(conn)
    }

    /// Runs `call` on a connection before `deadline` (`budget` is the whole allowance,
    /// for messages).
    fn run<T>(
        &self,
        deadline: Instant,
        budget: Duration,
        call: impl Fn(&mut redis::Connection) -> RedisResult<T>,
    ) -> Result<T> {
        let (mut conn, mut pooled) = match self.take() {
            Some(conn) => (conn, true),
            None => (self.connect(deadline, budget)?, false),
        };
        loop {
            let left = remaining(deadline, budget, &self.name)?;
            let result = conn.bound(left).and_then(|()| call(&mut conn.conn));
            match result {
                Ok(value) => {
                    self.give_back(conn);
                    return Ok(value);
                }
                // Never again after a timeout: the command may have run, and its reply may
                // still arrive on this socket, which is therefore dropped.
                Err(e) if e.is_timeout() => return Err(node_error(e, &self.name, budget)),
                // A pooled connection the server closed while it sat idle: one fresh try.
                Err(e) if pooled && (e.is_connection_dropped() || e.is_io_error()) => {
                    pooled = false;
                    conn = self.connect(deadline, budget)?;
                }
                Err(e) => {
                    if !(e.is_io_error() || e.is_connection_dropped()) {
                        // An error reply: the connection is in step and reusable.
                        self.give_back(conn);
                    }
                    return Err(node_error(e, &self.name, budget));
                }
            }
        }
    }
}

/// Sends `commands` as one pipeline and reads their replies, stopping at the first reply
/// that does not arrive. (redis-rs's own pipeline goes on reading every remaining reply,
/// each with the full socket timeout, after one timed out: N commands on a paused server
/// took N timeouts.) Error replies are read past, so the connection stays in step, and the
/// first is returned.
fn pipeline<T: redis::FromRedisValue>(
    conn: &mut redis::Connection,
    commands: &[Cmd],
) -> RedisResult<Vec<T>> {
    let mut packed = Vec::new();
    for cmd in commands {
        packed.extend_from_slice(&cmd.get_packed_command());
    }
    conn.send_packed_command(&packed)?;
    let mut replies = Vec::with_capacity(commands.len());
    let mut first_error = None;
    for _ in commands {
        match conn.recv_response()?.extract_error() {
            Ok(reply) => replies.push(reply),
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
    }
    if let Some(err) = first_error {
        return Err(err);
    }
    replies
        .into_iter()
        .map(|reply| T::from_redis_value(reply).map_err(RedisError::from))
        .collect()
}

/// Sends a command already in RESP bytes ([`packed_set`]) and reads its reply; an error
/// reply is an error, as for a [`Cmd`].
fn send(conn: &mut redis::Connection, cmd: &Framed) -> RedisResult<redis::Value> {
    conn.req_packed_command(cmd.bytes())?.extract_error()
}

fn get_many_cmd(keys: &[&str]) -> Cmd {
    let mut cmd = redis::cmd("MGET");
    cmd.arg(keys);
    cmd
}

/// One Redis node over pooled blocking connections (`redis://`, `rediss://`).
#[derive(Debug)]
pub struct BlockingRedisStore {
    node: Node,
    timeout: Duration,
}

impl BlockingRedisStore {
    /// Connects to `url` (one connection now, more on demand). Opening has one deadline,
    /// `connect_timeout`, for connecting and the first `PING`.
    ///
    /// # Errors
    /// A config error for a URL redis-rs rejects; a connection or timeout error otherwise.
    pub fn connect(url: &str, config: &Config) -> Result<Self> {
        let node = Node::new(url, config)?;
        let budget = config.connect_timeout;
        node.run(Instant::now() + budget, budget, |conn| {
            redis::cmd("PING").query::<()>(conn)
        })?;
        Ok(BlockingRedisStore {
            node,
            timeout: config.command_timeout,
        })
    }

    /// The node's `host:port`.
    pub fn node(&self) -> &str {
        self.node.name()
    }

    fn run<T>(&self, call: impl Fn(&mut redis::Connection) -> RedisResult<T>) -> Result<T> {
        self.node
            .run(Instant::now() + self.timeout, self.timeout, call)
    }

    fn query<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> Result<T> {
        self.run(|conn| cmd.query(conn))
    }
}

#[async_trait]
impl Store for BlockingRedisStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.query(redis::cmd("GET").arg(key))
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.query(&get_many_cmd(&keys))
    }

    async fn set(&self, entry: Entry) -> Result<()> {
        let cmd = packed_set(&entry.key, Framed::from(entry.value), entry.ttl, false);
        self.run(|conn| send(conn, &cmd)).map(drop)
    }

    async fn set_framed(&self, key: &str, value: Framed, ttl: Option<Duration>) -> Result<()> {
        let cmd = packed_set(key, value, ttl, false);
        self.run(|conn| send(conn, &cmd)).map(drop)
    }

    async fn set_within(&self, entry: Entry, budget: Duration) -> Result<()> {
        let budget = budget.min(self.timeout);
        let cmd = packed_set(&entry.key, Framed::from(entry.value), entry.ttl, false);
        self.node
            .run(Instant::now() + budget, budget, |conn| send(conn, &cmd))
            .map(drop)
    }

    async fn set_many(&self, entries: Vec<Entry>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let commands: Vec<Cmd> = entries.iter().map(set_cmd).collect();
        self.run(|conn| pipeline::<()>(conn, &commands).map(drop))
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let removed: i64 = self.query(redis::cmd("DEL").arg(key))?;
        Ok(removed > 0)
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>> {
        Ok(pttl(self.query(redis::cmd("PTTL").arg(key))?))
    }

    async fn set_if_absent(&self, entry: Entry) -> Result<bool> {
        let cmd = packed_set(&entry.key, Framed::from(entry.value), entry.ttl, true);
        Ok(wrote(&self.run(|conn| send(conn, &cmd))?))
    }

    async fn eval(&self, script: &Script, keys: &[String], args: &[Vec<u8>]) -> Result<i64> {
        let [evalsha, eval] = eval_cmds(script, keys, args);
        match self.query(&evalsha) {
            Err(err) if is_noscript(&err) => self.query(&eval),
            result => result,
        }
    }
}

/// `seed` with its `host:port` replaced by `addr` (scheme, credentials, database and
/// options are shared by every node of a cluster).
pub(crate) fn node_url(seed: &str, addr: &str) -> String {
    let (scheme, rest) = seed.split_once("://").unwrap_or(("redis", seed));
    let (auth, rest) = match rest.rfind('@') {
        Some(at) => (&rest[..=at], &rest[at + 1..]),
        None => ("", rest),
    };
    let tail = rest.find(['/', '?', '#']).map_or("", |i| &rest[i..]);
    format!("{scheme}://{auth}{addr}{tail}")
}

/// Which node serves each of the 16384 slots.
type SlotMap = Vec<Option<Arc<Node>>>;

/// Redis Cluster over per-node blocking pools, routed here rather than by redis-rs's
/// cluster connection: that one reconnects to every master (a paused one included) when it
/// is rebuilt and retries past its timeouts, so one sick master slowed calls to every other.
/// Here a call talks to its slot's node only; `MOVED`, `ASK`, `TRYAGAIN` and a refused
/// connection (a failover under way) are followed within the call's deadline.
pub struct BlockingClusterStore {
    /// The first seed's URL: the template of every node's URL.
    seed: String,
    config: Config,
    nodes: Mutex<HashMap<String, Arc<Node>>>,
    slots: RwLock<SlotMap>,
}

impl std::fmt::Debug for BlockingClusterStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingClusterStore")
            .field("nodes", &lock(&self.nodes).keys().collect::<Vec<_>>())
            .finish()
    }
}

impl BlockingClusterStore {
    /// Reads the slot map from the first seed that answers within `connect_timeout`.
    ///
    /// # Errors
    /// A config error for bad seeds; a connection, cluster or timeout error otherwise.
    pub fn connect(seeds: &[String], config: &Config) -> Result<Self> {
        let seed = seeds
            .first()
            .ok_or_else(|| Error::config("a cluster URL needs at least one seed node"))?;
        let store = BlockingClusterStore {
            seed: seed.clone(),
            config: config.clone(),
            nodes: Mutex::new(HashMap::new()),
            slots: RwLock::new(vec![None; SLOTS]),
        };
        for seed in seeds {
            let client = redis::Client::open(seed.as_str())
                .map_err(|e| Error::config(format!("invalid cluster seed: {e}")))?;
            store.node_at(&client.get_connection_info().addr().to_string())?;
        }
        let budget = config.connect_timeout;
        store.refresh(Instant::now() + budget, budget, None)?;
        Ok(store)
    }

    /// The pool for `addr`, made on first use.
    fn node_at(&self, addr: &str) -> Result<Arc<Node>> {
        if let Some(node) = lock(&self.nodes).get(addr) {
            return Ok(node.clone());
        }
        let node = Arc::new(Node::new(&node_url(&self.seed, addr), &self.config)?);
        Ok(lock(&self.nodes)
            .entry(addr.to_owned())
            .or_insert(node)
            .clone())
    }

    /// Rebuilds the slot map from `CLUSTER SLOTS`, asking the known nodes (except `avoid`,
    /// the one that just failed) and then the seeds, until one answers.
    fn refresh(&self, deadline: Instant, budget: Duration, avoid: Option<&str>) -> Result<()> {
        let mut asked: Vec<Arc<Node>> = lock(&self.nodes).values().cloned().collect();
        asked.sort_by_key(|n| Some(n.name()) == avoid);
        let mut last = Error::new(ErrorKind::Cluster, "no cluster node to ask for slots");
        let count = asked.len();
        for (i, node) in asked.into_iter().enumerate() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            // Each node gets its share of what is left, so one paused node cannot use it all.
            let share = (left / (count - i) as u32)
                .max(Duration::from_millis(50))
                .min(left);
            let reply = node.run(Instant::now() + share, budget, |conn| {
                redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query::<redis::Value>(conn)
            });
            match reply.and_then(|reply| self.slot_map(node.name(), &reply)) {
                Ok(map) => {
                    *self.slots.write().unwrap_or_else(PoisonError::into_inner) = map;
                    return Ok(());
                }
                Err(err) => last = err,
            }
        }
        Err(last)
    }

    fn slot_map(&self, asked: &str, reply: &redis::Value) -> Result<SlotMap> {
        let bad = || {
            Error::new(
                ErrorKind::Cluster,
                format!("{asked}: malformed CLUSTER SLOTS"),
            )
        };
        let redis::Value::Array(ranges) = reply else {
            return Err(bad());
        };
        let asked_host = asked.rsplit_once(':').map_or(asked, |(host, _)| host);
        let mut map: SlotMap = vec![None; SLOTS];
        for range in ranges {
            let redis::Value::Array(parts) = range else {
                return Err(bad());
            };
            let (Some(redis::Value::Int(start)), Some(redis::Value::Int(end))) =
                (parts.first(), parts.get(1))
            else {
                return Err(bad());
            };
            let Some(redis::Value::Array(master)) = parts.get(2) else {
                return Err(bad());
            };
            let host = match master.first() {
                Some(redis::Value::BulkString(h)) => String::from_utf8_lossy(h).into_owned(),
                Some(redis::Value::SimpleString(h)) => h.clone(),
                _ => return Err(bad()),
            };
            let Some(redis::Value::Int(port)) = master.get(1) else {
                return Err(bad());
            };
            // An empty or `?` host means "the host you asked" (cluster-announce rules).
            let host = if host.is_empty() || host == "?" {
                asked_host.to_owned()
            } else {
                host
            };
            let node = self.node_at(&format!("{host}:{port}"))?;
            let (start, end) = (*start as usize, *end as usize);
            if start > end || end >= SLOTS {
                return Err(bad());
            }
            for entry in &mut map[start..=end] {
                *entry = Some(node.clone());
            }
        }
        Ok(map)
    }

    fn owner(&self, slot: u16) -> Option<Arc<Node>> {
        self.slots.read().unwrap_or_else(PoisonError::into_inner)[slot as usize].clone()
    }

    /// Runs `cmd` (whose keys all hash to `slot`) on the slot's node, following redirects.
    fn route<T: redis::FromRedisValue>(
        &self,
        slot: u16,
        deadline: Instant,
        budget: Duration,
        cmd: &Cmd,
    ) -> Result<T> {
        let mut asking: Option<Arc<Node>> = None;
        for attempt in 0..=MAX_REDIRECTS {
            let node = match asking.take() {
                // The slot is migrating and the key already moved: ask its new node once.
                Some(node) => {
                    return node.run(deadline, budget, |conn| {
                        let commands = [redis::cmd("ASKING"), cmd.clone()];
                        let mut replies = pipeline::<redis::Value>(conn, &commands)?;
                        let reply = replies.pop().unwrap_or(redis::Value::Nil);
                        T::from_redis_value(reply).map_err(RedisError::from)
                    });
                }
                None => match self.owner(slot) {
                    Some(node) => node,
                    None => {
                        self.refresh(deadline, budget, None)?;
                        self.owner(slot).ok_or_else(|| {
                            Error::new(ErrorKind::Cluster, format!("no node serves slot {slot}"))
                        })?
                    }
                },
            };
            let err = match node.run(deadline, budget, |conn| cmd.query::<T>(conn)) {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            let Some(redis_err) = err.source_as::<RedisError>() else {
                return Err(err);
            };
            if let Some((addr, moved_slot)) = redis_err.redirect_node() {
                let target = self.node_at(addr)?;
                if redis_err.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::Ask) {
                    asking = Some(target);
                } else if attempt < 2 {
                    self.slots.write().unwrap_or_else(PoisonError::into_inner)
                        [moved_slot as usize] = Some(target);
                } else {
                    // Nodes disagree (a configuration still spreading after a failover or
                    // a resharding): read the whole map again and give gossip a moment.
                    let _ = self.refresh(deadline, budget, None);
                    let left = remaining(deadline, budget, node.name())?;
                    std::thread::sleep(left.min(Duration::from_millis(10)));
                }
                continue;
            }
            let retry_later = matches!(
                redis_err.kind(),
                redis::ErrorKind::Server(redis::ServerErrorKind::TryAgain)
                    | redis::ErrorKind::Server(redis::ServerErrorKind::ClusterDown)
            );
            if retry_later {
                // The slot is moving or the cluster is electing: wait a little, in budget.
                let left = remaining(deadline, budget, node.name())?;
                std::thread::sleep(left.min(Duration::from_millis(20)));
                continue;
            }
            if err.kind() == ErrorKind::Connection {
                // The node is gone: maybe failed over. Ask the others, then try once more.
                if self.refresh(deadline, budget, Some(node.name())).is_ok()
                    && !self.owner(slot).is_some_and(|n| Arc::ptr_eq(&n, &node))
                {
                    continue;
                }
            }
            return Err(err);
        }
        Err(Error::new(
            ErrorKind::Cluster,
            format!("slot {slot}: more than {MAX_REDIRECTS} redirects"),
        ))
    }

    fn query<T: redis::FromRedisValue>(&self, key: &str, cmd: &Cmd) -> Result<T> {
        let budget = self.config.command_timeout;
        self.route(slot(key.as_bytes()), Instant::now() + budget, budget, cmd)
    }

    /// Runs single-slot commands under one deadline: one pipeline per node that the slot
    /// map names, and each command of a node whose pipeline failed (not by timing out)
    /// routed on its own, following redirects. Replies come back in `batch` order.
    fn pipelined<T: redis::FromRedisValue>(&self, batch: &[(u16, Cmd)]) -> Result<Vec<T>> {
        let budget = self.config.command_timeout;
        let deadline = Instant::now() + budget;
        let mut by_node: Vec<(Option<Arc<Node>>, Vec<usize>)> = Vec::new();
        for (i, (slot, _)) in batch.iter().enumerate() {
            let owner = self.owner(*slot);
            let same = |n: &Option<Arc<Node>>| match (n, &owner) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            };
            match by_node.iter_mut().find(|(n, _)| same(n)) {
                Some((_, indices)) => indices.push(i),
                None => by_node.push((owner, vec![i])),
            }
        }
        let mut out: Vec<Option<T>> = batch.iter().map(|_| None).collect();
        for (node, indices) in by_node {
            if let Some(node) = node {
                let commands: Vec<Cmd> = indices.iter().map(|&i| batch[i].1.clone()).collect();
                match node.run(deadline, budget, |conn| pipeline::<T>(conn, &commands)) {
                    Ok(values) => {
                        for (i, value) in indices.into_iter().zip(values) {
                            out[i] = Some(value);
                        }
                        continue;
                    }
                    Err(err) if err.kind() == ErrorKind::Timeout => return Err(err),
                    Err(_) => {} // redirected or failed over: route one by one below
                }
            }
            for i in indices {
                out[i] = Some(self.route(batch[i].0, deadline, budget, &batch[i].1)?);
            }
        }
        Ok(out.into_iter().flatten().collect())
    }
}

#[async_trait]
impl Store for BlockingClusterStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.query(key, redis::cmd("GET").arg(key))
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        // One MGET per slot, pipelined per node, all under one deadline.
        let mut slots: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
        for (i, key) in keys.iter().enumerate() {
            slots.entry(slot(key.as_bytes())).or_default().push(i);
        }
        let batch: Vec<(u16, Cmd)> = slots
            .iter()
            .map(|(&slot, indices)| {
                let group: Vec<&str> = indices.iter().map(|&i| keys[i].as_str()).collect();
                (slot, get_many_cmd(&group))
            })
            .collect();
        let replies: Vec<Vec<Option<Vec<u8>>>> = self.pipelined(&batch)?;
        let mut out = vec![None; keys.len()];
        for (indices, values) in slots.into_values().zip(replies) {
            for (i, value) in indices.into_iter().zip(values) {
                out[i] = value;
            }
        }
        Ok(out)
    }

    async fn set(&self, entry: Entry) -> Result<()> {
        self.query(&entry.key, &set_cmd(&entry))
    }

    async fn set_within(&self, entry: Entry, budget: Duration) -> Result<()> {
        let budget = budget.min(self.config.command_timeout);
        let slot = slot(entry.key.as_bytes());
        self.route(slot, Instant::now() + budget, budget, &set_cmd(&entry))
    }

    async fn set_many(&self, entries: Vec<Entry>) -> Result<()> {
        let batch: Vec<(u16, Cmd)> = entries
            .iter()
            .map(|entry| (slot(entry.key.as_bytes()), set_cmd(entry)))
            .collect();
        self.pipelined::<()>(&batch).map(drop)
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let removed: i64 = self.query(key, redis::cmd("DEL").arg(key))?;
        Ok(removed > 0)
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>> {
        Ok(pttl(self.query(key, redis::cmd("PTTL").arg(key))?))
    }

    async fn set_if_absent(&self, entry: Entry) -> Result<bool> {
        Ok(wrote(
            &self.query::<redis::Value>(&entry.key, &set_nx_cmd(&entry))?,
        ))
    }

    async fn eval(&self, script: &Script, keys: &[String], args: &[Vec<u8>]) -> Result<i64> {
        let first = keys.first().map_or("", String::as_str);
        let [evalsha, eval] = eval_cmds(script, keys, args);
        match self.query(first, &evalsha) {
            Err(err) if is_noscript(&err) => self.query(first, &eval),
            result => result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::node_url;

    #[test]
    fn node_urls_keep_everything_but_the_address() {
        assert_eq!(node_url("redis://a:1", "b:2"), "redis://b:2");
        assert_eq!(
            node_url("rediss://:pw@a:1/0#insecure", "b:2"),
            "rediss://:pw@b:2/0#insecure"
        );
        assert_eq!(
            node_url("redis://u:p@w@a:1?x=1", "b:2"),
            "redis://u:p@w@b:2?x=1"
        );
    }
}
