"""Is netobs's sender as fast as the tools people trust? And the strategies against each other.

On loopback (and, for the cells against iperf3, also between two namespaces over veth, as a
netobs run measures by default), one thread, 65536-byte messages, equal warm-up and duration for every run, each
comparison runs its two variants interleaved A B A B ... (`repeats` each) so drift on a
shared machine hits both alike, then reports medians and the ratio A/B:

- netobs `one_copy` vs `iperf3 -l 64K` (both do only the user->kernel copy)
- netobs `two_copy` vs netobs `one_copy` (the extra user-space serialization copy)
- netobs `zero_copy` vs netobs `one_copy` (page pinning + completions; copied anyway on loopback)
- each sender beyond the study's (io_uring, io_uring_zc, sendfile, splice) vs netobs `one_copy`
- netobs `one_copy --fields 1` (one contiguous buffer, the shape iperf3 and neper send) vs
  iperf3 at 1, 16 and 64 KiB on loopback and netns (goal: ratio >= 1 in every cell)
- netobs `zero_copy --fields 1` vs a reference MSG_ZEROCOPY sender that reuses one buffer
  without waiting for its completions (as neper -Z does): the same worker with one buffer and
  `--unsafe-reuse` (never waits, drains only on ENOBUFS). Goal: ratio >= 0.9 while netobs
  never reuses a pending buffer.

Every cell runs pinned (issue 27: unpinned, where the kernel puts the two ends moves a result by
up to 3x on a small host): `split` by default (client and server on two sets of CPUs, as
`netobs run` places them), `same` where a cell says so; netobs's workers get the placement's
`--cpus`, iperf3 the same CPUs with `-A` (its client's first CPU, its server's first CPU; iperf3
3.x is one thread per process). The cells against iperf3 also run both tools unpinned, the same
number of interleaved repeats, so each tool's unpinned spread is printed beside the pinned one.
neper (its `--pin-cpu`) is run where it is installed; it is not on Debian 12.

A comparison is data (`Comparison(name, a, b, note, topology)` with two `Variant`s that each
measure one run in a netobs topology: its processes spawned by `topology.spawn(role, ...)`, the
server on `topology.server_addr`; each topology is opened once for its comparisons).
"""
from __future__ import annotations

import json
import os
import select
import shutil
import socket
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from netobs import placement, strategies
from netobs.errors import CapabilityError, NetobsError
from netobs.params import PARAMS
from netobs.runner import WORKER

HOST = "127.0.0.1"
TOPOLOGIES = ("loopback", "netns")
START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Settings:
    msg_size: int = 65536
    threads: int = 1
    duration: float = 3.0
    warmup: float = 1.0
    repeats: int = 3
    placement: str = placement.DEFAULT   # each cell's, unless the cell names its own


@dataclass
class Sample:
    gbps: float
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Variant:
    name: str
    measure: Callable[[Settings, object], Sample]   # (settings, an open netobs topology)


@dataclass(frozen=True)
class Comparison:
    name: str
    a: Variant
    b: Variant
    note: str = ""
    topology: str = "loopback"
    placement: str | None = None   # None: the settings' placement
    unpinned: bool = False         # also run both variants unpinned (their spread is printed beside)


# ----------------------------------------------------------------------------- variants

def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _wait_line(proc: subprocess.Popen, prefix: str, what: str) -> str:
    """The first line of `proc`'s stdout that starts with `prefix` (its readiness signal), within
    START_TIMEOUT_S; NetobsError when it exits or stays silent."""
    deadline = time.monotonic() + START_TIMEOUT_S
    fd = proc.stdout.fileno()
    buf = ""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            chunk = os.read(fd, 4096).decode(errors="replace")
            if not chunk:
                break
            buf += chunk
            for line in buf.splitlines():
                if line.startswith(prefix):
                    return line
        elif proc.poll() is not None:
            break
    if proc.poll() is not None:
        raise NetobsError(f"{what} exited before listening", _tail(proc),
                          "`netobs doctor`, then the same command by hand (`make setup` installs iperf3)")
    raise NetobsError(f"{what} did not start listening", f"no '{prefix}' in {START_TIMEOUT_S:g} s",
                      "a quieter host, or the same command by hand to see why it stalls")


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


def netobs_variant(strategy: str, msg_size: int | None = None, label: str | None = None, **params) -> Variant:
    """One netobs run as the tool runs it: a `serve` and a `send` worker process (their command
    lines from the parameter table, as the runner makes them). `msg_size` overrides the
    settings'; `params`: more client worker parameters (fields=1, zc_pool=1, ...)."""

    def measure(st: Settings, topo) -> Sample:
        size = msg_size or st.msg_size
        rfd, wfd = os.pipe()
        plan = placement.plan(st.placement)
        server_argv = WORKER + PARAMS.worker_argv("server", {
            "bind": topo.server_addr, "port": 0, "connections": st.threads, "timeout": st.warmup + st.duration + 30,
            "ready_fd": wfd, "cpus": plan.server})
        try:
            server = topo.spawn("server", server_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                pass_fds=(wfd,))
        finally:
            os.close(wfd)
        try:
            with os.fdopen(rfd) as r:
                line = r.readline()  # `ready <port>`: the server is listening
            if not line.startswith("ready "):
                server.wait(timeout=5)
                raise NetobsError("the netobs server did not start", _tail(server))
            client_argv = WORKER + PARAMS.worker_argv("client", {
                "host": topo.server_addr, "port": int(line.split()[1]), "strategy": strategy, "msg_size": size,
                "threads": st.threads, "duration": st.duration, "warmup": st.warmup, "cpus": plan.client, **params})
            client = _run(topo, client_argv, st.warmup + st.duration + 60, f"netobs {strategy}")
            if client.returncode != 0:
                raise NetobsError(f"netobs {strategy} failed", (client.stderr.strip().splitlines() or ["?"])[-1])
            out, _ = server.communicate(timeout=15)
        finally:
            _stop(server)
        c, s = json.loads(client.stdout), json.loads(out)
        cpu = c["cpu"]["user_s"] + c["cpu"]["sys_s"]
        gb = c["bytes_sent"] / 1e9
        zc = c.get("zerocopy") or {}
        return Sample(c["throughput_gbps"], {"cpu_s_per_gb": cpu / gb if gb else None,
                                             "receiver_gbps": s.get("goodput_gbps"),
                                             "latency_p50_us": (c.get("latency_us") or {}).get("p50"),
                                             "zc_pool_waits": zc.get("pool_waits"),
                                             "zc_empty_reads": zc.get("empty_reads")})

    extra = "".join(f" --{k.replace('_', '-')}" + ("" if v is True else f" {v}") for k, v in params.items())
    size_words = f" {msg_size // 1024}K" if msg_size else ""
    return Variant(label or f"netobs {strategy}{extra}{size_words}", measure)


def iperf3_variant(msg_size: int | None = None) -> Variant:
    """`iperf3 -l 64K` with the same warm-up (-O, whole seconds in iperf3 3.x) and duration."""

    def measure(st: Settings, topo) -> Sample:
        size = msg_size or st.msg_size
        exe = shutil.which("iperf3")
        if exe is None:
            raise CapabilityError("iperf3 is not installed", fix="`make setup` (installs Debian's iperf3)")
        port = _free_port()   # free here; a fresh namespace has every port free
        addr = topo.server_addr
        plan = placement.plan(st.placement)   # iperf3 -A: the process (one thread) on the role's first CPU
        pin = {r: ["-A", str(plan.cpus(r)[0])] if plan.cpus(r) else [] for r in ("client", "server")}
        server = topo.spawn("server", [exe, "-s", "-1", "-B", addr, "-p", str(port), "--forceflush", *pin["server"]],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            _wait_line(server, "Server listening on", "iperf3 -s")
            length = f"{size // 1024}K" if size % 1024 == 0 else str(size)
            r = _run(topo, [exe, "-c", addr, "-p", str(port), "-l", length, "-P", str(st.threads), *pin["client"],
                            "-t", str(max(1, round(st.duration))), "-O", str(max(0, round(st.warmup))), "-J"],
                     st.warmup + st.duration + 60, "iperf3")
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

    return Variant(f"iperf3 -l {msg_size // 1024}K" if msg_size else "iperf3", measure)


def _run(topo, argv: list[str], timeout: float, what: str) -> subprocess.CompletedProcess:
    """Run `argv` as the client of `topo` to its end (text output captured), bounded in time."""
    proc = topo.spawn("client", argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(proc)
        raise NetobsError(f"{what} did not finish", f"still running {timeout:g} s later",
                          "a quieter host or a shorter --duration") from None
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


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
    # every other sender against one_copy, what it does from the strategies table
    *(Comparison(f"{s.name} vs one_copy", netobs_variant(s.name), netobs_variant("one_copy"), s.how)
      for s in strategies.STRATEGIES if s.name != "one_copy"),
    *(Comparison(f"one_copy f1/iperf3 {k}K" + ("" if topo == "loopback" else f" {topo}")
                 + ("" if where == placement.DEFAULT else f" {where}"),
                 netobs_variant("one_copy", msg_size=k << 10, fields=1, label=f"one_copy -f1 {k}K"),
                 iperf3_variant(k << 10), f"one contiguous buffer, iperf3's shape, on {topo}, placement {where} "
                 "(iperf3 -A on the same CPUs); goal: ratio >= 1",
                 topology=topo, placement=where, unpinned=where == placement.DEFAULT)
      for topo in TOPOLOGIES for where in (placement.DEFAULT, "same") for k in (1, 16, 64)),
    Comparison("zero_copy f1 vs ref", netobs_variant("zero_copy", fields=1, label="zero_copy -f1"),
               netobs_variant("zero_copy", fields=1, zc_pool=1, unsafe_reuse=True, label="ref zc, 1 buffer"),
               "the reference reuses one buffer without waiting (neper -Z); netobs never reuses a pending "
               "buffer; goal: ratio >= 0.9"),
]


# ----------------------------------------------------------------------------- running

def _interleaved(cmp: Comparison, st: Settings, topo, progress, tag: str = "") -> dict[str, list[Sample]]:
    samples: dict[str, list[Sample]] = {"a": [], "b": []}
    for i in range(st.repeats):
        for key, var in (("a", cmp.a), ("b", cmp.b)):
            if progress:
                progress(f"{cmp.name}{tag}: {var.name} run {i + 1}/{st.repeats}")
            samples[key].append(var.measure(st, topo))
    return samples


def _spread(samples: list[Sample]) -> float | None:
    med = statistics.median(s.gbps for s in samples)
    return (max(s.gbps for s in samples) - min(s.gbps for s in samples)) / med if med else None


def run_comparison(cmp: Comparison, st: Settings, topo, progress: Callable[[str], None] | None = None) -> dict:
    """Interleave A B A B ... in the open topology `topo` at the cell's placement; medians, ratio
    A/B and every sample; for a cell marked `unpinned`, both variants again unpinned (spreads)."""
    st = replace(st, placement=cmp.placement or st.placement)
    samples = _interleaved(cmp, st, topo, progress)
    med = {k: statistics.median(s.gbps for s in v) for k, v in samples.items()}
    spread = {k: _spread(v) for k, v in samples.items()}
    free = None
    if cmp.unpinned and st.placement != "none":
        loose = _interleaved(cmp, replace(st, placement="none"), topo, progress, " unpinned")
        free = {f"{k}_{what}": fn(v) for k, v in loose.items()
                for what, fn in (("spread", _spread), ("median_gbps", lambda v: statistics.median(s.gbps for s in v)))}
        free.update({f"{k}_samples": [s.gbps for s in v] for k, v in loose.items()})
    return {
        "name": cmp.name, "note": cmp.note, "a": cmp.a.name, "b": cmp.b.name, "topology": cmp.topology,
        "placement": st.placement, "unpinned": free,
        "a_median_gbps": med["a"], "b_median_gbps": med["b"],
        "ratio": med["a"] / med["b"] if med["b"] else None,
        "a_spread": spread["a"], "b_spread": spread["b"],
        "a_samples": [{"gbps": s.gbps, **s.details} for s in samples["a"]],
        "b_samples": [{"gbps": s.gbps, **s.details} for s in samples["b"]],
    }


def neper() -> str | None:
    """Where neper is, or None (it is not packaged for Debian 12: its cells are then not run)."""
    return shutil.which("tcp_stream") or shutil.which("neper")


def run_bench(st: Settings, comparisons: list[Comparison] | None = None,
              progress: Callable[[str], None] | None = None) -> dict:
    from netobs.topology import open_topology

    comps = COMPARISONS if comparisons is None else comparisons
    started = time.time()
    done = {}
    for kind in TOPOLOGIES:   # each topology opened once, set up as a netobs run sets it up
        mine = [c for c in comps if c.topology == kind]
        if mine:
            with open_topology(kind) as topo:
                done.update({c.name: run_comparison(c, st, topo, progress) for c in mine})
    results = [done[c.name] for c in comps]
    return {"settings": {"topologies": sorted({c.topology for c in comps}), "msg_size": st.msg_size, "threads": st.threads,
                         "duration_s": st.duration, "warmup_s": st.warmup, "repeats": st.repeats,
                         "order": "interleaved", "placement": st.placement, "cpus": list(placement.online()),
                         "neper": neper() or "not installed (tcp_stream not on PATH; not packaged for Debian 12): "
                                             "no neper cells"},
            "host": {"kernel": os.uname().release, "cpus": os.cpu_count()},
            "elapsed_s": time.time() - started, "comparisons": results}
