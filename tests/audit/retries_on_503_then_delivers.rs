//! The CSE API answers 503, 503, then 200: every event arrives exactly
//! once, in order.

use crate::support::audit::*;

#[tokio::test]
async fn retries_on_503_then_delivers_every_event_once_in_order() {
    let cse = stand_in().await;
    cse.script([503, 503]);
    let mut config = fast_config(&cse);
    config.batch.max_events = 10;
    let fwd = start(config).await;

    let ids = ids("ev", 25);
    let (status, answer) = post(
        &format!("{}/events/kubernetes", fwd.webhook),
        &event_list(&ids),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 25);

    assert!(
        cse.wait_for_events(25, PATIENCE).await,
        "all events delivered"
    );
    assert_eq!(delivered_ids(&cse), ids, "exactly once, in order");

    let stats = cse.stats();
    assert_eq!(stats.scripted, 2);
    assert_eq!(stats.accepted_batches, 3, "batches of at most 10");
    assert_eq!(stats.duplicate_batches, 0);
    assert_eq!(stats.refreshes, 1, "the access token is cached");
    for batch in cse.batches() {
        assert!(batch.events().len() <= 10);
        assert_eq!(batch.body["service"]["name"], "test-cluster");
        assert_eq!(batch.body["type"], "Audit");
        assert_eq!(batch.body["sub_type"], "Kubernetes");
    }
    // The forwarded events are the apiserver's, unchanged.
    assert_eq!(cse.events()[0], event("ev-00000"));

    assert_eq!(
        metric(
            &fwd.ops,
            "kube_oidc_authz_audit_batch_retries_total{reason=\"status\"}"
        )
        .await,
        2.0
    );
    assert_eq!(
        metric(&fwd.ops, "kube_oidc_authz_audit_events_sent_total").await,
        25.0
    );
    assert_eq!(
        metric(
            &fwd.ops,
            "kube_oidc_authz_audit_events_received_total{source=\"webhook\"}"
        )
        .await,
        25.0
    );
    fwd.stop().await;
}

#[tokio::test]
async fn a_refused_batch_is_dropped_counted_and_the_next_delivered() {
    let cse = stand_in().await;
    cse.script([400]);
    let mut config = fast_config(&cse);
    config.batch.max_events = 5;
    let fwd = start(config).await;

    let (status, _) = post(&fwd.webhook, &event_list(&ids("a", 10))).await;
    assert_eq!(status, 200);
    assert!(cse.wait_for_events(5, PATIENCE).await);
    assert_eq!(delivered_ids(&cse), ids("a", 10)[5..]);
    assert_eq!(
        metric(
            &fwd.ops,
            "kube_oidc_authz_audit_events_dropped_total{reason=\"rejected\"}"
        )
        .await,
        5.0
    );
    assert_eq!(cse.stats().posts, 2, "a 400 is not retried");
    fwd.stop().await;
}
