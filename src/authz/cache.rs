//! The decision cache: verified tokens → identities, keyed by a SHA-256 of
//! the token (the token itself is never stored), bounded in entries, and
//! never serving an entry past its token's `exp` by the cache's
//! [`Clock`](crate::clock::Clock).
//!
//! A map per shard behind a mutex, not a general-purpose cache: an entry is
//! the key, a pointer and a deadline (~57 bytes in the map), where moka
//! spent ~390 bytes of its own bookkeeping per entry (the `rss` scenario of
//! `benches/check_load.rs`). Lookups and inserts are O(1); when the cache
//! is full, an insert sweeps the shard its key falls in and frees an eighth
//! of it: expired entries, then the entries not used since the previous
//! sweep, earliest deadline first. A sweep's cost is spread over the
//! inserts its room takes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::identity::Identity;
use crate::clock::SharedClock;

/// Longest an entry lives even if its token lives longer, so that keys
/// withdrawn by the issuer stop being honoured within this bound.
pub const MAX_ENTRY_TTL: Duration = Duration::from_secs(10 * 60);

/// Shards of a large cache: enough that concurrent Checks rarely wait on
/// one another's lock.
const SHARDS: usize = 16;

/// Below this many entries per shard the cache is one shard: a sweep
/// chooses its victims within one shard, and among a handful of entries
/// that choice would be close to arbitrary.
const MIN_SHARD_ENTRIES: u64 = 1024;

/// A cached verification result.
#[derive(Debug, Clone)]
pub struct CachedIdentity {
    pub identity: Arc<Identity>,
    /// The token's `exp`, seconds since the epoch.
    pub exp: i64,
}

/// Hash of a token, the cache key.
pub type TokenHash = [u8; 32];

pub fn token_hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

struct Entry {
    identity: Arc<Identity>,
    /// Unix seconds from which the entry is not served: the token's `exp`,
    /// or [`MAX_ENTRY_TTL`] after the insert if that comes first.
    deadline: i64,
    /// Served since the last sweep: such entries are evicted last.
    used: bool,
}

struct Shard {
    map: HashMap<TokenHash, Entry>,
}

impl Shard {
    /// Frees an eighth of the shard (at least one entry): expired entries
    /// first, then those unused since the previous sweep, earliest deadline
    /// first. Returns how many entries went.
    fn sweep(&mut self, now: i64) -> usize {
        let before = self.map.len();
        let target = (before / 8).max(1);
        self.map.retain(|_, e| e.deadline > now);
        let more = target.saturating_sub(before - self.map.len());
        if more > 0 && !self.map.is_empty() {
            let more = more.min(self.map.len());
            let mut order: Vec<(bool, i64, TokenHash)> = self
                .map
                .iter()
                .map(|(k, e)| (e.used, e.deadline, *k))
                .collect();
            order.select_nth_unstable(more - 1);
            for (_, _, key) in &order[..more] {
                self.map.remove(key);
            }
        }
        for e in self.map.values_mut() {
            e.used = false;
        }
        before - self.map.len()
    }
}

/// Bounded map of verified tokens.
#[derive(Clone)]
pub struct DecisionCache {
    shards: Arc<[Mutex<Shard>]>,
    /// Entries held plus inserts under way: never above `max_entries` for
    /// longer than one insert's sweep.
    len: Arc<AtomicUsize>,
    max_entries: usize,
    clock: SharedClock,
}

impl DecisionCache {
    /// A cache of at most `max_entries`, judging `exp` by `clock`.
    pub fn new(max_entries: u64, clock: SharedClock) -> Self {
        let shards = if max_entries >= SHARDS as u64 * MIN_SHARD_ENTRIES {
            SHARDS
        } else {
            1
        };
        DecisionCache {
            shards: (0..shards)
                .map(|_| {
                    Mutex::new(Shard {
                        map: HashMap::new(),
                    })
                })
                .collect(),
            len: Arc::new(AtomicUsize::new(0)),
            max_entries: usize::try_from(max_entries).unwrap_or(usize::MAX),
            clock,
        }
    }

    fn shard(&self, key: &TokenHash) -> MutexGuard<'_, Shard> {
        // The key is a SHA-256: its first byte spreads tokens evenly.
        let shard = &self.shards[usize::from(key[0]) % self.shards.len()];
        // A panic while holding the lock leaves a consistent map: every
        // mutation is a single map operation.
        shard.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached identity, if present and its token has not expired by
    /// the cache's clock.
    pub fn get(&self, key: &TokenHash) -> Option<Arc<Identity>> {
        let now = self.clock.now_unix();
        let mut shard = self.shard(key);
        let entry = shard.map.get_mut(key)?;
        if now >= entry.deadline {
            shard.map.remove(key);
            self.len.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        entry.used = true;
        Some(Arc::clone(&entry.identity))
    }

    pub fn insert(&self, key: TokenHash, value: CachedIdentity) {
        let now = self.clock.now_unix();
        let ttl = i64::try_from(MAX_ENTRY_TTL.as_secs()).unwrap_or(i64::MAX);
        let deadline = value.exp.min(now.saturating_add(ttl));
        if deadline <= now {
            return;
        }
        let mut shard = self.shard(&key);
        if let Some(entry) = shard.map.get_mut(&key) {
            entry.identity = value.identity;
            entry.deadline = deadline;
            return;
        }
        // A slot is reserved before the entry exists, so the map never
        // holds more than the count says; a full cache frees slots in the
        // shard the key falls in (shards fill evenly: keys are SHA-256).
        if self.len.fetch_add(1, Ordering::Relaxed) >= self.max_entries {
            let freed = shard.sweep(now);
            if freed == 0 {
                // Everything is in other shards: skip caching this once.
                self.len.fetch_sub(1, Ordering::Relaxed);
                return;
            }
            self.len.fetch_sub(freed, Ordering::Relaxed);
        }
        shard.map.insert(
            key,
            Entry {
                identity: value.identity,
                deadline,
                used: false,
            },
        );
    }

    /// Entries currently held, expired ones not yet swept included.
    pub fn len(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).map.len() as u64)
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock as _, ManualClock};

    fn identity(user: &str) -> Arc<Identity> {
        Arc::new(Identity {
            user: user.into(),
            uid: None,
            groups: Default::default(),
            extra: Vec::new(),
            issuer: "https://issuer.example".into(),
        })
    }

    fn entry(user: &str, exp: i64) -> CachedIdentity {
        CachedIdentity {
            identity: identity(user),
            exp,
        }
    }

    #[test]
    fn shards_only_large_caches_and_never_exceeds_the_bound() {
        let clock = ManualClock::at(1_000_000);
        for (max, shards) in [(1, 1), (1000, 1), (16_383, 1), (16_384, 16), (100_000, 16)] {
            let cache = DecisionCache::new(max, clock.clone());
            assert_eq!(cache.shards.len(), shards, "{max}");
            for i in 0..max * 3 {
                cache.insert(token_hash(&i.to_string()), entry("u", 1_000_000 + 3600));
            }
            assert!(cache.len() <= max, "{max}: {}", cache.len());
            assert!(
                cache.len() >= (max * 7 / 8).saturating_sub(16),
                "{max}: {}",
                cache.len()
            );
        }
    }

    #[test]
    fn entries_live_until_exp_or_the_ttl_cap_whichever_is_first() {
        let clock = ManualClock::at(1_000_000);
        let now = clock.now_unix();
        let cache = DecisionCache::new(10, clock.clone());
        let ttl = MAX_ENTRY_TTL.as_secs() as i64;
        cache.insert(token_hash("short"), entry("short", now + 30));
        cache.insert(token_hash("long"), entry("long", now + 24 * 3600));
        cache.insert(token_hash("expired"), entry("expired", now));
        assert_eq!(cache.len(), 2, "an expired token is not stored");

        clock.advance(29);
        assert!(cache.get(&token_hash("short")).is_some());
        clock.advance(1);
        assert!(cache.get(&token_hash("short")).is_none());
        assert_eq!(cache.len(), 1, "an expired entry is removed when met");

        clock.advance(ttl - 31);
        assert!(cache.get(&token_hash("long")).is_some());
        clock.advance(1);
        assert!(
            cache.get(&token_hash("long")).is_none(),
            "capped at the TTL"
        );
    }

    #[test]
    fn a_full_cache_evicts_expired_then_unused_entries_first() {
        let clock = ManualClock::at(1_000_000);
        let now = clock.now_unix();
        let cache = DecisionCache::new(8, clock.clone());
        // 8 entries: one about to expire, one in use, six idle.
        cache.insert(token_hash("soon"), entry("soon", now + 5));
        cache.insert(token_hash("busy"), entry("busy", now + 100));
        for i in 0..6 {
            cache.insert(
                token_hash(&format!("idle-{i}")),
                entry("idle", now + 200 + i),
            );
        }
        assert!(cache.get(&token_hash("busy")).is_some());
        clock.advance(5);

        // Full: the expired entry goes, which is room enough.
        cache.insert(token_hash("new-1"), entry("new", now + 300));
        assert_eq!(cache.len(), 8);
        assert!(cache.get(&token_hash("soon")).is_none());

        // Full again, nothing expired: the sweep keeps 7 of 8 and drops the
        // unused entry nearest its deadline (idle-0), not the one used
        // since the last sweep even though its deadline is earlier.
        assert!(cache.get(&token_hash("busy")).is_some());
        cache.insert(token_hash("new-2"), entry("new", now + 300));
        assert_eq!(cache.len(), 8);
        assert!(cache.get(&token_hash("idle-0")).is_none());
        for kept in ["busy", "idle-1", "idle-5", "new-1", "new-2"] {
            assert!(cache.get(&token_hash(kept)).is_some(), "{kept}");
        }
    }

    #[test]
    fn replacing_a_key_in_a_full_cache_evicts_nothing() {
        let clock = ManualClock::at(1_000_000);
        let now = clock.now_unix();
        let cache = DecisionCache::new(2, clock.clone());
        cache.insert(token_hash("a"), entry("a", now + 60));
        cache.insert(token_hash("b"), entry("b", now + 60));
        cache.insert(token_hash("a"), entry("a2", now + 60));
        assert_eq!(cache.len(), 2);
        assert_eq!(
            cache.get(&token_hash("a")).map(|i| i.user.clone()),
            Some("a2".into())
        );
        assert!(cache.get(&token_hash("b")).is_some());
    }
}
