"""Helpers shared by the Python test suites (tests/e2e, tests/chart) and the
Envoy benchmark; pytest.ini puts tests/ on sys.path so `pyhelpers` imports
from anywhere under it."""
