//! The cache's side of the stampede lock ([`crate::lock`]): whether a load takes it, what a
//! waiter returns, and the fenced write of the holder.

use std::time::Duration;

use super::Cache;
use crate::codec::{self, Value};
use crate::lock::{Held, Turn};
use crate::metrics::Counter;
use crate::patterns::fresh::is_stale;
use crate::store::Entry;

/// What a load does after asking for the lock.
pub(super) enum Step {
    /// Another caller loaded it: its value, or its "not found".
    Found(crate::Result<Value>),
    /// Load; write through the fence with the lock when there is one.
    Load(HeldLock),
}

/// The lock a load holds, if any. A load abandoned before it wrote or released (its
/// future dropped: a cancelled task, a caller's timeout) releases the lock on drop, so
/// waiters take over at once instead of after the lease.
pub(super) struct HeldLock {
    cache: Cache,
    held: Option<Held>,
}

impl HeldLock {
    fn none(cache: &Cache) -> HeldLock {
        HeldLock {
            cache: cache.clone(),
            held: None,
        }
    }

    /// The lock, now settled by the caller (written through or released).
    fn settle(mut self) -> Option<Held> {
        self.held.take()
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        let (Some(held), Some(lock)) = (self.held.take(), self.cache.inner.lock) else {
            return;
        };
        let store = self.cache.inner.store.clone();
        match lock.io {
            // Blocking stores complete on the first poll, on this thread.
            crate::store::Io::Blocking => {
                let _ = crate::block_on(lock.release(store.as_ref(), &held));
            }
            #[cfg(feature = "tokio-redis")]
            crate::store::Io::Async => {
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move {
                        let _ = lock.release(store.as_ref(), &held).await;
                    });
                }
            }
            #[cfg(not(feature = "tokio-redis"))]
            crate::store::Io::Async => {}
        }
    }
}

impl Cache {
    /// Asks for the lock of `redis_key` before a load, waiting at most `limit` (the caller's
    /// `hard_timeout`). Without the option, on `memory://`, or when the store is already
    /// failing (`budget` zero), the caller just loads.
    pub(super) async fn lock_step(
        &self,
        redis_key: &str,
        budget: Duration,
        limit: Option<Duration>,
    ) -> Step {
        let Some(lock) = self.inner.lock.filter(|_| !budget.is_zero()) else {
            return Step::Load(HeldLock::none(self));
        };
        if self.check_open().is_err() {
            return Step::Load(HeldLock::none(self));
        }
        let metrics = &self.inner.metrics;
        let accept = |bytes: Vec<u8>| self.answer(bytes);
        match lock
            .turn(self.inner.store.as_ref(), redis_key, limit, accept)
            .await
        {
            Turn::Load { held, after_wait } => {
                metrics.add(Counter::LockAcquired, 1);
                if after_wait {
                    metrics.add(Counter::LockTakenOver, 1);
                }
                Step::Load(HeldLock {
                    cache: self.clone(),
                    held: Some(held),
                })
            }
            Turn::Found { value, waited } => {
                if waited {
                    metrics.add(Counter::LockWaited, 1);
                }
                Step::Found(value)
            }
            Turn::TimedOut => {
                metrics.add(Counter::LockTimedOut, 1);
                Step::Load(HeldLock::none(self))
            }
            Turn::Unlocked => {
                metrics.add(Counter::StoreError, 1);
                Step::Load(HeldLock::none(self))
            }
        }
    }

    /// Stored bytes a waiter may return: a decodable value that is not stale (a stale one is
    /// what the holder is refreshing), or the holder's cached "not found". Not counted: the
    /// caller's own read already was.
    fn answer(&self, bytes: Vec<u8>) -> Option<crate::Result<Value>> {
        if self.inner.config.raw {
            return Some(Ok(Value::Bytes(bytes)));
        }
        let (header, value) =
            codec::decode_with(&bytes, &self.inner.config.decode_limits()).ok()?;
        if header.meta.not_found {
            return Some(Err(crate::Error::not_found()));
        }
        let now = self.inner.clock.now_ms();
        (!is_stale(now, header.meta.fresh_until_ms)).then_some(Ok(value))
    }

    /// Writes a loaded value: through the fence when this caller holds the lock (a write
    /// the fence refuses leaves the newer value in place), else a plain write within
    /// `budget`. Whether it was written.
    pub(super) async fn write_loaded(
        &self,
        lock: HeldLock,
        entry: Entry,
        budget: Duration,
    ) -> bool {
        // The guard stays armed until the write's reply: a load dropped meanwhile still
        // releases (a no-op once the script deleted the lock).
        let written = self.write_with(lock.held.as_ref(), entry, budget).await;
        drop(lock.settle());
        written
    }

    async fn write_with(&self, held: Option<&Held>, entry: Entry, budget: Duration) -> bool {
        let Some(held) = held else {
            return !budget.is_zero()
                && self
                    .timed(self.inner.store.set_within(entry, budget))
                    .await
                    .is_ok();
        };
        let lock = self
            .inner
            .lock
            .expect("a held lock comes from the lock option");
        match self
            .timed(lock.write(self.inner.store.as_ref(), held, entry))
            .await
        {
            Ok(true) => true,
            Ok(false) => {
                self.inner.metrics.add(Counter::LockWriteRefused, 1);
                false
            }
            Err(_) => false,
        }
    }

    /// Gives the lock back after a failed load, so waiters take over at once instead of
    /// after the lease.
    pub(super) async fn release_lock(&self, lock: HeldLock) {
        if let (Some(held), Some(stampede)) = (lock.held.as_ref(), self.inner.lock) {
            let _ = self
                .timed(stampede.release(self.inner.store.as_ref(), held))
                .await;
        }
        drop(lock.settle());
    }
}
