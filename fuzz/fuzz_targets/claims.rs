//! An arbitrary JSON object as verified claims → `map_claims`, under two
//! fixed issuer configurations (email with prefixes, groups, uid and a
//! required claim; `sub` without prefixes).
#![no_main]

use kube_oidc_authz::authz::config::{ClaimMapping, IssuerConfig};
use kube_oidc_authz::authz::identity::{MappingOptions, map_claims};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fn issuers() -> [IssuerConfig; 2] {
    let base = IssuerConfig {
        url: "https://issuer.example".into(),
        discovery_url: "https://issuer.example".into(),
        audiences: vec!["kubernetes".into()],
        ca_pem: None,
        signing_algs: Vec::new(),
        username: ClaimMapping {
            claim: "email".into(),
            prefix: "oidc:".into(),
        },
        groups: Some(ClaimMapping {
            claim: "groups".into(),
            prefix: "oidc:".into(),
        }),
        uid_claim: Some("uid".into()),
        required_claims: vec![("hd".into(), "example.com".into())],
        cel: None,
    };
    let plain = IssuerConfig {
        username: ClaimMapping {
            claim: "sub".into(),
            prefix: String::new(),
        },
        groups: Some(ClaimMapping {
            claim: "roles".into(),
            prefix: String::new(),
        }),
        uid_claim: None,
        required_claims: Vec::new(),
        cel: None,
        ..base.clone()
    };
    [base, plain]
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, json)) = data.split_first() else {
        return;
    };
    let Ok(claims) = serde_json::from_slice::<Map<String, Value>>(json) else {
        return;
    };
    let opts = MappingOptions {
        credential_id_extra: flags & 1 != 0,
        refuse_system_identities: flags & 2 != 0,
    };
    for issuer in issuers() {
        let Ok(identity) = map_claims(&issuer, &claims, opts) else {
            continue;
        };
        assert!(identity.is_header_safe(), "{identity:?}");
        assert!(identity.user.starts_with(&issuer.username.prefix));
        assert!(identity.user.len() > issuer.username.prefix.len());
        assert_eq!(identity.issuer, issuer.url);
        if opts.refuse_system_identities {
            assert!(!identity.claims_system_name(), "{identity:?}");
        }
        if !opts.credential_id_extra {
            assert!(identity.extra.is_empty());
        }
        if let Some(g) = &issuer.groups {
            assert!(identity.groups.iter().all(|x| x.starts_with(&g.prefix)));
        }
        if issuer.uid_claim.is_none() {
            assert!(identity.uid.is_none());
        }
        for (claim, want) in &issuer.required_claims {
            assert_eq!(claims.get(claim), Some(&Value::String(want.clone())));
        }
        assert_eq!(map_claims(&issuer, &claims, opts).ok(), Some(identity));
    }
});
