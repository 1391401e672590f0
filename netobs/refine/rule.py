"""The stopping rule of `netobs refine`, declared once: a fixed maximum of looks with the
significance level split evenly between them (Bonferroni over the looks).

A comparison (strategy A against its baseline B at one configuration, throughput over repeats)
is looked at once per repeat count n = 2 .. max_repeats (n repeats on the side with fewer): at
most `max_repeats - 1` looks. Each look builds the Welch interval for mean(A) - mean(B), relative
to mean(B), at level 1 - alpha / looks, and decides:

- `ahead` / `behind`: the interval excludes 0 (A significantly above / below B);
- `same`: the interval lies inside the equivalence band +-`band` (a difference smaller than
  the band, decided; a crossover there is within noise);
- `open`: neither; another repeat is planned while n < max_repeats.

Whatever the data, the chance that equal strategies are ever called ahead or behind over all
looks is at most alpha (the union bound over at most `looks` tests at alpha / looks each): the
price of looking after every repeat is paid in advance, so stopping early is honest.
`tests/test_refine_sim.py` measures it on 1,000 simulated refinements of equal strategies.

The answers pay the same price (`answers_alpha`): on a directory `netobs refine` looked at, every
answer's test of two groups of repeats is at the per-look alpha of the rule its rounds recorded
(the smallest, where rounds differ), not at alpha: a difference the refinement stopped on after
several looks is significant for the answers only as the rule judged it. A directory never refined
is tested at alpha.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from netobs.analysis.stats import ALPHA

AHEAD, BEHIND, SAME, OPEN = "ahead", "behind", "same", "open"
DECIDED = (AHEAD, BEHIND, SAME)
NAME = "bonferroni-over-looks"
DEFAULT_MAX_REPEATS = 5
DEFAULT_BAND = 0.05      # within +-5% of the baseline: the same (analysis.questions.common PARAMETERS.min_effect)


@dataclass(frozen=True)
class Rule:
    max_repeats: int = DEFAULT_MAX_REPEATS
    alpha: float = ALPHA
    band: float = DEFAULT_BAND

    @property
    def looks(self) -> int:
        """The most looks at one comparison: one per repeat count 2 .. max_repeats."""
        return max(1, self.max_repeats - 1)

    @property
    def alpha_per_look(self) -> float:
        return self.alpha / self.looks

    def to_dict(self) -> dict:
        return {"name": NAME, "max_repeats": self.max_repeats, "alpha": self.alpha, "looks": self.looks,
                "alpha_per_look": self.alpha_per_look, "equivalence_band": self.band,
                "interval": "Welch interval for (mean A - mean B) / mean B at level 1 - alpha_per_look",
                "words": (f"at most {self.looks} looks per comparison (repeats 2 to {self.max_repeats}), each at "
                          f"alpha {self.alpha:g}/{self.looks}: ahead/behind when the interval excludes 0, the same "
                          f"when it lies within +-{self.band:.0%}, else open")}

    def decide(self, a, b) -> "Decision":
        """A (repeats of the strategy) against B (repeats of its baseline)."""
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        a, b = a[~np.isnan(a)], b[~np.isnan(b)]
        d = decide_moments(self, np.array([len(a)]), np.array([a.mean() if len(a) else np.nan]),
                           np.array([a.var(ddof=1) if len(a) > 1 else np.nan]),
                           np.array([len(b)]), np.array([b.mean() if len(b) else np.nan]),
                           np.array([b.var(ddof=1) if len(b) > 1 else np.nan]))
        return Decision(str(d["state"][0]), int(min(len(a), len(b))), float(d["change"][0]),
                        float(d["low"][0]), float(d["high"][0]))


def recorded_rules(manifest: dict) -> list[dict]:
    """The rules (their `to_dict`) a results directory's refinement rounds recorded, in round
    order; [] where it was never refined (a round that recorded none gives {})."""
    rounds = [x for x in (manifest or {}).get("refinement") or [] if isinstance(x, dict)]
    return [x["rule"] if isinstance(x.get("rule"), dict) else {} for x in rounds]


def answers_alpha(manifest: dict, alpha: float = ALPHA) -> float:
    """The significance level of the answers' tests on a results directory (its manifest):
    `alpha` where it was never refined, else the smallest `alpha_per_look` its refinement rounds
    recorded."""
    per_look = [float(x["alpha_per_look"]) for x in recorded_rules(manifest)
                if isinstance(x.get("alpha_per_look"), (int, float)) and x["alpha_per_look"] > 0]
    return min([alpha, *per_look])


@dataclass(frozen=True)
class Decision:
    state: str          # AHEAD, BEHIND, SAME or OPEN
    n: int              # repeats on the side with fewer
    change: float       # (mean A / mean B - 1), a fraction
    low: float          # the interval of `change` at the rule's per-look level (NaN with n < 2)
    high: float

    @property
    def sign(self) -> int:
        return {AHEAD: 1, BEHIND: -1}.get(self.state, 0)

    def to_dict(self) -> dict:
        return {"state": self.state, "n": self.n, "change": self.change, "low": self.low, "high": self.high}


def decide_moments(rule: Rule, n_a, mean_a, var_a, n_b, mean_b, var_b) -> dict:
    """`Rule.decide` for many comparisons at once, from their moments (numpy arrays): the
    simulations run 1,000 refinements through this one function. Returns arrays `state`,
    `change`, `low`, `high` (fractions of mean B)."""
    from scipy import special

    n_a, n_b = np.asarray(n_a, dtype=float), np.asarray(n_b, dtype=float)
    mean_a, mean_b = np.asarray(mean_a, dtype=float), np.asarray(mean_b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        va, vb = np.asarray(var_a, dtype=float) / n_a, np.asarray(var_b, dtype=float) / n_b
        se = np.sqrt(va + vb)
        df = (va + vb) ** 2 / (va ** 2 / (n_a - 1) + vb ** 2 / (n_b - 1))
        df = np.where(va + vb == 0, np.inf, df)
        q = special.stdtrit(np.where(np.isfinite(df), df, 1e9), 1.0 - rule.alpha_per_look / 2.0)
        diff = mean_a - mean_b
        low, high = (diff - q * se) / mean_b, (diff + q * se) / mean_b
        change = diff / mean_b
    tested = (n_a >= 2) & (n_b >= 2) & (mean_b > 0)
    low, high = np.where(tested, low, np.nan), np.where(tested, high, np.nan)
    state = np.full(len(n_a), OPEN, dtype=object)
    state[tested & (low > 0)] = AHEAD
    state[tested & (high < 0)] = BEHIND
    state[tested & (low >= -rule.band) & (high <= rule.band) & ~(low > 0) & ~(high < 0)] = SAME
    return {"state": state, "change": change, "low": low, "high": high}
