//! The ext_authz service.

pub mod args;

use std::future::Future;

use crate::cli::RunError;

/// Runs the authz service until `shutdown` completes.
pub async fn run(
    _args: args::AuthzArgs,
    _shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    Err(RunError::Runtime(anyhow::anyhow!("authz: not built yet")))
}
