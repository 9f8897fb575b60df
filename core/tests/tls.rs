//! `rediss://`: a redis-server that speaks only TLS (self-signed certificate, so the URL
//! carries `#insecure`), through the async and the blocking stores.

use std::time::{Duration, Instant};

use polycache::{block_on, Cache, Config, ErrorKind, Io, Value};
use polycache_harness::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_store_over_tls() {
    let server = Server::start_tls().unwrap();
    assert!(server.url().starts_with("rediss://"));
    let cache = Cache::connect(&server.url()).await.unwrap();
    cache
        .set("k", &Value::from("over tls"), None)
        .await
        .unwrap();
    assert_eq!(cache.get("k").await.unwrap(), Some(Value::from("over tls")));
}

#[test]
fn blocking_store_over_tls() {
    let server = Server::start_tls().unwrap();
    let config = Config::from_url(&server.url()).unwrap();
    let cache = block_on(Cache::builder(config).io(Io::Blocking).build()).unwrap();
    block_on(cache.set("k", &Value::from(7), None)).unwrap();
    assert_eq!(block_on(cache.get("k")).unwrap(), Some(Value::from(7)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_redis_on_a_tls_port_is_a_typed_error_within_the_bound() {
    let server = Server::start_tls().unwrap();
    let url = format!("redis://{}", server.addr());
    let config = Config::from_url(&url)
        .unwrap()
        .connect_timeout(Duration::from_millis(300))
        .command_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let err = Cache::new(config).await.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Connection | ErrorKind::Timeout),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// `rediss://` pointed at a plain server: a connection error that says TLS failed, within
/// the connect timeout, in both I/O modes.
#[test]
fn tls_to_a_plain_port_says_so() {
    let server = Server::start(&[]).unwrap();
    let url = format!("rediss://{}/#insecure", server.addr());
    let timeout = Duration::from_millis(300);
    let config = Config::from_url(&url)
        .unwrap()
        .connect_timeout(timeout)
        .command_timeout(timeout);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for io in [Io::Async, Io::Blocking] {
        let started = Instant::now();
        let built = Cache::builder(config.clone()).io(io).build();
        let err = match io {
            Io::Blocking => block_on(built),
            _ => runtime.block_on(built),
        }
        .unwrap_err();
        let elapsed = started.elapsed();
        assert_eq!(err.kind(), ErrorKind::Connection, "{io:?} {err:?}");
        assert!(err.message().contains("TLS"), "{io:?} {err}");
        assert!(
            elapsed <= timeout.mul_f64(1.2) + Duration::from_millis(50),
            "{io:?} took {elapsed:?}"
        );
    }
}
