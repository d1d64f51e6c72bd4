//! Shared set-up of the audit forwarder tests: a stand-in CSE API and a
//! forwarder, both in-process on 127.0.0.1 ports chosen by the kernel.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use std::collections::HashMap;

use envoy_types::pb::envoy::config::core::v3::{
    Address, Metadata, RequestMethod, SocketAddress, address,
};
use envoy_types::pb::envoy::data::accesslog::v3::{
    AccessLogCommon, HttpAccessLogEntry, HttpRequestProperties, HttpResponseProperties,
};
use envoy_types::pb::google::protobuf::{Timestamp, UInt32Value, Value as PbValue, value::Kind};
use kube_oidc_authz::audit::Config;
use kube_oidc_authz::audit::cse::{RefreshToken, Secret};
use kube_oidc_authz::audit::{self, DrainReport, Listeners};
use kube_oidc_authz::error::RunError;
use kube_oidc_authz::metadata::{self, IdentityMetadata, Mode};
use kube_oidc_dev::cse::{CseOptions, StandInCse};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const REFRESH_TOKEN: &str = "test-refresh-token";

/// Generous bound on waits that normally end in milliseconds.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub struct Forwarder {
    pub webhook: String,
    pub als: SocketAddr,
    pub ops: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<DrainReport, RunError>>,
}

impl Forwarder {
    /// Delivers SIGTERM's equivalent and waits for the drain to finish.
    pub async fn stop(mut self) -> DrainReport {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(PATIENCE, &mut self.task)
            .await
            .expect("forwarder drains in time")
            .expect("forwarder task")
            .expect("forwarder result")
    }
}

pub async fn stand_in() -> StandInCse {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    StandInCse::spawn(
        listener,
        CseOptions::new(REFRESH_TOKEN),
        std::future::pending(),
    )
    .unwrap()
}

/// A stand-in CSE API that answers 503 until the test scripts otherwise
/// (an outage longer than any test).
pub async fn stand_in_down() -> StandInCse {
    let cse = stand_in().await;
    cse.script(std::iter::repeat_n(503, 100_000));
    cse
}

/// A configuration for fast tests: small waits, no throttle.
pub fn fast_config(cse: &StandInCse) -> Config {
    let mut c = Config::new(
        &cse.url(),
        "test-cluster",
        RefreshToken::Value(Secret::new(REFRESH_TOKEN)),
    );
    c.batch.max_wait = Duration::from_millis(20);
    c.batch.initial_backoff = Duration::from_millis(5);
    c.batch.max_backoff = Duration::from_millis(20);
    c.batch.throttle_qps = 0.0;
    c.cse.timeout = Duration::from_secs(5);
    c.shutdown_grace = Duration::from_secs(10);
    c
}

pub async fn start(config: Config) -> Forwarder {
    let webhook = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let als = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let urls = (
        format!("http://{}", webhook.local_addr().unwrap()),
        als.local_addr().unwrap(),
        format!("http://{}", http.local_addr().unwrap()),
    );
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(audit::serve(
        config,
        Listeners { webhook, als, http },
        async {
            let _ = rx.await;
        },
    ));
    Forwarder {
        webhook: urls.0,
        als: urls.1,
        ops: urls.2,
        stop: Some(tx),
        task,
    }
}

/// An audit event as an apiserver writes it at `ResponseComplete`.
pub fn event(id: &str) -> Value {
    json!({
        "level": "Metadata",
        "auditID": id,
        "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/default/pods?limit=500",
        "verb": "list",
        "user": {"username": "banyan:alice@example.com", "groups": ["banyan:developers", "system:authenticated"]},
        "sourceIPs": ["10.0.0.7"],
        "userAgent": "kubectl/v1.32.0",
        "objectRef": {"resource": "pods", "namespace": "default", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": "2024-05-01T10:00:00.000000Z",
        "stageTimestamp": "2024-05-01T10:00:00.004000Z",
        "annotations": {"authorization.k8s.io/decision": "allow"}
    })
}

pub fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:05}")).collect()
}

pub fn event_list(ids: &[String]) -> Value {
    json!({
        "kind": "EventList",
        "apiVersion": "audit.k8s.io/v1",
        "metadata": {},
        "items": ids.iter().map(|id| event(id)).collect::<Vec<_>>(),
    })
}

/// Posts a body to the webhook; returns status and JSON answer.
pub async fn post(url: &str, body: &Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

/// The value of one sample on `/metrics`, e.g.
/// `kube_oidc_authz_audit_events_dropped_total{reason="buffer_full"}`;
/// 0 when absent.
pub async fn metric(ops: &str, sample: &str) -> f64 {
    let text = reqwest::get(format!("{ops}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(sample)
                .filter(|rest| rest.starts_with(' '))
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

/// The audit IDs of what the stand-in accepted, in arrival order.
pub fn delivered_ids(cse: &StandInCse) -> Vec<String> {
    cse.events()
        .iter()
        .map(|e| e["auditID"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn string(s: &str) -> PbValue {
    PbValue {
        kind: Some(Kind::StringValue(s.into())),
    }
}

/// An Envoy access-log entry for a request that passed ext_authz as alice.
pub fn als_entry(method: RequestMethod, path: &str, code: u32) -> HttpAccessLogEntry {
    let identity = IdentityMetadata {
        mode: Mode::Impersonate,
        user: "banyan:alice@example.com".into(),
        issuer: "https://issuer.example".into(),
        uid: None,
        groups: vec![
            "banyan:any-employee-personal-device".into(),
            "banyan:developers".into(),
        ],
        extra: Vec::new(),
    };
    let mut filter_metadata = HashMap::new();
    filter_metadata.insert(metadata::NAMESPACE.to_owned(), identity.to_struct());
    HttpAccessLogEntry {
        common_properties: Some(AccessLogCommon {
            downstream_remote_address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: "198.51.100.4".into(),
                    ..SocketAddress::default()
                })),
            }),
            start_time: Some(Timestamp {
                seconds: 1_714_557_600,
                nanos: 0,
            }),
            metadata: Some(Metadata {
                filter_metadata,
                ..Metadata::default()
            }),
            ..AccessLogCommon::default()
        }),
        request: Some(HttpRequestProperties {
            request_method: method as i32,
            path: path.into(),
            user_agent: "kubectl/v1.32.0 (linux/amd64) kubernetes/abcdef".into(),
            ..HttpRequestProperties::default()
        }),
        response: Some(HttpResponseProperties {
            response_code: Some(UInt32Value { value: code }),
            ..HttpResponseProperties::default()
        }),
        ..HttpAccessLogEntry::default()
    }
}

/// An Envoy access-log entry for a request that carried no usable
/// credential: ext_authz answered it (typically 401) without putting an
/// identity in the metadata.
pub fn als_entry_without_identity(
    method: RequestMethod,
    path: &str,
    code: u32,
) -> HttpAccessLogEntry {
    let mut entry = als_entry(method, path, code);
    if let Some(common) = entry.common_properties.as_mut() {
        common.metadata = None;
    }
    entry
}

/// Streams `entries` to the forwarder's access log service as Envoy does
/// (identifier on the first message), `per_message` entries a message, and
/// returns once the forwarder has taken them all in.
pub async fn stream_access_log(
    als: SocketAddr,
    entries: Vec<HttpAccessLogEntry>,
    per_message: usize,
) {
    use envoy_types::pb::envoy::service::accesslog::v3::StreamAccessLogsMessage;
    use envoy_types::pb::envoy::service::accesslog::v3::access_log_service_client::AccessLogServiceClient;
    use envoy_types::pb::envoy::service::accesslog::v3::stream_access_logs_message::{
        HttpAccessLogEntries, Identifier, LogEntries,
    };
    let mut client = AccessLogServiceClient::connect(format!("http://{als}"))
        .await
        .unwrap();
    let messages: Vec<_> = entries
        .chunks(per_message.max(1))
        .enumerate()
        .map(|(i, chunk)| StreamAccessLogsMessage {
            identifier: (i == 0).then(|| Identifier {
                node: None,
                log_name: "kube-oidc-authz".into(),
            }),
            log_entries: Some(LogEntries::HttpLogs(HttpAccessLogEntries {
                log_entry: chunk.to_vec(),
            })),
        })
        .collect();
    client
        .stream_access_logs(tokio_stream::iter(messages))
        .await
        .unwrap();
}
