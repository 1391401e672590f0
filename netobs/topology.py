"""Where the server and the client run: two network namespaces joined by a veth pair, or loopback.

    with open_topology("netns") as topo:          # server 10.0.0.1/24, client 10.0.0.2/24
        srv = topo.spawn("server", argv_server)   # runs inside the server's namespace
        cli = topo.spawn("client", argv_client)
        before = topo.link_stats(); ...; after = topo.link_stats()
        meta = topo.facts()                       # names, addresses, mtu, sysctls, ...

Everything a topology changes is undone when it closes: on normal exit, on an exception, on
Ctrl-C and on SIGTERM (SIGTERM is turned into `Interrupted` while a topology is open, unless
the caller already handles it). Children spawned through `spawn()` are terminated (SIGTERM,
a bounded wait, then SIGKILL, by PID), as is anything else still inside the run's namespaces;
the veth and the namespaces are deleted; host sysctls are put back.

The cleanup is registered before the first change: the run's entry in the undo log
(`netobs.undolog`, under /run/netobs) names its owner (PID and start time), namespaces, links,
children and the original values of the host sysctls it is about to change. A run killed with
SIGKILL leaves its entry behind, and `cleanup_leftovers()` (called by every `open_topology`)
undoes such runs. Only netobs's own
namespaces are ever touched: names `nob<pid>-<token>-s|c` whose owner is gone.

Names are unique per run (`nob<pid>-<token>-s|c` namespaces, `nob<token>-s|c` veth ends, at
most 15 characters), so concurrent runs never collide; each pair lives in its own
namespaces, so two runs may use the same addresses.
"""
from __future__ import annotations

import atexit
import contextlib
import ipaddress
import itertools
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import weakref
from typing import Any

from pyroute2 import IPRoute, netns

from netobs import netstat, procfs, sysctl, undolog
from netobs.errors import CapabilityError, NetobsError, UsageError
from netobs.figures import ROLES
from netobs.params import DEFAULT_SUBNET, TOPOLOGIES, parse_subnet
from netobs.interrupt import deferred_signals, signals_as_interrupt

__all__ = [
    "Topology", "open_topology", "options_of", "cleanup_leftovers", "doctor_facts", "signals_as_interrupt",
    "KINDS", "ROLES", "DEFAULT_SUBNET", "DEFAULT_SYSCTLS",
]

KINDS = TOPOLOGIES

DEFAULT_SYSCTLS = sysctl.DEFAULT_SYSCTLS
NETNS_DIR = "/run/netns"
NS_RE = re.compile(r"^nob(\d+)-([0-9a-f]{6})-([sc])$")
VETH_RE = re.compile(r"^nob([0-9a-f]{6})-([sc])$")
TERM_GRACE_S = 2.0
KILL_WAIT_S = 2.0
STAT_KEYS = ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets",
             "rx_dropped", "tx_dropped", "rx_errors", "tx_errors")

_open: weakref.WeakSet[Topology] = weakref.WeakSet()
_sigterm_users = 0
_sigterm_stack: contextlib.ExitStack | None = None


# --------------------------------------------------------------------------- helpers

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
    """What both topologies offer. Use as a context manager; `close()` is idempotent."""

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
            "kind": self.kind, "run_id": self.run_id,
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


def _link_counters(ipr: IPRoute, ifname: str) -> dict[str, int]:
    idx = ipr.link_lookup(ifname=ifname)
    if not idx:
        raise NetobsError(f"link {ifname} not found", "it was removed while the run was going on",
                          fix="run again; if it keeps happening, check for another tool deleting nob* links")
    msg = ipr.link("get", index=idx[0])[0]
    stats = msg.get("IFLA_STATS64") or msg.get("IFLA_STATS") or {}
    return {k: int(stats.get(k, 0)) for k in STAT_KEYS}


class LoopbackTopology(Topology):
    """Server and client in the caller's namespace, talking over `lo` (127.0.0.1)."""

    kind = "loopback"
    server_addr = client_addr = "127.0.0.1"

    def setup(self) -> None:
        self._start()
        wanted = self.sysctls_wanted
        if wanted:
            scopes = sysctl.probe_scopes(list(wanted)) if _is_root() else {n: ("unknown", "not root") for n in wanted}
            self._apply_host_sysctls(wanted, scopes)

    def facts(self) -> dict[str, Any]:
        out = super().facts()
        out.update(namespaces=None, links={"server": "lo", "client": "lo"}, mtu=self._mtu())
        return out

    @staticmethod
    def _mtu() -> int | None:
        with contextlib.suppress(OSError, ValueError):
            with open("/sys/class/net/lo/mtu") as f:
                return int(f.read())
        return None

    def link_stats(self) -> dict[str, dict[str, int]]:
        with IPRoute() as ipr:
            lo = _link_counters(ipr, "lo")
        return {"server": lo, "client": dict(lo)}

    def netstat(self) -> dict[str, dict]:
        """The caller's namespace's counters, the same for both roles (they include every
        other TCP connection of that namespace: host-wide traffic counts too)."""
        snap = netstat.read()
        return {role: {k: dict(v) for k, v in snap.items()} for role in ROLES}


class NetnsTopology(Topology):
    """Two namespaces (server, client) joined by a veth pair; `lo` up in both."""

    kind = "netns"

    def __init__(self, subnet: str, mtu: int | None, sysctls: dict | None):
        super().__init__(sysctls)
        self.net, self.server_addr, self.client_addr = parse_subnet(subnet)
        if mtu is not None and not (68 <= int(mtu) <= 65535):
            raise UsageError(f"bad MTU {mtu}", "veth accepts 68..65535", "--mtu 1500 or --mtu 65535")
        self.mtu_wanted = mtu
        pid = os.getpid()
        self.ns = {"server": f"nob{pid}-{self.token}-s", "client": f"nob{pid}-{self.token}-c"}
        self.veth = {"server": f"nob{self.token}-s", "client": f"nob{self.token}-c"}
        self.addrs = {"server": self.server_addr, "client": self.client_addr}
        self._fds: dict[str, int] = {}
        self._made: list[str] = []
        self.mtu: int | None = None

    def _describe_state(self, state: dict) -> None:
        state["namespaces"] = list(self.ns.values())
        state["veth"] = list(self.veth.values())

    def setup(self) -> None:
        if not _is_root():
            raise CapabilityError("cannot create network namespaces", "netobs is not running as root",
                                  "sudo, or --topology loopback")
        if not undolog.usable():
            raise CapabilityError("cannot keep the undo log", f"{undolog.STATE_DIR} is not writable", "sudo")
        self._start()
        for role in ROLES:
            name = self.ns[role]
            try:
                netns.create(name)
            except OSError as exc:
                raise CapabilityError(f"cannot create network namespace {name}", str(exc),
                                      "checking that this kernel allows network namespaces") from exc
            self._made.append(name)
            self._fds[role] = os.open(f"{NETNS_DIR}/{name}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            with IPRoute(netns=self.ns["server"], flags=0) as ipr:
                ipr.link("add", ifname=self.veth["server"], kind="veth",
                         peer={"ifname": self.veth["client"], "net_ns_fd": self.ns["client"]})
        except Exception as exc:
            raise CapabilityError("cannot create a veth pair", str(exc), "loading the veth module") from exc
        for role in ROLES:
            with IPRoute(netns=self.ns[role], flags=0) as ipr:
                ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
                idx = ipr.link_lookup(ifname=self.veth[role])[0]
                if self.mtu_wanted is not None:
                    try:
                        ipr.link("set", index=idx, mtu=int(self.mtu_wanted))
                    except Exception as exc:
                        raise UsageError(f"cannot set MTU {self.mtu_wanted}", str(exc),
                                         fix="an MTU the veth accepts (68 to 65535), or leave --mtu out") from exc
                if self.net.version == 4:
                    # no IPv6 autoconfiguration chatter (RS, MLD, DAD) in the veth's counters
                    sysctl.in_netns(self._fds[role], sysctl.write,
                                    f"net.ipv6.conf.{self.veth[role]}.disable_ipv6", 1)
                else:  # usable at once: no duplicate address detection between our own two ends
                    sysctl.in_netns(self._fds[role], sysctl.write,
                                    f"net.ipv6.conf.{self.veth[role]}.accept_dad", 0)
                ipr.addr("add", index=idx, address=self.addrs[role], prefixlen=self.net.prefixlen)
                ipr.link("set", index=idx, state="up")
                self.mtu = int(ipr.link("get", index=idx)[0].get("IFLA_MTU"))
        self._apply_sysctls()

    def _apply_sysctls(self) -> None:
        wanted = self.sysctls_wanted
        if not wanted:
            return
        fd = self._fds["server"]
        scopes = {n: sysctl.scope_by_visibility(sysctl.in_netns(fd, sysctl.writable_here, n)) for n in wanted}
        host_wanted = {n: w for n, w in wanted.items() if scopes[n][0] == "global"}
        ns_wanted = {n: w for n, w in wanted.items() if scopes[n][0] == "netns"}
        self._apply_host_sysctls(host_wanted, scopes)
        if not ns_wanted:
            return
        # Writable in a child namespace means per-namespace; confirm it with the real write:
        # the host's value must not move. Under the lock (no other run changes host values
        # meanwhile), with the host's values saved first in case it does move.
        with undolog.locked():
            host_before = {n: sysctl.read(n) for n in ns_wanted}
            for n in ns_wanted:
                self.state["globals"].setdefault(n, {"original": host_before[n], "set": None, "probe": True})
            undolog.write(self.state)
            per_role = {}
            for role in ROLES:
                fd = self._fds[role]
                for name, want in ns_wanted.items():
                    before = sysctl.in_netns(fd, sysctl.read, name)
                    new = sysctl.target(before, want)
                    if new is not None:
                        sysctl.in_netns(fd, sysctl.write, name, new)
                    per_role.setdefault(name, {})[role] = (before, new, sysctl.in_netns(fd, sysctl.read, name))
            for name in ns_wanted:
                host_now = sysctl.read(name)
                before, new, after = per_role[name]["server"]
                entry = {
                    "scope": "netns", "how": scopes[name][1], "where": list(ROLES), "wanted": ns_wanted[name],
                    "before": before, "set": new, "after": after, "host_value": host_now,
                    "verified": new is not None and new != host_before[name] and host_now == host_before[name],
                }
                if per_role[name]["client"] != per_role[name]["server"]:
                    entry["client"] = dict(zip(("before", "set", "after"), per_role[name]["client"]))
                saved = self.state["globals"].get(name, {})
                if host_now != host_before[name]:  # not per-namespace after all: restore at the end
                    entry.update(scope="global", how="writing it in a child namespace changed the host's value",
                                 where="host", original=host_before[name], restored=None)
                    saved.update(set=host_now, probe=False)
                elif saved.get("probe"):
                    del self.state["globals"][name]
                self.sysctl_facts[name] = entry
            undolog.write(self.state)

    def _preexec(self, role: str):
        fd = self._fds[role]

        def enter() -> None:  # in the forked child, before exec
            sysctl.enter_netns(fd)
        return enter

    def _teardown_steps(self) -> list[tuple[str, Any]]:
        return [
            ("stop children", self._stop_children),
            ("stop processes left in the namespaces", lambda: [_stop_netns_processes(n) for n in self._made]),
            ("delete veth", self._delete_veth),
            ("remove namespaces", self._remove_namespaces),
            ("restore host sysctls", self._restore_host_sysctls),
        ]

    def _delete_veth(self) -> None:
        if self.ns["server"] in self._made:
            _delete_link(self.veth["server"], self.ns["server"])

    def _remove_namespaces(self) -> None:
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()
        for name in list(self._made):
            _remove_netns(name)
            self._made.remove(name)

    def facts(self) -> dict[str, Any]:
        out = super().facts()
        out.update(namespaces=dict(self.ns), links=dict(self.veth), mtu=self.mtu,
                   subnet=str(self.net), prefixlen=self.net.prefixlen,
                   veth_ipv6="disabled (IPv4 subnet)" if self.net.version == 4 else "enabled")
        return out

    def link_stats(self) -> dict[str, dict[str, int]]:
        if self.closed:
            raise NetobsError("cannot read link counters", "the topology is closed")
        out = {}
        for role in ROLES:
            with IPRoute(netns=self.ns[role], flags=0) as ipr:
                out[role] = _link_counters(ipr, self.veth[role])
        return out

    def netstat(self) -> dict[str, dict]:
        if self.closed:
            raise NetobsError("cannot read TCP counters", "the topology is closed")
        return {role: netstat.read(self._fds[role]) for role in ROLES}


class RemoteTopology(Topology):
    """The server on another host, started over ssh (netobs.ssh: one ControlMaster connection
    for the whole run); the client here, in the caller's namespace. The server's side of a
    point (its worker stats, perf, trace, profile, TCP MIB, link counters) comes back from
    `netobs remote-serve` on that host (netobs.remote_side); what is read here is the client's."""

    kind = "remote"

    def __init__(self, remote: str, remote_addr: str | None, remote_netobs: str, ssh_config: str | None,
                 sysctls: dict | None):
        super().__init__(sysctls)
        self.remote, self.remote_addr, self.remote_netobs, self.ssh_config = remote, remote_addr, remote_netobs, ssh_config
        self.ssh = None
        self.hello: dict = {}
        self.client_if: str | None = None

    def _describe_state(self, state: dict) -> None:
        state["remote"] = self.remote

    def setup(self) -> None:
        from netobs.params import PARAMS
        from netobs.ssh import Ssh

        self._start()
        self.ssh = Ssh(self.remote, self.ssh_config)
        self.ssh.open()
        self._note_master()
        self.server_addr = self.remote_addr or PARAMS.by_name["remote_addr"].check(self.ssh.hostname(), "--remote-addr")
        self.hello = self._hello()
        self.client_addr, self.client_if = _route_to(self.server_addr)
        wanted = self.sysctls_wanted   # the client's host (this one); the remote's are left as they are
        if wanted:
            scopes = sysctl.probe_scopes(list(wanted)) if _is_root() else {n: ("unknown", "not root") for n in wanted}
            self._apply_host_sysctls(wanted, scopes)

    def _note_master(self) -> None:
        """The master in the undo log: a run killed with SIGKILL leaves no connection behind."""
        if self.state is not None and self.ssh.master_pid:
            self.state["children"].append({"pid": self.ssh.master_pid, "starttime": self.ssh.master_start,
                                           "role": "ssh-master"})
            self._save_state()

    def _hello(self) -> dict:
        import json

        from netobs import __version__
        from netobs.remote_side import PROTOCOL
        from netobs.ssh import classify

        proc = subprocess.run(self.ssh.argv([self.remote_netobs, "remote-serve", "--hello", "--addr", self.server_addr]),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        err = classify(proc.returncode, proc.stderr, self.remote, self.remote_netobs)
        if err is not None:
            raise err
        try:
            hello = json.loads(proc.stdout.strip().splitlines()[-1])
            version, protocol = hello["netobs_version"], hello["protocol"]
        except (ValueError, IndexError, KeyError, TypeError):
            said = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
            raise CapabilityError(f"{self.remote_netobs} on {self.remote} is not a netobs that can serve netobs "
                                  f"{__version__}", said.removeprefix("netobs: error: "),
                                  f"the same netobs on {self.remote} (--remote-netobs PATH)") from None
        if version != __version__ or protocol != PROTOCOL:
            raise CapabilityError(f"netobs {version} (protocol {protocol}) on {self.remote} does not match netobs "
                                  f"{__version__} (protocol {PROTOCOL}) here", None,
                                  f"installing netobs {__version__} on {self.remote}, or --remote-netobs PATH to it")
        return hello

    def server_argv(self, remote_args: list[str]) -> list[str]:
        """The ssh command running `netobs remote-serve REMOTE_ARGS` over the connection, after
        a new connection if the last one dropped."""
        if self.closed:
            raise NetobsError("cannot spawn", "the topology is closed")
        if self.ssh.ensure():
            self._note_master()
        return self.ssh.argv([self.remote_netobs, "remote-serve", *remote_args])

    def explain(self, code: int | None, stderr: str):
        """ssh's (or the remote shell's) failure as the error it means, or None."""
        from netobs.ssh import classify

        return classify(code, stderr, self.remote, self.remote_netobs)

    @property
    def remote_host(self) -> dict:
        """The remote host's facts (the manifest's "remote")."""
        return {**(self.hello.get("host") or {}), "user": self.hello.get("user"), "root": self.hello.get("root"),
                "netobs_version": self.hello.get("netobs_version"), "protocol": self.hello.get("protocol"),
                "ssh": self.remote, "address": self.server_addr}

    def _teardown_steps(self) -> list[tuple[str, Any]]:
        return [("stop children", self._stop_children),
                ("close the ssh connection", lambda: self.ssh is not None and self.ssh.close()),
                ("restore host sysctls", self._restore_host_sysctls)]

    def facts(self) -> dict[str, Any]:
        out = super().facts()
        iface = ((self.hello.get("host") or {}).get("interface") or {})
        out.update(namespaces=None, remote=self.remote, links={"client": self.client_if, "server": iface.get("name")},
                   mtu={"client": _mtu_of(self.client_if), "server": iface.get("mtu")},
                   addresses={"client": self.client_addr, "server": self.server_addr},
                   ssh_reconnects=self.ssh.reconnects if self.ssh else 0)
        return out

    def link_stats(self) -> dict[str, dict[str, int]]:
        """The client's link here (the server's comes from the remote side)."""
        if self.client_if is None:
            return {}
        with IPRoute() as ipr:
            return {"client": _link_counters(ipr, self.client_if)}

    def netstat(self) -> dict[str, dict]:
        """This namespace's counters, the client's (the server's come from the remote side)."""
        return {"client": netstat.read()}


def _route_to(addr: str) -> tuple[str | None, str | None]:
    """(the source address, the interface) this host uses to reach `addr`."""
    with IPRoute() as ipr:
        try:
            route = ipr.route("get", dst=addr)[0]
        except Exception:  # noqa: BLE001 - no route: the client's connect says so, with its errno
            return None, None
        oif = route.get_attr("RTA_OIF")
        links = ipr.get_links(oif) if oif else []
        return route.get_attr("RTA_PREFSRC"), (links[0].get_attr("IFLA_IFNAME") if links else None)


def _mtu_of(ifname: str | None) -> int | None:
    with contextlib.suppress(OSError, ValueError, TypeError):
        with open(f"/sys/class/net/{ifname}/mtu") as f:
            return int(f.read())
    return None


def options_of(spec) -> dict:
    """open_topology's keyword arguments from a RunSpec or SweepSpec."""
    return {"subnet": spec.subnet, "mtu": spec.mtu, "remote": spec.remote, "remote_addr": spec.remote_addr,
            "remote_netobs": spec.remote_netobs, "ssh_config": spec.ssh_config}


# --------------------------------------------------------------------------- entry points

def open_topology(kind: str = "netns", subnet: str = DEFAULT_SUBNET, mtu: int | None = None,
                  sysctls: dict | None = None, remote: str | None = None, remote_addr: str | None = None,
                  remote_netobs: str = "netobs", ssh_config: str | None = None) -> Topology:
    """Build a topology; use it as a context manager. `sysctls=None` means DEFAULT_SYSCTLS,
    `{}` changes none. Partial setups are undone before the error is raised. "remote": the
    server on `remote` ([USER@]HOST) over ssh (`options_of(spec)` gives the keywords)."""
    if kind == "netns":
        topo: Topology = NetnsTopology(subnet, mtu, sysctls)
    elif kind == "loopback":
        topo = LoopbackTopology(sysctls)
    elif kind == "remote":
        if not remote:
            raise UsageError("the remote topology needs the host", fix="--remote [USER@]HOST")
        topo = RemoteTopology(remote, remote_addr, remote_netobs, ssh_config, sysctls)
    else:
        raise UsageError(f"unknown topology {kind!r}", None, " or ".join(KINDS))
    topo._guard()
    try:
        with deferred_signals():  # a signal during setup is raised right after it, then undone below
            topo.setup()
    except BaseException:
        topo.close(raise_errors=False)
        raise
    return topo


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


def doctor_facts() -> dict[str, Any]:
    """Can this host run the netns topology (tried for real, then removed)? Which sysctls
    would netobs change, where do they live, what are they now? Changes nothing on the host."""
    wanted = dict(DEFAULT_SYSCTLS)
    out: dict[str, Any] = {"root": _is_root(), "state_dir": str(undolog.STATE_DIR),
                           "netns_veth": {"ok": False, "error": None, "seconds": None}, "sysctls": {}}
    scopes: dict[str, tuple[str, str]] = {}
    in_new_ns: dict[str, str] = {}
    if not out["root"]:
        out["netns_veth"]["error"] = "needs root"
    else:
        t0 = time.monotonic()
        try:
            with open_topology("netns", sysctls={}) as topo:
                fd = topo._fds["server"]
                scopes = {n: sysctl.scope_by_visibility(sysctl.in_netns(fd, sysctl.writable_here, n))
                          for n in wanted}
                in_new_ns = {n: sysctl.in_netns(fd, sysctl.read, n) for n in wanted if scopes[n][0] == "netns"}
            out["netns_veth"].update(ok=True, seconds=round(time.monotonic() - t0, 3))
        except NetobsError as exc:
            out["netns_veth"]["error"] = exc.message
    for name, want in wanted.items():
        try:
            current = sysctl.read(name)
        except OSError as exc:
            out["sysctls"][name] = {"current": None, "error": str(exc)}
            continue
        scope, how = scopes.get(name, ("unknown", "no namespace could be created to look"))
        entry = {"current": current, "wanted": want, "scope": scope, "how": how}
        if name in in_new_ns:  # per-namespace: what a new namespace starts with is what netobs raises
            entry.update(in_new_namespace=in_new_ns[name], would_set=sysctl.target(in_new_ns[name], want),
                         where="the run's namespaces", changes_host=False)
        else:
            new = sysctl.target(current, want)
            entry.update(would_set=new, where="host (saved, then restored)", changes_host=new is not None)
        out["sysctls"][name] = entry
    out["ok"] = out["netns_veth"]["ok"]
    out["checks"] = _doctor_checks(out)
    return out


def _doctor_checks(d: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows `netobs doctor` shows: [{name, ok, detail}]."""
    nv = d["netns_veth"]
    checks = [{"name": "namespaces + veth", "ok": nv["ok"],
               "detail": f"created and removed in {nv['seconds']} s" if nv["ok"] else nv["error"]}]
    for name, e in d["sysctls"].items():
        if e.get("current") is None:
            checks.append({"name": name, "ok": False, "detail": e.get("error")})
            continue
        if e["scope"] == "netns":
            what = (f"per-namespace ({e['how']}); set to {e['would_set']} in the run's namespaces"
                    if e.get("would_set") else "per-namespace; already high enough in a new namespace")
        elif e["scope"] == "global":
            what = (f"host-wide ({e['how']}); {e['current']} -> {e['would_set']} during a run, then restored"
                    if e["would_set"] else f"host-wide ({e['how']}); {e['current']} is already high enough")
        else:
            what = f"scope unknown: {e['how']}"
        checks.append({"name": name, "ok": True if e["scope"] != "unknown" else None, "detail": what})
    return checks


@atexit.register
def _close_all_at_exit() -> None:
    for topo in list(_open):
        with contextlib.suppress(Exception):
            topo.close(raise_errors=False)
