//! Flags of `kube-oidc-authz authz`. Names follow kube-oidc-proxy and the
//! apiserver's `--oidc-*` flags so existing deployments can move over by
//! renaming the binary; every flag also reads an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Flags of `kube-oidc-authz authz`.
#[derive(Debug, Clone, clap::Args)]
pub struct AuthzArgs {
    /// Address for the ext_authz and grpc.health.v1 gRPC services. Plaintext
    /// and unauthenticated: loopback only unless `--grpc-allow-remote`.
    #[arg(
        long,
        env = "KUBE_OIDC_AUTHZ_GRPC_ADDRESS",
        default_value = "127.0.0.1:9001"
    )]
    pub grpc_address: SocketAddr,

    /// Allow a non-loopback `--grpc-address`. Allowed Checks carry the
    /// proxy's service-account token, so whoever reaches the port with any
    /// valid ID token obtains it: set this only where a NetworkPolicy (or a
    /// firewall) admits your gateway alone.
    #[arg(long, env = "KUBE_OIDC_AUTHZ_GRPC_ALLOW_REMOTE", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::boolean::parse)]
    pub grpc_allow_remote: bool,

    /// Serving certificate chain (PEM) of the Check port. With
    /// `--grpc-tls-key-file` and `--grpc-tls-client-ca-file` the port speaks
    /// TLS and admits only callers presenting a certificate from that CA,
    /// which lets it listen beyond loopback without `--grpc-allow-remote`.
    /// Reloaded when the files change.
    #[arg(long, env = "KUBE_OIDC_AUTHZ_GRPC_TLS_CERT_FILE")]
    pub grpc_tls_cert_file: Option<PathBuf>,

    /// Private key (PEM) of `--grpc-tls-cert-file`.
    #[arg(long, env = "KUBE_OIDC_AUTHZ_GRPC_TLS_KEY_FILE")]
    pub grpc_tls_key_file: Option<PathBuf>,

    /// CA bundle (PEM) whose client certificates the Check port admits; use
    /// a CA that signs your gateway's client certificate alone.
    #[arg(long, env = "KUBE_OIDC_AUTHZ_GRPC_TLS_CLIENT_CA_FILE")]
    pub grpc_tls_client_ca_file: Option<PathBuf>,

    /// Address for /healthz, /readyz and /metrics.
    #[arg(
        long,
        env = "KUBE_OIDC_AUTHZ_HTTP_ADDRESS",
        default_value = "0.0.0.0:8080"
    )]
    pub http_address: SocketAddr,

    /// The issuer URL; tokens' `iss` must equal it byte for byte.
    #[arg(long, env = "OIDC_ISSUER_URL")]
    pub oidc_issuer_url: Option<String>,

    /// The client id; tokens' `aud` must contain it.
    #[arg(long, env = "OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,

    /// PEM bundle of the authorities that sign the issuer's HTTPS
    /// certificate. Without it, the platform's roots are trusted.
    #[arg(long, env = "OIDC_CA_FILE")]
    pub oidc_ca_file: Option<PathBuf>,

    /// Claim holding the username.
    #[arg(long, env = "OIDC_USERNAME_CLAIM", default_value = "sub")]
    pub oidc_username_claim: String,

    /// Prefix for usernames. Unset: `<issuer-url>#` unless the claim is
    /// `email`; `-` disables prefixing.
    #[arg(long, env = "OIDC_USERNAME_PREFIX")]
    pub oidc_username_prefix: Option<String>,

    /// Claim holding the groups (a string or an array of strings).
    #[arg(long, env = "OIDC_GROUPS_CLAIM")]
    pub oidc_groups_claim: Option<String>,

    /// Prefix for every group.
    #[arg(long, env = "OIDC_GROUPS_PREFIX")]
    pub oidc_groups_prefix: Option<String>,

    /// `key=value` a token must carry as a string claim; repeatable.
    #[arg(
        long = "oidc-required-claim",
        env = "OIDC_REQUIRED_CLAIMS",
        value_delimiter = ','
    )]
    pub oidc_required_claims: Vec<String>,

    /// Accepted signing algorithms, comma separated.
    #[arg(
        long,
        env = "OIDC_SIGNING_ALGS",
        value_delimiter = ',',
        default_value = "RS256"
    )]
    pub oidc_signing_algs: Vec<String>,

    /// A Kubernetes `AuthenticationConfiguration` (apiserver.config.k8s.io
    /// v1beta1 or v1) whose `jwt` issuers replace the `--oidc-*` flags.
    #[arg(long, env = "KUBE_OIDC_AUTHZ_AUTHENTICATION_CONFIG")]
    pub authentication_config: Option<PathBuf>,

    /// Add the extra `authentication.kubernetes.io/credential-id: JTI=<jti>`
    /// for tokens with a string `jti`, as newer apiservers do.
    #[arg(long, env = "KUBE_OIDC_AUTHZ_CREDENTIAL_ID_EXTRA", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::boolean::parse)]
    pub credential_id_extra: bool,

    /// Refuse identities whose username or a group starts with `system:`.
    #[arg(long, env = "KUBE_OIDC_AUTHZ_REFUSE_SYSTEM_IDENTITIES", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::boolean::parse)]
    pub refuse_system_identities: bool,

    /// Forward tokens that are not ours to the apiserver unchanged when a
    /// TokenReview accepts them.
    #[arg(long, env = "KUBE_OIDC_AUTHZ_TOKEN_PASSTHROUGH", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::boolean::parse)]
    pub token_passthrough: bool,

    /// Audiences accepted for passthrough TokenReviews, comma separated.
    #[arg(
        long,
        env = "KUBE_OIDC_AUTHZ_TOKEN_PASSTHROUGH_AUDIENCES",
        value_delimiter = ','
    )]
    pub token_passthrough_audiences: Vec<String>,

    /// Let signed-in users act as someone else (`kubectl --as`,
    /// `--as-group`, `--as-uid`): each requested value is authorised with a
    /// SubjectAccessReview as the signed-in user (verb `impersonate`, as
    /// the apiserver checks it), then the requested identity is forwarded
    /// with the original user in `originaluser.kube-oidc-authz.io/*`
    /// extras. Off: every `Impersonate-*` header is refused with 403.
    #[arg(long, env = "KUBE_OIDC_AUTHZ_ALLOW_IMPERSONATION", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::boolean::parse)]
    pub allow_impersonation: bool,

    /// Most `Impersonate-*` header lines one request may carry; more are
    /// refused with 431.
    #[arg(
        long,
        env = "KUBE_OIDC_AUTHZ_IMPERSONATION_MAX_VALUES",
        default_value_t = 64
    )]
    pub impersonation_max_values: usize,

    /// One deadline for all the SubjectAccessReviews of one request (they
    /// run concurrently); past it the request fails closed with 503. Must
    /// stay below Envoy's ext_authz timeout (1s in the shipped config).
    #[arg(long, env = "KUBE_OIDC_AUTHZ_IMPERSONATION_REVIEW_TIMEOUT", value_parser = crate::duration::parse, default_value = "500ms")]
    pub impersonation_review_timeout: Duration,

    /// How long an allowing SubjectAccessReview answer is reused for the
    /// same caller and attributes.
    #[arg(long, env = "KUBE_OIDC_AUTHZ_IMPERSONATION_CACHE_ALLOW_TTL", value_parser = crate::duration::parse, default_value = "10s")]
    pub impersonation_cache_allow_ttl: Duration,

    /// How long a denying SubjectAccessReview answer is reused.
    #[arg(long, env = "KUBE_OIDC_AUTHZ_IMPERSONATION_CACHE_DENY_TTL", value_parser = crate::duration::parse, default_value = "5s")]
    pub impersonation_cache_deny_ttl: Duration,

    /// Most SubjectAccessReview answers kept.
    #[arg(
        long,
        env = "KUBE_OIDC_AUTHZ_IMPERSONATION_CACHE_MAX_ENTRIES",
        default_value_t = 10_000
    )]
    pub impersonation_cache_max_entries: u64,

    /// Add `Impersonate-Extra-Remote-Client-Ip` with the client's address.
    #[arg(long, env = "KUBE_OIDC_AUTHZ_EXTRA_USER_HEADER_CLIENT_IP", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::boolean::parse)]
    pub extra_user_header_client_ip: bool,

    /// Static extras added to every identity: `key=value,...`.
    #[arg(
        long,
        env = "KUBE_OIDC_AUTHZ_EXTRA_USER_HEADERS",
        value_delimiter = ','
    )]
    pub extra_user_headers: Vec<String>,

    /// CIDRs of proxies whose `X-Forwarded-For` is trusted for the client
    /// address, comma separated. Empty: Envoy's own view of the peer.
    #[arg(
        long,
        env = "KUBE_OIDC_AUTHZ_TRUSTED_PROXY_CIDRS",
        value_delimiter = ','
    )]
    pub trusted_proxy_cidrs: Vec<String>,

    /// File holding the bearer token sent upstream; re-read when it changes.
    #[arg(
        long,
        env = "KUBE_OIDC_AUTHZ_UPSTREAM_TOKEN_FILE",
        default_value = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    )]
    pub upstream_token_file: PathBuf,

    /// The apiserver, for TokenReview (`--token-passthrough`) and
    /// SubjectAccessReview (`--allow-impersonation`) calls.
    #[arg(
        long,
        env = "KUBE_OIDC_AUTHZ_APISERVER_URL",
        default_value = "https://kubernetes.default.svc"
    )]
    pub apiserver_url: String,

    /// CA bundle for `--apiserver-url`.
    #[arg(
        long,
        env = "KUBE_OIDC_AUTHZ_APISERVER_CA_FILE",
        default_value = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
    )]
    pub apiserver_ca_file: PathBuf,

    /// Most verified tokens kept in the decision cache.
    #[arg(
        long,
        env = "KUBE_OIDC_AUTHZ_CACHE_MAX_ENTRIES",
        default_value_t = 100_000
    )]
    pub cache_max_entries: u64,

    /// Least time between two JWKS fetches triggered by unknown key ids.
    /// At most `--jwks-unknown-kid-max-wait`, so that a token signed with a
    /// key published right after a fetch waits for the next one instead of
    /// failing.
    #[arg(long, env = "KUBE_OIDC_AUTHZ_JWKS_MIN_REFRESH_INTERVAL", value_parser = crate::duration::parse, default_value = "500ms")]
    pub jwks_min_refresh_interval: Duration,

    /// How long a token with an unknown key id may wait for the next
    /// allowed JWKS fetch when one was made less than
    /// `--jwks-min-refresh-interval` ago; if the next fetch is further
    /// away, the token fails at once (401). Below Envoy's ext_authz
    /// timeout (1s), leaving room for the fetch itself.
    #[arg(long, env = "KUBE_OIDC_AUTHZ_JWKS_UNKNOWN_KID_MAX_WAIT", value_parser = crate::duration::parse, default_value = "500ms")]
    pub jwks_unknown_kid_max_wait: Duration,

    /// How often keys are refreshed in the background.
    #[arg(long, env = "KUBE_OIDC_AUTHZ_JWKS_REFRESH_INTERVAL", value_parser = crate::duration::parse, default_value = "5m")]
    pub jwks_refresh_interval: Duration,
}

/// Flags for tests: a minimal valid issuer, then `extra`.
#[cfg(test)]
pub(crate) fn parse_for_test(extra: &[&str]) -> Result<AuthzArgs, clap::Error> {
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: AuthzArgs,
    }
    let base = [
        "x",
        "--oidc-issuer-url",
        "https://idp.example.com",
        "--oidc-client-id",
        "k",
    ];
    Cli::try_parse_from(base.iter().chain(extra)).map(|c| c.args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<AuthzArgs, clap::Error> {
        parse_for_test(extra)
    }

    /// Boolean flags take pflag's syntax, as kube-oidc-proxy's do: alone
    /// means true, `=value` takes Go's `strconv.ParseBool` grammar.
    #[test]
    fn boolean_flags_take_pflag_syntax() {
        type Get = fn(&AuthzArgs) -> bool;
        let flags: [(&str, Get, bool); 6] = [
            ("--allow-impersonation", |a| a.allow_impersonation, false),
            ("--grpc-allow-remote", |a| a.grpc_allow_remote, false),
            ("--token-passthrough", |a| a.token_passthrough, false),
            (
                "--extra-user-header-client-ip",
                |a| a.extra_user_header_client_ip,
                false,
            ),
            ("--credential-id-extra", |a| a.credential_id_extra, true),
            (
                "--refuse-system-identities",
                |a| a.refuse_system_identities,
                true,
            ),
        ];
        for (flag, get, default) in flags {
            assert_eq!(get(&parse(&[]).unwrap()), default, "{flag} default");
            assert!(get(&parse(&[flag]).unwrap()), "{flag} alone");
            for (value, want) in [("true", true), ("false", false), ("1", true), ("F", false)] {
                let arg = format!("{flag}={value}");
                assert_eq!(get(&parse(&[&arg]).unwrap()), want, "{arg}");
            }
            assert!(parse(&[&format!("{flag}=yes")]).is_err(), "{flag}=yes");
            // pflag leaves `false` a stray argument; clap refuses it.
            assert!(parse(&[flag, "false"]).is_err(), "{flag} false");
        }
    }
}
