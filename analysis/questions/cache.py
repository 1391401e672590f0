"""cache: which cache level shows the largest reduction in misses, and why?

Misses per KiB sent of the copy-avoiding strategies against two_copy, per level, per
configuration; which level gains most (and how consistently: a sign test); and, without
hardware counters, what was measured instead."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from netobs.fmt import num, p_value, pct

from ..answer import Prose
from ..load import Results
from ..stats import quantiles, sign_test
from . import prose
from .common import Facts, Unanswerable, caveats, chart_rows, median_of, unanswerable, untested, vs

NAME = "cache"
TITLE = "Which cache level shows the largest reduction in misses, and why?"
LEVELS = {"L1": ("l1_misses_per_kib", "l1_cache_misses"), "LLC": ("llc_misses_per_kib", "llc_cache_misses")}
SAVERS = ("one_copy", "zero_copy")
INSTEAD = ("cpu_s_per_gb", "copies_per_byte", "cycles_per_byte")   # measured instead of the counters
# verdict codes
BOTH_LEVELS, ONE_LEVEL, NO_COUNTERS = "both_levels", "one_level", "no_counters"


@dataclass(kw_only=True)
class CacheFacts(Facts):
    savers: list[str]
    levels_measured: list[str]
    levels_missing: dict[str, str | None]          # level -> why its counter has no value

    def fields(self) -> dict:
        return {"levels_measured": self.levels_measured, "levels_missing": self.levels_missing}


@dataclass(kw_only=True)
class WithoutCounters(CacheFacts):
    """No level was counted: the reductions in what was measured instead."""

    measured_instead_reduction_median_pct: dict[str, dict[str, float]]

    def fields(self) -> dict:
        return {**super().fields(), "measured_instead_reduction_median_pct": self.measured_instead_reduction_median_pct,
                "largest_level": None}


@dataclass(kw_only=True)
class Reductions(CacheFacts):
    by_strategy: dict[str, dict[str, dict]]        # strategy -> level -> reduction quantiles and counts
    configurations_by_strategy: dict[str, int]
    pooled: dict[str, dict]                         # level -> reduction quantiles over all strategies
    largest_level: str | None                       # None with one level measured
    other_level: str | None = None
    only_level: str | None = None
    pairs: int | None = None                        # strategy x configuration pairs with both levels
    best_larger_in: int | None = None
    sign_test_p: float | None = None
    tested: bool
    significant_reductions_at_best: int | None
    pairs_at_best: int
    cycles_per_byte_reduction_median_pct: dict[str, float]
    copies_per_byte: dict[str, float]

    def fields(self) -> dict:
        out = {**super().fields(), "by_strategy": self.by_strategy, "pooled": self.pooled,
               "largest_level": self.largest_level}
        if self.code == BOTH_LEVELS:
            out.update(other_level=self.other_level, pairs=self.pairs, best_larger_in=self.best_larger_in,
                       sign_test_p=self.sign_test_p)
        else:
            out["only_level"] = self.only_level
        out.update(significant_reductions_at_best=self.significant_reductions_at_best,
                   cycles_per_byte_reduction_median_pct=self.cycles_per_byte_reduction_median_pct,
                   copies_per_byte=self.copies_per_byte, configurations_by_strategy=self.configurations_by_strategy,
                   tested=self.tested, pairs_at_best=self.pairs_at_best)
        return out


def _reduction_median(r: Results, impl: str, metric: str) -> float:
    c = vs(r, metric, impl, "two_copy")
    return float(-c.change_pct.median()) if len(c) else float("nan")


def _fallback_evidence(r: Results, savers: list[str]) -> pd.DataFrame:
    ev = None
    for metric in INSTEAD:
        for impl in savers:
            c = vs(r, metric, impl, "two_copy")
            if c.empty:
                continue
            part = c[["msg_size", "threads", "ref", "value", "change_pct"]].rename(columns={
                "ref": f"two_copy_{metric}", "value": f"{impl}_{metric}", "change_pct": f"{impl}_{metric}_change_pct"})
            if ev is None:
                ev = part
            else:
                ev = ev.merge(part.drop(columns=[f"two_copy_{metric}"] if f"two_copy_{metric}" in ev else []),
                              on=["msg_size", "threads"], how="outer")
    return pd.DataFrame() if ev is None else ev.sort_values(["msg_size", "threads"]).reset_index(drop=True)


def compute(r: Results) -> Facts:
    if "two_copy" not in r.impls:
        return unanswerable(r, "no_two_copy")
    savers = [i for i in SAVERS if i in r.impls]
    if not savers:
        return unanswerable(r, "no_savers")
    measured = [lvl for lvl, (m, _) in LEVELS.items() if r.measured(m)]
    missing = {lvl: r.missing_reason(raw) for lvl, (m, raw) in LEVELS.items() if lvl not in measured}
    common = dict(caveats=caveats(r, [raw for _, raw in LEVELS.values()] + ["cpu_cycles"]),
                  chart_data=chart_rows(r, ["l1_misses_per_kib", "llc_misses_per_kib", "cycles_per_byte",
                                            "cpu_s_per_gb", "copies_per_byte"]),
                  savers=savers, levels_measured=measured, levels_missing=missing)
    if not measured:
        return WithoutCounters(
            code=NO_COUNTERS, evidence=_fallback_evidence(r, savers), **common,
            measured_instead_reduction_median_pct={m: {i: _reduction_median(r, i, m) for i in savers}
                                                   for m in INSTEAD})
    rows = []
    for impl in savers:
        for lvl in measured:
            for x in vs(r, LEVELS[lvl][0], impl, "two_copy").itertuples():
                rows.append({"implementation": impl, "level": lvl, "msg_size": x.msg_size, "threads": x.threads,
                             "two_copy_per_kib": x.ref, "strategy_per_kib": x.value,
                             "reduction_pct": -x.change_pct, "p_value": x.p_value, "significant": x.significant})
    ev = pd.DataFrame(rows)
    tested = not untested(ev) if len(ev) else False
    per, configs = {}, {}
    for impl in savers:
        for lvl in measured:
            sub = ev[(ev.implementation == impl) & (ev.level == lvl)]
            qs = quantiles(sub.reduction_pct)
            sig = sub.significant == True  # noqa: E712 - None (untested) is not significant
            qs["fewer_misses"] = int((sub.reduction_pct > 0).sum())
            qs["significant_reductions"] = int(((sub.reduction_pct > 0) & sig).sum()) if tested else None
            qs["significant_increases"] = int(((sub.reduction_pct < 0) & sig).sum()) if tested else None
            per.setdefault(impl, {})[lvl] = qs
        configs[impl] = int(ev[ev.implementation == impl].groupby(["msg_size", "threads"]).ngroups)
    pooled = {lvl: quantiles(ev[ev.level == lvl].reduction_pct) for lvl in measured}
    both = {}
    if len(measured) == 2:
        best = max(measured, key=lambda lvl: pooled[lvl]["median"])
        other = [lvl for lvl in measured if lvl != best][0]
        wide = ev.pivot_table(index=["implementation", "msg_size", "threads"], columns="level",
                              values="reduction_pct").dropna()
        diff = wide[best] - wide[other]
        k_more, k_less = int((diff > 0).sum()), int((diff < 0).sum())
        both = dict(largest_level=best, other_level=other, pairs=int(len(diff)), best_larger_in=k_more,
                    sign_test_p=sign_test(k_more, k_less))
    else:
        best = measured[0]
        both = dict(largest_level=None, only_level=best)
    at_best = ev[ev.level == best]
    n_sig = int(((at_best.reduction_pct > 0) & (at_best.significant == True)).sum())  # noqa: E712
    return Reductions(
        code=BOTH_LEVELS if len(measured) == 2 else ONE_LEVEL, evidence=ev, **common, **both,
        by_strategy=per, configurations_by_strategy=configs, pooled=pooled, tested=tested,
        significant_reductions_at_best=n_sig if tested else None, pairs_at_best=int(len(at_best)),
        cycles_per_byte_reduction_median_pct={i: _reduction_median(r, i, "cycles_per_byte") for i in savers},
        copies_per_byte={i: median_of(r, i, "copies_per_byte") for i in ["two_copy"] + savers})


# --------------------------------------------------------------------------- prose
UNANSWERABLE = {
    "no_two_copy": lambda f: ("There are no two_copy points to measure a reduction against "
                              f"(strategies: {prose.join(f.implementations)})."),
    "no_savers": lambda f: "There are no one_copy or zero_copy points to compare with two_copy.",
}
INSTEAD_WORDS = {"cpu_s_per_gb": "client CPU-seconds per GB", "copies_per_byte": "copies per byte",
                 "cycles_per_byte": "cycles per byte"}
NO_CHART_NOTE = "no cache-miss counters were measured; the chart shows what was measured instead"


def _finite(x) -> bool:
    return x is not None and x == x


def _without_counters(f: WithoutCounters) -> str:
    s = ["No cache-miss counts were measured ("
         + "; ".join(f"{lvl}: {why}" for lvl, why in f.levels_missing.items())
         + "), so which cache level gains most cannot be answered from these results; missing counts are not zeros."]
    instead = []
    for metric, red in f.measured_instead_reduction_median_pct.items():
        if any(_finite(v) for v in red.values()):
            instead.append(f"median change in {INSTEAD_WORDS[metric]} vs two_copy: " + ", ".join(
                f"{impl} {pct(-v)}" for impl, v in red.items() if _finite(v)))
    if instead:
        s.append("What was measured instead: " + "; ".join(instead) + ".")
    else:
        s.append("Neither CPU time per GB nor traced copies were recorded either, so no substitute evidence exists.")
    return " ".join(s)


def _reductions(f: Reductions) -> str:
    sentences = []
    for impl in f.savers:
        parts = []
        for lvl in f.levels_measured:
            qs = f.by_strategy[impl][lvl]
            verb = "cut" if qs["median"] >= 0 else "raised"
            parts.append(f"{verb} {lvl} misses per KiB by a median {abs(qs['median']):.1f}% (reduction IQR "
                         f"{qs['q1']:.1f} to {qs['q3']:.1f}%, range {qs['min']:.1f} to {qs['max']:.1f}%; fewer misses "
                         f"in {qs['fewer_misses']} of {qs['n']})")
        sentences.append(f"Across {f.configurations_by_strategy[impl]} configurations, {impl} " + " and ".join(parts)
                         + " relative to two_copy.")
    if f.code == BOTH_LEVELS:
        best, other = f.largest_level, f.other_level
        sentences.append(f"The largest reduction is at {best}: a median {f.pooled[best]['median']:.1f}% against "
                         f"{f.pooled[other]['median']:.1f}% at {other} over all {f.pairs} strategy x configuration "
                         f"pairs; {best}'s reduction exceeded {other}'s in {f.best_larger_in} of {f.pairs} "
                         f"(sign test {p_value(f.sign_test_p)}).")
    else:
        best = f.only_level
        lost = [lvl for lvl in LEVELS if lvl != best][0]
        sentences.append(f"Only {best} misses were measured ({lost}: {f.levels_missing.get(lost)}), so which level "
                         f"gains most cannot be decided; {best} alone shows the reduction above.")
    if f.tested:
        sentences.append(f"Per configuration (repeats, Welch p<{f.parameters.alpha}), the {best} reduction is "
                         f"significant in {f.significant_reductions_at_best} of {f.pairs_at_best} strategy x "
                         "configuration pairs.")
    else:
        sentences.append("With one run per point no per-configuration difference is tested; the consistency "
                         "across configurations above is the evidence.")
    why = []
    cyc = f.cycles_per_byte_reduction_median_pct
    if any(_finite(v) for v in cyc.values()):
        why.append("cycles per byte " + ", ".join(f"{'fell' if v >= 0 else 'rose'} by a median {abs(v):.1f}% for {i}"
                                                  for i, v in cyc.items() if _finite(v)))
    if all(_finite(v) for v in f.copies_per_byte.values()):
        why.append("traced copies per byte were "
                   + ", ".join(f"{num(v)} for {i}" for i, v in f.copies_per_byte.items()))
    if f.code == BOTH_LEVELS and f.pooled[best]["median"] > 0:
        reason = (f"Consistent with the copy the other strategies remove: two_copy's serialisation memcpy is one extra "
                  f"pass over every byte (by construction), and its saving shows most at {best}")
        if why:
            reason += "; " + "; ".join(why)
        sentences.append(reason + ".")
    elif why:
        sentences.append(why[0][0].upper() + "; ".join(why)[1:] + ".")
    return " ".join(sentences)


def render(f: Facts) -> Prose:
    if isinstance(f, Unanswerable):
        return prose.unanswerable(f, UNANSWERABLE[f.code](f))
    if isinstance(f, WithoutCounters):
        return Prose(verdict=_without_counters(f), caveats=prose.caveats(f), table=f.evidence,
                     key_columns=list(f.evidence.columns), chart_note=NO_CHART_NOTE, text=prose.method_text())
    key = ["implementation", "level", "msg_size", "threads", "two_copy_per_kib", "strategy_per_kib",
           "reduction_pct", "p_value"]
    return Prose(verdict=_reductions(f), caveats=prose.caveats(f), table=f.evidence, key_columns=key,
                 text=prose.method_text())
