"""Where throughput stops rising with the thread count (issue 26 item 3, for threads): per strategy
at one message size and identity (netobs.params.IDENTITY), each step between consecutive measured
thread counts is judged by the stopping rule (`rule.Rule.decide`, the more threads against the fewer). The first step
that is not a rise (the same, a fall, or open at the rule's maximum) follows the last rise, within
which throughput stops rising: located where that rise's two thread counts are adjacent integers,
else its geometric midpoint (an integer) is planned for that strategy (MIN_REPEATS repeats); where
every step rises, the last is bisected the same way (a plateau may hide in it). An open step on the
way gets a repeat on each side first.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from netobs.params import IDENTITY, ident_value

from .rule import AHEAD, OPEN, Rule, decide_moments, recorded_rules

# a strategy at one message size and one identity (netobs.params.IDENTITY: shape, placement,
# socket buffers, receive mode): thread counts are stepped through within it, never across two
SERIES = ("impl", "msg_size", *(p.name for p in IDENTITY))
GROUP = ["implementation", "msg_size", *(p.name for p in IDENTITY)]   # SERIES as the runs' columns
STATUS = {"located": "the rise ends at `hi` threads (from `lo`, adjacent)", "bisect": "being bisected",
          "open": "a step there is still open", "rising": "still rising at the most threads measured",
          "not_rising": "no rise from the fewest threads measured"}


@dataclass
class Plateau:
    series: dict
    lo: int | None          # the step's thread counts (None: still rising)
    hi: int | None
    status: str
    midpoint: int | None = None
    evidence: list = field(default_factory=list)   # every step up to it

    def to_dict(self) -> dict:
        return {**self.series, "lo": self.lo, "hi": self.hi, "status": self.status, "midpoint": self.midpoint,
                "evidence": self.evidence}


def steps(runs: pd.DataFrame, rule: Rule) -> pd.DataFrame:
    """One row per series and consecutive pair of measured thread counts: n, next repeats, state."""
    from .plan import METRIC, with_identity
    cols = [*SERIES, "lo", "hi", "n_lo", "n_hi", "next_lo", "next_hi", "state", "change"]
    if runs.empty or runs["threads"].nunique() < 2:
        return pd.DataFrame(columns=cols)
    g = with_identity(runs).groupby([*GROUP, "threads"], sort=True)
    m = pd.DataFrame({"n": g[METRIC].count(), "mean": g[METRIC].mean(), "var": g[METRIC].var(ddof=1),
                      "next": g["repeat"].max() + 1}).reset_index()
    rows = []
    for key, s in m.groupby(GROUP, sort=False):
        s = s.sort_values("threads")
        lo, hi = s.iloc[:-1], s.iloc[1:]
        if lo.empty:
            continue
        d = decide_moments(rule, hi.n, hi["mean"], hi["var"], lo.n, lo["mean"], lo["var"])
        for (a, b), state, change in zip(zip(lo.itertuples(), hi.itertuples()), d["state"], d["change"]):
            rows.append({**dict(zip(SERIES, key)), "lo": int(a.threads), "hi": int(b.threads), "n_lo": int(a.n),
                         "n_hi": int(b.n), "next_lo": int(a.next), "next_hi": int(b.next), "state": state,
                         "change": float(change)})
    return pd.DataFrame(rows, columns=cols)


def plateaus(st: pd.DataFrame, rule: Rule) -> list[Plateau]:
    """Per series: the step whose rise is the last one (the rise ends at its `hi`), located where
    its thread counts are adjacent, else bisected; before it, an open step is repeated first."""
    out = []
    if st.empty:
        return out
    for key, g in st.groupby(list(SERIES), sort=False):
        series = {"impl": key[0], "msg_size": int(key[1]),
                  **{p.name: ident_value(p, v) for p, v in zip(IDENTITY, key[2:])}}
        rows = list(g.sort_values("lo").itertuples(index=False))
        ev = [{"lo": x.lo, "hi": x.hi, "state": x.state, "change": x.change, "n": int(min(x.n_lo, x.n_hi))}
              for x in rows]
        stop = None
        for i, x in enumerate(rows):
            if x.state == OPEN and min(x.n_lo, x.n_hi) < rule.max_repeats:
                stop = ("open", x)
                break
            if x.state != AHEAD:
                stop = ("flat", i)
                break
        if stop and stop[0] == "open":
            out.append(Plateau(series, stop[1].lo, stop[1].hi, "open", None, ev))
            continue
        if stop and stop[1] == 0:
            out.append(Plateau(series, rows[0].lo, rows[0].lo, "not_rising", None, ev))
            continue
        last = rows[stop[1] - 1] if stop else rows[-1]   # the last rise: it ends within (lo, hi]
        mid = midpoint(last.lo, last.hi)
        status = "bisect" if mid is not None else "located" if stop else "rising"
        out.append(Plateau(series, last.lo, last.hi, status, mid, ev))
    return out


def rule_of(manifest: dict) -> Rule | None:
    """The rule a refined directory's last round recorded (its maximum of repeats; the default
    rule where it recorded none); None where the directory was never refined."""
    rules = recorded_rules(manifest)
    if not rules:
        return None
    n = rules[-1].get("max_repeats")
    return Rule(max_repeats=int(n)) if isinstance(n, int) and n >= 2 else Rule()


def answered(runs: pd.DataFrame, manifest: dict) -> dict | None:
    """What the threads answer says of where throughput stops rising, from the stored points by
    the rule the refinement ran (`rule_of`): the plateaus (`Plateau.to_dict`, each with
    `after`: whether a step that is not a rise follows its last rise) and the rule; None where
    the directory was never refined (or holds fewer than two thread counts)."""
    rule = rule_of(manifest)
    if rule is None:
        return None
    found = plateaus(steps(runs, rule), rule)
    if not found:
        return None
    out = []
    for p in found:
        d = p.to_dict()
        d["after"] = next((e for e in p.evidence if p.hi is not None and e["lo"] == p.hi), None)
        out.append(d)
    return {"rule": rule.to_dict()["name"], "max_repeats": rule.max_repeats, "alpha_per_look": rule.alpha_per_look,
            "series": out}


def midpoint(lo: int, hi: int) -> int | None:
    m = int(round(math.sqrt(lo * hi)))
    m = min(max(m, lo + 1), hi - 1)
    return m if lo < m < hi else None


def items(runs: pd.DataFrame, rule: Rule) -> list:
    """The repeats of the open step that holds a plateau, and the midpoints of those to bisect."""
    from .plan import MIN_REPEATS, Item, point as planned_point, settings_words
    st = steps(runs, rule)
    out = []
    for p in plateaus(st, rule):
        s = p.series
        what = (f"{s['impl']} at {s['msg_size']} B{settings_words(s)}: where throughput stops rising, "
                f"{p.lo} to {p.hi} threads")

        def point(threads, repeat):
            return planned_point(s["impl"], s, threads, s["msg_size"], repeat)
        if p.status == "open":
            x = st[(st.lo == p.lo) & (st.hi == p.hi)
                   & (st[list(SERIES)] == pd.Series(s)).all(axis=1)].iloc[0]
            target = max(MIN_REPEATS, int(min(x.n_lo, x.n_hi)) + 1)
            pts = [point(p.lo, x.next_lo + k) for k in range(max(0, target - x.n_lo))]
            pts += [point(p.hi, x.next_hi + k) for k in range(max(0, target - x.n_hi))]
            out.append(Item("repeat", f"{what}? a look at n={target}", pts, {"plateau": p.to_dict()}))
        elif p.status == "bisect":
            out.append(Item("bisect", f"{what}: {p.midpoint} threads between them",
                            [point(p.midpoint, r) for r in range(MIN_REPEATS)], {"plateau": p.to_dict()}))
    return out
