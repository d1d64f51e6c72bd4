//! The audit forwarder: receive → intake → buffer → batch → ship.
//!
//! - receive: [`webhook`] takes `EventList`s from an apiserver's or
//!   kube-oidc-proxy's audit webhook backend; [`als`] serves Envoy's access
//!   log stream, and [`access_log`] turns each entry into an
//!   [`event::Event`], with [`crate::k8s::request_info`] resolving verb and
//!   `objectRef` as the apiserver does;
//! - intake: both hand their events to [`intake`], which serializes and if
//!   need be shortens them ([`truncate`]), counts them and every drop with
//!   its reason, and pushes them into
//! - [`buffer`], bounded by events and bytes, which never makes a sender
//!   wait: a webhook `EventList` that does not fit is refused whole (429,
//!   the apiserver retries it), an access-log event that does not fit is
//!   dropped and counted, and events without an identity may fill only a
//!   small share of it, so a flood of 401s cannot crowd out the rest;
//! - batch and ship: [`batch`] cuts batches by size, bytes or age,
//!   throttles, and delivers them through [`cse`] with the backoff of
//!   [`retry`];
//! - [`spool`] owns the restart story: at start it reloads what the last
//!   shutdown left; on shutdown the receivers stop, the buffer drains
//!   within a grace period, and what is left is spooled (or counted as
//!   dropped without a spool).
//!
//! [`args`] holds the flags and their defaults, [`config`] validates them
//! into a [`Config`]; [`metrics`] names every counter.

pub mod access_log;
pub mod als;
pub mod args;
pub mod batch;
pub mod buffer;
pub mod config;
pub mod cse;
pub mod event;
pub mod intake;
pub mod metrics;
pub mod retry;
pub mod spool;
pub mod truncate;
pub mod webhook;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::RunError;
use buffer::Buffer;
pub use config::Config;
use metrics::Metrics;
pub use spool::DrainReport;

/// The three listeners the forwarder serves, already bound.
#[derive(Debug)]
pub struct Listeners {
    /// The audit webhook (HTTP).
    pub webhook: TcpListener,
    /// Envoy's access log service (gRPC).
    pub als: TcpListener,
    /// `/healthz`, `/readyz`, `/metrics`.
    pub http: TcpListener,
}

/// Runs the audit forwarder until `shutdown` completes, then drains.
pub async fn run(
    args: args::AuditArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let config = args.validate().map_err(RunError::Config)?;
    for (flag, addr, mtls) in [
        ("--webhook-address", config.webhook_address, false),
        (
            "--als-address",
            config.als_address,
            config.als_tls.is_some(),
        ),
    ] {
        if !mtls && !addr.ip().is_loopback() {
            tracing::warn!(
                flag,
                address = %addr,
                "an unauthenticated audit input listens beyond loopback: whoever reaches it can write audit events; admit only your Envoy or apiserver"
            );
        }
    }
    let bind = |what: &'static str, addr: std::net::SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr} ({what}): {e}"))
    };
    let (webhook, als, http) = tokio::join!(
        bind("--webhook-address", config.webhook_address),
        bind("--als-address", config.als_address),
        bind("--http-address", config.http_address),
    );
    let (webhook, als, http) = match (webhook, als, http) {
        (Ok(w), Ok(a), Ok(h)) => (w, a, h),
        (w, a, h) => {
            let errors = [w.err(), a.err(), h.err()].into_iter().flatten();
            return Err(RunError::Runtime(anyhow::anyhow!(
                errors.collect::<Vec<_>>().join("; ")
            )));
        }
    };
    serve(config, Listeners { webhook, als, http }, shutdown)
        .await
        .map(|_| ())
}

/// Serves on already-bound listeners until `shutdown` completes; then stops
/// accepting, delivers what is buffered within the grace period, spools or
/// counts the rest, and returns.
pub async fn serve(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<DrainReport, RunError> {
    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::new(&mut registry));
    crate::telemetry::register_metrics(&mut registry);
    let registry = Arc::new(registry);
    let buffer = Arc::new(Buffer::new(
        config.buffer_events,
        config.buffer_bytes,
        metrics.clone(),
    ));
    let client = Arc::new(
        cse::CseClient::new(config.cse.clone(), metrics.clone())
            .map_err(|e| RunError::Runtime(anyhow::anyhow!("cannot build the CSE client: {e}")))?,
    );
    if let Some(dir) = &config.spool_dir {
        spool::reload(dir, &buffer, config.batch.max_wait).await;
    }
    let intake = intake::Intake::new(buffer.clone(), metrics.clone(), config.limits);

    let (draining_tx, draining) = watch::channel(false);
    let (deadline_tx, deadline) = watch::channel::<Option<Instant>>(None);
    let accepting = Arc::new(AtomicBool::new(true));

    let ready = {
        let accepting = accepting.clone();
        Arc::new(move || accepting.load(Ordering::Relaxed)) as crate::serve::Readiness
    };
    let (ops_stop_tx, ops_stop) = tokio::sync::oneshot::channel::<()>();
    let ops = tokio::spawn(crate::serve::serve_router(
        listeners.http,
        crate::serve::ops_router(ready, registry),
        async {
            let _ = ops_stop.await;
        },
    ));

    let webhook_server = tokio::spawn(crate::serve::serve_router(
        listeners.webhook,
        webhook::router(
            intake.clone(),
            metrics.clone(),
            config.webhook_max_body_bytes,
        ),
        until_draining(draining.clone()),
    ));
    let als_server = tokio::spawn(
        crate::tls_listener::serve_grpc(
            tonic::transport::Server::builder()
                .add_service(als::AlsService::new(intake, draining.clone()).into_server()),
            listeners.als,
            config.als_tls.as_ref(),
            "access-log",
            "--als-tls",
            until_draining(draining.clone()),
        )
        .map_err(|e| RunError::Config(vec![e]))?,
    );
    let batcher = tokio::spawn(batch::run(
        buffer.clone(),
        client,
        metrics.clone(),
        config.batch.clone(),
        deadline,
    ));
    tracing::info!(
        service_name = %config.cse.service_name,
        restapi_url = %config.cse.restapi_url,
        "audit forwarder started"
    );

    shutdown.await;
    let drain_until = Instant::now() + config.shutdown_grace;
    let _ = deadline_tx.send(Some(drain_until));
    accepting.store(false, Ordering::Relaxed);
    let _ = draining_tx.send(true);
    tracing::info!(
        buffered = buffer.len(),
        grace_seconds = config.shutdown_grace.as_secs_f64(),
        "audit forwarder draining"
    );

    // In-flight webhook requests finish (their events are buffered) before
    // the buffer closes; an access-log stream ends at its next message.
    match tokio::time::timeout_at(drain_until, webhook_server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "audit webhook server failed"),
        Ok(Err(e)) => tracing::error!(error = %e, "audit webhook server task failed"),
        Err(_) => {
            tracing::warn!("audit webhook requests still open at the end of the grace period")
        }
    }
    match tokio::time::timeout_at(drain_until, als_server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "access log server failed"),
        Ok(Err(e)) => tracing::error!(error = %e, "access log server task failed"),
        Err(_) => tracing::warn!("access-log streams still open at the end of the grace period"),
    }
    buffer.close();

    let leftover = match batcher.await {
        Ok(items) => items,
        Err(e) => {
            tracing::error!(error = %e, "audit batcher failed");
            buffer.take_all()
        }
    };
    let report = spool::keep_leftover(config.spool_dir.as_deref(), leftover, &metrics).await;
    let _ = ops_stop_tx.send(());
    let _ = ops.await;
    tracing::info!(
        spooled = report.spooled,
        dropped = report.dropped,
        "audit forwarder stopped"
    );
    Ok(report)
}

async fn until_draining(mut draining: watch::Receiver<bool>) {
    while !*draining.borrow_and_update() {
        if draining.changed().await.is_err() {
            return;
        }
    }
}
