"""Where a point's working threads really ran: sampled from the scheduler's own record.

`Recorder.start(pids)` (role -> the PID netobs started: the worker, or the `perf stat` that
wraps it) starts a sampling thread; `Recorder.stop(window)` ends it and returns the figures
(`netobs.figures`: `place_*` columns) of the samples inside the measured window (CLOCK_MONOTONIC
seconds, the workers' clock; None: every sample).

At a fixed rate (`HZ`) it reads, for each working thread, the `processor` field of
/proc/<pid>/task/<tid>/stat (the CPU the thread is running on, or last ran on), and at a
tenth of that rate its `se.nr_migrations` (/proc/<pid>/task/<tid>/sched) and the NET_RX row of
/proc/softirqs (per CPU, host-wide). This needs no BPF, so it works wherever /proc does; its
cost is a few reads per thread per sample. A sample is a point in time: a thread that ran on
two CPUs between two samples is seen on one of them, and its migrations (the scheduler's
count) are the exact figure.

A worker process's working threads are the C threads (sending threads of the client, one
receiving thread per connection of the server): every thread of the process except its main
thread and the one Python thread that runs the C call (netobs.native's `_Call`), the first two
to start.
"""
from __future__ import annotations

import os
import threading
import time
from collections import Counter

from netobs.procfs import PROC

HZ = 100.0
SLOW_EVERY = 10   # migrations and softirqs: every 10th sample
PYTHON_THREADS = 2   # the worker's main thread and its C-call thread come before the C threads
SOURCE = f"/proc/<pid>/task/<tid>/stat processor at {HZ:g} Hz; se.nr_migrations; /proc/softirqs NET_RX"


def _stat_fields(path: str) -> list[bytes] | None:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return raw[raw.rindex(b")") + 2:].split()


def _processor(pid: int, tid: int) -> int | None:
    rest = _stat_fields(f"{PROC}/{pid}/task/{tid}/stat")
    # proc(5): field 39 is processor; `rest` starts at field 3 (state)
    return int(rest[36]) if rest and len(rest) > 36 else None


def _start_key(pid: int, tid: int) -> tuple[int, int]:
    rest = _stat_fields(f"{PROC}/{pid}/task/{tid}/stat")
    return (int(rest[19]) if rest and len(rest) > 19 else 1 << 62, tid)   # field 22: starttime


def _migrations(pid: int, tid: int) -> int | None:
    try:
        with open(f"{PROC}/{pid}/task/{tid}/sched") as f:
            for line in f:
                if line.startswith("se.nr_migrations"):
                    return int(line.split(":")[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def net_rx() -> list[int] | None:
    """NET_RX softirqs per CPU since boot (/proc/softirqs), or None."""
    try:
        with open(f"{PROC}/softirqs") as f:
            for line in f:
                name, _, counts = line.partition(":")
                if name.strip() == "NET_RX":
                    return [int(c) for c in counts.split()]
    except (OSError, ValueError):
        return None
    return None


def _children(pid: int) -> list[int]:
    try:
        with open(f"{PROC}/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except (OSError, ValueError):
        return []


class Recorder:
    """Samples where the working threads of each role run; one point at a time."""

    def __init__(self, hz: float = HZ):
        self.hz = hz
        self._thread: threading.Thread | None = None
        self._halt = threading.Event()
        self._samples: list = []   # (stop() before start(): no samples, every figure missing)
        self._slow: list = []
        self._asked: dict = {}

    # -- the interface ------------------------------------------------------------------
    def start(self, pids: dict[str, int], wrappers=(), asked: dict | None = None) -> None:
        """Start sampling the workers of `pids` (role -> PID). `wrappers`: roles whose PID is a
        wrapper (perf stat) whose child is the worker. `asked`: role -> the CPUs asked (or ())."""
        self._pids, self._wrappers, self._asked = dict(pids), set(wrappers), dict(asked or {})
        self._worker: dict[str, int | None] = {r: (None if r in self._wrappers else p) for r, p in self._pids.items()}
        self._threads: dict[str, list[int]] = {r: [] for r in self._pids}
        self._samples: list[tuple[float, dict[str, dict[int, int]]]] = []
        self._slow: list[tuple[float, dict[str, dict[int, int]], list[int] | None]] = []
        self._halt.clear()
        self._thread = threading.Thread(target=self._loop, name="netobs-placement", daemon=True)
        self._thread.start()

    def stop(self, window: tuple[float, float] | None = None) -> dict:
        """End sampling; the figures of the samples inside `window` (DESIGN.md, "placement")."""
        if self._thread is not None:
            self._halt.set()
            self._thread.join()
            self._thread = None
        return figures(self._samples, self._slow, window, self._asked, self.hz)

    # -- sampling -------------------------------------------------------------------------
    def _resolve(self, role: str) -> int | None:
        if self._worker[role] is None:
            kids = _children(self._pids[role])
            self._worker[role] = kids[0] if kids else None
        return self._worker[role]

    def _working(self, role: str) -> list[int]:
        pid = self._resolve(role)
        if pid is None:
            return []
        try:
            tids = [int(t) for t in os.listdir(f"{PROC}/{pid}/task")]
        except OSError:
            return self._threads[role]
        known = self._threads[role]
        if len(tids) > len(known) + PYTHON_THREADS:   # new threads: the C threads, after the first two
            ordered = sorted(tids, key=lambda t: _start_key(pid, t))
            self._threads[role] = known = [t for t in ordered[PYTHON_THREADS:]]
        return known

    def _loop(self) -> None:
        period, n = 1.0 / self.hz, 0
        next_at = time.monotonic()
        while not self._halt.is_set():
            now = time.monotonic()
            cpus: dict[str, dict[int, int]] = {}
            for role in self._pids:
                pid = self._worker.get(role) or self._resolve(role)
                seen = {}
                for tid in self._working(role):
                    cpu = _processor(pid, tid) if pid else None
                    if cpu is not None:
                        seen[tid] = cpu
                cpus[role] = seen
            self._samples.append((now, cpus))
            if n % SLOW_EVERY == 0:
                moves = {role: {t: m for t in self._threads[role]
                                if (m := _migrations(self._worker[role], t)) is not None}
                         for role in self._pids if self._worker.get(role)}
                self._slow.append((now, moves, net_rx()))
            n += 1
            next_at += period
            self._halt.wait(max(0.0, next_at - time.monotonic()))


def _in(t: float, window) -> bool:
    return window is None or window[0] <= t <= window[1]


def figures(samples, slow, window, asked: dict, hz: float = HZ) -> dict:
    """The placement figures of the samples inside `window` (pure: tests give it samples)."""
    inside = [(t, c) for t, c in samples if _in(t, window)]
    roles = sorted({r for _, c in samples for r in c})
    out: dict = {"source": SOURCE, "hz": hz, "samples": len(inside),
                 "window": list(window) if window else None, "roles": {}}
    for role in roles:
        seen = Counter(cpu for _, c in inside for cpu in c.get(role, {}).values())
        total = sum(seen.values())
        want = set(asked.get(role) or ())
        entry = {"cpus": ",".join(map(str, sorted(seen))), "threads": len({t for _, c in inside for t in c.get(role, {})}),
                 "cpu_shares": {str(k): v / total for k, v in sorted(seen.items())} if total else {},
                 "on_asked": (sum(v for k, v in seen.items() if k in want) / total) if (want and total) else None,
                 "migrations": _migrations_in(slow, role, window)}
        out["roles"][role] = entry
    both = [c for _, c in inside if c.get("client") and c.get("server")]
    out["shared_cpu_share"] = (sum(1 for c in both if set(c["client"].values()) & set(c["server"].values()))
                               / len(both)) if both else None
    client_cpus = {cpu for _, c in inside for cpu in c.get("client", {}).values()}
    out.update(_softirq(slow, window, client_cpus))
    return out


def _migrations_in(slow, role: str, window) -> int | None:
    rows = [m.get(role, {}) for t, m, _ in slow if _in(t, window)]
    if len(rows) < 2:
        return None
    first, last = {}, {}
    for row in rows:
        for tid, v in row.items():
            first.setdefault(tid, v)
            last[tid] = v
    return sum(last[t] - first[t] for t in last)


def _softirq(slow, window, client_cpus) -> dict:
    rows = [s for t, _, s in slow if _in(t, window) and s is not None]
    if len(rows) < 2:
        return {"rx_softirq_cpu": None, "rx_softirq_on_client": None, "rx_softirqs": None}
    delta = [b - a for a, b in zip(rows[0], rows[-1])]
    total = sum(delta)
    if total <= 0:
        return {"rx_softirq_cpu": None, "rx_softirq_on_client": None, "rx_softirqs": delta}
    return {"rx_softirq_cpu": max(range(len(delta)), key=delta.__getitem__),
            "rx_softirq_on_client": sum(delta[c] for c in client_cpus if c < len(delta)) / total,
            "rx_softirqs": delta}
