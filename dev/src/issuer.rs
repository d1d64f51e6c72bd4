//! A development OIDC issuer: discovery and JWKS over HTTPS, plus endpoints
//! that mint tokens with chosen claims and rotate the signing key. It backs
//! the demo and the tests; it has no authentication and must never face a
//! network anyone else can reach.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;

use super::certs::{DevCa, write_pem};
use kube_oidc_authz::authz::verify::SigningAlg;
use kube_oidc_authz::error::RunError;

/// Flags of `kube-oidc-dev dev-issuer`.
#[derive(Debug, Clone, clap::Args)]
pub struct IssuerArgs {
    /// Address to serve HTTPS on.
    #[arg(long, default_value = "127.0.0.1:5556")]
    pub listen: SocketAddr,
    /// Folder for the CA, serving certificate, signing key and alice.token;
    /// files that exist are reused.
    #[arg(long, default_value = ".demo/issuer")]
    pub dir: PathBuf,
    /// Issuer URL put in tokens; defaults to https://<listen>.
    #[arg(long)]
    pub issuer_url: Option<String>,
    /// `aud` of minted tokens.
    #[arg(long, default_value = "kube-oidc-authz")]
    pub audience: String,
}

/// Default roles of the demo user: one bound to a namespaced pod reader,
/// one bound to no resource (it may only impersonate bob), so that the demo
/// shows both an allowed and a forbidden request.
pub const DEMO_ROLES: [&str; 2] = ["any-employee-personal-device", "developers"];

/// Lifetime of tokens minted without `ttl_seconds`.
pub const DEFAULT_TTL_SECS: i64 = 12 * 3600;

enum Signer {
    Jwt(EncodingKey, Algorithm),
    P521(aws_lc_rs::signature::EcdsaKeyPair),
}

struct Key {
    kid: String,
    alg: SigningAlg,
    signer: Signer,
    jwk: Value,
}

/// The issuer's state; clones share it.
#[derive(Clone)]
pub struct DevIssuer {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    audience: String,
    alg: SigningAlg,
    keys: RwLock<Vec<Arc<Key>>>,
    generation: AtomicU64,
    jwks_requests: AtomicU64,
    discovery_requests: AtomicU64,
}

impl DevIssuer {
    /// An issuer signing with a fresh key of `alg`.
    pub fn new(url: &str, audience: &str, alg: SigningAlg) -> anyhow::Result<Self> {
        let key = generate_key(alg, "key-1", None)?;
        Ok(Self::with_key(url, audience, key))
    }

    /// An RS256 issuer whose key is read from (or created at) a PKCS#8 PEM.
    pub fn with_rsa_pem(url: &str, audience: &str, pem: &str) -> anyhow::Result<Self> {
        let key = generate_key(SigningAlg::RS256, "key-1", Some(pem))?;
        Ok(Self::with_key(url, audience, key))
    }

    fn with_key(url: &str, audience: &str, key: Key) -> Self {
        DevIssuer {
            inner: Arc::new(Inner {
                url: url.to_owned(),
                audience: audience.to_owned(),
                alg: key.alg,
                keys: RwLock::new(vec![Arc::new(key)]),
                generation: AtomicU64::new(1),
                jwks_requests: AtomicU64::new(0),
                discovery_requests: AtomicU64::new(0),
            }),
        }
    }

    pub fn url(&self) -> &str {
        &self.inner.url
    }

    fn signing_key(&self) -> anyhow::Result<Arc<Key>> {
        let keys = self
            .inner
            .keys
            .read()
            .map_err(|_| anyhow::anyhow!("key lock poisoned"))?;
        keys.last().cloned().context("no signing key")
    }

    /// The claims of a default token for the demo user, valid now.
    pub fn default_claims(&self) -> Map<String, Value> {
        let now = kube_oidc_authz::authz::now_unix();
        let claims = json!({
            "iss": self.inner.url,
            "aud": self.inner.audience,
            "sub": "alice",
            "email": "alice@example.com",
            "email_verified": true,
            "roles": DEMO_ROLES,
            "iat": now,
            "nbf": now,
            "exp": now + DEFAULT_TTL_SECS,
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        match claims {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    /// Mints a token: `overrides` are merged over the default claims; a
    /// `null` removes a claim; `ttl_seconds` sets `exp` relative to now.
    pub fn mint(&self, overrides: &Map<String, Value>) -> anyhow::Result<String> {
        let mut claims = self.default_claims();
        for (k, v) in overrides {
            if k == "ttl_seconds" {
                let ttl = v.as_i64().context("ttl_seconds must be an integer")?;
                claims.insert(
                    "exp".into(),
                    json!(kube_oidc_authz::authz::now_unix() + ttl),
                );
            } else if v.is_null() {
                claims.remove(k);
            } else {
                claims.insert(k.clone(), v.clone());
            }
        }
        let key = self.signing_key()?;
        let header = json!({"alg": key.alg.as_str(), "typ": "JWT", "kid": key.kid});
        self.sign(&header, &Value::Object(claims))
    }

    /// Signs any header and claims with the current key, for tests that
    /// need malformed or hostile tokens. The header's `alg` is not checked.
    pub fn sign(&self, header: &Value, claims: &Value) -> anyhow::Result<String> {
        let key = self.signing_key()?;
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(header)?),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?)
        );
        let sig = match &key.signer {
            Signer::Jwt(k, alg) => jsonwebtoken::crypto::sign(input.as_bytes(), k, *alg)?,
            Signer::P521(pair) => {
                let rng = aws_lc_rs::rand::SystemRandom::new();
                let sig = pair
                    .sign(&rng, input.as_bytes())
                    .map_err(|_| anyhow::anyhow!("P-521 signing failed"))?;
                URL_SAFE_NO_PAD.encode(sig.as_ref())
            }
        };
        Ok(format!("{input}.{sig}"))
    }

    /// The current signing key's id.
    pub fn current_kid(&self) -> anyhow::Result<String> {
        Ok(self.signing_key()?.kid.clone())
    }

    /// The JWKS document served at `/keys`.
    pub fn jwks(&self) -> Value {
        let keys = match self.inner.keys.read() {
            Ok(k) => k.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>(),
            Err(_) => Vec::new(),
        };
        json!({ "keys": keys })
    }

    /// The published keys as the authz service loads them, for
    /// verifying this issuer's tokens in-process.
    pub fn verifying_keys(
        &self,
    ) -> anyhow::Result<Vec<kube_oidc_authz::authz::verify::VerifyingKey>> {
        let jwks = self.jwks();
        let mut out = Vec::new();
        for jwk in jwks["keys"].as_array().into_iter().flatten() {
            if let Some(key) = kube_oidc_authz::authz::verify::VerifyingKey::from_jwk(jwk)
                .map_err(anyhow::Error::msg)?
            {
                out.push(key);
            }
        }
        Ok(out)
    }

    /// Starts signing with a new key; the old one stays published unless
    /// `drop_old`.
    pub fn rotate(&self, drop_old: bool) -> anyhow::Result<String> {
        let generation = self.inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let kid = format!("key-{generation}");
        let key = Arc::new(generate_key(self.inner.alg, &kid, None)?);
        let mut keys = self
            .inner
            .keys
            .write()
            .map_err(|_| anyhow::anyhow!("key lock poisoned"))?;
        if drop_old {
            keys.clear();
        }
        keys.push(key);
        Ok(kid)
    }

    pub fn jwks_requests(&self) -> u64 {
        self.inner.jwks_requests.load(Ordering::Relaxed)
    }

    /// The issuer's HTTP routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/keys", get(keys))
            .route("/dev/token", post(token))
            .route("/dev/rotate", post(rotate))
            .route("/dev/stats", get(stats))
            .with_state(self.clone())
    }
}

async fn discovery(State(issuer): State<DevIssuer>) -> Json<Value> {
    issuer
        .inner
        .discovery_requests
        .fetch_add(1, Ordering::Relaxed);
    let url = &issuer.inner.url;
    Json(json!({
        "issuer": url,
        "jwks_uri": format!("{url}/keys"),
        "authorization_endpoint": format!("{url}/auth"),
        "token_endpoint": format!("{url}/token"),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [issuer.inner.alg.as_str()],
    }))
}

async fn keys(State(issuer): State<DevIssuer>) -> Json<Value> {
    issuer.inner.jwks_requests.fetch_add(1, Ordering::Relaxed);
    Json(issuer.jwks())
}

async fn token(
    State(issuer): State<DevIssuer>,
    body: Option<Json<Map<String, Value>>>,
) -> impl IntoResponse {
    let overrides = body.map(|Json(m)| m).unwrap_or_default();
    match issuer.mint(&overrides) {
        Ok(t) => (StatusCode::OK, Json(json!({ "token": t }))),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": e.to_string() })),
        ),
    }
}

#[derive(serde::Deserialize)]
struct RotateQuery {
    #[serde(default)]
    drop_old: bool,
}

async fn rotate(
    State(issuer): State<DevIssuer>,
    Query(q): Query<RotateQuery>,
) -> impl IntoResponse {
    match issuer.rotate(q.drop_old) {
        Ok(kid) => (StatusCode::OK, Json(json!({ "kid": kid }))),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "error": e.to_string() })),
        ),
    }
}

async fn stats(State(issuer): State<DevIssuer>) -> Json<Value> {
    Json(json!({
        "jwks_requests": issuer.inner.jwks_requests.load(Ordering::Relaxed),
        "discovery_requests": issuer.inner.discovery_requests.load(Ordering::Relaxed),
    }))
}

fn generate_key(alg: SigningAlg, kid: &str, rsa_pem: Option<&str>) -> anyhow::Result<Key> {
    use rcgen::{KeyPair, RsaKeySize};
    let jwt = |key: EncodingKey, jalg: Algorithm| -> anyhow::Result<Key> {
        let mut jwk = serde_json::to_value(jsonwebtoken::jwk::Jwk::from_encoding_key(&key, jalg)?)?;
        jwk["kid"] = json!(kid);
        jwk["alg"] = json!(alg.as_str());
        jwk["use"] = json!("sig");
        Ok(Key {
            kid: kid.to_owned(),
            alg,
            signer: Signer::Jwt(key, jalg),
            jwk,
        })
    };
    match alg {
        SigningAlg::RS256
        | SigningAlg::RS384
        | SigningAlg::RS512
        | SigningAlg::PS256
        | SigningAlg::PS384
        | SigningAlg::PS512 => {
            let pem = match rsa_pem {
                Some(p) => p.to_owned(),
                None => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048)?
                    .serialize_pem(),
            };
            let jalg = match alg {
                SigningAlg::RS256 => Algorithm::RS256,
                SigningAlg::RS384 => Algorithm::RS384,
                SigningAlg::RS512 => Algorithm::RS512,
                SigningAlg::PS256 => Algorithm::PS256,
                SigningAlg::PS384 => Algorithm::PS384,
                _ => Algorithm::PS512,
            };
            jwt(EncodingKey::from_rsa_pem(pem.as_bytes())?, jalg)
        }
        SigningAlg::ES256 => {
            let pem = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?.serialize_pem();
            jwt(EncodingKey::from_ec_pem(pem.as_bytes())?, Algorithm::ES256)
        }
        SigningAlg::ES384 => {
            let pem = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)?.serialize_pem();
            jwt(EncodingKey::from_ec_pem(pem.as_bytes())?, Algorithm::ES384)
        }
        SigningAlg::EdDSA => {
            use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
            let rng = aws_lc_rs::rand::SystemRandom::new();
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| anyhow::anyhow!("Ed25519 key generation failed"))?;
            let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
                .map_err(|_| anyhow::anyhow!("Ed25519 key parsing failed"))?;
            let jwk = json!({
                "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            });
            Ok(Key {
                kid: kid.to_owned(),
                alg,
                signer: Signer::Jwt(EncodingKey::from_ed_der(pkcs8.as_ref()), Algorithm::EdDSA),
                jwk,
            })
        }
        SigningAlg::ES512 => {
            use aws_lc_rs::signature::{
                ECDSA_P521_SHA512_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
            };
            let pair = EcdsaKeyPair::generate(&ECDSA_P521_SHA512_FIXED_SIGNING)
                .map_err(|_| anyhow::anyhow!("P-521 key generation failed"))?;
            let point = pair.public_key().as_ref().to_vec();
            anyhow::ensure!(point.len() == 133, "unexpected P-521 public key encoding");
            let jwk = json!({
                "kty": "EC", "crv": "P-521", "use": "sig", "alg": "ES512", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(&point[1..67]),
                "y": URL_SAFE_NO_PAD.encode(&point[67..]),
            });
            Ok(Key {
                kid: kid.to_owned(),
                alg,
                signer: Signer::P521(pair),
                jwk,
            })
        }
    }
}

/// Files the CLI issuer leaves in its folder.
pub struct IssuerFiles {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Creates (or reuses) the issuer's CA and serving certificate in `dir`.
pub fn ensure_tls_files(dir: &std::path::Path) -> anyhow::Result<IssuerFiles> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let (ca, crt, key) = (
        dir.join("ca.crt"),
        dir.join("issuer.crt"),
        dir.join("issuer.key"),
    );
    if ca.exists() && crt.exists() && key.exists() {
        return Ok(IssuerFiles {
            ca_pem: std::fs::read_to_string(&ca)?,
            cert_pem: std::fs::read_to_string(&crt)?,
            key_pem: std::fs::read_to_string(&key)?,
        });
    }
    let dev_ca = DevCa::generate("kube-oidc-authz dev issuer CA")?;
    let leaf = dev_ca.issue(
        "kube-oidc-authz dev issuer",
        &["127.0.0.1", "localhost", "::1"],
    )?;
    write_pem(&ca, dev_ca.cert_pem(), false)?;
    write_pem(&crt, &leaf.cert_pem, false)?;
    write_pem(&key, &leaf.key_pem, true)?;
    Ok(IssuerFiles {
        ca_pem: dev_ca.cert_pem().to_owned(),
        cert_pem: leaf.cert_pem,
        key_pem: leaf.key_pem,
    })
}

/// Runs the issuer until `shutdown` completes.
pub async fn run(
    args: IssuerArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let files = ensure_tls_files(&args.dir)?;
    let key_path = args.dir.join("signing-key.pem");
    let pem = match std::fs::read_to_string(&key_path) {
        Ok(p) => p,
        Err(_) => {
            let p =
                rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                    .context("generate signing key")?
                    .serialize_pem();
            write_pem(&key_path, &p, true).context("write signing key")?;
            p
        }
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("bind --listen {}", args.listen))?;
    let addr = listener.local_addr().context("local address")?;
    let url = args
        .issuer_url
        .clone()
        .unwrap_or_else(|| format!("https://{addr}"));
    let issuer = DevIssuer::with_rsa_pem(&url, &args.audience, &pem)?;
    let token = issuer.mint(&Map::new())?;
    std::fs::write(args.dir.join("alice.token"), &token).context("write alice.token")?;

    let tls = super::https::server_config(files.cert_pem.as_bytes(), files.key_pem.as_bytes())
        .context("issuer tls")?;
    tracing::info!(issuer = %url, address = %addr, "development issuer listening");
    super::https::serve_https(listener, tls, issuer.router(), shutdown)
        .await
        .context("serve")?;
    Ok(())
}
