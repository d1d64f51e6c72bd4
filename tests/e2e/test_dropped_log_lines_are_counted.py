"""The authz service drops log lines rather than block a Check when stderr
falls behind, and says so: the drop counter is on its /metrics."""

import urllib.request


def test_metrics_expose_the_dropped_log_line_counter(stack):
    with urllib.request.urlopen(f"http://{stack.addresses['authz']['http']}/metrics", timeout=5) as r:
        text = r.read().decode()
    assert "# TYPE kube_oidc_authz_log_lines_dropped counter" in text, text
    assert any(line.startswith("kube_oidc_authz_log_lines_dropped_total ") for line in text.splitlines()), text
