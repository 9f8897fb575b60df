//! Hosts `polycache.wasm` in wasmtime, the way an embedder would: WASI Preview 2 with TCP
//! granted to loopback addresses only, and the component's `loader` import answered by a
//! Rust closure. The tests in `tests/component/` drive the component through this crate:
//! [`Host::load`] compiles it once, [`Host::instantiate`] makes an instance with its own
//! WASI context, and [`Guest`] has one method per exported function.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use wasmtime::component::{Component, HasSelf, Linker, ResourceAny, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// The types and calls generated from `wit/polycache.wit`.
#[allow(missing_debug_implementations, clippy::all)]
pub mod wit {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "polycache",
    });
}

pub use wit::exports::polycache::cache::cache::{
    BreakerState, Entry, Freshness, LatencyBucket, LoadOptions, Metrics, Options,
};
pub use wit::exports::polycache::cache::envelope::{Envelope, EnvelopeOptions};
pub use wit::exports::polycache::cache::ring::Node;
pub use wit::polycache::cache::types::{Codec, Compression, Error as WitError};

/// Errors of the embedding itself (loading, instantiating, traps), not of the cache.
pub type Result<T, E = wasmtime::Error> = std::result::Result<T, E>;

/// What the component's loader import answers: a MessagePack value, `None` for "not
/// found" (the key has no value), or a message.
pub type Loaded = Result<Option<Vec<u8>>, String>;

/// What the component's loader import calls: user key in, [`Loaded`] out.
pub type LoadFn = Box<dyn FnMut(&str) -> Loaded + Send>;

/// Network access granted to a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// TCP to loopback addresses (127.0.0.0/8, ::1) only; no UDP, no listening, no DNS.
    Loopback,
    /// No sockets at all.
    None,
}

/// Per-call options that all take the cache's values.
pub fn no_load_options() -> LoadOptions {
    LoadOptions {
        ttl: None,
        fresh_for: None,
        max_stale: None,
        fail_safe_backoff: None,
        soft_timeout: None,
        hard_timeout: None,
        early_refresh_beta: None,
        negative_ttl: None,
    }
}

/// Whether a guest with TCP granted to loopback may use `addr` for `usage`.
///
/// Connecting is allowed to loopback addresses. Binding is allowed to port 0 of the
/// wildcard or a loopback address: a `connect` first binds the socket implicitly, and
/// the check sees that bind as `0.0.0.0:0` (or `[::]:0`). Everything else (listening,
/// accepting, UDP, other addresses) is refused.
pub fn loopback_only(addr: SocketAddr, usage: SocketAddrUse) -> bool {
    match usage {
        SocketAddrUse::TcpConnect => addr.ip().is_loopback(),
        SocketAddrUse::TcpBind => {
            addr.port() == 0 && (addr.ip().is_unspecified() || addr.ip().is_loopback())
        }
        _ => false,
    }
}

/// The per-instance state: WASI plus the loader.
pub struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    load: LoadFn,
    /// Number of times the guest called the loader.
    pub loads: usize,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("loads", &self.loads)
            .finish_non_exhaustive()
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wit::polycache::cache::types::Host for State {}

impl wit::polycache::cache::loader::Host for State {
    fn load(&mut self, key: String) -> Loaded {
        self.loads += 1;
        (self.load)(&key)
    }
}

/// A compiled component and a linker with WASI and the loader import.
pub struct Host {
    engine: Engine,
    component: Component,
    linker: Linker<State>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").finish_non_exhaustive()
    }
}

impl Host {
    /// Compiles the component at `path`.
    ///
    /// # Errors
    /// When the file cannot be read or is not a valid component for this WIT.
    pub fn load(path: &Path) -> Result<Host> {
        let engine = Engine::default();
        let component = Component::from_file(&engine, path)
            .map_err(|e| e.context(format!("loading {}", path.display())))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        wit::Polycache::add_to_linker::<State, HasSelf<State>>(&mut linker, |state| state)?;
        Ok(Host {
            engine,
            component,
            linker,
        })
    }

    /// The component's type: its imports and exports, for checking them against a
    /// description.
    pub fn component_type(&self) -> wasmtime::component::types::Component {
        self.component.component_type()
    }

    /// The engine the component was compiled for.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// A fresh instance with the given network access and loader.
    ///
    /// # Errors
    /// When instantiation fails (an import the linker lacks, a trap in start-up code).
    pub fn instantiate(
        &self,
        network: Network,
        load: impl FnMut(&str) -> Loaded + Send + 'static,
    ) -> Result<Guest> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.inherit_stderr();
        if network == Network::Loopback {
            wasi.allow_tcp(true).socket_addr_check(|addr, usage| {
                Box::pin(async move { loopback_only(addr, usage) })
            });
        } else {
            wasi.allow_tcp(false);
        }
        let state = State {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            load: Box::new(load),
            loads: 0,
        };
        let mut store = Store::new(&self.engine, state);
        let bindings = wit::Polycache::instantiate(&mut store, &self.component, &self.linker)?;
        Ok(Guest { store, bindings })
    }
}

/// The component's default location: `$POLYCACHE_WASM`, else where `make test-wasm` builds
/// it under `$CARGO_TARGET_DIR` (or the workspace's `target/`).
pub fn default_component_path() -> PathBuf {
    if let Some(path) = std::env::var_os("POLYCACHE_WASM") {
        return path.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("wasm32-wasip2/wasm/polycache.wasm")
}

/// One instance of the component. Every call returns the embedding's result (a trap is an
/// `Err`) around the WIT result.
pub struct Guest {
    store: Store<State>,
    bindings: wit::Polycache,
}

impl std::fmt::Debug for Guest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guest")
            .field("state", self.store.data())
            .finish_non_exhaustive()
    }
}

/// A `cache` resource owned by a [`Guest`].
#[derive(Debug, Clone, Copy)]
pub struct CacheHandle(ResourceAny);

/// A `ring` resource owned by a [`Guest`].
#[derive(Debug, Clone, Copy)]
pub struct RingHandle(ResourceAny);

/// A WIT result inside the embedding's result.
pub type Call<T> = Result<Result<T, WitError>>;

impl Guest {
    /// Times the guest called the loader import.
    pub fn loads(&self) -> usize {
        self.store.data().loads
    }

    /// `cache.open`.
    pub fn open(&mut self, url: &str, options: &Options) -> Call<CacheHandle> {
        let cache = self.bindings.polycache_cache_cache().cache();
        Ok(cache
            .call_open(&mut self.store, url, options)?
            .map(CacheHandle))
    }

    /// `cache.get`.
    pub fn get(&mut self, cache: CacheHandle, key: &str) -> Call<Option<Vec<u8>>> {
        let api = self.bindings.polycache_cache_cache().cache();
        api.call_get(&mut self.store, cache.0, key)
    }

    /// `cache.get-many`.
    pub fn get_many(&mut self, cache: CacheHandle, keys: &[String]) -> Call<Vec<Option<Vec<u8>>>> {
        let api = self.bindings.polycache_cache_cache().cache();
        api.call_get_many(&mut self.store, cache.0, keys)
    }

    /// `cache.set`.
    pub fn set(
        &mut self,
        cache: CacheHandle,
        key: &str,
        value: &[u8],
        ttl: Option<f64>,
    ) -> Call<()> {
        let api = self.bindings.polycache_cache_cache().cache();
        api.call_set(&mut self.store, cache.0, key, &value.to_vec(), ttl)
    }

    /// `cache.set-many`.
    pub fn set_many(
        &mut self,
        cache: CacheHandle,
        entries: &[(String, Vec<u8>)],
        ttl: Option<f64>,
    ) -> Call<()> {
        let api = self.bindings.polycache_cache_cache().cache();
        api.call_set_many(&mut self.store, cache.0, entries, ttl)
    }

    /// `cache.delete`.
    pub fn delete(&mut self, cache: CacheHandle, key: &str) -> Call<bool> {
        let api = self.bindings.polycache_cache_cache().cache();
        api.call_delete(&mut self.store, cache.0, key)
    }

    /// `cache.ttl`.
    pub fn ttl(&mut self, cache: CacheHandle, key: &str) -> Call<Option<f64>> {
        let api = self.bindings.polycache_cache_cache().cache();
        api.call_ttl(&mut self.store, cache.0, key)
    }

    /// `cache.get-or-load` with only a `ttl` (the cache's other options).
    pub fn get_or_load(
        &mut self,
        cache: CacheHandle,
        key: &str,
        ttl: Option<f64>,
    ) -> Call<Option<Vec<u8>>> {
        let options = LoadOptions {
            ttl,
            ..no_load_options()
        };
        self.get_or_load_with(cache, key, &options)
    }

    /// `cache.get-or-load`.
    pub fn get_or_load_with(
        &mut self,
        cache: CacheHandle,
        key: &str,
        options: &LoadOptions,
    ) -> Call<Option<Vec<u8>>> {
        let api = self.bindings.polycache_cache_cache().cache();
        api.call_get_or_load(&mut self.store, cache.0, key, *options)
    }

    /// `cache.get-entry`.
    pub fn get_entry(
        &mut self,
        cache: CacheHandle,
        key: &str,
        options: &LoadOptions,
    ) -> Call<Entry> {
        let api = self.bindings.polycache_cache_cache().cache();
        api.call_get_entry(&mut self.store, cache.0, key, *options)
    }

    /// `cache.redis-key`.
    pub fn redis_key(&mut self, cache: CacheHandle, key: &str) -> Call<String> {
        let api = self.bindings.polycache_cache_cache().cache();
        api.call_redis_key(&mut self.store, cache.0, key)
    }

    /// `cache.metrics`.
    pub fn metrics(&mut self, cache: CacheHandle) -> Result<Metrics> {
        let api = self.bindings.polycache_cache_cache().cache();
        api.call_metrics(&mut self.store, cache.0)
    }

    /// Drops a cache resource (closing its connections).
    pub fn close(&mut self, cache: CacheHandle) -> Result<()> {
        cache.0.resource_drop(&mut self.store)
    }

    /// `envelope.encode-envelope`.
    pub fn encode(&mut self, value: &[u8], options: &EnvelopeOptions) -> Call<Vec<u8>> {
        let api = self.bindings.polycache_cache_envelope();
        api.call_encode_envelope(&mut self.store, &value.to_vec(), options)
    }

    /// `envelope.decode-envelope`.
    pub fn decode(&mut self, bytes: &[u8]) -> Call<Envelope> {
        let api = self.bindings.polycache_cache_envelope();
        api.call_decode_envelope(&mut self.store, bytes)
    }

    /// `keys.redis-key`.
    pub fn schema_key(
        &mut self,
        prefix: &str,
        namespace: &str,
        max: u32,
        key: &str,
    ) -> Call<String> {
        let api = self.bindings.polycache_cache_keys();
        api.call_redis_key(&mut self.store, prefix, namespace, max, key)
    }

    /// `keys.lock-key`.
    pub fn lock_key(&mut self, redis_key: &str) -> Result<String> {
        let api = self.bindings.polycache_cache_keys();
        api.call_lock_key(&mut self.store, redis_key)
    }

    /// `keys.hash-tag`.
    pub fn hash_tag(&mut self, redis_key: &str) -> Result<String> {
        let api = self.bindings.polycache_cache_keys();
        api.call_hash_tag(&mut self.store, redis_key)
    }

    /// `keys.slot`.
    pub fn slot(&mut self, redis_key: &str) -> Result<u16> {
        let api = self.bindings.polycache_cache_keys();
        api.call_slot(&mut self.store, redis_key)
    }

    /// `keys.render-key`.
    pub fn render_key(
        &mut self,
        template: &str,
        args: &[Vec<u8>],
        named: &[(String, Vec<u8>)],
    ) -> Call<String> {
        let api = self.bindings.polycache_cache_keys();
        api.call_render_key(&mut self.store, template, args, named)
    }

    /// `keys.call-key`.
    pub fn call_key(
        &mut self,
        function_name: &str,
        args: &[Vec<u8>],
        named: &[(String, Vec<u8>)],
    ) -> Call<String> {
        let api = self.bindings.polycache_cache_keys();
        api.call_call_key(&mut self.store, function_name, args, named)
    }

    /// `config.resolve-config`.
    pub fn resolve_config(&mut self, url: &str, options: &str) -> Call<String> {
        let api = self.bindings.polycache_cache_config();
        api.call_resolve_config(&mut self.store, url, options)
    }

    /// `freshness.should-refresh-early`.
    pub fn should_refresh_early(
        &mut self,
        now: u64,
        fresh_until: u64,
        delta: u64,
        beta: f64,
        random: f64,
    ) -> Result<bool> {
        let api = self.bindings.polycache_cache_freshness();
        api.call_should_refresh_early(&mut self.store, now, fresh_until, delta, beta, random)
    }

    /// `ring.ring.build`.
    pub fn ring(&mut self, nodes: &[Node]) -> Call<RingHandle> {
        let api = self.bindings.polycache_cache_ring().ring();
        Ok(api.call_build(&mut self.store, nodes)?.map(RingHandle))
    }

    /// `ring.node-for`.
    pub fn node_for(&mut self, ring: RingHandle, redis_key: &str) -> Result<String> {
        let api = self.bindings.polycache_cache_ring().ring();
        api.call_node_for(&mut self.store, ring.0, redis_key)
    }

    /// `ring.len`.
    pub fn ring_len(&mut self, ring: RingHandle) -> Result<u32> {
        let api = self.bindings.polycache_cache_ring().ring();
        api.call_len(&mut self.store, ring.0)
    }

    /// `ring.head`.
    pub fn ring_head(&mut self, ring: RingHandle, n: u32) -> Result<Vec<(u32, String)>> {
        let api = self.bindings.polycache_cache_ring().ring();
        api.call_head(&mut self.store, ring.0, n)
    }

    /// Drops a ring resource.
    pub fn drop_ring(&mut self, ring: RingHandle) -> Result<()> {
        ring.0.resource_drop(&mut self.store)
    }
}

impl WitError {
    /// The case name, as core's `ErrorKind::name()` spells it (`"Connection"` …).
    pub fn kind_name(&self) -> &'static str {
        match self {
            WitError::Config(_) => "Config",
            WitError::Key(_) => "Key",
            WitError::Codec(_) => "Codec",
            WitError::Connection(_) => "Connection",
            WitError::Timeout(_) => "Timeout",
            WitError::Server(_) => "Server",
            WitError::Cluster(_) => "Cluster",
            WitError::Loader(_) => "Loader",
            WitError::Writer(_) => "Writer",
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        match self {
            WitError::Config(m)
            | WitError::Key(m)
            | WitError::Codec(m)
            | WitError::Connection(m)
            | WitError::Timeout(m)
            | WitError::Server(m)
            | WitError::Cluster(m)
            | WitError::Loader(m)
            | WitError::Writer(m) => m,
        }
    }
}
