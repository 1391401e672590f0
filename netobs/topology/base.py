"""What every topology offers (`Topology`), and how one is opened and always undone.

Everything a topology changes is undone when it closes: on normal exit, on an exception, on
Ctrl-C and on SIGTERM (SIGTERM is turned into `Interrupted` while a topology is open, unless
the caller already handles it). Children spawned through `spawn()` are terminated (SIGTERM,
a bounded wait, then SIGKILL, by PID); host sysctls are put back. The cleanup is registered
before the first change (the run's entry in the undo log, netobs.undolog).
"""
from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import weakref
from typing import Any

from netobs import procfs, sysctl, undolog
from netobs.errors import NetobsError, UsageError
from netobs.figures import ROLES
from netobs.interrupt import deferred_signals, signals_as_interrupt
from netobs.params import KIND_BY_NAME
from netobs.topology.leftovers import _cleanup_leftovers_locked, _restore_globals, _stop_pids

DEFAULT_SYSCTLS = sysctl.DEFAULT_SYSCTLS

_open: weakref.WeakSet[Topology] = weakref.WeakSet()
_sigterm_users = 0
_sigterm_stack: contextlib.ExitStack | None = None


# --------------------------------------------------------------------------- SIGTERM guard

def _sigterm_guard_enter() -> None:
    global _sigterm_users, _sigterm_stack
    if _sigterm_users == 0:
        stack = contextlib.ExitStack()
        stack.enter_context(signals_as_interrupt((signal.SIGTERM,), only_if_default=True))
        _sigterm_stack = stack
    _sigterm_users += 1


def _sigterm_guard_exit() -> None:
    global _sigterm_users, _sigterm_stack
    _sigterm_users -= 1
    if _sigterm_users == 0 and _sigterm_stack is not None:
        _sigterm_stack.close()
        _sigterm_stack = None


# --------------------------------------------------------------------------- topologies

class Topology:
    """What every topology offers. Use as a context manager; `close()` is idempotent. A kind's
    declaration (netobs.params.TOPOLOGY_KINDS) names its class; `kind` is that name."""

    kind: str
    server_addr: str
    client_addr: str

    def __init__(self, sysctls: dict[str, int | str] | None):
        self.run_id = f"{os.getpid()}-{secrets.token_hex(3)}"
        self.token = self.run_id.split("-")[1]
        self.sysctls_wanted = dict(DEFAULT_SYSCTLS if sysctls is None else sysctls)
        for name in self.sysctls_wanted:
            try:
                sysctl.path(name)
            except ValueError as exc:
                raise UsageError("bad sysctl", str(exc), "a net.* name such as net.core.wmem_max") from None
        self.sysctl_facts: dict[str, dict[str, Any]] = {}
        self.leftovers_removed: list[str] = []
        self.cleanup_errors: list[str] = []
        self.state: dict | None = None
        self.closed = False
        self._children: list[tuple[str, subprocess.Popen, int | None]] = []
        self._guarded = False

    # -- context manager
    def __enter__(self) -> Topology:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(raise_errors=exc_type is None)

    # -- state
    def _save_state(self) -> None:
        if self.state is not None:
            undolog.write(self.state)

    def _start(self) -> None:
        """Register the cleanup before the first change: the undo-log entry (the SIGTERM guard and
        the atexit hook are already in place, see `_guard`)."""
        if undolog.usable():
            with undolog.locked():
                self.leftovers_removed = _cleanup_leftovers_locked()
                self.state = undolog.new_state(self.run_id, self.kind)
                self._describe_state(self.state)
                undolog.write(self.state)

    def _guard(self) -> None:
        """SIGTERM -> Interrupted while open (unless the caller handles SIGTERM); close at exit."""
        _sigterm_guard_enter()
        self._guarded = True
        _open.add(self)

    def _describe_state(self, state: dict) -> None:
        pass

    @contextlib.contextmanager
    def temporary_directory(self, prefix: str):
        """A directory in the system's temp dir for this run's files, named in the undo log
        (a run killed with SIGKILL leaves it to the next start's cleanup); removed on exit."""
        path = tempfile.mkdtemp(prefix=prefix)
        if self.state is not None:
            self.state.setdefault("tempdirs", []).append(path)
            self._save_state()
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
            if self.state is not None and path in self.state.get("tempdirs", []):
                self.state["tempdirs"].remove(path)
                with contextlib.suppress(OSError):
                    self._save_state()

    # -- host sysctls (saved first, restored afterwards, shared with concurrent runs)
    def _apply_host_sysctls(self, wanted: dict[str, int | str], scopes: dict[str, tuple[str, str]]) -> None:
        if not wanted:
            return
        if self.state is None:
            for name, want in wanted.items():
                self.sysctl_facts[name] = {
                    "scope": scopes[name][0], "how": scopes[name][1], "where": "host",
                    "wanted": want, "before": sysctl.read(name), "set": None, "after": sysctl.read(name),
                    "skipped": "not root: host sysctls left unchanged",
                }
            return
        with undolog.locked():
            states = undolog.read_all()
            plan = {}
            for name, want in wanted.items():
                current = sysctl.read(name)
                others = [s for s in states if s["run"] != self.run_id
                          and name in s.get("globals", {}) and not s["globals"][name].get("probe")]
                original = others[0]["globals"][name]["original"] if others else current
                new = sysctl.target(current, want)
                plan[name] = (current, original, new)
                if new is not None or any(s["alive"] for s in others):
                    # a holder: whoever holds last restores the original
                    self.state["globals"][name] = {"original": original, "set": new}
            undolog.write(self.state)          # saved FIRST ...
            for name, (current, original, new) in plan.items():
                if new is not None:
                    sysctl.write(name, new)     # ... then changed
                self.sysctl_facts[name] = {
                    "scope": scopes[name][0], "how": scopes[name][1], "where": "host",
                    "wanted": wanted[name], "before": current, "set": new, "after": sysctl.read(name),
                    "original": original, "restored": None,
                }

    def _restore_host_sysctls(self) -> None:
        if self.state is None or not self.state.get("globals"):
            return
        with undolog.locked():
            result = _restore_globals(self.state, [s for s in undolog.read_all() if s["alive"]], [])
            self.state["globals"] = {}
            undolog.write(self.state)
        for name, res in result.items():
            self.sysctl_facts.setdefault(name, {}).update(res)

    # -- children
    def _preexec(self, role: str):
        return None

    def spawn(self, role: str, argv: list[str], **popen_kwargs: Any) -> subprocess.Popen:
        """Start `argv` as `role` ("server" or "client") in that role's namespace."""
        if self.closed:
            raise NetobsError("cannot spawn", "the topology is closed")
        if role not in ROLES:
            raise UsageError(f"unknown role {role!r}", None, " or ".join(ROLES))
        enter = self._preexec(role)
        user_preexec = popen_kwargs.pop("preexec_fn", None)
        if enter is not None or user_preexec is not None:
            def preexec() -> None:
                if enter is not None:
                    enter()
                if user_preexec is not None:
                    user_preexec()
            popen_kwargs["preexec_fn"] = preexec
        proc = subprocess.Popen(argv, **popen_kwargs)
        start = procfs.starttime(proc.pid)
        self._children.append((role, proc, start))
        if self.state is not None:
            self.state["children"].append({"pid": proc.pid, "starttime": start, "role": role})
            self._save_state()
        return proc

    def _stop_children(self) -> list[int]:
        popens = {p.pid: p for _, p, _ in self._children}
        return _stop_pids([(p.pid, st) for _, p, st in self._children if p.returncode is None], popens)

    # -- teardown
    def _teardown_steps(self) -> list[tuple[str, Any]]:
        return [("stop children", self._stop_children), ("restore host sysctls", self._restore_host_sysctls)]

    def close(self, raise_errors: bool = True) -> None:
        """Undo everything; safe to call twice. Signals arriving meanwhile are held until the end."""
        if self.closed:
            return
        try:
            with deferred_signals():
                self.closed = True
                for what, step in self._teardown_steps():
                    try:
                        step()
                    except Exception as exc:  # keep going: every other step must still run
                        self.cleanup_errors.append(f"{what}: {exc}")
                if not self.cleanup_errors and self.state is not None:
                    undolog.remove(self.run_id)
                _open.discard(self)
        finally:  # after deferred_signals has put its handlers back (handlers nest LIFO)
            if self._guarded:
                self._guarded = False
                _sigterm_guard_exit()
        if self.cleanup_errors and raise_errors:
            raise NetobsError("topology cleanup incomplete", "; ".join(self.cleanup_errors),
                              "running netobs again as root (it removes leftovers at start)")

    # -- facts
    def facts(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "run_id": self.run_id, "receiver_shares_kernel": self.shares_kernel(),
            "server_addr": self.server_addr, "client_addr": self.client_addr,
            "sysctls": {k: dict(v) for k, v in self.sysctl_facts.items()},
            "leftovers_removed": list(self.leftovers_removed),
            "children": [{"role": r, "pid": p.pid, "returncode": p.returncode} for r, p, _ in self._children],
            "closed": self.closed, "cleanup_errors": list(self.cleanup_errors),
        }

    def link_stats(self) -> dict[str, dict[str, int]]:
        raise NotImplementedError

    def netstat(self) -> dict[str, dict]:
        """Each role's TCP MIB counters, read in its namespace: {role: `netobs.netstat.read()`};
        take one before and one after a point and keep `netobs.netstat.delta(before, after)`."""
        raise NotImplementedError


    # -- the point's server
    def server_side(self):
        """The point's server here: a worker process spawned in the server's place
        (netobs.serverside.LocalServer); a topology whose server is elsewhere says so."""
        from netobs.serverside import LocalServer

        return LocalServer(self.spawn)

    @property
    def peer_host(self) -> dict | None:
        """The other host's facts (the manifest's "remote"), None where there is none."""
        return None

    def shares_kernel(self) -> bool | None:
        """Whether the receiver runs on this kernel (recorded in the facts for the analysis)."""
        return KIND_BY_NAME[self.kind].shares_kernel


def open_kind(topo: Topology) -> Topology:
    """Set `topo` up under the guard; a partial setup is undone before the error is raised."""
    topo._guard()
    try:
        with deferred_signals():  # a signal during setup is raised right after it, then undone below
            topo.setup()
    except BaseException:
        topo.close(raise_errors=False)
        raise
    return topo


@atexit.register
def _close_all_at_exit() -> None:
    for topo in list(_open):
        with contextlib.suppress(Exception):
            topo.close(raise_errors=False)
