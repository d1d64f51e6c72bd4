"""Envoy is the edge: what a client says about its own address never
reaches the apiserver. X-Real-IP and Forwarded are removed, and
X-Forwarded-For holds only the peer Envoy saw, not the client's claim.

For a loopback peer Envoy writes its own host address rather than
127.0.0.1, so the peer is read from a request that sent no forwarding
headers at all: a spoofing request must arrive with exactly the same
X-Forwarded-For."""

import ipaddress

PATH = "/api/v1/namespaces/default/pods"


def _upstream(stack, extra: list[tuple[str, str]]) -> dict[str, list[str]]:
    before = len(stack.recorded())
    status, body, _ = stack.envoy_request("GET", PATH, [("authorization", f"Bearer {stack.alice_token}"), *extra])
    assert status in (200, 403), body
    recs = [r for r in stack.recorded()[before:] if r["path"] == PATH]
    assert len(recs) == 1, recs
    headers: dict[str, list[str]] = {}
    for name, value in recs[0]["headers"]:
        headers.setdefault(name, []).append(value)
    return headers


def test_client_forwarding_headers_never_reach_the_apiserver(stack):
    plain = _upstream(stack, [])
    peer = plain["x-forwarded-for"]
    assert len(peer) == 1 and "," not in peer[0], peer
    ipaddress.ip_address(peer[0])

    spoofed = _upstream(
        stack,
        [
            ("x-forwarded-for", "198.51.100.66"),
            ("x-real-ip", "198.51.100.67"),
            ("forwarded", "for=198.51.100.68;proto=https"),
        ],
    )
    assert "x-real-ip" not in spoofed, spoofed
    assert "forwarded" not in spoofed, spoofed
    assert spoofed["x-forwarded-for"] == peer, spoofed["x-forwarded-for"]
