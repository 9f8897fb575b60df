//! What the integration tests share: the stores a behaviour runs on, the two I/O modes
//! and how each is driven, and the macros that run one scenario on every store in both
//! modes (`<scenario>::<store>_<io>` in the test output). A test file uses it with
//! `#[macro_use] mod common;`.
#![allow(dead_code, unused_macros)] // each test binary uses a part of it

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use polycache::{Cache, CacheBuilder, Config, Io};

/// Where a scenario runs: `memory://`, or one of the harness's shared Redis topologies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Memory,
    Standalone,
    Shards,
    Cluster,
}

impl Store {
    /// The store's URL (the shared servers start on first use).
    pub fn url(self) -> String {
        let endpoints = polycache_harness::shared();
        match self {
            Store::Memory => Some("memory://".to_owned()),
            Store::Standalone => endpoints.standalone.clone(),
            Store::Shards => endpoints.shards.clone(),
            Store::Cluster => endpoints.cluster.clone(),
        }
        .expect("the harness started this topology")
    }
}

/// A store and the I/O mode its caches use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub store: Store,
    pub io: Io,
}

impl Target {
    pub fn url(self) -> String {
        self.store.url()
    }

    /// A config on this target's store in `namespace`.
    pub fn config(self, namespace: &str) -> Config {
        Config::from_url(&self.url())
            .expect("url")
            .namespace(namespace)
    }
}

/// Runs a test's futures the way each I/O mode is used: on a tokio runtime for async
/// stores (Rust async, Python's AsyncCache, Node), on the calling thread with
/// [`polycache::block_on`] and no runtime for blocking ones (Python's sync `Cache`), so
/// background work takes the paths it takes there (threads, timer threads).
pub struct Driver {
    pub io: Io,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Driver {
    pub fn new(io: Io) -> Driver {
        let runtime = (io == Io::Async).then(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime")
        });
        Driver { io, runtime }
    }

    pub fn run<T>(&self, future: impl Future<Output = T>) -> T {
        match &self.runtime {
            Some(runtime) => runtime.block_on(future),
            None => polycache::block_on(future),
        }
    }

    /// The runtime of an async driver.
    pub fn runtime(&self) -> Option<&tokio::runtime::Runtime> {
        self.runtime.as_ref()
    }

    /// Builds a cache in this driver's I/O mode.
    pub fn build(&self, builder: CacheBuilder) -> polycache::Result<Cache> {
        self.run(builder.io(self.io).build())
    }

    /// Opens a cache on `config` in this driver's I/O mode.
    pub fn open(&self, config: Config) -> polycache::Result<Cache> {
        self.build(Cache::builder(config))
    }
}

/// A namespace no other test (or earlier run against the same servers) uses.
pub fn unique(test: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{test}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// How long a poll waits for a condition before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Polls `done` until it holds; fails the test after [`DEADLINE`].
pub fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::yield_now();
    }
}

/// Runs a scenario that drives its own futures.
pub fn run_sync(target: Target, scenario: fn(Target)) {
    scenario(target)
}

/// Runs an async scenario to completion in its target's I/O mode (see [`Driver`]).
pub fn run_async<F: Future<Output = ()>>(target: Target, scenario: fn(Target) -> F) {
    Driver::new(target.io).run(scenario(target))
}

/// One `#[test]` per store and I/O mode for each scenario (`fn(Target)`, or with `async`
/// before its name an `async fn(Target)` run by a [`Driver`]): memory, a standalone
/// server, shards and a cluster, each async and blocking.
macro_rules! on_every_store {
    ($($rest:tt)*) => {
        scenarios!([memory standalone shards cluster] $($rest)*);
    };
}

/// As [`on_every_store`], without `memory://`: for behaviours between processes (the
/// stampede lock), which a store inside one process does not have.
macro_rules! on_every_redis_store {
    ($($rest:tt)*) => {
        scenarios!([standalone shards cluster] $($rest)*);
    };
}

macro_rules! scenarios {
    ([$($store:ident)*]) => {};
    ([$($store:ident)*] async $scenario:ident $(, $($rest:tt)*)?) => {
        scenarios!(@module $scenario run_async [$($store)*]);
        scenarios!([$($store)*] $($($rest)*)?);
    };
    ([$($store:ident)*] $scenario:ident $(, $($rest:tt)*)?) => {
        scenarios!(@module $scenario run_sync [$($store)*]);
        scenarios!([$($store)*] $($($rest)*)?);
    };
    (@module $scenario:ident $runner:ident [$($store:ident)*]) => {
        mod $scenario {
            #[allow(unused_imports)]
            use super::common::{Store, Target};
            #[allow(unused_imports)]
            use polycache::Io;
            #[allow(dead_code)]
            fn run(store: Store, io: Io) {
                super::common::$runner(Target { store, io }, super::$scenario)
            }
            $(scenarios!(@tests $store);)*
        }
    };
    (@tests memory) => {
        #[test] fn memory_async() { run(Store::Memory, Io::Async) }
        #[test] fn memory_blocking() { run(Store::Memory, Io::Blocking) }
    };
    (@tests standalone) => {
        #[test] fn standalone_async() { run(Store::Standalone, Io::Async) }
        #[test] fn standalone_blocking() { run(Store::Standalone, Io::Blocking) }
    };
    (@tests shards) => {
        #[test] fn shards_async() { run(Store::Shards, Io::Async) }
        #[test] fn shards_blocking() { run(Store::Shards, Io::Blocking) }
    };
    (@tests cluster) => {
        #[test] fn cluster_async() { run(Store::Cluster, Io::Async) }
        #[test] fn cluster_blocking() { run(Store::Cluster, Io::Blocking) }
    };
}
