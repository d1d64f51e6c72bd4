//! The verification rules as one table: tokens built here, signed with a
//! P-256 key generated here, judged at a fixed instant. Where the apiserver
//! (go-oidc v2 behind `--oidc-*` and `AuthenticationConfiguration`) is
//! the model, the row says what it does.

use std::collections::HashMap;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use super::*;

const NOW: i64 = 1_700_000_000;
const ISSUER: &str = "https://idp.example.com";
/// A second trusted issuer, configured with a trailing slash.
const SLASHED_ISSUER: &str = "https://slashed.example.com/";
const AUDIENCE: &str = "kube";
const KID: &str = "key-1";

/// A P-256 signing key and its public JWK.
struct Signer {
    key: EncodingKey,
    public: Vec<u8>,
}

impl Signer {
    fn generate() -> Signer {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        Signer {
            key: EncodingKey::from_ec_der(pkcs8.as_ref()),
            public: pair.public_key().as_ref().to_vec(),
        }
    }

    fn verifying_key(&self, kid: &str) -> VerifyingKey {
        // Uncompressed SEC1 point: 0x04, x, y.
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&self.public[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&self.public[33..65]),
        });
        VerifyingKey::from_jwk(&jwk).unwrap().unwrap()
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        compact(header, claims, &self.key, Algorithm::ES256)
    }
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

fn compact(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).unwrap();
    format!("{input}.{sig}")
}

/// Valid claims for [`ISSUER`] at [`NOW`], with `patch` applied (`null`
/// removes a claim).
fn claims(patch: Value) -> Value {
    let mut c = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "alice",
        "iat": NOW, "nbf": NOW, "exp": NOW + 600,
    });
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn es256() -> Value {
    json!({"alg": "ES256", "typ": "JWT", "kid": KID})
}

/// The authorizer's path without key fetching: parse, select the trusted
/// issuer by `iss`, check the signature, then the registered claims
/// against that issuer's audiences.
fn verify(token: &str, keys: &[VerifyingKey]) -> Result<i64, DenyReason> {
    let trusted: HashMap<String, Vec<String>> = HashMap::from([
        (ISSUER.to_owned(), vec![AUDIENCE.to_owned()]),
        (
            SLASHED_ISSUER.to_owned(),
            vec!["other".to_owned(), AUDIENCE.to_owned()],
        ),
    ]);
    let parsed = parse(token)?;
    let audiences = parsed.select_issuer(&trusted)?;
    parsed.verify_signature(keys)?;
    check_registered_claims(&parsed.claims, audiences, NOW)
}

#[test]
fn verification_table() {
    use DenyReason::*;
    let signer = Signer::generate();
    let keys = [signer.verifying_key(KID)];
    let signed = |patch: Value| signer.sign(&es256(), &claims(patch));
    let with_header = |header: Value| signer.sign(&header, &claims(json!({})));
    // HMAC keyed with the issuer's public key: the classic confusion
    // attack on verifiers that let the token choose the algorithm.
    let hmac = |alg: Algorithm, name: &str| {
        compact(
            &json!({"alg": name, "kid": KID}),
            &claims(json!({})),
            &EncodingKey::from_secret(&signer.public),
            alg,
        )
    };
    let good = signed(json!({}));
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(&claims(json!({"sub": "mallory"}))),
        parts[2]
    );
    let other_key = Signer::generate().sign(&es256(), &claims(json!({})));

    let cases: Vec<(&str, String, Result<(), DenyReason>)> = vec![
        ("valid", good.clone(), Ok(())),
        // Header: refused before any key is consulted.
        (
            "alg none, no signature",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none"})),
                b64(&claims(json!({})))
            ),
            Err(AlgorithmRefused),
        ),
        (
            "alg none with a signature",
            format!("{}.{}.{}", b64(&json!({"alg": "none"})), parts[1], parts[2]),
            Err(AlgorithmRefused),
        ),
        (
            "HS256 keyed with the public key",
            hmac(Algorithm::HS256, "HS256"),
            Err(AlgorithmRefused),
        ),
        (
            "HS384 keyed with the public key",
            hmac(Algorithm::HS384, "HS384"),
            Err(AlgorithmRefused),
        ),
        (
            "HS512 keyed with the public key",
            hmac(Algorithm::HS512, "HS512"),
            Err(AlgorithmRefused),
        ),
        (
            "alg missing",
            with_header(json!({"kid": KID})),
            Err(MalformedToken),
        ),
        (
            "crit names an extension",
            with_header(json!({"alg": "ES256", "kid": KID, "crit": ["exp"]})),
            Err(MalformedToken),
        ),
        (
            "kid not a string",
            with_header(json!({"alg": "ES256", "kid": 1})),
            Err(MalformedToken),
        ),
        (
            "two segments",
            format!("{}.{}", parts[0], parts[1]),
            Err(MalformedToken),
        ),
        (
            "empty signature",
            format!("{}.{}.", parts[0], parts[1]),
            Err(MalformedToken),
        ),
        (
            "not base64url",
            format!("{}.{}!.{}", parts[0], parts[1], parts[2]),
            Err(MalformedToken),
        ),
        // Signature.
        ("tampered payload", tampered, Err(BadSignature)),
        ("another key, same kid", other_key, Err(BadSignature)),
        (
            "unknown kid",
            with_header(json!({"alg": "ES256", "kid": "key-2"})),
            Err(UnknownKey),
        ),
        (
            "no kid: every fitting key",
            with_header(json!({"alg": "ES256"})),
            Ok(()),
        ),
        (
            "algorithm the key does not fit",
            with_header(json!({"alg": "ES384", "kid": KID})),
            Err(UnknownKey),
        ),
        // exp: required, no leeway. go-oidc refuses once exp is before
        // now; with whole seconds that is exp <= now.
        ("exp missing", signed(json!({"exp": null})), Err(Expired)),
        (
            "exp a second ago",
            signed(json!({"exp": NOW - 1})),
            Err(Expired),
        ),
        ("exp == now", signed(json!({"exp": NOW})), Err(Expired)),
        (
            "exp a second ahead",
            signed(json!({"exp": NOW + 1})),
            Ok(()),
        ),
        (
            "exp as string",
            signed(json!({"exp": (NOW + 600).to_string()})),
            Err(InvalidClaim),
        ),
        // nbf: 60 s of leeway, as go-oidc v2 gives the apiserver.
        ("nbf now + 59", signed(json!({"nbf": NOW + 59})), Ok(())),
        ("nbf now + 60", signed(json!({"nbf": NOW + 60})), Ok(())),
        (
            "nbf now + 61",
            signed(json!({"nbf": NOW + 61})),
            Err(NotYetValid),
        ),
        ("nbf missing", signed(json!({"nbf": null})), Ok(())),
        (
            "nbf as string",
            signed(json!({"nbf": "soon"})),
            Err(InvalidClaim),
        ),
        // iat: typed, never compared with the clock.
        (
            "iat an hour ahead",
            signed(json!({"iat": NOW + 3600})),
            Ok(()),
        ),
        ("iat missing", signed(json!({"iat": null})), Ok(())),
        (
            "iat as string",
            signed(json!({"iat": "yesterday"})),
            Err(InvalidClaim),
        ),
        // aud: a string or a list of strings that contains ours.
        (
            "aud list containing ours",
            signed(json!({"aud": ["x", AUDIENCE]})),
            Ok(()),
        ),
        (
            "aud list without ours",
            signed(json!({"aud": ["x", "y"]})),
            Err(AudienceMismatch),
        ),
        (
            "aud empty list",
            signed(json!({"aud": []})),
            Err(AudienceMismatch),
        ),
        (
            "aud wrong string",
            signed(json!({"aud": "someone-else"})),
            Err(AudienceMismatch),
        ),
        (
            "aud missing",
            signed(json!({"aud": null})),
            Err(AudienceMismatch),
        ),
        ("aud number", signed(json!({"aud": 7})), Err(InvalidClaim)),
        (
            "aud list with a number",
            signed(json!({"aud": [AUDIENCE, 7]})),
            Err(InvalidClaim),
        ),
        // iss: byte-for-byte, no normalisation either way.
        (
            "iss with a trailing slash",
            signed(json!({"iss": format!("{ISSUER}/")})),
            Err(UnknownIssuer),
        ),
        (
            "iss in another case",
            signed(json!({"iss": "https://IDP.example.com"})),
            Err(UnknownIssuer),
        ),
        (
            "iss configured with a slash, sent without",
            signed(json!({"iss": "https://slashed.example.com"})),
            Err(UnknownIssuer),
        ),
        (
            "iss configured with a slash, sent with",
            signed(json!({"iss": SLASHED_ISSUER})),
            Ok(()),
        ),
        (
            "iss missing",
            signed(json!({"iss": null})),
            Err(UnknownIssuer),
        ),
        (
            "iss a number",
            signed(json!({"iss": 42})),
            Err(UnknownIssuer),
        ),
    ];
    for (name, token, want) in cases {
        assert_eq!(verify(&token, &keys).map(|_| ()), want, "{name}");
    }
    assert_eq!(verify(&good, &keys), Ok(NOW + 600), "returns exp");
}

#[test]
fn oversized_tokens_are_refused_unparsed() {
    let huge = format!("{}.{}.x", "a".repeat(MAX_TOKEN_BYTES), "b");
    assert_eq!(parse(&huge).map(|_| ()), Err(DenyReason::MalformedToken));
}

/// Registered claims decode into go-oidc's typed `idToken`: a wrong JSON
/// type fails the token, `null` is the zero value (and, for the pointer
/// `nbf`, no value at all).
#[test]
fn registered_claims_have_go_oidc_types() {
    use DenyReason::*;
    let base = json!({"aud": AUDIENCE, "sub": "alice", "exp": NOW + 600, "iat": NOW});
    let with = |k: &str, v: Value| {
        let mut c = base.as_object().unwrap().clone();
        c.insert(k.to_owned(), v);
        c
    };
    type Row = (&'static str, Map<String, Value>, Result<i64, DenyReason>);
    let table: Vec<Row> = vec![
        (
            "as issued",
            base.as_object().unwrap().clone(),
            Ok(NOW + 600),
        ),
        ("numeric sub", with("sub", json!(42)), Err(InvalidClaim)),
        ("list sub", with("sub", json!(["alice"])), Err(InvalidClaim)),
        ("null sub", with("sub", Value::Null), Ok(NOW + 600)),
        ("numeric nonce", with("nonce", json!(1)), Err(InvalidClaim)),
        (
            "object at_hash",
            with("at_hash", json!({})),
            Err(InvalidClaim),
        ),
        (
            "null nbf is no nbf",
            with("nbf", Value::Null),
            Ok(NOW + 600),
        ),
        ("string nbf", with("nbf", json!("0")), Err(InvalidClaim)),
        ("null iat", with("iat", Value::Null), Err(InvalidClaim)),
        ("null exp", with("exp", Value::Null), Err(InvalidClaim)),
        (
            "string exp",
            with("exp", json!("9999999999")),
            Err(InvalidClaim),
        ),
    ];
    for (name, c, want) in table {
        assert_eq!(
            check_registered_claims(&c, &[AUDIENCE.to_owned()], NOW),
            want,
            "{name}"
        );
    }
}
