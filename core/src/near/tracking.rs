//! Tracking connections: one per Redis master, in RESP3 with
//! `CLIENT TRACKING ON BCAST PREFIX <prefix>`, each read by its own thread.
//!
//! Why broadcast mode: the server pushes every write to a key under the cache's prefix to
//! every tracking connection, whoever wrote it, so the data connections (redis-rs async
//! connections, the blocking pools, a cluster client) need no change and no `REDIRECT`
//! bookkeeping, and a connection lost mid-read cannot leave a key that Redis forgot it was
//! tracking. The cost is invalidations for keys this process never cached (cheap: a map
//! miss) and one connection per master.
//!
//! Why a thread per connection in both I/O modes: an invalidation is applied as soon as
//! the socket has it, without waiting for the caller's next call (blocking mode has no
//! runtime to run a task) or for a busy async runtime to schedule a task; and one code path
//! serves Rust, Python and Node alike. A supervisor thread follows the topology (cluster
//! masters, the Sentinel master), pings each connection, and turns serving back on only
//! when every master is tracked.

use std::io::{BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::{IntoConnectionInfo, PushKind, Value};

use super::Near;
use crate::config::{SentinelTarget, Target};
use crate::error::{Error, ErrorKind, Result};

/// How often the supervisor looks at the links and the topology.
const TICK: Duration = Duration::from_millis(100);
/// A link idle this long is pinged.
const PING_EVERY: Duration = Duration::from_millis(500);
/// How often cluster masters / the Sentinel master are looked up again.
const DISCOVER_EVERY: Duration = Duration::from_millis(500);

/// Where the masters to track come from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// Fixed nodes (one server, or independent shards).
    Nodes(Vec<String>),
    /// A Redis Cluster: every master (`CLUSTER NODES`), slots or not, so a node added
    /// before a resharding is tracked before it owns a key.
    Cluster(Vec<String>),
    /// The master a Sentinel setup names.
    Sentinel(SentinelTarget),
}

impl Source {
    /// The source for a parsed URL; `None` for the in-process store.
    pub(crate) fn of(target: Target) -> Option<Source> {
        Some(match target {
            Target::Memory => return None,
            Target::Redis(url) => Source::Nodes(vec![url]),
            Target::Shards(nodes) => Source::Nodes(nodes.into_iter().map(|(u, _)| u).collect()),
            Target::Cluster(seeds) => Source::Cluster(seeds),
            Target::Sentinel(target) => Source::Sentinel(target),
        })
    }
}

/// The write side of a tracking connection (PINGs, shutdown); the reader thread owns the
/// read side.
struct Channel {
    socket: TcpStream,
    #[cfg(feature = "tls")]
    tls: Option<super::tls::Session>,
}

impl Channel {
    fn send(&self, bytes: &[u8]) -> std::io::Result<()> {
        #[cfg(feature = "tls")]
        if let Some(session) = &self.tls {
            return super::tls::send(session, &self.socket, bytes);
        }
        (&self.socket).write_all(bytes)
    }
}

/// What the reader thread reads pushes from.
type PushReader = BufReader<Box<dyn Read + Send>>;

/// One tracking connection.
struct Link {
    url: String,
    name: String,
    /// PINGs and shutdown; the reader thread owns the read side.
    channel: Channel,
    alive: AtomicBool,
    /// Closed on purpose (its node is no longer a master): its end is not a loss.
    retired: AtomicBool,
    /// Milliseconds since `born` when the outstanding PING was sent; 0 for none.
    ping_sent: AtomicU64,
    /// Milliseconds since `born` of the last thing read.
    last_read: AtomicU64,
    born: Instant,
}

impl Link {
    fn now_ms(&self) -> u64 {
        self.born.elapsed().as_millis() as u64 + 1
    }

    fn close(&self) {
        let _ = self.channel.socket.shutdown(std::net::Shutdown::Both);
    }
}

struct Shared {
    near: Arc<Near>,
    source: Source,
    prefix: String,
    connect_timeout: Duration,
    /// A PING unanswered this long means the link is lost.
    dead_after: Duration,
    state: Mutex<State>,
    discovery: Mutex<Discovery>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    links: Vec<Arc<Link>>,
    stop: bool,
}

/// What the supervisor knows of the topology (only it and `start` touch this).
#[derive(Default)]
struct Discovery {
    /// The masters last discovered (node URLs).
    masters: Vec<String>,
    at: Option<Instant>,
    /// A connection kept for `CLUSTER NODES`.
    conn: Option<redis::Connection>,
}

/// The tracking connections of one cache; stops its threads when dropped.
pub(crate) struct Tracker {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let links: Vec<String> = lock(&self.shared.state)
            .links
            .iter()
            .map(|l| l.name.clone())
            .collect();
        f.debug_struct("Tracker").field("links", &links).finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Tracker {
    /// Opens a tracking connection to every master, then keeps them up from a supervisor
    /// thread. A node that is down now is retried in the background (the near tier serves
    /// once every master is tracked).
    ///
    /// # Errors
    /// A config error when a server refuses RESP3 or client tracking, or when a URL cannot
    /// carry a tracking connection (Unix sockets; TLS in a build without the `tls`
    /// feature).
    pub(crate) fn start(
        near: Arc<Near>,
        source: Source,
        prefix: String,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Result<Tracker> {
        let shared = Arc::new(Shared {
            near,
            source,
            prefix,
            connect_timeout,
            dead_after: command_timeout.max(Duration::from_millis(500)),
            state: Mutex::new(State::default()),
            discovery: Mutex::new(Discovery::default()),
            wake: Condvar::new(),
        });
        shared.near.beat();
        shared.reconcile()?;
        let supervisor = shared.clone();
        std::thread::Builder::new()
            .name("polycache-near".into())
            .spawn(move || supervisor.supervise())
            .map_err(|e| Error::new(ErrorKind::Config, format!("no tracking thread: {e}")))?;
        Ok(Tracker { shared })
    }

    /// Stops the threads and closes the connections.
    pub(crate) fn stop(&self) {
        let mut state = lock(&self.shared.state);
        state.stop = true;
        for link in &state.links {
            link.retired.store(true, Ordering::Release);
            link.close();
        }
        drop(state);
        self.shared.wake.notify_all();
        self.shared.near.lose();
    }

    /// Closes the tracking connection to `addr` (`host:port`) as a network failure would
    /// (tests use this to drive a lost link deterministically).
    #[doc(hidden)]
    pub(crate) fn break_link(&self, addr: &str) -> bool {
        let state = lock(&self.shared.state);
        let found = state.links.iter().find(|l| l.name == addr);
        found.map(|l| l.close()).is_some()
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        // In a forked child the links are the parent's: shutting them down would end the
        // parent's tracking, and a lock held at the fork would never be released.
        if !self.shared.near.forked() {
            self.stop();
        }
    }
}

impl Shared {
    fn supervise(self: Arc<Self>) {
        loop {
            {
                let state = lock(&self.state);
                if state.stop {
                    return;
                }
                let (state, _) = self
                    .wake
                    .wait_timeout(state, TICK)
                    .unwrap_or_else(PoisonError::into_inner);
                if state.stop {
                    return;
                }
            }
            self.near.beat();
            let _ = self.reconcile();
            self.ping();
        }
    }

    /// Brings the links in line with the current masters; serves when all are up. Only
    /// the supervisor (and `start`, before it exists) runs this, so the links change
    /// nowhere else; connecting happens outside the state lock.
    fn reconcile(self: &Arc<Self>) -> Result<()> {
        let wanted = self.masters();
        let missing: Vec<String> = {
            let mut state = lock(&self.state);
            if state.stop {
                return Ok(());
            }
            // Links that died or whose node is no longer a master go.
            state.links.retain(|link| {
                let keep = link.alive.load(Ordering::Acquire) && wanted.contains(&link.url);
                if !keep {
                    link.retired.store(true, Ordering::Release);
                    link.close();
                }
                keep
            });
            wanted
                .iter()
                .filter(|url| !state.links.iter().any(|l| &l.url == *url))
                .cloned()
                .collect()
        };
        if !missing.is_empty() {
            // Entries read from a node before it was tracked could be stale: stop serving
            // and flush before the new link exists (counted once per outage).
            self.near.lose();
        }
        let mut first_error = None;
        for url in missing {
            match self.open(&url) {
                Ok(link) => {
                    let mut state = lock(&self.state);
                    if state.stop {
                        link.retired.store(true, Ordering::Release);
                        link.close();
                        return Ok(());
                    }
                    state.links.push(link);
                }
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        let links = lock(&self.state).links.clone();
        // Checked under the near tier's lock: a reader that marks its link dead after this
        // check flushes after this serve, never before it.
        self.near.serve_if(|| {
            !wanted.is_empty()
                && links.len() == wanted.len()
                && links.iter().all(|l| l.alive.load(Ordering::Acquire))
        });
        match first_error {
            Some(err) if err.kind() == ErrorKind::Config => Err(err),
            _ => Ok(()),
        }
    }

    /// The node URLs to track now; the last known ones when a lookup fails.
    fn masters(&self) -> Vec<String> {
        let mut discovery = lock(&self.discovery);
        let fresh = discovery.at.is_some_and(|at| at.elapsed() < DISCOVER_EVERY);
        if fresh && !discovery.masters.is_empty() {
            return discovery.masters.clone();
        }
        let found = match &self.source {
            Source::Nodes(urls) => Some(urls.clone()),
            Source::Cluster(seeds) => self.cluster_masters(&mut discovery, seeds),
            Source::Sentinel(target) => self.sentinel_master(target),
        };
        if let Some(found) = found {
            discovery.masters = found;
            discovery.at = Some(Instant::now());
        }
        discovery.masters.clone()
    }

    fn cluster_masters(&self, discovery: &mut Discovery, seeds: &[String]) -> Option<Vec<String>> {
        let template = seeds.first()?.clone();
        let known: Vec<String> = discovery.masters.iter().chain(seeds).cloned().collect();
        for _ in 0..2 {
            if discovery.conn.is_none() {
                discovery.conn = known.iter().find_map(|url| {
                    let client = redis::Client::open(url.as_str()).ok()?;
                    let conn = client
                        .get_connection_with_timeout(self.connect_timeout)
                        .ok()?;
                    conn.set_read_timeout(Some(self.connect_timeout)).ok()?;
                    Some(conn)
                });
            }
            let conn = discovery.conn.as_mut()?;
            match redis::cmd("CLUSTER").arg("NODES").query::<String>(conn) {
                Ok(nodes) => return Some(parse_masters(&nodes, &template)),
                Err(_) => discovery.conn = None,
            }
        }
        None
    }

    fn sentinel_master(&self, target: &SentinelTarget) -> Option<Vec<String>> {
        target.sentinels.iter().find_map(|sentinel| {
            crate::store::ask_sentinel(sentinel, &target.master_name, self.connect_timeout)
                .ok()
                .flatten()
                .map(|addr| vec![target.node_url(&addr)])
        })
    }

    /// Opens a tracking connection and its reader thread.
    fn open(self: &Arc<Self>, url: &str) -> Result<Arc<Link>> {
        let (channel, reader) = handshake(url, &self.prefix, self.connect_timeout)?;
        let link = Arc::new(Link {
            url: url.to_owned(),
            name: channel
                .socket
                .peer_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| url.to_owned()),
            channel,
            alive: AtomicBool::new(true),
            retired: AtomicBool::new(false),
            ping_sent: AtomicU64::new(0),
            last_read: AtomicU64::new(0),
            born: Instant::now(),
        });
        let (shared, read_link) = (self.clone(), link.clone());
        std::thread::Builder::new()
            .name("polycache-near-read".into())
            .spawn(move || shared.read(&read_link, reader))
            .map_err(|e| Error::new(ErrorKind::Config, format!("no tracking thread: {e}")))?;
        Ok(link)
    }

    /// The reader thread: applies every invalidation as it arrives; on any error the link
    /// is lost, and the near tier stops serving and is flushed before this returns.
    fn read(&self, link: &Link, mut reader: PushReader) {
        let mut parser = redis::Parser::new();
        while let Ok(value) = parser.parse_value(&mut reader) {
            link.last_read.store(link.now_ms(), Ordering::Relaxed);
            match value {
                Value::Push {
                    kind: PushKind::Invalidate,
                    data,
                } => match data.first() {
                    Some(Value::Array(keys)) => self.near.invalidate(
                        keys.iter().filter_map(|k| match k {
                            Value::BulkString(k) => Some(k.as_slice()),
                            _ => None,
                        }),
                        true,
                    ),
                    // A null key list: the server flushed its keyspace (FLUSHALL/FLUSHDB).
                    _ => self.near.flush(),
                },
                Value::Push { .. } => {}
                _ => link.ping_sent.store(0, Ordering::Relaxed), // our PING's reply
            }
        }
        link.alive.store(false, Ordering::Release);
        if !link.retired.load(Ordering::Acquire) {
            self.near.lose();
        }
        self.wake.notify_all();
    }

    /// Pings idle links; closes a link whose PING went unanswered for `dead_after`.
    fn ping(&self) {
        let links = lock(&self.state).links.clone();
        for link in links {
            let now = link.now_ms();
            let sent = link.ping_sent.load(Ordering::Relaxed);
            if sent != 0 {
                // Anything read since the PING proves the link alive (the reply may wait
                // behind a burst of pushes the reader is still applying).
                let silent = link.last_read.load(Ordering::Relaxed) < sent;
                if silent && now - sent > self.dead_after.as_millis() as u64 {
                    link.close(); // the reader sees the error and reports the loss
                }
                continue;
            }
            let idle = now.saturating_sub(link.last_read.load(Ordering::Relaxed));
            if idle >= PING_EVERY.as_millis() as u64 {
                link.ping_sent.store(now, Ordering::Relaxed);
                if link.channel.send(b"*1\r\n$4\r\nPING\r\n").is_err() {
                    link.close();
                }
            }
        }
    }
}

/// `HELLO 3` (with the URL's credentials) and `CLIENT TRACKING ON BCAST PREFIX`, each
/// within `timeout`, over TLS for `rediss://`. Returns the write side and the reader for
/// the pushes.
fn handshake(url: &str, prefix: &str, timeout: Duration) -> Result<(Channel, PushReader)> {
    let info = url
        .into_connection_info()
        .map_err(|e| Error::config(format!("invalid Redis URL: {e}")))?;
    let (host, port, tls) = match info.addr() {
        redis::ConnectionAddr::Tcp(host, port) => (host.clone(), *port, None::<bool>),
        #[cfg(feature = "tls")]
        redis::ConnectionAddr::TcpTls {
            host,
            port,
            insecure,
            ..
        } => (host.clone(), *port, Some(*insecure)),
        other => {
            return Err(Error::config(format!(
                "the near tier does not support {other} connections (Unix sockets, or TLS \
                 in a build without the `tls` feature); turn nearCache off for this URL"
            )))
        }
    };
    let name = format!("{host}:{port}");
    let io = |e: std::io::Error| {
        let kind = match e.kind() {
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => ErrorKind::Timeout,
            _ => ErrorKind::Connection,
        };
        Error::new(kind, format!("{name}: tracking connection: {e}"))
    };
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(io)?
        .next()
        .ok_or_else(|| Error::new(ErrorKind::Connection, format!("{name}: no address")))?;
    let socket = TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
    socket.set_nodelay(true).map_err(io)?;
    socket.set_read_timeout(Some(timeout)).map_err(io)?;
    socket.set_write_timeout(Some(timeout)).map_err(io)?;
    let (channel, mut reader) = match tls {
        None => {
            let read: Box<dyn Read + Send> = Box::new(socket.try_clone().map_err(io)?);
            #[cfg(feature = "tls")]
            let channel = Channel { socket, tls: None };
            #[cfg(not(feature = "tls"))]
            let channel = Channel { socket };
            (channel, BufReader::new(read))
        }
        #[cfg(feature = "tls")]
        Some(insecure) => {
            let session = super::tls::connect(&socket, &host, insecure).map_err(|e| {
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ) {
                    crate::store::tls_timeout(&name, timeout).with_source(e)
                } else {
                    io(e)
                }
            })?;
            let read: Box<dyn Read + Send> = Box::new(super::tls::Reader {
                socket: socket.try_clone().map_err(io)?,
                session: session.clone(),
                raw: vec![0; 16 * 1024],
            });
            let channel = Channel {
                socket,
                tls: Some(session),
            };
            (channel, BufReader::new(read))
        }
        #[cfg(not(feature = "tls"))]
        Some(_) => unreachable!("TLS addresses are refused above without the tls feature"),
    };
    let mut parser = redis::Parser::new();
    let settings = info.redis_settings();
    let mut hello = redis::cmd("HELLO");
    hello.arg(3);
    if let Some(password) = settings.password() {
        hello
            .arg("AUTH")
            .arg(settings.username().unwrap_or("default"))
            .arg(password);
    }
    let mut tracking = redis::cmd("CLIENT");
    tracking
        .arg("TRACKING")
        .arg("ON")
        .arg("BCAST")
        .arg("PREFIX")
        .arg(prefix);
    for (cmd, refused) in [
        (
            hello,
            "refuses RESP3 (HELLO 3), which the near tier needs (Redis 6 or later)",
        ),
        (
            tracking,
            "refuses CLIENT TRACKING, which the near tier needs",
        ),
    ] {
        channel.send(&cmd.get_packed_command()).map_err(io)?;
        let reply = parser.parse_value(&mut reader).map_err(|e| {
            Error::new(
                ErrorKind::Connection,
                format!("{name}: tracking connection: {e}"),
            )
        })?;
        if let Err(err) = reply.extract_error() {
            let auth = matches!(err.kind(), redis::ErrorKind::AuthenticationFailed)
                || err.to_string().contains("WRONGPASS");
            if auth {
                return Err(Error::from(err).on_node(&name));
            }
            return Err(Error::config(format!(
                "{name} {refused}: {err}; turn nearCache off for this server"
            )));
        }
    }
    channel.socket.set_read_timeout(None).map_err(io)?;
    Ok((channel, reader))
}

/// The URLs of the masters in a `CLUSTER NODES` reply (failed ones excluded), built on
/// the seed URL `template`.
fn parse_masters(nodes: &str, template: &str) -> Vec<String> {
    let mut masters: Vec<String> = nodes
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let addr = fields.nth(1)?;
            let flags = fields.next()?;
            let flags: Vec<&str> = flags.split(',').collect();
            let usable = flags.contains(&"master")
                && !flags
                    .iter()
                    .any(|f| matches!(*f, "fail" | "noaddr" | "handshake"));
            let addr = addr.split(['@', ',']).next()?;
            (usable && !addr.starts_with(':')).then(|| crate::store::node_url(template, addr))
        })
        .collect();
    masters.sort();
    masters
}

#[cfg(test)]
mod tests {
    use super::parse_masters;

    #[test]
    fn cluster_nodes_give_live_masters() {
        let nodes = "\
a 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b 127.0.0.1:7001@17001,host master - 0 0 2 connected 5461-10922
c 127.0.0.1:7002@17002 master,fail - 0 0 3 connected
d 127.0.0.1:7003@17003 slave a 0 0 1 connected
e 127.0.0.1:7004@17004 master - 0 0 4 connected
";
        assert_eq!(
            parse_masters(nodes, "redis://:pw@127.0.0.1:7000/0"),
            [
                "redis://:pw@127.0.0.1:7000/0",
                "redis://:pw@127.0.0.1:7001/0",
                "redis://:pw@127.0.0.1:7004/0",
            ]
        );
    }
}
