//! The entry every binary shares: one multi-threaded runtime, telemetry,
//! the drain signal, and a [`RunError`] turned into the process exit code.

use std::future::Future;
use std::process::ExitCode;

use crate::error::RunError;
use crate::telemetry::{self, TelemetryArgs};

/// Runs `role` to completion and returns the exit code: 0, 64 for
/// configuration errors, 1 for anything else. `role` receives the drain
/// signal (SIGTERM or Ctrl-C).
pub fn run<F, Fut>(telemetry_args: &TelemetryArgs, role: F) -> ExitCode
where
    F: FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
    Fut: Future<Output = Result<(), RunError>>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let _telemetry = telemetry::init(telemetry_args).map_err(RunError::Config)?;
        role(Box::pin(crate::shutdown::signal())).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}
