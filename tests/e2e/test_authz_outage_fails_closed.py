"""With the authz service gone, Envoy answers 503 and lets nothing through;
once it is back, requests succeed again."""


def test_fails_closed_then_recovers(stack):
    assert stack.run_kubectl("get", "pods").returncode == 0

    stack.procs["authz"].kill()
    try:
        before = len(stack.recorded())
        status, body, _ = stack.envoy_request(
            "GET", "/api/v1/namespaces/default/pods", [("authorization", f"Bearer {stack.alice_token}")]
        )
        assert status == 503, body
        r = stack.run_kubectl("get", "pods")
        assert r.returncode != 0
        assert "web" not in r.stdout
        assert [rec for rec in stack.recorded()[before:] if rec["path"] != "/_stand-in/requests"] == []
    finally:
        # The same argv as the demo's, from its manifest.
        stack.restart("authz")

    r = stack.run_kubectl("get", "pods")
    assert r.returncode == 0, r.stderr
    assert "web" in r.stdout
