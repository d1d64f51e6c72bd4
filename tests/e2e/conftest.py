"""Fixtures for the end-to-end tests: one stack per session, started by
`kube-oidc-dev demo` (issuer, stand-in apiserver, authz service, audit
forwarder with the stand-in CSE API, Envoy with the shipped config)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stack import Stack  # noqa: E402


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory):
    s = Stack(tmp_path_factory.mktemp("stack"))
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="session")
def admin_token(stack: Stack) -> str:
    """A token whose only role is the guide's cluster-admin one."""
    return stack.mint(roles=["all-admins-corporate-device"])
