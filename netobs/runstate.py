"""Run state files: what a live netobs run has changed on the host, written before it changes it.

Each run that creates namespaces or changes a host-wide sysctl first writes
`/run/netobs/<run-id>.json` (atomically), naming its owner process (PID + start time), its
namespaces, its veth names, the original values of the host sysctls it is about to change,
and the children it spawned. A run that ends normally deletes its file; a run that was
SIGKILLed leaves it, and the next `cleanup_leftovers()` uses it to undo the run.

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

STATE_DIR = Path(os.environ.get("NETOBS_STATE_DIR", "/run/netobs"))
SCHEMA = 1


def proc_starttime(pid: int) -> int | None:
    """The start time (clock ticks since boot) of `pid`, or None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(b")") + 2:].split()
    return int(fields[19])  # field 22 overall


def proc_cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def same_process(pid: int, starttime: int | None) -> bool:
    """True if `pid` is alive and is the very process that was recorded (not a reused PID)."""
    now = proc_starttime(pid)
    return now is not None and (starttime is None or now == starttime)


def looks_like_netobs(pid: int) -> bool:
    """For owners known only by PID: is that process a Python/netobs process at all?"""
    argv = " ".join(proc_cmdline(pid))
    return "netobs" in argv or "python" in argv


def usable() -> bool:
    """Can this process keep run state (root, /run writable)?"""
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
    """Atomically (re)write a run's state file and make it durable."""
    path = path_for(state["run"])
    tmp = path.with_suffix(".tmp")
    data = json.dumps({"schema": SCHEMA, **state}, indent=1, sort_keys=True).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def remove(run_id: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        path_for(run_id).unlink()


def read_all() -> list[dict]:
    """Every state file present, each with `alive` (its owner is still running) added."""
    states = []
    if not STATE_DIR.is_dir():
        return states
    for path in sorted(STATE_DIR.glob("*.json")):
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # half-written by a run killed before os.replace: the .tmp is ignored
        if not isinstance(state, dict) or "run" not in state or "pid" not in state:
            continue
        state["alive"] = same_process(int(state["pid"]), state.get("starttime"))
        states.append(state)
    return states


def new_state(run_id: str, kind: str) -> dict:
    pid = os.getpid()
    return {
        "run": run_id, "kind": kind, "pid": pid, "starttime": proc_starttime(pid),
        "cmdline": proc_cmdline(pid), "namespaces": [], "veth": [], "globals": {}, "children": [],
    }
