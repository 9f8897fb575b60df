//! `memory://`: an in-process, bounded store with the same TTL semantics as Redis.
//! moka does the bounding (TinyLFU) and reclaims expired entries in real time; reads also
//! check expiry against the injectable [`Clock`], so tests can move time without sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::notification::RemovalCause;
use moka::Expiry;

use super::{Entry, Store};
use crate::clock::Clock;
use crate::error::Result;

#[derive(Debug, Clone)]
struct Slot {
    bytes: Arc<[u8]>,
    ttl: Option<Duration>,
    expires_at_ms: Option<u64>,
}

struct SlotExpiry;

impl Expiry<String, Slot> for SlotExpiry {
    fn expire_after_create(&self, _: &String, slot: &Slot, _: Instant) -> Option<Duration> {
        slot.ttl
    }
    fn expire_after_update(
        &self,
        _: &String,
        slot: &Slot,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        slot.ttl
    }
}

/// The embedded default store.
#[derive(Clone)]
pub struct MemoryStore {
    entries: moka::sync::Cache<String, Slot>,
    clock: Clock,
    evictions: Arc<AtomicU64>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

impl MemoryStore {
    /// A store holding at most `capacity` entries.
    pub fn new(capacity: u64, clock: Clock) -> Self {
        let evictions = Arc::new(AtomicU64::new(0));
        let counter = evictions.clone();
        let entries = moka::sync::Cache::builder()
            .max_capacity(capacity)
            .expire_after(SlotExpiry)
            .eviction_listener(move |_, _, cause| {
                if cause == RemovalCause::Size {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
            .build();
        MemoryStore {
            entries,
            clock,
            evictions,
        }
    }

    fn live(&self, key: &str) -> Option<Slot> {
        let slot = self.entries.get(key)?;
        match slot.expires_at_ms {
            Some(at) if at <= self.clock.now_ms() => {
                self.entries.invalidate(key);
                None
            }
            _ => Some(slot),
        }
    }

    fn insert(&self, entry: Entry) {
        let expires_at_ms = entry
            .ttl
            .and_then(crate::ttl::as_px)
            .map(|px| self.clock.now_ms().saturating_add(px));
        let slot = Slot {
            bytes: entry.value.into(),
            ttl: entry.ttl.filter(|t| !t.is_zero()),
            expires_at_ms,
        };
        self.entries.insert(entry.key, slot);
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.live(key).map(|slot| slot.bytes.to_vec()))
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        Ok(keys
            .iter()
            .map(|key| self.live(key).map(|slot| slot.bytes.to_vec()))
            .collect())
    }

    async fn set(&self, entry: Entry) -> Result<()> {
        self.insert(entry);
        Ok(())
    }

    async fn set_many(&self, entries: Vec<Entry>) -> Result<()> {
        for entry in entries {
            self.insert(entry);
        }
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let existed = self.live(key).is_some();
        self.entries.invalidate(key);
        Ok(existed)
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>> {
        let now = self.clock.now_ms();
        Ok(self
            .live(key)
            .and_then(|slot| slot.expires_at_ms)
            .map(|at| Duration::from_millis(at.saturating_sub(now))))
    }

    fn evictions(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.evictions.load(Ordering::Relaxed)
    }
}
