//! A cache whose plain Redis node streams come from a [`Connector`] (how Node does its
//! socket I/O on its own event loop): it works, reconnects after the server comes back,
//! and keeps every call within its timeout on a paused server. The connector here is plain
//! tokio, so only core's side of the seam is under test.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use polycache::store::{Connector, NodeAddr, NodeStream};
use polycache::{Cache, Clock, Compression, Config, ErrorKind, Value};
use polycache_harness::Server;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const TIMEOUT: Duration = Duration::from_millis(400);

/// The promise: a call ends within its timeout plus 20 % and 50 ms of scheduling slack.
fn limit(timeout: Duration) -> Duration {
    timeout.mul_f64(1.2) + Duration::from_millis(50)
}

/// Opens tokio streams and counts them; drivers run on the tokio runtime, except the
/// ones `discard` asks it to drop (a host's executor that discarded a task). With `held`,
/// its TCP streams are [`Held`].
#[derive(Debug, Default)]
struct Tokio {
    opened: AtomicUsize,
    discard: AtomicUsize,
    held: AtomicBool,
}

/// A stream that keeps what it is given until flushed, and whose every other flush is
/// pending (a buffering transport, as a connector may supply one).
struct Held {
    inner: tokio::net::TcpStream,
    kept: Vec<u8>,
    defer: bool,
}

impl AsyncRead for Held {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Held {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.kept.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.defer = !self.defer;
        if self.defer {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let this = &mut *self;
        while !this.kept.is_empty() {
            let n = std::task::ready!(Pin::new(&mut this.inner).poll_write(cx, &this.kept))?;
            this.kept.drain(..n);
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Connector for Tokio {
    fn connect(&self, addr: &NodeAddr) -> BoxFuture<'static, std::io::Result<Box<dyn NodeStream>>> {
        self.opened.fetch_add(1, Ordering::Relaxed);
        let addr = addr.clone();
        let held = self.held.load(Ordering::Relaxed);
        Box::pin(async move {
            Ok(match addr {
                NodeAddr::Tcp { host, port } => {
                    let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
                    stream.set_nodelay(true)?;
                    if held {
                        let (kept, defer) = (Vec::new(), false);
                        Box::new(Held {
                            inner: stream,
                            kept,
                            defer,
                        }) as Box<dyn NodeStream>
                    } else {
                        Box::new(stream)
                    }
                }
                NodeAddr::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
            })
        })
    }

    fn spawn(&self, driver: BoxFuture<'static, ()>) {
        let discard = self
            .discard
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        if discard.is_err() {
            tokio::spawn(driver);
        }
    }
}

/// `url`'s config with this file's timeouts.
fn config(url: &str) -> Config {
    Config::from_url(url)
        .unwrap()
        .command_timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
}

async fn open(url: &str, connector: &Arc<Tokio>) -> polycache::Result<Cache> {
    Cache::builder(config(url))
        .connector(connector.clone())
        .build()
        .await
}

/// The server closes every client connection.
fn kill_clients(server: &Server) {
    server
        .command(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "no"])
        .unwrap();
}

/// `key`'s value from the first of at most `tries` gets that answers, and the errors of
/// those that failed before it.
async fn get_in_tries(
    cache: &Cache,
    key: &str,
    tries: usize,
) -> (Option<Option<Value>>, Vec<polycache::Error>) {
    let mut errors = Vec::new();
    for _ in 0..tries {
        match cache.get(key).await {
            Ok(found) => return (Some(found), errors),
            Err(err) => errors.push(err),
        }
    }
    (None, errors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_talks_through_the_connector() {
    let server = Server::start(&[]).unwrap();
    let connector = Arc::new(Tokio::default());
    let cache = open(&server.url(), &connector).await.unwrap();
    cache.set("k", &Value::from("v"), None).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap(), Some(Value::from("v")));
    assert_eq!(connector.opened.load(Ordering::Relaxed), 1);
    // The bytes went through Redis itself, not only this cache's view.
    let stored = server.command(&["EXISTS", &cache.redis_key("k").unwrap()]);
    assert_eq!(stored.unwrap(), "1");
}

/// The bindings' set (`set_encoded`) goes out as `SET`'s RESP framed around the payload in
/// the encoder's buffer, or copied once when the key is longer than the room in front of
/// it: Redis holds the bytes a plain `set` stores. An error reply fails the call (a set's
/// and a get's, both packed by core) and keeps the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encoded_set_is_sent_framed_and_an_error_reply_fails_it() {
    let server = Server::start(&[]).unwrap();
    let connector = Arc::new(Tokio::default());
    // One instant for every write, so two writes of a value store the same envelope.
    let (clock, _) = Clock::mock();
    let cache = Cache::builder(config(&server.url()).ttl(None).jitter(0.0))
        .connector(connector.clone())
        .clock(clock)
        .build()
        .await
        .unwrap();
    let cache = &cache;
    let stored = |key: &str| {
        let redis_key = cache.redis_key(key).unwrap();
        async move { cache.store().get(&redis_key).await.unwrap() }
    };
    let long = "k".repeat(150);
    for value in [
        Value::from("v"),
        Value::from((0..5000).map(Value::from).collect::<Vec<Value>>()),
    ] {
        for (key, ttl) in [
            ("short", None),
            ("short-px", Some(Duration::from_secs(600))),
            (long.as_str(), Some(Duration::from_secs(90))),
        ] {
            let mut encoder = cache.encoder();
            encoder.value(&value).unwrap();
            cache
                .set_encoded(key, encoder.finish().unwrap(), ttl)
                .await
                .unwrap();
            cache.set("by-value", &value, ttl).await.unwrap();
            assert!(stored(key).await.is_some());
            assert_eq!(stored(key).await, stored("by-value").await, "{key} {ttl:?}");
            assert_eq!(cache.get(key).await.unwrap(), Some(value.clone()));
            let left = cache.ttl(key).await.unwrap();
            assert_eq!(left.is_some(), ttl.is_some(), "{key}: {left:?}");
        }
    }
    server
        .command(&["CONFIG", "SET", "maxmemory", "1"])
        .unwrap();
    let mut encoder = cache.encoder();
    encoder.value(&Value::from("v")).unwrap();
    let err = cache
        .set_encoded("short", encoder.finish().unwrap(), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Server, "{err}");
    assert!(err.message().contains("OOM"), "{err}");
    server
        .command(&["CONFIG", "SET", "maxmemory", "0"])
        .unwrap();
    let mut encoder = cache.encoder();
    encoder.value(&Value::from("w")).unwrap();
    cache
        .set_encoded("short", encoder.finish().unwrap(), None)
        .await
        .unwrap();
    assert_eq!(cache.get("short").await.unwrap(), Some(Value::from("w")));
    // A get is packed by core too: its error reply is the server's, on the same connection.
    let list = cache.redis_key("list").unwrap();
    server.command(&["RPUSH", &list, "x"]).unwrap();
    let err = cache.get("list").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Server, "{err}");
    assert!(err.message().contains("WRONGTYPE"), "{err}");
    assert_eq!(connector.opened.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_cache_opens_each_node_through_the_connector() {
    let (a, b) = (Server::start(&[]).unwrap(), Server::start(&[]).unwrap());
    let url = format!("redis+shards://{},{}", a.addr(), b.addr());
    let connector = Arc::new(Tokio::default());
    let cache = open(&url, &connector).await.unwrap();
    for i in 0..20 {
        cache
            .set(&format!("k{i}"), &Value::from(i), None)
            .await
            .unwrap();
    }
    for i in 0..20 {
        assert_eq!(
            cache.get(&format!("k{i}")).await.unwrap(),
            Some(Value::from(i))
        );
    }
    assert_eq!(connector.opened.load(Ordering::Relaxed), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_is_reopened() {
    let server = Server::start(&[]).unwrap();
    let connector = Arc::new(Tokio::default());
    let cache = open(&server.url(), &connector).await.unwrap();
    cache.set("k", &Value::from(1), None).await.unwrap();
    // The server closes every client connection; the cache opens a new one when it sees
    // the old one gone (on this call at the latest, then the next one works).
    kill_clients(&server);
    let (answered, errors) = get_in_tries(&cache, "k", 2).await;
    assert_eq!(answered, Some(Some(Value::from(1))), "{errors:?}");
    assert_eq!(connector.opened.load(Ordering::Relaxed), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_fails_calls_within_the_bound() {
    let server = Server::start(&[]).unwrap();
    let connector = Arc::new(Tokio::default());
    let cache = open(&server.url(), &connector).await.unwrap();
    cache.set("k", &Value::from(1), None).await.unwrap();
    server.kill();
    for _ in 0..2 {
        let started = Instant::now();
        let err = cache.get("k").await.unwrap_err();
        assert!(
            started.elapsed() <= limit(TIMEOUT),
            "{:?}",
            started.elapsed()
        );
        assert!(
            matches!(err.kind(), ErrorKind::Connection | ErrorKind::Timeout),
            "{err:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_server_times_out_within_the_bound_and_recovers() {
    let server = Server::start(&[]).unwrap();
    let connector = Arc::new(Tokio::default());
    let cache = open(&server.url(), &connector).await.unwrap();
    cache.set("k", &Value::from(1), None).await.unwrap();
    server.pause();
    for _ in 0..2 {
        let started = Instant::now();
        let err = cache.get("k").await.unwrap_err();
        assert!(
            started.elapsed() <= limit(TIMEOUT),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
        assert!(err.message().contains(&server.addr()), "{err}");
    }
    let started = Instant::now();
    let err = open(&server.url(), &connector).await.unwrap_err();
    assert!(
        started.elapsed() <= limit(TIMEOUT),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
    server.resume();
    assert_eq!(cache.get("k").await.unwrap(), Some(Value::from(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handshake_and_concurrent_replies_go_through_the_connector() {
    // A password and a database: redis-rs's handshake (AUTH, SELECT) on the connector's
    // stream, which then carries the calls.
    let server = Server::start(&[]).unwrap();
    server
        .command(&["CONFIG", "SET", "requirepass", "sesame"])
        .unwrap();
    let connector = Arc::new(Tokio::default());
    let url = |password: &str, db: u8| format!("redis://:{password}@{}/{db}", server.addr());
    let err = open(&url("wrong", 3), &connector).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err:?}");
    let cache = open(&url("sesame", 3), &connector).await.unwrap();
    let keys: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
    let entries: Vec<(&str, Value)> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| (key.as_str(), Value::from(i as i64)))
        .collect();
    cache.set_many(&entries, None).await.unwrap();
    // Many requests in flight on one connection: each gets its own reply.
    let found = futures_util::future::join_all(keys.iter().map(|key| cache.get(key))).await;
    for (i, found) in found.into_iter().enumerate() {
        assert_eq!(found.unwrap(), Some(Value::from(i as i64)));
    }
    assert!(cache.delete("k0").await.unwrap());
    assert_eq!(
        cache.get_many(&["k0", "k1"]).await.unwrap(),
        [None, Some(Value::from(1))]
    );
    // The values went to database 3, not 0.
    let other = open(&url("sesame", 0), &connector).await.unwrap();
    assert_eq!(other.get("k1").await.unwrap(), None);
    // Each cache's one stream, the handshakes included, came from the connector.
    assert_eq!(connector.opened.load(Ordering::Relaxed), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discarded_driver_ends_its_connection() {
    // Nobody reads a connection whose driver was dropped: its calls must fail at once
    // (not each wait out its timeout) and the next call must open a new connection.
    let server = Server::start(&[]).unwrap();
    let connector = Arc::new(Tokio::default());
    let cache = open(&server.url(), &connector).await.unwrap();
    cache.set("k", &Value::from(1), None).await.unwrap();
    connector.discard.store(1, Ordering::Relaxed);
    kill_clients(&server);
    let (answered, errors) = get_in_tries(&cache, "k", 3).await;
    assert_eq!(answered, Some(Some(Value::from(1))), "{errors:?}");
    assert!(
        errors.iter().all(|err| err.kind() == ErrorKind::Connection),
        "{errors:?}"
    );
    assert_eq!(connector.opened.load(Ordering::Relaxed), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_waiting_for_room_are_all_written() {
    // 24 MB of sets at once: the socket refuses most of it, the connection holds 1 MiB
    // unwritten and the other callers wait for room; every one must be let through as the
    // server reads (a lost wake would leave one to time out).
    let server = Server::start(&[]).unwrap();
    let connector = Arc::new(Tokio::default());
    let config = Config::from_url(&server.url())
        .unwrap()
        .compression(Compression::None)
        .command_timeout(Duration::from_secs(30));
    let cache = Cache::builder(config)
        .connector(connector.clone())
        .build()
        .await
        .unwrap();
    let value = Value::Bytes(vec![7; 1 << 20]);
    let keys: Vec<String> = (0..24).map(|i| format!("big{i}")).collect();
    // Paused, the server reads nothing: one poll of every set queues what the socket and
    // the connection take, and leaves the rest of the callers waiting for room.
    server.pause();
    let mut sets = std::pin::pin!(futures_util::future::join_all(
        keys.iter().map(|key| cache.set(key, &value, None))
    ));
    assert!(futures_util::FutureExt::now_or_never(sets.as_mut()).is_none());
    server.resume();
    for set in sets.await {
        set.unwrap();
    }
    let found = cache
        .get_many(&[keys[0].as_str(), keys[23].as_str()])
        .await
        .unwrap();
    assert_eq!(found, [Some(value.clone()), Some(value.clone())]);
    assert_eq!(connector.opened.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buffering_stream_is_flushed_when_its_flush_was_pending() {
    // The stream sends nothing until a flush completes, and its first flush after a write
    // is pending: the driver must flush it again, or every request stays in its buffer.
    let server = Server::start(&[]).unwrap();
    let connector = Arc::new(Tokio::default());
    connector.held.store(true, Ordering::Relaxed);
    let cache = open(&server.url(), &connector).await.unwrap();
    for i in 0..20 {
        cache.set("k", &Value::from(i), None).await.unwrap();
        assert_eq!(cache.get("k").await.unwrap(), Some(Value::from(i)));
    }
}
