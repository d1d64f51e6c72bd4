//! The Cloud Secure Edge REST API client: refresh-token exchange, a cached
//! access token renewed before it expires, and the batch post.
//!
//! The contract, as the vendor's public SDK shows it: the API root is
//! `<restapi-url>/api/v1`; `POST /api/v1/refresh_token` with
//! `Authorization: Bearer <refresh token>` answers JSON whose `Message` is
//! an access token; later calls carry `Authorization: Bearer <access
//! token>`; errors are JSON with `Message`, or `error` and `error_code`.
//! The path batches are posted to is configuration (`--restapi-events-path`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::buffer::Item;
use super::event::API_VERSION_V1;
use super::metrics::Metrics;

pub use crate::secret::Secret;

/// Where the refresh token comes from. A file is re-read at every
/// exchange, so a rotated Kubernetes Secret takes effect without a restart.
#[derive(Debug, Clone)]
pub enum RefreshToken {
    File(PathBuf),
    Value(Secret),
}

/// How to reach the CSE API.
#[derive(Debug, Clone)]
pub struct CseConfig {
    /// Base URL without a trailing slash, e.g. `https://net.banyanops.com`.
    pub restapi_url: String,
    /// Path batches are posted to, e.g. `/api/v1/events`.
    pub events_path: String,
    pub service_name: String,
    pub refresh_token: RefreshToken,
    /// Timeout of each HTTP attempt.
    pub timeout: Duration,
    /// How long an access token is trusted when it does not say (a
    /// token that is a JWT says with its `exp`).
    pub token_lifetime: Duration,
}

/// Why the access token could not be obtained.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the refresh token file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("the refresh token is empty")]
    Empty,
    #[error("refresh token exchange failed: {0}")]
    Transport(String),
    #[error("refresh token exchange refused with status {status}: {message}")]
    Refused { status: u16, message: String },
    #[error("refresh token exchange answered without an access token in Message")]
    NoToken,
}

/// Why a batch post failed before the API answered.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("post failed: {0}")]
    Transport(String),
}

/// The API's answer to a batch post.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The error message from the body, if any (never the token).
    pub message: String,
}

#[derive(Debug)]
struct AccessToken {
    value: Secret,
    renew_at: Instant,
}

/// The client. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct CseClient {
    http: reqwest::Client,
    config: CseConfig,
    token: Mutex<Option<AccessToken>>,
    metrics: Arc<Metrics>,
}

impl CseClient {
    pub fn new(config: CseConfig, metrics: Arc<Metrics>) -> Result<CseClient, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("kube-oidc-authz/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(CseClient {
            http,
            config,
            token: Mutex::new(None),
            metrics,
        })
    }

    pub fn config(&self) -> &CseConfig {
        &self.config
    }

    /// Forgets the cached access token (after a 401).
    pub async fn invalidate_token(&self) {
        *self.token.lock().await = None;
    }

    async fn access_token(&self) -> Result<Secret, TokenError> {
        let mut guard = self.token.lock().await;
        if let Some(t) = guard.as_ref()
            && Instant::now() < t.renew_at
        {
            return Ok(t.value.clone());
        }
        let fresh = self.exchange().await?;
        let value = fresh.value.clone();
        *guard = Some(fresh);
        Ok(value)
    }

    async fn refresh_token(&self) -> Result<Secret, TokenError> {
        let raw = match &self.config.refresh_token {
            RefreshToken::Value(s) => s.expose().to_owned(),
            RefreshToken::File(path) => {
                tokio::fs::read_to_string(path)
                    .await
                    .map_err(|source| TokenError::File {
                        path: path.display().to_string(),
                        source,
                    })?
            }
        };
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(TokenError::Empty);
        }
        Ok(Secret::new(trimmed))
    }

    async fn exchange(&self) -> Result<AccessToken, TokenError> {
        let refresh = self.refresh_token().await?;
        let url = format!("{}/api/v1/refresh_token", self.config.restapi_url);
        let resp = self
            .http
            .post(&url)
            .bearer_auth(refresh.expose())
            .header(reqwest::header::CONTENT_LENGTH, "0")
            .send()
            .await
            .map_err(|e| TokenError::Transport(describe(&e)))?;
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .await
            .map_err(|e| TokenError::Transport(describe(&e)))?;
        if !(200..300).contains(&status) {
            return Err(TokenError::Refused {
                status,
                message: error_message(&body),
            });
        }
        let value = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("Message").and_then(|m| m.as_str()).map(str::to_owned))
            .filter(|s| !s.is_empty())
            .ok_or(TokenError::NoToken)?;
        let lifetime = jwt_lifetime(&value).unwrap_or(self.config.token_lifetime);
        // Renew well before expiry: a fifth of the lifetime early, at most
        // a minute, so a batch is never sent with a token about to lapse.
        let margin = (lifetime / 5).min(Duration::from_secs(60));
        self.metrics.token_refreshes.inc();
        tracing::debug!(
            lifetime_seconds = lifetime.as_secs(),
            "obtained a CSE access token"
        );
        Ok(AccessToken {
            value: Secret::new(value),
            renew_at: Instant::now() + lifetime.saturating_sub(margin),
        })
    }

    /// Posts one batch body (JSON) and reports the status.
    pub async fn post(&self, body: bytes::Bytes) -> Result<Answer, PostError> {
        let token = self.access_token().await?;
        let url = format!("{}{}", self.config.restapi_url, self.config.events_path);
        let resp = self
            .http
            .post(&url)
            .bearer_auth(token.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| PostError::Transport(describe(&e)))?;
        let status = resp.status().as_u16();
        let message = if (200..300).contains(&status) {
            String::new()
        } else {
            // A failing body is only read for its message, and never
            // more than a little of it.
            match resp.bytes().await {
                Ok(b) => error_message(&b[..b.len().min(4096)]),
                Err(_) => String::new(),
            }
        };
        Ok(Answer { status, message })
    }
}

/// A short description of a transport error, with its cause chain.
fn describe(e: &reqwest::Error) -> String {
    let mut s = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// The error text of a CSE API error body (`Message`, or `error` and
/// `error_code`), shortened for logs.
fn error_message(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => {
            if let Some(m) = v.get("Message").and_then(|m| m.as_str()) {
                m.to_owned()
            } else if let Some(e) = v.get("error").and_then(|m| m.as_str()) {
                match v.get("error_code") {
                    Some(code) => format!("{e} (error_code {code})"),
                    None => e.to_owned(),
                }
            } else {
                String::new()
            }
        }
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    text.chars().take(300).collect()
}

/// The remaining lifetime of a JWT access token, from its `exp`; `None`
/// when the token is not a JWT.
fn jwt_lifetime(token: &str) -> Option<Duration> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&raw).ok()?;
    let exp = claims.get("exp")?.as_f64()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs_f64();
    Some(Duration::from_secs_f64((exp - now).max(0.0)))
}

// === the batch body ===

/// What identifies a batch in its body.
#[derive(Debug, Clone)]
pub struct BatchMeta<'a> {
    pub service_name: &'a str,
    pub batch_id: &'a str,
    pub created_at_ms: i128,
}

/// Bytes the envelope adds around the events; the batch byte ceiling
/// keeps this much room.
pub const ENVELOPE_RESERVE: usize = 1024;

/// Builds the JSON body of one batch: a single CSE event of type `Audit`,
/// sub-type `Kubernetes`, whose `events` field is an `audit.k8s.io/v1`
/// `EventList` holding every event of the batch in order.
pub fn batch_body(meta: &BatchMeta<'_>, items: &[Item]) -> String {
    let payload: usize = items.iter().map(|i| i.json.len() + 1).sum();
    let mut body = String::with_capacity(payload + ENVELOPE_RESERVE);
    let n = items.len();
    let head = serde_json::json!({
        "type": "Audit",
        "sub_type": "Kubernetes",
        "severity": "INFO",
        "action": "kubernetes_audit_batch",
        "result": "success",
        "message": format!("{n} Kubernetes audit event{} from {}", if n == 1 { "" } else { "s" }, meta.service_name),
        "created_at": meta.created_at_ms,
        "service": { "name": meta.service_name, "type": "k8s" },
        "batch": { "id": meta.batch_id, "count": n },
    });
    let head = head.to_string();
    // `head` is an object: reopen it to append the events without
    // re-serializing them.
    body.push_str(&head[..head.len() - 1]);
    body.push_str(r#","events":{"kind":"EventList","apiVersion":""#);
    body.push_str(API_VERSION_V1);
    body.push_str(r#"","items":["#);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&item.json);
    }
    body.push_str("]}}");
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_one_audit_event_with_every_item_in_order() {
        let items: Vec<Item> = ["{\"auditID\":\"1\"}", "{\"auditID\":\"2\"}"]
            .iter()
            .map(|s| Item {
                json: (*s).into(),
                arrived: Instant::now(),
            })
            .collect();
        let meta = BatchMeta {
            service_name: "prod-\"k8s\"",
            batch_id: "b1",
            created_at_ms: 1_700_000_000_000,
        };
        let v: serde_json::Value = serde_json::from_str(&batch_body(&meta, &items)).unwrap();
        assert_eq!(v["type"], "Audit");
        assert_eq!(v["sub_type"], "Kubernetes");
        assert_eq!(v["service"]["name"], "prod-\"k8s\"");
        assert_eq!(v["created_at"], 1_700_000_000_000i64);
        assert_eq!(v["batch"]["count"], 2);
        assert_eq!(v["events"]["apiVersion"], "audit.k8s.io/v1");
        assert_eq!(v["events"]["items"][0]["auditID"], "1");
        assert_eq!(v["events"]["items"][1]["auditID"], "2");
    }

    #[test]
    fn error_messages_come_from_either_shape() {
        assert_eq!(error_message(br#"{"Message":"bad token"}"#), "bad token");
        assert_eq!(
            error_message(br#"{"error":"nope","error_code":400}"#),
            "nope (error_code 400)"
        );
        assert_eq!(error_message(b"plain"), "plain");
    }

    #[test]
    fn jwt_exp_gives_the_lifetime_and_opaque_tokens_do_not() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("{{\"exp\":{}}}", now + 600));
        let life = jwt_lifetime(&format!("h.{payload}.s")).unwrap();
        assert!(life > Duration::from_secs(590) && life <= Duration::from_secs(600));
        assert!(jwt_lifetime("opaque").is_none());
        assert!(jwt_lifetime("a.!!!.c").is_none());
        assert_eq!(format!("{:?}", Secret::new("s3cret")), "Secret(<redacted>)");
    }
}
