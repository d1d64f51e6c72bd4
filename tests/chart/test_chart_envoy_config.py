"""The Envoy config the chart renders is one Envoy accepts, and the chart
carries the very files the project ships under envoy/."""

from __future__ import annotations

import base64
import os
import pathlib
import re
import shutil
import subprocess

import pytest
import yaml

from chart_helpers import CHART_DIR, ROOT, render

ENVOY = os.environ.get("ENVOY_BIN") or str(ROOT / ".venv" / "bin" / "envoy")

PLACEHOLDERS = {
    "ENVOY_LISTEN_ADDRESS",
    "ENVOY_LISTEN_PORT",
    "ENVOY_ADMIN_PORT",
    "TLS_CERT_FILE",
    "TLS_KEY_FILE",
    "TLS_WATCH_DIR",
    "SDS_TLS_FILE",
    "AUTHZ_ADDRESS",
    "AUTHZ_PORT",
    "APISERVER_ADDRESS",
    "APISERVER_PORT",
    "APISERVER_CA_FILE",
    "AUDIT_ALS_ADDRESS",
    "AUDIT_ALS_PORT",
    "STREAM_IDLE_TIMEOUT",
    "LUA_FILE",
}

POD_PATHS = ["/etc/kube-oidc-authz/"]

VALUES = {"oidc": {"issuerUrl": "https://issuer.example.com", "clientId": "c"}}


def _pod_tls_files(rendered, d: pathlib.Path) -> None:
    """The Secret the chart generated, as the pod would mount it: Envoy must
    accept the chart's own certificate and key."""
    d.mkdir(parents=True, exist_ok=True)
    secret = rendered.one("Secret", f"{rendered.fullname()}-tls")
    for name, b64 in secret["data"].items():
        (d / name).write_bytes(base64.b64decode(b64))


def _materialise(rendered, root: pathlib.Path) -> pathlib.Path:
    """Writes the rendered ConfigMap and TLS Secret into `root` as the pod would
    see them, and points the config's in-pod paths there."""
    cm = rendered.one("ConfigMap", f"{rendered.fullname()}-envoy")
    config = cm["data"]["envoy.yaml"]
    for prefix in POD_PATHS:
        config = config.replace(prefix, f"{root}/")
    (root / "envoy").mkdir(parents=True)
    (root / "envoy" / "impersonation.lua").write_text(cm["data"]["impersonation.lua"])
    sds = cm["data"]["sds-tls.yaml"]
    for prefix in POD_PATHS:
        sds = sds.replace(prefix, f"{root}/")
    (root / "envoy" / "sds-tls.yaml").write_text(sds)
    _pod_tls_files(rendered, root / "tls")
    # Stand-in for the cluster CA (kube-root-ca.crt): any valid certificate.
    (root / "apiserver-ca").mkdir()
    shutil.copy(root / "tls" / "ca.crt", root / "apiserver-ca" / "ca.crt")
    path = root / "envoy" / "envoy.yaml"
    path.write_text(config)
    return path


def _validate(path: pathlib.Path) -> subprocess.CompletedProcess:
    if not pathlib.Path(ENVOY).exists():
        pytest.fail(f"Envoy not found at {ENVOY}: run `make setup` (or set ENVOY_BIN)")
    return subprocess.run(
        [ENVOY, "--mode", "validate", "-c", str(path), "--log-level", "error", "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "values",
    [
        VALUES,
        {**VALUES, "envoy": {"listenPort": 9443, "streamIdleTimeout": "7200s"}, "authz": {"grpcPort": 9101}},
    ],
    ids=["defaults", "custom-ports"],
)
def test_rendered_envoy_config_passes_envoy_validate(chart, tmp_path, values):
    rendered = render(chart, values)
    path = _materialise(rendered, tmp_path)
    result = _validate(path)
    assert result.returncode == 0, f"envoy --mode validate failed:\n{result.stdout}\n{result.stderr}"


def test_every_placeholder_is_substituted_and_nothing_else(chart):
    template = (CHART_DIR / "files" / "envoy.yaml").read_text()
    body = "\n".join(line for line in template.splitlines() if not line.lstrip().startswith("#"))
    used = set(re.findall(r"\$\{([A-Z0-9_]+)\}", body))
    assert used <= PLACEHOLDERS, f"unknown placeholders: {used - PLACEHOLDERS}"
    rendered = render(chart, {**VALUES, "envoy": {"listenPort": 9443, "adminPort": 9911}})
    config = rendered.envoy_config()
    live = "\n".join(line for line in config.splitlines() if not line.lstrip().startswith("#"))
    assert "${" not in live
    parsed = yaml.safe_load(config)
    assert parsed["admin"]["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 9911}
    listener = parsed["static_resources"]["listeners"][0]
    assert listener["address"]["socket_address"]["port_value"] == 9443
    # Only the placeholders changed: the rest of the file is byte for byte the template.
    t_lines = template.rstrip("\n").splitlines()
    c_lines = config.rstrip("\n").splitlines()
    assert len(t_lines) == len(c_lines)
    for t, c in zip(t_lines, c_lines):
        if "${" not in t:
            assert t == c


def test_unknown_placeholder_fails_the_render(chart, tmp_path):
    import helm_python as helm

    copy = tmp_path / "kube-oidc-authz"
    shutil.copytree(CHART_DIR, copy)
    envoy_yaml = copy / "files" / "envoy.yaml"
    envoy_yaml.write_text(envoy_yaml.read_text() + "# ${NOT_A_PLACEHOLDER} in a comment is fine\nx: ${NOT_A_PLACEHOLDER}\n")
    with helm.Chart.load(str(copy)) as c:
        with pytest.raises(helm.HelmRenderError) as err:
            c.render(VALUES, name="r", namespace="n")
    assert "placeholders the chart does not know: ${NOT_A_PLACEHOLDER}" in str(err.value)


def test_lua_filter_is_shipped_unchanged(chart):
    rendered = render(chart, VALUES)
    lua = rendered.one("ConfigMap", f"{rendered.fullname()}-envoy")["data"]["impersonation.lua"]
    assert lua == (CHART_DIR / "files" / "impersonation.lua").read_text()


def test_sds_file_names_the_mounted_serving_certificate(chart):
    rendered = render(chart, VALUES)
    cm = rendered.one("ConfigMap", f"{rendered.fullname()}-envoy")
    config = yaml.safe_load(cm["data"]["envoy.yaml"])
    sds = yaml.safe_load(cm["data"]["sds-tls.yaml"])
    tls = config["static_resources"]["listeners"][0]["filter_chains"][0]["transport_socket"]["typed_config"]
    source = tls["common_tls_context"]["tls_certificate_sds_secret_configs"][0]
    assert source["sds_config"]["path_config_source"]["path"] == "/etc/kube-oidc-authz/envoy/sds-tls.yaml"
    secret = sds["resources"][0]
    assert secret["name"] == source["name"]
    assert secret["tls_certificate"]["certificate_chain"] == {"filename": "/etc/kube-oidc-authz/tls/tls.crt"}
    assert secret["tls_certificate"]["private_key"] == {"filename": "/etc/kube-oidc-authz/tls/tls.key"}
    assert secret["tls_certificate"]["watched_directory"] == {"path": "/etc/kube-oidc-authz/tls"}


@pytest.mark.parametrize("name", ["envoy.yaml", "sds-tls.yaml", "impersonation.lua"])
def test_chart_files_are_the_shipped_envoy_files(name):
    """The chart links to envoy/ rather than keeping copies that could drift;
    Helm follows the links when it loads or packages the chart."""
    shipped = ROOT / "envoy" / name
    in_chart = CHART_DIR / "files" / name
    assert in_chart.resolve() == shipped.resolve(), f"helm/kube-oidc-authz/files/{name} must link to envoy/{name}"
    assert in_chart.read_bytes() == shipped.read_bytes()
