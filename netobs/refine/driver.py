"""Refinement round by round: plan from what is stored, cut the plan to the budget left, measure
it, and plan again from the new data, until nothing is open (every comparison decided or at the
rule's maximum of repeats), the budget cannot take the next item, or MAX_ROUNDS.

`load()` gives the runs (a frame as `analysis.load.Results.runs`), `measure(points, round)` runs
the planned points and returns the seconds they took with how many were done and failed; the
real measurement (`netobs.refine.measure`) and the simulations of the tests are two such pairs
behind this one loop and one planner. Nothing here prints: `progress(event, **info)` hears it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

from . import plateau
from .plan import FACTOR, GRID_B, Flip, Planned, fit, plan_round
from .rule import Rule

MAX_ROUNDS = 20
# why refinement stopped
NOTHING_OPEN, BUDGET, ROUNDS, DRY_RUN = "nothing_open", "budget", "rounds", "dry_run"
STOP_WORDS = {NOTHING_OPEN: "nothing left open (every comparison decided or at the rule's maximum of repeats)",
              BUDGET: "the budget cannot take the next planned item", ROUNDS: f"{MAX_ROUNDS} rounds",
              DRY_RUN: "--dry-run: the first round's plan only"}


@dataclass
class Measured:
    wall_s: float
    done: int
    failed: int = 0
    interrupted: bool = False


@dataclass
class Round:
    index: int
    budget_left_s: float
    planned: list[Planned]
    left_out: list[str]                    # items that did not fit, by what they would decide
    measured: Measured | None = None

    @property
    def total_s(self) -> float:
        return sum(p.cost_s for p in self.planned)

    def to_dict(self) -> dict:
        out = {"round": self.index, "budget_left_s": round(self.budget_left_s, 3), "total_s": round(self.total_s, 3),
               "planned": [p.to_dict() for p in self.planned], "left_out": self.left_out}
        if self.measured is not None:
            m = self.measured
            out.update(wall_s=round(m.wall_s, 3), done=m.done, failed=m.failed, interrupted=m.interrupted)
        return out


@dataclass
class Refinement:
    rule: Rule
    budget_s: float
    rounds: list[Round] = field(default_factory=list)
    stop: str | None = None
    comparisons: pd.DataFrame | None = None    # after the last round
    flips: list[Flip] = field(default_factory=list)
    plateaus: list = field(default_factory=list)   # netobs.refine.plateau.Plateau

    @property
    def spent_s(self) -> float:
        return sum(r.measured.wall_s for r in self.rounds if r.measured)

    def settings(self) -> dict:
        return {"rule": self.rule.to_dict(), "budget_s": self.budget_s, "grid_b": GRID_B, "factor": FACTOR}

    def to_dict(self) -> dict:
        comps = self.comparisons
        return {**self.settings(), "stop": self.stop, "spent_s": round(self.spent_s, 3),
                "rounds": [r.to_dict() for r in self.rounds],
                "open": 0 if comps is None or comps.empty else int((comps.state == "open").sum()),
                "comparisons": [] if comps is None else comps.to_dict("records"),
                "flips": [f.to_dict() for f in self.flips], "plateaus": [p.to_dict() for p in self.plateaus]}


def refine(load: Callable[[], pd.DataFrame], measure: Callable[[list[Planned], Round], Measured], rule: Rule,
           budget_s: float, cost_s: Callable[[dict], float], interventions: Callable[[], list] = lambda: [],
           dry_run: bool = False, progress: Callable = lambda *a, **k: None, max_rounds: int = MAX_ROUNDS,
           factor: float = FACTOR, grid: int = GRID_B) -> Refinement:
    out = Refinement(rule, budget_s)
    while True:
        runs = load()
        items, comps, fl = plan_round(runs, rule, interventions(), factor, grid)
        out.comparisons, out.flips = comps, fl
        out.plateaus = plateau.plateaus(plateau.steps(runs, rule), rule)
        left = budget_s - out.spent_s
        chosen, skipped = fit(items, cost_s, left)
        if not items:
            out.stop = NOTHING_OPEN
        elif not chosen:
            out.stop = BUDGET
        elif len(out.rounds) >= max_rounds:
            out.stop = ROUNDS
        if out.stop:
            progress("stop", refinement=out)
            return out
        rnd = Round(len(out.rounds) + 1, left, chosen, [i.decides for i in skipped])
        out.rounds.append(rnd)
        progress("plan", round=rnd, refinement=out)
        if dry_run:
            out.stop = DRY_RUN
            progress("stop", refinement=out)
            return out
        rnd.measured = measure(chosen, rnd)
        progress("measured", round=rnd, refinement=out)
        if rnd.measured.interrupted:
            return out
