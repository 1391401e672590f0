"""Options and helpers shared by `netobs run` and `netobs sweep`."""
from __future__ import annotations

import json
import os
import sys

import click

from netobs.errors import CapabilityError
from netobs.spec import DEFAULT_SUBNET, TOPOLOGIES


def observe_options(f):
    """--topology/--subnet/--mtu/--no-perf/--events/--perf-server/--trace, shared by run and sweep."""
    options = [
        click.option("--topology", type=click.Choice(TOPOLOGIES), default="netns", show_default=True,
                     help="netns: server and client in two namespaces joined by a veth pair; loopback: 127.0.0.1."),
        click.option("--subnet", default=DEFAULT_SUBNET, show_default=True, help="veth subnet (server .1, client .2)."),
        click.option("--mtu", type=int, default=None, help="veth MTU (default: the kernel's)."),
        click.option("--no-perf", "no_perf", is_flag=True, help="Run without perf stat counters."),
        click.option("--events", default=None, help="perf events, comma-separated (replaces the defaults)."),
        click.option("--perf-server", is_flag=True, help="Also run the server under perf stat."),
        click.option("--trace", is_flag=True, help="Trace the kernel's send/receive/copy paths with BCC."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def perf_events(no_perf: bool, events: str | None) -> list[str] | None:
    """The events to count (None = no perf); checks that perf is usable first."""
    if no_perf:
        return None
    from netobs import perf

    perf.check_window(perf.find_perf())   # before any point: the client's counts are per window
    perf.check_permission()
    if not events:
        return list(perf.DEFAULT_EVENTS)
    chosen = perf.validate_events(events)
    perf.check_events(chosen)
    return chosen


def need_root(topology: str, trace: bool) -> None:
    if os.geteuid() == 0:
        return
    why = [w for w, on in (("network namespaces", topology == "netns"), ("BPF tracing", trace)) if on]
    if why:
        raise CapabilityError(f"{' and '.join(why)} need root", fix="sudo " + " ".join(["netobs"] + sys.argv[1:]))


def tracer_factory(trace: bool):
    if not trace:
        return None
    from netobs import tracer

    return tracer.Tracer


def echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))
