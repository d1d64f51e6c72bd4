//! Development tools behind the demo and the tests: an OIDC issuer that
//! mints tokens, a stand-in Kubernetes apiserver, certificate generation,
//! the renderer of the shipped Envoy templates and the `demo` orchestrator.
//! None of them but the renderer is meant for production.

pub mod apiserver;
pub mod certs;
pub mod cse;
pub mod demo;
pub mod envoy_config;
pub mod https;
pub mod issuer;
