"""Cost accounting: where a comparison's CPU-seconds per GB went, class by class, so the class
gaps add up to the total gap exactly; and the hypotheses judged by their share of that gap.

    acc = account(results, scope, "client")        # or "server", or "both" (the two ends summed)
    acc.total, acc.gaps["tcp_tx"], acc.shares["tcp_tx"], acc.residual
    hypotheses.judge(results, scope, ["page_pinning"], role="client")   # judged by share, once per (hypothesis, scope, role)

Declared once here, used by every question and by `compare`:
- COST_AGGREGATE: a cost figure of a set of configurations is the mean over those
  configurations of each configuration's mean over repeats. It is linear, so the class gaps of
  a comparison sum to its total gap exactly (a median of sums is not the sum of medians).
- RATIO_AGGREGATE: a throughput (or any other) ratio between two strategies is the median over
  configurations of the per-configuration ratio of medians (`analysis.stats`, "median change").
- SUPPORTED_SHARE / CONTRADICTED_SHARE: a mechanism whose signed share of the gap is at least
  10% (and whose interval excludes zero where there are repeats) is supported; below 2%, or of
  the other sign, contradicted; in between inconclusive. The signed share is gap / total: for
  a loss (the total rose) only rising classes have a positive share, for a gain only falling ones.
- A share of working-thread time (a wait reason, being preempted) is judged by its change with
  the same two thresholds, in the direction that would explain the throughput change.
- NETWORK_FACTOR: a network figure (packets, segments, retransmits per MiB) that differs 3x or
  more between the two sides is a reason of its own (its hypothesis supported where it moved the
  way that explains the change); one that moved less than NETWORK_KEPT x that way, or the other
  way, contradicts it; in between (1.25x to 3x) it is inconclusive.

The per-role figures are runs.csv's prof_<role>_<class>_cpu_s_per_gb (netobs.profiler: the class
share of samples x sampled CPU-seconds / GB the role moved over the profile's life); "both" is
the client's plus the server's. Working-thread figures (work_<role>_*) leave out the workers'
harness threads (the main thread that starts, sleeps out the window and joins).
"""
from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from netobs.figures import PROFILE_CLASSES, ROLES, WAIT_REASONS

from .load import KEY, Results
from .stats import _t_quantile

SUPPORTED_SHARE = 0.10
CONTRADICTED_SHARE = 0.02
NETWORK_FACTOR = 3.0
NETWORK_KEPT = 1.25
MIN_GAP = 0.05     # a total gap below 5% of the reference's CPU-s/GB is no cost difference to account for
COST_AGGREGATE = ("mean over configurations of each configuration's mean over repeats "
                  "(linear: the class gaps sum to the total gap)")
RATIO_AGGREGATE = "median over configurations of the per-configuration ratio of medians"
SCOPES = ROLES + ("both",)
SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_MEASURED = "supported", "contradicted", "inconclusive", "not_measured"

# mechanism (hypothesis name) -> the profile class that is its cost
MECHANISMS = {
    "page_pinning": "zc_pin", "deferred_copy": "deferred_copy", "notification_cost": "zc_notify",
    "user_copy": "user_copy", "kernel_copy": "kernel_copy", "syscall_entry": "syscall", "tcp_send": "tcp_tx",
    "tcp_receive": "tcp_rx", "softirq_receive": "softirq_rx", "skb_memory": "skb_mem", "scheduling": "sched",
}
CLASS_OF = MECHANISMS
# classes no mechanism names: what stays unexplained (the residual)
RESIDUAL_CLASSES = tuple(c for c in PROFILE_CLASSES if c not in MECHANISMS.values())
CLASS_WORDS = {"zc_pin": "pinning", "zc_notify": "notifications", "deferred_copy": "deferred copy",
               "kernel_copy": "kernel copy", "user_copy": "user copy", "softirq_rx": "softirq receive",
               "tcp_tx": "TCP send path", "tcp_rx": "TCP receive path", "syscall": "syscall entry/exit",
               "skb_mem": "skb memory", "sched": "scheduler", "page_fault": "page faults", "observer": "observer",
               "user_other": "other user code", "other": "other kernel code"}
# network figures beside the accounting: (label, column per role or None, floor below which a ratio says nothing)
NETWORK = {
    "link_packets_per_mib": ("link packets per MiB", 1.0),
    "segments_per_mib": ("segments per MiB", 1.0),
    "retrans_per_mib": ("retransmits per MiB", 0.1),
    "softirq_share": ("share of samples in softirq", 0.02),
}


def class_column(role: str, cls: str) -> str:
    return f"prof_{role}_{cls}_cpu_s_per_gb"


def work_column(role: str, name: str) -> str:
    return f"work_{role}_{name}"


def measured(r: Results, role: str = "client") -> bool:
    return measured_runs(r.runs, role)


def measured_runs(runs: pd.DataFrame, role: str = "client") -> bool:
    roles = ROLES if role == "both" else (role,)
    return _once(runs, ("measured", role), lambda: all(class_column(x, c) in runs
                                                       and runs[class_column(x, c)].notna().any()
                                                       for x in roles for c in PROFILE_CLASSES))


# ----------------------------------------------------------------------------- memoisation
# The answers account hundreds of scopes against the same loaded runs (every trend break, every
# comparison of the report's waterfall): what does not depend on the scope (a per-row figure,
# its per-configuration means) is computed once per frame or series, not once per scope (else
# explain and report are quadratic in the points). Values only: the arithmetic is the same.
_MEMO: dict[int, tuple] = {}


def _memo(obj) -> dict:
    """A dict that lives as long as `obj` (a DataFrame or Series, by identity)."""
    k = id(obj)
    hit = _MEMO.get(k)
    if hit is None or hit[0]() is not obj:
        def gone(ref, k=k, memo=_MEMO):   # (the dict itself: at exit the module's globals are None)
            if memo.get(k, (None,))[0] is ref:
                del memo[k]
        hit = _MEMO[k] = (weakref.ref(obj, gone), {})
    return hit[1]


def _once(obj, key, compute):
    memo = _memo(obj)
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def column(runs: pd.DataFrame, name: str) -> pd.Series:
    """`runs[name]`, the same Series object every time (so what is memoised on it is found again)."""
    return _once(runs, ("column", name), lambda: runs[name])


def class_frame(runs: pd.DataFrame, role: str) -> pd.DataFrame:
    """Per run row: CPU-seconds per GB of each class (the role's; "both": the two ends summed)."""
    if role == "both":
        return class_frame(runs, "client") + class_frame(runs, "server")
    cols = {c: class_column(role, c) for c in PROFILE_CLASSES}
    return pd.DataFrame({c: (runs[col] if col in runs else np.nan) for c, col in cols.items()}, index=runs.index)


@dataclass
class Side:
    """One side of a comparison: per class the aggregate (COST_AGGREGATE), and its variance where
    every configuration has repeats (None otherwise)."""
    value: dict[str, float]
    var: dict[str, float] | None
    points: int
    min_repeats: int


def _config_classes(runs: pd.DataFrame, role: str) -> tuple[list, dict]:
    """Per configuration (KEY) of the rows with every class measured: (rows, each class's mean,
    each class's variance over repeats); once per frame and role."""
    def compute():
        frame = class_frame(runs, role)
        out = {}
        for k, g in frame.groupby([runs[k] for k in KEY]):
            g = g.dropna()
            if len(g):
                out[k] = (len(g), {c: g[c].mean() for c in frame.columns},
                          {c: g[c].var(ddof=1) for c in frame.columns} if len(g) >= 2 else None)
        return list(frame.columns), out
    return _once(runs, ("config_classes", role), compute)


def _side(runs: pd.DataFrame, role: str, points) -> Side | None:
    columns, groups = _config_classes(runs, role)
    rows = [groups[p] for p in dict.fromkeys(tuple(x) for x in points) if p in groups]
    if not rows:
        return None
    n = [len_ for len_, _, _ in rows]
    value = {c: float(np.mean([mean[c] for _, mean, _ in rows])) for c in columns}
    var = None
    if min(n) >= 2:
        var = {c: float(sum(v[c] / len_ for len_, _, v in rows) / len(rows) ** 2) for c in columns}
    return Side(value, var, len(rows), min(n))


@dataclass
class Account:
    """A comparison's CPU-seconds per GB, `at` minus `ref`, class by class (sum == total)."""
    role: str
    total: float
    gaps: dict[str, float]
    at: dict[str, float]
    ref: dict[str, float]
    intervals: dict[str, tuple[float, float]] | None      # None: untested (a side without repeats)
    points: tuple[int, int]
    waits: dict[str, dict] = field(default_factory=dict)     # reason -> {at, ref} off-CPU s per GB, working threads
    threads: dict[str, dict] = field(default_factory=dict)   # utilisation, preempted_share -> {at, ref}
    network: dict[str, dict] = field(default_factory=dict)   # figure -> {at, ref, ratio, differs}

    @property
    def shares(self) -> dict[str, float]:
        """Signed share of the gap: positive where a class moved the way the total did."""
        return {c: (g / self.total if self.total else math.nan) for c, g in self.gaps.items()}

    @property
    def negligible(self) -> bool:
        """The total gap is below MIN_GAP of the reference's cost: nothing to share out."""
        ref = sum(self.ref.values())
        return not (ref > 0 and abs(self.total) >= MIN_GAP * ref)

    @property
    def relative(self) -> float:
        ref = sum(self.ref.values())
        return self.total / ref if ref > 0 else math.nan

    @property
    def residual(self) -> float:
        """The part of the gap no mechanism names (RESIDUAL_CLASSES)."""
        return float(sum(self.gaps[c] for c in RESIDUAL_CLASSES))

    def significant(self, cls: str) -> bool | None:
        if self.intervals is None:
            return None
        lo, hi = self.intervals[cls]
        return bool(lo > 0 or hi < 0)

    def largest(self, n: int = 3) -> list[tuple[str, float]]:
        """The n mechanism classes with the largest positive share, largest first (the residual
        classes are the residual, not causes)."""
        s = self.shares
        return sorted(((c, v) for c, v in s.items() if v == v and v > 0 and c not in RESIDUAL_CLASSES),
                      key=lambda x: -x[1])[:n]

    def to_dict(self) -> dict:
        out = {"role": self.role, "total_cpu_s_per_gb": self.total, "aggregate": COST_AGGREGATE,
               "relative": self.relative, "negligible": self.negligible,
               "classes": {c: {"gap": self.gaps[c], "share": self.shares[c], "at": self.at[c], "ref": self.ref[c],
                               **({"interval": list(self.intervals[c])} if self.intervals else {})}
                           for c in self.gaps},
               "residual": self.residual, "residual_share": self.residual / self.total if self.total else None,
               "tested": self.intervals is not None, "points": list(self.points)}
        if self.waits:
            out["waits"] = self.waits
        if self.threads:
            out["threads"] = self.threads
        if self.network:
            out["network"] = self.network
        return out


def _cache(r: Results) -> dict:
    c = getattr(r, "_accounting_cache", None)
    if c is None:
        c = {}
        r._accounting_cache = c
    return c


def account(r: Results, scope, role: str = "both") -> Account | None:
    """The accounting of `scope` (hypotheses.Scope: `at` against `ref`) for a role; None where
    the profile did not measure it. Computed once per (scope, role) per loaded results."""
    key = ("account", scope.at, scope.ref, role)
    cache = _cache(r)
    if key not in cache:
        cache[key] = _account(r, scope, role)
    return cache[key]


def _account(r: Results, scope, role: str) -> Account | None:
    if role not in SCOPES:
        raise ValueError(f"role {role!r}: one of {SCOPES}")
    if not scope.ref or not measured(r, role):
        return None
    return account_runs(r.runs, scope.at, r.runs, scope.ref, role)


def account_runs(at_runs: pd.DataFrame, at_points, ref_runs: pd.DataFrame, ref_points, role: str) -> Account | None:
    """The accounting of `at_points` of `at_runs` against `ref_points` of `ref_runs` (two result
    sets: `compare`; one: `account`), for a role; None where a side has no profiled row there."""
    if role not in SCOPES:
        raise ValueError(f"role {role!r}: one of {SCOPES}")
    if not (measured_runs(at_runs, role) and measured_runs(ref_runs, role)):
        return None
    at, ref = (_side(runs, role, pts) for runs, pts in ((at_runs, at_points), (ref_runs, ref_points)))
    if at is None or ref is None:
        return None
    gaps = {c: at.value[c] - ref.value[c] for c in PROFILE_CLASSES}
    total = float(sum(gaps.values()))
    intervals = None
    if at.var is not None and ref.var is not None:
        q = _t_quantile(max(1, min(at.min_repeats, ref.min_repeats) - 1))
        intervals = {c: (gaps[c] - q * math.sqrt(at.var[c] + ref.var[c]), gaps[c] + q * math.sqrt(at.var[c] + ref.var[c]))
                     for c in PROFILE_CLASSES}
    acc = Account(role, total, gaps, at.value, ref.value, intervals, (at.points, ref.points))
    sides = _Sides(at_runs, tuple(at_points), ref_runs, tuple(ref_points))
    acc.waits = _waits(sides, role)
    acc.threads = _threads(sides, role)
    acc.network = _network(sides, role)
    return acc


# ----------------------------------------------------------------------------- beside the CPU
def _gb(runs: pd.DataFrame, role: str) -> pd.Series:
    return (runs["bytes_sent_total"] if role == "client" else runs["bytes_received"]) / 1e9


def _mean_of(r: Results, series: pd.Series, points) -> float:
    """COST_AGGREGATE of one per-row series over `points` (NaN where none measured)."""
    return mean_over(r.runs, series, points)


def config_means(runs: pd.DataFrame, series: pd.Series) -> dict:
    """Per configuration (KEY): the mean over repeats of a per-row series of `runs`; once per
    series (and frame)."""
    def compute():
        return (weakref.ref(runs), series.groupby([runs[k] for k in KEY]).mean().to_dict())
    hit = _memo(series).get(("config_means", id(runs)))
    if hit is None or hit[0]() is not runs:
        hit = _memo(series)[("config_means", id(runs))] = compute()
    return hit[1]


def mean_over(runs: pd.DataFrame, series: pd.Series, points) -> float:
    """COST_AGGREGATE of a per-row series of `runs` over `points` (NaN where none measured)."""
    med = config_means(runs, series)
    vals = [med.get(tuple(p), np.nan) for p in dict.fromkeys(tuple(x) for x in points)]
    vals = [v for v in vals if v == v]
    return float(np.mean(vals)) if vals else math.nan


@dataclass(frozen=True)
class _Sides:
    """The rows and points of the two sides (one result set or two)."""
    at_runs: pd.DataFrame
    at: tuple
    ref_runs: pd.DataFrame
    ref: tuple

    def pair(self, key, fig) -> dict:
        """`fig(runs)` (a per-row series, named by `key`: computed once per frame) aggregated on each side."""
        a, b = (mean_over(runs, _once(runs, ("figure", key), lambda runs=runs: fig(runs)), pts)
                for runs, pts in ((self.at_runs, self.at), (self.ref_runs, self.ref)))
        return {"at": None if a != a else a, "ref": None if b != b else b}


def _waits(sides: _Sides, role: str) -> dict:
    """Off-CPU seconds per GB by wait reason of the working threads only (work_<role>_<reason>_s)."""
    roles = ROLES if role == "both" else (role,)
    out = {}
    for w in WAIT_REASONS:
        cols = [work_column(x, f"{w}_s") for x in roles]
        if not any(c in runs and runs[c].notna().any() for c in cols for runs in (sides.at_runs, sides.ref_runs)):
            continue

        def per_gb(runs, w=w):
            parts = [runs[work_column(x, f"{w}_s")] / _gb(runs, x) for x in roles if work_column(x, f"{w}_s") in runs]
            return sum(parts) if parts else pd.Series(np.nan, index=runs.index)
        v = sides.pair(("wait_per_gb", w, roles), per_gb)
        if v["at"] is not None and v["ref"] is not None and max(v["at"], v["ref"]) > 0:
            out[w] = v
    return out


def thread_share(runs: pd.DataFrame, role: str, what: str) -> pd.Series:
    """Per row: a share of the role's working-thread time (utilisation: on-CPU; preempted:
    runnable but not running; a wait reason's name: off-CPU for it); never above 1. The same
    Series for the same frame every time (memoised)."""
    return _once(runs, ("thread_share", role, what), lambda: _thread_share(runs, role, what))


def _thread_share(runs: pd.DataFrame, role: str, what: str) -> pd.Series:
    total = runs.get(work_column(role, "thread_s"))
    if total is None:
        return pd.Series(np.nan, index=runs.index)
    num = runs.get(work_column(role, "on_cpu_s" if what == "utilisation" else f"{what}_s"))
    if num is None:
        return pd.Series(np.nan, index=runs.index)
    return (num / total.where(total > 0)).clip(upper=1.0)


def _threads(sides: _Sides, role: str) -> dict:
    out = {}
    for x in (ROLES if role == "both" else (role,)):
        for what in ("utilisation", "preempted"):
            v = sides.pair(("thread_share", x, what), lambda runs, x=x, what=what: thread_share(runs, x, what))
            if v["at"] is not None:
                out[f"{x}_{what}"] = v
    return out


def network_series(runs: pd.DataFrame, name: str, role: str = "client") -> pd.Series:
    """Per row: a network figure of the role (the same Series for the same frame every time)."""
    return _once(runs, ("network", name, role), lambda: _network_series(runs, name, role))


def _network_series(runs: pd.DataFrame, name: str, role: str = "client") -> pd.Series:
    if name == "softirq_share":
        return runs.get(f"prof_{role}_softirq", pd.Series(np.nan, index=runs.index))
    col = {"link_packets_per_mib": "tx_packets_per_mib"}.get(name, name)
    return runs.get(col, pd.Series(np.nan, index=runs.index))


def _network(sides: _Sides, role: str) -> dict:
    out = {}
    for name, (_label, floor) in NETWORK.items():
        side = "client" if role == "both" else role
        v = sides.pair(("network", name, side), lambda runs, name=name, side=side: network_series(runs, name, side))
        if v["at"] is None or v["ref"] is None:
            continue
        a, b = v["at"], v["ref"]
        ratio = a / b if b > 0 else (math.inf if a > 0 else 1.0)
        differs = max(a, b) >= floor and (ratio >= NETWORK_FACTOR or ratio <= 1 / NETWORK_FACTOR)
        out[name] = {**v, "ratio": None if math.isinf(ratio) else ratio, "differs": bool(differs)}
    return out


# ----------------------------------------------------------------------------- judgements
def share_status(share: float, significant: bool | None = None) -> str:
    """The one rule: supported >= SUPPORTED_SHARE (and significant where tested), contradicted
    below CONTRADICTED_SHARE or of the other sign, inconclusive in between."""
    if share is None or share != share:
        return NOT_MEASURED
    if share >= SUPPORTED_SHARE and significant is not False:
        return SUPPORTED
    if share < CONTRADICTED_SHARE:
        return CONTRADICTED
    return INCONCLUSIVE


def mechanism_numbers(acc: Account, cls: str) -> dict:
    out = {"role": acc.role, "class": cls, "gap_cpu_s_per_gb": acc.gaps[cls], "share": acc.shares[cls],
           "total_cpu_s_per_gb": acc.total, "value": acc.at[cls], "ref": acc.ref[cls]}
    if acc.negligible:     # no cost difference: no mechanism explains one
        out.update(share=None, negligible=True, relative=acc.relative)
    if acc.intervals is not None:
        out["interval"] = list(acc.intervals[cls])
        out["significant"] = acc.significant(cls)
    return out


def mechanism_status(nums: dict) -> str:
    """A mechanism's judgement from its numbers (mechanism_numbers): a negligible total gap is
    explained by no mechanism (contradicted), else share_status. hypotheses and compare both
    judge by this one function."""
    if nums.get("negligible"):
        return CONTRADICTED
    return share_status(nums["share"], nums.get("significant"))


def judge_mechanisms(a: Account) -> dict[str, dict]:
    """Every mechanism judged on one accounting: {name: {status, role, class, gap, share, ...}}."""
    out = {}
    for name, cls in MECHANISMS.items():
        nums = mechanism_numbers(a, cls)
        out[name] = {"status": mechanism_status(nums), **nums}
    return out


def ratio_of(r: Results, metric: str, at, ref) -> float:
    """`at` over `ref` on `metric` by RATIO_AGGREGATE where the points pair up one to one (the
    headlines' ratio: a comparison's or a thread step's), else the ratio of the COST_AGGREGATEs
    (NaN where either side is unmeasured). The direction of a change is taken from this, once."""
    if metric not in r.runs:
        return math.nan
    if at and len(at) == len(ref):
        med = r.memo(("ratio_medians", metric), lambda: r.runs.groupby(KEY)[metric].median().to_dict())
        ratios = [med.get(tuple(a), np.nan) / med.get(tuple(b), np.nan) for a, b in zip(at, ref)
                  if med.get(tuple(b), np.nan) > 0]
        ratios = [x for x in ratios if x == x]
        return float(np.median(ratios)) if ratios else math.nan
    a, b = (_mean_of(r, column(r.runs, metric), p) for p in (at, ref))
    return a / b if a == a and b == b and b > 0 else math.nan


def throughput_direction(r: Results, scope) -> int:
    """+1 where `at` moved fewer bytes per second than `ref` (a loss to explain), -1 a gain, 0 none."""
    x = ratio_of(r, "throughput_gbps", scope.at, scope.ref)
    if x != x or x == 1:
        return 0
    return 1 if x < 1 else -1


# ----------------------------------------------------------------------------- bottleneck per point
CPU_BOUND = 0.80        # a side whose working threads were on the CPU this share of their time is CPU-bound
PREEMPTED = 0.10        # ... and oversubscribed where they sat runnable, not running, this share of it
BOTTLENECKS = ("oversubscribed", "client_cpu_bound", "server_cpu_bound", "waiting")


def bottleneck_frame(r: Results) -> pd.DataFrame | None:
    """Per configuration (KEY; COST_AGGREGATE over repeats): each side's working-thread
    utilisation and preempted share, and the verdict: oversubscribed (a side preempted >=
    PREEMPTED of its time: measured, not assumed from the thread count), else the side at >=
    CPU_BOUND utilisation (the busier), else both waiting (on the network or the other side).
    None where no profile has working-thread figures."""
    cols = {}
    for role in ROLES:
        for what in ("utilisation", "preempted"):
            s = thread_share(r.runs, role, what)
            if s.notna().any():
                cols[f"{role}_{what}"] = s
    if not cols:
        return None
    df = pd.DataFrame(cols).groupby([r.runs[k] for k in KEY]).mean().reset_index()
    for c in (f"{role}_{w}" for role in ROLES for w in ("utilisation", "preempted")):
        if c not in df:
            df[c] = np.nan

    def verdict(row) -> str | None:
        pre = [row[f"{x}_preempted"] for x in ROLES if row[f"{x}_preempted"] == row[f"{x}_preempted"]]
        if not pre:
            return None
        if max(pre) >= PREEMPTED:
            return "oversubscribed"
        u = {x: row[f"{x}_utilisation"] for x in ROLES if row[f"{x}_utilisation"] == row[f"{x}_utilisation"]}
        busy = max(u, key=u.get) if u else None
        if busy and u[busy] >= CPU_BOUND:
            return f"{busy}_cpu_bound"
        return "waiting"
    df["bottleneck"] = df.apply(verdict, axis=1)
    return df
