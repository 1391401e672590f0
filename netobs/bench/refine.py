"""The bench's `refine` section (issue 26): is a crossover located by `netobs refine` from a
4-size sweep the one a dense grid finds, at no more than 40% of the dense grid's measuring time?

In one bench run, on this host, between namespaces (the sweep's defaults otherwise, no perf):
- dense: one_copy and two_copy at DENSE_SIZES (12 sizes, geometric from 1 KiB to 64 KiB on the
  planner's grid) x 5 repeats, interleaved;
- refined: the same two at the study's 4 sizes x 1 repeat, then `netobs refine` with a budget of
  GOAL_SHARE of the dense grid's wall time.
Both are judged by refine's own planner and rule (`netobs.refine.plan.flips`), so the two brackets
are read the same way; the crossover answer's bracket of each is printed beside it. Times are
wall times of the commands (set-up and teardown included), and the measured windows.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from netobs.refine.plan import FACTOR, GRID_B, LOCATED, comparisons, flips
from netobs.refine.rule import Rule

PAIR = ("one_copy", "two_copy")
BASE_SIZES = (1024, 4096, 16384, 65536)
DENSE_SIZES = tuple(sorted({int(round(1024 * 64 ** (i / 11) / GRID_B)) * GRID_B for i in range(12)}))
DENSE_REPEATS = 5
GOAL_SHARE = 0.40


def _netobs(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netobs", *map(str, args)], capture_output=True, text=True)


def _sweep(out: Path, sizes, repeats: int, duration: float, warmup: float) -> float:
    started = time.monotonic()
    p = _netobs("sweep", "--strategies", ",".join(PAIR), "--sizes", ",".join(map(str, sizes)), "--threads", "1",
                "--repeats", repeats, "--order", "interleaved", "--duration", duration, "--warmup", warmup,
                "--no-perf", "-o", out)
    if p.returncode != 0:
        from netobs.errors import NetobsError
        raise NetobsError("the refine bench's sweep failed", (p.stderr.strip().splitlines() or ["?"])[-1],
                          "netobs doctor (the sweep runs as root in namespaces); or the section alone: "
                          "python -m netobs.bench --refine-only")
    return time.monotonic() - started


def _brackets(out: Path) -> dict:
    from netobs.analysis.load import load_results
    from netobs.analysis.questions import crossover

    r = load_results(out)
    fl = [f for f in flips(comparisons(r.runs, Rule()), Rule()) if (f.series["impl"], f.series["base"]) == PAIR]
    at = crossover.compute(r, PAIR[0]).by_threads.get(1)
    return {"flips": [f.to_dict() for f in fl],
            "located": [[f.lo, f.hi] for f in fl if f.status in LOCATED],
            "answer_bracket": at.bracket if at is not None else None,
            "answer_crossover": at.crossover_size if at is not None else None,
            "points": int(len(r.runs)), "windows_s": float(r.runs["window_s"].sum())}


def _agree(a: list, b: list) -> bool:
    """The same crossover: both none, or brackets that overlap."""
    if not a and not b:
        return True
    return bool(a and b) and any(x[0] <= y[1] and y[0] <= x[1] for x in a for y in b)


def run_refine_bench(duration: float = 0.5, warmup: float = 0.2, progress=None) -> dict:
    say = progress or (lambda m: None)
    with tempfile.TemporaryDirectory(prefix="netobs-bench-refine-") as tmp:
        tmp = Path(tmp)
        say(f"refine bench: dense grid, {len(DENSE_SIZES)} sizes x {DENSE_REPEATS} repeats x 2 strategies ...")
        dense_s = _sweep(tmp / "dense", DENSE_SIZES, DENSE_REPEATS, duration, warmup)
        dense = _brackets(tmp / "dense")
        budget = GOAL_SHARE * dense_s
        say(f"refine bench: 4-size sweep, then netobs refine --budget {budget:.0f}s ...")
        base_s = _sweep(tmp / "refined", BASE_SIZES, 1, duration, warmup)
        started = time.monotonic()
        p = _netobs("refine", tmp / "refined", "--budget", f"{max(1.0, budget - base_s):.1f}s", "--json")
        refine_s = time.monotonic() - started
        if p.returncode != 0:
            from netobs.errors import NetobsError
            raise NetobsError("the refine bench's refine failed", (p.stderr.strip().splitlines() or ["?"])[-1],
                              "the section alone: python -m netobs.bench --refine-only")
        res = json.loads(p.stdout)
        refined = _brackets(tmp / "refined")
    total = base_s + refine_s
    return {"settings": {"duration_s": duration, "warmup_s": warmup, "pair": PAIR, "dense_sizes": DENSE_SIZES,
                         "dense_repeats": DENSE_REPEATS, "base_sizes": BASE_SIZES, "factor": FACTOR, "grid_b": GRID_B,
                         "goal_share": GOAL_SHARE, "rule": Rule().to_dict()},
            "dense": {**dense, "wall_s": dense_s},
            "refined": {**refined, "wall_s": total, "sweep_wall_s": base_s, "refine_wall_s": refine_s,
                        "rounds": len(res["rounds"]), "stop": res["stop"]},
            "ratio": total / dense_s if dense_s else None,
            "same_crossover": _agree(dense["located"], refined["located"])}


def format_refine(r: dict) -> str:
    d, f, s = r["dense"], r["refined"], r["settings"]

    def br(x):
        return ", ".join(f"{lo}-{hi} B (x{hi / lo:.2f})" for lo, hi in x["located"]) or "no crossover located"

    ok = r["ratio"] is not None and r["ratio"] <= s["goal_share"]
    return "\n".join([
        "", f"refine: {s['pair'][0]} vs {s['pair'][1]} crossover, 1 thread, {s['warmup_s']:g} s + {s['duration_s']:g} s "
            f"per point (judged by refine's rule: {s['rule']['name']}, located within x{s['factor']:.3f})",
        f"  dense grid  {len(s['dense_sizes'])} sizes x {s['dense_repeats']} repeats: {d['points']} points, "
        f"{d['wall_s']:.0f} s (windows {d['windows_s']:.0f} s): {br(d)}; the answer's bracket {d['answer_bracket']}",
        f"  refined     4 sizes x 1 repeat + {f['rounds']} round(s) ({f['stop']}): {f['points']} points, "
        f"{f['wall_s']:.0f} s (windows {f['windows_s']:.0f} s): {br(f)}; the answer's bracket {f['answer_bracket']}",
        f"  time refined / dense: {r['ratio']:.0%} (goal <= {s['goal_share']:.0%}: {'within goal' if ok else 'OVER goal'}); "
        f"same crossover: {'yes' if r['same_crossover'] else 'NO'}"])
