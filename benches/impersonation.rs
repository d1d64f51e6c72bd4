//! Criterion benchmarks of a Check with end-user impersonation
//! (`--allow-impersonation`), in-process, against the stand-in apiserver
//! over HTTPS on loopback:
//! - `check/impersonation/cold_review`: the caller's token is cached, the
//!   requested user is new every time, so the Check waits for one
//!   SubjectAccessReview (HTTPS round trip, the stand-in's RBAC);
//! - `check/impersonation/cached_review`: the same request again, answered
//!   from the review cache.
//!
//! Run: `cargo bench --bench impersonation`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use kube_oidc_authz::authz::authorizer::Authorizer;
use kube_oidc_authz::authz::metrics::AuthzMetrics;
use kube_oidc_authz::authz::verify::SigningAlg;
use kube_oidc_dev::apiserver::rbac::Rule;
use kube_oidc_dev::apiserver::{DEFAULT_SERVICE_ACCOUNT, StandIn, StandInConfig};
use serde_json::json;

fn request(token: &str, user: &str) -> envoy_types::pb::envoy::service::auth::v3::CheckRequest {
    let bearer = format!("Bearer {token}");
    support::check_request_raw(
        &[
            ("authorization", &bearer),
            ("impersonate-user", user),
            ("impersonate-group", "banyan:developers"),
        ],
        "203.0.113.7",
    )
}

fn bench_impersonation(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    // Developers may impersonate any user and their own group.
    let mut rules = Rule::guide_example();
    let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    rules.push(Rule {
        groups: strings(&["banyan:developers"]),
        verbs: strings(&["impersonate"]),
        api_groups: strings(&[""]),
        resources: strings(&["users", "groups"]),
        ..Rule::default()
    });
    let standin = StandIn::new(StandInConfig {
        token: support::SA_TOKEN.to_owned(),
        service_account: DEFAULT_SERVICE_ACCOUNT.to_owned(),
        rules,
        watch_event_interval: Duration::from_secs(1),
        service_account_tokens: Vec::new(),
        proxy_userextras: None,
    });
    let api = rt.block_on(support::serve_https(standin.router()));
    let issuer = rt.block_on(support::Issuer::start(SigningAlg::RS256));
    let mut flags = issuer.product_flags();
    flags.extend([
        "--allow-impersonation".to_owned(),
        format!("--apiserver-url={}", api.url),
        format!("--apiserver-ca-file={}", api.ca_file.display()),
    ]);
    let (cfg, upstream, _dir) = support::authz_config(&flags);
    let mut registry = prometheus_client::registry::Registry::default();
    let authorizer =
        Arc::new(Authorizer::new(&cfg, upstream, AuthzMetrics::register(&mut registry)).unwrap());
    let token = issuer.token(json!({"roles": ["developers"]}));
    // The caller's token is verified once here (keys fetched, identity
    // cached): only impersonation is measured below.
    let warm = request(&token, "banyan:bob@example.com");
    assert_eq!(
        rt.block_on(authorizer.check(&warm)).status.map(|s| s.code),
        Some(0)
    );

    let allowed = |resp: &envoy_types::pb::envoy::service::auth::v3::CheckResponse| {
        assert_eq!(resp.status.as_ref().map(|s| s.code), Some(0), "{resp:?}");
    };
    let mut group = c.benchmark_group("check/impersonation");
    let n = AtomicU64::new(0);
    group.bench_function("cold_review", |b| {
        b.iter(|| {
            // A new user each time: one review; the group's answer is cached.
            let user = format!(
                "banyan:user-{}@example.com",
                n.fetch_add(1, Ordering::Relaxed)
            );
            allowed(&rt.block_on(authorizer.check(&request(&token, &user))));
        })
    });
    let req = warm;
    group.bench_function("cached_review", |b| {
        b.iter(|| allowed(&rt.block_on(authorizer.check(&req))))
    });
    group.finish();
}

criterion_group!(benches, bench_impersonation);
criterion_main!(benches);
