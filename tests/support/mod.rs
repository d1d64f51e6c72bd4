//! Shared harness for the authz integration tests: a development issuer on
//! HTTPS with a throw-away CA, and the authz service in-process, both on
//! 127.0.0.1:0. [`audit`] holds the audit forwarder's.
#![allow(dead_code)]

pub mod audit;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use envoy_types::pb::envoy::config::core::v3::address::Address;
use envoy_types::pb::envoy::config::core::v3::{Address as CoreAddress, SocketAddress};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, CheckResponse};
use kube_oidc_authz::authz::verify::SigningAlg;
use kube_oidc_authz::cli::{Cli, Command};
use kube_oidc_dev::certs::DevCa;
use kube_oidc_dev::issuer::DevIssuer;
use serde_json::{Map, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::Channel;

pub const AUDIENCE: &str = "kube-oidc-authz";
pub const SA_TOKEN: &str = "proxy-service-account-token";

/// A running development issuer.
pub struct Issuer {
    pub issuer: DevIssuer,
    pub url: String,
    pub ca_file: PathBuf,
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    pub dir: tempfile::TempDir,
}

impl Drop for Issuer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl Issuer {
    pub async fn start(alg: SigningAlg) -> Issuer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        Self::start_on(listener, addr, alg, None).await
    }

    async fn start_on(
        listener: TcpListener,
        addr: SocketAddr,
        alg: SigningAlg,
        existing: Option<(DevIssuer, tempfile::TempDir)>,
    ) -> Issuer {
        let url = format!("https://{addr}");
        let (issuer, dir) = match existing {
            Some(x) => x,
            None => (
                DevIssuer::new(&url, AUDIENCE, alg).unwrap(),
                tempfile::tempdir().unwrap(),
            ),
        };
        let ca_file = dir.path().join("ca.crt");
        let ca = DevCa::generate("test issuer CA").unwrap();
        let leaf = ca.issue("issuer", &["127.0.0.1"]).unwrap();
        if !ca_file.exists() {
            std::fs::write(&ca_file, ca.cert_pem()).unwrap();
        }
        // Reuse the CA from the first start so a restarted issuer is trusted.
        let (cert_pem, key_pem) = if dir.path().join("leaf.crt").exists() {
            (
                std::fs::read_to_string(dir.path().join("leaf.crt")).unwrap(),
                std::fs::read_to_string(dir.path().join("leaf.key")).unwrap(),
            )
        } else {
            std::fs::write(dir.path().join("leaf.crt"), &leaf.cert_pem).unwrap();
            std::fs::write(dir.path().join("leaf.key"), &leaf.key_pem).unwrap();
            (leaf.cert_pem, leaf.key_pem)
        };
        let tls =
            kube_oidc_dev::https::server_config(cert_pem.as_bytes(), key_pem.as_bytes()).unwrap();
        let (tx, rx) = oneshot::channel();
        tokio::spawn(kube_oidc_dev::https::serve_https(
            listener,
            tls,
            issuer.router(),
            async move {
                let _ = rx.await;
            },
        ));
        Issuer {
            issuer,
            url,
            ca_file,
            addr,
            stop: Some(tx),
            dir,
        }
    }

    /// Stops serving (the issuer becomes unreachable) and returns what is
    /// needed to start it again on the same address.
    pub fn stop(mut self) -> (DevIssuer, SocketAddr, tempfile::TempDir) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        (self.issuer.clone(), self.addr, dir)
    }

    pub async fn restart(issuer: DevIssuer, addr: SocketAddr, dir: tempfile::TempDir) -> Issuer {
        let listener = loop {
            match TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        };
        Self::start_on(listener, addr, SigningAlg::RS256, Some((issuer, dir))).await
    }

    pub fn token(&self, overrides: Value) -> String {
        let map: Map<String, Value> = overrides.as_object().cloned().unwrap_or_default();
        self.issuer.mint(&map).unwrap()
    }

    /// The product's documented flags for this issuer.
    pub fn product_flags(&self) -> Vec<String> {
        [
            "--oidc-issuer-url",
            &self.url,
            "--oidc-client-id",
            AUDIENCE,
            "--oidc-ca-file",
            self.ca_file.to_str().unwrap(),
            "--oidc-username-claim",
            "email",
            "--oidc-username-prefix",
            "banyan:",
            "--oidc-groups-claim",
            "roles",
            "--oidc-groups-prefix",
            "banyan:",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}

/// A running authz service.
pub struct Authz {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub client: AuthorizationClient<Channel>,
    stop: Option<oneshot::Sender<()>>,
    pub handle: tokio::task::JoinHandle<Result<(), kube_oidc_authz::error::RunError>>,
    _dir: tempfile::TempDir,
}

impl Drop for Authz {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl Authz {
    /// Starts the service with `flags` (after `authz`) and waits until ready.
    pub async fn start(flags: &[String]) -> Authz {
        let a = Self::start_unready(flags).await;
        a.wait_ready().await;
        a
    }

    pub async fn start_unready(flags: &[String]) -> Authz {
        let (config, upstream, dir) = authz_config(flags);
        let grpc_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (grpc, http) = (grpc_l.local_addr().unwrap(), http_l.local_addr().unwrap());
        let (tx, rx) = oneshot::channel();
        let handle = tokio::spawn(kube_oidc_authz::authz::serve(
            config,
            upstream,
            grpc_l,
            http_l,
            async move {
                let _ = rx.await;
            },
        ));
        let channel = Channel::from_shared(format!("http://{grpc}"))
            .unwrap()
            .connect_lazy();
        Authz {
            grpc,
            http,
            client: AuthorizationClient::new(channel),
            stop: Some(tx),
            handle,
            _dir: dir,
        }
    }

    pub async fn wait_ready(&self) {
        for _ in 0..200 {
            if self.ready().await {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("authz service never became ready");
    }

    pub async fn ready(&self) -> bool {
        match reqwest::get(format!("http://{}/readyz", self.http)).await {
            Ok(r) => r.status() == 200,
            Err(_) => false,
        }
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.http))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn check(&self, headers: &[(&str, &str)]) -> CheckResponse {
        self.client
            .clone()
            .check(check_request(headers, "203.0.113.7"))
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn check_token(&self, token: &str) -> CheckResponse {
        let auth = format!("Bearer {token}");
        self.check(&[("authorization", &auth)]).await
    }
}

/// The validated config of `kube-oidc-authz authz` with `flags`, and the
/// upstream token it names (in the returned folder).
pub fn authz_config(
    flags: &[String],
) -> (
    kube_oidc_authz::authz::config::Config,
    kube_oidc_authz::authz::upstream_token::UpstreamToken,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, SA_TOKEN).unwrap();
    let mut argv: Vec<String> = vec!["kube-oidc-authz".into(), "authz".into()];
    argv.extend(flags.iter().cloned());
    argv.push("--upstream-token-file".into());
    argv.push(token_file.to_str().unwrap().into());
    let cli = Cli::try_parse_from(&argv).unwrap();
    let Command::Authz(args) = cli.command else {
        panic!("not authz")
    };
    let config = kube_oidc_authz::authz::config::Config::from_args(&args).unwrap();
    let upstream =
        kube_oidc_authz::authz::upstream_token::UpstreamToken::load(&token_file).unwrap();
    (config, upstream, dir)
}

/// A CheckRequest as Envoy sends it for `GET /api/v1/namespaces/default/pods`.
pub fn check_request(headers: &[(&str, &str)], peer_ip: &str) -> CheckRequest {
    let headers: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                address: Some(CoreAddress {
                    address: Some(Address::SocketAddress(SocketAddress {
                        address: peer_ip.into(),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            }),
            request: Some(Request {
                http: Some(HttpRequest {
                    method: "GET".into(),
                    path: "/api/v1/namespaces/default/pods".into(),
                    host: "k8s.example.com".into(),
                    headers,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// The same request as Envoy sends it with `encode_raw_headers`: one
/// `header_map` entry per line (repeated names kept apart), raw values.
pub fn check_request_raw(headers: &[(&str, &str)], peer_ip: &str) -> CheckRequest {
    let mut req = check_request(&[], peer_ip);
    if let Some(http) = req
        .attributes
        .as_mut()
        .and_then(|a| a.request.as_mut())
        .and_then(|r| r.http.as_mut())
    {
        http.header_map = Some(envoy_types::pb::envoy::config::core::v3::HeaderMap {
            headers: headers
                .iter()
                .map(
                    |(k, v)| envoy_types::pb::envoy::config::core::v3::HeaderValue {
                        key: (*k).to_owned(),
                        value: String::new(),
                        raw_value: v.as_bytes().to_vec(),
                    },
                )
                .collect(),
        });
    }
    req
}

/// Upstream headers of an OK response as (name, value, append_action).
pub fn ok_headers(resp: &CheckResponse) -> Vec<(String, String, i32)> {
    match &resp.http_response {
        Some(HttpResponse::OkResponse(ok)) => ok
            .headers
            .iter()
            .map(|h| {
                let hv = h.header.as_ref().unwrap();
                (hv.key.clone(), hv.value.clone(), h.append_action)
            })
            .collect(),
        other => panic!(
            "expected an OK response, got {other:?} (status {:?})",
            resp.status
        ),
    }
}

/// Status code and parsed body of a denied response.
pub fn denied(resp: &CheckResponse) -> (i32, Value) {
    match &resp.http_response {
        Some(HttpResponse::DeniedResponse(d)) => (
            d.status.as_ref().unwrap().code,
            serde_json::from_str(&d.body).unwrap(),
        ),
        other => panic!("expected a denied response, got {other:?}"),
    }
}

/// The reason code the service put in the rpc status message.
pub fn reason(resp: &CheckResponse) -> String {
    resp.status.as_ref().unwrap().message.clone()
}

/// A string list field of the dynamic metadata.
pub fn metadata_list(resp: &CheckResponse, field: &str) -> Vec<String> {
    use envoy_types::pb::google::protobuf::value::Kind;
    let md = resp.dynamic_metadata.as_ref().expect("metadata");
    match &md.fields.get(field).and_then(|v| v.kind.as_ref()) {
        Some(Kind::ListValue(l)) => l
            .values
            .iter()
            .map(|v| match &v.kind {
                Some(Kind::StringValue(s)) => s.clone(),
                other => panic!("not a string: {other:?}"),
            })
            .collect(),
        other => panic!("{field} is not a list: {other:?}"),
    }
}

/// A stand-in apiserver served over HTTPS on 127.0.0.1:0 with a throw-away
/// CA, and a client that trusts it. Stops when dropped.
pub struct StandInServer {
    pub url: String,
    pub client: reqwest::Client,
    _stop: oneshot::Sender<()>,
}

pub async fn serve_stand_in(standin: kube_oidc_dev::apiserver::StandIn) -> StandInServer {
    let ca = DevCa::generate("test CA").unwrap();
    let leaf = ca.issue("kube-apiserver", &["127.0.0.1"]).unwrap();
    let tls = kube_oidc_dev::apiserver::tls_config(&leaf.cert_pem, &leaf.key_pem).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(kube_oidc_dev::apiserver::serve(
        listener,
        tls,
        standin,
        async {
            let _ = rx.await;
        },
    ));
    let client = kube_oidc_authz::tls::https_client(
        Some(ca.cert_pem().as_bytes()),
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    StandInServer {
        url: format!("https://{addr}"),
        client,
        _stop: tx,
    }
}

/// An HTTPS server for `router` on 127.0.0.1:0 with a throw-away CA: its
/// URL and the CA file to trust it with (`--apiserver-ca-file`). Stops
/// when dropped.
pub struct HttpsServer {
    pub url: String,
    pub ca_file: PathBuf,
    _dir: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

pub async fn serve_https(router: axum::Router) -> HttpsServer {
    let ca = DevCa::generate("test CA").unwrap();
    let leaf = ca.issue("kube-apiserver", &["127.0.0.1"]).unwrap();
    let tls = kube_oidc_dev::apiserver::tls_config(&leaf.cert_pem, &leaf.key_pem).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(kube_oidc_dev::https::serve_https(
        listener,
        tls,
        router,
        async {
            let _ = rx.await;
        },
    ));
    HttpsServer {
        url: format!("https://{addr}"),
        ca_file,
        _dir: dir,
        _stop: tx,
    }
}
