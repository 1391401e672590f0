"""threads: how does thread count interact with cache contention?

From the fewest to the most threads measured, per strategy x size series: how throughput and
the per-byte contention figures changed, where throughput peaked, whether the change is
significant, and whether the host was oversubscribed."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from netobs.fmt import num, times

from netobs.fmt import share

from .. import accounting as acc
from .. import hypotheses as hyp
from ..answer import Prose
from ..labels import short
from ..load import KEY, Results
from ..stats import compare, guarded_ratios, quantiles
from . import accounted, prose
from .common import (PARAMETERS, Facts, Reason, by_strategy, caveats, chart_rows, config_medians, oversubscription,
                     oversubscription_caveat, parameters_of)

NAME = "threads"
TITLE = "How does thread count interact with cache contention?"
METRICS = ("throughput_gbps", "l1_misses_per_kib", "llc_misses_per_kib", "cs_per_mib", "cpu_s_per_gb", "offcpu_share")
# a ratio over a baseline below its floor (or below 5% of the series' median: stats.guarded_ratios) says
# nothing and is left out of the median of ratios, counted: an off-CPU share of 1% that becomes 19%
# is not a x19 change of anything the threads did
TINY_BASELINE = {"offcpu_share": 0.05}
CONTENTION = ("l1_misses_per_kib", "llc_misses_per_kib", "cs_per_mib")
CACHE_LEVELS = {"llc_misses_per_kib": "LLC", "l1_misses_per_kib": "L1"}   # in the verdict's order
# verdict codes
ONE_THREAD_COUNT, SCALED = "one_thread_count", "scaled"
HYPOTHESES = hyp.MECHANISM_NAMES + ("oversubscription", "sndbuf_full", "lock_contention", "waiting_for_data",
                                    "cache_working_set", "memory_pressure", "retransmissions", "link_packets")
# the working-thread shares the waits reason shows (analysis.accounting.thread_share), per side
THREAD_SHARES = (("client", "utilisation"), ("client", "preempted"), ("client", "sndbuf_full"),
                 ("server", "utilisation"), ("server", "preempted"), ("server", "wait_data"))


@dataclass(kw_only=True)
class ThreadsFacts(Facts):
    thread_counts: list[int]
    host_cores: int | None
    oversubscribed_threads: list[int]
    imported: bool
    metrics: list[str]                         # the figures measured, in the verdict's order

    def fields(self) -> dict:
        return {"thread_counts": self.thread_counts, "host_cores": self.host_cores,
                "oversubscribed_threads": self.oversubscribed_threads, "metrics": self.metrics,
                "imported": self.imported}


@dataclass(kw_only=True)
class ThreadsChange(ThreadsFacts):
    series: int                                # strategy x size series with both thread counts
    ratio_max_over_min_threads: dict[str, dict]  # figure -> quantiles of (most / fewest threads), rose, fell
    peak_threads: dict[int, int]               # thread count -> series whose throughput peaked there
    series_compared: int
    throughput_change_significant: int | None  # None: untested (one repeat)
    cs_per_mib_median: dict[str, float] | None = None   # oversubscribed or not
    waits: dict | None = None      # profile: (side, share) -> {fewest, most} of the working threads' time
    accounting: dict | None = None  # the most threads against the fewest: CPU-s/GB gap per side (accounted)
    bottlenecks: dict | None = None  # thread count -> verdict -> configurations (accounting.bottleneck_frame)
    accounting_scope: tuple | None = None   # (name, hypotheses.Scope) accounted: the differential profiles' too
    plateau: dict | None = None    # a refined directory: where throughput stops rising (netobs.refine.plateau.answered)

    def fields(self) -> dict:
        out = {**super().fields(), "series": self.series, "ratio_max_over_min_threads": self.ratio_max_over_min_threads,
               "peak_threads": self.peak_threads, "throughput_change_significant": self.throughput_change_significant}
        if self.cs_per_mib_median is not None:
            out["cs_per_mib_median"] = self.cs_per_mib_median
        out["series_compared"] = self.series_compared
        out["waits"] = self.waits
        out["accounting"] = self.accounting
        out["bottlenecks"] = self.bottlenecks
        if self.plateau is not None:
            out["plateau"] = self.plateau
        return out


def compute(r: Results) -> Facts:
    tcounts = sorted(int(t) for t in r.runs.threads.unique())
    metrics = [m for m in METRICS if r.measured(m)]
    cores, over = oversubscription(r)
    ev = None
    for m in metrics:
        med = config_medians(r, m).rename(m).reset_index()
        ev = med if ev is None else ev.merge(med, on=KEY, how="outer")
    ev["busy_threads"] = 2 * ev["threads"]
    ev["oversubscribed"] = None if cores is None else (ev["busy_threads"] > cores)
    ev = by_strategy(ev)
    cav = caveats(r, ["l1_cache_misses", "llc_cache_misses", "context_switches"], oversub=False)
    oc = oversubscription_caveat(r)
    common = dict(evidence=ev, caveats=cav + ([oc] if oc else []), chart_data=chart_rows(r, metrics + ["latency_us"]),
                  thread_counts=tcounts, host_cores=cores, oversubscribed_threads=over, imported=r.imported,
                  metrics=metrics)
    if len(tcounts) < 2:
        return ThreadsFacts(code=ONE_THREAD_COUNT, **common)
    tmin, tmax = tcounts[0], tcounts[-1]
    pairs_of = {m: [] for m in metrics}
    peaks, sig = {}, []
    tput = {k: v.to_numpy() for k, v in r.runs.groupby(KEY)["throughput_gbps"]}   # each configuration's repeats, once
    none = np.array([], dtype=float)
    alpha = parameters_of(r).alpha   # a refined directory's: the rule's alpha per look
    for (impl, size), g in ev.groupby(["implementation", "msg_size"]):
        g = g.set_index("threads")
        if tmin not in g.index or tmax not in g.index:
            continue
        for m in metrics:
            a, b = g.at[tmin, m], g.at[tmax, m]
            if a == a and b == b and a > 0:
                pairs_of[m].append((a, b))
        if g["throughput_gbps"].notna().any():
            t = int(g["throughput_gbps"].idxmax())
            peaks[t] = peaks.get(t, 0) + 1
        sig.append(compare(tput.get((impl, size, tmin), none), tput.get((impl, size, tmax), none), alpha).significant)
    ratios, left_out = {}, {}
    for m, ab in pairs_of.items():
        keep = guarded_ratios([a for a, _ in ab], TINY_BASELINE.get(m, 0.0)) if ab else []
        ratios[m] = [b / a for (a, b), k in zip(ab, keep) if k]
        left_out[m] = len(ab) - len(ratios[m])
    effect = PARAMETERS.min_effect
    change = {m: {**quantiles(v), "tiny_baselines_left_out": left_out[m], "rose": int(sum(x > 1 + effect for x in v)),
                  "fell": int(sum(x < 1 - effect for x in v))} for m, v in ratios.items()}
    cs_median = None
    if over and "cs_per_mib" in ev:
        below, above = ev[~ev.threads.isin(over)], ev[ev.threads.isin(over)]
        if below["cs_per_mib"].notna().any() and above["cs_per_mib"].notna().any():
            cs_median = {"not_oversubscribed": below["cs_per_mib"].median(),
                         "oversubscribed": above["cs_per_mib"].median()}
    keys = sorted(map(tuple, r.runs[KEY].drop_duplicates().itertuples(index=False)))
    pairs = [(k, (k[0], k[1], tmin)) for k in keys if k[2] == tmax and (k[0], k[1], tmin) in keys]
    hi, lo = tuple(a for a, _ in pairs), tuple(b for _, b in pairs)
    scope = hyp.Scope(hi, lo, "step")
    judged = hyp.judge(r, scope, HYPOTHESES)
    accounting = accounted.accounting_facts(r, scope) if pairs else None
    waits = None
    if pairs and any(acc.thread_share(r.runs, side, what).notna().any() for side, what in THREAD_SHARES):
        waits = {f"{side}_{what}": {"fewest": acc._mean_of(r, acc.thread_share(r.runs, side, what), lo),
                                    "most": acc._mean_of(r, acc.thread_share(r.runs, side, what), hi)}
                 for side, what in THREAD_SHARES}
        waits = {k: v for k, v in waits.items() if v["fewest"] == v["fewest"] and v["most"] == v["most"]}
    bn = acc.bottleneck_frame(r)
    bottlenecks = None
    if bn is not None and bn["bottleneck"].notna().any():
        bottlenecks = {int(t): {k: int(n) for k, n in g["bottleneck"].value_counts().items()}
                       for t, g in bn.groupby("threads")}
        ev = ev.merge(bn[KEY + ["bottleneck"]], on=KEY, how="left")
        # measured where profiled (the preempted share), assumed from the cores only elsewhere
        ev["oversubscribed"] = [b == "oversubscribed" if isinstance(b, str) else o
                                for b, o in zip(ev["bottleneck"], ev["oversubscribed"])]
        common["evidence"] = ev
    reasons = [Reason("change", 5.0, {"tmin": tmin, "tmax": tmax}, "worker"),
               Reason("contention", 4.0, {}, "perf"), Reason("peaks", 3.0, {}, "worker"),
               Reason("significance", 2.0, {}, "worker")]
    if not bottlenecks:   # measured where profiled (the bottleneck reason), else assumed from the cores
        reasons.append(Reason("oversubscription", 3.5, {"cores": cores}, "manifest"))
    if waits:
        reasons.append(Reason("waits", 3.8, {}, "profile"))
    if accounting:
        reasons.append(Reason("accounting", 4.5, {}, "profile"))
        if accounted.where_words(accounting):
            reasons.append(Reason("where", 4.4, {}, "profile"))
    if bottlenecks:
        reasons.append(Reason("bottlenecks", 4.2, {}, "profile"))
    from netobs.refine.plateau import answered
    plateau = answered(r.runs, r.manifest)
    if plateau:
        reasons.append(Reason("plateau", 4.9, {}, "worker"))
    reasons.sort(key=lambda x: -x.weight)
    return ThreadsChange(
        code=SCALED, **common, series=len(ratios["throughput_gbps"]), ratio_max_over_min_threads=change,
        peak_threads=peaks, series_compared=len(sig),
        throughput_change_significant=None if all(s is None for s in sig) else int(sum(1 for s in sig if s)),
        cs_per_mib_median=cs_median, waits=waits, accounting=accounting, bottlenecks=bottlenecks,
        accounting_scope=(f"threads-{tmax}-vs-{tmin}", scope) if accounting else None,
        reasons=reasons, hypotheses=judged, plateau=plateau)


# --------------------------------------------------------------------------- prose
MAX_FIGURES = 4   # figures the change reason names


def _change(f: ThreadsChange) -> list[str]:
    tmin, tmax = f.thread_counts[0], f.thread_counts[-1]
    change, p = f.ratio_max_over_min_threads, f.parameters
    # at most 4 figures (a reason's 6 numbers with the two thread counts); the range and the rest in --json
    # (the trace's off-CPU share counts every thread of the worker: where the profile measured the
    # working threads' own time, the waits reason gives that, and the trace's is left to --json)
    shown = [m for m in f.metrics if change[m]["n"] and not (m == "offcpu_share" and f.waits)]
    parts = [f"{short(m)} {times(change[m]['median'])}" for m in shown][:MAX_FIGURES]
    out = [f"From {tmin} to {tmax} threads (median over strategy x size series): " + ", ".join(parts) + "."]
    contention = [m for m in CONTENTION if m in f.metrics and change[m]["n"]]
    if contention:
        # the two figures that moved in the most series (5 numbers); every count is in --json
        moved = sorted((m for m in f.metrics if m in contention),
                       key=lambda m: -max(change[m]["rose"], change[m]["fell"]))[:2]
        s = f"Per byte moved (changes over {p.min_effect:.0%}), " + "; ".join(
            f"{short(m)} {'rose' if change[m]['rose'] >= change[m]['fell'] else 'fell'} in "
            f"{max(change[m]['rose'], change[m]['fell'])} of {change[m]['n']} series" for m in moved)
        levels = [m for m in CACHE_LEVELS if m in contention]
        if levels:
            rising = [m for m in levels if change[m]["rose"] > change[m]["n"] / 2]
            s += (": more threads meant more cache misses per byte (contention) at "
                  + prose.join([CACHE_LEVELS[m] for m in rising])) if rising else \
                ": more threads did not raise cache misses per byte in most series"
        out.append(s + ".")
    else:
        out.append("No cache-miss or context-switch counts were measured, so contention can only be judged "
                   "from throughput" + (" and CPU time" if "cpu_s_per_gb" in f.metrics else "") + ".")
    peaks = ", ".join(f"{prose.threads([t])} in {n}" for t, n in sorted(f.peak_threads.items()))
    out.append(f"Throughput peaked at {peaks} of {f.series} series.")
    if f.throughput_change_significant is None:
        out.append(f"With one run per point, the change from {tmin} to {tmax} threads is untested.")
    else:
        out.append(f"The throughput change from {tmin} to {tmax} threads is significant (Welch p<{p.alpha}) in "
                   f"{f.throughput_change_significant} of {f.series_compared} series.")
    return out


STEP_WORDS = {"ahead": "rose", "behind": "fell", "same": "the same", "open": "open"}


def _step(e: dict) -> str:
    return f"{e['lo']} -> {e['hi']} {STEP_WORDS.get(e['state'], e['state'])} {e['change']:+.0%} (n={e['n']})"


def _plateau(f: ThreadsChange) -> str:
    """Where throughput stops rising, per series, with the steps that say so (the refinement's
    rule: each step a look at its alpha per look)."""
    p = f.plateau
    parts = []
    for d in p["series"]:
        name = f"{d['impl']} at {prose.sizes([d['msg_size']])}"
        rise = next((e for e in d["evidence"] if e["lo"] == d["lo"] and e["hi"] == d["hi"]), None)
        after = d.get("after")
        undecided = f"no rise decided (open at the rule's {p['max_repeats']} repeats)"
        if d["status"] == "not_rising":
            first = d["evidence"][0]["state"]
            where = (f"falls from {prose.threads([d['lo']])}" if first == "behind" else
                     f"from {prose.threads([d['lo']])}: {undecided}" if first == "open" else
                     f"no rise from {prose.threads([d['lo']])}")
        elif d["status"] == "open":
            where = "not yet decided"
        elif after is None:
            where = f"still rising at {prose.threads([d['hi']])}, the most measured"
        elif after["state"] == "open":
            where = f"rises to {prose.threads([d['hi']])}, beyond: {undecided}"
        elif d["hi"] - d["lo"] == 1:
            where = f"stops rising at {prose.threads([d['hi']])}"
        else:
            where = f"stops rising between {d['lo']} and {d['hi']} threads"
        shown = [e for e in (rise, after) if e] if d["status"] != "not_rising" else d["evidence"][:1]
        if d["status"] == "open":
            shown = [e for e in d["evidence"] if e["lo"] == d["lo"] and e["hi"] == d["hi"]]
        parts.append(f"{name} {where}" + (f" ({', '.join(_step(e) for e in shown)})" if shown else ""))
    return (f"Where throughput stops rising (the refinement's steps, each tested at alpha {p['alpha_per_look']:.3g} "
            "per look): " + "; ".join(parts) + ".")


def _oversubscription(f: ThreadsChange) -> str:
    cores, over = f.host_cores, f.oversubscribed_threads
    if cores is None:
        return ("The host's core count is unknown" + (" (imported results)" if f.imported else "")
                + ", so oversubscription cannot be judged.")
    if over:
        s = (f"Oversubscription: each connection has a client and a server thread, so {prose.threads(over)} means "
             f"{prose.join([2 * t for t in over])} threads, assumed busy, on {cores} cores")
        if f.cs_per_mib_median is not None:
            s += (f"; context switches per MiB there were {num(f.cs_per_mib_median['oversubscribed'])} against "
                  f"{num(f.cs_per_mib_median['not_oversubscribed'])} below")
        return s + "; those points say more about scheduling than about caches."
    return (f"No tested thread count oversubscribes the host's {cores} cores (at most {2 * f.thread_counts[-1]} threads, "
            "assumed busy).")


WAIT_WORDS = {"utilisation": "on-CPU", "preempted": "preempted", "sndbuf_full": "in sndbuf_full",
              "wait_data": "in wait_data"}


def _waits(f: ThreadsChange) -> str:
    tmin, tmax = f.thread_counts[0], f.thread_counts[-1]
    # the two shares that moved most (a reason's 6 numbers); every share is in --json
    shown = sorted((kv for kv in f.waits.items() if max(kv[1]["fewest"], kv[1]["most"]) >= 0.01),
                   key=lambda kv: -abs(kv[1]["most"] - kv[1]["fewest"]))[:2]
    parts = [f"{k.split('_', 1)[0]} {WAIT_WORDS[k.split('_', 1)[1]]} {share(v['fewest'])} -> {share(v['most'])}"
             for k, v in shown]
    return (f"The working threads' time from {tmin} to {tmax} threads (harness threads left out): "
            + ", ".join(parts) + " [profile].")


def _bottlenecks(f: ThreadsChange) -> str:
    words = {"oversubscribed": "oversubscribed", "client_cpu_bound": "client CPU-bound",
             "server_cpu_bound": "server CPU-bound", "waiting": "both waiting"}
    parts = []
    for t in (f.thread_counts[0], f.thread_counts[-1]):
        got = f.bottlenecks.get(t) or {}
        parts.append(f"at {prose.threads([t])} " + ", ".join(f"{words[k]} {n}" for k, n in got.items()))
    # the verdicts first: a reason cut to its numbers (prose.fit) loses the thresholds, never a count
    return ("Bottleneck per configuration, measured: " + "; ".join(parts) + ". Oversubscribed: preempted "
            f"{acc.PREEMPTED:.0%} or more of the time; CPU-bound: on the CPU {acc.CPU_BOUND:.0%} or more [profile].")


def _headline(f: ThreadsChange) -> str:
    tmin, tmax = f.thread_counts[0], f.thread_counts[-1]
    tp = f.ratio_max_over_min_threads["throughput_gbps"]
    s = f"From {tmin} to {tmax} threads throughput changed {times(tp['median'])} (median of {f.series} series)"
    if f.accounting:
        return accounted.headline_gap(s + "; ", f.accounting, f"{tmax} threads", f"{tmin}")
    causes = [n.split(" (")[0] for n in prose.named(f.hypotheses)]
    return s + (f"; supported: {prose.join(causes)}." if causes else "; no measured contention cause supported.")


def render(f: Facts) -> Prose:
    if f.code == ONE_THREAD_COUNT:
        verdict = (f"Only one thread count ({f.thread_counts[0]}) was measured, so how results change with threads "
                   "cannot be answered.")
        return prose.answer(f, verdict, [], f.evidence)
    key = ["implementation", "msg_size", "threads"] + f.metrics[:4] + ["oversubscribed"] + (
        ["bottleneck"] if f.bottlenecks else [])
    change = _change(f)
    words = {"change": change[0], "contention": change[1], "peaks": change[2], "significance": change[3],
             "oversubscription": _oversubscription(f)}
    if f.accounting:
        words["accounting"] = accounted.reason_words(f.accounting, f"{f.thread_counts[-1]} threads",
                                                     f"{f.thread_counts[0]}")[:-len(" [profile].")]
        words["where"] = (accounted.where_words(f.accounting) or "")[:-len(" [profile].")]
    if f.bottlenecks:
        words["bottlenecks"] = _bottlenecks(f)[:-len(" [profile].")]
    if f.plateau:
        words["plateau"] = _plateau(f)
    reasons = [_waits(f) if x.code == "waits" else f"{words[x.code]} [{x.source}]" for x in f.reasons]
    return prose.answer(f, _headline(f), reasons, f.evidence, key=key)
