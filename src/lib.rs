//! kube-oidc-authz: OIDC single sign-on in front of any Kubernetes API server.
//!
//! kubectl talks TLS to Envoy; Envoy's ext_authz filter asks this crate's
//! gRPC service who the caller is; the service answers with the proxy's own
//! service-account token and `Impersonate-*` headers, and the apiserver's
//! ordinary RBAC decides. A sidecar forwards audit events to the Cloud Secure
//! Edge REST API.
//!
//! The modules, in layers: each uses only its own layer and those before it,
//! and nothing in the product uses the development tools.
//!
//! 1. The floor: [`error`] (why a role stopped, exit codes), [`duration`]
//!    and [`boolean`] (the one Go grammar of every duration and boolean
//!    flag), [`secret`]
//!    (strings `Debug` never shows), [`tls`] (HTTPS clients trusting a
//!    given CA), [`tls_listener`] (mutual TLS for the gRPC listeners that
//!    leave loopback), [`clock`] (the one `now`, injectable so tests need not
//!    sleep), [`telemetry`] (logs and OTLP traces), [`shutdown`] (the
//!    drain signal).
//! 2. The vocabulary: [`k8s`] (Kubernetes `Status`, `UserInfo`, request
//!    info, impersonation headers, SubjectAccessReview) and [`metadata`] (the identity contract
//!    between the authz service, Envoy's Lua filter and access log, and the
//!    audit forwarder).
//! 3. The roles:
//!    - [`authz`]: the ext_authz service. [`authz::service`] receives a
//!      `CheckRequest` over gRPC and [`authz::authorizer`] decides:
//!      [`authz::token`] finds the bearer token, [`authz::verify`] checks it
//!      against keys from [`authz::jwks`], [`authz::identity`] maps claims to
//!      a Kubernetes identity with the apiserver's rules, [`authz::cache`]
//!      remembers it until the token's `exp` by the [`clock`];
//!      [`authz::impersonation`] authorises `kubectl --as` with
//!      SubjectAccessReviews through [`authz::apiserver`]. The
//!      [`authz::decision`] logs and counts itself once, and
//!      [`authz::response`] turns it into Envoy header mutations, dynamic
//!      metadata or a denied `Status` body. [`authz::health`] reports
//!      readiness on grpc.health.v1; [`authz::config`] validates flags and
//!      the `AuthenticationConfiguration` file.
//!    - [`audit`]: the audit forwarder: receive ([`audit::webhook`], Envoy
//!      access logs through [`audit::als`] and [`audit::access_log`]) → one
//!      [`audit::intake`] → buffer → batch → ship to the CSE REST API.
//!    - [`serve`]: the small HTTP server for `/healthz`, `/readyz` and
//!      `/metrics` shared by both long-running roles.
//! 4. The entry: [`cli`] (the `kube-oidc-authz` command line, one
//!    subcommand per role) and [`process`] (runtime, telemetry, drain
//!    signal and exit code, shared with the development binary).
//!
//! The development tools (a token-minting issuer, the stand-in apiserver
//! and CSE API, the demo) are the separate `kube-oidc-dev` crate and binary,
//! which depends on this one; nothing here depends on them.
//!
//! Every server takes an already-bound listener and a shutdown future, so
//! tests bind `127.0.0.1:0` and run in-process.

pub mod audit;
pub mod authz;
pub mod boolean;
pub mod cli;
pub mod clock;
pub mod duration;
pub mod error;
pub mod k8s;
pub mod metadata;
pub mod process;
pub mod secret;
pub mod serve;
pub mod shutdown;
pub mod telemetry;
pub mod tls;
pub mod tls_listener;
