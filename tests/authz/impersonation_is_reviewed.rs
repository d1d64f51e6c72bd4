//! End-user impersonation (`--allow-impersonation`) against the stand-in
//! apiserver: every requested value is authorised with a
//! SubjectAccessReview as the caller, each once, answers are cached, the
//! requested identity goes upstream with the original user in extras, and
//! every way to fail (denied, reserved, too many values, no user, joined
//! values, reviews down or slow) answers with its own status.

use std::time::Duration;

use envoy_types::pb::envoy::service::auth::v3::CheckResponse;
use envoy_types::pb::google::protobuf::value::Kind;
use kube_oidc_authz::authz::verify::SigningAlg;
use kube_oidc_authz::k8s::access_review::SUBJECT_ACCESS_REVIEWS_PATH;
use kube_oidc_dev::apiserver::rbac::Rule;
use kube_oidc_dev::apiserver::{DEFAULT_SERVICE_ACCOUNT, StandIn, StandInConfig};
use serde_json::json;

use crate::support::*;

struct Setup {
    standin: StandIn,
    authz: Authz,
    alice: String,
    reader: String,
    _api: HttpsServer,
    _issuer: Issuer,
}

fn flags(issuer: &Issuer, api: &HttpsServer, extra: &[&str]) -> Vec<String> {
    let mut flags = issuer.product_flags();
    flags.extend([
        "--allow-impersonation".to_owned(),
        format!("--apiserver-url={}", api.url),
        format!("--apiserver-ca-file={}", api.ca_file.display()),
    ]);
    flags.extend(extra.iter().map(|s| (*s).to_owned()));
    flags
}

async fn setup(extra: &[&str]) -> Setup {
    let standin = StandIn::new(StandInConfig {
        token: SA_TOKEN.to_owned(),
        service_account: DEFAULT_SERVICE_ACCOUNT.to_owned(),
        rules: Rule::guide_example(),
        watch_event_interval: Duration::from_secs(1),
        service_account_tokens: Vec::new(),
        proxy_userextras: None,
    });
    let api = serve_https(standin.router()).await;
    let issuer = Issuer::start(SigningAlg::RS256).await;
    let authz = Authz::start(&flags(&issuer, &api, extra)).await;
    // The guide's developers may impersonate bob; readers may not.
    let alice = issuer.token(json!({"roles": ["developers"], "jti": "j-1"}));
    let reader = issuer.token(json!({
        "email": "carol@example.com",
        "roles": ["any-employee-personal-device"],
    }));
    Setup {
        standin,
        authz,
        alice,
        reader,
        _api: api,
        _issuer: issuer,
    }
}

/// A Check with `headers` as Envoy sends them with `encode_raw_headers`:
/// one entry per line, repeated names kept apart.
async fn check_raw(authz: &Authz, token: &str, headers: &[(&str, &str)]) -> CheckResponse {
    let bearer = format!("Bearer {token}");
    let lines: Vec<(&str, &str)> = std::iter::once(("authorization", bearer.as_str()))
        .chain(headers.iter().copied())
        .collect();
    let req = check_request_raw(&lines, "203.0.113.7");
    authz.client.clone().check(req).await.unwrap().into_inner()
}

fn reviews(standin: &StandIn) -> Vec<serde_json::Value> {
    standin
        .recorded()
        .iter()
        .filter(|r| r.path == SUBJECT_ACCESS_REVIEWS_PATH)
        .map(|r| json!({"status": r.status, "user": r.user.as_ref().map(|u| u.username.clone())}))
        .collect()
}

fn extras(resp: &CheckResponse) -> serde_json::Map<String, serde_json::Value> {
    let md = resp.dynamic_metadata.as_ref().unwrap();
    let Some(Kind::StructValue(s)) = md.fields.get("extra").and_then(|v| v.kind.as_ref()) else {
        panic!("no extra")
    };
    let value = serde_json::to_value(
        s.fields
            .iter()
            .map(|(k, v)| {
                let Some(Kind::ListValue(l)) = &v.kind else {
                    panic!()
                };
                let vs: Vec<String> = l
                    .values
                    .iter()
                    .map(|v| match &v.kind {
                        Some(Kind::StringValue(s)) => s.clone(),
                        _ => panic!(),
                    })
                    .collect();
                (k.clone(), vs)
            })
            .collect::<std::collections::BTreeMap<_, _>>(),
    )
    .unwrap();
    value.as_object().unwrap().clone()
}

#[tokio::test]
async fn allowed_impersonation_forwards_the_requested_identity_reviewed_once() {
    let s = setup(&[]).await;
    let asked = [
        ("impersonate-user", "banyan:bob@example.com"),
        ("impersonate-group", "banyan:any-employee-personal-device"),
        ("impersonate-group", "banyan:any-employee-personal-device"),
        ("impersonate-uid", "bob-uid"),
    ];
    let resp = check_raw(&s.authz, &s.alice, &asked).await;
    let headers = ok_headers(&resp);
    let header = |name: &str| {
        headers
            .iter()
            .find(|h| h.0 == name)
            .map(|h| h.1.clone())
            .unwrap_or_default()
    };
    assert_eq!(header("impersonate-user"), "banyan:bob@example.com");
    assert_eq!(header("impersonate-uid"), "bob-uid");
    assert_eq!(header("authorization"), format!("Bearer {SA_TOKEN}"));
    // Groups as asked (the apiserver keeps duplicates too).
    assert_eq!(
        metadata_list(&resp, "groups"),
        [
            "banyan:any-employee-personal-device",
            "banyan:any-employee-personal-device"
        ]
    );
    let extra = extras(&resp);
    assert_eq!(
        extra["originaluser.kube-oidc-authz.io/user"],
        json!(["banyan:alice@example.com"])
    );
    assert_eq!(
        extra["originaluser.kube-oidc-authz.io/groups"],
        json!(["banyan:developers", "system:authenticated"])
    );
    assert_eq!(
        extra["originaluser.kube-oidc-authz.io/extra"],
        json!([r#"{"authentication.kubernetes.io/credential-id":["JTI=j-1"]}"#])
    );
    // The caller's own credential id is not the impersonated user's.
    assert!(!extra.contains_key("authentication.kubernetes.io/credential-id"));

    // User, group (asked twice) and uid: three reviews, all by the proxy.
    let first = reviews(&s.standin);
    assert_eq!(first.len(), 3, "{first:?}");
    for r in &first {
        assert_eq!(r["status"], 201);
        assert_eq!(r["user"], DEFAULT_SERVICE_ACCOUNT);
    }
    // The same caller asking the same again is answered from the cache.
    let again = check_raw(&s.authz, &s.alice, &asked).await;
    assert_eq!(again.status.as_ref().unwrap().code, 0);
    assert_eq!(reviews(&s.standin).len(), 3);
    let metrics = s.authz.metrics().await;
    for line in [
        "kube_oidc_authz_impersonation_reviews_total{result=\"allowed\"} 3",
        "kube_oidc_authz_impersonation_review_cache_total{result=\"hit\"} 3",
        "kube_oidc_authz_impersonation_review_cache_total{result=\"miss\"} 3",
        "kube_oidc_authz_decisions_total{decision=\"allow\",reason=\"impersonated\"} 2",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
}

#[tokio::test]
async fn a_value_the_caller_may_not_impersonate_is_forbidden_with_the_apiserver_message() {
    let s = setup(&[]).await;
    let cases = [
        (
            &s.alice,
            ("impersonate-group", "banyan:all-admins-corporate-device"),
            r#"groups "banyan:all-admins-corporate-device" is forbidden: User "banyan:alice@example.com" cannot impersonate resource "groups" in API group "" at the cluster scope"#,
        ),
        (
            &s.reader,
            ("impersonate-group", "banyan:any-employee-personal-device"),
            r#"users "banyan:bob@example.com" is forbidden: User "banyan:carol@example.com" cannot impersonate resource "users" in API group "" at the cluster scope"#,
        ),
    ];
    for (token, group, message) in cases {
        let resp = check_raw(
            &s.authz,
            token,
            &[("impersonate-user", "banyan:bob@example.com"), group],
        )
        .await;
        let (code, body) = denied(&resp);
        assert_eq!(code, 403, "{body}");
        assert_eq!(body["reason"], "Forbidden");
        assert_eq!(body["message"], message);
        assert_eq!(reason(&resp), "impersonation_denied");
    }
    // A denial is cached too.
    let before = reviews(&s.standin).len();
    let resp = check_raw(
        &s.authz,
        &s.reader,
        &[("impersonate-user", "banyan:bob@example.com")],
    )
    .await;
    assert_eq!(denied(&resp).0, 403);
    assert_eq!(reviews(&s.standin).len(), before);
}

#[tokio::test]
async fn unusable_requests_are_refused_before_any_review() {
    let s = setup(&["--impersonation-max-values=4"]).await;
    let too_many: Vec<(&str, &str)> =
        std::iter::once(("impersonate-user", "banyan:bob@example.com"))
            .chain(std::iter::repeat_n(("impersonate-group", "g"), 4))
            .collect();
    type Case<'a> = (Vec<(&'a str, &'a str)>, i32, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            vec![
                ("impersonate-user", "banyan:bob@example.com"),
                ("impersonate-group", "system:masters"),
            ],
            403,
            "impersonation_reserved",
        ),
        (
            vec![("impersonate-user", "system:admin")],
            403,
            "impersonation_reserved",
        ),
        (
            vec![
                ("impersonate-user", "banyan:bob@example.com"),
                (
                    "impersonate-extra-originaluser.kube-oidc-authz.io%2fuser",
                    "someone",
                ),
            ],
            403,
            "impersonation_reserved",
        ),
        (too_many, 431, "impersonation_too_many_values"),
        (
            vec![("impersonate-group", "banyan:any-employee-personal-device")],
            500,
            "impersonation_without_user",
        ),
        (
            vec![
                ("impersonate-user", "banyan:bob@example.com"),
                ("impersonate-extra-", "x"),
            ],
            400,
            "impersonation_malformed",
        ),
    ];
    for (headers, status, code) in cases {
        let resp = check_raw(&s.authz, &s.alice, &headers).await;
        let (got, body) = denied(&resp);
        assert_eq!(
            (got, reason(&resp).as_str()),
            (status, code),
            "{headers:?}: {body}"
        );
        assert_eq!(body["kind"], "Status");
        assert_eq!(body["code"], status);
    }
    assert_eq!(
        denied(&check_raw(&s.authz, &s.alice, &[("impersonate-group", "g")]).await).1["message"],
        "Internal error occurred: requested [{Group  g    }] without impersonating a user"
    );
    assert_eq!(reviews(&s.standin), Vec::<serde_json::Value>::new());

    // Envoy's plain `headers` map joins repeated lines with commas: a comma
    // there cannot be told from two groups, and is refused.
    let bearer = format!("Bearer {}", s.alice);
    let joined = s
        .authz
        .check(&[
            ("authorization", &bearer),
            ("impersonate-user", "banyan:bob@example.com"),
            (
                "impersonate-group",
                "banyan:any-employee-personal-device,banyan:x",
            ),
        ])
        .await;
    assert_eq!(
        (denied(&joined).0, reason(&joined).as_str()),
        (400, "impersonation_malformed")
    );
    // Without a comma the plain map is unambiguous.
    let single = s
        .authz
        .check(&[
            ("authorization", &bearer),
            ("impersonate-user", "banyan:bob@example.com"),
            ("impersonate-group", "banyan:any-employee-personal-device"),
        ])
        .await;
    assert_eq!(single.status.as_ref().unwrap().code, 0, "{single:?}");
}

#[tokio::test]
async fn reviews_that_fail_or_answer_late_fail_closed_with_503() {
    let failing = axum::Router::new().route(
        SUBJECT_ACCESS_REVIEWS_PATH,
        axum::routing::post(|| async { (http::StatusCode::INTERNAL_SERVER_ERROR, "down") }),
    );
    let slow = axum::Router::new().route(
        SUBJECT_ACCESS_REVIEWS_PATH,
        axum::routing::post(|| async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            (
                http::StatusCode::CREATED,
                axum::Json(json!({"status": {"allowed": true}})),
            )
        }),
    );
    for router in [failing, slow] {
        let api = serve_https(router).await;
        let issuer = Issuer::start(SigningAlg::RS256).await;
        let authz = Authz::start(&flags(
            &issuer,
            &api,
            &["--impersonation-review-timeout=200ms"],
        ))
        .await;
        let alice = issuer.token(json!({"roles": ["developers"]}));
        let resp = check_raw(
            &authz,
            &alice,
            &[
                ("impersonate-user", "banyan:bob@example.com"),
                ("impersonate-group", "a"),
                ("impersonate-group", "b"),
            ],
        )
        .await;
        let (code, body) = denied(&resp);
        assert_eq!(
            (code, reason(&resp).as_str()),
            (503, "impersonation_unavailable")
        );
        assert_eq!(body["reason"], "ServiceUnavailable");
        // Failures are not cached: the next request asks again.
        let metrics = authz.metrics().await;
        assert!(
            metrics.contains("kube_oidc_authz_impersonation_review_cache_total{result=\"miss\"} 3"),
            "{metrics}"
        );
    }
}

#[tokio::test]
async fn without_the_flag_every_impersonation_header_is_refused() {
    let issuer = Issuer::start(SigningAlg::RS256).await;
    let authz = Authz::start(&issuer.product_flags()).await;
    let alice = issuer.token(json!({"roles": ["developers"]}));
    let resp = check_raw(
        &authz,
        &alice,
        &[("impersonate-user", "banyan:bob@example.com")],
    )
    .await;
    assert_eq!(
        (denied(&resp).0, reason(&resp).as_str()),
        (403, "impersonation_refused")
    );
}
