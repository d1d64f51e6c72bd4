//! The stand-in apiserver, driven over HTTPS in-process: it accepts only the
//! proxy's token and applies Impersonate-* headers as the apiserver does,
//! refusing what the apiserver refuses, with the same Status bodies.

use std::time::Duration;

use kube_oidc_dev::apiserver::rbac::Rule;
use kube_oidc_dev::apiserver::{DEFAULT_SERVICE_ACCOUNT, StandIn, StandInConfig};
use serde_json::Value;

use crate::support::{StandInServer, serve_stand_in};

const TOKEN: &str = "proxy-service-account-token";

struct Server {
    url: String,
    client: reqwest::Client,
    standin: StandIn,
    _server: StandInServer,
}

async fn start() -> Server {
    let standin = StandIn::new(StandInConfig {
        token: TOKEN.to_owned(),
        service_account: DEFAULT_SERVICE_ACCOUNT.to_owned(),
        rules: Rule::guide_example(),
        watch_event_interval: Duration::from_millis(50),
        service_account_tokens: Vec::new(),
        proxy_userextras: None,
    });
    let server = serve_stand_in(standin.clone()).await;
    Server {
        url: server.url.clone(),
        client: server.client.clone(),
        standin,
        _server: server,
    }
}

impl Server {
    async fn call(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut req = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.url));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn whoami(&self, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut all = vec![("authorization", "Bearer proxy-service-account-token")];
        all.extend_from_slice(headers);
        self.call(
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            &all,
        )
        .await
    }
}

#[tokio::test]
async fn only_the_proxy_token_authenticates() {
    let s = start().await;
    for headers in [
        vec![],
        vec![("authorization", "Bearer wrong")],
        vec![("authorization", "Basic cHJveHk6eA==")],
        vec![(
            "authorization",
            "Bearer proxy-service-account-token-and-more",
        )],
    ] {
        let (status, body) = s
            .call("GET", "/api/v1/namespaces/default/pods", &headers)
            .await;
        assert_eq!(status, 401, "{headers:?}");
        assert_eq!(body["reason"], "Unauthorized");
        assert_eq!(body["kind"], "Status");
    }
    let (status, body) = s.whoami(&[]).await;
    assert_eq!(status, 201);
    assert_eq!(
        body["status"]["userInfo"]["username"],
        DEFAULT_SERVICE_ACCOUNT
    );
}

#[tokio::test]
async fn repeated_group_lines_are_separate_groups_and_commas_are_not_split() {
    let s = start().await;
    let (status, body) = s
        .whoami(&[
            ("impersonate-user", "banyan:alice@example.com"),
            ("impersonate-group", "banyan:a"),
            ("impersonate-group", "banyan:b,banyan:c"),
            ("impersonate-extra-example.com%2Fteam", "Blue"),
            ("impersonate-extra-example.com%2Fteam", "green"),
            ("impersonate-uid", "1234"),
        ])
        .await;
    assert_eq!(status, 201, "{body}");
    let info = &body["status"]["userInfo"];
    assert_eq!(info["username"], "banyan:alice@example.com");
    assert_eq!(info["uid"], "1234");
    assert_eq!(
        info["groups"],
        serde_json::json!(["banyan:a", "banyan:b,banyan:c", "system:authenticated"])
    );
    assert_eq!(
        info["extra"],
        serde_json::json!({"example.com/team": ["Blue", "green"]})
    );
    let rec = s.standin.recorded();
    let last = rec.last().unwrap();
    assert_eq!(
        last.impersonate
            .iter()
            .filter(|(n, _)| n == "impersonate-group")
            .count(),
        2
    );
}

#[tokio::test]
async fn refuses_what_the_apiserver_refuses() {
    let s = start().await;
    type Case<'a> = (&'a [(&'a str, &'a str)], u16, &'a str);
    let cases: &[Case] = &[
        (
            &[("impersonate-group", "system:masters")],
            500,
            "Internal error occurred: requested [{Group  system:masters}] without impersonating a user",
        ),
        (
            &[("impersonate-uid", "1")],
            500,
            "without impersonating a user",
        ),
        (
            &[("impersonate-extra-scopes", "x")],
            500,
            "without impersonating a user",
        ),
        (
            &[("impersonate-user", "a"), ("impersonate-user", "b")],
            500,
            "several Impersonate-User headers",
        ),
        (&[("impersonate-user", "a,b")], 500, "comma-joined"),
    ];
    for (headers, code, message) in cases {
        let (status, body) = s.whoami(headers).await;
        assert_eq!(status, *code, "{headers:?}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(message),
            "{headers:?}: {body}"
        );
        assert_eq!(body["reason"], "InternalError");
    }
}

#[tokio::test]
async fn forbidden_has_the_apiserver_status_body() {
    let s = start().await;
    let (status, body) = s
        .call(
            "GET",
            "/api/v1/namespaces/default/services",
            &[
                ("authorization", "Bearer proxy-service-account-token"),
                ("impersonate-user", "banyan:alice@example.com"),
                ("impersonate-group", "banyan:any-employee-personal-device"),
            ],
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "services is forbidden: User \"banyan:alice@example.com\" cannot list resource \"services\" in API group \"\" in the namespace \"default\"",
            "reason": "Forbidden",
            "details": {"kind": "services"},
            "code": 403,
        })
    );
    // The same user may list pods there, and system:masters may do anything.
    let (status, _) = s
        .call(
            "GET",
            "/api/v1/namespaces/default/pods",
            &[
                ("authorization", "Bearer proxy-service-account-token"),
                ("impersonate-user", "banyan:alice@example.com"),
                ("impersonate-group", "banyan:any-employee-personal-device"),
            ],
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn watch_streams_events() {
    let s = start().await;
    let mut r = s
        .client
        .get(format!(
            "{}/api/v1/namespaces/default/pods?watch=true&resourceVersion=5",
            s.url
        ))
        .header("authorization", "Bearer proxy-service-account-token")
        .header("impersonate-user", "banyan:alice@example.com")
        .header("impersonate-group", "banyan:any-employee-personal-device")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut buf = String::new();
    while buf.lines().count() < 3 {
        let chunk = tokio::time::timeout(Duration::from_secs(5), r.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let versions: Vec<String> = buf
        .lines()
        .take(3)
        .map(|l| {
            let e: Value = serde_json::from_str(l).unwrap();
            assert_eq!(e["type"], "MODIFIED");
            e["object"]["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(versions, ["6", "7", "8"]);
}
