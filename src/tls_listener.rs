//! Mutual TLS for the gRPC listeners that may face a network: the Check
//! port and the access-log input. A listener that leaves loopback either
//! requires a client certificate signed by a given CA (this module) or is
//! an explicit, NetworkPolicy-backed opt-in.
//!
//! The certificate, key and client CA are files (a Kubernetes Secret
//! volume, cert-manager's output): on a new connection they are checked for
//! changes, at most once per [`RELOAD_INTERVAL`], and a good new set serves
//! that connection and the next ones; a bad one is logged and the old set
//! stays. Handshakes run
//! off the accept loop, under [`HANDSHAKE_TIMEOUT`] and at most
//! [`MAX_HANDSHAKES`] at a time, so a client that never finishes one holds
//! nothing for long.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::StreamExt as _;

/// How often the files are checked for changes.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(10);
/// Longest a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most handshakes in progress at once; further connections wait in the
/// kernel's accept queue.
pub const MAX_HANDSHAKES: usize = 256;

/// The three files of one mutual-TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtlsFiles {
    /// Serving certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The authorities whose client certificates are admitted (PEM).
    pub client_ca: PathBuf,
}

impl MtlsFiles {
    /// Validates the three flags of a listener: all or none. `flag` is the
    /// flag stem, e.g. `--grpc-tls` for `--grpc-tls-cert-file`.
    pub fn from_flags(
        flag: &str,
        cert: Option<&Path>,
        key: Option<&Path>,
        client_ca: Option<&Path>,
        errors: &mut Vec<String>,
    ) -> Option<MtlsFiles> {
        match (cert, key, client_ca) {
            (None, None, None) => None,
            (Some(cert), Some(key), Some(client_ca)) => {
                let files = MtlsFiles {
                    cert: cert.to_owned(),
                    key: key.to_owned(),
                    client_ca: client_ca.to_owned(),
                };
                if let Err(e) = load_config(&files) {
                    errors.push(format!("{flag}-*: {e}"));
                }
                Some(files)
            }
            _ => {
                errors.push(format!(
                    "{flag}-cert-file, {flag}-key-file and {flag}-client-ca-file go together"
                ));
                None
            }
        }
    }
}

/// Why a certificate set cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MtlsError {
    #[error("read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate")]
    NoCertificate { path: String },
    #[error("{path}: no PEM private key")]
    NoKey { path: String },
    #[error("{path}: {source}")]
    ClientCa {
        path: String,
        source: rustls::server::VerifierBuilderError,
    },
    #[error("certificate and key: {0}")]
    Tls(#[from] rustls::Error),
}

fn read(path: &Path) -> Result<Vec<u8>, MtlsError> {
    std::fs::read(path).map_err(|source| MtlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, MtlsError> {
    crate::tls::certs_from_pem(&read(path)?).ok_or_else(|| MtlsError::NoCertificate {
        path: path.display().to_string(),
    })
}

/// Builds the server configuration from the files: TLS 1.2 and 1.3, HTTP/2
/// by ALPN, and a client certificate chaining to the client CA required.
pub fn load_config(files: &MtlsFiles) -> Result<ServerConfig, MtlsError> {
    let chain = certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?).map_err(|_| MtlsError::NoKey {
        path: files.key.display().to_string(),
    })?;
    let mut roots = RootCertStore::empty();
    for ca in certs(&files.client_ca)? {
        roots.add(ca)?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|source| MtlsError::ClientCa {
            path: files.client_ca.display().to_string(),
            source,
        })?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Modification times and sizes of the files: what "changed" means.
type Stamp = Vec<Option<(SystemTime, u64)>>;

fn stamp(files: &MtlsFiles) -> Stamp {
    [&files.cert, &files.key, &files.client_ca]
        .iter()
        .map(|p| {
            std::fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

/// A mutual-TLS acceptor whose certificates follow their files.
pub struct MtlsAcceptor {
    name: &'static str,
    files: MtlsFiles,
    current: RwLock<(Stamp, TlsAcceptor)>,
}

impl MtlsAcceptor {
    /// Loads the files; `name` names the listener in logs.
    pub fn load(name: &'static str, files: MtlsFiles) -> Result<Arc<Self>, MtlsError> {
        let before = stamp(&files);
        let acceptor = TlsAcceptor::from(Arc::new(load_config(&files)?));
        Ok(Arc::new(MtlsAcceptor {
            name,
            files,
            current: RwLock::new((before, acceptor)),
        }))
    }

    fn acceptor(&self) -> Option<TlsAcceptor> {
        self.current.read().ok().map(|c| c.1.clone())
    }

    /// Reloads the files if they changed since the last load. Returns
    /// whether a new certificate set is in use.
    pub fn reload_if_changed(&self) -> bool {
        let now = stamp(&self.files);
        let changed = self.current.read().map(|c| c.0 != now).unwrap_or(false);
        if !changed {
            return false;
        }
        match load_config(&self.files) {
            Ok(config) => {
                if let Ok(mut current) = self.current.write() {
                    *current = (now, TlsAcceptor::from(Arc::new(config)));
                }
                tracing::info!(listener = self.name, "TLS certificates reloaded");
                true
            }
            Err(e) => {
                // Remember the stamp so a broken file is reported once, not
                // every interval; the previous certificates stay in use.
                if let Ok(mut current) = self.current.write() {
                    current.0 = now;
                }
                tracing::warn!(listener = self.name, error = %e, "TLS certificates not reloaded; keeping the previous ones");
                false
            }
        }
    }

    /// The connections of `listener` that completed a mutual-TLS handshake,
    /// as a stream for `tonic`'s `serve_with_incoming`. Failed handshakes
    /// are logged and dropped; the accept loop stops with the stream.
    pub fn incoming(self: Arc<Self>, listener: TcpListener) -> Incoming {
        let (tx, rx) = mpsc::channel(64);
        let accept = tokio::spawn(async move {
            let permits = Arc::new(Semaphore::new(MAX_HANDSHAKES));
            let mut checked = tokio::time::Instant::now();
            loop {
                let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                    return;
                };
                let (tcp, peer) = match listener.accept().await {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of descriptors and the like: pause, don't spin.
                        tracing::warn!(listener = self.name, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                // Certificates matter only to new connections, so the files
                // are checked here, at most once per interval.
                if checked.elapsed() >= RELOAD_INTERVAL {
                    checked = tokio::time::Instant::now();
                    self.reload_if_changed();
                }
                let Some(acceptor) = self.acceptor() else {
                    return;
                };
                let tx = tx.clone();
                let name = self.name;
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send(Ok(tls)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(listener = name, %peer, error = %e, "TLS handshake refused");
                        }
                        Err(_) => {
                            tracing::warn!(listener = name, %peer, "TLS handshake timed out");
                        }
                    }
                });
            }
        });
        Incoming {
            rx,
            _accept: AbortOnDrop(accept),
        }
    }
}

/// Serves a gRPC `router` on `listener` until `shutdown`: with mutual TLS
/// when `tls` names the files (`listener_name` in logs, `flag` the flag
/// stem in errors), plaintext otherwise. The files are loaded before
/// serving, so a bad set is an error here rather than at the first caller.
pub fn serve_grpc(
    router: tonic::transport::server::Router,
    listener: TcpListener,
    tls: Option<&MtlsFiles>,
    listener_name: &'static str,
    flag: &str,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<
    impl std::future::Future<Output = Result<(), tonic::transport::Error>> + Send + 'static,
    String,
> {
    let acceptor = match tls {
        Some(files) => Some(
            MtlsAcceptor::load(listener_name, files.clone())
                .map_err(|e| format!("{flag}-*: {e}"))?,
        ),
        None => None,
    };
    Ok(async move {
        match acceptor {
            Some(acceptor) => {
                router
                    .serve_with_incoming_shutdown(acceptor.incoming(listener), shutdown)
                    .await
            }
            None => {
                let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|s| {
                    s.inspect(|s| {
                        let _ = s.set_nodelay(true);
                    })
                });
                router
                    .serve_with_incoming_shutdown(incoming, shutdown)
                    .await
            }
        }
    })
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Established mutual-TLS connections; see [`MtlsAcceptor::incoming`].
pub struct Incoming {
    rx: mpsc::Receiver<std::io::Result<TlsStream<TcpStream>>>,
    /// Stops the accept loop when the stream is dropped.
    _accept: AbortOnDrop,
}

impl futures::Stream for Incoming {
    type Item = std::io::Result<TlsStream<TcpStream>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> MtlsFiles {
        MtlsFiles {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
            client_ca: dir.join("ca.crt"),
        }
    }

    #[test]
    fn flags_go_together() {
        type Case<'a> = (Option<&'a Path>, Option<&'a Path>, Option<&'a Path>, bool);
        let p = Path::new("/nonexistent");
        let table: &[Case] = &[
            (None, None, None, false),
            (Some(p), None, None, true),
            (None, Some(p), Some(p), true),
            (Some(p), Some(p), None, true),
        ];
        for &(cert, key, ca, errs) in table {
            let mut errors = Vec::new();
            let got = MtlsFiles::from_flags("--grpc-tls", cert, key, ca, &mut errors);
            assert!(got.is_none());
            assert_eq!(
                !errors.is_empty(),
                errs,
                "{cert:?} {key:?} {ca:?}: {errors:?}"
            );
            if errs {
                assert!(
                    errors[0].contains("--grpc-tls-client-ca-file"),
                    "{errors:?}"
                );
            }
        }
    }

    #[test]
    fn unreadable_or_empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(dir.path());
        let mut errors = Vec::new();
        assert!(
            MtlsFiles::from_flags(
                "--als-tls",
                Some(&f.cert),
                Some(&f.key),
                Some(&f.client_ca),
                &mut errors
            )
            .is_some()
        );
        assert!(errors[0].starts_with("--als-tls-*: read "), "{errors:?}");
        assert!(errors[0].contains("tls.crt"), "{errors:?}");

        std::fs::write(&f.cert, "not pem").unwrap();
        let e = load_config(&f).unwrap_err();
        assert!(matches!(e, MtlsError::NoCertificate { .. }), "{e}");
    }
}
