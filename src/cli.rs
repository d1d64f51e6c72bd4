//! The `kube-oidc-authz` command line: one binary, one subcommand per role.

use clap::{Parser, Subcommand};

use crate::telemetry::TelemetryArgs;

/// OIDC single sign-on for any Kubernetes API server, through Envoy.
#[derive(Debug, Parser)]
#[command(name = "kube-oidc-authz", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve Envoy's ext_authz Check over gRPC: verify OIDC tokens and answer
    /// with Kubernetes impersonation headers.
    Authz(Box<crate::authz::args::AuthzArgs>),
    /// Receive Kubernetes audit events and Envoy access logs, batch them and
    /// ship them to the Cloud Secure Edge REST API.
    AuditForwarder(Box<crate::audit::args::AuditArgs>),
    /// Development only: an OIDC issuer that mints test tokens.
    DevIssuer(crate::devtools::issuer::IssuerArgs),
    /// Development only: a stand-in Kubernetes apiserver for tests and the demo.
    StandInApiserver(crate::devtools::apiserver::ApiserverArgs),
    /// Development only: a stand-in Cloud Secure Edge REST API that records
    /// the audit batches it receives.
    StandInCse(crate::devtools::cse::CseArgs),
    /// Run the whole stack locally (issuer, stand-in apiserver, authz, audit
    /// forwarder, Envoy) and write a kubeconfig to try it with.
    Demo(crate::devtools::demo::DemoArgs),
}

/// Why a role stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration cannot be used; every problem found is listed.
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Config(Vec<String>),
    /// Anything that went wrong after start-up.
    #[error(transparent)]
    Runtime(#[from] anyhow::Error),
}

impl RunError {
    /// The process exit code for this error: 64 (`EX_USAGE`) for bad
    /// configuration, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Config(_) => crate::EXIT_CONFIG,
            RunError::Runtime(_) => 1,
        }
    }
}
