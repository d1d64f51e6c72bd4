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
    pub client_ip_extra: bool,
    pub static_extras: BTreeMap<String, Vec<String>>,
    pub trusted_proxies: Vec<IpNet>,
    pub upstream_token_file: PathBuf,
    pub cache_max_entries: u64,
    pub jwks_min_refresh_interval: Duration,
    pub jwks_refresh_interval: Duration,
    /// Mutual TLS on the Check port, when configured.
    pub grpc_tls: Option<MtlsFiles>,
}

/// Token passthrough: tokens that are not ours go to a TokenReview.
#[derive(Debug, Clone)]
pub struct PassthroughConfig {
    pub audiences: Vec<String>,
    pub apiserver_url: String,
    pub apiserver_ca_file: PathBuf,
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
            if let Err(e) = url_with_scheme(&args.apiserver_url, &["https"]) {
                errors.push(format!("--apiserver-url: {e}"));
            }
            Some(PassthroughConfig {
                audiences,
                apiserver_url: args.apiserver_url.trim_end_matches('/').to_owned(),
                apiserver_ca_file: args.apiserver_ca_file.clone(),
            })
        } else {
            if !args.token_passthrough_audiences.is_empty() {
                errors.push(
                    "--token-passthrough-audiences needs --token-passthrough=true".to_owned(),
                );
            }
            None
        };

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
            client_ip_extra: args.extra_user_header_client_ip,
            static_extras,
            trusted_proxies,
            upstream_token_file: args.upstream_token_file.clone(),
            cache_max_entries: args.cache_max_entries,
            jwks_min_refresh_interval: args.jwks_min_refresh_interval,
            jwks_refresh_interval: args.jwks_refresh_interval,
            grpc_tls,
        })
    }
}

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
}
