//! Authorization header → bearer token → JOSE parse → registered claims.
//!
//! The first byte picks how the rest is read: even, it is the header value
//! as sent; odd, it is `header JSON \n payload JSON \n signature`, each
//! base64url-encoded here into a compact JWS, so the fuzzer mutates the
//! JSON itself rather than its base64.
#![no_main]

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kube_oidc_authz::authz::error::DenyReason;
use kube_oidc_authz::authz::token::bearer_token;
use kube_oidc_authz::authz::verify::{self, MAX_TOKEN_BYTES};
use libfuzzer_sys::fuzz_target;

/// A fixed wall clock: 2023-11-14T22:13:20Z.
const NOW: i64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let value = if mode % 2 == 0 {
        match std::str::from_utf8(rest) {
            Ok(s) => s.to_owned(),
            Err(_) => return,
        }
    } else {
        let mut parts = rest.splitn(3, |&b| b == b'\n');
        let h = URL_SAFE_NO_PAD.encode(parts.next().unwrap_or_default());
        let p = URL_SAFE_NO_PAD.encode(parts.next().unwrap_or_default());
        let s = URL_SAFE_NO_PAD.encode(parts.next().unwrap_or_default());
        format!("Bearer {h}.{p}.{s}")
    };

    let token = match bearer_token(Some(&value)) {
        Ok(t) => t,
        Err(reason) => {
            assert_eq!(reason, DenyReason::MissingToken);
            // The JOSE parser still sees the raw value: a token can reach it
            // by other paths (the passthrough review, the cache key).
            let _ = verify::parse(&value);
            return;
        }
    };
    assert!(!token.is_empty() && !token.contains(' '), "{token:?}");
    assert!(value.contains(token));

    let Ok(parsed) = verify::parse(token) else {
        return;
    };
    assert!(token.len() <= MAX_TOKEN_BYTES);
    assert_eq!(token.matches('.').count(), 2, "{token:?}");
    assert_eq!(
        parsed.alg.as_str().parse::<verify::SigningAlg>().ok(),
        Some(parsed.alg)
    );

    let trusted: HashMap<String, ()> = [("https://issuer.example".to_owned(), ())].into();
    if parsed.select_issuer(&trusted).is_ok() {
        assert_eq!(parsed.issuer(), Ok("https://issuer.example"));
    }
    // No key, no signature: whatever the token says.
    assert!(parsed.verify_signature([]).is_err());

    let audiences = ["kubernetes".to_owned(), "other".to_owned()];
    if let Ok(exp) = verify::check_registered_claims(&parsed.claims, &audiences, NOW) {
        assert!(exp > NOW, "accepted exp {exp} at {NOW}");
    }
});
