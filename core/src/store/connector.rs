//! The transport seam for plain Redis nodes: a [`Connector`] opens the byte stream to a
//! node and runs the future that moves its bytes, so a host with its own event loop (Node)
//! can do the socket I/O on that loop while core keeps the protocol, reconnects and
//! deadlines. Without a connector, stores use redis-rs's own tokio connections.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisConnectionInfo, RedisError, RedisResult};
use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream to one node.
pub trait NodeStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> NodeStream for T {}

/// Where a plain (non-TLS) node listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeAddr {
    /// `redis://host:port`.
    Tcp { host: String, port: u16 },
    /// `redis+unix:///path`.
    Unix(PathBuf),
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeAddr::Tcp { host, port } => write!(f, "{host}:{port}"),
            NodeAddr::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

impl NodeAddr {
    /// The address of a redis-rs connection, when it is one a connector can open.
    pub(crate) fn of(addr: &redis::ConnectionAddr) -> Option<NodeAddr> {
        match addr {
            redis::ConnectionAddr::Tcp(host, port) => Some(NodeAddr::Tcp {
                host: host.clone(),
                port: *port,
            }),
            redis::ConnectionAddr::Unix(path) => Some(NodeAddr::Unix(path.clone())),
            _ => None,
        }
    }
}

/// Supplies the transport of plain `redis://` and `redis+unix://` nodes (standalone and
/// each shard); Sentinel, Cluster and TLS keep redis-rs's tokio I/O.
pub trait Connector: Send + Sync + fmt::Debug {
    /// Opens a byte stream to `addr`. Core bounds the wait by `connect_timeout`.
    fn connect(&self, addr: &NodeAddr) -> BoxFuture<'static, std::io::Result<Box<dyn NodeStream>>>;
    /// Runs a connection's driver (the future that moves its bytes) to completion, where
    /// the streams this connector opens can be polled.
    fn spawn(&self, driver: BoxFuture<'static, ()>);
}

/// The connection in use and whether its driver still runs.
struct Live {
    conn: MultiplexedConnection,
    running: Arc<AtomicBool>,
    generation: u64,
}

/// One node's multiplexed connection over a [`Connector`]'s streams, opened on first use
/// and again after the old one broke (what redis-rs's `ConnectionManager` does over its
/// own sockets).
pub(crate) struct Reconnecting {
    info: RedisConnectionInfo,
    addr: NodeAddr,
    connector: Arc<dyn Connector>,
    connect_timeout: Duration,
    live: tokio::sync::Mutex<Option<Live>>,
    generations: AtomicU64,
}

impl fmt::Debug for Reconnecting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reconnecting")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Reconnecting {
    pub(crate) fn new(
        info: RedisConnectionInfo,
        addr: NodeAddr,
        connector: Arc<dyn Connector>,
        connect_timeout: Duration,
    ) -> Self {
        Reconnecting {
            info,
            addr,
            connector,
            connect_timeout,
            live: tokio::sync::Mutex::new(None),
            generations: AtomicU64::new(0),
        }
    }

    /// The live connection, opened (within `connect_timeout`) when there is none or the
    /// last one's driver has ended. Concurrent callers share one attempt.
    pub(crate) async fn connection(&self) -> RedisResult<(MultiplexedConnection, u64)> {
        let mut live = self.live.lock().await;
        if let Some(current) = live.as_ref() {
            if current.running.load(Ordering::Acquire) {
                return Ok((current.conn.clone(), current.generation));
            }
        }
        *live = None;
        let conn = match tokio::time::timeout(self.connect_timeout, self.open()).await {
            Ok(opened) => opened?,
            Err(_) => {
                return Err(RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "no connection to {} within {:?}",
                        self.addr, self.connect_timeout
                    ),
                )))
            }
        };
        let generation = conn.generation;
        let out = conn.conn.clone();
        *live = Some(conn);
        Ok((out, generation))
    }

    async fn open(&self) -> RedisResult<Live> {
        let stream = self.connector.connect(&self.addr).await?;
        let config = AsyncConnectionConfig::new().set_response_timeout(None);
        let (conn, driver) =
            MultiplexedConnection::new_with_config(&self.info, stream, config).await?;
        let running = Arc::new(AtomicBool::new(true));
        let ended = running.clone();
        self.connector.spawn(Box::pin(async move {
            driver.await;
            ended.store(false, Ordering::Release);
        }));
        Ok(Live {
            conn,
            running,
            generation: self.generations.fetch_add(1, Ordering::Relaxed) + 1,
        })
    }

    /// `result` of a call on connection `generation`; an error that means the connection
    /// is broken makes the next call open a new one.
    pub(crate) fn checked<T>(&self, generation: u64, result: RedisResult<T>) -> RedisResult<T> {
        if let Err(err) = &result {
            if err.is_connection_dropped() || err.is_io_error() || err.is_unrecoverable_error() {
                if let Ok(mut live) = self.live.try_lock() {
                    if live.as_ref().is_some_and(|l| l.generation == generation) {
                        *live = None;
                    }
                }
            }
        }
        result
    }
}
