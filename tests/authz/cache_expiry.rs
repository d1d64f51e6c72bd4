//! A verified identity is served from the cache until its token's `exp`
//! and not a second longer. The clock is injected: no sleeping until a
//! token expires, no pre-dated tokens.

use crate::support::*;
use kube_oidc_authz::authz::authorizer::Authorizer;
use kube_oidc_authz::authz::decision::Allowed;
use kube_oidc_authz::authz::error::DenyReason;
use kube_oidc_authz::authz::metrics::AuthzMetrics;
use kube_oidc_authz::authz::verify::SigningAlg;
use kube_oidc_authz::clock::{Clock as _, ManualClock};
use prometheus_client::registry::Registry;
use serde_json::json;

#[tokio::test]
async fn a_cached_identity_is_not_served_once_the_clock_reaches_its_exp() {
    let issuer = Issuer::start(SigningAlg::RS256).await;
    let (config, upstream, _dir) = authz_config(&issuer.product_flags());
    let clock = ManualClock::at(kube_oidc_authz::authz::now_unix());
    let mut registry = Registry::default();
    let metrics = AuthzMetrics::register(&mut registry);
    let authorizer = Authorizer::with_clock(&config, upstream, metrics, clock.clone()).unwrap();
    let exp = clock.now_unix() + 600;
    let auth = format!("Bearer {}", issuer.token(json!({"exp": exp})));
    let req = check_request(&[("authorization", &auth)], "203.0.113.7");
    let cached = |outcome: &Result<Allowed, DenyReason>| match outcome {
        Ok(Allowed::Impersonate { cached, .. }) => Ok(*cached),
        Ok(other) => panic!("not an impersonation: {other:?}"),
        Err(reason) => Err(*reason),
    };

    // Verified once (the issuer's keys load on demand), then cached.
    let first = authorizer.decide(&req).await;
    assert_eq!(cached(&first.outcome), Ok(false));
    clock.set(exp - 1);
    let last_second = authorizer.decide(&req).await;
    assert_eq!(cached(&last_second.outcome), Ok(true));

    // At exp the cache no longer answers, and verification refuses.
    clock.set(exp);
    let at_exp = authorizer.decide(&req).await;
    assert_eq!(cached(&at_exp.outcome), Err(DenyReason::Expired));
    let resp = authorizer.respond(&at_exp);
    assert_eq!((denied(&resp).0, reason(&resp).as_str()), (401, "expired"));

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for want in [
        "kube_oidc_authz_cache_lookups_total{result=\"hit\"} 1",
        "kube_oidc_authz_cache_lookups_total{result=\"miss\"} 2",
    ] {
        assert!(text.contains(want), "{want} in\n{text}");
    }
}
