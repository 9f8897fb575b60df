//! The stampede lock shared by every process and language (docs/FORMAT.md §6).
//!
//! On a miss, one caller in the whole fleet loads: it holds `<redis key>:lock` (a random
//! token, a lease) while its loader runs, then writes the value through a fenced script
//! that writes only while the lock still holds its token and releases it in the same step.
//! The others poll with a short backoff until the value appears, the lock frees up (they
//! take over) or `lock_timeout` passes (they load themselves). Single-flight already makes
//! one caller per process take part, so a process sends one poll per key at a time.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::key::KeySchema;
use crate::store::{Entry, Io, Store};

/// A Lua script of the lock protocol: its exact text and the SHA-1 that `EVALSHA` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Script {
    /// The name FORMAT.md and `tests/vectors/lock.json` give it.
    pub name: &'static str,
    /// The script, byte for byte as every runtime sends it.
    pub text: &'static str,
    /// Lowercase hex SHA-1 of `text`.
    pub sha1: &'static str,
}

/// `KEYS[1]` = lock key, `ARGV[1]` = token: deletes the lock only if it still holds the
/// token; 1 if it did.
pub const RELEASE: Script = Script {
    name: "release",
    text: "if redis.call('GET', KEYS[1]) == ARGV[1] then\n  redis.call('DEL', KEYS[1])\n  return 1\nend\nreturn 0\n",
    sha1: "7eeb9eb3b72e6836db4af01eacca253a701fa6ed",
};

/// `KEYS[1]` = value key, `KEYS[2]` = lock key, `ARGV[1]` = token, `ARGV[2]` = the value's
/// bytes, `ARGV[3]` = its TTL in ms (`0`: none): writes the value and releases the lock
/// only if the lock still holds the token (the fence); 1 if it wrote, 0 if refused.
pub const WRITE: Script = Script {
    name: "write",
    text: "if redis.call('GET', KEYS[2]) ~= ARGV[1] then\n  return 0\nend\nif ARGV[3] == '0' then\n  redis.call('SET', KEYS[1], ARGV[2])\nelse\n  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])\nend\nredis.call('DEL', KEYS[2])\nreturn 1\n",
    sha1: "06863bdaad1fe4c096bb5868d609187328221d8f",
};

/// The scripts, in FORMAT.md's order.
pub const SCRIPTS: [Script; 2] = [RELEASE, WRITE];

/// First pause of a waiter; each next one doubles, up to [`MAX_POLL`].
pub const FIRST_POLL: Duration = Duration::from_millis(1);
/// Longest pause between two polls of a waiter.
pub const MAX_POLL: Duration = Duration::from_millis(32);

/// The pause before poll number `attempt` (from 0): 1, 2, 4, … ms, at most [`MAX_POLL`].
pub fn poll_delay(attempt: u32) -> Duration {
    FIRST_POLL
        .saturating_mul(1u32 << attempt.min(16))
        .min(MAX_POLL)
}

/// A fresh lock token: 32 lowercase hex digits (128 bits). Random bits mixed with the
/// process id and the time, so a forked child (which inherits its parent's generator
/// state) does not repeat its parent's tokens.
pub fn token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mixed = fastrand::u128(..) ^ (u128::from(crate::store::process_id()) << 96) ^ nanos;
    format!("{mixed:032x}")
}

/// Whether `text` has the token format: exactly 32 lowercase hex digits.
pub fn is_token(text: &str) -> bool {
    text.len() == 32
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A lock this caller holds.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub lock_key: String,
    pub token: String,
}

/// What waiting for the lock of a key ended in.
#[derive(Debug)]
pub(crate) enum Turn<T> {
    /// This caller holds the lock and loads. `after_wait`: another holder left without
    /// writing (its loader failed or it died and its lease ran out).
    Load { held: Held, after_wait: bool },
    /// Another caller's value appeared (as `accept` took it). `waited`: it was not there
    /// at the first look.
    Found { value: T, waited: bool },
    /// `lock_timeout` passed: load without the lock.
    TimedOut,
    /// The store failed: load without the lock (the cache fails open).
    Unlocked,
}

/// The lock options of one cache.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StampedeLock {
    pub lease: Duration,
    pub timeout: Duration,
    pub io: Io,
}

impl StampedeLock {
    /// Takes the lock of `redis_key`, or waits for the value another holder writes, for at
    /// most `lock_timeout` and at most `limit` (what the caller's own deadline leaves).
    /// `accept` turns stored bytes into an answer, or refuses them (a stale value being
    /// refreshed is not the answer: the refreshed one is).
    pub async fn turn<T>(
        &self,
        store: &dyn Store,
        redis_key: &str,
        limit: Option<Duration>,
        accept: impl Fn(Vec<u8>) -> Option<T>,
    ) -> Turn<T> {
        let held = Held {
            lock_key: KeySchema::lock_key(redis_key),
            token: token(),
        };
        let wait = limit.map_or(self.timeout, |limit| limit.min(self.timeout));
        let deadline = Instant::now() + wait;
        let mut attempt = 0;
        loop {
            let acquired = store
                .set_if_absent(Entry {
                    key: held.lock_key.clone(),
                    value: held.token.clone().into_bytes(),
                    ttl: Some(self.lease),
                })
                .await;
            match acquired {
                Ok(true) => {
                    // A holder that wrote and released between our read and our SET left
                    // its value: look once more before loading it again.
                    return match store.get(redis_key).await.map(|b| b.and_then(&accept)) {
                        Ok(Some(value)) => {
                            let _ = self.release(store, &held).await;
                            Turn::Found {
                                value,
                                waited: attempt > 0,
                            }
                        }
                        Ok(None) => Turn::Load {
                            held,
                            after_wait: attempt > 0,
                        },
                        Err(_) => {
                            // Loading unlocked: give back the lock we took, so waiters in
                            // other processes do not sit out its lease.
                            let _ = self.release(store, &held).await;
                            Turn::Unlocked
                        }
                    };
                }
                Ok(false) => {}
                Err(_) => return Turn::Unlocked,
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Turn::TimedOut;
            }
            self.pause(poll_delay(attempt).min(left)).await;
            attempt += 1;
            match store.get(redis_key).await.map(|b| b.and_then(&accept)) {
                Ok(Some(value)) => {
                    return Turn::Found {
                        value,
                        waited: true,
                    }
                }
                Ok(None) => {}
                Err(_) => return Turn::Unlocked,
            }
            // The read may have used up the wait: no new round trip past the deadline.
            if Instant::now() >= deadline {
                return Turn::TimedOut;
            }
        }
    }

    /// Writes `entry` only while `held` still holds its lock, and releases it; whether the
    /// fence let the write through.
    pub async fn write(&self, store: &dyn Store, held: &Held, entry: Entry) -> Result<bool> {
        let px = entry
            .ttl
            .and_then(crate::ttl::as_px)
            .map_or_else(|| "0".to_owned(), |ms| ms.to_string());
        let keys = [entry.key, held.lock_key.clone()];
        let args = [
            held.token.clone().into_bytes(),
            entry.value,
            px.into_bytes(),
        ];
        Ok(store.eval(&WRITE, &keys, &args).await? == 1)
    }

    /// Gives the lock back (after a failed load), if it still holds `held`'s token.
    pub async fn release(&self, store: &dyn Store, held: &Held) -> Result<bool> {
        let keys = [held.lock_key.clone()];
        let args = [held.token.clone().into_bytes()];
        Ok(store.eval(&RELEASE, &keys, &args).await? == 1)
    }

    async fn pause(&self, delay: Duration) {
        match self.io {
            // A blocking cache runs on its caller's thread, which may have no runtime.
            Io::Blocking => std::thread::sleep(delay),
            #[cfg(feature = "tokio-redis")]
            Io::Async => tokio::time::sleep(delay).await,
            #[cfg(not(feature = "tokio-redis"))]
            Io::Async => std::thread::sleep(delay),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_format_and_differ() {
        let (a, b) = (token(), token());
        assert!(is_token(&a) && is_token(&b), "{a} {b}");
        assert_ne!(a, b);
        assert!(!is_token("ABCDEF0123456789abcdef0123456789"));
        assert!(!is_token("abc"));
    }

    #[test]
    fn polls_back_off_to_a_cap() {
        let delays: Vec<u128> = (0..8).map(|i| poll_delay(i).as_millis()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 32, 32]);
        assert_eq!(poll_delay(u32::MAX), MAX_POLL);
    }
}
