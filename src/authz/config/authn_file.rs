//! The Kubernetes `AuthenticationConfiguration` file (the `jwt` part,
//! `apiserver.config.k8s.io` v1beta1 or v1) → trusted issuers. Unknown keys
//! are errors, and so is anything an impersonating proxy cannot honour
//! (CEL expressions, `anonymous`, egress selectors): refused by name
//! rather than silently ignored.

use std::path::Path;

use serde::Deserialize;

use super::issuer::{ClaimMapping, IssuerConfig};
use super::url_with_scheme;
use crate::authz::verify::SigningAlg;

/// Reads and parses the file named by `--authentication-config`; every
/// problem is pushed to `errors`, prefixed with the file's path.
pub(super) fn load(path: &Path, errors: &mut Vec<String>) -> Vec<IssuerConfig> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_authentication_config(&text).unwrap_or_else(|mut e| {
            for msg in &mut e {
                *msg = format!("{}: {msg}", path.display());
            }
            errors.extend(e);
            Vec::new()
        }),
        Err(e) => {
            errors.push(format!("--authentication-config {}: {e}", path.display()));
            Vec::new()
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AuthenticationConfiguration {
    api_version: String,
    kind: String,
    #[serde(default)]
    jwt: Vec<JwtAuthenticator>,
    #[serde(default)]
    anonymous: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct JwtAuthenticator {
    issuer: Issuer,
    #[serde(default)]
    claim_validation_rules: Vec<ClaimValidationRule>,
    #[serde(default)]
    claim_mappings: ClaimMappings,
    #[serde(default)]
    user_validation_rules: Vec<serde_yaml_ng::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Issuer {
    url: String,
    #[serde(default, rename = "discoveryURL")]
    discovery_url: Option<String>,
    #[serde(default)]
    certificate_authority: Option<String>,
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default)]
    audience_match_policy: Option<String>,
    #[serde(default)]
    egress_selector_type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ClaimValidationRule {
    #[serde(default)]
    claim: Option<String>,
    #[serde(default)]
    required_value: Option<String>,
    #[serde(default)]
    expression: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ClaimMappings {
    #[serde(default)]
    username: Option<PrefixedClaimOrExpression>,
    #[serde(default)]
    groups: Option<PrefixedClaimOrExpression>,
    #[serde(default)]
    uid: Option<ClaimOrExpression>,
    #[serde(default)]
    extra: Vec<serde_yaml_ng::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PrefixedClaimOrExpression {
    #[serde(default)]
    claim: Option<String>,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    expression: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ClaimOrExpression {
    #[serde(default)]
    claim: Option<String>,
    #[serde(default)]
    expression: Option<String>,
}

/// The algorithms the apiserver accepts for structured JWT authenticators.
const STRUCTURED_ALGS: [SigningAlg; 9] = [
    SigningAlg::RS256,
    SigningAlg::RS384,
    SigningAlg::RS512,
    SigningAlg::ES256,
    SigningAlg::ES384,
    SigningAlg::ES512,
    SigningAlg::PS256,
    SigningAlg::PS384,
    SigningAlg::PS512,
];

const CEL_UNSUPPORTED: &str = "CEL expressions are not supported yet; use claim and prefix";

/// Parses the `jwt` part of an `AuthenticationConfiguration` (v1beta1 or
/// v1), listing every problem.
pub fn parse_authentication_config(text: &str) -> Result<Vec<IssuerConfig>, Vec<String>> {
    let doc: AuthenticationConfiguration =
        serde_yaml_ng::from_str(text).map_err(|e| vec![e.to_string()])?;
    let mut errors = Vec::new();
    if !matches!(
        doc.api_version.as_str(),
        "apiserver.config.k8s.io/v1beta1" | "apiserver.config.k8s.io/v1"
    ) {
        errors.push(format!(
            "apiVersion {:?}: want apiserver.config.k8s.io/v1 or v1beta1",
            doc.api_version
        ));
    }
    if doc.kind != "AuthenticationConfiguration" {
        errors.push(format!(
            "kind {:?}: want AuthenticationConfiguration",
            doc.kind
        ));
    }
    if doc.anonymous.is_some() {
        errors.push("anonymous: not applicable to an impersonating proxy; remove it".to_owned());
    }
    if doc.jwt.is_empty() {
        errors.push("jwt: at least one authenticator is required".to_owned());
    }
    let mut issuers = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, jwt) in doc.jwt.iter().enumerate() {
        let at = format!("jwt[{i}]");
        if !seen.insert(jwt.issuer.url.clone()) {
            errors.push(format!(
                "{at}.issuer.url {:?}: duplicate issuer",
                jwt.issuer.url
            ));
        }
        if let Some(issuer) = structured_issuer(jwt, &at, &mut errors) {
            issuers.push(issuer);
        }
    }
    if errors.is_empty() {
        Ok(issuers)
    } else {
        Err(errors)
    }
}

fn structured_issuer(
    jwt: &JwtAuthenticator,
    at: &str,
    errors: &mut Vec<String>,
) -> Option<IssuerConfig> {
    let before = errors.len();
    let iss = &jwt.issuer;
    if let Err(e) = url_with_scheme(&iss.url, &["https"]) {
        errors.push(format!("{at}.issuer.url: {e}"));
    }
    if let Some(d) = &iss.discovery_url {
        if let Err(e) = url_with_scheme(d, &["https"]) {
            errors.push(format!("{at}.issuer.discoveryURL: {e}"));
        }
        if d.trim_end_matches('/') == iss.url.trim_end_matches('/') {
            errors.push(format!(
                "{at}.issuer.discoveryURL: must differ from issuer.url"
            ));
        }
    }
    if iss.audiences.is_empty() || iss.audiences.iter().any(String::is_empty) {
        errors.push(format!(
            "{at}.issuer.audiences: at least one non-empty audience is required"
        ));
    }
    match iss.audience_match_policy.as_deref() {
        None | Some("") if iss.audiences.len() <= 1 => {}
        Some("MatchAny") => {}
        _ => errors.push(format!(
            "{at}.issuer.audienceMatchPolicy: must be MatchAny when several audiences are set"
        )),
    }
    if iss.egress_selector_type.is_some() {
        errors.push(format!(
            "{at}.issuer.egressSelectorType: not applicable outside the apiserver"
        ));
    }
    let ca_pem = iss
        .certificate_authority
        .as_ref()
        .map(|pem| pem.as_bytes().to_vec());
    if let Some(pem) = &ca_pem
        && crate::tls::certs_from_pem(pem).is_none()
    {
        errors.push(format!(
            "{at}.issuer.certificateAuthority: no PEM certificate found"
        ));
    }

    let mut required_claims = Vec::new();
    for (j, rule) in jwt.claim_validation_rules.iter().enumerate() {
        let rat = format!("{at}.claimValidationRules[{j}]");
        if rule.expression.is_some() || rule.message.is_some() {
            errors.push(format!("{rat}.expression: {CEL_UNSUPPORTED}"));
            continue;
        }
        match &rule.claim {
            Some(c) if !c.is_empty() => {
                required_claims.push((c.clone(), rule.required_value.clone().unwrap_or_default()))
            }
            _ => errors.push(format!("{rat}.claim: required")),
        }
    }
    if !jwt.user_validation_rules.is_empty() {
        errors.push(format!("{at}.userValidationRules: {CEL_UNSUPPORTED}"));
    }
    if !jwt.claim_mappings.extra.is_empty() {
        errors.push(format!(
            "{at}.claimMappings.extra: valueExpression is CEL; {CEL_UNSUPPORTED}"
        ));
    }

    let username = match &jwt.claim_mappings.username {
        None => {
            errors.push(format!("{at}.claimMappings.username: required"));
            None
        }
        Some(m) => prefixed(m, &format!("{at}.claimMappings.username"), true, errors),
    };
    let groups = jwt
        .claim_mappings
        .groups
        .as_ref()
        .and_then(|m| prefixed(m, &format!("{at}.claimMappings.groups"), true, errors));
    let uid_claim = match &jwt.claim_mappings.uid {
        None => None,
        Some(ClaimOrExpression {
            expression: Some(_),
            ..
        }) => {
            errors.push(format!(
                "{at}.claimMappings.uid.expression: {CEL_UNSUPPORTED}"
            ));
            None
        }
        Some(ClaimOrExpression { claim, .. }) => claim.clone().filter(|c| !c.is_empty()),
    };

    if errors.len() > before {
        return None;
    }
    Some(IssuerConfig {
        url: iss.url.clone(),
        discovery_url: iss.discovery_url.clone().unwrap_or_else(|| iss.url.clone()),
        audiences: iss.audiences.clone(),
        ca_pem,
        signing_algs: STRUCTURED_ALGS.to_vec(),
        username: username?,
        groups,
        uid_claim,
        required_claims,
    })
}

/// The structured config's rule: `prefix` must be given whenever `claim`
/// is (an empty string disables prefixing); no implicit issuer prefix.
fn prefixed(
    m: &PrefixedClaimOrExpression,
    at: &str,
    prefix_required: bool,
    errors: &mut Vec<String>,
) -> Option<ClaimMapping> {
    if m.expression.is_some() {
        errors.push(format!("{at}.expression: {CEL_UNSUPPORTED}"));
        return None;
    }
    let claim = match &m.claim {
        Some(c) if !c.is_empty() => c.clone(),
        _ => {
            errors.push(format!("{at}.claim: required"));
            return None;
        }
    };
    let prefix = match &m.prefix {
        Some(p) => p.clone(),
        None if prefix_required => {
            errors.push(format!(
                "{at}.prefix: required when claim is set (an empty string disables prefixing)"
            ));
            return None;
        }
        None => String::new(),
    };
    Some(ClaimMapping { claim, prefix })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
apiVersion: apiserver.config.k8s.io/v1beta1
kind: AuthenticationConfiguration
jwt:
- issuer:
    url: https://a.example.com
    audiences: [kube, other]
    audienceMatchPolicy: MatchAny
  claimValidationRules:
  - claim: hd
    requiredValue: example.com
  claimMappings:
    username: {claim: email, prefix: "banyan:"}
    groups: {claim: roles, prefix: "banyan:"}
    uid: {claim: sub}
- issuer:
    url: https://b.example.com/
    discoveryURL: https://internal.example.com/.well-known/openid-configuration
    audiences: [kube]
  claimMappings:
    username: {claim: sub, prefix: ""}
"#;

    #[test]
    fn parses_structured_config() {
        let issuers = parse_authentication_config(GOOD).unwrap();
        assert_eq!(issuers.len(), 2);
        assert_eq!(issuers[0].audiences, ["kube", "other"]);
        assert_eq!(
            issuers[0].required_claims,
            [("hd".into(), "example.com".into())]
        );
        assert_eq!(
            issuers[0].username,
            ClaimMapping {
                claim: "email".into(),
                prefix: "banyan:".into()
            }
        );
        assert_eq!(issuers[0].uid_claim.as_deref(), Some("sub"));
        assert_eq!(issuers[0].signing_algs.len(), 9);
        assert_eq!(issuers[1].url, "https://b.example.com/");
        assert_eq!(
            issuers[1].discovery_url,
            "https://internal.example.com/.well-known/openid-configuration"
        );
    }

    #[test]
    fn rejects_cel_unknown_keys_and_missing_prefix_all_at_once() {
        let bad = r#"
apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
jwt:
- issuer: {url: "http://a.example.com", audiences: []}
  claimValidationRules:
  - expression: "claims.hd == 'x'"
  claimMappings:
    username: {claim: email}
    groups: {expression: "claims.roles"}
"#;
        let errs = parse_authentication_config(bad).unwrap_err();
        let all = errs.join("\n");
        assert!(all.contains("jwt[0].issuer.url"), "{all}");
        assert!(all.contains("jwt[0].issuer.audiences"), "{all}");
        assert!(
            all.contains("claimValidationRules[0].expression: CEL"),
            "{all}"
        );
        assert!(
            all.contains("claimMappings.username.prefix: required"),
            "{all}"
        );
        assert!(
            all.contains("claimMappings.groups.expression: CEL"),
            "{all}"
        );

        let unknown = GOOD.replace("audienceMatchPolicy", "audienceMatchPolcy");
        let errs = parse_authentication_config(&unknown).unwrap_err();
        assert!(
            errs[0].contains("unknown field `audienceMatchPolcy`"),
            "{errs:?}"
        );

        let wrong_version = GOOD.replace("v1beta1", "v1alpha9");
        assert!(parse_authentication_config(&wrong_version).is_err());
    }
}
