"""The bench's entry point, `python -m netobs.bench` (`make bench`): runs the sections
(`peers`, then `tracing`), renders their results as tables and prints them (or `--json`).
Like the CLI, this is a place that prints; the sections only return values.
"""
from __future__ import annotations

import argparse
import json
import sys

import netobs.bench
from netobs import fmt
from netobs.bench import peers, tracing
from netobs.errors import EXIT_INTERRUPTED, NetobsError, UsageError


def _opt(x, spec: str) -> str:
    """`x` formatted by `spec`, or n/a when it was not measured."""
    return fmt.NA if fmt.missing(x) else format(x, spec)


def format_table(res: dict) -> str:
    s = res["settings"]
    lines = [f"netobs bench: loopback, {s['msg_size']} B, {s['threads']} thread(s), {s['warmup_s']:g} s warm-up + "
             f"{s['duration_s']:g} s, {s['repeats']} interleaved runs each (medians, sender Gbps)", ""]
    hdr = f"{'comparison':<24} {'A':<20} {'A Gbps':>8} {'B':<20} {'B Gbps':>8} {'A/B':>6}  spread A/B"
    lines += [hdr, "-" * len(hdr)]
    for c in res["comparisons"]:
        spread = "/".join(_opt(x, ".0%") for x in (c["a_spread"], c["b_spread"]))
        lines.append(f"{c['name']:<24} {c['a']:<20} {c['a_median_gbps']:>8.2f} {c['b']:<20} "
                     f"{c['b_median_gbps']:>8.2f} {_opt(c['ratio'], '.2f'):>6}  {spread}")
    lines.append("")
    for c in res["comparisons"]:
        lines.append(f"{c['name']}: {c['note']}")
        lines.append("  A: " + ", ".join(f"{x['gbps']:.2f}" for x in c["a_samples"])
                     + "   B: " + ", ".join(f"{x['gbps']:.2f}" for x in c["b_samples"]))
    lines.append(f"({res['elapsed_s']:.0f} s; spread = (max - min) / median; on a shared or small "
                 "host, a spread above ~10% means the ratio is within noise)")
    return "\n".join(lines)


_VERDICT = {"met": "yes", "not met": "no", "within noise": "noise"}


def format_tracing(rows: list[dict], cost: dict | None = None, observer: str = "trace") -> str:
    flag, what = ("--trace", "traced") if observer == "trace" else ("--profile", "profiled")
    lines = ["", f"{'tracing' if observer == 'trace' else 'profiling'} overhead (netobs run, one_copy, 1 thread, no perf; "
                 f"throughput with {flag} vs without: "
                 f"medians of {rows[0]['runs'] if rows else 0} interleaved runs each; paired: median of each "
                 f"{what} run / its neighbouring plain run)",
             f"{'topology':<9} {'msg size':>9} {'plain':>9} {what:>9} {'ratio':>6} {'overhead':>9} {'goal':>6} "
             f"{'met':>5} {'paired':>7} {'CPU/GB ratio':>12}" + ("  traced bytes = sent" if observer == "trace" else "")]
    for r in rows:
        over = fmt.NA if fmt.missing(r["overhead_pct"]) else f"{r['overhead_pct']:.1f}%"
        lines.append(f"{r['topology']:<9} {r['msg_size']:>9} {r['untraced_median_gbps']:>9.2f} "
                     f"{r['traced_median_gbps']:>9.2f} {_opt(r['ratio'], '.3f'):>6} {over:>9} {r['goal_pct']:>5.0f}% "
                     f"{_VERDICT.get(r.get('verdict'), fmt.NA):>5} {_opt(r.get('paired_median_ratio'), '.3f'):>7} "
                     f"{_opt(r['cpu_per_gb_ratio'], '.2f'):>12}"
                     + (f"  {'yes' if r['traced_bytes_match'] else 'NO'}" if observer == "trace" else ""))
    lines.append("(netns is the default topology; loopback is the cheapest send path, where the BPF "
                 "programs' fixed cost per send weighs most; met: yes / no = every traced run lost "
                 "no more / more than the goal to its untraced neighbour, noise = they disagree)")
    if cost:
        lines.append(f"per send syscall, without throughput noise: {cost['untraced_ns']:.0f} ns untraced, "
                     f"{cost['traced_ns']:.0f} ns traced: +{cost['added_ns']:.0f} ns (least of "
                     f"{cost['rounds']} interleaved rounds; the tracer counted {cost['traced_calls']:,} of "
                     f"{cost['expected_calls']:,} calls)")
        if cost.get("send_probe") and "syscalls" not in cost["send_probe"]:
            lines.append(f"  (the send figures come from {cost['send_probe']}, which these failing calls never "
                         "reach: its cost is not in this figure)")
        for r in rows:
            if r["untraced_median_gbps"]:
                msg_ns = r["msg_size"] * 8 / r["untraced_median_gbps"]
                lines.append(f"  {r['topology']} {r['msg_size']} B: a message takes {msg_ns:,.0f} ns untraced; "
                             f"+{cost['added_ns']:.0f} ns per send is {100 * cost['added_ns'] / (msg_ns + cost['added_ns']):.1f}% "
                             "of the traced time (the sender's share; the receiver's is not in it)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m netobs.bench", description=netobs.bench.__doc__.split("\n\n")[0],
                                 epilog="examples:\n  python -m netobs.bench\n  python -m netobs.bench --repeats 5 --json\n"
                                        "  python -m netobs.bench --only two_copy --duration 1 --warmup 0 --no-trace",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    # whole seconds: iperf3 3.x takes -t and -O as integers (and -t 0 means "forever")
    ap.add_argument("--duration", type=int, default=3, help="measured whole seconds per run (default 3)")
    ap.add_argument("--warmup", type=int, default=1, help="warm-up whole seconds per run (default 1)")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each variant, interleaved (default 3, at least 3)")
    ap.add_argument("--only", default=None, help="run only comparisons whose name contains this")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    ap.add_argument("--trace-repeats", type=int, default=5,
                    help="runs of traced and of untraced, interleaved, per message size (default 5, at least 3)")
    ap.add_argument("--no-trace", action="store_true", help="skip the tracing-overhead section (it needs root and BCC)")
    a = ap.parse_args(argv)
    try:
        for name, n in (("--repeats", a.repeats), ("--trace-repeats", a.trace_repeats)):
            if n < 3:
                raise UsageError(f"{name} {n} is too few for a median", fix=f"{name} 3 or more")
        if not 0 < a.duration <= 3600 or not 0 <= a.warmup <= 3600:
            raise UsageError("duration or warm-up out of range", fix="--duration in 1..3600, --warmup in 0..3600")
        comps = [c for c in peers.COMPARISONS if a.only is None or a.only in c.name]
        if not comps:
            raise UsageError(f"no comparison matches {a.only!r}",
                             fix="one of: " + ", ".join(c.name for c in peers.COMPARISONS))
        quiet = a.json or not sys.stderr.isatty()
        res = peers.run_bench(peers.Settings(duration=a.duration, warmup=a.warmup, repeats=a.repeats), comps,
                              None if quiet else lambda m: print(f"\r\033[K{m}", end="", file=sys.stderr, flush=True))
        if not quiet:
            print("\r\033[K", end="", file=sys.stderr)
        if not a.no_trace:
            from netobs import hostprep

            hostprep.prepare()   # the setup step: tracefs and kernel headers, before any tracer
            if not quiet:
                print("tracing overhead: traced vs untraced runs, interleaved ...", file=sys.stderr)
            res["send_syscall_cost"] = tracing.send_syscall_cost()
            res["tracing_overhead"] = tracing.tracing_overhead(runs=a.trace_repeats, duration=float(a.duration),
                                                               warmup=float(a.warmup))
            if not quiet:
                print("profiling overhead: profiled vs plain runs, interleaved ...", file=sys.stderr)
            res["profile_overhead"] = tracing.tracing_overhead(runs=a.trace_repeats, duration=float(a.duration),
                                                               warmup=float(a.warmup), observer="profile")
    except NetobsError as exc:
        print(f"netobs: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("netobs: error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    text = format_table(res) + ("\n" + format_tracing(res["tracing_overhead"], res.get("send_syscall_cost"))
                                if "tracing_overhead" in res else "")
    if "profile_overhead" in res:
        text += "\n" + format_tracing(res["profile_overhead"], observer="profile")
    print(json.dumps(res, indent=2) if a.json else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
