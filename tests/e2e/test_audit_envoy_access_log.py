"""Real Envoy 1.40 streams its HTTP access log over gRPC to the audit
forwarder, which turns each request into an apiserver-style audit event and
delivers it to the stand-in CSE API.

Envoy here answers every request itself (direct_response) and carries the
identity in dynamic metadata set by a Lua filter standing in for ext_authz,
so the test needs neither an apiserver nor an OIDC issuer.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = os.environ.get("KUBE_OIDC_AUTHZ_BIN", str(ROOT / "target" / "debug" / "kube-oidc-authz"))
DEV_BIN = os.environ.get("KUBE_OIDC_DEV_BIN", str(ROOT / "target" / "debug" / "kube-oidc-dev"))
ENVOY = os.environ.get("ENVOY_BIN", str(ROOT / ".venv" / "bin" / "envoy"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def get_json(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


ENVOY_CONFIG = """
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}
static_resources:
  listeners:
  - name: edge
    address: {{socket_address: {{address: 127.0.0.1, port_value: {listen}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: edge
          access_log:
          - name: envoy.access_loggers.http_grpc
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig
              common_config:
                log_name: kube-oidc-authz
                transport_api_version: V3
                buffer_flush_interval: 0.05s
                grpc_service:
                  envoy_grpc: {{cluster_name: audit_forwarder}}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                direct_response: {{status: 200, body: {{inline_string: "ok"}}}}
          http_filters:
          - name: envoy.filters.http.lua
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
              default_source_code:
                inline_string: |
                  function envoy_on_request(handle)
                    local md = handle:streamInfo():dynamicMetadata()
                    md:set("envoy.filters.http.ext_authz", "user", "banyan:alice@example.com")
                    md:set("envoy.filters.http.ext_authz", "mode", "impersonate")
                    md:set("envoy.filters.http.ext_authz", "groups", {{"banyan:developers"}})
                  end
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: audit_forwarder
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{http2_protocol_options: {{}}}}
    load_assignment:
      cluster_name: audit_forwarder
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {als}}}}}}}
"""


@pytest.fixture
def stack(tmp_path):
    if not Path(BIN).exists() or not shutil.which(ENVOY):
        pytest.fail(f"needs {BIN} (cargo build) and {ENVOY} (make setup)")
    ports = {k: free_port() for k in ("cse", "webhook", "als", "http", "listen", "admin")}
    procs = []

    def spawn(args, name, env=None):
        log = open(tmp_path / f"{name}.log", "wb")
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        procs.append((p, name))
        return p

    spawn([DEV_BIN, "stand-in-cse", "--listen", f"127.0.0.1:{ports['cse']}", "--refresh-token", "tok"], "cse")
    env = dict(os.environ, BNN_K8S_AUDIT_PROXY_REFRESH_TOKEN="tok")
    fwd = spawn(
        [
            BIN, "--log-format", "text", "audit-forwarder",
            "--webhook-address", f"127.0.0.1:{ports['webhook']}",
            "--als-address", f"127.0.0.1:{ports['als']}",
            "--http-address", f"127.0.0.1:{ports['http']}",
            "--restapi-url", f"http://127.0.0.1:{ports['cse']}",
            "--service-name", "e2e-cluster",
            "--audit-batch-max-wait", "100ms",
        ],
        "forwarder",
        env,
    )
    config = tmp_path / "envoy.yaml"
    config.write_text(ENVOY_CONFIG.format(**ports))
    spawn([ENVOY, "-c", str(config), "--base-id", str(ports["admin"]), "-l", "warning"], "envoy")
    wait_until(lambda: get_json(f"http://127.0.0.1:{ports['cse']}/_stand-in/stats") is not None, what="stand-in")
    wait_until(lambda: urllib.request.urlopen(f"http://127.0.0.1:{ports['http']}/readyz", timeout=2).status == 200,
               what="forwarder")
    wait_until(lambda: urllib.request.urlopen(f"http://127.0.0.1:{ports['admin']}/ready", timeout=2).status == 200,
               what="envoy")
    try:
        yield ports, fwd, tmp_path
    finally:
        for p, _ in reversed(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()


def test_requests_through_envoy_arrive_as_audit_events(stack):
    ports, fwd, logs = stack
    requests = [
        ("GET", "/api/v1/namespaces/default/pods?limit=500", "list", {"resource": "pods", "namespace": "default", "apiVersion": "v1"}),
        ("POST", "/api/v1/namespaces/default/pods/web-0/exec?command=sh", "create",
         {"resource": "pods", "namespace": "default", "name": "web-0", "subresource": "exec", "apiVersion": "v1"}),
        ("GET", "/apis/stable.example.com/v1/namespaces/team/crontabs?watch=true", "watch",
         {"resource": "crontabs", "namespace": "team", "apiGroup": "stable.example.com", "apiVersion": "v1"}),
        ("GET", "/healthz", "get", None),
    ]
    for method, path, _, _ in requests:
        req = urllib.request.Request(f"http://127.0.0.1:{ports['listen']}{path}", method=method,
                                     headers={"User-Agent": "kubectl/v1.32.0"})
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.status == 200

    stats_url = f"http://127.0.0.1:{ports['cse']}/_stand-in/stats"
    wait_until(lambda: get_json(stats_url)["accepted_events"] >= len(requests), what="events at the stand-in")
    batches = get_json(f"http://127.0.0.1:{ports['cse']}/_stand-in/batches")
    events = [e for b in batches for e in b["body"]["events"]["items"]]
    assert all(b["body"]["service"]["name"] == "e2e-cluster" for b in batches)
    by_uri = {e["requestURI"]: e for e in events}
    for method, path, verb, object_ref in requests:
        ev = by_uri[path]
        assert ev["verb"] == verb, (method, path, ev)
        assert ev.get("objectRef") == object_ref, (method, path, ev)
        assert ev["user"]["username"] == "banyan:alice@example.com"
        assert ev["user"]["groups"] == ["banyan:developers", "system:authenticated"]
        assert ev["responseStatus"]["code"] == 200
        assert ev["userAgent"] == "kubectl/v1.32.0"
        assert ev["sourceIPs"] == ["127.0.0.1"]
        assert ev["stage"] == "ResponseComplete"

    # SIGTERM: the forwarder drains and exits cleanly.
    fwd.send_signal(signal.SIGTERM)
    assert fwd.wait(timeout=20) == 0
