"""Where a point's time goes: on-CPU stack samples and off-CPU time of its processes, by cost
class and wait reason (bpf/netobs_profile.c; classes and reasons: netobs/costclasses.toml).

    hostprep.prepare()                         # once, where setup happens
    with Profiler(hz=999) as prof:             # compiles, chooses the event, attaches (e.g. per sweep)
        prof.start_point({"client": perf_pid, "server": server_pid}, wrappers={"client"})
        ...                                    # run the point
        profile = prof.stop_point(point_files, {"client": bytes_sent, "server": bytes_received})

The sampling event is chosen by feature detection, best first: hardware cycles (then samples
weigh real cycles) where the PMU allows, else the cpu-clock software event. The plan records
what was tried and why each refused. Samples come from every CPU but are kept only for the
registered processes and their children; a wrapper (the `perf stat` around the client) is
followed, not counted.

User frames are symbolized from the processes' own maps: while a point runs, a thread looks at
each counted process's /proc/PID/maps a few times a second and takes a new symbol cache
(BCC's, which reads the maps when it is made) whenever they changed, so stacks resolve after
the workers have exited. The caches live in a child process (netobs.symbolizer says why).
Kernel frames come from kallsyms.
"""
from __future__ import annotations

import os
import re
import threading
from collections import Counter, defaultdict
from importlib import resources

from netobs import bpfload, bpfprobe, costclass, hostprep, procfs
from netobs.symbolizer import Symbolizer
from netobs.errors import CapabilityError, UsageError
from netobs.figures import ROLES

BPF_SOURCE = "netobs_profile.c"
BPF_HEADER = "netobs_profile.h"
DEFAULT_HZ = 999
EVENTS = ("cycles", "cpu-clock")           # best first
OFF_CPU_PROBE = "tracepoint sched:sched_switch"
MAPS_POLL_S = 0.25
TOP_UNKNOWN = 10
KERNEL_SUFFIX = "_[k]"                     # bcc's profile -f marks kernel frames so


def _read_layout() -> dict[str, int]:
    text = (resources.files("netobs.bpf") / BPF_HEADER).read_text()
    return {m.group(1): int(m.group(2), 0)
            for m in re.finditer(r"^#define\s+(NETOBS_\w+)\s+(0x[0-9a-fA-F]+|\d+)", text, re.M)}


_LAYOUT = _read_layout()


def plan_sampling(hz: int = DEFAULT_HZ, refuse: dict[str, str] | None = None) -> dict:
    """The sampling plan: the first of EVENTS that opens here, and why the others did not.
    `refuse` (event -> reason) simulates a refusal (tests; `--profile-event`)."""
    refuse = refuse or {}
    tried, chosen = [], None
    for ev in EVENTS:
        why = refuse.get(ev) or bpfprobe.try_perf_event(ev, hz)
        tried.append({"event": ev, "ok": why is None, **({"reason": why} if why else {})})
        if why is None:
            chosen = ev
            break
    on = {"event": chosen, "hz": hz, "stacks": ["kernel", "user"], "tried": tried}
    if chosen is None:
        on["reason"] = "; ".join(t["reason"] for t in tried)
    off_why = bpfprobe.try_tracepoint("sched", "sched_switch")
    off = {"probe": None, "reason": off_why} if off_why else {"probe": OFF_CPU_PROBE}
    return {"on_cpu": on, "off_cpu": off}


class Profiler(bpfload.Loaded):
    """Compiled and attached stack sampling for a run's points. A context manager: detached
    and unloaded when it closes, on every exit path."""

    def __init__(self, hz: int = DEFAULT_HZ, refuse: dict[str, str] | None = None):
        hostprep.require_prepared()
        if not 1 <= int(hz) <= 100_000:
            raise UsageError(f"profile frequency {hz} is out of range", fix="try --profile-hz between 1 and 100000")
        self.hz = int(hz)
        self.plan = plan_sampling(self.hz, refuse)
        self._bpf = None
        self._gen = 0
        self._symbolizer = Symbolizer()
        self._held: set[int] = set()      # the processes the symbolizer holds a cache of
        self._user: dict[tuple[int, int], tuple] = {}   # (tgid, address) -> (name, module), per point
        self._comm: dict[int, str] = {}
        self._leaf_resolved = [0, 0]      # user stacks whose innermost frame a module claims, of all
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()
        if self.plan["on_cpu"]["event"] is None and self.plan["off_cpu"]["probe"] is None:
            raise CapabilityError("no profile can be taken here", self.plan["on_cpu"]["reason"],
                                  "netobs doctor (sampling events); or run without --profile")
        self._bpf = bpfload.compile(BPF_SOURCE, "the netobs profiler")
        with self.attaching("the netobs profiler", "netobs doctor shows which sampling events work here"):
            ev = self.plan["on_cpu"]["event"]
            if ev is not None:
                type_, config = bpfprobe.SAMPLING_EVENTS[ev]
                self._bpf.attach_perf_event(ev_type=type_, ev_config=config, fn_name=b"netobs_prof_sample",
                                            sample_freq=self.hz, cpu=-1)
            if self.plan["off_cpu"]["probe"] is not None:
                self._bpf.attach_tracepoint(tp=b"sched:sched_switch", fn_name=b"netobs_prof_switch")
            self.follows_children = bpfprobe.try_tracepoint("sched", "sched_process_fork") is None
            if self.follows_children:
                self._bpf.attach_tracepoint(tp=b"sched:sched_process_fork", fn_name=b"netobs_prof_fork")
            self._gen_map = self._bpf.get_table(b"netobs_prof_gen")
            self._procs = self._bpf.get_table(b"netobs_prof_procs")
            self._stacks = self._bpf.get_table(b"netobs_prof_stacks")
            self._on = self._bpf.get_table(b"netobs_prof_on")
            self._off = self._bpf.get_table(b"netobs_prof_off")
            self._start = self._bpf.get_table(b"netobs_prof_start")
            self._lost = self._bpf.get_table(b"netobs_prof_lost")
            self._work = self._bpf.get_table(b"netobs_prof_work")

    # -- per point ----------------------------------------------------------------------------
    def start_point(self, pids: dict[str, int], wrappers=()) -> None:
        """Profile these processes (role -> pid) and their children, from nothing; a role in
        `wrappers` names a wrapper process: its children are profiled, not it."""
        if self._bpf is None:
            raise UsageError("profiler is closed")
        bad = set(pids) - set(ROLES)
        if bad:
            raise UsageError(f"unknown profiler roles {sorted(bad)}", fix=f"use {', '.join(ROLES)}")
        self._set_gen(0)
        for table in (self._on, self._off, self._start, self._procs, self._work):
            table.clear()
        for k in list(self._stacks.keys()):   # (BCC's clear() raises when a stack id went meanwhile)
            try:
                del self._stacks[k]
            except KeyError:
                pass
        self._lost.clear()
        self._stop_poller()            # a point that failed left its poller running: never two
        self._free_symbols()
        self._gen = self._gen % 0xFFFFFFFF + 1
        tree = procfs.children()
        for role, pid in pids.items():
            for p in [pid] + procfs.descendants(pid, tree):
                leaf = self._procs.Leaf()
                leaf.role, leaf.gen = ROLES.index(role), self._gen
                leaf.count = 0 if (p == pid and role in wrappers) else 1
                self._procs[self._procs.Key(p)] = leaf
        self._set_gen(self._gen)
        self._snapshot_maps()          # what is loaded now (a short point may end before the first poll)
        self._stop.clear()
        self._poller = threading.Thread(target=self._poll_maps, name="netobs-profile-maps", daemon=True)
        self._poller.start()

    def freeze(self) -> None:
        """Stop recording (the point's workers have ended); stop_point reads what was recorded."""
        if self._bpf is None:
            raise UsageError("profiler is closed")
        self._set_gen(0)
        if self._poller is not None:
            self._stop_poller()
            self._snapshot_maps()      # a last look at whatever still lives

    def stop_point(self, point_files=None, moved: dict[str, int | None] | None = None) -> dict:
        """The point's profile per role (netobs.figures PROFILE_FIGURES/WAIT_FIGURES paths),
        with its folded stacks handed to `point_files` (netobs.store.PointFiles); stop
        recording. `moved`: bytes per role over the same life, for CPU-seconds per GB."""
        if self._bpf is None:
            raise UsageError("profiler is closed")
        self.freeze()
        moved = moved or {}
        lost = [sum(int(v) for v in self._lost.getvalue(self._lost.Key(i))) for i in range(_LAYOUT["NETOBS_PROF_NLOST"])]
        self._leaf_resolved = [0, 0]
        out: dict = {"plan": self.plan, "lost": {"on_cpu": lost[0], "off_cpu": lost[1]}, "files": {}}
        self._resolve_user([*self._on.keys(), *self._off.keys()])
        on = self._collect_on()
        off = self._collect_off()
        folded = {}
        for role in ROLES:
            r_on, folded_on = self._summarise_on(role, on.get(role, []), moved.get(role))
            r_off, folded_off = self._summarise_off(role, off.get(role, []))
            out[role] = {"on_cpu": r_on, "off_cpu": r_off, "working": self._working(r_on, r_off)}
            folded[role] = {"on_cpu": folded_on, "off_cpu": folded_off}
        # user frames resolve from the processes' maps as they were seen while they lived; a
        # share well below 1 means a mapping appeared after the last look (its frames: [unknown])
        out["user_leaf_resolved"] = self._leaf_resolved[0] / self._leaf_resolved[1] if self._leaf_resolved[1] else None
        out["symbolizer_restarts"] = self._symbolizer.restarts     # each lost the caches it held
        if point_files is not None:
            for role in ROLES:
                files = {}
                for kind, lines in folded[role].items():
                    if lines is None:
                        continue
                    name = f"{'profile' if kind == 'on_cpu' else 'offcpu'}-{role}.folded"
                    point_files.write(name, "".join(f"{s} {w}\n" for s, w in sorted(lines.items())))
                    files[kind] = name
                out["files"][role] = files
        self._free_symbols()
        return out

    # -- reading the maps ---------------------------------------------------------------------
    def _frames(self, stack_id: int, tgid: int | None) -> list[str]:
        """Symbol names of a stack, innermost first (tgid None: kernel)."""
        if stack_id < 0:
            return []
        try:
            addrs = list(self._stacks.walk(stack_id))
        except KeyError:
            return []
        if tgid is None:
            return [self._bpf.ksym(a).decode(errors="replace") for a in addrs]
        resolved = [self._user.get((tgid, a), (None, None)) for a in addrs]
        out: list[str] = []
        for a, (name, module) in zip(addrs, resolved):
            if name:
                out.append(name)
            elif module:
                out.append(f"[{os.path.basename(module)}]")
            else:
                out.append("[unknown]")
            if a == addrs[0]:
                self._leaf_resolved[0] += 1 if (name or module) else 0
                self._leaf_resolved[1] += 1
        # without frame pointers (Debian's libc, Python) a user stack's outer frames are
        # guesses: a run of unresolved ones is one frame
        return [f for i, f in enumerate(out) if not (f.startswith("[") and i and out[i - 1] == f)]

    def _resolve_user(self, keys) -> None:
        """Every user address of these on- and off-CPU keys, resolved by the symbolizer in one
        request per process (a point's stacks share most of their frames)."""
        want = defaultdict(set)
        for k in keys:
            if k.ustack >= 0 and k.tgid in self._held:
                try:
                    want[k.tgid].update(self._stacks.walk(k.ustack))
                except KeyError:
                    continue
        self._user = {}
        for tgid, addrs in want.items():
            addrs = sorted(addrs)
            self._user.update(zip(((tgid, a) for a in addrs), self._symbolizer.resolve(tgid, addrs)))

    def _collect_on(self) -> dict[str, list]:
        rows = defaultdict(list)
        for k, v in self._on.items():
            rows[ROLES[k.role]].append((k.tgid, self._frames(k.kstack, None), self._frames(k.ustack, k.tgid),
                                        int(v.value), not k.work))
        return rows

    def _collect_off(self) -> dict[str, list]:
        rows = defaultdict(list)
        for k, v in self._off.items():
            rows[ROLES[k.role]].append((k.tgid, self._frames(k.kstack, None), self._frames(k.ustack, k.tgid),
                                        bool(k.runnable), int(v.ns), int(v.switches), not k.work))
        return rows

    def _root(self, role: str, tgid: int, tag: str) -> list[str]:
        return [role, f"[{tag}]", self._comm.get(tgid) or str(tgid)]

    def _summarise_on(self, role: str, rows: list, moved: int | None) -> tuple[dict, dict | None]:
        ev = self.plan["on_cpu"]["event"]
        if ev is None:
            return {"samples": None, "missing": self.plan["on_cpu"]["reason"]}, None
        t = costclass.table()
        classes, context, skid_fns, unknown, procs = Counter(), Counter(), Counter(), Counter(), Counter()
        folded: Counter = Counter()
        total = skid = working = 0
        for tgid, kernel, user, n, main in rows:
            s = costclass.classify(kernel, user, t)
            total += n
            working += 0 if main else n
            procs[tgid] += n
            classes[s.klass] += n
            context[s.context] += n
            if s.skid:
                skid += n
                skid_fns[kernel[0] if kernel else f"{user[0]} (on return to user space)"] += n
            if s.unknown:
                unknown[s.unknown] += n
            frames = self._root(role, tgid, s.klass) + user[::-1] + [f + KERNEL_SUFFIX for f in kernel[::-1]]
            folded[";".join(frames)] += n
        cpu_s = total / self.hz
        share = {c: (classes[c] / total if total else 0.0) for c in t.class_names}
        gb = (moved or 0) / 1e9
        result = {
            "samples": total, "event": ev, "hz": self.hz, "cpu_s": cpu_s,
            "classes": share,
            "cpu_s_per_gb": {c: (share[c] * cpu_s / gb if gb > 0 else None) for c in t.class_names},
            "context": {c: (context[c] / total if total else 0.0) for c in costclass.CONTEXTS},
            "skid": {"share": skid / total if total else 0.0, "functions": dict(skid_fns.most_common(5))},
            "unknown": [[f, n] for f, n in unknown.most_common(TOP_UNKNOWN)],
            "processes": {str(p): {"comm": self._comm.get(p), "samples": n} for p, n in procs.most_common()},
            "working_samples": working,
        }
        return result, dict(folded)

    def _summarise_off(self, role: str, rows: list) -> tuple[dict, dict | None]:
        if self.plan["off_cpu"]["probe"] is None:
            return {"seconds": None, "missing": self.plan["off_cpu"]["reason"]}, None
        t = costclass.table()
        reasons, unknown = Counter(), Counter()
        folded: Counter = Counter()
        total_ns = switches = 0
        work = Counter()
        for tgid, kernel, user, runnable, ns, n, main in rows:
            reason, unk = costclass.wait_reason(kernel, runnable, role, t)
            reasons[reason] += ns
            if not main:
                work[reason] += ns
            total_ns += ns
            switches += n
            if unk:
                unknown[unk] += ns
            frames = self._root(role, tgid, reason) + user[::-1] + [f + KERNEL_SUFFIX for f in kernel[::-1]]
            folded[";".join(frames)] += ns // 1000
        result = {"switches": switches, "seconds": total_ns / 1e9,
                  "reasons": {r: reasons[r] / 1e9 for r in t.reason_names},
                  "unknown": [[f, ns / 1e9] for f, ns in unknown.most_common(TOP_UNKNOWN)],
                  "working_reasons": {r: work[r] / 1e9 for r in t.reason_names}}
        return result, {k: v for k, v in folded.items() if v > 0}

    def _working(self, r_on: dict, r_off: dict) -> dict:
        """The working threads' time (those the worker's C side created: not the harness):
        on-CPU (sampled), off-CPU by reason, and the shares of their time; a share never
        exceeds 1 because thread time is on + off as measured."""
        on_s = (r_on.get("working_samples") or 0) / self.hz if r_on.get("samples") is not None else None
        reasons = r_off.get("working_reasons")
        if on_s is None or reasons is None:
            return {"on_cpu_s": on_s, "missing": r_on.get("missing") or r_off.get("missing")}
        off_s = sum(reasons.values())
        thread_s = on_s + off_s
        return {"on_cpu_s": on_s, "off_cpu_s": off_s, "thread_s": thread_s,
                "utilisation": on_s / thread_s if thread_s else None,
                "preempted_share": reasons.get("preempted", 0.0) / thread_s if thread_s else None,
                "reasons": reasons}

    # -- symbols ------------------------------------------------------------------------------
    def _counted(self) -> list[int]:
        """The counted processes (the fork probe also enters new threads, whose maps are their
        process's: left out)."""
        ids = [int(k.value) for k, v in self._procs.items() if v.count and v.gen == self._gen]
        return [i for i in ids if i in self._held or procfs.tgid(i) == i]

    def _snapshot_maps(self) -> None:
        for tgid in self._counted():
            if not self._symbolizer.look(tgid):
                continue
            self._held.add(tgid)
            st = procfs.stat(tgid)
            if st is not None:
                self._comm[tgid] = st.comm

    def _poll_maps(self) -> None:
        while not self._stop.wait(MAPS_POLL_S):
            try:
                self._snapshot_maps()
            except Exception:       # a process ending mid-look; the next look or the last one covers it
                continue

    def _stop_poller(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join()
            self._poller = None

    def _free_symbols(self) -> None:
        if self._held:
            self._symbolizer.forget()
        self._held.clear()
        self._comm.clear()
        self._user = {}

    def _set_gen(self, gen: int) -> None:
        self._gen_map[self._gen_map.Key(0)] = self._gen_map.Leaf(gen)

    # -- lifetime -----------------------------------------------------------------------------
    def _unloading(self) -> None:
        self._stop_poller()
        self._free_symbols()
        self._symbolizer.close()


def doctor_facts(hz: int = DEFAULT_HZ) -> dict:
    """What profiling can do here, never raising (the doctor's part shape)."""
    facts: dict = {"ok": False, "checks": []}
    if os.geteuid() != 0:
        facts["error"] = "stack sampling with BPF needs root"
        return facts
    plan = plan_sampling(hz)
    facts["plan"] = plan
    for t in plan["on_cpu"]["tried"]:
        facts["checks"].append({"name": f"sampling event {t['event']}", "ok": t["ok"],
                                "detail": "opens" if t["ok"] else t["reason"]})
    facts["checks"].append({"name": "stacks", "ok": plan["on_cpu"]["event"] is not None,
                            "detail": "kernel and user (BPF stack map)" if plan["on_cpu"]["event"] else "no sampling event"})
    off = plan["off_cpu"]
    facts["checks"].append({"name": "off-CPU (sched:sched_switch)", "ok": off["probe"] is not None,
                            "detail": off["probe"] or off["reason"]})
    facts["ok"] = plan["on_cpu"]["event"] is not None or off["probe"] is not None
    return facts
