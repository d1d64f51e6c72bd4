//! The ext_authz service: Envoy asks, for every request, who the caller is.
//!
//! [`service`] is the gRPC edge; [`authorizer`] makes one decision:
//! [`token`] reads the request, [`verify`] checks the JWT against keys from
//! [`jwks`], [`identity`] maps claims with the apiserver's rules, [`cache`]
//! remembers verified tokens and [`passthrough`] asks the apiserver about
//! tokens that are not ours; with `--allow-impersonation`,
//! [`impersonation`] authorises `kubectl --as` with SubjectAccessReviews.
//! Both reach the apiserver through [`apiserver`]. The result is one
//! [`decision::Decision`],
//! which logs and counts itself, and [`response`] writes Envoy's answer.
//! [`health`] reports readiness on grpc.health.v1. [`config`] turns flags
//! or an `AuthenticationConfiguration` into one validated
//! [`config::Config`].

pub mod apiserver;
pub mod args;
pub mod authorizer;
pub mod cache;
pub mod cel;
pub mod client_ip;
pub mod config;
pub mod decision;
pub mod error;
pub mod health;
pub mod identity;
pub mod impersonation;
pub mod jwks;
pub mod metrics;
pub mod passthrough;
pub mod response;
pub mod service;
pub mod token;
pub mod upstream_token;
pub mod verify;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use envoy_types::pb::envoy::service::auth::v3::authorization_server::AuthorizationServer;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::error::RunError;
use crate::shutdown::Shared;
use authorizer::Authorizer;
use config::Config;
use metrics::AuthzMetrics;
use service::CheckService;
use upstream_token::UpstreamToken;

/// Seconds since the Unix epoch by the system clock; kept here for the
/// tools and tests that mint tokens.
pub use crate::clock::now_unix;

/// Runs the authz service until `shutdown` completes.
pub async fn run(
    args: args::AuthzArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let config = Config::from_args(&args).map_err(RunError::Config)?;
    let upstream = UpstreamToken::load(&config.upstream_token_file)
        .map_err(|e| RunError::Config(vec![format!("--upstream-token-file: {e}")]))?;
    if config.grpc_tls.is_none() && !args.grpc_address.ip().is_loopback() {
        tracing::warn!(
            grpc = %args.grpc_address,
            "the Check port listens beyond loopback (--grpc-allow-remote): allowed answers carry the proxy's service-account token; admit only your gateway"
        );
    }
    let grpc = TcpListener::bind(args.grpc_address)
        .await
        .with_context(|| format!("bind --grpc-address {}", args.grpc_address))?;
    let http = TcpListener::bind(args.http_address)
        .await
        .with_context(|| format!("bind --http-address {}", args.http_address))?;
    serve(config, upstream, grpc, http, shutdown).await
}

/// Serves Check and grpc.health.v1 on `grpc`, and the operational HTTP
/// endpoints on `http`, until `shutdown` completes.
pub async fn serve(
    config: Config,
    upstream: UpstreamToken,
    grpc: TcpListener,
    http: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let mut registry = Registry::default();
    let metrics = AuthzMetrics::register(&mut registry);
    crate::telemetry::register_metrics(&mut registry);
    let authorizer =
        Arc::new(Authorizer::new(&config, upstream.clone(), metrics).map_err(RunError::Config)?);
    let shutdown = Shared::new(shutdown);

    // Background work lives as long as the servers; dropping the set aborts it.
    let mut background = JoinSet::new();
    for issuer in authorizer.issuers() {
        background.spawn(Arc::clone(&issuer.keys).run_refresher(config.jwks_refresh_interval));
    }
    background.spawn(upstream.run_reloader());

    // One readiness, on grpc.health.v1 and on /readyz.
    let ready: crate::serve::Readiness = {
        let authorizer = Arc::clone(&authorizer);
        Arc::new(move || authorizer.is_ready())
    };
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    background.spawn(health::report_readiness(
        health_reporter,
        {
            let ready = Arc::clone(&ready);
            move || ready()
        },
        shutdown.wait(),
    ));

    let grpc_addr = grpc.local_addr().ok();
    let router = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(AuthorizationServer::new(CheckService(Arc::clone(
            &authorizer,
        ))));
    let grpc_server = crate::tls_listener::serve_grpc(
        router,
        grpc,
        config.grpc_tls.as_ref(),
        "check",
        "--grpc-tls",
        shutdown.wait(),
    )
    .map_err(|e| RunError::Config(vec![e]))?;

    let http_addr = http.local_addr().ok();
    let ops = crate::serve::serve_router(
        http,
        crate::serve::ops_router(ready, Arc::new(registry)),
        shutdown.wait(),
    );
    tracing::info!(grpc = ?grpc_addr, grpc_mtls = config.grpc_tls.is_some(), http = ?http_addr, issuers = config.issuers.len(), "authz service listening");
    let (g, h) = tokio::join!(grpc_server, ops);
    background.shutdown().await;
    g.context("grpc server")?;
    h.context("http server")?;
    tracing::info!("authz service stopped");
    Ok(())
}
