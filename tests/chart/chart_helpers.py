"""Shared helpers of the chart tests: load the chart once with the Helm v4 SDK
and render it offline (no cluster; `lookup` finds nothing, as on a first
install)."""

from __future__ import annotations

import os
import pathlib

import helm_python as helm
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "helm" / "kube-oidc-authz"
TESTS_DIR = pathlib.Path(__file__).resolve().parent
VALUES_DIR = TESTS_DIR / "values"
GOLDEN_DIR = TESTS_DIR / "golden"
# The one table of the Envoy templates' ${NAME} placeholders and their pod values.
PLACEHOLDERS_FILE = ROOT / "envoy" / "placeholders.yaml"

RELEASE = "kube-oidc-authz"
NAMESPACE = "kube-oidc-authz"

# Named value sets rendered into golden files; each is a file under values/.
CASES = ["default", "guide", "authz-only", "cert-manager", "everything", "authentication-config"]


def placeholders() -> dict[str, dict]:
    """envoy/placeholders.yaml: each placeholder's name mapped to its row
    (`pod`, optionally `compose`, `description`)."""
    return yaml.safe_load(PLACEHOLDERS_FILE.read_text())


def load_values(case: str) -> dict:
    return yaml.safe_load((VALUES_DIR / f"{case}.yaml").read_text()) or {}


@pytest.fixture(scope="session")
def chart():
    with helm.Chart.load(str(CHART_DIR)) as c:
        yield c


class Rendered:
    """The manifests of one render, parsed, plus the NOTES text."""

    def __init__(self, files: dict[str, str]):
        self.files = files
        self.notes = ""
        self.docs: list[dict] = []
        self.sources: list[tuple[str, dict]] = []
        for path in sorted(files):
            text = files[path]
            if path.endswith("NOTES.txt"):
                self.notes = text
                continue
            for doc in yaml.safe_load_all(text):
                if doc:
                    self.docs.append(doc)
                    self.sources.append((path, doc))

    def kinds(self) -> list[str]:
        return sorted(d["kind"] for d in self.docs)

    def one(self, kind: str, name: str | None = None) -> dict:
        found = [
            d
            for d in self.docs
            if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
        ]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
        return found[0]

    def all(self, kind: str) -> list[dict]:
        return [d for d in self.docs if d["kind"] == kind]

    def container(self, name: str) -> dict:
        pod = self.one("Deployment")["spec"]["template"]["spec"]
        for c in pod["containers"]:
            if c["name"] == name:
                return c
        raise AssertionError(f"no container {name}")

    def envoy_config(self) -> str:
        return self.one("ConfigMap", f"{self.fullname()}-envoy")["data"]["envoy.yaml"]

    def fullname(self) -> str:
        return self.one("Deployment")["metadata"]["name"]


def render(chart, values: dict, name: str = RELEASE, namespace: str = NAMESPACE) -> Rendered:
    return Rendered(chart.render(values, name=name, namespace=namespace, is_install=True))


@pytest.fixture(scope="session")
def render_case(chart):
    cache: dict[str, Rendered] = {}

    def _render(case: str) -> Rendered:
        if case not in cache:
            cache[case] = render(chart, load_values(case))
        return cache[case]

    return _render


def check_generated_section(path: pathlib.Path, begin: str, end: str, body: str, what: str) -> None:
    """The part of `path` between the markers `begin` and `end` must be
    `body`; with UPDATE_GOLDEN set it is rewritten instead."""
    text = path.read_text()
    assert begin in text and end in text, f"{path.name} lost its {what} markers"
    head, _, rest = text.partition(begin)
    _, _, tail = rest.partition(end)
    want = head + begin + body + end + tail
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(want)
    assert path.read_text() == want, (
        f"the {what} of {path} is out of date: run UPDATE_GOLDEN=1 .venv/bin/pytest tests/chart"
    )
