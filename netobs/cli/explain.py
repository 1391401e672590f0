"""`netobs explain RESULTS_DIR`: the study's questions answered from a results directory."""
from __future__ import annotations

import click

from netobs.files import dumps
from netobs.fmt import cell

EPILOG = """\b
Questions: zerocopy, cache, threads, one-copy-crossover, zero-copy-crossover, anomalies.
\b
Examples:
  netobs explain results/                      # all six questions: headline, reasons, hypotheses
  netobs explain results/ --question cache     # one question, with its hypotheses' numbers and evidence
  netobs explain results/ --evidence           # every question with its evidence table
  netobs explain results/ -q zerocopy -q anomalies
  netobs explain results/ --json | jq '.answers[].headline'
  netobs import study.csv --duration 10 -o imported/ && netobs explain imported/
"""

MAX_ROWS = 16
PROSE_WIDTH = 100      # words wrap here (or at a narrower terminal); tables take the width they need
STATUS_ORDER = ("supported", "contradicted", "not_measured")


def _table(answer):
    from rich.table import Table

    ev = answer.evidence
    cols = [c for c in (answer.key_columns or list(ev.columns)) if c in ev.columns]
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False, padding=(0, 1))
    for c in cols:
        table.add_column(c.replace("_", " "), no_wrap=True, justify="left" if ev[c].dtype == object else "right")
    for row in ev[cols].head(MAX_ROWS).itertuples(index=False):
        table.add_row(*(cell(c, v, na="-") for c, v in zip(cols, row)))
    return table


def _print_table(console, table) -> None:
    """Every column, never cut: piped output takes the table's own width; a terminal folds
    cells rather than dropping a column."""
    from rich.console import Console
    from rich.measure import Measurement

    if console.is_terminal:
        console.print(table)
        return
    need = Measurement.get(console, console.options.update_width(10_000), table).maximum
    Console(width=max(need, PROSE_WIDTH), highlight=False, file=console.file).print(table)


def _item(console, marker: str, text: str, style: str | None = None) -> None:
    """One list item whose wrapped lines stay indented under its first word (a hanging indent)."""
    from rich.text import Text

    indent = len(marker) + 1
    lines = Text(text, style=style or "").wrap(console, max(20, console.width - indent))
    for i, line in enumerate(lines):
        line.rstrip()
        console.print(Text(marker if i == 0 else " " * len(marker), style=style or "") + " " + line)


def _hypotheses(console, answer, detailed: bool) -> None:
    facts = getattr(answer.facts, "hypotheses", [])
    if not facts:
        return
    from rich.text import Text

    from netobs.analysis.questions import prose
    if detailed:
        console.print("Hypotheses tested:", style="bold")
        for line in answer.hypotheses:
            _item(console, "  -", line)
        return
    groups = {s: [prose.HYPOTHESIS_WORDS[j.name][0].split(" (")[0] for j in facts if j.status == s]
              for s in STATUS_ORDER}
    words = "; ".join(f"{prose.STATUS_WORDS[s]}: {', '.join(n)}" for s, n in groups.items() if n)
    console.print(Text(f"Hypotheses: {words}."))


def _print_text(answers, results, detailed: bool, evidence: bool) -> None:
    from rich.console import Console
    from rich.text import Text

    from netobs.analysis import noise
    from netobs.analysis.questions import run_caveats

    probe = Console(highlight=False)
    width = min(probe.width, PROSE_WIDTH) if probe.is_terminal else PROSE_WIDTH
    console = Console(highlight=False, width=width)
    console.print(Text(f"netobs explain: {results.path} (source: {results.source}, "
                       f"{len(results.runs)} ok runs, {len(results.failed)} failed)", style="bold"))
    for note in results.notes:   # what loading could not analyse or had to assume, first
        console.print(Text(f"note: {note}", style="yellow"))
    general = run_caveats(answers) + noise.describe(results).items()   # (issue 27: placement, two modes)
    if general:
        console.print("For the whole run:", style="bold yellow")
        for c in general:
            _item(console, "  -", c["text"])
    for answer in answers:
        console.print()
        console.rule(Text(f"{answer.question}: {answer.title}", style="bold cyan"), align="left")
        console.print(Text(answer.headline, style="bold"))
        for i, reason in enumerate(answer.reasons, 1):
            _item(console, f"  {i}.", reason)
        _hypotheses(console, answer, detailed)
        for c in answer.own_caveats:
            _item(console, "  caveat:", c, style="yellow")
        ev = answer.evidence
        if ev is None or ev.empty:
            continue
        if detailed or evidence:
            console.print()
            _print_table(console, _table(answer))
            if len(ev) > MAX_ROWS:
                console.print(f"  ({len(ev) - MAX_ROWS} more rows; --json gives all)", style="dim")
        else:
            console.print(Text(f"Evidence: {len(ev)} rows (-q {answer.question} or --evidence shows them).",
                               style="dim"))


@click.command(name="explain", epilog=EPILOG)
@click.argument("results_dir", metavar="RESULTS_DIR")
@click.option("--question", "-q", "names", multiple=True, metavar="Q",
              help="A question to answer (repeatable, or comma-separated); all six when none is named. A named "
                   "question is shown with its hypotheses' numbers and its evidence table.")
@click.option("--evidence", is_flag=True, help="Show every answer's evidence table.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object (headlines, reasons, hypotheses, facts, evidence, caveats).")
def command(results_dir: str, names: tuple[str, ...], evidence: bool, as_json: bool) -> None:
    """Answer the study's questions from RESULTS_DIR: per question a headline, the reasons
    behind it ranked by weight with their numbers and sources, and the candidate explanations
    tested (supported, contradicted, not measured).

    Reads only the results directory (from `netobs sweep` or `netobs import`); every
    counter is compared per byte moved, with medians, confidence intervals and
    significance over repeats.
    """
    from netobs.analysis import load, noise, questions

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
            "caveats": questions.run_caveats(answers),
            "noise": noise.describe(results).to_dict(),
            "answers": [a.to_dict() for a in answers],
        }
        click.echo(dumps(out))
        return
    _print_text(answers, results, detailed=bool(names), evidence=evidence)
