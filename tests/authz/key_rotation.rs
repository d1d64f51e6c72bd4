//! Keys: an unknown `kid` triggers a refresh (so rotation just works), a
//! flood of unknown kids cannot hammer the issuer, and an unreachable
//! issuer does not stop tokens signed with known keys.

use std::time::Duration;

use crate::support::*;
use kube_oidc_authz::authz::verify::SigningAlg;
use serde_json::json;

fn fast_refresh(issuer: &Issuer) -> Vec<String> {
    let mut f = issuer.product_flags();
    f.extend(
        [
            "--jwks-min-refresh-interval",
            "300ms",
            "--jwks-refresh-interval",
            "1h",
        ]
        .map(String::from),
    );
    f
}

#[tokio::test]
async fn unknown_kid_then_rotation_is_picked_up() {
    let issuer = Issuer::start(SigningAlg::RS256).await;
    let authz = Authz::start(&fast_refresh(&issuer)).await;
    let before = issuer.issuer.jwks_requests();
    issuer.issuer.rotate(true).unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    let resp = authz.check_token(&issuer.token(json!({}))).await;
    assert_eq!(resp.status.as_ref().unwrap().code, 0, "{:?}", resp.status);
    assert_eq!(issuer.issuer.jwks_requests(), before + 1);
}

#[tokio::test]
async fn a_key_published_right_after_a_fetch_is_accepted_the_first_time() {
    let issuer = Issuer::start(SigningAlg::RS256).await;
    // The defaults: a closed window is waited for.
    let authz = Authz::start(&issuer.product_flags()).await;
    let before = issuer.issuer.jwks_requests();
    issuer.issuer.rotate(true).unwrap();
    let resp = authz.check_token(&issuer.token(json!({}))).await;
    assert_eq!(resp.status.as_ref().unwrap().code, 0, "{:?}", resp.status);
    // Rotated again at once: the window is closed, the token waits for it.
    issuer.issuer.rotate(true).unwrap();
    let resp = authz.check_token(&issuer.token(json!({}))).await;
    assert_eq!(resp.status.as_ref().unwrap().code, 0, "{:?}", resp.status);
    assert_eq!(issuer.issuer.jwks_requests(), before + 2);
    let metrics = authz.metrics().await;
    assert!(
        metrics.contains("kube_oidc_authz_jwks_refreshes_total{result=\"fetched\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_flood_of_unknown_kids_makes_at_most_a_handful_of_jwks_requests() {
    let issuer = Issuer::start(SigningAlg::RS256).await;
    let mut flags = issuer.product_flags();
    flags.extend(["--jwks-min-refresh-interval", "5s"].map(String::from));
    let authz = Authz::start(&flags).await;
    let before = issuer.issuer.jwks_requests();
    let claims = serde_json::Value::Object(issuer.issuer.default_claims());
    let mut tasks = Vec::new();
    for i in 0..2000 {
        let token = issuer
            .issuer
            .sign(
                &json!({"alg": "RS256", "kid": format!("bogus-{i}")}),
                &claims,
            )
            .unwrap();
        let client = authz.client.clone();
        tasks.push(tokio::spawn(async move {
            let auth = format!("Bearer {token}");
            client
                .clone()
                .check(check_request(&[("authorization", &auth)], "198.51.100.1"))
                .await
                .unwrap()
                .into_inner()
        }));
    }
    for t in tasks {
        let resp = t.await.unwrap();
        assert_eq!(reason(&resp), "unknown_key");
    }
    let fetches = issuer.issuer.jwks_requests() - before;
    assert!(fetches <= 2, "{fetches} JWKS fetches for 2000 unknown kids");
}

#[tokio::test]
async fn keeps_serving_with_last_good_keys_while_the_issuer_is_down() {
    let issuer = Issuer::start(SigningAlg::RS256).await;
    let authz = Authz::start(&fast_refresh(&issuer)).await;
    let token = issuer.token(json!({}));
    let resp = authz.check_token(&token).await;
    assert_eq!(resp.status.as_ref().unwrap().code, 0);
    let fresh = issuer.token(json!({"jti": "another"}));
    let (dev, addr, dir) = issuer.stop();
    tokio::time::sleep(Duration::from_millis(100)).await;

    // A token never seen before still verifies with the cached keys.
    let resp = authz.check_token(&fresh).await;
    assert_eq!(resp.status.as_ref().unwrap().code, 0, "{:?}", resp.status);
    // An unknown kid fails closed, with a refresh attempt that fails.
    dev.rotate(true).unwrap();
    let rotated = dev.mint(&serde_json::Map::new()).unwrap();
    let resp = authz.check_token(&rotated).await;
    assert_eq!(reason(&resp), "unknown_key");
    assert!(authz.ready().await, "still ready with the last good keys");

    // Back up: the rotated key is fetched on the next unknown kid.
    let _issuer = Issuer::restart(dev, addr, dir).await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    let resp = authz.check_token(&rotated).await;
    assert_eq!(resp.status.as_ref().unwrap().code, 0, "{:?}", resp.status);
    let resp = authz.check_token(&token).await;
    // Verified before the old key was withdrawn: served from the cache.
    assert_eq!(resp.status.as_ref().unwrap().code, 0, "cached decision");
}

#[tokio::test]
async fn not_ready_until_keys_load_and_fails_closed_meanwhile() {
    // An issuer address that refuses connections.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", l.local_addr().unwrap());
    drop(l);
    let issuer = Issuer::start(SigningAlg::RS256).await;
    let mut flags = issuer.product_flags();
    flags[1] = url.clone();
    let authz = Authz::start_unready(&flags).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!authz.ready().await);
    let token = issuer.issuer.sign(
        &json!({"alg": "RS256", "kid": "key-1"}),
        &json!({"iss": url, "aud": AUDIENCE, "email": "a@x", "exp": kube_oidc_authz::authz::now_unix() + 60}),
    ).unwrap();
    let resp = authz.check_token(&token).await;
    assert_eq!(denied(&resp).0, 503);
    assert_eq!(reason(&resp), "keys_unavailable");
}
