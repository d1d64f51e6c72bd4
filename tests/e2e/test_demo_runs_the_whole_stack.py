"""`kube-oidc-dev demo`, what `make demo` runs: it brings the whole stack up,
prints the commands to try, and those commands give what the README says;
audit batches reach the stand-in CSE API; Ctrl-C stops every process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from stack import binary, dev_binary, envoy_binary, free_port, kubectl_binary

STARTUP = 90


def _kubectl(kubeconfig: Path, home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
    env["HOME"] = str(home)
    return subprocess.run(
        [str(kubectl_binary()), "--kubeconfig", str(kubeconfig), *args],
        capture_output=True, text=True, timeout=30, env=env,
    )


def _children(pid: int) -> list[int]:
    """Every process whose parent is `pid`."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def test_demo_serves_whoami_rbac_and_audit_then_stops_on_ctrl_c(tmp_path):
    port = free_port()
    demo = subprocess.Popen(
        [str(dev_binary()), "--log-format", "text", "demo", "--product-bin", str(binary()), "--envoy", str(envoy_binary()), "--dir", str(tmp_path / "demo"), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: list[str] = []
    children: list[int] = []
    try:
        deadline = time.monotonic() + STARTUP
        assert demo.stdout is not None
        while not any("Ctrl-C stops everything" in line for line in lines):
            assert time.monotonic() < deadline, "demo did not come up:\n" + "".join(lines)
            line = demo.stdout.readline()
            assert line or demo.poll() is None, "demo exited:\n" + "".join(lines)
            lines.append(line)
        printed = "".join(lines)
        kubeconfig = tmp_path / "demo" / "kubeconfig"
        assert f"kubectl --kubeconfig {kubeconfig} auth whoami" in printed
        assert f"https://127.0.0.1:{port}" in printed

        whoami = _kubectl(kubeconfig, tmp_path, "auth", "whoami", "-o", "json")
        assert whoami.returncode == 0, whoami.stderr
        user = json.loads(whoami.stdout)["status"]["userInfo"]
        assert user["username"] == "banyan:alice@example.com"
        assert "banyan:any-employee-personal-device" in user["groups"]
        assert "system:authenticated" in user["groups"]

        pods = _kubectl(kubeconfig, tmp_path, "get", "pods")
        assert pods.returncode == 0, pods.stderr
        services = _kubectl(kubeconfig, tmp_path, "get", "services")
        assert services.returncode != 0
        assert 'services is forbidden: User "banyan:alice@example.com" cannot list resource "services"' in services.stderr

        # The audit batches of those requests, at the URL the demo printed.
        batches_url = re.search(r"curl -s (http://127\.0\.0\.1:\d+/_stand-in/batches)", printed)
        assert batches_url, printed
        deadline = time.monotonic() + 30
        while True:
            with urllib.request.urlopen(batches_url.group(1), timeout=5) as r:
                body = r.read().decode()
            if "banyan:alice@example.com" in body and "services" in body:
                break
            assert time.monotonic() < deadline, f"no audit batch with alice's requests: {body[:2000]}"
            time.sleep(1)

        children = _children(demo.pid)
        assert len(children) >= 5, children  # issuer, apiserver, authz, cse, forwarder, envoy
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=60) == 0
        for pid in children:
            assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0], f"process {pid} outlived the demo"
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(timeout=10)
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
