"""netobs refine on simulated strategies (issue 26): the stopping rule's false-positive rate over
1,000 simulated refinements of equal strategies, and the planner and judge of the real runs
(netobs.refine.driver with a simulated `measure`) bracketing a planted crossover within the
declared factor. No root, no real runs."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from netobs.refine import driver
from netobs.refine.plan import FACTOR, GRID_B, LOCATED
from netobs.refine.rule import AHEAD, BEHIND, OPEN, Rule, decide_moments

SIZES = (1024, 4096, 16384, 65536)   # the study's
CV = 0.01                            # run-to-run noise of the simulated throughput


class Simulated:
    """Strategies whose throughput is `model(strategy, size, threads)` times (1 + CV x normal):
    `load` and `measure` for the driver, as the real store gives them."""

    def __init__(self, model, sizes=SIZES, strategies=("two_copy", "one_copy"), threads=(1,), seed=0, cv=CV):
        self.model, self.cv, self.rng, self.rows = model, cv, np.random.default_rng(seed), []
        for s in sizes:
            for t in threads:
                for i in strategies:
                    self.add({"strategy": i, "msg_size": s, "threads": t, "repeat": 0, "fields": 8, "nodelay": False,
                              "placement": "split"})

    def add(self, p: dict) -> None:
        noise = 1 + self.cv * self.rng.standard_normal()
        self.rows.append({"implementation": p["strategy"], "msg_size": p["msg_size"], "threads": p["threads"],
                          "repeat": p["repeat"], "fields": p["fields"], "nodelay": int(p["nodelay"]),
                          "placement": p["placement"],
                          "throughput_gbps": self.model(p["strategy"], p["msg_size"], p["threads"]) * noise})

    def load(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def measure(self, planned, rnd) -> driver.Measured:
        for p in planned:
            self.add(p.params)
        return driver.Measured(wall_s=sum(p.cost_s for p in planned), done=len(planned))

    def refine(self, budget_s=1e6, rule=Rule()) -> driver.Refinement:
        return driver.refine(self.load, self.measure, rule, budget_s, lambda p: 1.0)


def crossing_at(size_b: float):
    """one_copy slower than two_copy below `size_b`, faster above (10 Gbit/s x size/size_b)."""
    return lambda impl, s, t: 10.0 * (s / size_b if impl == "one_copy" else 1.0)


def test_rule_false_positive_rate_on_equal_strategies():
    """1,000 refinements of two equal strategies, looked at as refine looks (1 repeat each to start,
    one more on each side per round while open, a look at every n from 2 to max_repeats): the share
    ever called ahead or behind is at most the rule's alpha (5%)."""
    rule, sims, cv = Rule(), 1000, 0.05
    rng = np.random.default_rng(26)
    a = rng.normal(10.0, 10.0 * cv, size=(sims, rule.max_repeats))
    b = rng.normal(10.0, 10.0 * cv, size=(sims, rule.max_repeats))
    ever = np.zeros(sims, dtype=bool)
    going = np.ones(sims, dtype=bool)
    for n in range(2, rule.max_repeats + 1):
        x, y = a[:, :n], b[:, :n]
        d = decide_moments(rule, np.full(sims, n), x.mean(1), x.var(1, ddof=1), np.full(sims, n), y.mean(1),
                           y.var(1, ddof=1))
        called = going & np.isin(d["state"], [AHEAD, BEHIND])
        ever |= called
        going &= d["state"] == OPEN   # a decided comparison gets no more repeats
    rate = ever.mean()
    assert rate <= rule.alpha, rate
    # the rule is not vacuous: a real 3% difference is called in most refinements
    c = rng.normal(10.3, 10.0 * 0.01, size=(sims, rule.max_repeats))
    d = decide_moments(rule, np.full(sims, 5), c.mean(1), c.var(1, ddof=1), np.full(sims, 5), a[:, :5].mean(1) * 0 + 10,
                       np.full(sims, (10.0 * 0.01) ** 2))
    assert (d["state"] == AHEAD).mean() > 0.8


def test_rule_is_declared():
    r = Rule(max_repeats=5).to_dict()
    assert r["looks"] == 4 and r["alpha_per_look"] == pytest.approx(0.05 / 4)
    assert "Bonferroni".lower() in r["name"]


@pytest.mark.parametrize("size_b", [2500, 6000, 21000])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_planted_crossover_is_bracketed_within_the_factor(size_b, seed):
    sim = Simulated(crossing_at(size_b), seed=seed)
    out = sim.refine()
    located = [f for f in out.flips if f.status in LOCATED]
    assert len(out.flips) == 1 and located, [f.to_dict() for f in out.flips]
    f = located[0]
    assert f.status == "bracketed" and f.lo < size_b <= f.hi and f.factor <= FACTOR * (1 + 1e-9)
    assert f.lo_state == BEHIND and f.hi_state == AHEAD
    sizes = {r["msg_size"] for r in sim.rows}
    assert all(s % GRID_B == 0 for s in sizes)
    # far fewer points than a dense grid of 12 sizes x 5 repeats x 2 strategies
    assert len(sim.rows) <= 0.4 * 120, len(sim.rows)


@pytest.mark.parametrize("seed", range(8))
def test_no_difference_locates_no_crossover(seed):
    sim = Simulated(lambda impl, s, t: 10.0, seed=seed, cv=0.03)
    out = sim.refine()
    assert not [f for f in out.flips if f.status in LOCATED], [f.to_dict() for f in out.flips]
    assert out.stop == driver.NOTHING_OPEN


def test_the_plan_never_exceeds_the_budget():
    sim = Simulated(crossing_at(6000), strategies=("two_copy", "one_copy", "zero_copy"), threads=(1, 2), seed=4)
    out = driver.refine(sim.load, sim.measure, Rule(), 25.0, lambda p: 1.5)
    assert out.rounds and out.stop == driver.BUDGET
    for r in out.rounds:
        assert r.total_s <= r.budget_left_s + 1e-9
    assert out.spent_s <= 25.0


def test_max_repeats_bounds_every_point():
    sim = Simulated(crossing_at(6000), seed=5, cv=0.2)   # too noisy to decide much
    out = sim.refine(rule=Rule(max_repeats=3))
    per = pd.DataFrame(sim.rows).groupby(["implementation", "msg_size"]).size()
    assert per.max() <= 3 and out.stop in (driver.NOTHING_OPEN, driver.ROUNDS)


@pytest.mark.parametrize("seed", [1, 2])
def test_planted_thread_plateau_is_located(seed):
    """Throughput rises linearly to 5 threads, then stays: measured at 1, 2 and 8 threads, refine
    finds it between adjacent thread counts by the same planner and rule."""
    plateau_at = 5
    sim = Simulated(lambda impl, s, t: 2.0 * min(t, plateau_at), sizes=(65536,), strategies=("one_copy",),
                    threads=(1, 2, 8), seed=seed)
    out = sim.refine()
    located = [p for p in out.plateaus if p.status == "located"]
    assert len(out.plateaus) == 1 and located, [p.to_dict() for p in out.plateaus]
    p = located[0]
    assert (p.lo, p.hi) == (plateau_at - 1, plateau_at)
    rising = Simulated(lambda impl, s, t: 2.0 * t, sizes=(65536,), strategies=("one_copy",), threads=(1, 2, 8),
                       seed=seed)
    assert [p.status for p in rising.refine().plateaus] == ["rising"]
