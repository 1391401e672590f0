"""Shared test fixtures.

Capability skips: a test that needs something this host may lack calls `need(cond, what)`.
On a developer's machine that skips with the reason; under CI (CI=true) or NETOBS_STRICT=1
it fails, because CI runs where every capability the tests use is present.
"""
from __future__ import annotations

import os

import pytest

STRICT = os.environ.get("CI", "").lower() in ("1", "true", "yes") or os.environ.get("NETOBS_STRICT") == "1"
IS_ROOT = os.geteuid() == 0


def need(condition: bool, what: str) -> None:
    """Skip (or, in CI, fail) unless `condition` holds; `what` names the capability."""
    if condition:
        return
    if STRICT:
        pytest.fail(f"capability missing in CI: {what}", pytrace=False)
    pytest.skip(f"needs {what}")


@pytest.fixture
def root():
    need(IS_ROOT, "root")
