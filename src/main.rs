use std::process::ExitCode;

use clap::Parser;
use kube_oidc_authz::cli::{Cli, Command, RunError};
use kube_oidc_authz::{audit, authz, devtools, shutdown, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse();
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
        let _telemetry = telemetry::init(&cli.telemetry).map_err(RunError::Config)?;
        let shutdown = shutdown::signal();
        match cli.command {
            Command::Authz(args) => authz::run(*args, shutdown).await,
            Command::AuditForwarder(args) => audit::run(*args, shutdown).await,
            Command::DevIssuer(args) => devtools::issuer::run(args, shutdown).await,
            Command::StandInApiserver(args) => devtools::apiserver::run(args, shutdown).await,
            Command::StandInCse(args) => devtools::cse::run(args, shutdown).await,
            Command::Demo(args) => devtools::demo::run(args, shutdown).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}
