//! Criterion benchmarks of CEL in the identity mapping, in-process: what a
//! cache miss costs with the `AuthenticationConfiguration` mappings of
//! BENCHMARKS.md ("CEL"), next to the same token mapped by claim.
//!
//! - `cel/cold/plain`: parse + RS256 signature + registered claims +
//!   mapping by claim (`email` with `banyan:`, `roles` with `banyan:`);
//! - `cel/cold/cel`: the same token, username and groups mapped by CEL and
//!   one claim validation rule;
//! - `cel/map/plain`, `cel/map/cel`: the mapping step alone;
//! - `cel/map/cel-500-groups`: the CEL mapping of a token with 500 roles,
//!   every one run through the groups expression.
//!
//! Run: `cargo bench --bench cel`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{Criterion, criterion_group, criterion_main};
use kube_oidc_authz::authz::config::{IssuerConfig, parse_authentication_config};
use kube_oidc_authz::authz::identity::{MappingOptions, map_claims};
use kube_oidc_authz::authz::verify::{self, SigningAlg, VerifyingKey};
use kube_oidc_dev::issuer::DevIssuer;
use serde_json::{Map, Value, json};

const URL: &str = "https://idp.example.com";

fn authn(mappings: &str) -> IssuerConfig {
    let doc = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\njwt:\n- issuer: {{url: {URL}, audiences: [kube-oidc-authz]}}\n{mappings}"
    );
    parse_authentication_config(&doc).unwrap().remove(0)
}

/// The product's mapping by claim.
fn plain() -> IssuerConfig {
    authn(
        "  claimMappings:\n    username: {claim: email, prefix: 'banyan:'}\n    groups: {claim: roles, prefix: 'banyan:'}\n",
    )
}

/// The same identity with two CEL mappings and a validation rule.
fn cel() -> IssuerConfig {
    authn(
        r#"  claimValidationRules:
  - expression: "claims.?email_verified.orValue(true) == true"
    message: email must be verified
  claimMappings:
    username: {expression: "'banyan:' + claims.email"}
    groups: {expression: "claims.roles.map(r, 'banyan:' + r)"}
"#,
    )
}

const OPTS: MappingOptions = MappingOptions {
    credential_id_extra: true,
    refuse_system_identities: true,
};

fn bench(c: &mut Criterion) {
    let issuer = DevIssuer::new(URL, "kube-oidc-authz", SigningAlg::RS256).unwrap();
    let token = issuer.mint(&Map::new()).unwrap();
    let keys: Vec<VerifyingKey> = issuer.verifying_keys().unwrap();
    let now = kube_oidc_authz::authz::now_unix();
    let (plain, cel) = (plain(), cel());
    let claims = verify::parse(&token).unwrap().claims;
    // Both configurations give the same identity.
    assert_eq!(
        map_claims(&plain, &claims, OPTS).unwrap(),
        map_claims(&cel, &claims, OPTS).unwrap()
    );

    let mut group = c.benchmark_group("cel");
    for (name, cfg) in [("plain", &plain), ("cel", &cel)] {
        group.bench_function(format!("cold/{name}"), |b| {
            b.iter(|| {
                let parsed = verify::parse(&token).unwrap();
                parsed.verify_signature(keys.iter()).unwrap();
                verify::check_registered_claims(&parsed.claims, &cfg.audiences, now).unwrap();
                map_claims(cfg, &parsed.claims, OPTS).unwrap()
            })
        });
        group.bench_function(format!("map/{name}"), |b| {
            b.iter(|| map_claims(cfg, &claims, OPTS).unwrap())
        });
    }
    let mut many = claims.clone();
    many.insert(
        "roles".into(),
        Value::Array((0..500).map(|i| json!(format!("role-{i}"))).collect()),
    );
    group.bench_function("map/cel-500-groups", |b| {
        b.iter(|| map_claims(&cel, &many, OPTS).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
