"""`netobs run`: one experiment, for exploring."""
from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from netobs.cli._common import echo_json, need_root, observe_options, perf_events, tracer_factory
from netobs.spec import RunSpec, parse_size


@click.command(epilog="""\b
Examples:
  sudo netobs run --impl zero_copy --msg-size 65536 --threads 2 --duration 2
  sudo netobs run --impl one_copy --msg-size 4K --threads 4 --trace --json
  netobs run --topology loopback --impl two_copy --msg-size 1024 --no-perf
""")
@click.option("--impl", required=True, help="two_copy, one_copy or zero_copy.")
@click.option("--msg-size", "msg_size", default="65536", show_default=True, help="Message size in bytes (64K, 1M accepted).")
@click.option("--threads", type=int, default=1, show_default=True, help="Client threads, one connection each.")
@click.option("--duration", type=float, default=2.0, show_default=True, help="Measured window, seconds.")
@click.option("--warmup", type=float, default=0.5, show_default=True, help="Warm-up before the window, seconds.")
@click.option("--port", type=int, default=0, help="Server port (default: a free one, which the client is told).")
@click.option("--recv-copy", is_flag=True, help="Server copies each message back into 8 fields.")
@click.option("--verify", is_flag=True, help="Stamp every field and check it on the server.")
@observe_options
@click.option("--keep", type=click.Path(file_okay=False), default=None, help="Keep the raw files (perf, trace, worker output) in this directory.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def command(impl, msg_size, threads, duration, warmup, port, recv_copy, verify, topology, subnet, mtu,
            no_perf, events, perf_server, trace, keep, as_json):
    """Run one experiment: one strategy, message size and thread count."""
    from netobs import topology as topo_mod
    from netobs.interrupt import signals_as_interrupt
    from netobs.runner import run_point

    spec = RunSpec(impl=impl, msg_size=parse_size(msg_size), threads=threads, duration=duration, warmup=warmup,
                   topology=topology, port=port, recv_copy=recv_copy, verify=verify, trace=trace,
                   perf=not no_perf, perf_server=perf_server)
    need_root(topology, trace)
    events_list = perf_events(no_perf, events)
    make_tracer = tracer_factory(trace)

    with contextlib.ExitStack() as stack:
        stack.enter_context(signals_as_interrupt())
        if keep:
            point_dir = Path(keep)
            point_dir.mkdir(parents=True, exist_ok=True)
        else:
            point_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="netobs-run-")))
        topo = stack.enter_context(topo_mod.open_topology(topology, subnet=subnet, mtu=mtu))
        tracer = stack.enter_context(make_tracer()) if make_tracer else None
        result = run_point(spec, topo, point_dir, tracer=tracer, perf_events=events_list)
        result["topology_facts"] = topo.facts()
        if tracer is not None:
            result.setdefault("trace", {})["plan"] = tracer.plan

    if as_json:
        echo_json(result)
    else:
        show(result)


def _fmt(v, unit="", digits=2):
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.{digits}f}{unit}"
    return f"{v:,}{unit}"


def show(r: dict) -> None:
    con = Console()
    lat = r.get("latency_us") or {}
    cpu = r.get("cpu") or {}
    zc = r.get("zerocopy") or {}
    con.print(f"[bold]{r['impl']}[/]  {r['msg_size']} B × {r['threads']} thread(s)  on {r['topology']}, "
              f"window {_fmt(r.get('window_s'), ' s', 3)}")
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_row("sender throughput", _fmt(r.get("throughput_gbps"), " Gbit/s"),
              f"{_fmt(r.get('bytes_sent'))} bytes, {_fmt(r.get('messages'))} messages")
    t.add_row("receiver goodput", _fmt(r.get("goodput_gbps"), " Gbit/s"), f"{_fmt(r.get('bytes_received'))} bytes received (incl. warm-up)")
    t.add_row("send latency", f"mean {_fmt(lat.get('mean'), ' µs')}",
              f"p50 {_fmt(lat.get('p50'), ' µs')}  p99 {_fmt(lat.get('p99'), ' µs')}  p99.9 {_fmt(lat.get('p999'), ' µs')}")
    t.add_row("client CPU", f"user {_fmt(cpu.get('user_s'), ' s', 3)}", f"sys {_fmt(cpu.get('sys_s'), ' s', 3)}")
    if r["impl"] == "zero_copy":
        t.add_row("zero-copy", f"{_fmt(zc.get('completions'))} completions",
                  f"{_fmt(zc.get('copied'))} copied by the kernel (SO_EE_CODE_ZEROCOPY_COPIED), "
                  f"{_fmt(zc.get('notifications'))} notifications, {_fmt(zc.get('enobufs'))} ENOBUFS")
    con.print(t)
    perf = (r.get("perf") or {}).get("events") or {}
    if perf:
        pt = Table(title="perf stat (measured window only)", title_justify="left")
        for col in ("event", "value", "unit", "status", "running"):
            pt.add_column(col)
        reasons: dict[str, list[str]] = {}
        for name, c in perf.items():
            value = c.get("value")
            shown = _fmt(value, digits=2 if c.get("unit") else 0) if value is not None else "—"
            pt.add_row(name, shown, c.get("unit") or "", c.get("status"), _fmt(c.get("running_pct"), "%", 1))
            if c.get("reason") and value is None:
                reasons.setdefault(c["reason"], []).append(name)
        con.print(pt)
        for reason, names in reasons.items():
            con.print(f"  {', '.join(names)}: {reason}", highlight=False)
    trace = r.get("trace")
    if trace:
        tt = Table(title="kernel trace (whole run, incl. warm-up)", title_justify="left")
        tt.add_column("figure")
        tt.add_column("client", justify="right")
        tt.add_column("server", justify="right")
        tt.add_column("probe")
        plan = trace.get("plan") or {}
        missing: dict[str, list[str]] = {}
        for fig in (trace.get("client") or {}):
            probe = plan.get(fig) or {}
            if not probe.get("probe"):
                missing.setdefault(probe.get("reason") or "no probe", []).append(fig)
            tt.add_row(fig, _fmt(trace["client"].get(fig)), _fmt((trace.get("server") or {}).get(fig)),
                       probe.get("probe") or "missing (below)")
        con.print(tt)
        for reason, figs in missing.items():
            con.print(f"  {', '.join(figs)}: no probe here: {reason}", highlight=False)
        if trace.get("lost_events"):
            con.print(f"  [yellow]{trace['lost_events']} trace events lost[/]")
