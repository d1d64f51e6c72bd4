//! Logging and tracing set-up: structured `tracing` events to stderr, and
//! OpenTelemetry spans over OTLP/gRPC when an endpoint is configured.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, mpsc};
use std::time::Duration;

use clap::{Args, ValueEnum};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use prometheus_client::metrics::counter::Counter;
use tracing::Level;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
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
    _log_writer: Option<LogWriterGuard>,
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

/// Bytes of log lines queued for the writer thread at most: memory stays
/// bounded whatever the lines hold and however slowly stderr is read.
const LOG_QUEUE_BYTES: usize = 8 << 20;

/// How long the writer thread lets lines gather after each write.
const LOG_BATCH_WINDOW: Duration = Duration::from_millis(2);

/// Most bytes of lines written with one write(2).
const LOG_BATCH_BYTES: usize = 64 << 10;

/// Log lines dropped because the writer queue was full.
static LOG_LINES_DROPPED: LazyLock<Counter> = LazyLock::new(Counter::default);

/// The counter of log lines dropped because stderr did not keep up.
pub fn log_lines_dropped() -> Counter {
    LOG_LINES_DROPPED.clone()
}

/// Registers `kube_oidc_authz_log_lines_dropped_total`, the same metric in
/// every role's registry (each role is its own process).
pub fn register_metrics(registry: &mut prometheus_client::registry::Registry) {
    registry.register(
        "kube_oidc_authz_log_lines_dropped",
        "Log lines dropped because stderr did not keep up",
        log_lines_dropped(),
    );
}

/// Installs the global subscriber. Errors are configuration problems.
pub fn init(args: &TelemetryArgs) -> Result<TelemetryGuard, Vec<String>> {
    let filter = EnvFilter::try_new(&args.log_level)
        .map_err(|e| vec![format!("--log-level {:?}: {e}", args.log_level)])?;
    // Lines are formatted on the calling thread and written to stderr by a
    // dedicated thread, so request threads never queue on the stderr lock
    // (one decision line per request). Lossy: when stderr falls behind by
    // LOG_QUEUE_BYTES, lines are dropped and counted; a Check never waits
    // for its log line.
    let (writer, log_guard) = log_writer(std::io::stderr(), LOG_QUEUE_BYTES);
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

// === impl LogWriter ===

/// Hands finished log lines to a dedicated thread that writes them to the
/// sink, so request threads never wait on stderr. The queue is bounded in
/// bytes: a line that would overflow it is dropped and counted in
/// [`log_lines_dropped`], never waited for. A stalled reader of stderr
/// thus costs log lines, not Check latency, memory or liveness.
pub struct LogWriter {
    tx: mpsc::Sender<Message>,
    queued: Arc<AtomicUsize>,
    max_bytes: usize,
}

enum Message {
    Line(Vec<u8>),
    Flush(mpsc::Sender<()>),
}

/// Drains the log queue (for at most [`FLUSH_TIMEOUT`]) when dropped.
pub struct LogWriterGuard {
    tx: mpsc::Sender<Message>,
}

/// How long exit waits for queued log lines to reach the sink.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

impl Drop for LogWriterGuard {
    fn drop(&mut self) {
        let (done, flushed) = mpsc::channel();
        if self.tx.send(Message::Flush(done)).is_ok() {
            let _ = flushed.recv_timeout(FLUSH_TIMEOUT);
        }
    }
}

fn log_writer<W: Write + Send + 'static>(
    mut sink: W,
    max_bytes: usize,
) -> (LogWriter, LogWriterGuard) {
    let (tx, rx) = mpsc::channel::<Message>();
    let queued = Arc::new(AtomicUsize::new(0));
    let writer_queued = queued.clone();
    // Without a writer thread the receiver is gone, every send fails and
    // every line counts as dropped: logging never stops the service.
    let _ = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || {
            let mut batch = Vec::with_capacity(LOG_BATCH_BYTES);
            let mut flushed = Vec::new();
            while let Ok(first) = rx.recv() {
                let mut next = Some(first);
                while let Some(message) = next.take() {
                    match message {
                        Message::Line(line) => {
                            batch.extend_from_slice(&line);
                            writer_queued.fetch_sub(line.len(), Ordering::Relaxed);
                        }
                        Message::Flush(done) => flushed.push(done),
                    }
                    if batch.len() < LOG_BATCH_BYTES {
                        next = rx.try_recv().ok();
                    }
                }
                // A failing sink loses the lines; there is nowhere to
                // report it.
                let _ = sink.write_all(&batch);
                batch.clear();
                if flushed.is_empty() {
                    // Lines that arrive meanwhile queue without waking this
                    // thread: under load, one wake-up and one write(2)
                    // carry many lines instead of one each.
                    std::thread::sleep(LOG_BATCH_WINDOW);
                } else {
                    let _ = sink.flush();
                    for done in flushed.drain(..) {
                        let _ = done.send(());
                    }
                }
            }
        });
    (
        LogWriter {
            tx: tx.clone(),
            queued,
            max_bytes,
        },
        LogWriterGuard { tx },
    )
}

impl LogWriter {
    fn enqueue(&self, line: &[u8]) {
        let len = line.len();
        let reserved = self
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                (q + len <= self.max_bytes).then_some(q + len)
            })
            .is_ok();
        if !reserved {
            LOG_LINES_DROPPED.inc();
            return;
        }
        if self.tx.send(Message::Line(line.to_vec())).is_err() {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            LOG_LINES_DROPPED.inc();
        }
    }
}

/// The fmt layer writes each formatted event with one `write_all`, so one
/// call is one line.
impl Write for &LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.enqueue(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = &'a LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink nobody reads: every write blocks until the test ends.
    struct Stuck(std::sync::Mutex<mpsc::Receiver<()>>);

    impl Write for Stuck {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            let _ = self.0.lock().map(|rx| rx.recv());
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    const LINES: usize = 32_768;

    #[test]
    fn a_stuck_sink_drops_and_counts_lines_and_never_blocks_the_caller() {
        let (_unblock, rx) = mpsc::channel();
        let (writer, _guard) = log_writer(Stuck(std::sync::Mutex::new(rx)), 64 * 1024);
        let dropped_before = log_lines_dropped().get();
        let (done_tx, done_rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Far more than the queue holds, in lines and in bytes.
            let line = format!("{}\n", "x".repeat(1000));
            for _ in 0..LINES {
                let _ = writer.make_writer().write_all(line.as_bytes());
            }
            let _ = done_tx.send(());
        });
        assert!(
            done_rx.recv_timeout(Duration::from_secs(10)).is_ok(),
            "the caller blocked on a stuck log sink"
        );
        let dropped = log_lines_dropped().get() - dropped_before;
        // 64 KiB of queue holds at most 65 of the 1001-byte lines, plus
        // the batch of at most LOG_BATCH_BYTES the writer thread holds.
        assert!(dropped >= (LINES - 140) as u64, "{dropped}");
    }

    /// A sink that records each write and holds the first one until told.
    struct Gate {
        entered: mpsc::Sender<()>,
        release: mpsc::Receiver<()>,
        writes: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut writes = self.writes.lock().map_err(|_| std::io::ErrorKind::Other)?;
            if writes.is_empty() {
                let _ = self.entered.send(());
                let _ = self.release.recv();
            }
            writes.push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_queued_while_the_sink_is_busy_go_out_in_one_write_in_order() {
        let (entered_tx, entered) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        let writes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (writer, guard) = log_writer(
            Gate {
                entered: entered_tx,
                release: release_rx,
                writes: Arc::clone(&writes),
            },
            1 << 20,
        );
        let _ = writer.make_writer().write_all(b"line 0\n");
        entered.recv_timeout(Duration::from_secs(10)).unwrap();
        for i in 1..100 {
            let _ = writer
                .make_writer()
                .write_all(format!("line {i}\n").as_bytes());
        }
        release.send(()).unwrap();
        drop(guard);

        let writes = writes.lock().unwrap();
        assert_eq!(writes.len(), 2, "one write for line 0, one for the rest");
        let all: String = writes.iter().map(|w| String::from_utf8_lossy(w)).collect();
        let want: String = (0..100).map(|i| format!("line {i}\n")).collect();
        assert_eq!(all, want);
    }
}
