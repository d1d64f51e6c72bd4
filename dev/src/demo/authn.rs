//! `demo --authentication-config`: a Kubernetes `AuthenticationConfiguration`
//! for the authz service instead of the `--oidc-*` flags, with every `jwt`
//! issuer pointed at the development issuer (its URL and CA), and the extra
//! keys its claim mappings set, which the stand-in apiserver lets the proxy
//! impersonate exactly as the Helm chart's ClusterRole does (plus the
//! credential id the authz service adds).

use std::path::Path;

use anyhow::Context as _;
use serde_yaml_ng::Value;

use kube_oidc_authz::k8s::user_info::CREDENTIAL_ID_EXTRA;

/// A read configuration, not yet pointed at the issuer.
pub struct AuthnConfig {
    doc: Value,
}

impl AuthnConfig {
    pub fn read(path: &Path) -> anyhow::Result<AuthnConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--authentication-config {}", path.display()))?;
        let doc: Value = serde_yaml_ng::from_str(&text)
            .with_context(|| format!("--authentication-config {}", path.display()))?;
        if !doc.get("jwt").is_some_and(Value::is_sequence) {
            anyhow::bail!("--authentication-config {}: no jwt list", path.display());
        }
        Ok(AuthnConfig { doc })
    }

    /// The credential id and every `claimMappings.extra[].key`.
    pub fn extra_keys(&self) -> Vec<String> {
        let mut keys = vec![CREDENTIAL_ID_EXTRA.to_owned()];
        for jwt in self.jwts() {
            let extras = jwt
                .get("claimMappings")
                .and_then(|m| m.get("extra"))
                .and_then(Value::as_sequence);
            for e in extras.into_iter().flatten() {
                if let Some(k) = e.get("key").and_then(Value::as_str) {
                    keys.push(k.to_owned());
                }
            }
        }
        keys.sort();
        keys.dedup();
        keys
    }

    fn jwts(&self) -> impl Iterator<Item = &Value> {
        self.doc
            .get("jwt")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
    }

    /// Writes the configuration to `out` with each issuer's `url` and
    /// `certificateAuthority` set to the development issuer's.
    pub fn write_for_issuer(&self, out: &Path, url: &str, ca_file: &Path) -> anyhow::Result<()> {
        let ca = std::fs::read_to_string(ca_file)
            .with_context(|| format!("read {}", ca_file.display()))?;
        let mut doc = self.doc.clone();
        if let Some(jwts) = doc.get_mut("jwt").and_then(Value::as_sequence_mut) {
            for jwt in jwts {
                if let Some(map) = jwt.as_mapping_mut() {
                    let issuer = map
                        .entry(Value::from("issuer"))
                        .or_insert_with(|| Value::Mapping(Default::default()));
                    if let Some(issuer) = issuer.as_mapping_mut() {
                        issuer.insert(Value::from("url"), Value::from(url));
                        issuer.insert(
                            Value::from("certificateAuthority"),
                            Value::from(ca.as_str()),
                        );
                    }
                }
            }
        }
        let text = serde_yaml_ng::to_string(&doc).context("authentication config")?;
        std::fs::write(out, text).with_context(|| format!("write {}", out.display()))
    }
}
