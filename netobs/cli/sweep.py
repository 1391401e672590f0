"""`netobs sweep`: the whole study in one command."""
from __future__ import annotations

import sys
import time

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from netobs.cli._common import need_root, observe_options, perf_events, tracer_factory
from netobs.spec import IMPLS, ORDERS, STUDY_DURATION, SWEEP_WARMUP, STUDY_SIZES, STUDY_THREADS, RunSpec, SweepSpec, parse_list, parse_size


@click.command(epilog="""\b
Examples:
  sudo netobs sweep --trace -o results/                 # the study: 48 points, 10 s each
  sudo netobs sweep --sizes 4K,64K --threads 1,2 --duration 1 --repeats 3 --order interleaved -o quick/
  sudo netobs sweep -o results/ --resume                # finish an interrupted sweep
""")
@click.option("--impls", default=",".join(IMPLS), show_default=True, help="Strategies, comma-separated.")
@click.option("--sizes", default=",".join(map(str, STUDY_SIZES)), show_default=True, help="Message sizes in bytes.")
@click.option("--threads", default=",".join(map(str, STUDY_THREADS)), show_default=True, help="Client thread counts.")
@click.option("--duration", type=float, default=STUDY_DURATION, show_default=True, help="Measured window per point, seconds.")
@click.option("--warmup", type=float, default=SWEEP_WARMUP, show_default=True, help="Warm-up before each window, seconds.")
@click.option("--repeats", type=int, default=1, show_default=True, help="Runs of each point (for medians and CIs).")
@click.option("--order", type=click.Choice(ORDERS), default="sequential", show_default=True,
              help="interleaved/random keep drift from biasing one strategy.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for --order random.")
@click.option("--recv-copy", is_flag=True, help="Server copies each message back into 8 fields.")
@observe_options
@click.option("-o", "--out", default="results", show_default=True, type=click.Path(file_okay=False), help="Results directory.")
@click.option("--resume", is_flag=True, help="Run only the points missing from --out.")
@click.option("--force", is_flag=True, help="Move an existing non-empty --out aside and start anew.")
def command(impls, sizes, threads, duration, warmup, repeats, order, seed, recv_copy, topology, subnet, mtu,
            no_perf, events, perf_server, trace, out, resume, force):
    """Run the study's matrix (strategies × sizes × threads × repeats) and store every point."""
    from netobs.sweep import open_store, run_sweep

    o = {"impls": impls, "sizes": sizes, "threads": threads, "duration": duration, "warmup": warmup,
         "repeats": repeats, "order": order, "seed": seed, "topology": topology, "subnet": subnet, "mtu": mtu,
         "recv_copy": recv_copy, "perf_server": perf_server, "trace": trace, "no_perf": no_perf, "events": events}
    if resume:  # options not typed again come from what the directory was started with
        o.update(_stored_options(out, given=_given_options()))
    base = RunSpec("two_copy", 1024, 1, duration=o["duration"], warmup=o["warmup"], topology=o["topology"],
                   recv_copy=o["recv_copy"], perf=not o["no_perf"], perf_server=o["perf_server"], trace=o["trace"])
    sweep = SweepSpec(impls=parse_list(o["impls"], str, "strategy"),
                      sizes=tuple(parse_size(s) for s in parse_list(o["sizes"], str, "size")),
                      threads=parse_list(o["threads"], int, "thread count"),
                      repeats=o["repeats"], order=o["order"], seed=o["seed"], subnet=o["subnet"], mtu=o["mtu"],
                      base=base)
    topology, trace, warmup, duration = base.topology, base.trace, base.warmup, base.duration
    no_perf, events = o["no_perf"], o["events"]
    need_root(topology, trace)
    events_list = perf_events(no_perf, events)
    store = open_store(sweep, out, events_list or [], resume=resume, force=force)
    con = Console(stderr=True)
    reporter = _Reporter(con, per_point_s=warmup + duration)
    try:
        summary = run_sweep(sweep, store, events_list, progress=reporter, tracer_factory=tracer_factory(trace))
    finally:
        reporter.close()
    done = f"{summary.done} done, {summary.failed} failed"
    if summary.skipped:
        done += f", {summary.skipped} already stored"
    overhead = "" if summary.overhead_pct is None else f"; overhead beyond the measured windows {summary.overhead_s:.1f} s ({summary.overhead_pct:.1f}%)"
    click.echo(f"sweep: {done} in {summary.wall_s:.1f} s{overhead}")
    for point, error in summary.failures:
        click.echo(f"  failed {point}: {error}")
    click.echo(f"results: {summary.path}")
    if summary.failed:
        sys.exit(1)


def _given_options() -> set[str]:
    """Options the user typed (not defaults): on --resume the others come from the manifest."""
    ctx = click.get_current_context()
    return {name for name in ctx.params
            if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE}


def _stored_options(out: str, given: set[str]) -> dict:
    """The sweep options an existing results directory was started with, for those the user
    did not type again; {} when there is nothing to resume."""
    from pathlib import Path

    from netobs.store import read_manifest

    if not (Path(out) / "manifest.json").exists():
        return {}
    manifest = read_manifest(Path(out))
    m = manifest.get("matrix") or {}
    # the matrix as the CLI spells it (lists comma-separated); "perf" goes with the events below
    stored = {k: ",".join(map(str, v)) if isinstance(v, list) else v for k, v in m.items() if k != "perf"}
    if "events" not in given and "no_perf" not in given:
        stored["no_perf"] = not m.get("perf", True)
        stored["events"] = ",".join(manifest.get("perf_events") or []) or None
    return {k: v for k, v in stored.items() if k not in given and v is not None}


def eta_seconds(total: int, done: int, started: float, last_done: float, now: float, guess_per_point: float) -> float:
    """Points left x the mean time of the finished ones (before any finished: the guess, i.e.
    warm-up + window), less the time the current point has already run."""
    per_point = (last_done - started) / done if done else guess_per_point
    into_current = now - (last_done if done else started)
    return max(0.0, (total - done) * per_point - into_current)


class _EtaColumn(ProgressColumn):
    def __init__(self, reporter: "_Reporter"):
        super().__init__()
        self.reporter = reporter

    def render(self, task) -> Text:
        left = int(round(self.reporter.eta_s()))
        return Text(f"ETA {left // 60}:{left % 60:02d}", style="progress.remaining")


class _Reporter:
    """Progress bar with ETA on a terminal; one plain line per point otherwise."""

    def __init__(self, console: Console, per_point_s: float):
        self.con = console
        self.per_point_s = per_point_s
        self.progress = None
        self.task = None

    def __call__(self, event: str, **info):
        if event == "begin":
            if info["skipped"]:
                self.con.print(f"{info['skipped']} point(s) already stored; {info['total']} to run")
            if self.con.is_terminal:
                self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                         TimeElapsedColumn(), _EtaColumn(self),
                                         console=self.con, transient=False)
                self.progress.start()
                self.total, self.done = info["total"], 0
                self.started = self.last_done = time.monotonic()
                self.task = self.progress.add_task("starting", total=info["total"])
        elif event == "point":
            spec = info["spec"]
            if self.progress:
                self.progress.update(self.task, description=f"{spec.point_id:<28}")
            else:
                self.con.print(f"[{info['index'] + 1}] {spec.point_id} ...", highlight=False)
        elif event == "done":
            r = info["result"]
            line = (f"  {info['spec'].point_id}: {r['throughput_gbps']:.2f} Gbit/s" if r["status"] == "ok"
                    else f"  {info['spec'].point_id}: FAILED: {r['error']}")
            if self.progress:
                self.done += 1
                self.last_done = time.monotonic()
                self.progress.advance(self.task)
                if r["status"] != "ok":
                    self.progress.console.print(line, highlight=False)
            else:
                self.con.print(line, highlight=False)

    def eta_s(self) -> float:
        return eta_seconds(self.total, self.done, self.started, self.last_done, time.monotonic(), self.per_point_s)

    def close(self):
        if self.progress:
            self.progress.stop()
