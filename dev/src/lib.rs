//! Development tools for kube-oidc-authz: what the demo and the tests stand
//! on, never what a cluster runs. They live in their own crate and binary
//! (`kube-oidc-dev`) so that the product binary and image hold none of them
//! and none of their dependencies.
//!
//! - [`issuer`]: an OIDC issuer that serves discovery and JWKS over TLS and
//!   mints tokens on request.
//! - [`apiserver`]: a stand-in Kubernetes apiserver that enforces what the
//!   real one does at its edge (service-account token, impersonation, RBAC).
//! - [`cse`]: a stand-in Cloud Secure Edge REST API that enforces the audit
//!   contract and records the batches it receives.
//! - [`envoy_config`]: the placeholder table and the renderer of the shipped
//!   Envoy templates; [`render_envoy`] is its command.
//! - [`demo`]: the orchestrator behind `make demo` and the end-to-end tests;
//!   it writes a manifest (`stack.json`) of the stack it started.
//! - [`certs`], [`https`]: a development CA and one TLS serving loop.
//! - [`cli`]: the `kube-oidc-dev` command line.

pub mod apiserver;
pub mod certs;
pub mod cli;
pub mod cse;
pub mod demo;
pub mod envoy_config;
pub mod https;
pub mod issuer;
pub mod render_envoy;
