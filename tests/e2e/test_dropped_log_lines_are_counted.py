"""Both roles drop log lines rather than block a Check or an audit intake
when stderr falls behind, and say so: the drop counter is on each role's
/metrics."""

import urllib.request

import pytest


@pytest.mark.parametrize("role", ["authz", "audit-forwarder"])
def test_metrics_expose_the_dropped_log_line_counter(stack, role):
    with urllib.request.urlopen(f"http://{stack.addresses[role]['http']}/metrics", timeout=5) as r:
        text = r.read().decode()
    assert "# TYPE kube_oidc_authz_log_lines_dropped counter" in text, text
    assert any(line.startswith("kube_oidc_authz_log_lines_dropped_total ") for line in text.splitlines()), text
