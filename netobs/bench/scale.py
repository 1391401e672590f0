"""The bench's `scale` section: are `explain`, `report` and `compare` linear in the number of
points? A generated results directory of N points (written through the store, as a sweep
writes one: strategies x sizes x thread counts x repeats from a smooth model with noise) is
read by each command in a process of its own; its wall time and peak memory (the process's
maximum resident set, less that of the same command on a small store: the interpreter and
its libraries, LIBRARIES loaded in both) are measured, against the goals of issue 28: explain of 10,000 points in 10 s,
of 100,000 in 100 s, and memory growth at most 4x the size of runs.csv.

Beside them, issue 25's goal for the report of a study as people run it: `netobs report` of a
48-point traced and profiled sweep (the study's matrix, `sweep --trace --profile`, 1 s windows) in
at most 2.5 s and 2.5 MB. The sweep is measured for real (it needs root; `--scale-study DIR`
reads one already made instead). Every row gives the wall and the CPU seconds (the command and
its children, from wait4's rusage) and the load average when it started: on a shared host the
wall time includes the others' work, the CPU time does not.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from netobs.params import PARAMS
from netobs.perf import DEFAULT_EVENTS
from netobs.store import ResultsDir

STRATEGIES = ("two_copy", "one_copy", "zero_copy")
MAX_SIZE = int(PARAMS.by_name["msg_size"].kind.hi)   # the largest message netobs sends
GOAL_S_PER_POINT = 1e-3            # 10,000 points in 10 s, 100,000 in 100 s
GOAL_MEMORY_X_FILE = 4.0
SMALL = 48                         # the small store whose peak memory is the baseline
# the libraries the analysis imports only where a store calls for them (scipy.stats: a test over
# repeats; alone about 60 MB resident), imported first in both processes of a memory figure: the
# small store never calls for them, so without this the figure counted them as the large store's data
LIBRARIES = ("scipy.stats", "scipy.optimize", "scipy.special")
COMMANDS = ("explain", "compare", "report")
GOAL_REPORT_S = 2.5                # issue 25: report of a 48-point traced and profiled study
GOAL_REPORT_BYTES = 2_500_000
# the study's matrix (3 strategies x 4 sizes x 4 thread counts), traced and profiled, short windows
STUDY_SWEEP = ("sweep", "--trace", "--profile", "--duration", "1", "--warmup", "0.3")


def grid(points: int) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """Sizes, thread counts and repeats giving about `points` points (3 strategies, 2 repeats)."""
    configs = max(1, round(points / (len(STRATEGIES) * 2)))
    n_threads = max(1, min(64, int(math.sqrt(configs / 4))))
    n_sizes = max(1, math.ceil(configs / n_threads))
    # sizes 5% apart, closer where that would pass netobs's largest message (the loader leaves such rows out)
    step = min(1.05, (MAX_SIZE / 1024) ** (1 / max(1, n_sizes)))
    sizes = tuple(sorted({min(MAX_SIZE, int(1024 * step ** i)) for i in range(n_sizes * 2)}))[:n_sizes]
    return sizes, tuple(range(1, n_threads + 1)), 2


def write_store(path: Path, points: int, seed: int = 1) -> Path:
    """A results directory of about `points` ok points, every figure netobs stores for a
    perf-counted point filled from the model."""
    sizes, threads, repeats = grid(points)
    rng = np.random.default_rng(seed)
    factor = {"two_copy": 1.0, "one_copy": 1.1, "zero_copy": 1.2}
    results = []
    for r in range(repeats):
        for impl in STRATEGIES:
            for size in sizes:
                for t in threads:
                    gbps = 2.0 * (size / 1024) ** 0.35 * t ** 0.6 * factor[impl] * float(rng.normal(1, 0.02))
                    sent = gbps * 1e9 / 8
                    events = {ev: {"value": float(sent * k), "status": "counted", "running_pct": 100.0}
                              for ev, k in zip(DEFAULT_EVENTS, (3.0, 0.1, 0.004, 1e-5, 1e-9, 1e-9))}
                    results.append({
                        "strategy": impl, "msg_size": size, "threads": t, "repeat": r, "status": "ok",
                        "topology": "netns", "duration_s": 1.0, "warmup_s": 0.25, "window_s": 1.0,
                        "throughput_gbps": gbps, "bytes_sent": sent, "bytes_sent_total": sent * 1.25,
                        "bytes_received": sent * 1.25, "messages": round(sent / size), "goodput_gbps": gbps,
                        "latency_us": {"mean": size * 8 / (gbps * 1e3), "p50": size * 8 / (gbps * 1e3)},
                        "cpu": {"user_s": 0.1 * t, "sys_s": 0.8 * t}, "perf": {"events": events},
                    })
    matrix = {"strategies": list(STRATEGIES), "sizes": list(sizes), "threads": list(threads), "repeats": repeats,
              "duration": 1.0, "warmup": 0.25, "order": "sequential"}
    store = ResultsDir.create(path, {"source": "netobs", "state": "complete", "matrix": matrix,
                                     "host": {"cores": 64, "kernel": "generated"}, "topology": {"kind": "netns"},
                                     "note": "generated by the bench's scale section"}, list(DEFAULT_EVENTS))
    try:
        store.add_points(results)
    finally:
        store.close()
    return path


def _generate(path: Path, points: int) -> Path:
    """write_store in a process of its own (a 100,000-point store takes above 1 GB to write:
    this process stays the size it was)."""
    subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; from netobs.bench.scale import "
                    "write_store; write_store(Path(sys.argv[1]), int(sys.argv[2]))", str(path), str(points)],
                   check=True, stdout=subprocess.DEVNULL)
    return path


# the command's own peak resident memory, written by it as it exits: /proc/self/status's VmHWM
# is its memory image's high-water mark alone. (wait4's ru_maxrss is not: it keeps the parent's
# high-water mark from before the exec, so a bench process grown by its other sections made every
# command it measured look as large as itself, and a growth over the small store's of 0.)
PEAK_MARK = "netobs-bench-peak-kib"
_PEAK = ("import atexit, sys; atexit.register(lambda: sys.stderr.write('%s ' + next(l.split()[1] for l in "
         "open('/proc/self/status') if l.startswith('VmHWM:')) + chr(10))); " % PEAK_MARK)


def _measure(argv: list[str], timeout: float, libraries: tuple[str, ...] = ()) -> dict:
    """Wall time, CPU time and peak memory of one netobs command (a process of its own), and
    the load average when it started. `libraries`: modules imported before the command runs."""
    load = os.getloadavg()[0]
    started = time.monotonic()
    start = ["-c", _PEAK + "".join(f"import {m}; " for m in libraries) + "from netobs.cli import main; "
             "sys.argv[0] = 'netobs'; sys.exit(main())"]
    proc = subprocess.Popen([sys.executable, *start, *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = started + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            _, status, usage = os.wait4(proc.pid, 0)
            return {"wall_s": None, "peak_rss_bytes": None, "error": f"over {timeout:g} s", "load_1m": load}
        time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    lines = proc.stderr.read().decode(errors="replace").strip().splitlines()
    peaks = [int(x.split()[1]) * 1024 for x in lines if x.startswith(PEAK_MARK + " ")]
    err = [x for x in lines if not x.startswith(PEAK_MARK + " ")]
    return {"wall_s": time.monotonic() - started, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_bytes": peaks[-1] if peaks else None, "load_1m": load,
            "error": None if proc.returncode == 0 else (err[-1] if err else f"exit {proc.returncode}")}


def _argv(command: str, store: Path, out: Path) -> list[str]:
    return {"explain": ["explain", str(store)], "compare": ["compare", str(store), str(store)],
            "report": ["report", str(store), "-o", str(out / f"{store.name}.html"), "--force"]}[command]


def _html_bytes(command: str, store: Path, out: Path) -> int | None:
    page = out / f"{store.name}.html"
    return page.stat().st_size if command == "report" and page.is_file() else None


def measure_study(study: Path | None, tmp: Path, timeout_s: float = 600.0, progress=None) -> dict:
    """`netobs report` of a 48-point traced and profiled study (`study`, or one swept here for
    real into `tmp`): wall and CPU seconds, the page's size, against issue 25's goals."""
    row = {"command": "report", "study": True, "points": None, "wall_s": None, "cpu_s": None,
           "html_bytes": None, "load_1m": None, "goal_s": GOAL_REPORT_S, "goal_bytes": GOAL_REPORT_BYTES,
           "within_time_goal": None, "within_size_goal": None, "error": None, "swept": study is None}
    if study is None:
        if os.geteuid() != 0:
            return {**row, "error": "skipped: sweeping the study needs root (or --scale-study DIR)"}
        if progress:
            progress("scale: sweeping a 48-point traced and profiled study (about 2 minutes) ...")
        study = tmp / "study"
        swept = _measure([*STUDY_SWEEP, "-o", str(study)], timeout_s)
        if swept["error"]:
            return {**row, "error": f"the study's sweep failed: {swept['error']}"}
    if not (study / "runs.csv").is_file():
        return {**row, "error": f"{study} has no runs.csv"}
    row["points"] = sum(1 for _ in open(study / "runs.csv", "rb")) - 1
    if progress:
        progress(f"scale: report of the {row['points']}-point study ...")
    m = _measure(_argv("report", study, tmp), timeout_s)
    size = _html_bytes("report", study, tmp)
    return {**row, "wall_s": m["wall_s"], "cpu_s": m.get("cpu_s"), "load_1m": m["load_1m"], "html_bytes": size,
            "peak_rss_bytes": m["peak_rss_bytes"], "error": m["error"],
            "within_time_goal": None if m["wall_s"] is None else m["wall_s"] <= GOAL_REPORT_S,
            "within_size_goal": None if size is None else size <= GOAL_REPORT_BYTES}


def run_scale(points: tuple[int, ...] = (10_000, 100_000), commands: tuple[str, ...] = COMMANDS,
              timeout_s: float = 600.0, progress=None, study: Path | None = None,
              with_study: bool = True) -> list[dict]:
    """One row per (points, command): wall and CPU seconds, peak memory growth over the small
    store's, runs.csv's size (and the report's page), and whether the goals hold; then, with
    `with_study`, the report of a 48-point traced and profiled study (`measure_study`)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="netobs-scale-") as tmp:
        tmp = Path(tmp)
        if with_study:
            rows.append(measure_study(study, tmp, timeout_s, progress))
        small = _generate(tmp / "small", SMALL)
        base = {c: _measure(_argv(c, small, tmp), timeout_s, LIBRARIES) for c in commands}
        for n in points:
            if progress:
                progress(f"scale: generating {n:,} points ...")
            store = _generate(tmp / f"p{n}", n)
            size = (store / "runs.csv").stat().st_size
            stored = sum(1 for _ in open(store / "runs.csv", "rb")) - 1
            for c in commands:
                if progress:
                    progress(f"scale: {c} of {stored:,} points ...")
                m = _measure(_argv(c, store, tmp), timeout_s, LIBRARIES)
                peaks = (m["peak_rss_bytes"], base[c]["peak_rss_bytes"])
                growth = None if None in peaks else peaks[0] - peaks[1]   # (None: a command killed or broken)
                goal_s = GOAL_S_PER_POINT * stored
                rows.append({"command": c, "points": stored, "runs_csv_bytes": size, "wall_s": m["wall_s"],
                             "cpu_s": m.get("cpu_s"), "peak_rss_bytes": m["peak_rss_bytes"],
                             "load_1m": m["load_1m"], "html_bytes": _html_bytes(c, store, tmp),
                             "baseline_rss_bytes": base[c]["peak_rss_bytes"], "memory_growth_x_file": None if growth is None else growth / size,
                             "goal_s": goal_s if c == "explain" else None, "error": m["error"],
                             "within_time_goal": None if c != "explain" or m["wall_s"] is None else m["wall_s"] <= goal_s,
                             "within_memory_goal": None if growth is None else growth / size <= GOAL_MEMORY_X_FILE})
            (store / "runs.csv").unlink()
    return rows
