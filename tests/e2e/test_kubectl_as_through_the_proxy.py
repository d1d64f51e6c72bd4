"""End-user impersonation through the shipped Envoy config (the demo runs the
authz service with --allow-impersonation): real `kubectl --as`,
`--as-group`, `--as-uid` and `auth whoami --as`. Every requested value is
authorised with a SubjectAccessReview as the signed-in user; the stand-in
apiserver answers them from its RBAC table, where the demo user's
`banyan:developers` may act as bob (in the pod readers' group and in
`banyan:readers,eu`, with uid `bob-uid`) and nothing else."""

from __future__ import annotations

import json
import re
import urllib.request

from stack import wait_until

SAR = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
SELF_SUBJECT_REVIEWS = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
PODS = "/api/v1/namespaces/default/pods"
BOB = "banyan:bob@example.com"
READERS = "banyan:any-employee-personal-device"
ALICE_GROUPS = [READERS, "banyan:developers", "system:authenticated"]


def _upstream(stack, before: int) -> list[dict]:
    return [r for r in stack.recorded()[before:] if r["path"] not in (SAR, "/_stand-in/requests")]


def test_whoami_as_bob_shows_bob_and_the_original_user(stack):
    r = stack.run_kubectl(
        "auth", "whoami", "-o", "json",
        "--as", BOB, "--as-group", READERS, "--as-group", "banyan:readers,eu", "--as-uid", "bob-uid",
    )
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)["status"]["userInfo"]
    assert info["username"] == BOB
    assert info["uid"] == "bob-uid"
    # Two --as-group lines, one holding a comma, stay two groups end to end.
    assert info["groups"] == [READERS, "banyan:readers,eu", "system:authenticated"]
    extra = info["extra"]
    assert extra["originaluser.kube-oidc-authz.io/user"] == ["banyan:alice@example.com"]
    assert extra["originaluser.kube-oidc-authz.io/groups"] == ALICE_GROUPS
    original_extra = json.loads(extra["originaluser.kube-oidc-authz.io/extra"][0])
    assert original_extra["authentication.kubernetes.io/credential-id"][0].startswith("JTI=")
    # Alice's own credential id is not bob's.
    assert "authentication.kubernetes.io/credential-id" not in extra

    served = [rec for rec in stack.recorded() if rec["path"] == SELF_SUBJECT_REVIEWS][-1]
    groups = [v for n, v in served["impersonate"] if n == "impersonate-group"]
    assert groups == [READERS, "banyan:readers,eu"]
    # Each value was reviewed as alice, by the proxy.
    reviews = [rec for rec in stack.recorded() if rec["path"] == SAR]
    assert reviews and all(rec["status"] == 201 for rec in reviews)
    assert {rec["user"]["username"] for rec in reviews} == {"system:serviceaccount:kube-oidc-authz:kube-oidc-authz"}


def test_kubectl_as_bob_is_served_as_bob(stack):
    r = stack.run_kubectl("get", "pods", "--as", BOB, "--as-group", READERS)
    assert r.returncode == 0, r.stderr
    assert "web" in r.stdout
    # Bob without the readers' group is bob, whom RBAC lets read nothing.
    r = stack.run_kubectl("get", "pods", "--as", BOB)
    assert r.returncode != 0
    assert f'pods is forbidden: User "{BOB}" cannot list resource "pods"' in r.stderr, r.stderr


def test_what_alice_may_not_impersonate_is_forbidden_with_the_apiservers_message(stack):
    before = len(stack.recorded())
    cases = [
        (
            ["--as", BOB, "--as-group", "banyan:all-admins-corporate-device"],
            'groups "banyan:all-admins-corporate-device" is forbidden: User "banyan:alice@example.com" '
            'cannot impersonate resource "groups" in API group "" at the cluster scope',
        ),
        (
            ["--as", "banyan:carol@example.com"],
            'users "banyan:carol@example.com" is forbidden: User "banyan:alice@example.com" '
            'cannot impersonate resource "users" in API group "" at the cluster scope',
        ),
        (
            ["--as", BOB, "--as-uid", "0"],
            'uids.authentication.k8s.io "0" is forbidden: User "banyan:alice@example.com" '
            'cannot impersonate resource "uids" in API group "authentication.k8s.io" at the cluster scope',
        ),
    ]
    for args, message in cases:
        r = stack.run_kubectl("get", "pods", *args)
        assert r.returncode != 0, args
        assert f"Error from server (Forbidden): {message}" in r.stderr, (args, r.stderr)
    # A reader may impersonate no one.
    reader = stack.kubeconfig_for(stack.mint(email="carol@example.com", roles=["any-employee-personal-device"]), "carol")
    r = stack.run_kubectl("get", "pods", "--as", BOB, kubeconfig=reader)
    assert r.returncode != 0
    assert f'users "{BOB}" is forbidden: User "banyan:carol@example.com" cannot impersonate' in r.stderr, r.stderr
    # System identities are refused before any review.
    r = stack.run_kubectl("get", "pods", "--as", "alice", "--as-group", "system:masters")
    assert r.returncode != 0 and "Forbidden" in r.stderr, r.stderr
    assert _upstream(stack, before) == []


def test_too_many_impersonation_headers_get_431(stack):
    before = len(stack.recorded())
    headers = [("authorization", f"Bearer {stack.alice_token}"), ("impersonate-user", BOB)]
    headers += [("impersonate-group", f"g{i}") for i in range(64)]
    status, body, _ = stack.envoy_request("GET", PODS, headers)
    assert status == 431, body
    s = json.loads(body)
    assert (s["kind"], s["code"]) == ("Status", 431)
    assert "more than the 64 allowed" in s["message"]
    assert [r for r in stack.recorded()[before:] if r["path"] != "/_stand-in/requests"] == []


def test_reviews_unavailable_fail_closed_with_503(stack):
    # A caller whose answers are not cached: a token of its own.
    token = stack.mint(roles=["developers"], jti="sar-outage")
    headers = [("authorization", f"Bearer {token}"), ("impersonate-user", BOB), ("impersonate-group", READERS)]
    stack.procs["apiserver"].stop()
    try:
        status, body, _ = stack.envoy_request("GET", PODS, headers)
        assert status == 503, body
        s = json.loads(body)
        assert s["reason"] == "ServiceUnavailable"
        assert s["message"] == "the authentication service cannot authorize impersonation right now"
    finally:
        stack.restart("apiserver")
    status, body, _ = stack.envoy_request("GET", PODS, headers)
    assert status == 200, body


def test_the_decision_line_names_both_identities(stack):
    r = stack.run_kubectl("get", "pods", "--as", BOB, "--as-group", READERS)
    assert r.returncode == 0, r.stderr
    text = re.sub(r"\x1b\[[0-9;]*m", "", stack.procs["authz"].log.read_text(errors="replace"))
    lines = [line for line in text.splitlines() if 'reason="impersonated"' in line]
    assert lines, "no impersonated decision logged"
    last = lines[-1]
    assert f'user="{BOB}"' in last, last
    assert 'original_user="banyan:alice@example.com"' in last, last
    assert stack.alice_token not in stack.procs["authz"].log.read_text(errors="replace")


def test_the_audit_event_records_the_caller_and_who_it_acted_as(stack):
    marker = "kubectl/as-audit-test"
    status, body, _ = stack.envoy_request(
        "GET", PODS,
        [
            ("authorization", f"Bearer {stack.alice_token}"),
            ("user-agent", marker),
            ("impersonate-user", BOB),
            ("impersonate-group", READERS),
        ],
    )
    assert status == 200, body

    def delivered():
        with urllib.request.urlopen(f"{stack.cse_url}/_stand-in/batches", timeout=5) as r:
            batches = json.load(r)
        found = [e for b in batches for e in b["body"]["events"]["items"] if e.get("userAgent") == marker]
        return found or None

    ev = wait_until("the impersonated request's audit event", delivered, timeout=20)[-1]
    # As the apiserver records a `kubectl --as` made directly.
    assert ev["user"]["username"] == "banyan:alice@example.com"
    assert ev["user"]["groups"] == ALICE_GROUPS
    assert ev["impersonatedUser"]["username"] == BOB
    assert ev["impersonatedUser"]["groups"] == [READERS, "system:authenticated"]
    assert not any(k.startswith("originaluser.") for k in ev["impersonatedUser"].get("extra", {}))
