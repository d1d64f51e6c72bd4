//! Envoy's gRPC access log service (`envoy.service.accesslog.v3`): every
//! HTTP request that passed through Envoy becomes an audit event, so a
//! cluster whose apiserver audit log is out of reach (a managed control
//! plane) is still audited.
//!
//! This file is the gRPC service only: each entry becomes an event in
//! [`super::access_log`] and goes into the buffer through
//! [`super::intake`], as webhook events do. Entries without an identity
//! go under the buffer's small unauthenticated budget.

use envoy_types::pb::envoy::service::accesslog::v3::access_log_service_server::{
    AccessLogService, AccessLogServiceServer,
};
use envoy_types::pb::envoy::service::accesslog::v3::stream_access_logs_message::LogEntries;
use envoy_types::pb::envoy::service::accesslog::v3::{
    StreamAccessLogsMessage, StreamAccessLogsResponse,
};
use tokio::sync::watch;

use super::access_log::{event_from_entry, has_identity};
use super::buffer::Budget;
use super::intake::Intake;
use super::metrics::Source;

/// Entries without an identity get the small budget: see
/// [`super::buffer::UNAUTHENTICATED_SHARE`].
fn budget(entry: &envoy_types::pb::envoy::data::accesslog::v3::HttpAccessLogEntry) -> Budget {
    if has_identity(entry) {
        Budget::Authenticated
    } else {
        Budget::Unauthenticated
    }
}

/// While draining, a stream idle this long is ended.
const DRAIN_IDLE: std::time::Duration = std::time::Duration::from_millis(200);

/// The access log service.
#[derive(Debug, Clone)]
pub struct AlsService {
    intake: Intake,
    draining: watch::Receiver<bool>,
}

impl AlsService {
    /// A service feeding `intake`; once `draining` turns true, each stream
    /// is ended when Envoy has nothing more to send on it.
    pub fn new(intake: Intake, draining: watch::Receiver<bool>) -> AlsService {
        AlsService { intake, draining }
    }

    /// The tonic service to add to a server.
    pub fn into_server(self) -> AccessLogServiceServer<AlsService> {
        AccessLogServiceServer::new(self)
    }

    fn ingest(&self, message: StreamAccessLogsMessage) {
        let Some(LogEntries::HttpLogs(http)) = message.log_entries else {
            return;
        };
        let entries: Vec<_> = http.log_entry.iter().map(|e| (budget(e), e)).collect();
        // Runs of one budget, so events keep Envoy's order.
        for run in entries.chunk_by(|a, b| a.0 == b.0) {
            let budget = run.first().map_or(Budget::Authenticated, |r| r.0);
            self.intake.accept_in(
                Source::Envoy,
                budget,
                run.iter().map(|(_, e)| event_from_entry(e)),
            );
        }
    }
}

#[tonic::async_trait]
impl AccessLogService for AlsService {
    async fn stream_access_logs(
        &self,
        request: tonic::Request<tonic::Streaming<StreamAccessLogsMessage>>,
    ) -> Result<tonic::Response<StreamAccessLogsResponse>, tonic::Status> {
        let mut stream = request.into_inner();
        let mut draining = self.draining.clone();
        let ended = || Ok(tonic::Response::new(StreamAccessLogsResponse {}));
        loop {
            let next = if *draining.borrow_and_update() {
                // Take what Envoy has already sent, then end the stream so
                // Envoy opens a new one, to a forwarder that is staying.
                match tokio::time::timeout(DRAIN_IDLE, stream.message()).await {
                    Ok(m) => m,
                    Err(_) => return ended(),
                }
            } else {
                tokio::select! {
                    m = stream.message() => m,
                    changed = draining.changed() => {
                        if changed.is_err() {
                            return ended();
                        }
                        continue;
                    }
                }
            };
            match next {
                Ok(Some(message)) => self.ingest(message),
                Ok(None) => return ended(),
                Err(status) => {
                    tracing::debug!(code = ?status.code(), "access-log stream ended with an error");
                    return Err(status);
                }
            }
        }
    }
}
