"""A link's counters (bytes, packets, drops, errors), read through netlink: the topologies read
the client's and server's links here, the remote end reads its data interface's."""
from __future__ import annotations

from pyroute2 import IPRoute

from netobs.errors import NetobsError

STAT_KEYS = ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets",
             "rx_dropped", "tx_dropped", "rx_errors", "tx_errors")


def read(ipr: IPRoute, ifname: str) -> dict[str, int]:
    """The counters of `ifname` in `ipr`'s namespace."""
    idx = ipr.link_lookup(ifname=ifname)
    if not idx:
        raise NetobsError(f"link {ifname} not found", "it was removed while the run was going on",
                          fix="run again; if it keeps happening, check for another tool deleting nob* links")
    msg = ipr.link("get", index=idx[0])[0]
    stats = msg.get("IFLA_STATS64") or msg.get("IFLA_STATS") or {}
    return {k: int(stats.get(k, 0)) for k in STAT_KEYS}


def of(ifname: str | None) -> dict[str, int] | None:
    """The counters of `ifname` in this namespace (None for no interface)."""
    if ifname is None:
        return None
    with IPRoute() as ipr:
        return read(ipr, ifname)


def delta(before: dict, after: dict) -> dict:
    """{role: counters} twice -> {role: the change of each counter} (a role read only once: left out)."""
    out = {}
    for role, counters in (after or {}).items():
        if counters is None:
            continue
        prev = (before or {}).get(role) or {}
        out[role] = {k: v - prev.get(k, 0) for k, v in counters.items() if isinstance(v, (int, float))}
    return out
