//! The authz service's validated configuration: built once from flags or a
//! Kubernetes `AuthenticationConfiguration`, with every problem reported
//! together.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use super::args::AuthzArgs;
use super::verify::SigningAlg;

/// The extra key newer apiservers set from a token's `jti`.
pub const CREDENTIAL_ID_EXTRA: &str = "authentication.kubernetes.io/credential-id";

/// Everything the service needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub issuers: Vec<IssuerConfig>,
    pub credential_id_extra: bool,
    pub refuse_system_identities: bool,
    pub passthrough: Option<PassthroughConfig>,
    pub client_ip_extra: bool,
    pub static_extras: BTreeMap<String, Vec<String>>,
    pub trusted_proxies: Vec<IpNet>,
    pub upstream_token_file: PathBuf,
    pub cache_max_entries: u64,
    pub jwks_min_refresh_interval: Duration,
    pub jwks_refresh_interval: Duration,
}

/// Token passthrough: tokens that are not ours go to a TokenReview.
#[derive(Debug, Clone)]
pub struct PassthroughConfig {
    pub audiences: Vec<String>,
    pub apiserver_url: String,
    pub apiserver_ca_file: PathBuf,
}

/// One trusted issuer and how its tokens map to Kubernetes identities.
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    /// Expected `iss`, byte for byte.
    pub url: String,
    /// Where discovery is fetched from; `url` when not overridden.
    pub discovery_url: String,
    /// `aud` must contain at least one of these.
    pub audiences: Vec<String>,
    /// PEM bundle trusted for the issuer's HTTPS; platform roots if `None`.
    pub ca_pem: Option<Vec<u8>>,
    pub signing_algs: Vec<SigningAlg>,
    pub username: ClaimMapping,
    pub groups: Option<ClaimMapping>,
    pub uid_claim: Option<String>,
    /// `(claim, required value)` pairs; the claim must be a string.
    pub required_claims: Vec<(String, String)>,
}

/// A claim and the prefix put before its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMapping {
    pub claim: String,
    pub prefix: String,
}

// === from flags ===

impl Config {
    /// Validates flags (and the authentication config file they may name)
    /// into a `Config`, or every problem found.
    pub fn from_args(args: &AuthzArgs) -> Result<Config, Vec<String>> {
        let mut errors = Vec::new();

        let issuers = match &args.authentication_config {
            Some(path) => {
                if args.oidc_issuer_url.is_some() || args.oidc_client_id.is_some() {
                    errors.push(
                        "--authentication-config cannot be combined with --oidc-issuer-url or --oidc-client-id"
                            .to_owned(),
                    );
                }
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
            None => issuer_from_flags(args, &mut errors).into_iter().collect(),
        };

        let mut static_extras: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for kv in args.extra_user_headers.iter().filter(|s| !s.is_empty()) {
            match kv.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => static_extras
                    .entry(k.trim().to_ascii_lowercase())
                    .or_default()
                    .push(v.trim().to_owned()),
                _ => errors.push(format!("--extra-user-headers: {kv:?} is not key=value")),
            }
        }

        let mut trusted_proxies = Vec::new();
        for cidr in args.trusted_proxy_cidrs.iter().filter(|s| !s.is_empty()) {
            match parse_cidr(cidr) {
                Some(net) => trusted_proxies.push(net),
                None => errors.push(format!(
                    "--trusted-proxy-cidrs: {cidr:?} is not an IP network"
                )),
            }
        }

        let passthrough = if args.token_passthrough {
            let audiences: Vec<String> = args
                .token_passthrough_audiences
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect();
            if let Err(e) = url_with_scheme(&args.apiserver_url, &["https"]) {
                errors.push(format!("--apiserver-url: {e}"));
            }
            Some(PassthroughConfig {
                audiences,
                apiserver_url: args.apiserver_url.trim_end_matches('/').to_owned(),
                apiserver_ca_file: args.apiserver_ca_file.clone(),
            })
        } else {
            if !args.token_passthrough_audiences.is_empty() {
                errors.push(
                    "--token-passthrough-audiences needs --token-passthrough=true".to_owned(),
                );
            }
            None
        };

        if args.cache_max_entries == 0 {
            errors.push("--cache-max-entries must be at least 1".to_owned());
        }
        if args.jwks_refresh_interval < args.jwks_min_refresh_interval {
            errors.push(
                "--jwks-refresh-interval must not be shorter than --jwks-min-refresh-interval"
                    .to_owned(),
            );
        }
        if issuers.is_empty() && errors.is_empty() {
            errors.push("no issuer configured: set --oidc-issuer-url and --oidc-client-id, or --authentication-config".to_owned());
        }

        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Config {
            issuers,
            credential_id_extra: args.credential_id_extra,
            refuse_system_identities: args.refuse_system_identities,
            passthrough,
            client_ip_extra: args.extra_user_header_client_ip,
            static_extras,
            trusted_proxies,
            upstream_token_file: args.upstream_token_file.clone(),
            cache_max_entries: args.cache_max_entries,
            jwks_min_refresh_interval: args.jwks_min_refresh_interval,
            jwks_refresh_interval: args.jwks_refresh_interval,
        })
    }
}

fn issuer_from_flags(args: &AuthzArgs, errors: &mut Vec<String>) -> Option<IssuerConfig> {
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
        url,
        audiences: vec![client_id],
        ca_pem,
        signing_algs,
        username,
        groups,
        uid_claim: None,
        required_claims,
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

fn url_with_scheme(url: &str, schemes: &[&str]) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?}: {e}"))?;
    if !schemes.contains(&parsed.scheme()) {
        return Err(format!("{url:?}: scheme must be {}", schemes.join(" or ")));
    }
    if parsed.host_str().is_none() {
        return Err(format!("{url:?}: no host"));
    }
    Ok(parsed)
}

fn parse_cidr(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

// === from an AuthenticationConfiguration ===

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
