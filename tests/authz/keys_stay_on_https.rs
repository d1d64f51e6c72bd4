//! Issuer keys are fetched over HTTPS only: a redirect from HTTPS to plain
//! HTTP is not followed, and a discovery document naming an `http://`
//! `jwks_uri` is refused. Either would let anyone on the path swap the keys
//! and mint tokens the service accepts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use kube_oidc_authz::authz::config::{ClaimMapping, IssuerConfig};
use kube_oidc_authz::authz::jwks::IssuerKeys;
use kube_oidc_authz::authz::verify::SigningAlg;
use kube_oidc_dev::certs::DevCa;
use kube_oidc_dev::issuer::DevIssuer;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// An HTTPS issuer whose routes the test chooses, and a plain-HTTP server
/// that counts every request it gets.
struct Servers {
    https_url: String,
    http_url: String,
    ca_pem: Vec<u8>,
    plain_hits: Arc<AtomicU64>,
    dev: DevIssuer,
}

async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

impl Servers {
    /// `https_routes` gets the HTTPS and plain-HTTP base URLs and the
    /// issuer; the plain server answers discovery (naming an HTTPS
    /// `jwks_uri`) and the keys, so following it would succeed.
    async fn start(https_routes: impl FnOnce(&str, &str, &DevIssuer) -> Router) -> Servers {
        let (tls_listener, tls_addr) = listener().await;
        let (plain_listener, plain_addr) = listener().await;
        let https_url = format!("https://{tls_addr}");
        let http_url = format!("http://{plain_addr}");
        let dev = DevIssuer::new(&https_url, "k", SigningAlg::RS256).unwrap();

        let plain_hits = Arc::new(AtomicU64::new(0));
        let discovery = discovery_doc(&https_url, &format!("{https_url}/keys"));
        let jwks = dev.jwks();
        let hits = Arc::clone(&plain_hits);
        let plain = Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || async move { axum::Json(discovery) }),
            )
            .route("/keys", get(move || async move { axum::Json(jwks) }))
            .layer(axum::middleware::from_fn(
                move |req: axum::extract::Request, next: axum::middleware::Next| {
                    hits.fetch_add(1, Ordering::SeqCst);
                    next.run(req)
                },
            ));
        tokio::spawn(async move { axum::serve(plain_listener, plain).await });

        let ca = DevCa::generate("keys test CA").unwrap();
        let leaf = ca.issue("issuer", &["127.0.0.1"]).unwrap();
        let tls =
            kube_oidc_dev::https::server_config(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes())
                .unwrap();
        let router = https_routes(&https_url, &http_url, &dev);
        tokio::spawn(kube_oidc_dev::https::serve_https(
            tls_listener,
            tls,
            router,
            std::future::pending(),
        ));
        Servers {
            https_url,
            http_url,
            ca_pem: ca.cert_pem().as_bytes().to_vec(),
            plain_hits,
            dev,
        }
    }

    fn keys(&self) -> IssuerKeys {
        let cfg = IssuerConfig {
            url: self.https_url.as_str().into(),
            discovery_url: self.https_url.clone(),
            audiences: vec!["k".into()],
            ca_pem: Some(self.ca_pem.clone()),
            signing_algs: vec![SigningAlg::RS256],
            username: ClaimMapping {
                claim: "sub".into(),
                prefix: String::new(),
            },
            groups: None,
            uid_claim: None,
            required_claims: Vec::new(),
            cel: None,
        };
        IssuerKeys::new(&cfg, Duration::ZERO).unwrap()
    }
}

fn discovery_doc(issuer: &str, jwks_uri: &str) -> Value {
    json!({"issuer": issuer, "jwks_uri": jwks_uri})
}

fn redirect(to: String) -> impl IntoResponse {
    (StatusCode::FOUND, [(header::LOCATION, to)])
}

#[tokio::test]
async fn redirect_from_https_to_http_is_not_followed() {
    let s = Servers::start(|_, http, dev| {
        let to = format!("{http}/.well-known/openid-configuration");
        let jwks = dev.jwks();
        Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || async move { redirect(to) }),
            )
            .route("/keys", get(move || async move { axum::Json(jwks) }))
    })
    .await;
    let keys = s.keys();
    assert!(!keys.refresh().await, "keys loaded through a downgrade");
    assert!(!keys.is_loaded());
    assert_eq!(s.plain_hits.load(Ordering::SeqCst), 0, "{}", s.http_url);
}

#[tokio::test]
async fn http_jwks_uri_from_discovery_is_refused() {
    let s = Servers::start(|https, http, _| {
        let doc = discovery_doc(https, &format!("{http}/keys"));
        Router::new().route(
            "/.well-known/openid-configuration",
            get(move || async move { axum::Json(doc) }),
        )
    })
    .await;
    let keys = s.keys();
    assert!(!keys.refresh().await, "keys loaded over plain HTTP");
    assert!(!keys.is_loaded());
    assert_eq!(s.plain_hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn redirect_from_https_to_https_is_followed() {
    let s = Servers::start(|https, _, dev| {
        let to = format!("{https}/moved/openid-configuration");
        let doc = discovery_doc(https, &format!("{https}/keys"));
        let jwks = dev.jwks();
        Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || async move { redirect(to) }),
            )
            .route(
                "/moved/openid-configuration",
                get(move || async move { axum::Json(doc) }),
            )
            .route("/keys", get(move || async move { axum::Json(jwks) }))
    })
    .await;
    let keys = s.keys();
    assert!(keys.refresh().await);
    assert_eq!(
        keys.current().len(),
        s.dev.jwks()["keys"].as_array().unwrap().len()
    );
}
