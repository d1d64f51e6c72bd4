//! Resident memory of the decision cache itself (no Criterion harness):
//! 100,000 entries in `DecisionCache`, first all pointing at one shared
//! identity (the cache's own cost per entry: key, deadline, map slot), then
//! each with an identity of its own shaped like a mapped token's (user, two
//! groups, the credential-id extra, the issuer), the group list interned and
//! the issuer shared as `map_claims` does.
//!
//! Run: `cargo bench --bench cache_memory`. Each measurement runs in a
//! child process of its own, so that memory freed by one is not reused by
//! the next.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, OnceLock};

use kube_oidc_authz::authz::cache::{CachedIdentity, DecisionCache, token_hash};
use kube_oidc_authz::authz::identity::{Groups, Identity};
use kube_oidc_authz::clock::{SystemClock, now_unix};

const ENTRIES: usize = 100_000;

static ISSUER: OnceLock<Arc<str>> = OnceLock::new();

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn identity(i: usize) -> Identity {
    Identity {
        user: format!("banyan:user-{i}@example.com"),
        uid: None,
        // As `map_claims` builds them: the group list interned, the
        // issuer the configured issuer's shared string.
        groups: Groups::interned(vec![
            "banyan:any-employee-personal-device".into(),
            "banyan:developers".into(),
        ]),
        extra: vec![(
            "authentication.kubernetes.io/credential-id".into(),
            vec![format!("JTI={i:016x}")],
        )],
        issuer: Arc::clone(ISSUER.get_or_init(|| "https://idp.example.com".into())),
    }
}

fn measure(scenario: &str) {
    // Made before the first reading and kept to the end, so that neither
    // their memory nor its release shows in the difference.
    let keys: Vec<_> = (0..ENTRIES)
        .map(|i| token_hash(&format!("token-{i}")))
        .collect();
    let shared = Arc::new(identity(0));
    let exp = now_unix() + 3600;
    let before = rss_kib();
    let per_entry = |after: u64| (after - before) * 1024 / ENTRIES as u64;
    match scenario {
        "cache" => {
            let cache = DecisionCache::new(ENTRIES as u64, SystemClock::shared());
            for key in &keys {
                let identity = Arc::clone(&shared);
                cache.insert(*key, CachedIdentity { identity, exp });
            }
            assert_eq!(cache.len(), ENTRIES as u64);
            println!(
                "cache alone (one shared identity): {} B per entry",
                per_entry(rss_kib())
            );
        }
        "identities" => {
            let identities: Vec<_> = (0..ENTRIES).map(|i| Arc::new(identity(i))).collect();
            println!("identities alone: {} B each", per_entry(rss_kib()));
            drop(identities);
        }
        _ => {
            let cache = DecisionCache::new(ENTRIES as u64, SystemClock::shared());
            for (i, key) in keys.iter().enumerate() {
                let identity = Arc::new(identity(i));
                cache.insert(*key, CachedIdentity { identity, exp });
            }
            assert_eq!(cache.len(), ENTRIES as u64);
            println!(
                "cache with an identity per entry: {} B per entry",
                per_entry(rss_kib())
            );
        }
    }
}

fn main() {
    if let Ok(scenario) = std::env::var("CACHE_MEMORY_SCENARIO") {
        measure(&scenario);
        return;
    }
    let me = std::env::current_exe().unwrap();
    for scenario in ["cache", "identities", "both"] {
        let status = std::process::Command::new(&me)
            .env("CACHE_MEMORY_SCENARIO", scenario)
            .status()
            .unwrap();
        assert!(status.success());
    }
}
