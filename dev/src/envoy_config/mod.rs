//! The shipped Envoy configuration (`envoy/envoy.yaml`, `envoy/sds-tls.yaml`,
//! `envoy/impersonation.lua`) and its one renderer, which the demo and
//! `kube-oidc-dev render-envoy` share.
//!
//! - [`placeholders`]: the table of `${NAME}` placeholders, read from
//!   `envoy/placeholders.yaml`, and its presets (pod, docker-compose).
//! - [`render`]: strict substitution of those placeholders.

pub mod placeholders;
pub mod render;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;

pub use placeholders::{Placeholder, Placeholders, Preset, TableError};
pub use render::RenderError;

/// The shipped Envoy configuration template.
pub const ENVOY_TEMPLATE: &str = include_str!("../../../envoy/envoy.yaml");
/// The shipped SDS template for the listener's certificate.
pub const SDS_TEMPLATE: &str = include_str!("../../../envoy/sds-tls.yaml");
/// The shipped Lua filter.
pub const IMPERSONATION_LUA: &str = include_str!("../../../envoy/impersonation.lua");
/// The clusters for an authz service apart from Envoy, over mutual TLS.
pub const REMOTE_AUTHZ_TEMPLATE: &str = include_str!("../../../envoy/remote-authz.yaml");
/// The SDS template of Envoy's client certificate for those clusters.
pub const AUTHZ_CLIENT_SDS_TEMPLATE: &str = include_str!("../../../envoy/sds-authz-client.yaml");

/// File names of a rendered set, the same as the templates' in `envoy/`.
pub const ENVOY_FILE: &str = "envoy.yaml";
pub const SDS_FILE: &str = "sds-tls.yaml";
pub const LUA_FILE: &str = "impersonation.lua";
pub const REMOTE_AUTHZ_FILE: &str = "remote-authz.yaml";
pub const AUTHZ_CLIENT_SDS_FILE: &str = "sds-authz-client.yaml";

/// The files of one Envoy set-up: the templates and the Lua filter, which
/// is copied as it is.
#[derive(Debug, Clone)]
pub struct Templates {
    pub envoy: Cow<'static, str>,
    pub sds: Cow<'static, str>,
    pub lua: Cow<'static, str>,
    pub remote_authz: Cow<'static, str>,
    pub authz_client_sds: Cow<'static, str>,
}

impl Templates {
    /// The files built into this binary.
    pub fn shipped() -> Self {
        Self {
            envoy: Cow::Borrowed(ENVOY_TEMPLATE),
            sds: Cow::Borrowed(SDS_TEMPLATE),
            lua: Cow::Borrowed(IMPERSONATION_LUA),
            remote_authz: Cow::Borrowed(REMOTE_AUTHZ_TEMPLATE),
            authz_client_sds: Cow::Borrowed(AUTHZ_CLIENT_SDS_TEMPLATE),
        }
    }

    /// The files in `dir` (named as in `envoy/`), for rendering a template
    /// being edited without rebuilding.
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path)
                .map(Cow::Owned)
                .with_context(|| format!("read {}", path.display()))
        };
        Ok(Self {
            envoy: read(ENVOY_FILE)?,
            sds: read(SDS_FILE)?,
            lua: read(LUA_FILE)?,
            remote_authz: read(REMOTE_AUTHZ_FILE)?,
            authz_client_sds: read(AUTHZ_CLIENT_SDS_FILE)?,
        })
    }

    /// Renders both templates with `values`, reporting every error (each
    /// unknown value, each template's), not only the first.
    pub fn render(
        &self,
        table: &Placeholders,
        values: &BTreeMap<String, String>,
    ) -> Result<Rendered, Vec<String>> {
        let unknown: Vec<String> = values
            .keys()
            .filter(|k| !table.is_known(k))
            .map(|k| RenderError::UnknownValue(k.clone()).to_string())
            .collect();
        if !unknown.is_empty() {
            return Err(unknown);
        }
        let one = |file: &str, template: &str| {
            table
                .render(template, values)
                .map_err(|e| format!("{file}: {e}"))
        };
        match (one(ENVOY_FILE, &self.envoy), one(SDS_FILE, &self.sds)) {
            (Ok(envoy), Ok(sds)) => Ok(Rendered {
                envoy,
                sds,
                lua: self.lua.to_string(),
                authz_client_sds: None,
            }),
            (envoy, sds) => Err(envoy.err().into_iter().chain(sds.err()).collect()),
        }
    }

    /// As [`Templates::render`], for an authz service and audit forwarder
    /// apart from Envoy: `envoy.yaml`'s clusters for them are replaced by
    /// those of `remote-authz.yaml` (mutual TLS), and
    /// `sds-authz-client.yaml` is rendered beside it.
    pub fn render_remote_authz(
        &self,
        table: &Placeholders,
        values: &BTreeMap<String, String>,
    ) -> Result<Rendered, Vec<String>> {
        let mut rendered = self.render(table, values)?;
        let one = |file: &str, template: &str| {
            table
                .render(template, values)
                .map_err(|e| format!("{file}: {e}"))
        };
        let (clusters, sds) = match (
            one(REMOTE_AUTHZ_FILE, &self.remote_authz),
            one(AUTHZ_CLIENT_SDS_FILE, &self.authz_client_sds),
        ) {
            (Ok(c), Ok(s)) => (c, s),
            (c, s) => return Err(c.err().into_iter().chain(s.err()).collect()),
        };
        rendered.envoy = replace_clusters(&rendered.envoy, &clusters).map_err(|e| vec![e])?;
        rendered.authz_client_sds = Some(sds);
        Ok(rendered)
    }
}

/// `envoy` (a rendered envoy.yaml) with each cluster of `clusters` (a
/// rendered remote-authz.yaml) in place of its namesake. A cluster without
/// a namesake is an error: the two files have drifted apart.
fn replace_clusters(envoy: &str, clusters: &str) -> Result<String, String> {
    use serde_yaml_ng::Value;
    let mut doc: Value =
        serde_yaml_ng::from_str(envoy).map_err(|e| format!("{ENVOY_FILE}: {e}"))?;
    let new: Value =
        serde_yaml_ng::from_str(clusters).map_err(|e| format!("{REMOTE_AUTHZ_FILE}: {e}"))?;
    let new = new
        .get("clusters")
        .and_then(Value::as_sequence)
        .ok_or_else(|| format!("{REMOTE_AUTHZ_FILE}: no clusters list"))?;
    let list = doc
        .get_mut("static_resources")
        .and_then(|r| r.get_mut("clusters"))
        .and_then(Value::as_sequence_mut)
        .ok_or_else(|| format!("{ENVOY_FILE}: no static_resources.clusters list"))?;
    for cluster in new {
        let name = cluster
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let slot = list
            .iter_mut()
            .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
            .ok_or_else(|| {
                format!("{REMOTE_AUTHZ_FILE}: cluster {name:?} has no namesake in {ENVOY_FILE}")
            })?;
        *slot = cluster.clone();
    }
    let body = serde_yaml_ng::to_string(&doc).map_err(|e| format!("{ENVOY_FILE}: {e}"))?;
    Ok(format!(
        "# envoy.yaml with the clusters of {REMOTE_AUTHZ_FILE} (rendered; see envoy/ for the commented templates)\n{body}"
    ))
}

/// A rendered set, ready to be written.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub envoy: String,
    pub sds: String,
    pub lua: String,
    /// `sds-authz-client.yaml`, when rendered for a remote authz service.
    pub authz_client_sds: Option<String>,
}

impl Rendered {
    /// Writes `envoy.yaml`, `sds-tls.yaml` and `impersonation.lua` into
    /// `dir`, creating it.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        for (name, text) in [
            (ENVOY_FILE, &self.envoy),
            (SDS_FILE, &self.sds),
            (LUA_FILE, &self.lua),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        }
        if let Some(text) = &self.authz_client_sds {
            let path = dir.join(AUTHZ_CLIENT_SDS_FILE);
            std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        }
        Ok(())
    }
}

/// Parses a `NAME=VALUE` placeholder assignment from the command line.
pub fn parse_assignment(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("expected NAME=VALUE, got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_assignments() {
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            ("A=1", Some(("A", "1"))),
            ("A=", Some(("A", ""))),
            ("A=b=c", Some(("A", "b=c"))),
            ("=1", None),
            ("A", None),
        ];
        for (input, want) in cases {
            let got = parse_assignment(input).ok();
            let want = want.map(|(k, v)| (k.to_owned(), v.to_owned()));
            assert_eq!(got, want, "{input}");
        }
    }

    #[test]
    fn reports_every_error() {
        let table = Placeholders::parse("A: {pod: x, description: d}").unwrap();
        let templates = Templates {
            envoy: "${B}".into(),
            sds: "${A".into(),
            lua: "".into(),
            remote_authz: "".into(),
            authz_client_sds: "".into(),
        };
        let errors = templates
            .render(&table, &table.values(Preset::Pod))
            .unwrap_err();
        assert_eq!(
            errors,
            [
                "envoy.yaml: unknown placeholder ${B} in template",
                "sds-tls.yaml: unterminated placeholder at byte 0",
            ]
        );
        let mut values = table.values(Preset::Pod);
        values.insert("X".into(), "1".into());
        values.insert("Y".into(), "1".into());
        let errors = Templates::shipped().render(&table, &values).unwrap_err();
        assert_eq!(
            errors,
            [
                "value given for X, which is not a known placeholder",
                "value given for Y, which is not a known placeholder",
            ]
        );
    }

    #[test]
    fn remote_authz_replaces_the_two_clusters_and_nothing_else() {
        use serde_yaml_ng::Value;
        let table = Placeholders::shipped().unwrap();
        let values = table.values(Preset::Pod);
        let templates = Templates::shipped();
        let local = templates.render(&table, &values).unwrap();
        let remote = templates.render_remote_authz(&table, &values).unwrap();
        let clusters = |text: &str| -> Vec<Value> {
            let doc: Value = serde_yaml_ng::from_str(text).unwrap();
            doc["static_resources"]["clusters"]
                .as_sequence()
                .unwrap()
                .clone()
        };
        let (before, after) = (clusters(&local.envoy), clusters(&remote.envoy));
        assert_eq!(before.len(), after.len());
        for (b, a) in before.iter().zip(&after) {
            let name = b["name"].as_str().unwrap();
            assert_eq!(a["name"], b["name"]);
            let tls = &a["transport_socket"]["typed_config"];
            if ["kube_oidc_authz", "audit_forwarder"].contains(&name) {
                assert_ne!(a, b, "{name}");
                assert_eq!(
                    tls["sni"],
                    Value::from("kube-oidc-authz.kube-oidc-authz.svc"),
                    "{name}"
                );
                assert_eq!(
                    tls["common_tls_context"]["tls_certificate_sds_secret_configs"][0]["name"],
                    Value::from("authz_client_certificate")
                );
            } else {
                assert_eq!(a, b, "{name} changed");
            }
        }
        let sds = remote.authz_client_sds.unwrap();
        assert!(
            sds.contains("/etc/kube-oidc-authz/authz-client/tls.crt"),
            "{sds}"
        );
        assert!(local.authz_client_sds.is_none());
    }

    #[test]
    fn a_remote_cluster_without_a_namesake_is_refused() {
        let envoy = "static_resources:\n  clusters:\n  - name: a\n";
        let err = replace_clusters(envoy, "clusters:\n- name: b\n").unwrap_err();
        assert!(err.contains("\"b\" has no namesake"), "{err}");
        let ok = replace_clusters(envoy, "clusters:\n- name: a\n  type: STATIC\n").unwrap();
        assert!(ok.contains("type: STATIC"), "{ok}");
    }
}
