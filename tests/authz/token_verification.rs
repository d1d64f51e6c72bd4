//! Every supported algorithm verifies; every token the apiserver would
//! refuse is refused, for the reason it would refuse it.

use crate::support::*;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kube_oidc_authz::authz::verify::SigningAlg;
use serde_json::{Value, json};

fn flags_with_algs(issuer: &Issuer, algs: &str) -> Vec<String> {
    let mut f = issuer.product_flags();
    f.push("--oidc-signing-algs".into());
    f.push(algs.into());
    f
}

#[tokio::test]
async fn every_supported_algorithm_verifies() {
    for alg in SigningAlg::ALL {
        let issuer = Issuer::start(alg).await;
        let authz = Authz::start(&flags_with_algs(&issuer, alg.as_str())).await;
        let resp = authz.check_token(&issuer.token(json!({}))).await;
        assert_eq!(
            resp.status.as_ref().unwrap().code,
            0,
            "{alg}: {:?}",
            resp.status
        );

        // The same algorithm is refused when not configured (default RS256).
        if alg != SigningAlg::RS256 {
            let default = Authz::start(&issuer.product_flags()).await;
            let resp = default.check_token(&issuer.token(json!({}))).await;
            assert_eq!(reason(&resp), "algorithm_refused", "{alg}");
        }
    }
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

#[tokio::test]
async fn hostile_and_invalid_tokens_are_refused_for_the_right_reason() {
    let issuer = Issuer::start(SigningAlg::RS256).await;
    let authz = Authz::start(&issuer.product_flags()).await;
    let claims = Value::Object(issuer.issuer.default_claims());
    let kid = issuer.issuer.current_kid().unwrap();

    // alg none: header says none, no signature.
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims)
    );
    // HS256 "signed" with the RSA public key as the HMAC secret.
    let jwks = issuer.issuer.jwks();
    let n = jwks["keys"][0]["n"].as_str().unwrap().to_owned();
    let hs_input = format!(
        "{}.{}",
        b64(&json!({"alg": "HS256", "kid": kid})),
        b64(&claims)
    );
    let hs_sig = jsonwebtoken::crypto::sign(
        hs_input.as_bytes(),
        &jsonwebtoken::EncodingKey::from_secret(n.as_bytes()),
        jsonwebtoken::Algorithm::HS256,
    )
    .unwrap();
    let hs256 = format!("{hs_input}.{hs_sig}");
    // Payload swapped after signing.
    let good = issuer.token(json!({}));
    let parts: Vec<&str> = good.split('.').collect();
    let mut evil = claims.clone();
    evil["email"] = json!("mallory@example.com");
    let tampered = format!("{}.{}.{}", parts[0], b64(&evil), parts[2]);
    // No kid: tried against every key, and accepted.
    let no_kid = issuer
        .issuer
        .sign(&json!({"alg": "RS256", "typ": "JWT"}), &claims)
        .unwrap();

    let now = kube_oidc_authz::authz::now_unix();
    let with = |patch: Value| {
        let mut c = claims.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        issuer
            .issuer
            .sign(&json!({"alg": "RS256", "kid": kid}), &c)
            .unwrap()
    };
    let trailing_slash = with(json!({"iss": format!("{}/", issuer.url)}));

    let cases: Vec<(&str, String, Result<(), &str>)> = vec![
        ("alg none", none, Err("algorithm_refused")),
        ("HS256 with the public key", hs256, Err("algorithm_refused")),
        ("tampered payload", tampered, Err("bad_signature")),
        ("no kid", no_kid, Ok(())),
        (
            "unknown issuer",
            with(json!({"iss": "https://evil.example.com"})),
            Err("unknown_issuer"),
        ),
        (
            "issuer with trailing slash",
            trailing_slash,
            Err("unknown_issuer"),
        ),
        (
            "aud array containing client id",
            with(json!({"aud": ["x", AUDIENCE]})),
            Ok(()),
        ),
        (
            "aud array without client id",
            with(json!({"aud": ["x", "y"]})),
            Err("audience_mismatch"),
        ),
        (
            "aud missing",
            with(json!({"aud": null})),
            Err("audience_mismatch"),
        ),
        ("aud number", with(json!({"aud": 7})), Err("invalid_claim")),
        ("exp missing", with(json!({"exp": null})), Err("expired")),
        ("exp now", with(json!({"exp": now})), Err("expired")),
        (
            "exp as string",
            with(json!({"exp": (now + 600).to_string()})),
            Err("invalid_claim"),
        ),
        ("nbf within leeway", with(json!({"nbf": now + 30})), Ok(())),
        (
            "nbf beyond leeway",
            with(json!({"nbf": now + 120})),
            Err("not_yet_valid"),
        ),
        (
            "iat in the future is not checked",
            with(json!({"iat": now + 3600})),
            Ok(()),
        ),
        (
            "iat as string",
            with(json!({"iat": "yesterday"})),
            Err("invalid_claim"),
        ),
        (
            "email_verified false",
            with(json!({"email_verified": false})),
            Err("email_not_verified"),
        ),
        (
            "email_verified missing",
            with(json!({"email_verified": null})),
            Ok(()),
        ),
        (
            "email_verified non-boolean",
            with(json!({"email_verified": "yes"})),
            Err("invalid_claim"),
        ),
        ("roles as string", with(json!({"roles": "one"})), Ok(())),
        (
            "roles with a number",
            with(json!({"roles": ["a", 2]})),
            Err("groups_claim"),
        ),
        (
            "username claim missing",
            with(json!({"email": null})),
            Err("username_claim"),
        ),
    ];
    for (name, token, want) in cases {
        let resp = authz.check_token(&token).await;
        match want {
            Ok(()) => assert_eq!(
                resp.status.as_ref().unwrap().code,
                0,
                "{name}: {:?}",
                resp.status
            ),
            Err(code) => {
                assert_eq!(reason(&resp), code, "{name}");
                assert_eq!(denied(&resp).0, 401, "{name}");
            }
        }
    }
}

#[tokio::test]
async fn required_claims_and_username_prefix_defaults() {
    let issuer = Issuer::start(SigningAlg::RS256).await;
    let flags: Vec<String> = [
        "--oidc-issuer-url",
        &issuer.url,
        "--oidc-client-id",
        AUDIENCE,
        "--oidc-ca-file",
        issuer.ca_file.to_str().unwrap(),
        "--oidc-required-claim",
        "hd=example.com",
    ]
    .map(String::from)
    .to_vec();
    let authz = Authz::start(&flags).await;
    let resp = authz
        .check_token(&issuer.token(json!({"hd": "example.com"})))
        .await;
    // Default username claim is sub, with the apiserver's implicit issuer prefix.
    assert_eq!(ok_headers(&resp)[1].1, format!("{}#alice", issuer.url));
    let resp = authz
        .check_token(&issuer.token(json!({"hd": "other.com"})))
        .await;
    assert_eq!(reason(&resp), "required_claim");
    let resp = authz.check_token(&issuer.token(json!({}))).await;
    assert_eq!(reason(&resp), "required_claim");
}

#[tokio::test]
async fn empty_prefix_cannot_mint_system_masters() {
    let issuer = Issuer::start(SigningAlg::RS256).await;
    let flags: Vec<String> = [
        "--oidc-issuer-url",
        &issuer.url,
        "--oidc-client-id",
        AUDIENCE,
        "--oidc-ca-file",
        issuer.ca_file.to_str().unwrap(),
        "--oidc-username-prefix",
        "-",
        "--oidc-groups-claim",
        "roles",
    ]
    .map(String::from)
    .to_vec();
    let authz = Authz::start(&flags).await;
    let resp = authz
        .check_token(&issuer.token(json!({"roles": ["system:masters"]})))
        .await;
    assert_eq!(reason(&resp), "system_identity");
    let resp = authz
        .check_token(&issuer.token(json!({"sub": "system:admin", "roles": []})))
        .await;
    assert_eq!(reason(&resp), "system_identity");
}

#[tokio::test]
async fn structured_authentication_config_with_uid_and_validation_rules() {
    let issuer = Issuer::start(SigningAlg::ES256).await;
    let ca = std::fs::read_to_string(&issuer.ca_file).unwrap();
    let indented: String = ca.lines().map(|l| format!("      {l}\n")).collect();
    let doc = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\njwt:\n- issuer:\n    url: {}\n    audiences: [{AUDIENCE}]\n    certificateAuthority: |\n{indented}  claimValidationRules:\n  - claim: hd\n    requiredValue: example.com\n  claimMappings:\n    username: {{claim: email, prefix: \"oidc:\"}}\n    groups: {{claim: roles, prefix: \"oidc:\"}}\n    uid: {{claim: sub}}\n",
        issuer.url
    );
    let file = issuer.dir.path().join("authn.yaml");
    std::fs::write(&file, doc).unwrap();
    let authz = Authz::start(&[
        "--authentication-config".into(),
        file.to_str().unwrap().into(),
    ])
    .await;
    let resp = authz
        .check_token(&issuer.token(json!({"hd": "example.com"})))
        .await;
    let headers = ok_headers(&resp);
    assert_eq!(headers[1].1, "oidc:alice@example.com");
    assert_eq!(
        headers[2],
        ("impersonate-uid".into(), "alice".into(), headers[2].2)
    );
    assert_eq!(
        metadata_list(&resp, "groups"),
        ["oidc:any-employee-personal-device", "oidc:developers"]
    );
    let resp = authz.check_token(&issuer.token(json!({}))).await;
    assert_eq!(reason(&resp), "required_claim");
}
