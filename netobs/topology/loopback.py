"""The loopback topology: server and client in the caller's namespace, over `lo`."""
from __future__ import annotations

import contextlib
from typing import Any

from pyroute2 import IPRoute

from netobs import linkstats, netstat, sysctl
from netobs.figures import ROLES
from netobs.topology.base import Topology
from netobs.topology.leftovers import _is_root


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
            lo = linkstats.read(ipr, "lo")
        return {"server": lo, "client": dict(lo)}

    def netstat(self) -> dict[str, dict]:
        """The caller's namespace's counters, the same for both roles (they include every
        other TCP connection of that namespace: host-wide traffic counts too)."""
        snap = netstat.read()
        return {role: {k: dict(v) for k, v in snap.items()} for role in ROLES}

