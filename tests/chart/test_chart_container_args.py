"""The containers' rendered args are flags the binary accepts: the binary is
started with exactly the args the chart renders (in-pod paths and addresses
moved to a temporary directory and loopback) and must come up.

Needs the built binary in KUBE_OIDC_AUTHZ_BIN (`make test` sets it)."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import pathlib
import re
import socket
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.request

import helm_python as helm
import pytest
import yaml
from chart_helpers import CHART_DIR, render
from pyhelpers.procs import Proc, free_port, wait_until

STARTUP_TIMEOUT = 30.0

# The binary's exit code for a configuration it refuses (EX_USAGE).
EX_CONFIG = 64

SCHEMA_SIGNING_ALGS = json.loads((CHART_DIR / "values.schema.json").read_text())["properties"]["oidc"]["properties"][
    "signingAlgs"]["items"]["enum"]


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


def _get(url: str, context: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _wait_for(url: str, proc: Proc, want: int = 200, context=None) -> None:
    wait_until(
        f"{url} answering {want}",
        lambda: _get(url, context)[0] == want,
        timeout=STARTUP_TIMEOUT,
        proc=proc,
        log=proc.log,
        interval=0.1,
    )


@contextlib.contextmanager
def _running(args: list[str]):
    """Starts `args` with its output in a throw-away log (shown when it
    exits early), and stops it on the way out."""
    with tempfile.TemporaryDirectory() as d:
        proc = Proc(pathlib.Path(args[0]).name, args, pathlib.Path(d) / "out.log").start()
        try:
            yield proc
        finally:
            proc.stop()


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
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    with _running([binary, "--log-format", "text", "dev-issuer", "--listen", f"127.0.0.1:{port}", "--dir", str(d)]) as proc:
        wait_until("the issuer's CA", (d / "ca.crt").exists, timeout=STARTUP_TIMEOUT, proc=proc, log=proc.log)
        ctx = ssl.create_default_context(cafile=str(d / "ca.crt"))
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
    grpc, http = free_port(), free_port()
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
    cse_port, http, als, webhook = free_port(), free_port(), free_port(), free_port()
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


# === what the schema and the values promise, the binary accepts ===


def test_schema_signing_algs_are_the_ones_the_binary_accepts(tmp_path):
    """The binary names the algorithms it accepts when refusing one; the
    schema's enum must be exactly that list."""
    result = subprocess.run(
        [_binary(), "authz", "--oidc-issuer-url=https://issuer.example.com", "--oidc-client-id=c",
         "--oidc-signing-algs=HS256", f"--upstream-token-file={tmp_path / 'token'}"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == EX_CONFIG, result.stderr
    m = re.search(r'"HS256" is not a supported signing algorithm \(one of ([^)]*)\)', result.stdout + result.stderr)
    assert m, result.stderr
    assert sorted(m.group(1).split(", ")) == sorted(SCHEMA_SIGNING_ALGS)
    assert len(set(SCHEMA_SIGNING_ALGS)) == len(SCHEMA_SIGNING_ALGS)


@pytest.mark.parametrize("alg", SCHEMA_SIGNING_ALGS)
def test_authz_accepts_every_signing_alg_the_schema_allows(chart, issuer, tmp_path, alg):
    binary = _binary()
    grpc, http = free_port(), free_port()
    values = _authz_values(issuer, grpc, http, structured=False)
    values["oidc"]["signingAlgs"] = [alg]
    rendered = render(chart, values)
    args = rendered.container("authz")["args"]
    assert f"--oidc-signing-algs={alg}" in args
    _pod_files(rendered, tmp_path, issuer["ca"])
    with _running([binary, *_localise(args, tmp_path)]) as proc:
        # A refused configuration exits (64) before /healthz answers.
        _wait_for(f"http://127.0.0.1:{http}/healthz", proc)


def test_authz_accepts_a_rendered_authentication_config(chart, issuer, tmp_path):
    """Every field the chart documents for authenticationConfig: the chart's
    ConfigMap, written where the args point, is one the binary takes."""
    binary = _binary()
    grpc, http = free_port(), free_port()
    values = _authz_values(issuer, grpc, http, structured=True)
    jwt = values["authenticationConfig"]["jwt"][0]
    jwt["claimValidationRules"] = [
        {"claim": "hd", "requiredValue": "example.com"},
        {"expression": "claims.?email_verified.orValue(true) == true", "message": "email must be verified"},
    ]
    jwt["claimMappings"]["uid"] = {"expression": "claims.sub"}
    jwt["claimMappings"]["groups"] = {"expression": "claims.roles.filter(r, r.startsWith('k8s-')).map(r, 'oidc:' + r)"}
    jwt["claimMappings"]["extra"] = [{"key": "example.com/tenant", "valueExpression": "claims.?tid.orValue('')"}]
    jwt["userValidationRules"] = [{"expression": "!user.username.startsWith('system:')", "message": "no system users"}]
    rendered = render(chart, values)
    args = rendered.container("authz")["args"]
    assert "--authentication-config=/etc/kube-oidc-authz/authn/authentication-config.yaml" in args
    _pod_files(rendered, tmp_path, issuer["ca"])
    written = yaml.safe_load((tmp_path / "etc" / "authn" / "authentication-config.yaml").read_text())
    assert written == values["authenticationConfig"]
    with _running([binary, *_localise(args, tmp_path)]) as proc:
        _wait_for(f"http://127.0.0.1:{http}/healthz", proc)
        _wait_for(f"http://127.0.0.1:{http}/readyz", proc)


# === CEL: the chart passes it on, and refuses what the binary would refuse ===

BASE_JWT = {
    "issuer": {"url": "https://issuer.example.com", "audiences": ["kube-oidc-authz"]},
    "claimMappings": {"username": {"claim": "email", "prefix": "banyan:"}},
}


def _authn_config(jwt: dict) -> dict:
    return {"apiVersion": "apiserver.config.k8s.io/v1", "kind": "AuthenticationConfiguration", "jwt": [jwt]}


def _with(path: str, value) -> dict:
    """BASE_JWT's AuthenticationConfiguration with `path` (dotted, under
    jwt[0]) set to `value`."""
    jwt = copy.deepcopy(BASE_JWT)
    *parents, last = path.split(".")
    node = jwt
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return _authn_config(jwt)


# Mistakes the chart sees without compiling CEL, and the field the chart and
# the binary name when refusing them (the binary's names lack the
# "authenticationConfig." prefix).
MISTAKES = {
    "claim and expression": (
        _with("claimMappings.username", {"claim": "email", "prefix": "", "expression": "claims.email"}),
        "jwt[0].claimMappings.username: Invalid value: claim and expression can't both be set",
    ),
    "prefix with expression": (
        _with("claimMappings.groups", {"expression": "claims.roles", "prefix": "x:"}),
        "jwt[0].claimMappings.groups.prefix: Invalid value: may not be specified when expression is set",
    ),
    "rule with claim and expression": (
        _with("claimValidationRules", [{"claim": "hd", "expression": "claims.hd == 'x'"}]),
        "jwt[0].claimValidationRules[0].claim: claim and expression can't both be set",
    ),
    "extra key without domain": (
        _with("claimMappings.extra", [{"key": "tenant", "valueExpression": "claims.tid"}]),
        'jwt[0].claimMappings.extra[0].key: Invalid value: "tenant": must be a domain-prefixed path',
    ),
    "extra key in capitals": (
        _with("claimMappings.extra", [{"key": "example.com/Tenant", "valueExpression": "claims.tid"}]),
        'jwt[0].claimMappings.extra[0].key: Invalid value: "example.com/Tenant": key must be lowercase',
    ),
    "extra key of Kubernetes": (
        _with("claimMappings.extra", [{"key": "authentication.kubernetes.io/x", "valueExpression": "claims.tid"}]),
        'jwt[0].claimMappings.extra[0].key: Invalid value: "authentication.kubernetes.io/x": k8s.io, kubernetes.io',
    ),
    "extra key twice": (
        _with(
            "claimMappings.extra",
            [{"key": "example.com/t", "valueExpression": "claims.a"}, {"key": "example.com/t", "valueExpression": "claims.b"}],
        ),
        'jwt[0].claimMappings.extra[1].key: Duplicate value: "example.com/t"',
    ),
    "extra without expression": (
        _with("claimMappings.extra", [{"key": "example.com/t"}]),
        "jwt[0].claimMappings.extra[0].valueExpression: Required value",
    ),
}


@pytest.mark.parametrize("case", MISTAKES)
def test_the_chart_refuses_what_the_binary_refuses(chart, case):
    config, message = MISTAKES[case]
    with pytest.raises(helm.HelmRenderError) as err:
        render(chart, {"authenticationConfig": config})
    assert f"authenticationConfig.{message}" in str(err.value)


@pytest.mark.parametrize("case", MISTAKES)
def test_the_binary_refuses_the_same_with_the_same_field(chart, tmp_path, case):
    """The args of a good render, pointed at the same file with the mistake
    written in: the binary refuses it at start-up, naming the same field."""
    values = {"authenticationConfig": _authn_config(BASE_JWT)}
    rendered = render(chart, values)
    args = _localise(rendered.container("authz")["args"], tmp_path)
    _pod_files(rendered, tmp_path, "")
    config = tmp_path / "etc" / "authn" / "authentication-config.yaml"
    assert f"--authentication-config={config}" in args
    bad_config, message = MISTAKES[case]
    config.write_text(yaml.safe_dump(bad_config))
    result = subprocess.run([_binary(), *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == EX_CONFIG, result.stdout + result.stderr
    assert message in result.stderr, result.stderr


def test_cel_passes_through_and_its_extra_keys_reach_the_cluster_role(chart):
    config = _with(
        "claimMappings",
        {
            "username": {"expression": "claims.email_verified ? claims.email : ''"},
            "groups": {"expression": "claims.roles.split(',')"},
            "extra": [
                {"key": "example.com/tenant", "valueExpression": "claims.tid"},
                {"key": "acme.io/region", "valueExpression": "claims.region"},
            ],
        },
    )
    config["jwt"][0]["userValidationRules"] = [{"expression": "!user.username.startsWith('system:')"}]
    rendered = render(chart, {"authenticationConfig": config})
    authn = next(c for c in rendered.all("ConfigMap") if c["metadata"]["name"].endswith("-authn"))
    assert yaml.safe_load(authn["data"]["authentication-config.yaml"]) == config
    resources = [res for rule in rendered.one("ClusterRole")["rules"] for res in rule["resources"]]
    assert sorted(r for r in resources if r.startswith("userextras/")) == [
        "userextras/acme.io/region",
        "userextras/authentication.kubernetes.io/credential-id",
        "userextras/example.com/tenant",
    ]
