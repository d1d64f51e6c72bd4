//! A stand-in Cloud Secure Edge REST API.

use std::future::Future;

use crate::cli::RunError;

/// Flags of `kube-oidc-authz stand-in-cse`.
#[derive(Debug, Clone, clap::Args)]
pub struct CseArgs {}

/// Runs the stand-in CSE API until `shutdown` completes.
pub async fn run(
    _args: CseArgs,
    _shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    Err(RunError::Runtime(anyhow::anyhow!(
        "stand-in-cse: not built yet"
    )))
}
