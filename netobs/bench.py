"""`python -m netobs.bench` (`make bench`): is netobs's sender as fast as the tools people trust?

On loopback, one thread, 65536-byte messages, equal warm-up and duration for every run, each
comparison runs its two variants interleaved A B A B ... (`--repeats` each) so drift on a
shared machine hits both alike, then reports medians and the ratio A/B:

- netobs `one_copy` vs `iperf3 -l 64K` (both do only the user->kernel copy)
- netobs `two_copy` vs netobs `one_copy` (the extra user-space serialization copy)
- netobs `zero_copy` vs netobs `one_copy` (page pinning + completions; copied anyway on loopback)

A comparison is data (`Comparison(name, a, b)` with two `Variant`s that each measure one run),
so later sections (e.g. tracing overhead: one_copy traced vs untraced) append to COMPARISONS.
This module is an entry point like the CLI: `main()` prints; everything else returns values.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from netobs.errors import CapabilityError, NetobsError, UsageError

WORKER = [sys.executable, "-m", "netobs.worker"]
HOST = "127.0.0.1"
START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Settings:
    msg_size: int = 65536
    threads: int = 1
    duration: float = 3.0
    warmup: float = 1.0
    repeats: int = 3


@dataclass
class Sample:
    gbps: float
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Variant:
    name: str
    measure: Callable[[Settings], Sample]


@dataclass(frozen=True)
class Comparison:
    name: str
    a: Variant
    b: Variant
    note: str = ""


# ----------------------------------------------------------------------------- variants

def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    """Whether something listens on `port` (from /proc/net/tcp; looking does not connect,
    so a one-off server such as `iperf3 -s -1` keeps its one connection for the test)."""
    want = f":{port:04X}"
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[1].endswith(want) and cols[3] == "0A":  # 0A = LISTEN
                        return True
        except OSError:
            continue
    return False


def _wait_listening(proc: subprocess.Popen, port: int, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _listening(port):
        if proc.poll() is not None:
            raise NetobsError(f"{what} exited before listening", _tail(proc))
        if time.monotonic() > deadline:
            raise NetobsError(f"{what} did not start listening", f"no listener on port {port} in {START_TIMEOUT_S:g} s")
        time.sleep(0.01)


def _tail(proc: subprocess.Popen) -> str:
    err = proc.stderr.read() if proc.stderr else ""
    if isinstance(err, bytes):
        err = err.decode(errors="replace")
    lines = [ln for ln in (err or "").splitlines() if ln.strip()]
    return lines[-1].removeprefix("netobs: error: ") if lines else f"exit status {proc.returncode}"


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def netobs_variant(impl: str) -> Variant:
    """One netobs run as the tool runs it: a `serve` and a `send` worker process."""

    def measure(st: Settings) -> Sample:
        rfd, wfd = os.pipe()
        server = subprocess.Popen(WORKER + ["serve", "--bind", HOST, "--port", "0", "--connections", str(st.threads),
                                            "--timeout", str(st.warmup + st.duration + 30), "--ready-fd", str(wfd)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, pass_fds=(wfd,))
        os.close(wfd)
        try:
            with os.fdopen(rfd) as r:
                line = r.readline()  # `ready <port>`: the server is listening
            if not line.startswith("ready "):
                server.wait(timeout=5)
                raise NetobsError("the netobs server did not start", _tail(server))
            port = line.split()[1]
            client = subprocess.run(WORKER + ["send", "--host", HOST, "--port", port, "--impl", impl,
                                              "--msg-size", str(st.msg_size), "--threads", str(st.threads),
                                              "--duration", str(st.duration), "--warmup", str(st.warmup)],
                                    capture_output=True, text=True, timeout=st.warmup + st.duration + 60)
            if client.returncode != 0:
                raise NetobsError(f"netobs {impl} failed", (client.stderr.strip().splitlines() or ["?"])[-1])
            out, _ = server.communicate(timeout=15)
        finally:
            _stop(server)
        c, s = json.loads(client.stdout), json.loads(out)
        cpu = c["cpu"]["user_s"] + c["cpu"]["sys_s"]
        gb = c["bytes_sent"] / 1e9
        return Sample(c["throughput_gbps"], {"cpu_s_per_gb": cpu / gb if gb else None,
                                             "receiver_gbps": s.get("goodput_gbps"),
                                             "latency_p50_us": (c.get("latency_us") or {}).get("p50")})

    return Variant(f"netobs {impl}", measure)


def iperf3_variant() -> Variant:
    """`iperf3 -l 64K` with the same warm-up (-O, whole seconds in iperf3 3.x) and duration."""

    def measure(st: Settings) -> Sample:
        exe = shutil.which("iperf3")
        if exe is None:
            raise CapabilityError("iperf3 is not installed", fix="`make setup` (installs Debian's iperf3)")
        port = _free_port()
        server = subprocess.Popen([exe, "-s", "-1", "-B", HOST, "-p", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            _wait_listening(server, port, "iperf3 -s")
            length = f"{st.msg_size // 1024}K" if st.msg_size % 1024 == 0 else str(st.msg_size)
            try:
                r = subprocess.run([exe, "-c", HOST, "-p", str(port), "-l", length, "-P", str(st.threads),
                                    "-t", str(max(1, round(st.duration))), "-O", str(max(0, round(st.warmup))), "-J"],
                                   capture_output=True, text=True, timeout=st.warmup + st.duration + 60)
            except subprocess.TimeoutExpired:
                raise NetobsError("iperf3 did not finish", f"still running {st.warmup + st.duration + 60:g} s later") from None
            server.wait(timeout=10)
        finally:
            _stop(server)
        try:
            doc = json.loads(r.stdout)
        except ValueError:
            raise NetobsError("iperf3 printed no JSON", (r.stderr.strip().splitlines() or ["?"])[-1]) from None
        if r.returncode != 0 or "error" in doc:
            raise NetobsError("iperf3 failed", doc.get("error") or f"exit status {r.returncode}")
        return Sample(_iperf3_sender_gbps(doc), {
            "receiver_gbps": doc["end"]["sum_received"]["bits_per_second"] / 1e9,
            "cpu_host_pct": doc["end"].get("cpu_utilization_percent", {}).get("host_total")})

    return Variant("iperf3", measure)


def _iperf3_sender_gbps(doc: dict) -> float:
    """Sender throughput over the intervals after the omitted (warm-up) ones."""
    b = s = 0.0
    for iv in doc.get("intervals", []):
        total = iv["sum"]
        if total.get("omitted"):
            continue
        b += total["bytes"]
        s += total["seconds"]
    if s > 0:
        return b * 8 / s / 1e9
    return doc["end"]["sum_sent"]["bits_per_second"] / 1e9


COMPARISONS: list[Comparison] = [
    Comparison("one_copy vs iperf3", netobs_variant("one_copy"), iperf3_variant(),
               "iperf3 -c -l <msg-size> -O <warm-up> -t <duration>; both do only the user->kernel copy, "
               "so netobs should reach iperf3 (ratio >= 1)"),
    Comparison("two_copy vs one_copy", netobs_variant("two_copy"), netobs_variant("one_copy"),
               "the cost of the extra user-space serialization copy"),
    Comparison("zero_copy vs one_copy", netobs_variant("zero_copy"), netobs_variant("one_copy"),
               "loopback copies zero-copy pages anyway; pinning and completions are extra"),
]


# ----------------------------------------------------------------------------- running

def run_comparison(cmp: Comparison, st: Settings, progress: Callable[[str], None] | None = None) -> dict:
    """Interleave A B A B ...; medians, ratio A/B and every sample."""
    samples: dict[str, list[Sample]] = {"a": [], "b": []}
    for i in range(st.repeats):
        for key, var in (("a", cmp.a), ("b", cmp.b)):
            if progress:
                progress(f"{cmp.name}: {var.name} run {i + 1}/{st.repeats}")
            samples[key].append(var.measure(st))
    med = {k: statistics.median(s.gbps for s in v) for k, v in samples.items()}
    spread = {k: (max(s.gbps for s in v) - min(s.gbps for s in v)) / med[k] if med[k] else None
              for k, v in samples.items()}
    return {
        "name": cmp.name, "note": cmp.note, "a": cmp.a.name, "b": cmp.b.name,
        "a_median_gbps": med["a"], "b_median_gbps": med["b"],
        "ratio": med["a"] / med["b"] if med["b"] else None,
        "a_spread": spread["a"], "b_spread": spread["b"],
        "a_samples": [{"gbps": s.gbps, **s.details} for s in samples["a"]],
        "b_samples": [{"gbps": s.gbps, **s.details} for s in samples["b"]],
    }


def run_bench(st: Settings, comparisons: list[Comparison] | None = None,
              progress: Callable[[str], None] | None = None) -> dict:
    comps = COMPARISONS if comparisons is None else comparisons
    started = time.time()
    results = [run_comparison(c, st, progress) for c in comps]
    return {"settings": {"topology": "loopback", "msg_size": st.msg_size, "threads": st.threads,
                         "duration_s": st.duration, "warmup_s": st.warmup, "repeats": st.repeats,
                         "order": "interleaved"},
            "host": {"kernel": os.uname().release, "cpus": os.cpu_count()},
            "elapsed_s": time.time() - started, "comparisons": results}


def format_table(res: dict) -> str:
    s = res["settings"]
    lines = [f"netobs bench: loopback, {s['msg_size']} B, {s['threads']} thread(s), {s['warmup_s']:g} s warm-up + "
             f"{s['duration_s']:g} s, {s['repeats']} interleaved runs each (medians, sender Gbps)", ""]
    hdr = f"{'comparison':<24} {'A':<20} {'A Gbps':>8} {'B':<20} {'B Gbps':>8} {'A/B':>6}  spread A/B"
    lines += [hdr, "-" * len(hdr)]
    for c in res["comparisons"]:
        ratio = f"{c['ratio']:.2f}" if c["ratio"] is not None else "n/a"
        spread = "/".join(f"{x:.0%}" if x is not None else "n/a" for x in (c["a_spread"], c["b_spread"]))
        lines.append(f"{c['name']:<24} {c['a']:<20} {c['a_median_gbps']:>8.2f} {c['b']:<20} "
                     f"{c['b_median_gbps']:>8.2f} {ratio:>6}  {spread}")
    lines.append("")
    for c in res["comparisons"]:
        lines.append(f"{c['name']}: {c['note']}")
        lines.append("  A: " + ", ".join(f"{x['gbps']:.2f}" for x in c["a_samples"])
                     + "   B: " + ", ".join(f"{x['gbps']:.2f}" for x in c["b_samples"]))
    lines.append(f"({res['elapsed_s']:.0f} s; spread = (max - min) / median; on a shared or small "
                 "host, a spread above ~10% means the ratio is within noise)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m netobs.bench", description=__doc__.split("\n\n")[0],
                                 epilog="examples:\n  python -m netobs.bench\n  python -m netobs.bench --repeats 5 --json",
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
        comps = [c for c in COMPARISONS if a.only is None or a.only in c.name]
        if not comps:
            raise UsageError(f"no comparison matches {a.only!r}", fix="one of: " + ", ".join(c.name for c in COMPARISONS))
        quiet = a.json or not sys.stderr.isatty()
        res = run_bench(Settings(duration=a.duration, warmup=a.warmup, repeats=a.repeats), comps,
                        None if quiet else lambda m: print(f"\r\033[K{m}", end="", file=sys.stderr, flush=True))
        if not quiet:
            print("\r\033[K", end="", file=sys.stderr)
        if not a.no_trace:
            from netobs.trace_bench import send_syscall_cost, tracing_overhead

            if not quiet:
                print("tracing overhead: traced vs untraced runs, interleaved ...", file=sys.stderr)
            res["send_syscall_cost"] = send_syscall_cost()
            res["tracing_overhead"] = tracing_overhead(runs=a.trace_repeats, duration=float(a.duration),
                                                       warmup=float(a.warmup))
    except NetobsError as exc:
        print(f"netobs: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("netobs: error: interrupted", file=sys.stderr)
        return 130
    text = format_table(res) + ("\n" + format_tracing(res["tracing_overhead"], res.get("send_syscall_cost"))
                                if "tracing_overhead" in res else "")
    print(json.dumps(res, indent=2) if a.json else text)
    return 0


_VERDICT = {"met": "yes", "not met": "no", "within noise": "noise"}


def format_tracing(rows: list[dict], cost: dict | None = None) -> str:
    lines = ["", "tracing overhead (netobs run, one_copy, 1 thread, no perf; throughput with --trace vs without: "
                 f"medians of {rows[0]['runs'] if rows else 0} interleaved runs each; paired: median of each "
                 "traced run / its neighbouring untraced run)",
             f"{'topology':<9} {'msg size':>9} {'untraced':>9} {'traced':>9} {'ratio':>6} {'overhead':>9} {'goal':>6} "
             f"{'met':>5} {'paired':>7} {'CPU/GB ratio':>12}  traced bytes = sent"]
    for r in rows:
        ratio = f"{r['ratio']:.3f}" if r["ratio"] is not None else "n/a"
        over = f"{r['overhead_pct']:.1f}%" if r["overhead_pct"] is not None else "n/a"
        paired = f"{r['paired_median_ratio']:.3f}" if r.get("paired_median_ratio") is not None else "n/a"
        cpu = f"{r['cpu_per_gb_ratio']:.2f}" if r["cpu_per_gb_ratio"] is not None else "n/a"
        lines.append(f"{r['topology']:<9} {r['msg_size']:>9} {r['untraced_median_gbps']:>9.2f} "
                     f"{r['traced_median_gbps']:>9.2f} {ratio:>6} {over:>9} {r['goal_pct']:>5.0f}% "
                     f"{_VERDICT.get(r.get('verdict'), 'n/a'):>5} {paired:>7} {cpu:>12}  "
                     f"{'yes' if r['traced_bytes_match'] else 'NO'}")
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


if __name__ == "__main__":
    sys.exit(main())
