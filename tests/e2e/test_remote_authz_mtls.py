"""The Check port and the access-log input apart from Envoy, over mutual TLS
(`--grpc-tls-*`, `--als-tls-*`, Envoy's clusters from
envoy/remote-authz.yaml rendered by the same renderer as the demo): kubectl
works through Envoy, the audit event arrives, and a caller without Envoy's
client certificate gets no answer from the Check port, so it never sees the
proxy's service-account token."""

import json
import socket
import ssl
import urllib.request

import pytest
from stack import Stack, wait_until

USER_AGENT = "kubectl/v1.32.0 (remote-authz-mtls)"


@pytest.fixture(scope="module")
def mtls_stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("mtls-stack"), authz_mtls=True, audit_batch_max_wait="200ms")
    try:
        s.start()
        yield s
    finally:
        s.stop()


def _mtls_dir(stack):
    return stack.dir / "authz-mtls"


def _answers_h2(stack, port: int, with_client_cert: bool) -> bool:
    """Whether the port completes TLS and speaks HTTP/2 to this caller."""
    d = _mtls_dir(stack)
    ctx = ssl.create_default_context(cafile=str(d / "envoy-client" / "ca.crt"))
    ctx.set_alpn_protocols(["h2"])
    if with_client_cert:
        ctx.load_cert_chain(d / "envoy-client" / "tls.crt", d / "envoy-client" / "tls.key")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
                frame = tls.recv(9)
                # The server's SETTINGS frame: type 4.
                return len(frame) == 9 and frame[3] == 4
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            return False


def test_kubectl_works_through_envoy_with_mutual_tls_to_the_check_port(mtls_stack):
    r = mtls_stack.run_kubectl("auth", "whoami", "-o", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"]["userInfo"]["username"] == "banyan:alice@example.com"
    assert "--grpc-tls-client-ca-file" in " ".join(mtls_stack.procs["authz"].argv)


def test_the_check_port_answers_only_envoys_client_certificate(mtls_stack):
    port = mtls_stack.ports["authz_grpc"]
    assert _answers_h2(mtls_stack, port, with_client_cert=True)
    assert not _answers_h2(mtls_stack, port, with_client_cert=False)
    # Plaintext HTTP/2 (what a caller of an unprotected port would send).
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
        try:
            frame = raw.recv(9)
        except ConnectionResetError:
            frame = b""
        assert not (len(frame) == 9 and frame[3] == 4), frame


def test_access_log_over_mutual_tls_reaches_the_cse_api(mtls_stack):
    als = mtls_stack.addresses["audit-forwarder"]["als"]
    assert not _answers_h2(mtls_stack, int(als.rsplit(":", 1)[1]), with_client_cert=False)
    status, _, _ = mtls_stack.envoy_request(
        "GET", "/api/v1/namespaces/default/pods",
        [("authorization", f"Bearer {mtls_stack.alice_token}"), ("user-agent", USER_AGENT)],
    )
    assert status == 200

    def delivered():
        with urllib.request.urlopen(f"{mtls_stack.cse_url}/_stand-in/batches", timeout=5) as r:
            batches = json.load(r)
        return [e for b in batches for e in b["body"]["events"]["items"] if e.get("userAgent") == USER_AGENT]

    events = wait_until("the event at the stand-in CSE API", delivered, timeout=20)
    assert events[0]["user"]["username"] == "banyan:alice@example.com"
    assert events[0]["verb"] == "list"
