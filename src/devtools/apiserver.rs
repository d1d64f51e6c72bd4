//! A stand-in Kubernetes apiserver.

use std::future::Future;

use crate::cli::RunError;

/// Flags of `kube-oidc-authz stand-in-apiserver`.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiserverArgs {}

/// Runs the stand-in apiserver until `shutdown` completes.
pub async fn run(
    _args: ApiserverArgs,
    _shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    Err(RunError::Runtime(anyhow::anyhow!(
        "stand-in-apiserver: not built yet"
    )))
}
