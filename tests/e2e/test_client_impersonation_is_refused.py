"""Without --allow-impersonation, a client's own Impersonate-* headers are
refused with 403 before anything reaches the apiserver: a forged
`system:masters` group must never arrive upstream."""

import pytest
from stack import Stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    s = Stack(tmp_path_factory.mktemp("no-impersonation"), audit=False, impersonation=False)
    try:
        s.start()
        yield s
    finally:
        s.stop()


def _never_upstream(stack, before: int, value: str):
    for rec in stack.recorded()[before:]:
        for name, v in rec["impersonate"]:
            assert value not in v, f"{name}: {v} reached the apiserver"


def test_kubectl_as_group_system_masters_is_refused(stack):
    before = len(stack.recorded())
    r = stack.run_kubectl("get", "pods", "--as", "banyan:alice@example.com", "--as-group", "system:masters")
    assert r.returncode != 0
    assert "Forbidden" in r.stderr, r.stderr
    _never_upstream(stack, before, "system:masters")


@pytest.mark.parametrize(
    "headers",
    [
        [("impersonate-group", "system:masters")],
        [("Impersonate-Group", "system:masters")],
        [("impersonate-user", "admin"), ("impersonate-group", "system:masters")],
        [("impersonate-uid", "system:masters")],
        [("impersonate-extra-scopes", "system:masters")],
    ],
)
def test_raw_impersonation_headers_are_refused(stack, headers):
    before = len(stack.recorded())
    status, body, _ = stack.envoy_request(
        "GET", "/api/v1/namespaces/default/pods", [("authorization", f"Bearer {stack.alice_token}"), *headers]
    )
    assert status == 403, body
    assert b'"reason":"Forbidden"' in body
    _never_upstream(stack, before, "system:masters")
    assert [rec for rec in stack.recorded()[before:] if rec["path"] != "/_stand-in/requests"] == []
