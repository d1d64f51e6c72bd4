//! A CSE outage that outlasts the buffer: memory stays bounded, every drop
//! is counted, delivery resumes when the API is back.

use crate::support::audit::*;

#[tokio::test]
async fn outage_longer_than_the_buffer_drops_counted_events_and_resumes() {
    let cse = stand_in().await;
    // Down until the test says otherwise.
    cse.script(std::iter::repeat_n(503, 100_000));
    let mut config = fast_config(&cse);
    config.batch.max_events = 10;
    config.buffer_events = 100;
    let fwd = start(config).await;

    let mut sent = 0u64;
    let mut accepted = 0u64;
    for round in 0..6 {
        let ids = ids(&format!("r{round}"), 50);
        let (status, answer) = post(&fwd.webhook, &event_list(&ids)).await;
        // The sender is never held up: it is answered at once, even when
        // its events cannot be kept.
        assert_eq!(status, 200);
        sent += 50;
        accepted += answer["accepted"].as_u64().unwrap();
    }
    let buffered = metric(&fwd.ops, "kube_oidc_authz_audit_buffer_events").await;
    assert!(buffered <= 100.0, "buffer bounded, holds {buffered}");
    let dropped = metric(
        &fwd.ops,
        "kube_oidc_authz_audit_events_dropped_total{reason=\"buffer_full\"}",
    )
    .await;
    assert!(
        dropped >= 190.0,
        "at most the buffer and one batch in flight are kept, dropped {dropped}"
    );
    assert_eq!(
        accepted as f64 + dropped,
        sent as f64,
        "every event is either kept or counted"
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
    let unique: std::collections::HashSet<_> = delivered.iter().collect();
    assert_eq!(unique.len(), delivered.len(), "no duplicates");

    // And it keeps working afterwards.
    let (status, _) = post(&fwd.webhook, &event_list(&ids("after", 5))).await;
    assert_eq!(status, 200);
    assert!(cse.wait_for_events(accepted + 5, PATIENCE).await);
    fwd.stop().await;
}
