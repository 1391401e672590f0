"""What killed netobs runs left behind, and how any run stops its processes and removes its
namespaces: by PID (+ start time) and by netobs's own names (`nob<pid>-<token>-s|c`), never by
anything else. `cleanup_leftovers()` is called by every topology as it opens (netobs.undolog
names each run's owner, namespaces, links, children and saved host sysctls).
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

from pyroute2 import IPRoute, netns

from netobs import procfs, sysctl, undolog
from netobs.errors import NetobsError
from netobs.interrupt import deferred_signals

NETNS_DIR = "/run/netns"
NS_RE = re.compile(r"^nob(\d+)-([0-9a-f]{6})-([sc])$")
VETH_RE = re.compile(r"^nob([0-9a-f]{6})-([sc])$")
TERM_GRACE_S = 2.0
KILL_WAIT_S = 2.0


def _is_root() -> bool:
    return os.geteuid() == 0


def _ns_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _pids_in_netns(ns: tuple[int, int]) -> list[int]:
    """Every process whose network namespace is `ns` (device, inode)."""
    me = os.getpid()
    return [pid for pid in procfs.pids() if pid != me and _ns_id(f"/proc/{pid}/ns/net") == ns]


def _gone(pid: int, starttime: int | None) -> bool:
    """True once `pid` is dead or a zombie (or has been reused by another process)."""
    return not undolog.same_process(pid, starttime) or procfs.is_gone(pid)


def _stop_pids(targets: list[tuple[int, int | None]], popens: dict[int, subprocess.Popen] | None = None) -> list[int]:
    """SIGTERM, wait up to TERM_GRACE_S, SIGKILL, wait; by PID (+start time), never by name."""
    popens = popens or {}

    def reap(pid: int) -> None:
        if pid in popens:
            with contextlib.suppress(Exception):
                popens[pid].poll()

    def alive() -> list[tuple[int, int | None]]:
        out = []
        for pid, st in targets:
            reap(pid)
            if not _gone(pid, st):
                out.append((pid, st))
        return out

    stopped = [pid for pid, _ in alive()]
    for sig, wait_s in ((signal.SIGTERM, TERM_GRACE_S), (signal.SIGKILL, KILL_WAIT_S)):
        living = alive()
        if not living:
            break
        for pid, _ in living:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while alive() and time.monotonic() < deadline:
            time.sleep(0.02)
    still = alive()
    if still:
        raise NetobsError("could not stop processes", f"PIDs {[p for p, _ in still]} survived SIGKILL",
                          fix="check them with `ps -o pid,stat,wchan -p PID` (a process stuck in the kernel, "
                              "state D, ends only when its I/O does)")
    for pid in popens:
        with contextlib.suppress(Exception):
            popens[pid].wait(timeout=0.1)
    return stopped


def _stop_netns_processes(name: str) -> list[int]:
    ns = _ns_id(f"{NETNS_DIR}/{name}")
    if ns is None:
        return []
    return _stop_pids([(pid, procfs.starttime(pid)) for pid in _pids_in_netns(ns)])


def _remove_netns(name: str) -> bool:
    if not os.path.exists(f"{NETNS_DIR}/{name}"):
        return False
    netns.remove(name)
    return True


def _delete_link(ifname: str, ns: str | None = None) -> bool:
    """Delete a link (and so its veth peer) by name; False if it does not exist."""
    if ns is not None and not os.path.exists(f"{NETNS_DIR}/{ns}"):
        return False
    kwargs = {"netns": ns, "flags": 0} if ns else {}
    with IPRoute(**kwargs) as ipr:
        idx = ipr.link_lookup(ifname=ifname)
        if not idx:
            return False
        ipr.link("del", index=idx[0])
        return True


def _restore_globals(state: dict, live_states: list[dict], notes: list[str]) -> dict[str, dict]:
    """Put back the host sysctls `state` holds, unless another live run still holds them.

    Must be called under `undolog.locked()`. Returns {name: {restored, deferred_to}}.
    """
    held_by = {}
    for other in live_states:
        if other["run"] != state["run"]:
            for name, entry in other.get("globals", {}).items():
                if not entry.get("probe"):  # a probe changes nothing and will not restore
                    held_by.setdefault(name, other["run"])
    out = {}
    for name, entry in state.get("globals", {}).items():
        if entry.get("probe"):  # only looked at, never changed by that run: nothing to put back
            continue
        if name in held_by:
            out[name] = {"restored": None, "deferred_to": held_by[name]}
            continue
        original = entry["original"]
        if sysctl.read(name) != original:
            sysctl.write(name, original)
            notes.append(f"sysctl {name} restored to {original}")
        out[name] = {"restored": sysctl.read(name), "deferred_to": None}
    return out


def _cleanup_leftovers_locked() -> list[str]:
    removed: list[str] = []
    states = undolog.read_all()
    live = [s for s in states if s["alive"]]
    live_ns = {n for s in live for n in s.get("namespaces", [])}
    live_veth = {v for s in live for v in s.get("veth", [])}
    for state in states:
        if state["alive"]:
            continue
        children = [(c["pid"], c.get("starttime")) for c in state.get("children", [])]
        removed += [f"process {pid}" for pid in _stop_pids([c for c in children if c[1] is not None])]
        for name in state.get("namespaces", []):
            if name in live_ns:
                continue
            removed += [f"process {pid}" for pid in _stop_netns_processes(name)]
            if _remove_netns(name):
                removed.append(f"namespace {name}")
        _restore_globals(state, live, removed)
        removed += _remove_tempdirs(state.get("tempdirs", []))
        undolog.remove(state["run"])
        removed.append(f"undo-log entry {undolog.path_for(state['run']).name}")
    known = {n for s in states for n in s.get("namespaces", [])}
    for name in netns.listnetns(NETNS_DIR):
        m = NS_RE.match(name)
        if not m or name in live_ns or name in known:
            continue
        pid = int(m.group(1))  # a netobs namespace in no undo-log entry: judge by its owner PID
        if procfs.starttime(pid) is not None and undolog.looks_like_netobs(pid):
            continue
        removed += [f"process {p}" for p in _stop_netns_processes(name)]
        if _remove_netns(name):
            removed.append(f"namespace {name}")
    with IPRoute() as ipr:  # netobs never creates links here, but a leftover must not stay
        for link in ipr.get_links():
            name = link.get("IFLA_IFNAME") or ""
            info = link.get("IFLA_LINKINFO")
            kind = info.get("IFLA_INFO_KIND") if info is not None else None
            if VETH_RE.match(name) and kind == "veth" and name not in live_veth:
                with contextlib.suppress(Exception):
                    ipr.link("del", index=link["index"])
                    removed.append(f"link {name}")
    return removed


def _remove_tempdirs(paths: list[str]) -> list[str]:
    """A dead run's directories in the system's temp dir (only netobs-run-* ones there)."""
    removed = []
    for path in paths:
        parent, name = os.path.split(os.path.normpath(path))
        if parent == os.path.normpath(tempfile.gettempdir()) and name.startswith("netobs-") and os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(f"temporary directory {path}")
    return removed


def cleanup_leftovers() -> list[str]:
    """Undo what netobs runs that died without cleaning up (SIGKILL, power loss) left behind:
    their children, namespaces, veth links and host sysctls. Returns what was removed."""
    if not _is_root() or not undolog.usable():
        return []
    with deferred_signals(), undolog.locked():
        return _cleanup_leftovers_locked()

