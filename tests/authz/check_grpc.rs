//! Real CheckRequests over gRPC to the service in-process, against a local
//! HTTPS issuer: the exact header mutations, metadata and denied bodies.

use crate::support::*;
use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use kube_oidc_authz::authz::verify::SigningAlg;
use serde_json::json;

const OVERWRITE: i32 = HeaderAppendAction::OverwriteIfExistsOrAdd as i32;

#[tokio::test]
async fn alice_becomes_banyan_identity_with_overwrite_headers_and_group_metadata() {
    let issuer = Issuer::start(SigningAlg::RS256).await;
    let authz = Authz::start(&issuer.product_flags()).await;
    let token = issuer
        .token(json!({"roles": ["any-employee-personal-device", "developers"], "jti": "j-1"}));

    let resp = authz.check_token(&token).await;
    assert_eq!(resp.status.as_ref().unwrap().code, 0);
    assert_eq!(
        ok_headers(&resp),
        vec![
            (
                "authorization".into(),
                format!("Bearer {SA_TOKEN}"),
                OVERWRITE
            ),
            (
                "impersonate-user".into(),
                "banyan:alice@example.com".into(),
                OVERWRITE
            ),
        ]
    );
    assert_eq!(
        metadata_list(&resp, "groups"),
        ["banyan:any-employee-personal-device", "banyan:developers"]
    );
    let md = resp.dynamic_metadata.as_ref().unwrap();
    let ie = format!("{:?}", md.fields["impersonate_extra"]);
    assert!(
        ie.contains("impersonate-extra-authentication.kubernetes.io%2fcredential-id")
            && ie.contains("JTI=j-1"),
        "{ie}"
    );

    // The second check of the same token is a cache hit.
    let again = authz.check_token(&token).await;
    assert_eq!(ok_headers(&again), ok_headers(&resp));
    let metrics = authz.metrics().await;
    assert!(
        metrics.contains("kube_oidc_authz_cache_lookups_total{result=\"hit\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("kube_oidc_authz_decisions_total{decision=\"allow\",reason=\"ok\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn rejects_client_impersonation_headers_in_any_case_even_with_a_valid_token() {
    let issuer = Issuer::start(SigningAlg::RS256).await;
    let authz = Authz::start(&issuer.product_flags()).await;
    let auth = format!("Bearer {}", issuer.token(json!({})));
    for header in [
        "Impersonate-User",
        "impersonate-group",
        "IMPERSONATE-UID",
        "Impersonate-Extra-Scopes",
    ] {
        let resp = authz
            .check(&[("authorization", &auth), (header, "system:masters")])
            .await;
        let (code, body) = denied(&resp);
        assert_eq!(code, 403, "{header}");
        assert_eq!(body["reason"], "Forbidden");
        assert_eq!(body["kind"], "Status");
        assert_eq!(body["code"], 403);
        assert_eq!(reason(&resp), "impersonation_refused");
    }
}

#[tokio::test]
async fn missing_malformed_expired_and_foreign_tokens_get_401_status() {
    let issuer = Issuer::start(SigningAlg::RS256).await;
    let authz = Authz::start(&issuer.product_flags()).await;
    let expired = format!("Bearer {}", issuer.token(json!({"ttl_seconds": -5})));
    let other_aud = format!("Bearer {}", issuer.token(json!({"aud": "someone-else"})));
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![], "missing_token"),
        (
            vec![("authorization", "Basic YWxpY2U6cHc=")],
            "missing_token",
        ),
        (vec![("authorization", "Bearer ")], "missing_token"),
        (
            vec![("authorization", "Bearer not.a.jwt")],
            "malformed_token",
        ),
        (vec![("authorization", &expired)], "expired"),
        (vec![("authorization", &other_aud)], "audience_mismatch"),
    ];
    for (headers, want) in cases {
        let resp = authz.check(&headers).await;
        let (code, body) = denied(&resp);
        assert_eq!((code, reason(&resp).as_str()), (401, want), "{headers:?}");
        assert_eq!(body["reason"], "Unauthorized");
        assert_eq!(body["message"], "Unauthorized");
    }
}

#[tokio::test]
async fn client_ip_and_static_extras_are_added_per_request() {
    let issuer = Issuer::start(SigningAlg::RS256).await;
    let mut flags = issuer.product_flags();
    flags.extend(
        [
            "--extra-user-header-client-ip=true",
            "--extra-user-headers",
            "cluster=prod,team=platform",
        ]
        .map(String::from),
    );
    let authz = Authz::start(&flags).await;
    let auth = format!("Bearer {}", issuer.token(json!({})));
    // An untrusted peer's X-Forwarded-For is ignored.
    let resp = authz
        .check(&[("authorization", &auth), ("x-forwarded-for", "1.1.1.1")])
        .await;
    let md = format!(
        "{:?}",
        resp.dynamic_metadata.unwrap().fields["impersonate_extra"]
    );
    assert!(md.contains("impersonate-extra-remote-client-ip"), "{md}");
    assert!(
        md.contains("203.0.113.7") && !md.contains("1.1.1.1"),
        "{md}"
    );
    assert!(
        md.contains("impersonate-extra-cluster") && md.contains("prod"),
        "{md}"
    );
    assert!(
        md.contains("impersonate-extra-team") && md.contains("platform"),
        "{md}"
    );
}

#[tokio::test]
async fn reads_headers_from_header_map_when_envoy_sends_raw_headers() {
    use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
    let issuer = Issuer::start(SigningAlg::RS256).await;
    let authz = Authz::start(&issuer.product_flags()).await;
    let auth = format!("Bearer {}", issuer.token(json!({})));
    let raw = |k: &str, v: &str| HeaderValue {
        key: k.into(),
        raw_value: v.as_bytes().to_vec(),
        ..Default::default()
    };
    let mut req = check_request(&[], "127.0.0.1");
    let http = req
        .attributes
        .as_mut()
        .unwrap()
        .request
        .as_mut()
        .unwrap()
        .http
        .as_mut()
        .unwrap();
    http.header_map = Some(HeaderMap {
        headers: vec![raw("authorization", &auth)],
    });
    let resp = authz
        .client
        .clone()
        .check(req.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok_headers(&resp)[1].1, "banyan:alice@example.com");

    let http = req
        .attributes
        .as_mut()
        .unwrap()
        .request
        .as_mut()
        .unwrap()
        .http
        .as_mut()
        .unwrap();
    http.header_map
        .as_mut()
        .unwrap()
        .headers
        .push(raw("impersonate-group", "system:masters"));
    let resp = authz.client.clone().check(req).await.unwrap().into_inner();
    assert_eq!(denied(&resp).0, 403);
}

#[tokio::test]
async fn grpc_health_reports_serving_once_keys_are_loaded() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let issuer = Issuer::start(SigningAlg::RS256).await;
    let authz = Authz::start(&issuer.product_flags()).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", authz.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    let mut status = 0;
    for _ in 0..50 {
        status = health
            .check(HealthCheckRequest {
                service: "envoy.service.auth.v3.Authorization".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        if status == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, 1, "SERVING");
}
