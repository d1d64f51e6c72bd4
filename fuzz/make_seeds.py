"""Writes the seed inputs of the fuzz targets into fuzz/seeds/<target>/.

Seeds start the fuzzer inside each grammar instead of at the empty input.
The protobuf seeds are encoded by hand (no protobuf runtime needed): wire
types 0 (varint), 1 (64-bit) and 2 (length-delimited) are all they use.

Run from the repository root: python3 fuzz/make_seeds.py
"""

import base64
import json
import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parent / "seeds"


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def vint(field: int, n: int) -> bytes:
    return varint(field << 3) + varint(n)


def ld(field: int, payload: bytes | str) -> bytes:
    if isinstance(payload, str):
        payload = payload.encode()
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def double(field: int, x: float) -> bytes:
    return varint(field << 3 | 1) + struct.pack("<d", x)


# google.protobuf.Value / ListValue / Struct
def v_str(s: str) -> bytes:
    return ld(3, s)


def v_list(items: list[bytes]) -> bytes:
    return ld(6, b"".join(ld(1, i) for i in items))


def v_struct(fields: dict[str, bytes]) -> bytes:
    return ld(5, pb_struct(fields))


def pb_struct(fields: dict[str, bytes]) -> bytes:
    return b"".join(ld(1, ld(1, k) + ld(2, v)) for k, v in fields.items())


def identity(mode: str) -> bytes:
    return pb_struct(
        {
            "mode": v_str(mode),
            "user": v_str("oidc:alice@example.com"),
            "issuer": v_str("https://issuer.example"),
            "uid": v_str("u-1"),
            "groups": v_list([v_str("oidc:dev"), v_str("oidc:ops"), double(2, 1.0)]),
            "extra": v_struct({"example.com/team": v_list([v_str("a"), v_str("b")])}),
            "impersonate_extra": v_struct({"impersonate-extra-example.com%2fteam": v_list([v_str("a")])}),
        }
    )


def access_log(method: int, path: str, seconds: int, mode: str) -> bytes:
    socket = ld(1, vint(1, 0) + ld(2, "10.0.0.7") + vint(3, 443))
    common = (
        ld(2, socket)  # downstream_remote_address
        + ld(5, vint(1, 1_700_000_000) + vint(2, 123_000))  # start_time
        + ld(12, vint(1, seconds) + vint(2, 5_000_000))  # last downstream tx byte
        + ld(17, ld(1, ld(1, "envoy.filters.http.ext_authz") + ld(2, identity(mode))))
    )
    request = vint(1, method) + ld(5, path) + ld(6, "kubectl/v1.31") + ld(8, "192.0.2.1, 198.51.100.2") + ld(9, "req-1")
    response = ld(1, vint(1, 200))
    return ld(1, common) + vint(2, 2) + ld(3, request) + ld(4, response)


def b64(obj: object) -> str:
    raw = json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


CLAIMS = {
    "iss": "https://issuer.example",
    "aud": ["kubernetes", "x"],
    "sub": "alice",
    "email": "alice@example.com",
    "email_verified": True,
    "groups": ["dev", None, "ops"],
    "roles": "admin",
    "uid": "u-1",
    "hd": "example.com",
    "jti": "j-1",
    "exp": 1_800_000_000,
    "nbf": 1_600_000_000,
    "iat": 1_600_000_000.5,
}
HEADER = {"alg": "RS256", "kid": "k1", "typ": "JWT"}


def seeds() -> dict[str, list[bytes]]:
    token = f"{b64(HEADER)}.{b64(CLAIMS)}.c2ln"
    json_claims = json.dumps(CLAIMS).encode()
    event = {
        "level": "RequestResponse",
        "auditID": "6a5e0d0e-0000-4000-8000-000000000001",
        "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/default/pods?watch=1",
        "verb": "watch",
        "user": {"username": "alice", "groups": ["dev"], "extra": {"k": ["v"]}},
        "impersonatedUser": {"username": "bob"},
        "sourceIPs": ["10.0.0.1"],
        "userAgent": "kubectl",
        "objectRef": {"resource": "pods", "namespace": "default", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestObject": {"spec": {"n": 1.5, "list": [1, -2, "x" * 3000]}},
        "requestReceivedTimestamp": "2024-01-01T00:00:00.000000Z",
        "stageTimestamp": "2024-01-01T00:00:00.100000Z",
        "annotations": {"a": "b"},
    }
    return {
        "bearer_jose": [
            b"\x00Bearer " + token.encode(),
            b"\x00bearer  " + token.encode() + b" trailing",
            b"\x01" + json.dumps(HEADER).encode() + b"\n" + json_claims + b"\nsig",
            b"\x01"
            + json.dumps({"alg": "ES256", "crit": ["b64"]}).encode()
            + b"\n"
            + json.dumps({"aud": "kubernetes", "exp": 1.8e9, "nbf": None}).encode()
            + b"\nx",
        ],
        "claims": [
            b"\x00" + json_claims,
            b"\x03" + json_claims,
            b"\x01" + json.dumps({"sub": "system:admin", "roles": ["system:masters"]}).encode(),
        ],
        "request_info": [
            b"\x00/api/v1/namespaces/default/pods/web-0/log?follow=true",
            b"\x00/apis/apps/v1/namespaces/kube-system/deployments?fieldSelector=metadata.name%3Dcoredns,a!=b&watch=true",
            b"\x02/apis/batch/v1/watch/namespaces/ns/jobs/j",
            b"\x04/api/v1/namespaces/ns/status",
            b"\x05/api/v1/proxy/nodes/n1:10250/metrics",
            b"\xffPROPFIND\n/healthz?verbose",
            # Regression: a multi-byte character in a field selector.
            b"\x00/api/v1/pods?fieldSelector=%5C%C3%A9%3D1",
        ],
        "event_list": [
            json.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [event]}).encode(),
            json.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1beta1"}).encode(),
        ],
        "access_log": [
            access_log(1, "/api/v1/namespaces/default/pods?watch=1", 2, "impersonate"),
            access_log(5, "/apis/apps/v1/namespaces/ns/deployments", 0, "passthrough"),
            access_log(9, "/version", 1, "none"),
            # Regressions: past the date range; a multi-byte field selector.
            access_log(1, "/api/v1/pods", 1 << 62, "impersonate"),
            access_log(1, "/api/v1/pods?fieldSelector=%C3%A9", -(1 << 40), "passthrough"),
        ],
        "metadata": [identity("impersonate"), identity("passthrough")],
        "duration": [s.encode() for s in ["0", "250ms", "1h2m3s4ms", "1.5h", ".5s", "10µs", "7ns", "2562047h"]],
        "boolean": [s.encode() for s in ["1", "t", "True", "FALSE", "f", "yes"]],
    }


def main() -> None:
    for target, inputs in seeds().items():
        d = ROOT / target
        d.mkdir(parents=True, exist_ok=True)
        for i, data in enumerate(inputs):
            (d / f"seed-{i:02}").write_bytes(data)


if __name__ == "__main__":
    main()
