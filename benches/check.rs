//! Criterion benchmarks of the decision path, in-process, no network:
//! - `check/cached`: a full `Authorizer::check` for a token already verified;
//! - `verify/cold/<alg>`: parse + signature + registered claims + mapping.
//!
//! Run: `cargo bench --bench check`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use clap::Parser;
use criterion::{Criterion, criterion_group, criterion_main};
use kube_oidc_authz::authz::authorizer::Authorizer;
use kube_oidc_authz::authz::cache::{CachedIdentity, token_hash};
use kube_oidc_authz::authz::config::Config;
use kube_oidc_authz::authz::identity::{MappingOptions, map_claims};
use kube_oidc_authz::authz::metrics::AuthzMetrics;
use kube_oidc_authz::authz::upstream_token::UpstreamToken;
use kube_oidc_authz::authz::verify::{self, SigningAlg, VerifyingKey};
use kube_oidc_authz::cli::{Cli, Command};
use kube_oidc_dev::issuer::DevIssuer;
use serde_json::Map;

const URL: &str = "https://idp.example.com";

fn config(dir: &std::path::Path) -> Config {
    let token = dir.join("token");
    std::fs::write(&token, "sa-token").unwrap();
    let argv = [
        "kube-oidc-authz",
        "authz",
        "--oidc-issuer-url",
        URL,
        "--oidc-client-id",
        "kube-oidc-authz",
        "--oidc-username-claim",
        "email",
        "--oidc-username-prefix",
        "banyan:",
        "--oidc-groups-claim",
        "roles",
        "--oidc-groups-prefix",
        "banyan:",
        "--upstream-token-file",
        token.to_str().unwrap(),
    ];
    let Command::Authz(args) = Cli::try_parse_from(argv).unwrap().command else {
        panic!()
    };
    Config::from_args(&args).unwrap()
}

fn bench_cached(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let upstream = UpstreamToken::load(&cfg.upstream_token_file).unwrap();
    let mut registry = prometheus_client::registry::Registry::default();
    let authorizer =
        Authorizer::new(&cfg, upstream, AuthzMetrics::register(&mut registry)).unwrap();
    let issuer = DevIssuer::new(URL, "kube-oidc-authz", SigningAlg::RS256).unwrap();
    let token = issuer.mint(&Map::new()).unwrap();
    // Verify once for real, then seed the cache exactly as a first request would.
    let parsed = verify::parse(&token).unwrap();
    let identity = map_claims(
        &cfg.issuers[0],
        &parsed.claims,
        MappingOptions {
            credential_id_extra: true,
            refuse_system_identities: true,
        },
    )
    .unwrap();
    authorizer.cache().insert(
        token_hash(&token),
        CachedIdentity {
            identity: Arc::new(identity),
            exp: kube_oidc_authz::authz::now_unix() + 3600,
        },
    );
    // Decision logs are off here: they go to whatever subscriber the
    // operator chose and are measured in the load driver.
    let auth = format!("Bearer {token}");
    let req = support_request(&auth);
    c.bench_function("check/cached", |b| {
        b.iter(|| {
            let resp = rt.block_on(authorizer.check(&req));
            assert_eq!(resp.status.as_ref().map(|s| s.code), Some(0));
        })
    });
}

fn support_request(auth: &str) -> envoy_types::pb::envoy::service::auth::v3::CheckRequest {
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
    use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
    let mut headers = std::collections::HashMap::new();
    for (k, v) in [
        ("authorization", auth),
        (":authority", "k8s.example.com"),
        (
            "user-agent",
            "kubectl/v1.32.4 (linux/amd64) kubernetes/59526cd",
        ),
        (
            "accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        ),
        ("x-forwarded-proto", "https"),
        ("x-request-id", "6c3c2d2e-8f0e-4e0a-9d55-0d1f0f6f2b11"),
    ] {
        headers.insert(k.to_owned(), v.to_owned());
    }
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: "GET".into(),
                    path: "/api/v1/namespaces/default/pods?limit=500".into(),
                    headers,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

fn bench_cold(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let mut group = c.benchmark_group("verify/cold");
    for alg in [
        SigningAlg::RS256,
        SigningAlg::PS256,
        SigningAlg::ES256,
        SigningAlg::EdDSA,
        SigningAlg::ES512,
    ] {
        let issuer = DevIssuer::new(URL, "kube-oidc-authz", alg).unwrap();
        let token = issuer.mint(&Map::new()).unwrap();
        let keys: Vec<VerifyingKey> = issuer.verifying_keys().unwrap();
        let opts = MappingOptions {
            credential_id_extra: true,
            refuse_system_identities: true,
        };
        let now = kube_oidc_authz::authz::now_unix();
        group.bench_function(alg.as_str(), |b| {
            b.iter(|| {
                let parsed = verify::parse(&token).unwrap();
                parsed.verify_signature(keys.iter()).unwrap();
                verify::check_registered_claims(&parsed.claims, &cfg.issuers[0].audiences, now)
                    .unwrap();
                map_claims(&cfg.issuers[0], &parsed.claims, opts).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_cached, bench_cold);
criterion_main!(benches);
