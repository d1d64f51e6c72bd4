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
from chart_helpers import CHART_DIR, ROOT, placeholders, render

ENVOY = os.environ.get("ENVOY_BIN") or str(ROOT / ".venv" / "bin" / "envoy")

# Every name the Envoy templates may use, from the one table (envoy/placeholders.yaml).
PLACEHOLDERS = set(placeholders())

# The chart points APISERVER_CA_FILE at the kube-root-ca.crt ConfigMap it
# mounts into the Envoy container, which has no service-account volume.
CHART_APISERVER_CA_FILE = "/etc/kube-oidc-authz/apiserver-ca/ca.crt"

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
    for t, c in zip(t_lines, c_lines, strict=True):
        if "${" not in t:
            assert t == c


def _chart_copy(tmp_path: pathlib.Path) -> pathlib.Path:
    """A copy of the chart with its links to envoy/ resolved into files, to edit."""
    copy = tmp_path / "kube-oidc-authz"
    shutil.copytree(CHART_DIR, copy)
    return copy


def _render_copy(copy: pathlib.Path, values: dict):
    import helm_python as helm

    with helm.Chart.load(str(copy)) as c:
        return render(c, values)


def _render_copy_error(copy: pathlib.Path, values: dict) -> str:
    import helm_python as helm

    with helm.Chart.load(str(copy)) as c:
        with pytest.raises(helm.HelmRenderError) as err:
            c.render(values, name="r", namespace="n")
    return str(err.value)


def test_unknown_placeholder_fails_the_render(chart, tmp_path):
    copy = _chart_copy(tmp_path)
    envoy_yaml = copy / "files" / "envoy.yaml"
    envoy_yaml.write_text(envoy_yaml.read_text() + "# ${NOT_A_PLACEHOLDER} in a comment is fine\nx: ${NOT_A_PLACEHOLDER}\n")
    assert "placeholders the chart does not know: ${NOT_A_PLACEHOLDER}" in _render_copy_error(copy, VALUES)


def _fill(template: str, values: dict[str, str]) -> str:
    """The placeholder rules every renderer follows: comment lines are kept
    as they are, every other ${NAME} is replaced."""
    out = []
    for line in template.splitlines(keepends=True):
        if not line.lstrip().startswith("#"):
            line = re.sub(r"\$\{([A-Z0-9_]+)\}", lambda m: values[m.group(1)], line)
        out.append(line)
    return "".join(out)


def test_default_render_fills_the_templates_with_the_tables_pod_values(chart):
    """With default values the chart renders exactly the pod column of
    envoy/placeholders.yaml, so values.yaml's defaults and the table agree.
    APISERVER_CA_FILE is the one path the chart sets itself."""
    pod = {name: str(row["pod"]) for name, row in placeholders().items()}
    pod["APISERVER_CA_FILE"] = CHART_APISERVER_CA_FILE
    rendered = render(chart, VALUES)
    cm = rendered.one("ConfigMap", f"{rendered.fullname()}-envoy")
    for name in ["envoy.yaml", "sds-tls.yaml"]:
        want = _fill((ROOT / "envoy" / name).read_text(), pod)
        assert cm["data"][name] == want.rstrip("\n") + "\n", name


def test_placeholder_values_come_from_the_table(tmp_path):
    """The chart takes every pod value from the table, and lays only what
    its values configure (ports, the apiserver, the stream timeout) over it."""
    copy = _chart_copy(tmp_path)
    table_path = copy / "files" / "placeholders.yaml"
    table = yaml.safe_load(table_path.read_text())
    table["LUA_FILE"]["pod"] = "/etc/kube-oidc-authz/envoy/from-the-table.lua"
    table["ENVOY_LISTEN_PORT"]["pod"] = "1"
    table_path.write_text(yaml.safe_dump(table))
    config = yaml.safe_load(_render_copy(copy, {**VALUES, "envoy": {"listenPort": 9443}}).envoy_config())
    lua = [f for f in config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
           ["http_filters"] if f["name"] == "envoy.filters.http.lua"][0]
    assert lua["typed_config"]["default_source_code"] == {"filename": "/etc/kube-oidc-authz/envoy/from-the-table.lua"}
    assert config["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] == 9443


@pytest.mark.parametrize(
    "name, expected",
    [
        # Used by the template and not set from values: the template names something the table lacks.
        ("LUA_FILE", "files/envoy.yaml uses placeholders the chart does not know: ${LUA_FILE}"),
        # Set from values: the chart itself would use a name the table lacks.
        ("AUTHZ_PORT", "the chart sets the Envoy placeholder AUTHZ_PORT, which files/placeholders.yaml does not list"),
    ],
    ids=["used-by-the-template", "set-from-values"],
)
def test_a_name_missing_from_the_table_fails_the_render(tmp_path, name, expected):
    copy = _chart_copy(tmp_path)
    table_path = copy / "files" / "placeholders.yaml"
    table = yaml.safe_load(table_path.read_text())
    del table[name]
    table_path.write_text(yaml.safe_dump(table))
    assert expected in _render_copy_error(copy, VALUES)


def _file_refs(node) -> list[str]:
    """Every file or folder an Envoy config names: `filename`s, and the
    `path` of a watched directory or an SDS path source."""
    found = []
    if isinstance(node, dict):
        for key, sub in node.items():
            if key == "filename" and isinstance(sub, str):
                found.append(sub)
            elif key in ("watched_directory", "path_config_source") and isinstance(sub, dict):
                found.append(sub["path"])
            found += _file_refs(sub)
    elif isinstance(node, list):
        for sub in node:
            found += _file_refs(sub)
    return found


def test_every_file_the_envoy_config_names_is_mounted(chart):
    """The pod values of the table's paths and the chart's volume mounts
    agree: each file the rendered config names is a key of a volume mounted
    into the Envoy container, and each folder is a mount."""
    rendered = render(chart, VALUES)
    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    files: dict[str, set[str]] = {}
    for m in rendered.container("envoy")["volumeMounts"]:
        vol = volumes[m["name"]]
        source = vol.get("configMap") or vol.get("secret")
        if source is None:
            continue
        if source.get("items"):
            names = {i["path"] for i in source["items"]}
        else:
            kind = "ConfigMap" if "configMap" in vol else "Secret"
            obj = rendered.one(kind, source.get("name") or source.get("secretName"))
            names = set(obj["data"])
        files[m["mountPath"]] = names
    cm = rendered.one("ConfigMap", f"{rendered.fullname()}-envoy")
    refs = _file_refs(yaml.safe_load(cm["data"]["envoy.yaml"])) + _file_refs(yaml.safe_load(cm["data"]["sds-tls.yaml"]))
    assert refs
    for ref in refs:
        if ref.startswith("/dev/"):
            continue
        folder, _, name = ref.rpartition("/")
        assert ref in files or name in files.get(folder, set()), f"{ref} is not mounted into the Envoy container"


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


@pytest.mark.parametrize("name", ["envoy.yaml", "sds-tls.yaml", "impersonation.lua", "placeholders.yaml"])
def test_chart_files_are_the_shipped_envoy_files(name):
    """The chart links to envoy/ rather than keeping copies that could drift;
    Helm follows the links when it loads or packages the chart."""
    shipped = ROOT / "envoy" / name
    in_chart = CHART_DIR / "files" / name
    assert in_chart.resolve() == shipped.resolve(), f"helm/kube-oidc-authz/files/{name} must link to envoy/{name}"
    assert in_chart.read_bytes() == shipped.read_bytes()
