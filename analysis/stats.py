"""Statistics over repeats: median, confidence interval, variation, significance (scipy.stats).

Methods (stated in every answer's facts as `METHODS`, and in the report's words):
- central value: the median of the repeats of one configuration;
- 95% confidence interval: Student-t interval for the *mean* of the repeats
  (mean +- t(0.975, n-1) * s / sqrt(n)); none with fewer than 2 repeats. It is the one interval
  netobs shows: the answers' numbers and the charts' bands both come from `summarize`;
- coefficient of variation: sample standard deviation (n-1) / mean; above HIGH_CV (10%)
  the configuration is flagged as highly variable;
- difference between two groups of repeats: Welch's two-sided t-test (unequal variances),
  significant when p < ALPHA (0.05). With fewer than 2 repeats on either side no test is
  possible and the result says so (significant = None);
- consistency of an effect across configurations: exact two-sided sign test over independent
  units only (configurations, never strategy x configuration pairs that share one baseline run);
- a median of ratios leaves out ratios over tiny baselines (`guarded_ratios`) and says how many.
"""
from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd


def _sps():
    # scipy.stats costs half a second to import; a run with one repeat per point never tests,
    # so it is imported where a test or an interval first needs it
    from scipy import stats

    return stats


def _special():
    from scipy import special   # (imported where a test first needs it, as scipy.stats is)

    return special

ALPHA = 0.05
HIGH_CV = 0.10
CONFIDENCE = 0.95
METHODS = {
    "center": "median of repeats",
    "ci": "95% Student-t interval for the mean of repeats (none with n<2)",
    "cv": "sample std (n-1) / mean; high when > 10%",
    "test": "Welch two-sided t-test on repeats, significant when p < 0.05 (none with n<2 on either side)",
    "consistency": "exact two-sided sign test across configurations (independent units only)",
    "ratios": "medians of ratios leave out baselines below a floor (tiny baselines), counted",
}


def _values(values) -> np.ndarray:
    x = np.asarray(values.to_numpy(dtype=float, na_value=np.nan) if isinstance(values, pd.Series) else
                   pd.Series(values, dtype=float).to_numpy(dtype=float, na_value=np.nan), dtype=float)
    return x[~np.isnan(x)]


@functools.lru_cache(maxsize=None)
def _t_quantile(df: int) -> float:
    # cached: a report asks for the same few degrees of freedom thousands of times, and
    # scipy's distribution machinery costs far more than the interval itself; scipy.special's
    # inverse of Student's t is what scipy.stats.t.ppf calls (the same value, without the
    # second of importing scipy.stats)
    return float(_special().stdtrit(df, 0.5 + CONFIDENCE / 2))


def t_interval(mean: float, std: float, n: int) -> tuple[float, float]:
    """The 95% Student-t interval for the mean of n values (NaN for n < 2)."""
    if n < 2:
        return float("nan"), float("nan")
    half = _t_quantile(n - 1) * std / math.sqrt(n)
    return mean - half, mean + half


# -- one group -----------------------------------------------------------------------------
@dataclass
class Summary:
    n: int
    median: float
    mean: float
    std: float
    cv: float
    ci_low: float
    ci_high: float

    @property
    def high_cv(self) -> bool:
        return bool(self.cv == self.cv and self.cv > HIGH_CV)

    def to_dict(self) -> dict:
        return {**asdict(self), "high_cv": self.high_cv}


def summarize(values) -> Summary:
    """Median, mean, std, CV and the 95% t-interval for the mean of the non-missing values."""
    x = _values(values)
    n = len(x)
    nan = float("nan")
    if n == 0:
        return Summary(0, nan, nan, nan, nan, nan, nan)
    median, mean = float(np.median(x)), float(np.mean(x))
    if n < 2:
        return Summary(1, median, mean, nan, nan, nan, nan)
    std = float(np.std(x, ddof=1))
    cv = std / mean if mean > 0 else nan
    low, high = t_interval(mean, std, n)
    return Summary(n, median, mean, std, cv, low, high)


SUMMARY_COLUMNS = ["n", "median", "mean", "std", "cv", "ci_low", "ci_high", "high_cv"]


def group_moments(df: pd.DataFrame, keys: list[str], metric: str) -> pd.DataFrame:
    """Per group (sorted by `keys`): n, median, mean and the sample variance (n-1) of the
    non-missing values of `metric`, computed for all groups at once (the numbers `summarize`
    gives group by group)."""
    g = df.groupby(keys, sort=True)[metric]
    out = pd.DataFrame({"n": g.count(), "median": g.median(), "mean": g.mean(), "var": g.var(ddof=1)})
    out["n"] = out["n"].astype(int)
    return out


def summarize_groups(df: pd.DataFrame, keys: list[str], metric: str) -> pd.DataFrame:
    """One row per group with a value: keys + n, median, mean, std, cv, ci_low, ci_high, high_cv
    (as `summarize` of each group, computed for all groups at once)."""
    if metric not in df or df.empty:
        return pd.DataFrame([], columns=keys + SUMMARY_COLUMNS)
    m = group_moments(df, keys, metric)
    n, mean = m["n"].to_numpy(), m["mean"].to_numpy(dtype=float)
    std = np.where(n >= 2, np.sqrt(m["var"].to_numpy(dtype=float)), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        cv = np.where(mean > 0, std / mean, np.nan)
        half = np.array([_t_quantile(int(k) - 1) if k >= 2 else np.nan for k in n]) * std / np.sqrt(n)
    out = m.drop(columns="var").assign(std=std, cv=cv, ci_low=mean - half, ci_high=mean + half)
    out["high_cv"] = out["cv"].gt(HIGH_CV)
    return out.reset_index()[keys + SUMMARY_COLUMNS]


# -- two groups ----------------------------------------------------------------------------
@dataclass
class Comparison:
    """b compared with a: change_pct = (median_b / median_a - 1) * 100."""

    n_a: int
    n_b: int
    median_a: float
    median_b: float
    change_pct: float
    p_value: float
    significant: bool | None  # None: fewer than 2 repeats on a side, nothing can be claimed

    def to_dict(self) -> dict:
        return asdict(self)


def welch(a, b) -> tuple[float, float]:
    """Welch's t-test of b against a: (t, two-sided p). NaN when either side has fewer than 2
    values. Two constant samples are a certain difference (p=0) or none (p=1), where the
    t statistic itself is undefined."""
    a, b = _values(a), _values(b)
    if len(a) < 2 or len(b) < 2:
        return float("nan"), float("nan")
    if np.var(a, ddof=1) + np.var(b, ddof=1) == 0:
        diff = float(np.mean(b) - np.mean(a))
        return (0.0, 1.0) if diff == 0 else (math.copysign(math.inf, diff), 0.0)
    # Welch's statistic and degrees of freedom, and the two-sided p from Student's t (what
    # scipy.stats.ttest_ind(b, a, equal_var=False) computes, without its per-call machinery:
    # explain runs this for every configuration)
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (np.mean(b) - np.mean(a)) / math.sqrt(va + vb)
        df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return float(t), float(2.0 * _special().stdtr(df, -abs(t)))


def compare(a, b, alpha: float = ALPHA) -> Comparison:
    """Compare repeats b against repeats a (medians, % change, Welch p, significance)."""
    sa, sb = summarize(a), summarize(b)
    change = (sb.median / sa.median - 1.0) * 100.0 if sa.median and sa.median == sa.median else float("nan")
    if sa.n < 2 or sb.n < 2:
        return Comparison(sa.n, sb.n, sa.median, sb.median, change, float("nan"), None)
    _, p = welch(a, b)
    return Comparison(sa.n, sb.n, sa.median, sb.median, change, p, bool(p < alpha))


def compare_groups(a: pd.DataFrame, b: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """`compare` for many pairs at once: `a` and `b` are `group_moments` frames on the same
    keys; one row per key both have values at: n_a, n_b, median_a, median_b, change_pct,
    p_value, significant (None where a side has fewer than 2 repeats)."""
    j = a[a["n"] > 0].add_suffix("_a").join(b[b["n"] > 0].add_suffix("_b"), how="inner")
    ma, mb = j["median_a"].to_numpy(dtype=float), j["median_b"].to_numpy(dtype=float)
    na, nb = j["n_a"].to_numpy(dtype=float), j["n_b"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        change = np.where((ma != 0) & ~np.isnan(ma), (mb / ma - 1.0) * 100.0, np.nan)
        va, vb = j["var_a"].to_numpy(dtype=float) / na, j["var_b"].to_numpy(dtype=float) / nb
        diff = j["mean_b"].to_numpy(dtype=float) - j["mean_a"].to_numpy(dtype=float)
        t = diff / np.sqrt(va + vb)
        df = (va + vb) ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1))
    tested = (na >= 2) & (nb >= 2)
    if tested.any():   # (one repeat everywhere: no p to compute, and scipy.special is not imported)
        with np.errstate(divide="ignore", invalid="ignore"):
            p = 2.0 * _special().stdtr(df, -np.abs(t))
        p = np.where(va + vb == 0, np.where(diff == 0, 1.0, 0.0), p)   # two constant samples (see welch)
        p = np.where(tested, p, np.nan)
    else:
        p = np.full(len(j), np.nan)
    significant = [bool(x < alpha) if ok else None for x, ok in zip(p, tested)]
    return pd.DataFrame({"n_a": j["n_a"].to_numpy(), "n_b": j["n_b"].to_numpy(), "median_a": ma, "median_b": mb,
                         "change_pct": change, "p_value": p, "significant": significant}, index=j.index)


def sign_test(n_positive: int, n_negative: int) -> float:
    """Exact two-sided sign test p-value (ties are dropped before calling)."""
    n = n_positive + n_negative
    if n == 0:
        return 1.0
    return float(_sps().binomtest(n_positive, n, 0.5).pvalue)


def guarded_ratios(baselines, floor: float, share_of_median: float = 0.05) -> pd.Series:
    """Which ratios over `baselines` may be used: the baseline at least `floor` and at least
    `share_of_median` of the baselines' median (a ratio over a near-zero baseline, x83 from
    0.0025 misses per KiB, says nothing and is left out, and counted)."""
    b = pd.Series(baselines, dtype=float)
    med = float(b.median()) if b.notna().any() else float("nan")
    limit = max(floor, share_of_median * med) if med == med else floor
    return (b >= limit) & b.notna()


def quantiles(values) -> dict:
    """median, IQR (25th-75th percentile, linear interpolation), min, max of non-missing values."""
    x = _values(values)
    if len(x) == 0:
        nan = float("nan")
        return {"n": 0, "median": nan, "q1": nan, "q3": nan, "min": nan, "max": nan}
    return {"n": int(len(x)), "median": float(np.median(x)), "q1": float(np.percentile(x, 25)),
            "q3": float(np.percentile(x, 75)), "min": float(x.min()), "max": float(x.max())}
