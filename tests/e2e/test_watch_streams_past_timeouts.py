"""`kubectl get pods -w` keeps streaming through Envoy past the 15 s default
route timeout, and the stream idle timeout (5 s in this stack, set through
${STREAM_IDLE_TIMEOUT}) is what ends a silent stream."""

import json
import subprocess
import threading
import time

ENVOY_DEFAULT_ROUTE_TIMEOUT = 15.0


def test_watch_outlives_default_route_timeout(stack):
    proc = subprocess.Popen(
        stack.kubectl_cmd("get", "pods", "-w"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=stack.kubectl_env(),
    )
    arrivals: list[float] = []
    start = time.monotonic()

    def read():
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("web"):
                arrivals.append(time.monotonic() - start)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    try:
        deadline = start + ENVOY_DEFAULT_ROUTE_TIMEOUT + 3
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, f"watch ended early: {proc.stderr.read() if proc.stderr else ''}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    late = [a for a in arrivals if a > ENVOY_DEFAULT_ROUTE_TIMEOUT + 0.5]
    assert late, f"no event after {ENVOY_DEFAULT_ROUTE_TIMEOUT}s: {arrivals}"
    # An event about every second: the stream was never idle long enough to be cut.
    assert len(arrivals) >= ENVOY_DEFAULT_ROUTE_TIMEOUT, arrivals


def test_silent_stream_is_cut_by_idle_timeout(stack, admin_token):
    import http.client

    from stack import https_context

    # Nothing ever changes in kube-system on the stand-in: the watch is silent.
    conn = http.client.HTTPSConnection("127.0.0.1", stack.ports["envoy"], context=https_context(stack.envoy_ca), timeout=30)
    start = time.monotonic()
    try:
        conn.request(
            "GET",
            "/api/v1/namespaces/kube-system/pods?watch=true&resourceVersion=1",
            headers={"authorization": f"Bearer {admin_token}"},
        )
        r = conn.getresponse()
        assert r.status == 200
        try:
            assert r.read() == b""
        except http.client.IncompleteRead as e:
            # Envoy resets the stream when the idle timeout fires.
            assert e.partial == b""
    finally:
        conn.close()
    elapsed = time.monotonic() - start
    assert 4.0 <= elapsed < 12.0, elapsed


def test_route_settings_in_shipped_config(stack):
    import yaml

    cfg = yaml.safe_load((stack.envoy_dir / "envoy.yaml").read_text())
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm["stream_idle_timeout"] == stack.stream_idle_timeout
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    upstream = [r for r in routes if "route" in r]
    assert upstream and all(r["route"]["timeout"] == "0s" for r in upstream), json.dumps(routes)
    assert {u["upgrade_type"] for u in hcm["upgrade_configs"]} == {"websocket", "SPDY/3.1"}
