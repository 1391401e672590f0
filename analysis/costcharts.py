"""The charts of a comparison's cost: the waterfall of its CPU-s/GB gap and the differential flame
graph, for every comparison an answer makes (issue 25).

    views = comparison_views(results, answers)    # answer key -> [(name, chart), ...]

The comparisons are each answer's `accounting_scope` (the one the accounting and the
differential profiles explain: analysis.difffold.comparisons) and, where it spans several
configurations, each configuration pair of it alone; a menu in each chart picks one.
- Waterfall: per role (client, server, both ends) the gap A - B of each cost class, as bars
  that start where the previous one ended and sum to the total gap (analysis.accounting's
  `Account`: its gaps, intervals and residual, nothing recomputed here); the residual classes
  (no mechanism names them) drawn paler and named so; beside it the working threads' off-CPU
  seconds per GB by wait reason, A and B (`Account.waits`).
- Differential flame graph: analysis.difffold's stacks of A and B per role, as an icicle whose
  frames are as wide as the mean of A and B and coloured by A - B on `delta_color` (red: A costs
  more, blue: less), one domain for every differential flame graph of the report.
"""
from __future__ import annotations

import math

import altair as alt
import pandas as pd

from netobs import fmt

from . import flame
from .load import Results
from .charts import (CLASS_COLORS, FLAME_MIN_RECTS, FLAME_WIDTH, ROOT_COLOR, ROW_HEADER, MissingChart, WithData, _title,
                     class_colors, reason_colors)

DIFF_BUDGET = 8000       # rectangles for all differential flame graphs of a report together (its size)
DIFF_MAX_RECTS = 250     # ... and at most this many per comparison and role
ROLE_WORDS = {"client": "client", "server": "server", "both": "both ends"}
TOTAL = "total"
TOTAL_COLOR = "#4d4d4d"


# ----------------------------------------------------------------------------- comparisons

def _size(s) -> str:
    return fmt.size(int(s))


def _pair_label(a, b) -> str:
    if a[0] == b[0] and a[1] == b[1]:
        return f"{a[0]} · {_size(a[1])} · {a[2]} vs {b[2]} thr"
    if a[1:] == b[1:]:
        return f"{a[0]} vs {b[0]} · {_size(a[1])} · {a[2]} thr"
    return f"{a[0]} {_size(a[1])} {a[2]} thr vs {b[0]} {_size(b[1])} {b[2]} thr"


def _sides(points) -> str:
    return "/".join(dict.fromkeys(str(p[0]) for p in points))


def side_names(scope) -> tuple[str, str]:
    """What A and B are: the strategies, or (a step in threads) the thread counts."""
    at, ref = tuple(scope.at), tuple(scope.ref)
    if at and [p[:2] for p in at] == [p[:2] for p in ref]:
        ta, tb = {p[2] for p in at}, {p[2] for p in ref}
        if len(ta) == len(tb) == 1:
            return f"{ta.pop()} thr", f"{tb.pop()} thr"
    return _sides(at), _sides(ref)


def comparisons(answer) -> list[tuple[str, object]]:
    """(label, hypotheses.Scope) of every comparison the answer makes: its accounted scope
    (all its configurations), then each configuration pair alone where it has several."""
    named = getattr(answer.facts, "accounting_scope", None)
    if not named:
        return []
    from .hypotheses import Scope

    _name, scope = named
    at, ref = tuple(scope.at), tuple(scope.ref)
    whole = " vs ".join(side_names(scope))
    out = [(f"{whole} · mean of {len(at)} configuration{'s' if len(at) > 1 else ''}", scope)]
    if len(at) > 1 and len(at) == len(ref):
        out += [(_pair_label(a, b), Scope((a,), (b,), scope.kind, scope.metric)) for a, b in zip(at, ref)]
    return out


def _pick(name: str, labels: list[str], what: str):
    return alt.param(name=name, value=0, bind=alt.binding_select(options=list(range(len(labels))), labels=labels,
                                                                  name=what))


# ----------------------------------------------------------------------------- the waterfall

def waterfall_rows(results, comps) -> pd.DataFrame:
    """One row per comparison (q) x role x step: the class gaps in order (mechanism classes by
    gap, largest first, then the residual classes), then the total; `start`/`end` where the bar
    lies, `lo`/`hi` the gap's interval placed on it (None without repeats); and (kind "wait")
    the working threads' off-CPU s/GB per wait reason and side."""
    from . import accounting as acc

    rows = []
    for q, (_label, scope) in enumerate(comps):
        for role in acc.SCOPES:
            a = acc.account(results, scope, role)
            if a is None:
                continue
            n = min(_repeats(results, scope.at), _repeats(results, scope.ref))
            mech = sorted((c for c in a.gaps if c not in acc.RESIDUAL_CLASSES and a.gaps[c] != 0),
                          key=lambda c: -a.gaps[c])
            resid = [c for c in a.gaps if c in acc.RESIDUAL_CLASSES and a.gaps[c] != 0]
            x = 0.0
            for step, c in enumerate(mech + resid):
                g = a.gaps[c]
                lo, hi = a.intervals[c] if a.intervals else (None, None)
                rows.append({"kind": "class", "q": q, "role": ROLE_WORDS[role], "step": step, "part": c,
                             "label": ("residual: " if c in resid else "") + acc.CLASS_WORDS.get(c, c),
                             "residual": int(c in resid), "start": x, "end": x + g, "gap": g,
                             "lo": None if lo is None else x + lo, "hi": None if hi is None else x + hi,
                             "at": a.at[c], "ref": a.ref[c], "share": a.shares[c], "n": n})
                x += g
            rows.append({"kind": "class", "q": q, "role": ROLE_WORDS[role], "step": len(mech) + len(resid),
                         "part": TOTAL, "label": TOTAL, "resid_share": a.residual / a.total if a.total else None,
                         "residual": 0, "start": 0.0, "end": a.total, "gap": a.total, "lo": None, "hi": None,
                         "at": sum(a.at.values()), "ref": sum(a.ref.values()), "share": 1.0, "n": n})
            for reason, v in a.waits.items():
                for side, key in (("A", "at"), ("B", "ref")):
                    rows.append({"kind": "wait", "q": q, "role": ROLE_WORDS[role], "step": 0, "part": reason,
                                 "label": reason, "side": side, "value": v[key], "n": n})
    return pd.DataFrame(rows)


def _repeats(results, points) -> int:
    """The fewest repeats of any of `points` that has rows (0: none has)."""
    counts = results.memo("config_repeats", lambda: results.runs.groupby(["implementation", "msg_size", "threads"])
                          .size().to_dict())
    found = [counts[p] for p in set(tuple(p) for p in points) if p in counts]
    return int(min(found)) if found else 0


def waterfall(results, comps, title: str):
    """The cost waterfall of `comps` (comparisons()), one comparison shown at a time."""
    data = waterfall_rows(results, comps)
    if data.empty or not (data["kind"] == "class").any():
        return MissingChart(title, "no on-CPU profile of both sides of this comparison (run the sweep with --profile)")
    labels = [label for label, _ in comps]
    cls = data[data["kind"] == "class"]
    present = [c for c in class_colors()[0] if c in set(cls["part"])]
    roles = [r for r in ROLE_WORDS.values() if r in set(cls["role"])]
    pick = _pick("comparison", labels, "comparison (A vs B): ")
    shown = "datum.q == comparison"
    tested = cls["lo"].notna().any()
    domain, colours = class_colors()
    y = alt.Y("label:N", title=None, sort=alt.EncodingSortField("step", order="ascending"),
              axis=alt.Axis(labelLimit=220))
    tips = [alt.Tooltip("label:N", title="class"), alt.Tooltip("gap:Q", format="+.4~g", title="A - B (CPU-s/GB)"),
            alt.Tooltip("share:Q", format=".1%", title="share of the gap"),
            alt.Tooltip("at:Q", format=".4~g", title="A (CPU-s/GB)"), alt.Tooltip("ref:Q", format=".4~g", title="B (CPU-s/GB)")]
    tips.append(alt.Tooltip("resid_share:Q", format=".1%", title="residual's share of the gap (total)"))
    if tested:
        tips.append(alt.Tooltip("n:Q", title="repeats (fewest)"))
    base = alt.Chart().transform_filter(f"datum.kind == 'class' && {shown}")
    bars = base.mark_bar(stroke="white", strokeWidth=0.5).encode(
        x=alt.X("start:Q", title="CPU-s per GB, A - B"), x2="end:Q", y=y,
        color=alt.condition(f"datum.part == '{TOTAL}'", alt.value(TOTAL_COLOR),
                            alt.Color("part:N", title="cost class", scale=alt.Scale(domain=domain, range=colours),
                                      legend=alt.Legend(orient="bottom", columns=4, symbolType="square",
                                                        values=present))),
        opacity=alt.condition("datum.residual == 1", alt.value(0.45), alt.value(1.0)),
        tooltip=tips)
    zero = alt.Chart().mark_rule(color="#333").encode(x=alt.datum(0))
    layers = [bars, zero]
    if tested:
        layers.append(base.transform_filter("isValid(datum.lo)").mark_rule(color="#111", strokeWidth=1.5).encode(
            x="lo:Q", x2="hi:Q", y=y))
    gaps = alt.layer(*layers).properties(width=180, height=alt.Step(16)).facet(
        column=alt.Column("role:N", title=None, sort=roles, header=alt.Header(labelFontWeight="bold")), data=data)
    waits = data[data["kind"] == "wait"]
    parts = [gaps]
    if not waits.empty:
        rdomain, rcolours = reason_colors()
        wait_bars = alt.Chart().transform_filter(f"datum.kind == 'wait' && {shown}").mark_bar().encode(
            x=alt.X("value:Q", title="off-CPU s per GB (working threads)"),
            y=alt.Y("label:N", title=None), yOffset=alt.YOffset("side:N", sort=["A", "B"]),
            color=alt.Color("part:N", title="wait reason", scale=alt.Scale(domain=rdomain, range=rcolours),
                            legend=alt.Legend(orient="bottom", columns=3, symbolType="square",
                                              values=[w for w in rdomain if w in set(waits["part"])])),
            opacity=alt.Opacity("side:N", title="side (B paler)", sort=["A", "B"], scale=alt.Scale(range=[1.0, 0.45]),
                                legend=alt.Legend(orient="bottom", direction="vertical")),
            tooltip=[alt.Tooltip("label:N", title="wait reason"), alt.Tooltip("side:N"),
                     alt.Tooltip("value:Q", format=".4~g", title="off-CPU s per GB")])
        wroles = [r for r in ROLE_WORDS.values() if r in set(waits["role"])]
        parts.append(wait_bars.properties(width=150, height=alt.Step(9)).facet(
            row=alt.Row("role:N", title=None, sort=wroles, header=ROW_HEADER), data=data))
    n = int(cls["n"].min())
    from .accounting import COST_AGGREGATE
    subs = [f"each class's CPU-s/GB gap, A - B, bars end to end so they sum to the total (grey); "
            f"per side: {COST_AGGREGATE}",
            "paler: the residual classes no mechanism names; "
            + (f"black lines: the gap's 95% Student-t interval ({n} repeats or more)" if tested
               else "one repeat: no intervals"),
            "beside: the working threads' off-CPU seconds per GB by wait reason, A and B; the menu picks the comparison"]
    out = alt.hconcat(*parts, spacing=30).resolve_scale(
        color="independent", opacity="independent", y="independent").properties(title=_title(title, subs))
    out.params = [pick.param]   # top-level: Altair's add_params cannot lift it out of facets in a concat
    return out


# ----------------------------------------------------------------------------- the differential flame graph

def delta_color(domain: float, field: str = "delta", title: str = "A - B (CPU-s/GB)") -> alt.Color:
    """The colour of every A - B cost difference in the report: diverging red (A costs more) to
    blue (A costs less), centred at 0, linear, clamped at +-`domain` (one for the whole report)."""
    d = float(domain) if domain and domain == domain and domain > 0 else 1.0
    return alt.Color(f"{field}:Q", title=title,
                     scale=alt.Scale(scheme="redblue", reverse=True, domain=[-d, d], domainMid=0, clamp=True),
                     legend=alt.Legend(format="+.2~g", values=[-d, -d / 2, 0, d / 2, d]))


class _DiffNode(flame.Node):
    """A frame of a differential's tree: beside its width (the mean of A and B), A and B summed
    over the stacks beneath it (`a`, `b`), over the stacks ending in it (`own_*`) and over its
    drawn children (`drawn_*`, filled while laying out)."""

    __slots__ = ("a", "b", "own_a", "own_b", "drawn_a", "drawn_b")

    def __init__(self, frame: str):   # (flame.Node's fields set here: no call up, a node per frame)
        self.frame, self.weight, self.children = frame, 0, {}
        self.a = self.b = self.own_a = self.own_b = self.drawn_a = self.drawn_b = 0.0

    def add(self, ab) -> None:
        self.a += ab[0]
        self.b += ab[1]

    def add_own(self, ab) -> None:
        self.own_a += ab[0]
        self.own_b += ab[1]


def _diff_tree(d) -> _DiffNode:
    """flame.tree of the stacks' mean of A and B, each frame holding its A and B too. The stacks
    in their sorted order, so the page is the same on every run (a set's order is not)."""
    stacks = sorted(set(d.a) | set(d.b))
    return flame.tree(((s, (d.a.get(s, 0.0) + d.b.get(s, 0.0)) / 2, d.a.get(s, 0.0), d.b.get(s, 0.0))
                       for s in stacks), make=_DiffNode)


def diff_rects(d, max_rects: int) -> list[dict]:
    """The icicle of a difffold.Differential: frames as wide as the mean of A and B (so a frame
    of either side shows), each with its A, B (CPU-s/GB, summed over the stacks beneath it) and
    delta; narrow frames merged per parent into "other (n frames)" as in analysis.flame."""
    root = _diff_tree(d)
    rects = flame.layout(root, max_rects=max_rects)
    path: list = []           # the drawn frames above the rectangle, root first
    out = []
    for r in rects:
        path = path[:r.depth]
        parent = path[-1] if path else root
        if r.merged:
            # what the parent's narrow children hold: all beneath it, less its own and its drawn children's
            a = parent.a - parent.own_a - parent.drawn_a if path else 0.0
            b = parent.b - parent.own_b - parent.drawn_b if path else 0.0
            path.append(None)
        else:
            node = parent.children[r.name + (flame.KERNEL_SUFFIX if r.kernel else "")]
            path.append(node)
            a, b = node.a, node.b
            parent.drawn_a += a
            parent.drawn_b += b
        out.append({"d": r.depth, "x0": round(r.x0, 5), "x1": round(r.x1, 5), "n": r.name, "k": int(r.kernel),
                    "c": r.klass or "", "a": _g(a), "b": _g(b), "delta": _g(a - b), "o": r.merged})
    return out


def _g(v: float) -> float:
    """4 significant digits: what a tooltip shows, and a fraction of the page's bytes."""
    return float(f"{v:.4g}")


def diff_data(results, comps) -> tuple[list[dict], list[str]]:
    """(each comparison x role's differential, as {"q", "role", "diff"}, the menu's labels)."""
    from . import difffold

    found, labels = [], []
    for q, (label, scope) in enumerate(comps):
        for role in ("client", "server"):
            d = difffold.differential(results, scope, role)
            if d is not None:
                found.append({"q": len(labels), "role": role, "diff": d})
                labels.append(f"{label} · {role}")
    return found, labels


def diff_frame(found: list[dict], cap: int) -> pd.DataFrame:
    rows = []
    for p, f in enumerate(found):
        rows += [{"p": p, **r} for r in diff_rects(f["diff"], cap)]
    return pd.DataFrame(rows, columns=["p", "d", "x0", "x1", "n", "k", "c", "a", "b", "delta", "o"])


def max_delta(frame: pd.DataFrame) -> float:
    """The largest |A - B| of a frame below the root (the root, the role, is the total gap)."""
    v = frame.loc[frame["d"] > 0, "delta"].abs() if len(frame) else pd.Series(dtype=float)
    return float(v.max()) if len(v) and v.max() > 0 else math.nan


def diff_flame(frame: pd.DataFrame, labels: list[str], domain: float, title: str, sides: tuple[str, str], n: int,
               dataset: str):
    """The differential flame graph of one answer's comparisons (diff_frame's rows), one
    comparison x role at a time; colour: `delta_color(domain)`."""
    if frame.empty:
        return MissingChart(title, "no folded stacks on both sides of this comparison (run the sweep with --profile)")
    pick = _pick("diff_pick", labels, "comparison · role: ")
    x = alt.X("x0:Q", scale=alt.Scale(domain=[0, 1], nice=False, zero=True), axis=None)
    y = alt.Y("d:O", axis=None, sort="ascending")
    base = alt.Chart().transform_filter("datum.p == diff_pick").transform_calculate(
        space="datum.k ? 'kernel' : 'user'")
    tips = [alt.Tooltip("n:N", title="function"), alt.Tooltip("c:N", title="cost class"),
            alt.Tooltip("space:N", title="space"),
            alt.Tooltip("delta:Q", format="+.4~g", title="A - B (CPU-s/GB)"),
            alt.Tooltip("a:Q", format=".4~g", title=f"A: {sides[0]} (CPU-s/GB)"),
            alt.Tooltip("b:Q", format=".4~g", title=f"B: {sides[1]} (CPU-s/GB)")]
    rects = base.mark_rect(stroke="white", strokeWidth=0.5).encode(
        x=x, x2="x1:Q", y=y, color=alt.condition("datum.d == 0", alt.value(ROOT_COLOR), delta_color(domain)),
        tooltip=tips)
    chars = f"floor((datum.x1 - datum.x0) * {FLAME_WIDTH} / 6.5) - 1"
    text = base.transform_filter(f"(datum.x1 - datum.x0) * {FLAME_WIDTH} >= 26").transform_calculate(
        t=f"truncate(datum.n, {chars})").mark_text(align="left", baseline="middle", dx=3, fontSize=10,
                                                    color="#111").encode(x=x, y=y, text="t:N", tooltip=tips)
    subs = [f"A minus B per GB each side moved, stack by stack: A = {sides[0]}, B = {sides[1]}; per side the mean "
            f"over configurations of each configuration's mean over {n} repeat{'s' if n != 1 else ''} or more",
            "width: the mean of A's and B's CPU-s/GB; colour: A - B, red where A costs more, blue where less",
            f"one scale for every differential flame graph in this report (clamped at ±{fmt.num(domain)} CPU-s/GB)",
            "the root (grey) is the role, its children the cost classes; pick the comparison and role in the menu"]
    if (frame["o"] > 0).any():
        subs.append("frames too narrow to draw are merged per parent into 'other (n frames)'")
    return WithData(alt.layer(rects, text, data=alt.NamedData(name=dataset)).add_params(pick)
                    .properties(width=FLAME_WIDTH, height=alt.Step(15), title=_title(title, subs)),
                    {dataset: frame})


# ----------------------------------------------------------------------------- the answers' views

def _title_of(answer, comps) -> str:
    return comps[0][0].split(" · ")[0] + (f" ({answer.shape})" if answer.shape else "")


LEAN = ("implementation", "msg_size", "threads", "repeat", "fields", "nodelay", "status", "bytes_sent_total",
        "bytes_received")


class _Lean:
    """The results with only the columns the differential profiles read (`keep`: their prefixes):
    the same numbers, from a frame a hundred columns narrower (its rows are walked once, per column)."""

    def __init__(self, results, keep: tuple[str, ...]):
        runs = results.runs
        self.path = results.path
        self.runs = runs[[c for c in runs.columns if c in LEAN or c.startswith(keep)]]

    memo = Results.memo   # what is computed once per these (narrower) runs


def _plans(answers) -> dict:
    """answer key -> (the answer, its comparisons()), for the answers that make one."""
    plans = {a.key: (a, comparisons(a)) for a in answers}
    return {k: v for k, v in plans.items() if v[1]}


def diff_frames(results, answers) -> dict[str, tuple[pd.DataFrame, list[str]]]:
    """answer key -> (its differential flame graph's rows (diff_frame), the menu's labels), for
    every answer that makes an accounted comparison: the folded profiles read and laid out, what
    `comparison_views` draws (the report computes it in a worker process meanwhile)."""
    stacks = _Lean(results, tuple(f"prof_{role}_hz" for role in ("client", "server")))   # what difffold reads
    diffs = {k: diff_data(stacks, comps) for k, (_a, comps) in _plans(answers).items()}
    icicles = sum(len(f) for f, _ in diffs.values())
    cap = max(FLAME_MIN_RECTS, min(DIFF_MAX_RECTS, DIFF_BUDGET // max(1, icicles)))
    return {k: (diff_frame(f, cap), labels) for k, (f, labels) in diffs.items()}


def comparison_views(results, answers, frames=None) -> dict[str, list[tuple[str, object]]]:
    """answer key -> [(name, chart)]: the waterfall and the differential flame graph of every
    answer that makes an accounted comparison; all differential flame graphs on one colour
    domain (the largest |A - B| of a frame below the role among them). The accounting reads
    the results themselves: what the answers accounted (and memoised per frame) is found again.
    `frames`: a function giving `diff_frames(results, answers)` (None where it could not),
    called once the waterfalls are drawn; without it they are computed here."""
    plans = _plans(answers)
    waterfalls = {key: waterfall(results, comps,
                                 f"Where the CPU-s/GB gap goes: {_title_of(answer, comps)}, class by class")
                  for key, (answer, comps) in plans.items()}
    found = frames() if frames is not None else None
    if found is None:
        found = diff_frames(results, answers)
    deltas = [m for m in (max_delta(f) for f, _ in found.values()) if m == m]
    domain = max(deltas) if deltas else 1.0
    out = {}
    for key, (answer, comps) in plans.items():
        scope = comps[0][1]
        n = min(_repeats(results, scope.at), _repeats(results, scope.ref))
        frame, labels = found[key]
        out[key] = [
            (f"waterfall-{key}", waterfalls[key]),
            (f"diff-flame-{key}", diff_flame(frame, labels, domain,
                                             f"Differential flame graph: {_title_of(answer, comps)}, A - B per GB",
                                             side_names(scope), n, f"diff-{key}")),
        ]
    return out


__all__ = ["comparison_views", "diff_frames", "comparisons", "waterfall", "diff_flame", "delta_color", "diff_rects", "CLASS_COLORS"]
