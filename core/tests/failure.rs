//! Redis down or frozen never hangs a caller past its timeout: each test owns a
//! redis-server from the harness and pauses (SIGSTOP) or kills (SIGKILL) it.
//!
//! The elapsed-time checks are hang detectors with generous slack (bound × 3 + 2 s), not
//! speed assertions.

use std::time::{Duration, Instant};

use polycache::{Cache, Config, ErrorKind, Value};
use polycache_harness::Server;

const BOUND: Duration = Duration::from_millis(300);

fn config(url: &str) -> Config {
    Config::from_url(url)
        .unwrap()
        .command_timeout(BOUND)
        .connect_timeout(BOUND)
}

fn assert_bounded(started: Instant) {
    let elapsed = started.elapsed();
    assert!(
        elapsed < BOUND * 3 + Duration::from_secs(2),
        "took {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_server_times_out_with_a_typed_error() {
    let server = Server::start(&[]).unwrap();
    let cache = Cache::new(config(&server.url())).await.unwrap();
    cache.set("k", &1.into(), None).await.unwrap();
    server.pause();
    for call in 0..3 {
        let started = Instant::now();
        let err = cache.get("k").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout, "call {call}: {err}");
        assert!(err.is_timeout());
        assert_bounded(started);
    }
    let started = Instant::now();
    assert_eq!(
        cache.set("k", &2.into(), None).await.unwrap_err().kind(),
        ErrorKind::Timeout
    );
    assert_bounded(started);
    server.resume();
    // Recovers once the server answers again.
    let mut recovered = false;
    for _ in 0..50 {
        if cache.get("k").await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(recovered, "cache recovers after the server resumes");
    assert!(cache.metrics().store_errors >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_server_fails_fast_with_a_typed_error() {
    let server = Server::start(&[]).unwrap();
    let cache = Cache::new(config(&server.url())).await.unwrap();
    cache.set("k", &1.into(), None).await.unwrap();
    server.kill();
    for call in 0..3 {
        let started = Instant::now();
        let err = cache.get("k").await.unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::Connection | ErrorKind::Timeout),
            "call {call}: {err:?}"
        );
        assert_bounded(started);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_or_load_fails_open_when_redis_is_down() {
    let server = Server::start(&[]).unwrap();
    let cache = Cache::new(config(&server.url())).await.unwrap();
    server.kill();
    let started = Instant::now();
    let value = cache
        .get_or_load("k", || async { Ok(Value::from("from the database")) }, None)
        .await
        .unwrap();
    assert_eq!(value, Value::from("from the database"));
    assert_bounded(started);
    assert!(cache.metrics().store_errors >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_a_connection_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let started = Instant::now();
    let err = Cache::new(config(&format!("redis://127.0.0.1:{port}")))
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Connection | ErrorKind::Timeout),
        "{err:?}"
    );
    assert_bounded(started);
    let err = Cache::new(config(&format!("redis+shards://127.0.0.1:{port}")))
        .await
        .unwrap_err();
    assert!(matches!(
        err.kind(),
        ErrorKind::Connection | ErrorKind::Timeout
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_cluster_node_times_out() {
    let topology = polycache_harness::Topology::start(false, 0, 3).unwrap();
    let url = topology.endpoints().cluster.unwrap();
    let cache = Cache::new(config(&url)).await.unwrap();
    let keys: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    for key in &keys {
        cache.set(key, &1.into(), None).await.unwrap();
    }
    topology.cluster[0].pause();
    let mut timeouts = 0;
    for key in &keys {
        let started = Instant::now();
        match cache.get(key).await {
            Ok(_) => {}
            Err(err) => {
                assert!(
                    matches!(
                        err.kind(),
                        ErrorKind::Timeout | ErrorKind::Connection | ErrorKind::Cluster
                    ),
                    "{err:?}"
                );
                timeouts += 1;
            }
        }
        assert_bounded(started);
    }
    assert!(timeouts > 0, "some keys live on the paused master");
    topology.cluster[0].resume();
}

#[tokio::test]
async fn closed_cache_refuses_calls() {
    let cache = Cache::connect("memory://").await.unwrap();
    cache.close();
    assert_eq!(
        cache.get("k").await.unwrap_err().kind(),
        ErrorKind::Connection
    );
}

/// The blocking stores bound calls with socket timeouts instead of tokio timers.
#[test]
fn blocking_store_on_a_paused_or_killed_server_fails_within_the_bound() {
    use polycache::{block_on, Io};
    let server = Server::start(&[]).unwrap();
    let cache = block_on(
        Cache::builder(config(&server.url()))
            .io(Io::Blocking)
            .build(),
    )
    .unwrap();
    block_on(cache.set("k", &1.into(), None)).unwrap();
    server.pause();
    let started = Instant::now();
    let err = block_on(cache.get("k")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
    assert_bounded(started);
    server.resume();
    assert_eq!(
        block_on(cache.get("k")).unwrap(),
        Some(1.into()),
        "recovers"
    );
    server.kill();
    let started = Instant::now();
    let err = block_on(cache.get("k")).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Connection | ErrorKind::Timeout),
        "{err:?}"
    );
    assert_bounded(started);
}
