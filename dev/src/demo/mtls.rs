//! `demo --authz-mtls`: certificates for the Check port and the access-log
//! input with mutual TLS, from a CA of their own, laid out as the chart's
//! Secrets would be (server: tls.crt, tls.key and the client CA; Envoy's
//! client: tls.crt, tls.key and the CA that verifies the server).

use std::path::{Path, PathBuf};

use crate::certs::{DevCa, write_pem};

/// The name in the service's certificate, which Envoy checks.
pub(super) const SERVER_NAME: &str = "localhost";

/// Where the files are.
pub(super) struct MtlsFiles {
    pub server_dir: PathBuf,
    pub client_dir: PathBuf,
}

impl MtlsFiles {
    /// The three flags of a listener with stem `flag` (`--grpc-tls`,
    /// `--als-tls`).
    pub fn server_flags(&self, flag: &str) -> Vec<String> {
        let file = |name: &str| self.server_dir.join(name).display().to_string();
        vec![
            format!("{flag}-cert-file={}", file("tls.crt")),
            format!("{flag}-key-file={}", file("tls.key")),
            format!("{flag}-client-ca-file={}", file("ca.crt")),
        ]
    }
}

/// Writes a new CA, the service's certificate and Envoy's client
/// certificate under `<dir>/authz-mtls`.
pub(super) fn generate(dir: &Path) -> anyhow::Result<MtlsFiles> {
    let root = dir.join("authz-mtls");
    let files = MtlsFiles {
        server_dir: root.join("server"),
        client_dir: root.join("envoy-client"),
    };
    let ca = DevCa::generate("kube-oidc-authz demo Check-port CA")?;
    let server = ca.issue("kube-oidc-authz", &[SERVER_NAME, "127.0.0.1"])?;
    let client = ca.issue("envoy", &[])?;
    for (d, cert) in [(&files.server_dir, &server), (&files.client_dir, &client)] {
        std::fs::create_dir_all(d)?;
        write_pem(&d.join("tls.crt"), &cert.cert_pem, false)?;
        write_pem(&d.join("tls.key"), &cert.key_pem, true)?;
        write_pem(&d.join("ca.crt"), ca.cert_pem(), false)?;
    }
    Ok(files)
}
