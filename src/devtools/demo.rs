//! The `demo` orchestrator.

use std::future::Future;

use crate::cli::RunError;

/// Flags of `kube-oidc-authz demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {}

/// Runs the demo until `shutdown` completes.
pub async fn run(
    _args: DemoArgs,
    _shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    Err(RunError::Runtime(anyhow::anyhow!("demo: not built yet")))
}
