//! The stand-in apiserver answers SubjectAccessReviews as the real one
//! does: only a caller granted `create subjectaccessreviews` may ask, the
//! subject is judged by the same RBAC table that judges its requests, and
//! a malformed review is 422.

use std::time::Duration;

use kube_oidc_dev::apiserver::identity::UserInfo;
use kube_oidc_dev::apiserver::rbac::Rule;
use kube_oidc_dev::apiserver::token_review::{
    API_AUDIENCE, CI_SERVICE_ACCOUNT, ServiceAccountToken,
};
use kube_oidc_dev::apiserver::{DEFAULT_SERVICE_ACCOUNT, StandIn, StandInConfig};
use serde_json::{Value, json};

use crate::support::serve_stand_in;

const PROXY_TOKEN: &str = "proxy-service-account-token";
const REVIEWS: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";

fn review(user: &str, groups: &[&str], resource: &str, name: &str) -> Value {
    json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": user,
            "groups": groups,
            "resourceAttributes": {"verb": "impersonate", "resource": resource, "name": name},
        },
    })
}

#[tokio::test]
async fn reviews_are_answered_from_rbac_for_callers_allowed_to_ask() {
    let ci = ServiceAccountToken::mint(
        UserInfo::service_account(CI_SERVICE_ACCOUNT, "ci-uid"),
        &[API_AUDIENCE],
    );
    let server = serve_stand_in(StandIn::new(StandInConfig {
        token: PROXY_TOKEN.to_owned(),
        service_account: DEFAULT_SERVICE_ACCOUNT.to_owned(),
        rules: Rule::guide_example(),
        watch_event_interval: Duration::from_millis(50),
        service_account_tokens: vec![ci.clone()],
        proxy_userextras: None,
    }))
    .await;
    let post = |caller: String, body: Value| {
        let client = server.client.clone();
        let url = format!("{}{REVIEWS}", server.url);
        async move {
            let r = client
                .post(url)
                .bearer_auth(caller)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let alice = "banyan:alice@example.com";
    for (body, allowed) in [
        (
            review(
                alice,
                &["banyan:developers"],
                "users",
                "banyan:bob@example.com",
            ),
            true,
        ),
        (
            review(alice, &["banyan:developers"], "groups", "banyan:readers,eu"),
            true,
        ),
        (
            review(alice, &["banyan:developers"], "groups", "system:masters"),
            false,
        ),
        (
            review(
                alice,
                &["banyan:any-employee-personal-device"],
                "users",
                "banyan:bob@example.com",
            ),
            false,
        ),
    ] {
        let (code, got) = post(PROXY_TOKEN.to_owned(), body.clone()).await;
        assert_eq!(code, 201, "{got}");
        assert_eq!(got["status"]["allowed"], allowed, "{body}");
        assert_eq!(got["spec"], body["spec"]);
    }

    // The CI job may not create reviews: 403 with the apiserver's message.
    let (code, got) = post(ci.token.clone(), review(alice, &[], "users", "x")).await;
    assert_eq!(code, 403, "{got}");
    assert_eq!(
        got["message"],
        "subjectaccessreviews.authorization.k8s.io is forbidden: User \"system:serviceaccount:ci:deployer\" cannot create resource \"subjectaccessreviews\" in API group \"authorization.k8s.io\" at the cluster scope"
    );

    let (code, got) = post(PROXY_TOKEN.to_owned(), json!({"spec": {"user": alice}})).await;
    assert_eq!(
        (code, got["reason"].as_str()),
        (422, Some("Invalid")),
        "{got}"
    );
}
