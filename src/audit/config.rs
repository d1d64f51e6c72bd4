//! The validated configuration of the forwarder: [`AuditArgs::validate`]
//! checks the flags as a whole and reports every problem together.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::args::AuditArgs;
use super::batch::BatchConfig;
use super::cse::{CseConfig, RefreshToken, Secret};
use super::truncate::Limits;
use crate::tls_listener::MtlsFiles;

/// The validated configuration of the forwarder.
#[derive(Debug, Clone)]
pub struct Config {
    pub webhook_address: SocketAddr,
    pub webhook_max_body_bytes: usize,
    pub http_address: SocketAddr,
    pub als_address: SocketAddr,
    /// Mutual TLS on the access-log service, when configured.
    pub als_tls: Option<MtlsFiles>,
    pub cse: CseConfig,
    pub batch: BatchConfig,
    pub buffer_events: usize,
    pub buffer_bytes: usize,
    pub limits: Limits,
    pub spool_dir: Option<PathBuf>,
    pub shutdown_grace: Duration,
}

impl Config {
    /// A configuration with every flag default (from the `#[arg]`
    /// attributes, never the environment), for the given API and service.
    /// Listen addresses are not used by [`super::serve`], which takes bound
    /// listeners.
    pub fn new(restapi_url: &str, service_name: &str, refresh_token: RefreshToken) -> Config {
        let mut args = AuditArgs::defaults();
        args.restapi_url = restapi_url.to_owned();
        args.service_name = Some(service_name.to_owned());
        Config::from_parts(&args, refresh_token)
    }

    fn from_parts(args: &AuditArgs, refresh_token: RefreshToken) -> Config {
        Config {
            webhook_address: args.webhook_address,
            webhook_max_body_bytes: args.webhook_max_body_bytes,
            http_address: args.http_address,
            als_address: args.als_address,
            als_tls: None,
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
        let als_tls = MtlsFiles::from_flags(
            "--als-tls",
            self.als_tls_cert_file.as_deref(),
            self.als_tls_key_file.as_deref(),
            self.als_tls_client_ca_file.as_deref(),
            &mut errors,
        );
        if als_tls.is_none() && !self.als_allow_remote && !self.als_address.ip().is_loopback() {
            errors.push(format!(
                "--als-address {}: the access log service writes audit events for whoever reaches it, so it listens on a loopback address only, unless it requires client certificates (--als-tls-cert-file, --als-tls-key-file, --als-tls-client-ca-file) or --als-allow-remote=true is set",
                self.als_address
            ));
        }
        // The refresh token and every event go to this URL: never in clear
        // across a network. A stand-in API on loopback may speak plain HTTP.
        match reqwest::Url::parse(self.restapi_url.trim_end_matches('/')) {
            Ok(u)
                if u.host_str().is_some_and(|h| !h.is_empty())
                    && u.query().is_none()
                    && u.fragment().is_none() =>
            {
                match u.scheme() {
                    "https" => {}
                    "http" if crate::tls::is_loopback_url(&u) => {}
                    "http" => errors.push(format!(
                        "--restapi-url {:?}: plain http would send the CSE refresh token and the events in clear; use https (http is accepted only for a loopback address such as http://127.0.0.1:PORT)",
                        self.restapi_url
                    )),
                    _ => errors.push(format!(
                        "--restapi-url {:?}: expected an https URL such as https://net.banyanops.com",
                        self.restapi_url
                    )),
                }
            }
            _ => errors.push(format!(
                "--restapi-url {:?}: expected an https URL such as https://net.banyanops.com",
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
            Some(refresh) if errors.is_empty() => Ok(Config {
                als_tls,
                ..Config::from_parts(self, refresh)
            }),
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
    fn access_log_input_beyond_loopback_needs_the_opt_in() {
        // Anyone who reaches the access-log service can forge audit events.
        let base = ["--service-name", "k8s", "--refresh-token-file", "/t"];
        let cases: [(&[&str], bool); 5] = [
            (&["--als-address", "127.0.0.1:8084"], true),
            (&["--als-address", "[::1]:8084"], true),
            (&["--als-address", "0.0.0.0:8084"], false),
            (&["--als-address", "10.1.2.3:8084"], false),
            (
                &["--als-address", "0.0.0.0:8084", "--als-allow-remote=true"],
                true,
            ),
        ];
        for (flags, ok) in cases {
            let argv: Vec<&str> = base.iter().chain(flags).copied().collect();
            let result = parse(&argv).validate();
            assert_eq!(result.is_ok(), ok, "{flags:?}: {result:?}");
            if let Err(errors) = result {
                assert!(
                    errors.iter().any(|e| e.contains("--als-allow-remote")),
                    "{errors:?}"
                );
            }
        }
    }

    #[test]
    fn restapi_url_in_clear_only_on_loopback() {
        // The refresh token and the events must not cross a network in clear;
        // a stand-in API on loopback (tests, the demo) may speak plain HTTP.
        let cases = [
            ("https://net.banyanops.com", true),
            ("https://10.1.2.3:8443/", true),
            ("http://127.0.0.1:8080", true),
            ("http://127.1.2.3:8080", true),
            ("http://[::1]:8080", true),
            ("http://localhost:8080", true),
            ("http://net.banyanops.com", false),
            ("http://10.1.2.3:8080", false),
            ("http://localhost.example.com", false),
            ("http://127.0.0.1.example.com", false),
            ("ftp://127.0.0.1", false),
            ("https://", false),
        ];
        for (url, ok) in cases {
            let result = parse(&[
                "--restapi-url",
                url,
                "--service-name",
                "k8s",
                "--refresh-token-file",
                "/t",
            ])
            .validate();
            assert_eq!(result.is_ok(), ok, "{url}: {result:?}");
            if let Err(errors) = result {
                assert!(
                    errors.iter().all(|e| e.contains("--restapi-url")),
                    "{errors:?}"
                );
            }
        }
    }

    #[test]
    fn the_refresh_token_never_shows_in_debug_output() {
        let mut a = parse(&["--service-name", "k8s"]);
        a.refresh_token = Some(Secret::new("very-secret"));
        let c = a.validate().unwrap();
        assert!(!format!("{a:?}{c:?}").contains("very-secret"));
    }
}
