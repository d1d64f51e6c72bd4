//! The stand-in apiserver answers TokenReviews as the real one does: its
//! own service-account tokens are authenticated for the audiences they
//! share with the review, others are not, and only a caller granted
//! `create tokenreviews` may ask.

use std::time::Duration;

use kube_oidc_dev::apiserver::identity::UserInfo;
use kube_oidc_dev::apiserver::rbac::Rule;
use kube_oidc_dev::apiserver::token_review::{
    API_AUDIENCE, CI_SERVICE_ACCOUNT, OTHER_AUDIENCE, ServiceAccountToken,
};
use kube_oidc_dev::apiserver::{DEFAULT_SERVICE_ACCOUNT, StandIn, StandInConfig};
use serde_json::{Value, json};

use crate::support::{StandInServer, serve_stand_in};

const PROXY_TOKEN: &str = "proxy-service-account-token";
const REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";

struct Server {
    url: String,
    client: reqwest::Client,
    ci: String,
    ci_other_audience: String,
    _server: StandInServer,
}

async fn start() -> Server {
    let ci_user = UserInfo::service_account(CI_SERVICE_ACCOUNT, "ci-uid");
    let ci = ServiceAccountToken::mint(ci_user.clone(), &[API_AUDIENCE]);
    let ci_other = ServiceAccountToken::mint(ci_user, &[OTHER_AUDIENCE]);
    let server = serve_stand_in(StandIn::new(StandInConfig {
        token: PROXY_TOKEN.to_owned(),
        service_account: DEFAULT_SERVICE_ACCOUNT.to_owned(),
        rules: Rule::guide_example(),
        watch_event_interval: Duration::from_millis(50),
        service_account_tokens: vec![ci.clone(), ci_other.clone()],
        proxy_userextras: None,
    }))
    .await;
    Server {
        url: server.url.clone(),
        client: server.client.clone(),
        ci: ci.token,
        ci_other_audience: ci_other.token,
        _server: server,
    }
}

impl Server {
    async fn post(&self, caller: &str, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.url))
            .bearer_auth(caller)
            .json(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    async fn review(&self, token: &str, audiences: &[&str]) -> (u16, Value) {
        let body = json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": audiences},
        });
        self.post(PROXY_TOKEN, REVIEWS, &body).await
    }
}

#[tokio::test]
async fn token_review_accepts_its_own_service_account_token_with_the_shared_audiences() {
    let s = start().await;
    let (code, body) = s.review(&s.ci, &["other", API_AUDIENCE]).await;
    assert_eq!(code, 201, "{body}");
    let status = &body["status"];
    assert_eq!(status["authenticated"], true, "{body}");
    assert_eq!(status["user"]["username"], CI_SERVICE_ACCOUNT);
    assert_eq!(
        status["user"]["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:ci",
            "system:authenticated"
        ])
    );
    assert_eq!(status["audiences"], json!([API_AUDIENCE]));
    // The token is not echoed back.
    assert!(body["spec"]["token"].is_null(), "{body}");

    // Without audiences, the apiserver's own are asked for.
    let (code, body) = s.review(&s.ci, &[]).await;
    assert_eq!(code, 201);
    assert_eq!(body["status"]["audiences"], json!([API_AUDIENCE]), "{body}");

    let (_, body) = s.review(&s.ci_other_audience, &[OTHER_AUDIENCE]).await;
    assert_eq!(body["status"]["authenticated"], true, "{body}");
    assert_eq!(body["status"]["audiences"], json!([OTHER_AUDIENCE]));
}

#[tokio::test]
async fn token_review_refuses_other_audiences_and_unknown_tokens() {
    let s = start().await;
    let (code, body) = s.review(&s.ci_other_audience, &[API_AUDIENCE]).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["status"]["authenticated"], false, "{body}");
    let error = body["status"]["error"].as_str().unwrap();
    assert!(
        error.contains("is invalid for the target audiences"),
        "{error}"
    );
    assert!(body["status"].get("audiences").is_none(), "{body}");

    for token in ["a.b.c", "not-a-jwt", PROXY_TOKEN.trim_end_matches('n')] {
        let (code, body) = s.review(token, &[API_AUDIENCE]).await;
        assert_eq!(code, 201, "{body}");
        assert_eq!(body["status"]["authenticated"], false, "{token}: {body}");
        assert!(body["status"]["user"]["username"].is_null(), "{body}");
    }

    let (code, body) = s.review("", &[API_AUDIENCE]).await;
    assert_eq!(code, 400, "{body}");
}

#[tokio::test]
async fn token_review_needs_create_tokenreviews() {
    let s = start().await;
    let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": s.ci}});
    let (code, answer) = s.post(&s.ci, REVIEWS, &body).await;
    assert_eq!(code, 403, "{answer}");
    assert_eq!(
        answer["message"],
        "tokenreviews.authentication.k8s.io is forbidden: User \"system:serviceaccount:ci:deployer\" cannot create resource \"tokenreviews\" in API group \"authentication.k8s.io\" at the cluster scope"
    );
    // A token meant for another audience does not authenticate at all.
    let (code, _) = s.post(&s.ci_other_audience, REVIEWS, &body).await;
    assert_eq!(code, 401);
}

#[tokio::test]
async fn ci_token_authenticates_as_its_service_account() {
    let s = start().await;
    let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
    let (code, answer) = s
        .post(
            &s.ci,
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            &body,
        )
        .await;
    assert_eq!(code, 201, "{answer}");
    assert_eq!(answer["status"]["userInfo"]["username"], CI_SERVICE_ACCOUNT);
}
