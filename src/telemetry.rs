//! Logging and tracing set-up: structured `tracing` events to stderr, and
//! OpenTelemetry spans over OTLP/gRPC when an endpoint is configured.

use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Args, ValueEnum};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Flags shared by every subcommand.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Logging and tracing (every subcommand)")]
pub struct TelemetryArgs {
    /// Log line format.
    #[arg(long, global = true, env = "KUBE_OIDC_AUTHZ_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,

    /// Log filter in `tracing` directive syntax, e.g. `info` or
    /// `kube_oidc_authz=debug,info`.
    #[arg(
        long,
        global = true,
        env = "KUBE_OIDC_AUTHZ_LOG",
        default_value = "info"
    )]
    pub log_level: String,

    /// OTLP/gRPC endpoint for traces, e.g. `http://otel-collector:4317`.
    /// Tracing is off when unset.
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// `service.name` resource attribute on exported spans.
    #[arg(
        long,
        global = true,
        env = "OTEL_SERVICE_NAME",
        default_value = "kube-oidc-authz"
    )]
    pub otel_service_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (for log pipelines).
    Json,
    /// Human-readable lines (for a terminal).
    Text,
}

/// Flushes and stops the span exporter when dropped.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    // Flushes the log lines still queued for stderr when dropped.
    _log_writer: Option<tracing_appender::non_blocking::WorkerGuard>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // A collector that is down at exit must not block shutdown or
            // turn it into an error; spans still queued are lost.
            let _ = provider.shutdown();
        }
    }
}

/// Whether spans are exported (an OTLP endpoint is configured).
static TRACES_EXPORTED: AtomicBool = AtomicBool::new(false);

/// Whether spans leave the process; callers skip trace-context work when not.
pub fn traces_exported() -> bool {
    TRACES_EXPORTED.load(Ordering::Relaxed)
}

/// The W3C trace-context headers of an incoming request.
#[derive(Debug, Default)]
pub struct TraceHeaders {
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

impl Extractor for TraceHeaders {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => self.traceparent.as_deref(),
            "tracestate" => self.tracestate.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        ["traceparent", "tracestate"]
            .into_iter()
            .filter(|k| self.get(k).is_some())
            .collect()
    }
}

/// Makes `span` a child of the remote span named by W3C `traceparent`
/// (invalid or absent: `span` stays a root).
pub fn set_remote_parent(span: &tracing::Span, headers: &TraceHeaders) {
    if headers.traceparent.is_none() {
        return;
    }
    let cx = TraceContextPropagator::new().extract(headers);
    // Fails only when no OpenTelemetry layer is installed: nothing to do.
    let _ = span.set_parent(cx);
}

/// The `tracing` target prefix of this crate's own spans and events.
const CRATE_TARGET: &str = "kube_oidc_authz";

/// Log lines queued for the writer thread at most (bounded memory).
const LOG_QUEUE_LINES: usize = 16_384;

/// Installs the global subscriber. Errors are configuration problems.
pub fn init(args: &TelemetryArgs) -> Result<TelemetryGuard, Vec<String>> {
    let filter = EnvFilter::try_new(&args.log_level)
        .map_err(|e| vec![format!("--log-level {:?}: {e}", args.log_level)])?;
    // Lines are formatted on the calling thread and written to stderr by a
    // dedicated thread, so request threads never queue on the stderr lock
    // (one decision line per request). Not lossy: when the queue is full
    // the caller waits rather than a decision line being lost.
    let (writer, log_guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .thread_name("log-writer")
        .finish(std::io::stderr());
    let fmt = match args.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(writer)
            .with_filter(filter)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_filter(filter)
            .boxed(),
    };
    TRACES_EXPORTED.store(
        args.otlp_endpoint.as_ref().is_some_and(|e| !e.is_empty()),
        Ordering::Relaxed,
    );
    let (otel, provider) = match &args.otlp_endpoint {
        Some(endpoint) if !endpoint.is_empty() => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .build()
                .map_err(|e| vec![format!("--otlp-endpoint {endpoint:?}: {e}")])?;
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    Resource::builder()
                        .with_service_name(args.otel_service_name.clone())
                        .build(),
                )
                .build();
            let tracer = provider.tracer("kube-oidc-authz");
            (
                // The log level does not gate traces: this crate's spans
                // are exported whatever `--log-level` says.
                Some(
                    tracing_opentelemetry::layer()
                        .with_tracer(tracer)
                        .with_filter(Targets::new().with_target(CRATE_TARGET, Level::INFO)),
                ),
                Some(provider),
            )
        }
        _ => (None, None),
    };
    // A second init (tests running several roles in one process) keeps the
    // first subscriber; that is not a configuration error.
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init();
    Ok(TelemetryGuard {
        provider,
        _log_writer: Some(log_guard),
    })
}
