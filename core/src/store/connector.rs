//! The transport seam for plain Redis nodes: a [`Connector`] opens the byte stream to a
//! node and runs the future that moves its bytes, so a host with its own event loop (Node)
//! can do the socket I/O on that loop while core keeps the protocol, reconnects and
//! deadlines. Without a connector, stores use redis-rs's own tokio connections.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use futures_util::future::BoxFuture;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{
    AsyncConnectionConfig, Cmd, Pipeline, RedisConnectionInfo, RedisError, RedisFuture,
    RedisResult, Value, ValueCodec,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{oneshot, Notify};
use tokio_util::codec::Decoder;

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

/// Bytes a connection holds unwritten (the stream refused them) before new requests wait
/// for room. The stream's own bound applies first (Node's: 16 MiB unsent), so this only
/// caps what piles up here while it refuses writes.
const UNWRITTEN_BOUND: usize = 1 << 20;

/// How much a read asks the stream for at least.
const READ_CHUNK: usize = 16 << 10;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn closed() -> RedisError {
    RedisError::from(io::Error::from(io::ErrorKind::BrokenPipe))
}

/// A request waiting for its replies (they come in the order the requests were written).
struct Waiting {
    /// Replies to pass over before the kept ones (a transaction's `MULTI` and `QUEUED`s).
    skip: usize,
    /// A pipeline's replies so far and how many it keeps; `None` for one command.
    kept: Option<(Vec<Value>, usize)>,
    reply: oneshot::Sender<RedisResult<Value>>,
}

/// What callers and the driver share: the stream and the requests in flight.
struct State {
    /// `None` once the connection ended (the stream is dropped with it).
    stream: Option<Box<dyn NodeStream>>,
    /// Packed requests the stream has not taken yet.
    unwritten: Vec<u8>,
    waiting: VecDeque<Waiting>,
    read: BytesMut,
    codec: ValueCodec,
    /// `codec` holds a reply it started: the next bytes are its.
    partial: bool,
    /// Why the connection ended.
    ended: Option<RedisError>,
    /// The driver's waker: a write that cannot finish now resumes in the driver.
    driver: Option<Waker>,
    /// Written bytes a buffering stream has not flushed yet (its flush was pending).
    unflushed: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Mirrors `state.ended.is_some()` for the per-call check.
    ended: AtomicBool,
    /// Callers waiting for [`UNWRITTEN_BOUND`] room (a caller that gives up leaves it, so
    /// a long stall does not pile up the wakers of calls that timed out).
    room: Notify,
}

impl State {
    /// Hands the stream what it takes of `unwritten`; the rest waits for the driver (woken
    /// through `cx` when the stream has room).
    fn write(&mut self, cx: &mut Context<'_>, room: &Notify) -> io::Result<()> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        let full = self.unwritten.len() >= UNWRITTEN_BOUND;
        let mut written = 0;
        while written < self.unwritten.len() {
            match Pin::new(&mut *stream).poll_write(cx, &self.unwritten[written..]) {
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => written += n,
                Poll::Ready(Err(err)) => return Err(err),
                Poll::Pending => break,
            }
        }
        self.unwritten.drain(..written);
        if written > 0 || self.unflushed {
            // Plain sockets need no flush; a buffering stream gets its chance here, and
            // again on the driver's next turn (woken through `cx`) while it is pending.
            match Pin::new(&mut *stream).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(err)) => return Err(err),
                Poll::Pending => self.unflushed = true,
            }
        }
        if full && self.unwritten.len() < UNWRITTEN_BOUND {
            // Callers wait only while it is full (see `Pipelined::request`).
            room.notify_waiters();
        }
        Ok(())
    }

    /// Writes, then reads and answers replies until the stream has nothing more; `Ready`
    /// with the reason once the connection is over.
    fn drive(&mut self, cx: &mut Context<'_>, room: &Notify) -> Poll<RedisError> {
        if let Some(err) = &self.ended {
            return Poll::Ready(err.clone());
        }
        if !self
            .driver
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            self.driver = Some(cx.waker().clone());
        }
        if let Err(err) = self.write(cx, room) {
            return Poll::Ready(err.into());
        }
        let Some(stream) = self.stream.as_mut() else {
            return Poll::Ready(closed());
        };
        loop {
            self.read.reserve(READ_CHUNK);
            match tokio_util::io::poll_read_buf(Pin::new(&mut *stream), cx, &mut self.read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => return Poll::Ready(closed()),
                Poll::Ready(Err(err)) => return Poll::Ready(err.into()),
                Poll::Ready(Ok(_)) => loop {
                    match next_reply(&mut self.read, &mut self.codec, &mut self.partial) {
                        Ok(Some(value)) => answer(&mut self.waiting, value),
                        Ok(None) => break,
                        Err(err) => return Poll::Ready(err),
                    }
                },
            }
        }
    }
}

impl Shared {
    /// Ends the connection: every waiting request fails with `err` (or the reason it
    /// ended already), the stream is dropped.
    fn end(&self, state: &mut State, err: RedisError) {
        state.stream = None;
        let err = state.ended.get_or_insert(err).clone();
        for waiting in state.waiting.drain(..) {
            let _ = waiting.reply.send(Err(err.clone()));
        }
        self.ended.store(true, Ordering::Release);
        self.room.notify_waiters();
    }

    /// Queues a request's bytes and its wait for replies, and hands the stream what it
    /// takes of them now.
    fn send(
        &self,
        state: &mut State,
        pack: impl FnOnce(&mut Vec<u8>),
        expect: Option<Expect>,
    ) -> Option<oneshot::Receiver<RedisResult<Value>>> {
        pack(&mut state.unwritten);
        let answered = expect.map(|expect| {
            let (reply, answered) = oneshot::channel();
            state.waiting.push_back(Waiting {
                skip: expect.skip,
                kept: expect.kept.map(|count| (Vec::with_capacity(count), count)),
                reply,
            });
            answered
        });
        // Until the driver first ran there is no waker: it writes when it does.
        if let Some(driver) = state.driver.clone() {
            if let Err(err) = state.write(&mut Context::from_waker(&driver), &self.room) {
                state.ended.get_or_insert(err.into());
                driver.wake();
            }
        }
        answered
    }
}

/// A connection's driver: reads replies and answers them, writes what callers could not.
/// Dropped before its connection ended (the host's executor went away, or the task was
/// discarded after a panic), it ends the connection, so calls fail and the next one
/// reconnects instead of each waiting out its timeout for replies nobody reads.
struct Driver(Arc<Shared>);

impl std::future::Future for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let shared = &self.0;
        let mut state = lock(&shared.state);
        match state.drive(cx, &shared.room) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(err) => {
                shared.end(&mut state, err);
                Poll::Ready(())
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.0.ended.load(Ordering::Acquire) {
            self.0.end(&mut lock(&self.0.state), closed());
        }
    }
}

/// The next whole reply in `read`, taken out of it: by [`quick`] when it reads it, else by
/// redis-rs's decoder (`partial` while the decoder holds a reply it started: the next
/// bytes are its).
fn next_reply(
    read: &mut BytesMut,
    codec: &mut ValueCodec,
    partial: &mut bool,
) -> RedisResult<Option<Value>> {
    if !*partial {
        match quick(read) {
            Quick::Value(value, used) => {
                read.advance(used);
                return Ok(Some(value));
            }
            Quick::Short => return Ok(None),
            Quick::Other => {}
        }
    }
    let decoded = codec.decode(read)?;
    *partial = decoded.is_none();
    Ok(decoded)
}

/// What [`quick`] made of the start of a buffer.
#[derive(Debug, PartialEq)]
enum Quick {
    /// A whole reply and the bytes it took.
    Value(Value, usize),
    /// The start of one it reads, not whole yet.
    Short,
    /// One it leaves to redis-rs's decoder.
    Other,
}

/// The replies a cache's calls get (`+OK`, integers, bulk strings and nil, and arrays of
/// these: `GET`, `MGET`, `SET`, `DEL`, `PTTL`) read straight from the buffer, as exactly
/// the values redis-rs's decoder makes; every other reply (errors, RESP3 types, nesting,
/// anything malformed) is left to that decoder, and so is an array not whole yet (the
/// decoder keeps its place, where this would start over on every read). Measured, the
/// decoder's general parser took about 3% of a sequential get's samples for a one-bulk
/// reply.
fn quick(buf: &[u8]) -> Quick {
    if buf.first() != Some(&b'*') {
        return one(buf);
    }
    let (n, mut at) = match head(buf) {
        Head::Line(line, next) => match number(line) {
            Some(n) => (n, next),
            None => return Quick::Other,
        },
        Head::Short => return Quick::Short,
        Head::Other => return Quick::Other,
    };
    let Ok(n) = usize::try_from(n) else {
        return Quick::Value(Value::Nil, at);
    };
    // Every item takes at least four bytes: a count the buffer cannot hold yet is left to
    // the decoder, with nothing reserved for it.
    if n > (buf.len() - at) / 4 {
        return Quick::Other;
    }
    let mut items = Vec::with_capacity(n);
    for _ in 0..n {
        match one(&buf[at..]) {
            Quick::Value(item, used) => {
                items.push(item);
                at += used;
            }
            Quick::Short | Quick::Other => return Quick::Other,
        }
    }
    Quick::Value(Value::Array(items), at)
}

/// The longest first line [`quick`] reads; a longer one is left to the decoder.
const MAX_LINE: usize = 32;

/// A reply's first line, found or not.
enum Head<'a> {
    /// The line after the type byte, and where the rest starts.
    Line(&'a [u8], usize),
    /// Not whole yet.
    Short,
    /// Too long, or not ended by CRLF.
    Other,
}

fn head(buf: &[u8]) -> Head<'_> {
    match buf.iter().take(MAX_LINE).position(|&b| b == b'\r') {
        Some(end) => match buf.get(end + 1) {
            Some(b'\n') if end >= 1 => Head::Line(&buf[1..end], end + 2),
            None => Head::Short,
            Some(_) => Head::Other,
        },
        None if buf.len() < MAX_LINE => Head::Short,
        None => Head::Other,
    }
}

/// One reply that is no array: `+OK`, an integer, a bulk string or nil.
fn one(buf: &[u8]) -> Quick {
    let Some(&kind) = buf.first() else {
        return Quick::Short;
    };
    if !matches!(kind, b'+' | b':' | b'$') {
        return Quick::Other;
    }
    let (line, next) = match head(buf) {
        Head::Line(line, next) => (line, next),
        Head::Short => return Quick::Short,
        Head::Other => return Quick::Other,
    };
    match (kind, number(line)) {
        (b'+', _) if line == b"OK" => Quick::Value(Value::Okay, next),
        (b':', Some(n)) => Quick::Value(Value::Int(n), next),
        (b'$', Some(n)) if n < 0 => Quick::Value(Value::Nil, next),
        (b'$', Some(n)) => {
            let Some(stop) = usize::try_from(n).ok().and_then(|n| n.checked_add(next)) else {
                return Quick::Other;
            };
            match buf.get(stop..).and_then(|rest| rest.get(..2)) {
                None => Quick::Short,
                Some(b"\r\n") => {
                    Quick::Value(Value::BulkString(buf[next..stop].to_vec()), stop + 2)
                }
                Some(_) => Quick::Other,
            }
        }
        _ => Quick::Other,
    }
}

/// A RESP integer line written plainly (`-`, digits); `None` leaves it to redis-rs.
fn number(line: &[u8]) -> Option<i64> {
    let digits = line.strip_prefix(b"-").unwrap_or(line);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(line).ok()?.parse().ok()
}

/// Hands `value` to the oldest waiting request (as redis-rs's multiplexed connection does;
/// a push message is no reply: this connection subscribes to nothing).
fn answer(waiting: &mut VecDeque<Waiting>, value: Value) {
    if matches!(value, Value::Push { .. }) {
        return;
    }
    let Some(oldest) = waiting.front_mut() else {
        return;
    };
    if oldest.skip > 0 {
        oldest.skip -= 1;
        return;
    }
    let value = match &mut oldest.kept {
        None => value,
        Some((values, count)) => {
            values.push(value);
            if values.len() < *count {
                return;
            }
            Value::Array(std::mem::take(values))
        }
    };
    if let Some(done) = waiting.pop_front() {
        // A caller that gave up (its timeout) dropped the receiver.
        let _ = done.reply.send(Ok(value));
    }
}

/// Ends its connection when the last handle goes (the driver then returns).
struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        let mut state = lock(&self.0.state);
        state.ended.get_or_insert_with(closed);
        self.0.ended.store(true, Ordering::Release);
        if let Some(driver) = state.driver.take() {
            driver.wake();
        }
    }
}

/// One node's connection: a request's packed bytes go straight to the stream from the
/// caller's task and its replies are matched in order by a driver task woken by the
/// stream, with redis-rs's own reply decoder. No channel, no hop through the driver for a
/// request (what redis-rs's `MultiplexedConnection` costs per call), same protocol.
#[derive(Clone)]
pub(crate) struct Pipelined {
    owner: Arc<Owner>,
    db: i64,
}

impl Pipelined {
    /// Takes over `stream` (handshake done) and returns the connection and its driver.
    fn new(stream: Box<dyn NodeStream>, db: i64) -> (Pipelined, BoxFuture<'static, ()>) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                stream: Some(stream),
                unwritten: Vec::new(),
                waiting: VecDeque::new(),
                read: BytesMut::new(),
                codec: ValueCodec::default(),
                partial: false,
                ended: None,
                driver: None,
                unflushed: false,
            }),
            ended: AtomicBool::new(false),
            room: Notify::new(),
        });
        let driver = Box::pin(Driver(shared.clone()));
        let conn = Pipelined {
            owner: Arc::new(Owner(shared)),
            db,
        };
        (conn, driver)
    }

    fn ended(&self) -> bool {
        self.owner.0.ended.load(Ordering::Acquire)
    }

    /// Writes what `pack` packs and waits for its replies (`None`: a command the server
    /// does not answer).
    async fn request(
        &self,
        pack: impl FnOnce(&mut Vec<u8>),
        expect: Option<Expect>,
    ) -> RedisResult<Value> {
        let shared = &self.owner.0;
        let answered = loop {
            let room = {
                let mut state = lock(&shared.state);
                if let Some(err) = &state.ended {
                    return Err(err.clone());
                }
                if state.unwritten.len() < UNWRITTEN_BOUND {
                    break shared.send(&mut state, pack, expect);
                }
                // Backpressure: wait while the stream refuses what is already here. The
                // wait is registered under the lock `write` notifies under: no lost wake.
                shared.room.notified()
            };
            room.await;
        };
        match answered {
            Some(answered) => answered.await.unwrap_or_else(|_| Err(closed())),
            None => Ok(Value::Nil),
        }
    }

    /// Sends the one command `pack` writes as RESP bytes (core's own packing: no `Cmd` on
    /// the way) and returns its reply; an error reply is an error, as for a `Cmd`.
    pub(crate) async fn send(&self, pack: impl FnOnce(&mut Vec<u8>)) -> RedisResult<Value> {
        let one = Expect {
            skip: 0,
            kept: None,
        };
        self.request(pack, Some(one)).await?.extract_error()
    }
}

/// The replies a request waits for.
#[derive(Clone, Copy)]
struct Expect {
    /// Passed over first (a transaction's `MULTI` and `QUEUED`s).
    skip: usize,
    /// A pipeline's count, answered as one array; `None`: one command's reply.
    kept: Option<usize>,
}

impl ConnectionLike for Pipelined {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        // A command the server does not answer has no reply to match (as in redis-rs).
        let expect = (!cmd.is_no_response()).then_some(Expect {
            skip: 0,
            kept: None,
        });
        Box::pin(self.request(|out| cmd.write_packed_command(out), expect))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let packed = pipeline.get_packed_pipeline();
            if count == 0 && offset == 0 {
                // Nothing to answer: a waiter here would take the next request's reply.
                self.request(|out| out.extend_from_slice(&packed), None)
                    .await?;
                return Ok(Vec::new());
            }
            match self
                .request(
                    |out| out.extend_from_slice(&packed),
                    Some(Expect {
                        skip: offset,
                        kept: Some(count),
                    }),
                )
                .await?
            {
                Value::Array(values) => Ok(values),
                other => Ok(vec![other]),
            }
        })
    }

    fn get_db(&self) -> i64 {
        self.db
    }
}

/// A stream lent to redis-rs for the connection's handshake (`AUTH`, `HELLO`, `SELECT`,
/// `CLIENT SETINFO`: its own logic and errors) and taken back for [`Pipelined`].
struct Lent(Arc<Mutex<Option<Box<dyn NodeStream>>>>);

impl Lent {
    fn with<R>(
        &self,
        f: impl FnOnce(Pin<&mut (dyn NodeStream + 'static)>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match lock(&self.0).as_mut() {
            Some(stream) => f(Pin::new(&mut **stream)),
            None => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
}

impl AsyncRead for Lent {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.with(|stream| stream.poll_read(cx, buf))
    }
}

impl AsyncWrite for Lent {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.with(|stream| stream.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|stream| stream.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|stream| stream.poll_shutdown(cx))
    }
}

/// One node's [`Pipelined`] connection over a [`Connector`]'s streams, opened on first use
/// and again after the old one ended (what redis-rs's `ConnectionManager` does over its
/// own sockets).
pub(crate) struct Reconnecting {
    info: RedisConnectionInfo,
    addr: NodeAddr,
    connector: Arc<dyn Connector>,
    connect_timeout: Duration,
    /// The connection in use and its generation (a plain lock: read once per call).
    live: Mutex<Option<(Pipelined, u64)>>,
    /// Held while opening: concurrent callers share one attempt.
    opening: tokio::sync::Mutex<()>,
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
            live: Mutex::new(None),
            opening: tokio::sync::Mutex::new(()),
            generations: AtomicU64::new(0),
        }
    }

    fn current(&self) -> Option<(Pipelined, u64)> {
        lock(&self.live)
            .as_ref()
            .filter(|(conn, _)| !conn.ended())
            .cloned()
    }

    /// The live connection, opened (within `connect_timeout`) when there is none or the
    /// last one has ended. Concurrent callers share one attempt.
    pub(crate) async fn connection(&self) -> RedisResult<(Pipelined, u64)> {
        if let Some(current) = self.current() {
            return Ok(current);
        }
        // Boxed: opening holds the handshake's state (about 1 KB), which every call's
        // future would otherwise carry, and copy at each move, to find the connection live.
        Box::pin(self.reopen()).await
    }

    async fn reopen(&self) -> RedisResult<(Pipelined, u64)> {
        let _opening = self.opening.lock().await;
        if let Some(current) = self.current() {
            return Ok(current);
        }
        *lock(&self.live) = None;
        let conn = match tokio::time::timeout(self.connect_timeout, self.open()).await {
            Ok(opened) => opened?,
            Err(_) => {
                return Err(RedisError::from(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no connection to {} within {:?}",
                        self.addr, self.connect_timeout
                    ),
                )))
            }
        };
        let live = (conn, self.generations.fetch_add(1, Ordering::Relaxed) + 1);
        *lock(&self.live) = Some(live.clone());
        Ok(live)
    }

    async fn open(&self) -> RedisResult<Pipelined> {
        let stream = self.connector.connect(&self.addr).await?;
        let lent = Arc::new(Mutex::new(Some(stream)));
        let config = AsyncConnectionConfig::new().set_response_timeout(None);
        // The handshake's replies are all read before it returns, and the server sends
        // nothing unasked, so the stream taken back holds no unread reply.
        let (handshake, unpolled) =
            MultiplexedConnection::new_with_config(&self.info, Lent(lent.clone()), config).await?;
        let stream = lock(&lent).take().ok_or_else(closed)?;
        drop((handshake, unpolled));
        let (conn, driver) = Pipelined::new(stream, self.info.db());
        self.connector.spawn(driver);
        Ok(conn)
    }

    /// `result` of a call on connection `generation`; an error that means the connection
    /// is broken makes the next call open a new one.
    pub(crate) fn checked<T>(&self, generation: u64, result: RedisResult<T>) -> RedisResult<T> {
        if let Err(err) = &result {
            if err.is_connection_dropped() || err.is_io_error() || err.is_unrecoverable_error() {
                let mut live = lock(&self.live);
                if live.as_ref().is_some_and(|(_, g)| *g == generation) {
                    *live = None;
                }
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use redis::{Value, ValueCodec};

    use super::{next_reply, quick, Quick};

    /// Every reply read from `stream` handed over `chunk` bytes at a time, as the driver
    /// reads them; `None` after the first error.
    fn replies(stream: &[u8], chunk: usize) -> Option<Vec<Value>> {
        let (mut read, mut codec, mut partial) = (BytesMut::new(), ValueCodec::default(), false);
        let mut values = Vec::new();
        for piece in stream.chunks(chunk) {
            read.extend_from_slice(piece);
            while let Some(value) = next_reply(&mut read, &mut codec, &mut partial).ok()? {
                values.push(value);
            }
        }
        Some(values)
    }

    const READ: [&[u8]; 13] = [
        b"+OK\r\n",
        b":0\r\n",
        b":-42\r\n",
        b":9223372036854775807\r\n",
        b"$-1\r\n",
        b"$0\r\n\r\n",
        b"$5\r\nh\r\nlo\r\n",
        b"*-1\r\n",
        b"*0\r\n",
        b"*3\r\n$1\r\na\r\n$-1\r\n:7\r\n",
        b"*2\r\n+OK\r\n$2\r\n\x00\xff\r\n",
        b"$3\r\n\r\n\r\r\n",
        b"$40\r\n0123456789012345678901234567890123456789\r\n",
    ];

    const LEFT: [&[u8]; 9] = [
        b"-ERR wrong\r\n",
        b"+PONG\r\n",
        b": 1\r\n",
        b":99999999999999999999\r\n",
        b"*1\r\n*0\r\n",
        b"%1\r\n+a\r\n:1\r\n",
        b"_\r\n",
        b"*2\r\n$1\r\na\r\n-ERR in an array\r\n",
        b"+a simple string longer than the thirty-two bytes read here\r\n",
    ];

    /// Every reply `quick` reads, it reads as redis-rs does, and waits while it is cut
    /// short; what it leaves to redis-rs, it leaves whole.
    #[test]
    fn quick_replies_are_redis_rs_values() {
        for reply in READ {
            let expected = redis::parse_redis_value(reply).unwrap();
            let mut followed = reply.to_vec();
            followed.extend_from_slice(b":1\r\n");
            assert_eq!(quick(&followed), Quick::Value(expected, reply.len()));
            for cut in 0..reply.len() {
                let got = quick(&reply[..cut]);
                // An array cut after its count goes to the decoder, which keeps its place.
                let array = reply[0] == b'*' && reply[..cut].contains(&b'\n');
                let want = if array { Quick::Other } else { Quick::Short };
                assert_eq!(got, want, "{reply:?} cut at {cut}");
            }
        }
        for reply in LEFT {
            assert_eq!(quick(reply), Quick::Other, "{reply:?}");
        }
    }

    /// Whatever the reads' sizes, the replies come out as redis-rs's decoder alone makes
    /// them, in order, the quick ones and the others mixed.
    #[test]
    fn replies_come_out_whole_and_in_order_at_any_read_size() {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for reply in READ.iter().chain(&LEFT).chain(&READ) {
            // A reply redis-rs refuses (a malformed integer) would end the connection.
            if let Ok(value) = redis::parse_redis_value(reply) {
                stream.extend_from_slice(reply);
                expected.push(value);
            }
        }
        assert!(expected.len() > 2 * READ.len() + 2);
        for chunk in 1..=stream.len() {
            assert_eq!(
                replies(&stream, chunk).as_ref(),
                Some(&expected),
                "reads of {chunk}"
            );
        }
    }

    /// Malformed or hostile bytes are redis-rs's to refuse: no panic, no reservation from
    /// a claimed count.
    #[test]
    fn malformed_replies_do_not_panic() {
        let hostile: [&[u8]; 9] = [
            b"\r\n",
            b"*1\r\n\r\n",
            b"*1\rX",
            b"$\r\n",
            b"$2\r\nabc\r\n",
            b"*99999999999\r\n",
            b"$9999999999999999999\r\n",
            b"*9223372036854775807\r\n:1\r\n",
            b":\r\n",
        ];
        for reply in hostile {
            for chunk in 1..=reply.len() {
                let _ = replies(reply, chunk);
            }
            assert!(!matches!(quick(reply), Quick::Value(..)), "{reply:?}");
        }
    }
}
