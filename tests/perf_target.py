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
import os
import select
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from netobs.errors import NetobsError  # noqa: E402
from netobs.perf import open_control_fifos  # noqa: E402


class PerfControl:
    """What the target runs: `enable()` when the warm-up ends, `disable()` when the window ends.
    Each writes the command and waits (with a timeout, never forever) for perf's ack.
    Opening never blocks: CTL is opened write-only non-blocking (ENXIO = no perf reads it);
    ACK read-only non-blocking. `window_s` is the time between the two acks."""

    def __init__(self, ctl_path: str | Path, ack_path: str | Path, timeout: float = 10.0):
        self.timeout = timeout
        self.enabled_at: float | None = None
        self.disabled_at: float | None = None
        self._buf = b""
        self._ctl, self._ack = open_control_fifos(str(ctl_path), str(ack_path))

    def _command(self, cmd: str) -> float:
        try:
            os.write(self._ctl, (cmd + "\n").encode())
        except OSError as exc:
            raise NetobsError(f"perf did not take `{cmd}`", f"writing its control fifo: {exc.strerror}") from None
        deadline = time.monotonic() + self.timeout
        poller = select.poll()
        poller.register(self._ack, select.POLLIN)
        while b"ack\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise NetobsError(f"perf did not acknowledge `{cmd}`", f"no ack in {self.timeout:g} s")
            if not poller.poll(left * 1000):
                continue
            try:
                chunk = os.read(self._ack, 64)
            except BlockingIOError:
                continue
            if not chunk:
                raise NetobsError(f"perf did not acknowledge `{cmd}`", "perf closed its ack fifo (it exited)")
            self._buf = (self._buf + chunk).replace(b"\0", b"")  # perf 6.1 sends `ack\n\0`
        self._buf = self._buf.split(b"ack\n", 1)[1]
        return time.monotonic()

    def enable(self) -> float:
        self.enabled_at = self._command("enable")
        return self.enabled_at

    def disable(self) -> float:
        self.disabled_at = self._command("disable")
        return self.disabled_at

    @property
    def window_s(self) -> float | None:
        if self.enabled_at is None or self.disabled_at is None:
            return None
        return self.disabled_at - self.enabled_at

    def close(self) -> None:
        for fd in (self._ctl, self._ack):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


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
