//! The decision cache: verified tokens → identities, keyed by a SHA-256 of
//! the token (the token itself is never stored), bounded in entries, and
//! never serving an entry past its token's `exp` by the cache's
//! [`Clock`](crate::clock::Clock).

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;
use sha2::{Digest, Sha256};

use super::identity::Identity;
use crate::clock::SharedClock;

/// Longest an entry lives even if its token lives longer, so that keys
/// withdrawn by the issuer stop being honoured within this bound.
pub const MAX_ENTRY_TTL: Duration = Duration::from_secs(10 * 60);

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

struct ExpireAtTokenExp {
    clock: SharedClock,
}

impl moka::Expiry<TokenHash, CachedIdentity> for ExpireAtTokenExp {
    fn expire_after_create(
        &self,
        _key: &TokenHash,
        value: &CachedIdentity,
        _created_at: Instant,
    ) -> Option<Duration> {
        let left = value.exp.saturating_sub(self.clock.now_unix());
        Some(Duration::from_secs(u64::try_from(left).unwrap_or(0)).min(MAX_ENTRY_TTL))
    }
}

/// Bounded map of verified tokens.
#[derive(Clone)]
pub struct DecisionCache {
    inner: Cache<TokenHash, CachedIdentity>,
    clock: SharedClock,
}

impl DecisionCache {
    /// A cache of at most `max_entries`, judging `exp` by `clock`.
    pub fn new(max_entries: u64, clock: SharedClock) -> Self {
        DecisionCache {
            inner: Cache::builder()
                .max_capacity(max_entries)
                .expire_after(ExpireAtTokenExp {
                    clock: clock.clone(),
                })
                .build(),
            clock,
        }
    }

    /// The cached identity, if present and its token has not expired by
    /// the cache's clock. Moka's own timer is only the memory bound; this
    /// comparison is what keeps an expired token from being served.
    pub fn get(&self, key: &TokenHash) -> Option<Arc<Identity>> {
        let hit = self.inner.get(key)?;
        if self.clock.now_unix() >= hit.exp {
            self.inner.invalidate(key);
            return None;
        }
        Some(hit.identity)
    }

    pub fn insert(&self, key: TokenHash, value: CachedIdentity) {
        self.inner.insert(key, value);
    }

    /// Entries currently held (after pending evictions are applied).
    pub fn len(&self) -> u64 {
        self.inner.run_pending_tasks();
        self.inner.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
