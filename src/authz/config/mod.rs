//! The authz service's validated configuration: built once from flags or a
//! Kubernetes `AuthenticationConfiguration`, with every problem reported
//! together (the process then exits 64).
//!
//! [`issuer`] holds one issuer's settings and the legacy `--oidc-*` flags;
//! [`authn_file`] parses the `AuthenticationConfiguration` file.

pub mod authn_file;
pub mod issuer;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use super::args::AuthzArgs;

use crate::tls_listener::MtlsFiles;
pub use authn_file::parse_authentication_config;
pub use issuer::{ClaimMapping, IssuerConfig, legacy_username_prefix};

/// Everything the service needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub issuers: Vec<IssuerConfig>,
    pub credential_id_extra: bool,
    pub refuse_system_identities: bool,
    pub passthrough: Option<PassthroughConfig>,
    pub impersonation: Option<ImpersonationConfig>,
    /// The apiserver reviews are sent to, when a feature needs one.
    pub apiserver: ApiserverConfig,
    pub client_ip_extra: bool,
    pub static_extras: BTreeMap<String, Vec<String>>,
    pub trusted_proxies: Vec<IpNet>,
    pub upstream_token_file: PathBuf,
    pub cache_max_entries: u64,
    pub jwks_min_refresh_interval: Duration,
    pub jwks_unknown_kid_max_wait: Duration,
    pub jwks_refresh_interval: Duration,
    /// Mutual TLS on the Check port, when configured.
    pub grpc_tls: Option<MtlsFiles>,
}

/// Token passthrough: tokens that are not ours go to a TokenReview.
#[derive(Debug, Clone)]
pub struct PassthroughConfig {
    pub audiences: Vec<String>,
}

/// The apiserver the service sends reviews to.
#[derive(Debug, Clone)]
pub struct ApiserverConfig {
    /// Without a trailing slash.
    pub url: String,
    pub ca_file: PathBuf,
}

/// End-user impersonation (`kubectl --as`): requests carrying
/// `Impersonate-*` are authorised with SubjectAccessReviews.
#[derive(Debug, Clone)]
pub struct ImpersonationConfig {
    /// Most impersonation header lines one request may carry.
    pub max_values: usize,
    /// One deadline for all the reviews of one request.
    pub review_timeout: Duration,
    pub allow_ttl: Duration,
    pub deny_ttl: Duration,
    pub cache_max_entries: u64,
}

impl Config {
    /// Validates flags (and the authentication config file they may name)
    /// into a `Config`, or every problem found.
    pub fn from_args(args: &AuthzArgs) -> Result<Config, Vec<String>> {
        let mut errors = Vec::new();

        let issuers = match &args.authentication_config {
            Some(path) => {
                if args.oidc_issuer_url.is_some() || args.oidc_client_id.is_some() {
                    errors.push(
                        "--authentication-config cannot be combined with --oidc-issuer-url or --oidc-client-id"
                            .to_owned(),
                    );
                }
                authn_file::load(path, &mut errors)
            }
            None => issuer::from_flags(args, &mut errors).into_iter().collect(),
        };

        let mut static_extras: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for kv in args.extra_user_headers.iter().filter(|s| !s.is_empty()) {
            match kv.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => static_extras
                    .entry(k.trim().to_ascii_lowercase())
                    .or_default()
                    .push(v.trim().to_owned()),
                _ => errors.push(format!("--extra-user-headers: {kv:?} is not key=value")),
            }
        }

        let mut trusted_proxies = Vec::new();
        for cidr in args.trusted_proxy_cidrs.iter().filter(|s| !s.is_empty()) {
            match parse_cidr(cidr) {
                Some(net) => trusted_proxies.push(net),
                None => errors.push(format!(
                    "--trusted-proxy-cidrs: {cidr:?} is not an IP network"
                )),
            }
        }

        let passthrough = if args.token_passthrough {
            let audiences: Vec<String> = args
                .token_passthrough_audiences
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect();
            Some(PassthroughConfig { audiences })
        } else {
            if !args.token_passthrough_audiences.is_empty() {
                errors.push(
                    "--token-passthrough-audiences needs --token-passthrough=true".to_owned(),
                );
            }
            None
        };

        let impersonation = args.allow_impersonation.then_some(ImpersonationConfig {
            max_values: args.impersonation_max_values,
            review_timeout: args.impersonation_review_timeout,
            allow_ttl: args.impersonation_cache_allow_ttl,
            deny_ttl: args.impersonation_cache_deny_ttl,
            cache_max_entries: args.impersonation_cache_max_entries,
        });
        if let Some(i) = &impersonation {
            if i.max_values == 0 {
                errors.push("--impersonation-max-values must be at least 1".to_owned());
            }
            if i.cache_max_entries == 0 {
                errors.push("--impersonation-cache-max-entries must be at least 1".to_owned());
            }
            if i.review_timeout.is_zero() || i.review_timeout >= ENVOY_CHECK_TIMEOUT {
                errors.push(format!(
                    "--impersonation-review-timeout must be above 0 and below Envoy's ext_authz timeout ({}ms)",
                    ENVOY_CHECK_TIMEOUT.as_millis()
                ));
            }
        }
        if (passthrough.is_some() || impersonation.is_some())
            && let Err(e) = url_with_scheme(&args.apiserver_url, &["https"])
        {
            errors.push(format!("--apiserver-url: {e}"));
        }

        let grpc_tls = MtlsFiles::from_flags(
            "--grpc-tls",
            args.grpc_tls_cert_file.as_deref(),
            args.grpc_tls_key_file.as_deref(),
            args.grpc_tls_client_ca_file.as_deref(),
            &mut errors,
        );
        if grpc_tls.is_none() && !args.grpc_allow_remote && !args.grpc_address.ip().is_loopback() {
            errors.push(format!(
                "--grpc-address {}: allowed Checks carry the proxy's service-account token, so the Check port listens on a loopback address only, unless it requires client certificates (--grpc-tls-cert-file, --grpc-tls-key-file, --grpc-tls-client-ca-file) or --grpc-allow-remote=true is set with a NetworkPolicy or firewall that admits your gateway alone",
                args.grpc_address
            ));
        }
        if args.cache_max_entries == 0 {
            errors.push("--cache-max-entries must be at least 1".to_owned());
        }
        if args.jwks_refresh_interval < args.jwks_min_refresh_interval {
            errors.push(
                "--jwks-refresh-interval must not be shorter than --jwks-min-refresh-interval"
                    .to_owned(),
            );
        }
        if args.jwks_unknown_kid_max_wait >= ENVOY_CHECK_TIMEOUT {
            errors.push(format!(
                "--jwks-unknown-kid-max-wait must be below Envoy's ext_authz timeout ({}ms)",
                ENVOY_CHECK_TIMEOUT.as_millis()
            ));
        }
        if issuers.is_empty() && errors.is_empty() {
            errors.push("no issuer configured: set --oidc-issuer-url and --oidc-client-id, or --authentication-config".to_owned());
        }

        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Config {
            issuers,
            credential_id_extra: args.credential_id_extra,
            refuse_system_identities: args.refuse_system_identities,
            passthrough,
            impersonation,
            apiserver: ApiserverConfig {
                url: args.apiserver_url.trim_end_matches('/').to_owned(),
                ca_file: args.apiserver_ca_file.clone(),
            },
            client_ip_extra: args.extra_user_header_client_ip,
            static_extras,
            trusted_proxies,
            upstream_token_file: args.upstream_token_file.clone(),
            cache_max_entries: args.cache_max_entries,
            jwks_min_refresh_interval: args.jwks_min_refresh_interval,
            jwks_unknown_kid_max_wait: args.jwks_unknown_kid_max_wait,
            jwks_refresh_interval: args.jwks_refresh_interval,
            grpc_tls,
        })
    }
}

/// The ext_authz timeout of the shipped Envoy configuration
/// (`envoy/envoy.yaml`): everything one Check waits for must fit inside it.
pub const ENVOY_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

fn url_with_scheme(url: &str, schemes: &[&str]) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?}: {e}"))?;
    if !schemes.contains(&parsed.scheme()) {
        return Err(format!("{url:?}: scheme must be {}", schemes.join(" or ")));
    }
    if parsed.host_str().is_none() {
        return Err(format!("{url:?}: no host"));
    }
    Ok(parsed)
}

fn parse_cidr(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;
    fn parse(extra: &[&str]) -> AuthzArgs {
        crate::authz::args::parse_for_test(extra).unwrap()
    }

    #[test]
    fn check_port_defaults_to_loopback() {
        let args = parse(&[]);
        assert_eq!(args.grpc_address.to_string(), "127.0.0.1:9001");
        assert!(!args.grpc_allow_remote);
        assert!(Config::from_args(&args).is_ok());
    }

    #[test]
    fn check_port_beyond_loopback_needs_the_opt_in() {
        let cases: [(&[&str], bool); 6] = [
            (&["--grpc-address", "127.0.0.1:9001"], true),
            (&["--grpc-address", "[::1]:9001"], true),
            (&["--grpc-address", "0.0.0.0:9001"], false),
            (&["--grpc-address", "[::]:9001"], false),
            (&["--grpc-address", "10.1.2.3:9001"], false),
            (
                &["--grpc-address", "0.0.0.0:9001", "--grpc-allow-remote=true"],
                true,
            ),
        ];
        for (flags, ok) in cases {
            let result = Config::from_args(&parse(flags));
            assert_eq!(result.is_ok(), ok, "{flags:?}: {result:?}");
            if let Err(errors) = result {
                assert!(
                    errors.iter().any(|e| e.contains("--grpc-allow-remote")),
                    "{errors:?}"
                );
            }
        }
    }

    #[test]
    fn impersonation_and_wait_bounds_must_fit_envoys_timeout() {
        let cases: [(&[&str], Option<&str>); 8] = [
            (&["--allow-impersonation"], None),
            (
                &["--allow-impersonation", "--impersonation-review-timeout=1s"],
                Some("--impersonation-review-timeout"),
            ),
            (
                &["--allow-impersonation", "--impersonation-review-timeout=0s"],
                Some("--impersonation-review-timeout"),
            ),
            (
                &["--allow-impersonation", "--impersonation-max-values=0"],
                Some("--impersonation-max-values"),
            ),
            (
                &[
                    "--allow-impersonation",
                    "--impersonation-cache-max-entries=0",
                ],
                Some("--impersonation-cache-max-entries"),
            ),
            (
                &["--allow-impersonation", "--apiserver-url=http://api"],
                Some("--apiserver-url"),
            ),
            (
                &["--jwks-unknown-kid-max-wait=1s"],
                Some("--jwks-unknown-kid-max-wait"),
            ),
            (&["--jwks-unknown-kid-max-wait=0s"], None),
        ];
        for (flags, error) in cases {
            let result = Config::from_args(&parse(flags));
            match error {
                None => assert!(result.is_ok(), "{flags:?}: {result:?}"),
                Some(flag) => {
                    let errors = result.unwrap_err();
                    assert!(
                        errors.iter().any(|e| e.contains(flag)),
                        "{flags:?}: {errors:?}"
                    );
                }
            }
        }
        let on = Config::from_args(&parse(&["--allow-impersonation"])).unwrap();
        let i = on.impersonation.unwrap();
        assert_eq!(
            (
                i.max_values,
                i.review_timeout,
                i.allow_ttl,
                i.deny_ttl,
                i.cache_max_entries
            ),
            (
                64,
                Duration::from_millis(500),
                Duration::from_secs(10),
                Duration::from_secs(5),
                10_000
            )
        );
        assert!(
            Config::from_args(&parse(&[]))
                .unwrap()
                .impersonation
                .is_none()
        );
    }
}
