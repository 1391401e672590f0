"""A stand-in for the client worker under `perf stat --control` (used by tests/test_perf.py).

    python tests/perf_target.py --perf-ctl CTL --perf-ack ACK [--warmup 1.0] [--window 0.3] [--tail 0.5]

Busy-loops `--warmup` seconds of CPU time, enables perf's counters (waiting for the ack),
busy-loops `--window` seconds of CPU time, disables them (ack), busy-loops `--tail`, and prints
one JSON object: {"window_s": wall-clock time between the two acks, "window_cpu_s": ...}.
The loops spend CPU time, not wall time, so a loaded machine cannot shrink the counted window.
`--no-enable` never enables the counters.
"""
import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from netobs.perf import PerfControl  # noqa: E402


def burn(cpu_s: float) -> None:
    end = time.thread_time() + cpu_s
    x = 0
    while time.thread_time() < end:
        for i in range(1000):
            x += i


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--perf-ctl", required=True)
    ap.add_argument("--perf-ack", required=True)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--window", type=float, default=0.3)
    ap.add_argument("--tail", type=float, default=0.5)
    ap.add_argument("--no-enable", action="store_true")
    args = ap.parse_args()
    with PerfControl(args.perf_ctl, args.perf_ack, timeout=10) as ctl:
        burn(args.warmup)
        if args.no_enable:
            burn(args.window)
        else:
            ctl.enable()
            t0 = time.thread_time()
            burn(args.window)
            cpu = time.thread_time() - t0
            ctl.disable()
        burn(args.tail)
    print(json.dumps({"window_s": ctl.window_s, "window_cpu_s": None if args.no_enable else cpu}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
