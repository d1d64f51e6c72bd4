//! Flags of `kube-oidc-authz audit-forwarder`, and their validation into a
//! [`Config`]. Defaults follow the product guide's audit settings (the
//! apiserver's `--audit-webhook-*` flags of the same names).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::batch::BatchConfig;
use super::cse::{CseConfig, RefreshToken, Secret};
use super::truncate::Limits;

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
    #[arg(long, env = "KUBE_OIDC_AUTHZ_AUDIT_WEBHOOK_ALLOW_REMOTE", default_value_t = false, action = clap::ArgAction::Set)]
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

    /// Base URL of the Cloud Secure Edge REST API.
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
    #[arg(long, env = "KUBE_OIDC_AUTHZ_AUDIT_TRUNCATE_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
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

/// The validated configuration of the forwarder.
#[derive(Debug, Clone)]
pub struct Config {
    pub webhook_address: SocketAddr,
    pub webhook_max_body_bytes: usize,
    pub http_address: SocketAddr,
    pub als_address: SocketAddr,
    pub cse: CseConfig,
    pub batch: BatchConfig,
    pub buffer_events: usize,
    pub buffer_bytes: usize,
    pub limits: Limits,
    pub spool_dir: Option<PathBuf>,
    pub shutdown_grace: Duration,
}

impl Config {
    /// A configuration with every default, for the given API and service.
    /// Listen addresses are not used by [`super::serve`], which takes bound
    /// listeners.
    pub fn new(restapi_url: &str, service_name: &str, refresh_token: RefreshToken) -> Config {
        let args = AuditArgs {
            webhook_address: SocketAddr::from(([127, 0, 0, 1], 8082)),
            webhook_allow_remote: false,
            webhook_max_body_bytes: 16 * 1024 * 1024,
            http_address: SocketAddr::from(([0, 0, 0, 0], 8083)),
            als_address: SocketAddr::from(([127, 0, 0, 1], 8084)),
            restapi_url: restapi_url.to_owned(),
            restapi_events_path: "/api/v1/events".to_owned(),
            restapi_timeout: Duration::from_secs(30),
            access_token_lifetime: Duration::from_secs(600),
            service_name: Some(service_name.to_owned()),
            refresh_token_file: None,
            refresh_token: None,
            audit_batch_max_size: 400,
            audit_batch_max_wait: Duration::from_secs(300),
            audit_batch_buffer_size: 10_000,
            audit_batch_buffer_max_bytes: 32 * 1024 * 1024,
            audit_batch_throttle_qps: 4.0,
            audit_batch_throttle_burst: 4,
            audit_initial_backoff: Duration::from_secs(30),
            audit_max_backoff: Duration::from_secs(300),
            audit_truncate_enabled: true,
            audit_truncate_max_event_size: 102_400,
            audit_truncate_max_batch_size: 10_485_760,
            audit_spool_dir: None,
            shutdown_grace_period: Duration::from_secs(25),
        };
        Config::from_parts(&args, refresh_token)
    }

    fn from_parts(args: &AuditArgs, refresh_token: RefreshToken) -> Config {
        Config {
            webhook_address: args.webhook_address,
            webhook_max_body_bytes: args.webhook_max_body_bytes,
            http_address: args.http_address,
            als_address: args.als_address,
            cse: CseConfig {
                restapi_url: args.restapi_url.trim_end_matches('/').to_owned(),
                events_path: args.restapi_events_path.clone(),
                service_name: args.service_name.clone().unwrap_or_default(),
                refresh_token,
                timeout: args.restapi_timeout,
                token_lifetime: args.access_token_lifetime,
            },
            batch: BatchConfig {
                max_events: args.audit_batch_max_size,
                max_wait: args.audit_batch_max_wait,
                max_bytes: args.audit_truncate_max_batch_size,
                throttle_qps: args.audit_batch_throttle_qps,
                throttle_burst: args.audit_batch_throttle_burst,
                initial_backoff: args.audit_initial_backoff,
                max_backoff: args.audit_max_backoff,
            },
            buffer_events: args.audit_batch_buffer_size,
            buffer_bytes: args.audit_batch_buffer_max_bytes,
            limits: Limits {
                enabled: args.audit_truncate_enabled,
                max_event_bytes: args.audit_truncate_max_event_size,
            },
            spool_dir: args.audit_spool_dir.clone(),
            shutdown_grace: args.shutdown_grace_period,
        }
    }
}

impl AuditArgs {
    /// Validates the flags as a whole; every problem found is listed.
    pub fn validate(&self) -> Result<Config, Vec<String>> {
        let mut errors = Vec::new();
        if !self.webhook_allow_remote && !self.webhook_address.ip().is_loopback() {
            errors.push(format!(
                "--webhook-address {}: the webhook is unauthenticated and must listen on a loopback address (set --webhook-allow-remote=true to override)",
                self.webhook_address
            ));
        }
        let url = self.restapi_url.trim_end_matches('/');
        match url.split_once("://") {
            Some(("https" | "http", rest)) if !rest.is_empty() && !rest.contains(['?', '#']) => {}
            _ => errors.push(format!(
                "--restapi-url {:?}: expected an http(s) URL such as https://net.banyanops.com",
                self.restapi_url
            )),
        }
        if !self.restapi_events_path.starts_with('/') {
            errors.push(format!(
                "--restapi-events-path {:?}: must start with /",
                self.restapi_events_path
            ));
        }
        if self
            .service_name
            .as_deref()
            .is_none_or(|s| s.trim().is_empty())
        {
            errors.push(
                "--service-name (or BNN_K8S_AUDIT_PROXY_SERVICE_NAME) is required: the service name registered in the CSE Command Center".into(),
            );
        }
        let refresh = match (&self.refresh_token_file, &self.refresh_token) {
            (Some(_), Some(_)) => {
                errors.push(
                    "give the refresh token either with --refresh-token-file or BNN_K8S_AUDIT_PROXY_REFRESH_TOKEN, not both".into(),
                );
                None
            }
            (Some(path), None) => Some(RefreshToken::File(path.clone())),
            (None, Some(s)) if !s.expose().trim().is_empty() => {
                Some(RefreshToken::Value(Secret::new(s.expose().trim())))
            }
            _ => {
                errors.push(
                    "a CSE refresh token is required: --refresh-token-file or BNN_K8S_AUDIT_PROXY_REFRESH_TOKEN".into(),
                );
                None
            }
        };
        let positive = [
            ("--audit-batch-max-size", self.audit_batch_max_size),
            ("--audit-batch-buffer-size", self.audit_batch_buffer_size),
            (
                "--audit-batch-buffer-max-bytes",
                self.audit_batch_buffer_max_bytes,
            ),
            (
                "--audit-truncate-max-event-size",
                self.audit_truncate_max_event_size,
            ),
            (
                "--audit-truncate-max-batch-size",
                self.audit_truncate_max_batch_size,
            ),
            ("--webhook-max-body-bytes", self.webhook_max_body_bytes),
        ];
        for (name, v) in positive {
            if v == 0 {
                errors.push(format!("{name} must be greater than 0"));
            }
        }
        if !(self.audit_batch_throttle_qps.is_finite() && self.audit_batch_throttle_qps >= 0.0) {
            errors.push("--audit-batch-throttle-qps must be 0 (unlimited) or positive".into());
        }
        if self.audit_batch_throttle_burst == 0 {
            errors.push("--audit-batch-throttle-burst must be greater than 0".into());
        }
        if self.audit_initial_backoff.is_zero() {
            errors.push("--audit-initial-backoff must be greater than 0".into());
        }
        if self.audit_max_backoff < self.audit_initial_backoff {
            errors.push(
                "--audit-max-backoff must not be shorter than --audit-initial-backoff".into(),
            );
        }
        if self.restapi_timeout.is_zero() {
            errors.push("--restapi-timeout must be greater than 0".into());
        }
        if self.audit_truncate_max_event_size > self.audit_truncate_max_batch_size {
            errors.push(
                "--audit-truncate-max-event-size must not exceed --audit-truncate-max-batch-size"
                    .into(),
            );
        }
        match refresh {
            Some(refresh) if errors.is_empty() => Ok(Config::from_parts(self, refresh)),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: AuditArgs,
    }

    fn parse(argv: &[&str]) -> AuditArgs {
        Cli::try_parse_from(std::iter::once("x").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn defaults_are_the_product_guides() {
        let a = parse(&["--service-name", "k8s", "--refresh-token-file", "/t"]);
        let c = a.validate().unwrap();
        assert_eq!(c.webhook_address.to_string(), "127.0.0.1:8082");
        assert_eq!(c.http_address.to_string(), "0.0.0.0:8083");
        assert_eq!(c.als_address.to_string(), "127.0.0.1:8084");
        assert_eq!(c.cse.restapi_url, "https://net.banyanops.com");
        assert_eq!(c.batch.max_events, 400);
        assert_eq!(c.batch.max_wait, Duration::from_secs(300));
        assert_eq!(c.buffer_events, 10000);
        assert_eq!(c.batch.throttle_qps, 4.0);
        assert_eq!(c.batch.throttle_burst, 4);
        assert_eq!(c.batch.initial_backoff, Duration::from_secs(30));
        assert!(c.limits.enabled);
    }

    #[test]
    fn config_new_has_the_flag_defaults() {
        let parsed = parse(&[
            "--restapi-url",
            "https://cse.example",
            "--service-name",
            "k8s",
            "--refresh-token-file",
            "/t",
        ])
        .validate()
        .unwrap();
        let built = Config::new(
            "https://cse.example",
            "k8s",
            RefreshToken::File("/t".into()),
        );
        assert_eq!(format!("{parsed:?}"), format!("{built:?}"));
    }

    #[test]
    fn every_problem_is_reported_together() {
        let a = parse(&[
            "--webhook-address",
            "0.0.0.0:8082",
            "--restapi-url",
            "ftp://x",
            "--audit-batch-max-size",
            "0",
            "--audit-truncate-enabled=false",
        ]);
        let errors = a.validate().unwrap_err();
        let joined = errors.join("\n");
        for needle in [
            "--webhook-address",
            "--restapi-url",
            "--service-name",
            "refresh token",
            "--audit-batch-max-size",
        ] {
            assert!(joined.contains(needle), "{needle} missing in {joined}");
        }
        assert_eq!(errors.len(), 5);
    }

    #[test]
    fn the_refresh_token_never_shows_in_debug_output() {
        let mut a = parse(&["--service-name", "k8s"]);
        a.refresh_token = Some(Secret::new("very-secret"));
        let c = a.validate().unwrap();
        assert!(!format!("{a:?}{c:?}").contains("very-secret"));
    }
}
