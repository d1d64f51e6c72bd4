"""No Docker engine runs here, so the Dockerfile is checked for what makes
its binary the one the tests use: the same crate and lockfile, everything
the sources embed, and a distroless nonroot runtime."""

import re

from stack import ROOT


def _stages(text: str) -> list[list[str]]:
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_build_stage_uses_the_locked_crate():
    build, runtime = _stages((ROOT / "Dockerfile").read_text())
    text = "\n".join(build)
    assert "COPY Cargo.toml Cargo.lock" in text
    assert re.search(r"cargo build --release --locked", text)
    # Everything include_str! pulls in must be in the build context.
    for embedded in ("src", "envoy"):
        assert f"COPY {embedded} ./{embedded}" in text, embedded
    embedded_files = set()
    for path in (ROOT / "src").rglob("*.rs"):
        embedded_files.update(re.findall(r'include_str!\("([^"]+)"\)', path.read_text()))
    assert all("envoy/" in f for f in embedded_files), embedded_files


def test_runtime_is_distroless_nonroot():
    _, runtime = _stages((ROOT / "Dockerfile").read_text())
    assert runtime[0].startswith("FROM gcr.io/distroless/") and runtime[0].endswith(":nonroot")
    assert "USER 65532:65532" in runtime
    assert any(l.startswith("ENTRYPOINT") and "kube-oidc-authz" in l for l in runtime)


def test_build_context_leaves_out_local_state():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in ("target", ".venv", ".demo", ".git"):
        assert path in ignored
