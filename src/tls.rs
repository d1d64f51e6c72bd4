//! rustls helpers: PEM loading, server configs for TLS listeners, and
//! HTTPS clients that trust a given CA bundle.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Errors loading TLS material. Messages name the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate found")]
    NoCertificate { path: String },
    #[error("{path}: no PEM private key found")]
    NoKey { path: String },
    #[error("{what}: {source}")]
    Rustls {
        what: &'static str,
        source: rustls::Error,
    },
    #[error("https client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Reads every certificate in a PEM bundle.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })?;
    certs_from_pem(&pem).ok_or_else(|| TlsError::NoCertificate {
        path: path.display().to_string(),
    })
}

/// Parses every certificate in a PEM buffer; `None` when there is none.
pub fn certs_from_pem(pem: &[u8]) -> Option<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect();
    (!certs.is_empty()).then_some(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })?;
    key_from_pem(&pem).ok_or_else(|| TlsError::NoKey {
        path: path.display().to_string(),
    })
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM buffer.
pub fn key_from_pem(pem: &[u8]) -> Option<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem).ok()
}

/// A TLS server config offering HTTP/2 and HTTP/1.1 over ALPN.
pub fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|source| TlsError::Rustls {
            what: "server certificate",
            source,
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
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
