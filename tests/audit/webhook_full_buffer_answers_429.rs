//! An EventList that does not fit the buffer is refused whole with 429 and
//! `Retry-After`, so the apiserver's webhook backend (which retries on 429
//! and 5xx) resends it later and nothing is lost.

use crate::support::audit::*;

#[tokio::test]
async fn webhook_refuses_whole_event_list_with_429_when_buffer_is_full() {
    let cse = stand_in_down().await;
    let mut config = fast_config(&cse);
    config.batch.max_events = 10;
    config.buffer_events = 100;
    let fwd = start(config).await;

    let first = ids("a", 60);
    let (status, answer) = post(&fwd.webhook, &event_list(&first)).await;
    assert_eq!(status, 200);
    assert_eq!(answer["accepted"], 60);

    let second = ids("b", 60);
    let resp = reqwest::Client::new()
        .post(&fwd.webhook)
        .json(&event_list(&second))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429, "refused, not partly accepted");
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(retry_after.is_some_and(|s| s > 0), "Retry-After in seconds");
    let status: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["code"], 429);
    assert!(
        metric(&fwd.ops, "kube_oidc_authz_audit_buffer_events").await <= 60.0,
        "nothing from the refused list was buffered"
    );
    assert_eq!(
        metric(
            &fwd.ops,
            "kube_oidc_authz_audit_events_dropped_total{reason=\"buffer_full\"}"
        )
        .await,
        0.0,
        "a refusal the sender retries is not a drop"
    );
    assert_eq!(
        metric(
            &fwd.ops,
            "kube_oidc_authz_audit_webhook_busy_requests_total"
        )
        .await,
        1.0
    );

    // More events than the whole buffer can hold would never fit: that is
    // the sender's configuration to fix, not something to retry.
    let (status, _) = post(&fwd.webhook, &event_list(&ids("c", 101))).await;
    assert_eq!(status, 413);

    // The API comes back; the sender retries as the apiserver does.
    cse.clear_script();
    assert!(cse.wait_for_events(60, PATIENCE).await);
    let (status, answer) = post(&fwd.webhook, &event_list(&second)).await;
    assert_eq!(status, 200);
    assert_eq!(answer["accepted"], 60);
    assert!(cse.wait_for_events(120, PATIENCE).await);
    fwd.stop().await;

    let mut expected = first;
    expected.extend(second);
    assert_eq!(
        delivered_ids(&cse),
        expected,
        "every event exactly once, in order"
    );
}
