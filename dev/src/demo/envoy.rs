//! Envoy in the demo: the shipped configuration rendered with the demo's
//! ports and files, and a serving certificate from a CA of the demo's own
//! (which the kubeconfig trusts).

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;

use super::manifest::EnvoyInfo;
use super::mtls::{self, MtlsFiles};
use super::roles::{Roles, get_ok, loopback};
use crate::certs::{DevCa, write_pem};
use crate::envoy_config::{
    AUTHZ_CLIENT_SDS_FILE, ENVOY_FILE, LUA_FILE, Placeholders, Preset, SDS_FILE, Templates,
};

/// How often Envoy writes its buffered access log to logs/envoy.log.
const ACCESS_LOG_FLUSH_MSEC: &str = "200";

/// Where Envoy listens and what it talks to, all on 127.0.0.1.
pub(super) struct Ports {
    pub listen: u16,
    pub admin: u16,
    pub authz_grpc: u16,
    pub apiserver: u16,
    pub als: u16,
}

/// Writes the certificate and the rendered configuration under
/// `<dir>/envoy`, starts Envoy and waits until it is ready. `overrides`
/// (placeholder → value) go over the demo's own values.
pub(super) async fn start(
    envoy: &Path,
    dir: &Path,
    ports: &Ports,
    apiserver_ca: &Path,
    mtls: Option<&MtlsFiles>,
    overrides: &[(String, String)],
    roles: &mut Roles,
) -> anyhow::Result<EnvoyInfo> {
    let config_dir = dir.join("envoy");
    let tls_dir = config_dir.join("tls");
    std::fs::create_dir_all(&tls_dir).with_context(|| format!("create {}", tls_dir.display()))?;
    let ca = DevCa::generate("kube-oidc-authz demo CA")?;
    let serving = ca.issue("kube-oidc-authz demo", &["127.0.0.1", "localhost"])?;
    let ca_file = dir.join("ca.crt");
    write_pem(&ca_file, ca.cert_pem(), false)?;
    write_pem(&tls_dir.join("tls.crt"), &serving.cert_pem, false)?;
    write_pem(&tls_dir.join("tls.key"), &serving.key_pem, true)?;

    let table = Placeholders::shipped()?;
    let path = |p: &Path| p.display().to_string();
    let mut values = table.values(Preset::Pod);
    for (k, v) in [
        ("ENVOY_LISTEN_ADDRESS", "127.0.0.1".to_owned()),
        ("ENVOY_LISTEN_PORT", ports.listen.to_string()),
        ("ENVOY_ADMIN_PORT", ports.admin.to_string()),
        ("TLS_CERT_FILE", path(&tls_dir.join("tls.crt"))),
        ("TLS_KEY_FILE", path(&tls_dir.join("tls.key"))),
        ("TLS_WATCH_DIR", path(&tls_dir)),
        ("SDS_TLS_FILE", path(&config_dir.join(SDS_FILE))),
        ("AUTHZ_ADDRESS", "127.0.0.1".to_owned()),
        ("AUTHZ_PORT", ports.authz_grpc.to_string()),
        ("APISERVER_ADDRESS", "127.0.0.1".to_owned()),
        ("APISERVER_PORT", ports.apiserver.to_string()),
        ("APISERVER_CA_FILE", path(apiserver_ca)),
        ("AUDIT_ALS_ADDRESS", "127.0.0.1".to_owned()),
        ("AUDIT_ALS_PORT", ports.als.to_string()),
        ("LUA_FILE", path(&config_dir.join(LUA_FILE))),
    ] {
        values.insert(k.to_owned(), v);
    }
    if let Some(m) = mtls {
        for (k, v) in [
            ("AUTHZ_TLS_SERVER_NAME", mtls::SERVER_NAME.to_owned()),
            (
                "AUTHZ_TLS_CLIENT_CERT_FILE",
                path(&m.client_dir.join("tls.crt")),
            ),
            (
                "AUTHZ_TLS_CLIENT_KEY_FILE",
                path(&m.client_dir.join("tls.key")),
            ),
            ("AUTHZ_TLS_CA_FILE", path(&m.client_dir.join("ca.crt"))),
            ("AUTHZ_TLS_WATCH_DIR", path(&m.client_dir)),
            (
                "AUTHZ_TLS_SDS_FILE",
                path(&config_dir.join(AUTHZ_CLIENT_SDS_FILE)),
            ),
        ] {
            values.insert(k.to_owned(), v);
        }
    }
    values.extend(overrides.iter().cloned());
    let templates = Templates::shipped();
    match mtls {
        Some(_) => templates.render_remote_authz(&table, &values),
        None => templates.render(&table, &values),
    }
    .map_err(|errors| anyhow::anyhow!("render the Envoy configuration: {}", errors.join("; ")))?
    .write(&config_dir)?;

    let config = config_dir.join(ENVOY_FILE);
    roles.spawn(
        "envoy",
        envoy,
        &[
            "-c".into(),
            path(&config),
            "--disable-hot-restart".into(),
            "--log-level".into(),
            "warn".into(),
            // The access log reaches logs/envoy.log while one watches, not
            // after Envoy's default 10 s.
            "--file-flush-interval-msec".into(),
            ACCESS_LOG_FLUSH_MSEC.into(),
        ],
        &[
            ("https", loopback(ports.listen)),
            ("admin", loopback(ports.admin)),
        ],
    )?;
    let admin_url = format!("http://{}", loopback(ports.admin));
    let plain = kube_oidc_authz::tls::https_client(None, Duration::from_secs(2))?;
    let ready = format!("{admin_url}/ready");
    roles
        .require_ready("envoy", || get_ok(&plain, &ready))
        .await?;
    Ok(EnvoyInfo {
        url: format!("https://{}", loopback(ports.listen)),
        ca_file,
        admin_url,
        config_dir,
        tls_dir,
    })
}
