//! The authz service driven through its public surface: gRPC Check against
//! a local HTTPS issuer, configuration errors of the real binary, key
//! rotation, the cache's bound and expiry, and OTLP traces.
// Helpers outside #[test] functions may unwrap too: clippy.toml covers
// only the test functions themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../support/mod.rs"]
mod support;

mod cache_bound;
mod cache_expiry;
mod check_grpc;
mod check_port_mtls;
mod config_errors;
mod impersonation_is_reviewed;
mod key_rotation;
mod keys_stay_on_https;
mod passthrough_reviews_are_bounded;
mod token_verification;
mod traces_otlp;
