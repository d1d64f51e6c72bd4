"""Fixtures of the chart tests (helpers live in chart_helpers)."""

from chart_helpers import chart, render_case  # noqa: F401  (pytest fixtures)
