use std::process::ExitCode;

use clap::Parser;
use kube_oidc_authz::process;
use kube_oidc_dev::cli::{Cli, Command};
use kube_oidc_dev::{apiserver, cse, demo, issuer, render_envoy};

fn main() -> ExitCode {
    let cli = Cli::parse();
    process::run(&cli.telemetry, |shutdown| async move {
        match cli.command {
            Command::DevIssuer(args) => issuer::run(args, shutdown).await,
            Command::StandInApiserver(args) => apiserver::run(args, shutdown).await,
            Command::StandInCse(args) => cse::run(args, shutdown).await,
            Command::RenderEnvoy(args) => render_envoy::run(&args),
            Command::Demo(args) => demo::run(args, shutdown).await,
        }
    })
}
