//! One refresh per stale value: a stale read whose GET was answered before a refresh
//! wrote the new value, but which reaches the per-key refresh claim after that refresh
//! ended, must not start a second refresh (a second load). Issue 12, found by the bench
//! (21–31 loads for 20 stale keys). On every store in both I/O modes, and with the
//! stampede lock on every Redis store.
//!
//! Deterministic: a store wrapper answers one GET with the bytes it read, but only when the
//! test lets it; the other read refreshes inline (`get_or_load`), so the refresh has ended
//! when that call returns.

#[macro_use]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use polycache::lock::Script;
use polycache::store::{self, BreakerStats, Entry, Store};
use polycache::{Cache, Clock, Config, Value};
use tokio::sync::oneshot;

use common::Target;

const FRESH: Duration = Duration::from_secs(10);
const TTL: Duration = Duration::from_secs(600);

/// A GET held after it read: the wrapper signals `read` once it has the bytes, and returns
/// them when `release` fires.
struct Hold {
    read: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

/// The real store; the next GET is held when a [`Hold`] is armed.
#[derive(Debug)]
struct Held {
    inner: Arc<dyn Store>,
    hold: Mutex<Option<Hold>>,
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hold")
    }
}

#[async_trait]
impl Store for Held {
    async fn get(&self, key: &str) -> polycache::Result<Option<Vec<u8>>> {
        let bytes = self.inner.get(key).await;
        let hold = self.hold.lock().unwrap().take();
        if let Some(Hold { read, release }) = hold {
            read.send(()).unwrap();
            release.await.unwrap();
        }
        bytes
    }
    async fn get_many(&self, keys: &[String]) -> polycache::Result<Vec<Option<Vec<u8>>>> {
        self.inner.get_many(keys).await
    }
    async fn get_each(&self, keys: &[String]) -> Vec<polycache::Result<Option<Vec<u8>>>> {
        self.inner.get_each(keys).await
    }
    async fn set(&self, entry: Entry) -> polycache::Result<()> {
        self.inner.set(entry).await
    }
    async fn set_within(&self, entry: Entry, budget: Duration) -> polycache::Result<()> {
        self.inner.set_within(entry, budget).await
    }
    async fn set_many(&self, entries: Vec<Entry>) -> polycache::Result<()> {
        self.inner.set_many(entries).await
    }
    async fn delete(&self, key: &str) -> polycache::Result<bool> {
        self.inner.delete(key).await
    }
    async fn ttl(&self, key: &str) -> polycache::Result<Option<Duration>> {
        self.inner.ttl(key).await
    }
    fn evictions(&self) -> u64 {
        self.inner.evictions()
    }
    fn breakers(&self) -> BreakerStats {
        self.inner.breakers()
    }
    async fn set_if_absent(&self, entry: Entry) -> polycache::Result<bool> {
        self.inner.set_if_absent(entry).await
    }
    async fn eval(
        &self,
        script: &Script,
        keys: &[String],
        args: &[Vec<u8>],
    ) -> polycache::Result<i64> {
        self.inner.eval(script, keys, args).await
    }
}

/// A loader that counts its calls and returns `value`.
fn counting(
    calls: &Arc<AtomicUsize>,
    value: i64,
) -> impl FnOnce() -> std::future::Ready<polycache::Result<Value>> {
    let calls = calls.clone();
    move || {
        calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(Value::from(value)))
    }
}

/// Reader A's GET reads the stale value and is held; reader B reads it too, refreshes
/// inline and returns the new value; then A's GET answers with the stale bytes. A serves
/// them stale and starts no refresh of its own: one load, one refresh.
async fn late_stale_read_starts_no_second_refresh(target: Target, tweak: fn(Config) -> Config) {
    let config = tweak(
        target
            .config(&common::unique("late-stale"))
            .ttl(Some(TTL))
            .fresh_for(Some(FRESH)),
    );
    let (clock, mock) = Clock::mock();
    let inner = store::open(&config, clock.clone(), target.io)
        .await
        .unwrap();
    let held = Arc::new(Held {
        inner,
        hold: Mutex::default(),
    });
    let cache = Cache::builder(config)
        .clock(clock)
        .io(target.io)
        .store(held.clone())
        .build()
        .await
        .unwrap();
    cache
        .get_or_load("k", || async { Ok(Value::from(1)) }, None)
        .await
        .unwrap();
    mock.advance(FRESH);

    let (read_tx, read) = oneshot::channel();
    let (release, release_rx) = oneshot::channel();
    *held.hold.lock().unwrap() = Some(Hold {
        read: read_tx,
        release: release_rx,
    });
    let calls = Arc::new(AtomicUsize::new(0));
    let a = cache.get_or_load("k", counting(&calls, 2), None);
    let b = async {
        read.await.unwrap();
        let refreshed = cache.get_or_load("k", counting(&calls, 2), None).await;
        release.send(()).unwrap();
        refreshed
    };
    let (a, b) = tokio::join!(a, b);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one load for one stale value"
    );
    let m = cache.metrics();
    assert_eq!(
        (m.background_refreshes, m.stale_served),
        (1, 1),
        "one refresh; A served stale: {m:?}"
    );
    assert_eq!(b.unwrap(), Value::from(2), "B refreshed inline");
    assert_eq!(a.unwrap(), Value::from(1), "A answers with what it read");
}

async fn without_lock(target: Target) {
    late_stale_read_starts_no_second_refresh(target, |c| c).await
}

async fn with_lock(target: Target) {
    late_stale_read_starts_no_second_refresh(target, |c| c.stampede_lock(true)).await
}

on_every_store! {
    async without_lock,
}

on_every_redis_store! {
    async with_lock,
}
