//! Flags of `kube-oidc-authz audit-forwarder`; [`super::config`] validates
//! them into a [`Config`](super::Config). Defaults follow the product guide's audit
//! settings (the apiserver's `--audit-webhook-*` flags of the same names)
//! and are stated here only, in the `#[arg]` attributes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, FromArgMatches};

use super::cse::Secret;

/// The environment variable of the old audit sidecar holding the refresh
/// token.
pub const REFRESH_TOKEN_ENV: &str = "BNN_K8S_AUDIT_PROXY_REFRESH_TOKEN";

fn refresh_token_from_env() -> Option<Secret> {
    std::env::var(REFRESH_TOKEN_ENV)
        .ok()
        .map(|v| Secret::new(&v))
}

/// Flags of `kube-oidc-authz audit-forwarder`.
#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    /// Where the audit webhook listens (HTTP, unauthenticated: keep it on
    /// loopback). Accepts POST on any path, e.g. `/events/kubernetes`.
    #[arg(
        long,
        env = "KUBE_OIDC_AUTHZ_AUDIT_WEBHOOK_ADDRESS",
        default_value = "127.0.0.1:8082"
    )]
    pub webhook_address: SocketAddr,

    /// Allow the webhook to listen on a non-loopback address. Anyone who can
    /// reach it can inject audit events.
    #[arg(long, env = "KUBE_OIDC_AUTHZ_AUDIT_WEBHOOK_ALLOW_REMOTE", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::boolean::parse)]
    pub webhook_allow_remote: bool,

    /// Largest webhook request body accepted, in bytes (413 above).
    #[arg(long, env = "KUBE_OIDC_AUTHZ_AUDIT_WEBHOOK_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub webhook_max_body_bytes: usize,

    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    #[arg(
        long,
        env = "KUBE_OIDC_AUTHZ_AUDIT_HTTP_ADDRESS",
        default_value = "0.0.0.0:8083"
    )]
    pub http_address: SocketAddr,

    /// Where Envoy's gRPC access log service
    /// (`envoy.service.accesslog.v3.AccessLogService`) listens.
    #[arg(
        long,
        env = "KUBE_OIDC_AUTHZ_AUDIT_ALS_ADDRESS",
        default_value = "127.0.0.1:8084"
    )]
    pub als_address: SocketAddr,

    /// Allow a non-loopback `--als-address`. The access-log service is
    /// unauthenticated: whoever reaches it can forge audit events.
    #[arg(long, env = "KUBE_OIDC_AUTHZ_AUDIT_ALS_ALLOW_REMOTE", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::boolean::parse)]
    pub als_allow_remote: bool,

    /// Serving certificate chain (PEM) of the access-log service. With
    /// `--als-tls-key-file` and `--als-tls-client-ca-file` it speaks TLS and
    /// admits only callers presenting a certificate from that CA, which
    /// lets it listen beyond loopback without `--als-allow-remote`.
    /// Reloaded when the files change.
    #[arg(long, env = "KUBE_OIDC_AUTHZ_AUDIT_ALS_TLS_CERT_FILE")]
    pub als_tls_cert_file: Option<PathBuf>,

    /// Private key (PEM) of `--als-tls-cert-file`.
    #[arg(long, env = "KUBE_OIDC_AUTHZ_AUDIT_ALS_TLS_KEY_FILE")]
    pub als_tls_key_file: Option<PathBuf>,

    /// CA bundle (PEM) whose client certificates the access-log service
    /// admits.
    #[arg(long, env = "KUBE_OIDC_AUTHZ_AUDIT_ALS_TLS_CLIENT_CA_FILE")]
    pub als_tls_client_ca_file: Option<PathBuf>,

    /// Base URL of the Cloud Secure Edge REST API: `https://`, or `http://`
    /// only to a loopback address (a local stand-in API, as the tests and
    /// the demo run); anything else exits 64.
    #[arg(
        long,
        env = "BNN_K8S_AUDIT_PROXY_RESTAPI_URL",
        default_value = "https://net.banyanops.com"
    )]
    pub restapi_url: String,

    /// Path, under the base URL, that batches are posted to.
    #[arg(
        long,
        env = "KUBE_OIDC_AUTHZ_AUDIT_RESTAPI_EVENTS_PATH",
        default_value = "/api/v1/events"
    )]
    pub restapi_events_path: String,

    /// Timeout of each request to the CSE API.
    #[arg(long, env = "KUBE_OIDC_AUTHZ_AUDIT_RESTAPI_TIMEOUT", default_value = "30s", value_parser = crate::duration::parse)]
    pub restapi_timeout: Duration,

    /// Lifetime assumed for an access token that does not carry its own
    /// expiry; it is renewed a fifth of this (at most a minute) early.
    #[arg(long, env = "KUBE_OIDC_AUTHZ_AUDIT_ACCESS_TOKEN_LIFETIME", default_value = "10m", value_parser = crate::duration::parse)]
    pub access_token_lifetime: Duration,

    /// Service name the events are recorded under; must match the service
    /// registered in the CSE Command Center.
    #[arg(long, env = "BNN_K8S_AUDIT_PROXY_SERVICE_NAME")]
    pub service_name: Option<String>,

    /// File holding the CSE refresh token (re-read at every exchange).
    #[arg(long, env = "KUBE_OIDC_AUTHZ_AUDIT_REFRESH_TOKEN_FILE")]
    pub refresh_token_file: Option<PathBuf>,

    /// The CSE refresh token itself, from `BNN_K8S_AUDIT_PROXY_REFRESH_TOKEN`
    /// only: never a flag, whose value any local user could read in the
    /// process list.
    #[arg(skip = refresh_token_from_env())]
    pub refresh_token: Option<Secret>,

    /// Maximum events per batch.
    #[arg(
        long,
        env = "KUBE_OIDC_AUTHZ_AUDIT_BATCH_MAX_SIZE",
        default_value_t = 400
    )]
    pub audit_batch_max_size: usize,

    /// Maximum time an event waits before its batch is sent.
    #[arg(long, env = "KUBE_OIDC_AUTHZ_AUDIT_BATCH_MAX_WAIT", default_value = "300s", value_parser = crate::duration::parse)]
    pub audit_batch_max_wait: Duration,

    /// Maximum events waiting to be sent; further events are dropped and
    /// counted.
    #[arg(
        long,
        env = "KUBE_OIDC_AUTHZ_AUDIT_BATCH_BUFFER_SIZE",
        default_value_t = 10000
    )]
    pub audit_batch_buffer_size: usize,

    /// Maximum bytes of events waiting to be sent.
    #[arg(long, env = "KUBE_OIDC_AUTHZ_AUDIT_BATCH_BUFFER_MAX_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub audit_batch_buffer_max_bytes: usize,

    /// Batches sent per second, on average (0: unlimited).
    #[arg(
        long,
        env = "KUBE_OIDC_AUTHZ_AUDIT_BATCH_THROTTLE_QPS",
        default_value_t = 4.0
    )]
    pub audit_batch_throttle_qps: f64,

    /// Batches that may be sent at once after a quiet period.
    #[arg(
        long,
        env = "KUBE_OIDC_AUTHZ_AUDIT_BATCH_THROTTLE_BURST",
        default_value_t = 4
    )]
    pub audit_batch_throttle_burst: u32,

    /// Wait before the first retry of a failed batch; later waits grow by
    /// 1.5 with ±20 % jitter.
    #[arg(long, env = "KUBE_OIDC_AUTHZ_AUDIT_INITIAL_BACKOFF", default_value = "30s", value_parser = crate::duration::parse)]
    pub audit_initial_backoff: Duration,

    /// Longest wait between retries.
    #[arg(long, env = "KUBE_OIDC_AUTHZ_AUDIT_MAX_BACKOFF", default_value = "5m", value_parser = crate::duration::parse)]
    pub audit_max_backoff: Duration,

    /// Truncate events over the maximum event size (request and response
    /// objects first), as the apiserver's truncate backend does.
    #[arg(long, env = "KUBE_OIDC_AUTHZ_AUDIT_TRUNCATE_ENABLED", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::boolean::parse)]
    pub audit_truncate_enabled: bool,

    /// Maximum size of one serialized event, in bytes.
    #[arg(
        long,
        env = "KUBE_OIDC_AUTHZ_AUDIT_TRUNCATE_MAX_EVENT_SIZE",
        default_value_t = 102_400
    )]
    pub audit_truncate_max_event_size: usize,

    /// Maximum size of one batch body, in bytes (the batch byte ceiling).
    #[arg(
        long,
        env = "KUBE_OIDC_AUTHZ_AUDIT_TRUNCATE_MAX_BATCH_SIZE",
        default_value_t = 10_485_760
    )]
    pub audit_truncate_max_batch_size: usize,

    /// Directory where undelivered events are kept across restarts.
    #[arg(long, env = "KUBE_OIDC_AUTHZ_AUDIT_SPOOL_DIR")]
    pub audit_spool_dir: Option<PathBuf>,

    /// How long a shutdown may spend delivering buffered events.
    #[arg(long, env = "KUBE_OIDC_AUTHZ_AUDIT_SHUTDOWN_GRACE_PERIOD", default_value = "25s", value_parser = crate::duration::parse)]
    pub shutdown_grace_period: Duration,
}

impl AuditArgs {
    /// Every flag at its `default_value`, whatever the environment holds,
    /// and no refresh token: the base of [`Config::new`](super::Config::new).
    pub fn defaults() -> AuditArgs {
        let command = AuditArgs::augment_args(clap::Command::new("audit-forwarder"))
            .mut_args(|arg| arg.env(None::<&'static str>));
        // Invariant: every default parses, which the tests of this module
        // and of `config` check; a failure here is a bug in the attributes.
        #[allow(clippy::expect_used)]
        let mut args = command
            .try_get_matches_from(["audit-forwarder"])
            .and_then(|m| AuditArgs::from_arg_matches(&m))
            .expect("the audit-forwarder flag defaults parse");
        args.refresh_token = None;
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_without_flags() {
        // The values themselves are checked in `config::tests`.
        let d = AuditArgs::defaults();
        assert_eq!(d.webhook_address.to_string(), "127.0.0.1:8082");
        assert!(d.service_name.is_none() && d.refresh_token.is_none());
    }
}
