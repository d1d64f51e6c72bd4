//! Service-account tokens of the stand-in cluster and
//! `POST /apis/authentication.k8s.io/v1/tokenreviews`, as the apiserver's
//! service-account JWT authenticator and TokenReview storage answer it
//! (k8s.io/kubernetes `pkg/serviceaccount/jwt.go`,
//! `pkg/registry/authentication/tokenreview/storage.go`).
//!
//! The tokens are JWT-shaped, like every real service-account token, but
//! the stand-in knows them by value: their last segment is a random secret,
//! not a signature anyone checks.

use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::identity::UserInfo;
use super::status::ApiError;

/// The stand-in's `--api-audiences`: its service-account issuer, the
/// apiserver's default. Requests authenticate only with tokens meant for it.
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";
/// The service account of the stand-in's "CI job" tokens.
pub const CI_SERVICE_ACCOUNT: &str = "system:serviceaccount:ci:deployer";
/// The audience of the stand-in's wrong-audience CI token, as
/// `kubectl create token deployer --audience=vault` would mint it.
pub const OTHER_AUDIENCE: &str = "vault";

/// A token the stand-in issued, who it stands for and its `aud`.
#[derive(Debug, Clone)]
pub struct ServiceAccountToken {
    pub token: String,
    pub user: UserInfo,
    pub audiences: Vec<String>,
}

impl ServiceAccountToken {
    /// A new JWT-shaped token for `user` with `audiences`.
    pub fn mint(user: UserInfo, audiences: &[&str]) -> Self {
        let header = json!({"alg": "RS256", "kid": "stand-in"});
        let claims = json!({
            "iss": API_AUDIENCE,
            "sub": user.username,
            "aud": audiences,
            "iat": 1_700_000_000_u64,
            "exp": 4_102_444_800_u64,
        });
        let secret: [u8; 32] = rand::random();
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            URL_SAFE_NO_PAD.encode(secret),
        );
        ServiceAccountToken {
            token,
            user,
            audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    /// The token's audiences that are also in `wanted`, in `wanted`'s order
    /// (`Audiences.Intersect`).
    fn audiences_in(&self, wanted: &[String]) -> Vec<String> {
        wanted
            .iter()
            .filter(|w| self.audiences.contains(w))
            .cloned()
            .collect()
    }
}

/// The issued token equal to `presented` (compared in constant time).
pub fn find<'t>(
    tokens: &'t [ServiceAccountToken],
    presented: &[u8],
) -> Option<&'t ServiceAccountToken> {
    tokens
        .iter()
        .find(|t| bool::from(presented.ct_eq(t.token.as_bytes())))
}

/// Whether `presented` authenticates a request: a known token meant for
/// the apiserver itself.
pub fn authenticates<'t>(
    tokens: &'t [ServiceAccountToken],
    presented: &[u8],
) -> Option<&'t UserInfo> {
    find(tokens, presented)
        .filter(|t| !t.audiences_in(&[API_AUDIENCE.to_owned()]).is_empty())
        .map(|t| &t.user)
}

/// Answers a TokenReview. Authentication failures are not errors: the
/// review is created with `authenticated: false` (and `error` when the
/// authenticator gave one). Without `spec.audiences`, the apiserver's own
/// audiences are asked for.
pub fn create(tokens: &[ServiceAccountToken], body: &[u8]) -> Result<Response, ApiError> {
    let review: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(&format!("invalid TokenReview: {e}")))?;
    let token = review["spec"]["token"].as_str().unwrap_or("");
    if token.is_empty() {
        return Err(ApiError::bad_request(
            "token is required for TokenReview in authentication",
        ));
    }
    let requested: Vec<String> = match review["spec"]["audiences"].as_array() {
        Some(a) if !a.is_empty() => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => vec![API_AUDIENCE.to_owned()],
    };
    let status = match find(tokens, token.as_bytes()) {
        None => json!({"user": {}, "authenticated": false, "error": "invalid bearer token"}),
        Some(t) => {
            let audiences = t.audiences_in(&requested);
            if audiences.is_empty() {
                json!({
                    "user": {},
                    "authenticated": false,
                    "error": format!(
                        "[invalid bearer token, token audiences {:?} is invalid for the target audiences {:?}]",
                        t.audiences, requested
                    ),
                })
            } else {
                json!({"authenticated": true, "user": t.user, "audiences": audiences})
            }
        }
    };
    let mut answer = json!({
        "kind": "TokenReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": review["spec"].clone(),
        "status": status,
    });
    // The token is not echoed back.
    answer["spec"]["token"] = Value::Null;
    Ok(super::resources::json_response(
        StatusCode::CREATED,
        &answer,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(aud: &[&str]) -> ServiceAccountToken {
        ServiceAccountToken::mint(UserInfo::service_account(CI_SERVICE_ACCOUNT, "u"), aud)
    }

    #[test]
    fn minted_tokens_are_three_base64url_json_segments() {
        let t = sa(&[API_AUDIENCE]);
        let parts: Vec<&str> = t.token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["aud"], json!([API_AUDIENCE]));
        assert_eq!(claims["sub"], CI_SERVICE_ACCOUNT);
    }

    #[test]
    fn only_tokens_for_the_apiserver_authenticate_requests() {
        let tokens = vec![sa(&[API_AUDIENCE]), sa(&[OTHER_AUDIENCE])];
        assert!(authenticates(&tokens, tokens[0].token.as_bytes()).is_some());
        assert!(authenticates(&tokens, tokens[1].token.as_bytes()).is_none());
        assert!(authenticates(&tokens, b"x.y.z").is_none());
    }
}
