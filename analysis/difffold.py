"""Differential profiles: per comparison and role, each stack's CPU per GB, A against B.

    diffs = differentials(results, scope, "client")   # Differential (stacks, per-class sums)
    paths = write(results, named_scopes)              # files under <results>/diff/ (DESIGN.md)

A point's on-CPU folded file (points/<id>/profile-<role>.folded, netobs.profiler) counts
samples per stack; one sample is 1/hz CPU-seconds, so a stack's CPU-s per GB is
samples / hz / GB the role moved over the profile's life (the same division as the runs.csv
class columns). A side's value of a stack is analysis.accounting.COST_AGGREGATE over its
configurations (mean over configurations of the mean over repeats), so per cost class the
stacks add up to the accounting's class figures, and A - B to its class gaps.

The process frame (the third, a command name or a pid) is dropped so the same stack of two
points is one stack. Files (µCPU-s per GB, integers, so every reader takes them):
- `<name>/<role>.diff.folded`: `stack B A` per line: what difffolded.pl writes; flamegraph.pl
  draws A's widths coloured by A - B (red: A costs more), `--negate` the other way round;
- `<name>/<role>.a.folded`, `<name>/<role>.b.folded`: each side alone (speedscope, flamegraph.pl);
- `<name>/<role>.csv`: stack, class, a, b, delta (µCPU-s/GB), for the report's differential flame graph;
- `index.json`: per comparison its A and B points, roles, files, unit and aggregate.
"""
from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from netobs.figures import ROLES, point_id
from netobs.files import atomic_write

from .accounting import COST_AGGREGATE
from .flame import folded_files, frame_class, read_folded
from .load import KEY, Results

DIR = "diff"
UNIT = "µCPU-s/GB"
SCALE = 1e6      # CPU-s/GB -> µCPU-s/GB


@dataclass
class Differential:
    role: str
    a: dict[tuple[str, ...], float]      # stack -> CPU-s/GB, side A (COST_AGGREGATE)
    b: dict[tuple[str, ...], float]
    points: tuple[int, int]               # configurations with folded files on each side

    def classes(self) -> dict[str, float]:
        """Per cost class: A - B (CPU-s/GB), from the stacks."""
        out: dict[str, float] = defaultdict(float)
        for s in set(self.a) | set(self.b):
            out[frame_class(s[1]) if len(s) > 1 else None] += self.a.get(s, 0.0) - self.b.get(s, 0.0)
        return dict(out)


def _stack(frames: tuple[str, ...]) -> tuple[str, ...]:
    return frames[:2] + frames[3:] if len(frames) > 2 else frames


def _point_stacks(r: Results, row, role: str) -> dict[tuple[str, ...], float] | None:
    """One run's stacks in CPU-s/GB, or None where it has no folded file or no bytes; read once
    per loaded results (every comparison a point is in asks again)."""
    pid = point_id(row.implementation, row.msg_size, row.threads, row.repeat,
                   getattr(row, "fields", 8), bool(getattr(row, "nodelay", 0) or 0))
    return r.memo(("point_stacks", pid, role), lambda: _read_stacks(r, row, role, pid))


def _read_stacks(r: Results, row, role: str, pid: str) -> dict[tuple[str, ...], float] | None:
    files = folded_files(Path(r.path) / "points" / pid, (role,))
    path = files.get((role, "on_cpu"))
    hz = getattr(row, f"prof_{role}_hz", None)
    moved = row.bytes_sent_total if role == "client" else row.bytes_received
    if path is None or not hz or hz != hz or not moved or moved != moved:
        return None
    gb = float(moved) / 1e9
    out: dict = defaultdict(float)
    for frames, w in read_folded(path):
        out[_stack(frames)] += w / float(hz) / gb
    return out


def _config_stacks(r: Results, p: tuple, role: str) -> dict | None:
    """One configuration's stacks: the mean over its repeats with a folded file (None: none
    has one); once per loaded results (every comparison the configuration is in asks again)."""
    runs = r.runs
    rows_of = r.memo("config_rows", lambda: runs.groupby(KEY).indices)   # each configuration's rows, found once
    tuples = r.memo("row_tuples", lambda: list(runs.itertuples(index=False)))   # the rows, made once

    def compute():
        reps = [s for s in (_point_stacks(r, tuples[i], role) for i in rows_of.get(p, [])) if s is not None]
        if not reps:
            return None
        mean: dict = defaultdict(float)
        for s in reps:
            for k, v in s.items():
                mean[k] += v / len(reps)
        return mean
    return r.memo(("config_stacks", p, role), compute)


def _side(r: Results, points, role: str) -> tuple[dict, int]:
    per_config = [m for m in (_config_stacks(r, p, role) for p in dict.fromkeys(tuple(x) for x in points))
                  if m is not None]
    out: dict = defaultdict(float)
    for m in per_config:
        for k, v in m.items():
            out[k] += v / len(per_config)
    return dict(out), len(per_config)


def differential(r: Results, scope, role: str) -> Differential | None:
    """Scope `at` (A) against `ref` (B) for one role; None without folded files on both sides."""
    a, na = _side(r, scope.at, role)
    b, nb = _side(r, scope.ref, role)
    if not na or not nb:
        return None
    return Differential(role, a, b, (na, nb))


def _name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "comparison"


def _folded(values: dict) -> str:
    return "".join(f"{';'.join(s)} {round(v * SCALE)}\n" for s, v in sorted(values.items()) if round(v * SCALE) > 0)


def write(r: Results, comparisons: dict, roles=ROLES) -> list[Path]:
    """comparisons: name -> hypotheses.Scope. Writes each one's files under <results>/diff/
    (those without folded files on both sides left out) and index.json; the paths written."""
    root = Path(r.path) / DIR
    written, index = [], []
    for name, scope in comparisons.items():
        name = _name(name)
        entry = {"name": name, "a": [list(p) for p in scope.at], "b": [list(p) for p in scope.ref],
                 "unit": UNIT, "aggregate": COST_AGGREGATE, "roles": {}}
        for role in roles:
            d = differential(r, scope, role)
            if d is None:
                continue
            stacks = sorted(set(d.a) | set(d.b))
            diff = "".join(f"{';'.join(s)} {round(d.b.get(s, 0) * SCALE)} {round(d.a.get(s, 0) * SCALE)}\n"
                           for s in stacks if round(d.b.get(s, 0) * SCALE) or round(d.a.get(s, 0) * SCALE))
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(["stack", "class", "a", "b", "delta"])
            for s in stacks:
                a, b = d.a.get(s, 0.0) * SCALE, d.b.get(s, 0.0) * SCALE
                w.writerow([";".join(s), frame_class(s[1]) if len(s) > 1 else "", f"{a:.3f}", f"{b:.3f}",
                            f"{a - b:.3f}"])
            files = {"diff": f"{name}/{role}.diff.folded", "a": f"{name}/{role}.a.folded",
                     "b": f"{name}/{role}.b.folded", "csv": f"{name}/{role}.csv"}
            for key, text in (("diff", diff), ("a", _folded(d.a)), ("b", _folded(d.b)), ("csv", buf.getvalue())):
                path = root / files[key]
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(path, text)
                written.append(path)
            entry["roles"][role] = {"files": files, "points": list(d.points),
                                    "classes_delta_cpu_s_per_gb": {k: v for k, v in d.classes().items() if k}}
        if entry["roles"]:
            index.append(entry)
    if index:
        root.mkdir(parents=True, exist_ok=True)
        atomic_write(root / "index.json", json.dumps({"comparisons": index}, indent=1) + "\n")
        written.append(root / "index.json")
    return written


def comparisons(answers) -> dict:
    """The comparisons the answers accounted for (name -> Scope): each answer's
    `accounting_scope` (a name, a Scope)."""
    out = {}
    for a in answers:
        named = getattr(a.facts, "accounting_scope", None)
        if named is not None:
            name, scope = named
            out[f"{a.key}-{name}" if a.shape else name] = scope
    return out
