"""The netns topology: two network namespaces (server, client) joined by a veth pair.

Names are unique per run (`nob<pid>-<token>-s|c` namespaces, `nob<token>-s|c` veth ends, at
most 15 characters), so concurrent runs never collide; each pair lives in its own namespaces,
so two runs may use the same addresses. Closing stops what is left in the namespaces, deletes
the veth and the namespaces.
"""
from __future__ import annotations

import contextlib
import os
import time
from typing import Any

from pyroute2 import IPRoute, netns

from netobs import linkstats, netstat, sysctl, undolog
from netobs.errors import CapabilityError, NetobsError, UsageError
from netobs.figures import ROLES
from netobs.params import DEFAULT_SUBNET, parse_subnet
from netobs.topology.base import DEFAULT_SYSCTLS, Topology, open_kind
from netobs.topology.leftovers import NETNS_DIR, _delete_link, _is_root, _remove_netns, _stop_netns_processes


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
                out[role] = linkstats.read(ipr, self.veth[role])
        return out

    def netstat(self) -> dict[str, dict]:
        if self.closed:
            raise NetobsError("cannot read TCP counters", "the topology is closed")
        return {role: netstat.read(self._fds[role]) for role in ROLES}


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
            with open_kind(NetnsTopology(DEFAULT_SUBNET, None, {})) as topo:
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

