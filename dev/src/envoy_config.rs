//! Renders the shipped Envoy templates (`envoy/envoy.yaml`,
//! `envoy/sds-tls.yaml`): substitutes `${NAME}` placeholders and nothing
//! else.
//!
//! Rendering is strict both ways: a placeholder without a value and a value
//! without a placeholder in the set of known names are errors, so a
//! template and its consumers cannot drift apart silently.

use std::collections::BTreeMap;

/// Every placeholder the shipped templates may use, with the value used in
/// the Kubernetes pod.
pub const PLACEHOLDERS: [(&str, &str); 16] = [
    ("ENVOY_LISTEN_ADDRESS", "0.0.0.0"),
    ("ENVOY_LISTEN_PORT", "8443"),
    ("ENVOY_ADMIN_PORT", "9901"),
    ("TLS_CERT_FILE", "/etc/kube-oidc-authz/tls/tls.crt"),
    ("TLS_KEY_FILE", "/etc/kube-oidc-authz/tls/tls.key"),
    ("TLS_WATCH_DIR", "/etc/kube-oidc-authz/tls"),
    ("SDS_TLS_FILE", "/etc/kube-oidc-authz/envoy/sds-tls.yaml"),
    ("AUTHZ_ADDRESS", "127.0.0.1"),
    ("AUTHZ_PORT", "9001"),
    ("APISERVER_ADDRESS", "kubernetes.default.svc"),
    ("APISERVER_PORT", "443"),
    (
        "APISERVER_CA_FILE",
        "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
    ),
    ("AUDIT_ALS_ADDRESS", "127.0.0.1"),
    ("AUDIT_ALS_PORT", "8084"),
    ("STREAM_IDLE_TIMEOUT", "3600s"),
    ("LUA_FILE", "/etc/kube-oidc-authz/envoy/impersonation.lua"),
];

/// Where the docker-compose example (`docker-compose.yaml`) differs from
/// the pod: the authz service, the audit forwarder and k3s are reached by
/// their service names. The rendered files are committed under
/// `envoy/compose/` and a test keeps them equal to a fresh render.
pub const COMPOSE_OVERRIDES: [(&str, &str); 5] = [
    ("AUTHZ_ADDRESS", "authz"),
    ("APISERVER_ADDRESS", "k3s"),
    ("APISERVER_PORT", "6443"),
    (
        "APISERVER_CA_FILE",
        "/etc/kube-oidc-authz/apiserver/server-ca.crt",
    ),
    ("AUDIT_ALS_ADDRESS", "audit-forwarder"),
];

/// The docker-compose example's values: the pod's, with
/// [`COMPOSE_OVERRIDES`].
pub fn compose_values() -> BTreeMap<String, String> {
    PLACEHOLDERS
        .iter()
        .chain(COMPOSE_OVERRIDES.iter())
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The shipped Envoy configuration template.
pub const ENVOY_TEMPLATE: &str = include_str!("../../envoy/envoy.yaml");
/// The shipped SDS template for the listener's certificate.
pub const SDS_TEMPLATE: &str = include_str!("../../envoy/sds-tls.yaml");
/// The shipped Lua filter.
pub const IMPERSONATION_LUA: &str = include_str!("../../envoy/impersonation.lua");

/// Why a template cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("unknown placeholder ${{{0}}} in template")]
    UnknownPlaceholder(String),
    #[error("no value given for placeholder ${{{0}}}")]
    MissingValue(String),
    #[error("value given for {0}, which is not a known placeholder")]
    UnknownValue(String),
    #[error("unterminated placeholder at byte {0}")]
    Unterminated(usize),
}

/// The values used in the Kubernetes pod, as a map to override from.
pub fn defaults() -> BTreeMap<String, String> {
    PLACEHOLDERS
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn is_known(name: &str) -> bool {
    PLACEHOLDERS.iter().any(|(k, _)| *k == name)
}

/// Substitutes every `${NAME}` in `template` with `values[NAME]`.
///
/// Fails on a placeholder that is not one of [`PLACEHOLDERS`], on a known
/// placeholder without a value, and on a value whose name is not a known
/// placeholder. A `$` not followed by `{` is copied as it is. Values are
/// inserted verbatim (no YAML quoting): callers pass plain paths, ports and
/// host names.
pub fn render(template: &str, values: &BTreeMap<String, String>) -> Result<String, RenderError> {
    if let Some(name) = values.keys().find(|k| !is_known(k)) {
        return Err(RenderError::UnknownValue(name.clone()));
    }
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    let mut offset = 0;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after
            .find('}')
            .ok_or(RenderError::Unterminated(offset + at))?;
        let name = &after[..end];
        if !is_known(name) {
            return Err(RenderError::UnknownPlaceholder(name.to_owned()));
        }
        let value = values
            .get(name)
            .ok_or_else(|| RenderError::MissingValue(name.to_owned()))?;
        out.push_str(value);
        let consumed = at + 2 + end + 1;
        offset += consumed;
        rest = &rest[consumed..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn substitutes_known_placeholders() {
        type Case<'a> = (
            &'a str,
            &'a [(&'a str, &'a str)],
            Result<&'a str, RenderError>,
        );
        let cases: &[Case] = &[
            (
                "port: ${AUTHZ_PORT}",
                &[("AUTHZ_PORT", "9001")],
                Ok("port: 9001"),
            ),
            (
                "${AUTHZ_ADDRESS}:${AUTHZ_PORT}",
                &[("AUTHZ_ADDRESS", "a"), ("AUTHZ_PORT", "1")],
                Ok("a:1"),
            ),
            ("cost: $5 and $x", &[], Ok("cost: $5 and $x")),
            ("no placeholders", &[], Ok("no placeholders")),
            (
                "${NOPE}",
                &[],
                Err(RenderError::UnknownPlaceholder("NOPE".into())),
            ),
            (
                "${AUTHZ_PORT}",
                &[],
                Err(RenderError::MissingValue("AUTHZ_PORT".into())),
            ),
            (
                "a ${AUTHZ_PORT",
                &[("AUTHZ_PORT", "1")],
                Err(RenderError::Unterminated(2)),
            ),
            (
                "x",
                &[("EXTRA", "1")],
                Err(RenderError::UnknownValue("EXTRA".into())),
            ),
        ];
        for (template, values, want) in cases {
            let got = render(template, &vals(values));
            assert_eq!(
                got.as_deref().map_err(Clone::clone),
                want.clone(),
                "{template}"
            );
        }
    }

    #[test]
    fn shipped_templates_use_only_known_placeholders_and_render_with_defaults() {
        for template in [ENVOY_TEMPLATE, SDS_TEMPLATE] {
            let out = render(template, &defaults()).unwrap();
            assert!(!out.contains("${"), "placeholder left: {out}");
            let _: serde_yaml_ng::Value = serde_yaml_ng::from_str(&out).unwrap();
        }
    }

    #[test]
    fn every_placeholder_is_documented_and_used() {
        for (name, default) in PLACEHOLDERS {
            let token = format!("${{{name}}}");
            let used = ENVOY_TEMPLATE.contains(&token) || SDS_TEMPLATE.contains(&token);
            assert!(used, "{name} is never used");
            let documented = ENVOY_TEMPLATE
                .lines()
                .any(|l| l.starts_with('#') && l.contains(&token) && l.contains(default));
            assert!(documented, "{name} is not documented with its default");
        }
    }
}
