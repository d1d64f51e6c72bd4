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
allow_all_ext_authz`, with wrk and h2load installed; `make bench-envoy`
does all of it):

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
# Connections of the open-loop run. Each one sends its share of the rate on
# a timer, whatever the answers do, with room for many streams in flight.
OPEN_LOOP_CLIENTS = 8
OPEN_LOOP_STREAMS = 256


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
    # Diagnostic set-ups, never shipped: what one piece of the shipped
    # configuration costs Envoy per request.
    if kind == "authz_no_lua":
        # The group lines the Lua filter would write, added statically so
        # that the apiserver sees the same request.
        hcm["http_filters"] = [ext_authz, router]
        for route in hcm["route_config"]["virtual_hosts"][0]["routes"]:
            if "route" in route:
                route["request_headers_to_add"] = [h for h in static_identity if h["header"]["key"] == "impersonate-group"]
        return cfg
    if kind == "authz_no_log":
        hcm["access_log"] = []
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


def wrk(url: str, token: str, duration: int, connections: int) -> dict:
    """Closed loop at full speed: each connection sends its next request
    when the previous answer arrives."""
    args = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-H", f"authorization: Bearer {token}"]
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


def open_loop(url: str, token: str, duration: int, rate: float, workdir: Path) -> dict:
    """Open loop at `rate` requests/s (h2load --rps, HTTP/2 over TLS): requests
    leave on a timer whether or not earlier ones were answered, so queueing
    shows up in the latencies instead of lowering the rate (no coordinated
    omission while fewer than OPEN_LOOP_STREAMS are in flight per client)."""
    log = workdir / "h2load.log"
    log.unlink(missing_ok=True)
    per_client = max(1, round(rate / OPEN_LOOP_CLIENTS))
    args = [
        "h2load", f"-c{OPEN_LOOP_CLIENTS}", f"-m{OPEN_LOOP_STREAMS}", f"--rps={per_client}",
        f"-D{duration}", "--warm-up-time=1", f"--log-file={log}",
        "-H", f"authorization: Bearer {token}", url,
    ]
    subprocess.run(args, capture_output=True, text=True, timeout=duration + 60, check=True)
    rows = [line.split("\t") for line in log.read_text().splitlines() if line.strip()]
    latencies = sorted(int(r[2]) / 1000 for r in rows)
    ok = sum(1 for r in rows if r[1].startswith("2"))
    if not latencies:
        raise RuntimeError("h2load completed no request")

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    return {
        "offered": per_client * OPEN_LOOP_CLIENTS,
        "rps": len(rows) / duration,
        "requests": len(rows),
        "p50": pct(0.50),
        "p99": pct(0.99),
        "p999": pct(0.999),
        "non2xx": len(rows) - ok,
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
    ap.add_argument(
        "--diagnose",
        action="store_true",
        help="also measure kube-oidc-authz without the Lua filter and without the access log (closed loop only)",
    )
    ns = ap.parse_args()
    for tool, package in (("wrk", "wrk"), ("h2load", "nghttp2-client")):
        if not shutil.which(tool):
            sys.exit(f"{tool} is required (apt-get install -y {package})")
    allow_all_bin = os.environ.get("ALLOW_ALL_BIN")
    if not allow_all_bin or not Path(allow_all_bin).is_file():
        sys.exit("ALLOW_ALL_BIN must point at the allow_all_ext_authz example binary")

    work = Path(tempfile.mkdtemp(prefix="envoy-bench-"))
    stack = Stack(work, stream_idle_timeout="300s", audit=False)
    results: dict[str, dict] = {}
    kinds = ("noauth", "jwt_authn", "allow_all", "authz")
    diagnostic = ("authz_no_lua", "authz_no_log") if ns.diagnose else ()
    load_before = os.getloadavg()
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
        for kind in kinds + diagnostic:
            cfg = variant(base, kind, stack, jwks, allow_port)
            (work / f"envoy-{kind}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
            results[kind] = {"rounds": [], "open": []}
        authz_pid = stack.procs["authz"].pid
        checkers = {"authz": authz_pid, "allow_all": allow.pid, "authz_no_lua": authz_pid, "authz_no_log": authz_pid}

        def with_envoy(kind: str, measure):
            log = open(work / f"envoy-{kind}.log", "ab")
            envoy = subprocess.Popen(
                [str(stack.envoy), "-c", str(work / f"envoy-{kind}.yaml"), "--disable-hot-restart", "--concurrency", "1", "--log-level", "error"],
                stdout=log, stderr=subprocess.STDOUT,
            )
            try:
                wait_until(f"envoy {kind}", lambda: stack.envoy_request("GET", PATH, [("authorization", f"Bearer {stack.alice_token}")])[0] == 200, timeout=30, proc=envoy)
                return measure(envoy)
            finally:
                envoy.terminate()
                envoy.wait(timeout=10)
                log.close()

        def saturate(kind: str):
            def measure(envoy):
                wrk(url, stack.alice_token, 2, ns.connections)  # warm-up
                # CPU per request of Envoy and of the ext_authz server:
                # far steadier on a shared machine than throughput.
                checker = checkers.get(kind)
                e0, c0 = cpu_seconds(envoy.pid), cpu_seconds(checker) if checker else 0.0
                r = wrk(url, stack.alice_token, ns.duration, ns.connections)
                r["envoy_us"] = (cpu_seconds(envoy.pid) - e0) * 1e6 / r["requests"]
                r["check_us"] = ((cpu_seconds(checker) - c0) * 1e6 / r["requests"]) if checker else 0.0
                return r
            return with_envoy(kind, measure)

        # Rounds interleave the set-ups (A B C D, A B C D, ...) so that a
        # noisy spell on the shared machine hits all of them alike; the
        # medians over rounds are reported.
        for _ in range(ns.rounds):
            for kind in kinds + diagnostic:
                results[kind]["rounds"].append(saturate(kind))
        for kind in kinds + diagnostic:
            rounds = results[kind]["rounds"]
            results[kind]["max"] = {
                key: statistics.median(r[key] for r in rounds) for key in ("rps", "p50", "p99", "envoy_us", "check_us")
            }
            results[kind]["max"]["non2xx"] = sum(r["non2xx"] for r in rounds)
        # Latency at half the ceiling's saturation rate, open loop, also in
        # interleaved rounds.
        half = results["noauth"]["max"]["rps"] / 2
        for _ in range(ns.rounds):
            for kind in kinds:
                results[kind]["open"].append(with_envoy(kind, lambda _e: open_loop(url, stack.alice_token, ns.duration, half, work)))
        for kind in kinds:
            rounds = results[kind]["open"]
            results[kind]["half"] = {key: statistics.median(r[key] for r in rounds) for key in ("rps", "p50", "p99", "p999")}
            results[kind]["half"]["non2xx"] = sum(r["non2xx"] for r in rounds)
    finally:
        allow.terminate()
        allow.wait(timeout=10)
        stack.stop()
    load_after = os.getloadavg()

    print(json.dumps(results, indent=2), file=sys.stderr)
    ceiling = results["noauth"]
    print(f"Load average (1, 5, 15 min) before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}; "
          f"after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    print()
    print(f"| set-up | req/s (max) | p50 ms | p99 ms | Envoy CPU/req µs | ext_authz CPU/req µs | open loop {half:.0f}/s: req/s | p50 ms | p99 ms | p99.9 ms | added p99 ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for kind, r in results.items():
        m, h = r["max"], r.get("half")
        if h is None:
            check = f"{m['check_us']:.0f}" if m["check_us"] else ""
            print(f"| {kind} | {m['rps']:.0f} | {m['p50']:.2f} | {m['p99']:.2f} | {m['envoy_us']:.0f} | {check} | | | | | |")
            continue
        check = f"{m['check_us']:.0f}" if m["check_us"] else ""
        print(
            f"| {kind} | {m['rps']:.0f} | {m['p50']:.2f} | {m['p99']:.2f} | {m['envoy_us']:.0f} | {check} | "
            f"{h['rps']:.0f} | {h['p50']:.2f} | {h['p99']:.2f} | {h['p999']:.2f} | {h['p99'] - ceiling['half']['p99']:+.2f} |"
        )
    a, al, j = results["authz"]["max"]["rps"], results["allow_all"]["max"]["rps"], results["jwt_authn"]["max"]["rps"]
    print()
    print(f"Medians over {ns.rounds} interleaved rounds; per round:")
    for i in range(ns.rounds):
        rr = {k: results[k]["rounds"][i]["rps"] for k in results}
        oo = {k: results[k]["open"][i]["p99"] for k in kinds}
        print(
            f"- round {i + 1}: " + ", ".join(f"{k} {v:.0f}" for k, v in rr.items())
            + f"; authz/allow_all {rr['authz'] / rr['allow_all']:.1%}, authz/jwt_authn {rr['authz'] / rr['jwt_authn']:.1%}"
            + "; open-loop p99 ms " + ", ".join(f"{k} {v:.2f}" for k, v in oo.items())
        )
    print()
    print(f"- kube-oidc-authz / trivial ext_authz throughput: {a / al:.1%} (target >= 90%)")
    print(f"- kube-oidc-authz / jwt_authn throughput: {a / j:.1%} (target >= 90%)")
    print(f"- trivial ext_authz / jwt_authn throughput: {al / j:.1%} (the ext_authz hop alone)")
    print(f"- kube-oidc-authz / no-auth ceiling throughput: {a / ceiling['max']['rps']:.1%}")
    print(f"- added p99 over no auth, open loop at {half:.0f}/s: {results['authz']['half']['p99'] - ceiling['half']['p99']:+.2f} ms")
    bad = {k: (r["max"]["non2xx"], r.get("half", {}).get("non2xx", 0)) for k, r in results.items() if r["max"]["non2xx"] or r.get("half", {}).get("non2xx")}
    if bad:
        print(f"- non-2xx responses (max, open loop): {bad}")


if __name__ == "__main__":
    main()
