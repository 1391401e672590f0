"""What kernel tracing costs the traffic it observes: `netobs run` with and without `--trace`.

`tracing_overhead()` measures points exactly as `netobs run` does (`runner.run_point`: the
worker processes, the topology, the tracer on the client and server PIDs), without perf in
either variant so that only the tracer differs, at each message size and on each topology:

- netns: the default topology, what a sweep with --trace pays;
- loopback: the cheapest send path there is, so the per-event cost of the BPF programs
  weighs most there (the worst case).

`send_syscall_cost()` measures the same cost without the noise of throughput: the least time
of a send syscall (sendto on a bad descriptor, in a tight C loop) with and without the tracer
following this process; the difference is what the tracer adds to every send.

Traced and untraced runs are interleaved (A B, B A, ...) so drift on a shared machine hits both
alike. Untraced runs have no netobs program attached at all; each traced run compiles and
attaches the tracer first (outside the measured window) and detaches it afterwards. The host
must be prepared for tracing first (`netobs.hostprep.prepare()`, which the bench's entry
runs); nothing here prints.
"""
from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path

# Overhead goals (percent of untraced throughput) per observer and message size; other sizes
# get the smaller-message goal. "trace": --trace; "profile": --profile (stack sampling at the
# default frequency and off-CPU stacks).
GOALS_PCT = {65536: 3.0, 1024: 10.0}
OBSERVER_GOALS_PCT = {"trace": GOALS_PCT, "profile": {65536: 2.0, 1024: 5.0}}
TOPOLOGIES = ("netns", "loopback")


def _one_run(topo, topo_name: str, msg_size: int, duration: float, warmup: float, strategy: str,
             tracer_plan: dict | None, point_dir: Path, observer: str = "trace") -> dict:
    """One point; with `tracer_plan` (the observed variant) the observer is compiled and
    attached before the point starts and closed after it ends: outside its measured window."""
    from netobs.runner import run_point
    from netobs.spec import RunSpec

    point_dir.mkdir(parents=True, exist_ok=True)
    observed = tracer_plan is not None
    spec = RunSpec(strategy=strategy, msg_size=msg_size, threads=1, duration=duration, warmup=warmup, topology=topo_name,
                   perf=False, trace=observed and observer == "trace", profile=observed and observer == "profile")
    tracer = profiler = None
    if spec.trace:
        from netobs.tracer import Tracer
        tracer = Tracer(tracer_plan)
    if spec.profile:
        from netobs.profiler import Profiler
        profiler = Profiler()
    try:
        r = run_point(spec, topo, point_dir, tracer=tracer, profiler=profiler)
    finally:
        for o in (tracer, profiler):
            if o is not None:
                o.close()
    cpu_s = sum((d or {}).get(k) or 0.0 for d in (r.get("cpu"), r.get("server_cpu")) for k in ("user_s", "sys_s"))
    gb = (r.get("bytes_sent") or 0) / 1e9
    out = {"gbps": r["throughput_gbps"], "bytes_sent_total": r["bytes_sent_total"],
           "cpu_s_per_gb": cpu_s / gb if gb else None}
    if spec.trace:
        out["lost_events"] = r["trace"]["lost_events"]
        out["traced_send_bytes"] = r["trace"]["client"]["sendmsg_bytes"]
    if spec.profile:
        out["lost_events"] = sum(r["profile"]["lost"].values())
        out["samples"] = r["profile"]["client"]["on_cpu"]["samples"]
    return out


def _verdict(overhead: float | None, paired: list[float], goal: float) -> str:
    """From the pairs of neighbouring runs: "met" when every traced run lost no more than the
    goal to its untraced neighbour, "not met" when every one lost more, "within noise" when
    they disagree (the runs cannot tell; the medians' overhead is reported beside it)."""
    if overhead is None or not paired:
        return "not measured"
    within = [(1 - r) * 100 <= goal for r in paired]
    if all(within):
        return "met"
    if not any(within):
        return "not met"
    return "within noise"


def _summary(topo_name: str, size: int, strategy: str, runs: int, duration: float, plan: dict, res: dict,
             observer: str = "trace") -> dict:
    un = [r["gbps"] for r in res["untraced"]]
    tr = [r["gbps"] for r in res["traced"]]
    mu, mt = statistics.median(un), statistics.median(tr)
    ratio = mt / mu if mu else None
    paired = sorted(t / u for u, t in zip(un, tr) if u)
    cu = [r["cpu_s_per_gb"] for r in res["untraced"] if r["cpu_s_per_gb"] is not None]
    ct = [r["cpu_s_per_gb"] for r in res["traced"] if r["cpu_s_per_gb"] is not None]
    cpu_ratio = statistics.median(ct) / statistics.median(cu) if cu and ct else None
    overhead = (1 - ratio) * 100 if ratio is not None else None
    goals = OBSERVER_GOALS_PCT[observer]
    goal = goals.get(size, goals[min(goals)])
    match = (all(r.get("traced_send_bytes") is not None
                 and abs(r["traced_send_bytes"] - r["bytes_sent_total"]) <= 0.01 * r["bytes_sent_total"]
                 for r in res["traced"]) if observer == "trace" else None)
    return {
        "observer": observer,
        "topology": topo_name, "msg_size": size, "strategy": strategy, "runs": runs, "duration_s": duration,
        "untraced_gbps": un, "traced_gbps": tr,
        "untraced_median_gbps": mu, "traced_median_gbps": mt,
        "ratio": ratio, "overhead_pct": overhead, "goal_pct": goal,
        "paired_ratios": paired, "paired_median_ratio": statistics.median(paired) if paired else None,
        # CPU seconds (client + server) per GB sent, traced / untraced: less sensitive than
        # throughput to other load on a shared machine.
        "cpu_per_gb_ratio": cpu_ratio,
        "meets_goal": overhead is not None and overhead <= goal,
        "verdict": _verdict(overhead, paired, goal),
        "lost_events": sum(r.get("lost_events", 0) for r in res["traced"]),
        "traced_bytes_match": match,
        "probe_plan": {f: e.get("probe") for f, e in plan.items()} if observer == "trace" else None,
        # send/recv syscall time: 1 in this many calls per thread timed (1: all)
        "syscall_sample": (plan.get("send_syscall_ns") or {}).get("sample_every") if observer == "trace" else None,
        "sampling_plan": plan if observer == "profile" else None,
    }


def tracing_overhead(runs: int = 5, sizes=(1024, 65536), duration: float = 2.0, warmup: float = 0.3,
                     strategy: str = "one_copy", topologies=TOPOLOGIES, observer: str = "trace") -> list[dict]:
    """Per topology and size: traced vs untraced throughput of `runs` interleaved runs each.

    Each dict: topology, msg_size, strategy, runs, untraced_gbps[], traced_gbps[],
    untraced_median_gbps, traced_median_gbps, ratio (traced/untraced medians), overhead_pct,
    goal_pct, meets_goal (the medians' overhead <= goal), verdict ("met" / "not met": every traced
    run lost no more / more than the goal to its untraced neighbour; "within noise": they
    disagree), paired_ratios (each traced run / the untraced run next to it, sorted)
    and paired_median_ratio (less sensitive to slow drift of a shared machine than the medians),
    cpu_per_gb_ratio (client+server CPU per GB, traced/untraced), lost_events,
    traced_bytes_match (the tracer saw every byte the client sent, within 1%),
    probe_plan {figure: probe|None}, syscall_sample (1 in N send/recv syscalls timed, or None).
    observer "profile": the same with `--profile` instead of `--trace` (the "traced" figures
    are then the profiled runs'; traced_bytes_match and the probe plan are None, sampling_plan
    the profiler's).
    Raises CapabilityError (tracer, profiler, topology) when a run is impossible here.
    """
    from netobs.topology import open_topology

    if runs < 1:
        raise ValueError("runs must be >= 1")
    if observer == "trace":
        from netobs.tracer import plan_probes
        plan = plan_probes()
    else:
        from netobs.profiler import plan_sampling
        plan = plan_sampling()
    out = []
    for topo_name in topologies:
        results = {s: {"untraced": [], "traced": []} for s in sizes}
        with open_topology(topo_name) as topo, tempfile.TemporaryDirectory(prefix="netobs-bench-") as tmp:
            n = 0
            for i in range(runs):
                for size in sizes:
                    order = ("untraced", "traced") if i % 2 == 0 else ("traced", "untraced")
                    for variant in order:
                        n += 1
                        point_dir = Path(tmp) / str(n)
                        r = _one_run(topo, topo_name, size, duration, warmup, strategy,
                                     plan if variant == "traced" else None, point_dir, observer)
                        results[size][variant].append(r)
        out += [_summary(topo_name, size, strategy, runs, duration, plan, results[size], observer) for size in sizes]
    return out


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
