"""The study's six questions, each answered from a loaded results directory.

Every function takes `Results` and returns an `Answer` whose verdict is assembled from the
numbers it computed (nothing is said that the data did not produce), with the evidence table
behind it, caveats, chart data (runs-like rows) and machine-readable facts.

Conventions (also in each answer's facts["method"]):
- a configuration is (implementation, msg_size, threads); its value is the median over repeats;
- strategies are compared on per-byte figures only (see load.DERIVED), never on raw counts;
- "won"/"lost": the median differs and, with >= 2 repeats on both sides, Welch p < 0.05
  (otherwise "no significant difference"); with one repeat the sign decides and the
  comparison is marked untested;
- change_pct = (median_strategy / median_reference - 1) * 100; reduction_pct = -change_pct.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import pandas as pd

from netobs.errors import UsageError

from .answer import Answer
from .load import DERIVED, KEY, Results
from .stats import ALPHA, HIGH_CV, METHODS, compare, quantiles, sign_test, summarize_groups

MIN_EFFECT = 0.05      # a trend break must change the value by at least 5% ...
MIN_SCORE = 3.0        # ... and by at least 3x the run-to-run noise of the difference
NOISE_FLOOR = 0.01     # the noise of a configuration is never taken below 1% of its median
SINGLE_RUN_NOISE = 0.05  # assumed relative noise when no configuration has repeats
BREAK_EVEN_NOTE = "the kernel's MSG_ZEROCOPY documentation puts the break-even near 10 KB writes on a real NIC"


# --------------------------------------------------------------------------- formatting
def _num(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    x = float(x)
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def _pct(x) -> str:
    return "n/a" if x is None or x != x else f"{x:+.1f}%"


def _times(x) -> str:
    return "n/a" if x is None or x != x else f"x{x:.2f}"


def _p(p) -> str:
    if p is None or p != p:
        return "n/a"
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def _join(items: list[str]) -> str:
    items = [str(i) for i in items]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _sizes(sizes) -> str:
    return _join([f"{int(s)} B" for s in sizes])


def _threads(ts) -> str:
    ts = [int(t) for t in ts]
    return f"{_join(ts)} thread{'s' if len(ts) > 1 or ts[0] != 1 else ''}"


def _clean(obj):
    """JSON-safe: numpy scalars -> Python, NaN -> None, tuple keys -> strings."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if math.isnan(float(obj)) else float(obj)
    return obj


RAW_LABELS = {
    "throughput_gbps": "throughput", "latency_us": "mean per-send latency",
    "cpu_cycles": "CPU cycles (cpu-cycles)", "l1_cache_misses": "L1 cache misses (L1-dcache-load-misses)",
    "llc_cache_misses": "LLC misses (LLC-load-misses)", "context_switches": "context switches",
    "cpu_user_s": "client CPU time", "zc_copied": "copied zero-copy completions (SO_EE_CODE_ZEROCOPY_COPIED)",
    "trace_client_errqueue_reads": "traced error-queue reads",
    "trace_client_send_syscall_ns": "traced send-syscall time",
    "trace_client_zc_deferred_copies": "traced deferred zero-copy copies (skb_copy_ubufs)",
}


def _label(metric: str) -> str:
    if metric in DERIVED:
        return DERIVED[metric][0]
    return RAW_LABELS.get(metric, metric.replace("_", " "))


# --------------------------------------------------------------------------- shared pieces
def _config_medians(r: Results, metric: str) -> pd.Series:
    """Per configuration (impl, size, threads): the median over repeats."""
    return r.runs.groupby(KEY, sort=True)[metric].median()


def _vs(r: Results, metric: str, impl: str, base: str) -> pd.DataFrame:
    """impl vs base per (msg_size, threads) present for both: medians, change, Welch p."""
    runs = r.runs
    a_all, b_all = runs[runs.implementation == base], runs[runs.implementation == impl]
    rows = []
    for (size, t), b in b_all.groupby(["msg_size", "threads"]):
        a = a_all[(a_all.msg_size == size) & (a_all.threads == t)]
        if a[metric].notna().sum() == 0 or b[metric].notna().sum() == 0:
            continue
        c = compare(a[metric], b[metric])
        rows.append({"msg_size": int(size), "threads": int(t), "n_ref": c.n_a, "n": c.n_b,
                     "ref": c.median_a, "value": c.median_b, "change_pct": c.change_pct,
                     "p_value": c.p_value, "significant": c.significant})
    cols = ["msg_size", "threads", "n_ref", "n", "ref", "value", "change_pct", "p_value", "significant"]
    return pd.DataFrame(rows, columns=cols).sort_values(["msg_size", "threads"]).reset_index(drop=True)


def _outcome(change, significant) -> str:
    if change is None or change != change:
        return "n/a"
    if significant is None or significant != significant:  # untested (one repeat)
        return "won" if change > 0 else "lost" if change < 0 else "tie"
    if significant:
        return "won" if change > 0 else "lost"
    return "no significant difference"


def _untested(df: pd.DataFrame) -> bool:
    return bool(len(df)) and df["significant"].map(lambda v: v is None or v != v).any()


def _oversubscription(r: Results) -> tuple[int | None, list[int]]:
    cores = r.host_cores
    threads = sorted(r.runs["threads"].unique())
    if cores is None:
        return None, []
    return cores, [int(t) for t in threads if 2 * t > cores]


def _oversub_caveat(r: Results) -> str | None:
    cores, over = _oversubscription(r)
    if cores is None:
        return ("The host's core count is unknown (" + ("imported results" if r.imported else "not in the manifest")
                + "), so oversubscription (client + server threads above the cores) cannot be judged.")
    if over:
        return (f"Oversubscribed: at {_threads(over)} the client's threads plus the server's receiving threads "
                f"({_join([2 * t for t in over])} busy threads) exceed the host's {cores} cores; those points say "
                "more about scheduling than about caches.")
    return None


def _caveats(r: Results, columns=(), oversub: bool = True, zc_columns=()) -> list[str]:
    out = []
    n_max, n_min = r.max_repeats(), r.min_repeats()
    if n_max < 2:
        out.append(f"Each configuration was measured once ({len(r.runs)} runs): no confidence interval and no "
                   "significance can be claimed; a difference smaller than run-to-run noise would look the same.")
    elif n_min < 2:
        out.append(f"Some configurations have a single repeat (repeats per configuration range {n_min}-{n_max}): "
                   "no significance is claimed for them.")
    for col, impl in [(c, None) for c in columns] + [(c, "zero_copy") for c in zc_columns]:
        reason = r.missing_reason(col, impl)
        if reason:
            out.append(f"{_label(col)}{' (zero_copy)' if impl else ''} not measured: {reason}.")
    if len(r.failed):
        shown = [f"{f.implementation}/{int(f.msg_size)} B/{int(f.threads)}t r{int(f.repeat)}: {f.error}"
                 for f in r.failed.head(4).itertuples()]
        more = f" (+{len(r.failed) - 4} more)" if len(r.failed) > 4 else ""
        out.append(f"{len(r.failed)} point(s) failed and are left out: " + "; ".join(shown) + more + ".")
    if r.imported:
        dur = r.runs["window_s"].dropna().unique()
        out.append("Imported from a CSV in the study's format: bytes are derived from throughput x duration ("
                   + (f"{_num(dur[0])} s" if len(dur) == 1 else "per row") + "); no traces, CPU times, zero-copy "
                   "completion codes or host facts exist for these results.")
    cv = summarize_groups(r.runs, KEY, "throughput_gbps")
    high = cv[cv["high_cv"]]
    if len(high):
        worst = high.sort_values("cv", ascending=False).iloc[0]
        out.append(f"{len(high)} configuration(s) vary by more than {HIGH_CV:.0%} between repeats (worst: "
                   f"{worst.implementation}/{int(worst.msg_size)} B/{int(worst.threads)}t, CV {worst.cv:.0%}).")
    pct_cols = [c for c in r.runs.columns if c.startswith("perf_") and c.endswith("_running_pct")]
    for c in pct_cols:
        low = r.runs[c].dropna()
        low = low[low < 99.5]
        if len(low):
            out.append(f"perf multiplexed {c[5:-12]} in {len(low)} run(s) (counted {low.min():.0f}% of the time "
                       "at worst); those counts are scaled estimates.")
    lost = r.runs["trace_lost_events"].dropna()
    if (lost > 0).any():
        out.append(f"The tracer lost events in {int((lost > 0).sum())} run(s) (up to {int(lost.max())}); "
                   "traced figures there are lower bounds.")
    if oversub:
        c = _oversub_caveat(r)
        if c:
            out.append(c)
    out.extend(f"Loading: {n}." for n in r.notes)
    return out


def _chart(r: Results, metrics: list[str]) -> pd.DataFrame:
    cols = KEY + ["repeat"] + [m for m in metrics if m in r.runs and m not in KEY]
    return r.runs[cols].copy()


def _empty(question: str, title: str, verdict: str, r: Results, caveats=()) -> Answer:
    return Answer(question=question, title=title, verdict=verdict, evidence=pd.DataFrame(),
                  caveats=list(caveats) + _caveats(r), chart_note=verdict,
                  facts=_clean({"answerable": False, "implementations": r.impls, "method": METHODS}))


def _median_of(r: Results, impl: str, metric: str, where=None) -> float:
    """Median over configurations of the per-configuration medians (optionally of some configs)."""
    med = _config_medians(r, metric)
    if impl not in med.index.get_level_values(0):
        return float("nan")
    m = med.xs(impl, level="implementation")
    if where is not None:
        m = m[m.index.isin(where)]
    return float(m.median()) if m.notna().any() else float("nan")


# --------------------------------------------------------------------------- zerocopy
def zerocopy(r: Results) -> Answer:
    q, title = "zerocopy", "Why does zero-copy not always give the best throughput?"
    if "zero_copy" not in r.impls:
        return _empty(q, title, f"There are no zero_copy points in these results (strategies: {_join(r.impls)}), "
                      "so zero-copy cannot be assessed.", r)
    bases = [b for b in ("two_copy", "one_copy") if b in r.impls]
    if not bases:
        return _empty(q, title, "zero_copy has no two_copy or one_copy points to be compared with.", r)
    ev = None
    summary = {}
    for base in bases:
        c = _vs(r, "throughput_gbps", "zero_copy", base)
        c["outcome"] = [_outcome(ch, s) for ch, s in zip(c.change_pct, c.significant)]
        summary[base] = c
        part = c[["msg_size", "threads", "value", "ref", "change_pct", "p_value", "outcome"]].rename(columns={
            "value": "zero_copy_gbps", "ref": f"{base}_gbps", "change_pct": f"vs_{base}_pct",
            "p_value": f"p_vs_{base}", "outcome": f"outcome_vs_{base}"})
        ev = part if ev is None else ev.merge(part.drop(columns=["zero_copy_gbps"]), on=["msg_size", "threads"],
                                              how="outer")
    mech = {
        "zc_copied_fraction": ["zero_copy"], "zc_deferred_copies_per_send": ["zero_copy"],
        "errqueue_reads_per_send": ["zero_copy"], "zc_notifications_per_msg": ["zero_copy"],
        "cpu_s_per_gb": ["zero_copy"] + bases, "syscall_ns_per_byte": ["zero_copy"] + bases,
        "copies_per_byte": ["zero_copy"] + bases,
    }
    for metric, impls in mech.items():
        med = _config_medians(r, metric)
        for impl in impls:
            name = metric if impls == ["zero_copy"] else f"{impl}_{metric}"
            if impl in med.index.get_level_values(0):
                m = med.xs(impl, level="implementation").rename(name).reset_index()
                ev = ev.merge(m, on=["msg_size", "threads"], how="left")
    ev = ev.dropna(axis=1, how="all").sort_values(["msg_size", "threads"]).reset_index(drop=True)

    sentences, facts = [], {"method": METHODS, "configurations": int(len(ev))}
    main = bases[0]
    c = summary[main]
    won, lost = c[c.outcome == "won"], c[c.outcome == "lost"]
    ns = c[c.outcome == "no significant difference"]
    untested = _untested(c)
    s = (f"Against {main}, zero_copy won in {len(won)} and lost in {len(lost)} of {len(c)} size x thread "
         "configurations")
    if len(ns):
        s += f" ({len(ns)} showed no significant difference)"
    if untested:
        s += "; with one run per point these are untested differences"
    sentences.append(s + ".")
    extreme = []
    if len(lost):
        w = lost.loc[lost.change_pct.idxmin()]
        extreme.append(f"its largest loss was {_pct(w.change_pct)} at {int(w.msg_size)} B x {_threads([w.threads])} "
                       f"({_num(w.value)} vs {_num(w.ref)} Gbps)")
    if len(won):
        b = won.loc[won.change_pct.idxmax()]
        extreme.append(f"its largest win {_pct(b.change_pct)} at {int(b.msg_size)} B x {_threads([b.threads])} "
                       f"({_num(b.value)} vs {_num(b.ref)} Gbps)")
    if extreme:
        sentences.append(extreme[0][0].upper() + "; ".join(extreme)[1:] + ".")
    by_size = c.groupby("msg_size")["change_pct"].median()
    sentences.append(f"Median change vs {main} by message size: "
                     + ", ".join(f"{int(sz)} B {_pct(v)}" for sz, v in by_size.items()) + ".")
    wins_from = next((sz for sz in by_size.index if (by_size.loc[sz:] > 0).all()), None)
    facts["vs"] = {}
    for base, cb in summary.items():
        facts["vs"][base] = {
            "won": int((cb.outcome == "won").sum()), "lost": int((cb.outcome == "lost").sum()),
            "no_significant_difference": int((cb.outcome == "no significant difference").sum()),
            "configurations": int(len(cb)), "tested": not _untested(cb),
            "median_change_pct": float(cb.change_pct.median()) if len(cb) else None,
            "median_change_pct_by_size": {int(k): float(v) for k, v in cb.groupby("msg_size")["change_pct"].median().items()},
            "largest_loss": _row_fact(cb[cb.outcome == "lost"], "min"),
            "largest_win": _row_fact(cb[cb.outcome == "won"], "max"),
        }
    facts["median_wins_from_size"] = None if wins_from is None else int(wins_from)
    if "one_copy" in summary and main != "one_copy":
        co = summary["one_copy"]
        sentences.append(f"Against one_copy it won {int((co.outcome == 'won').sum())} and lost "
                         f"{int((co.outcome == 'lost').sum())} of {len(co)} (median change {_pct(co.change_pct.median())}).")

    # mechanism: only what was measured
    mech_s, mfacts = [], {}
    zc_runs = r.runs[r.runs.implementation == "zero_copy"]
    cf = _median_of(r, "zero_copy", "zc_copied_fraction")
    mfacts["zc_copied_fraction"] = cf
    if cf == cf:
        where = r.topology if r.topology != "unknown" else "this topology"
        if cf >= 0.5:
            mech_s.append(f"The kernel flagged {cf:.0%} of zero-copy completions as copied "
                          f"(SO_EE_CODE_ZEROCOPY_COPIED, median over configurations): with the receiver on the same "
                          f"host ({where}) the pages were copied anyway, so zero-copy paid for pinning and "
                          "completion handling without saving the copy.")
        else:
            mech_s.append(f"Only {cf:.0%} of zero-copy completions were flagged copied "
                          "(SO_EE_CODE_ZEROCOPY_COPIED), so most zero-copy sends did avoid the copy.")
    dc = _median_of(r, "zero_copy", "zc_deferred_copies_per_send")
    mfacts["zc_deferred_copies_per_send"] = dc
    if dc == dc:
        mech_s.append(f"Tracing counted {_num(dc)} deferred copies (skb_copy_ubufs) per zero-copy send.")
    eq = _median_of(r, "zero_copy", "errqueue_reads_per_send")
    nm = _median_of(r, "zero_copy", "zc_notifications_per_msg")
    mfacts["errqueue_reads_per_send"], mfacts["zc_notifications_per_msg"] = eq, nm
    if eq == eq or nm == nm:
        parts = []
        if eq == eq:
            parts.append(f"read the error queue {_num(eq)} times per sendmsg (traced)")
        if nm == nm:
            parts.append(f"received {_num(nm)} completion notifications per message")
        mech_s.append("Completion handling: the client " + " and ".join(parts) + ", work two_copy and one_copy never do.")
    for metric, unit, what in (("cpu_s_per_gb", "s/GB", "Client CPU per GB"),
                               ("cycles_per_byte", "cycles/B", "CPU cycles per byte (perf)"),
                               ("cs_per_mib", "switches/MiB", "Context switches per MiB (perf)"),
                               ("syscall_ns_per_byte", "ns/B", "Time in send syscalls per byte"),
                               ("copies_per_byte", "copies/B", "Copies per byte (user copy by construction, kernel copies traced or, for zero-copy pages copied on delivery, from the completion codes)")):
        zc = _median_of(r, "zero_copy", metric)
        refs = {b: _median_of(r, b, metric) for b in bases}
        mfacts[metric] = {"zero_copy": zc, **refs}
        if zc != zc:
            continue
        parts = [f"{b} {_num(v)}" + (f" ({_pct((zc / v - 1) * 100)} for zero_copy)" if v == v and v > 0 and b == main else "")
                 for b, v in refs.items() if v == v]
        if parts:
            mech_s.append(f"{what}: zero_copy {_num(zc)} {unit} vs " + ", ".join(parts) + " (medians over configurations).")
    if len(lost):
        lost_idx = pd.MultiIndex.from_frame(lost[["msg_size", "threads"]])
        zc_l = _median_of(r, "zero_copy", "cpu_s_per_gb", where=lost_idx)
        ref_l = _median_of(r, main, "cpu_s_per_gb", where=lost_idx)
        mfacts["cpu_s_per_gb_where_lost"] = {"zero_copy": zc_l, main: ref_l}
        if zc_l == zc_l and ref_l == ref_l and ref_l > 0:
            mech_s.append(f"Where zero_copy lost, it spent {_num(zc_l)} CPU-s/GB against {main}'s {_num(ref_l)} "
                          f"({_pct((zc_l / ref_l - 1) * 100)}).")
    if not mech_s:
        mech_s.append("No mechanism figure was measured (no completion codes, traces, CPU times or perf counters in these results), "
                      "so the data shows where zero-copy lost but not why.")
    sentences.extend(mech_s)
    first_win = {int(t): (int(g[g.outcome == "won"].msg_size.min()) if (g.outcome == "won").any() else None)
                 for t, g in c.groupby("threads")}
    facts["first_win_size_by_threads"] = first_win
    wins = sorted({v for v in first_win.values() if v is not None})
    ctx = f"Context, not evidence: {BREAK_EVEN_NOTE}; "
    if wins:
        ctx += f"here zero_copy first beat {main} at {_sizes(wins)} (depending on the thread count)" if len(wins) > 1 \
            else f"here zero_copy first beat {main} at {wins[0]} B"
        never = [t for t, v in first_win.items() if v is None]
        if never:
            ctx += f", and never with {_threads(never)}"
    else:
        ctx += f"here it never beat {main} within {int(r.runs.msg_size.min())}-{int(r.runs.msg_size.max())} B"
    sentences.append(ctx + ".")
    facts["mechanism"] = mfacts
    facts["topology"] = r.topology
    caveats = _caveats(r, ["cpu_user_s", "trace_client_send_syscall_ns"],
                       zc_columns=["zc_copied", "trace_client_errqueue_reads", "trace_client_zc_deferred_copies"])
    if zc_runs["zc_completions"].notna().any() and (zc_runs["zc_completions"] == 0).all():
        caveats.append("zero_copy recorded no completions at all: SO_ZEROCOPY may not have been in effect.")
    key = [c for c in ["msg_size", "threads", "zero_copy_gbps", f"{main}_gbps", f"vs_{main}_pct",
                       f"outcome_vs_{main}", "vs_one_copy_pct" if main != "one_copy" else None,
                       "zc_copied_fraction", "zero_copy_cpu_s_per_gb"] if c and c in ev]
    chart = _chart(r, ["throughput_gbps", "zc_copied_fraction", "cpu_s_per_gb", "syscall_ns_per_byte",
                       "copies_per_byte", "errqueue_reads_per_send"])
    return Answer(q, title, " ".join(sentences), ev, caveats, chart, None, _clean(facts), key)


def _row_fact(df: pd.DataFrame, which: str) -> dict | None:
    if df.empty:
        return None
    row = df.loc[df.change_pct.idxmin() if which == "min" else df.change_pct.idxmax()]
    return {"msg_size": int(row.msg_size), "threads": int(row.threads), "change_pct": float(row.change_pct),
            "value": float(row.value), "ref": float(row.ref)}


# --------------------------------------------------------------------------- cache
LEVELS = OrderedDict([("L1", ("l1_misses_per_kib", "l1_cache_misses")), ("LLC", ("llc_misses_per_kib", "llc_cache_misses"))])


def cache(r: Results) -> Answer:
    q, title = "cache", "Which cache level shows the largest reduction in misses, and why?"
    if "two_copy" not in r.impls:
        return _empty(q, title, "There are no two_copy points to measure a reduction against "
                      f"(strategies: {_join(r.impls)}).", r)
    savers = [i for i in ("one_copy", "zero_copy") if i in r.impls]
    if not savers:
        return _empty(q, title, "There are no one_copy or zero_copy points to compare with two_copy.", r)
    measured = [lvl for lvl, (m, _) in LEVELS.items() if r.measured(m)]
    missing = {lvl: r.missing_reason(raw) for lvl, (m, raw) in LEVELS.items() if lvl not in measured}
    facts = {"method": METHODS, "levels_measured": measured,
             "levels_missing": {lvl: why for lvl, why in missing.items()}}
    caveats = _caveats(r, [LEVELS[lvl][1] for lvl in LEVELS] + ["cpu_cycles"])
    chart = _chart(r, ["l1_misses_per_kib", "llc_misses_per_kib", "cycles_per_byte", "cpu_s_per_gb", "copies_per_byte"])
    if not measured:
        verdict = _cache_without_counters(r, savers, missing, facts)
        ev = _fallback_evidence(r, savers)
        return Answer(q, title, verdict, ev, caveats, chart,
                      "no cache-miss counters were measured; the chart shows what was measured instead",
                      _clean(facts), list(ev.columns))
    rows = []
    for impl in savers:
        for lvl in measured:
            c = _vs(r, LEVELS[lvl][0], impl, "two_copy")
            for x in c.itertuples():
                rows.append({"implementation": impl, "level": lvl, "msg_size": x.msg_size, "threads": x.threads,
                             "two_copy_per_kib": x.ref, "strategy_per_kib": x.value,
                             "reduction_pct": -x.change_pct, "p_value": x.p_value, "significant": x.significant})
    ev = pd.DataFrame(rows)
    tested = not _untested(ev) if len(ev) else False
    per = {}
    sentences = []
    for impl in savers:
        parts = []
        for lvl in measured:
            sub = ev[(ev.implementation == impl) & (ev.level == lvl)]
            qs = quantiles(sub.reduction_pct)
            qs["fewer_misses"] = int((sub.reduction_pct > 0).sum())
            qs["significant_reductions"] = (int(((sub.reduction_pct > 0) & (sub.significant == True)).sum())  # noqa: E712
                                            if tested else None)
            qs["significant_increases"] = (int(((sub.reduction_pct < 0) & (sub.significant == True)).sum())  # noqa: E712
                                           if tested else None)
            per.setdefault(impl, {})[lvl] = qs
            verb = "cut" if qs["median"] >= 0 else "raised"
            parts.append(f"{verb} {lvl} misses per KiB by a median {abs(qs['median']):.1f}% (reduction IQR {qs['q1']:.1f} "
                         f"to {qs['q3']:.1f}%, range {qs['min']:.1f} to {qs['max']:.1f}%; fewer misses in "
                         f"{qs['fewer_misses']} of {qs['n']})")
        n = int(ev[ev.implementation == impl].groupby(["msg_size", "threads"]).ngroups)
        sentences.append(f"Across {n} configurations, {impl} " + " and ".join(parts) + " relative to two_copy.")
    facts["by_strategy"] = per
    pooled = {lvl: quantiles(ev[ev.level == lvl].reduction_pct) for lvl in measured}
    facts["pooled"] = pooled
    if len(measured) == 2:
        best = max(measured, key=lambda lvl: pooled[lvl]["median"])
        other = [lvl for lvl in measured if lvl != best][0]
        wide = ev.pivot_table(index=["implementation", "msg_size", "threads"], columns="level",
                              values="reduction_pct").dropna()
        diff = wide[best] - wide[other]
        k_more, k_less = int((diff > 0).sum()), int((diff < 0).sum())
        p = sign_test(k_more, k_less)
        facts.update(largest_level=best, other_level=other, pairs=int(len(diff)), best_larger_in=k_more,
                     sign_test_p=p)
        s = (f"The largest reduction is at {best}: a median {pooled[best]['median']:.1f}% against "
             f"{pooled[other]['median']:.1f}% at {other} over all {len(diff)} strategy x configuration pairs; "
             f"{best}'s reduction exceeded {other}'s in {k_more} of {len(diff)} (sign test {_p(p)})")
        sentences.append(s + ".")
    else:
        best = measured[0]
        facts.update(largest_level=None, only_level=best)
        lost_lvl = [lvl for lvl in LEVELS if lvl != best][0]
        sentences.append(f"Only {best} misses were measured ({lost_lvl}: {missing.get(lost_lvl)}), so which level "
                         f"gains most cannot be decided; {best} alone shows the reduction above.")
    sig = ev[(ev.level == best)]
    n_sig = int(((sig.reduction_pct > 0) & (sig.significant == True)).sum())  # noqa: E712
    facts["significant_reductions_at_best"] = n_sig if tested else None
    if tested:
        sentences.append(f"Per configuration (repeats, Welch p<{ALPHA}), the {best} reduction is significant in "
                         f"{n_sig} of {len(sig)} strategy x configuration pairs.")
    else:
        sentences.append("With one run per point no per-configuration difference is tested; the consistency "
                         "across configurations above is the evidence.")
    cyc = {impl: _reduction_median(r, impl, "cycles_per_byte") for impl in savers}
    facts["cycles_per_byte_reduction_median_pct"] = cyc
    why = []
    if any(v == v for v in cyc.values()):
        why.append("cycles per byte " + ", ".join(f"{'fell' if v >= 0 else 'rose'} by a median {abs(v):.1f}% for {i}"
                                                  for i, v in cyc.items() if v == v))
    cp = {i: _median_of(r, i, "copies_per_byte") for i in ["two_copy"] + savers}
    facts["copies_per_byte"] = cp
    if all(v == v for v in cp.values()):
        why.append("traced copies per byte were " + ", ".join(f"{_num(v)} for {i}" for i, v in cp.items()))
    if len(measured) == 2 and pooled[best]["median"] > 0:
        reason = (f"Consistent with the copy the other strategies remove: two_copy's serialisation memcpy is one extra "
                  f"pass over every byte (by construction), and its saving shows most at {best}")
        if why:
            reason += "; " + "; ".join(why)
        sentences.append(reason + ".")
    elif why:
        sentences.append(why[0][0].upper() + "; ".join(why)[1:] + ".")
    key = ["implementation", "level", "msg_size", "threads", "two_copy_per_kib", "strategy_per_kib",
           "reduction_pct", "p_value"]
    return Answer(q, title, " ".join(sentences), ev, caveats, chart, None, _clean(facts), key)


def _reduction_median(r: Results, impl: str, metric: str) -> float:
    c = _vs(r, metric, impl, "two_copy")
    return float(-c.change_pct.median()) if len(c) else float("nan")


def _fallback_evidence(r: Results, savers: list[str]) -> pd.DataFrame:
    ev = None
    for metric in ("cpu_s_per_gb", "copies_per_byte", "cycles_per_byte"):
        for impl in savers:
            c = _vs(r, metric, impl, "two_copy")
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


def _cache_without_counters(r: Results, savers, missing, facts) -> str:
    s = ["No cache-miss counts were measured ("
         + "; ".join(f"{lvl}: {why}" for lvl, why in missing.items())
         + "), so which cache level gains most cannot be answered from these results; missing counts are not zeros."]
    alt_facts = {}
    measured_instead = []
    for metric, what in (("cpu_s_per_gb", "client CPU-seconds per GB"), ("copies_per_byte", "copies per byte"),
                         ("cycles_per_byte", "cycles per byte")):
        red = {impl: _reduction_median(r, impl, metric) for impl in savers}
        alt_facts[metric] = red
        if any(v == v for v in red.values()):
            measured_instead.append(f"median change in {what} vs two_copy: " + ", ".join(
                f"{impl} {_pct(-v)}" for impl, v in red.items() if v == v))
    facts["measured_instead_reduction_median_pct"] = alt_facts
    facts["largest_level"] = None
    if measured_instead:
        s.append("What was measured instead: " + "; ".join(measured_instead) + ".")
    else:
        s.append("Neither CPU time per GB nor traced copies were recorded either, so no substitute evidence exists.")
    return " ".join(s)


# --------------------------------------------------------------------------- threads
THREAD_METRICS = [("throughput_gbps", "throughput"), ("l1_misses_per_kib", "L1 misses per KiB"),
                  ("llc_misses_per_kib", "LLC misses per KiB"), ("cs_per_mib", "context switches per MiB"),
                  ("cpu_s_per_gb", "CPU-s per GB"), ("offcpu_share", "off-CPU share")]


def threads(r: Results) -> Answer:
    q, title = "threads", "How does thread count interact with cache contention?"
    tcounts = sorted(int(t) for t in r.runs.threads.unique())
    metrics = [(m, lbl) for m, lbl in THREAD_METRICS if r.measured(m)]
    cores, over = _oversubscription(r)
    ev = None
    for m, _ in metrics:
        med = _config_medians(r, m).rename(m).reset_index()
        ev = med if ev is None else ev.merge(med, on=KEY, how="outer")
    ev["busy_threads"] = 2 * ev["threads"]
    ev["oversubscribed"] = None if cores is None else (ev["busy_threads"] > cores)
    ev = ev.sort_values(["implementation", "msg_size", "threads"], key=_impl_key).reset_index(drop=True)
    facts = {"method": METHODS, "thread_counts": tcounts, "host_cores": cores, "oversubscribed_threads": over}
    caveats = _caveats(r, ["l1_cache_misses", "llc_cache_misses", "context_switches"], oversub=False)
    chart = _chart(r, [m for m, _ in metrics] + ["latency_us"])
    if len(tcounts) < 2:
        verdict = (f"Only one thread count ({tcounts[0]}) was measured, so how results change with threads cannot be "
                   "answered.")
        c = _oversub_caveat(r)
        return Answer(q, title, verdict, ev, caveats + ([c] if c else []), chart, None, _clean(facts))
    tmin, tmax = tcounts[0], tcounts[-1]
    series = ev.groupby(["implementation", "msg_size"])
    ratios = {m: [] for m, _ in metrics}
    peaks, sig = {}, []
    for (impl, size), g in series:
        g = g.set_index("threads")
        if tmin not in g.index or tmax not in g.index:
            continue
        for m, _ in metrics:
            a, b = g.at[tmin, m], g.at[tmax, m]
            if a == a and b == b and a > 0:
                ratios[m].append(b / a)
        if g["throughput_gbps"].notna().any():
            peaks.setdefault(int(g["throughput_gbps"].idxmax()), []).append(f"{impl}/{size}")
        runs = r.runs[(r.runs.implementation == impl) & (r.runs.msg_size == size)]
        cmp = compare(runs[runs.threads == tmin].throughput_gbps, runs[runs.threads == tmax].throughput_gbps)
        sig.append(cmp.significant)
    n_series = len(ratios["throughput_gbps"])
    change = {m: {**quantiles(v), "rose": int(sum(x > 1 + MIN_EFFECT for x in v)),
                  "fell": int(sum(x < 1 - MIN_EFFECT for x in v))} for m, v in ratios.items()}
    facts.update(series=n_series, ratio_max_over_min_threads=change, peak_threads={k: len(v) for k, v in peaks.items()})
    parts = [f"{lbl} {_times(change[m]['median'])}" + (f" (range {_times(change[m]['min'])} to {_times(change[m]['max'])})"
             if m == "throughput_gbps" else "") for m, lbl in metrics if change[m]["n"]]
    sentences = [f"From {tmin} to {tmax} threads (median over {n_series} strategy x size series): " + ", ".join(parts) + "."]
    cache_parts = []
    for m, lbl in metrics:
        if m in ("l1_misses_per_kib", "llc_misses_per_kib", "cs_per_mib") and change[m]["n"]:
            cache_parts.append(f"{lbl} rose (>{MIN_EFFECT:.0%}) in {change[m]['rose']} and fell in "
                               f"{change[m]['fell']} of {change[m]['n']} series")
    if cache_parts:
        s = "Per byte moved, " + "; ".join(cache_parts)
        cm = [m for m in ("llc_misses_per_kib", "l1_misses_per_kib") if m in dict(metrics) and change[m]["n"]]
        if cm:
            rising = [m for m in cm if change[m]["rose"] > change[m]["n"] / 2]
            s += (": more threads meant more cache misses per byte (contention) at "
                  + _join(["LLC" if m.startswith("llc") else "L1" for m in rising])) if rising else \
                ": more threads did not raise cache misses per byte in most series"
        sentences.append(s + ".")
    else:
        sentences.append("No cache-miss or context-switch counts were measured, so contention can only be judged "
                         "from throughput" + (" and CPU time" if "cpu_s_per_gb" in dict(metrics) else "") + ".")
    peak_txt = ", ".join(f"{t} threads in {len(v)}" for t, v in sorted(peaks.items()))
    sentences.append(f"Throughput peaked at {peak_txt} of {n_series} series.")
    if all(s is None for s in sig):
        sentences.append(f"With one run per point, the change from {tmin} to {tmax} threads is untested.")
    else:
        sentences.append(f"The throughput change from {tmin} to {tmax} threads is significant (Welch p<{ALPHA}) in "
                         f"{sum(1 for s in sig if s)} of {len(sig)} series.")
    facts["throughput_change_significant"] = None if all(s is None for s in sig) else int(sum(1 for s in sig if s))
    if cores is None:
        sentences.append("The host's core count is unknown" + (" (imported results)" if r.imported else "")
                         + ", so oversubscription cannot be judged.")
    elif over:
        ok_t = [t for t in tcounts if t not in over]
        below = ev[ev.threads.isin(ok_t)]
        above = ev[ev.threads.isin(over)]
        s = (f"Oversubscription: each connection has a client and a server thread, so {_threads(over)} means "
             f"{_join([2 * t for t in over])} busy threads on {cores} cores")
        if "cs_per_mib" in ev and below["cs_per_mib"].notna().any() and above["cs_per_mib"].notna().any():
            cb, ca = below["cs_per_mib"].median(), above["cs_per_mib"].median()
            facts["cs_per_mib_median"] = {"not_oversubscribed": cb, "oversubscribed": ca}
            s += f"; context switches per MiB there were {_num(ca)} against {_num(cb)} below"
        sentences.append(s + "; those points say more about scheduling than about caches.")
    else:
        sentences.append(f"No tested thread count oversubscribes the host's {cores} cores (at most {2 * tmax} busy "
                         "threads).")
    c = _oversub_caveat(r)
    if c:
        caveats.append(c)
    key = ["implementation", "msg_size", "threads"] + [m for m, _ in metrics][:4] + ["oversubscribed"]
    return Answer(q, title, " ".join(sentences), ev, caveats, chart, None, _clean(facts), key)


def _impl_key(col: pd.Series) -> pd.Series:
    if col.name == "implementation":
        order = {"two_copy": 0, "one_copy": 1, "zero_copy": 2}
        return col.map(lambda v: order.get(v, 9))
    return col


# --------------------------------------------------------------------------- crossovers
def _crossover(r: Results, impl: str, q: str) -> Answer:
    title = f"At what message size does {impl.replace('_', '-')} beat two-copy?"
    if impl not in r.impls or "two_copy" not in r.impls:
        return _empty(q, title, f"These results lack {impl if impl not in r.impls else 'two_copy'} points "
                      f"(strategies: {_join(r.impls)}), so no crossover can be found.", r)
    c = _vs(r, "throughput_gbps", impl, "two_copy")
    c["ahead"] = c.change_pct > 0
    c["beats"] = c.ahead & c.significant.map(lambda s: s is None or s != s or bool(s))
    ev_rows, per_t = [], {}
    sizes_all = sorted(int(s) for s in c.msg_size.unique())
    for t, g in c.groupby("threads"):
        g = g.sort_values("msg_size")
        beats = g[g.beats]
        cross = int(beats.msg_size.min()) if len(beats) else None
        after = g[g.msg_size > cross] if cross is not None else g.iloc[0:0]
        behind = after[after.change_pct < 0]
        stays = behind.empty if cross is not None else None
        info = {"crossover_size": cross, "stays_ahead": stays,
                "behind_again_at": [int(s) for s in behind.msg_size],
                "behind_again_significant_at": ([int(s) for s in behind[behind.significant == True].msg_size]  # noqa: E712
                                                if not _untested(g) else None),
                "tested": not _untested(g), "sizes": [int(s) for s in g.msg_size]}
        if cross is not None:
            row = g[g.msg_size == cross].iloc[0]
            info.update(change_pct_at_crossover=float(row.change_pct), p_value_at_crossover=float(row.p_value),
                        at_smallest_tested_size=cross == int(g.msg_size.min()))
        else:
            best = g.loc[g.change_pct.idxmax()]
            info.update(closest_size=int(best.msg_size), closest_change_pct=float(best.change_pct))
        ns = g[g.ahead & ~g.beats]
        info["ahead_not_significant"] = [int(s) for s in ns.msg_size]
        per_t[int(t)] = info
        for x in g.itertuples():
            ev_rows.append({"threads": int(t), "msg_size": int(x.msg_size), f"{impl}_gbps": x.value,
                            "two_copy_gbps": x.ref, "change_pct": x.change_pct, "p_value": x.p_value,
                            "significant": x.significant, "beats": bool(x.beats),
                            "crossover": cross is not None and int(x.msg_size) == cross})
    ev = pd.DataFrame(ev_rows)
    groups: dict = {}
    for t, info in per_t.items():
        sig = info["behind_again_significant_at"]
        groups.setdefault((info["crossover_size"], info["stays_ahead"], tuple(info["behind_again_at"]),
                           None if sig is None else tuple(sig)), []).append(t)
    sentences = []
    for (cross, stays, behind, behind_sig), ts in sorted(groups.items(), key=lambda kv: (kv[0][0] is None, kv[0][0] or 0)):
        if cross is None:
            closest = [per_t[t] for t in ts]
            best = max(closest, key=lambda i: i["closest_change_pct"])
            sentences.append(f"With {_threads(ts)}, {impl} never beats two_copy within the tested sizes "
                             f"({sizes_all[0]}-{sizes_all[-1]} B); its closest was {_pct(best['closest_change_pct'])} "
                             f"at {best['closest_size']} B.")
            continue
        changes = [per_t[t]["change_pct_at_crossover"] for t in ts]
        s = (f"With {_threads(ts)}, {impl} first beats two_copy at {cross} B ("
             + ", ".join(f"{_pct(ch)}" + (f" at {t}t" if len(ts) > 1 else "") for t, ch in zip(ts, changes)) + ")")
        if cross == sizes_all[0]:
            s += ", the smallest tested size, so the true crossover may be lower"
        if stays:
            larger = [sz for sz in sizes_all if sz > cross]
            s += " and is not behind at any larger tested size" if larger else " (the largest tested size)"
        else:
            s += f", but falls behind again at {_sizes(behind)}"
            if behind_sig is not None:
                s += (f" (significantly at {_sizes(behind_sig)})" if behind_sig
                      else " (not significantly: within run-to-run noise)")
        below = c[(c.threads.isin(ts)) & (c.msg_size < cross)]
        if len(below):
            s += f"; below it, it trails by a median {_pct(below.change_pct.median())}"
        sentences.append(s + ".")
    ahead_ns = [(t, s) for t, i in per_t.items() for s in i["ahead_not_significant"]]
    if ahead_ns:
        sentences.append(f"Ahead but not significantly (Welch p>={ALPHA}) at " + ", ".join(
            f"{s} B with {t}t" for t, s in ahead_ns) + ", so those do not count as beating it.")
    if _untested(c):
        sentences.append("With one run per point these crossovers are untested: a difference within run-to-run "
                         "noise would look the same.")
    else:
        ps = [i["p_value_at_crossover"] for i in per_t.values() if i["crossover_size"] is not None]
        if ps:
            sentences.append(f"Each crossover is significant (Welch {_p(max(ps))} at worst).")
    crosses = [i["crossover_size"] for i in per_t.values()]
    facts = {"method": METHODS, "by_threads": per_t,
             "crossover_by_threads": {t: i["crossover_size"] for t, i in per_t.items()},
             "common_crossover": crosses[0] if crosses and all(x == crosses[0] for x in crosses) else None,
             "smallest_crossover": min((x for x in crosses if x is not None), default=None),
             "tested": not _untested(c)}
    caveats = _caveats(r, [])
    chart = _chart(r, ["throughput_gbps"])
    chart = chart[chart.implementation.isin([impl, "two_copy"])]
    key = ["threads", "msg_size", f"{impl}_gbps", "two_copy_gbps", "change_pct", "p_value", "beats", "crossover"]
    return Answer(q, title, " ".join(sentences), ev, caveats, chart, None, _clean(facts), key)


def one_copy_crossover(r: Results) -> Answer:
    return _crossover(r, "one_copy", "one-copy-crossover")


def zero_copy_crossover(r: Results) -> Answer:
    return _crossover(r, "zero_copy", "zero-copy-crossover")


# --------------------------------------------------------------------------- anomalies
CHANGE_METRICS = ["cycles_per_byte", "l1_misses_per_kib", "llc_misses_per_kib", "cs_per_mib", "cpu_s_per_gb",
                  "server_cpu_s_per_gb", "zc_copied_fraction", "copies_per_byte", "syscall_ns_per_byte",
                  "offcpu_share", "errqueue_reads_per_send"]


def _noise(r: Results, metric: str) -> tuple[pd.DataFrame, float, str]:
    """Per configuration: median and the standard error of that value; and how noise was set."""
    s = summarize_groups(r.runs, KEY, metric).set_index(KEY)
    with_rep = s[s.n >= 2]
    if len(with_rep):
        rel = float(with_rep.cv.median())
        how = f"repeats (median CV {rel:.1%})"
    else:
        rel = SINGLE_RUN_NOISE
        how = f"assumed {SINGLE_RUN_NOISE:.0%} relative noise (no repeats)"
    sd = np.where(s.n >= 2, np.maximum(s["std"].fillna(0), NOISE_FLOOR * s["median"].abs()), rel * s["median"].abs())
    s["se"] = sd / np.sqrt(s.n.clip(lower=1))
    return s, rel, how


def _what_changed(r: Results, a: tuple, b: tuple) -> tuple[str, dict]:
    changes = {}
    for m in CHANGE_METRICS:
        if not r.measured(m):
            continue
        med = _config_medians(r, m)
        va, vb = med.get(a, np.nan), med.get(b, np.nan)
        if va == va and vb == vb and va > 0 and vb > 0:
            changes[m] = vb / va
    top = sorted(((m, x) for m, x in changes.items() if abs(math.log(x)) >= math.log(1.10)),
                 key=lambda kv: -abs(math.log(kv[1])))[:3]
    parts = [f"{_label(m)} {_times(x)}" for m, x in top]
    cores = r.host_cores
    if cores is not None:
        ta, tb = a[2], b[2]
        if 2 * tb > cores >= 2 * ta:
            parts.append(f"crosses into oversubscription ({2 * tb} busy threads > {cores} cores)")
        elif 2 * tb > cores:
            parts.append(f"oversubscribed ({2 * tb} busy threads > {cores} cores)")
    return (", ".join(parts) if parts else "no per-byte figure changed by 10% or more"), {m: x for m, x in top}


def anomalies(r: Results) -> Answer:
    q, title = "anomalies", "What is unexpected in the results, and what explains it?"
    found, steps, near = [], [], []
    checked = {"size_steps": 0, "thread_steps": 0}
    specs = [("throughput_gbps", "msg_size", "throughput fell as size grew"),
             ("throughput_gbps", "threads", "throughput fell as threads grew"),
             ("latency_us", "msg_size", "latency inversion: fell as size grew"),
             ("latency_us", "threads", "latency inversion: fell as threads grew")]
    noise_how = {}
    for metric, dim, kind in specs:
        if not r.measured(metric):
            continue
        s, rel, how = _noise(r, metric)
        noise_how[metric] = how
        other = "threads" if dim == "msg_size" else "msg_size"
        for (impl, _), g in s.reset_index().groupby(["implementation", other]):
            g = g.sort_values(dim)
            rows = list(g.itertuples())
            for x, y in zip(rows, rows[1:]):
                if metric == "throughput_gbps":
                    checked["size_steps" if dim == "msg_size" else "thread_steps"] += 1
                if not (x.median == x.median and y.median == y.median and x.median > 0):
                    continue
                delta = y.median - x.median
                rel_change = delta / x.median
                se = math.sqrt(x.se ** 2 + y.se ** 2)
                score = abs(delta) / se if se > 0 else math.inf
                a_key = (impl, int(x.msg_size), int(x.threads))
                b_key = (impl, int(y.msg_size), int(y.threads))
                step_txt = (f"{a_key[1]} B -> {b_key[1]} B at {_threads([a_key[2]])}" if dim == "msg_size"
                            else f"{_threads([a_key[2]])} -> {_threads([b_key[2]])} at {a_key[1]} B")
                # every checked step; the least favourable become the evidence when none breaks
                near.append({"implementation": impl, "msg_size": b_key[1], "threads": b_key[2],
                             "step": step_txt, "metric": metric,
                             "change_pct": rel_change * 100, "score": float(score)})
                if rel_change > -MIN_EFFECT or score < MIN_SCORE:
                    continue
                p = float("nan")
                if x.n >= 2 and y.n >= 2:
                    ra = r.runs.set_index(KEY).loc[a_key, metric]
                    rb = r.runs.set_index(KEY).loc[b_key, metric]
                    cmp = compare(ra, rb)
                    p = cmp.p_value
                    if not cmp.significant:
                        continue
                steps.append({"kind": kind, "metric": metric, "dim": dim, "a": a_key, "b": b_key,
                              "before": float(x.median), "after": float(y.median), "change_pct": rel_change * 100,
                              "score": float(score), "p_value": p})
    # attribute each break to the point it implicates: a point that breaks the trend on both
    # sides (a dip or a spike) is named by several steps; otherwise the later point is named.
    seen: dict = {}
    for st in steps:
        for k in (st["a"], st["b"]):
            seen[k] = seen.get(k, 0) + 1
    for st in steps:
        culprit = st["a"] if seen[st["a"]] > seen[st["b"]] else st["b"]
        what, wfacts = _what_changed(r, st["a"], st["b"])  # read in the step's direction: before -> after
        others = _same_step_others(r, st["metric"], culprit[0], st["a"], st["b"])
        if others:
            what += "; " + others
        a_key, b_key = st["a"], st["b"]
        found.append({"kind": st["kind"], "implementation": culprit[0], "msg_size": culprit[1], "threads": culprit[2],
                      "step": (f"{a_key[1]} B -> {b_key[1]} B at {_threads([a_key[2]])}" if st["dim"] == "msg_size"
                               else f"{_threads([a_key[2]])} -> {_threads([b_key[2]])} at {a_key[1]} B"),
                      "metric": st["metric"], "before": st["before"], "after": st["after"],
                      "change_pct": st["change_pct"], "score": st["score"], "p_value": st["p_value"],
                      "what_changed": what, "_changes": wfacts})
    # high variation
    cvs = summarize_groups(r.runs, KEY, "throughput_gbps")
    for x in cvs[cvs.high_cv].itertuples():
        found.append({"kind": f"high variation between repeats (CV > {HIGH_CV:.0%})", "implementation": x.implementation,
                      "msg_size": int(x.msg_size), "threads": int(x.threads), "step": f"{x.n} repeats",
                      "metric": "throughput_gbps", "before": x.ci_low, "after": x.ci_high, "change_pct": x.cv * 100,
                      "score": float(x.cv / HIGH_CV), "p_value": float("nan"),
                      "what_changed": f"CV {x.cv:.0%}; 95% CI of the mean {_num(x.ci_low)}-{_num(x.ci_high)} Gbps"})
    # zero-copy completions outstanding / ENOBUFS
    zc = r.runs[r.runs.implementation == "zero_copy"]
    if zc["zc_completions"].notna().any():
        g = zc.groupby(["msg_size", "threads"])[["zc_completions", "messages", "zc_enobufs"]].sum(min_count=1)
        for (size, t), x in g.iterrows():
            if x.messages == x.messages and x.messages > 0 and x.zc_completions == x.zc_completions:
                missing = 1 - x.zc_completions / x.messages
                if missing > 0.01:
                    found.append({"kind": "zero-copy completions outstanding", "implementation": "zero_copy",
                                  "msg_size": int(size), "threads": int(t), "step": "completions vs messages sent",
                                  "metric": "zc_completions", "before": float(x.messages), "after": float(x.zc_completions),
                                  "change_pct": -missing * 100, "score": float(missing / 0.01), "p_value": float("nan"),
                                  "what_changed": f"{missing:.1%} of sends never reported a completion"})
            if x.zc_enobufs == x.zc_enobufs and x.zc_enobufs > 0:
                found.append({"kind": "zero-copy ENOBUFS (optmem exhausted)", "implementation": "zero_copy",
                              "msg_size": int(size), "threads": int(t), "step": "-", "metric": "zc_enobufs",
                              "before": float("nan"), "after": float(x.zc_enobufs), "change_pct": float("nan"),
                              "score": float("nan"), "p_value": float("nan"),
                              "what_changed": f"{int(x.zc_enobufs)} sends got ENOBUFS and were retried"})
    for f in r.failed.itertuples():
        found.append({"kind": "failed point", "implementation": f.implementation, "msg_size": int(f.msg_size),
                      "threads": int(f.threads), "step": f"repeat {int(f.repeat)}", "metric": "status",
                      "before": float("nan"), "after": float("nan"), "change_pct": float("nan"),
                      "score": float("nan"), "p_value": float("nan"), "what_changed": str(f.error)})
    ev = pd.DataFrame(found)
    if len(ev):
        ev = ev.sort_values("score", ascending=False, na_position="last", kind="stable").reset_index(drop=True)
        ev.insert(0, "rank", range(1, len(ev) + 1))
    trend = ev[ev.kind.str.startswith(("throughput fell", "latency inversion"))] if len(ev) else ev
    sentences = []
    if len(trend) == 0:
        sentences.append(f"No result breaks the expected trends beyond noise: across {checked['size_steps']} "
                         f"message-size steps and {checked['thread_steps']} thread-count steps, throughput never fell "
                         f"by {MIN_EFFECT:.0%} or more at more than {MIN_SCORE:g}x the noise, and per-send latency never "
                         "fell as messages or threads grew.")
        if near:
            tp = [n for n in near if n["metric"] == "throughput_gbps"] or near
            w = min(tp, key=lambda n: n["change_pct"])
            what = "throughput" if w["metric"] == "throughput_gbps" else "per-send latency"
            sentences.append(f"The least favourable step was {w['implementation']} {what} {_pct(w['change_pct'])} over "
                             f"{w['step']} ({_num(w['score'], 2)}x the noise); the evidence lists the nearest cases.")
    else:
        sentences.append(f"{len(trend)} result(s) break the expected trend (of {checked['size_steps']} size steps and "
                         f"{checked['thread_steps']} thread steps checked), ranked by the change relative to run-to-run "
                         "noise.")
        incidents: dict = {}
        for x in trend.to_dict("records"):
            incidents.setdefault((x["implementation"], x["msg_size"], x["threads"]), []).append(x)
        sentences.append(f"They point at {len(incidents)} configuration(s).")
        for i, ((impl, size, t), rows) in enumerate(list(incidents.items())[:3]):
            descr = []
            for x in rows:
                what = "throughput" if x["metric"] == "throughput_gbps" else "per-send latency"
                unit = "Gbps" if x["metric"] == "throughput_gbps" else "us"
                descr.append(f"{what} {_pct(x['change_pct'])} ({_num(x['before'])} to {_num(x['after'])} {unit}) "
                             f"over {x['step']}, {_num(x['score'], 2)}x the noise")
            sentences.append(f"{'The largest' if i == 0 else 'Next'}: {impl} at {size} B x {t} threads, "
                             + "; ".join(descr) + f". Compared with its neighbour there: {rows[0]['what_changed']}.")
    others = ev[~ev.index.isin(trend.index)] if len(ev) else ev
    if len(others):
        counts = others.kind.value_counts()
        sentences.append("Also: " + "; ".join(f"{n} {k}" for k, n in counts.items()) + ".")
    facts = {"method": {**METHODS, "trend_break": f"change >= {MIN_EFFECT:.0%} in the unexpected direction and >= "
                        f"{MIN_SCORE:g}x the standard error of the difference, each configuration's standard deviation "
                        f"floored at {NOISE_FLOOR:.0%} of its median (and Welch p<{ALPHA} with repeats)",
                        "noise": noise_how},
             "checked": checked, "count": int(len(trend)),
             "anomalies": [{k: v for k, v in row.items() if not k.startswith("_")} | {"changes": row.get("_changes", {})}
                           for row in (ev.to_dict("records") if len(ev) else [])]}
    if len(ev):
        ev = ev.drop(columns=[c for c in ev.columns if c.startswith("_")])
    ev["flagged"] = True
    if len(trend) == 0 and near:
        nearest = (pd.DataFrame(near).sort_values("change_pct", kind="stable").groupby("metric", sort=False).head(5)
                   .sort_values(["metric", "change_pct"], ascending=[False, True], kind="stable"))
        nearest.insert(0, "kind", ["within expectations: " + ("throughput" if m == "throughput_gbps" else "latency")
                                   for m in nearest.metric])
        nearest["flagged"] = False
        ev = pd.concat([ev, nearest], ignore_index=True) if len(ev) else nearest.reset_index(drop=True)
        ev["rank"] = range(1, len(ev) + 1)
    tp = [n for n in near if n["metric"] == "throughput_gbps"]
    facts["least_favourable_throughput_step"] = _clean(min(tp, key=lambda n: n["change_pct"])) if tp else None
    caveats = _caveats(r, [])
    if any("assumed" in how for how in noise_how.values()):
        caveats.append(f"Without repeats the run-to-run noise is assumed to be {SINGLE_RUN_NOISE:.0%} of each value, "
                       "so only large trend breaks are reported and none is tested for significance.")
    chart = _chart(r, ["throughput_gbps", "latency_us", "cs_per_mib", "llc_misses_per_kib"])
    if len(ev):
        marks = {(x.implementation, x.msg_size, x.threads): str(x.rank) for x in ev[ev.flagged].itertuples()}
        chart["anomaly"] = [marks.get((i, s, t), "") for i, s, t in zip(chart.implementation, chart.msg_size, chart.threads)]
    key = ["rank", "kind", "implementation", "msg_size", "threads", "step", "change_pct", "score"]
    return Answer(q, title, " ".join(sentences), ev, caveats, chart, None, _clean(facts), key)


def _same_step_others(r: Results, metric: str, impl: str, a: tuple, b: tuple) -> str:
    med = _config_medians(r, metric)
    parts = []
    for other in r.impls:
        if other == impl:
            continue
        va, vb = med.get((other,) + a[1:], np.nan), med.get((other,) + b[1:], np.nan)
        if va == va and vb == vb and va > 0:
            parts.append(f"{other} {_pct((vb / va - 1) * 100)}")
    return ("the other strategies at the same step: " + ", ".join(parts)) if parts else ""


# --------------------------------------------------------------------------- registry
QUESTIONS: "OrderedDict[str, callable]" = OrderedDict([
    ("zerocopy", zerocopy),
    ("cache", cache),
    ("threads", threads),
    ("one-copy-crossover", one_copy_crossover),
    ("zero-copy-crossover", zero_copy_crossover),
    ("anomalies", anomalies),
])


def check_names(names) -> list[str]:
    """The question names, validated (UsageError listing the valid ones)."""
    names = list(names or QUESTIONS)
    unknown = [n for n in names if n not in QUESTIONS]
    if unknown:
        raise UsageError(f"unknown question {', '.join(repr(n) for n in unknown)}",
                         fix="one of: " + ", ".join(QUESTIONS))
    return list(dict.fromkeys(names))


def answer_all(results: Results, names=None) -> list[Answer]:
    """Answer the named questions (all six, in order, when names is None)."""
    return [QUESTIONS[n](results) for n in check_names(names)]
