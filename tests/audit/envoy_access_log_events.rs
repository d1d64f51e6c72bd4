//! Envoy access-log entries for kubectl-style requests become the audit
//! events the apiserver itself would record.

use crate::support::audit::*;
use envoy_types::pb::envoy::config::core::v3::RequestMethod;
use envoy_types::pb::envoy::service::accesslog::v3::StreamAccessLogsMessage;
use envoy_types::pb::envoy::service::accesslog::v3::access_log_service_client::AccessLogServiceClient;
use envoy_types::pb::envoy::service::accesslog::v3::stream_access_logs_message::{
    HttpAccessLogEntries, Identifier, LogEntries,
};
use serde_json::json;

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
        .map(|(_, m, p, _, _)| als_entry(*m, p, 200))
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
            log_entry: vec![als_entry(RequestMethod::Get, "/api/v1/pods", 403)],
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
