//! kube-oidc-authz: OIDC single sign-on in front of any Kubernetes API server.
//!
//! kubectl talks TLS to Envoy; Envoy's ext_authz filter asks this crate's
//! gRPC service who the caller is; the service answers with the proxy's own
//! service-account token and `Impersonate-*` headers, and the apiserver's
//! ordinary RBAC decides. A sidecar forwards audit events to the Cloud Secure
//! Edge REST API.
//!
//! The modules, in the order a request meets them:
//!
//! - [`cli`] and [`process`]: the `kube-oidc-authz` command line (one
//!   subcommand per role) and the entry both binaries share.
//! - [`authz`]: the ext_authz service. [`authz::service`] receives a
//!   `CheckRequest` over gRPC and [`authz::authorizer`] decides:
//!   [`authz::token`] finds the bearer token, [`authz::verify`] checks it
//!   against keys from [`authz::jwks`], [`authz::identity`] maps claims to
//!   a Kubernetes identity with the apiserver's rules, [`authz::cache`]
//!   remembers it until the token's `exp` by the [`clock`]. The
//!   [`authz::decision`] logs and counts itself once, and
//!   [`authz::response`] turns it into Envoy header mutations, dynamic
//!   metadata or a denied `Status` body. [`authz::health`] reports
//!   readiness on grpc.health.v1; [`authz::config`] validates flags and
//!   the `AuthenticationConfiguration` file.
//! - [`audit`]: the audit forwarder: receive (webhook, Envoy access logs) →
//!   buffer → batch → ship to the CSE REST API.
//! - [`serve`]: the small HTTP server for `/healthz`, `/readyz` and
//!   `/metrics` shared by both long-running roles.
//! - [`telemetry`], [`shutdown`], [`tls`], [`error`]: logging and tracing
//!   set-up, the drain signal, HTTPS clients, and the exit codes.
//!
//! The development tools (a token-minting issuer, the stand-in apiserver
//! and CSE API, the demo) are the separate `kube-oidc-dev` crate and binary,
//! which depends on this one; nothing here depends on them.
//!
//! Every server takes an already-bound listener and a shutdown future, so
//! tests bind `127.0.0.1:0` and run in-process.

pub mod audit;
pub mod authz;
pub mod cli;
pub mod clock;
pub mod error;
pub mod process;
pub mod serve;
pub mod shutdown;
pub mod telemetry;
pub mod tls;
