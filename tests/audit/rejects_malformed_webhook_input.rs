//! Malformed, oversized, wrong-version and truncated webhook input gets a
//! clear 4xx; nothing crashes and nothing else is lost.

use crate::support::audit::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn raw(
    webhook: &str,
    method: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new()
        .request(method.parse().unwrap(), webhook)
        .header("content-type", content_type)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn bad_input_is_refused_with_a_reason_and_good_input_still_flows() {
    let cse = stand_in().await;
    let mut config = fast_config(&cse);
    config.webhook_max_body_bytes = 64 * 1024;
    config.limits.max_event_bytes = 4096;
    let fwd = start(config).await;
    let url = format!("{}/events/kubernetes", fwd.webhook);

    let good = event_list(&ids("ok", 2)).to_string();
    let mut missing_id = event_list(&ids("bad", 2));
    missing_id["items"][1]
        .as_object_mut()
        .unwrap()
        .remove("auditID");
    let mut bad_stage = event_list(&ids("bad", 1));
    bad_stage["items"][0]["stage"] = json!("Finished");
    let mut wrong_version = event_list(&ids("bad", 1));
    wrong_version["apiVersion"] = json!("audit.k8s.io/v2");
    let mut wrong_kind = event_list(&ids("bad", 1));
    wrong_kind["kind"] = json!("Event");
    let huge = vec![b' '; 70 * 1024];

    // (case, method, content type, body, status, text the message must contain)
    type Case = (
        &'static str,
        &'static str,
        &'static str,
        Vec<u8>,
        u16,
        &'static str,
    );
    let table: Vec<Case> = vec![
        (
            "not json",
            "POST",
            "application/json",
            b"hello".to_vec(),
            400,
            "malformed EventList",
        ),
        (
            "truncated json",
            "POST",
            "application/json",
            good.as_bytes()[..good.len() / 2].to_vec(),
            400,
            "malformed EventList",
        ),
        (
            "items not an array",
            "POST",
            "application/json",
            br#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":{}}"#.to_vec(),
            400,
            "malformed",
        ),
        (
            "wrong version",
            "POST",
            "application/json",
            wrong_version.to_string().into_bytes(),
            400,
            "unsupported apiVersion",
        ),
        (
            "wrong version, bad items",
            "POST",
            "application/json",
            br#"{"kind":"EventList","apiVersion":"v1","items":[1]}"#.to_vec(),
            400,
            "unsupported apiVersion",
        ),
        (
            "wrong kind",
            "POST",
            "application/json",
            wrong_kind.to_string().into_bytes(),
            400,
            "unsupported kind",
        ),
        (
            "missing auditID",
            "POST",
            "application/json",
            missing_id.to_string().into_bytes(),
            400,
            "items[1]: auditID",
        ),
        (
            "unknown stage",
            "POST",
            "application/json",
            bad_stage.to_string().into_bytes(),
            400,
            "items[0]: stage",
        ),
        (
            "oversized body",
            "POST",
            "application/json",
            huge,
            413,
            "exceeds",
        ),
        (
            "not json content",
            "POST",
            "text/plain",
            good.clone().into_bytes(),
            415,
            "content type",
        ),
        (
            "wrong method",
            "GET",
            "application/json",
            Vec::new(),
            405,
            "POST only",
        ),
    ];
    for (case, method, ct, body, want, text) in table {
        let (status, answer) = raw(&url, method, ct, &body).await;
        assert_eq!(status, want, "{case}: {answer}");
        assert_eq!(answer["kind"], "Status", "{case}");
        assert_eq!(answer["code"], want, "{case}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains(text), "{case}: {message:?} lacks {text:?}");
    }

    // A body cut short by the sender hanging up: 400, and the server lives.
    let host = fwd.webhook.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(host).await.unwrap();
    conn.write_all(b"POST /events/kubernetes HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"kind\":").await.unwrap();
    conn.shutdown().await.unwrap();
    let mut reply = Vec::new();
    let _ = conn.read_to_end(&mut reply).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 400"),
        "{reply}"
    );

    // An event too large for the limit loses its objects, as the
    // apiserver's truncate backend does; a v1beta1 list is accepted.
    let mut big = event_list(&ids("big", 1));
    big["items"][0]["level"] = json!("RequestResponse");
    big["items"][0]["requestObject"] = json!({"data": "x".repeat(8000)});
    big["items"][0]["responseObject"] = json!({"data": "y".repeat(8000)});
    assert_eq!(post(&url, &big).await.0, 200);
    let mut beta = event_list(&ids("beta", 1));
    beta["apiVersion"] = json!("audit.k8s.io/v1beta1");
    beta["items"][0]["timestamp"] = json!("2024-05-01T10:00:00Z");
    assert_eq!(post(&fwd.webhook, &beta).await.0, 200);
    let (status, answer) = raw(&url, "POST", "application/json", good.as_bytes()).await;
    assert_eq!(status, 200, "{answer}");

    // Exactly the good events arrive; nothing from refused requests.
    assert!(cse.wait_for_events(4, PATIENCE).await);
    let mut want = ids("big", 1);
    want.extend(ids("beta", 1));
    want.extend(ids("ok", 2));
    assert_eq!(delivered_ids(&cse), want);
    let events = cse.events();
    assert!(events[0].get("requestObject").is_none());
    assert_eq!(events[0]["annotations"]["audit.k8s.io/truncated"], "true");
    assert!(events[1].get("timestamp").is_none());
    assert_eq!(
        metric(&fwd.ops, "kube_oidc_authz_audit_events_truncated_total").await,
        1.0
    );
    assert!(
        metric(
            &fwd.ops,
            "kube_oidc_authz_audit_webhook_rejected_requests_total"
        )
        .await
            >= 11.0
    );
    fwd.stop().await;
}
