//! The audit webhook: what a kube-apiserver's or kube-oidc-proxy's
//! `--audit-webhook-config-file` backend posts, an `audit.k8s.io/v1` (or
//! `v1beta1`) `EventList` as JSON, accepted on `POST` to any path.
//!
//! A request is handled whole: either every event in it is valid and fits
//! the buffer and the answer is 200 once they are in it, or the answer is
//! an error with a Kubernetes `Status` body saying why and nothing from it
//! is kept. A list that does not fit the buffer now is answered 429 with
//! `Retry-After`, never waited on: the apiserver's webhook backend retries
//! on 429 and 5xx, so it resends the list and nothing is lost, which a 200
//! for part of the list would not allow. Events go into the buffer through
//! [`super::intake`], as the access-log ones do.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::buffer::Refused;
use super::event::{API_VERSION_V1, API_VERSION_V1BETA1, EventListIn, TypeMeta};
use super::intake::Intake;
use super::metrics::{Metrics, Source};
use crate::k8s::Status;

/// Seconds a sender refused for a full buffer (429) or a shutdown (503) is
/// asked to wait: about the time a healthy CSE API needs to take a few
/// batches off the buffer.
pub const RETRY_AFTER_SECONDS: u64 = 5;

#[derive(Clone)]
struct WebhookState {
    intake: Intake,
    metrics: Arc<Metrics>,
    max_body_bytes: usize,
}

/// The webhook router; `metrics` counts refused requests.
pub fn router(intake: Intake, metrics: Arc<Metrics>, max_body_bytes: usize) -> Router {
    Router::new().fallback(receive).with_state(WebhookState {
        intake,
        metrics,
        max_body_bytes,
    })
}

async fn receive(State(state): State<WebhookState>, request: Request) -> Response {
    match handle(&state, request).await {
        Ok(resp) => resp,
        Err(refusal) => {
            if refusal.code == StatusCode::TOO_MANY_REQUESTS {
                state.metrics.webhook_busy.inc();
            } else if refusal.code.is_client_error() {
                state.metrics.webhook_rejected.inc();
            }
            tracing::warn!(
                code = refusal.code.as_u16(),
                reason = refusal.reason,
                message = %refusal.message,
                "audit webhook request refused"
            );
            refusal.into_response()
        }
    }
}

/// A refused request, rendered as a Kubernetes `Status`.
#[derive(Debug)]
struct Refusal {
    code: StatusCode,
    reason: &'static str,
    message: String,
}

impl Refusal {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            reason,
            message: message.into(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = Status::failure(self.code.as_u16(), self.reason, self.message).to_json();
        let mut resp = (
            self.code,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        if self.code == StatusCode::METHOD_NOT_ALLOWED {
            resp.headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        }
        if self.code == StatusCode::TOO_MANY_REQUESTS
            || self.code == StatusCode::SERVICE_UNAVAILABLE
        {
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(RETRY_AFTER_SECONDS),
            );
        }
        resp
    }
}

async fn handle(state: &WebhookState, request: Request) -> Result<Response, Refusal> {
    if request.method() != Method::POST {
        return Err(Refusal::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "the audit webhook accepts POST only",
        ));
    }
    if let Some(ct) = request.headers().get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
        if !ct.starts_with("application/json") {
            return Err(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                format!("content type {ct:?} is not application/json"),
            ));
        }
    }
    let too_large = || {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!("request body exceeds {} bytes", state.max_body_bytes),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.max_body_bytes as u64) {
        return Err(too_large());
    }
    let body = axum::body::to_bytes(Body::new(request.into_body()), state.max_body_bytes)
        .await
        .map_err(|e| {
            let length_limit = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if length_limit {
                too_large()
            } else {
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    format!("cannot read the request body: {e}"),
                )
            }
        })?;

    let list: EventListIn = serde_json::from_slice(&body).map_err(|e| {
        // Say what is wrong in the sender's terms: a version we do not
        // speak is a clearer reason than the first item that fails.
        serde_json::from_slice::<TypeMeta>(&body)
            .ok()
            .and_then(|meta| check_type(&meta.kind, &meta.api_version).err())
            .unwrap_or_else(|| {
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    format!("malformed EventList: {e}"),
                )
            })
    })?;
    check_type(&list.kind, &list.api_version)?;

    for (i, event) in list.items.iter().enumerate() {
        event.validate().map_err(|m| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("items[{i}]: {m}"),
            )
        })?;
    }
    let encoded = state.intake.encode(list.items);
    if let Some((i, e)) = encoded.first_unserializable() {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("items[{i}]: {e}"),
        ));
    }
    let outcome = state
        .intake
        .push_whole(Source::Webhook, encoded)
        .map_err(|refused| match refused {
            Refused::Closed => Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "the audit forwarder is shutting down",
            ),
            Refused::Full => Refusal::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "the audit buffer cannot hold this EventList now; nothing from it was kept, retry later",
            ),
            Refused::TooLarge {
                events,
                bytes,
                max_events,
                max_bytes,
            } => Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                format!(
                    "the EventList has {events} events ({bytes} bytes); the audit buffer holds at most {max_events} events and {max_bytes} bytes"
                ),
            ),
        })?;
    let body = serde_json::json!({
        "accepted": outcome.accepted,
        "dropped": outcome.dropped,
    });
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

fn check_type(kind: &str, api_version: &str) -> Result<(), Refusal> {
    if api_version != API_VERSION_V1 && api_version != API_VERSION_V1BETA1 {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!(
                "unsupported apiVersion {api_version:?}: expected {API_VERSION_V1:?} or {API_VERSION_V1BETA1:?}"
            ),
        ));
    }
    if kind != "EventList" {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("unsupported kind {kind:?}: expected \"EventList\""),
        ));
    }
    Ok(())
}
