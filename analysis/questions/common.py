"""What the questions share on the facts side: the thresholds, the facts every answer has,
caveats as codes with their data, and the comparisons every question makes.

Conventions (the words are in `stats.METHODS`, rendered into every answer's JSON):
- a configuration is (implementation, msg_size, threads); its value is the median over repeats;
- strategies are compared on per-byte figures only (see load.DERIVED), never on raw counts;
- "won"/"lost": the median differs and, with >= 2 repeats on both sides, Welch p < 0.05
  (otherwise "no significant difference"); with one repeat the sign decides and the
  comparison is marked untested;
- change_pct = (median_strategy / median_reference - 1) * 100; reduction_pct = -change_pct.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import pandas as pd

from netobs.figures import EVENT_BY_COLUMN
from netobs.strategies import sort_key

from ..load import KEY, Results
from ..stats import ALPHA, HIGH_CV, compare_groups, group_moments, summarize_groups


@dataclass(frozen=True)
class Parameters:
    """The thresholds the answers were computed with (in every answer's facts)."""

    alpha: float = ALPHA                # significance level of every test
    high_cv: float = HIGH_CV            # repeats varying more than this are flagged
    min_effect: float = 0.05            # a trend break changes the value by at least 5% ...
    min_score: float = 3.0              # ... and by at least 3x the run-to-run noise of the difference
    noise_floor: float = 0.01           # a configuration's noise is never taken below 1% of its median
    single_run_noise: float = 0.05      # assumed relative noise when no configuration has repeats


PARAMETERS = Parameters()


def parameters_of(r: Results) -> Parameters:
    """The thresholds for these results: on a refined directory the tests' alpha is the
    refinement rule's per-look alpha (netobs.refine.rule.answers_alpha: the sequential looks
    paid for), else PARAMETERS."""
    from netobs.refine.rule import answers_alpha

    def compute():
        alpha = answers_alpha(r.manifest, PARAMETERS.alpha)
        return PARAMETERS if alpha == PARAMETERS.alpha else replace(PARAMETERS, alpha=alpha)
    return r.memo("parameters", compute)   # (once per results: every comparison asks)


@dataclass(frozen=True)
class Caveat:
    """What limits an answer: a code and the numbers the sentence about it needs."""

    code: str
    data: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"code": self.code, **self.data}


# caveats that hold for the whole run: said once, before the answers (the others are the answer's own)
RUN_CAVEATS = ("single_repeat", "some_single_repeats", "failed_points", "imported", "high_variation",
               "multiplexed", "lost_events", "cores_unknown", "oversubscribed", "oversubscribed_measured", "observer_cost",
               "observer_cost_assumed", "retransmits")
# netobs's own BPF programs' share of a role's samples from which every answer says so (issue 18)
OBSERVER_SHOWN = 0.01
# where a reason's numbers come from
SOURCES = ("worker", "perf", "trace", "profile", "netstat", "manifest", "import")


@dataclass
class Reason:
    """One reason behind a verdict: a claim code, its weight (reasons are shown heaviest
    first), the numbers that support it and where they came from."""

    code: str
    weight: float
    numbers: dict = field(default_factory=dict)
    source: str = "worker"

    def to_dict(self) -> dict:
        return {"code": self.code, "weight": self.weight, "source": self.source, "numbers": self.numbers}


def ranked(reasons: list[Reason]) -> list[Reason]:
    return sorted(reasons, key=lambda x: -x.weight)


@dataclass(kw_only=True)
class Facts:
    """What every answer's facts hold. `code` is the verdict's code; `reasons` (ranked) and
    `hypotheses` (analysis.hypotheses judgements) say why; subclasses add the question's
    numbers and say how they appear in JSON (`fields`)."""

    code: str
    caveats: list[Caveat]
    evidence: pd.DataFrame
    chart_data: pd.DataFrame
    parameters: Parameters = PARAMETERS
    reasons: list = field(default_factory=list)
    hypotheses: list = field(default_factory=list)

    def fields(self) -> dict:
        return {}

    def to_dict(self) -> dict:
        return {**self.fields(), "verdict": self.code, "caveats": [c.to_dict() for c in self.caveats],
                "reasons": [x.to_dict() for x in self.reasons],
                "hypotheses": [h.to_dict() for h in self.hypotheses],
                "parameters": asdict(self.parameters)}

    @property
    def own_caveats(self) -> list[Caveat]:
        return [c for c in self.caveats if c.code not in RUN_CAVEATS]


@dataclass(kw_only=True)
class Unanswerable(Facts):
    """The data cannot answer the question: `code` says why; `missing` names the strategy
    that is absent where one strategy decides it."""

    implementations: list[str]
    missing: str | None = None

    def fields(self) -> dict:
        out = {"answerable": False, "implementations": self.implementations}
        if self.missing is not None:
            out["missing"] = self.missing
        return out


def unanswerable(r: Results, code: str, missing: str | None = None) -> Unanswerable:
    return Unanswerable(code=code, caveats=caveats(r), evidence=pd.DataFrame(), chart_data=pd.DataFrame(),
                        implementations=r.impls, missing=missing)


# --------------------------------------------------------------------------- comparisons
def config_medians(r: Results, metric: str) -> pd.Series:
    """Per configuration (impl, size, threads): the median over repeats (once per results:
    the anomalies question asks at every break it weighs). Read it, never change it."""
    return r.memo(("config_medians", metric), lambda: r.runs.groupby(KEY, sort=True)[metric].median())


def config_median_dict(r: Results, metric: str) -> dict:
    """`config_medians` as a dict (a lookup per break weighed, without pandas' per-call cost)."""
    return r.memo(("config_median_dict", metric), lambda: config_medians(r, metric).to_dict())


def vs(r: Results, metric: str, impl: str, base: str) -> pd.DataFrame:
    """impl vs base per (msg_size, threads) present for both: medians, change, Welch p."""
    runs = r.runs
    keys = ["msg_size", "threads"]
    moments = {name: group_moments(runs[runs.implementation == name], keys, metric) for name in (base, impl)}
    c = compare_groups(moments[base], moments[impl], alpha=parameters_of(r).alpha)   # every configuration at once
    rows = [{"msg_size": int(size), "threads": int(t), "n_ref": int(x.n_a), "n": int(x.n_b), "ref": x.median_a,
             "value": x.median_b, "change_pct": x.change_pct, "p_value": x.p_value, "significant": x.significant}
            for (size, t), x in zip(c.index, c.itertuples(index=False))]
    cols = ["msg_size", "threads", "n_ref", "n", "ref", "value", "change_pct", "p_value", "significant"]
    return pd.DataFrame(rows, columns=cols).sort_values(["msg_size", "threads"]).reset_index(drop=True)


# outcome codes of one comparison
WON, LOST, TIE, NOT_SIGNIFICANT, NA = "won", "lost", "tie", "not_significant", "na"


def outcome(change, significant) -> str:
    if change is None or change != change:
        return NA
    if significant is None or significant != significant:  # untested (one repeat)
        return WON if change > 0 else LOST if change < 0 else TIE
    if significant:
        return WON if change > 0 else LOST
    return NOT_SIGNIFICANT


def untested(df: pd.DataFrame) -> bool:
    """True when some comparison in `df` could not be tested (one repeat on a side)."""
    return bool(len(df)) and df["significant"].map(lambda v: v is None or v != v).any()


def cost_of(r: Results, impl: str, metric: str, where=None) -> float:
    """A cost figure (per byte, per GB, per MiB) of `impl` over its configurations (optionally
    some, `where`: (msg_size, threads) pairs) by the declared accounting.COST_AGGREGATE: the mean
    over configurations of each configuration's mean over repeats (NaN where unmeasured)."""
    from .. import accounting as acc
    if metric not in r.runs:
        return float("nan")
    points = r.memo(("impl_points", impl), lambda: [tuple(k) for k in r.runs[r.runs.implementation == impl][KEY]
                                                    .drop_duplicates().itertuples(index=False)])
    if where is not None:
        keep = set(map(tuple, where))
        points = [p for p in points if (p[1], p[2]) in keep]
    # the same Series every time (acc.column): its per-configuration means are computed once
    return acc.mean_over(r.runs, acc.column(r.runs, metric), points)


def median_of(r: Results, impl: str, metric: str, where=None) -> float:
    """Median over configurations of the per-configuration medians (optionally of some configs)."""
    med = config_medians(r, metric)
    if impl not in med.index.get_level_values(0):
        return float("nan")
    m = med.xs(impl, level="implementation")
    if where is not None:
        m = m[m.index.isin(where)]
    return float(m.median()) if m.notna().any() else float("nan")


def by_strategy(df: pd.DataFrame) -> pd.DataFrame:
    """Rows in netobs's strategy order, then by size and threads."""
    return df.sort_values(KEY, key=sort_key).reset_index(drop=True)


def chart_rows(r: Results, metrics: list[str]) -> pd.DataFrame:
    """The runs-like rows an answer's chart draws: the key, the repeat and these metrics."""
    cols = KEY + ["repeat"] + [m for m in metrics if m in r.runs and m not in KEY]
    return r.runs[cols].copy()


# --------------------------------------------------------------------------- caveats
def data_name(r: Results, text: str | None) -> str | None:
    """Counters named as the data names them: in imported results the study's column
    (l1_cache_misses), never the perf event netobs would have counted."""
    if not text or not r.imported:
        return text
    for col, event in EVENT_BY_COLUMN.items():
        text = text.replace(event, col)
    return text


def oversubscription(r: Results) -> tuple[int | None, list[int]]:
    """(the host's cores or None, the thread counts whose client + server threads exceed them)."""
    cores = r.host_cores
    if cores is None:
        return None, []
    return cores, [int(t) for t in sorted(r.runs["threads"].unique()) if 2 * t > cores]


def oversubscription_caveat(r: Results) -> Caveat | None:
    """Measured where a profile has the working threads' preempted share (the bottleneck per
    point), else from the thread count against the cores, assumed busy."""
    from ..accounting import bottleneck_frame
    bn = bottleneck_frame(r)
    if bn is not None and bn["bottleneck"].notna().any():
        over = bn[bn.bottleneck == "oversubscribed"]
        if over.empty:
            return None
        worst = over[["client_preempted", "server_preempted"]].max(axis=1)
        return Caveat("oversubscribed_measured", {"configurations": int(len(over)),
                                                  "of": int(bn["bottleneck"].notna().sum()),
                                                  "max_preempted": float(worst.max())})
    cores, over = oversubscription(r)
    if cores is None:
        return Caveat("cores_unknown", {"imported": r.imported})
    if over:
        return Caveat("oversubscribed", {"threads": over, "cores": cores})
    return None


def caveats(r: Results, columns=(), oversub: bool = True, zc_columns=()) -> list[Caveat]:
    """What limits any answer from `r`: repeats, unmeasured `columns` (and `zc_columns` of
    zero_copy), failed points, an import, high variation, multiplexed counters, lost trace
    events, oversubscription, and what loading had to assume."""
    out = list(r.memo(("caveats", "repeats"), lambda: _repeat_caveats(r)))   # (once per results: every answer asks)
    for col, impl in [(c, None) for c in columns] + [(c, "zero_copy") for c in zc_columns]:
        reason = data_name(r, r.missing_reason(col, impl))
        if reason:
            out.append(Caveat("not_measured", {"column": col, "implementation": impl, "reason": reason,
                                               "named": r.imported}))
    return out + list(r.memo(("caveats", "run", oversub), lambda: _run_caveats(r, oversub)))


def _repeat_caveats(r: Results) -> list[Caveat]:
    out = []
    n_max, n_min = r.max_repeats(), r.min_repeats()
    if n_max < 2:
        out.append(Caveat("single_repeat", {"runs": len(r.runs)}))
    elif n_min < 2:
        out.append(Caveat("some_single_repeats", {"min_repeats": n_min, "max_repeats": n_max}))
    return out


def _run_caveats(r: Results, oversub: bool) -> list[Caveat]:
    """`caveats`' part that depends on the run alone (Caveats are frozen: shared by the answers)."""
    out = []
    if len(r.failed):
        shown = [{"implementation": f.implementation, "msg_size": int(f.msg_size), "threads": int(f.threads),
                  "repeat": int(f.repeat), "error": f.error} for f in r.failed.head(4).itertuples()]
        out.append(Caveat("failed_points", {"count": len(r.failed), "shown": shown}))
    if r.imported:
        dur = r.runs["window_s"].dropna().unique()
        out.append(Caveat("imported", {"duration_s": float(dur[0]) if len(dur) == 1 else None}))
    cv = r.memo(("summary", "throughput_gbps"), lambda: summarize_groups(r.runs, KEY, "throughput_gbps"))   # read only
    high = cv[cv["high_cv"]]
    if len(high):
        worst = high.sort_values("cv", ascending=False).iloc[0]
        out.append(Caveat("high_variation", {
            "count": len(high), "implementation": worst.implementation, "msg_size": int(worst.msg_size),
            "threads": int(worst.threads), "cv": float(worst.cv)}))
    for c in [c for c in r.runs.columns if c.startswith("perf_") and c.endswith("_running_pct")]:
        low = r.runs[c].dropna()
        low = low[low < 99.5]
        if len(low):
            out.append(Caveat("multiplexed", {"event": c[len("perf_"):-len("_running_pct")], "runs": len(low),
                                              "min_running_pct": float(low.min())}))
    lost = r.runs["trace_lost_events"].dropna()
    if (lost > 0).any():
        out.append(Caveat("lost_events", {"runs": int((lost > 0).sum()), "max": int(lost.max())}))
    if oversub:
        c = oversubscription_caveat(r)
        if c:
            out.append(c)
    for c in (observer_caveat(r), assumed_observer_caveat(r), retransmit_caveat(r)):
        if c:
            out.append(c)
    return out   # the loader's notes hold for the whole run: said once, before the answers


def observer_caveat(r: Results) -> Caveat | None:
    """Where netobs's own BPF programs (the profile's `observer` class) took more than
    OBSERVER_SHOWN of a role's samples at some point: per role the median and the largest share
    over points, where the largest was, and the CPU-seconds per GB it stands for."""
    roles = {}
    for role in ("client", "server"):
        col = f"prof_{role}_observer"
        if col not in r.runs or not r.runs[col].notna().any():
            continue
        per_point = r.runs.groupby(KEY)[col].median().dropna()
        if per_point.empty or per_point.max() <= OBSERVER_SHOWN:
            continue
        worst = per_point.idxmax()
        gb = f"{col}_cpu_s_per_gb"
        # the CPU-seconds per GB beside the largest share are that point's (median of its repeats)
        at_worst = (r.runs.groupby(KEY)[gb].median().get(worst) if gb in r.runs else None)
        roles[role] = {"median": float(per_point.median()), "max": float(per_point.max()),
                       "at": {"implementation": worst[0], "msg_size": int(worst[1]), "threads": int(worst[2])},
                       "cpu_s_per_gb": float(at_worst) if at_worst is not None and at_worst == at_worst else None}
    return Caveat("observer_cost", {"roles": roles}) if roles else None


RETRANS_SHOWN = 0.01   # a sender that retransmitted this share of its segments ran under loss recovery


def retransmit_caveat(r: Results) -> Caveat | None:
    """Strategies whose client retransmitted RETRANS_SHOWN or more of the segments it sent at
    some point (netstat, over the point's life): per strategy the range over its points and how
    many points; their throughput includes TCP's loss recovery, whatever else explains it."""
    sent, again = "netstat_client_tcp_outsegs", "netstat_client_tcp_retranssegs"
    if sent not in r.runs or again not in r.runs:
        return None
    runs = r.runs[[*KEY, sent, again]].dropna()
    runs = runs[runs[sent] > 0]
    if runs.empty:
        return None
    share_ = (runs[again] / runs[sent]).groupby([runs[k] for k in KEY]).median()
    high = share_[share_ >= RETRANS_SHOWN]
    if high.empty:
        return None
    by = {}
    for (impl, _size, _threads), v in high.items():
        by.setdefault(impl, []).append(float(v))
    return Caveat("retransmits", {"threshold": RETRANS_SHOWN, "points": len(share_), "strategies": {
        impl: {"min": min(v), "max": max(v), "points": len(v)} for impl, v in sorted(by.items())}})


EVENT_COLUMNS = ("trace_client_send_syscalls", "trace_client_recv_syscalls", "trace_server_send_syscalls",
                 "trace_server_recv_syscalls")
CPU_COLUMNS = ("cpu_user_s", "cpu_sys_s", "server_cpu_user_s", "server_cpu_sys_s")


def assumed_observer_caveat(r: Results) -> Caveat | None:
    """A traced run without a profile: the tracer's cost is not in the data, so the bench's
    figure the manifest kept (`observer_cost`: CPU-ns per traced syscall, with its interval) is
    applied to each point's traced syscalls against both ends' CPU time: an assumption, said so."""
    oc = r.manifest.get("observer_cost")
    runs = r.runs
    if r.imported or not isinstance(oc, dict) or not len(runs):
        return None
    if "prof_client_observer" in runs and runs["prof_client_observer"].notna().any():
        return None   # measured point by point: observer_caveat
    events = [c for c in EVENT_COLUMNS if c in runs and runs[c].notna().any()]
    cpu = [c for c in CPU_COLUMNS if c in runs and runs[c].notna().any()]
    if not events:
        return None
    if oc.get("ns_per_event") is None:
        return Caveat("observer_cost_assumed", {"known": False, "reason": oc.get("reason")})
    n = runs[events].sum(axis=1, min_count=1)
    secs = runs[cpu].sum(axis=1, min_count=1) if cpu else None
    data = {"known": True, "ns_per_event": float(oc["ns_per_event"]), "ci": oc.get("ci"),
            "measured_at": oc.get("measured_at"), "same_host": oc.get("same_host"),
            "topology": oc.get("topology"), "share": None, "share_ci": None}
    if secs is not None and (secs > 0).any():
        per = (n / secs)[secs > 0].dropna()     # traced syscalls per CPU-second of both ends
        if len(per):
            med = float(per.median())
            data["share"] = oc["ns_per_event"] * 1e-9 * med
            if oc.get("ci"):
                data["share_ci"] = [x * 1e-9 * med for x in oc["ci"]]
    return Caveat("observer_cost_assumed", data)
