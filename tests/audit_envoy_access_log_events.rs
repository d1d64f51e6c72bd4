//! Envoy access-log entries for kubectl-style requests become the audit
//! events the apiserver itself would record.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod audit_common;
use std::collections::HashMap;

use audit_common::*;
use envoy_types::pb::envoy::config::core::v3::{
    Address, Metadata, RequestMethod, SocketAddress, address,
};
use envoy_types::pb::envoy::data::accesslog::v3::{
    AccessLogCommon, HttpAccessLogEntry, HttpRequestProperties, HttpResponseProperties,
};
use envoy_types::pb::envoy::service::accesslog::v3::StreamAccessLogsMessage;
use envoy_types::pb::envoy::service::accesslog::v3::access_log_service_client::AccessLogServiceClient;
use envoy_types::pb::envoy::service::accesslog::v3::stream_access_logs_message::{
    HttpAccessLogEntries, Identifier, LogEntries,
};
use envoy_types::pb::google::protobuf::{
    ListValue, Struct, Timestamp, UInt32Value, Value, value::Kind,
};
use serde_json::json;

fn string(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.into())),
    }
}

fn entry(method: RequestMethod, path: &str, code: u32) -> HttpAccessLogEntry {
    let mut identity = HashMap::new();
    identity.insert("user".to_owned(), string("banyan:alice@example.com"));
    identity.insert("mode".to_owned(), string("impersonate"));
    identity.insert(
        "groups".to_owned(),
        Value {
            kind: Some(Kind::ListValue(ListValue {
                values: vec![
                    string("banyan:any-employee-personal-device"),
                    string("banyan:developers"),
                ],
            })),
        },
    );
    let mut filter_metadata = HashMap::new();
    filter_metadata.insert(
        "envoy.filters.http.ext_authz".to_owned(),
        Struct { fields: identity },
    );
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

#[tokio::test]
async fn kubectl_requests_through_envoy_become_apiserver_style_events() {
    let cse = stand_in().await;
    let mut config = fast_config(&cse);
    config.batch.max_events = 100;
    let fwd = start(config).await;

    use RequestMethod::*;
    // (kubectl command, method, path, verb, objectRef or null)
    let table = [
        (
            "get pods",
            Get,
            "/api/v1/namespaces/default/pods?limit=500",
            "list",
            json!({"resource": "pods", "namespace": "default", "apiVersion": "v1"}),
        ),
        (
            "get pod web-0",
            Get,
            "/api/v1/namespaces/default/pods/web-0",
            "get",
            json!({"resource": "pods", "namespace": "default", "name": "web-0", "apiVersion": "v1"}),
        ),
        (
            "create -n team -f pod.yaml",
            Post,
            "/api/v1/namespaces/team/pods?fieldManager=kubectl-client-side-apply",
            "create",
            json!({"resource": "pods", "namespace": "team", "apiVersion": "v1"}),
        ),
        (
            "exec web-0 -- sh",
            Post,
            "/api/v1/namespaces/default/pods/web-0/exec?command=sh&stdin=true&stdout=true&tty=true",
            "create",
            json!({"resource": "pods", "namespace": "default", "name": "web-0", "subresource": "exec", "apiVersion": "v1"}),
        ),
        (
            "get pods -w",
            Get,
            "/api/v1/namespaces/default/pods?resourceVersion=123&watch=true",
            "watch",
            json!({"resource": "pods", "namespace": "default", "apiVersion": "v1"}),
        ),
        ("get --raw /healthz", Get, "/healthz", "get", json!(null)),
        (
            "get crontabs",
            Get,
            "/apis/stable.example.com/v1/namespaces/default/crontabs?limit=500",
            "list",
            json!({"resource": "crontabs", "namespace": "default", "apiGroup": "stable.example.com", "apiVersion": "v1"}),
        ),
        (
            "delete crontab nightly",
            Delete,
            "/apis/stable.example.com/v1/namespaces/default/crontabs/nightly",
            "delete",
            json!({"resource": "crontabs", "namespace": "default", "name": "nightly", "apiGroup": "stable.example.com", "apiVersion": "v1"}),
        ),
        (
            "scale deploy web",
            Patch,
            "/apis/apps/v1/namespaces/default/deployments/web/scale",
            "patch",
            json!({"resource": "deployments", "namespace": "default", "name": "web", "subresource": "scale", "apiGroup": "apps", "apiVersion": "v1"}),
        ),
    ];

    let mut client = AccessLogServiceClient::connect(format!("http://{}", fwd.als))
        .await
        .unwrap();
    let entries: Vec<_> = table
        .iter()
        .map(|(_, m, p, _, _)| entry(*m, p, 200))
        .collect();
    // Envoy sends the identifier on the first message only, and batches
    // entries; split them over two messages of one stream.
    let messages = vec![
        StreamAccessLogsMessage {
            identifier: Some(Identifier {
                node: None,
                log_name: "kube-oidc-authz".into(),
            }),
            log_entries: Some(LogEntries::HttpLogs(HttpAccessLogEntries {
                log_entry: entries[..4].to_vec(),
            })),
        },
        StreamAccessLogsMessage {
            identifier: None,
            log_entries: Some(LogEntries::HttpLogs(HttpAccessLogEntries {
                log_entry: entries[4..].to_vec(),
            })),
        },
    ];
    client
        .stream_access_logs(tokio_stream::iter(messages))
        .await
        .unwrap();

    assert!(cse.wait_for_events(table.len() as u64, PATIENCE).await);
    let events = cse.events();
    assert_eq!(events.len(), table.len());
    let mut audit_ids = std::collections::HashSet::new();
    for ((cmd, _, path, verb, object_ref), ev) in table.iter().zip(&events) {
        assert_eq!(ev["verb"], *verb, "kubectl {cmd}");
        assert_eq!(ev["requestURI"], *path, "kubectl {cmd}");
        if object_ref.is_null() {
            assert!(ev.get("objectRef").is_none(), "kubectl {cmd}");
        } else {
            assert_eq!(ev["objectRef"], *object_ref, "kubectl {cmd}");
        }
        assert_eq!(ev["stage"], "ResponseComplete");
        assert_eq!(ev["level"], "Metadata");
        assert_eq!(ev["user"]["username"], "banyan:alice@example.com");
        assert_eq!(
            ev["user"]["groups"],
            json!([
                "banyan:any-employee-personal-device",
                "banyan:developers",
                "system:authenticated"
            ])
        );
        assert_eq!(ev["sourceIPs"], json!(["198.51.100.4"]));
        assert_eq!(ev["responseStatus"]["code"], 200);
        assert_eq!(
            ev["requestReceivedTimestamp"],
            "2024-05-01T10:00:00.000000Z"
        );
        assert!(ev["userAgent"].as_str().unwrap().starts_with("kubectl/"));
        assert!(
            audit_ids.insert(ev["auditID"].as_str().unwrap().to_owned()),
            "unique auditID"
        );
    }
    assert_eq!(
        metric(
            &fwd.ops,
            "kube_oidc_authz_audit_events_received_total{source=\"envoy\"}"
        )
        .await,
        table.len() as f64
    );
    fwd.stop().await;
}

#[tokio::test]
async fn an_open_access_log_stream_does_not_hold_up_shutdown() {
    let cse = stand_in().await;
    let mut config = fast_config(&cse);
    config.batch.max_wait = std::time::Duration::from_secs(3600);
    let fwd = start(config).await;
    let mut client = AccessLogServiceClient::connect(format!("http://{}", fwd.als))
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(StreamAccessLogsMessage {
        identifier: Some(Identifier {
            node: None,
            log_name: "kube-oidc-authz".into(),
        }),
        log_entries: Some(LogEntries::HttpLogs(HttpAccessLogEntries {
            log_entry: vec![entry(RequestMethod::Get, "/api/v1/pods", 403)],
        })),
    })
    .await
    .unwrap();
    // Envoy keeps the stream open; `tx` stays alive across the shutdown.
    let stream = tokio::spawn(async move {
        client
            .stream_access_logs(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    while metric(
        &fwd.ops,
        "kube_oidc_authz_audit_events_received_total{source=\"envoy\"}",
    )
    .await
        < 1.0
    {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let started = std::time::Instant::now();
    fwd.stop().await;
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(cse.events()[0]["responseStatus"]["code"], 403);
    assert!(stream.await.unwrap().is_ok(), "the stream ends cleanly");
    drop(tx);
}
