"""No Docker engine runs here, so the Dockerfile is checked for what makes
its binary the one the tests use: the same crate and lockfile, the product
package only (none of the development tools or their dependencies),
everything the sources embed, and a distroless nonroot runtime. The binary
that command builds is then asked for its subcommands."""

import re
import shlex
import subprocess

from stack import ROOT, binary

DEV_SUBCOMMANDS = ("dev-issuer", "stand-in-apiserver", "stand-in-cse", "demo", "render-envoy")
# Crates that only the development tools use (the dev crate itself, and
# rcgen, which mints its certificates); the product must not link them.
# hyper-util, tokio-rustls and subtle, which the dev tools also name, reach
# the product through tonic, reqwest and axum anyway.
DEV_ONLY_CRATES = ("kube-oidc-dev", "rcgen")


def _stages(text: str) -> list[list[str]]:
    stages: list[list[str]] = []
    for line in text.replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def _cargo_builds(build_stage: list[str]) -> list[list[str]]:
    """Every `cargo build` command line of the build stage, as argv."""
    builds = []
    for line in build_stage:
        for part in line.split("&&"):
            argv = shlex.split(part.removeprefix("RUN "))
            if argv[:2] == ["cargo", "build"]:
                builds.append(argv)
    return builds


def test_build_stage_builds_only_the_locked_product():
    build, _ = _stages((ROOT / "Dockerfile").read_text())
    text = "\n".join(build)
    assert "COPY Cargo.toml Cargo.lock" in text
    builds = _cargo_builds(build)
    assert builds, "no cargo build in the build stage"
    for argv in builds:
        assert "--release" in argv and "--locked" in argv, argv
        assert argv[argv.index("-p") + 1] == "kube-oidc-authz", argv
        assert argv[argv.index("--bin") + 1] == "kube-oidc-authz", argv
    # The development crate's sources never enter the image's build.
    assert not re.search(r"^COPY dev\b(?!/Cargo.toml)", text, re.M), "dev sources are copied"
    # Everything include_str! pulls into the product must be in the build context.
    for path in (ROOT / "src").rglob("*.rs"):
        for embedded in re.findall(r'include_str!\("([^"]+)"\)', path.read_text()):
            top = (path.parent / embedded).resolve().relative_to(ROOT).parts[0]
            assert f"COPY {top} ./{top}" in text, (path, embedded)


def test_product_dependency_tree_has_no_dev_only_crate():
    # What `cargo build -p kube-oidc-authz` compiles: normal dependencies only.
    tree = subprocess.run(
        ["cargo", "tree", "--locked", "--offline", "-p", "kube-oidc-authz", "-e", "normal,build",
         "--prefix", "none", "--format", "{p}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    names = {line.split()[0] for line in tree.splitlines() if line.strip()}
    assert "kube-oidc-authz" in names
    leaked = sorted(names & set(DEV_ONLY_CRATES))
    assert not leaked, f"the product depends on development-only crates: {leaked}"


def test_product_binary_has_no_dev_subcommand():
    # The product binary is built from the same package and target as the
    # image's (`-p kube-oidc-authz --bin kube-oidc-authz`).
    for sub in DEV_SUBCOMMANDS:
        result = subprocess.run([str(binary()), sub, "--help"], capture_output=True, text=True, timeout=30)
        assert result.returncode == 2, (sub, result.returncode)
        assert "unrecognized subcommand" in result.stderr, result.stderr
    help_text = subprocess.run([str(binary()), "--help"], capture_output=True, text=True, timeout=30,
                               check=True).stdout
    commands = re.findall(r"^  (\S+)", help_text.split("Commands:")[1].split("Options:")[0], re.M)
    assert sorted(commands) == ["audit-forwarder", "authz", "help"], commands


def test_runtime_is_distroless_nonroot():
    _, runtime = _stages((ROOT / "Dockerfile").read_text())
    assert runtime[0].startswith("FROM gcr.io/distroless/") and runtime[0].endswith(":nonroot")
    assert "USER 65532:65532" in runtime
    assert any(line.startswith("ENTRYPOINT") and "kube-oidc-authz" in line for line in runtime)
    copies = [line for line in runtime if line.startswith("COPY")]
    assert copies == ["COPY --from=build /out/kube-oidc-authz /usr/local/bin/kube-oidc-authz"], copies


def test_build_context_leaves_out_local_state():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in ("target", ".venv", ".demo", ".git"):
        assert path in ignored
