"""`netobs run`: one experiment, for exploring."""
from __future__ import annotations

import contextlib
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from netobs.cli._common import (check_perf, check_strategies, echo_json, leftovers_line, need_root, prepare_tracing,
                                remote_topology, table_options)
from netobs.errors import UsageError
from netobs.figures import ROLES
from netobs.fmt import fixed, share
from netobs import strategies
from netobs.params import PARAMS
from netobs.spec import RunSpec


@click.command(epilog="""\b
Examples:
  sudo netobs run --strategy zero_copy --msg-size 65536 --threads 2 --duration 2
  sudo netobs run --strategy two_copy --msg-size 64K --profile    # CPU by cost class, sleeps by reason
  sudo netobs run --strategy one_copy --msg-size 4K --threads 4 --trace --json
  netobs run --topology loopback --strategy two_copy --msg-size 1024 --no-perf
""")
@table_options("run")
@click.option("--keep", type=click.Path(file_okay=False), default=None, help="Keep the raw files (perf, trace, worker output) in this directory.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (its \"params\": every parameter of the run).")
def command(keep, as_json, **options):
    """Run one experiment: one strategy, message size and thread count."""
    from netobs import topology as topo_mod
    from netobs.interrupt import signals_as_interrupt
    from netobs.runner import open_rig, run_point
    from netobs.store import PointFiles

    spec = RunSpec(**remote_topology(PARAMS.from_cli("run", options)))
    if keep:
        check_keep(Path(keep))
    need_root(spec.topology, spec.trace or spec.profile)
    check_strategies([spec.strategy])
    check_perf(spec)
    prepare_tracing(spec)

    with contextlib.ExitStack() as stack:
        stack.enter_context(signals_as_interrupt())
        topo = stack.enter_context(topo_mod.open_topology(spec.topology, **topo_mod.options_of(spec)))
        if topo.leftovers_removed:
            click.echo(leftovers_line(topo.leftovers_removed), err=True)
        if keep:
            point_dir = Path(keep)
            created = not point_dir.exists()
            try:
                point_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageError(f"cannot create --keep directory {keep}", exc.strerror or str(exc),
                                 "another --keep path") from None
            if created:
                click.echo(f"keeping the raw files in {point_dir} (a new directory)", err=True)
        else:
            point_dir = Path(stack.enter_context(topo.temporary_directory("netobs-run-")))
        result = run_point(spec, open_rig(stack, spec, topo), PointFiles(point_dir))
        result["topology_facts"] = topo.facts()
        if topo.peer_host is not None:
            result["remote_host"] = topo.peer_host
        if spec.trace and not spec.profile:   # the bench's per-event figure stands in for the profile's
            from netobs import observer_cost
            result["observer_cost"] = observer_cost.entry(spec.topology)

    if as_json:
        echo_json(result)
    else:
        show(result)


def check_keep(path: Path) -> None:
    """--keep into a directory that holds nothing yet (or a new one): an earlier run's files
    are never overwritten, and nothing planted there is written through."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise UsageError(f"--keep {path} exists and is not a directory", fix="a new or empty directory for --keep")
    if path.is_dir() and any(path.iterdir()):
        raise UsageError(f"--keep directory {path} is not empty", "netobs never overwrites an earlier run's files",
                         "a new or empty directory for --keep")


def show(r: dict) -> None:
    con = Console()
    lat = r.get("latency_us") or {}
    cpu = r.get("cpu") or {}
    zc = r.get("zerocopy") or {}
    con.print(f"[bold]{r['strategy']}[/]  {r['msg_size']} B × {r['threads']} thread(s)  on {r['topology']}, "
              f"window {fixed(r.get('window_s'), ' s', 3)}")
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_row("sender throughput", fixed(r.get("throughput_gbps"), " Gbit/s"),
              f"{fixed(r.get('bytes_sent'))} bytes, {fixed(r.get('messages'))} messages")
    t.add_row("receiver goodput", fixed(r.get("goodput_gbps"), " Gbit/s"), f"{fixed(r.get('bytes_received'))} bytes received (incl. warm-up)")
    t.add_row("send latency", f"mean {fixed(lat.get('mean'), ' µs')}",
              f"p50 {fixed(lat.get('p50'), ' µs')}  p99 {fixed(lat.get('p99'), ' µs')}  p99.9 {fixed(lat.get('p999'), ' µs')}")
    t.add_row("client CPU", f"user {fixed(cpu.get('user_s'), ' s', 3)}", f"sys {fixed(cpu.get('sys_s'), ' s', 3)}")
    if getattr(strategies.BY_NAME.get(r["strategy"]), "zero_copy", False):
        t.add_row("zero-copy", f"{fixed(zc.get('completions'))} completions",
                  f"{fixed(zc.get('copied'))} copied by the kernel (SO_EE_CODE_ZEROCOPY_COPIED), "
                  f"{fixed(zc.get('notifications'))} notifications, {fixed(zc.get('enobufs'))} ENOBUFS")
    con.print(t)
    perf = (r.get("perf") or {}).get("events") or {}
    if perf:
        pt = Table(title="perf stat (measured window only)", title_justify="left")
        for col in ("event", "value", "unit", "status", "running"):
            pt.add_column(col)
        reasons: dict[str, list[str]] = {}
        for name, c in perf.items():
            value = c.get("value")
            shown = fixed(value, digits=2 if c.get("unit") else 0) if value is not None else "—"
            pt.add_row(name, shown, c.get("unit") or "", c.get("status"), fixed(c.get("running_pct"), "%", 1))
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
            tt.add_row(fig, fixed(trace["client"].get(fig)), fixed((trace.get("server") or {}).get(fig)),
                       probe.get("probe") or "missing (below)")
        con.print(tt)
        for reason, figs in missing.items():
            con.print(f"  {', '.join(figs)}: no probe here: {reason}", highlight=False)
        if trace.get("lost_events"):
            con.print(f"  [yellow]{trace['lost_events']} trace events lost[/]")
    prof = r.get("profile")
    if prof:
        show_profile(con, prof)


def show_profile(con: Console, prof: dict) -> None:
    """The profile's class shares and wait reasons, client and server side by side."""
    from netobs.figures import PROFILE_CLASSES, WAIT_REASONS

    plan = (prof.get("plan") or {}).get("on_cpu") or {}
    on = {role: (prof.get(role) or {}).get("on_cpu") or {} for role in ROLES}
    off = {role: (prof.get(role) or {}).get("off_cpu") or {} for role in ROLES}
    pt = Table(title=f"on-CPU profile ({plan.get('event') or 'no sampling event'} at {plan.get('hz')} Hz, "
                     "whole run, incl. warm-up)", title_justify="left")
    pt.add_column("class")
    for role in ROLES:
        pt.add_column(f"{role} share", justify="right")
        pt.add_column(f"{role} CPU-s/GB", justify="right")
    for cls in PROFILE_CLASSES:
        shares = [(on[r].get("classes") or {}).get(cls) for r in ROLES]
        if not any(shares):
            continue
        cells = []
        for r in ROLES:
            cells += [share((on[r].get("classes") or {}).get(cls)),
                      fixed((on[r].get("cpu_s_per_gb") or {}).get(cls), digits=3)]
        pt.add_row(cls, *cells)
    pt.add_row("samples", *[c for r in ROLES for c in (fixed(on[r].get("samples")), "")])
    con.print(pt)
    for r in ROLES:
        o = on[r]
        if o.get("missing"):
            con.print(f"  {r}: no on-CPU profile: {o['missing']}", highlight=False)
        elif o.get("samples"):
            ctx = o.get("context") or {}
            con.print(f"  {r}: {share(ctx.get('softirq'))} of samples in softirq, {share(ctx.get('irq'))} in hard irq; "
                      f"skid {share((o.get('skid') or {}).get('share'))} (classed by callers)", highlight=False)
            if o.get("unknown"):
                con.print(f"  {r}: top unclassed: " + ", ".join(f"{f} ({n})" for f, n in o["unknown"][:5]),
                          highlight=False, markup=False)
    wt = Table(title="off-CPU time by reason (s, summed over threads)", title_justify="left")
    wt.add_column("reason")
    for role in ROLES:
        wt.add_column(role, justify="right")
    for reason in WAIT_REASONS:
        vals = [(off[r].get("reasons") or {}).get(reason) for r in ROLES]
        if any(vals):
            wt.add_row(reason, *[fixed(v, digits=3) for v in vals])
    wt.add_row("switches", *[fixed(off[r].get("switches")) for r in ROLES])
    con.print(wt)
    files = prof.get("files") or {}
    if files:
        con.print("  folded stacks (flamegraph.pl, speedscope): "
                  + ", ".join(f for fs in files.values() for f in fs.values()), highlight=False)
