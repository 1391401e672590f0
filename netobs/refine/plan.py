"""What `netobs refine` would measure next, from a results directory's runs (a pandas frame of
the loaded runs: `analysis.load.Results.runs`, or the simulation's rows of the same columns).

Comparisons: every strategy against the study's baseline (two_copy) and every zero-copy sender
against its copy baseline (`netobs.strategies`), at each configuration both have, on throughput;
each judged by the stopping rule (`netobs.refine.rule`). Planned, in this order of priority:

1. `repeat` at the ends of a flip: a comparison left open where the ranking flips gets one more
   repeat on each side short of the next look;
2. `bisect`: where a ranking flips between the nearest sizes decided with opposite signs, the
   geometric midpoint of the wider outer gap on the declared grid (multiples of GRID_B bytes),
   both strategies, MIN_REPEATS repeats to start (more come by rule 1), until the two decided
   sizes are within FACTOR of each other (2^(1/4)), or the grid has no size between them, or the
   sizes between are within noise (open at the rule's maximum, or within its band) and no gap
   is wider than FACTOR ** MIN_GAP_POWER;
3. the thread count where throughput stops rising (`netobs.refine.plateau`): the repeats of an open
   step that holds it, the midpoint of a step to bisect;
4. `repeat` of every other open comparison;
5. `intervention`: the pairs `netobs.refine.interventions.plan` names (its own module).
The plan is cut to the budget by `fit`: whole items, in that order, while their new points fit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from netobs.analysis.questions.crossover import LOCATED_FACTOR as FACTOR   # located within 2^(1/4)
from netobs.figures import point_id
from netobs.params import IDENTITY, Flag, ident_value
from netobs.strategies import BASELINE, BY_NAME, rank

from .rule import AHEAD, BEHIND, OPEN, Rule, decide_moments

GRID_B = 64                    # planned message sizes are multiples of this many bytes
MIN_GAP_POWER = 0.25          # no gap narrower than FACTOR ** this (2^(1/16)) is bisected: the noise limits it
MIN_REPEATS = 2                # a bisection point starts with the repeats of the rule's first look
METRIC = "throughput_gbps"
# a point's identity beyond strategy, size and threads, as netobs.params declares it (fields,
# nodelay, placement, sndbuf, rcvbuf, recv): every comparison, series, name and order below is
# taken apart by all of it, so no two settings of one parameter are ever pooled
IDENT = tuple(p.name for p in IDENTITY)
CONFIG = ("msg_size", "threads", *IDENT)
SERIES = ("impl", "base", "threads", *IDENT)


def with_identity(runs: pd.DataFrame) -> pd.DataFrame:
    """`runs` with every identity column: one it lacks (a frame of a store from before the
    parameter was a column, a simulation's) holds the default, as the loader gives such a row."""
    lacking = {p.name: ident_value(p, p.default) for p in IDENTITY if p.name not in runs}
    return runs.assign(**lacking) if lacking and len(runs.columns) else runs


def point_value(p, value):
    """An identity parameter's value as a planned point (a RunSpec field) holds it: a flag as a
    bool, the rest as the point's key holds them."""
    v = ident_value(p, value)
    return bool(v) if isinstance(p.kind, Flag) else v


def ident_of(params: dict) -> tuple:
    """A planned point's identity values in IDENTITY's order (one it does not give: the default,
    as its RunSpec has)."""
    return tuple(ident_value(p, params.get(p.name, p.default)) for p in IDENTITY)


@dataclass
class Item:
    """One decision's worth of points: what they would decide, and the points (RunSpec fields:
    strategy, msg_size, threads, repeat, the identity parameters, and any other parameter)."""

    kind: str
    decides: str
    points: list[dict]
    facts: dict = field(default_factory=dict)


@dataclass
class Planned:
    """One planned point: its parameters, the item it serves first, and its cost in seconds."""

    params: dict
    kind: str
    decides: str
    cost_s: float

    @property
    def point_id(self) -> str:
        p = self.params
        return point_id(p["strategy"], p["msg_size"], p["threads"], p["repeat"], *ident_of(p))

    def to_dict(self) -> dict:
        return {"point": self.point_id, "kind": self.kind, "decides": self.decides, "cost_s": round(self.cost_s, 3),
                "params": self.params}


def pairs(impls) -> list[tuple[str, str]]:
    """(strategy, baseline) pairs the runs hold: each against two_copy, a zero-copy sender also
    against its copy baseline."""
    impls = sorted(set(impls), key=rank)
    out = [(i, BASELINE) for i in impls if i != BASELINE and BASELINE in impls]
    out += [(i, BY_NAME[i].baseline) for i in impls
            if i in BY_NAME and BY_NAME[i].baseline not in (None, BASELINE) and BY_NAME[i].baseline in impls]
    return out


def _moments(runs: pd.DataFrame) -> pd.DataFrame:
    g = runs.groupby(["implementation", *CONFIG], sort=True)
    return pd.DataFrame({"n": g[METRIC].count(), "mean": g[METRIC].mean(), "var": g[METRIC].var(ddof=1),
                         "next_repeat": g["repeat"].max() + 1})


def comparisons(runs: pd.DataFrame, rule: Rule) -> pd.DataFrame:
    """One row per (pair, configuration) both strategies have: n, state, change, interval."""
    cols = [*SERIES, "msg_size", "n_a", "n_b", "next_a", "next_b", "state", "change", "low", "high"]
    if runs.empty:
        return pd.DataFrame(columns=cols)
    m = _moments(with_identity(runs))
    rows = []
    for impl, base in pairs(runs["implementation"].unique()):
        if impl not in m.index.get_level_values(0) or base not in m.index.get_level_values(0):
            continue
        a, b = m.xs(impl, level="implementation"), m.xs(base, level="implementation")
        j = a.add_suffix("_a").join(b.add_suffix("_b"), how="inner")
        if j.empty:
            continue
        d = decide_moments(rule, j.n_a, j.mean_a, j.var_a, j.n_b, j.mean_b, j.var_b)
        for (size, t, *ident), x, state, change, low, high in zip(j.index, j.itertuples(), d["state"], d["change"],
                                                                  d["low"], d["high"]):
            rows.append({"impl": impl, "base": base, "threads": int(t),
                         **{p.name: ident_value(p, v) for p, v in zip(IDENTITY, ident)},
                         "msg_size": int(size), "n_a": int(x.n_a), "n_b": int(x.n_b),
                         "next_a": int(x.next_repeat_a), "next_b": int(x.next_repeat_b), "state": state,
                         "change": float(change), "low": float(low), "high": float(high)})
    return pd.DataFrame(rows, columns=cols)


def midpoint(lo: int, hi: int, grid: int = GRID_B) -> int | None:
    """The geometric midpoint of two sizes on the grid, None where the grid has none between them."""
    m = int(round(math.sqrt(lo * hi) / grid)) * grid
    if m <= lo:
        m = (lo // grid + 1) * grid
    if m >= hi:
        m = -(-hi // grid - 1) * grid
    return m if lo < m < hi else None


@dataclass
class Flip:
    """Where a series' ranking flips: between `lo` and `hi`, the nearest sizes decided with
    opposite signs (or, where none are, two adjacent sizes whose medians flip), and what is known
    of it. Sizes between the two are open or within noise."""

    series: dict
    lo: int
    hi: int
    lo_state: str
    hi_state: str
    status: str        # FLIP_STATUS
    midpoint: int | None = None
    evidence: list = field(default_factory=list)   # the comparisons from lo to hi

    @property
    def factor(self) -> float:
        return self.hi / self.lo

    @property
    def sizes(self) -> list[int]:
        return [e["msg_size"] for e in self.evidence]

    def to_dict(self) -> dict:
        return {**self.series, "lo": self.lo, "hi": self.hi, "factor": self.factor, "lo_state": self.lo_state,
                "hi_state": self.hi_state, "status": self.status, "midpoint": self.midpoint,
                "evidence": self.evidence}


FLIP_STATUS = {"bracketed": "located within the factor", "bisect": "being bisected",
               "grid": "located as closely as the size grid allows",
               "noise_limited": "the sizes between are within noise at the rule's maximum of repeats",
               "open": "a comparison there is still open", "within_noise":
               "the medians swap but the difference is within noise at both sizes: no crossover decided"}
LOCATED = ("bracketed", "grid", "noise_limited")


def _evidence(z) -> dict:
    return {"msg_size": int(z.msg_size), "state": z.state, "change": z.change, "low": z.low, "high": z.high,
            "n": int(min(z.n_a, z.n_b))}


def _bisection(rows, factor: float, grid: int) -> tuple[str, int | None]:
    """Between two sizes decided with opposite signs (sizes between them open at the rule's
    maximum or within the band): bracketed within the factor, or the wider outer gap's midpoint
    (a decided size there narrows the bracket), down to gaps of MIN_GAP_FACTOR."""
    if rows[-1].msg_size / rows[0].msg_size <= factor * (1 + 1e-9):
        return "bracketed", None
    outer = {(rows[0].msg_size, rows[1].msg_size), (rows[-2].msg_size, rows[-1].msg_size)}
    gaps = sorted(((hi / lo, lo, hi) for lo, hi in outer if hi / lo > factor ** MIN_GAP_POWER), reverse=True)
    for _, lo, hi in gaps:
        mid = midpoint(lo, hi, grid)
        if mid is not None:
            return "bisect", mid
    return ("grid" if gaps else "noise_limited"), None


def flips(comps: pd.DataFrame, rule: Rule, factor: float = FACTOR, grid: int = GRID_B) -> list[Flip]:
    """Every ranking flip of every series (a pair of strategies at one thread count and identity)."""
    out = []
    if comps.empty:
        return out
    for key, g in comps.groupby(list(SERIES), sort=False):
        rows = list(g.sort_values("msg_size").itertuples(index=False))
        series = dict(zip(SERIES, key))
        signed = [i for i, x in enumerate(rows) if x.state in (AHEAD, BEHIND)]
        covered = set()
        for i, j in zip(signed, signed[1:]):
            if rows[i].state == rows[j].state:
                continue
            span = rows[i:j + 1]
            covered.update(range(i, j))
            pending = any(x.state == OPEN and min(x.n_a, x.n_b) < rule.max_repeats for x in span)
            status, mid = ("open", None) if pending else _bisection(span, factor, grid)
            out.append(Flip(series, int(rows[i].msg_size), int(rows[j].msg_size), rows[i].state, rows[j].state,
                            status, mid, [_evidence(z) for z in span]))
        for i, (x, y) in enumerate(zip(rows, rows[1:])):
            if i in covered or not np.sign(x.change) * np.sign(y.change) < 0:
                continue
            pending = any(z.state == OPEN and min(z.n_a, z.n_b) < rule.max_repeats for z in (x, y))
            out.append(Flip(series, int(x.msg_size), int(y.msg_size), x.state, y.state,
                            "open" if pending else "within_noise", None, [_evidence(z) for z in (x, y)]))
    return sorted(out, key=lambda f: (tuple(str(v) for v in f.series.values()), f.lo))


def settings_words(c) -> str:
    """The identity parameters of `c` not at their defaults, as the table names them
    (", field count 1, TCP_NODELAY, send buffer 4194304"); nothing at the defaults."""
    out = []
    for p in IDENTITY:
        v = ident_value(p, c.get(p.name, p.default))
        if v != ident_value(p, p.default):
            out.append(p.label if isinstance(p.kind, Flag) else f"{p.label} {v}")
    return "".join(f", {w}" for w in out)


def _label(c) -> str:
    return f"{c['impl']} vs {c['base']} at {c['msg_size']} B, {c['threads']} thread(s){settings_words(c)}"


def point(impl: str, c, threads: int, size: int, repeat: int) -> dict:
    """A planned point (RunSpec fields): a strategy, size, thread count and repeat at the identity `c` holds."""
    return {"strategy": impl, "msg_size": int(size), "threads": int(threads), "repeat": int(repeat),
            **{p.name: point_value(p, c.get(p.name, p.default)) for p in IDENTITY}}


def _point(impl: str, c, size: int, repeat: int) -> dict:
    return point(impl, c, c["threads"], size, repeat)


def _repeat_item(c, rule: Rule) -> Item | None:
    n = min(c["n_a"], c["n_b"])
    if c["state"] != OPEN or n >= rule.max_repeats:
        return None
    target = max(MIN_REPEATS, n + 1)
    pts = [_point(c["impl"], c, c["msg_size"], c["next_a"] + k) for k in range(max(0, target - c["n_a"]))]
    pts += [_point(c["base"], c, c["msg_size"], c["next_b"] + k) for k in range(max(0, target - c["n_b"]))]
    decides = f"{_label(c)}: {c['state']} at n={n} ({c['change']:+.1%}); a look at n={target}"
    return Item("repeat", decides, pts, {"comparison": {k: c[k] for k in (*SERIES, "msg_size")}, "n": n,
                                         "target": target})


def plan_round(runs: pd.DataFrame, rule: Rule, interventions=(), factor: float = FACTOR,
               grid: int = GRID_B) -> tuple[list[Item], pd.DataFrame, list[Flip]]:
    """The items that would decide what is open, in priority order (the module's list), with the
    comparisons and flips they come from."""
    comps = comparisons(runs, rule)
    fl = flips(comps, rule, factor, grid)
    ends = {(tuple(f.series.values()), s) for f in fl if f.status == "open" for s in f.sizes}
    first, rest = [], []
    for c in comps.to_dict("records"):
        item = _repeat_item(c, rule)
        if item is not None:
            (first if (tuple(c[k] for k in SERIES), c["msg_size"]) in ends else rest).append(item)
    bisect = []
    for f in fl:
        if f.status != "bisect":
            continue
        c = {**f.series, "msg_size": f.midpoint}
        pts = [_point(impl, c, f.midpoint, r) for impl in (f.series["impl"], f.series["base"])
               for r in range(MIN_REPEATS)]
        bisect.append(Item("bisect", f"{f.series['impl']} and {f.series['base']} swap ranks between {f.lo} and "
                                     f"{f.hi} B (x{f.factor:.2f}, {f.series['threads']} thread(s)"
                                     f"{settings_words(f.series)}): "
                                     f"{f.midpoint} B between them",
                           pts, {"flip": f.to_dict()}))
    from . import plateau
    threads = plateau.items(runs, rule)
    inter = [_intervention_item(runs, d) for d in interventions]
    return first + bisect + threads + rest + [i for i in inter if i is not None], comps, fl


def _intervention_item(runs: pd.DataFrame, d: dict) -> Item | None:
    """interventions.plan's dict -> the planned points: base | change, as many repeats as base has."""
    base = {k: v for k, v in dict(d["base"]).items() if k != "repeat"}
    at = with_identity(runs)
    for p in IDENTITY:     # the base's whole identity: one it does not give is at the default, as its RunSpec
        at = at[at[p.name] == ident_value(p, base.get(p.name, p.default))]
    if "strategy" in base:
        at = at[at["implementation"] == base["strategy"]]
    for name in ("msg_size", "threads"):
        if name in base:
            at = at[at[name] == int(base[name])]
    n = max(1, len(at))
    changed = {**base, **dict(d["change"])}
    changed.update({p.name: point_value(p, changed[p.name]) for p in IDENTITY if p.name in changed})
    pts = [{**changed, "repeat": r} for r in range(n)]
    return Item("intervention", d.get("decides") or f"{d.get('hypothesis')}: {d.get('change')}", pts,
                {"hypothesis": d.get("hypothesis"), "scope": d.get("scope"), "expect": d.get("expect"),
                 "change": d.get("change")})


def _identity(params: dict) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in params.items()))


def fit(items: list[Item], cost_s, budget_s: float, stored=frozenset()) -> tuple[list[Planned], list[Item]]:
    """Whole items, in order, while their points not yet chosen (nor `stored`: identities of points
    the directory holds) fit in `budget_s`; returns the chosen points and the items left out."""
    chosen: dict[tuple, Planned] = {}
    left, total = [], 0.0
    for item in items:
        new = [p for p in item.points if _identity(p) not in chosen and _identity(p) not in stored]
        cost = sum(cost_s(p) for p in new)
        if not new or total + cost > budget_s + 1e-9:
            if new:
                left.append(item)
            continue
        total += cost
        for p in new:
            chosen[_identity(p)] = Planned(p, item.kind, item.decides, cost_s(p))
    return interleaved(list(chosen.values())), left


def interleaved(points: list[Planned]) -> list[Planned]:
    """The sweep's interleaved order: per configuration the strategies back to back, repeat
    after repeat, so slow drift hits every strategy alike."""
    return sorted(points, key=lambda x: (x.params["msg_size"], x.params["threads"], *ident_of(x.params),
                                         x.params["repeat"], rank(x.params["strategy"])))


def intervention_plans(results) -> list[dict]:
    """`netobs.refine.interventions.plan(results)` (issue 26 item 4, a module of its own), or none
    where this netobs has no such module."""
    import importlib

    try:
        interventions = importlib.import_module("netobs.refine.interventions")
    except ModuleNotFoundError as exc:
        if exc.name != "netobs.refine.interventions":
            raise
        return []
    return list(interventions.plan(results))
