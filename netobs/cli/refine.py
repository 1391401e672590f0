"""`netobs refine RESULTS`: measure what the answers left open, into the same directory."""
from __future__ import annotations

import re
import sys

import click

from netobs.errors import UsageError

EPILOG = """\b
Examples:
  netobs refine results/ --dry-run                # the plan only: each point, what it decides, its cost
  sudo netobs refine results/ --budget 10m        # repeats where a verdict is open, crossovers bisected
  sudo netobs refine results/ --budget 60s --max-repeats 8 --json
  sudo netobs refine results/                     # again after Ctrl-C: it plans from what is stored
"""
UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_budget(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*(s|m|min|h)?\s*", str(text))
    if not m or float(m.group(1)) <= 0:
        raise UsageError(f"--budget {text!r} is not a duration", fix="seconds, or with a unit: 90, 60s, 10m, 1h")
    return float(m.group(1)) * UNITS[m.group(2) or ""]


@click.command(epilog=EPILOG)
@click.argument("results", type=click.Path(file_okay=False))
@click.option("--budget", default="5m", show_default=True, help="Measuring time to spend, all rounds together (60s, 10m).")
@click.option("--max-repeats", type=click.IntRange(2, 50), default=None,
              help="Repeats per point at most: the stopping rule's maximum of looks (default 5).")
@click.option("--dry-run", is_flag=True, help="Print the first round's plan and measure nothing.")
@click.option("--json", "as_json", is_flag=True, help="The plan, the rounds and what changed as JSON.")
def command(results, budget, max_repeats, dry_run, as_json):
    """Plan and run the points that would decide what the answers left open: repeats where a
    comparison is open (a sequential rule: Bonferroni over a fixed maximum of looks), message
    sizes bisected where a ranking flips, interventions where a cause is suspected."""
    from pathlib import Path

    from netobs.cli._common import check_perf, check_strategies, need_root, prepare_tracing
    from netobs.refine import driver, measure
    from netobs.refine.plan import intervention_plans
    from netobs.refine.rule import DEFAULT_MAX_REPEATS, Rule
    from netobs.spec import stored_sweep
    from netobs.store import read_manifest
    from netobs.sweep import check_swept

    path = Path(results)
    budget_s = parse_budget(budget)
    rule = Rule(max_repeats=max_repeats or DEFAULT_MAX_REPEATS)
    state: dict = {}

    def load():
        from netobs.analysis.load import load_results
        state["results"] = load_results(path)
        return state["results"].runs

    def interventions():
        return intervention_plans(state["results"])

    if dry_run:
        manifest = read_manifest(path)
        check_swept(manifest, f"cannot refine {path}", measure.FOREIGN_FIX)
        cost = measure.PointCost(stored_sweep(manifest), manifest)
        out = driver.refine(load, None, rule, budget_s, cost, interventions, dry_run=True)
        return _finish(out, None, None, as_json)
    store, sweep = measure.open_results(path)   # the one writer from here on
    before = _answers(path)
    try:
        need_root(sweep.topology, sweep.trace or sweep.profile)
        check_strategies(sweep.strategies)
        check_perf(sweep)
        tracing_setup = prepare_tracing(sweep)
        if tracing_setup is not None:
            store.update_manifest(tracing_setup=tracing_setup)
        cost = measure.PointCost(sweep, store.manifest)
        from rich.console import Console

        from netobs.cli.sweep import _Reporter
        con = Console(stderr=True)
        reporter = _Reporter(con, per_point_s=sweep.warmup + sweep.duration)
        settings = {"rule": rule.to_dict(), "budget_s": budget_s}
        run = measure.measurer(store, sweep, cost, measure.new_id(), settings, progress=reporter)

        def progress(event, **info):
            if event == "plan" and not as_json:
                click.echo("\n".join(plan_lines(info["round"], info["refinement"])))
        try:
            out = driver.refine(load, run, rule, budget_s, cost, interventions, progress=progress)
        finally:
            reporter.close()
    finally:
        store.close()
    _finish(out, before, _answers(path), as_json)
    if any(r.measured and r.measured.failed for r in out.rounds):
        sys.exit(1)


def _answers(path) -> dict:
    """Each answer's headline and whether it is tested, by its key."""
    from netobs.analysis.load import load_results
    from netobs.analysis.questions import answer_all

    out = {}
    for a in answer_all(load_results(path)):
        out[a.key] = {"headline": a.headline, "verdict": getattr(a.facts, "code", None),
                      "tested": getattr(a.facts, "tested", None)}
    return out


def changes(before: dict, after: dict) -> list[dict]:
    return [{"question": k, "before": before.get(k), "after": v} for k, v in after.items() if before.get(k) != v]


def plan_lines(rnd, refinement) -> list[str]:
    from netobs.fmt import fixed

    lines = [f"round {rnd.index}: {len(rnd.planned)} point(s), {fixed(rnd.total_s, ' s', 1)} of "
             f"{fixed(rnd.budget_left_s, ' s', 1)} left of the {fixed(refinement.budget_s, ' s', 0)} budget"]
    width = max([len(p.point_id) for p in rnd.planned] + [10])
    shown = None
    for p in rnd.planned:
        why = p.decides if p.decides != shown else '"'
        shown = p.decides
        lines.append(f"  {p.point_id:<{width}}  {p.kind:<12} {fixed(p.cost_s, ' s', 1):>7}  {why}")
    if rnd.left_out:
        lines.append(f"  ({len(rnd.left_out)} more item(s) did not fit the budget: {rnd.left_out[0]}"
                     + (" ..." if len(rnd.left_out) > 1 else "") + ")")
    return lines


def _finish(out, before: dict, after: dict | None, as_json: bool) -> None:
    from netobs.cli._common import echo_json
    from netobs.fmt import fixed
    from netobs.refine.driver import STOP_WORDS
    from netobs.refine.plan import FLIP_STATUS, settings_words

    changed = changes(before, after) if after is not None else []
    if as_json:
        echo_json({**out.to_dict(), "answers_before": before, "answers_after": after, "changed": changed})
        return
    if out.stop == "dry_run":
        click.echo("\n".join(plan_lines(out.rounds[0], out)))
    elif not out.rounds:
        click.echo(f"nothing to plan: {STOP_WORDS[out.stop]}")
    rule = out.rule.to_dict()
    click.echo(f"rule: {rule['name']}: {rule['words']}")
    if out.stop != "dry_run":
        click.echo(f"refine: {len(out.rounds)} round(s), {fixed(out.spent_s, ' s', 1)} of {fixed(out.budget_s, ' s', 0)}; "
                   f"stopped: {STOP_WORDS[out.stop] if out.stop else 'interrupted'}")
    comps = out.comparisons
    if comps is not None and not comps.empty:
        counts = comps.state.value_counts().to_dict()
        click.echo("comparisons: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    for f in out.flips:
        s = f.series
        click.echo(f"  {s['impl']} vs {s['base']}, {s['threads']} thread(s){settings_words(s)}: "
                   f"ranks swap between {f.lo} and {f.hi} B (x{f.factor:.3f}): {FLIP_STATUS[f.status]}")
    from netobs.refine.plateau import STATUS
    for p in out.plateaus:
        s = p.series
        click.echo(f"  {s['impl']} at {s['msg_size']} B{settings_words(s)}: throughput with threads: {STATUS[p.status]}"
                   + (f" ({p.lo} -> {p.hi} threads)" if p.lo is not None and p.status != "not_rising" else ""))
    if after is not None:
        if not changed:
            click.echo("answers: none changed")
        for c in changed:
            b, a = c["before"] or {}, c["after"] or {}
            click.echo(f"{c['question']}:" + (f" tested {b.get('tested')} -> {a.get('tested')};"
                                             if b.get("tested") != a.get("tested") else ""))
            if b.get("headline") != a.get("headline"):
                click.echo(f"  before: {b.get('headline')}\n  after:  {a.get('headline')}")
