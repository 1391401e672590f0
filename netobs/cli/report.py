"""`netobs report`: one self-contained HTML report, or each chart as PNG/SVG."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from netobs.analysis import report as _report
from netobs.errors import NetobsError, UsageError

RESULTS_FILES = ("runs.csv", "manifest.json")


def _inside(path: Path, parent: Path) -> bool:
    try:
        path.relative_to(parent)
        return True
    except ValueError:
        return False


def check_writable_dir(directory: Path, what: str) -> None:
    """Before the work: `directory` exists and a file can be created in it (a read-only
    filesystem or a missing directory is said now, not after the whole report was built)."""
    if not directory.is_dir():
        raise UsageError(f"cannot write {what}", f"its directory {directory} does not exist",
                         f"creating it first (mkdir -p {directory}), or another -o path")
    try:
        fd, probe = tempfile.mkstemp(prefix=".netobs-probe-", dir=directory)
    except OSError as exc:
        raise UsageError(f"cannot write {what} in {directory}", exc.strerror or str(exc),
                         "a writable place for -o") from None
    os.close(fd)
    os.unlink(probe)


def _check_html_target(results: Path, out: Path, force: bool, typed: str) -> None:
    if typed.endswith(("/", os.sep)) or out.is_dir():
        raise UsageError(f"report output {typed} names a directory", "-o names the HTML file to write",
                         f"-o {out / 'report.html'}")
    res, target = results.resolve(), out.resolve()
    if target.parent == res and target.name in RESULTS_FILES or _inside(target, res / "points"):
        raise UsageError(f"refusing to write the report over the results' own data ({out})",
                         fix=f"-o {results / 'report.html'}")
    if target.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"report output {out} does not end in .html", fix="-o report.html")
    if out.exists() and not out.is_file():
        raise UsageError(f"{out} exists and is not a file", fix="another -o path")
    if out.exists() and not force:
        raise UsageError(f"{out} already exists", "netobs never overwrites an output silently",
                         "--force to replace it, or another -o path")
    check_writable_dir(out.parent, f"the report {out}")


def _check_figures_target(results: Path, out_dir: Path, fmt: str, force: bool, names: list[str]) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir} exists and is not a directory", fix="another --out-dir")
    if out_dir.resolve() == results.resolve() or _inside(out_dir.resolve(), results.resolve() / "points"):
        raise UsageError(f"refusing to write figures into the results directory itself ({out_dir})",
                         fix=f"--out-dir {results / 'figures'}")
    if out_dir.is_dir() and not force:
        clash = [n for n in names if (out_dir / f"{n}.{fmt}").exists()]
        if clash:
            raise UsageError(f"{out_dir} already holds {len(clash)} of the figures (e.g. {clash[0]}.{fmt})",
                             "netobs never overwrites an output silently", "--force to replace them, or another --out-dir")


@click.command(
    "report",
    epilog="""\b
Examples:
  netobs report results/ -o report.html
  netobs report results/ -o report.html --force     # replace an existing report
  netobs report results/ --format png --out-dir figs/
  netobs report results/ --format svg --out-dir figs/
  netobs report new/ --baseline base/ -o report.html   # with a comparison section
""")
@click.argument("results_dir", metavar="RESULTS_DIR", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=str, default=None,
              help="HTML file to write [default: RESULTS_DIR/report.html].")
@click.option("--format", "fmt", type=click.Choice(["html", *_report.FORMATS]), default="html", show_default=True,
              help="html: one self-contained report; png/svg: each chart as a file in --out-dir.")
@click.option("--out-dir", type=click.Path(path_type=Path), default=None,
              help="Directory for --format png/svg (created if missing).")
@click.option("--force", is_flag=True, help="Replace an existing report or figures (never the results' own files).")
@click.option("--baseline", "baseline", type=click.Path(path_type=Path), default=None, metavar="BASE",
              help="A results directory to compare with: the report gains a section with the throughput "
                   "ratio per point and the questions whose verdict changed (as `netobs compare`).")
def command(results_dir: Path, output: str | None, fmt: str, out_dir: Path | None, force: bool,
            baseline: Path | None):
    """Write one HTML report (opens offline) or PNG/SVG figures from a results directory.

    The report holds the run summary (host, kernel, topology, what perf and the tracer could
    and could not measure), each question's verdict with its evidence and chart, every figure,
    and the raw runs. A chart whose data was not measured is replaced by a note saying why.
    """
    if baseline is not None and fmt != "html":
        raise UsageError("--baseline is for the HTML report", fix="--format html (the default)")
    if fmt == "html":
        if out_dir is not None:
            raise UsageError("--out-dir is for --format png/svg", fix="-o FILE.html for the HTML report")
        out = Path(output) if output is not None else results_dir / "report.html"
        _check_html_target(results_dir, out, force, output if output is not None else str(out))
        try:
            path = _report.write_report(results_dir, out, baseline)
        except OSError as exc:
            raise NetobsError(f"cannot write the report {out}", exc.strerror or str(exc),
                              "a writable place for -o (the results are untouched)") from None
        click.echo(f"report: {path}")
        return
    if output is not None:
        raise UsageError(f"-o is for the HTML report; --format {fmt} writes one file per chart",
                         fix=f"--out-dir DIR with --format {fmt}")
    if out_dir is None:
        raise UsageError(f"--format {fmt} needs --out-dir", fix=f"--format {fmt} --out-dir figs/")
    plan = _report.export_plan(results_dir)
    _check_figures_target(results_dir, out_dir, fmt, force, list(plan))
    try:
        written, missing = _report.export_figures(plan, out_dir, fmt=fmt)
    except OSError as exc:
        raise NetobsError(f"cannot write the figures into {out_dir}", exc.strerror or str(exc),
                          "a writable --out-dir") from None
    click.echo(f"wrote {len(written)} {fmt.upper()} figure(s) to {out_dir}")
    for chart in missing:
        click.echo(f"  not drawn: {chart.title}: {chart.reason}")
