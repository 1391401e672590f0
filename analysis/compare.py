"""Two results directories side by side: what changed from BASE to NEW, beyond noise (facts only).

`compare(base, new, metrics, threshold_pct)` matches points by (strategy, msg_size, threads);
the other run parameters (topology, duration, MTU, ...) are the runs' context, so where they
differ they are listed with the manifest differences, the likely causes of any change. Per
matched point and metric: both medians, the change, Welch's p over the repeats
(`stats.compare`) and a verdict:

- faster / slower: significant (p < ALPHA) and at least `threshold_pct` better / worse in the
  metric's direction (`HIGHER_IS_BETTER`; every other metric is a cost, lower is better);
- same: not significant, or significant but smaller than the threshold (within noise);
- untested: one repeat on a side; no test is possible, so no p-value is given.

Where both result sets were profiled, the comparison is accounted (`analysis.accounting`, the
module every question uses, with its thresholds and its judgement of each mechanism): NEW minus
BASE in CPU-seconds per GB, per role and both ends, split by profile class so the class gaps sum
to the total, for the whole comparison (every configuration both measured) and for each changed
point (a faster or slower verdict in any metric, or a cost gap the accounting counts there).

The words are `analysis.compare_text`'s; the report's section and chart are drawn from these
facts too.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from netobs import strategies
from netobs.errors import NetobsError, UsageError
from netobs.jsonsafe import jsonable
from netobs.spec import OLD_MATRIX_KEYS, stored_sweep

from . import accounting as acc
from . import labels
from .load import CONFIG, KEY, Results, by_series
from .noise import placement_differences
from .stats import ALPHA, METHODS, compare as welch_compare

DEFAULT_METRICS = ("throughput_gbps", "latency_us", "cpu_s_per_gb", "copies_per_byte")
DEFAULT_THRESHOLD_PCT = 5.0
RANKED_BY = "throughput_gbps"   # the study's answers rank strategies by throughput
# Metrics where more is better; every other metric (latency, CPU, copies, misses, counters
# per byte) is a cost, where less is better.
HIGHER_IS_BETTER = frozenset({"throughput_gbps", "goodput_gbps", "bytes_sent", "bytes_sent_total",
                              "bytes_received", "messages", "gbytes"})
VERDICTS = ("faster", "slower", "same", "untested")
LARGEST = 5
CAUSES = 3       # the largest accounted causes named per gap
# Stored columns that say which point a row is or how it went, not what it measured.
NOT_METRICS = frozenset({"implementation", "msg_size", "threads", "repeat", "duration_s", "warmup_s", "window_s"})

# What the manifests are compared on: (name, path into the manifest). Mappings below a path
# (sysctls, the probe plan, perf's unsupported events, the matrix) are compared key by key.
MANIFEST_FIELDS = (
    ("netobs version", ("netobs_version",)),
    ("source", ("source",)),
    ("kernel", ("host", "kernel")),
    ("kernel build", ("host", "kernel_version")),
    ("architecture", ("host", "arch")),
    ("CPU", ("host", "cpu_model")),
    ("cores", ("host", "cores")),
    ("usable cores", ("host", "cores_usable")),
    ("memory", ("host", "memory_bytes")),
    ("virtualized", ("host", "virtualized")),
    ("perf version", ("tools", "perf")),
    ("bcc version", ("tools", "bcc")),
    ("topology", ("topology", "kind")),
    ("MTU", ("topology", "mtu")),
    ("subnet", ("topology", "subnet")),
    ("perf events", ("perf_events",)),
    ("server perf events", ("perf_server_events",)),
)


def direction(metric: str) -> int:
    """+1 where a higher value is better, -1 where it is a cost."""
    return 1 if metric in HIGHER_IS_BETTER else -1


@dataclass
class Side:
    path: str
    source: str
    runs: int
    points: int
    max_repeats: int
    min_repeats: int
    notes: list[str]


@dataclass
class Comparison:
    base: Side
    new: Side
    threshold_pct: float
    alpha: float
    metrics: list[dict]              # {metric, label, unit, higher_is_better, measured: both|base|new|neither}
    manifest_differences: list[dict]  # {what, base, new}
    grid: dict                       # compared (count), only_base, only_new (configurations), same
    points: pd.DataFrame             # one row per matched point and compared metric
    counts: dict                     # metric -> verdict -> count
    geomean_ratio: dict              # metric -> strategy -> geometric mean of new/base medians
    largest: list[dict]              # the largest flagged changes (faster/slower), largest first
    ranking_changes: list[dict]      # (msg_size, threads) where the throughput order changed
    regressions: list[dict] = field(default_factory=list)   # filled by `regressions()` when asked
    accounting: dict = field(default_factory=dict)   # see `accounting()`: whole, points, or why not measured

    @property
    def compared_metrics(self) -> list[str]:
        return [m["metric"] for m in self.metrics if m["measured"] == "both"]

    def to_dict(self) -> dict:
        rows = self.points.astype(object).where(self.points.notna(), None).to_dict("records")
        return jsonable({
            "base": asdict(self.base), "new": asdict(self.new),
            "threshold_pct": self.threshold_pct, "alpha": self.alpha,
            "method": {"center": METHODS["center"], "test": METHODS["test"],
                       "verdict": f"faster/slower: significant and at least {self.threshold_pct:g}% in the "
                                  "metric's better/worse direction; same: within noise; untested: one repeat on a side"},
            "metrics": self.metrics, "manifest_differences": self.manifest_differences, "grid": self.grid,
            "points": rows,
            "summary": {"counts": self.counts, "geomean_ratio": self.geomean_ratio, "largest": self.largest,
                        "ranking_changes": self.ranking_changes},
            "regressions": self.regressions,
            "accounting": self.accounting,
        })


# ----------------------------------------------------------------------------- manifests

def _get(d, path):
    for key in path:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


def _differ(what: str, a, b, out: list[dict]) -> None:
    if a != b:
        out.append({"what": what, "base": a, "new": b})


def _keyed(what: str, a, b, fields, out: list[dict]) -> None:
    """Mappings compared key by key (`fields`: which parts of each entry; None: the entry)."""
    a, b = a if isinstance(a, dict) else {}, b if isinstance(b, dict) else {}
    for key in sorted(set(a) | set(b)):
        ea, eb = a.get(key), b.get(key)
        if fields is None:
            _differ(f"{what} {key}", ea, eb, out)
            continue
        for part in fields:
            _differ(f"{what} {key} {part}", _get(ea, (part,)), _get(eb, (part,)), out)


def _matrix(m: dict) -> dict:
    """The matrix as this netobs reads it (older vintages' keys and defaults filled in, so a
    key one version did not write is no difference); an import's matrix as it stands."""
    matrix = m.get("matrix") if isinstance(m.get("matrix"), dict) else {}
    if str(m.get("source") or "netobs") != "import":
        try:
            return stored_sweep(m).to_dict()
        except NetobsError:
            pass   # a matrix this netobs cannot read as a sweep: compared as written
    return {OLD_MATRIX_KEYS.get(k, k): v for k, v in matrix.items()}


def manifest_differences(base: dict, new: dict) -> list[dict]:
    """What differs between two runs' manifests: host, tools, topology, sysctls (value before the
    run and the value set), perf events, the probe plan, and every matrix parameter."""
    out: list[dict] = []
    for what, path in MANIFEST_FIELDS:
        _differ(what, _get(base, path), _get(new, path), out)
    _keyed("sysctl", _get(base, ("topology", "sysctls")), _get(new, ("topology", "sysctls")), ("before", "set"), out)
    _keyed("unsupported perf event", _get(base, ("perf", "unsupported")), _get(new, ("perf", "unsupported")), None, out)
    _keyed("probe for", base.get("probe_plan"), new.get("probe_plan"), ("probe",), out)
    _keyed("matrix", _matrix(base), _matrix(new), None, out)
    return out


# ----------------------------------------------------------------------------- metrics

def _numeric_columns(r: Results) -> set[str]:
    return {c for c in r.runs.columns if c not in NOT_METRICS and pd.api.types.is_numeric_dtype(r.runs[c])}


def check_metrics(base: Results, new: Results, wanted) -> list[str]:
    """The metrics to compare: the defaults, or those named (each a measured column of at least
    one side; UsageError naming the ones there are)."""
    if not wanted:
        return list(DEFAULT_METRICS)
    known = _numeric_columns(base) | _numeric_columns(new)
    unknown = [m for m in wanted if m not in known]
    if unknown:
        shown = ", ".join(sorted(c for c in known if base.measured(c) or new.measured(c))[:40])
        raise UsageError(f"unknown metric {', '.join(repr(m) for m in unknown)}",
                         "not a measured column of either results directory", f"one of: {shown}")
    return list(dict.fromkeys(wanted))


def _measured_where(metric: str, base: Results, new: Results) -> str:
    a, b = base.measured(metric), new.measured(metric)
    return "both" if a and b else "base" if a else "new" if b else "neither"


# ----------------------------------------------------------------------------- points

def verdict(metric: str, significant: bool | None, change_pct: float, threshold_pct: float) -> str:
    if significant is None:
        return "untested"
    if not significant or not abs(change_pct) >= threshold_pct:
        return "same"
    return "faster" if change_pct * direction(metric) > 0 else "slower"


def _groups(r: Results) -> dict[tuple, pd.DataFrame]:
    """Each configuration's repeats; a strategy in another message shape than the study's is a
    series of its own ("one_copy f=1"), so shapes are matched, never pooled."""
    return {key: g for key, g in by_series(r.runs).groupby(KEY, sort=False)}


def _point_rows(base: dict, new: dict, keys: list[tuple], metrics: list[str], threshold: float) -> pd.DataFrame:
    rows = []
    for metric in metrics:
        for key in keys:
            a, b = base[key][metric].dropna(), new[key][metric].dropna()
            if a.empty or b.empty:
                continue   # not measured at this point on a side: nothing to compare
            c = welch_compare(a, b)
            ratio = c.median_b / c.median_a if c.median_a else float("nan")
            rows.append({**dict(zip(KEY, key)), "metric": metric, "n_base": c.n_a, "n_new": c.n_b,
                         "base_median": c.median_a, "new_median": c.median_b, "ratio": ratio,
                         "change_pct": c.change_pct, "p_value": c.p_value, "significant": c.significant,
                         "verdict": verdict(metric, c.significant, c.change_pct, threshold)})
    cols = KEY + ["metric", "n_base", "n_new", "base_median", "new_median", "ratio", "change_pct", "p_value",
                  "significant", "verdict"]
    return pd.DataFrame(rows, columns=cols)


def _counts(points: pd.DataFrame, metrics: list[str]) -> dict:
    return {m: {v: int(((points["metric"] == m) & (points["verdict"] == v)).sum()) for v in VERDICTS}
            for m in metrics}


def _geomeans(points: pd.DataFrame) -> dict:
    out: dict = {}
    for (metric, impl), g in points.groupby(["metric", "implementation"], sort=False):
        ratios = g["ratio"][(g["ratio"] > 0) & np.isfinite(g["ratio"])]
        out.setdefault(metric, {})[impl] = float(np.exp(np.log(ratios).mean())) if len(ratios) else float("nan")
    return {m: {i: v[i] for i in strategies.ordered(v)} for m, v in out.items()}


def _largest(points: pd.DataFrame) -> list[dict]:
    flagged = points[points["verdict"].isin(("faster", "slower"))]
    flagged = flagged.assign(size=flagged["ratio"].map(lambda r: abs(math.log(r)) if r and r > 0 else 0.0))
    top = flagged.sort_values("size", ascending=False).head(LARGEST).drop(columns="size")
    return top.astype(object).where(top.notna(), None).to_dict("records")


def _order(groups: dict, at: tuple, impls: list[str]) -> list[str]:
    medians = {i: float(groups[(i, *at)][RANKED_BY].median()) for i in impls}
    return sorted(impls, key=lambda i: (-medians[i], strategies.rank(i)))


def _ranking_changes(base: dict, new: dict, keys: list[tuple]) -> list[dict]:
    """Each (msg_size, threads) whose strategies, ordered by median throughput, come in another
    order in NEW; with the pairs that swapped and whether each pair's difference is significant
    on both sides (Welch; None where a side has one repeat)."""
    impls_at: dict[tuple, list[str]] = {}
    for impl, size, threads in keys:
        if base[(impl, size, threads)][RANKED_BY].notna().any() and new[(impl, size, threads)][RANKED_BY].notna().any():
            impls_at.setdefault((size, threads), []).append(impl)
    out = []
    for at in sorted(impls_at):
        impls = impls_at[at]
        if len(impls) < 2:
            continue
        before, after = _order(base, at, impls), _order(new, at, impls)
        if before == after:
            continue
        swapped = []
        for i, hi in enumerate(before):
            for lo in before[i + 1:]:
                if after.index(lo) < after.index(hi):
                    sides = [welch_compare(g[(hi, *at)][RANKED_BY], g[(lo, *at)][RANKED_BY]) for g in (base, new)]
                    sig = None if any(s.significant is None for s in sides) else all(s.significant for s in sides)
                    swapped.append({"was_ahead": hi, "now_ahead": lo, "p_base": sides[0].p_value,
                                    "p_new": sides[1].p_value, "significant": sig})
        out.append({"msg_size": at[0], "threads": at[1], "base_order": before, "new_order": after,
                    "swapped": swapped, "significant": _all_known(s["significant"] for s in swapped)})
    return out


def _all_known(values) -> bool | None:
    values = list(values)
    return None if any(v is None for v in values) else all(values)


# ----------------------------------------------------------------------------- the whole

def _side(r: Results) -> Side:
    return Side(str(r.path), r.source, int(len(r.runs)), int(r.runs.groupby(CONFIG).ngroups),
                r.max_repeats(), r.min_repeats(), list(r.notes))


# ----------------------------------------------------------------------------- accounting

def _accounted(new_runs: pd.DataFrame, base_runs: pd.DataFrame, keys: list[tuple]) -> dict | None:
    """Per scope (both ends, client, server): the accounting of NEW against BASE at `keys`, its
    largest causes and every mechanism's judgement (accounting.judge_mechanisms); None unprofiled."""
    out = {}
    for role in acc.SCOPES:
        a = acc.account_runs(new_runs, keys, base_runs, keys, role)
        if a is None:
            continue
        judged = acc.judge_mechanisms(a)
        out[role] = a.to_dict() | {
            "largest": [[c, v] for c, v in a.largest(CAUSES) if v >= acc.CONTRADICTED_SHARE],
            "judgements": {n: {k: j[k] for k in ("status", "class", "gap_cpu_s_per_gb", "share")} for n, j in judged.items()},
            "supported": [n for n, j in judged.items() if j["status"] == acc.SUPPORTED]}
    return out or None


def accounting(base: Results, new: Results, points: pd.DataFrame, common: list[tuple]) -> dict:
    """The comparison's cost accounting: `whole` (every configuration both measured), `points`
    (each changed point alone, largest CPU-s/GB change first: a faster/slower verdict in any
    metric, or a total gap of at least accounting.MIN_GAP of BASE's cost there), or
    `not_measured` saying why."""
    bruns, nruns = by_series(base.runs), by_series(new.runs)
    missing = [name for name, runs in (("base", bruns), ("new", nruns)) if not acc.measured_runs(runs, "client")]
    if missing:
        return {"aggregate": acc.COST_AGGREGATE,
                "not_measured": f"{' and '.join(missing)} not profiled (netobs sweep --profile)"}
    whole = _accounted(nruns, bruns, common)
    flagged = points[points["verdict"].isin(("faster", "slower"))]
    verdicts: dict = {}
    for row in flagged.itertuples(index=False):
        verdicts.setdefault((row.implementation, row.msg_size, row.threads), []).append(f"{row.metric} {row.verdict}")
    per_point = []
    for k in common:
        a = _accounted(nruns, bruns, [k])
        main = (a or {}).get("both") or (a or {}).get("client")
        # changed: a verdict beyond noise in any metric, or a cost gap the accounting counts (>= MIN_GAP)
        if main is not None and (k in verdicts or not main["negligible"]):
            per_point.append({**dict(zip(KEY, k)), "verdicts": verdicts.get(k, []), "accounting": a})
    size = lambda p: abs((p["accounting"].get("both") or p["accounting"]["client"])["total_cpu_s_per_gb"])  # noqa: E731
    return {"aggregate": acc.COST_AGGREGATE, "thresholds": {"supported_share": acc.SUPPORTED_SHARE,
                                                            "contradicted_share": acc.CONTRADICTED_SHARE,
                                                            "min_gap": acc.MIN_GAP},
            "whole": whole, "points": sorted(per_point, key=size, reverse=True)}


def compare(base: Results, new: Results, metrics=None, threshold_pct: float = DEFAULT_THRESHOLD_PCT) -> Comparison:
    """BASE and NEW compared point by point (see the module's docstring)."""
    if not (threshold_pct >= 0 and math.isfinite(threshold_pct)):
        raise UsageError(f"--threshold {threshold_pct:g} is not a percentage", fix="--threshold 5")
    metrics = check_metrics(base, new, metrics)
    gb, gn = _groups(base), _groups(new)
    order = lambda keys: sorted(keys, key=lambda k: (strategies.rank(k[0]), k[1], k[2]))  # noqa: E731
    common = order(set(gb) & set(gn))
    names = lambda keys: [dict(zip(KEY, k)) for k in order(keys)]  # noqa: E731
    grid = {"compared": len(common), "only_base": names(set(gb) - set(gn)), "only_new": names(set(gn) - set(gb))}
    grid["same"] = not grid["only_base"] and not grid["only_new"]
    where = {m: _measured_where(m, base, new) for m in metrics}
    compared = [m for m in metrics if where[m] == "both"]
    points = _point_rows(gb, gn, common, compared, threshold_pct)
    return Comparison(
        base=_side(base), new=_side(new), threshold_pct=float(threshold_pct), alpha=ALPHA,
        metrics=[{"metric": m, "label": labels.label(m), "unit": labels.unit(m),
                  "higher_is_better": direction(m) > 0, "measured": where[m]} for m in metrics],
        manifest_differences=manifest_differences(base.manifest, new.manifest) + placement_differences(base, new), grid=grid, points=points,
        counts=_counts(points, compared), geomean_ratio=_geomeans(points), largest=_largest(points),
        ranking_changes=_ranking_changes(gb, gn, common) if RANKED_BY in compared else [],
        accounting=accounting(base, new, points, common),
    )


def regressions(c: Comparison, pct: float, metrics=None) -> list[dict]:
    """The points significantly worse than BASE by at least `pct` percent, in `metrics`
    (throughput when none is named); recorded on the comparison for --json."""
    metrics = list(metrics or [RANKED_BY])
    p = c.points
    worse = p["metric"].isin(metrics) & p["significant"].eq(True) & (
        -p["change_pct"] * p["metric"].map(direction) >= pct)
    rows = p[worse]
    c.regressions = rows.astype(object).where(rows.notna(), None).to_dict("records")
    return c.regressions


# ----------------------------------------------------------------------------- answers

def verdict_changes(base_answers: list, new_answers: list) -> list[dict]:
    """The study's questions whose verdict (code) differs between BASE's answers and NEW's."""
    before = {a.key: a for a in base_answers}
    out = []
    for a in new_answers:
        b = before.get(a.key)
        if b is not None and b.facts.code != a.facts.code:
            out.append({"question": a.question, "title": a.title, "base": b.facts.code, "new": a.facts.code,
                        "base_verdict": b.verdict, "new_verdict": a.verdict})
    return out
