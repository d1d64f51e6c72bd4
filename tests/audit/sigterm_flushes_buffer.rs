//! SIGTERM with events buffered: every one is delivered before exit; with
//! the API down, they go to the spool and are delivered after a restart.

use std::time::Duration;

use crate::support::audit::*;

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
    let cse = stand_in_down().await;
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
    // Reloaded events are sent at once, not after another batch wait.
    config.batch.max_wait = Duration::from_secs(3600);
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
    let cse = stand_in_down().await;
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

/// The real binary, a real SIGTERM: exit code 0 and nothing left behind.
#[cfg(unix)]
#[tokio::test]
async fn the_binary_delivers_everything_on_sigterm_and_exits_zero() {
    let cse = stand_in().await;
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    };
    let (webhook, als, http) = (free(), free(), free());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kube-oidc-authz"))
        .args(["--log-level", "warn", "audit-forwarder"])
        .args(["--webhook-address", &webhook.to_string()])
        .args(["--als-address", &als.to_string()])
        .args(["--http-address", &http.to_string()])
        .args([
            "--restapi-url",
            &cse.url(),
            "--service-name",
            "test-cluster",
        ])
        .args(["--audit-batch-max-wait", "1h"])
        .env("BNN_K8S_AUDIT_PROXY_REFRESH_TOKEN", REFRESH_TOKEN)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let ready = format!("http://{http}/readyz");
    let deadline = std::time::Instant::now() + PATIENCE;
    while client.get(&ready).send().await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "forwarder did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ids = ids("bin", 50);
    let url = format!("http://{webhook}/events/kubernetes");
    assert_eq!(post(&url, &event_list(&ids)).await.0, 200);
    assert_eq!(cse.stats().posts, 0, "held back by the one-hour max wait");

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(delivered_ids(&cse), ids);
}
