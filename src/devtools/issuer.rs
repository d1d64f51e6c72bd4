//! A development OIDC issuer.

use std::future::Future;

use crate::cli::RunError;

/// Flags of `kube-oidc-authz dev-issuer`.
#[derive(Debug, Clone, clap::Args)]
pub struct IssuerArgs {}

/// Runs the issuer until `shutdown` completes.
pub async fn run(
    _args: IssuerArgs,
    _shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    Err(RunError::Runtime(anyhow::anyhow!("dev-issuer: not built yet")))
}
