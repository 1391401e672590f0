"""cache: which cache level shows the largest reduction in misses, and why?

Misses per KiB sent of the copy-avoiding strategies against two_copy, per level, per
configuration; which level gains most (and how consistently: a sign test); and, without
hardware counters, what was measured instead."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from netobs.fmt import num, p_value, pct

from ..answer import Prose
from .. import accounting as acc
from ..load import KEY, Results
from ..stats import guarded_ratios, quantiles, sign_test
from . import prose
from .common import (Facts, Reason, Unanswerable, caveats, chart_rows, cost_of, data_name, ranked, unanswerable,
                     untested, vs)

NAME = "cache"
TITLE = "Which cache level shows the largest reduction in misses, and why?"
LEVELS = {"L1": ("l1_misses_per_kib", "l1_cache_misses"), "LLC": ("llc_misses_per_kib", "llc_cache_misses")}
SAVERS = ("one_copy", "zero_copy")
INSTEAD = ("cpu_s_per_gb", "copies_per_byte", "cycles_per_byte")   # measured instead of the counters
# without counters: the CPU time the profile put in copies, per GB (a labelled proxy for cache traffic)
# every copy the client's profile sees: its own, the kernel's, and zero-copy pages copied after all
PROXY = ("prof_client_user_copy_cpu_s_per_gb", "prof_client_kernel_copy_cpu_s_per_gb",
         "prof_client_deferred_copy_cpu_s_per_gb")
TINY_PER_KIB = 0.01   # a baseline below one miss per 100 KiB: a ratio over it says nothing
# reason codes
(R_LEVEL, R_ABSOLUTE, R_TINY, R_CONSISTENCY, R_CYCLES, R_COPIES, R_CONSTRUCTION, R_PROXY, R_INSTEAD, R_ONE_LEVEL) = (
    "largest_relative_level", "absolute_disagrees", "tiny_baseline", "consistency", "cycles_per_byte",
    "copies_per_byte", "netobs_two_copy_copies", "profile_copy_proxy", "measured_instead", "one_level_only")
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

    measured_instead_reduction_pct: dict[str, dict[str, float]]
    copy_cpu_s_per_gb: dict[str, float] = None     # strategy -> profile's copy CPU-s per GB (the proxy)

    def fields(self) -> dict:
        return {**super().fields(), "measured_instead_reduction_pct": self.measured_instead_reduction_pct,
                "largest_level": None, "copy_cpu_s_per_gb": self.copy_cpu_s_per_gb or {}}


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
    cycles_per_byte_reduction_pct: dict[str, float]
    copies_per_byte: dict[str, float]
    absolute: dict = None               # level -> median over configurations of (two_copy - strategy) per KiB
    largest_absolute_level: str | None = None
    baseline_per_kib: dict = None       # level -> median two_copy misses per KiB
    excluded_tiny: dict = None          # level -> ratios left out (baseline below the floor)
    configurations: int | None = None   # independent units of the sign test
    imported: bool = False

    def fields(self) -> dict:
        out = {**super().fields(), "by_strategy": self.by_strategy, "pooled": self.pooled,
               "largest_level": self.largest_level}
        if self.code == BOTH_LEVELS:
            out.update(other_level=self.other_level, pairs=self.pairs, best_larger_in=self.best_larger_in,
                       sign_test_p=self.sign_test_p)
        else:
            out["only_level"] = self.only_level
        out.update(significant_reductions_at_best=self.significant_reductions_at_best,
                   cycles_per_byte_reduction_pct=self.cycles_per_byte_reduction_pct,
                   copies_per_byte=self.copies_per_byte, configurations_by_strategy=self.configurations_by_strategy,
                   tested=self.tested, pairs_at_best=self.pairs_at_best, absolute=self.absolute or {},
                   largest_absolute_level=self.largest_absolute_level, baseline_per_kib=self.baseline_per_kib or {},
                   excluded_tiny=self.excluded_tiny or {}, configurations=self.configurations)
        return out


def _reduction(r: Results, impl: str, metric: str) -> float:
    """How much less of a per-byte cost `impl` had than two_copy, in percent, over the
    configurations both measured: the accounting's COST_AGGREGATE (the mean over configurations
    of each one's mean over repeats), so the change is the one the cost gaps of every answer
    state (a median of per-configuration ratios gave another number for the same gap)."""
    if metric not in r.runs:
        return float("nan")
    runs = r.runs[r.runs[metric].notna()]

    def configs(name):
        of = runs[runs.implementation == name]
        return set(zip(of.msg_size.astype(int), of.threads.astype(int)))

    both = sorted(configs(impl) & configs("two_copy"))
    if not both:
        return float("nan")
    series = acc.column(r.runs, metric)   # (the same Series each call: its per-configuration means once)
    at = acc._mean_of(r, series, [(impl, s, t) for s, t in both])
    ref = acc._mean_of(r, series, [("two_copy", s, t) for s, t in both])
    return float(-(at / ref - 1) * 100) if ref and ref == ref and at == at else float("nan")


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
    missing = {lvl: data_name(r, r.missing_reason(raw)) for lvl, (m, raw) in LEVELS.items() if lvl not in measured}
    common = dict(caveats=caveats(r, [raw for _, raw in LEVELS.values()] + ["cpu_cycles"]),
                  chart_data=chart_rows(r, ["l1_misses_per_kib", "llc_misses_per_kib", "cycles_per_byte",
                                            "cpu_s_per_gb", "copies_per_byte"]),
                  savers=savers, levels_measured=measured, levels_missing=missing)
    if not measured:
        instead = {m: {i: _reduction(r, i, m) for i in savers} for m in INSTEAD}
        proxy = {}
        if all(r.measured(c) for c in PROXY):
            copies = r.runs[list(PROXY)].sum(axis=1, min_count=1)
            # the cost aggregate every answer uses (analysis.accounting.COST_AGGREGATE)
            proxy = {i: acc._mean_of(r, copies, [tuple(k) for k in r.runs[r.runs.implementation == i][KEY]
                                                 .drop_duplicates().itertuples(index=False)])
                     for i in ["two_copy"] + savers}
        reasons = []
        if proxy:
            reasons.append(Reason(R_PROXY, 2.0, {"copy_cpu_s_per_gb": proxy}, "profile"))
        if any(v == v for red in instead.values() for v in red.values()):
            reasons.append(Reason(R_INSTEAD, 1.0, {"reduction_pct": instead},
                                  "trace" if r.measured("copies_per_byte") else "worker"))
        return WithoutCounters(
            code=NO_COUNTERS, evidence=_fallback_evidence(r, savers), **common,
            measured_instead_reduction_pct=instead, copy_cpu_s_per_gb=proxy, reasons=reasons)
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
    # relative changes only over baselines that are not tiny (the floor is said in the facts)
    base_per_kib, excluded = {}, {}
    ev["guarded"] = True
    for lvl in measured:
        sub = ev[ev.level == lvl]
        base_per_kib[lvl] = float(sub.two_copy_per_kib.median())
        keep = guarded_ratios(sub.two_copy_per_kib, TINY_PER_KIB)
        ev.loc[sub.index, "guarded"] = keep.to_numpy()
        excluded[lvl] = int((~keep).sum())
    ev["absolute_reduction_per_kib"] = ev.two_copy_per_kib - ev.strategy_per_kib
    pooled = {lvl: quantiles(ev[(ev.level == lvl) & ev.guarded].reduction_pct) for lvl in measured}
    absolute = {lvl: float(ev[ev.level == lvl].absolute_reduction_per_kib.median()) for lvl in measured}
    both = {}
    configs_n = int(ev.groupby(["msg_size", "threads"]).ngroups)
    if len(measured) == 2:
        usable = [lvl for lvl in measured if pooled[lvl]["n"]]
        best = max(usable or measured, key=lambda lvl: pooled[lvl]["median"] if pooled[lvl]["n"] else -1e300)
        other = [lvl for lvl in measured if lvl != best][0]
        # the sign test counts independent units: the configurations (every strategy there shares
        # one two_copy run), each the median over strategies of best's minus other's reduction
        wide = ev[ev.guarded].pivot_table(index=["implementation", "msg_size", "threads"], columns="level",
                                          values="reduction_pct").dropna()
        if len(wide) and best in wide and other in wide:
            diff = (wide[best] - wide[other]).groupby(level=["msg_size", "threads"]).median()
        else:
            diff = pd.Series(dtype=float)
        k_more, k_less = int((diff > 0).sum()), int((diff < 0).sum())
        both = dict(largest_level=best, other_level=other, pairs=int(len(diff)), best_larger_in=k_more,
                    sign_test_p=sign_test(k_more, k_less))
    else:
        best = measured[0]
        both = dict(largest_level=None, only_level=best)
    abs_best = max(measured, key=lambda lvl: absolute[lvl])
    at_best = ev[ev.level == best]
    n_sig = int(((at_best.reduction_pct > 0) & (at_best.significant == True)).sum())  # noqa: E712
    cyc = {i: _reduction(r, i, "cycles_per_byte") for i in savers}
    copies = {i: cost_of(r, i, "copies_per_byte") for i in ["two_copy"] + savers}
    reasons = []
    src = "import" if r.imported else "perf"
    if len(measured) == 2:
        reasons.append(Reason(R_LEVEL, 5.0, {"level": best, "median_pct": pooled[best]["median"], "other": other,
                                             "other_median_pct": pooled[other]["median"]}, src))
        if abs_best != best:
            reasons.append(Reason(R_ABSOLUTE, 4.5, {"level": abs_best, "per_kib": absolute[abs_best],
                                                    "other": best, "other_per_kib": absolute[best]}, src))
        reasons.append(Reason(R_CONSISTENCY, 3.0, {"configurations": both["pairs"], "larger_in": both["best_larger_in"],
                                                   "p": both["sign_test_p"], "level": best, "other": other}, src))
    else:
        reasons.append(Reason(R_ONE_LEVEL, 5.0, {"level": best, "median_pct": pooled[best]["median"],
                                                 "per_kib": absolute[best]}, src))
    for lvl in measured:
        if excluded[lvl] or base_per_kib[lvl] < TINY_PER_KIB:
            reasons.append(Reason(R_TINY, 4.0, {"level": lvl, "excluded": excluded[lvl], "floor": TINY_PER_KIB,
                                                "baseline_per_kib": base_per_kib[lvl],
                                                "pairs": int((ev.level == lvl).sum())}, src))
    if any(v == v for v in cyc.values()):
        reasons.append(Reason(R_CYCLES, 2.0, {"reduction_pct": cyc}, src))
    if all(v == v for v in copies.values()):
        reasons.append(Reason(R_COPIES, 1.5, {"copies_per_byte": copies}, "trace"))
    # netobs's own two_copy makes a user-space copy of every byte (its code); never said of an import,
    # and only where the data agrees (fewer misses and fewer cycles per byte for the savers)
    agree = (not r.imported and abs_best == best and pooled[best]["median"] > 0 and absolute[best] > 0
             and all(v == v and v > 0 for v in cyc.values()))
    if agree:
        reasons.append(Reason(R_CONSTRUCTION, 1.0, {"level": best}, "worker"))
    return Reductions(
        code=BOTH_LEVELS if len(measured) == 2 else ONE_LEVEL, evidence=ev, **common, **both,
        by_strategy=per, configurations_by_strategy=configs, pooled=pooled, tested=tested,
        significant_reductions_at_best=n_sig if tested else None, pairs_at_best=int(len(at_best)),
        cycles_per_byte_reduction_pct=cyc, copies_per_byte=copies, absolute=absolute,
        largest_absolute_level=abs_best, baseline_per_kib=base_per_kib, excluded_tiny=excluded,
        configurations=configs_n, imported=r.imported, reasons=ranked(reasons))


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


def _level(f, lvl: str) -> str:
    """A level named as the data names its counter: the study's column for an import."""
    from netobs.figures import EVENT_BY_COLUMN
    raw = LEVELS[lvl][1]
    return f"{lvl} ({raw if getattr(f, 'imported', False) else EVENT_BY_COLUMN[raw]})"


def _chg(reduction) -> str:
    """A reduction shown as a change (one sign convention: negative = fewer misses)."""
    return pct(-reduction)


def _without_counters(f: WithoutCounters) -> tuple[str, list[str]]:
    missing = " and ".join(f.levels_missing) + " not counted; see the caveats"
    reasons = []
    for x in f.reasons:
        if x.code == R_PROXY:
            p = x.numbers["copy_cpu_s_per_gb"]
            reasons.append("Proxy, not a miss count: CPU-s per GB the client's profile put in copies (user_copy, "
                           "kernel_copy and deferred_copy classes), mean over configurations: " + ", ".join(f"{i} {num(v)}" for i, v in p.items()
                                                                                if _finite(v)) + " [profile].")
        elif x.code == R_INSTEAD:
            parts = [f"{INSTEAD_WORDS[m]}: " + ", ".join(f"{i} {pct(-v)}" for i, v in red.items() if _finite(v))
                     for m, red in x.numbers["reduction_pct"].items() if any(_finite(v) for v in red.values())]
            reasons.append("Change vs two_copy of what was measured instead (means over configurations): "
                           + "; ".join(parts)
                           + f" [{x.source}].")
    if f.copy_cpu_s_per_gb:
        p = f.copy_cpu_s_per_gb
        best = min((i for i in p if i != "two_copy" and _finite(p[i])), key=lambda i: p[i], default=None)
        head = ("No cache-miss counts were measured (see the caveats); as a proxy, copy CPU per GB (profile) is "
                f"{num(p['two_copy'])} s for two_copy"
                + (f" and {num(p[best])} s for {best}." if best else "."))
    else:
        head = (f"No cache-miss counts were measured ({missing}), so which cache level gains most cannot be "
                "answered here; missing counts are not zeros.")
    if not reasons:
        reasons.append("Neither CPU time per GB, traced copies nor a profile were recorded either, so no substitute "
                       "evidence exists; hardware counters (or `netobs sweep --profile`) would decide.")
    return head, reasons


def _headline(f: Reductions) -> str:
    if f.code != BOTH_LEVELS:
        lvl = f.only_level
        return (f"Only {_level(f, lvl)} misses were measured: the savers changed them by a median "
                f"{_chg(f.pooled[lvl]['median'])} per KiB against two_copy; which level gains most cannot be decided.")
    best, other = f.largest_level, f.other_level
    if not (f.pooled[best]["median"] > 0):
        return (f"Neither level has fewer misses per KiB for the copy-avoiding strategies: median change "
                f"{best} {_chg(f.pooled[best]['median'])}, {other} {_chg(f.pooled[other]['median'])} against two_copy.")
    s = (f"The largest relative reduction is at {best}: a median {_chg(f.pooled[best]['median'])} misses per KiB "
         f"against {_chg(f.pooled[other]['median'])} at {other}")
    if f.largest_absolute_level != best:
        s += f", but in absolute misses per KiB {f.largest_absolute_level} fell most"
    return s + "."


def _reduction_reasons(f: Reductions) -> list[str]:
    out = []
    for x in f.reasons:
        d = x.numbers
        if x.code == R_LEVEL:
            per = []
            for impl in f.savers:
                # the medians; their IQR and counts are in --json (a reason's 6 numbers)
                parts = [f"{lvl} {_chg(q['median'])}" for lvl, q in f.by_strategy[impl].items()]
                per.append(f"{impl} " + ", ".join(parts))
            pooled = ", ".join(f"{lvl} {_chg(q['median'])}" for lvl, q in f.pooled.items())
            out.append("Median over configurations of the per-configuration change in misses per KiB against "
                       "two_copy: " + "; ".join(per) + f"; pooled over the savers: {pooled} [{x.source}].")
        elif x.code == R_ONE_LEVEL:
            other = [lvl for lvl in LEVELS if lvl != d["level"]][0]
            out.append(f"{other} was not measured ({f.levels_missing.get(other)}); {d['level']} alone changed by a "
                       f"median {_chg(d['median_pct'])}, {num(-d['per_kib'])} misses per KiB in absolute terms "
                       f"[{x.source}].")
        elif x.code == R_ABSOLUTE:
            out.append(f"Relative and absolute disagree: in misses per KiB the median absolute change is "
                       f"{num(-d['per_kib'])} at {d['level']} against {num(-d['other_per_kib'])} at {d['other']}, so "
                       f"the larger saving of misses is at {d['level']} although {d['other']}'s relative change is "
                       f"larger [{x.source}].")
        elif x.code == R_TINY:
            out.append(f"{d['level']}'s two_copy baseline is a median {num(d['baseline_per_kib'])} misses per KiB; "
                       f"{d['excluded']} of {d['pairs']} ratios over a baseline below {num(d['floor'])} per KiB (or 5% "
                       "of the median) are left out of its median change, which would otherwise be dominated by "
                       f"near-zero denominators [{x.source}].")
        elif x.code == R_CONSISTENCY:
            # with one run per point the run-wide caveat says no significance can be claimed: no p-value
            single = any(c.code == "single_repeat" for c in f.caveats)
            test = "" if single else f"; sign test {p_value(d['p'])}"
            out.append(f"{d['level']}'s reduction exceeded {d['other']}'s in {d['larger_in']} of {d['configurations']} "
                       f"configurations (each the median over strategies, which share one two_copy run{test}) "
                       f"[{x.source}].")
        elif x.code == R_CYCLES:
            out.append("Cycles per byte against two_copy: " + ", ".join(
                f"{i} {_chg(v)}" for i, v in d["reduction_pct"].items() if _finite(v))
                + f" (means over configurations) [{x.source}].")
        elif x.code == R_COPIES:
            out.append("Copies per byte (traced and from completion codes): "
                       + ", ".join(f"{i} {num(v)}" for i, v in d["copies_per_byte"].items()) + " [trace].")
        elif x.code == R_CONSTRUCTION:
            out.append(f"Consistent with the copy the others avoid: netobs's two_copy serialises every byte into a "
                       f"second buffer in user space (its code), and with fewer cycles per byte the saving shows most "
                       f"at {d['level']} [worker].")
    if f.tested:
        out.append(f"Per configuration (repeats, Welch p<{f.parameters.alpha}), the {f.largest_level or f.only_level} "
                   f"reduction is significant in {f.significant_reductions_at_best} of {f.pairs_at_best} strategy x "
                   "configuration pairs [perf].")
    return out


def render(f: Facts) -> Prose:
    if isinstance(f, Unanswerable):
        return prose.unanswerable(f, UNANSWERABLE[f.code](f))
    if isinstance(f, WithoutCounters):
        head, reasons = _without_counters(f)
        return prose.answer(f, head, reasons, f.evidence, key=list(f.evidence.columns), chart_note=NO_CHART_NOTE)
    key = ["implementation", "level", "msg_size", "threads", "two_copy_per_kib", "strategy_per_kib",
           "reduction_pct", "absolute_reduction_per_kib", "p_value"]
    return prose.answer(f, _headline(f), _reduction_reasons(f), f.evidence, key=key)
