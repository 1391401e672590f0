"""`netobs explain RESULTS_DIR`: the study's questions answered from a results directory."""
from __future__ import annotations

from collections import Counter

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
# the compact view's line budget (issue 23): the whole explain at most TOTAL_LINES, a question at most
# QUESTION_LINES (its rule and blank line included); what does not fit is named with how to see it
TOTAL_LINES, QUESTION_LINES = 90, 30
PROSE_WIDTH = 100      # words wrap here (or at a narrower terminal); tables take the width they need
STATUS_ORDER = ("supported", "inconclusive", "contradicted", "not_measured")


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


def _lines(console, marker: str, text: str, style: str | None = None) -> list:
    """One list item as wrapped lines (a hanging indent under its first word)."""
    from rich.text import Text

    indent = len(marker) + 1
    out = []
    for i, line in enumerate(Text(text, style=style or "").wrap(console, max(20, console.width - indent))):
        line.rstrip()
        out.append((Text(marker if i == 0 else " " * len(marker), style=style or "") + " " + line) if marker else line)
    return out


def _hypotheses_text(answer, short: bool) -> str | None:
    from netobs.analysis.questions import prose

    facts = getattr(answer.facts, "hypotheses", [])
    if not facts:
        return None
    groups = {}
    for s in STATUS_ORDER:
        # one name per hypothesis: experiments on several configurations are counted, not repeated
        named = Counter(prose.HYPOTHESIS_WORDS[j.name][0].split(" (")[0] + (" (by experiment" if j.source == "intervention"
                                                                             else "") for j in facts if j.status == s)
        groups[s] = [n + (f", {k} configurations)" if k > 1 else ")") if n.endswith("(by experiment") else n
                     for n, k in named.items()]
    # short: names only where they decide (supported, inconclusive); the rest counted
    words = "; ".join(f"{prose.STATUS_WORDS[s]}: " + (', '.join(n) if not short or s in STATUS_ORDER[:2] else str(len(n)))
                      for s, n in groups.items() if n)
    return f"Hypotheses: {words}."


def _hypotheses(console, answer, detailed: bool) -> None:
    if not getattr(answer.facts, "hypotheses", []):
        return
    if detailed:
        console.print("Hypotheses tested:", style="bold")
        for line in answer.hypotheses:
            _item(console, "  -", line)
        return
    for line in _lines(console, "", _hypotheses_text(answer, False)):
        console.print(line)


def _compact(console, answer, budget: int) -> list:
    """A question's lines within `budget` (headline and hypotheses always; reasons in rank
    order and caveats while they fit, else counted with how to see them)."""
    from rich.text import Text

    head = _lines(console, "", answer.headline, "bold")
    hyp = []
    if getattr(answer.facts, "hypotheses", []):
        hyp = _lines(console, "", _hypotheses_text(answer, False))
        if len(hyp) > 2:
            hyp = _lines(console, "", _hypotheses_text(answer, True))
    cav = [ln for c in answer.own_caveats for ln in _lines(console, "  caveat:", c, "yellow")]
    left = budget - len(head) - len(hyp) - 1        # the last line: evidence and what was left out
    reasons, shown = [], 0
    for i, reason in enumerate(answer.reasons, 1):
        lines = _lines(console, f"  {i}.", reason)
        if len(lines) > left - (1 if cav else 0):
            break
        reasons += lines
        left -= len(lines)
        shown = i
    if len(cav) > left:
        cav = [Text(f"  caveat: {len(answer.own_caveats)} (-q {answer.question} shows them)", style="yellow")]
    more = len(answer.reasons) - shown
    ev = answer.evidence
    tail = (f"Evidence: {len(ev)} rows" if ev is not None and not ev.empty else "") + \
        (f"{'; ' if ev is not None and not ev.empty else ''}{more} more reason(s)" if more else "")
    last = [Text(f"{tail} (-q {answer.question} or --evidence shows them).", style="dim")] if tail else []
    return head + reasons + hyp + cav + last


def _print_text(answers, results, detailed: bool, evidence: bool) -> None:
    from rich.console import Console
    from rich.text import Text

    from netobs.analysis import noise
    from netobs.analysis.questions import run_caveats

    probe = Console(highlight=False)
    width = min(probe.width, PROSE_WIDTH) if probe.is_terminal else PROSE_WIDTH
    console = Console(highlight=False, width=width)
    header = Text(f"netobs explain: {results.path} (source: {results.source}, "
                  f"{len(results.runs)} ok runs, {len(results.failed)} failed)", style="bold")
    console.print(header)
    for note in results.notes:   # what loading could not analyse or had to assume, first
        console.print(Text(f"note: {note}", style="yellow"))
    general = run_caveats(answers) + noise.describe(results).items()   # (issue 27: placement, two modes)
    if general:
        console.print("For the whole run:", style="bold yellow")
        for c in general:
            _item(console, "  -", c["text"])
    compact = not (detailed or evidence)
    used = (len(header.wrap(console, console.width)) + sum(len(Text(f"note: {n}").wrap(console, console.width))
                                                            for n in results.notes)   # (a long path wraps)
            + (1 + sum(len(_lines(console, "  -", c["text"])) for c in general) if general else 0))
    blocks = {}
    if compact:   # the largest per-question cap (<= QUESTION_LINES) whose blocks fit TOTAL_LINES together
        for cap in range(QUESTION_LINES, 5, -1):
            blocks = {id(a): _compact(console, a, cap - 2) for a in answers}   # its rule and blank line
            if used + sum(len(b) + 2 for b in blocks.values()) <= TOTAL_LINES:
                break
    for answer in answers:
        console.print()
        console.rule(Text(f"{answer.question}: {answer.title}", style="bold cyan"), align="left")
        if compact:
            for line in blocks[id(answer)]:
                console.print(line)
            continue
        console.print(Text(answer.headline, style="bold"))
        for i, reason in enumerate(answer.reasons, 1):
            _item(console, f"  {i}.", reason)
        _hypotheses(console, answer, detailed)
        for c in answer.own_caveats:
            _item(console, "  caveat:", c, style="yellow")
        ev = answer.evidence
        if ev is None or ev.empty:
            continue
        console.print()
        _print_table(console, _table(answer))
        if len(ev) > MAX_ROWS:
            console.print(f"  ({len(ev) - MAX_ROWS} more rows; --json gives all)", style="dim")


@click.command(name="explain", epilog=EPILOG)
@click.argument("results_dir", metavar="RESULTS_DIR")
@click.option("--question", "-q", "names", multiple=True, metavar="Q",
              help="A question to answer (repeatable, or comma-separated); all six when none is named. A named "
                   "question is shown with its hypotheses' numbers and its evidence table.")
@click.option("--evidence", is_flag=True, help="Show every answer's evidence table.")
@click.option("--diff-profiles", "diff", is_flag=True,
              help="Also write each accounted comparison's differential profiles (per role, A minus B per GB) "
                   "under RESULTS_DIR/diff/ (flamegraph.pl / difffolded.pl format; see docs/DESIGN.md).")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object (headlines, reasons, hypotheses, facts, evidence, caveats).")
def command(results_dir: str, names: tuple[str, ...], evidence: bool, diff: bool, as_json: bool) -> None:
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
    written = []
    if diff:
        from netobs.analysis import difffold
        written = difffold.write(results, difffold.comparisons(answers))
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
            **({"diff_profiles": [str(p) for p in written]} if diff else {}),
        }
        click.echo(dumps(out))
        return
    _print_text(answers, results, detailed=bool(names), evidence=evidence)
    if diff:
        click.echo(f"differential profiles: {len(written)} files under {results.path / 'diff'}"
                   if written else "differential profiles: none (no accounted comparison has folded files)")
