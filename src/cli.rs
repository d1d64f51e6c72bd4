//! The `kube-oidc-authz` command line: one binary, one subcommand per role.
//! Development tools are a separate binary (`kube-oidc-dev`) and never ship.

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
}
