"""Statistics over repeats: median, confidence interval, variation, significance.

Methods (stated in every answer's facts as `METHODS`):
- central value: the median of the repeats of one configuration;
- 95% confidence interval: Student-t interval for the *mean* of the repeats
  (mean +- t(0.975, n-1) * s / sqrt(n)); none with fewer than 2 repeats;
- coefficient of variation: sample standard deviation (n-1) / mean; above HIGH_CV (10%)
  the configuration is flagged as highly variable;
- difference between two groups of repeats: Welch's two-sided t-test (unequal variances,
  Welch-Satterthwaite degrees of freedom), significant when p < ALPHA (0.05). With fewer than
  2 repeats on either side no test is possible and the result says so (significant = None);
- consistency of an effect across configurations: exact two-sided sign test.

No scipy: the t distribution comes from the regularised incomplete beta function below.
"""
from __future__ import annotations

import functools

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

ALPHA = 0.05
HIGH_CV = 0.10
METHODS = {
    "center": "median of repeats",
    "ci": "95% Student-t interval for the mean of repeats (none with n<2)",
    "cv": "sample std (n-1) / mean; high when > 10%",
    "test": "Welch two-sided t-test on repeats, significant when p < 0.05 (none with n<2 on either side)",
    "consistency": "exact two-sided sign test across configurations",
}


# -- distributions ------------------------------------------------------------------------
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction for the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * _betacf(b, a, 1.0 - x) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with df degrees of freedom."""
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


@functools.lru_cache(maxsize=None)
def t_ppf(q: float, df: float) -> float:
    """Quantile of Student's t (q in (0.5, 1)), by bisection on t_sf (cached: a report asks
    for the same few degrees of freedom thousands of times)."""
    lo, hi = 0.0, 1.0
    while t_sf(hi, df) > 1.0 - q:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_sf(mid, df) > 1.0 - q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


def sign_test(n_positive: int, n_negative: int) -> float:
    """Exact two-sided sign test p-value (ties are dropped before calling)."""
    n = n_positive + n_negative
    if n == 0:
        return 1.0
    k = min(n_positive, n_negative)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0 ** n
    return min(1.0, 2.0 * tail)


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
    """Median, mean, std, CV and 95% t-interval for the mean of the non-missing values."""
    x = np.asarray(pd.Series(values, dtype=float).dropna(), dtype=float)
    n = len(x)
    nan = float("nan")
    if n == 0:
        return Summary(0, nan, nan, nan, nan, nan, nan)
    median, mean = float(np.median(x)), float(np.mean(x))
    if n < 2:
        return Summary(1, median, mean, nan, nan, nan, nan)
    std = float(np.std(x, ddof=1))
    cv = std / mean if mean > 0 else nan
    half = t_ppf(0.975, n - 1) * std / math.sqrt(n)
    return Summary(n, median, mean, std, cv, mean - half, mean + half)


def summarize_groups(df: pd.DataFrame, keys: list[str], metric: str) -> pd.DataFrame:
    """One row per group: keys + n, median, mean, std, cv, ci_low, ci_high, high_cv."""
    rows = []
    for key, group in df.groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(keys, key)), **summarize(group[metric]).to_dict()})
    cols = keys + ["n", "median", "mean", "std", "cv", "ci_low", "ci_high", "high_cv"]
    return pd.DataFrame(rows, columns=cols)


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
    note: str

    def to_dict(self) -> dict:
        return asdict(self)


def welch(a, b) -> tuple[float, float]:
    """Welch's t-test: (t, two-sided p). NaN when either side has fewer than 2 values."""
    a = np.asarray(pd.Series(a, dtype=float).dropna(), dtype=float)
    b = np.asarray(pd.Series(b, dtype=float).dropna(), dtype=float)
    if len(a) < 2 or len(b) < 2:
        return float("nan"), float("nan")
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    diff = float(np.mean(b) - np.mean(a))
    if va + vb == 0:
        return (0.0, 1.0) if diff == 0 else (math.copysign(math.inf, diff), 0.0)
    t = diff / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return float(t), float(min(1.0, 2.0 * t_sf(abs(t), df)))


def compare(a, b, alpha: float = ALPHA) -> Comparison:
    """Compare repeats b against repeats a (medians, % change, Welch p, significance)."""
    sa, sb = summarize(a), summarize(b)
    change = (sb.median / sa.median - 1.0) * 100.0 if sa.median and sa.median == sa.median else float("nan")
    if sa.n < 2 or sb.n < 2:
        n = min(sa.n, sb.n)
        note = f"{n} repeat{'s' if n != 1 else ''} on one side: no significance can be claimed"
        return Comparison(sa.n, sb.n, sa.median, sb.median, change, float("nan"), None, note)
    _, p = welch(a, b)
    significant = bool(p < alpha)
    note = f"Welch p={p:.3g}: " + ("significant" if significant else "not significant")
    return Comparison(sa.n, sb.n, sa.median, sb.median, change, p, significant, note)


def quantiles(values) -> dict:
    """median, IQR (25th-75th percentile, linear interpolation), min, max of non-missing values."""
    x = np.asarray(pd.Series(values, dtype=float).dropna(), dtype=float)
    if len(x) == 0:
        nan = float("nan")
        return {"n": 0, "median": nan, "q1": nan, "q3": nan, "min": nan, "max": nan}
    return {"n": int(len(x)), "median": float(np.median(x)), "q1": float(np.percentile(x, 25)),
            "q3": float(np.percentile(x, 75)), "min": float(x.min()), "max": float(x.max())}
