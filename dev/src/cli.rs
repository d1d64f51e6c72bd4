//! The `kube-oidc-dev` command line: the development tools behind the demo
//! and the tests. Never deploy this binary.

use clap::{Parser, Subcommand};
use kube_oidc_authz::telemetry::TelemetryArgs;

/// Development tools for kube-oidc-authz: a token-minting OIDC issuer,
/// stand-ins for the Kubernetes apiserver and the CSE API, the Envoy
/// renderer and the demo.
#[derive(Debug, Parser)]
#[command(name = "kube-oidc-dev", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// An OIDC issuer that mints test tokens.
    DevIssuer(crate::issuer::IssuerArgs),
    /// A stand-in Kubernetes apiserver for tests and the demo.
    StandInApiserver(crate::apiserver::ApiserverArgs),
    /// A stand-in Cloud Secure Edge REST API that records the audit batches
    /// it receives.
    StandInCse(crate::cse::CseArgs),
    /// Render the shipped Envoy configuration (envoy.yaml, sds-tls.yaml,
    /// impersonation.lua) into a folder.
    RenderEnvoy(crate::render_envoy::RenderEnvoyArgs),
    /// Run the whole stack locally (issuer, stand-in apiserver, authz, audit
    /// forwarder, Envoy), write a kubeconfig to try it with and a manifest
    /// (stack.json) of what runs where.
    Demo(crate::demo::DemoArgs),
}
