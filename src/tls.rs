//! TLS as a client (OIDC discovery and JWKS, TokenReview, the CSE API),
//! trusting a given CA bundle. Clients' TLS ends at Envoy; the product
//! serves TLS only on a gRPC listener that leaves loopback
//! ([`crate::tls_listener`]).

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Why an HTTPS client cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("https client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Parses every certificate in a PEM buffer; `None` when there is none.
pub fn certs_from_pem(pem: &[u8]) -> Option<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect();
    (!certs.is_empty()).then_some(certs)
}

/// Redirects followed at most, as reqwest's default policy.
const MAX_REDIRECTS: usize = 10;

/// Follows redirects, but never from `https` to `http`: a key set or a
/// TokenReview answer fetched in clear could be swapped by anyone on the
/// path, so such a redirect ends the request with an error.
fn no_downgrade_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let downgrade = attempt.url().scheme() != "https"
            && attempt.previous().iter().any(|u| u.scheme() == "https");
        if downgrade {
            let to = attempt.url().scheme().to_owned();
            attempt.error(format!("redirect from https to {to} refused"))
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else {
            attempt.follow()
        }
    })
}

/// Whether `url` names this host by a loopback IP address or `localhost`;
/// plain HTTP to it does not cross a network.
pub fn is_loopback_url(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An HTTPS client. With `ca_pem`, only those authorities are trusted (as
/// the apiserver's `--oidc-ca-file`); without, the platform's roots. It
/// follows redirects except from `https` to `http`.
pub fn https_client(
    ca_pem: Option<&[u8]>,
    timeout: std::time::Duration,
) -> Result<reqwest::Client, TlsError> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(no_downgrade_redirects())
        .user_agent(concat!("kube-oidc-authz/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)?;
        builder = builder.tls_certs_only(certs);
    }
    Ok(builder.build()?)
}
