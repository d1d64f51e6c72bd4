"""The Istio manifests under envoy/istio/ fit together and with the chart: the
provider names the chart's authz Service, the policy uses that provider, the
EnvoyFilters carry the shipped Lua filter verbatim, and the Envoy config they
patch in is one Envoy accepts.

Istio's CRD schemas are not available offline: the Istio objects are checked
against structural schemas written from Istio's API reference
(istio_schemas.py) and field by field; the Envoy parts of the EnvoyFilters go
through `envoy --mode validate`. Regenerate the inline Lua with
UPDATE_GOLDEN=1 .venv/bin/pytest tests/chart
"""

from __future__ import annotations

import os
import pathlib
import subprocess

import istio_schemas
import jsonschema
import pytest
import yaml
from chart_helpers import CHART_DIR, ROOT, render

ISTIO_DIR = ROOT / "envoy" / "istio"
ENVOY = os.environ.get("ENVOY_BIN") or str(ROOT / ".venv" / "bin" / "envoy")

KINDS = {
    ("security.istio.io/v1", "AuthorizationPolicy"),
    ("networking.istio.io/v1", "Gateway"),
    ("networking.istio.io/v1", "VirtualService"),
    ("networking.istio.io/v1", "DestinationRule"),
    ("networking.istio.io/v1alpha3", "EnvoyFilter"),
}
LUA_MARKER = "              inline_string: |\n"


def _docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((ISTIO_DIR / name).read_text()) if d]


def _all_objects() -> list[dict]:
    return [d for p in sorted(ISTIO_DIR.glob("*.yaml")) if p.name != "mesh-config.yaml" for d in _docs(p.name)]


def _by_kind(kind: str) -> list[dict]:
    return [d for d in _all_objects() if d["kind"] == kind]


def test_every_manifest_is_a_known_istio_kind():
    objects = _all_objects()
    assert {(d["apiVersion"], d["kind"]) for d in objects} == KINDS
    for d in objects:
        assert d["metadata"]["name"] and d["metadata"]["namespace"], d
        assert isinstance(d["spec"], dict)


def test_manifests_match_the_istio_api():
    for d in _all_objects():
        jsonschema.validate(d, istio_schemas.BY_KIND[d["kind"]])
    jsonschema.validate(_docs("mesh-config.yaml")[0], istio_schemas.MESH_CONFIG)


@pytest.mark.parametrize(
    "kind, breakage",
    [
        ("AuthorizationPolicy", lambda s: s.update(acton="CUSTOM")),
        ("AuthorizationPolicy", lambda s: s.update(action="EXTERNAL")),
        ("EnvoyFilter", lambda s: s["configPatches"][0]["patch"].update(operation="INSERT_LATER")),
        ("VirtualService", lambda s: s["http"][0].update(timeout="forever")),
        ("DestinationRule", lambda s: s["trafficPolicy"]["connectionPool"]["http"].update(useClientProtocl=True)),
    ],
)
def test_istio_schemas_catch_mistakes(kind, breakage):
    import copy

    doc = copy.deepcopy(_by_kind(kind)[0])
    breakage(doc["spec"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, istio_schemas.BY_KIND[kind])


def test_provider_points_at_the_charts_authz_service(chart):
    mesh = _docs("mesh-config.yaml")[0]
    providers = mesh["meshConfig"]["extensionProviders"]
    assert len(providers) == 1
    grpc = providers[0]["envoyExtAuthzGrpc"]
    assert grpc["failOpen"] is False
    rendered = render(
        chart,
        {
            "envoy": {"enabled": False},
            "authzService": {"allowAnyClient": True},
            "oidc": {"issuerUrl": "https://issuer.example.com", "clientId": "c"},
        },
        name="kube-oidc-authz",
        namespace="kube-oidc-authz",
    )
    svc = rendered.one("Service")
    assert grpc["service"] == f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc.cluster.local"
    assert grpc["port"] in [p["port"] for p in svc["spec"]["ports"] if p["name"] == "grpc"]


def test_policy_is_custom_and_uses_the_provider():
    provider = _docs("mesh-config.yaml")[0]["meshConfig"]["extensionProviders"][0]["name"]
    (policy,) = _by_kind("AuthorizationPolicy")
    assert policy["spec"]["action"] == "CUSTOM"
    assert policy["spec"]["provider"] == {"name": provider}
    gateway_labels = _by_kind("Gateway")[0]["spec"]["selector"]
    assert policy["spec"]["selector"]["matchLabels"] == gateway_labels
    for f in _by_kind("EnvoyFilter"):
        assert f["spec"]["workloadSelector"]["labels"] == gateway_labels


def test_routes_stream_without_deadline():
    (vs,) = _by_kind("VirtualService")
    assert all(route["timeout"] == "0s" for route in vs["spec"]["http"])
    (dr,) = _by_kind("DestinationRule")
    assert dr["spec"]["trafficPolicy"]["connectionPool"]["http"]["useClientProtocol"] is True
    assert dr["spec"]["trafficPolicy"]["tls"]["mode"] == "SIMPLE"


def _lua_patch() -> dict:
    (f,) = [d for d in _by_kind("EnvoyFilter") if d["metadata"]["name"].endswith("impersonation")]
    (patch,) = f["spec"]["configPatches"]
    assert patch["applyTo"] == "HTTP_FILTER"
    assert patch["match"]["listener"]["filterChain"]["filter"]["subFilter"]["name"] == "envoy.filters.http.ext_authz"
    assert patch["patch"]["operation"] == "INSERT_AFTER"
    return patch["patch"]["value"]


def _hcm_patch() -> dict:
    (f,) = [d for d in _by_kind("EnvoyFilter") if d["metadata"]["name"].endswith("timeouts")]
    (patch,) = f["spec"]["configPatches"]
    assert patch["applyTo"] == "NETWORK_FILTER" and patch["patch"]["operation"] == "MERGE"
    return patch["patch"]["value"]["typed_config"]


def test_envoyfilter_carries_the_shipped_lua_verbatim():
    lua = (CHART_DIR / "files" / "impersonation.lua").read_text()
    path = ISTIO_DIR / "envoyfilter-impersonation.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        head = path.read_text().partition(LUA_MARKER)[0]
        body = "\n".join(("                " + line) if line else "" for line in lua.rstrip("\n").split("\n"))
        path.write_text(head + LUA_MARKER + body + "\n")
    assert _lua_patch()["typed_config"]["default_source_code"]["inline_string"] == lua, (
        "envoy/istio/envoyfilter-impersonation.yaml is out of date: run UPDATE_GOLDEN=1 .venv/bin/pytest tests/chart"
    )


def test_envoyfilter_enables_spdy_and_lifts_the_edge_timeouts():
    hcm = _hcm_patch()
    assert hcm["upgrade_configs"] == [{"upgrade_type": "SPDY/3.1"}]
    assert hcm["stream_idle_timeout"] == "3600s"
    assert hcm["request_timeout"] == "0s"


def test_patched_gateway_config_passes_envoy_validate(tmp_path):
    """A listener shaped like an Istio gateway's (ext_authz, then the Lua
    patch, then the router) with the HCM patch merged in."""
    if not pathlib.Path(ENVOY).exists():
        pytest.fail(f"Envoy not found at {ENVOY}: run `make setup` (or set ENVOY_BIN)")
    hcm_patch = dict(_hcm_patch())
    hcm = {
        "@type": hcm_patch.pop("@type"),
        "stat_prefix": "gateway",
        # What the gateway already has, then the merged list entries.
        "upgrade_configs": [{"upgrade_type": "websocket"}, *hcm_patch.pop("upgrade_configs")],
        **hcm_patch,
        "route_config": {
            "virtual_hosts": [
                {"name": "kube", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "apiserver", "timeout": "0s"}}]}
            ]
        },
        "http_filters": [
            {
                "name": "envoy.filters.http.ext_authz",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
                    "transport_api_version": "V3",
                    "failure_mode_allow": False,
                    "grpc_service": {"envoy_grpc": {"cluster_name": "authz"}, "timeout": "2s"},
                },
            },
            _lua_patch(),
            {"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
        ],
    }

    def cluster(name: str, port: int, h2: bool) -> dict:
        c = {
            "name": name,
            "type": "STATIC",
            "connect_timeout": "1s",
            "load_assignment": {
                "cluster_name": name,
                "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}],
            },
        }
        if h2:
            c["typed_extension_protocol_options"] = {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}},
                }
            }
        return c

    bootstrap = {
        "static_resources": {
            "listeners": [
                {
                    "name": "gateway",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                    "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}],
                }
            ],
            "clusters": [cluster("authz", 9001, True), cluster("apiserver", 6443, False)],
        }
    }
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(bootstrap))
    result = subprocess.run(
        [ENVOY, "--mode", "validate", "-c", str(path), "--log-level", "error", "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"envoy --mode validate failed:\n{result.stdout}\n{result.stderr}"
