use std::process::ExitCode;

use clap::Parser;
use kube_oidc_authz::cli::{Cli, Command};
use kube_oidc_authz::{audit, authz, process};

fn main() -> ExitCode {
    let cli = Cli::parse();
    process::run(&cli.telemetry, |shutdown| async move {
        match cli.command {
            Command::Authz(args) => authz::run(*args, shutdown).await,
            Command::AuditForwarder(args) => audit::run(*args, shutdown).await,
        }
    })
}
