//! The gRPC edge: `envoy.service.auth.v3.Authorization/Check` in tonic.
//! A `CheckRequest` comes in, the [`Authorizer`] decides inside the Check
//! span, and a `CheckResponse` goes out.

use std::sync::Arc;

use envoy_types::pb::envoy::service::auth::v3::authorization_server::Authorization;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse};
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::authorizer::Authorizer;
use super::token::InboundRequest;
use crate::telemetry::{self, TraceHeaders};

/// The tonic service for `envoy.service.auth.v3.Authorization`.
#[derive(Clone)]
pub struct CheckService(pub Arc<Authorizer>);

#[tonic::async_trait]
impl Authorization for CheckService {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        // Only when spans leave the process: the log layer would otherwise
        // format the span's fields on every request for nothing.
        let span = if telemetry::traces_exported() {
            let span = tracing::info_span!(
                "envoy.service.auth.v3.Authorization/Check",
                otel.kind = "server",
                rpc.system = "grpc",
                rpc.service = "envoy.service.auth.v3.Authorization",
                rpc.method = "Check",
                decision = tracing::field::Empty,
                reason = tracing::field::Empty,
            );
            telemetry::set_remote_parent(&span, &trace_headers(&request));
            span
        } else {
            tracing::Span::none()
        };
        // A policy outcome is always a CheckResponse, never a gRPC error:
        // Envoy treats errors per `failure_mode_allow`, which is for outages.
        let response = self.0.check(request.get_ref()).instrument(span).await;
        Ok(Response::new(response))
    }
}

/// The caller's trace context: from the Check call's own gRPC metadata
/// (Envoy's tracer sets it on the ext_authz call), else from the checked
/// HTTP request's headers (a client's `traceparent`, when Envoy's
/// `allowed_headers` let it through).
fn trace_headers(request: &Request<CheckRequest>) -> TraceHeaders {
    let inbound = InboundRequest::new(request.get_ref());
    let lookup = |name: &str| {
        request
            .metadata()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| inbound.header(name).map(|v| v.into_owned()))
    };
    TraceHeaders {
        traceparent: lookup("traceparent"),
        tracestate: lookup("tracestate"),
    }
}
