"""Load comparison of four Envoy set-ups in front of the same stand-in
apiserver, on one machine, in one run:

  noauth      Envoy with no authentication at all (the ceiling)
  jwt_authn   Envoy's native jwt_authn filter verifying the same tokens
  allow_all   Envoy + an ext_authz gRPC server that allows without looking
  authz       Envoy + kube-oidc-authz (the shipped configuration)

Every set-up starts from the shipped envoy/envoy.yaml as the demo renders it
(the end-to-end tests' stack, tests/e2e/stack.py, started without the audit
forwarder); only the authentication filters differ. Where no
ext_authz service supplies the upstream identity, the route adds the same
headers statically, so the apiserver does the same work in all four.

Usage (after `cargo build --release --bin kube-oidc-authz --example
allow_all_ext_authz`, with wrk installed):

  KUBE_OIDC_AUTHZ_BIN=target/release/kube-oidc-authz KUBE_OIDC_DEV_BIN=target/release/kube-oidc-dev \
  ALLOW_ALL_BIN=target/release/examples/allow_all_ext_authz \
  .venv/bin/python benches/envoy/compare.py --duration 10

Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]

from pyhelpers.procs import free_port, wait_until  # noqa: E402
from stack import Stack, https_context  # noqa: E402

PATH = "/api/v1/namespaces/default/pods"
# Many connections for the paced run, so that each one's wait dominates its
# service time and the offered rate stays near the target.
PACED_CONNECTIONS = 64


def hcm_of(cfg: dict) -> dict:
    return cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


def variant(base: dict, kind: str, stack: Stack, jwks: str, allow_all_port: int) -> dict:
    cfg = copy.deepcopy(base)
    hcm = hcm_of(cfg)
    # No audit forwarder runs here; the stdout log goes to a file in all four.
    hcm["access_log"] = [a for a in hcm["access_log"] if a["name"] != "envoy.access_loggers.http_grpc"]
    filters = hcm["http_filters"]
    router = filters[-1]
    ext_authz, lua = filters[0], filters[1]
    token = (stack.apiserver_dir / "token").read_text().strip()
    static_identity = [
        {"header": {"key": "authorization", "value": f"Bearer {token}"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"},
        {"header": {"key": "impersonate-user", "value": "banyan:alice@example.com"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"},
        {"header": {"key": "impersonate-group", "value": "banyan:any-employee-personal-device"}, "append_action": "APPEND_IF_EXISTS_OR_ADD"},
        {"header": {"key": "impersonate-group", "value": "banyan:developers"}, "append_action": "APPEND_IF_EXISTS_OR_ADD"},
    ]
    if kind == "authz":
        return cfg
    for route in hcm["route_config"]["virtual_hosts"][0]["routes"]:
        if "route" in route:
            route["request_headers_to_add"] = static_identity
            route.pop("typed_per_filter_config", None)
        else:
            route.pop("typed_per_filter_config", None)
    if kind == "noauth":
        hcm["http_filters"] = [router]
    elif kind == "jwt_authn":
        hcm["http_filters"] = [
            {
                "name": "envoy.filters.http.jwt_authn",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                    "providers": {
                        "oidc": {
                            "issuer": stack.issuer_url,
                            "audiences": ["kube-oidc-authz"],
                            "local_jwks": {"inline_string": jwks},
                            "forward": False,
                        }
                    },
                    "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "oidc"}}],
                },
            },
            router,
        ]
    elif kind == "allow_all":
        ext = copy.deepcopy(ext_authz)
        ext["typed_config"]["grpc_service"]["envoy_grpc"]["cluster_name"] = "allow_all"
        hcm["http_filters"] = [ext, lua, router]
        authz_cluster = next(c for c in cfg["static_resources"]["clusters"] if c["name"] == "kube_oidc_authz")
        allow = copy.deepcopy(authz_cluster)
        allow["name"] = "allow_all"
        allow["load_assignment"]["cluster_name"] = "allow_all"
        allow["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"] = allow_all_port
        cfg["static_resources"]["clusters"].append(allow)
    return cfg


WRK_DELAY = """
local d = {delay}
function delay() return d end
"""


def wrk(url: str, token: str, duration: int, connections: int, rate: float | None, workdir: Path, service_ms: float = 0) -> dict:
    """Closed loop at full speed, or paced near `rate` requests/s: each
    connection waits so that wait + service time spreads `rate` over them."""
    args = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-H", f"authorization: Bearer {token}"]
    if rate:
        script = workdir / "delay.lua"
        script.write_text(WRK_DELAY.format(delay=max(1, int(connections * 1000 / rate - service_ms))))
        args += ["-s", str(script)]
    out = subprocess.run([*args, url], capture_output=True, text=True, timeout=duration + 60).stdout

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            raise RuntimeError(f"no {label} in wrk output:\n{out}")
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: .*", out)
    return {
        "rps": rps,
        "requests": total,
        "p50": ms("50%"),
        "p99": ms("99%"),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "errors": errors.group(0) if errors else "",
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the four set-ups; medians are reported")
    ns = ap.parse_args()
    for tool in ("wrk",):
        if not shutil.which(tool):
            sys.exit(f"{tool} is required (apt-get install -y wrk)")
    allow_all_bin = os.environ.get("ALLOW_ALL_BIN")
    if not allow_all_bin or not Path(allow_all_bin).is_file():
        sys.exit("ALLOW_ALL_BIN must point at the allow_all_ext_authz example binary")

    work = Path(tempfile.mkdtemp(prefix="envoy-bench-"))
    stack = Stack(work, stream_idle_timeout="300s", audit=False)
    results: dict[str, dict] = {}
    allow_port = free_port()
    allow = subprocess.Popen([allow_all_bin, f"127.0.0.1:{allow_port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        stack.start()
        stack.procs["envoy"].stop()
        ctx = https_context(stack.issuer_ca)
        with urllib.request.urlopen(f"{stack.issuer_url}/keys", context=ctx) as r:
            jwks = r.read().decode()
        base = yaml.safe_load((stack.envoy_dir / "envoy.yaml").read_text())
        url = f"https://127.0.0.1:{stack.ports['envoy']}{PATH}"
        kinds = ("noauth", "jwt_authn", "allow_all", "authz")
        for kind in kinds:
            cfg = variant(base, kind, stack, jwks, allow_port)
            (work / f"envoy-{kind}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
            results[kind] = {"rounds": []}
        # Rounds interleave the set-ups (A B C D, A B C D, ...) so that a
        # noisy spell on the shared machine hits all of them alike; the
        # medians over rounds are reported.
        for _ in range(ns.rounds):
            for kind in kinds:
                log = open(work / f"envoy-{kind}.log", "ab")
                envoy = subprocess.Popen(
                    [str(stack.envoy), "-c", str(work / f"envoy-{kind}.yaml"), "--disable-hot-restart", "--concurrency", "1", "--log-level", "error"],
                    stdout=log, stderr=subprocess.STDOUT,
                )
                try:
                    wait_until(f"envoy {kind}", lambda: stack.envoy_request("GET", PATH, [("authorization", f"Bearer {stack.alice_token}")])[0] == 200, timeout=30, proc=envoy)
                    wrk(url, stack.alice_token, 2, ns.connections, None, work)  # warm-up
                    # CPU per request of Envoy and of the ext_authz server:
                    # far steadier on a shared machine than throughput.
                    checker = {"authz": stack.procs["authz"].pid, "allow_all": allow.pid}.get(kind)
                    e0, c0 = cpu_seconds(envoy.pid), cpu_seconds(checker) if checker else 0.0
                    r = wrk(url, stack.alice_token, ns.duration, ns.connections, None, work)
                    r["envoy_us"] = (cpu_seconds(envoy.pid) - e0) * 1e6 / r["requests"]
                    r["check_us"] = ((cpu_seconds(checker) - c0) * 1e6 / r["requests"]) if checker else 0.0
                    results[kind]["rounds"].append(r)
                finally:
                    envoy.terminate()
                    envoy.wait(timeout=10)
                    log.close()
        for kind in kinds:
            rounds = results[kind]["rounds"]
            results[kind]["max"] = {
                "rps": statistics.median(r["rps"] for r in rounds),
                "p50": statistics.median(r["p50"] for r in rounds),
                "p99": statistics.median(r["p99"] for r in rounds),
                "non2xx": sum(r["non2xx"] for r in rounds),
                "envoy_us": statistics.median(r["envoy_us"] for r in rounds),
                "check_us": statistics.median(r["check_us"] for r in rounds),
            }
        half = results["noauth"]["max"]["rps"] / 2
        ceiling_p50 = results["noauth"]["max"]["p50"] / 4
        for kind in ("noauth", "jwt_authn", "allow_all", "authz"):
            cfg_path = work / f"envoy-{kind}.yaml"
            envoy = subprocess.Popen(
                [str(stack.envoy), "-c", str(cfg_path), "--disable-hot-restart", "--concurrency", "1", "--log-level", "error"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            try:
                wait_until(f"envoy {kind}", lambda: stack.envoy_request("GET", PATH, [("authorization", f"Bearer {stack.alice_token}")])[0] == 200, timeout=30, proc=envoy)
                results[kind]["half"] = wrk(
                    url, stack.alice_token, ns.duration, PACED_CONNECTIONS, half, work, ceiling_p50
                )
            finally:
                envoy.terminate()
                envoy.wait(timeout=10)
    finally:
        allow.terminate()
        allow.wait(timeout=10)
        stack.stop()

    print(json.dumps(results, indent=2), file=sys.stderr)
    ceiling = results["noauth"]
    print(f"| set-up | req/s (max) | p50 ms | p99 ms | req/s at {half:.0f}/s target | p50 ms | p99 ms | p99 added vs ceiling ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for kind, r in results.items():
        m, h = r["max"], r["half"]
        print(
            f"| {kind} | {m['rps']:.0f} | {m['p50']:.2f} | {m['p99']:.2f} | {h['rps']:.0f} | {h['p50']:.2f} | {h['p99']:.2f} | {h['p99'] - ceiling['half']['p99']:+.2f} |"
        )
    a, al, j = results["authz"]["max"]["rps"], results["allow_all"]["max"]["rps"], results["jwt_authn"]["max"]["rps"]
    print()
    print("CPU per request (medians): " + ", ".join(
        f"{k} Envoy {r['max']['envoy_us']:.0f} µs" + (f" + ext_authz server {r['max']['check_us']:.0f} µs" if r["max"]["check_us"] else "")
        for k, r in results.items()
    ))
    print()
    print(f"Throughput medians over {ns.rounds} interleaved rounds; per round:")
    for i in range(ns.rounds):
        rr = {k: results[k]["rounds"][i]["rps"] for k in results}
        print(
            f"- round {i + 1}: " + ", ".join(f"{k} {v:.0f}" for k, v in rr.items())
            + f"; authz/allow_all {rr['authz'] / rr['allow_all']:.1%}, authz/jwt_authn {rr['authz'] / rr['jwt_authn']:.1%}"
        )
    print()
    print(f"- kube-oidc-authz / trivial ext_authz throughput: {a / al:.1%} (target >= 90%)")
    print(f"- kube-oidc-authz / jwt_authn throughput: {a / j:.1%} (target >= 85%)")
    print(f"- trivial ext_authz / jwt_authn throughput: {al / j:.1%} (the ext_authz hop alone)")
    print(f"- kube-oidc-authz / no-auth ceiling throughput: {a / ceiling['max']['rps']:.1%}")
    bad = {k: (r["max"]["non2xx"], r["half"]["non2xx"]) for k, r in results.items() if r["max"]["non2xx"] or r["half"]["non2xx"]}
    if bad:
        print(f"- non-2xx responses (max, half): {bad}")


if __name__ == "__main__":
    main()
