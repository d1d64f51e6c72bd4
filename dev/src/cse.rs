//! A stand-in Cloud Secure Edge REST API, for the tests and the demo.
//!
//! It enforces the contract the audit forwarder documents: a refresh token
//! exchanged at `POST /api/v1/refresh_token` for an access token (in
//! `Message`), batches posted as JSON with that access token, each batch a
//! single `type: Audit`, `sub_type: Kubernetes` event whose `events` field
//! is an `audit.k8s.io/v1` `EventList`. Anything else gets the status the
//! real API would give (401, 400, 413, 415). Tests script its next answers
//! (`503, 503, 200`), expire its access tokens, and read what it accepted,
//! either through [`StandInCse`] in-process or through the `/_stand-in/`
//! control endpoints when it runs as `kube-oidc-dev stand-in-cse`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use kube_oidc_authz::error::RunError;

/// Flags of `kube-oidc-dev stand-in-cse`.
#[derive(Debug, Clone, clap::Args)]
pub struct CseArgs {
    /// Address to listen on (plain HTTP).
    #[arg(long, default_value = "127.0.0.1:8085")]
    pub listen: SocketAddr,

    /// The refresh token the stand-in accepts.
    #[arg(long, default_value = "dev-refresh-token", hide_default_value = true)]
    pub refresh_token: String,

    /// Only accept batches for this service name (any non-empty name when
    /// unset).
    #[arg(long)]
    pub service_name: Option<String>,

    /// Path batches are posted to.
    #[arg(long, default_value = "/api/v1/events")]
    pub events_path: String,

    /// Lifetime of the access tokens it issues, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub token_lifetime_seconds: u64,
}

/// How the stand-in behaves.
#[derive(Debug, Clone)]
pub struct CseOptions {
    pub refresh_token: String,
    pub service_name: Option<String>,
    pub events_path: String,
    pub token_lifetime: Duration,
    /// Keep accepted batches for [`StandInCse::batches`]; load tests turn
    /// this off and read only the counters.
    pub retain_batches: bool,
}

impl CseOptions {
    /// Accepts `refresh_token`, any service name, posts to `/api/v1/events`,
    /// tokens valid for an hour.
    pub fn new(refresh_token: &str) -> CseOptions {
        CseOptions {
            refresh_token: refresh_token.to_owned(),
            service_name: None,
            events_path: "/api/v1/events".to_owned(),
            token_lifetime: Duration::from_secs(3600),
            retain_batches: true,
        }
    }
}

/// Counters of what the stand-in saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Successful refresh-token exchanges.
    pub refreshes: u64,
    /// Exchanges refused (wrong or missing refresh token).
    pub refresh_refused: u64,
    /// Batch posts received, whatever their fate.
    pub posts: u64,
    /// Posts answered with a scripted status.
    pub scripted: u64,
    /// Posts refused for a missing, unknown or expired access token.
    pub unauthorized: u64,
    /// Posts refused as malformed.
    pub malformed: u64,
    /// Batches accepted.
    pub accepted_batches: u64,
    /// Events in accepted batches.
    pub accepted_events: u64,
    /// Accepted batches whose `batch.id` had been accepted before.
    pub duplicate_batches: u64,
}

/// One accepted batch.
#[derive(Debug, Clone, Serialize)]
pub struct ReceivedBatch {
    pub id: String,
    /// The whole body as posted.
    pub body: Value,
}

impl ReceivedBatch {
    /// The audit events of the batch, in order.
    pub fn events(&self) -> Vec<Value> {
        self.body["events"]["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

#[derive(Debug, Default)]
struct Inner {
    script: VecDeque<u16>,
    tokens: HashMap<String, SystemTime>,
    batches: Vec<ReceivedBatch>,
    seen_ids: HashSet<String>,
    stats: Stats,
}

#[derive(Debug)]
struct Shared {
    options: CseOptions,
    inner: Mutex<Inner>,
    changed: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A running stand-in, controllable from the test that started it.
#[derive(Debug, Clone)]
pub struct StandInCse {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl StandInCse {
    /// Serves on `listener` until `shutdown` completes (in a spawned task).
    pub fn spawn(
        listener: TcpListener,
        options: CseOptions,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<StandInCse> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            options,
            inner: Mutex::new(Inner::default()),
            changed: Notify::new(),
        });
        let app = router(shared.clone());
        tokio::spawn(async move {
            if let Err(e) = kube_oidc_authz::serve::serve_router(listener, app, shutdown).await {
                tracing::error!(error = %e, "stand-in CSE API stopped");
            }
        });
        Ok(StandInCse { addr, shared })
    }

    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The statuses of the next batch posts, in order (2xx: handled
    /// normally; anything else: answered with that status).
    pub fn script(&self, statuses: impl IntoIterator<Item = u16>) {
        self.shared.lock().script.extend(statuses);
    }

    /// Forgets the statuses not yet used: the outage is over.
    pub fn clear_script(&self) {
        self.shared.lock().script.clear();
    }

    /// Makes every access token issued so far invalid, as expiry would.
    pub fn expire_tokens(&self) {
        self.shared.lock().tokens.clear();
    }

    /// Accepted batches, in arrival order.
    pub fn batches(&self) -> Vec<ReceivedBatch> {
        self.shared.lock().batches.clone()
    }

    /// Every accepted audit event, in arrival order.
    pub fn events(&self) -> Vec<Value> {
        self.batches().iter().flat_map(|b| b.events()).collect()
    }

    pub fn stats(&self) -> Stats {
        self.shared.lock().stats.clone()
    }

    /// Waits until at least `n` events were accepted; false on timeout.
    pub async fn wait_for_events(&self, n: u64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.shared.lock().stats.accepted_events >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.shared.lock().stats.accepted_events >= n;
            }
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    let events_path = shared.options.events_path.clone();
    Router::new()
        .route("/api/v1/refresh_token", post(refresh_token))
        .route(&events_path, post(post_batch))
        .route("/_stand-in/stats", get(control_stats))
        .route("/_stand-in/batches", get(control_batches))
        .route("/_stand-in/script", post(control_script))
        .route("/_stand-in/expire-tokens", post(control_expire))
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024 * 1024))
        .with_state(shared)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn message(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({ "Message": text }))).into_response()
}

async fn refresh_token(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let ok = bearer(&headers).is_some_and(|t| {
        !t.is_empty()
            && subtle::ConstantTimeEq::ct_eq(t.as_bytes(), shared.options.refresh_token.as_bytes())
                .into()
    });
    let mut inner = shared.lock();
    if !ok {
        inner.stats.refresh_refused += 1;
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "error": "invalid refresh token", "error_code": 401 })),
        )
            .into_response();
    }
    let now = SystemTime::now();
    inner.tokens.retain(|_, exp| *exp > now);
    let exp = now + shared.options.token_lifetime;
    let token = access_token(exp);
    inner.tokens.insert(token.clone(), exp);
    inner.stats.refreshes += 1;
    axum::Json(json!({ "Message": token })).into_response()
}

/// A JWT-shaped token carrying its expiry, as the real API's are.
fn access_token(exp: SystemTime) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let exp = exp
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let header = b64.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let claims =
        b64.encode(json!({ "exp": exp, "jti": uuid::Uuid::new_v4().to_string() }).to_string());
    let sig = b64.encode(uuid::Uuid::new_v4().as_bytes());
    format!("{header}.{claims}.{sig}")
}

async fn post_batch(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    {
        let mut inner = shared.lock();
        inner.stats.posts += 1;
        if let Some(status) = inner.script.pop_front()
            && !(200..300).contains(&status)
        {
            inner.stats.scripted += 1;
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return message(status, "scripted failure");
        }
        let now = SystemTime::now();
        let authorized = bearer(&headers)
            .and_then(|t| inner.tokens.get(t))
            .is_some_and(|exp| *exp > now);
        if !authorized {
            inner.stats.unauthorized += 1;
            return message(
                StatusCode::UNAUTHORIZED,
                "access token missing, unknown or expired",
            );
        }
    }
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"));
    if !json_type {
        shared.lock().stats.malformed += 1;
        return message(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content type must be application/json",
        );
    }
    let parsed = serde_json::from_slice::<Value>(&body)
        .map_err(|e| format!("body is not JSON: {e}"))
        .and_then(|v| check_batch(&v, shared.options.service_name.as_deref()).map(|id| (id, v)));
    let (id, body) = match parsed {
        Ok(x) => x,
        Err(problem) => {
            shared.lock().stats.malformed += 1;
            return message(StatusCode::BAD_REQUEST, &problem);
        }
    };
    {
        let mut inner = shared.lock();
        let n = body["events"]["items"].as_array().map_or(0, Vec::len) as u64;
        if !inner.seen_ids.insert(id.clone()) {
            inner.stats.duplicate_batches += 1;
        }
        inner.stats.accepted_batches += 1;
        inner.stats.accepted_events += n;
        if shared.options.retain_batches {
            inner.batches.push(ReceivedBatch { id, body });
        }
    }
    shared.changed.notify_waiters();
    message(StatusCode::OK, "accepted")
}

/// Checks a batch body against the documented shape; returns its id.
fn check_batch(v: &Value, service_name: Option<&str>) -> Result<String, String> {
    let str_field = |path: &[&str]| -> Result<&str, String> {
        let mut cur = v;
        for p in path {
            cur = &cur[*p];
        }
        cur.as_str()
            .ok_or_else(|| format!("{} must be a string", path.join(".")))
    };
    if str_field(&["type"])? != "Audit" {
        return Err("type must be \"Audit\"".into());
    }
    if str_field(&["sub_type"])? != "Kubernetes" {
        return Err("sub_type must be \"Kubernetes\"".into());
    }
    if !["DEBUG", "INFO", "WARN", "ERROR"].contains(&str_field(&["severity"])?) {
        return Err("severity must be DEBUG, INFO, WARN or ERROR".into());
    }
    for f in ["action", "message", "result"] {
        str_field(&[f])?;
    }
    if v["created_at"]
        .as_i64()
        .is_none_or(|ms| ms <= 1_000_000_000_000)
    {
        return Err("created_at must be a time in milliseconds since the epoch".into());
    }
    let name = str_field(&["service", "name"])?;
    if name.is_empty() || service_name.is_some_and(|want| want != name) {
        return Err(format!("unknown service {name:?}"));
    }
    let id = str_field(&["batch", "id"])?;
    if id.is_empty() {
        return Err("batch.id must not be empty".into());
    }
    if str_field(&["events", "kind"])? != "EventList"
        || str_field(&["events", "apiVersion"])? != "audit.k8s.io/v1"
    {
        return Err("events must be an audit.k8s.io/v1 EventList".into());
    }
    let items = v["events"]["items"]
        .as_array()
        .ok_or("events.items must be an array")?;
    if items.is_empty() {
        return Err("events.items must not be empty".into());
    }
    if v["batch"]["count"].as_u64() != Some(items.len() as u64) {
        return Err("batch.count must equal the number of events".into());
    }
    for (i, item) in items.iter().enumerate() {
        for f in ["auditID", "stage", "level", "stageTimestamp"] {
            if item[f].as_str().is_none_or(str::is_empty) {
                return Err(format!("events.items[{i}].{f} is missing"));
            }
        }
    }
    Ok(id.to_owned())
}

async fn control_stats(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.lock().stats.clone()).into_response()
}

async fn control_batches(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.lock().batches.clone()).into_response()
}

#[derive(Debug, Deserialize)]
struct ScriptRequest {
    statuses: Vec<u16>,
}

async fn control_script(
    State(shared): State<Arc<Shared>>,
    axum::Json(req): axum::Json<ScriptRequest>,
) -> Response {
    shared.lock().script.extend(req.statuses);
    StatusCode::NO_CONTENT.into_response()
}

async fn control_expire(State(shared): State<Arc<Shared>>) -> Response {
    shared.lock().tokens.clear();
    StatusCode::NO_CONTENT.into_response()
}

/// Runs the stand-in CSE API until `shutdown` completes.
pub async fn run(
    args: CseArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    if !args.events_path.starts_with('/') {
        return Err(RunError::Config(vec![format!(
            "--events-path {:?}: must start with /",
            args.events_path
        )]));
    }
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| RunError::Runtime(anyhow::anyhow!("cannot listen on {}: {e}", args.listen)))?;
    let options = CseOptions {
        refresh_token: args.refresh_token,
        service_name: args.service_name,
        events_path: args.events_path,
        token_lifetime: Duration::from_secs(args.token_lifetime_seconds),
        retain_batches: true,
    };
    let shared = Arc::new(Shared {
        options,
        inner: Mutex::new(Inner::default()),
        changed: Notify::new(),
    });
    tracing::info!(listen = %args.listen, "stand-in CSE API listening");
    kube_oidc_authz::serve::serve_router(listener, router(shared), shutdown)
        .await
        .map_err(|e| RunError::Runtime(e.into()))
}
