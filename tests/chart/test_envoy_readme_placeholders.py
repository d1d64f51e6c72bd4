"""envoy/README.md's placeholder table is generated from envoy/placeholders.yaml
and compared with what is committed, so the README lists exactly the names and
pod values every renderer uses. Regenerate with
UPDATE_GOLDEN=1 .venv/bin/pytest tests/chart
"""

from __future__ import annotations

from chart_helpers import ROOT, check_generated_section, placeholders

README = ROOT / "envoy" / "README.md"
BEGIN = "<!-- placeholder table: generated from placeholders.yaml by tests/chart/test_envoy_readme_placeholders.py -->\n"
END = "<!-- end of placeholder table -->\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _table() -> str:
    out = ["| placeholder | in the Kubernetes pod | in docker-compose | what it sets |", "| --- | --- | --- | --- |"]
    for name, row in placeholders().items():
        compose = f"`{_cell(str(row['compose']))}`" if "compose" in row else ""
        out.append(f"| `{name}` | `{_cell(str(row['pod']))}` | {compose} | {_cell(row.get('description', ''))} |")
    return "\n".join(out) + "\n"


def _committed_rows() -> dict[str, str]:
    """The README table as committed: placeholder name to pod value."""
    readme = README.read_text()
    assert BEGIN in readme and END in readme, "envoy/README.md lost its placeholder-table markers"
    body = readme.partition(BEGIN)[2].partition(END)[0]
    rows = {}
    for line in body.splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        rows[cells[0].strip("`")] = cells[1].strip("`")
    return rows


def test_envoy_readme_lists_every_placeholder_with_its_pod_value():
    want = {name: str(row["pod"]) for name, row in placeholders().items()}
    assert _committed_rows() == want


def test_envoy_readme_placeholder_table_is_current():
    check_generated_section(README, BEGIN, END, _table(), "placeholder table")
