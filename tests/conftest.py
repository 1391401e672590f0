"""Shared test constants and fixtures (the one place for them).

Tiers (the marks say which; `make test` runs all three):
- unit (`make unit`: `-m 'not root and not integration'`, under 60 s): in this interpreter, no
  root, no network namespaces, no other program;
- integration (`make integration`: `-m 'integration and not root'`): starts programs (the CLI or
  the C workers in child processes, a browser, vl-convert's renderer, git and the compiler), needs
  no root. A test of the unit tier that starts a program fails, naming it (`_no_programs`);
- root: every test that needs root, itself or through a fixture (`root`, `prepared`, a namespace,
  sshd), carries `@pytest.mark.root` (collection fails on one that does not: see
  `pytest_collection_modifyitems`).
CI also runs the unit and integration tiers as a user who is not root, which checks the root
marks for real.

Capability skips: a test that needs something this host may lack calls `need(cond, what)`.
On a developer's machine that skips with the reason; under CI (CI=true) or NETOBS_STRICT=1
it fails, because CI runs where every capability the tests use is present. A test never
assumes a capability's presence or absence where the host decides it (hardware counters):
it branches on what the probe found and plants the other branch with a simulated refusal.

Depth: the property tests (hypothesis) and the stop-at-any-moment stress run a fraction of their
examples and seconds in the unit tier (`make unit`: under 60 s), all of them in the deep run
(`make test`, which sets NETOBS_TESTS=deep: CI's root run). `deep(n, unit)` picks the figure.
"""
from __future__ import annotations

import contextlib
import csv
import functools
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

STRICT = os.environ.get("CI", "").lower() in ("1", "true", "yes") or os.environ.get("NETOBS_STRICT") == "1"
IS_ROOT = os.geteuid() == 0
DEEP = os.environ.get("NETOBS_TESTS", "").lower() == "deep"

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


def fixture_results(path):
    """The loaded results of a directory under tests/fixtures (golden, profiled-sweep), loaded once
    per session: the fixtures are never written and the tests only read what was loaded, so every
    test shares one object (and the judgements it memoises, as the answers of one run share them)."""
    path = Path(path).resolve()
    assert FIXTURES in path.parents, f"{path} is not a read-only fixture directory"
    return _loaded(path)


@functools.lru_cache(maxsize=None)
def _loaded(path: Path):
    from netobs.analysis.load import load_results
    return load_results(path)


def fixture_answers(path) -> list:
    """answer_all of fixture_results(path), computed once per session (a new list each call)."""
    return list(_answered(Path(path).resolve()))


@functools.lru_cache(maxsize=None)
def _answered(path: Path) -> tuple:
    from netobs.analysis.questions import answer_all
    return tuple(answer_all(fixture_results(path)))


@functools.lru_cache(maxsize=None)
def fixture_report(path) -> str:
    """The HTML report of fixture_results(path), rendered once per session."""
    from netobs.analysis import report
    return report.render_report(fixture_results(path))


def cli(capsys, *args) -> subprocess.CompletedProcess:
    """`netobs ARGS` run in this process (its output captured, as through a pipe: no terminal):
    the exit status and what it printed, without an interpreter's start-up and imports per call."""
    from netobs.cli import main
    capsys.readouterr()
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:   # click's own exits (--help)
        code = exc.code
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["netobs", *args], code or 0, out, err)


def sweep_ok(out: Path, *args, prefix=(), timeout: float = 300) -> Path:
    """`netobs sweep ... -o out` (under `prefix`, e.g. taskset), which must succeed; `out`."""
    p = subprocess.run([*prefix, *NETOBS, "sweep", *args, "-o", str(out)], capture_output=True, text=True,
                       timeout=timeout)
    assert p.returncode == 0, p.stderr[-2000:]
    return out


def read_runs(path: Path) -> tuple[list[str], list[dict]]:
    """A results directory's runs.csv as (columns, rows of strings): planted data starts here."""
    with open(path / "runs.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames), list(reader)


def write_runs(path: Path, cols, rows) -> None:
    with open(path / "runs.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def deep(n, unit):
    """A test's examples (or seconds): `n` in the deep run, `unit` in the unit tier."""
    return n if DEEP else unit


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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """A test of the unit tier (neither `root` nor `integration`) starts no program: one that does
    fails, naming what it started, so the tier stays in this interpreter (and fast)."""
    if item.get_closest_marker("root") or item.get_closest_marker("integration"):
        return (yield)
    started = []
    with _no_programs(started):
        result = yield
    if started:
        pytest.fail(f"a unit test started {started[0]!r}: mark it @pytest.mark.integration", pytrace=False)
    return result


@contextlib.contextmanager
def _no_programs(started: list):
    """Record every program started (subprocess.Popen) while the block runs."""
    real = subprocess.Popen.__init__

    def init(self, args, *a, **kw):
        started.append(args if isinstance(args, str) else " ".join(map(str, args)))
        return real(self, args, *a, **kw)

    subprocess.Popen.__init__ = init
    try:
        yield
    finally:
        subprocess.Popen.__init__ = real
