//! Prometheus metrics of the forwarder. Labels are few and fixed: the
//! source an event came from, the reason it was dropped or retried.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Where an event entered the forwarder.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Source {
    /// The audit webhook (apiserver or kube-oidc-proxy).
    Webhook,
    /// Envoy's gRPC access log service.
    Envoy,
    /// Reloaded from the on-disk spool at start-up.
    Spool,
}

/// Why events were dropped. Every drop is counted under one of these.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum DropReason {
    /// The buffer held `--audit-batch-buffer-size` events (or its byte cap).
    BufferFull,
    /// An event without an identity (an access-log entry of a request
    /// ext_authz answered without one, mostly a 401) while such events
    /// already filled their share of the buffer.
    UnauthenticatedBudget,
    /// Larger than the maximum event size even after truncation.
    TooLarge,
    /// The CSE API refused the batch with a non-retryable 4xx.
    Rejected,
    /// Arrived after the buffer closed for shutdown, or still undelivered
    /// when the shutdown grace period ended with no spool to keep them.
    Shutdown,
}

/// Why a batch was retried.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum RetryReason {
    /// 408, 429 or a 5xx other than 501.
    Status,
    /// 401 on the batch: the access token was renewed and the batch resent.
    Unauthorized,
    /// Connection refused, reset, TLS failure or the attempt timed out.
    Transport,
    /// The refresh-token exchange itself failed.
    Token,
}

/// Label values are the snake_case codes below, stable for dashboards.
macro_rules! label_values {
    ($($ty:ident { $($variant:ident => $code:literal),+ $(,)? })+) => {$(
        impl $ty {
            /// The fixed code used as label value and in logs.
            pub fn code(self) -> &'static str {
                match self { $($ty::$variant => $code),+ }
            }
        }
        impl EncodeLabelValue for $ty {
            fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
                std::fmt::Write::write_str(encoder, self.code())
            }
        }
    )+};
}

label_values! {
    Source { Webhook => "webhook", Envoy => "envoy", Spool => "spool" }
    DropReason {
        BufferFull => "buffer_full",
        UnauthenticatedBudget => "unauthenticated_budget",
        TooLarge => "too_large",
        Rejected => "rejected",
        Shutdown => "shutdown",
    }
    RetryReason {
        Status => "status",
        Unauthorized => "unauthorized",
        Transport => "transport",
        Token => "token",
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: Source,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    reason: DropReason,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RetryLabels {
    reason: RetryReason,
}

/// Every metric the forwarder exports.
#[derive(Debug)]
pub struct Metrics {
    received: Family<SourceLabels, Counter>,
    dropped: Family<DropLabels, Counter>,
    retries: Family<RetryLabels, Counter>,
    /// Events accepted by the CSE API.
    pub events_sent: Counter,
    /// Batches accepted by the CSE API.
    pub batches_sent: Counter,
    /// Events whose request/response objects were removed to fit.
    pub truncated: Counter,
    /// Webhook requests refused with a 4xx.
    pub webhook_rejected: Counter,
    /// Webhook requests refused whole with 429 because the buffer could
    /// not hold them; the sender retries them.
    pub webhook_busy: Counter,
    /// Events waiting in the buffer.
    pub buffer_events: Gauge,
    /// Bytes (serialized JSON) waiting in the buffer.
    pub buffer_bytes: Gauge,
    /// Time from the first attempt to the CSE API's acceptance of a batch.
    pub send_seconds: Histogram,
    /// Access tokens obtained with the refresh token.
    pub token_refreshes: Counter,
}

impl Metrics {
    /// Creates the metrics and registers them under `kube_oidc_authz_audit_`.
    pub fn new(registry: &mut Registry) -> Metrics {
        let m = Metrics {
            received: Family::default(),
            dropped: Family::default(),
            retries: Family::default(),
            events_sent: Counter::default(),
            batches_sent: Counter::default(),
            truncated: Counter::default(),
            webhook_rejected: Counter::default(),
            webhook_busy: Counter::default(),
            buffer_events: Gauge::default(),
            buffer_bytes: Gauge::default(),
            send_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            token_refreshes: Counter::default(),
        };
        let r = registry.sub_registry_with_prefix("kube_oidc_authz_audit");
        r.register(
            "events_received",
            "Audit events received, by source",
            m.received.clone(),
        );
        r.register(
            "events_dropped",
            "Audit events dropped, by reason",
            m.dropped.clone(),
        );
        r.register(
            "batch_retries",
            "Batch send attempts that will be retried, by reason",
            m.retries.clone(),
        );
        r.register(
            "events_sent",
            "Audit events accepted by the CSE API",
            m.events_sent.clone(),
        );
        r.register(
            "batches_sent",
            "Batches accepted by the CSE API",
            m.batches_sent.clone(),
        );
        r.register(
            "events_truncated",
            "Audit events whose request and response objects were removed to fit the maximum event size",
            m.truncated.clone(),
        );
        r.register(
            "webhook_rejected_requests",
            "Webhook requests refused with a 4xx other than 429: malformed, oversized or of an unsupported version",
            m.webhook_rejected.clone(),
        );
        r.register(
            "webhook_busy_requests",
            "Webhook requests refused whole with 429 because the buffer could not hold them; the sender retries them",
            m.webhook_busy.clone(),
        );
        r.register(
            "buffer_events",
            "Audit events waiting to be sent",
            m.buffer_events.clone(),
        );
        r.register(
            "buffer_bytes",
            "Bytes of audit events waiting to be sent",
            m.buffer_bytes.clone(),
        );
        r.register(
            "send_duration_seconds",
            "Time from the first attempt to deliver a batch until the CSE API accepted it",
            m.send_seconds.clone(),
        );
        r.register(
            "token_refreshes",
            "Access tokens obtained by exchanging the refresh token",
            m.token_refreshes.clone(),
        );
        m
    }

    /// Counts `n` events received from `source`.
    pub fn received(&self, source: Source, n: u64) {
        self.received
            .get_or_create(&SourceLabels { source })
            .inc_by(n);
    }

    /// Counts `n` events dropped for `reason`.
    pub fn dropped(&self, reason: DropReason, n: u64) {
        if n > 0 {
            self.dropped.get_or_create(&DropLabels { reason }).inc_by(n);
        }
    }

    /// Counts one retried attempt.
    pub fn retried(&self, reason: RetryReason) {
        self.retries.get_or_create(&RetryLabels { reason }).inc();
    }

    /// The number of events dropped for `reason` so far.
    pub fn dropped_count(&self, reason: DropReason) -> u64 {
        self.dropped.get_or_create(&DropLabels { reason }).get()
    }
}
