//! A flood of requests without a credential (each a 401 from ext_authz, each
//! an access-log entry) cannot crowd the authenticated requests' events out
//! of the buffer: events without an identity have a budget of their own.

use crate::support::audit::*;
use envoy_types::pb::envoy::config::core::v3::RequestMethod;

#[tokio::test]
async fn unauthenticated_flood_does_not_displace_authenticated_events() {
    let cse = stand_in_down().await;
    let mut config = fast_config(&cse);
    config.batch.max_events = 10;
    config.buffer_events = 200;
    let fwd = start(config).await;

    let flood: Vec<_> = (0..2_000)
        .map(|i| {
            als_entry_without_identity(
                RequestMethod::Get,
                &format!("/api/v1/namespaces/kube-system/secrets/probe-{i}"),
                401,
            )
        })
        .collect();
    stream_access_log(fwd.als, flood, 100).await;

    let paths: Vec<String> = (0..20)
        .map(|i| format!("/api/v1/namespaces/kube-system/secrets/s-{i:02}"))
        .collect();
    let reads = paths
        .iter()
        .map(|p| als_entry(RequestMethod::Get, p, 200))
        .collect();
    stream_access_log(fwd.als, reads, 5).await;

    cse.clear_script();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let delivered_reads = || {
        cse.events()
            .into_iter()
            .filter(|e| e["user"]["username"] == "banyan:alice@example.com")
            .map(|e| e["requestURI"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    while delivered_reads().len() < paths.len() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        delivered_reads(),
        paths,
        "every authenticated read reached the CSE API, once, in order"
    );

    let noise_dropped = metric(
        &fwd.ops,
        "kube_oidc_authz_audit_events_dropped_total{reason=\"unauthenticated_budget\"}",
    )
    .await;
    assert!(
        noise_dropped > 0.0,
        "the flood is cut off at its own budget, and counted"
    );
    assert_eq!(
        metric(
            &fwd.ops,
            "kube_oidc_authz_audit_events_dropped_total{reason=\"buffer_full\"}"
        )
        .await,
        0.0,
        "no authenticated event was dropped"
    );
    fwd.stop().await;
}
