"""What kernel tracing costs the traffic it observes: throughput with and without the tracer.

`tracing_overhead()` runs the loopback copy workers (server and client in this process, so
the tracer counts both sides, as a sweep with --trace does) at each message size, traced and
untraced runs interleaved, and returns one summary per size. The bench (`make bench`) prints
it; nothing here prints.

Untraced runs have no netobs program attached at all; each traced run compiles and attaches
the tracer first (outside the measured window) and detaches it afterwards, so both variants
see the same machine apart from the programs themselves. The order alternates (A B, B A, ...)
so drift on a shared machine hits both alike.
"""
from __future__ import annotations

import os
import statistics

# Overhead goals (percent of untraced throughput) per message size; other sizes get the
# smaller-message goal.
GOALS_PCT = {65536: 3.0, 1024: 10.0}


def _one_run(msg_size: int, duration: float, warmup: float, impl: str, tracer_plan: dict | None) -> dict:
    from netobs.workers import ClientConfig, Server, ServerConfig, run_client

    tracer = None
    if tracer_plan is not None:
        from netobs.tracer import Tracer
        tracer = Tracer(tracer_plan)
    try:
        with Server(ServerConfig(connections=1, msg_size=msg_size, timeout=duration + warmup + 30)) as srv:
            port = srv.start()
            if tracer is not None:
                tracer.start_point({"client": os.getpid()})
            stats = run_client(ClientConfig(port=port, impl=impl, msg_size=msg_size, threads=1,
                                            duration=duration, warmup=warmup))
            server_stats = srv.wait(timeout=30)
        trace = tracer.stop_point() if tracer is not None else None
    finally:
        if tracer is not None:
            tracer.close()
    cpu_s = sum((d or {}).get(k) or 0.0 for d in (stats.get("cpu"), server_stats.get("cpu"))
                for k in ("user_s", "sys_s"))
    gb = (stats.get("bytes_sent") or 0) / 1e9
    out = {"gbps": stats["throughput_gbps"], "bytes_sent_total": stats["bytes_sent_total"],
           "cpu_s_per_gb": cpu_s / gb if gb else None}
    if trace is not None:
        out["lost_events"] = trace["lost_events"]
        out["traced_send_bytes"] = trace["client"]["sendmsg_bytes"]
    return out


def tracing_overhead(runs: int = 3, sizes=(1024, 65536), duration: float = 2.0,
                     warmup: float = 0.3, impl: str = "one_copy") -> list[dict]:
    """Per size: traced vs untraced throughput (medians of `runs` interleaved runs each).

    Each dict: msg_size, impl, runs, untraced_gbps[], traced_gbps[], untraced_median_gbps,
    traced_median_gbps, ratio (traced/untraced), overhead_pct, goal_pct, meets_goal,
    cpu_per_gb_ratio (client+server CPU per GB, traced/untraced),
    lost_events, traced_bytes_match (the tracer saw every byte the client sent, within 1%),
    probe_plan {figure: probe|None}, syscall_sample (1 in N send/recv syscalls timed, or None).
    Raises CapabilityError (from the tracer) when tracing is impossible here.
    """
    from netobs.tracer import plan_probes

    if runs < 1:
        raise ValueError("runs must be >= 1")
    plan = plan_probes()
    results = {s: {"untraced": [], "traced": []} for s in sizes}
    for i in range(runs):
        for size in sizes:
            order = ("untraced", "traced") if i % 2 == 0 else ("traced", "untraced")
            for variant in order:
                r = _one_run(size, duration, warmup, impl, plan if variant == "traced" else None)
                results[size][variant].append(r)
    out = []
    for size in sizes:
        un = [r["gbps"] for r in results[size]["untraced"]]
        tr = [r["gbps"] for r in results[size]["traced"]]
        mu, mt = statistics.median(un), statistics.median(tr)
        ratio = mt / mu if mu else None
        cu = [r["cpu_s_per_gb"] for r in results[size]["untraced"] if r["cpu_s_per_gb"] is not None]
        ct = [r["cpu_s_per_gb"] for r in results[size]["traced"] if r["cpu_s_per_gb"] is not None]
        cpu_ratio = statistics.median(ct) / statistics.median(cu) if cu and ct else None
        overhead = (1 - ratio) * 100 if ratio is not None else None
        goal = GOALS_PCT.get(size, GOALS_PCT[min(GOALS_PCT)])
        match = all(r.get("traced_send_bytes") is not None
                    and abs(r["traced_send_bytes"] - r["bytes_sent_total"]) <= 0.01 * r["bytes_sent_total"]
                    for r in results[size]["traced"])
        out.append({
            "msg_size": size, "impl": impl, "runs": runs, "duration_s": duration,
            "untraced_gbps": un, "traced_gbps": tr,
            "untraced_median_gbps": mu, "traced_median_gbps": mt,
            "ratio": ratio, "overhead_pct": overhead, "goal_pct": goal,
            # CPU seconds (client + server threads) per GB sent, traced / untraced: less
            # sensitive than throughput to other load on a shared machine.
            "cpu_per_gb_ratio": cpu_ratio,
            "meets_goal": overhead is not None and overhead <= goal,
            "lost_events": sum(r.get("lost_events", 0) for r in results[size]["traced"]),
            "traced_bytes_match": match,
            "probe_plan": {f: e.get("probe") for f, e in plan.items()},
            # send/recv syscall time: 1 in this many calls per thread timed (1: all)
            "syscall_sample": (plan.get("send_syscall_ns") or {}).get("sample_every"),
        })
    return out
