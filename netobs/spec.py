"""What to measure: one point (RunSpec) or the study's matrix (SweepSpec).

Everything is validated here, before anything on the system changes.
"""
from __future__ import annotations

import itertools
import random
from dataclasses import asdict, dataclass, field, replace

from netobs.errors import UsageError

IMPLS = ("two_copy", "one_copy", "zero_copy")
TOPOLOGIES = ("netns", "loopback")
ORDERS = ("sequential", "interleaved", "random")
DEFAULT_SUBNET = "10.0.0.0/24"  # the study's: server 10.0.0.1, client 10.0.0.2

# The study's matrix.
STUDY_SIZES = (1024, 4096, 16384, 65536)
STUDY_THREADS = (1, 2, 4, 8)
STUDY_DURATION = 10.0
# Per point before the measured window. Short: on veth/loopback TCP reaches steady state in
# milliseconds, and 48 long warm-ups would dominate a sweep's overhead beyond its windows.
SWEEP_WARMUP = 0.25

MIN_MSG, MAX_MSG = 8, 64 << 20
MAX_THREADS = 256
MAX_DURATION = 3600.0


def _check_impl(impl: str) -> str:
    if impl not in IMPLS:
        raise UsageError(f"unknown strategy '{impl}'", fix=f"one of {', '.join(IMPLS)}")
    return impl


def _check_size(size: int) -> int:
    if not MIN_MSG <= size <= MAX_MSG:
        raise UsageError(f"message size {size} is out of range",
                         fix=f"a size between {MIN_MSG} and {MAX_MSG} bytes (64 MiB)")
    return size


def _check_threads(threads: int) -> int:
    if not 1 <= threads <= MAX_THREADS:
        raise UsageError(f"thread count {threads} is out of range", fix=f"1 to {MAX_THREADS} threads")
    return threads


@dataclass(frozen=True)
class RunSpec:
    """One experiment: a strategy, a message size, a thread count, timing and how to observe."""

    impl: str
    msg_size: int
    threads: int
    duration: float = 2.0
    warmup: float = 0.5
    repeat: int = 0
    topology: str = "netns"
    port: int = 0  # 0: the server takes a free one and tells the client
    recv_copy: bool = False
    verify: bool = False
    perf: bool = True
    perf_server: bool = False
    trace: bool = False

    def __post_init__(self):
        _check_impl(self.impl)
        _check_size(self.msg_size)
        _check_threads(self.threads)
        if not 0 < self.duration <= MAX_DURATION:
            raise UsageError(f"duration {self.duration:g} s is out of range", fix=f"a duration in (0, {MAX_DURATION:g}] seconds")
        if not 0 <= self.warmup <= MAX_DURATION:
            raise UsageError(f"warm-up {self.warmup:g} s is out of range", fix="a warm-up of 0 or more seconds")
        if self.topology not in TOPOLOGIES:
            raise UsageError(f"unknown topology '{self.topology}'", fix=f"one of {', '.join(TOPOLOGIES)}")
        if not 0 <= self.port <= 65535:
            raise UsageError(f"port {self.port} is out of range", fix="a port between 1 and 65535 (0 picks a free one)")

    @property
    def key(self) -> tuple:
        """(impl, msg_size, threads, repeat): a point's identity in the results store."""
        return (self.impl, self.msg_size, self.threads, self.repeat)

    @property
    def point_id(self) -> str:
        return f"{self.impl}-{self.msg_size}-{self.threads}-r{self.repeat}"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SweepSpec:
    """The matrix: strategies × sizes × thread counts × repeats, in a chosen order."""

    impls: tuple[str, ...] = IMPLS
    sizes: tuple[int, ...] = STUDY_SIZES
    threads: tuple[int, ...] = STUDY_THREADS
    repeats: int = 1
    order: str = "sequential"
    seed: int = 0
    subnet: str = DEFAULT_SUBNET
    mtu: int | None = None
    base: RunSpec = field(default_factory=lambda: RunSpec("two_copy", 1024, 1, duration=STUDY_DURATION, warmup=SWEEP_WARMUP))

    def __post_init__(self):
        for name, values in (("strategies", self.impls), ("sizes", self.sizes), ("thread counts", self.threads)):
            if not values:
                raise UsageError(f"no {name} given", fix="at least one value")
            if len(set(values)) != len(values):
                raise UsageError(f"duplicate {name} in {','.join(map(str, values))}", fix="each value once")
        for impl in self.impls:
            _check_impl(impl)
        for size in self.sizes:
            _check_size(size)
        for t in self.threads:
            _check_threads(t)
        if not 1 <= self.repeats <= 100:
            raise UsageError(f"repeats {self.repeats} is out of range", fix="1 to 100 repeats")
        if self.order not in ORDERS:
            raise UsageError(f"unknown order '{self.order}'", fix=f"one of {', '.join(ORDERS)}")

    def points(self) -> list[RunSpec]:
        """Every point of the matrix, in the order they will run.

        sequential:  repeat-major, then impl, size, threads (the study's loops);
        interleaved: for each (size, threads) the strategies run back to back, repeat after
                     repeat, so slow drift hits every strategy alike;
        random:      a seeded shuffle (reproducible from the manifest's seed).
        """
        combos = list(itertools.product(self.sizes, self.threads))
        if self.order == "interleaved":
            keys = [(r, s, t, i) for s, t in combos for r in range(self.repeats) for i in self.impls]
        else:
            keys = [(r, s, t, i) for r in range(self.repeats) for i in self.impls for s, t in combos]
        if self.order == "random":
            random.Random(self.seed).shuffle(keys)
        return [replace(self.base, impl=i, msg_size=s, threads=t, repeat=r) for r, s, t, i in keys]

    def to_dict(self) -> dict:
        """Everything that shapes the sweep's numbers: stored in the manifest, and what a
        --resume must match (options not typed again are taken from it)."""
        b = self.base
        return {
            "impls": list(self.impls), "sizes": list(self.sizes), "threads": list(self.threads),
            "repeats": self.repeats, "order": self.order, "seed": self.seed,
            "duration": b.duration, "warmup": b.warmup, "topology": b.topology, "subnet": self.subnet,
            "mtu": self.mtu, "recv_copy": b.recv_copy, "perf": b.perf, "perf_server": b.perf_server,
            "trace": b.trace,
        }


def parse_list(text: str, kind=str, what: str = "value") -> tuple:
    """'1024,4096' -> (1024, 4096), with a clear error for a bad item."""
    items = [x.strip() for x in text.split(",") if x.strip()]
    out = []
    for item in items:
        try:
            out.append(kind(item))
        except ValueError:
            raise UsageError(f"bad {what} '{item}'", fix=f"a comma-separated list, e.g. {'1024,4096' if kind is int else 'two_copy,one_copy'}") from None
    return tuple(out)


_SUFFIX = {"k": 1 << 10, "m": 1 << 20}


def parse_size(text: str) -> int:
    """'65536', '64K', '1M' -> bytes."""
    t = str(text).strip().lower().removesuffix("b").removesuffix("i")
    mult = _SUFFIX.get(t[-1:], 1)
    digits = t[:-1] if mult != 1 else t
    try:
        return int(digits) * mult
    except ValueError:
        raise UsageError(f"bad message size '{text}'", fix="bytes, e.g. 65536 or 64K") from None
