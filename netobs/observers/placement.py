"""CPU placement (issue 27): each role's worker pinned where the point's `--placement` says
(netobs.placement's plan, given to the worker as `--cpus`), and where its working threads
really ran in the measured window, sampled from the scheduler's own record. Result key:
"placement" ({role: what it asked and where it ran} and the figures across roles).

Per point: `worker_values(role)` is the role's CPU list (`--cpus`; none: not pinned); `attach`
starts a sampling thread on the roles' workers here; `end` stops it; `collect` keeps the
samples inside the measured window (CLOCK_MONOTONIC, the workers' clock: it ends with the
server's last byte and lasts the client's window, or the point's duration at a remote end;
a client whose server is on another host: every sample, the window unknown here).

At a fixed rate (`HZ`) the sampler reads, for each working thread, the `processor` field of
/proc/<pid>/task/<tid>/stat (the CPU the thread is running on, or last ran on), and at a
tenth of that rate its `se.nr_migrations` (/proc/<pid>/task/<tid>/sched) and the NET_RX row
of /proc/softirqs (per CPU, host-wide). No BPF, so it works wherever /proc does, a remote end
without root included; its cost is a few reads per thread per sample. A sample is a point in
time: a thread that ran on two CPUs between two samples is seen on one of them, and its
migrations (the scheduler's count) are the exact figure.

A worker process's working threads are the C threads (sending threads of the client, one
receiving thread per connection of the server): every thread of the process except its main
thread and the one Python thread that runs the C call (netobs.native's `_Call`), the first two
to start.

A remote end walks the same registry: its server is pinned by the plan made there (a remote
server is pinned only with `--placement explicit --server-cpus`) and sampled there; `merge`
puts its server entry beside the client's, and its host's receive softirqs are the server's.
"""
from __future__ import annotations

import os
import threading
import time
from collections import Counter

from netobs import placement
from netobs.figures import ROLES
from netobs.observers import Observer
from netobs.procfs import PROC

HZ = 100.0
SLOW_EVERY = 10   # migrations and softirqs: every 10th sample
PYTHON_THREADS = 2   # the worker's main thread and its C-call thread come before the C threads
SOURCE = f"/proc/<pid>/task/<tid>/stat processor at {HZ:g} Hz; se.nr_migrations; /proc/softirqs NET_RX"
# the figures across roles (netobs.figures' place_* worker columns): measured only where both
# roles (shared CPU, softirqs on the client's CPUs) or the server (its host's softirqs) are here
ACROSS = ("shared_cpu_share", "rx_softirq_cpu", "rx_softirq_on_client", "rx_softirqs")


class Placement(Observer):
    name = "placement"
    keys = ("placement",)

    @classmethod
    def wanted(cls, spec, role: str) -> bool:
        return True   # every point: pinned as asked (or not: none), and where it ran recorded

    def begin(self, files) -> None:
        self.plan = placement.of_spec(self.point)   # (checked against this host when the spec was made)
        self.sampler = Sampler()

    def worker_values(self, role: str) -> dict:
        return {"cpus": self.plan.cpus(role) or None}

    def attach(self, pids: dict[str, int], wrapped=()) -> None:
        self.sampler.start({r: p for r, p in pids.items() if r in self.roles},
                           wrappers=tuple(r for r in wrapped if r in self.roles))

    def end(self) -> None:
        self.sampler.halt()

    def cleanup(self) -> None:
        sampler = getattr(self, "sampler", None)
        if sampler is not None:
            sampler.halt()

    def collect(self, reports: dict[str, dict], files) -> dict:
        window = _window(reports, self.point, self.roles)
        got = figures(self.sampler.samples, self.sampler.slow, window,
                      {r: self.plan.cpus(r) for r in self.roles}, self.roles, self.sampler.hz)
        for role in self.roles:
            got[role]["sharing"] = self.plan.sharing(role, self.point.threads)
        return {"placement": got}

    @classmethod
    def merge(cls, mine: dict, theirs: dict | None, why: str | None, files=None) -> dict:
        """The client's entry here, the server's from the other end (its host's receive
        softirqs are the server's receive path); two hosts never share a CPU: not measured."""
        out = dict(mine)
        here = dict(mine.get("placement") or {})
        far = (theirs or {}).get("placement") or {}
        for role in ROLES:
            if role not in here:
                here[role] = far.get(role) or {"missing": why or "the remote side recorded no placement"}
        for key in ACROSS:
            if here.get(key) is None and far.get(key) is not None:
                here[key] = far[key]
        out["placement"] = here
        return out


def _window(reports: dict, point, roles) -> tuple[float, float] | None:
    """The measured window on this host's CLOCK_MONOTONIC: it ends with the server's last byte
    (the client stops sending when it closes) and lasts the client's window_s (a remote end:
    the point's duration). None where the server's clock is another host's or no byte came."""
    if "server" not in roles:
        return None
    end = (reports.get("server") or {}).get("last_byte_s")
    span = (reports.get("client") or {}).get("window_s") if "client" in roles else point.duration
    return (end - span, end) if end and span else None


# ---- sampling ---------------------------------------------------------------------------------

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


class Sampler:
    """Samples where the working threads of each role run; one point at a time. Until
    `start`, and after a `halt` before it, there are no samples (every figure missing)."""

    def __init__(self, hz: float = HZ):
        self.hz = hz
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.samples: list[tuple[float, dict[str, dict[int, int]]]] = []
        self.slow: list[tuple[float, dict[str, dict[int, int]], list[int] | None]] = []

    def start(self, pids: dict[str, int], wrappers=()) -> None:
        """Sample the workers of `pids` (role -> PID). `wrappers`: roles whose PID is a wrapper
        (perf stat) whose child is the worker."""
        self._pids = dict(pids)
        self._worker: dict[str, int | None] = {r: (None if r in wrappers else p) for r, p in self._pids.items()}
        self._threads: dict[str, list[int]] = {r: [] for r in self._pids}
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="netobs-placement", daemon=True)
        self._thread.start()

    def halt(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

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
            self._threads[role] = known = ordered[PYTHON_THREADS:]
        return known

    def _loop(self) -> None:
        period, n = 1.0 / self.hz, 0
        next_at = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            cpus: dict[str, dict[int, int]] = {}
            for role in self._pids:
                pid = self._resolve(role)
                seen = {}
                for tid in self._working(role):
                    cpu = _processor(pid, tid) if pid else None
                    if cpu is not None:
                        seen[tid] = cpu
                cpus[role] = seen
            self.samples.append((now, cpus))
            if n % SLOW_EVERY == 0:
                moves = {role: {t: m for t in self._threads[role]
                                if (m := _migrations(self._worker[role], t)) is not None}
                         for role in self._pids if self._worker.get(role)}
                self.slow.append((now, moves, net_rx()))
            n += 1
            next_at += period
            self._stop.wait(max(0.0, next_at - time.monotonic()))


# ---- the figures (pure: tests give them samples) ------------------------------------------------

def _in(t: float, window) -> bool:
    return window is None or window[0] <= t <= window[1]


def figures(samples, slow, window, asked: dict, roles=ROLES, hz: float = HZ) -> dict:
    """The placement figures of the samples inside `window`: an entry per role of `roles` and,
    where the roles here allow, the figures across them (module doc; None: not measured)."""
    inside = [(t, c) for t, c in samples if _in(t, window)]
    out: dict = {"source": SOURCE, "hz": hz}
    for role in roles:
        seen = Counter(cpu for _, c in inside for cpu in c.get(role, {}).values())
        total = sum(seen.values())
        want = tuple(asked.get(role) or ())
        out[role] = {"asked": placement.list_text(want) or None,
                     "cpus": ",".join(map(str, sorted(seen))) or None,
                     "threads": len({t for _, c in inside for t in c.get(role, {})}),
                     "cpu_shares": {str(k): v / total for k, v in sorted(seen.items())} if total else {},
                     "on_asked": (sum(v for k, v in seen.items() if k in set(want)) / total) if (want and total) else None,
                     "migrations": _migrations_in(slow, role, window),
                     "samples": sum(1 for _, c in inside if c.get(role)),
                     "window": list(window) if window else None}
    both = set(ROLES) <= set(roles)
    together = [c for _, c in inside if c.get("client") and c.get("server")]
    out["shared_cpu_share"] = ((sum(1 for c in together if set(c["client"].values()) & set(c["server"].values()))
                                / len(together)) if (both and together) else None)
    client_cpus = {cpu for _, c in inside for cpu in c.get("client", {}).values()} if both else set()
    out.update(_softirq(slow, window, client_cpus, both) if "server" in roles else
               {"rx_softirq_cpu": None, "rx_softirq_on_client": None, "rx_softirqs": None})
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


def _softirq(slow, window, client_cpus, client_here: bool) -> dict:
    rows = [s for t, _, s in slow if _in(t, window) and s is not None]
    if len(rows) < 2:
        return {"rx_softirq_cpu": None, "rx_softirq_on_client": None, "rx_softirqs": None}
    delta = [b - a for a, b in zip(rows[0], rows[-1])]
    total = sum(delta)
    if total <= 0:
        return {"rx_softirq_cpu": None, "rx_softirq_on_client": None, "rx_softirqs": delta}
    return {"rx_softirq_cpu": max(range(len(delta)), key=delta.__getitem__),
            "rx_softirq_on_client": (sum(delta[c] for c in client_cpus if c < len(delta)) / total
                                     if client_here else None),
            "rx_softirqs": delta}
