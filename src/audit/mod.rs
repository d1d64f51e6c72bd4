//! The audit forwarder: receive → buffer → batch → ship.
//!
//! - [`webhook`] receives `EventList`s from an apiserver's or
//!   kube-oidc-proxy's audit webhook backend; [`als`] turns Envoy's access
//!   log stream into events, with [`crate::k8s::request_info`] resolving verb and
//!   `objectRef` as the apiserver does. Both hand [`event::Event`]s,
//!   serialized and if need be shortened by [`truncate`], to
//! - [`buffer`], bounded by events and bytes, which drops (and counts)
//!   rather than makes a sender wait;
//! - [`batch`] cuts batches by size, bytes or age, throttles, and delivers
//!   them through [`cse`] with the backoff of [`retry`];
//! - on shutdown the receivers stop, the buffer drains within a grace
//!   period, and what is left goes to the [`spool`] when one is configured.

pub mod als;
pub mod args;
pub mod batch;
pub mod buffer;
pub mod cse;
pub mod event;
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
use args::Config;
use buffer::{Buffer, Item};
use metrics::{DropReason, Metrics, Source};

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

/// What became of the events still undelivered when the grace period ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Written to the spool for the next start.
    pub spooled: u64,
    /// Lost (no spool, or the spool could not be written), and counted.
    pub dropped: u64,
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
        reload_spool(dir.clone(), &buffer, config.batch.max_wait).await;
    }

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
            buffer.clone(),
            metrics.clone(),
            config.limits,
            config.webhook_max_body_bytes,
        ),
        until_draining(draining.clone()),
    ));
    let als_server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(
                als::AlsService::new(
                    buffer.clone(),
                    metrics.clone(),
                    config.limits,
                    draining.clone(),
                )
                .into_server(),
            )
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listeners.als),
                until_draining(draining.clone()),
            ),
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
    let report = keep_leftover(config.spool_dir.as_deref(), leftover, &metrics).await;
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

/// Loads spooled events back into the buffer, oldest first.
async fn reload_spool(
    dir: std::path::PathBuf,
    buffer: &Arc<Buffer>,
    max_wait: std::time::Duration,
) {
    // Spooled events already waited before the restart: send them first
    // thing rather than after another full batch wait.
    let arrived = Instant::now()
        .checked_sub(max_wait)
        .unwrap_or_else(Instant::now);
    let files = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || spool::files(&dir)).await
    };
    let files = match files {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot list the audit spool");
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot list the audit spool");
            return;
        }
    };
    for path in files {
        let p = path.clone();
        let read = tokio::task::spawn_blocking(move || spool::read(&p)).await;
        let (events, bad) = match read {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot read an audit spool file, leaving it in place");
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read an audit spool file, leaving it in place");
                continue;
            }
        };
        if bad > 0 {
            tracing::error!(file = %path.display(), lines = bad, "damaged lines in an audit spool file skipped");
        }
        let pushed = buffer.push_arrived(Source::Spool, events, arrived);
        tracing::info!(
            file = %path.display(),
            loaded = pushed.accepted,
            dropped = pushed.dropped,
            "audit spool file reloaded"
        );
        let p = path.clone();
        match tokio::task::spawn_blocking(move || spool::remove(&p)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot remove a reloaded audit spool file"),
            Err(e) => tracing::error!(error = %e, "cannot remove a reloaded audit spool file"),
        }
    }
}

/// Events still undelivered at the end of the grace period go to the spool;
/// without one (or if writing fails) they are counted as dropped.
async fn keep_leftover(
    dir: Option<&std::path::Path>,
    leftover: Vec<Item>,
    metrics: &Metrics,
) -> DrainReport {
    if leftover.is_empty() {
        return DrainReport::default();
    }
    let n = leftover.len() as u64;
    if let Some(dir) = dir {
        let dir = dir.to_path_buf();
        let events: Vec<Box<str>> = leftover.into_iter().map(|i| i.json).collect();
        match tokio::task::spawn_blocking(move || spool::write(&dir, &events)).await {
            Ok(Ok(path)) => {
                tracing::info!(
                    events = n,
                    file = %path.map(|p| p.display().to_string()).unwrap_or_default(),
                    "undelivered audit events spooled for the next start"
                );
                return DrainReport {
                    spooled: n,
                    dropped: 0,
                };
            }
            Ok(Err(e)) => tracing::error!(error = %e, "cannot spool undelivered audit events"),
            Err(e) => tracing::error!(error = %e, "cannot spool undelivered audit events"),
        }
    }
    metrics.dropped(DropReason::Shutdown, n);
    tracing::error!(
        events = n,
        "audit events undelivered at the end of the shutdown grace period were dropped"
    );
    DrainReport {
        spooled: 0,
        dropped: n,
    }
}
