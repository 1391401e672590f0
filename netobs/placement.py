"""Where a point's working threads may run: the placement asked for (`--placement`,
`--client-cpus`, `--server-cpus`) turned into each role's CPU list, in one place.

The lists go to the workers as `--cpus` (the pinning contract of native/netobs_workers.h):
the client's sending thread i runs only on `cpus[i % len(cpus)]`, the server's receiving
thread of the i-th accepted connection only on `cpus[i % len(cpus)]`; an empty list is not
pinned (the kernel's choice). The client connects its threads in order, so connection i is
thread i's and, with `same`, both ends of a connection share one CPU.

- same:     both roles on the same list, every CPU this process may use: the two ends of a
            connection on one CPU (on veth and loopback the receive path then runs in the
            sender's softirq, warm in cache);
- split:    the CPUs cut in two, the client's threads on the first half, the server's on the
            second (every wake-up crosses CPUs: what two hosts would do);
- none:     not pinned: the kernel's choice, which on a small host lands on either of the above
            at random from run to run (issue 27: a 3x effect on throughput);
- explicit: `--client-cpus` / `--server-cpus` as given (a side left out is not pinned).

Every CPU is checked against this host (exists, online, allowed to this process) when the
spec is made, before anything on the system changes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from netobs.errors import UsageError

PLACEMENTS = ("same", "split", "none", "explicit")
# A study needs a controlled placement, and split is the one two hosts would have (client and
# server never share a CPU); `none` is the kernel's choice (README, "CPU placement").
DEFAULT = "split"
MAX_CPUS = 1024   # NOB_MAX_CPUS: CPU ids 0..MAX_CPUS-1
SYS_CPU = "/sys/devices/system/cpu"


def parse_list(text: str) -> tuple[int, ...]:
    """A kernel CPU list ('0-3,6', '1') -> the CPU ids in the order given (ValueError if bad)."""
    out: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        first, last = int(lo), int(hi) if sep else int(lo)
        if first < 0 or last < first:
            raise ValueError(part)
        out.extend(range(first, last + 1))
    return tuple(out)


def list_text(cpus) -> str:
    return ",".join(str(int(c)) for c in cpus)


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def online() -> tuple[int, ...]:
    """The CPUs that are online and that this process may run on, in order."""
    text = _read(f"{SYS_CPU}/online")
    up = set(parse_list(text)) if text else set(range(os.cpu_count() or 1))
    return tuple(sorted(up & os.sched_getaffinity(0)))


def check_cpu(cpu: int, flag: str) -> None:
    """A CPU id this host can pin to, else a one-line UsageError saying why and which it has."""
    usable = online()
    if cpu in usable:
        return
    if not os.path.isdir(f"{SYS_CPU}/cpu{cpu}"):
        why = f"CPU {cpu} does not exist"
    elif cpu not in set(parse_list(_read(f"{SYS_CPU}/online") or "")):
        why = f"CPU {cpu} is offline"
    else:
        why = f"CPU {cpu} is not allowed to this process (its cpuset or affinity)"
    raise UsageError(f"cannot pin to {flag} {cpu}", why, f"{flag} with CPUs this host may use: {list_text(usable)}")


@dataclass(frozen=True)
class Plan:
    """The CPU list of each role (empty: not pinned) and the placement they came from."""

    placement: str
    client: tuple[int, ...]
    server: tuple[int, ...]

    def cpus(self, role: str) -> tuple[int, ...]:
        return getattr(self, role)

    def sharing(self, role: str, threads: int) -> str | None:
        """How a role's threads share its CPUs when they outnumber them (None when they do not)."""
        cpus = self.cpus(role)
        if not cpus or threads <= len(cpus):
            return None
        per = -(-threads // len(cpus))
        return (f"{threads} {role} threads on {len(cpus)} CPU{'s' if len(cpus) > 1 else ''} "
                f"({list_text(cpus)}): thread i on CPU list[i mod {len(cpus)}], up to {per} per CPU, "
                "time-shared by the scheduler")

    def to_dict(self, threads: int) -> dict:
        """What the manifest and the point result record: asked, the lists, how threads share."""
        out = {"asked": self.placement, "client_cpus": list(self.client), "server_cpus": list(self.server)}
        shared = {r: s for r in ("client", "server") if (s := self.sharing(r, threads))}
        if shared:
            out["sharing"] = shared
        return out


def plan(placement: str, client_cpus=None, server_cpus=None, topology: str = "netns",
         usable: tuple[int, ...] | None = None) -> Plan:
    """The placement asked for -> each role's CPU list, checked against this host's CPUs."""
    if placement != "explicit" and (client_cpus or server_cpus):
        flag = "--client-cpus" if client_cpus else "--server-cpus"
        raise UsageError(f"{flag} is for --placement explicit, not {placement}", fix=f"--placement explicit {flag} LIST")
    usable = online() if usable is None else tuple(usable)
    if placement == "none":
        return Plan("none", (), ())
    if placement == "explicit":
        if not client_cpus and not server_cpus:
            raise UsageError("--placement explicit needs the CPUs", fix="--client-cpus LIST and/or --server-cpus LIST")
        for flag, cpus in (("--client-cpus", client_cpus or ()), ("--server-cpus", server_cpus or ())):
            for cpu in cpus if not (topology == "remote" and flag == "--server-cpus") else ():
                if cpu not in usable:
                    check_cpu(cpu, flag)
        return Plan("explicit", tuple(client_cpus or ()), tuple(server_cpus or ()))
    if placement == "same":
        if topology == "remote":
            raise UsageError("--placement same puts both ends on one CPU, but the server is on another host",
                             fix="--placement split (or explicit --client-cpus LIST)")
        return Plan("same", usable, usable)
    if placement == "split":
        if len(usable) < 2:
            raise UsageError(f"--placement split needs two CPUs, this process may use {len(usable)}",
                             fix="--placement same or none")
        half = len(usable) // 2
        # a remote server runs on other CPUs by construction: only the client is pinned here
        return Plan("split", usable[:half], () if topology == "remote" else usable[half:])
    raise UsageError(f"unknown placement {placement!r}", fix=f"--placement one of {', '.join(PLACEMENTS)}")


def of_spec(spec, usable: tuple[int, ...] | None = None) -> Plan:
    """A RunSpec's (or SweepSpec's, for one placement) plan."""
    return plan(spec.placement, spec.client_cpus, spec.server_cpus, spec.topology, usable)
