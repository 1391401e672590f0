"""anomalies: what is unexpected in the results, and what explains it?

Every step along a series (a strategy at one thread count over sizes, or at one size over
thread counts) where throughput fell or per-send latency fell beyond the run-to-run noise,
attributed to the configuration it implicates, with what else changed there; then high
variation between repeats, zero-copy completions never reported, ENOBUFS, failed points."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from netobs.fmt import num, pct, share, times

from netobs import strategies

from .. import hypotheses as hyp
from ..answer import Prose
from ..labels import label
from ..load import KEY, Results
from ..stats import compare, summarize_groups
from . import prose
from .common import PARAMETERS, Caveat, Facts, Reason, caveats, chart_rows, config_median_dict, ranked

NAME = "anomalies"
TITLE = "What is unexpected in the results, and what explains it?"
# the trends checked: (metric, along which dimension); throughput should rise, latency not fall
TRENDS = (("throughput_gbps", "msg_size"), ("throughput_gbps", "threads"),
          ("latency_us", "msg_size"), ("latency_us", "threads"))
CHANGE_METRICS = ("cycles_per_byte", "l1_misses_per_kib", "llc_misses_per_kib", "cs_per_mib", "cpu_s_per_gb",
                  "server_cpu_s_per_gb", "zc_copied_fraction", "copies_per_byte", "syscall_ns_per_byte",
                  "offcpu_share", "errqueue_reads_per_send")
NOTABLE_CHANGE = 0.10     # what changed with a trend break: the figures that moved by 10% or more ...
SHOWN_CHANGES = 3         # ... the largest three
OUTSTANDING = 0.01        # zero-copy sends without a completion: flagged from 1% on
NEAREST = 5               # without a break, the evidence lists this many nearest steps per metric
SHOWN_INCIDENTS = 3
# anomaly codes
TREND_BREAK, HIGH_VARIATION = "trend_break", "high_variation"
OUTSTANDING_COMPLETIONS, ENOBUFS, FAILED = "completions_outstanding", "enobufs", "failed_point"
# verdict codes
NONE_FOUND, FOUND = "no_trend_break", "trend_breaks"
# reason codes: a break shared by every strategy at one configuration, a weak baseline point,
# a break of one strategy; the other anomalies; the closest step when nothing broke
SYSTEM_WIDE, WEAK_BASELINE, STRATEGY_BREAK, OTHERS, CLOSEST = (
    "system_wide_break", "weak_baseline_point", "strategy_break", "other_anomalies", "closest_step")
# the explanations an anomaly is tested against (analysis.hypotheses)
# with every mechanism the accounting judges (its classes' shares of the step's CPU-s/GB gap)
HYPOTHESES = tuple(dict.fromkeys(("system_wide", "oversubscription", "sndbuf_full", "waiting_for_data",
                                  "retransmissions", "memory_pressure", "softirq_on_sender", "scheduling",
                                  "cache_working_set") + hyp.MECHANISM_NAMES))
ACCOUNTED, SHOWN_CAUSES = "accounted_causes", 2   # the heaviest break's accounted causes; how many are named
BASELINES = frozenset({"two_copy"} | {s.baseline for s in strategies.STRATEGIES if s.baseline})


@dataclass
class Noise:
    """How the run-to-run noise of a metric was set: from repeats (their median CV) or assumed."""

    source: str          # "repeats" | "assumed"
    relative: float


@dataclass
class Step:
    """One step along a series, from (msg_size, threads) `start` to `end` of one strategy."""

    implementation: str
    metric: str
    dim: str             # "msg_size" or "threads": what grew
    start: tuple[int, int]
    end: tuple[int, int]
    change_pct: float
    score: float         # |change| / the standard error of the difference

    def to_dict(self) -> dict:
        return {"implementation": self.implementation, "msg_size": self.end[0], "threads": self.end[1],
                "metric": self.metric, "change_pct": self.change_pct, "score": self.score, "dim": self.dim,
                "from": list(self.start)}


@dataclass
class Anomaly:
    """One finding, at the configuration it implicates. A trend break keeps its step, the
    figures that changed with it, oversubscription and the other strategies' change there."""

    code: str
    implementation: str
    msg_size: int
    threads: int
    metric: str
    before: float = math.nan
    after: float = math.nan
    change_pct: float = math.nan
    score: float = math.nan
    p_value: float = math.nan
    rank: int = 0
    step: Step | None = None
    changes: dict[str, float] | None = None        # figure -> after / before (the largest, in order)
    oversubscription: dict | None = None            # {"busy": n, "cores": n, "crosses": bool}
    others: dict[str, float] = field(default_factory=dict)   # strategy -> change_pct at the same step
    repeats: int | None = None                      # high variation: over how many
    cv: float | None = None
    repeat: int | None = None                       # a failed point
    error: str | None = None

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k not in ("step", "others")}
        d = {"rank": d.pop("rank"), **d}
        if self.step is not None:
            d.update(dim=self.step.dim, start=list(self.step.start), end=list(self.step.end), others=self.others)
        return d


@dataclass(kw_only=True)
class AnomaliesFacts(Facts):
    checked: dict[str, int]                 # size_steps, thread_steps: throughput steps checked
    noise: dict[str, Noise]
    anomalies: list[Anomaly]                # ranked
    nearest: list[Step]                     # without a trend break: the nearest steps, as listed
    least_favourable_step: Step | None      # of throughput where measured, else of any metric
    least_favourable_throughput_step: Step | None
    incidents: list[dict] = field(default_factory=list)   # trend breaks by configuration, explained

    @property
    def trend_breaks(self) -> list[Anomaly]:
        return [a for a in self.anomalies if a.code == TREND_BREAK]

    def fields(self) -> dict:
        lf = self.least_favourable_throughput_step
        return {"checked": self.checked, "count": len(self.trend_breaks),
                "anomalies": [a.to_dict() for a in self.anomalies],
                "least_favourable_throughput_step": None if lf is None else lf.to_dict(),
                "noise": {m: asdict(n) for m, n in self.noise.items()},
                "incidents": [{k: v for k, v in i.items() if k != "judgements"} for i in self.incidents]}


def _noise(r: Results, metric: str) -> tuple[pd.DataFrame, Noise]:
    """Per configuration: median and the standard error of that value; and how noise was set."""
    p = PARAMETERS
    s = summarize_groups(r.runs, KEY, metric).set_index(KEY)
    with_rep = s[s.n >= 2]
    noise = Noise("repeats", float(with_rep.cv.median())) if len(with_rep) else Noise("assumed", p.single_run_noise)
    sd = np.where(s.n >= 2, np.maximum(s["std"].fillna(0), p.noise_floor * s["median"].abs()),
                  noise.relative * s["median"].abs())
    s["se"] = sd / np.sqrt(s.n.clip(lower=1))
    return s, noise


def _steps(r: Results) -> tuple[list[dict], list[Step], dict, dict]:
    """(trend breaks, every step checked, steps checked per dimension, noise per metric)."""
    p = PARAMETERS
    breaks, near, noises = [], [], {}
    checked = {"size_steps": 0, "thread_steps": 0}
    repeats = {}   # metric -> configuration -> its repeats' values (in row order), taken once
    for metric, dim in TRENDS:
        if not r.measured(metric):
            continue
        s, noises[metric] = _noise(r, metric)
        if metric not in repeats:
            repeats[metric] = {k: v.to_numpy() for k, v in r.runs.groupby(KEY)[metric]}
        other = "threads" if dim == "msg_size" else "msg_size"
        # each (strategy, other axis)'s configurations along `dim`, in one sorted pass (a frame per
        # group sorted on its own is most of this question's time at 10,000 points)
        ordered = list(s.reset_index().sort_values(["implementation", other, dim]).itertuples())
        for x, y in zip(ordered, ordered[1:]):
            if (x.implementation, getattr(x, other)) != (y.implementation, getattr(y, other)):
                continue
            impl = x.implementation
            if metric == "throughput_gbps":
                checked["size_steps" if dim == "msg_size" else "thread_steps"] += 1
            if not (x.median == x.median and y.median == y.median and x.median > 0):
                continue
            delta = y.median - x.median
            rel_change = delta / x.median
            se = math.sqrt(x.se ** 2 + y.se ** 2)
            score = abs(delta) / se if se > 0 else math.inf
            a_key, b_key = (impl, int(x.msg_size), int(x.threads)), (impl, int(y.msg_size), int(y.threads))
            near.append(Step(impl, metric, dim, a_key[1:], b_key[1:], rel_change * 100, float(score)))
            if rel_change > -p.min_effect or score < p.min_score:
                continue
            pv = float("nan")
            if x.n >= 2 and y.n >= 2:
                cmp = compare(repeats[metric][a_key], repeats[metric][b_key])
                pv = cmp.p_value
                if not cmp.significant:
                    continue
            breaks.append({"step": near[-1], "a": a_key, "b": b_key, "before": float(x.median),
                           "after": float(y.median), "score": float(score), "p_value": pv})
    return breaks, near, checked, noises


def _what_changed(r: Results, a: tuple, b: tuple) -> tuple[dict[str, float], dict | None]:
    """The per-byte figures that changed most from a to b (after / before), and whether b
    oversubscribes the host where a did not."""
    changes = {}
    for m in CHANGE_METRICS:
        if not r.measured(m):
            continue
        med = config_median_dict(r, m)
        va, vb = med.get(a, np.nan), med.get(b, np.nan)
        if va == va and vb == vb and va > 0 and vb > 0:
            changes[m] = vb / va
    top = sorted(((m, x) for m, x in changes.items() if abs(math.log(x)) >= math.log(1 + NOTABLE_CHANGE)),
                 key=lambda kv: -abs(math.log(kv[1])))[:SHOWN_CHANGES]
    cores, oversub = r.host_cores, None
    if cores is not None and 2 * b[2] > cores:
        oversub = {"busy": 2 * b[2], "cores": cores, "crosses": cores >= 2 * a[2]}
    return dict(top), oversub


def _same_step_others(r: Results, metric: str, impl: str, a: tuple, b: tuple) -> dict[str, float]:
    med = config_median_dict(r, metric)
    out = {}
    for other in r.impls:
        if other == impl:
            continue
        va, vb = med.get((other,) + a[1:], np.nan), med.get((other,) + b[1:], np.nan)
        if va == va and vb == vb and va > 0:
            out[other] = (vb / va - 1) * 100
    return out


def _trend_anomalies(r: Results, breaks: list[dict]) -> list[Anomaly]:
    # attribute each break to the point it implicates: a point that breaks the trend on both
    # sides (a dip or a spike) is named by several steps; otherwise the later point is named.
    seen: dict = {}
    for br in breaks:
        for k in (br["a"], br["b"]):
            seen[k] = seen.get(k, 0) + 1
    out = []
    for br in breaks:
        culprit = br["a"] if seen[br["a"]] > seen[br["b"]] else br["b"]
        changes, oversub = _what_changed(r, br["a"], br["b"])  # read in the step's direction: before -> after
        step = br["step"]
        out.append(Anomaly(TREND_BREAK, culprit[0], culprit[1], culprit[2], step.metric, br["before"], br["after"],
                           step.change_pct, br["score"], br["p_value"], step=step, changes=changes,
                           oversubscription=oversub,
                           others=_same_step_others(r, step.metric, culprit[0], br["a"], br["b"])))
    return out


def _other_anomalies(r: Results) -> list[Anomaly]:
    p, out = PARAMETERS, []
    cvs = summarize_groups(r.runs, KEY, "throughput_gbps")
    for x in cvs[cvs.high_cv].itertuples():
        out.append(Anomaly(HIGH_VARIATION, x.implementation, int(x.msg_size), int(x.threads), "throughput_gbps",
                           x.ci_low, x.ci_high, x.cv * 100, float(x.cv / p.high_cv), repeats=int(x.n), cv=x.cv))
    zc = r.runs[r.runs.implementation == "zero_copy"]
    if zc["zc_completions"].notna().any():
        g = zc.groupby(["msg_size", "threads"])[["zc_completions", "messages", "zc_enobufs"]].sum(min_count=1)
        for (size, t), x in g.iterrows():
            if x.messages == x.messages and x.messages > 0 and x.zc_completions == x.zc_completions:
                missing = 1 - x.zc_completions / x.messages
                if missing > OUTSTANDING:
                    out.append(Anomaly(OUTSTANDING_COMPLETIONS, "zero_copy", int(size), int(t), "zc_completions",
                                       float(x.messages), float(x.zc_completions), -missing * 100,
                                       float(missing / OUTSTANDING)))
            if x.zc_enobufs == x.zc_enobufs and x.zc_enobufs > 0:
                out.append(Anomaly(ENOBUFS, "zero_copy", int(size), int(t), "zc_enobufs", after=float(x.zc_enobufs)))
    for f in r.failed.itertuples():
        out.append(Anomaly(FAILED, f.implementation, int(f.msg_size), int(f.threads), "status",
                           repeat=int(f.repeat), error=str(f.error)))
    return out


def _ranked(found: list[Anomaly]) -> list[Anomaly]:
    """By score relative to noise, largest first, unscored last, ties in the order found."""
    order = pd.Series([a.score for a in found], dtype=float).sort_values(ascending=False, na_position="last",
                                                                         kind="stable").index
    ranked = [found[i] for i in order]
    for i, a in enumerate(ranked, 1):
        a.rank = i
    return ranked


def _nearest(near: list[Step]) -> list[Step]:
    """The least favourable steps of each metric, throughput's first."""
    df = pd.DataFrame({"metric": [s.metric for s in near], "change_pct": [s.change_pct for s in near]})
    picked = (df.sort_values("change_pct", kind="stable").groupby("metric", sort=False).head(NEAREST)
              .sort_values(["metric", "change_pct"], ascending=[False, True], kind="stable"))
    return [near[i] for i in picked.index]


def _neighbours(r: Results, point: tuple, axis: str) -> tuple:
    """The configurations either side of `point` along `axis`, same strategy."""
    impl, size, t = point
    values = sorted(int(x) for x in r.runs[axis].unique())
    k = values.index(size if axis == "msg_size" else t)
    near = [values[j] for j in (k - 1, k + 1) if 0 <= j < len(values)]
    return tuple((impl, v, t) if axis == "msg_size" else (impl, size, v) for v in near)


def _incidents(r: Results, trend: list[Anomaly], noises: dict) -> list[dict]:
    """Trend breaks by the configuration they implicate, heaviest first: which strategies broke
    there, whether every strategy did (system-wide), whether it is a weak baseline point, and
    each candidate explanation judged across the heaviest break's step."""
    by_config: dict = {}
    # each baseline's weak points, found once (not again for every break)
    weak_of = {base: hyp.weak_points(r, base) for base in r.impls if base in BASELINES}
    weak_at: dict = {}
    for base, points in weak_of.items():
        for w in points:
            weak_at.setdefault((w["msg_size"], w["threads"]), []).append(w)
    for a in trend:
        by_config.setdefault((a.msg_size, a.threads), []).append(a)
    out = []
    for (size, t), found in by_config.items():
        # the heaviest break (the highest score, as the table ranks them); judged at the
        # implicated point against the other end of its step
        lead = max(found, key=lambda a: a.score)
        culprit = (lead.msg_size, lead.threads)
        other = tuple(lead.step.start) if tuple(lead.step.end) == culprit else tuple(lead.step.end)
        at, ref = (lead.implementation,) + culprit, (lead.implementation,) + other
        judged = hyp.judge(r, hyp.Scope((at,), (ref,), "step", metric=lead.metric), HYPOTHESES)
        broke = list(dict.fromkeys(a.implementation for a in found))
        # system-wide only where its judgement says so (every strategy moved the lead's metric the
        # lead's way at its step): one verdict per piece of evidence, the reason follows it
        shared = len(r.impls) > 1 and "system_wide" in hyp.supported(judged)
        weak = [] if shared else [w for i in broke if i in BASELINES for w in weak_at.get((int(size), int(t)), [])
                                   if w["implementation"] == i]
        code = SYSTEM_WIDE if shared else WEAK_BASELINE if weak else STRATEGY_BREAK
        noise = noises.get(lead.metric)
        out.append({"code": code, "msg_size": int(size), "threads": int(t), "strategies": broke,
                    "metric": lead.metric, "implementation": lead.implementation, "change_pct": lead.change_pct,
                    "before": lead.before, "after": lead.after, "score": lead.score, "dim": lead.step.dim,
                    "start": list(lead.step.start), "end": list(lead.step.end), "changes": lead.changes,
                    "others": lead.others, "noise": None if noise is None else asdict(noise),
                    "weak": weak, "supported": hyp.supported(judged), "judgements": judged})
    # a baseline's dip that breaks no rising trend (it still rose, less) is found by its own trend
    noise = noises.get("throughput_gbps")
    for base in [b for b in r.impls if b in BASELINES]:
        for w in weak_of[base]:
            if any((i["msg_size"], i["threads"]) == (w["msg_size"], w["threads"]) for i in out):
                continue
            # a break whose step starts or ends at the dip is the dip's doing: folded into it
            touch = [i for i in out if i["implementation"] == base and i["dim"] is not None and
                     [w["msg_size"], w["threads"]] in (i["start"], i["end"])]
            out = [i for i in out if i not in touch]
            rel = noise.relative if noise else PARAMETERS.single_run_noise
            score = abs(math.log1p(w["shortfall_pct"] / 100)) / (max(rel, PARAMETERS.noise_floor) * math.sqrt(1.5))
            if score < PARAMETERS.min_score:
                continue
            point = (base, w["msg_size"], w["threads"])
            judged = hyp.judge(r, hyp.Scope((point,), _neighbours(r, point, w["axis"]), "step"),
                               [h for h in HYPOTHESES if h != "system_wide"])
            out.append({"code": WEAK_BASELINE, "msg_size": w["msg_size"], "threads": w["threads"],
                        "strategies": [base], "metric": "throughput_gbps", "implementation": base,
                        "change_pct": w["shortfall_pct"], "before": math.nan, "after": math.nan, "score": score,
                        "dim": None, "start": None, "end": None, "changes": {}, "others": w["others_pct"],
                        "noise": None if noise is None else asdict(noise), "weak": [w],
                        "explains": sum(len(i["strategies"]) for i in touch),
                        "supported": hyp.supported(judged), "judgements": judged})
    return sorted(out, key=lambda i: -i["score"])


def _reasons(incidents: list[dict], others: list[Anomaly], nearest_step: Step | None) -> list[Reason]:
    out = []
    for i in incidents:
        source = "worker" if i["code"] != WEAK_BASELINE else "worker"
        out.append(Reason(i["code"], float(i["score"]),
                          {k: v for k, v in i.items() if k not in ("judgements", "code")}, source))
        if i is incidents[0] and accounted_causes(i["judgements"]) is not None:
            # right after the heaviest break (equal weight, stable order): the shares its headline names
            out.append(Reason(ACCOUNTED, float(i["score"]), {"msg_size": i["msg_size"], "threads": i["threads"]},
                              "profile"))
    if others:
        counts: dict = {}
        for a in others:
            counts[a.code] = counts.get(a.code, 0) + 1
        out.append(Reason(OTHERS, 0.0, {"counts": counts}, "worker"))
    if not incidents and nearest_step is not None:
        out.append(Reason(CLOSEST, 0.0, nearest_step.to_dict(), "worker"))
    return ranked(out)


def compute(r: Results) -> Facts:
    breaks, near, checked, noises = _steps(r)
    anomalies = _ranked(_trend_anomalies(r, breaks) + _other_anomalies(r))
    trend = [a for a in anomalies if a.code == TREND_BREAK]
    nearest = _nearest(near) if not trend and near else []
    tp = [s for s in near if s.metric == "throughput_gbps"]
    rows = [{"rank": a.rank, "code": a.code, "implementation": a.implementation, "msg_size": a.msg_size,
             "threads": a.threads, "metric": a.metric, "before": a.before, "after": a.after,
             "change_pct": a.change_pct, "score": a.score, "p_value": a.p_value, "flagged": True} for a in anomalies]
    rows += [{"rank": len(anomalies) + i, "code": "within_expectations", "implementation": s.implementation,
              "msg_size": s.end[0], "threads": s.end[1], "metric": s.metric, "change_pct": s.change_pct,
              "score": s.score, "flagged": False} for i, s in enumerate(nearest, 1)]
    chart = chart_rows(r, ["throughput_gbps", "latency_us", "cs_per_mib", "llc_misses_per_kib"])
    if rows:
        marks = {(a.implementation, a.msg_size, a.threads): str(a.rank) for a in anomalies}
        chart["anomaly"] = [marks.get(k, "") for k in zip(chart.implementation, chart.msg_size, chart.threads)]
    cav = caveats(r, [])
    if any(n.source == "assumed" for n in noises.values()):
        cav.append(Caveat("assumed_noise"))
    incidents = _incidents(r, trend, noises)
    lfs = min(tp or near, key=lambda s: s.change_pct) if near else None
    judged = [j for i in incidents[:1] for j in i["judgements"]]
    return AnomaliesFacts(
        code=FOUND if trend else NONE_FOUND, caveats=cav, evidence=pd.DataFrame(rows), chart_data=chart,
        checked=checked, noise=noises, anomalies=anomalies, nearest=nearest,
        least_favourable_step=lfs,
        least_favourable_throughput_step=min(tp, key=lambda s: s.change_pct) if tp else None,
        incidents=incidents, hypotheses=judged,
        reasons=_reasons(incidents, [a for a in anomalies if a.code != TREND_BREAK], lfs))


# --------------------------------------------------------------------------- prose
TREND_WORDS = {("throughput_gbps", "msg_size"): "throughput fell as size grew",
               ("throughput_gbps", "threads"): "throughput fell as threads grew",
               ("latency_us", "msg_size"): "latency inversion: fell as size grew",
               ("latency_us", "threads"): "latency inversion: fell as threads grew"}
METRIC_WORDS = {"throughput_gbps": ("throughput", "Gbps"), "latency_us": ("per-send latency", "us")}


def step_words(s: Step) -> str:
    (a_size, a_t), (b_size, b_t) = s.start, s.end
    if s.dim == "msg_size":
        return f"{a_size} B -> {b_size} B at {prose.threads([a_t])}"
    return f"{prose.threads([a_t])} -> {prose.threads([b_t])} at {a_size} B"


def kind_words(a: Anomaly, f: AnomaliesFacts) -> str:
    if a.code == TREND_BREAK:
        return TREND_WORDS[(a.metric, a.step.dim)]
    return {HIGH_VARIATION: f"high variation between repeats (CV > {share(f.parameters.high_cv)})",
            OUTSTANDING_COMPLETIONS: "zero-copy completions outstanding",
            ENOBUFS: "zero-copy ENOBUFS (optmem exhausted)", FAILED: "failed point"}[a.code]


def _where(a: Anomaly) -> str:
    return {TREND_BREAK: step_words(a.step) if a.step else "", HIGH_VARIATION: f"{a.repeats} repeats",
            OUTSTANDING_COMPLETIONS: "completions vs messages sent", ENOBUFS: "-",
            FAILED: f"repeat {a.repeat}"}[a.code]


def what_changed(a: Anomaly) -> str:
    if a.code == HIGH_VARIATION:
        return f"CV {share(a.cv)}; 95% CI of the mean {num(a.before)}-{num(a.after)} Gbps"
    if a.code == OUTSTANDING_COMPLETIONS:
        return f"{share(1 - a.after / a.before, 1)} of sends never reported a completion"
    if a.code == ENOBUFS:
        return f"{int(a.after)} sends got ENOBUFS and were retried"
    if a.code == FAILED:
        return a.error
    parts = [f"{label(m)} {times(x)}" for m, x in a.changes.items()]
    o = a.oversubscription
    if o:
        parts.append(f"crosses into oversubscription ({o['busy']} busy threads > {o['cores']} cores)" if o["crosses"]
                     else f"oversubscribed ({o['busy']} busy threads > {o['cores']} cores)")
    text = ", ".join(parts) if parts else f"no per-byte figure changed by {NOTABLE_CHANGE:.0%} or more"
    if a.others:
        text += "; the other strategies at the same step: " + ", ".join(f"{s} {pct(c)}" for s, c in a.others.items())
    return text


def _table(f: AnomaliesFacts) -> pd.DataFrame:
    found = pd.DataFrame([{"rank": a.rank, "kind": kind_words(a, f), "implementation": a.implementation,
                           "msg_size": a.msg_size, "threads": a.threads, "step": _where(a), "metric": a.metric,
                           "before": a.before, "after": a.after, "change_pct": a.change_pct, "score": a.score,
                           "p_value": a.p_value, "what_changed": what_changed(a)} for a in f.anomalies])
    found["flagged"] = True
    if not f.nearest:
        return found
    nearest = pd.DataFrame([{"kind": "within expectations: " + ("throughput" if s.metric == "throughput_gbps"
                                                                 else "latency"),
                             "implementation": s.implementation, "msg_size": s.end[0], "threads": s.end[1],
                             "step": step_words(s), "metric": s.metric, "change_pct": s.change_pct, "score": s.score,
                             "flagged": False} for s in f.nearest])
    table = pd.concat([found, nearest], ignore_index=True) if len(found) else nearest
    table["rank"] = range(1, len(table) + 1)
    return table


def noise_words(noise: dict | None, score: float) -> str:
    """A step's score in its own unit: the change over the standard error of a difference of two
    values (sqrt(se_a^2 + se_b^2)), each from the measured noise, or the assumed one (said so)."""
    if noise and noise["source"] == "assumed":
        return f"{num(score, 2)} standard errors of a step, from an assumed {share(noise['relative'])} noise per value"
    return f"{num(score, 2)} standard errors of a step, from the measured noise"


def _step_of(i: dict) -> str:
    return step_words(Step(i["implementation"], i["metric"], i["dim"], tuple(i["start"]), tuple(i["end"]), 0, 0))


def _gain(judged) -> bool:
    """The break was an improvement: its supported causes are costs or waits that fell."""
    return any(j.numbers.get("direction") == "gain" or (j.numbers.get("total_cpu_s_per_gb") or 0) < 0
               for j in judged if j.status == "supported")


def _because(i: dict, judged) -> str:
    causes = [n for n in prose.named(judged) if not n.startswith("a property of the configuration")]
    head = "supported (they fell): " if _gain(judged) else "supported: "
    return head + prose.join(causes) if causes else "no measured cause is supported"


def _incident_words(i: dict, judged) -> str:
    what, unit = METRIC_WORDS[i["metric"]]
    where = prose.point(i["msg_size"], i["threads"])
    # the change from the step's start (its values and the whole step are in --json: a reason's 6 numbers)
    moved = f"{pct(i['change_pct'])} over its step" if i["dim"] else ""
    noise = noise_words(i["noise"], i["score"])
    # clauses in the order they matter: what broke, what changed with it, the other strategies, the
    # rest; prose.fit keeps those that fit a reason's 6 numbers (all of them are in --json)
    others = ", ".join(f"{k} {pct(c)}" for k, c in (i["others"] or {}).items())
    if i["code"] == SYSTEM_WIDE:
        head = (f"At {where} every strategy's {what} broke its trend ({i['implementation']} {moved}, {noise})")
        rest = ["a property of the system at this configuration, not of a strategy",
                f"the others at the same step: {others}"]
    elif i["code"] == WEAK_BASELINE and i["dim"] is None:
        w = i["weak"][0]
        axis = "size" if w["axis"] == "msg_size" else "thread count"
        head = (f"{i['implementation']} at {where} is a weak baseline point: its {what} is "
                f"{share(-w['shortfall_pct'] / 100, 1)} below its own trend over {axis} ({noise})")
        rest = ["every verdict that beats it there rests on this point",
                "the other strategies held theirs: " + ", ".join(f"{k} {pct(c)}" for k, c in w["others_pct"].items())]
        if i.get("explains"):
            rest.append(f"it also explains {i['explains']} trend break(s) next to it")
    elif i["code"] == WEAK_BASELINE:
        w = i["weak"][0]
        head = (f"{i['implementation']} at {where} is a weak baseline point: its {what} {moved}, {noise}, while the "
                "other strategies held their trend")
        rest = ["every verdict that beats it there rests on this point",
                f"{i['implementation']} is {share(-w['shortfall_pct'] / 100, 1)} below its own trend there"]
    else:
        head = f"{i['implementation']} at {where}: {what} {moved}, {noise}"
        rest = [f"the other strategies at the same step: {others}"] if others else []
    changed = [f"{label(m)} {times(x)}" for m, x in (i["changes"] or {}).items()][:2]
    clauses = [head] + (["with it " + ", ".join(changed)] if changed else []) + rest + [_because(i, judged)]
    return "; ".join(clauses) + f" [worker{', perf' if changed else ''}]."


def accounted_causes(judged) -> dict | None:
    """The accounted (both ends') mechanisms of a break: the total gap and the supported ones,
    largest share first; None where the step was not profiled."""
    mech = [j for j in judged if j.name in hyp.MECHANISM_NAMES and j.numbers.get("role") == "both"
            and "total_cpu_s_per_gb" in j.numbers]
    if not mech:
        return None
    sup = sorted((j for j in mech if j.status == "supported" and j.numbers.get("share") is not None),
                 key=lambda j: -j.numbers["share"])
    return {"total": mech[0].numbers["total_cpu_s_per_gb"], "negligible": bool(mech[0].numbers.get("negligible")),
            "supported": [(prose.HYPOTHESIS_WORDS[j.name][0], j.numbers["share"]) for j in sup[:SHOWN_CAUSES]]}


def _cause_shares(c: dict) -> str:
    return ", ".join(f"{n} {share(s)}" for n, s in c["supported"])


def _accounted_words(i: dict) -> str:
    c = accounted_causes(i["judgements"])
    s = f"Accounted over both ends at {prose.point(i['msg_size'], i['threads'])} over its step: "
    if c["negligible"]:
        return s + "about the same CPU per GB at both ends of the step, no cost difference to account for [profile]."
    s += f"{c['total']:+.3g} CPU-s/GB; "
    return s + (f"largest supported causes (share of the gap): {_cause_shares(c)}" if c["supported"]
                else "no accounted class is supported") + " [profile]."


def _reason_words(f: AnomaliesFacts, x) -> str:
    if x.code == ACCOUNTED:
        return _accounted_words(f.incidents[0])
    if x.code in (SYSTEM_WIDE, WEAK_BASELINE, STRATEGY_BREAK):
        i = next(i for i in f.incidents if (i["msg_size"], i["threads"]) == (x.numbers["msg_size"],
                                                                               x.numbers["threads"]))
        return _incident_words(i, i["judgements"])
    if x.code == OTHERS:
        words = {HIGH_VARIATION: "high variation between repeats", OUTSTANDING_COMPLETIONS:
                 "zero-copy completions outstanding", ENOBUFS: "zero-copy ENOBUFS", FAILED: "failed point(s)"}
        return "Also: " + "; ".join(f"{n} {words[k]}" for k, n in x.numbers["counts"].items()) + " [worker]."
    w = f.least_favourable_step
    noise = f.noise.get(w.metric)
    lead = ("No step fell: the smallest change was" if w.change_pct >= 0 else "The least favourable step was")
    return (f"{lead} {w.implementation} {METRIC_WORDS[w.metric][0]} {pct(w.change_pct)} over "
            f"{step_words(w)} ({noise_words(None if noise is None else asdict(noise), w.score)}); the evidence lists "
            "the nearest cases [worker].")


def _headline(f: AnomaliesFacts) -> str:
    if not f.incidents:
        return "No result breaks the expected trends beyond noise."
    i = f.incidents[0]
    what = METRIC_WORDS[i["metric"]][0]
    who = {SYSTEM_WIDE: "every strategy", WEAK_BASELINE: f"baseline {i['implementation']}",
           STRATEGY_BREAK: i["implementation"]}[i["code"]]
    acc_c = accounted_causes(i["judgements"])
    shown = [] if acc_c is None else acc_c["supported"]
    accounted = {n for n, _ in shown} | ({prose.HYPOTHESIS_WORDS[n][0] for n in hyp.MECHANISM_NAMES}
                                         if acc_c is not None else set())
    causes = [n.split(" (")[0] for n in prose.named(i["judgements"])
              if not n.startswith("a property") and n not in accounted]
    head = (f"The heaviest trend break: {who}'s "
            f"{what} {pct(i['change_pct'])} at {prose.point(i['msg_size'], i['threads'])}")
    if shown:
        # the largest accounted causes with their shares (the next reason shows them), then one other
        rest = f", and {causes[0]}" if causes else ""
        return head + ("; supported (they fell): " if _gain(i["judgements"]) else "; supported: ") + \
            _cause_shares(acc_c) + rest + "."
    causes = causes[:3]
    # the counts are in the facts; the headline holds only numbers its reasons show
    return head + ((", with less " if _gain(i["judgements"]) else ", with ") + f"{prose.join(causes)}."
                   if causes else ", no measured cause supported.")


def _json_text(f: AnomaliesFacts) -> dict:
    p = f.parameters
    lf = f.least_favourable_throughput_step
    return {
        **prose.method_text(
            trend_break=(f"change >= {share(p.min_effect)} in the unexpected direction and >= {p.min_score:g}x the "
                         f"standard error of the difference, each configuration's standard deviation floored at "
                         f"{share(p.noise_floor)} of its median (and Welch p<{p.alpha} with repeats)"),
            noise={m: (f"repeats (median CV {share(n.relative, 1)})" if n.source == "repeats"
                       else f"assumed {share(n.relative)} relative noise (no repeats)") for m, n in f.noise.items()}),
        "anomalies": [{"kind": kind_words(a, f), "step": _where(a), "what_changed": what_changed(a)}
                      for a in f.anomalies],
        **({"least_favourable_throughput_step": {"step": step_words(lf)}} if lf is not None else {}),
    }


def render(f: Facts) -> Prose:
    table = _table(f)
    key = ["rank", "kind", "implementation", "msg_size", "threads", "step", "change_pct", "score"]
    reasons = [_reason_words(f, x) for x in f.reasons]
    return prose.answer(f, _headline(f), reasons, table, key=key, text=_json_text(f))
