//! One trusted issuer's settings (`iss`, audiences, CA, algorithms, claim
//! mappings), and how the legacy `--oidc-*` flags fill them in with the
//! apiserver's defaults.

use std::sync::Arc;

use super::url_with_scheme;
use crate::authz::args::AuthzArgs;
use crate::authz::cel::Expressions;
use crate::authz::verify::SigningAlg;

/// One trusted issuer and how its tokens map to Kubernetes identities.
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    /// Expected `iss`, byte for byte.
    pub url: std::sync::Arc<str>,
    /// Where discovery is fetched from; `url` when not overridden.
    pub discovery_url: String,
    /// `aud` must contain at least one of these.
    pub audiences: Vec<String>,
    /// PEM bundle trusted for the issuer's HTTPS; platform roots if `None`.
    pub ca_pem: Option<Vec<u8>>,
    pub signing_algs: Vec<SigningAlg>,
    /// The username claim; unused (empty) when `cel` maps the username.
    pub username: ClaimMapping,
    pub groups: Option<ClaimMapping>,
    pub uid_claim: Option<String>,
    /// `(claim, required value)` pairs; the claim must be a string.
    pub required_claims: Vec<(String, String)>,
    /// CEL expressions of an `AuthenticationConfiguration`: mappings that
    /// replace the claim they stand for (the config makes the two mutually
    /// exclusive), extra mappings and validation rules.
    pub cel: Option<Arc<Expressions>>,
}

/// A claim and the prefix put before its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMapping {
    pub claim: String,
    pub prefix: String,
}

/// The issuer named by the legacy `--oidc-*` flags; every problem is
/// pushed to `errors`.
pub(super) fn from_flags(args: &AuthzArgs, errors: &mut Vec<String>) -> Option<IssuerConfig> {
    let url = match &args.oidc_issuer_url {
        Some(u) => u.clone(),
        None => {
            errors.push("--oidc-issuer-url is required (or --authentication-config)".to_owned());
            return None;
        }
    };
    if let Err(e) = url_with_scheme(&url, &["https"]) {
        errors.push(format!("--oidc-issuer-url: {e}"));
    }
    let client_id = match &args.oidc_client_id {
        Some(c) if !c.is_empty() => c.clone(),
        _ => {
            errors.push("--oidc-client-id is required".to_owned());
            String::new()
        }
    };
    let ca_pem = args.oidc_ca_file.as_ref().and_then(|p| match read_ca(p) {
        Ok(pem) => Some(pem),
        Err(e) => {
            errors.push(format!("--oidc-ca-file: {e}"));
            None
        }
    });
    let mut signing_algs = Vec::new();
    for name in args.oidc_signing_algs.iter().filter(|s| !s.is_empty()) {
        match name.parse::<SigningAlg>() {
            Ok(alg) => signing_algs.push(alg),
            Err(e) => errors.push(format!("--oidc-signing-algs: {e}")),
        }
    }
    if signing_algs.is_empty() && args.oidc_signing_algs.iter().all(|s| s.is_empty()) {
        errors.push("--oidc-signing-algs must name at least one algorithm".to_owned());
    }
    let mut required_claims = Vec::new();
    for kv in args.oidc_required_claims.iter().filter(|s| !s.is_empty()) {
        match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => required_claims.push((k.to_owned(), v.to_owned())),
            _ => errors.push(format!("--oidc-required-claim: {kv:?} is not key=value")),
        }
    }
    let username = ClaimMapping {
        claim: args.oidc_username_claim.clone(),
        prefix: legacy_username_prefix(
            &url,
            &args.oidc_username_claim,
            args.oidc_username_prefix.as_deref(),
        ),
    };
    let groups = args
        .oidc_groups_claim
        .as_ref()
        .filter(|c| !c.is_empty())
        .map(|claim| ClaimMapping {
            claim: claim.clone(),
            prefix: args.oidc_groups_prefix.clone().unwrap_or_default(),
        });
    if groups.is_none()
        && args
            .oidc_groups_prefix
            .as_deref()
            .is_some_and(|p| !p.is_empty())
    {
        errors.push("--oidc-groups-prefix needs --oidc-groups-claim".to_owned());
    }
    Some(IssuerConfig {
        discovery_url: url.clone(),
        url: url.into(),
        audiences: vec![client_id],
        ca_pem,
        signing_algs,
        username,
        groups,
        uid_claim: None,
        required_claims,
        cel: None,
    })
}

/// The apiserver's `--oidc-username-prefix` rules: unset means
/// `<issuer>#` unless the claim is `email`; `-` means no prefix.
pub fn legacy_username_prefix(issuer: &str, claim: &str, flag: Option<&str>) -> String {
    match flag {
        Some("-") => String::new(),
        Some(p) => p.to_owned(),
        None if claim == "email" => String::new(),
        None => format!("{issuer}#"),
    }
}

fn read_ca(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if crate::tls::certs_from_pem(&pem).is_none() {
        return Err(format!("{}: no PEM certificate found", path.display()));
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_username_prefix_rules() {
        let iss = "https://idp.example.com";
        let cases = [
            ("sub", None, "https://idp.example.com#"),
            ("email", None, ""),
            ("preferred_username", None, "https://idp.example.com#"),
            ("sub", Some("-"), ""),
            ("email", Some("banyan:"), "banyan:"),
            ("email", Some(""), ""),
        ];
        for (claim, flag, want) in cases {
            assert_eq!(
                legacy_username_prefix(iss, claim, flag),
                want,
                "{claim} {flag:?}"
            );
        }
    }
}
