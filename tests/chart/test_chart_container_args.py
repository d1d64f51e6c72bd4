"""The containers' rendered args are flags the binary accepts: the binary is
started with exactly the args the chart renders (in-pod paths and addresses
moved to a temporary directory and loopback) and must come up.

Needs the built binary in KUBE_OIDC_AUTHZ_BIN (`make test` sets it)."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from chart_helpers import render

STARTUP_TIMEOUT = 30.0


def _binary(var: str = "KUBE_OIDC_AUTHZ_BIN", name: str = "kube-oidc-authz") -> str:
    path = os.environ.get(var, "")
    if not path:
        pytest.fail(f"{var} is not set: run `make test`, or build with `cargo build --workspace` and export "
                    f"{var}=$PWD/target/debug/{name}")
    if not pathlib.Path(path).is_file():
        pytest.fail(f"{var}={path} does not exist: build it with `cargo build --workspace`")
    return path


def _dev_binary() -> str:
    return _binary("KUBE_OIDC_DEV_BIN", "kube-oidc-dev")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, context: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _wait_for(url: str, proc: subprocess.Popen, want: int = 200, context=None) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            pytest.fail(f"process exited with {proc.returncode} before {url} answered:\n{out}")
        try:
            status, _ = _get(url, context)
            if status == want:
                return
            last = status
        except (urllib.error.URLError, ConnectionError, OSError) as e:
            last = e
        time.sleep(0.1)
    pytest.fail(f"{url} did not answer {want} within {STARTUP_TIMEOUT}s (last: {last})")


@contextlib.contextmanager
def _running(args: list[str]):
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _localise(args: list[str], root: pathlib.Path) -> list[str]:
    """In-pod paths become paths under `root`; wildcard binds become loopback."""
    out = []
    for a in args:
        a = a.replace("/etc/kube-oidc-authz/", f"{root}/etc/")
        a = a.replace("/var/run/secrets/kubernetes.io/serviceaccount/", f"{root}/sa/")
        a = a.replace("=0.0.0.0:", "=127.0.0.1:")
        out.append(a)
    return out


def _pod_files(rendered, root: pathlib.Path, ca_pem: str) -> None:
    """The files the pod's volumes would hold."""
    sa = root / "sa"
    sa.mkdir(parents=True)
    (sa / "token").write_text("stand-in-service-account-token")
    (sa / "ca.crt").write_text(ca_pem)
    authn = [d for d in rendered.all("ConfigMap") if d["metadata"]["name"].endswith("-authn")]
    if authn:
        d = root / "etc" / "authn"
        d.mkdir(parents=True)
        for name, text in authn[0]["data"].items():
            (d / name).write_text(text)


@pytest.fixture(scope="module")
def issuer(tmp_path_factory):
    """The development issuer, so the service can load real keys and turn ready."""
    binary = _dev_binary()
    d = tmp_path_factory.mktemp("issuer")
    port = _free_port()
    url = f"https://127.0.0.1:{port}"
    with _running([binary, "--log-format", "text", "dev-issuer", "--listen", f"127.0.0.1:{port}", "--dir", str(d)]) as proc:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not (d / "ca.crt").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        ctx = ssl.create_default_context(cafile=str(d / "ca.crt")) if (d / "ca.crt").exists() else None
        _wait_for(f"{url}/.well-known/openid-configuration", proc, context=ctx)
        yield {"url": url, "ca": (d / "ca.crt").read_text()}


def _authz_values(issuer: dict, grpc: int, http: int, structured: bool) -> dict:
    values: dict = {"authz": {"grpcPort": grpc, "httpPort": http, "logFormat": "text"}}
    if structured:
        values["authenticationConfig"] = {
            "apiVersion": "apiserver.config.k8s.io/v1",
            "kind": "AuthenticationConfiguration",
            "jwt": [
                {
                    "issuer": {
                        "url": issuer["url"],
                        "audiences": ["kube-oidc-authz"],
                        "certificateAuthority": issuer["ca"],
                    },
                    "claimMappings": {
                        "username": {"claim": "email", "prefix": "banyan:"},
                        "groups": {"claim": "roles", "prefix": "banyan:"},
                    },
                }
            ],
        }
    else:
        values["oidc"] = {
            "issuerUrl": issuer["url"],
            "clientId": "kube-oidc-authz",
            "caPEM": issuer["ca"],
            "usernameClaim": "email",
            "usernamePrefix": "banyan:",
            "groupsClaim": "roles",
            "groupsPrefix": "banyan:",
            "requiredClaims": {"email_verified": "true"},
        }
        values["extraImpersonationHeaders"] = {"clientIP": True, "headers": "cluster=prod"}
        values["tokenPassthrough"] = {"enabled": True, "audiences": ["https://kubernetes.default.svc"]}
        values["authz"]["trustedProxyCidrs"] = ["10.0.0.0/8"]
    return values


@pytest.mark.parametrize("structured", [False, True], ids=["oidc-values", "authentication-config"])
@pytest.mark.parametrize("envoy", [True, False], ids=["standalone", "authz-only"])
def test_authz_starts_with_the_rendered_args(chart, issuer, tmp_path, structured, envoy):
    binary = _binary()
    grpc, http = _free_port(), _free_port()
    values = _authz_values(issuer, grpc, http, structured)
    values["envoy"] = {"enabled": envoy}
    values["authzService"] = {"allowAnyClient": True}
    rendered = render(chart, values)
    args = rendered.container("authz")["args"]
    _pod_files(rendered, tmp_path, issuer["ca"])
    with _running([binary, *_localise(args, tmp_path)]) as proc:
        _wait_for(f"http://127.0.0.1:{http}/healthz", proc)
        # Ready means the issuer's keys were fetched with the configured CA.
        _wait_for(f"http://127.0.0.1:{http}/readyz", proc)
        with socket.create_connection(("127.0.0.1", grpc), timeout=2):
            pass


def test_the_binary_rejects_what_it_does_not_know(tmp_path):
    """The check above means something only because unknown flags fail."""
    result = subprocess.run([_binary(), "authz", "--no-such-flag"], capture_output=True, timeout=30)
    assert result.returncode != 0


def test_audit_forwarder_starts_with_the_rendered_args(chart, tmp_path):
    binary = _binary()
    cse_port, http, als, webhook = _free_port(), _free_port(), _free_port(), _free_port()
    values = {
        "oidc": {"issuerUrl": "https://issuer.example.com", "clientId": "c"},
        "auditProxy": {
            "serviceName": "kube-prod",
            "existingSecret": "cse",
            "restapiUrl": f"http://127.0.0.1:{cse_port}",
            "httpPort": http,
            "alsPort": als,
            "webhookPort": webhook,
            "spoolDir": "/etc/kube-oidc-authz/spool",
        },
        "authz": {"logFormat": "text"},
    }
    rendered = render(chart, values)
    args = rendered.container("audit-forwarder")["args"]
    audit_dir = tmp_path / "etc" / "audit"
    audit_dir.mkdir(parents=True)
    (audit_dir / "refresh-token").write_text("stand-in-refresh-token")
    (tmp_path / "etc" / "spool").mkdir()
    with _running([_dev_binary(), "--log-format", "text", "stand-in-cse", "--listen", f"127.0.0.1:{cse_port}",
                   "--refresh-token", "stand-in-refresh-token"]):
        with _running([binary, *_localise(args, tmp_path)]) as proc:
            _wait_for(f"http://127.0.0.1:{http}/healthz", proc)
            with socket.create_connection(("127.0.0.1", als), timeout=2):
                pass
            # The webhook stays on loopback even in the pod.
            assert f"--webhook-address=127.0.0.1:{webhook}" in args
            status, body = _get(f"http://127.0.0.1:{http}/healthz")
            assert status == 200, json.dumps(body.decode(errors="replace"))
