//! `get_or_load` with freshness rules: soft expiry, stale-while-revalidate and fail-safe
//! (the states are described in [`crate::patterns::fresh`]).

use std::future::Future;
use std::time::{Duration, Instant};

use super::Cache;
use crate::codec::{self, Value};
use crate::error::{Error, Result};
use crate::metrics::Counter;
use crate::patterns::fresh::{
    is_stale, should_refresh_early, Freshness, LoadOptions, Loaded, ReadStart, RefreshClaim, Rules,
};

/// `fresh-until` of a value written at `created_at_ms` that is fresh for `fresh_for`
/// (0 = no fresh window).
pub(super) fn fresh_until(created_at_ms: u64, fresh_for: Option<Duration>) -> u64 {
    match fresh_for.filter(|d| !d.is_zero()) {
        Some(fresh_for) => created_at_ms.saturating_add(fresh_for.as_millis() as u64),
        None => 0,
    }
}

/// The error of a load abandoned after `hard_timeout`.
pub(super) fn hard_timeout(redis_key: &str, limit: Option<Duration>) -> Error {
    Error::new(
        crate::ErrorKind::Timeout,
        format!(
            "the loader of {redis_key:?} took longer than hard_timeout ({:?})",
            limit.unwrap_or_default()
        ),
    )
}

pub(super) use crate::patterns::fresh::within;

/// Milliseconds since `started`, saturated to a u32 (the envelope's load duration).
pub(super) fn elapsed_ms(started: Instant) -> u32 {
    u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX)
}

impl Cache {
    /// Cache-aside with freshness rules and metadata: the value of `key` with whether it is
    /// fresh, stale or a fail-safe answer, and its age. `options` override the config's
    /// `ttl`, `fresh_for`, `max_stale` and `fail_safe_backoff` for this call.
    ///
    /// - fresh: returned as it is;
    /// - stale (past `fresh_for`, before `ttl`): returned at once, and one refresh per key
    ///   per process runs in the background (a tokio task when called inside a runtime,
    ///   else a thread; inline in the one caller that claimed it where neither exists);
    /// - missing: loaded (single-flight), stored;
    /// - loader failure or Redis unreachable: with `max_stale > 0`, the last good value this
    ///   process saw, up to `max_stale` past its freshness, for `fail_safe_backoff` before
    ///   the loader is tried again.
    ///
    /// A loader that returns [`Error::not_found`] (the key has no value) makes this call
    /// return that error; with `negative_ttl` it is stored, and later calls return it
    /// from the store without the loader (negative caching).
    ///
    /// # Errors
    /// A key or config error; a loader error when there is no fail-safe value; "not
    /// found" ([`Error::is_not_found`]) as above.
    pub async fn get_entry<F, Fut>(
        &self,
        key: &str,
        loader: F,
        options: &LoadOptions,
    ) -> Result<Loaded>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Value>> + Send + 'static,
    {
        let cache = self.clone();
        self.resolve(key, loader, options, move |loader| {
            cache.refresh_detached(loader)
        })
        .await
    }

    /// [`Cache::get_entry`] without the metadata.
    ///
    /// # Errors
    /// As [`Cache::get_entry`].
    pub async fn get_or_load_with<F, Fut>(
        &self,
        key: &str,
        loader: F,
        options: &LoadOptions,
    ) -> Result<Value>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Value>> + Send + 'static,
    {
        Ok(self.get_entry(key, loader, options).await?.value)
    }

    /// Whether the config asks for freshness rules, so `get_or_load` takes the long path.
    pub(super) fn fresh_rules_on(&self) -> bool {
        let config = &self.inner.config;
        config.fresh_for.is_some() || !config.max_stale.is_zero()
    }

    /// [`crate::Config::load_has_timeout`] for this cache's config.
    pub fn load_has_timeout(&self, options: &LoadOptions) -> bool {
        self.inner.config.load_has_timeout(options)
    }

    pub(super) fn rules(&self, options: &LoadOptions) -> Result<Rules> {
        let config = &self.inner.config;
        let rules = Rules {
            ttl: options.ttl,
            fresh_for: options
                .fresh_for
                .or(config.fresh_for)
                .filter(|d| !d.is_zero()),
            max_stale: options.max_stale.unwrap_or(config.max_stale),
            backoff: options
                .fail_safe_backoff
                .unwrap_or(config.fail_safe_backoff),
            soft_timeout: options
                .soft_timeout
                .or(config.soft_timeout)
                .filter(|d| !d.is_zero()),
            hard_timeout: options
                .hard_timeout
                .or(config.hard_timeout)
                .filter(|d| !d.is_zero()),
            early_refresh_beta: options
                .early_refresh_beta
                .unwrap_or(config.early_refresh_beta),
            negative_ttl: options.negative_ttl.unwrap_or(config.negative_ttl),
        };
        if config.raw && (rules.fresh_for.is_some() || rules.fail_safe()) {
            return Err(Error::config(
                "fresh_for and max_stale need the envelope: raw mode cannot have them",
            ));
        }
        Ok(rules)
    }

    /// The engine of `get_entry` and of `get_or_load` with freshness rules. `detach` tries
    /// to start a refresh in the background with the loader and returns the loader when it
    /// cannot (then this caller refreshes inline).
    pub(super) async fn resolve<F, Fut, D>(
        &self,
        key: &str,
        loader: F,
        options: &LoadOptions,
        detach: D,
    ) -> Result<Loaded>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Value>>,
        D: FnOnce(Job<F>) -> std::result::Result<(), Job<F>>,
    {
        let rules = self.rules(options)?;
        let redis_key = self.redis_key(key)?;
        // The near tier keeps no envelope, so it cannot tell fresh from stale.
        if rules.fresh_for.is_none() {
            if let Some(hit) = self.near_hit(&redis_key, true)? {
                return Ok(Loaded {
                    value: hit.value().clone(),
                    freshness: Freshness::Fresh,
                    age: None,
                });
            }
        }
        let ticket = self.near_ticket();
        let read_start = self.inner.fresh.read_start();
        let started = Instant::now();
        let read = self.timed(self.inner.store.get(&redis_key)).await;
        let budget = self.budget_after(started, read.is_ok());
        let now = self.inner.clock.now_ms();
        let found = match read {
            Ok(bytes) => self.decode_with_meta(bytes),
            Err(_) => {
                // Redis unreachable (already counted): the last good value, else load.
                if let Some(served) = self.fail_safe(&redis_key, now, &rules) {
                    return Ok(served);
                }
                None
            }
        };
        if let Some((meta, value)) = found {
            if meta.not_found {
                // A cached "not found" (counted as a negative hit): no value, no refresh.
                return Err(Error::not_found());
            }
            let value = self
                .remember(ticket, &redis_key, Some(value.clone()))
                .unwrap_or(value);
            let age = Some(Duration::from_millis(
                now.saturating_sub(meta.created_at_ms),
            ));
            if !is_stale(now, meta.fresh_until_ms) {
                if rules.fail_safe() {
                    let known_fresh = meta.fresh_until_ms.max(now);
                    let fresh = &self.inner.fresh;
                    fresh.keep(&redis_key, &value, meta.created_at_ms, known_fresh);
                }
                let early = rules.early_refresh_beta > 0.0
                    && should_refresh_early(
                        now,
                        meta.fresh_until_ms,
                        u64::from(meta.load_ms.unwrap_or(0)),
                        rules.early_refresh_beta,
                        fastrand::f64(),
                    );
                if early {
                    self.refresh_early(redis_key, loader, rules, read_start, detach);
                }
                return Ok(Loaded {
                    value,
                    freshness: Freshness::Fresh,
                    age,
                });
            }
            let stale = Loaded {
                value,
                freshness: Freshness::Stale,
                age,
            };
            let read = Read {
                budget,
                start: read_start,
            };
            return Ok(self
                .serve_stale(redis_key, loader, rules, read, stale, detach)
                .await);
        }
        let read = Read {
            budget,
            start: read_start,
        };
        self.load_or_fail_safe(redis_key, loader, rules, read, now, detach)
            .await
    }

    /// A stale read: start the key's one refresh unless one runs (or a failed one backs
    /// off), and answer with the stale value.
    async fn serve_stale<F, Fut, D>(
        &self,
        redis_key: String,
        loader: F,
        rules: Rules,
        read: Read,
        stale: Loaded,
        detach: D,
    ) -> Loaded
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Value>>,
        D: FnOnce(Job<F>) -> std::result::Result<(), Job<F>>,
    {
        let now = self.inner.clock.now_ms();
        let backing_off = rules.fail_safe()
            && self
                .inner
                .fresh
                .usable(&redis_key, now, rules.max_stale)
                .is_some_and(|good| good.retry_at_ms > now);
        let claim = if backing_off {
            None
        } else {
            self.inner.fresh.claim(&redis_key, read.start)
        };
        if let Some(claim) = claim {
            self.inner.metrics.add(Counter::BackgroundRefresh, 1);
            let job = Box::new(Detached {
                claim,
                redis_key,
                loader,
                rules,
                done: None,
            });
            if let Err(job) = detach(job) {
                // No background here: this caller refreshes, the others keep the stale value.
                if let Ok(value) = self.refresh(job, read.budget).await {
                    return Loaded {
                        value,
                        freshness: Freshness::Fresh,
                        age: Some(Duration::ZERO),
                    };
                }
            }
        }
        self.inner.metrics.add(Counter::StaleServed, 1);
        stale
    }

    /// XFetch said refresh now, before the value goes stale: start the key's one refresh in
    /// the background. Where nothing runs in the background the caller is not made to wait
    /// (the value is fresh); the refresh happens when it goes stale.
    fn refresh_early<F, Fut, D>(
        &self,
        redis_key: String,
        loader: F,
        rules: Rules,
        read_start: ReadStart,
        detach: D,
    ) where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Value>>,
        D: FnOnce(Job<F>) -> std::result::Result<(), Job<F>>,
    {
        let Some(claim) = self.inner.fresh.claim(&redis_key, read_start) else {
            return;
        };
        let job = Box::new(Detached {
            claim,
            redis_key,
            loader,
            rules,
            done: None,
        });
        if detach(job).is_ok() {
            self.inner.metrics.add(Counter::EarlyRefresh, 1);
        }
    }

    /// A miss (or an unreachable store): load, or serve the last good value when the
    /// loader fails or is backing off.
    async fn load_or_fail_safe<F, Fut, D>(
        &self,
        redis_key: String,
        loader: F,
        rules: Rules,
        read: Read,
        now: u64,
        detach: D,
    ) -> Result<Loaded>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Value>>,
        D: FnOnce(Job<F>) -> std::result::Result<(), Job<F>>,
    {
        let fresh = &self.inner.fresh;
        let last_good = rules
            .fail_safe()
            .then(|| fresh.usable(&redis_key, now, rules.max_stale))
            .flatten();
        if let Some(good) = &last_good {
            if good.retry_at_ms > now {
                return Ok(self.served_fail_safe(good.value.clone(), good.created_at_ms, now));
            }
        }
        let mut loader = Some(loader);
        if let (Some(soft), Some(good)) = (rules.soft_timeout, &last_good) {
            // A fail-safe value exists: run the load off this caller and wait for it up
            // to `soft_timeout`; past that, answer with the value and let the load finish.
            if let Some(claim) = fresh.claim(&redis_key, read.start) {
                let (done, result) = tokio::sync::oneshot::channel();
                let job = Box::new(Detached {
                    claim,
                    redis_key: redis_key.clone(),
                    loader: loader.take().expect("loader"),
                    rules,
                    done: Some(done),
                });
                match detach(job) {
                    Ok(()) => {
                        let now = || self.inner.clock.now_ms();
                        return match within(Some(soft), result).await {
                            Some(Ok(Ok(value))) => Ok(Loaded {
                                value,
                                freshness: Freshness::Fresh,
                                age: Some(Duration::ZERO),
                            }),
                            Some(Ok(Err(err))) if err.is_not_found() => Err(err),
                            Some(_) => Ok(self.served_fail_safe(
                                good.value.clone(),
                                good.created_at_ms,
                                now(),
                            )),
                            None => {
                                self.inner.metrics.add(Counter::LoaderTimeout, 1);
                                Ok(self.served_fail_safe(
                                    good.value.clone(),
                                    good.created_at_ms,
                                    now(),
                                ))
                            }
                        };
                    }
                    Err(job) => loader = Some(job.loader),
                }
            }
        }
        let loader = loader.expect("loader");
        let loaded = self
            .load_and_store_fresh(redis_key.clone(), loader, rules, read.budget)
            .await;
        let now = self.inner.clock.now_ms();
        match loaded {
            Ok(value) => {
                if rules.fail_safe() {
                    let known_fresh = fresh_until(now, rules.fresh_for).max(now);
                    fresh.keep(&redis_key, &value, now, known_fresh);
                }
                Ok(Loaded {
                    value,
                    freshness: Freshness::Fresh,
                    age: Some(Duration::ZERO),
                })
            }
            // The key has no value now: its last value is not served for it.
            Err(err) if err.is_not_found() => {
                fresh.forget(&redis_key);
                Err(err)
            }
            Err(err) => match last_good {
                Some(good) => {
                    fresh.back_off(&redis_key, now, rules.backoff);
                    Ok(self.served_fail_safe(good.value, good.created_at_ms, now))
                }
                None => Err(err),
            },
        }
    }

    fn fail_safe(&self, redis_key: &str, now: u64, rules: &Rules) -> Option<Loaded> {
        if !rules.fail_safe() {
            return None;
        }
        let good = self.inner.fresh.usable(redis_key, now, rules.max_stale)?;
        Some(self.served_fail_safe(good.value, good.created_at_ms, now))
    }

    fn served_fail_safe(&self, value: Value, created_at_ms: u64, now: u64) -> Loaded {
        self.inner.metrics.add(Counter::FailSafeServed, 1);
        Loaded {
            value,
            freshness: Freshness::FailSafe,
            age: Some(Duration::from_millis(now.saturating_sub(created_at_ms))),
        }
    }

    /// Runs one claimed refresh: load, store, remember; a failure backs the key off.
    async fn refresh<F, Fut>(&self, job: Job<F>, budget: Duration) -> Result<Value>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Value>>,
    {
        let Detached {
            claim,
            redis_key,
            loader,
            rules,
            done,
        } = *job;
        let loaded = self
            .load_and_store_fresh(redis_key.clone(), loader, rules, budget)
            .await;
        let now = self.inner.clock.now_ms();
        let fresh = &self.inner.fresh;
        match &loaded {
            Ok(value) if rules.fail_safe() => {
                fresh.keep(&redis_key, value, now, fresh_until(now, rules.fresh_for));
            }
            Ok(_) => {}
            Err(err) if err.is_not_found() => fresh.forget(&redis_key),
            Err(_) => fresh.back_off(&redis_key, now, rules.backoff),
        }
        drop(claim);
        if let Some(done) = done {
            let _ = done.send(loaded.clone());
        }
        loaded
    }

    /// Starts `job` off this caller: a task on the current tokio runtime, else a thread
    /// driven by [`crate::block_on`] (blocking stores); gives the job back where neither
    /// exists (wasm).
    fn refresh_detached<F, Fut>(&self, job: Job<F>) -> std::result::Result<(), Job<F>>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Value>> + Send + 'static,
    {
        let cache = self.clone();
        let budget = self.inner.config.command_timeout;
        #[cfg(feature = "tokio-redis")]
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = cache.refresh(job, budget).await;
            });
            return Ok(());
        }
        if cfg!(target_family = "wasm") {
            return Err(job);
        }
        // A thread that cannot start drops the job (and its claim): the stale value is
        // served, and the next stale read tries again.
        let _ = std::thread::Builder::new()
            .name("polycache-refresh".into())
            .spawn(move || {
                let _ = crate::block_on(cache.refresh(job, budget));
            });
        Ok(())
    }

    /// Bytes from the store to a value and its envelope header, counted as
    /// [`Cache::decode_counted`] counts.
    fn decode_with_meta(&self, bytes: Option<Vec<u8>>) -> Option<(codec::Meta, Value)> {
        let metrics = &self.inner.metrics;
        let Some(bytes) = bytes else {
            metrics.add(Counter::Miss, 1);
            return None;
        };
        if self.inner.config.raw {
            metrics.add(Counter::Hit, 1);
            return Some((codec::Meta::default(), Value::Bytes(bytes)));
        }
        match codec::decode_with(&bytes, &self.inner.config.decode_limits()) {
            Ok((header, value)) => {
                metrics.add(negative_or_hit(&header.meta), 1);
                Some((header.meta, value))
            }
            Err(_) => {
                metrics.add(Counter::DecodeError, 1);
                metrics.add(Counter::Miss, 1);
                None
            }
        }
    }
}

/// What a read that decoded an envelope counts: a hit, or a negative hit for a cached
/// "not found".
pub(super) fn negative_or_hit(meta: &codec::Meta) -> Counter {
    if meta.not_found {
        Counter::NegativeHit
    } else {
        Counter::Hit
    }
}

/// What a call's read leaves to the steps after it: the store budget left, and when the
/// read began (a refresh claim after a stale or missing answer needs it).
#[derive(Clone, Copy)]
struct Read {
    budget: Duration,
    start: ReadStart,
}

/// A claimed refresh, boxed: it moves through `detach` and back.
pub(super) type Job<F> = Box<Detached<F>>;

/// A claimed refresh, ready to run where it is sent.
pub(super) struct Detached<F> {
    claim: RefreshClaim,
    redis_key: String,
    loader: F,
    rules: Rules,
    /// Where a caller waiting up to `soft_timeout` hears the result.
    done: Option<tokio::sync::oneshot::Sender<Result<Value>>>,
}
