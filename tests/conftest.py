"""Shared test constants and fixtures (the one place for them).

Tiers: `make unit` (`-m 'not root'`) needs no root and no network namespaces; every test that
needs root, itself or through a fixture (`root`, `prepared`, a namespace, sshd), carries
`@pytest.mark.root` (collection fails on one that does not: see `pytest_collection_modifyitems`).
CI also runs the unit tier as a user who is not root, which checks the marks for real.

Capability skips: a test that needs something this host may lack calls `need(cond, what)`.
On a developer's machine that skips with the reason; under CI (CI=true) or NETOBS_STRICT=1
it fails, because CI runs where every capability the tests use is present. A test never
assumes a capability's presence or absence where the host decides it (hardware counters):
it branches on what the probe found and plants the other branch with a simulated refusal.
"""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest

STRICT = os.environ.get("CI", "").lower() in ("1", "true", "yes") or os.environ.get("NETOBS_STRICT") == "1"
IS_ROOT = os.geteuid() == 0

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
FIXTURES = TESTS / "fixtures"
GOLDEN = FIXTURES / "golden"
NETOBS = [sys.executable, "-m", "netobs"]            # the CLI, in this interpreter
NETOBS_BIN = str(Path(sys.prefix) / "bin" / "netobs")   # the installed command (sshd's PATH has no venv)

# Strategies whose sends pin the user's pages against RLIMIT_MEMLOCK, which root's CAP_IPC_LOCK
# lifts: under another user's default limit (8 MB) io_uring's zero-copy sends fail with ENOMEM.
PINS_LOCKED_MEMORY = frozenset({"io_uring_zc"})

# fixtures that need root: a test using one (directly or through another fixture) is a root test
ROOT_FIXTURES = frozenset({"root", "prepared"})


def need(condition: bool, what: str) -> None:
    """Skip (or, in CI, fail) unless `condition` holds; `what` names the capability."""
    if condition:
        return
    if STRICT:
        pytest.fail(f"capability missing in CI: {what}", pytrace=False)
    pytest.skip(f"needs {what}")


def need_workers() -> None:
    """The C copy workers are built (make setup)."""
    try:
        importlib.import_module("netobs._workers")
    except ImportError:
        need(False, "the C copy workers (netobs._workers; make setup)")


def strategy_params(names) -> list:
    """`names` for a parametrize over strategies: those that need root's locked memory are root tests."""
    return [pytest.param(n, marks=pytest.mark.root) if n in PINS_LOCKED_MEMORY else n for n in names]


@pytest.fixture(scope="session")
def root():
    need(IS_ROOT, "root")


@pytest.fixture(scope="session")
def prepared(root):
    """The tracing setup step, as `netobs doctor` and `--trace` run it (tracefs, kernel headers)."""
    from netobs import hostprep
    return hostprep.prepare()


def pytest_collection_modifyitems(config, items):
    """A test that needs root only through its fixtures is still a root test: it must say so."""
    unmarked = [item.nodeid for item in items
                if ROOT_FIXTURES & set(getattr(item, "fixturenames", ())) and item.get_closest_marker("root") is None]
    if unmarked:
        raise pytest.UsageError("tests that need root (through a fixture) without @pytest.mark.root:\n  "
                                + "\n  ".join(unmarked))


def pytest_runtest_setup(item):
    """A root test run by another user (the whole suite, not the unit tier): skipped, or in CI failed."""
    if item.get_closest_marker("root") is not None:
        need(IS_ROOT, "root")
