"""The undo log: what a live netobs run has changed on the host, written before it changes it.

Each run that creates namespaces or changes a host-wide sysctl first writes
`/run/netobs/<run-id>.json` (atomically and durably, through `netobs.files.atomic_write`),
naming its owner process (PID + start time), its namespaces, its veth names, the original
values of the host sysctls it is about to change, and the children it spawned. A run that ends
normally deletes its file; a run that was SIGKILLed leaves it, and the next
`topology.cleanup_leftovers()` uses it to undo the run.

Every read-modify-write of these files (and every change of a host-wide sysctl) happens under
one exclusive `flock`, so concurrent runs agree on who restores what.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from netobs import procfs
from netobs.files import atomic_write

STATE_DIR = Path(os.environ.get("NETOBS_STATE_DIR", "/run/netobs"))
SCHEMA = 1


def same_process(pid: int, starttime: int | None) -> bool:
    """True if `pid` is alive and is the very process that was recorded (not a reused PID)."""
    now = procfs.starttime(pid)
    return now is not None and (starttime is None or now == starttime)


def looks_like_netobs(pid: int) -> bool:
    """For owners known only by PID: is that process a Python/netobs process at all?"""
    argv = " ".join(procfs.cmdline(pid))
    return "netobs" in argv or "python" in argv


def usable() -> bool:
    """Can this process keep an undo log (root, /run writable)?"""
    try:
        STATE_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(STATE_DIR, os.W_OK)


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """The one host-wide netobs lock (released by the kernel if the holder dies)."""
    STATE_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    fd = os.open(STATE_DIR / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def path_for(run_id: str) -> Path:
    return STATE_DIR / f"{run_id}.json"


def write(state: dict) -> None:
    """(Re)write a run's entry, whole or not at all, and durably: the change it announces
    comes after this returns."""
    atomic_write(path_for(state["run"]), json.dumps({"schema": SCHEMA, **state}, indent=1, sort_keys=True),
                 mode=0o644)


def remove(run_id: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        path_for(run_id).unlink()


def read_all() -> list[dict]:
    """Every entry present, each with `alive` (its owner is still running) added."""
    states = []
    if not STATE_DIR.is_dir():
        return states
    # a write cut short leaves only atomic_write's temporary file (.NAME.tmp-PID), never a *.json
    for path in sorted(STATE_DIR.glob("*.json")):
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(state, dict) or "run" not in state or "pid" not in state:
            continue
        state["alive"] = same_process(int(state["pid"]), state.get("starttime"))
        states.append(state)
    return states


def new_state(run_id: str, kind: str) -> dict:
    pid = os.getpid()
    return {
        "run": run_id, "kind": kind, "pid": pid, "starttime": procfs.starttime(pid),
        "cmdline": procfs.cmdline(pid), "namespaces": [], "veth": [], "globals": {}, "children": [],
    }
