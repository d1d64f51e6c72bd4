//! TLS as the product uses it: as a client only (OIDC discovery and JWKS,
//! TokenReview, the CSE API), trusting a given CA bundle. The product serves
//! no TLS itself; Envoy terminates it.

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

/// An HTTPS client. With `ca_pem`, only those authorities are trusted (as
/// the apiserver's `--oidc-ca-file`); without, the platform's roots.
pub fn https_client(
    ca_pem: Option<&[u8]>,
    timeout: std::time::Duration,
) -> Result<reqwest::Client, TlsError> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("kube-oidc-authz/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)?;
        builder = builder.tls_certs_only(certs);
    }
    Ok(builder.build()?)
}
