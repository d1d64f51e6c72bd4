//! `<dir>/stack.json`: what the demo started and where, for whatever drives
//! the stack from outside (the end-to-end tests, a benchmark, a curious
//! user). It is written once every role is ready and removed when the demo
//! stops, so while it exists its pids and addresses are current. Paths are
//! absolute; addresses are `host:port`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;

/// The manifest's file name inside the demo folder.
pub const MANIFEST_FILE: &str = "stack.json";

/// The whole manifest.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    /// The demo's own process id; SIGTERM or SIGINT to it stops everything.
    pub pid: u32,
    /// The demo folder.
    pub dir: PathBuf,
    /// The folder of every role's log.
    pub logs: PathBuf,
    /// A kubeconfig for alice through Envoy.
    pub kubeconfig: PathBuf,
    pub envoy: EnvoyInfo,
    pub issuer: IssuerInfo,
    pub apiserver: ApiserverInfo,
    /// `None` when the audit forwarder was not asked for or did not start.
    pub audit: Option<AuditInfo>,
    /// The running roles, in start order.
    pub roles: Vec<RoleRecord>,
}

/// Envoy with the shipped configuration.
#[derive(Debug, Clone, Serialize)]
pub struct EnvoyInfo {
    /// The TLS listener kubectl talks to.
    pub url: String,
    /// The CA that signed the listener's certificate.
    pub ca_file: PathBuf,
    /// Envoy's admin interface (plain HTTP).
    pub admin_url: String,
    /// The rendered envoy.yaml, sds-tls.yaml and impersonation.lua.
    pub config_dir: PathBuf,
    /// `TLS_WATCH_DIR`: tls.crt and tls.key, reloaded when replaced.
    pub tls_dir: PathBuf,
}

/// The development OIDC issuer.
#[derive(Debug, Clone, Serialize)]
pub struct IssuerInfo {
    pub url: String,
    pub ca_file: PathBuf,
    /// An ID token for alice@example.com.
    pub alice_token_file: PathBuf,
}

/// The stand-in apiserver.
#[derive(Debug, Clone, Serialize)]
pub struct ApiserverInfo {
    pub url: String,
    pub ca_file: PathBuf,
    /// The proxy's service-account token, which the authz service sends
    /// upstream.
    pub token_file: PathBuf,
    /// A CI job's service-account token (system:serviceaccount:ci:deployer)
    /// meant for the stand-in: what token passthrough forwards.
    pub ci_token_file: PathBuf,
    /// The same account's token for another audience (`vault`), which the
    /// stand-in refuses.
    pub ci_token_other_audience_file: PathBuf,
}

/// The audit forwarder's destination, the stand-in CSE API.
#[derive(Debug, Clone, Serialize)]
pub struct AuditInfo {
    /// The stand-in CSE API; `/_stand-in/batches` lists what it received.
    pub cse_url: String,
    /// The service name the forwarder reports.
    pub service_name: String,
    pub refresh_token_file: PathBuf,
}

/// One running role.
#[derive(Debug, Clone, Serialize)]
pub struct RoleRecord {
    pub name: String,
    /// The program and its arguments; starting them again gives the same
    /// role on the same addresses.
    pub argv: Vec<String>,
    pub pid: Option<u32>,
    /// Its stdout and stderr.
    pub log: PathBuf,
    /// What it listens on, by purpose (`grpc`, `http`, `https`, ...).
    pub addresses: BTreeMap<String, String>,
}

impl Manifest {
    /// Writes the manifest into `dir` at once (a temporary file renamed
    /// into place), so a reader never sees half of it.
    pub fn write(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        let path = dir.join(MANIFEST_FILE);
        let tmp = dir.join(format!(".{MANIFEST_FILE}.tmp"));
        let json = serde_json::to_string_pretty(self).context("manifest")?;
        std::fs::write(&tmp, json + "\n").with_context(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("write {}", path.display()))?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_whole_under_its_name() {
        let dir = std::env::temp_dir().join(format!("manifest-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let manifest = Manifest {
            pid: 1,
            dir: dir.clone(),
            logs: dir.join("logs"),
            kubeconfig: dir.join("kubeconfig"),
            envoy: EnvoyInfo {
                url: "https://127.0.0.1:1".into(),
                ca_file: dir.join("ca.crt"),
                admin_url: "http://127.0.0.1:2".into(),
                config_dir: dir.join("envoy"),
                tls_dir: dir.join("envoy/tls"),
            },
            issuer: IssuerInfo {
                url: "https://127.0.0.1:3".into(),
                ca_file: dir.join("issuer/ca.crt"),
                alice_token_file: dir.join("issuer/alice.token"),
            },
            apiserver: ApiserverInfo {
                url: "https://127.0.0.1:4".into(),
                ca_file: dir.join("apiserver/ca.crt"),
                token_file: dir.join("apiserver/token"),
                ci_token_file: dir.join("apiserver/ci-token"),
                ci_token_other_audience_file: dir.join("apiserver/ci-token-other-audience"),
            },
            audit: None,
            roles: vec![RoleRecord {
                name: "authz".into(),
                argv: vec!["kube-oidc-authz".into(), "authz".into()],
                pid: Some(2),
                log: dir.join("logs/authz.log"),
                addresses: [("grpc".to_owned(), "127.0.0.1:5".to_owned())].into(),
            }],
        };
        let path = manifest.write(&dir).unwrap();
        assert_eq!(path, dir.join(MANIFEST_FILE));
        let back: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back["roles"][0]["addresses"]["grpc"], "127.0.0.1:5");
        assert_eq!(back["audit"], serde_json::Value::Null);
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "a temporary file was left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
