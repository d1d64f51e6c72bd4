"""A renewed serving certificate in TLS_WATCH_DIR is served without
restarting Envoy (file-based SDS with a watched directory), the way a
Kubernetes Secret update swaps the files."""

import os
import shutil
import socket
import ssl

from stack import https_context, wait_until


def _served_by(stack, ca) -> bool:
    ctx = https_context(ca)
    with socket.create_connection(("127.0.0.1", stack.ports["envoy"]), timeout=5) as sock:
        try:
            with ctx.wrap_socket(sock, server_hostname="127.0.0.1"):
                return True
        except ssl.SSLCertVerificationError:
            return False


def _install(src_dir, tls_dir) -> None:
    # Write aside, then rename into place: what kubelet's atomic writer does.
    for name in ("tls.key", "tls.crt"):
        tmp = tls_dir / f".{name}.new"
        shutil.copy(src_dir / name, tmp)
        os.replace(tmp, tls_dir / name)


def test_renewed_certificate_is_served_without_restart(stack, tmp_path):
    tls_dir = stack.tls_dir
    envoy = stack.procs["envoy"]
    envoy_pid = envoy.pid
    original = tmp_path / "original"
    original.mkdir()
    for name in ("tls.crt", "tls.key"):
        shutil.copy(tls_dir / name, original / name)
    other_ca = stack.apiserver_dir / "ca.crt"
    assert _served_by(stack, stack.envoy_ca)
    try:
        # The stand-in apiserver's certificate is also valid for 127.0.0.1,
        # and signed by a different CA.
        _install(stack.apiserver_dir, tls_dir)
        wait_until("renewed certificate served", lambda: _served_by(stack, other_ca), timeout=20)
    finally:
        _install(original, tls_dir)
        wait_until("original certificate served again", lambda: _served_by(stack, stack.envoy_ca), timeout=20)
    assert stack.procs["envoy"] is envoy and envoy.pid == envoy_pid and envoy.running()
    assert stack.run_kubectl("get", "pods").returncode == 0
