//! SIGTERM with events buffered: every one is delivered before exit; with
//! the API down, they go to the spool and are delivered after a restart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod audit_common;
use std::time::Duration;

use audit_common::*;

#[tokio::test]
async fn shutdown_delivers_everything_buffered_before_exit() {
    let cse = stand_in().await;
    let mut config = fast_config(&cse);
    // Nothing would be sent for an hour without the drain.
    config.batch.max_wait = Duration::from_secs(3600);
    config.batch.max_events = 400;
    let fwd = start(config).await;

    let ids = ids("t", 120);
    for chunk in ids.chunks(40) {
        assert_eq!(post(&fwd.webhook, &event_list(chunk)).await.0, 200);
    }
    assert_eq!(cse.stats().posts, 0);
    let webhook = fwd.webhook.clone();
    fwd.stop().await;
    assert_eq!(delivered_ids(&cse), ids);
    // Stopped means no longer listening.
    assert!(
        reqwest::Client::new()
            .post(&webhook)
            .body("{}")
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn undelivered_events_survive_a_restart_through_the_spool() {
    let cse = stand_in().await;
    cse.script(std::iter::repeat_n(503, 100_000));
    let spool = tempfile::tempdir().unwrap();
    let mut config = fast_config(&cse);
    config.spool_dir = Some(spool.path().to_path_buf());
    config.shutdown_grace = Duration::from_millis(200);
    config.batch.max_events = 7;
    let fwd = start(config.clone()).await;
    let ids = ids("s", 30);
    assert_eq!(post(&fwd.webhook, &event_list(&ids)).await.0, 200);
    let report = fwd.stop().await;
    assert_eq!(report.spooled, 30);
    assert_eq!(cse.stats().accepted_events, 0);
    assert_eq!(std::fs::read_dir(spool.path()).unwrap().count(), 1);

    cse.clear_script();
    let fwd = start(config).await;
    assert!(cse.wait_for_events(30, PATIENCE).await);
    assert_eq!(delivered_ids(&cse), ids, "all of them, in order");
    assert_eq!(
        metric(
            &fwd.ops,
            "kube_oidc_authz_audit_events_received_total{source=\"spool\"}"
        )
        .await,
        30.0
    );
    fwd.stop().await;
    assert_eq!(
        std::fs::read_dir(spool.path()).unwrap().count(),
        0,
        "spool emptied"
    );
}

#[tokio::test]
async fn without_a_spool_undelivered_events_are_counted_as_dropped() {
    let cse = stand_in().await;
    cse.script(std::iter::repeat_n(503, 100_000));
    let mut config = fast_config(&cse);
    config.shutdown_grace = Duration::from_millis(100);
    let fwd = start(config).await;
    assert_eq!(post(&fwd.webhook, &event_list(&ids("x", 9))).await.0, 200);
    let started = std::time::Instant::now();
    let report = fwd.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the grace period bounds the drain"
    );
    assert_eq!(
        report.dropped, 9,
        "every undelivered event is accounted for"
    );
    assert_eq!(report.spooled, 0);
}
