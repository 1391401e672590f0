"""The bench's entry point, `python -m netobs.bench` (`make bench`): runs the sections
(`peers`, then `tracing`), renders their results as tables and prints them (or `--json`), and
keeps the tracer's per-event cost for traced runs without --profile (`netobs.observer_cost`).
Like the CLI, this is a place that prints; the sections only return values.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import netobs.bench
from netobs import fmt
from netobs import placement
from netobs.bench import peers, refine, scale, tracing
from netobs.errors import EXIT_INTERRUPTED, NetobsError, UsageError
from netobs.files import dumps


def _opt(x, spec: str) -> str:
    """`x` formatted by `spec`, or n/a when it was not measured."""
    return fmt.NA if fmt.missing(x) else format(x, spec)


def format_table(res: dict) -> str:
    s = res["settings"]
    lines = [f"netobs bench: {' and '.join(s.get('topologies') or ['loopback'])}, {s['msg_size']} B, {s['threads']} thread(s), {s['warmup_s']:g} s warm-up + "
             f"{s['duration_s']:g} s, {s['repeats']} interleaved runs each (medians, sender Gbps)", ""]
    if s.get("placement"):
        lines[-1:-1] = [f"pinned: placement {s['placement']} unless a cell says same (CPUs {s.get('cpus')}); "
                        f"neper: {s.get('neper')}"]
    w = max([24] + [len(c["name"]) for c in res["comparisons"]])
    hdr = (f"{'comparison':<{w}} {'A':<20} {'A Gbps':>8} {'B':<20} {'B Gbps':>8} {'A/B':>6}  spread A/B"
           "  unpinned spread A/B")
    lines += [hdr, "-" * len(hdr)]
    for c in res["comparisons"]:
        spread = "/".join(_opt(x, ".0%") for x in (c["a_spread"], c["b_spread"]))
        free = c.get("unpinned")
        loose = "/".join(_opt(free[f"{k}_spread"], ".0%") for k in "ab") if free else ""
        lines.append(f"{c['name']:<{w}} {c['a']:<20} {c['a_median_gbps']:>8.2f} {c['b']:<20} "
                     f"{c['b_median_gbps']:>8.2f} {_opt(c['ratio'], '.2f'):>6}  {spread:<11}  {loose}")
    lines.append("")
    for c in res["comparisons"]:
        lines.append(f"{c['name']}: {c['note']}")
        lines.append("  A: " + ", ".join(f"{x['gbps']:.2f}" for x in c["a_samples"])
                     + "   B: " + ", ".join(f"{x['gbps']:.2f}" for x in c["b_samples"])
                     + (f"   placement {c['placement']}" if c.get("placement") else ""))
        if c.get("unpinned"):
            u = c["unpinned"]
            lines.append("  unpinned A: " + ", ".join(f"{x:.2f}" for x in u["a_samples"])
                         + "   B: " + ", ".join(f"{x:.2f}" for x in u["b_samples"]))
    lines.append(f"({res['elapsed_s']:.0f} s; spread = (max - min) / median; on a shared or small "
                 "host, a spread above ~10% means the ratio is within noise)")
    return "\n".join(lines)


def _ci(ci, spec: str, suffix: str = "") -> str:
    return "[" + ", ".join(format(x, spec) + suffix for x in ci) + "]" if ci else "[n/a]"


def _fig(fig: dict, spec: str) -> str:
    """A ratio with its interval: `1.012 [0.995, 1.029]`."""
    return f"{_opt(fig.get('mean'), spec)} {_ci(fig.get('ci'), spec)}"


def _order_code(order: str) -> str:
    return "".join("P" if v == "untraced" else "O" for v in order.split(","))


def format_tracing(rows: list[dict], cost: dict | None = None, observer: str = "trace") -> str:
    flag, what = ("--trace", "traced") if observer == "trace" else ("--profile", "profiled")
    lines = ["", f"{'tracing' if observer == 'trace' else 'profiling'} overhead: netobs run {flag} vs without "
                 "(one_copy, 1 thread, no perf); per pair (one run of each, in seeded random order) the ratio "
                 f"{what} / plain; mean of the pairs [95% t-interval over pairs]",
             f"{'topology':<9} {'msg size':>8} {'pairs':>5} {'window':>6}  {'CPU/GB both ends':<22} "
             f"{'CPU added':<24} {'Gbps ratio':<22} {'goal':>5}  verdict"]
    for r in rows:
        cpu, thr = r["cpu"], r["throughput"]
        added = (f"{cpu['overhead_pct']:+.1f}% {_ci(cpu['overhead_ci_pct'], '+.1f', '%')}"
                 if not fmt.missing(cpu.get("overhead_pct")) else fmt.NA)
        lines.append(f"{r['topology']:<9} {r['msg_size']:>8} {r['n_pairs']:>5} {_opt(r['window_s'], 'g') + ' s':>6}  "
                     f"{_fig(cpu, '.3f'):<22} {added:<24} {_fig(thr, '.3f'):<22} {r['goal_pct']:>4g}%  {r['verdict']}")
    for r in rows:
        head = f"  {r['topology']} {r['msg_size']} B:"
        sp, plan = r.get("spread"), r.get("plan")
        if sp:
            lines.append(f"{head} spread first: {sp['runs']} plain runs of {sp['window_s']:g} s, CV of CPU/GB "
                         f"{_opt(sp['cpu_cv'], '.1%')}, of Gbps {_opt(sp['gbps_cv'], '.1%')}; planned "
                         f"{plan['window_s']:g} s windows, {plan['pairs'] if plan['pairs'] is not None else 'what fits of'} "
                         f"pairs ({'interval predicted ' + format(plan['width_pct'], '.1f') + ' points wide' if plan['width_pct'] != float('inf') else 'no width predicted'}"
                         f"{'' if plan['reaches_goal'] else ', not narrower than the goal within the budget'}); "
                         f"stopped: {r['stop']}, after {r['n_pairs']} pairs in {r['elapsed_s']:.0f} s of {r['budget_s']:.0f} s")
        else:
            lines.append(f"{head} fixed design: {r['n_pairs']} pairs of {_opt(r['window_s'], 'g')} s windows "
                         f"in {r['elapsed_s']:.0f} s")
        codes = [_order_code(o) for o in r["orders"]]
        lines.append(f"    order (P plain, O {what}), seed {r['seed']}: {' '.join(codes)} "
                     f"({codes.count('PO')} plain first, {codes.count('OP')} {what} first); "
                     f"interval width {_opt(r['cpu']['width_pct'], '.1f')} points against a goal of {r['goal_pct']:g}%")
        m = r.get("observer_margin_s")
        n_obs = sum(1 for t in r.get("timelines") or [] if t)
        lines.append(f"    compile+attach outside the window: {'yes' if r['observer_outside_window'] else 'NO'} "
                     + (f"(ended >= {m[0]:.2f} s before any window could open; detach began >= {m[1]:.2f} s after "
                        f"it closed; {n_obs} {what} runs)" if m else "(no timeline)"))
        extra = [f"lost events {r['lost_events']}"]
        if observer == "trace":
            ev = r.get("ns_per_event") or {}
            extra.insert(0, f"CPU added per traced send/recv syscall (both ends) {_opt(ev.get('mean'), '+.0f')} ns "
                            f"{_ci(ev.get('ci'), '.0f')}")
            extra.append(f"traced bytes = sent: {'yes' if r['traced_bytes_match'] else 'NO'}")
        lines.append("    " + "; ".join(extra))
    lines.append('(the verdict is on CPU per GB of both ends: "within goal" / "over goal" only when its whole '
                 'interval is at or below / above the goal, else "cannot tell"; throughput is the second figure)')
    if cost:
        lines.append(f"per send syscall, without throughput noise: {cost['untraced_ns']:.0f} ns untraced, "
                     f"{cost['traced_ns']:.0f} ns traced: +{cost['added_ns']:.0f} ns (least of "
                     f"{cost['rounds']} interleaved rounds; the tracer counted {cost['traced_calls']:,} of "
                     f"{cost['expected_calls']:,} calls)")
        if cost.get("send_probe") and "syscalls" not in cost["send_probe"]:
            lines.append(f"  (the send figures come from {cost['send_probe']}, which these failing calls never "
                         "reach: its cost is not in this figure)")
        for r in rows:
            plain = [g for g in r["untraced_gbps"] if g]
            if plain:
                msg_ns = r["msg_size"] * 8 / statistics.median(plain)
                lines.append(f"  {r['topology']} {r['msg_size']} B: a message takes {msg_ns:,.0f} ns untraced; "
                             f"+{cost['added_ns']:.0f} ns per send is {100 * cost['added_ns'] / (msg_ns + cost['added_ns']):.1f}% "
                             "of the traced time (the sender's share; the receiver's is not in it)")
    return "\n".join(lines)


def format_study(r: dict) -> list[str]:
    """The report of the 48-point traced and profiled study, against issue 25's goals."""
    if r["wall_s"] is None:
        return [f"report of a 48-point traced and profiled study: {r['error']}"]
    verdict = r["error"] or ", ".join(
        (["time within goal" if r["within_time_goal"] else "time OVER goal"]
         + ([] if r["within_size_goal"] is None else ["size within goal" if r["within_size_goal"] else "size OVER goal"])))
    size = "n/a" if r["html_bytes"] is None else f"{r['html_bytes'] / 1e6:.2f} MB"
    return [f"report of a {r['points']}-point traced and profiled study{' (swept here)' if r['swept'] else ''}: "
            f"{r['wall_s']:.2f} s wall, {_opt(r['cpu_s'], '.2f')} s CPU, page {size} (load average "
            f"{r['load_1m']:.2f}; goals {r['goal_s']:g} s, {r['goal_bytes'] / 1e6:g} MB): {verdict}"]


def format_scale(rows: list[dict]) -> str:
    lines = ["", "scale: the readers on generated stores (wall time; peak memory less the same command's on a "
                 f"{scale.SMALL}-point store, per byte of runs.csv; load: the 1-minute load average at the start)",
             f"{'command':<8} {'points':>8} {'runs.csv':>9} {'wall s':>8} {'CPU s':>7} {'goal s':>7} "
             f"{'memory':>9} {'x file':>7} {'page':>8} {'load':>5}  verdict"]
    study = [r for r in rows if r.get("study")]
    for r in (r for r in rows if not r.get("study")):
        goal = "" if r["goal_s"] is None else f"{r['goal_s']:.0f}"
        time_ok = {True: "time within goal", False: "time OVER goal", None: ""}[r["within_time_goal"]]
        mem_ok = {True: "memory within goal", False: "memory OVER goal", None: ""}[r["within_memory_goal"]]
        grown = None if r["memory_growth_x_file"] is None else (r["peak_rss_bytes"] - r["baseline_rss_bytes"]) / 2**20
        verdict = r["error"] or ", ".join(x for x in (time_ok, mem_ok) if x)
        lines.append(f"{r['command']:<8} {r['points']:>8,} {r['runs_csv_bytes'] / 2**20:>7.1f}Mi "
                     f"{_opt(r['wall_s'], '.1f'):>8} {_opt(r['cpu_s'], '.1f'):>7} {goal:>7} "
                     f"{_opt(grown, '.0f'):>7}Mi "
                     f"{_opt(r['memory_growth_x_file'], '.1f'):>7} "
                     f"{'' if r.get('html_bytes') is None else format(r['html_bytes'] / 1e6, '.1f') + 'MB':>8} "
                     f"{r.get('load_1m') or 0:>5.2f}  {verdict}")
    for r in study:
        lines += format_study(r)
    lines.append(f"(goals, issue 28: explain within {scale.GOAL_S_PER_POINT * 1e3:g} ms per point, memory growth at "
                 f"most {scale.GOAL_MEMORY_X_FILE:g}x runs.csv; wall time on a shared host includes its load)")
    return "\n".join(lines)


def _csv(kind, text: str) -> tuple:
    try:
        return tuple(kind(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list: {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m netobs.bench", description=netobs.bench.__doc__.split("\n\n")[0],
                                 epilog="examples:\n  python -m netobs.bench\n  python -m netobs.bench --repeats 5 --json\n"
                                        "  python -m netobs.bench --only two_copy --duration 1 --warmup 0 --no-trace\n"
                                        "  python -m netobs.bench --scale-only --scale-points 10000 --scale-study results/\n"
                                        "  python -m netobs.bench --no-peers --trace-sizes 65536 --trace-observers trace "
                                        "--trace-budget-s 200\n"
                                        "  python -m netobs.bench --no-peers --trace-sizes 65536 --trace-pairs 6 --trace-window 8",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    # whole seconds: iperf3 3.x takes -t and -O as integers (and -t 0 means "forever")
    ap.add_argument("--duration", type=int, default=3, help="measured whole seconds per run (default 3)")
    ap.add_argument("--warmup", type=int, default=1, help="warm-up whole seconds per run (default 1)")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each variant, interleaved (default 3, at least 3)")
    ap.add_argument("--placement", choices=[p for p in placement.PLACEMENTS if p != "explicit"],
                    default=placement.DEFAULT, help=f"the cells' placement (default {placement.DEFAULT}; "
                                                    "cells that say same keep it)")
    ap.add_argument("--only", default=None, help="run only comparisons whose name contains this")
    ap.add_argument("--no-peers", action="store_true", help="skip the comparisons with iperf3 and between strategies")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    ap.add_argument("--no-trace", action="store_true", help="skip the observer-overhead section (it needs root and BCC)")
    ap.add_argument("--trace-budget-s", type=float, default=240.0,
                    help="seconds for the observer-overhead runs, all sizes, topologies and observers together "
                         "(default 240)")
    ap.add_argument("--trace-sizes", type=lambda t: _csv(int, t), default=(65536, 1024),
                    help="message sizes of the observer-overhead runs (default 65536,1024)")
    ap.add_argument("--trace-topologies", type=lambda t: _csv(str, t), default=("netns",),
                    help="topologies of the observer-overhead runs (default netns; loopback is the worst case)")
    ap.add_argument("--trace-observers", type=lambda t: _csv(str, t), default=("trace", "profile"),
                    help="observers to measure: trace (--trace), profile (--profile) (default both)")
    ap.add_argument("--trace-seed", type=int, default=None, help="seed of the pairs' order (default: random, printed)")
    ap.add_argument("--trace-pairs", type=int, default=None,
                    help="a fixed design instead of the adaptive one: this many pairs (with --trace-window)")
    ap.add_argument("--trace-window", type=float, default=None, help="the fixed design's window in seconds")
    ap.add_argument("--no-scale", action="store_true", help="skip the scale section (explain/report/compare of "
                                                            "generated stores)")
    ap.add_argument("--scale-only", action="store_true", help="run only the scale section (no root needed "
                                                              "but for sweeping the study: see --scale-study)")
    ap.add_argument("--scale-study", type=Path, default=None,
                    help="a 48-point traced and profiled results directory to time `netobs report` on (default: "
                         "sweep one here, as root: netobs sweep --trace --profile --duration 1 --warmup 0.3)")
    ap.add_argument("--no-scale-study", action="store_true", help="leave out the 48-point study's report")
    ap.add_argument("--scale-points", type=lambda t: _csv(int, t), default=(10_000, 100_000),
                    help="points of the scale section's generated stores (default 10000,100000)")
    ap.add_argument("--scale-commands", type=lambda t: _csv(str, t), default=scale.COMMANDS,
                    help="commands the scale section times (default explain,compare,report)")
    ap.add_argument("--no-refine", action="store_true", help="skip the refine section (a crossover located by "
                                                             "netobs refine against a dense grid; needs root)")
    ap.add_argument("--refine-only", action="store_true", help="run the refine section alone")
    ap.add_argument("--refine-duration", type=float, default=0.5, help="the refine section's window per point, s")
    a = ap.parse_args(argv)
    if a.scale_only:
        a.no_peers = a.no_trace = a.no_refine = True
    if a.refine_only:
        a.no_peers = a.no_trace = a.no_scale = True
    try:
        if a.repeats < 3:
            raise UsageError(f"--repeats {a.repeats} is too few for a median", fix="--repeats 3 or more")
        if not 0 < a.duration <= 3600 or not 0 <= a.warmup <= 3600:
            raise UsageError("duration or warm-up out of range", fix="--duration in 1..3600, --warmup in 0..3600")
        if (a.trace_pairs is None) != (a.trace_window is None):
            raise UsageError("--trace-pairs and --trace-window go together", fix="both (a fixed design) or neither")
        if a.trace_pairs is not None and (a.trace_pairs < 1 or not 0 < a.trace_window <= 3600):
            raise UsageError("fixed design out of range", fix="--trace-pairs 1 or more, --trace-window in (0, 3600]")
        if not 10 <= a.trace_budget_s <= 3600:
            raise UsageError(f"--trace-budget-s {a.trace_budget_s:g} out of range", fix="--trace-budget-s in 10..3600")
        bad = [o for o in a.trace_observers if o not in tracing.OBSERVER_GOALS_PCT] or \
            [t for t in a.trace_topologies if t not in tracing.TOPOLOGIES]
        if bad or not a.trace_observers or not a.trace_topologies or not a.trace_sizes:
            raise UsageError(f"unknown or empty observer-overhead setting {', '.join(bad) or '(empty)'}",
                             fix="--trace-observers of " + ",".join(tracing.OBSERVER_GOALS_PCT)
                                 + "; --trace-topologies of " + ",".join(tracing.TOPOLOGIES))
        if a.scale_study is not None and not (a.scale_study / "runs.csv").is_file():
            raise UsageError(f"--scale-study {a.scale_study} has no runs.csv",
                             fix="a results directory of `netobs sweep --trace --profile`, or leave it out")
        unknown = [c for c in a.scale_commands if c not in scale.COMMANDS]
        if unknown or any(n < 1 for n in a.scale_points):
            raise UsageError(f"bad scale setting {', '.join(unknown) or 'points'}",
                             fix="--scale-commands of " + ",".join(scale.COMMANDS) + ", --scale-points of 1 or more")
        comps = [] if a.no_peers else [c for c in peers.COMPARISONS if a.only is None or a.only in c.name]
        if not comps and not a.no_peers:
            raise UsageError(f"no comparison matches {a.only!r}",
                             fix="one of: " + ", ".join(c.name for c in peers.COMPARISONS))
        quiet = a.json or not sys.stderr.isatty()
        res: dict = {}
        if comps:
            res = peers.run_bench(peers.Settings(duration=a.duration, warmup=a.warmup, repeats=a.repeats,
                                                placement=a.placement), comps,
                                  None if quiet else lambda m: print(f"\r\033[K{m}", end="", file=sys.stderr, flush=True))
            if not quiet:
                print("\r\033[K", end="", file=sys.stderr)
        if not a.no_trace:
            from netobs import hostprep, observer_cost

            hostprep.prepare()   # the setup step: tracefs and kernel headers, before any tracer
            configs = len(a.trace_sizes) * len(a.trace_topologies)
            share = a.trace_budget_s / len(a.trace_observers)
            fixed = {"runs": a.trace_pairs, "duration": a.trace_window}
            for obs in a.trace_observers:
                if not quiet:
                    print(f"{obs} overhead: {configs} configuration(s), about {share:.0f} s ...", file=sys.stderr)
                if obs == "trace":
                    res["send_syscall_cost"] = tracing.send_syscall_cost()
                res[f"{obs}_overhead"] = tracing.tracing_overhead(
                    sizes=a.trace_sizes, topologies=a.trace_topologies, observer=obs, budget_s=share,
                    warmup=float(a.warmup), seed=a.trace_seed, **fixed)
            figure = tracing.observer_cost_figure(res.get("trace_overhead") or [])
            if figure is not None:
                res["observer_cost_saved"] = str(observer_cost.save(figure))
        if not a.no_scale:
            res["scale"] = scale.run_scale(a.scale_points, a.scale_commands,
                                           progress=None if quiet else lambda m: print(m, file=sys.stderr),
                                           study=a.scale_study, with_study=not a.no_scale_study)
        if not a.no_refine:
            res["refine"] = refine.run_refine_bench(duration=a.refine_duration,
                                                    progress=None if quiet else lambda m: print(m, file=sys.stderr))
    except NetobsError as exc:
        print(f"netobs: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("netobs: error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    parts = [format_table(res)] if "comparisons" in res else []
    if "trace_overhead" in res:
        parts.append(format_tracing(res["trace_overhead"], res.get("send_syscall_cost")))
    if "profile_overhead" in res:
        parts.append(format_tracing(res["profile_overhead"], observer="profile"))
    if "observer_cost_saved" in res:
        parts.append(f"(the tracer's cost per traced syscall is kept in {res['observer_cost_saved']}: traced runs "
                     "without --profile record it as their observer_cost)")
    if "scale" in res:
        parts.append(format_scale(res["scale"]))
    if "refine" in res:
        parts.append(refine.format_refine(res["refine"]))
    print(dumps(res) if a.json else "\n".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
