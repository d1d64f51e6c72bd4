//! The audit forwarder in-process against the stand-in CSE API: webhook and
//! Envoy access-log intake, retries, outages, token expiry and SIGTERM.
// Helpers outside #[test] functions may unwrap too: clippy.toml covers
// only the test functions themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../support/mod.rs"]
mod support;

mod envoy_access_log_events;
mod outage_longer_than_buffer;
mod rejects_malformed_webhook_input;
mod retries_on_503_then_delivers;
mod sigterm_flushes_buffer;
mod spool_reload_keeps_what_does_not_fit;
mod token_expiry_mid_run;
mod unauthenticated_flood_keeps_authenticated_events;
mod webhook_full_buffer_answers_429;
