"""`netobs explain RESULTS_DIR`: the study's questions answered from a results directory."""
from __future__ import annotations

import click

from netobs.files import dumps
from netobs.fmt import cell

EPILOG = """\b
Questions: zerocopy, cache, threads, one-copy-crossover, zero-copy-crossover, anomalies.
\b
Examples:
  netobs explain results/                      # all six questions, as text
  netobs explain results/ --question cache     # one question with its evidence
  netobs explain results/ -q zerocopy -q anomalies
  netobs explain results/ --json | jq '.answers[].verdict'
  netobs import study.csv --duration 10 -o imported/ && netobs explain imported/
"""

MAX_ROWS = 16


def _print_text(answers, results) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False)
    console.print(Text(f"netobs explain: {results.path} (source: {results.source}, "
                       f"{len(results.runs)} ok runs, {len(results.failed)} failed)", style="bold"))
    for note in results.notes:   # what loading could not analyse or had to assume, first
        console.print(Text(f"note: {note}", style="yellow"))
    for answer in answers:
        console.print()
        console.rule(Text(f"{answer.question}: {answer.title}", style="bold cyan"), align="left")
        console.print(answer.verdict)
        ev = answer.evidence
        if ev is not None and not ev.empty:
            cols = [c for c in (answer.key_columns or list(ev.columns)) if c in ev.columns]
            table = Table(show_header=True, header_style="bold", box=None, pad_edge=False, padding=(0, 1))
            for c in cols:
                header = c.replace("_", " ")
                table.add_column(header, overflow="fold", min_width=max(len(w) for w in header.split()),
                                 justify="left" if ev[c].dtype == object else "right")
            for row in ev[cols].head(MAX_ROWS).itertuples(index=False):
                table.add_row(*(cell(c, v, na="-") for c, v in zip(cols, row)))
            console.print()
            console.print(table)
            if len(ev) > MAX_ROWS:
                console.print(f"  ({len(ev) - MAX_ROWS} more rows; --json gives all)", style="dim")
        if answer.caveats:
            console.print()
            console.print("Caveats:", style="bold yellow")
            for c in answer.caveats:
                console.print(f"  - {c}")


@click.command(name="explain", epilog=EPILOG)
@click.argument("results_dir", metavar="RESULTS_DIR")
@click.option("--question", "-q", "names", multiple=True, metavar="Q",
              help="A question to answer (repeatable, or comma-separated); all six when none is named.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (verdicts, facts, evidence, caveats).")
def command(results_dir: str, names: tuple[str, ...], as_json: bool) -> None:
    """Answer the study's questions from RESULTS_DIR, with the evidence behind each verdict.

    Reads only the results directory (from `netobs sweep` or `netobs import`); every
    counter is compared per byte moved, with medians, confidence intervals and
    significance over repeats.
    """
    from netobs.analysis import load, questions

    wanted = [n.strip() for name in names for n in name.split(",") if n.strip()] or None
    wanted = questions.check_names(wanted)  # before reading anything: a typo fails fast
    results = load.load_results(results_dir)
    answers = questions.answer_all(results, wanted)
    if as_json:
        out = {
            "results_dir": str(results.path),
            "source": results.source,
            "runs": int(len(results.runs)),
            "failed": int(len(results.failed)),
            "host_cores": results.host_cores,
            "notes": list(results.notes),
            "answers": [a.to_dict() for a in answers],
        }
        click.echo(dumps(out))
        return
    _print_text(answers, results)
