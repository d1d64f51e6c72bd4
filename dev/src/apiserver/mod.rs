//! A stand-in Kubernetes apiserver for the tests and the demo. It behaves
//! like the real one at its edge, in the order the real one applies its
//! filters:
//!
//! 1. [`identity::presented`] + [`token_review::authenticates`]: only the
//!    stand-in's own service-account tokens meant for it are accepted: the
//!    proxy's, and a "CI job's" (anything else is 401, anonymous access
//!    disabled);
//! 2. [`identity::requested`] + [`identity::impersonate`]: the
//!    `Impersonate-*` headers, each authorised for the proxy;
//! 3. [`rbac`]: a tiny RBAC table given at start, with the bootstrap policy
//!    (discovery, SelfSubjectReview) every cluster has; 403 `Status` bodies
//!    with the apiserver's message shape;
//! 4. [`resources`] and [`exec`]: discovery, pods of `default` (list, get,
//!    watch, log, exec over websockets), services, SelfSubjectReview,
//!    [`token_review`] (TokenReview, for token passthrough) and
//!    [`access_review`] (SubjectAccessReview from the RBAC table, for
//!    end-user impersonation).
//!
//! It also keeps the impersonation header lines of the last requests it
//! received, exactly as they arrived, for tests to assert on
//! ([`RECORD_PATH`]). Never deploy it.

pub mod access_review;
pub mod exec;
pub mod identity;
pub mod rbac;
pub mod resources;
pub mod status;
pub mod token_review;

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::net::TcpListener;

use self::identity::UserInfo;
use self::rbac::{Attributes, Rbac, Rule};
use self::status::ApiError;
use self::token_review::{API_AUDIENCE, CI_SERVICE_ACCOUNT, OTHER_AUDIENCE, ServiceAccountToken};
use super::certs::{DevCa, write_pem};
use kube_oidc_authz::error::RunError;

/// Where tests read the recorded requests (`GET`, with the service-account
/// token and no impersonation). Not a Kubernetes path.
pub const RECORD_PATH: &str = "/_stand-in/requests";
/// How many requests are kept for [`RECORD_PATH`].
pub const RECORD_CAPACITY: usize = 512;
/// The proxy's service account, as the Helm chart names it.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "system:serviceaccount:kube-oidc-authz:kube-oidc-authz";
/// The name the stand-in's serving certificate is valid for, as the real
/// apiserver's is.
pub const SERVER_NAME: &str = "kubernetes.default.svc";

/// Flags of `kube-oidc-dev stand-in-apiserver`.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiserverArgs {
    /// Address to serve HTTPS on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Folder for `ca.crt`, `tls.crt`, `tls.key` (valid for
    /// kubernetes.default.svc and 127.0.0.1), `token`, the proxy's
    /// service-account token, and two tokens of a "CI job" service account
    /// (system:serviceaccount:ci:deployer) for token passthrough: `ci-token`
    /// (audience https://kubernetes.default.svc.cluster.local, the
    /// stand-in's own) and `ci-token-other-audience` (audience `vault`);
    /// files that exist are reused.
    #[arg(long, default_value = ".demo/apiserver")]
    pub dir: PathBuf,
    /// Username of the service account whose token is accepted; it may
    /// impersonate anyone.
    #[arg(long, default_value = DEFAULT_SERVICE_ACCOUNT)]
    pub service_account: String,
    /// YAML list of RBAC rules (`users`, `groups`, `namespace`, `verbs`,
    /// `apiGroups`, `resources`, `resourceNames`, `nonResourceURLs`). Without
    /// it: the product guide's example (pod reader in `default` for
    /// banyan:any-employee-personal-device, cluster-admin for
    /// banyan:all-admins-corporate-device).
    #[arg(long)]
    pub rbac_file: Option<PathBuf>,
    /// How often a watch on pods receives a MODIFIED event.
    #[arg(long, default_value = "1s", value_parser = kube_oidc_authz::duration::parse)]
    pub watch_event_interval: Duration,
    /// An extra key the service account may impersonate
    /// (`userextras/<key>`), as the Helm chart's ClusterRole names them;
    /// repeatable. With any given, the account may impersonate users,
    /// groups, service accounts, uids and these extras only, and an
    /// `Impersonate-Extra-*` of any other key is refused with 403, as the
    /// apiserver refuses it. Without: any extra.
    #[arg(long = "proxy-userextra", value_name = "KEY")]
    pub proxy_userextras: Vec<String>,
}

/// What the stand-in needs to serve.
#[derive(Debug, Clone)]
pub struct StandInConfig {
    /// The only bearer token accepted.
    pub token: String,
    /// Username of the token's service account.
    pub service_account: String,
    /// The cluster's RBAC table (the bootstrap policy is always added).
    pub rules: Vec<Rule>,
    /// Interval between watch events.
    pub watch_event_interval: Duration,
    /// Service-account tokens of other accounts the stand-in issued.
    pub service_account_tokens: Vec<ServiceAccountToken>,
    /// The extra keys the proxy may impersonate; `None`: any.
    pub proxy_userextras: Option<Vec<String>>,
}

/// One request as it arrived, for tests.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Every `impersonate-*` header line, in the order received; a
    /// comma-joined value stays one line.
    pub impersonate: Vec<(String, String)>,
    /// Every header line but `authorization`, in the order received, so
    /// tests see what the proxy forwards (forwarding and upgrade headers).
    pub headers: Vec<(String, String)>,
    /// The identity the request was served as, when it got that far.
    pub user: Option<UserInfo>,
    /// The status answered.
    pub status: u16,
}

/// The stand-in's state; clones share it.
#[derive(Clone)]
pub struct StandIn {
    inner: Arc<Inner>,
}

struct Inner {
    /// The proxy's token first.
    tokens: Vec<ServiceAccountToken>,
    rbac: Rbac,
    watch_interval: Duration,
    resource_version: AtomicU64,
    recorded: Mutex<VecDeque<Recorded>>,
}

impl StandIn {
    /// A stand-in with `config`.
    pub fn new(config: StandInConfig) -> Self {
        let proxy = UserInfo::service_account(
            &config.service_account,
            "3c0a7a4e-0b7e-4d1f-8f15-a3f4a1c1b001",
        );
        // The proxy's token predates bound tokens: it is meant for the
        // apiserver, as a legacy token is.
        let mut tokens = vec![ServiceAccountToken {
            token: config.token,
            user: proxy,
            audiences: vec![API_AUDIENCE.to_owned()],
        }];
        tokens.extend(config.service_account_tokens);
        StandIn {
            inner: Arc::new(Inner {
                tokens,
                rbac: Rbac::new(
                    &config.service_account,
                    config.proxy_userextras.as_deref(),
                    config.rules,
                ),
                watch_interval: config.watch_event_interval,
                resource_version: AtomicU64::new(1000),
                recorded: Mutex::new(VecDeque::with_capacity(RECORD_CAPACITY)),
            }),
        }
    }

    /// The requests received so far (the last [`RECORD_CAPACITY`]).
    pub fn recorded(&self) -> Vec<Recorded> {
        self.inner
            .recorded
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The HTTP router.
    pub fn router(&self) -> Router {
        Router::new().fallback(handle).with_state(self.clone())
    }

    fn record(&self, entry: Recorded) {
        if let Ok(mut r) = self.inner.recorded.lock() {
            if r.len() == RECORD_CAPACITY {
                r.pop_front();
            }
            r.push_back(entry);
        }
    }
}

async fn handle(State(standin): State<StandIn>, req: Request) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let impersonate: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter(|(n, _)| n.as_str().starts_with("impersonate-"))
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter(|(n, _)| *n != http::header::AUTHORIZATION)
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let (response, user) = match serve_request(&standin, req).await {
        Ok((r, u)) => (r, Some(u)),
        Err(failed) => {
            let (e, u) = *failed;
            (e.into_response(), u)
        }
    };
    standin.record(Recorded {
        method,
        path,
        impersonate,
        headers,
        user,
        status: response.status().as_u16(),
    });
    response
}

/// A failed request keeps the identity it was served as, when known, for
/// the record.
type Outcome = Result<(Response, UserInfo), Box<(ApiError, Option<UserInfo>)>>;

async fn serve_request(standin: &StandIn, req: Request) -> Outcome {
    let inner = &standin.inner;
    let presented = identity::presented(req.headers()).map_err(|e| Box::new((e, None)))?;
    let requestor = token_review::authenticates(&inner.tokens, presented)
        .cloned()
        .ok_or_else(|| Box::new((ApiError::unauthorized(), None)))?;
    let requested = identity::requested(req.headers()).map_err(|e| Box::new((e, None)))?;
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();

    if path == RECORD_PATH && requested.is_empty() && *req.method() == http::Method::GET {
        let body = serde_json::to_value(standin.recorded()).unwrap_or_default();
        return Ok((resources::ok(&body), requestor));
    }

    let user = identity::impersonate(requestor, &requested, &inner.rbac)
        .map_err(|e| Box::new((e, None)))?;
    let attrs = Attributes::from_request(user.clone(), req.method(), &path, &query);
    if !inner.rbac.allows(&attrs) {
        return Err(Box::new((ApiError::forbidden(&attrs), Some(user))));
    }
    let fail = |e: ApiError| Box::new((e, Some(user.clone())));
    if !attrs.resource_request {
        return resources::non_resource(&path)
            .map(|r| (r, user.clone()))
            .map_err(fail);
    }
    let table = resources::wants_table(req.headers());
    let version = inner.resource_version.load(Ordering::Relaxed);
    let a = &attrs;
    let response = match (
        a.api_group.as_str(),
        a.api_version.as_str(),
        a.resource.as_str(),
        a.subresource.as_str(),
        a.verb.as_str(),
    ) {
        ("", "v1", "pods", "", "list") => resources::list_pods(&a.namespace, version, table),
        ("", "v1", "pods", "", "get") => {
            resources::get_pod(&a.namespace, &a.name, version, table).map_err(fail)?
        }
        ("", "v1", "pods", "", "watch") => {
            let params = resources::WatchParams::from_query(&query);
            let start = params
                .resource_version
                .filter(|v| *v > 0)
                .unwrap_or(version);
            resources::watch_pods(&a.namespace, start, params, inner.watch_interval, table)
        }
        ("", "v1", "pods", "log", "get") => {
            resources::pod_log(&a.namespace, &a.name).map_err(fail)?
        }
        ("", "v1", "pods", "exec", "get" | "create") => {
            if a.namespace != resources::NAMESPACE || a.name != resources::POD_NAME {
                return Err(fail(ApiError::not_found("pods", &a.name)));
            }
            exec::exec(req).map_err(fail)?
        }
        ("", "v1", "services", "", "list") if !a.namespace.is_empty() => {
            resources::list_services(table)
        }
        ("authentication.k8s.io", "v1", "selfsubjectreviews", "", "create") => {
            resources::self_subject_review(&user)
        }
        ("authentication.k8s.io", "v1", "tokenreviews", "", "create") => {
            let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .map_err(|e| fail(ApiError::bad_request(&format!("read body: {e}"))))?;
            token_review::create(&inner.tokens, &body).map_err(fail)?
        }
        ("authorization.k8s.io", "v1", "subjectaccessreviews", "", "create") => {
            let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .map_err(|e| fail(ApiError::bad_request(&format!("read body: {e}"))))?;
            access_review::create(&inner.rbac, &body).map_err(fail)?
        }
        _ => return Err(fail(ApiError::not_found_path())),
    };
    Ok((response, user))
}

/// Serves the stand-in over TLS (HTTP/2 with kube-apiserver's stream
/// limit, HTTP/1.1 with upgrades) on an already-bound listener until
/// `shutdown` completes; open connections are then dropped.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    standin: StandIn,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::https::serve_https(listener, tls, standin.router(), shutdown).await
}

/// Files the stand-in keeps in its folder.
#[derive(Debug, Clone)]
pub struct StandInFiles {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub token: String,
    /// The CI job's tokens: for the stand-in, and for [`OTHER_AUDIENCE`].
    pub ci_tokens: Vec<ServiceAccountToken>,
}

/// The CI job's token file meant for the stand-in.
pub const CI_TOKEN_FILE: &str = "ci-token";
/// The CI job's token file meant for [`OTHER_AUDIENCE`].
pub const CI_TOKEN_OTHER_AUDIENCE_FILE: &str = "ci-token-other-audience";

/// Reuses the CI job's token in `path`, or mints and writes one.
fn ci_token(path: &std::path::Path, audience: &str) -> anyhow::Result<ServiceAccountToken> {
    let user =
        UserInfo::service_account(CI_SERVICE_ACCOUNT, "7d1e2f3a-4b5c-4d6e-8f70-a1b2c3d4e5f6");
    let minted = match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => ServiceAccountToken {
            token: t.trim().to_owned(),
            user,
            audiences: vec![audience.to_owned()],
        },
        _ => {
            let t = ServiceAccountToken::mint(user, &[audience]);
            write_pem(path, &t.token, true)?;
            t
        }
    };
    Ok(minted)
}

/// Creates (or reuses) the CA, serving certificate and token in `dir`.
pub fn ensure_files(dir: &std::path::Path) -> anyhow::Result<StandInFiles> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let (ca, crt, key, token) = (
        dir.join("ca.crt"),
        dir.join("tls.crt"),
        dir.join("tls.key"),
        dir.join("token"),
    );
    let token_value = match std::fs::read_to_string(&token) {
        Ok(t) if !t.trim().is_empty() => t.trim().to_owned(),
        _ => {
            let t = random_token();
            write_pem(&token, &t, true)?;
            t
        }
    };
    let ci_tokens = vec![
        ci_token(&dir.join(CI_TOKEN_FILE), API_AUDIENCE)?,
        ci_token(&dir.join(CI_TOKEN_OTHER_AUDIENCE_FILE), OTHER_AUDIENCE)?,
    ];
    if ca.exists() && crt.exists() && key.exists() {
        return Ok(StandInFiles {
            ca_pem: std::fs::read_to_string(&ca)?,
            cert_pem: std::fs::read_to_string(&crt)?,
            key_pem: std::fs::read_to_string(&key)?,
            token: token_value,
            ci_tokens,
        });
    }
    let dev_ca = DevCa::generate("kube-oidc-authz stand-in cluster CA")?;
    let leaf = dev_ca.issue(
        "kube-apiserver",
        &[
            SERVER_NAME,
            "kubernetes",
            "kubernetes.default",
            "127.0.0.1",
            "localhost",
        ],
    )?;
    write_pem(&ca, dev_ca.cert_pem(), false)?;
    write_pem(&crt, &leaf.cert_pem, false)?;
    write_pem(&key, &leaf.key_pem, true)?;
    Ok(StandInFiles {
        ca_pem: dev_ca.cert_pem().to_owned(),
        cert_pem: leaf.cert_pem,
        key_pem: leaf.key_pem,
        token: token_value,
        ci_tokens,
    })
}

fn random_token() -> String {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A rustls server config from PEM strings.
pub fn tls_config(cert_pem: &str, key_pem: &str) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    crate::https::server_config(cert_pem.as_bytes(), key_pem.as_bytes()).context("stand-in tls")
}

/// Runs the stand-in apiserver until `shutdown` completes.
pub async fn run(
    args: ApiserverArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let rules = match &args.rbac_file {
        None => Rule::guide_example(),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                RunError::Config(vec![format!("--rbac-file {}: {e}", path.display())])
            })?;
            serde_yaml_ng::from_str::<Vec<Rule>>(&text).map_err(|e| {
                RunError::Config(vec![format!("--rbac-file {}: {e}", path.display())])
            })?
        }
    };
    if identity::split_service_account(&args.service_account).is_none() {
        return Err(RunError::Config(vec![format!(
            "--service-account {:?} is not system:serviceaccount:<namespace>:<name>",
            args.service_account
        )]));
    }
    let files = ensure_files(&args.dir)?;
    let tls = tls_config(&files.cert_pem, &files.key_pem)?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("bind --listen {}", args.listen))?;
    let addr = listener.local_addr().context("local address")?;
    let standin = StandIn::new(StandInConfig {
        token: files.token,
        service_account: args.service_account,
        rules,
        watch_event_interval: args.watch_event_interval,
        service_account_tokens: files.ci_tokens,
        proxy_userextras: (!args.proxy_userextras.is_empty()).then_some(args.proxy_userextras),
    });
    tracing::info!(address = %addr, dir = %args.dir.display(), "stand-in apiserver listening");
    serve(listener, tls, standin, shutdown)
        .await
        .context("serve")?;
    Ok(())
}
