"""The words of a comparison, from its facts alone (`analysis.compare.Comparison`).

`render(c)` returns blocks, in the order they are read: the manifest differences first (the
likely causes), then the grids, each metric's table, the summary and the ranking changes. A
block is a heading, a line, or a table of cells already formatted; the CLI draws them and
the report puts them in HTML, so neither says anything the facts do not.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from netobs import fmt

from . import accounting as acc
from .compare import VERDICTS, Comparison

WORDS = {"faster": "faster", "slower": "slower", "same": "same within noise", "untested": "untested"}
POINT_HEADERS = ["strategy", "size", "threads", "base", "new", "change", "p", "verdict"]


@dataclass
class Block:
    kind: str                       # "heading", "line" or "table"
    text: str = ""
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    style: str = ""                 # a hint to the terminal: "warn" for what deserves a look


def value(x) -> str:
    if isinstance(x, list):
        return ", ".join(map(str, x)) or "(none)"
    if isinstance(x, dict):
        return ", ".join(f"{k}={v}" for k, v in x.items()) or "(none)"
    return "(none)" if x is None else str(x)


def _config(p: dict) -> str:
    return f"{p['implementation']} {fmt.size(p['msg_size'])} x{p['threads']}"


def _side(name: str, s) -> str:
    reps = f"{s.min_repeats}" if s.min_repeats == s.max_repeats else f"{s.min_repeats}-{s.max_repeats}"
    return f"{name} {s.path} ({s.source}, {s.points} configurations, {reps} repeat(s) each)"


def _manifest(c: Comparison) -> list[Block]:
    out = [Block("heading", "What differs between the runs (the likely causes of any change)")]
    if not c.manifest_differences:
        return out + [Block("line", "The two manifests agree on host, tools, topology, sysctls, perf events, "
                                    "probe plan and run parameters.")]
    rows = [[d["what"], value(d["base"]), value(d["new"])] for d in c.manifest_differences]
    return out + [Block("table", headers=["what", "base", "new"], rows=rows)]


def _grid(c: Comparison) -> list[Block]:
    g = c.grid
    if g["same"]:
        return [Block("line", f"Both runs measured the same {g['compared']} configurations.")]
    out = [Block("line", f"The grids differ: the {g['compared']} configurations both runs measured are compared; "
                         f"{len(g['only_base'])} are only in base and {len(g['only_new'])} only in new.", style="warn")]
    for name in ("only_base", "only_new"):
        if g[name]:
            out.append(Block("line", f"  {name.replace('_', ' in ')}: " + ", ".join(_config(p) for p in g[name])))
    return out


def _metric_tables(c: Comparison) -> list[Block]:
    out = []
    for m in c.metrics:
        if m["measured"] != "both":
            where = {"base": "only in base", "new": "only in new", "neither": "in neither run"}[m["measured"]]
            out.append(Block("line", f"{m['label']}: measured {where}; not compared.", style="warn"))
            continue
        rows = c.points[c.points["metric"] == m["metric"]]
        better = "higher" if m["higher_is_better"] else "lower"
        unit = f" ({m['unit']})" if m["unit"] else ""
        out.append(Block("heading", f"{m['label']}{unit}: {better} is better"))
        out.append(Block("table", headers=POINT_HEADERS, rows=[
            [r.implementation, fmt.size(r.msg_size), str(r.threads), fmt.num(r.base_median), fmt.num(r.new_median),
             fmt.pct(r.change_pct), "—" if r.verdict == "untested" else fmt.p_value(r.p_value), WORDS[r.verdict]]
            for r in rows.itertuples()]))
    return out


def _summary(c: Comparison) -> list[Block]:
    if not c.counts:
        return [Block("heading", "Summary"), Block("line", "No metric was measured in both runs.")]
    # the tables name metrics by column (the headings above give each one's label): compact
    out = [Block("heading", "Summary"),
           Block("table", headers=["metric"] + [WORDS[v] for v in VERDICTS],
                 rows=[[m] + [str(n[v]) for v in VERDICTS] for m, n in c.counts.items()])]
    impls = list(dict.fromkeys(i for g in c.geomean_ratio.values() for i in g))
    out += [Block("line", "Geometric mean of the new/base ratios of the medians, per strategy:"),
            Block("table", headers=["strategy"] + list(c.geomean_ratio),
                  rows=[[i] + [fmt.times(g.get(i)) for g in c.geomean_ratio.values()] for i in impls])]
    if c.largest:
        out.append(Block("line", "Largest changes beyond noise:"))
        out += [Block("line", f"  {_config(p)}: {p['metric']} {fmt.num(p['base_median'])} -> "
                              f"{fmt.num(p['new_median'])} ({fmt.pct(p['change_pct'])}, {fmt.p_value(p['p_value'])}), "
                              f"{WORDS[p['verdict']]}", style="warn")
                for p in c.largest]
    else:
        out.append(Block("line", "No change beyond noise."))
    return out


def _significance(sig) -> str:
    return {True: "significant on both sides", False: "not significant on both sides",
            None: "untested (one repeat on a side)"}[sig]


def _ranking(c: Comparison) -> list[Block]:
    if not c.ranking_changes:
        return [Block("line", "The ranking of strategies by throughput is the same at every configuration both "
                              "runs measured.")]
    out = [Block("line", f"The ranking of strategies by throughput changed at {len(c.ranking_changes)} "
                         "configuration(s); the study's answers may change with it:", style="warn")]
    for r in c.ranking_changes:
        swaps = "; ".join(f"{s['now_ahead']} now ahead of {s['was_ahead']} ({_significance(s['significant'])})"
                          for s in r["swapped"])
        out.append(Block("line", f"  {fmt.size(r['msg_size'])} x{r['threads']}: {' > '.join(r['base_order'])} "
                                 f"-> {' > '.join(r['new_order'])}: {swaps}", style="warn"))
    return out


def _gap_line(where: str, side: dict) -> str:
    """'<where>: new cost X CPU-s/GB more than base (+r%): <cause> s%, ...; residual s%'."""
    total = side["total_cpu_s_per_gb"]
    if side["negligible"]:
        return f"{where}: about the same CPU per GB ({fmt.num(total)} CPU-s/GB, below {acc.MIN_GAP:.0%} of base)"
    more = "more" if total >= 0 else "less"
    s = f"{where}: new cost {fmt.num(abs(total))} CPU-s/GB {more} than base ({fmt.pct(side['relative'] * 100)})"
    causes = ", ".join(f"{acc.CLASS_WORDS[k]} {fmt.share(v)}" for k, v in side["largest"])
    if causes:
        s += f": {causes}"
    if side.get("residual_share") is not None:
        s += f"; residual {fmt.share(side['residual_share'])}"
    return s + ("" if side["tested"] else " (untested: one repeat on a side)")


def _class_table(side: dict) -> Block:
    """Every class's gap and signed share (they sum to the total), with its mechanism's judgement."""
    judged = {j["class"]: (n, j["status"]) for n, j in side["judgements"].items()}
    rows = []
    for k, v in sorted(side["classes"].items(), key=lambda kv: -abs(kv[1]["gap"])):
        name, status = judged.get(k, ("(residual)", ""))
        rows.append([acc.CLASS_WORDS[k], fmt.num(v["ref"]), fmt.num(v["at"]), f"{v['gap']:+.3g}",
                     fmt.share(v["share"]) if v["share"] == v["share"] else "—", name, status])
    rows.append(["total", fmt.num(sum(v["ref"] for v in side["classes"].values())),
                 fmt.num(sum(v["at"] for v in side["classes"].values())), f"{side['total_cpu_s_per_gb']:+.3g}",
                 "100%", "", ""])
    return Block("table", headers=["class", "base", "new", "gap", "share", "hypothesis", "judgement"], rows=rows)


def _accounting(c: Comparison) -> list[Block]:
    a = c.accounting or {}
    out = [Block("heading", "Where the CPU per GB went (new minus base, by profile class; the parts sum to the whole)")]
    if a.get("not_measured"):
        return out + [Block("line", f"Not accounted: {a['not_measured']}.")]
    whole = a.get("whole")
    if not whole:
        return out + [Block("line", "Not accounted: no configuration both runs profiled.")]
    t = a["thresholds"]
    out.append(Block("line", f"Aggregate: {a['aggregate']}. A mechanism is supported at a share >= "
                             f"{t['supported_share']:.0%} of the gap, contradicted below {t['contradicted_share']:.0%} "
                             "or of the other sign."))
    out += [Block("line", _gap_line(f"whole comparison, {role}", whole[role])) for role in ("both", "client", "server")
            if role in whole]
    main = whole.get("both") or whole.get("client")
    if not main["negligible"]:
        out.append(_class_table(main))
    for p in a["points"][:LARGEST_POINTS]:
        side = p["accounting"].get("both") or p["accounting"].get("client")
        out.append(Block("line", _gap_line(f"  {_config(p)}, {side['role']}", side), style="warn"))
    if len(a["points"]) > LARGEST_POINTS:
        out.append(Block("line", f"  ... {len(a['points']) - LARGEST_POINTS} more changed point(s) in --json."))
    return out


LARGEST_POINTS = 5


def render(c: Comparison) -> list[Block]:
    head = [Block("heading", f"netobs compare: {_side('base', c.base)} -> {_side('new', c.new)}")]
    for name, side in (("base", c.base), ("new", c.new)):
        head += [Block("line", f"note ({name}): {n}", style="warn") for n in side.notes]
    head.append(Block("line", f"Verdicts: significant (Welch, p < {c.alpha:g}) and at least {c.threshold_pct:g}% "
                              "in the metric's better or worse direction; one repeat on a side: untested."))
    return head + _manifest(c) + _grid(c) + _metric_tables(c) + _summary(c) + _accounting(c) + _ranking(c)


def regression_line(c: Comparison, pct: float) -> str:
    """The one line `--fail-on-regression` ends with."""
    if not c.regressions:
        return f"no significant slowdown of {pct:g}% or more"
    worst = max(c.regressions, key=lambda p: abs(p["change_pct"]))
    return (f"{len(c.regressions)} significant slowdown(s) of {pct:g}% or more; the largest: {_config(worst)} "
            f"{worst['metric']} {fmt.pct(worst['change_pct'])} ({fmt.p_value(worst['p_value'])})")
