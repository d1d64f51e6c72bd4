"""Every shipped Envoy configuration passes `envoy --mode validate`,
`kube-oidc-dev render-envoy` (the one renderer, which the tests and the
demo use) reproduces the committed docker-compose render, and rendering is
strict."""

import shutil
import subprocess
from pathlib import Path

import pytest
from stack import ENVOY_DIR, ROOT, envoy_binary, render_envoy

POD_ROOTS = ("/etc/kube-oidc-authz", "/var/run/secrets/kubernetes.io/serviceaccount")


def _header(file: str) -> str:
    return f"# Generated from envoy/{file} with the docker-compose values; do not edit.\n"


def _rendered(out: Path, *args: str) -> Path:
    r = render_envoy(out, *args)
    assert r.returncode == 0, r.stderr
    return out


def _validate(tmp_path: Path, pem_dir: Path, envoy_yaml: str, sds_yaml: str, client_sds_yaml: str | None = None) -> None:
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
    if client_sds_yaml is not None:
        client = root / "etc/kube-oidc-authz/authz-client"
        client.mkdir(parents=True)
        shutil.copy(pem_dir / "issuer.crt", client / "tls.crt")
        shutil.copy(pem_dir / "issuer.key", client / "tls.key")
        shutil.copy(pem_dir / "ca.crt", client / "ca.crt")
        (envoy_dir / "sds-authz-client.yaml").write_text(local(client_sds_yaml))
    (envoy_dir / "envoy.yaml").write_text(envoy_yaml)
    r = subprocess.run(
        [str(envoy_binary()), "--mode", "validate", "-c", str(envoy_dir / "envoy.yaml"), "--log-level", "error"],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout + r.stderr


# The development issuer's CA and serving certificate stand in for the
# pod's certificate files: validation loads them.
def test_template_with_pod_defaults_validates(tmp_path, stack):
    out = _rendered(tmp_path / "render", "--preset", "pod")
    assert (out / "impersonation.lua").read_text() == (ENVOY_DIR / "impersonation.lua").read_text()
    _validate(tmp_path, stack.dir / "issuer", (out / "envoy.yaml").read_text(), (out / "sds-tls.yaml").read_text())


def test_remote_authz_render_with_pod_defaults_validates(tmp_path, stack):
    """envoy/remote-authz.yaml's clusters (mutual TLS to an authz service
    apart from Envoy) in place of envoy.yaml's."""
    out = _rendered(tmp_path / "render", "--preset", "pod", "--remote-authz")
    envoy_yaml = (out / "envoy.yaml").read_text()
    assert "authz_client_certificate" in envoy_yaml
    _validate(
        tmp_path, stack.dir / "issuer", envoy_yaml, (out / "sds-tls.yaml").read_text(),
        (out / "sds-authz-client.yaml").read_text(),
    )


def test_compose_render_validates(tmp_path, stack):
    envoy_yaml = (ENVOY_DIR / "compose" / "envoy.yaml").read_text()
    sds_yaml = (ENVOY_DIR / "compose" / "sds-tls.yaml").read_text()
    _validate(tmp_path, stack.dir / "issuer", envoy_yaml, sds_yaml)


def test_the_stack_config_validates(stack):
    envoy_yaml = stack.envoy_dir / "envoy.yaml"
    r = subprocess.run(
        [str(envoy_binary()), "--mode", "validate", "-c", str(envoy_yaml), "--log-level", "error"],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout + r.stderr


# The name is from when the tests had a Python twin of the renderer; what it
# holds now is that the command the Python side renders with gives the
# committed docker-compose files.
@pytest.mark.parametrize("file", ["envoy.yaml", "sds-tls.yaml"])
def test_python_renderer_matches_rust_render(file, tmp_path):
    out = _rendered(tmp_path, "--preset", "compose")
    assert _header(file) + (out / file).read_text() == (ENVOY_DIR / "compose" / file).read_text()


def test_compose_file_mounts_the_shipped_config():
    compose = (ROOT / "docker-compose.yaml").read_text()
    assert "audit-forwarder:" in compose and 'command: ["audit-forwarder"]' in compose
    for path in ("./envoy/compose/envoy.yaml", "./envoy/compose/sds-tls.yaml", "./envoy/impersonation.lua"):
        assert path in compose, path


# Templates of one's own (--templates) and no preset values, so that each
# value is exactly what the case gives.
@pytest.mark.parametrize(
    "template,values,message",
    [
        ("${NOPE}", {}, "unknown placeholder"),
        ("${AUTHZ_PORT}", {}, "no value given"),
        ("x", {"EXTRA": "1"}, "not a known placeholder"),
        ("a ${AUTHZ_PORT", {"AUTHZ_PORT": "1"}, "unterminated"),
    ],
)
def test_rendering_is_strict(template, values, message, tmp_path):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "envoy.yaml").write_text(template)
    (templates / "sds-tls.yaml").write_text("")
    (templates / "impersonation.lua").write_text("")
    (templates / "remote-authz.yaml").write_text("")
    (templates / "sds-authz-client.yaml").write_text("")
    sets = [a for name, value in values.items() for a in ("--set", f"{name}={value}")]
    r = render_envoy(tmp_path / "out", "--templates", str(templates), "--preset", "none", *sets)
    assert r.returncode == 64, (r.returncode, r.stderr)
    assert message in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()
