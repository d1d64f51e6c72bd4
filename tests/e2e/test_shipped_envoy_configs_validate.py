"""Every shipped Envoy configuration passes `envoy --mode validate`, the
Python renderer used by these tests agrees with the Rust one (through the
committed docker-compose render), and rendering is strict."""

import shutil
import subprocess
from pathlib import Path

import pytest

from stack import ENVOY_DIR, PLACEHOLDERS, ROOT, RenderError, envoy_binary, render

COMPOSE_VALUES = {
    **PLACEHOLDERS,
    "AUTHZ_ADDRESS": "authz",
    "APISERVER_ADDRESS": "k3s",
    "APISERVER_PORT": "6443",
    "APISERVER_CA_FILE": "/etc/kube-oidc-authz/apiserver/server-ca.crt",
    "AUDIT_ALS_ADDRESS": "audit-forwarder",
}

POD_ROOTS = ("/etc/kube-oidc-authz", "/var/run/secrets/kubernetes.io/serviceaccount")


def _header(file: str) -> str:
    return f"# Generated from envoy/{file} with the docker-compose values; do not edit.\n"


def _validate(tmp_path: Path, pem_dir: Path, envoy_yaml: str, sds_yaml: str) -> None:
    """Runs `envoy --mode validate` on a config whose in-pod file paths are
    moved under tmp_path, where the files they name exist."""
    root = tmp_path / "root"

    def local(text: str) -> str:
        for r in POD_ROOTS:
            text = text.replace(r, str(root) + r)
        return text

    envoy_yaml, sds_yaml = local(envoy_yaml), local(sds_yaml)
    tls = root / "etc/kube-oidc-authz/tls"
    tls.mkdir(parents=True)
    shutil.copy(pem_dir / "issuer.crt", tls / "tls.crt")
    shutil.copy(pem_dir / "issuer.key", tls / "tls.key")
    for ca in ("etc/kube-oidc-authz/apiserver/server-ca.crt", "var/run/secrets/kubernetes.io/serviceaccount/ca.crt"):
        (root / ca).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(pem_dir / "ca.crt", root / ca)
    envoy_dir = root / "etc/kube-oidc-authz/envoy"
    envoy_dir.mkdir(parents=True)
    shutil.copy(ENVOY_DIR / "impersonation.lua", envoy_dir / "impersonation.lua")
    (envoy_dir / "sds-tls.yaml").write_text(sds_yaml)
    (envoy_dir / "envoy.yaml").write_text(envoy_yaml)
    r = subprocess.run(
        [str(envoy_binary()), "--mode", "validate", "-c", str(envoy_dir / "envoy.yaml"), "--log-level", "error"],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout + r.stderr


# The development issuer's CA and serving certificate stand in for the
# pod's certificate files: validation loads them.
def test_template_with_pod_defaults_validates(tmp_path, stack):
    envoy_yaml = render((ENVOY_DIR / "envoy.yaml").read_text(), PLACEHOLDERS)
    sds_yaml = render((ENVOY_DIR / "sds-tls.yaml").read_text(), PLACEHOLDERS)
    _validate(tmp_path, stack.dir / "issuer", envoy_yaml, sds_yaml)


def test_compose_render_validates(tmp_path, stack):
    envoy_yaml = (ENVOY_DIR / "compose" / "envoy.yaml").read_text()
    sds_yaml = (ENVOY_DIR / "compose" / "sds-tls.yaml").read_text()
    _validate(tmp_path, stack.dir / "issuer", envoy_yaml, sds_yaml)


def test_the_stack_config_validates(stack):
    envoy_yaml = stack.dir / "envoy" / "envoy.yaml"
    r = subprocess.run(
        [str(envoy_binary()), "--mode", "validate", "-c", str(envoy_yaml), "--log-level", "error"],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("file", ["envoy.yaml", "sds-tls.yaml"])
def test_python_renderer_matches_rust_render(file):
    fresh = _header(file) + render((ENVOY_DIR / file).read_text(), COMPOSE_VALUES)
    assert fresh == (ENVOY_DIR / "compose" / file).read_text()


def test_compose_file_mounts_the_shipped_config():
    compose = (ROOT / "docker-compose.yaml").read_text()
    assert "audit-forwarder:" in compose and 'command: ["audit-forwarder"]' in compose
    for path in ("./envoy/compose/envoy.yaml", "./envoy/compose/sds-tls.yaml", "./envoy/impersonation.lua"):
        assert path in compose, path


@pytest.mark.parametrize(
    "template,values,message",
    [
        ("${NOPE}", {}, "unknown placeholder"),
        ("${AUTHZ_PORT}", {}, "no value given"),
        ("x", {"EXTRA": "1"}, "not a known placeholder"),
        ("a ${AUTHZ_PORT", {"AUTHZ_PORT": "1"}, "unterminated"),
    ],
)
def test_rendering_is_strict(template, values, message):
    with pytest.raises(RenderError, match=message):
        render(template, values)
