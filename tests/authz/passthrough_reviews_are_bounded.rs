//! Token passthrough does not turn bearer strings into TokenReviews at the
//! caller's will: garbage and tokens for other audiences are refused
//! without a review (and counted), reviews in flight are bounded, and a
//! review queue that stays full fails closed with 503.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kube_oidc_authz::authz::passthrough::MAX_CONCURRENT_REVIEWS;
use kube_oidc_authz::authz::verify::SigningAlg;
use kube_oidc_dev::apiserver::identity::UserInfo;
use kube_oidc_dev::apiserver::rbac::Rule;
use kube_oidc_dev::apiserver::token_review::{
    API_AUDIENCE, CI_SERVICE_ACCOUNT, OTHER_AUDIENCE, ServiceAccountToken,
};
use kube_oidc_dev::apiserver::{DEFAULT_SERVICE_ACCOUNT, StandIn, StandInConfig};
use serde_json::json;

use crate::support::*;

const REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";

fn passthrough_flags(issuer: &Issuer, api: &HttpsServer) -> Vec<String> {
    let mut flags = issuer.product_flags();
    flags.extend([
        "--token-passthrough".to_owned(),
        format!("--token-passthrough-audiences={API_AUDIENCE}"),
        format!("--apiserver-url={}", api.url),
        format!("--apiserver-ca-file={}", api.ca_file.display()),
    ]);
    flags
}

fn jwt(claims: serde_json::Value, n: usize) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"k"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(format!("signature-{n}")),
    )
}

fn reviews(standin: &StandIn) -> usize {
    standin
        .recorded()
        .iter()
        .filter(|r| r.path == REVIEWS)
        .count()
}

#[tokio::test]
async fn garbage_tokens_cause_no_token_reviews() {
    let ci_user = UserInfo::service_account(CI_SERVICE_ACCOUNT, "ci-uid");
    let ci = ServiceAccountToken::mint(ci_user, &[API_AUDIENCE]);
    let standin = StandIn::new(StandInConfig {
        token: SA_TOKEN.to_owned(),
        service_account: DEFAULT_SERVICE_ACCOUNT.to_owned(),
        rules: Rule::guide_example(),
        watch_event_interval: Duration::from_secs(1),
        service_account_tokens: vec![ci.clone()],
        proxy_userextras: None,
    });
    let api = serve_https(standin.router()).await;
    let issuer = Issuer::start(SigningAlg::RS256).await;
    let authz = Authz::start(&passthrough_flags(&issuer, &api)).await;

    for n in 0..300 {
        let token = match n % 3 {
            0 => format!("garbage-{n}"),
            1 => format!("{n}.{n}.{n}"),
            _ => jwt(json!({"aud": [OTHER_AUDIENCE], "sub": "x"}), n),
        };
        let resp = authz.check_token(&token).await;
        assert_eq!(denied(&resp).0, 401, "{token}");
    }
    assert_eq!(reviews(&standin), 0, "garbage reached the apiserver");
    let metrics = authz.metrics().await;
    for (reason, count) in [("not_jwt", 200), ("audience", 100)] {
        let line =
            format!("kube_oidc_authz_passthrough_refusals_total{{reason=\"{reason}\"}} {count}");
        assert!(metrics.contains(&line), "{line} not in\n{metrics}");
    }

    // A real candidate is still reviewed, once, and passed through.
    for _ in 0..3 {
        let resp = authz.check_token(&ci.token).await;
        assert_eq!(resp.status.as_ref().unwrap().code, 0, "{resp:?}");
    }
    assert_eq!(reviews(&standin), 1);
}

#[tokio::test]
async fn concurrent_reviews_are_bounded_and_a_full_queue_fails_closed() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (f, m) = (in_flight.clone(), most.clone());
    // A slow apiserver that refuses every token.
    let router = axum::Router::new().route(
        REVIEWS,
        axum::routing::post(move || {
            let (f, m) = (f.clone(), m.clone());
            async move {
                let now = f.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(150)).await;
                f.fetch_sub(1, Ordering::SeqCst);
                (
                    http::StatusCode::CREATED,
                    axum::Json(json!({"status": {"authenticated": false}})),
                )
            }
        }),
    );
    let api = serve_https(router).await;
    let issuer = Issuer::start(SigningAlg::RS256).await;
    let authz = Arc::new(Authz::start(&passthrough_flags(&issuer, &api)).await);

    let checks: Vec<_> = (0..4 * MAX_CONCURRENT_REVIEWS)
        .map(|n| {
            let authz = authz.clone();
            tokio::spawn(async move {
                let token = jwt(json!({"aud": API_AUDIENCE, "sub": format!("sa-{n}")}), n);
                denied(&authz.check_token(&token).await).0
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for c in checks {
        statuses.push(c.await.unwrap());
    }
    let most = most.load(Ordering::SeqCst);
    assert!(
        most <= MAX_CONCURRENT_REVIEWS,
        "{most} reviews in flight at once"
    );
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 503),
        "{statuses:?}"
    );
    assert!(statuses.contains(&401), "{statuses:?}");
    assert!(statuses.contains(&503), "{statuses:?}");
    let metrics = authz.metrics().await;
    assert!(
        metrics.contains("kube_oidc_authz_passthrough_refusals_total{reason=\"saturated\"}"),
        "{metrics}"
    );
}
