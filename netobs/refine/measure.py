"""The real measurement behind `netobs refine`: planned points run into the results directory a
sweep made, through the sweep's own store (its one-writer lock, `ResultsDir.open_for_resume`),
checks (every planned point a RunSpec of the stored sweep's parameters, checked before anything
runs) and loop (`netobs.sweep.run_sweep`: each point stored as it finishes, a failed point
recorded and the rest run, Ctrl-C keeps what was measured). A refine cut short is resumed by
running it again: it plans from what the directory holds.
"""
from __future__ import annotations

import secrets
from pathlib import Path

import pandas as pd

from netobs.spec import stored_sweep
from netobs.store import ResultsDir, now_iso

from .driver import Measured, Round
from .plan import Planned

FOREIGN_FIX = "a sweep of your own (`netobs sweep -o DIR`), then `netobs refine DIR`"
DEFAULT_OVERHEAD_S = 1.5   # a point's set-up and tear-down beyond its warm-up and window, until measured


def open_results(path: str | Path) -> tuple[ResultsDir, object]:
    """The results directory to refine, under its lock, and the sweep it was started with."""
    from netobs.sweep import reopen

    path = Path(path)
    store = reopen(path, f"cannot refine {path}", f"`netobs sweep -o {path}` first", FOREIGN_FIX)
    try:
        return store, stored_sweep(store.manifest)
    except BaseException:
        store.close()
        raise


class PointCost:
    """Seconds a planned point costs: its warm-up and window plus the set-up beyond them, the
    directory's last measured mean (its manifest's summary), then each round's own."""

    def __init__(self, sweep, manifest: dict):
        self.window_s = float(sweep.warmup) + float(sweep.duration)
        s = manifest.get("summary") or {}
        done, wall, windows = s.get("done_now") or 0, s.get("wall_s"), s.get("measured_windows_s")
        self.overhead_s = (max(0.0, (wall - windows) / done) if done and wall is not None and windows is not None
                           else DEFAULT_OVERHEAD_S)

    def __call__(self, params: dict) -> float:
        return self.window_s + self.overhead_s

    def learn(self, wall_s: float, windows_s: float, points: int) -> None:
        if points:
            self.overhead_s = max(0.0, (wall_s - windows_s) / points)


def specs(sweep, planned: list[Planned]) -> list:
    """The planned points as RunSpecs: the stored sweep's shared parameters, the point's own."""
    shared = {name: getattr(sweep, name) for name in sweep.TABLE.shared_names()}
    return [sweep.POINT(**{**shared, **p.params}) for p in planned]


def runs_of(path: Path) -> pd.DataFrame:
    from netobs.analysis.load import load_results

    return load_results(path).runs


def measurer(store: ResultsDir, sweep, cost: PointCost, refinement_id: str, settings: dict,
             progress=lambda *a, **k: None):
    """`measure` for the driver: the round's points through `run_sweep`, the round (its rule,
    `settings`, plan and outcome) in the manifest before and after it runs."""
    import time

    from netobs.errors import Interrupted
    from netobs.sweep import run_sweep

    def record(rnd: Round) -> None:
        store.add_refinement({"id": f"{refinement_id}-{rnd.index}", "refinement": refinement_id, "at": now_iso(),
                              **settings, **rnd.to_dict()})

    def measure(planned: list[Planned], rnd: Round) -> Measured:
        todo = specs(sweep, planned)
        record(rnd)
        started = time.monotonic()
        try:
            summary = run_sweep(sweep, store, progress=progress, points=todo)
        except (Interrupted, KeyboardInterrupt):
            rnd.measured = Measured(time.monotonic() - started, 0, 0, True)
            record(rnd)
            raise
        rnd.measured = Measured(summary.wall_s, summary.done, summary.failed, summary.interrupted)
        cost.learn(summary.wall_s, summary.window_s, summary.done + summary.failed)
        record(rnd)
        return rnd.measured

    return measure


def new_id() -> str:
    return f"refine-{now_iso()}-{secrets.token_hex(2)}"


__all__ = ["open_results", "PointCost", "specs", "runs_of", "measurer", "new_id"]
