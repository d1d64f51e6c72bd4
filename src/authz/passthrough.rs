//! Token passthrough: a token that is not one of ours may still be a
//! Kubernetes token (a service account's, say). With passthrough on, it is
//! checked with a TokenReview and, if the apiserver accepts it, forwarded
//! unchanged, without impersonation.

use std::time::Duration;

use moka::sync::Cache;
use serde_json::{Value, json};

use super::cache::{TokenHash, token_hash};
use super::config::PassthroughConfig;
use super::error::DenyReason;
use super::upstream_token::UpstreamToken;

/// How long a review's answer (yes or no) is reused, like the apiserver's
/// webhook token cache.
const REVIEW_TTL: Duration = Duration::from_secs(10);
const REVIEW_CACHE_ENTRIES: u64 = 10_000;
const REVIEW_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs TokenReviews against the apiserver.
pub struct TokenReviewer {
    client: reqwest::Client,
    url: String,
    audiences: Vec<String>,
    upstream: UpstreamToken,
    answers: Cache<TokenHash, Option<String>>,
}

impl TokenReviewer {
    pub fn new(cfg: &PassthroughConfig, upstream: UpstreamToken) -> Result<Self, String> {
        let ca = std::fs::read(&cfg.apiserver_ca_file).map_err(|e| {
            format!(
                "--apiserver-ca-file {}: {e}",
                cfg.apiserver_ca_file.display()
            )
        })?;
        let client = crate::tls::https_client(Some(&ca), REVIEW_TIMEOUT)
            .map_err(|e| format!("--apiserver-ca-file: {e}"))?;
        Ok(TokenReviewer {
            client,
            url: format!(
                "{}/apis/authentication.k8s.io/v1/tokenreviews",
                cfg.apiserver_url
            ),
            audiences: cfg.audiences.clone(),
            upstream,
            answers: Cache::builder()
                .max_capacity(REVIEW_CACHE_ENTRIES)
                .time_to_live(REVIEW_TTL)
                .build(),
        })
    }

    /// The username the apiserver authenticates `token` as.
    pub async fn review(&self, token: &str) -> Result<String, DenyReason> {
        let key = token_hash(token);
        if let Some(answer) = self.answers.get(&key) {
            return answer.ok_or(DenyReason::PassthroughRejected);
        }
        let body = json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": self.audiences},
        });
        let resp = self
            .client
            .post(&self.url)
            .bearer_auth(&*self.upstream.current())
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "token review request failed");
                DenyReason::PassthroughUnavailable
            })?;
        if !resp.status().is_success() {
            tracing::warn!(status = resp.status().as_u16(), "token review refused");
            return Err(DenyReason::PassthroughUnavailable);
        }
        let review: Value = resp
            .json()
            .await
            .map_err(|_| DenyReason::PassthroughUnavailable)?;
        let status = &review["status"];
        let authenticated = status["authenticated"].as_bool() == Some(true);
        let audience_ok = self.audiences.is_empty()
            || status["audiences"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| self.audiences.iter().any(|w| x == w)));
        let answer = match status["user"]["username"].as_str() {
            Some(user) if authenticated && audience_ok => Some(user.to_owned()),
            _ => None,
        };
        self.answers.insert(key, answer.clone());
        answer.ok_or(DenyReason::PassthroughRejected)
    }
}
