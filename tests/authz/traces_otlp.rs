//! With `--otlp-endpoint`, the real binary exports one server span per
//! Check to an OTLP/gRPC collector, as a child of the caller's W3C trace
//! context, carrying the decision. Without it, nothing is exported.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{self, Issuer, check_request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use kube_oidc_authz::authz::verify::SigningAlg;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

const PATIENCE: Duration = Duration::from_secs(20);
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

/// An OTLP/gRPC trace collector that keeps every span it receives.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

async fn collector() -> (Collector, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let c = Collector::default();
    let svc = TraceServiceServer::new(c.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (c, addr)
}

fn free() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| {
        match a.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.clone()),
            other => Some(format!("{other:?}")),
        }
    })
}

/// Runs the binary, sends one allowed and one denied Check (both with a
/// `traceparent`), stops it with SIGTERM (which flushes the exporter) and
/// returns what the collector received.
async fn run(otlp: Option<SocketAddr>) -> Vec<Span> {
    let issuer = Issuer::start(SigningAlg::RS256).await;
    let (collector, collector_addr) = collector().await;
    let dir = tempfile::tempdir().unwrap();
    let sa = dir.path().join("token");
    std::fs::write(&sa, support::SA_TOKEN).unwrap();
    let (grpc, http) = (free(), free());
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_kube-oidc-authz"));
    cmd.args(["--log-level", "warn"]);
    if let Some(addr) = otlp.map(|_| collector_addr) {
        cmd.args(["--otlp-endpoint", &format!("http://{addr}")]);
    }
    let mut child = cmd
        .arg("authz")
        .args(["--grpc-address", &grpc.to_string()])
        .args(["--http-address", &http.to_string()])
        .args(["--upstream-token-file", sa.to_str().unwrap()])
        .args(issuer.product_flags())
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let ready = format!("http://{http}/readyz");
    let http_client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        if let Ok(r) = http_client.get(&ready).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "authz not ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut client = AuthorizationClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    let traceparent = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    let token = issuer.token(json!({}));
    let bearer = format!("Bearer {token}");
    for headers in [
        vec![
            ("authorization", bearer.as_str()),
            ("traceparent", traceparent.as_str()),
        ],
        vec![("traceparent", traceparent.as_str())],
    ] {
        let resp = client
            .check(check_request(&headers, "10.0.0.1"))
            .await
            .unwrap();
        assert!(resp.into_inner().status.is_some());
    }

    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    collector.0.lock().unwrap().clone()
}

#[cfg(unix)]
#[tokio::test]
async fn every_check_is_a_server_span_in_the_callers_trace() {
    let spans = run(Some(free())).await;
    let checks: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "envoy.service.auth.v3.Authorization/Check")
        .collect();
    assert_eq!(checks.len(), 2, "spans received: {spans:?}");
    let mut decisions = Vec::new();
    for span in checks {
        assert_eq!(hex(&span.trace_id), TRACE_ID, "joins the caller's trace");
        assert_eq!(hex(&span.parent_span_id), PARENT_ID, "child of its span");
        // SpanKind::Server in OTLP.
        assert_eq!(span.kind, 2);
        assert_eq!(attr(span, "rpc.method").as_deref(), Some("Check"));
        decisions.push((attr(span, "decision"), attr(span, "reason")));
        let all = format!("{span:?}");
        assert!(!all.contains("eyJ"), "no token in a span: {all}");
    }
    decisions.sort();
    assert_eq!(
        decisions,
        [
            (Some("allow".into()), Some("ok".into())),
            (Some("deny".into()), Some("missing_token".into())),
        ]
    );
}

#[cfg(unix)]
#[tokio::test]
async fn without_an_endpoint_nothing_is_exported() {
    assert!(run(None).await.is_empty());
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
