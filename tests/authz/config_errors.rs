//! Bad configuration stops start-up with every problem listed and exit 64.

use std::process::Command;

#[test]
fn bad_flags_exit_64_listing_every_problem() {
    let out = Command::new(env!("CARGO_BIN_EXE_kube-oidc-authz"))
        .args([
            "authz",
            "--oidc-issuer-url",
            "http://idp.example.com",
            "--oidc-signing-algs",
            "HS256",
            "--extra-user-headers",
            "nokey",
            "--trusted-proxy-cidrs",
            "10.0.0.0/33",
            "--oidc-ca-file",
            "/nonexistent/ca.crt",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "--oidc-issuer-url",
        "--oidc-client-id is required",
        "--oidc-signing-algs: \"HS256\" is not a supported",
        "--extra-user-headers",
        "--trusted-proxy-cidrs",
        "--oidc-ca-file",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn cel_compile_errors_stop_start_up_naming_each_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("authn.yaml");
    std::fs::write(
        &file,
        r#"apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
jwt:
- issuer: {url: 'https://idp.example.com', audiences: [k]}
  claimValidationRules:
  - expression: "claims.hd =="
  claimMappings:
    username: {expression: "claims.sub.frobnicate()"}
    groups: {expression: "claims.a.filter(x, claims.b.exists(y, y == x))"}
    extra:
    - {key: example.com/t, valueExpression: "claims.tid == 1"}
  userValidationRules:
  - expression: "user.name == 'x'"
"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kube-oidc-authz"))
        .args(["authz", "--authentication-config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "jwt[0].claimValidationRules[0].expression: Invalid value: \"claims.hd ==\": compilation failed",
        "jwt[0].claimMappings.username.expression: Invalid value: \"claims.sub.frobnicate()\": compilation failed: undeclared reference to 'frobnicate'",
        "jwt[0].claimMappings.groups.expression: Invalid value: \"claims.a.filter(x, claims.b.exists(y, y == x))\": estimated cost",
        "jwt[0].claimMappings.extra[0].valueExpression: Invalid value: \"claims.tid == 1\": must evaluate to one of [string list(string)]",
        "jwt[0].userValidationRules[0].expression: Invalid value: \"user.name == 'x'\": compilation failed: undefined field 'name'",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn check_port_beyond_loopback_needs_explicit_opt_in() {
    // Allowed Checks carry the proxy's service-account token: a Check port
    // anyone can reach hands that token to anyone with a valid ID token.
    let out = Command::new(env!("CARGO_BIN_EXE_kube-oidc-authz"))
        .args([
            "authz",
            "--grpc-address",
            "0.0.0.0:0",
            "--http-address",
            "127.0.0.1:0",
            "--oidc-issuer-url",
            "https://idp.example.com",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--grpc-address 0.0.0.0:0") && err.contains("--grpc-allow-remote"),
        "{err}"
    );
    // Every problem together: the missing client id is reported too.
    assert!(err.contains("--oidc-client-id is required"), "{err}");
}
