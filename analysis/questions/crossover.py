"""one-copy-crossover and zero-copy-crossover: at what message size does a strategy beat two-copy?

Per thread count: the smallest size at which the strategy's throughput is ahead of
two_copy's (and significantly so, with repeats), whether it stays ahead at the larger sizes,
and, where it never gets ahead, how close it came."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import pandas as pd

from netobs.fmt import p_value, pct, share

from .. import hypotheses as hyp
from ..answer import Prose
from ..load import Results
from . import prose
from .common import Facts, Reason, Unanswerable, caveats, chart_rows, unanswerable, untested, vs

# a crossover is located when bracketed within this factor of sizes (netobs.refine.plan.FACTOR's value)
LOCATED_FACTOR = 2 ** 0.25
# verdict codes
EVERYWHERE, SOME_THREADS, NEVER = "crosses_at_every_thread_count", "crosses_at_some_thread_counts", "never_crosses"


def name(impl: str) -> str:
    return f"{impl.replace('_', '-')}-crossover"


def title(impl: str) -> str:
    return f"At what message size does {impl.replace('_', '-')} beat two-copy?"


@dataclass
class AtThreads:
    """One thread count's crossover (the `crossover_size`, or None and the closest it came)."""

    crossover_size: int | None
    stays_ahead: bool | None
    behind_again_at: list[int]
    behind_again_significant_at: list[int] | None   # None: untested
    tested: bool
    sizes: list[int]
    change_pct_at_crossover: float | None = None
    p_value_at_crossover: float | None = None
    at_smallest_tested_size: bool | None = None
    closest_size: int | None = None
    closest_change_pct: float | None = None
    ahead_not_significant: list[int] = field(default_factory=list)
    # the crossover's bracket: the largest tested size below it (where the strategy did not beat
    # two_copy) and the crossover size, their ratio, and the comparison at each end
    bracket: list[int] | None = None
    bracket_factor: float | None = None
    bracket_located: bool | None = None        # within LOCATED_FACTOR (netobs refine's bisection target)
    bracket_evidence: list[dict] | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        drop = (("closest_size", "closest_change_pct") if self.crossover_size is not None else
                ("change_pct_at_crossover", "p_value_at_crossover", "at_smallest_tested_size", "bracket",
                 "bracket_factor", "bracket_located", "bracket_evidence"))
        return {k: v for k, v in d.items() if k not in drop}


@dataclass
class Group:
    """Thread counts whose crossovers read the same, as the verdict tells them together."""

    threads: list[int]
    crossover_size: int | None
    stays_ahead: bool | None
    behind_again_at: list[int]
    behind_again_significant_at: list[int] | None
    change_pct_below_median: float | None = None     # below the crossover, over these thread counts
    closest_size: int | None = None                  # never ahead: the best of these thread counts
    closest_change_pct: float | None = None
    closest_threads: int | None = None


@dataclass(kw_only=True)
class CrossoverFacts(Facts):
    implementation: str
    sizes: list[int]                   # every size compared
    by_threads: dict[int, AtThreads]
    groups: list[Group]
    tested: bool
    weak_baseline: list = field(default_factory=list)   # two_copy points a win rests on that are off their trend

    def fields(self) -> dict:
        crosses = [i.crossover_size for i in self.by_threads.values()]
        return {"by_threads": {t: i.to_dict() for t, i in self.by_threads.items()},
                "crossover_by_threads": {t: i.crossover_size for t, i in self.by_threads.items()},
                "common_crossover": crosses[0] if crosses and all(x == crosses[0] for x in crosses) else None,
                "smallest_crossover": min((x for x in crosses if x is not None), default=None),
                "tested": self.tested, "implementation": self.implementation, "sizes": self.sizes,
                "groups": [asdict(g) for g in self.groups], "weak_baseline": self.weak_baseline}


def _at_threads(g: pd.DataFrame) -> AtThreads:
    beats = g[g.beats]
    cross = int(beats.msg_size.min()) if len(beats) else None
    after = g[g.msg_size > cross] if cross is not None else g.iloc[0:0]
    behind = after[after.change_pct < 0]
    tested = not untested(g)
    significantly = behind[behind.significant == True]  # noqa: E712 - None (untested) is not significant
    info = AtThreads(crossover_size=cross, stays_ahead=behind.empty if cross is not None else None,
                     behind_again_at=[int(s) for s in behind.msg_size],
                     behind_again_significant_at=[int(s) for s in significantly.msg_size] if tested else None,
                     tested=tested, sizes=[int(s) for s in g.msg_size],
                     ahead_not_significant=[int(s) for s in g[g.ahead & ~g.beats].msg_size])
    if cross is not None:
        row = g[g.msg_size == cross].iloc[0]
        info.change_pct_at_crossover = float(row.change_pct)
        info.p_value_at_crossover = float(row.p_value)
        info.at_smallest_tested_size = cross == int(g.msg_size.min())
        below = g[g.msg_size < cross]
        if len(below):
            lo = below.iloc[-1]
            info.bracket = [int(lo.msg_size), cross]
            info.bracket_factor = cross / float(lo.msg_size)
            info.bracket_located = info.bracket_factor <= LOCATED_FACTOR * (1 + 1e-9)
            info.bracket_evidence = [{"msg_size": int(x.msg_size), "change_pct": float(x.change_pct),
                                      "p_value": None if x.p_value != x.p_value else float(x.p_value),
                                      "n": int(min(x.n, x.n_ref)), "beats": bool(x.beats)} for x in (lo, row)]
    else:
        best = g.loc[g.change_pct.idxmax()]
        info.closest_size, info.closest_change_pct = int(best.msg_size), float(best.change_pct)
    return info


def _groups(c: pd.DataFrame, per_t: dict[int, AtThreads]) -> list[Group]:
    same: dict = {}
    for t, i in per_t.items():
        sig = i.behind_again_significant_at
        same.setdefault((i.crossover_size, i.stays_ahead, tuple(i.behind_again_at),
                         None if sig is None else tuple(sig)), []).append(t)
    out = []
    # thread counts that cross first, by crossover size; those that never cross last
    for (cross, stays, behind, behind_sig), ts in sorted(same.items(),
                                                         key=lambda kv: (kv[0][0] is None, kv[0][0] or 0)):
        g = Group(threads=ts, crossover_size=cross, stays_ahead=stays, behind_again_at=list(behind),
                  behind_again_significant_at=None if behind_sig is None else list(behind_sig))
        if cross is None:
            best_t = max(ts, key=lambda t: per_t[t].closest_change_pct)
            best = per_t[best_t]
            g.closest_size, g.closest_change_pct, g.closest_threads = best.closest_size, best.closest_change_pct, best_t
        else:
            below = c[(c.threads.isin(ts)) & (c.msg_size < cross)]
            if len(below):
                g.change_pct_below_median = float(below.change_pct.median())
        out.append(g)
    return out


def compute(r: Results, impl: str) -> Facts:
    if impl not in r.impls or "two_copy" not in r.impls:
        return unanswerable(r, "missing_strategy", missing=impl if impl not in r.impls else "two_copy")
    c = vs(r, "throughput_gbps", impl, "two_copy")
    if c.empty:   # both measured, but at no message size x threads in common
        return unanswerable(r, "no_shared_point", missing=impl)
    c["ahead"] = c.change_pct > 0
    c["beats"] = c.ahead & c.significant.map(lambda s: s is None or s != s or bool(s))
    per_t, rows = {}, []
    for t, g in c.groupby("threads"):
        g = g.sort_values("msg_size")
        info = per_t[int(t)] = _at_threads(g)
        for x in g.itertuples():
            rows.append({"threads": int(t), "msg_size": int(x.msg_size), f"{impl}_gbps": x.value,
                         "two_copy_gbps": x.ref, "change_pct": x.change_pct, "p_value": x.p_value,
                         "significant": x.significant, "beats": bool(x.beats),
                         "crossover": info.crossover_size is not None and int(x.msg_size) == info.crossover_size})
    crosses = [i.crossover_size is not None for i in per_t.values()]
    chart = chart_rows(r, ["throughput_gbps"])
    groups = _groups(c, per_t)
    # a win that rests on a two_copy point off its own trend (against the other strategies) says so
    wins = tuple(("two_copy", int(x.msg_size), int(x.threads)) for x in c[c.beats].itertuples())
    judged = hyp.judge(r, hyp.Scope(tuple((impl,) + w[1:] for w in wins), wins, "baseline"), ["weak_baseline"]) \
        if wins else []
    weak = [p for j in judged for p in j.numbers.get("points", [])]
    reasons = [Reason("group", 3.0 - 0.1 * k, {"threads": g.threads, "crossover_size": g.crossover_size}, "worker")
               for k, g in enumerate(groups)]
    if weak:
        reasons.insert(0, Reason("weak_baseline", 4.0, {"points": weak}, "worker"))
    ahead_ns = [(t, s_) for t, i in per_t.items() for s_ in i.ahead_not_significant]
    if ahead_ns:
        reasons.append(Reason("ahead_not_significant", 1.0, {"points": ahead_ns}, "worker"))
    return CrossoverFacts(
        code=EVERYWHERE if crosses and all(crosses) else SOME_THREADS if any(crosses) else NEVER,
        caveats=caveats(r), evidence=pd.DataFrame(rows),
        chart_data=chart[chart.implementation.isin([impl, "two_copy"])],
        implementation=impl, sizes=sorted(int(s) for s in c.msg_size.unique()), by_threads=per_t,
        groups=groups, tested=not untested(c), weak_baseline=weak, reasons=reasons, hypotheses=judged)


# --------------------------------------------------------------------------- prose
def _threads(counts) -> str:
    """Thread counts in at most two numbers ("1 and 2 threads", "1 to 8 threads"; all in --json)."""
    counts = sorted(int(t) for t in counts)
    return prose.threads(counts) if len(counts) <= 2 else f"{counts[0]} to {counts[-1]} threads"


def _group(f: CrossoverFacts, g: Group) -> str:
    impl, first, last = f.implementation, f.sizes[0], f.sizes[-1]
    if g.crossover_size is None:
        return (f"With {_threads(g.threads)}, {impl} never beats two_copy within the tested sizes; its closest "
                f"was {pct(g.closest_change_pct)} at "
                f"{prose.point(g.closest_size, g.closest_threads)} [worker].")
    cross = g.crossover_size
    at = sorted(f.by_threads[t].change_pct_at_crossover for t in g.threads)
    s = (f"With {_threads(g.threads)}, {impl} first beats two_copy at {cross} B ("
         + (pct(at[0]) if len(at) == 1 else f"{pct(at[0])} to {pct(at[-1])}") + ")")
    if cross == first:
        s += ", the smallest tested size, so the true crossover may be lower"
    located = {tuple(f.by_threads[t].bracket) for t in g.threads if f.by_threads[t].bracket_located}
    if len(located) == 1 and all(f.by_threads[t].bracket_located for t in g.threads):
        lo, _ = next(iter(located))
        s += f", located: not yet at {lo} B"
    if g.stays_ahead:
        s += " and is not behind at any larger tested size" if cross < last else " (the largest tested size)"
    else:
        s += f", but falls behind again at {prose.sizes(g.behind_again_at)}"
        if g.behind_again_significant_at is not None:
            s += (f" (significantly at {prose.sizes(g.behind_again_significant_at)})" if g.behind_again_significant_at
                  else " (not significantly: within run-to-run noise)")
    if g.change_pct_below_median is not None:
        s += f"; below it, its median change is {pct(g.change_pct_below_median)}"
    return s + " [worker]."


def _headline(f: CrossoverFacts) -> str:
    impl = f.implementation
    crossing = [g for g in f.groups if g.crossover_size is not None]
    never = [t for g in f.groups if g.crossover_size is None for t in g.threads]
    if not crossing:
        g = max(f.groups, key=lambda g: g.closest_change_pct)
        return (f"{impl} never beats two_copy at any tested size and thread count; closest: "
                f"{pct(g.closest_change_pct)} at {prose.point(g.closest_size, g.closest_threads)}.")
    sizes = sorted({g.crossover_size for g in crossing})
    if len(sizes) == 1:
        s = f"{impl} first beats two_copy at {sizes[0]} B" + (" at every thread count" if not never else "")
    else:
        s = f"{impl} first beats two_copy at {' or '.join(f'{x} B' for x in sizes)}, depending on the thread count"
    if never:
        s += f", never with {prose.threads(never)}"
    if f.weak_baseline:
        s += " (resting on a weak two_copy point)"
    if not f.tested and "beats" in f.evidence:
        ev = f.evidence
        wins = [int(ev[(ev.threads.isin(g.threads)) & (ev.beats == True)].shape[0]) for g in crossing]  # noqa: E712
        # untested either way: the headline says so (one point, or several, each run once)
        s += " (resting on one unrepeated point)" if min(wins) == 1 else " (untested: one run per point)"
    return s + "."


def _weak_words(points) -> str:
    return ("A win rests on a weak baseline: " + "; ".join(
        f"two_copy at {prose.point(p['msg_size'], p['threads'])} is {share(-p['shortfall_pct'] / 100, 1)} below its own "
        "trend while the other strategies held theirs" for p in points)
        + "; the crossover there may be the baseline's dip, not the strategy's gain [worker].")


def render(f: Facts) -> Prose:
    if isinstance(f, Unanswerable) and f.code == "no_shared_point":
        return prose.unanswerable(f, f"{f.missing} and two_copy were measured at no message size and thread count "
                                     "in common, so no crossover can be found.")
    if isinstance(f, Unanswerable):
        return prose.unanswerable(f, f"These results lack {f.missing} points (strategies: "
                                     f"{prose.join(f.implementations)}), so no crossover can be found.")
    sentences = []
    for x in f.reasons:
        if x.code == "group":
            sentences.append(_group(f, next(g for g in f.groups if g.threads == x.numbers["threads"])))
        elif x.code == "weak_baseline":
            sentences.append(_weak_words(x.numbers["points"]))
        elif x.code == "ahead_not_significant":
            sentences.append(f"Ahead but not significantly (Welch p>={f.parameters.alpha}) at " + ", ".join(
                prose.point(s_, t) for t, s_ in x.numbers["points"]) + ", so those do not count as beating it [worker].")
    if not f.tested:
        sentences.append("With one run per point these crossovers are untested: a difference within run-to-run "
                         "noise would look the same.")
    else:
        ps = [i.p_value_at_crossover for i in f.by_threads.values() if i.crossover_size is not None]
        if ps:
            sentences.append(f"Each crossover is significant (Welch {p_value(max(ps))} at worst).")
    key = ["threads", "msg_size", f"{f.implementation}_gbps", "two_copy_gbps", "change_pct", "p_value", "beats",
           "crossover"]
    return prose.answer(f, _headline(f), sentences, f.evidence, key=key)
