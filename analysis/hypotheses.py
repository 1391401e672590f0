"""Candidate explanations, judged from the evidence: supported, contradicted or not measured.

The catalogue is data: each `Hypothesis` names the evidence it reads (a figure per row, where
it comes from) and a small predicate over a `Scope` (the rows to explain, `at`, and the rows
they are set against, `ref`: the same strategy one step before, or the copy baseline at the
same configurations). A predicate returns a `Judgement` (status, the numbers it used, their
source) or None where the hypothesis does not apply (pinning for a strategy that pins nothing).
The words are `analysis.questions.prose.hypothesis`; the questions pick the names they test.

To add one: a figure function (or a column) and a `rises(...)` entry in CATALOGUE, or a
function taking (Results, Scope); then its sentence in prose.HYPOTHESIS_WORDS.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from netobs import strategies

from .load import KEY, Results

from . import accounting as acc

SUPPORTED, CONTRADICTED, NOT_MEASURED = acc.SUPPORTED, acc.CONTRADICTED, acc.NOT_MEASURED
INCONCLUSIVE = acc.INCONCLUSIVE
STATUS_ORDER = {SUPPORTED: 0, INCONCLUSIVE: 1, CONTRADICTED: 2, NOT_MEASURED: 3}
RISE = 1.5            # a cost "rose" when it is at least 1.5x its reference ...
WEAK = 0.10           # a baseline point is weak when it sits >= 10% below what its neighbours predict
COPIED_MOSTLY = 0.5   # zero-copy pages copied on delivery: from half of the completions on


Point = tuple  # (implementation, msg_size, threads)


@dataclass(frozen=True)
class Scope:
    """What is explained (`at`) against what (`ref`); `kind` is "step" (a trend break: the same
    strategy before it) or "baseline" (a comparison: the copy baseline at the same points)."""

    at: tuple[Point, ...]
    ref: tuple[Point, ...] = ()
    kind: str = "baseline"
    metric: str = "throughput_gbps"   # what broke (a step) or is compared: system_wide judges on it


@dataclass
class Judgement:
    name: str
    status: str
    source: str
    numbers: dict = field(default_factory=dict)
    scope: str = ""          # which (scope, role) it judges: one verdict per (name, scope) per run

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "source": self.source, **self.numbers,
                **({"scope": self.scope} if self.scope else {})}


@dataclass(frozen=True)
class Hypothesis:
    name: str
    judge: Callable[..., Judgement | None]
    role: str | None = None       # the side a mechanism is judged for (None: the hypothesis decides)


def scope_key(s: Scope, role: str | None) -> str:
    """A judgement's scope in words: what against what, and for which side."""
    def pts(ps):
        return ",".join(f"{p[0]}/{int(p[1])}/{int(p[2])}" for p in ps)
    return f"{s.kind}:{pts(s.at)}<-{pts(s.ref)}" + (f"@{role}" if role else "")


def scope_points(key: str) -> tuple[list[Point], list[Point]]:
    """The (at, ref) points of a `scope_key` ([] and [] for a key of another form)."""
    if ":" not in key or "<-" not in key:
        return [], []
    body = key.split(":", 1)[1].split("@", 1)[0]
    at, ref = body.split("<-", 1)

    def pts(text):
        out = []
        for p in filter(None, text.split(",")):
            impl, size, threads = p.rsplit("/", 2)
            out.append((impl, int(size), int(threads)))
        return out
    return pts(at), pts(ref)


# ----------------------------------------------------------------------------- per-row figures
def _span(runs: pd.DataFrame) -> pd.Series:
    """Thread-seconds of one point: its threads x (warm-up + window); the profile covers both."""
    return runs["threads"] * (runs["warmup_s"].fillna(0) + runs["window_s"])


def _wait_share(role: str, reason: str) -> Callable[[pd.DataFrame], pd.Series]:
    def f(runs):
        col = f"wait_{role}_{reason}_s"
        return runs[col] / _span(runs) if col in runs else pd.Series(np.nan, index=runs.index)
    return f


def _column(col: str) -> Callable[[pd.DataFrame], pd.Series]:
    return lambda runs: runs[col] if col in runs else pd.Series(np.nan, index=runs.index)


def _sum(*cols: str) -> Callable[[pd.DataFrame], pd.Series]:
    def f(runs):
        present = [c for c in cols if c in runs]
        if not present:
            return pd.Series(np.nan, index=runs.index)
        return runs[present].sum(axis=1, min_count=1)
    return f


def wait_share(role: str, reason: str) -> Callable[[pd.DataFrame], pd.Series]:
    """Per row: the share of the role's thread time spent off-CPU for `reason` (profile)."""
    return _wait_share(role, reason)


def value(r: Results, fig: Callable, points) -> float:
    """The median over `points` of each point's median over repeats (NaN where unmeasured)."""
    if not points:
        return math.nan
    def medians():
        runs = r.runs
        s = fig(runs)
        return None if s.notna().sum() == 0 else s.groupby([runs[k] for k in KEY]).median()

    med = r.memo(("value", fig), medians)
    if med is None:
        return math.nan
    vals = [med.get(tuple(p), np.nan) for p in points]
    vals = [v for v in vals if v == v]
    return float(np.median(vals)) if vals else math.nan


def _is_zero_copy(impl: str) -> bool:
    s = strategies.BY_NAME.get(impl)
    return bool(s and s.zero_copy)


# ----------------------------------------------------------------------------- predicates
def rises(name: str, fig: Callable, source: str, level: float, zero_copy_only: bool = False,
          ratio: float = RISE) -> Hypothesis:
    """Supported when the figure at `at` is at least `level` and at least `ratio` x its value at
    `ref` (or `ref` has none: level alone); contradicted when measured and not; not measured
    where either side lacks it."""
    def judge(r: Results, s: Scope) -> Judgement | None:
        if zero_copy_only and not any(_is_zero_copy(p[0]) for p in s.at):
            return None
        at = value(r, fig, s.at)
        ref = value(r, fig, s.ref) if s.ref else math.nan
        if at != at or (s.ref and ref != ref and not zero_copy_only):
            return Judgement(name, NOT_MEASURED, source)
        # for a gain only a cost that fell explains it: the sides swap
        gain = bool(s.ref) and ref == ref and direction(r, s) < 0
        hi, lo = (ref, at) if gain else (at, ref)
        ok = hi >= level and (lo != lo or lo <= 0 or hi >= ratio * lo)
        return Judgement(name, SUPPORTED if ok else CONTRADICTED, source,
                         {"value": at, "ref": None if ref != ref else ref, "level": level,
                          **({"direction": "gain"} if gain else {})})
    return Hypothesis(name, judge)


LOWER_IS_BETTER_NOT = ("throughput_gbps", "goodput_gbps")


def direction(r: Results, s: Scope) -> int:
    """+1 where `at` did worse than `ref` on the scope's metric (a loss to explain), -1 better, 0 equal."""
    if not s.ref or s.metric not in r.runs:
        return 0
    # the same aggregate as the headline's ratio (RATIO_AGGREGATE where the points pair up)
    x = acc.ratio_of(r, s.metric, s.at, s.ref)
    if x != x or x == 1:
        return 0
    worse = x < 1 if s.metric in LOWER_IS_BETTER_NOT else x > 1
    return 1 if worse else -1


def mechanism(name: str, role: str = "both", fallback: Callable | None = None, cls: str | None = None) -> Hypothesis:
    """A cost mechanism judged by its class's signed share of the CPU-s/GB gap (accounting)."""
    cls = cls or acc.MECHANISMS[name]

    def judge(r: Results, s: Scope, role: str = role) -> Judgement | None:
        a = acc.account(r, s, role) if s.ref else None
        if a is None:
            return fallback(r, s) if fallback else Judgement(name, NOT_MEASURED, "profile")
        nums = acc.mechanism_numbers(a, cls)
        return Judgement(name, acc.mechanism_status(nums), "profile", nums)
    return Hypothesis(name, judge, role)


def thread_time(name: str, role: str, what: str) -> Hypothesis:
    """A share of the working threads' time (a wait reason, or `preempted`): judged by how much
    it changed in the direction that explains the scope's change (a loss: it rose), with the
    accounting's two thresholds as shares of thread time."""
    def judge(r: Results, s: Scope) -> Judgement:
        share = acc.thread_share(r.runs, role, what)
        if share.notna().sum() == 0 or not s.ref:
            return Judgement(name, NOT_MEASURED, "profile")
        at, ref = acc._mean_of(r, share, s.at), acc._mean_of(r, share, s.ref)
        if at != at or ref != ref:
            return Judgement(name, NOT_MEASURED, "profile")
        d = direction(r, s) or 1
        change = (at - ref) * d
        return Judgement(name, acc.share_status(change), "profile",
                         {"role": role, "reason": what, "value": at, "ref": ref, "explaining_change": change,
                          "direction": "loss" if d > 0 else "gain"})
    return Hypothesis(name, judge, role)


def network(name: str, fig: str, source: str) -> Hypothesis:
    """A network figure per MiB: supported where it moved NETWORK_FACTOR x or more the way
    that explains the change (more retransmits for a loss, fewer for a gain); contradicted where
    it moved less than NETWORK_KEPT x that way (or the other way, or stayed under its floor);
    inconclusive in between."""
    def judge(r: Results, s: Scope) -> Judgement:
        series = acc.network_series(r.runs, fig)
        if series.notna().sum() == 0 or not s.ref:
            return Judgement(name, NOT_MEASURED, source)
        at, ref = acc._mean_of(r, series, s.at), acc._mean_of(r, series, s.ref)
        if at != at or ref != ref:
            return Judgement(name, NOT_MEASURED, source)
        d = direction(r, s) or 1
        hi, lo = (at, ref) if d > 0 else (ref, at)
        floor = acc.NETWORK[fig][1]
        if hi >= floor and hi >= acc.NETWORK_FACTOR * lo:
            status = SUPPORTED
        elif hi >= floor and hi >= acc.NETWORK_KEPT * lo:
            status = acc.INCONCLUSIVE
        else:
            status = CONTRADICTED
        return Judgement(name, status, source,
                         {"value": at, "ref": ref, "factor": acc.NETWORK_FACTOR, "kept": acc.NETWORK_KEPT,
                          "direction": "loss" if d > 0 else "gain"})
    return Hypothesis(name, judge)


_PREEMPTED = {role: thread_time("oversubscription", role, "preempted") for role in ("client", "server")}


def _oversubscription(r: Results, s: Scope) -> Judgement:
    """Measured where a profile has the working threads' preempted share (the side whose change
    explains most decides; where both sides contradict it, the one that moved most is cited: a
    client 1% -> 43% during a gain, not the server's 0.6% -> 4.9%); else from the thread count
    against the cores, assumed busy."""
    measured = [j for j in (h.judge(r, s) for h in _PREEMPTED.values()) if j.status != NOT_MEASURED]
    if measured:
        best = max(measured, key=lambda j: j.numbers["explaining_change"])
        if all(j.status == CONTRADICTED for j in measured):
            best = max(measured, key=lambda j: abs(j.numbers["explaining_change"]))
        return Judgement("oversubscription", best.status, "profile", {**best.numbers, "measured": True})
    cores = r.host_cores
    if not s.at:   # nothing measured at this scope (e.g. no configuration shared with the baseline)
        return Judgement("oversubscription", NOT_MEASURED, "manifest", {"threads": None})
    threads = max(p[2] for p in s.at)
    if cores is None:
        return Judgement("oversubscription", NOT_MEASURED, "import" if r.imported else "manifest",
                         {"threads": threads})
    busy = 2 * threads
    before = 2 * max(p[2] for p in s.ref) if s.ref else None
    if s.kind == "baseline":
        # both sides of a comparison share the host: it explains the difference only where every
        # point compared is oversubscribed
        crosses = 2 * min(p[2] for p in s.at) > cores
    else:
        crosses = busy > cores and (before is None or before <= cores)
    nums = {"busy_threads": busy, "cores": cores, "threads": threads}
    if crosses and s.kind == "step":
        # oversubscription slows every strategy: where the others held, it does not explain the break
        shared = _system_wide(r, s)
        if shared is not None and shared.status == CONTRADICTED:
            return Judgement("oversubscription", CONTRADICTED, "manifest", {**nums, "others_held": True})
    return Judgement("oversubscription", SUPPORTED if crosses else CONTRADICTED, "manifest", nums)


def _deferred_copy(r: Results, s: Scope) -> Judgement | None:
    """A receiver on the same host makes the kernel copy zero-copy pages (completion codes,
    or the profile's deferred_copy class)."""
    zc = tuple(p for p in s.at if _is_zero_copy(p[0]))
    if not zc:
        return None
    copied = value(r, _column("zc_copied_fraction"), zc)
    # a cost figure: the accounting's COST_AGGREGATE (a mean over configurations), not a median
    col = "prof_client_deferred_copy_cpu_s_per_gb"
    prof = acc._mean_of(r, acc.column(r.runs, col), zc) if col in r.runs else math.nan   # (the memoised column)
    local = r.receiver_local
    nums_local = bool(local)
    # with the receiver on another host a copy is not the local-delivery one: named apart
    name = "deferred_copy_remote" if local is False else "deferred_copy_local"
    where = "remote, on this kernel" if r.topology == "remote" and local else r.topology
    nums = {"copied_fraction": None if copied != copied else copied,
            "deferred_copy_cpu_s_per_gb": None if prof != prof else prof, "topology": where}
    a = acc.account(r, s, "both") if s.ref else None
    if a is None and s.kind == "step":   # completion codes judge a comparison, not a step
        return None
    if a is not None and a.total and name == "deferred_copy_local":
        m = acc.mechanism_numbers(a, "deferred_copy")
        return Judgement(name, acc.mechanism_status(m), "profile", {**nums, **m})
    if copied == copied:
        return Judgement(name, SUPPORTED if copied >= COPIED_MOSTLY else CONTRADICTED, "worker", nums)
    if prof == prof:
        return Judgement(name, SUPPORTED if prof > 0 else CONTRADICTED, "profile", nums)
    return Judgement(name, NOT_MEASURED, "import" if r.imported else "worker", {**nums, "local": nums_local})


def _config_medians(r: Results, metric: str) -> dict:
    """Per configuration: the median of `metric` over repeats, as a dict (once per results: the
    trend of every point is judged against its neighbours)."""
    return r.memo(("config_median_dict", metric), lambda: r.runs.groupby(KEY)[metric].median().to_dict())


def _dip(r: Results, impl: str, point: Point, metric: str = "throughput_gbps") -> dict | None:
    """How far `impl`'s value at `point` sits off its own trend: against the geometric mean of
    its two neighbours along size (or threads), where both exist; with the other strategies'
    deviation at the same point on the same axis. None where no axis has both neighbours."""
    med = _config_medians(r, metric)
    sizes = r.memo("sizes", lambda: sorted(int(x) for x in r.runs.msg_size.unique()))
    counts = r.memo("threads", lambda: sorted(int(x) for x in r.runs.threads.unique()))
    _, size, t = point

    def deviation(i, axis):
        values, cur = (sizes, size) if axis == "msg_size" else (counts, t)
        k = values.index(cur)
        if k == 0 or k == len(values) - 1:
            return np.nan, np.nan
        at = (lambda v: (i, v, t)) if axis == "msg_size" else (lambda v: (i, size, v))
        here, lo, hi = (med.get(at(v), np.nan) for v in (cur, values[k - 1], values[k + 1]))
        if not (here > 0 and lo > 0 and hi > 0):
            return np.nan, np.nan
        return math.log(here) - 0.5 * (math.log(lo) + math.log(hi)), math.log(hi) - math.log(lo)

    found = []
    for axis in ("msg_size", "threads"):
        own, growth = deviation(impl, axis)
        if own != own:
            continue
        rest = {o: deviation(o, axis) for o in r.impls if o != impl}
        rest = {o: d for o, d in rest.items() if d[0] == d[0]}
        others = {o: (math.exp(d) - 1) * 100 for o, (d, _) in rest.items()}
        # a dip, not a step: across the two neighbours it grew as the others did
        gap = growth - float(np.median([g for _, g in rest.values()])) if rest else math.nan
        found.append({"axis": axis, "shortfall_pct": (math.exp(own) - 1) * 100, "others_pct": others,
                      "growth_gap_pct": (math.exp(gap) - 1) * 100 if gap == gap else None})
    # the axis along which the dip is the baseline's alone, else the deepest
    weak = [d for d in found if _is_weak(d)]
    return min(weak or found, key=lambda d: d["shortfall_pct"]) if found else None


def _is_weak(d: dict | None) -> bool:
    """A dip of WEAK or more that the other strategies do not share (each within WEAK / 2),
    between neighbours that grew as the others' did (a regime change is a step, not a dip)."""
    return bool(d and d["shortfall_pct"] <= -WEAK * 100 and d["others_pct"]
                and all(abs(x) <= WEAK * 50 for x in d["others_pct"].values())
                and d["growth_gap_pct"] is not None and abs(d["growth_gap_pct"]) <= WEAK * 100)


def _weak_baseline(r: Results, s: Scope) -> Judgement | None:
    """The baseline's own point is off its trend where the others are not (comparisons only)."""
    if s.kind != "baseline" or not s.ref:
        return None
    weak, trended = [], 0
    for p in dict.fromkeys(s.ref):
        d = _dip(r, p[0], p)
        trended += d is not None
        if _is_weak(d):
            weak.append({"implementation": p[0], "msg_size": int(p[1]), "threads": int(p[2]), **d})
    if not trended:
        # every baseline point is at the end of its axes: no neighbours either side, no trend to sit off
        return Judgement("weak_baseline", NOT_MEASURED, "worker", {"points": [], "no_trend": True})
    if not weak:
        return Judgement("weak_baseline", CONTRADICTED, "worker", {"points": []})
    return Judgement("weak_baseline", SUPPORTED, "worker", {"points": weak})


def weak_points(r: Results, impl: str) -> list[dict]:
    """Every configuration where `impl` sits WEAK or more below its own trend while the other
    strategies hold theirs (a weak baseline point)."""
    out = []
    for (i, size, t) in r.runs[r.runs.implementation == impl][KEY].drop_duplicates().itertuples(index=False):
        d = _dip(r, impl, (i, int(size), int(t)))
        if _is_weak(d):
            out.append({"implementation": impl, "msg_size": int(size), "threads": int(t), **d})
    return out


def _system_wide(r: Results, s: Scope) -> Judgement | None:
    """A step's break shared by every measured strategy: a property of the configuration."""
    if s.kind != "step" or len(s.at) != 1 or len(s.ref) != 1:
        return None
    (impl, bs, bt), (_, a_s, a_t) = s.at[0], s.ref[0]
    med = _config_medians(r, s.metric)
    changes = {}
    for other in r.impls:
        va, vb = med.get((other, a_s, a_t), np.nan), med.get((other, bs, bt), np.nan)
        if va == va and vb == vb and va > 0:
            changes[other] = (vb / va - 1) * 100
    own = changes.get(impl)
    rest = {k: v for k, v in changes.items() if k != impl}
    if own is None or not rest:
        return Judgement("system_wide", NOT_MEASURED, "worker", {"changes": changes})
    shared = all(v <= own / 2 for v in rest.values()) if own < 0 else all(v >= own / 2 for v in rest.values())
    return Judgement("system_wide", SUPPORTED if shared else CONTRADICTED, "worker",
                     {"changes": changes, "metric": s.metric})


def placed(h: Hypothesis) -> Hypothesis:
    """A cause that CPU placement moves (softirq work on the sender: the receive path runs in the
    sender's softirq when both ends share a CPU; cross-CPU wake-ups: the scheduler's cost when
    they do not): its judgement cites the measured shared-CPU share of both sides (analysis.noise)."""
    from .noise import placement_numbers

    def judge(r: Results, s: Scope, role: str | None = h.role) -> Judgement | None:
        j = h.judge(r, s, role) if h.judge.__code__.co_argcount >= 3 else h.judge(r, s)
        if j is not None:
            j.numbers.update(placement_numbers(r, s))
        return j
    return Hypothesis(h.name, judge, h.role)


CATALOGUE: dict[str, Hypothesis] = {h.name: h for h in (
    Hypothesis("oversubscription", _oversubscription),
    Hypothesis("system_wide", _system_wide),
    Hypothesis("weak_baseline", _weak_baseline),
    thread_time("sndbuf_full", "client", "sndbuf_full"),
    thread_time("waiting_for_data", "server", "wait_data"),
    thread_time("lock_contention", "client", "lock"),
    Hypothesis("deferred_copy_local", _deferred_copy),
    *(mechanism(n) for n in acc.MECHANISMS if n not in ("deferred_copy", "scheduling")),
    placed(mechanism("scheduling", fallback=rises("scheduling", _column("cs_per_mib"), "perf", 0.0).judge)),
    placed(mechanism("softirq_on_sender", "client", cls="softirq_rx")),
    network("retransmissions", "retrans_per_mib", "netstat"),
    network("link_packets", "link_packets_per_mib", "netstat"),
    rises("memory_pressure", _sum("trace_client_mem_pressure_events", "netstat_client_tcpext_tcpmemorypressures"),
          "trace", 1.0),
    rises("cache_working_set", _column("llc_misses_per_kib"), "perf", 0.0, ratio=1.1),
)}
# the mechanisms every comparison and trend break is accounted by (the headline's causes)
MECHANISM_NAMES = ("deferred_copy_local",) + tuple(n for n in acc.MECHANISMS if n != "deferred_copy")
# not in the data at all (no column holds them): named so an answer can say what would decide
UNMEASURABLE = {"cpu_migration": "perf cpu-migrations is not recorded"}


def judge(r: Results, scope: Scope, names, role: str | None = None) -> list[Judgement]:
    """The named hypotheses judged at `scope` (those that do not apply left out), supported first.
    Each (hypothesis, scope, role) is judged once per loaded results and the same Judgement is
    returned to every question that asks (one piece of evidence, one verdict)."""
    cache = acc._cache(r)
    out = []
    for n in names:
        h = CATALOGUE[n]
        side = role if (role and h.role) else h.role
        key = ("judgement", n, scope, side)
        if key not in cache:
            j = h.judge(r, scope, side) if (side and h.role and h.judge.__code__.co_argcount >= 3) else h.judge(r, scope)
            if j is not None:
                j.scope = scope_key(scope, side)
            cache[key] = j
        if cache[key] is not None:
            out.append(cache[key])
    return sorted(out, key=lambda j: STATUS_ORDER[j.status])


def supported(judgements) -> list[str]:
    return [j.name for j in judgements if j.status == SUPPORTED]
