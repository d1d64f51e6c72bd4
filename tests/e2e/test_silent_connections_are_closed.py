"""A connection that never starts TLS is closed by Envoy once the shipped
handshake timeout (`transport_socket_connect_timeout`) passes: idle sockets
cannot pile up until the connection cap."""

import re
import socket
import time

from stack import ENVOY_DIR


def _handshake_timeout_seconds() -> float:
    text = (ENVOY_DIR / "envoy.yaml").read_text()
    m = re.search(r"^[\s-]*transport_socket_connect_timeout:\s*(\d+)s\s*$", text, re.M)
    assert m, "envoy.yaml sets no transport_socket_connect_timeout on its filter chain"
    return float(m.group(1))


def test_a_connection_that_sends_nothing_is_closed_within_the_handshake_timeout(stack):
    limit = _handshake_timeout_seconds()
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", stack.ports["envoy"]), timeout=limit + 5) as s:
        try:
            data = s.recv(1)
        except ConnectionResetError:
            data = b""
        except socket.timeout:
            raise AssertionError(f"Envoy kept a silent connection open for {limit + 5:.0f} s") from None
    elapsed = time.monotonic() - start
    assert data == b""
    assert elapsed <= limit + 2, f"closed after {elapsed:.1f} s, the handshake timeout is {limit:.0f} s"
