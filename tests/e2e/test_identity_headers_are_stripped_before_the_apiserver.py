"""Defence in depth in `impersonation.lua`: whatever the authz service was
shown, no identity a client wrote reaches the apiserver beside the proxy's
token. Request-header authentication (X-Remote-*), the websocket bearer
subprotocol, and, in an Envoy that does not forward `impersonate-*` to the
service, every client `Impersonate-*` line the filter did not write."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from stack import Proc, free_port, https_context, wait_until

PODS = "/api/v1/namespaces/default/pods"
BEARER_PROTOCOL = "base64url.bearer.authorization.k8s.io."


def _upstream_headers(stack, before: int, path: str) -> list[tuple[str, str]]:
    recs = [r for r in stack.recorded()[before:] if r["path"] == path]
    assert len(recs) == 1, recs
    return [(n.lower(), v) for n, v in recs[0]["headers"]]


def test_request_header_authentication_and_bearer_subprotocol_are_stripped(stack):
    before = len(stack.recorded())
    status, body, _ = stack.envoy_request(
        "GET",
        PODS,
        [
            ("authorization", f"Bearer {stack.alice_token}"),
            ("x-remote-user", "system:admin"),
            ("x-remote-group", "system:masters"),
            ("x-remote-extra-scopes", "everything"),
            ("sec-websocket-protocol", f"{BEARER_PROTOCOL}Zm9yZ2Vk, v5.channel.k8s.io"),
        ],
    )
    assert status in (200, 403), body
    headers = _upstream_headers(stack, before, PODS)
    assert [n for n, _ in headers if n.startswith("x-remote-")] == [], headers
    protocols = [p.strip() for n, v in headers if n == "sec-websocket-protocol" for p in v.split(",")]
    assert protocols == ["v5.channel.k8s.io"], headers


@pytest.fixture(scope="module")
def envoy_without_impersonate_headers(stack, tmp_path_factory):
    """A second Envoy on the shipped config, but whose ext_authz does not
    send `impersonate-*` to the service: what a self-run Envoy may do."""
    shipped = (stack.envoy_dir / "envoy.yaml").read_text()
    assert "- prefix: impersonate-\n" in shipped
    config = shipped.replace("- prefix: impersonate-\n", "- exact: x-not-sent\n")
    listen, admin = free_port(), free_port()
    config = re.sub(rf"port_value: {stack.ports['envoy']}\b", f"port_value: {listen}", config)
    config = re.sub(rf"port_value: {stack.ports['envoy_admin']}\b", f"port_value: {admin}", config)
    d: Path = tmp_path_factory.mktemp("envoy-byo")
    (d / "envoy.yaml").write_text(config)
    p = Proc(
        "envoy-byo",
        [stack.envoy, "-c", d / "envoy.yaml", "--disable-hot-restart", "--log-level", "warn"],
        d / "envoy.log",
    ).start()
    try:
        ctx = https_context(stack.envoy_ca)

        def ready():
            return stack._request(f"https://127.0.0.1:{listen}/envoy-healthz", ctx, "GET", [], None)[0] == 200

        wait_until("envoy-byo listener", ready, timeout=60, proc=p, log=p.log)
        yield listen
    finally:
        p.stop()
        shutil.rmtree(d, ignore_errors=True)


def test_client_impersonate_headers_are_removed_when_the_service_never_saw_them(stack, envoy_without_impersonate_headers):
    port = envoy_without_impersonate_headers
    before = len(stack.recorded())
    status, body, _ = stack._request(
        f"https://127.0.0.1:{port}{PODS}",
        https_context(stack.envoy_ca),
        "GET",
        [
            ("authorization", f"Bearer {stack.alice_token}"),
            ("impersonate-uid", "forged-uid"),
            ("impersonate-extra-scopes", "forged-scope"),
            ("impersonate-group", "system:masters"),
            ("impersonate-user", "system:admin"),
        ],
        None,
    )
    assert status in (200, 403), body
    recs = [r for r in stack.recorded()[before:] if r["path"] == PODS]
    assert len(recs) == 1, recs
    for name, value in recs[0]["impersonate"]:
        assert "forged" not in value and value not in ("system:masters", "system:admin"), (name, value)
    names = {n for n, _ in recs[0]["impersonate"]}
    assert "impersonate-extra-scopes" not in names, recs[0]["impersonate"]
    assert recs[0]["user"]["username"] == "banyan:alice@example.com"
