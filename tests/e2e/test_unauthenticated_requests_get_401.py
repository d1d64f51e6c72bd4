"""No token, an expired token, or a token for another audience: Envoy
answers 401 with a Kubernetes Status, kubectl says the user must log in,
and nothing reaches the apiserver."""

import json

import pytest

MUST_LOG_IN = "error: You must be logged in to the server (Unauthorized)"


def _cases(stack):
    return {
        "no-token": None,
        "expired": stack.mint(ttl_seconds=-3600),
        "other-audience": stack.mint(aud="someone-else"),
        "garbage": "not-a-jwt",
    }


# Without any credential kubectl prompts for a username before it sends
# anything, so the no-token case is covered by the raw request below.
@pytest.mark.parametrize("case", ["expired", "other-audience", "garbage"])
def test_kubectl_must_log_in(stack, case):
    token = _cases(stack)[case]
    before = len(stack.recorded())
    kc = stack.kubeconfig_for(token, f"unauth-{case}")
    r = stack.run_kubectl("get", "pods", kubeconfig=kc)
    assert r.returncode != 0
    assert MUST_LOG_IN in r.stderr, r.stderr
    # Only the stand-in's own record reads were added.
    after = [rec for rec in stack.recorded()[before:] if rec["path"] != "/_stand-in/requests"]
    assert after == [], after


@pytest.mark.parametrize("case", ["no-token", "expired", "other-audience"])
def test_denial_is_a_status_body(stack, case):
    token = _cases(stack)[case]
    headers = [("authorization", f"Bearer {token}")] if token else []
    status, body, resp_headers = stack.envoy_request("GET", "/api/v1/namespaces/default/pods", headers)
    assert status == 401
    assert resp_headers.get("content-type") == "application/json"
    doc = json.loads(body)
    assert (doc["kind"], doc["status"], doc["reason"], doc["code"]) == ("Status", "Failure", "Unauthorized", 401)
    assert token is None or token not in body.decode()
