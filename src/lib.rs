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
//! - [`cli`]: the `kube-oidc-authz` command line, one subcommand per role.
//! - [`authz`]: the ext_authz service. [`authz::check`] receives a
//!   `CheckRequest`, [`authz::token`] finds the bearer token,
//!   [`authz::verify`] checks it against keys from [`authz::jwks`],
//!   [`authz::identity`] maps claims to a Kubernetes identity with the
//!   apiserver's rules, and [`authz::response`] turns the decision into
//!   Envoy header mutations, dynamic metadata or a denied `Status` body.
//! - [`audit`]: the audit forwarder: receive (webhook, Envoy access logs) →
//!   buffer → batch → ship to the CSE REST API.
//! - [`devtools`]: a development OIDC issuer, a stand-in apiserver and the
//!   `demo` orchestrator. They back the local demo and the tests; never
//!   deploy them.
//! - [`serve`]: the small HTTP server for `/healthz`, `/readyz` and
//!   `/metrics` shared by both long-running roles.
//! - [`telemetry`], [`shutdown`], [`tls`]: logging and tracing set-up,
//!   the drain signal, and rustls helpers.
//!
//! Every server takes an already-bound listener and a shutdown future, so
//! tests bind `127.0.0.1:0` and run in-process.

pub mod audit;
pub mod authz;
pub mod cli;
pub mod devtools;
pub mod serve;
pub mod shutdown;
pub mod telemetry;
pub mod tls;

/// Exit code for a configuration that cannot be used (`EX_USAGE`).
pub const EXIT_CONFIG: i32 = 64;
