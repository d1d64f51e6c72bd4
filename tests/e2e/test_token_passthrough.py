"""Token passthrough through the shipped Envoy config: with
`--token-passthrough`, a CI job's service-account token is checked with a
TokenReview and reaches the apiserver unchanged, with no impersonation;
tokens the apiserver does not accept for the passthrough audience get 401."""

from __future__ import annotations

import base64
import json

import pytest
from stack import Stack

# The stand-in apiserver's own audience (its service-account issuer).
AUDIENCE = "https://kubernetes.default.svc.cluster.local"
CI_SERVICE_ACCOUNT = "system:serviceaccount:ci:deployer"
SELF_SUBJECT_REVIEWS = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"


@pytest.fixture(scope="module")
def passthrough(tmp_path_factory: pytest.TempPathFactory):
    s = Stack(
        tmp_path_factory.mktemp("passthrough"),
        audit=False,
        authz_args=["--token-passthrough", f"--token-passthrough-audiences={AUDIENCE}"],
    )
    try:
        s.start()
        yield s
    finally:
        s.stop()


def _b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def whoami(stack: Stack, token: str, name: str):
    return stack.run_kubectl("auth", "whoami", "-o", "json", kubeconfig=stack.kubeconfig_for(token, name))


def test_service_account_token_reaches_the_apiserver_unchanged(passthrough):
    r = whoami(passthrough, passthrough.ci_token, "ci")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)["status"]["userInfo"]
    assert info["username"] == CI_SERVICE_ACCOUNT
    assert info["groups"] == ["system:serviceaccounts", "system:serviceaccounts:ci", "system:authenticated"]

    recorded = passthrough.recorded()
    reviews = [rec for rec in recorded if rec["path"] == TOKEN_REVIEWS]
    assert reviews and reviews[-1]["status"] == 201, reviews
    # The review was the proxy's; the request itself came with the CI
    # token (the stand-in authenticated it as the CI job) and no
    # impersonation.
    assert reviews[-1]["user"]["username"] == "system:serviceaccount:kube-oidc-authz:kube-oidc-authz"
    served = [rec for rec in recorded if rec["path"] == SELF_SUBJECT_REVIEWS]
    assert served[-1]["status"] == 201
    assert served[-1]["user"]["username"] == CI_SERVICE_ACCOUNT
    assert served[-1]["impersonate"] == []


def test_a_token_no_one_accepts_gets_401(passthrough):
    forged = ".".join([
        _b64({"alg": "RS256", "kid": "stand-in"}),
        _b64({"iss": AUDIENCE, "sub": CI_SERVICE_ACCOUNT, "aud": [AUDIENCE], "exp": 4102444800}),
        _b64({"sig": "made up"}),
    ])
    for name, token in [("forged", forged), ("garbage", "not-a-token-at-all")]:
        r = whoami(passthrough, token, name)
        assert r.returncode != 0, name
        assert "You must be logged in to the server" in r.stderr, (name, r.stderr)


def test_a_token_for_another_audience_gets_401(passthrough):
    r = whoami(passthrough, passthrough.ci_token_other_audience, "other-audience")
    assert r.returncode != 0
    assert "You must be logged in to the server" in r.stderr, r.stderr
