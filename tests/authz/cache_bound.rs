//! Memory stays bounded under a flood of distinct valid tokens, and no
//! entry outlives its token.

use crate::support::*;
use kube_oidc_authz::authz::cache::{CachedIdentity, DecisionCache, token_hash};
use kube_oidc_authz::authz::identity::Identity;
use kube_oidc_authz::authz::verify::SigningAlg;
use kube_oidc_authz::clock::{Clock as _, ManualClock};
use serde_json::json;
use std::sync::Arc;

#[tokio::test]
async fn ten_thousand_distinct_tokens_do_not_grow_the_cache_past_its_bound() {
    let issuer = Issuer::start(SigningAlg::ES256).await;
    let mut flags = issuer.product_flags();
    flags.extend(
        [
            "--oidc-signing-algs",
            "ES256",
            "--cache-max-entries",
            "1000",
        ]
        .map(String::from),
    );
    let authz = Authz::start(&flags).await;
    let tokens: Vec<String> = (0..10_000)
        .map(|i| issuer.token(json!({"jti": format!("t-{i}")})))
        .collect();
    let mut tasks = Vec::new();
    for chunk in tokens.chunks(500) {
        let chunk = chunk.to_vec();
        let client = authz.client.clone();
        tasks.push(tokio::spawn(async move {
            for t in chunk {
                let auth = format!("Bearer {t}");
                let r = client
                    .clone()
                    .check(check_request(&[("authorization", &auth)], "127.0.0.1"))
                    .await
                    .unwrap()
                    .into_inner();
                assert_eq!(r.status.unwrap().code, 0);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let metrics = authz.metrics().await;
    assert!(
        metrics.contains("kube_oidc_authz_cache_lookups_total{result=\"miss\"} 10000"),
        "{metrics}"
    );
}

#[test]
fn cache_holds_at_most_max_entries_and_never_past_exp() {
    let clock = ManualClock::at(kube_oidc_authz::authz::now_unix());
    let cache = DecisionCache::new(1000, clock.clone());
    let now = clock.now_unix();
    let id = Arc::new(Identity {
        user: "u".into(),
        uid: None,
        groups: Default::default(),
        extra: Default::default(),
        issuer: "i".into(),
    });
    for i in 0..10_000 {
        cache.insert(
            token_hash(&format!("token-{i}")),
            CachedIdentity {
                identity: Arc::clone(&id),
                exp: now + 3600,
            },
        );
    }
    assert!(cache.len() <= 1000, "{} entries", cache.len());

    let expired = token_hash("expired");
    cache.insert(
        expired,
        CachedIdentity {
            identity: Arc::clone(&id),
            exp: now - 1,
        },
    );
    assert!(cache.get(&expired).is_none());
    let live = token_hash("live");
    cache.insert(
        live,
        CachedIdentity {
            identity: id,
            exp: now + 60,
        },
    );
    assert!(cache.get(&live).is_some());
    clock.advance(59);
    assert!(cache.get(&live).is_some(), "served until exp");
    clock.advance(1);
    assert!(cache.get(&live).is_none(), "not served at exp");
}
