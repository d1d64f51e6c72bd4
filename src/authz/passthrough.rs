//! Token passthrough: a token that is not one of ours may still be a
//! Kubernetes token (a service account's, say). With passthrough on, it is
//! checked with a TokenReview and, if the apiserver accepts it, forwarded
//! unchanged, without impersonation.
//!
//! A review costs the apiserver work, so a caller must not be able to turn
//! bearer strings into reviews at will: only a well-formed candidate (a
//! compact JWS with JSON header and payload whose `aud` names a passthrough
//! audience) is reviewed, at most [`MAX_CONCURRENT_REVIEWS`] run at once
//! (beyond a short wait, the request fails closed with 503), and answers are
//! cached briefly. Every candidate refused without a review is counted by
//! reason.

use std::time::Duration;

use moka::sync::Cache;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::apiserver::ApiserverClient;
use super::cache::{TokenHash, token_hash};
use super::config::PassthroughConfig;
use super::error::DenyReason;
use super::metrics::{AuthzMetrics, ReasonLabels, ResultLabels};
use super::verify::{MAX_TOKEN_BYTES, decode_json};

/// How long a review's answer (yes or no) is reused, like the apiserver's
/// webhook token cache.
const REVIEW_TTL: Duration = Duration::from_secs(10);
const REVIEW_CACHE_ENTRIES: u64 = 10_000;
/// Where TokenReviews are created.
const TOKEN_REVIEWS_PATH: &str = "/apis/authentication.k8s.io/v1/tokenreviews";
/// Reviews in flight at once, at most.
pub const MAX_CONCURRENT_REVIEWS: usize = 16;
/// How long a candidate waits for a review slot before the request is
/// refused with 503.
pub const REVIEW_QUEUE_WAIT: Duration = Duration::from_millis(250);

/// Why a token was not sent to a TokenReview.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not three base64url segments with a JSON object header and payload.
    NotJwt,
    /// `aud` missing, or naming no passthrough audience.
    Audience,
    /// Every review slot stayed busy for [`REVIEW_QUEUE_WAIT`].
    Saturated,
}

impl Refusal {
    /// The `reason` label of `kube_oidc_authz_passthrough_refusals_total`.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::NotJwt => "not_jwt",
            Refusal::Audience => "audience",
            Refusal::Saturated => "saturated",
        }
    }
}

/// Whether `token` is worth a TokenReview: shaped as a JWT (as every
/// service-account token is) and, when passthrough audiences are
/// configured, meant for one of them. Nothing is verified here; the
/// apiserver does that.
pub fn candidate(token: &str, audiences: &[String]) -> Result<(), Refusal> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Refusal::NotJwt);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::NotJwt);
    };
    if sig.is_empty() || decode_json(h).is_err() {
        return Err(Refusal::NotJwt);
    }
    let claims = decode_json(p).map_err(|_| Refusal::NotJwt)?;
    if audiences.is_empty() {
        // The apiserver's own audiences apply, which we do not know.
        return Ok(());
    }
    let wanted = |a: &Value| a.as_str().is_some_and(|a| audiences.iter().any(|w| w == a));
    let matches = match claims.get("aud") {
        Some(Value::Array(auds)) => auds.iter().any(wanted),
        Some(aud) => wanted(aud),
        None => false,
    };
    if matches {
        Ok(())
    } else {
        Err(Refusal::Audience)
    }
}

/// Runs TokenReviews against the apiserver.
pub struct TokenReviewer {
    apiserver: ApiserverClient,
    audiences: Vec<String>,
    answers: Cache<TokenHash, Option<String>>,
    slots: Semaphore,
    metrics: AuthzMetrics,
}

impl TokenReviewer {
    pub fn new(cfg: &PassthroughConfig, apiserver: ApiserverClient, metrics: AuthzMetrics) -> Self {
        TokenReviewer {
            apiserver,
            audiences: cfg.audiences.clone(),
            answers: Cache::builder()
                .max_capacity(REVIEW_CACHE_ENTRIES)
                .time_to_live(REVIEW_TTL)
                .build(),
            slots: Semaphore::new(MAX_CONCURRENT_REVIEWS),
            metrics,
        }
    }

    fn refuse(&self, refusal: Refusal) -> DenyReason {
        self.metrics
            .passthrough_refusals
            .get_or_create(&ReasonLabels {
                reason: refusal.code(),
            })
            .inc();
        match refusal {
            Refusal::Saturated => DenyReason::PassthroughUnavailable,
            Refusal::NotJwt | Refusal::Audience => DenyReason::PassthroughRejected,
        }
    }

    /// The username the apiserver authenticates `token` as. A token that is
    /// no candidate is rejected without asking.
    pub async fn review(&self, token: &str) -> Result<String, DenyReason> {
        candidate(token, &self.audiences).map_err(|r| self.refuse(r))?;
        let key = token_hash(token);
        if let Some(answer) = self.answers.get(&key) {
            return answer.ok_or(DenyReason::PassthroughRejected);
        }
        let _slot = match tokio::time::timeout(REVIEW_QUEUE_WAIT, self.slots.acquire()).await {
            Ok(Ok(slot)) => slot,
            // The semaphore is never closed; a timeout is saturation.
            Ok(Err(_)) | Err(_) => return Err(self.refuse(Refusal::Saturated)),
        };
        // Another caller may have asked about the same token meanwhile.
        if let Some(answer) = self.answers.get(&key) {
            return answer.ok_or(DenyReason::PassthroughRejected);
        }
        let answer = self.ask(token).await;
        let result = match &answer {
            Ok(Some(_)) => "authenticated",
            Ok(None) => "rejected",
            Err(_) => "error",
        };
        self.metrics
            .passthrough_reviews
            .get_or_create(&ResultLabels { result })
            .inc();
        let answer = answer?;
        self.answers.insert(key, answer.clone());
        answer.ok_or(DenyReason::PassthroughRejected)
    }

    /// One TokenReview: `Some(user)` if the apiserver authenticated the
    /// token for a passthrough audience, `None` if not.
    async fn ask(&self, token: &str) -> Result<Option<String>, DenyReason> {
        let body = json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": self.audiences},
        });
        let review = self
            .apiserver
            .create(TOKEN_REVIEWS_PATH, &body)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "token review failed");
                DenyReason::PassthroughUnavailable
            })?;
        let status = &review["status"];
        let authenticated = status["authenticated"].as_bool() == Some(true);
        let audience_ok = self.audiences.is_empty()
            || status["audiences"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| self.audiences.iter().any(|w| x == w)));
        Ok(match status["user"]["username"].as_str() {
            Some(user) if authenticated && audience_ok => Some(user.to_owned()),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    fn jwt(header: &str, claims: &str) -> String {
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        )
    }

    #[test]
    fn only_jwts_for_a_passthrough_audience_are_candidates() {
        let h = r#"{"alg":"RS256"}"#;
        let auds = vec!["api".to_owned(), "ci".to_owned()];
        let cases: Vec<(String, Result<(), Refusal>)> = vec![
            (jwt(h, r#"{"aud":["x","ci"]}"#), Ok(())),
            (jwt(h, r#"{"aud":"api"}"#), Ok(())),
            (jwt(h, r#"{"aud":["x"]}"#), Err(Refusal::Audience)),
            (jwt(h, r#"{"aud":"apix"}"#), Err(Refusal::Audience)),
            (jwt(h, r#"{"aud":[["api"]]}"#), Err(Refusal::Audience)),
            (jwt(h, r#"{"sub":"a"}"#), Err(Refusal::Audience)),
            (jwt(h, r#"["api"]"#), Err(Refusal::NotJwt)),
            (jwt("not json", r#"{"aud":"api"}"#), Err(Refusal::NotJwt)),
            (
                jwt(h, r#"{"aud":"api"}"#)
                    .trim_end_matches("c2ln")
                    .to_owned(),
                Err(Refusal::NotJwt),
            ),
            (
                format!("{}.x", jwt(h, r#"{"aud":"api"}"#)),
                Err(Refusal::NotJwt),
            ),
            ("garbage".to_owned(), Err(Refusal::NotJwt)),
            ("a.b.c".to_owned(), Err(Refusal::NotJwt)),
            (String::new(), Err(Refusal::NotJwt)),
            ("x".repeat(MAX_TOKEN_BYTES + 1), Err(Refusal::NotJwt)),
        ];
        for (token, want) in cases {
            assert_eq!(candidate(&token, &auds), want, "{token}");
        }
        // Without configured audiences, the apiserver's own apply: any
        // well-formed token is a candidate.
        assert_eq!(candidate(&jwt(h, r#"{"aud":"x"}"#), &[]), Ok(()));
        assert_eq!(candidate("garbage", &[]), Err(Refusal::NotJwt));
    }
}
