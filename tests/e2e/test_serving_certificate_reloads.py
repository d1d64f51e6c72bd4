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


def _install(src_dir, crt: str, key: str, tls_dir) -> None:
    # Write aside, then rename into place: what kubelet's atomic writer does.
    for name, src in (("tls.key", key), ("tls.crt", crt)):
        tmp = tls_dir / f".{name}.new"
        shutil.copy(src_dir / src, tmp)
        os.replace(tmp, tls_dir / name)


def test_renewed_certificate_is_served_without_restart(stack):
    tls_dir = stack.dir / "envoy" / "tls"
    envoy_pid = stack.procs["envoy"].popen.pid
    issuer_ca = stack.dir / "issuer" / "ca.crt"
    other_ca = stack.apiserver_dir / "ca.crt"
    assert _served_by(stack, issuer_ca)
    try:
        # The stand-in apiserver's certificate is also valid for 127.0.0.1,
        # and signed by a different CA.
        _install(stack.apiserver_dir, "tls.crt", "tls.key", tls_dir)
        wait_until("renewed certificate served", lambda: _served_by(stack, other_ca), timeout=20)
    finally:
        _install(stack.dir / "issuer", "issuer.crt", "issuer.key", tls_dir)
        wait_until("original certificate served again", lambda: _served_by(stack, issuer_ca), timeout=20)
    assert stack.procs["envoy"].popen.pid == envoy_pid and stack.procs["envoy"].popen.poll() is None
    assert stack.run_kubectl("get", "pods").returncode == 0
