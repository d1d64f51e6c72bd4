//! A CSE outage that outlasts the buffer: memory stays bounded, the webhook
//! sender is told to retry (429) instead of losing events, delivery resumes
//! when the API is back.

use crate::support::audit::*;

#[tokio::test]
async fn outage_longer_than_the_buffer_drops_counted_events_and_resumes() {
    let cse = stand_in_down().await;
    let mut config = fast_config(&cse);
    config.batch.max_events = 10;
    config.buffer_events = 100;
    let fwd = start(config).await;

    let mut sent = 0u64;
    let mut accepted = 0u64;
    let mut refused = Vec::new();
    for round in 0..6 {
        let ids = ids(&format!("r{round}"), 50);
        let (status, answer) = post(&fwd.webhook, &event_list(&ids)).await;
        // The sender is never held up: it is answered at once, either with
        // every event kept or with none and a request to retry.
        sent += 50;
        match status {
            200 => accepted += answer["accepted"].as_u64().unwrap(),
            429 => refused.push(ids),
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(!refused.is_empty(), "the outage outlasts the buffer");
    let buffered = metric(&fwd.ops, "kube_oidc_authz_audit_buffer_events").await;
    assert!(buffered <= 100.0, "buffer bounded, holds {buffered}");
    let dropped = metric(
        &fwd.ops,
        "kube_oidc_authz_audit_events_dropped_total{reason=\"buffer_full\"}",
    )
    .await;
    assert_eq!(dropped, 0.0, "a refused list is not a drop");
    assert_eq!(
        metric(
            &fwd.ops,
            "kube_oidc_authz_audit_webhook_busy_requests_total"
        )
        .await,
        refused.len() as f64
    );
    assert_eq!(
        accepted + 50 * refused.len() as u64,
        sent,
        "every event is either kept or refused whole"
    );
    assert!(
        metric(
            &fwd.ops,
            "kube_oidc_authz_audit_batch_retries_total{reason=\"status\"}"
        )
        .await
            >= 1.0
    );

    cse.clear_script();
    assert!(
        cse.wait_for_events(accepted, PATIENCE).await,
        "delivery resumes"
    );
    let delivered = delivered_ids(&cse);
    assert_eq!(delivered.len() as u64, accepted);

    // The sender retries what was refused, as the apiserver does.
    for ids in &refused {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let (status, _) = post(&fwd.webhook, &event_list(ids)).await;
            if status == 200 {
                break;
            }
            assert_eq!(status, 429);
            assert!(
                tokio::time::Instant::now() < deadline,
                "retry accepted in time"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    assert!(cse.wait_for_events(sent, PATIENCE).await);
    let delivered = delivered_ids(&cse);
    assert_eq!(delivered.len() as u64, sent);
    let unique: std::collections::HashSet<_> = delivered.iter().collect();
    assert_eq!(unique.len(), delivered.len(), "no duplicates");

    // And it keeps working afterwards.
    let (status, _) = post(&fwd.webhook, &event_list(&ids("after", 5))).await;
    assert_eq!(status, 200);
    assert!(cse.wait_for_events(sent + 5, PATIENCE).await);
    fwd.stop().await;
}
