"""`netobs sweep`: the whole study in one command."""
from __future__ import annotations

import sys
import time

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from netobs.cli._common import (check_perf, check_strategies, leftovers_line, need_root, prepare_tracing, remote_topology,
                                table_options)
from netobs.fmt import fixed
from netobs.params import PARAMS
from netobs.spec import SweepSpec


@click.command(epilog="""\b
Examples:
  sudo netobs sweep --trace -o results/                 # the study: 48 points, 10 s each
  sudo netobs sweep --sizes 4K,64K --threads 1,2 --duration 1 --repeats 3 --order interleaved -o quick/
  sudo netobs sweep -o results/ --resume                # finish an interrupted sweep
  sudo netobs sweep --trace --profile -o results/       # and where the time goes: cost classes, wait reasons
""")
@table_options("sweep")
@click.option("-o", "--out", default="results", show_default=True, type=click.Path(file_okay=False), help="Results directory.")
@click.option("--resume", is_flag=True, help="Run only the points missing from --out (options not typed again: as it was started).")
@click.option("--force", is_flag=True, help="Move an existing non-empty --out aside and start anew.")
def command(out, resume, force, **options):
    """Run the study's matrix (strategies × sizes × threads × repeats) and store every point."""
    from netobs.sweep import open_store, run_sweep

    values = PARAMS.from_cli("sweep", options)
    if resume:  # options not typed again come from what the directory was started with
        values = {**_stored_options(out), **{k: v for k, v in values.items() if k in _given_options()}}
    sweep = SweepSpec(**remote_topology(values))
    need_root(sweep.topology, sweep.trace or sweep.profile)
    check_strategies(sweep.strategies)
    check_perf(sweep)
    store = open_store(sweep, out, resume=resume, force=force)   # the one writer from here on
    con = Console(stderr=True)
    reporter = _Reporter(con, per_point_s=sweep.warmup + sweep.duration)
    try:
        tracing_setup = prepare_tracing(sweep)
        if tracing_setup is not None:
            store.update_manifest(tracing_setup=tracing_setup)
        summary = run_sweep(sweep, store, progress=reporter)
    finally:
        reporter.close()
        store.close()
    done = f"{summary.done} done, {summary.failed} failed"
    if summary.skipped:
        done += f", {summary.skipped} already stored"
    overhead = ("" if summary.overhead_pct is None else
                f"; overhead beyond the measured windows {fixed(summary.overhead_s, ' s', 1)} "
                f"({fixed(summary.overhead_pct, '%', 1)})")
    click.echo(f"sweep: {done} in {fixed(summary.wall_s, ' s', 1)}{overhead}")
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


def _stored_options(out: str) -> dict:
    """The sweep options an existing results directory was started with (any netobs version's
    manifest); {} when there is nothing to resume."""
    from pathlib import Path

    from netobs.spec import stored_sweep
    from netobs.store import read_manifest

    if not (Path(out) / "manifest.json").exists():
        return {}
    manifest = read_manifest(Path(out))
    if manifest.get("source") not in (None, "netobs"):   # an import: nothing to resume (open_store says so)
        return {}
    return stored_sweep(manifest).to_dict()


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
        if event == "cleaned":
            self.con.print(leftovers_line(info["removed"]), highlight=False, soft_wrap=True)
        elif event == "begin":
            if info.get("recovered"):
                self.con.print(f"{len(info['recovered'])} point(s) stored from their points/<id>/result.json "
                               f"without measuring them again: {', '.join(info['recovered'][:6])}"
                               + (" ..." if len(info["recovered"]) > 6 else ""), highlight=False)
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
            line = (f"  {info['spec'].point_id}: {fixed(r['throughput_gbps'], ' Gbit/s')}" if r["status"] == "ok"
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
