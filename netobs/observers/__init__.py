"""What watches a point besides the workers themselves, behind one interface.

An observer (`Observer`) has a name (its key in the point result and in a remote end's
`skipped`), says whether a spec wants it for a role (`wanted`), is opened once per sweep for
the roles whose processes run here (`open`: the tracer and profiler compile their BPF programs
then), and per point (`self.point`: the point's RunSpec, set before `begin`):

    begin(files)            before the workers start (perf's fifos, counters read before)
    wrap(role, argv)        how it wraps the role's process (perf stat around it), with the
    worker_values(role)     flags the worker needs for it (perf's fifos, the placement's --cpus)
    attach(pids, wrapped)   on the workers' PIDs (role -> pid), before the first byte
    end()                   the workers have ended (counters read after, recording stopped)
    collect(reports, files) its figures for its roles, as point-result keys (the figures'
                            declared paths, netobs.figures), its files handed to the store
    merge(mine, theirs, why, files) the other end's collected figures (a remote server's) folded in,
                            or (theirs None) its roles said missing, with why

and `close()` once at the end. `REGISTRY` is the list the runner and the remote end walk, in
this order; adding an observer is one module here, its line in REGISTRY and its figures'
declarations (docs/DESIGN.md, "Add an observer").
"""
from __future__ import annotations

import contextlib
import getpass
import os

from netobs.errors import NetobsError
from netobs.figures import ROLES


class Observer:
    name: str = ""
    keys: tuple[str, ...] = ()   # the point-result keys its collect() fills (its figures' paths start there)
    needs_bpf = False        # needs root and the host prepared for BCC (netobs.hostprep)
    section_file: str | None = None   # its result section also kept as this file of the point

    # -- which roles, opened once --------------------------------------------------------
    @classmethod
    def wanted(cls, spec, role: str) -> bool:
        """Whether `spec` asks for this observer on `role`."""
        raise NotImplementedError

    @classmethod
    def open(cls, spec, roles: tuple[str, ...], place, given=None) -> Observer:
        """Opened once for every point of `spec` on `roles` (those here that want it); `place`
        reads the roles' counters (`netstat()`, `link_stats()`: a topology, or a remote end).
        `given`: its instrument already open (a Tracer, a Profiler), used and not closed."""
        obs = cls()
        obs.spec, obs.roles, obs.place, obs.owned = spec, roles, place, given is None
        return obs

    # -- per point -------------------------------------------------------------------------
    point = None   # the point's RunSpec (its placement, threads), set by the runner before begin()

    def begin(self, files) -> None:
        pass

    def wrap(self, role: str, argv: list[str]) -> list[str]:
        return argv

    def worker_values(self, role: str) -> dict:
        return {}

    def attach(self, pids: dict[str, int], wrapped: tuple[str, ...] = ()) -> None:
        pass

    def end(self) -> None:
        pass

    def collect(self, reports: dict[str, dict], files) -> dict:
        raise NotImplementedError

    def cleanup(self) -> None:
        """After every point, failed ones included."""

    @classmethod
    def merge(cls, mine: dict, theirs: dict | None, why: str | None, files=None) -> dict:
        """Fold the other end's `collect` for its roles into ours (theirs None: not observed
        there, `why`). The default: each result key's role entries side by side."""
        out = dict(mine)
        for key, value in (theirs or {}).items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = {**out[key], **value}
            else:
                out[key] = value
        return out

    def close(self) -> None:
        pass


def open_all(stack: contextlib.ExitStack, spec, roles: tuple[str, ...], place,
             skipped: dict[str, str] | None = None, given: dict | None = None) -> list[Observer]:
    """The observers `spec` wants on `roles`, opened once on `stack` (closed with it). With
    `skipped` (a remote end): one that cannot be had here is left out with the reason
    instead of failing the run. `given`: {name: its instrument already open}."""
    given = given or {}
    out = []
    bpf_ready: str | None = None   # "" once prepared here; the reason where it cannot be
    for cls in REGISTRY:
        mine = tuple(r for r in ROLES if r in roles and cls.wanted(spec, r))
        if not mine:
            continue
        if skipped is None:
            obs = cls.open(spec, mine, place, given.get(cls.name))
        else:
            why = None
            if cls.needs_bpf and os.geteuid() != 0:
                why = f"the ssh login ({getpass.getuser()}) is not root on this host: no BPF tracing or profiling here"
            elif cls.needs_bpf:
                bpf_ready = _prepare() or "" if bpf_ready is None else bpf_ready
                why = bpf_ready or None
            if why is None:
                try:
                    obs = cls.open(spec, mine, place, given.get(cls.name))
                except NetobsError as exc:
                    why = exc.message
            if why is not None:
                skipped[cls.name] = why
                continue
        stack.callback(obs.close)
        out.append(obs)
    return out


def _prepare() -> str | None:
    """The host made ready for BCC once (None), or why it cannot be."""
    from netobs import hostprep

    try:
        hostprep.prepare()
    except NetobsError as exc:
        return exc.message
    return None


# The registry, in the order the runner and the remote end walk it (perf wraps the workers
# first; the tracer and profiler attach before the counters are read; placement pins the
# workers and samples where their threads run; netstat and link last).
from netobs.observers.perf import Perf  # noqa: E402 - the adapters build on Observer above
from netobs.observers.trace import Trace  # noqa: E402
from netobs.observers.profile import Profile  # noqa: E402
from netobs.observers.placement import Placement  # noqa: E402
from netobs.observers.netstat import Netstat  # noqa: E402
from netobs.observers.link import Link  # noqa: E402

REGISTRY: tuple[type[Observer], ...] = (Perf, Trace, Profile, Placement, Netstat, Link)
