"""The chart README documents every value: its values table is generated from
values.yaml (a "# --" comment documents the key below it) and compared with
what is committed. Regenerate with UPDATE_GOLDEN=1 .venv/bin/pytest tests/chart
"""

from __future__ import annotations

import json
import re

import yaml
from chart_helpers import CHART_DIR, check_generated_section

BEGIN = "<!-- values table: generated from values.yaml by tests/chart/test_chart_readme.py -->\n"
END = "<!-- end of values table -->\n"
KEY = re.compile(r"^(\s*)([A-Za-z][A-Za-z0-9_]*):(?:\s|$)")
DOC = re.compile(r"^\s*# -- (.*)$")


def _rows() -> list[tuple[str, str, str]]:
    text = (CHART_DIR / "values.yaml").read_text()
    values = yaml.safe_load(text)
    rows: list[tuple[str, str, str]] = []
    stack: list[tuple[int, str]] = []
    described_prefix: str | None = None
    doc: str | None = None
    for line in text.splitlines():
        m = DOC.match(line)
        if m:
            doc = m.group(1).strip()
            continue
        m = KEY.match(line)
        if not m:
            continue
        indent, key = len(m.group(1)), m.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        path = ".".join(k for _, k in stack)
        if described_prefix and path.startswith(described_prefix + "."):
            doc = None
            continue
        value = values
        for _, k in stack:
            value = value[k]
        if doc is not None:
            rows.append((path, json.dumps(value, separators=(", ", ": ")), doc))
            described_prefix = path if isinstance(value, dict) and value else None
        elif not isinstance(value, dict) or not value:
            rows.append((path, json.dumps(value), ""))
        doc = None
    return rows


def _table() -> str:
    out = ["| Key | Default | Description |", "| --- | --- | --- |"]
    for key, default, desc in _rows():
        default = default.replace("|", "\\|")
        out.append(f"| `{key}` | `{default}` | {desc.replace('|', chr(92) + '|')} |")
    return "\n".join(out) + "\n"


def test_every_value_has_a_description():
    undocumented = [key for key, _, desc in _rows() if not desc]
    assert undocumented == [], f"values without a '# --' comment in values.yaml: {undocumented}"


def test_every_schema_key_is_documented():
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    documented = {key for key, _, _ in _rows()}

    def walk(node: dict, prefix: str) -> list[str]:
        missing = []
        for name, sub in node.get("properties", {}).items():
            path = f"{prefix}{name}"
            if path in documented or any(d.startswith(path + ".") for d in documented):
                if sub.get("additionalProperties") is False:
                    missing += walk(sub, path + ".")
            elif path != "global":
                missing.append(path)
        return missing

    assert walk(schema, "") == []


def test_readme_values_table_is_current():
    check_generated_section(CHART_DIR / "README.md", BEGIN, END, _table(), "values table")
