//! The stand-in CSE API enforces the documented contract, so tests that
//! pass against it say something about the real one.

use crate::support::audit::*;
use serde_json::{Value, json};

fn body() -> Value {
    json!({
        "type": "Audit",
        "sub_type": "Kubernetes",
        "severity": "INFO",
        "action": "kubernetes_audit_batch",
        "result": "success",
        "message": "1 Kubernetes audit event from c",
        "created_at": 1_714_557_600_123i64,
        "service": {"name": "c", "type": "k8s"},
        "batch": {"id": "b-1", "count": 1},
        "events": {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [event("e-1")]},
    })
}

#[tokio::test]
async fn refresh_auth_body_shape_and_control_endpoints() {
    let cse = stand_in().await;
    let http = reqwest::Client::new();
    let url = cse.url();

    // Refresh: wrong token refused in the `error`/`error_code` shape.
    let r = http
        .post(format!("{url}/api/v1/refresh_token"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error_code"], 401);
    let r = http
        .post(format!("{url}/api/v1/refresh_token"))
        .bearer_auth(REFRESH_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let access = r.json::<Value>().await.unwrap()["Message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(access.split('.').count(), 3, "JWT-shaped, carrying exp");

    let events = format!("{url}/api/v1/events");
    let send = |token: &str, ct: &str, body: String| {
        http.post(&events)
            .bearer_auth(token)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    // Auth first: the refresh token is not an access token.
    assert_eq!(
        send(REFRESH_TOKEN, "application/json", body().to_string())
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        send(&access, "text/plain", body().to_string())
            .await
            .unwrap()
            .status(),
        415
    );
    // Every rule of the body shape.
    type Breakage = (&'static str, Box<dyn Fn(&mut Value)>);
    let breakages: Vec<Breakage> = vec![
        ("type", Box::new(|b| b["type"] = json!("Access"))),
        ("sub_type", Box::new(|b| b["sub_type"] = json!("Pods"))),
        ("severity", Box::new(|b| b["severity"] = json!("LOUD"))),
        (
            "created_at",
            Box::new(|b| b["created_at"] = json!(1_714_557_600)),
        ),
        ("service", Box::new(|b| b["service"]["name"] = json!(""))),
        ("batch.id", Box::new(|b| b["batch"]["id"] = json!(""))),
        ("batch.count", Box::new(|b| b["batch"]["count"] = json!(2))),
        (
            "EventList",
            Box::new(|b| b["events"]["apiVersion"] = json!("audit.k8s.io/v1beta1")),
        ),
        (
            "items[0].auditID",
            Box::new(|b| b["events"]["items"][0]["auditID"] = json!("")),
        ),
        (
            "must not be empty",
            Box::new(|b| b["events"]["items"] = json!([])),
        ),
    ];
    for (what, breaks) in breakages {
        let mut b = body();
        breaks(&mut b);
        let r = send(&access, "application/json", b.to_string())
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{what}");
        let message = r.json::<Value>().await.unwrap()["Message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            message.contains(what.split('=').next().unwrap()),
            "{what}: {message}"
        );
    }
    assert_eq!(
        send(&access, "application/json", "{".into())
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        send(&access, "application/json", body().to_string())
            .await
            .unwrap()
            .status(),
        200
    );

    // Control endpoints, as the Python tests and the demo use them.
    let r = http
        .post(format!("{url}/_stand-in/script"))
        .json(&json!({"statuses": [503]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        send(&access, "application/json", body().to_string())
            .await
            .unwrap()
            .status(),
        503
    );
    assert_eq!(
        send(&access, "application/json", body().to_string())
            .await
            .unwrap()
            .status(),
        200
    );
    http.post(format!("{url}/_stand-in/expire-tokens"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        send(&access, "application/json", body().to_string())
            .await
            .unwrap()
            .status(),
        401
    );

    let stats: Value = http
        .get(format!("{url}/_stand-in/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["accepted_batches"], 2);
    assert_eq!(stats["duplicate_batches"], 1, "the same batch.id twice");
    assert_eq!(stats["scripted"], 1);
    assert_eq!(stats["refresh_refused"], 1);
    let batches: Value = http
        .get(format!("{url}/_stand-in/batches"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(batches[0]["body"]["events"]["items"][0]["auditID"], "e-1");
}
