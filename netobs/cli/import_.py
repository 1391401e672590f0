"""`netobs import`: results measured elsewhere, in the study's CSV format."""
from __future__ import annotations

import click

from netobs.figures import STUDY_COLUMNS
from netobs.importer import import_study_csv


@click.command(epilog="Columns: " + ", ".join(STUDY_COLUMNS) + """ (and optionally repeat).

\b
Examples:
  netobs import study.csv --duration 10 -o results-study/
  netobs explain results-study/ --question cache
  netobs import repeats.csv --duration 10 -o new/ && netobs compare results-study/ new/
""")
@click.argument("csv_path", metavar="STUDY.CSV")
@click.option("--duration", type=float, required=True, help="Seconds each point of the study ran (bytes = throughput × duration).")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Results directory to create.")
@click.option("--force", is_flag=True, help="Move an existing non-empty --out aside first.")
def command(csv_path, duration, out, force):
    """Turn a CSV in the study's column format into a results directory.

    One row per point; a CSV with an extra `repeat` column (0, 1, ...) may hold several rows
    per point, measured repeats that `netobs compare` tests for significance.
    """
    store, notes = import_study_csv(csv_path, out, duration, force=force)
    click.echo(f"imported {len(store.rows)} points from {csv_path} into {store.path}")
    for note in notes:
        click.echo(f"  note: {note}")
