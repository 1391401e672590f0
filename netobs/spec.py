"""What to measure: one point (RunSpec) or the study's matrix (SweepSpec).

Both classes are declared by the parameter table (netobs.params): a RunSpec has a field for
every parameter of a point, a SweepSpec one for every option of `netobs sweep` (the matrix
axes `strategies`, `sizes`, `threads` and the message shape's `fields`, `nodelay` as tuples). Every field is checked when one is made,
before anything on the system changes; `to_dict()` is the dict form (a point result's
"params", the manifest's "matrix").
"""
from __future__ import annotations

import itertools
import random

from netobs.figures import point_id
from netobs.params import IDENTITY, PARAMS, Declared, Table, ident_value, placement_rule, remote_rule


class _Point(Declared):
    """One experiment: a strategy, a message size, a thread count, where it runs and how it
    is observed (fields: netobs.params, every parameter with point=True)."""

    @property
    def key(self) -> tuple:
        """(strategy, msg_size, threads, repeat, then the identity parameters: fields, nodelay,
        placement, sndbuf, rcvbuf, recv): a point's identity in the results store
        (netobs.params.POINT_KEY; `store.row_key` reads a stored row's)."""
        return (self.strategy, self.msg_size, self.threads, self.repeat,
                *(ident_value(p, getattr(self, p.name, p.default)) for p in IDENTITY))

    @property
    def point_id(self) -> str:
        return point_id(*self.key)


class _Sweep(Declared):
    """The matrix: strategies × message shapes (fields × nodelay) × placements × socket buffers (the
    point axes beyond strategy, size and threads: `Table.point_axes`) × sizes × thread counts ×
    repeats, in a chosen order, and the parameters every point shares (fields: netobs.params,
    every parameter `netobs sweep` takes). Its points are of its table's RunSpec (`POINT`)."""

    def points(self) -> list:
        """Every point of the matrix, in the order they will run.

        sequential:  repeat-major, then strategy, shape, size, threads (the study's loops, a
                     shape's points after each other);
        interleaved: for each (size, threads) the strategies and shapes run back to back
                     (each strategy in every shape), repeat after repeat, so slow drift hits
                     every strategy and shape alike;
        random:      a seeded shuffle (reproducible from the manifest's seed).
        One shape (the study's): the order is the one before shapes were swept.
        """
        combos = list(itertools.product(self.sizes, self.threads))
        axes = self.TABLE.point_axes()
        shapes = list(itertools.product(*(getattr(self, p.sweep.axis) for p in axes)))
        if self.order == "interleaved":
            keys = [(r, s, t, i, f) for s, t in combos for r in range(self.repeats) for i in self.strategies
                    for f in shapes]
        else:
            keys = [(r, s, t, i, f) for r in range(self.repeats) for i in self.strategies for f in shapes
                    for s, t in combos]
        if self.order == "random":
            random.Random(self.seed).shuffle(keys)
        shared = {name: getattr(self, name) for name in self.TABLE.shared_names()}
        return [self.POINT(strategy=i, msg_size=s, threads=t, repeat=r, **dict(zip((p.name for p in axes), f)), **shared)
                for r, s, t, i, f in keys]

    def check_points(self) -> None:
        """Every combination of the axes is a point the workers take (a point's rules across
        parameters: fields against the message size, ...), before the sweep starts."""
        shared = {name: getattr(self, name) for name in self.TABLE.shared_names()}
        axes = self.TABLE.point_axes()
        for i, s, t, *f in itertools.product(self.strategies, self.sizes, self.threads,
                                             *(getattr(self, p.sweep.axis) for p in axes)):
            self.POINT(strategy=i, msg_size=s, threads=t, repeat=0, **dict(zip((p.name for p in axes), f)), **shared)

    @property
    def perf_events(self) -> list[str]:
        """The events every point counts ([] without perf)."""
        return list(self.events) if self.perf else []


def _rules(table: Table) -> tuple:
    """Rules across fields (a table without the remote parameters, as tests build, has none)."""
    return (((remote_rule,) if "remote" in table.by_name else ())
            + ((placement_rule,) if "placement" in table.by_name else ()))


def spec_classes(table: Table) -> tuple[type, type]:
    """RunSpec and SweepSpec as `table` declares them: a point also obeys the workers' rules
    (`Table.point_rule`), a sweep in every point of its matrix."""
    run_spec = table.dataclass("RunSpec", table.point_fields(), base=_Point, module=__name__,
                               rules=_rules(table) + (table.point_rule(),))
    sweep_spec = table.dataclass("SweepSpec", table.sweep_fields(), base=_Sweep, module=__name__, POINT=run_spec,
                                 rules=_rules(table) + (_Sweep.check_points,))
    return run_spec, sweep_spec


RunSpec, SweepSpec = spec_classes(PARAMS)

# Matrix keys that were spelled differently before (issue 12): old name -> name now.
OLD_MATRIX_KEYS = {"impls": "strategies"}


def stored_sweep(manifest: dict, sweep_spec: type = SweepSpec):
    """The SweepSpec a results directory was started with, read from its manifest's matrix
    as any netobs version wrote it: the strategies were "impls" before, the perf events were
    only the manifest's "perf_events", `fields` and `nodelay` were one value for every point
    (now lists: the shape's axes), `recv_copy: true` was `recv: fields` (issue 15), and a
    parameter the matrix lacks had its default."""
    matrix = dict(manifest.get("matrix") or {})
    for old, new in OLD_MATRIX_KEYS.items():
        if old in matrix:
            matrix.setdefault(new, matrix.pop(old))
    if "events" not in matrix and manifest.get("perf_events"):
        matrix["events"] = manifest["perf_events"]
    if matrix.pop("recv_copy", False):
        matrix["recv"] = "fields"
    table = sweep_spec.TABLE
    for p in table.for_command("sweep"):
        axis = p.sweep.axis
        if axis and axis in matrix and not isinstance(matrix[axis], (list, tuple)):
            matrix[axis] = [matrix[axis]]
    return sweep_spec.from_dict(matrix)
