//! The audit forwarder: receive → buffer → batch → ship.

pub mod args;

use std::future::Future;

use crate::cli::RunError;

/// Runs the audit forwarder until `shutdown` completes.
pub async fn run(
    _args: args::AuditArgs,
    _shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    Err(RunError::Runtime(anyhow::anyhow!(
        "audit-forwarder: not built yet"
    )))
}
