"""Envoy's access log carries the identity from the ext_authz metadata."""

import json

from stack import wait_until


def test_access_log_has_user_and_groups(stack):
    r = stack.run_kubectl("get", "pods", "-o", "name")
    assert r.returncode == 0, r.stderr
    log = stack.procs["envoy"].log

    def logged():
        for line in log.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            entry = json.loads(line)
            path = entry.get("path", "")
            if (
                path.startswith("/api/v1/namespaces/default/pods?limit=")
                and entry.get("status") == 200
                and entry.get("user") == "banyan:alice@example.com"
            ):
                return entry
        return None

    entry = wait_until("access log line", logged, timeout=10)
    assert entry["mode"] == "impersonate"
    groups = entry["groups"]
    assert "banyan:any-employee-personal-device" in groups and "banyan:developers" in groups
    assert stack.alice_token not in log.read_text(errors="replace")
