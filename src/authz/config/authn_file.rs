//! The Kubernetes `AuthenticationConfiguration` file (the `jwt` part,
//! `apiserver.config.k8s.io` v1beta1 or v1) → trusted issuers, with the
//! apiserver's validation rules and every CEL expression compiled here, so
//! a bad one stops start-up with its field path. Unknown keys are errors,
//! and so is anything an impersonating proxy cannot honour (`anonymous`,
//! egress selectors): refused by name rather than silently ignored.

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use super::issuer::{ClaimMapping, IssuerConfig};
use super::url_with_scheme;
use crate::authz::cel::{self, Compiler, Expressions, Variable, Want};
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
    user_validation_rules: Vec<UserValidationRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UserValidationRule {
    #[serde(default)]
    expression: String,
    #[serde(default)]
    message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ExtraMapping {
    #[serde(default)]
    key: String,
    #[serde(default)]
    value_expression: String,
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
    extra: Vec<ExtraMapping>,
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
    let compiler = match Compiler::new() {
        Ok(c) => c,
        Err(e) => return Err(vec![e]),
    };
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
        if let Some(issuer) = structured_issuer(jwt, &at, &compiler, &mut errors) {
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
    compiler: &Compiler,
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

    let mut exprs = Expressions::new(compiler);
    let compile =
        |source: &str, field: &str, var: Variable, want: Want, errors: &mut Vec<String>| {
            compiler
                .compile(source, var, want)
                .map_err(|e| errors.push(format!("{field}: Invalid value: {source:?}: {e}")))
                .ok()
        };

    let mut required_claims = Vec::new();
    let mut seen_claims = std::collections::HashSet::new();
    let mut seen_rules = std::collections::HashSet::new();
    for (j, rule) in jwt.claim_validation_rules.iter().enumerate() {
        let rat = format!("{at}.claimValidationRules[{j}]");
        let claim = rule.claim.as_deref().unwrap_or("");
        let expression = rule.expression.as_deref().unwrap_or("");
        match (claim.is_empty(), expression.is_empty()) {
            (false, false) => errors.push(format!(
                "{rat}.claim: claim and expression can't both be set"
            )),
            (true, true) => errors.push(format!("{rat}.claim: claim or expression is required")),
            (false, true) => {
                if rule.message.as_deref().is_some_and(|m| !m.is_empty()) {
                    errors.push(format!("{rat}.message: can't be set when claim is set"));
                }
                if !seen_claims.insert(claim) {
                    errors.push(format!("{rat}.claim: Duplicate value: {claim:?}"));
                }
                required_claims.push((
                    claim.to_owned(),
                    rule.required_value.clone().unwrap_or_default(),
                ));
            }
            (true, false) => {
                if rule
                    .required_value
                    .as_deref()
                    .is_some_and(|v| !v.is_empty())
                {
                    errors.push(format!(
                        "{rat}.requiredValue: can't be set when expression is set"
                    ));
                }
                if !seen_rules.insert(expression) {
                    errors.push(format!("{rat}.expression: Duplicate value: {expression:?}"));
                    continue;
                }
                if let Some(e) = compile(
                    expression,
                    &format!("{rat}.expression"),
                    Variable::Claims,
                    Want::Bool,
                    errors,
                ) {
                    exprs.claim_rules.push(cel::Rule {
                        expression: e,
                        message: rule.message.clone().unwrap_or_default(),
                    });
                }
            }
        }
    }

    let m = &jwt.claim_mappings;
    let username = match &m.username {
        None => {
            errors.push(format!(
                "{at}.claimMappings.username: Required value: claim or expression is required"
            ));
            None
        }
        Some(u) => {
            let uat = format!("{at}.claimMappings.username");
            match prefixed(u, &uat, true, errors) {
                Mapping::Claim(c) => Some(c),
                Mapping::Expression(src) => {
                    exprs.username = compile(
                        src,
                        &format!("{uat}.expression"),
                        Variable::Claims,
                        Want::String,
                        errors,
                    );
                    Some(ClaimMapping {
                        claim: String::new(),
                        prefix: String::new(),
                    })
                }
                Mapping::None => None,
            }
        }
    };
    let groups = match &m.groups {
        None => None,
        Some(g) => {
            let gat = format!("{at}.claimMappings.groups");
            match prefixed(g, &gat, false, errors) {
                Mapping::Claim(c) => Some(c),
                Mapping::Expression(src) => {
                    exprs.groups = compile(
                        src,
                        &format!("{gat}.expression"),
                        Variable::Claims,
                        Want::StringOrList,
                        errors,
                    );
                    None
                }
                Mapping::None => None,
            }
        }
    };
    let uid_claim = match &m.uid {
        None => None,
        Some(ClaimOrExpression { claim, expression }) => {
            let claim = claim.as_deref().unwrap_or("");
            let expression = expression.as_deref().unwrap_or("");
            match (claim.is_empty(), expression.is_empty()) {
                (false, false) => {
                    errors.push(format!(
                        "{at}.claimMappings.uid: Invalid value: claim and expression can't both be set"
                    ));
                    None
                }
                (false, true) => Some(claim.to_owned()),
                (true, false) => {
                    exprs.uid = compile(
                        expression,
                        &format!("{at}.claimMappings.uid.expression"),
                        Variable::Claims,
                        Want::String,
                        errors,
                    );
                    None
                }
                (true, true) => None,
            }
        }
    };

    let mut seen_keys = std::collections::HashSet::new();
    for (j, extra) in m.extra.iter().enumerate() {
        let eat = format!("{at}.claimMappings.extra[{j}]");
        if let Err(e) = crate::k8s::user_info::validate_extra_key(&extra.key) {
            errors.push(format!("{eat}.key: {e}"));
        } else if !seen_keys.insert(extra.key.as_str()) {
            errors.push(format!("{eat}.key: Duplicate value: {:?}", extra.key));
        }
        if extra.value_expression.is_empty() {
            errors.push(format!("{eat}.valueExpression: Required value"));
            continue;
        }
        if let Some(e) = compile(
            &extra.value_expression,
            &format!("{eat}.valueExpression"),
            Variable::Claims,
            Want::StringOrList,
            errors,
        ) {
            exprs.extra.push((extra.key.clone(), e));
        }
    }

    let mut seen_user_rules = std::collections::HashSet::new();
    for (j, rule) in jwt.user_validation_rules.iter().enumerate() {
        let rat = format!("{at}.userValidationRules[{j}].expression");
        if rule.expression.is_empty() {
            errors.push(format!("{rat}: Required value: expression is required"));
            continue;
        }
        if !seen_user_rules.insert(rule.expression.as_str()) {
            errors.push(format!("{rat}: Duplicate value: {:?}", rule.expression));
            continue;
        }
        if let Some(e) = compile(&rule.expression, &rat, Variable::User, Want::Bool, errors) {
            exprs.user_rules.push(cel::Rule {
                expression: e,
                message: rule.message.clone(),
            });
        }
    }

    // The apiserver's guard against unverified addresses: a username
    // expression that reads `claims.email` must see `email_verified`
    // checked somewhere.
    if let Some(u) = &exprs.username
        && u.selects_claim("email")
        && !u.selects_claim("email_verified")
        && !exprs
            .extra
            .iter()
            .any(|(_, e)| e.selects_claim("email_verified"))
        && !exprs
            .claim_rules
            .iter()
            .any(|r| r.expression.selects_claim("email_verified"))
    {
        errors.push(format!(
            "{at}.claimMappings.username.expression: Invalid value: claims.email_verified must be used in claimMappings.username.expression or claimMappings.extra[*].valueExpression or claimValidationRules[*].expression when claims.email is used in claimMappings.username.expression"
        ));
    }

    if errors.len() > before {
        return None;
    }
    Some(IssuerConfig {
        url: iss.url.as_str().into(),
        discovery_url: iss.discovery_url.clone().unwrap_or_else(|| iss.url.clone()),
        audiences: iss.audiences.clone(),
        ca_pem,
        signing_algs: STRUCTURED_ALGS.to_vec(),
        username: username?,
        groups,
        uid_claim,
        required_claims,
        cel: (exprs.reads_claims() || !exprs.user_rules.is_empty()).then(|| Arc::new(exprs)),
    })
}

/// A username or groups mapping: a claim with its prefix, or an expression.
enum Mapping<'a> {
    Claim(ClaimMapping),
    Expression(&'a str),
    /// Invalid (reported) or, for groups, not set.
    None,
}

/// The structured config's rules: `claim` and `expression` are mutually
/// exclusive; `prefix` must be given whenever `claim` is (an empty string
/// disables prefixing) and never with `expression`; no implicit issuer
/// prefix. Username needs one of the two, groups neither.
fn prefixed<'a>(
    m: &'a PrefixedClaimOrExpression,
    at: &str,
    required: bool,
    errors: &mut Vec<String>,
) -> Mapping<'a> {
    let claim = m.claim.as_deref().unwrap_or("");
    let expression = m.expression.as_deref().unwrap_or("");
    match (claim.is_empty(), expression.is_empty()) {
        (false, false) => {
            errors.push(format!(
                "{at}: Invalid value: claim and expression can't both be set"
            ));
            Mapping::None
        }
        (true, true) => {
            if required {
                errors.push(format!(
                    "{at}: Required value: claim or expression is required"
                ));
            }
            Mapping::None
        }
        (true, false) => {
            // Even an empty prefix: the apiserver tests for presence.
            if m.prefix.is_some() {
                errors.push(format!(
                    "{at}.prefix: Invalid value: may not be specified when expression is set"
                ));
                return Mapping::None;
            }
            Mapping::Expression(expression)
        }
        (false, true) => match &m.prefix {
            Some(p) => Mapping::Claim(ClaimMapping {
                claim: claim.to_owned(),
                prefix: p.clone(),
            }),
            None => {
                errors.push(format!(
                    "{at}.prefix: Required value: required when claim is set (an empty string disables prefixing)"
                ));
                Mapping::None
            }
        },
    }
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
        assert_eq!(&*issuers[1].url, "https://b.example.com/");
        assert_eq!(
            issuers[1].discovery_url,
            "https://internal.example.com/.well-known/openid-configuration"
        );
    }

    #[test]
    fn rejects_bad_cel_unknown_keys_and_missing_prefix_all_at_once() {
        let bad = r#"
apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
jwt:
- issuer: {url: "http://a.example.com", audiences: []}
  claimValidationRules:
  - expression: "claims.hd =="
  claimMappings:
    username: {claim: email}
    groups: {expression: "claims.roles", prefix: "x:"}
"#;
        let errs = parse_authentication_config(bad).unwrap_err();
        let all = errs.join("\n");
        assert!(all.contains("jwt[0].issuer.url"), "{all}");
        assert!(all.contains("jwt[0].issuer.audiences"), "{all}");
        assert!(
            all.contains("jwt[0].claimValidationRules[0].expression: Invalid value: \"claims.hd ==\": compilation failed"),
            "{all}"
        );
        assert!(
            all.contains("claimMappings.username.prefix: Required value"),
            "{all}"
        );
        assert!(
            all.contains("jwt[0].claimMappings.groups.prefix: Invalid value: may not be specified when expression is set"),
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

    const CEL: &str = r#"
apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
jwt:
- issuer: {url: "https://a.example.com", audiences: [kube]}
  claimValidationRules:
  - expression: "claims.?email_verified.orValue(true) == true"
    message: email must be verified
  claimMappings:
    username: {expression: "claims.email.split('@')[0]"}
    groups: {expression: "claims.groups.filter(g, g.startsWith('k8s-'))"}
    uid: {expression: "claims.sub"}
    extra:
    - key: example.com/tenant
      valueExpression: "claims.tid"
  userValidationRules:
  - expression: "!user.username.startsWith('system:')"
    message: no system users
"#;

    #[test]
    fn accepts_cel_mappings_and_rules() {
        let issuers = parse_authentication_config(CEL).unwrap();
        let cel = issuers[0].cel.as_ref().unwrap();
        assert!(cel.username.is_some() && cel.groups.is_some() && cel.uid.is_some());
        assert_eq!(cel.extra.len(), 1);
        assert_eq!(cel.claim_rules.len(), 1);
        assert_eq!(cel.user_rules.len(), 1);
        assert!(issuers[0].groups.is_none() && issuers[0].uid_claim.is_none());
        // Plain claim mappings carry no CEL at all.
        assert!(parse_authentication_config(GOOD).unwrap()[0].cel.is_none());
    }

    /// The apiserver's validation of the CEL fields, each with the field
    /// path its error names.
    #[test]
    fn cel_field_rules() {
        let table: &[(&str, &str, &str)] = &[
            (
                "claimMappings:\n    username: {claim: sub, prefix: '', expression: claims.sub}",
                "jwt[0].claimMappings.username: Invalid value: claim and expression can't both be set",
                "both claim and expression",
            ),
            (
                "claimMappings:\n    username: {}",
                "jwt[0].claimMappings.username: Required value",
                "neither",
            ),
            (
                "claimMappings:\n    username: {expression: claims.sub, prefix: ''}",
                "jwt[0].claimMappings.username.prefix: Invalid value: may not be specified",
                "prefix with expression",
            ),
            (
                "claimMappings:\n    username: {expression: claims.sub}\n    uid: {claim: oid, expression: claims.oid}",
                "jwt[0].claimMappings.uid: Invalid value: claim and expression can't both be set",
                "uid both",
            ),
            (
                "claimMappings:\n    username: {expression: '42'}",
                "jwt[0].claimMappings.username.expression: Invalid value: \"42\": must evaluate to string",
                "username type",
            ),
            (
                "claimMappings:\n    username: {expression: claims.email}",
                "jwt[0].claimMappings.username.expression: Invalid value: claims.email_verified must be used",
                "email without email_verified",
            ),
            (
                "claimMappings:\n    username: {expression: 'claims.email_verified ? claims.email : claims.sub'}",
                "",
                "email with email_verified",
            ),
            (
                "claimMappings:\n    username: {expression: claims.sub}\n    extra:\n    - {key: Example.com/x, valueExpression: claims.a}",
                "jwt[0].claimMappings.extra[0].key: Invalid value",
                "extra key case",
            ),
            (
                "claimMappings:\n    username: {expression: claims.sub}\n    extra:\n    - {key: kubernetes.io/x, valueExpression: claims.a}",
                "jwt[0].claimMappings.extra[0].key: Invalid value: \"kubernetes.io/x\": k8s.io, kubernetes.io and their subdomains are reserved",
                "extra key reserved",
            ),
            (
                "claimMappings:\n    username: {expression: claims.sub}\n    extra:\n    - {key: example.com/x, valueExpression: claims.a}\n    - {key: example.com/x, valueExpression: claims.b}",
                "jwt[0].claimMappings.extra[1].key: Duplicate value",
                "extra key duplicate",
            ),
            (
                "claimMappings:\n    username: {expression: claims.sub}\n    extra:\n    - {key: example.com/x}",
                "jwt[0].claimMappings.extra[0].valueExpression: Required value",
                "extra without expression",
            ),
            (
                "claimMappings:\n    username: {expression: claims.sub}\n  claimValidationRules:\n  - {claim: hd, expression: 'claims.hd == \"x\"'}",
                "jwt[0].claimValidationRules[0].claim: claim and expression can't both be set",
                "rule both",
            ),
            (
                "claimMappings:\n    username: {expression: claims.sub}\n  claimValidationRules:\n  - {expression: 'claims.hd == \"x\"', requiredValue: x}",
                "jwt[0].claimValidationRules[0].requiredValue: can't be set when expression is set",
                "requiredValue with expression",
            ),
            (
                "claimMappings:\n    username: {expression: claims.sub}\n  claimValidationRules:\n  - {claim: hd, message: m}",
                "jwt[0].claimValidationRules[0].message: can't be set when claim is set",
                "message with claim",
            ),
            (
                "claimMappings:\n    username: {expression: claims.sub}\n  claimValidationRules:\n  - {expression: claims.hd}",
                "",
                "a dyn rule compiles; its type is checked per token",
            ),
            (
                "claimMappings:\n    username: {expression: claims.sub}\n  userValidationRules:\n  - {expression: user.name == 'x'}",
                "jwt[0].userValidationRules[0].expression: Invalid value: \"user.name == 'x'\": compilation failed: undefined field 'name'",
                "unknown user field",
            ),
            (
                "claimMappings:\n    username: {expression: claims.sub}\n  userValidationRules:\n  - {message: m}",
                "jwt[0].userValidationRules[0].expression: Required value",
                "user rule without expression",
            ),
        ];
        for (body, want, name) in table {
            let doc = format!(
                "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\njwt:\n- issuer: {{url: https://a.example.com, audiences: [kube]}}\n  {body}\n"
            );
            match parse_authentication_config(&doc) {
                Ok(_) => assert!(want.is_empty(), "{name}: accepted"),
                Err(errs) => {
                    let all = errs.join("\n");
                    assert!(!want.is_empty() && all.contains(want), "{name}: {all}");
                }
            }
        }
    }
}
