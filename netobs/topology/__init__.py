"""Where the server and the client run, one module per kind (netobs.params.TOPOLOGY_KINDS
declares each: its class, its own parameters, whether it needs root, whether the receiver
shares this kernel):

    with open_topology("netns") as topo:          # server 10.0.0.1/24, client 10.0.0.2/24
        srv = topo.spawn("server", argv_server)   # runs inside the server's namespace
        cli = topo.spawn("client", argv_client)
        before = topo.link_stats(); ...; after = topo.link_stats()
        meta = topo.facts()                       # names, addresses, mtu, sysctls, ...

- base: what every topology offers and how it is always undone (netobs.topology.base)
- netns: two namespaces joined by a veth pair; loopback: 127.0.0.1; remote: the server on
  another host over ssh
- leftovers: what killed runs left behind (`cleanup_leftovers()`, called by every open)
"""
from __future__ import annotations

import importlib

from netobs.errors import UsageError
from netobs.interrupt import signals_as_interrupt
from netobs.params import DEFAULT_SUBNET, KIND_BY_NAME, TOPOLOGIES
from netobs.topology.base import DEFAULT_SYSCTLS, ROLES, Topology, open_kind
from netobs.topology.leftovers import NETNS_DIR, NS_RE, VETH_RE, cleanup_leftovers
from netobs.topology.netns import doctor_facts

__all__ = [
    "Topology", "open_topology", "options_of", "cleanup_leftovers", "doctor_facts", "signals_as_interrupt",
    "KINDS", "ROLES", "DEFAULT_SUBNET", "DEFAULT_SYSCTLS", "NETNS_DIR", "NS_RE", "VETH_RE",
]

KINDS = TOPOLOGIES


def options_of(spec) -> dict:
    """open_topology's keyword arguments from a RunSpec or SweepSpec: its kind's own parameters."""
    return {name: getattr(spec, name) for name in KIND_BY_NAME[spec.topology].params}


def open_topology(kind: str = "netns", sysctls: dict | None = None, **own) -> Topology:
    """Build a topology of `kind` with its own parameters (`options_of(spec)` gives them; a
    kind's parameters not given take their defaults); use it as a context manager.
    `sysctls=None` means DEFAULT_SYSCTLS, `{}` changes none. Partial setups are undone before
    the error is raised."""
    declared = KIND_BY_NAME.get(kind)
    if declared is None:
        raise UsageError(f"unknown topology {kind!r}", None, " or ".join(KINDS))
    from netobs.params import PARAMS

    unknown = set(own) - set(declared.params)
    if unknown:
        raise UsageError(f"topology {kind} takes no {', '.join(sorted(unknown))}",
                         fix=", ".join(declared.params) or "no options")
    values = {name: own.get(name, PARAMS.by_name[name].default) for name in declared.params}
    for name in declared.required:
        if not values[name]:
            raise UsageError(f"the {kind} topology needs the {PARAMS.by_name[name].what}",
                             fix=f"{PARAMS.by_name[name].flag} {PARAMS.by_name[name].kind.metavar}")
    module, cls = declared.cls.split(":")
    return open_kind(getattr(importlib.import_module(module), cls)(**values, sysctls=sysctls))
