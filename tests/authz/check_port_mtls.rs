//! The Check port with mutual TLS: only a caller with a certificate from the
//! configured client CA gets an answer (which carries the proxy's token);
//! plaintext, no certificate and a certificate from another CA are refused
//! at the handshake. Such a port may leave loopback without
//! `--grpc-allow-remote`.

use crate::support::*;
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use kube_oidc_authz::authz::verify::SigningAlg;
use kube_oidc_authz::tls_listener::{MtlsAcceptor, MtlsFiles};
use kube_oidc_dev::certs::{DevCa, IssuedCert};
use serde_json::json;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

struct Pki {
    dir: tempfile::TempDir,
    ca: DevCa,
    files: MtlsFiles,
    client: IssuedCert,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::generate("check-port-ca").unwrap();
    let server = ca.issue("kube-oidc-authz", &["localhost"]).unwrap();
    let client = ca.issue("envoy", &[]).unwrap();
    let files = MtlsFiles {
        cert: dir.path().join("tls.crt"),
        key: dir.path().join("tls.key"),
        client_ca: dir.path().join("ca.crt"),
    };
    std::fs::write(&files.cert, &server.cert_pem).unwrap();
    std::fs::write(&files.key, &server.key_pem).unwrap();
    std::fs::write(&files.client_ca, ca.cert_pem()).unwrap();
    Pki {
        dir,
        ca,
        files,
        client,
    }
}

fn mtls_flags(files: &MtlsFiles) -> Vec<String> {
    vec![
        "--grpc-tls-cert-file".into(),
        files.cert.to_str().unwrap().into(),
        "--grpc-tls-key-file".into(),
        files.key.to_str().unwrap().into(),
        "--grpc-tls-client-ca-file".into(),
        files.client_ca.to_str().unwrap().into(),
    ]
}

async fn client(
    authz: &Authz,
    ca_pem: &str,
    identity: Option<&IssuedCert>,
) -> Result<AuthorizationClient<Channel>, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name("localhost");
    if let Some(id) = identity {
        tls = tls.identity(Identity::from_pem(&id.cert_pem, &id.key_pem));
    }
    let channel = Channel::from_shared(format!("https://localhost:{}", authz.grpc.port()))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await?;
    Ok(AuthorizationClient::new(channel))
}

#[tokio::test]
async fn only_callers_with_a_client_certificate_from_the_ca_get_an_answer() {
    let issuer = Issuer::start(SigningAlg::RS256).await;
    let pki = pki();
    let mut flags = issuer.product_flags();
    flags.extend(mtls_flags(&pki.files));
    let authz = Authz::start(&flags).await;
    let token = issuer.token(json!({"roles": ["developers"]}));
    let auth = format!("Bearer {token}");
    let request = || check_request(&[("authorization", &auth)], "203.0.113.7");

    // The gateway's certificate: answered, with the proxy's token.
    let mut gateway = client(&authz, pki.ca.cert_pem(), Some(&pki.client))
        .await
        .unwrap();
    let resp = gateway.check(request()).await.unwrap().into_inner();
    assert_eq!(resp.status.as_ref().unwrap().code, 0);
    assert!(
        ok_headers(&resp)
            .iter()
            .any(|(k, v, _)| k == "authorization" && v == &format!("Bearer {SA_TOKEN}"))
    );

    // Plaintext: the support client speaks h2c to the same port.
    assert!(
        authz.client.clone().check(request()).await.is_err(),
        "plaintext caller answered"
    );

    // TLS without a client certificate.
    let anonymous = match client(&authz, pki.ca.cert_pem(), None).await {
        Ok(mut c) => c.check(request()).await.is_err(),
        Err(_) => true,
    };
    assert!(anonymous, "caller without a certificate answered");

    // A certificate from another CA.
    let other = DevCa::generate("someone-else").unwrap();
    let stranger = other.issue("envoy", &[]).unwrap();
    let refused = match client(&authz, pki.ca.cert_pem(), Some(&stranger)).await {
        Ok(mut c) => c.check(request()).await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "caller with a foreign certificate answered");

    // The gateway still gets answers after the refusals.
    let resp = gateway.check(request()).await.unwrap().into_inner();
    assert_eq!(resp.status.as_ref().unwrap().code, 0);
}

#[test]
fn a_port_with_client_certificates_may_leave_loopback_without_the_opt_in() {
    let pki = pki();
    let mut flags = vec![
        "--oidc-issuer-url".into(),
        "https://issuer.example".into(),
        "--oidc-client-id".into(),
        "kubernetes".into(),
        "--grpc-address".into(),
        "0.0.0.0:9001".into(),
    ];
    flags.extend(mtls_flags(&pki.files));
    let (config, _upstream, _dir) = authz_config(&flags);
    assert_eq!(config.grpc_tls.as_ref(), Some(&pki.files));
}

#[test]
fn certificates_are_reloaded_when_their_files_change_and_a_bad_set_is_kept_out() {
    let pki = pki();
    let acceptor = MtlsAcceptor::load("check", pki.files.clone()).unwrap();
    assert!(!acceptor.reload_if_changed(), "nothing changed yet");

    let renewed = pki.ca.issue("kube-oidc-authz", &["localhost"]).unwrap();
    std::fs::write(&pki.files.cert, &renewed.cert_pem).unwrap();
    std::fs::write(&pki.files.key, &renewed.key_pem).unwrap();
    assert!(
        acceptor.reload_if_changed(),
        "a renewed certificate is used"
    );

    // A half-written renewal (certificate without its key) is refused and
    // reported once; the renewed set stays in use.
    let next = pki.ca.issue("kube-oidc-authz", &["localhost"]).unwrap();
    std::fs::write(&pki.files.cert, &next.cert_pem).unwrap();
    std::fs::write(&pki.files.key, "").unwrap();
    assert!(!acceptor.reload_if_changed());
    assert!(!acceptor.reload_if_changed());
    drop(pki.dir);
}
