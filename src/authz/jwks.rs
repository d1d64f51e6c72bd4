//! Issuer keys: OIDC discovery and JWKS, fetched over HTTPS, cached,
//! refreshed in the background and on an unknown `kid` (single-flight and
//! rate-limited), and kept while the issuer is unreachable.
//!
//! A token whose `kid` is unknown while the rate limit's window is closed
//! waits, up to a bound, for the window to open ([`RefreshGate`]), so that
//! a key published right after a fetch is accepted the first time it is
//! seen; a flood of unknown kids still causes at most one fetch per
//! `--jwks-min-refresh-interval`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::config::IssuerConfig;
use super::verify::VerifyingKey;

/// Largest discovery document or JWKS accepted.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// Most keys kept from one JWKS.
const MAX_KEYS: usize = 100;
/// Timeout of one discovery or JWKS request.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors fetching keys. Never fatal: the last good keys stay in use.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("fetch {url}: {source}")]
    Fetch { url: String, source: reqwest::Error },
    #[error("fetch {url}: status {status}")]
    Status { url: String, status: u16 },
    #[error("fetch {url}: document larger than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge { url: String },
    #[error("{url}: {reason}")]
    Invalid { url: String, reason: String },
    #[error("https client: {0}")]
    Client(#[from] crate::tls::TlsError),
}

impl JwksError {
    /// Short fixed code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            JwksError::Fetch { .. } => "fetch",
            JwksError::Status { .. } => "status",
            JwksError::TooLarge { .. } => "too_large",
            JwksError::Invalid { .. } => "invalid",
            JwksError::Client(_) => "client",
        }
    }
}

/// What a caller that found no key for its `kid` got from the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownKidRefresh {
    /// This caller fetched; whether the fetch succeeded.
    Fetched(bool),
    /// Another caller's fetch changed the keys meanwhile: look again.
    Shared,
    /// The window would not open before the caller's deadline.
    Skipped,
}

/// At most one fetch per `min_interval`: the time of the last fetch,
/// held while fetching so concurrent callers share one.
pub struct RefreshGate {
    last: Mutex<Option<Instant>>,
    min_interval: Duration,
}

impl RefreshGate {
    pub fn new(min_interval: Duration) -> Self {
        RefreshGate {
            last: Mutex::new(None),
            min_interval,
        }
    }

    /// Runs `fetch` once the window is open, waiting for it until
    /// `deadline` at most, unless `changed` reports (under the gate) that a
    /// fetch since the caller looked made waiting moot. Callers queue on
    /// the gate in order; a fetch in progress holds it.
    pub async fn when_open<F, Fut>(
        &self,
        deadline: Instant,
        changed: impl Fn() -> bool,
        fetch: F,
    ) -> UnknownKidRefresh
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = bool>,
    {
        loop {
            let Ok(mut last) = tokio::time::timeout_at(deadline, self.last.lock()).await else {
                return UnknownKidRefresh::Skipped;
            };
            if changed() {
                return UnknownKidRefresh::Shared;
            }
            match *last {
                Some(t) if t + self.min_interval > Instant::now() => {
                    let open = t + self.min_interval;
                    if open > deadline {
                        return UnknownKidRefresh::Skipped;
                    }
                    drop(last);
                    tokio::time::sleep_until(open).await;
                }
                _ => {
                    *last = Some(Instant::now());
                    return UnknownKidRefresh::Fetched(fetch().await);
                }
            }
        }
    }
}

/// The keys of one issuer.
pub struct IssuerKeys {
    issuer: String,
    discovery_url: String,
    client: reqwest::Client,
    keys: RwLock<Arc<Vec<VerifyingKey>>>,
    loaded: AtomicBool,
    /// Held while fetching; holds the time of the last attempt.
    gate: RefreshGate,
    fetches: AtomicU64,
}

impl IssuerKeys {
    pub fn new(cfg: &IssuerConfig, min_interval: Duration) -> Result<Self, JwksError> {
        let client = crate::tls::https_client(cfg.ca_pem.as_deref(), FETCH_TIMEOUT)?;
        let discovery_url = if *cfg.discovery_url == *cfg.url {
            format!(
                "{}/.well-known/openid-configuration",
                cfg.url.trim_end_matches('/')
            )
        } else {
            cfg.discovery_url.clone()
        };
        Ok(IssuerKeys {
            issuer: cfg.url.to_string(),
            discovery_url,
            client,
            keys: RwLock::new(Arc::new(Vec::new())),
            loaded: AtomicBool::new(false),
            gate: RefreshGate::new(min_interval),
            fetches: AtomicU64::new(0),
        })
    }

    /// The current key set (possibly empty before the first fetch).
    pub fn current(&self) -> Arc<Vec<VerifyingKey>> {
        match self.keys.read() {
            Ok(k) => Arc::clone(&k),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Whether keys were loaded at least once.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// How many fetches were attempted (for metrics and tests).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Refreshes unless another refresh finished less than the minimum
    /// interval ago. Concurrent callers wait for one fetch rather than each
    /// making their own. Returns whether a fetch was made and succeeded.
    pub async fn refresh_rate_limited(&self) -> bool {
        let mut last = self.gate.last.lock().await;
        if last.is_some_and(|t| t.elapsed() < self.gate.min_interval) {
            return false;
        }
        *last = Some(Instant::now());
        self.fetch_and_swap().await
    }

    /// For a token whose `kid` is not in `seen` (the keys it was checked
    /// against): fetches when the rate limit allows, waiting up to
    /// `max_wait` for it to, unless the keys change meanwhile.
    pub async fn refresh_for_unknown_kid(
        &self,
        seen: &Arc<Vec<VerifyingKey>>,
        max_wait: Duration,
    ) -> UnknownKidRefresh {
        self.gate
            .when_open(
                Instant::now() + max_wait,
                || !Arc::ptr_eq(seen, &self.current()),
                || self.fetch_and_swap(),
            )
            .await
    }

    /// Refreshes now, regardless of the rate limit (background schedule).
    pub async fn refresh(&self) -> bool {
        let mut last = self.gate.last.lock().await;
        *last = Some(Instant::now());
        self.fetch_and_swap().await
    }

    async fn fetch_and_swap(&self) -> bool {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        match self.fetch_keys().await {
            Ok(keys) => {
                tracing::info!(issuer = %self.issuer, keys = keys.len(), "issuer keys loaded");
                match self.keys.write() {
                    Ok(mut k) => *k = Arc::new(keys),
                    Err(poisoned) => *poisoned.into_inner() = Arc::new(keys),
                }
                self.loaded.store(true, Ordering::Release);
                true
            }
            Err(e) => {
                tracing::warn!(issuer = %self.issuer, error = %e, code = e.code(),
                    "cannot refresh issuer keys; keeping the last good set");
                false
            }
        }
    }

    async fn fetch_keys(&self) -> Result<Vec<VerifyingKey>, JwksError> {
        let discovery = self.get_json(&self.discovery_url).await?;
        let invalid = |reason: &str| JwksError::Invalid {
            url: self.discovery_url.clone(),
            reason: reason.to_owned(),
        };
        match discovery.get("issuer").and_then(Value::as_str) {
            Some(i) if i == self.issuer => {}
            Some(_) => {
                return Err(invalid(
                    "issuer in discovery does not match the configured issuer",
                ));
            }
            None => return Err(invalid("discovery document has no issuer")),
        }
        let jwks_uri = discovery
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("discovery document has no jwks_uri"))?;
        // The issuer's HTTPS does not vouch for keys fetched in clear.
        if !reqwest::Url::parse(jwks_uri).is_ok_and(|u| u.scheme() == "https") {
            return Err(invalid("jwks_uri in discovery is not an https URL"));
        }
        let jwks = self.get_json(jwks_uri).await?;
        let list =
            jwks.get("keys")
                .and_then(Value::as_array)
                .ok_or_else(|| JwksError::Invalid {
                    url: jwks_uri.to_owned(),
                    reason: "no keys array".to_owned(),
                })?;
        let mut keys = Vec::new();
        for jwk in list.iter().take(MAX_KEYS) {
            match VerifyingKey::from_jwk(jwk) {
                Ok(Some(k)) => keys.push(k),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(issuer = %self.issuer, error = %e, "skipping unusable key")
                }
            }
        }
        if keys.is_empty() {
            return Err(JwksError::Invalid {
                url: jwks_uri.to_owned(),
                reason: "no usable signing key".to_owned(),
            });
        }
        Ok(keys)
    }

    async fn get_json(&self, url: &str) -> Result<Value, JwksError> {
        let fetch = |source| JwksError::Fetch {
            url: url.to_owned(),
            source,
        };
        let resp = self.client.get(url).send().await.map_err(fetch)?;
        if !resp.status().is_success() {
            return Err(JwksError::Status {
                url: url.to_owned(),
                status: resp.status().as_u16(),
            });
        }
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(JwksError::TooLarge {
                url: url.to_owned(),
            });
        }
        let mut resp = resp;
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(fetch)? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(JwksError::TooLarge {
                    url: url.to_owned(),
                });
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| JwksError::Invalid {
            url: url.to_owned(),
            reason: e.to_string(),
        })
    }

    /// Keeps keys fresh until the task is dropped: retries quickly (capped
    /// exponential backoff) until the first load, then refreshes every
    /// `interval`.
    pub async fn run_refresher(self: Arc<Self>, interval: Duration) {
        let mut backoff = Duration::from_millis(500);
        loop {
            if self.is_loaded() {
                tokio::time::sleep(interval).await;
                self.refresh().await;
            } else if self.refresh().await {
                backoff = Duration::from_millis(500);
            } else {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Callers arriving at the given offsets (ms after a fetch at 0) with a
    /// 300 ms wait bound and a 500 ms interval: the outcome of each, and
    /// when it was known.
    #[tokio::test(start_paused = true)]
    async fn a_closed_window_is_waited_for_within_the_bound() {
        let gate = RefreshGate::new(Duration::from_millis(500));
        let start = Instant::now();
        assert_eq!(
            gate.when_open(start, || false, || async { true }).await,
            UnknownKidRefresh::Fetched(true),
            "the first fetch needs no wait"
        );
        let cases = [
            // Opens at 500: within 300 of 250, so waits and fetches.
            (250, UnknownKidRefresh::Fetched(true), 500),
            // Just fetched at 500: opens at 1000, beyond 600 + 300.
            (600, UnknownKidRefresh::Skipped, 600),
            // Opens at 1000, exactly the deadline of 700 + 300.
            (700, UnknownKidRefresh::Fetched(false), 1000),
        ];
        for (at, want, done_at) in cases {
            tokio::time::sleep_until(start + Duration::from_millis(at)).await;
            let got = gate
                .when_open(
                    Instant::now() + Duration::from_millis(300),
                    || false,
                    || async { want == UnknownKidRefresh::Fetched(true) },
                )
                .await;
            assert_eq!(got, want, "caller at {at} ms");
            assert_eq!(
                Instant::now() - start,
                Duration::from_millis(done_at),
                "caller at {at} ms"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_waiters_makes_one_fetch_per_interval() {
        let gate = Arc::new(RefreshGate::new(Duration::from_millis(500)));
        let keys_version = Arc::new(AtomicUsize::new(0));
        let fetches = Arc::new(AtomicUsize::new(0));
        let fetch = {
            let (v, f) = (keys_version.clone(), fetches.clone());
            move || {
                let (v, f) = (v.clone(), f.clone());
                async move {
                    f.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    v.fetch_add(1, Ordering::SeqCst);
                    true
                }
            }
        };
        // A fetch just happened; 1000 tokens with unknown kids arrive.
        gate.when_open(Instant::now(), || false, fetch.clone())
            .await;
        let start = Instant::now();
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                let (gate, v, fetch) = (gate.clone(), keys_version.clone(), fetch.clone());
                tokio::spawn(async move {
                    let seen = v.load(Ordering::SeqCst);
                    gate.when_open(
                        Instant::now() + Duration::from_millis(600),
                        move || v.load(Ordering::SeqCst) != seen,
                        fetch,
                    )
                    .await
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap());
        }
        // One fetch (the second overall) when the window opened; everyone
        // else saw the keys change and looked again.
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
        let fetched = outcomes
            .iter()
            .filter(|o| **o == UnknownKidRefresh::Fetched(true))
            .count();
        assert_eq!(fetched, 1);
        assert!(
            outcomes.iter().all(|o| matches!(
                o,
                UnknownKidRefresh::Fetched(true) | UnknownKidRefresh::Shared
            )),
            "{outcomes:?}"
        );
        assert!(Instant::now() - start <= Duration::from_millis(600));
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_the_gate_itself_is_bounded_by_the_deadline() {
        let gate = Arc::new(RefreshGate::new(Duration::from_millis(100)));
        // A fetch that hangs for ten seconds holds the gate.
        let holder = {
            let gate = gate.clone();
            tokio::spawn(async move {
                gate.when_open(
                    Instant::now(),
                    || false,
                    || async {
                        tokio::time::sleep(Duration::from_secs(10)).await;
                        true
                    },
                )
                .await
            })
        };
        tokio::task::yield_now().await;
        let start = Instant::now();
        let got = gate
            .when_open(
                start + Duration::from_millis(300),
                || false,
                || async { true },
            )
            .await;
        assert_eq!(got, UnknownKidRefresh::Skipped);
        assert_eq!(Instant::now() - start, Duration::from_millis(300));
        holder.abort();
    }
}
