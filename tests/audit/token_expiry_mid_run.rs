//! The access token expires mid-run: the 401 triggers one refresh and the
//! batch is delivered.

use crate::support::audit::*;

#[tokio::test]
async fn a_401_triggers_one_refresh_and_the_batch_is_delivered() {
    let cse = stand_in().await;
    let fwd = start(fast_config(&cse)).await;

    post(&fwd.webhook, &event_list(&ids("before", 3))).await;
    assert!(cse.wait_for_events(3, PATIENCE).await);
    assert_eq!(cse.stats().refreshes, 1);

    cse.expire_tokens();
    let (status, _) = post(&fwd.webhook, &event_list(&ids("after", 4))).await;
    assert_eq!(status, 200);
    assert!(cse.wait_for_events(7, PATIENCE).await);

    let stats = cse.stats();
    assert_eq!(stats.unauthorized, 1, "one 401");
    assert_eq!(stats.refreshes, 2, "one refresh after it");
    assert_eq!(stats.duplicate_batches, 0);
    let mut want = ids("before", 3);
    want.extend(ids("after", 4));
    assert_eq!(delivered_ids(&cse), want);
    assert_eq!(
        metric(
            &fwd.ops,
            "kube_oidc_authz_audit_batch_retries_total{reason=\"unauthorized\"}"
        )
        .await,
        1.0
    );
    fwd.stop().await;
}

#[tokio::test]
async fn a_wrong_refresh_token_is_retried_not_dropped() {
    let cse = stand_in().await;
    let mut config = fast_config(&cse);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("refresh-token");
    std::fs::write(&token_file, "wrong\n").unwrap();
    config.cse.refresh_token = kube_oidc_authz::audit::cse::RefreshToken::File(token_file.clone());
    let fwd = start(config).await;

    post(&fwd.webhook, &event_list(&ids("e", 2))).await;
    // Rotating the mounted Secret fixes it without a restart.
    while cse.stats().refresh_refused < 2 {
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    std::fs::write(&token_file, format!("{REFRESH_TOKEN}\n")).unwrap();
    assert!(cse.wait_for_events(2, PATIENCE).await);
    assert!(
        metric(
            &fwd.ops,
            "kube_oidc_authz_audit_batch_retries_total{reason=\"token\"}"
        )
        .await
            >= 2.0
    );
    fwd.stop().await;
}
