//! The demo's audit path: the stand-in CSE API and the audit forwarder fed
//! by Envoy's gRPC access log. It is optional: when either does not start,
//! the demo runs without it.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;

use super::manifest::AuditInfo;
use super::roles::{Bins, Roles, free_ports, get_ok, loopback};
use crate::certs::write_pem;

/// The service name the demo's forwarder reports.
pub(super) const SERVICE_NAME: &str = "kube-oidc-authz-demo";

/// Starts the stand-in CSE API and the audit forwarder, its access log
/// service on `als_port`, flushing a batch at least every `batch_max_wait`.
/// Returns `None`, leaving neither running, when they do not start.
pub(super) async fn start(
    bins: &Bins,
    dir: &Path,
    als_port: u16,
    batch_max_wait: &str,
    extra_args: &[String],
    roles: &mut Roles,
) -> anyhow::Result<Option<AuditInfo>> {
    let [cse_port, http_port, webhook_port] = free_ports()?;
    let refresh_token_file = dir.join("cse-refresh-token");
    if !refresh_token_file.is_file() {
        let bytes: [u8; 24] = rand::random();
        write_pem(
            &refresh_token_file,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
            true,
        )?;
    }
    let token = std::fs::read_to_string(&refresh_token_file).context("read refresh token")?;
    let cse_url = format!("http://{}", loopback(cse_port));
    roles.spawn(
        "cse",
        &bins.dev,
        &[
            "stand-in-cse".into(),
            "--listen".into(),
            loopback(cse_port),
            // One argument with `=`: a random token may begin with `-`,
            // which clap would take for a flag.
            format!("--refresh-token={}", token.trim()),
        ],
        &[("http", loopback(cse_port))],
    )?;
    let cse_up = || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", cse_port))
            .await
            .is_ok()
    };
    if !roles.wait_ready("cse", cse_up).await? {
        roles.forget("cse");
        return Ok(None);
    }
    let mut argv: Vec<String> = vec![
        "audit-forwarder".into(),
        "--webhook-address".into(),
        loopback(webhook_port),
        "--http-address".into(),
        loopback(http_port),
        "--als-address".into(),
        loopback(als_port),
        "--restapi-url".into(),
        cse_url.clone(),
        "--service-name".into(),
        SERVICE_NAME.into(),
        "--refresh-token-file".into(),
        refresh_token_file.display().to_string(),
        "--audit-spool-dir".into(),
        dir.join("audit-spool").display().to_string(),
        "--audit-batch-max-wait".into(),
        batch_max_wait.into(),
    ];
    argv.extend(extra_args.iter().cloned());
    roles.spawn(
        "audit-forwarder",
        &bins.product,
        &argv,
        &[
            ("webhook", loopback(webhook_port)),
            ("http", loopback(http_port)),
            ("als", loopback(als_port)),
        ],
    )?;
    let plain = kube_oidc_authz::tls::https_client(None, Duration::from_secs(2))?;
    let readyz = format!("http://{}/readyz", loopback(http_port));
    if !roles
        .wait_ready("audit-forwarder", || get_ok(&plain, &readyz))
        .await?
    {
        roles.forget("audit-forwarder");
        if let Some(mut cse) = roles.forget("cse") {
            let _ = cse.start_kill();
            let _ = cse.wait().await;
        }
        return Ok(None);
    }
    Ok(Some(AuditInfo {
        cse_url,
        service_name: SERVICE_NAME.to_owned(),
        refresh_token_file,
    }))
}
