"""Envoy, with the shipped configuration, streams its HTTP access log over
gRPC to the audit forwarder, which turns each request into an
apiserver-style audit event and delivers it to the stand-in CSE API: the
demo's audit path, driven with alice's token."""

import json
import signal
import urllib.request

from stack import wait_until

# Real kubectl sends a longer User-Agent: this one marks this test's events.
USER_AGENT = "kubectl/v1.32.0"


def _events(stack) -> list[dict]:
    with urllib.request.urlopen(f"{stack.cse_url}/_stand-in/batches", timeout=5) as r:
        batches = json.load(r)
    assert all(b["body"]["service"]["name"] == stack.audit_service_name for b in batches)
    return [e for b in batches for e in b["body"]["events"]["items"] if e.get("userAgent") == USER_AGENT]


def test_requests_through_envoy_arrive_as_audit_events(stack):
    # A forwarder started here (same argv as the demo's, from its manifest),
    # so that its exit status can be checked at the end.
    fwd = stack.restart("audit-forwarder")
    try:
        requests = [
            ("GET", "/api/v1/namespaces/default/pods?limit=500", "list",
             {"resource": "pods", "namespace": "default", "apiVersion": "v1"}),
            ("POST", "/api/v1/namespaces/default/pods/web-0/exec?command=sh", "create",
             {"resource": "pods", "namespace": "default", "name": "web-0", "subresource": "exec", "apiVersion": "v1"}),
            ("GET", "/apis/stable.example.com/v1/namespaces/team/crontabs?watch=true", "watch",
             {"resource": "crontabs", "namespace": "team", "apiGroup": "stable.example.com", "apiVersion": "v1"}),
            ("GET", "/healthz", "get", None),
        ]
        statuses = {}
        for method, path, _, _ in requests:
            status, body, _ = stack.envoy_request(
                method, path,
                [("authorization", f"Bearer {stack.alice_token}"), ("user-agent", USER_AGENT)],
                body=b"" if method == "POST" else None,
            )
            statuses[path] = status
        # The list is allowed; whatever the apiserver answered the others,
        # the event must record the same.
        assert statuses[requests[0][1]] == 200, statuses

        def all_delivered():
            by_uri = {e["requestURI"]: e for e in _events(stack)}
            return by_uri if len(by_uri) >= len(requests) else None

        by_uri = wait_until("events at the stand-in", all_delivered, timeout=20)
        for method, path, verb, object_ref in requests:
            ev = by_uri[path]
            assert ev["verb"] == verb, (method, path, ev)
            assert ev.get("objectRef") == object_ref, (method, path, ev)
            assert ev["user"]["username"] == "banyan:alice@example.com"
            assert ev["user"]["groups"] == [
                "banyan:any-employee-personal-device", "banyan:developers", "system:authenticated",
            ]
            assert ev["responseStatus"]["code"] == statuses[path], (path, ev)
            # The TCP peer comes last, as the apiserver orders them; before
            # it, the X-Forwarded-For Envoy wrote (for a loopback peer, Envoy
            # writes its own host address there).
            assert ev["sourceIPs"][-1] == "127.0.0.1", ev["sourceIPs"]
            assert ev["stage"] == "ResponseComplete"
        assert stack.alice_token not in json.dumps(list(by_uri.values()))

        # SIGTERM: the forwarder drains and exits cleanly.
        fwd.popen.send_signal(signal.SIGTERM)
        assert fwd.popen.wait(timeout=20) == 0
    finally:
        # Leave the stack whole for the tests after this one.
        stack.restart("audit-forwarder")
