//! The development stand-ins hold to what the real services do, so tests
//! that pass against them say something about the real ones.
// Helpers outside #[test] functions may unwrap too: clippy.toml covers
// only the test functions themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../support/mod.rs"]
mod support;

mod stand_in_apiserver_answers_access_reviews;
mod stand_in_apiserver_applies_impersonation;
mod stand_in_apiserver_reviews_tokens;
mod stand_in_cse_enforces_contract;
