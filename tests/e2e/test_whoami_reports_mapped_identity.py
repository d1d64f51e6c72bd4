"""`kubectl auth whoami` through Envoy reports the OIDC identity, and the
apiserver receives each group and extra as its own header line."""

import json


def test_whoami_prints_alice_and_her_groups(stack):
    r = stack.run_kubectl("auth", "whoami", "-o", "json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)["status"]["userInfo"]
    assert info["username"] == "banyan:alice@example.com"
    assert info["groups"] == [
        "banyan:any-employee-personal-device",
        "banyan:developers",
        "system:authenticated",
    ]


def test_groups_and_extras_arrive_as_separate_lines(stack):
    r = stack.run_kubectl("auth", "whoami")
    assert r.returncode == 0, r.stderr
    assert "banyan:alice@example.com" in r.stdout
    reviews = [
        rec for rec in stack.recorded()
        if rec["path"] == "/apis/authentication.k8s.io/v1/selfsubjectreviews" and rec["status"] == 201
    ]
    assert reviews, "no SelfSubjectReview reached the apiserver"
    lines = reviews[-1]["impersonate"]
    assert [h for h in lines if h[0] in ("impersonate-user", "impersonate-group")] == [
        ["impersonate-user", "banyan:alice@example.com"],
        ["impersonate-group", "banyan:any-employee-personal-device"],
        ["impersonate-group", "banyan:developers"],
    ]
    extras = [h for h in lines if h[0].startswith("impersonate-extra-")]
    # The token's jti, as the apiserver's own JWT authenticator records it.
    assert len(extras) == 1 and extras[0][0] == "impersonate-extra-authentication.kubernetes.io%2fcredential-id"
    assert extras[0][1].startswith("JTI=")
    assert not [h for h in lines if "," in h[1]], lines
