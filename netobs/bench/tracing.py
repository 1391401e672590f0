"""What netobs's observers cost the traffic they watch: `netobs run` with and without
`--trace` (or `--profile`), measured so that the answer holds on a small, shared host.

`tracing_overhead()` measures points exactly as `netobs run` does (`runner.run_point`: the
worker processes, the topology, the observer on the client and server PIDs), without perf in
either variant so that only the observer differs. Per topology and message size (`measure`):

1. spread: PROBE_RUNS untraced runs of PROBE_WINDOW_S measure the host's own run-to-run spread
   of the primary figure and what a run costs beyond its window;
2. plan (`plan_window`): from that spread, the window (one of WINDOWS_S) and the number of
   pairs whose interval is predicted narrower than the goal in the least time within the
   budget, or, where none fits, the narrowest interval the budget allows (the spread of one
   run is taken to shrink as 1/sqrt(window));
3. pairs: one observed and one plain run each, in a seeded random order balanced in blocks of
   two (`balanced_orders`), added until the interval is narrower than the goal (after
   MIN_PAIRS) or the next pair would end past the budget (one pair always runs);
4. verdict (`verdict`): "within goal" when the overhead's interval lies entirely at or below
   the goal, "over goal" when entirely above it, otherwise "cannot tell" (the interval says
   by how much it straddles).

The primary figure is CPU per GB of both ends: the client's user+sys CPU in the window per GB
it sent plus the server's user+sys CPU over its life per GB it received. Throughput (sender
Gbps) is the second. Each figure's ratio (observed / plain) is computed per pair; its centre
is the mean of the pairs' ratios and its interval the 95% Student-t interval over pairs
(`analysis.stats.summarize`): neighbouring runs share the host's drift, so the pairs are the
independent units.

Plain runs have no netobs program attached at all. Each observed run compiles and attaches
its observer before the point starts and detaches it after the point returned; the run's
`timeline` (monotonic seconds from the observer's open) shows it: the window opens no earlier
than the point's start plus the warm-up (the client warms up only after `go`, which follows the
observer's start_point) and closes no later than the point's return, with `window_s` from the
client's result between them. `outside_window` checks each observed run's timeline.

From the same pairs (trace only): CPU-ns of both ends added per traced send/recv syscall (the
tracer's send_syscalls + recv_syscalls of both ends), with its interval, the stand-in for the
observer's cost in runs traced without --profile (`netobs.observer_cost`).

`send_syscall_cost()` measures the per-send cost without the noise of throughput: the least
time of a send syscall (sendto on a bad descriptor, in a tight C loop) with and without the
tracer following this process.

The host must be prepared for tracing first (`netobs.hostprep.prepare()`, which the bench's
entry runs); nothing here prints.
"""
from __future__ import annotations

import contextlib
import itertools
import math
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

# Overhead goals (percent added to the plain run's CPU per GB of both ends, the primary
# figure) per observer and message size; other sizes get the smaller-message goal.
# "trace": --trace; "profile": --profile (stack sampling at the default frequency and
# off-CPU stacks).
GOALS_PCT = {65536: 3.0, 1024: 10.0}
OBSERVER_GOALS_PCT = {"trace": GOALS_PCT, "profile": {65536: 2.0, 1024: 5.0}}
TOPOLOGIES = ("netns", "loopback")
VARIANTS = ("untraced", "traced")      # plain, observed
PROBE_RUNS = 3
PROBE_WINDOW_S = 1.0
WINDOWS_S = (1.0, 2.0, 4.0, 8.0)
MIN_PAIRS = 3
MAX_PAIRS = 60
BUDGET_S = 120.0                       # per topology and size, unless told
# Before the first pair is timed: what opening and closing an observer adds to a pair
# (measured here: the tracer about 1 s, the profiler about 2.5 s).
OBSERVER_OPEN_S = {"trace": 1.0, "profile": 2.5}
VERDICTS = ("within goal", "over goal", "cannot tell")


def goal_for(observer: str, size: int) -> float:
    goals = OBSERVER_GOALS_PCT[observer]
    return goals.get(size, goals[min(goals)])


# -- the statistics of pairs ----------------------------------------------------------------------
def interval(values) -> dict:
    """Mean and 95% t-interval of per-pair values: {"values", "n", "mean", "ci": [lo, hi] or
    None (fewer than 2 pairs)}."""
    from netobs.analysis.stats import summarize

    vals = [v for v in values if v is not None and v == v]
    s = summarize(vals)
    ci = [s.ci_low, s.ci_high] if s.n >= 2 and s.ci_low == s.ci_low else None
    return {"values": vals, "n": s.n, "mean": s.mean if s.n else None, "ci": ci}


def judge_ratios(ratios, worse_when_higher: bool) -> dict:
    """Per-pair ratios (observed / plain) -> their interval and the overhead in percent with its
    interval: (ratio - 1) for a cost (CPU per GB), (1 - ratio) for a rate (throughput)."""
    r = interval(ratios)

    def over(x):
        return (x - 1.0) * 100.0 if worse_when_higher else (1.0 - x) * 100.0

    r["overhead_pct"] = None if r["mean"] is None else over(r["mean"])
    r["overhead_ci_pct"] = None if r["ci"] is None else sorted(over(x) for x in r["ci"])
    r["width_pct"] = None if r["ci"] is None else r["overhead_ci_pct"][1] - r["overhead_ci_pct"][0]
    return r


def verdict(overhead_ci_pct: list[float] | None, goal_pct: float) -> str:
    """"within goal" when the whole interval is at or below the goal, "over goal" when it is
    all above, "cannot tell" when it straddles the goal or there is none."""
    if not overhead_ci_pct:
        return "cannot tell"
    lo, hi = overhead_ci_pct
    if hi <= goal_pct:
        return "within goal"
    if lo > goal_pct:
        return "over goal"
    return "cannot tell"


def balanced_orders(seed: int) -> Iterator[tuple[str, str]]:
    """Pair orders, random from `seed` and balanced in blocks of two (each block one plain-first
    and one observed-first pair, in random order): after any number of pairs the two orders
    differ in count by at most one."""
    rng = random.Random(seed)
    while True:
        block = [VARIANTS, VARIANTS[::-1]]
        rng.shuffle(block)
        yield from block


def _width_pct(pair_sd: float, n: int) -> float:
    """The predicted width (percentage points) of the t-interval of n pairs' mean ratio."""
    from netobs.analysis.stats import t_interval

    if not math.isfinite(pair_sd):
        return math.inf
    lo, hi = t_interval(0.0, pair_sd, n)
    return (hi - lo) * 100.0


def plan_window(run_cv: float, goal_pct: float, budget_s: float, run_cost_s: float, pair_extra_s: float,
                windows=WINDOWS_S, probe_window_s: float = PROBE_WINDOW_S) -> dict:
    """The window and pair count for a t-interval narrower than the goal in the least time.

    `run_cv`: one run's spread (sample CV of the primary figure) at `probe_window_s`, taken to
    shrink as 1/sqrt(window); a pair's ratio then spreads sqrt(2) times as much. A pair costs
    2 x (window + `run_cost_s`) + `pair_extra_s` (the observer's open and close). Where no
    window reaches the goal within `budget_s`, the one with the narrowest predicted interval at
    the pairs that fit (ties: the longer window). Returns window_s, pairs (predicted),
    width_pct (predicted), pair_s, reaches_goal.
    """
    cv = run_cv if run_cv is not None and run_cv == run_cv else math.inf
    best, fallback = None, None
    for w in windows:
        pair_sd = math.sqrt(2.0) * cv * math.sqrt(probe_window_s / w)
        pair_s = 2.0 * (w + max(run_cost_s, 0.0)) + max(pair_extra_s, 0.0)
        fit = min(int(budget_s // pair_s), MAX_PAIRS)
        if fit < MIN_PAIRS:
            continue
        needed = next((n for n in range(MIN_PAIRS, fit + 1) if _width_pct(pair_sd, n) < goal_pct), None)
        if needed is not None:
            cand = {"window_s": w, "pairs": needed, "width_pct": _width_pct(pair_sd, needed), "pair_s": pair_s,
                    "reaches_goal": True}
            if best is None or needed * pair_s < best["pairs"] * best["pair_s"]:
                best = cand
        cand = {"window_s": w, "pairs": fit, "width_pct": _width_pct(pair_sd, fit), "pair_s": pair_s,
                "reaches_goal": False}
        if fallback is None or cand["width_pct"] <= fallback["width_pct"]:
            fallback = cand
    if best is not None:
        return best
    if fallback is not None:
        return fallback
    w = windows[0]     # not even MIN_PAIRS fit: the shortest window, as many pairs as the budget allows
    return {"window_s": w, "pairs": None, "width_pct": math.inf, "pair_s": 2.0 * (w + max(run_cost_s, 0.0)) + pair_extra_s,
            "reaches_goal": False}


def measure(run: Callable[[str, float], dict], goal_pct: float, budget_s: float, seed: int,
            pair_extra_s: float = 1.0, pairs: int | None = None, window_s: float | None = None,
            clock: Callable[[], float] = time.monotonic) -> dict:
    """The method on one configuration. `run(variant, window_s)` measures one run ("untraced"
    or "traced") and returns at least cpu_s_per_gb and gbps. With `pairs` and `window_s` given,
    a fixed design: no spread probe, exactly that many pairs (still in seeded random order).

    Returns spread (the probe: runs, window_s, cpu_cv, gbps_cv, run_cost_s; None when fixed),
    plan, window_s, orders, pairs [{order, untraced, traced}], stop ("interval narrower than the
    goal", "budget", "fixed design"), elapsed_s, cpu / throughput (judge_ratios), verdict.
    """
    from netobs.analysis.stats import summarize

    if (pairs is None) != (window_s is None):
        raise ValueError("a fixed design needs both pairs and window_s")
    start = clock()
    spread = plan = None
    if pairs is None:
        probe = [run("untraced", PROBE_WINDOW_S) for _ in range(PROBE_RUNS)]
        run_cost = (clock() - start) / PROBE_RUNS - PROBE_WINDOW_S
        cpu_cv = summarize([p.get("cpu_s_per_gb") for p in probe]).cv
        gbps_cv = summarize([p.get("gbps") for p in probe]).cv
        spread = {"runs": PROBE_RUNS, "window_s": PROBE_WINDOW_S, "cpu_cv": cpu_cv, "gbps_cv": gbps_cv,
                  "run_cost_s": run_cost, "cpu_s_per_gb": [p.get("cpu_s_per_gb") for p in probe],
                  "gbps": [p.get("gbps") for p in probe]}
        plan = plan_window(cpu_cv, goal_pct, budget_s - (clock() - start), run_cost, pair_extra_s)
        window_s = plan["window_s"]
    orders = balanced_orders(seed)
    done: list[dict] = []
    pair_cost = 0.0
    stop = "fixed design"
    cpu = judge_ratios([], True)
    while True:
        if pairs is not None:
            if len(done) >= pairs:
                break
        elif done:
            if len(done) >= MIN_PAIRS and cpu["width_pct"] is not None and cpu["width_pct"] < goal_pct:
                stop = "interval narrower than the goal"
                break
            if clock() - start + pair_cost > budget_s or len(done) >= MAX_PAIRS:
                stop = "budget"
                break
        order = next(orders)
        t0 = clock()
        pair = {"order": list(order)}
        for variant in order:
            pair[variant] = run(variant, window_s)
        pair_cost = max(pair_cost, clock() - t0)
        done.append(pair)
        cpu = judge_ratios([_ratio(p, "cpu_s_per_gb") for p in done], worse_when_higher=True)
    thr = judge_ratios([_ratio(p, "gbps") for p in done], worse_when_higher=False)
    return {"spread": spread, "plan": plan, "window_s": window_s, "seed": seed,
            "orders": [",".join(p["order"]) for p in done], "pairs": done, "stop": stop,
            "budget_s": None if pairs is not None else budget_s, "elapsed_s": clock() - start,
            "cpu": cpu, "throughput": thr, "verdict": verdict(cpu["overhead_ci_pct"], goal_pct)}


def _ratio(pair: dict, key: str) -> float | None:
    u, t = pair["untraced"].get(key), pair["traced"].get(key)
    return t / u if u and t is not None else None


def outside_window(timeline: dict | None) -> bool:
    """Did compile + attach end before the run's window could open, and detach begin only
    after it closed? (The window's bounds: the point's start + warm-up and the point's return;
    the client's window_s must fit between them.)"""
    if not timeline or timeline.get("window_s") is None:
        return False
    opens, closes = timeline["window_opens_after"], timeline["window_closes_before"]
    return (timeline["compile_attach"][1] <= opens and timeline["detach"][0] >= closes
            and opens + timeline["window_s"] <= closes + 1e-6)


def per_event_ns(pair: dict) -> float | None:
    """CPU-ns of both ends the observer added per traced send/recv syscall in one pair: the
    added CPU per GB over the traced syscalls per GB (both ends, the traced run's)."""
    u, t = pair["untraced"], pair["traced"]
    if u.get("cpu_s_per_gb") is None or t.get("cpu_s_per_gb") is None or not t.get("events_per_gb"):
        return None
    return (t["cpu_s_per_gb"] - u["cpu_s_per_gb"]) / t["events_per_gb"] * 1e9


# -- one run --------------------------------------------------------------------------------------
def _per_gb(cpu: dict | None, nbytes) -> float | None:
    if not cpu or not nbytes:
        return None
    return ((cpu.get("user_s") or 0.0) + (cpu.get("sys_s") or 0.0)) / (nbytes / 1e9)


def _one_run(topo, topo_name: str, msg_size: int, duration: float, warmup: float, strategy: str,
             plan: dict | None, point_dir: Path, observer: str = "trace") -> dict:
    """One point; with `plan` (the observed variant) the observer is compiled and attached
    before the point starts and closed after it returned, its timeline recorded."""
    from netobs.runner import run_point
    from netobs.spec import RunSpec

    point_dir.mkdir(parents=True, exist_ok=True)
    observed = plan is not None
    spec = RunSpec(strategy=strategy, msg_size=msg_size, threads=1, duration=duration, warmup=warmup, topology=topo_name,
                   perf=False, trace=observed and observer == "trace", profile=observed and observer == "profile")
    from netobs.runner import open_rig
    from netobs.store import PointFiles

    given = {}
    t_open = time.monotonic()
    if spec.trace:
        from netobs.tracer import Tracer
        given["trace"] = Tracer(plan)
    if spec.profile:
        from netobs.profiler import Profiler
        given["profile"] = Profiler()
    t_ready = t_point = time.monotonic()
    t_return = t_detach = None
    try:
        with contextlib.ExitStack() as stack:
            r = run_point(spec, open_rig(stack, spec, topo, given), PointFiles(point_dir))
            t_return = time.monotonic()
    finally:
        t_detach = time.monotonic()
        for o in given.values():
            o.close()
    t_closed = time.monotonic()
    server_bytes = r.get("bytes_received")
    cpu_client, cpu_server = _per_gb(r.get("cpu"), r.get("bytes_sent")), _per_gb(r.get("server_cpu"), server_bytes)
    out = {"gbps": r["throughput_gbps"], "bytes_sent_total": r["bytes_sent_total"],
           "cpu_s_per_gb": None if cpu_client is None or cpu_server is None else cpu_client + cpu_server,
           "client_cpu_s_per_gb": cpu_client, "server_cpu_s_per_gb": cpu_server, "window_s": r.get("window_s")}
    if observed:
        out["timeline"] = {
            "compile_attach": [0.0, t_ready - t_open], "point": [t_point - t_open, t_return - t_open],
            "window_opens_after": t_point - t_open + warmup, "window_closes_before": t_return - t_open,
            "window_s": r.get("window_s"), "detach": [t_detach - t_open, t_closed - t_open]}
    if spec.trace:
        tr = r["trace"]
        out["lost_events"] = tr["lost_events"]
        out["traced_send_bytes"] = tr["client"]["sendmsg_bytes"]
        per_gb = 0.0
        for role, nbytes in (("client", r.get("bytes_sent_total")), ("server", server_bytes)):
            calls = [tr[role].get(k) for k in ("send_syscalls", "recv_syscalls")]
            if None in calls or not nbytes:
                per_gb = None
                break
            per_gb += sum(calls) / (nbytes / 1e9)
        out["events_per_gb"] = per_gb
    if spec.profile:
        out["lost_events"] = sum(r["profile"]["lost"].values())
        out["samples"] = r["profile"]["client"]["on_cpu"]["samples"]
    return out


def _summary(topo_name: str, size: int, strategy: str, warmup: float, plan: dict, m: dict, observer: str) -> dict:
    goal = goal_for(observer, size)
    pairs = m["pairs"]
    traced = [p["traced"] for p in pairs]
    timelines = [t.get("timeline") for t in traced]
    margins = [(tl["window_opens_after"] - tl["compile_attach"][1], tl["detach"][0] - tl["window_closes_before"])
               for tl in timelines if tl]
    match = (all(r.get("traced_send_bytes") is not None
                 and abs(r["traced_send_bytes"] - r["bytes_sent_total"]) <= 0.01 * r["bytes_sent_total"]
                 for r in traced) if observer == "trace" else None)
    out = {
        "observer": observer, "topology": topo_name, "msg_size": size, "strategy": strategy,
        "goal_pct": goal, "warmup_s": warmup, **{k: m[k] for k in ("spread", "plan", "window_s", "seed", "orders",
                                                                   "stop", "budget_s", "elapsed_s", "cpu",
                                                                   "throughput", "verdict")},
        "n_pairs": len(pairs),
        # the primary figure's centre: mean of the pairs' CPU-per-GB ratios (observed / plain)
        "ratio": m["cpu"]["mean"],
        "untraced_gbps": [p["untraced"]["gbps"] for p in pairs], "traced_gbps": [t["gbps"] for t in traced],
        "untraced_cpu_s_per_gb": [p["untraced"]["cpu_s_per_gb"] for p in pairs],
        "traced_cpu_s_per_gb": [t["cpu_s_per_gb"] for t in traced],
        "timelines": timelines,
        "observer_outside_window": bool(timelines) and all(outside_window(tl) for tl in timelines),
        # the least time between the observer's compile+attach ending and a window opening, and
        # between a window closing and the observer's detach beginning
        "observer_margin_s": [min(a for a, _ in margins), min(b for _, b in margins)] if margins else None,
        "lost_events": sum(t.get("lost_events", 0) for t in traced),
        "traced_bytes_match": match,
        "probe_plan": {f: e.get("probe") for f, e in plan.items()} if observer == "trace" else None,
        # send/recv syscall time: 1 in this many calls per thread timed (1: all)
        "syscall_sample": (plan.get("send_syscall_ns") or {}).get("sample_every") if observer == "trace" else None,
        "sampling_plan": plan if observer == "profile" else None,
        "ns_per_event": interval([per_event_ns(p) for p in pairs]) if observer == "trace" else None,
    }
    return out


def tracing_overhead(sizes=(65536, 1024), topologies=("netns",), observer: str = "trace",
                     budget_s: float | None = None, runs: int | None = None, duration: float | None = None,
                     warmup: float = 0.5, strategy: str = "one_copy", seed: int | None = None) -> list[dict]:
    """Per topology and size: the method above (`measure`) on `netobs run` with and without the
    observer ("trace": --trace, "profile": --profile). `budget_s`: for all configurations
    together (each gets an equal share of what is left; default BUDGET_S each). `runs` and
    `duration` given: a fixed design of that many pairs of that window instead.

    Each dict: observer, topology, msg_size, strategy, goal_pct, spread, plan, window_s, seed,
    orders, stop, budget_s, elapsed_s, n_pairs, cpu and throughput ({values, n, mean, ci,
    overhead_pct, overhead_ci_pct, width_pct}), verdict, ratio (cpu's mean), untraced_gbps[],
    traced_gbps[], untraced_/traced_cpu_s_per_gb[], timelines[] and observer_outside_window,
    observer_margin_s, lost_events, traced_bytes_match (the tracer saw every byte the client
    sent, within 1%; None for the profiler), probe_plan, syscall_sample, sampling_plan,
    ns_per_event ({values, n, mean, ci}: CPU-ns added per traced send/recv syscall; trace only).
    Raises CapabilityError (tracer, profiler, topology) when a run is impossible here.
    """
    from netobs.topology import open_topology

    if (runs is None) != (duration is None):
        raise ValueError("a fixed design needs both runs and duration")
    if runs is not None and runs < 1:
        raise ValueError("runs must be >= 1")
    if observer == "trace":
        from netobs.tracer import plan_probes
        plan = plan_probes()
    else:
        from netobs.profiler import plan_sampling
        plan = plan_sampling()
    if seed is None:
        seed = random.SystemRandom().randrange(2 ** 32)
    configs = [(t, s) for t in topologies for s in sizes]
    started = time.monotonic()
    total = budget_s if budget_s is not None else BUDGET_S * len(configs)
    out = []
    for i, (topo_name, size) in enumerate(configs):
        share = (total - (time.monotonic() - started)) / (len(configs) - i)
        with open_topology(topo_name) as topo, tempfile.TemporaryDirectory(prefix="netobs-bench-") as tmp:
            n = itertools.count(1)

            def run(variant, window, topo=topo, topo_name=topo_name, size=size, tmp=tmp, n=n):
                return _one_run(topo, topo_name, size, window, warmup, strategy,
                                plan if variant == "traced" else None, Path(tmp) / str(next(n)), observer)

            m = measure(run, goal_for(observer, size), share, seed + i, pair_extra_s=OBSERVER_OPEN_S[observer],
                        pairs=runs, window_s=duration)
        out.append(_summary(topo_name, size, strategy, warmup, plan, m, observer))
    return out


def observer_cost_figure(rows: list[dict]) -> dict | None:
    """The trace rows' per-event figures, in the shape `netobs.observer_cost.save` keeps (None
    when no row has one)."""
    figs = [{"topology": r["topology"], "msg_size": r["msg_size"], "strategy": r["strategy"],
             "ns_per_event": r["ns_per_event"]["mean"], "ci": r["ns_per_event"]["ci"],
             "pairs": r["n_pairs"], "window_s": r["window_s"], "verdict": r["verdict"],
             "cpu_overhead_pct": r["cpu"]["overhead_pct"], "cpu_overhead_ci_pct": r["cpu"]["overhead_ci_pct"]}
            for r in rows if r["observer"] == "trace" and (r.get("ns_per_event") or {}).get("mean") is not None]
    if not figs:
        return None
    return {"per": "traced send/recv syscall (the tracer's send_syscalls + recv_syscalls, both ends)",
            "cpu": "user+sys CPU of the client and the server", "figures": figs}


def send_syscall_cost(rounds: int = 3, calls: int = 100_000, trials: int = 20, msg_size: int = 1024) -> dict:
    """What the tracer adds to one send syscall, in ns: the least time per call of `trials`
    rounds of `calls` sendto() calls (EBADF at once: only the syscall path and its tracing are
    timed), untraced and traced interleaved `rounds` times; minima, since noise only adds.

    Returns untraced_ns, traced_ns, added_ns, traced_calls / expected_calls (the tracer
    counted every call of the loop, so it really was on this process) and send_probe: the
    plan's probe for the send figures. The loop's calls fail before any socket code, so a
    probe on tcp_sendmsg itself (fexit, kretprobe) is not in this figure.
    """
    from netobs._workers import lib
    from netobs.tracer import Tracer, plan_probes

    plan = plan_probes()
    un, tr, counted = [], [], []
    for _ in range(rounds):
        un.append(lib.nob_send_syscall_ns(calls, trials, msg_size))
        with Tracer(plan) as tracer:
            tracer.start_point({"client": os.getpid()})
            tr.append(lib.nob_send_syscall_ns(calls, trials, msg_size))
            counted.append(tracer.stop_point()["client"]["send_syscalls"])
    return {"untraced_ns": min(un), "traced_ns": min(tr), "added_ns": min(tr) - min(un),
            "traced_calls": min(c or 0 for c in counted), "expected_calls": calls * trials,
            "rounds": rounds, "send_probe": (plan.get("sendmsg_bytes") or {}).get("probe")}
