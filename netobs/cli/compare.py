"""`netobs compare BASE NEW`: what changed between two results directories, beyond noise."""
from __future__ import annotations

import math

import click

from netobs.errors import EXIT_FAILURE, UsageError
from netobs.files import dumps

EPILOG = """\b
Examples:
  netobs compare results-6.1/ results-6.8/
  netobs compare base/ new/ --threshold 10
  netobs compare base/ new/ --metric throughput_gbps --metric cycles_per_byte
  netobs compare base/ new/ --json | jq '.points[] | select(.verdict == "slower")'
  netobs compare base/ new/ --fail-on-regression 5    # exit 1 on a significant 5% slowdown (CI)
"""
WIDTH_PIPED = 160   # not a terminal: wide enough for every column, the same on every machine


def _print_text(blocks) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=WIDTH_PIPED)
    for b in blocks:
        style = "yellow" if b.style == "warn" else ""
        if b.kind == "heading":
            console.print()
            console.print(Text(b.text, style="bold cyan"))
        elif b.kind == "line":
            console.print(Text(b.text, style=style))
        else:
            table = Table(show_header=True, header_style="bold", box=None, pad_edge=False, padding=(0, 1))
            for h in b.headers:
                table.add_column(h, overflow="fold")
            for row in b.rows:
                table.add_row(*row)
            console.print(table)


def _check_pct(flag: str, value: float, example: str) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise UsageError(f"{flag} {value:g} is not a percentage", "a change is measured as 0% or more",
                         f"{flag} {example}")


@click.command(name="compare", epilog=EPILOG)
@click.argument("base_dir", metavar="BASE")
@click.argument("new_dir", metavar="NEW")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: every number of the comparison.")
@click.option("--threshold", "threshold", type=float, default=5.0, show_default=True, metavar="PCT",
              help="A significant change smaller than PCT percent is 'same within noise'.")
@click.option("--metric", "metrics", multiple=True, metavar="M",
              help="A measured column to compare (repeatable, or comma-separated; e.g. cycles_per_byte) "
                   "[default: throughput_gbps, latency_us, cpu_s_per_gb, copies_per_byte].")
@click.option("--fail-on-regression", "fail_pct", type=float, default=None, metavar="PCT",
              help="Exit 1 when a point is significantly worse by PCT percent or more "
                   "(in throughput, or in the --metric ones).")
def command(base_dir: str, new_dir: str, as_json: bool, threshold: float, metrics: tuple[str, ...],
            fail_pct: float | None) -> None:
    """Compare the results in NEW with those in BASE, point by point.

    Points are matched by strategy, message size and threads. What differs between the two
    runs' manifests (kernel, CPU, sysctls, topology, versions, probe plan, run parameters) is
    shown first; then, per metric, both medians, the change, Welch's p over the repeats and a
    verdict (faster / slower / same within noise / untested with one repeat); then a summary
    and any change in the ranking of strategies.
    """
    from netobs.analysis import compare, compare_text, load

    _check_pct("--threshold", threshold, "5")   # before reading anything
    if fail_pct is not None:
        _check_pct("--fail-on-regression", fail_pct, "5")
    wanted = [n.strip() for m in metrics for n in m.split(",") if n.strip()]
    c = compare.compare(load.load_results(base_dir), load.load_results(new_dir), wanted, threshold)
    if fail_pct is not None:
        compare.regressions(c, fail_pct, wanted)
    if as_json:
        click.echo(dumps(c.to_dict()))
    else:
        _print_text(compare_text.render(c))
    if fail_pct is not None:
        line = compare_text.regression_line(c, fail_pct)
        click.echo(f"netobs compare: {line}", err=bool(c.regressions))
        if c.regressions:
            raise click.exceptions.Exit(EXIT_FAILURE)
