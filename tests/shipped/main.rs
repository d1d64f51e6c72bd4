//! What the project ships, checked against the code: the audit deploy
//! files, the docker-compose Envoy render, the README's flag tables, and the
//! product binary's subcommands.
// Helpers outside #[test] functions may unwrap too: clippy.toml covers
// only the test functions themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod audit_shipped_configs_parse;
mod compose_keeps_sensitive_listeners_on_loopback;
mod envoy_compose_render_is_current;
mod metadata_contract_is_cited;
mod readme_documents_every_flag;
