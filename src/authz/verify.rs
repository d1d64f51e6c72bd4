//! JWT verification with the apiserver's rules: the header is checked
//! before any key is looked up, the signature before any claim is trusted,
//! and registered claims with the apiserver's leeways.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use super::error::DenyReason;

/// Leeway on `nbf`, as the apiserver allows for clock skew. `exp` has none.
pub const NBF_LEEWAY_SECS: i64 = 60;

/// The asymmetric JWS algorithms the service can verify. HMAC and `none`
/// are not representable: they are refused while parsing the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(clippy::upper_case_acronyms)]
pub enum SigningAlg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    ES512,
    EdDSA,
}

impl SigningAlg {
    pub const ALL: [SigningAlg; 10] = [
        SigningAlg::RS256,
        SigningAlg::RS384,
        SigningAlg::RS512,
        SigningAlg::PS256,
        SigningAlg::PS384,
        SigningAlg::PS512,
        SigningAlg::ES256,
        SigningAlg::ES384,
        SigningAlg::ES512,
        SigningAlg::EdDSA,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::RS256 => "RS256",
            SigningAlg::RS384 => "RS384",
            SigningAlg::RS512 => "RS512",
            SigningAlg::PS256 => "PS256",
            SigningAlg::PS384 => "PS384",
            SigningAlg::PS512 => "PS512",
            SigningAlg::ES256 => "ES256",
            SigningAlg::ES384 => "ES384",
            SigningAlg::ES512 => "ES512",
            SigningAlg::EdDSA => "EdDSA",
        }
    }

    /// The key type and curve this algorithm needs.
    pub fn key_kind(self) -> KeyKind {
        match self {
            SigningAlg::RS256
            | SigningAlg::RS384
            | SigningAlg::RS512
            | SigningAlg::PS256
            | SigningAlg::PS384
            | SigningAlg::PS512 => KeyKind::Rsa,
            SigningAlg::ES256 => KeyKind::P256,
            SigningAlg::ES384 => KeyKind::P384,
            SigningAlg::ES512 => KeyKind::P521,
            SigningAlg::EdDSA => KeyKind::Ed25519,
        }
    }

    fn jsonwebtoken(self) -> Option<Algorithm> {
        Some(match self {
            SigningAlg::RS256 => Algorithm::RS256,
            SigningAlg::RS384 => Algorithm::RS384,
            SigningAlg::RS512 => Algorithm::RS512,
            SigningAlg::PS256 => Algorithm::PS256,
            SigningAlg::PS384 => Algorithm::PS384,
            SigningAlg::PS512 => Algorithm::PS512,
            SigningAlg::ES256 => Algorithm::ES256,
            SigningAlg::ES384 => Algorithm::ES384,
            SigningAlg::EdDSA => Algorithm::EdDSA,
            // jsonwebtoken has no ES512; verified with aws-lc-rs directly.
            SigningAlg::ES512 => return None,
        })
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SigningAlg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SigningAlg::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "{s:?} is not a supported signing algorithm (one of {})",
                    SigningAlg::ALL.map(SigningAlg::as_str).join(", ")
                )
            })
    }
}

/// Key type and curve of a verification key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    P256,
    P384,
    P521,
    Ed25519,
}

/// A public key from a JWKS, ready to verify with.
pub struct VerifyingKey {
    pub kid: Option<String>,
    /// The JWK's `alg`, when it pins one.
    pub alg: Option<SigningAlg>,
    pub kind: KeyKind,
    material: KeyMaterial,
}

enum KeyMaterial {
    Decoding(DecodingKey),
    /// Uncompressed SEC1 point, for ES512.
    P521Point(Vec<u8>),
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// Builds a key from one JWK object. `Ok(None)` for keys this service
    /// does not use (encryption keys, symmetric keys, unknown types), so a
    /// JWKS that also lists those still loads.
    pub fn from_jwk(jwk: &Value) -> Result<Option<VerifyingKey>, String> {
        let field = |name: &str| jwk.get(name).and_then(Value::as_str);
        if field("use").is_some_and(|u| u != "sig") {
            return Ok(None);
        }
        let kid = field("kid").map(str::to_owned);
        let alg = match field("alg") {
            None => None,
            Some(a) => match a.parse::<SigningAlg>() {
                Ok(alg) => Some(alg),
                // A key pinned to an algorithm we never accept is unusable.
                Err(_) => return Ok(None),
            },
        };
        let b64 = |name: &str| -> Result<&str, String> {
            field(name).ok_or_else(|| format!("jwk {kid:?}: missing {name}"))
        };
        let (kind, material) = match field("kty") {
            Some("RSA") => (
                KeyKind::Rsa,
                KeyMaterial::Decoding(
                    DecodingKey::from_rsa_components(b64("n")?, b64("e")?)
                        .map_err(|e| format!("jwk {kid:?}: {e}"))?,
                ),
            ),
            Some("EC") => {
                let (x, y) = (b64("x")?, b64("y")?);
                match field("crv") {
                    Some("P-256") | Some("P-384") => {
                        let kind = if field("crv") == Some("P-256") {
                            KeyKind::P256
                        } else {
                            KeyKind::P384
                        };
                        (
                            kind,
                            KeyMaterial::Decoding(
                                DecodingKey::from_ec_components(x, y)
                                    .map_err(|e| format!("jwk {kid:?}: {e}"))?,
                            ),
                        )
                    }
                    Some("P-521") => {
                        let decode = |s: &str| {
                            URL_SAFE_NO_PAD
                                .decode(s)
                                .map_err(|e| format!("jwk {kid:?}: {e}"))
                        };
                        let (x, y) = (decode(x)?, decode(y)?);
                        if x.len() != 66 || y.len() != 66 {
                            return Err(format!("jwk {kid:?}: P-521 coordinates must be 66 bytes"));
                        }
                        let mut point = Vec::with_capacity(133);
                        point.push(4);
                        point.extend_from_slice(&x);
                        point.extend_from_slice(&y);
                        (KeyKind::P521, KeyMaterial::P521Point(point))
                    }
                    _ => return Ok(None),
                }
            }
            Some("OKP") if field("crv") == Some("Ed25519") => (
                KeyKind::Ed25519,
                KeyMaterial::Decoding(
                    DecodingKey::from_ed_components(b64("x")?)
                        .map_err(|e| format!("jwk {kid:?}: {e}"))?,
                ),
            ),
            _ => return Ok(None),
        };
        if alg.is_some_and(|a| a.key_kind() != kind) {
            return Err(format!("jwk {kid:?}: alg does not fit the key type"));
        }
        Ok(Some(VerifyingKey {
            kid,
            alg,
            kind,
            material,
        }))
    }

    /// Whether a token signed with `alg` may be checked against this key.
    pub fn fits(&self, alg: SigningAlg) -> bool {
        self.kind == alg.key_kind() && self.alg.is_none_or(|a| a == alg)
    }

    fn verify(&self, alg: SigningAlg, signing_input: &[u8], signature_b64: &str) -> bool {
        match (&self.material, alg.jsonwebtoken()) {
            (KeyMaterial::Decoding(key), Some(jwt_alg)) => {
                jsonwebtoken::crypto::verify(signature_b64, signing_input, key, jwt_alg)
                    .unwrap_or(false)
            }
            (KeyMaterial::P521Point(point), None) => {
                let Ok(sig) = URL_SAFE_NO_PAD.decode(signature_b64) else {
                    return false;
                };
                aws_lc_rs::signature::UnparsedPublicKey::new(
                    &aws_lc_rs::signature::ECDSA_P521_SHA512_FIXED,
                    point,
                )
                .verify(signing_input, &sig)
                .is_ok()
            }
            _ => false,
        }
    }
}

/// A token split and decoded, not yet trusted.
#[derive(Debug)]
pub struct ParsedToken<'a> {
    pub alg: SigningAlg,
    pub kid: Option<String>,
    pub claims: Map<String, Value>,
    signing_input: &'a str,
    signature: &'a str,
}

/// Upper bound on a token's length; anything longer is refused unparsed.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Splits a compact JWS and decodes header and payload. Refuses `none`,
/// HMAC and unknown algorithms before any key is consulted.
pub fn parse(token: &str) -> Result<ParsedToken<'_>, DenyReason> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(DenyReason::MalformedToken);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(DenyReason::MalformedToken);
    };
    let header: Map<String, Value> = decode_json(h)?;
    let alg = match header.get("alg").and_then(Value::as_str) {
        Some(a) => a,
        None => return Err(DenyReason::MalformedToken),
    };
    let alg = match alg.parse::<SigningAlg>() {
        Ok(a) => a,
        Err(_) => return Err(DenyReason::AlgorithmRefused),
    };
    if header.get("crit").is_some() {
        // No critical extension is understood, so none may be required.
        return Err(DenyReason::MalformedToken);
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(DenyReason::MalformedToken),
    };
    if s.is_empty() {
        return Err(DenyReason::MalformedToken);
    }
    let claims: Map<String, Value> = decode_json(p)?;
    let signing_input = &token[..h.len() + 1 + p.len()];
    Ok(ParsedToken {
        alg,
        kid,
        claims,
        signing_input,
        signature: s,
    })
}

pub(crate) fn decode_json(segment: &str) -> Result<Map<String, Value>, DenyReason> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| DenyReason::MalformedToken)?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(DenyReason::MalformedToken),
    }
}

impl ParsedToken<'_> {
    /// The `iss` claim, which selects the issuer; it must be a string.
    pub fn issuer(&self) -> Result<&str, DenyReason> {
        match self.claims.get("iss") {
            Some(Value::String(s)) => Ok(s),
            _ => Err(DenyReason::UnknownIssuer),
        }
    }

    /// The trusted issuer whose URL equals `iss` byte for byte, as the
    /// apiserver matches it: no trailing-slash or case folding.
    pub fn select_issuer<'i, I>(
        &self,
        trusted: &'i HashMap<String, I>,
    ) -> Result<&'i I, DenyReason> {
        trusted.get(self.issuer()?).ok_or(DenyReason::UnknownIssuer)
    }

    /// Verifies the signature against the candidate keys: the key with the
    /// token's `kid`, or every fitting key when the token names none.
    pub fn verify_signature<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k VerifyingKey>,
    ) -> Result<(), DenyReason> {
        let mut tried = false;
        for key in keys {
            if !key.fits(self.alg) {
                continue;
            }
            if let Some(kid) = &self.kid
                && key.kid.as_deref() != Some(kid.as_str())
            {
                continue;
            }
            tried = true;
            if key.verify(self.alg, self.signing_input.as_bytes(), self.signature) {
                return Ok(());
            }
        }
        if tried {
            Err(DenyReason::BadSignature)
        } else {
            Err(DenyReason::UnknownKey)
        }
    }
}

/// Checks `aud`, `exp`, `nbf` and `iat` as the apiserver does: `exp` is
/// required and has no leeway, `nbf` has [`NBF_LEEWAY_SECS`], `iat` is not
/// compared with the clock; a registered claim of the wrong type fails the
/// token, as go-oidc's typed decoding does (`sub`, `nonce` and `at_hash`
/// must be strings; a `null` `nbf` is no `nbf`, a `null` `exp` or `iat`
/// fails). Returns `exp`.
pub fn check_registered_claims(
    claims: &Map<String, Value>,
    audiences: &[String],
    now: i64,
) -> Result<i64, DenyReason> {
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => audiences.iter().any(|want| want == a),
        Some(Value::Array(list)) => {
            let mut any = false;
            for a in list {
                let Value::String(a) = a else {
                    return Err(DenyReason::InvalidClaim);
                };
                any |= audiences.iter().any(|want| want == a);
            }
            any
        }
        Some(_) => return Err(DenyReason::InvalidClaim),
        None => false,
    };
    if !aud_ok {
        return Err(DenyReason::AudienceMismatch);
    }
    for name in ["sub", "nonce", "at_hash"] {
        if !matches!(
            claims.get(name),
            None | Some(Value::String(_) | Value::Null)
        ) {
            return Err(DenyReason::InvalidClaim);
        }
    }
    let exp = match claims.get("exp") {
        Some(v) => numeric_date(v)?,
        None => return Err(DenyReason::Expired),
    };
    if now >= exp {
        return Err(DenyReason::Expired);
    }
    if let Some(v) = claims.get("nbf").filter(|v| !v.is_null())
        && now + NBF_LEEWAY_SECS < numeric_date(v)?
    {
        return Err(DenyReason::NotYetValid);
    }
    if let Some(v) = claims.get("iat") {
        numeric_date(v)?;
    }
    Ok(exp)
}

fn numeric_date(v: &Value) -> Result<i64, DenyReason> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .ok_or(DenyReason::InvalidClaim),
        _ => Err(DenyReason::InvalidClaim),
    }
}

#[cfg(test)]
mod tests;
