//! The one HTTPS client to the apiserver, shared by the reviews the
//! service asks for (TokenReview for passthrough, SubjectAccessReview for
//! end-user impersonation): the cluster CA, the proxy's own
//! service-account token (re-read as it rotates), one connection pool.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::upstream_token::UpstreamToken;

/// Timeout of one request, whatever deadline the caller sets around it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest response body read.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Why a create did not produce a body to read. Each is an outage of the
/// dependency, never an answer about the caller.
#[derive(Debug, thiserror::Error)]
pub enum ApiserverError {
    #[error("request failed: {0}")]
    Request(#[from] reqwest::Error),
    #[error("status {0}")]
    Status(u16),
    #[error("response larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
    #[error("response is not JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Creates objects on the apiserver as the proxy.
#[derive(Clone)]
pub struct ApiserverClient {
    client: reqwest::Client,
    url: String,
    upstream: UpstreamToken,
}

impl ApiserverClient {
    /// A client for `url` (no trailing slash needed) trusting the CA bundle
    /// in `ca_file`.
    pub fn new(url: &str, ca_file: &Path, upstream: UpstreamToken) -> Result<Self, String> {
        let ca = std::fs::read(ca_file)
            .map_err(|e| format!("--apiserver-ca-file {}: {e}", ca_file.display()))?;
        let client = crate::tls::https_client(Some(&ca), REQUEST_TIMEOUT)
            .map_err(|e| format!("--apiserver-ca-file: {e}"))?;
        Ok(ApiserverClient {
            client,
            url: url.trim_end_matches('/').to_owned(),
            upstream,
        })
    }

    /// `POST <path>` with `body`; the created object on a 2xx answer.
    pub async fn create(&self, path: &str, body: &Value) -> Result<Value, ApiserverError> {
        let mut resp = self
            .client
            .post(format!("{}{path}", self.url))
            .bearer_auth(&*self.upstream.current())
            .json(body)
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(ApiserverError::Status(resp.status().as_u16()));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await? {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(ApiserverError::TooLarge);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(serde_json::from_slice(&bytes)?)
    }
}
