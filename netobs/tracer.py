"""Kernel tracing of a point's processes with BCC: where their bytes are copied, and what it costs.

The BPF C is `bpf/netobs_trace.c` (package data `netobs.bpf`); this module chooses, per
figure, the best probe the running kernel really accepts (fentry > kprobe > raw tracepoint >
tracepoint, tried by loading and attaching, see `netobs.bpfprobe`), compiles the program once
with the matching `-DNETOBS_*` cflags, and reads/resets per-process counters per point.
It changes nothing on the host: the setup step, `netobs.hostprep.prepare()` (tracefs, kernel
headers), has run before (doctor, or the start of `--trace`); without it `plan_probes()` and
`Tracer` raise a CapabilityError that says so.

Raw tracepoints are preferred to the regular ones: the kernel hands the program the
tracepoint's arguments directly instead of building a perf trace record first, and
raw_syscalls:sys_enter/exit filtered on four syscall numbers cost far less than the
syscalls:sys_*_{sendto,...} tracepoints (measured: tracing overhead at 1024 B loopback
one_copy went from about 30% to the figures in the git log).

    hostprep.prepare()                   # once, where setup happens
    plan = plan_probes()                 # figure -> {"probe", "tier"} or {"probe": None, "reason"}
    with Tracer(plan) as tracer:         # compiles and attaches once (e.g. per sweep)
        tracer.start_point({"client": perf_pid, "server": server_pid})
        ...                              # run the point
        trace = tracer.stop_point()      # {"client": {figure: int|None}, "server": ..., ...}

Send/recv syscall time is sampled: every call is counted (send_syscalls, recv_syscalls are
exact), but only 1 in `SYSCALL_SAMPLE_EVERY` calls per thread and kind is timed (two clock
reads per timed call were most of the tracing overhead on small messages). send_syscall_ns
and recv_syscall_ns are then estimates, sampled ns x calls / sampled calls; the histograms
count the sampled calls. `plan_probes(syscall_sample=1)` times every call (exact). The plan
records the setting (its "sample_every" and note) and each point's trace its "sampling".

Only the registered processes and their descendants are counted. A figure no probe can
produce is None in the result and its reason is in "missing" (missing is not zero).
"""
from __future__ import annotations

import errno
import os
import platform
import re
import socket
from dataclasses import dataclass
from importlib import resources

from netobs import bpfload, bpfprobe, hostprep, libc, procfs
from netobs.errors import CapabilityError, UsageError
from netobs.figures import ROLES
from netobs.figures import TRACE_NAMES as FIGURES

TIERS = ("fentry", "kprobe", "raw_tracepoint", "tracepoint")
HISTOGRAMS = ("send_syscall_ns_log2", "recv_syscall_ns_log2")
# Time 1 in this many send (and recv) syscalls per thread; the others are only counted.
# Measured (one_copy loopback, 1 thread, 1024 B): see the git log of this line.
SYSCALL_SAMPLE_EVERY = 32
# The figures sampling applies to: (calls, time) per kind, in NETOBS_KIND_* order.
_SYS_KINDS = (("send", "send_syscalls", "send_syscall_ns"), ("recv", "recv_syscalls", "recv_syscall_ns"))
BPF_SOURCE = "netobs_trace.c"
BPF_HEADER = "netobs_trace.h"


def _read_layout() -> dict[str, int]:
    """The integer #defines of bpf/netobs_trace.h (figure indices, map sizes)."""
    text = (resources.files("netobs.bpf") / BPF_HEADER).read_text()
    return {m.group(1): int(m.group(2), 0)
            for m in re.finditer(r"^#define\s+(NETOBS_\w+)\s+(0x[0-9a-fA-F]+|\d+)\s*$", text, re.M)}


_LAYOUT = _read_layout()
_FIG_INDEX = {f: _LAYOUT[f"NETOBS_FIG_{f.upper()}"] for f in FIGURES}
# The C side's indices are the figures' order in netobs.figures, and so are its roles.
if (list(_FIG_INDEX.values()) != list(range(_LAYOUT["NETOBS_NFIG"]))
        or [_LAYOUT[f"NETOBS_ROLE_{r.upper()}"] for r in ROLES] != list(range(_LAYOUT["NETOBS_NROLES"]))):
    raise ImportError("bpf/netobs_trace.h and netobs.figures disagree on the trace figures' or roles' order; "
                      "try giving NETOBS_FIG_*/NETOBS_ROLE_* the order of netobs.figures.TRACE_FIGURES/ROLES")


# ---- the candidate probes, best first -------------------------------------------------------

@dataclass(frozen=True)
class _Probe:
    probe: str                                   # what the plan records
    tier: str                                    # fentry | kprobe | raw_tracepoint | tracepoint
    cflags: tuple[str, ...]
    # (tp|raw|kprobe|kretprobe|fentry|fexit|btf_member|kver|arch, target)
    needs: tuple[tuple[str, str], ...]
    attach: tuple[tuple[str, str, str], ...] = ()  # (tp|raw|kprobe|kretprobe, target, program); fentry: BCC
    note: str = ""


_SYS_TPS = {  # tracepoint -> the program serving it
    "syscalls:sys_enter_sendto": "netobs_sendto_in", "syscalls:sys_enter_sendmsg": "netobs_sendmsg_in",
    "syscalls:sys_enter_recvfrom": "netobs_recvfrom_in", "syscalls:sys_enter_recvmsg": "netobs_recvmsg_in",
    "syscalls:sys_enter_sendfile64": "netobs_sendfile_in", "syscalls:sys_enter_splice": "netobs_splice_in",
    "syscalls:sys_exit_sendfile64": "netobs_sys_out", "syscalls:sys_exit_splice": "netobs_sys_out",
    "syscalls:sys_exit_sendto": "netobs_sys_out", "syscalls:sys_exit_sendmsg": "netobs_sys_out",
    "syscalls:sys_exit_recvfrom": "netobs_sys_out", "syscalls:sys_exit_recvmsg": "netobs_sys_out",
}


def _sys(*names: str) -> dict:
    tps = [f"syscalls:sys_{d}_{n}" for n in names for d in ("enter", "exit")]
    return {"needs": tuple(("tp", t) for t in tps), "attach": tuple(("tp", t, _SYS_TPS[t]) for t in tps)}


# sendfile() and splice() send too (the sendfile and splice strategies): the send syscall
# programs take them, as sends and as sends by page reference (the zero-copy sends' figures).
_PAGE_SYSCALLS = ("sendfile64", "splice")
# io_uring sends make no send syscall: io_uring:io_uring_complete (attached where it exists,
# like the fork tracepoint) adds their CQEs to the figures the syscalls would have counted.
_URING_NOTE = "; io_uring sends from their CQEs (io_uring:io_uring_complete)"
_URING_ZC_NOTE = "; io_uring SENDMSG_ZC sends from their CQEs (IORING_CQE_F_MORE, io_uring:io_uring_complete)"


def _tp(tp: str, prog: str) -> dict:
    return {"needs": (("tp", tp),), "attach": (("tp", tp, prog),)}


def _raw(tp: str, prog: str, *more_needs: tuple[str, str]) -> dict:
    return {"needs": (("raw", tp),) + more_needs, "attach": (("raw", tp, prog),)}


# Syscall numbers and where the syscall arguments sit in the saved user registers
# (struct pt_regs, an architecture ABI) per architecture: raw_syscalls:sys_enter gives only
# the number and the registers. x86-64: arg2 = rsi, arg3 = rdx, arg4 = r10 (the syscall ABI).
RAW_SYSCALL_ARCH = {
    "x86_64": {"NR_SENDTO": 44, "NR_RECVFROM": 45, "NR_SENDMSG": 46, "NR_RECVMSG": 47, "NR_SETSOCKOPT": 54,
               "NR_SENDFILE": 40, "NR_SPLICE": 275, "NR_IO_URING_ENTER": 426,
               "REGS_ARG2_OFF": 104, "REGS_ARG3_OFF": 96, "REGS_ARG4_OFF": 56},
}
_RAWSYS_NEEDS = (("raw", "raw_syscalls:sys_enter"), ("raw", "raw_syscalls:sys_exit"), ("arch", "syscalls"))


def _rawsys(**kw) -> dict:
    return {"needs": _RAWSYS_NEEDS,
            "attach": (("raw", "raw_syscalls:sys_enter", "netobs_rsys_in"),
                       ("raw", "raw_syscalls:sys_exit", "netobs_rsys_out")), **kw}


def _fn_tiers(functions, flag: str, func_macro: str | None, kprog: str, ret: bool = False) -> list[_Probe]:
    """fentry (or fexit) then kprobe (or kretprobe) candidates for each known name of a function."""
    fkind, kkind = ("fexit", "kretprobe") if ret else ("fentry", "kprobe")
    out = []
    for fn in functions:
        cflags = (f"-D{flag}_FENTRY",) + ((f"-D{func_macro}={fn}",) if func_macro else ())
        out.append(_Probe(f"{fkind}:{fn}", "fentry", cflags, ((fkind, fn),)))
    for fn in functions:
        out.append(_Probe(f"{kkind}:{fn}", "kprobe", (f"-D{flag}_KPROBE",), ((kkind, fn),),
                          ((kkind, fn, kprog),)))
    return out


# Function names across kernel versions, preferred first.
RX_COPY_FUNCS = ("skb_copy_datagram_iter", "skb_copy_datagram_iovec")   # _iovec before 3.19
# One call per completed zero-copy buffer: __msg_zerocopy_callback (5.12+, static) or
# sock_zerocopy_callback (4.14-5.11); the ops callbacks msg_zerocopy_complete (6.10+) and
# msg_zerocopy_callback (5.12-6.9) run once per reference dropped, i.e. per skb.
ZC_CALLBACK_FUNCS = ("__msg_zerocopy_callback", "sock_zerocopy_callback",
                     "msg_zerocopy_complete", "msg_zerocopy_callback")
DEFERRED_COPY_FUNCS = ("skb_copy_ubufs",)

_GROUPS: dict[str, tuple[tuple[str, ...], list[_Probe], str]] = {
    # group: (figures, candidates best first, why nothing else serves)
    # Best first: a probe on the kernel function itself; then, for what the send/recv syscalls
    # show (send return values, MSG_ZEROCOPY and MSG_ERRQUEUE flags), the syscall programs
    # that the syscall figures attach anyway, raw or regular (one syscall source per plan):
    # no program run more per send (measured: tracing overhead at 1024 B went from about 20%
    # to the figures in the git log); last the socket tracepoints, a program run more per call.
    "send": (("sendmsg_calls", "sendmsg_bytes"), [
        _Probe("fexit:tcp_sendmsg", "fentry", ("-DNETOBS_SEND_FEXIT",), (("fexit", "tcp_sendmsg"),)),
        _Probe("kretprobe:tcp_sendmsg", "kprobe", ("-DNETOBS_SEND_KPROBE",), (("kretprobe", "tcp_sendmsg"),),
               (("kretprobe", "tcp_sendmsg", "netobs_send_kr"),)),
        _Probe("raw_tracepoint:raw_syscalls:sys_exit(sendto,sendmsg)", "raw_tracepoint",
               ("-DNETOBS_SEND_SYSCALL", "-DNETOBS_RAWSYS"),
               **_rawsys(note="send/sendto/sendmsg (and sendfile/splice) syscalls' return values (the point's "
                              "processes send only on their TCP connections)" + _URING_NOTE)),
        _Probe("tracepoint:syscalls:sys_exit_{sendto,sendmsg}", "tracepoint", ("-DNETOBS_SEND_SYSCALL",),
               **_sys("sendto", "sendmsg", *_PAGE_SYSCALLS),
               note="send/sendto/sendmsg (and sendfile/splice) syscalls' return values (the point's "
                    "processes send only on their TCP connections)" + _URING_NOTE),
        _Probe("raw_tracepoint:sock:sock_send_length", "raw_tracepoint", ("-DNETOBS_SEND_RAW",),
               **_raw("sock:sock_send_length", "netobs_send_raw", ("btf_member", "sock.sk_protocol")),
               note="TCP sockets' sendmsg return values (sk_protocol read at its offset in the kernel's BTF)"),
        _Probe("tracepoint:sock:sock_send_length", "tracepoint", ("-DNETOBS_SEND_TP",),
               **_tp("sock:sock_send_length", "netobs_send_tp"), note="TCP sockets' sendmsg return values"),
    ], ""),
    "zcsend": (("zc_sends", "zc_send_bytes"), [
        _Probe("raw_tracepoint:raw_syscalls:sys_enter(sendto,sendmsg flags)", "raw_tracepoint",
               ("-DNETOBS_ZC_SYSCALL", "-DNETOBS_RAWSYS", "-DNETOBS_ZC_GATE"),
               **_rawsys(note="send syscalls whose flags (read from the saved user registers) carry "
                              "MSG_ZEROCOPY, and the bytes they sent; flags are read only for a role (client, "
                              "server) that may have a SO_ZEROCOPY socket (one at registration or a later "
                              "setsockopt(SO_ZEROCOPY)): on other sockets the kernel copies anyway; "
                              "sendfile/splice calls (pages sent by reference) count too" + _URING_ZC_NOTE)),
        _Probe("tracepoint:syscalls:sys_enter_sendmsg", "tracepoint", ("-DNETOBS_ZC_SYSCALL",),
               **_sys("sendmsg", *_PAGE_SYSCALLS),
               note="sendmsg calls whose flags carry MSG_ZEROCOPY, and the bytes they sent; sendfile/splice "
                    "calls (pages sent by reference) count too" + _URING_ZC_NOTE),
    ], "MSG_ZEROCOPY is visible only in the send syscalls' flags (sock:sock_send_length reports flags 0 for sends)"),
    "rx": (("rx_copy_calls", "rx_copy_bytes"),
           _fn_tiers(RX_COPY_FUNCS, "NETOBS_RX", "NETOBS_RX_FUNC", "netobs_rx_kp") + [
        _Probe("raw_tracepoint:skb:skb_copy_datagram_iovec", "raw_tracepoint", ("-DNETOBS_RX_RAW",),
               **_raw("skb:skb_copy_datagram_iovec", "netobs_rx_raw")),
        _Probe("tracepoint:skb:skb_copy_datagram_iovec", "tracepoint", ("-DNETOBS_RX_TP",),
               **_tp("skb:skb_copy_datagram_iovec", "netobs_rx_tp")),
    ], ""),
    "errq": (("errqueue_reads",), [
        _Probe("raw_tracepoint:raw_syscalls:sys_enter(recvfrom,recvmsg flags)", "raw_tracepoint",
               ("-DNETOBS_ERRQ_SYSCALL", "-DNETOBS_RAWSYS", "-DNETOBS_ZC_GATE"),
               **_rawsys(note="recv syscalls with MSG_ERRQUEUE (flags read from the saved user registers) "
                              "that returned a notification, for a role that may have a SO_ZEROCOPY socket "
                              "(as for zero-copy sends; reads of timestamps or IP_RECVERR errors on other "
                              "sockets are not counted)")),
        _Probe("tracepoint:syscalls:sys_enter_recvmsg", "tracepoint", ("-DNETOBS_ERRQ_SYSCALL",),
               **_sys("recvmsg"), note="recvmsg calls with MSG_ERRQUEUE that returned a notification"),
        _Probe("raw_tracepoint:sock:sock_recv_length", "raw_tracepoint", ("-DNETOBS_ERRQ_RAW",),
               **_raw("sock:sock_recv_length", "netobs_errq_raw"),
               note="reads with MSG_ERRQUEUE that returned a notification"),
        _Probe("tracepoint:sock:sock_recv_length", "tracepoint", ("-DNETOBS_ERRQ_TP",),
               **_tp("sock:sock_recv_length", "netobs_errq_tp"), note="reads with MSG_ERRQUEUE that returned a notification"),
    ], ""),
    "zccb": (("zc_callbacks",), _fn_tiers(ZC_CALLBACK_FUNCS, "NETOBS_ZCCB", "NETOBS_ZCCB_FUNC", "netobs_zccb_kp"),
             "no tracepoint reports zero-copy completion callbacks"),
    "zcdef": (("zc_deferred_copies",),
              _fn_tiers(DEFERRED_COPY_FUNCS, "NETOBS_ZCDEF", "NETOBS_ZCDEF_FUNC", "netobs_zcdef_kp"),
              "no tracepoint reports skb_copy_ubufs (the deferred copy of zero-copy pages)"),
    "sys": (("send_syscalls", "send_syscall_ns", "recv_syscalls", "recv_syscall_ns"), [
        _Probe("raw_tracepoint:raw_syscalls:sys_{enter,exit}(sendto,sendmsg,recvfrom,recvmsg)", "raw_tracepoint",
               ("-DNETOBS_SYS", "-DNETOBS_RAWSYS"),
               **_rawsys(note="sendfile, splice and io_uring_enter calls count as send syscalls")),
        _Probe("tracepoint:syscalls:sys_{enter,exit}_{sendto,sendmsg,recvfrom,recvmsg}", "tracepoint",
               ("-DNETOBS_SYS",), **_sys("sendto", "sendmsg", "recvfrom", "recvmsg", *_PAGE_SYSCALLS),
               note="sendfile and splice calls count as send syscalls (io_uring_enter does not: only the raw "
                    "syscall programs take it)"),
    ], ""),
    "offcpu": (("offcpu_switches", "offcpu_ns"), [
        _Probe("raw_tracepoint:sched:sched_switch", "raw_tracepoint", ("-DNETOBS_OFFCPU_RAW", "-DNETOBS_RAWSYS"),
               needs=(("raw", "sched:sched_switch"), ("kver", "5.18")) + _RAWSYS_NEEDS,
               attach=(("raw", "sched:sched_switch", "netobs_offcpu_raw"),) + _rawsys()["attach"],
               note="threads that make send/recv syscalls; a waiting perf or main thread is not counted; "
                    "an interval is counted when its thread leaves the CPU again (or exits)"),
        _Probe("tracepoint:sched:sched_switch", "tracepoint", ("-DNETOBS_OFFCPU",),
               needs=(("tp", "sched:sched_switch"),) + _sys("sendto", "sendmsg", "recvfrom", "recvmsg")["needs"],
               attach=(("tp", "sched:sched_switch", "netobs_offcpu"),)
               + _sys("sendto", "sendmsg", "recvfrom", "recvmsg")["attach"],
               note="threads that make send/recv syscalls; a waiting perf or main thread is not counted"),
    ], ""),
    "mem": (("mem_pressure_events",), [
        _Probe("tracepoint:sock:sock_exceed_buf_limit", "tracepoint", ("-DNETOBS_MEM_TP",),
               **_tp("sock:sock_exceed_buf_limit", "netobs_mem_tp")),
    ], ""),
}
_INHERIT = _Probe("tracepoint:sched:sched_process_fork", "tracepoint", ("-DNETOBS_INHERIT",),
                  **_tp("sched:sched_process_fork", "netobs_fork"))
# Only where the send figures come from syscalls does io_uring need a probe of its own (the
# socket tracepoints and tcp_sendmsg see its sends); it runs only for io_uring completions.
_URING = _Probe("tracepoint:io_uring:io_uring_complete", "tracepoint", ("-DNETOBS_URING_TP",),
                **_tp("io_uring:io_uring_complete", "netobs_uring_tp"))
_BY_PROBE = {(g, p.probe): p for g, (_, cands, _) in _GROUPS.items() for p in cands}
_GROUP_OF = {f: g for g, (figs, _, _) in _GROUPS.items() for f in figs}
assert set(_GROUP_OF) == set(FIGURES)


def _tokens(p: _Probe) -> set[str]:
    """Names a user may give to simulate this probe missing (force_missing, --probe)."""
    out = {p.probe, p.tier}
    for kind, target in p.needs:
        if kind in ("btf_member", "kver", "arch"):
            continue
        out.add(target)   # a tracepoint's name covers both its raw and regular probes
        if kind == "tp":
            out.add(f"tracepoint:{target}")
        elif kind == "raw":
            out.add(f"raw_tracepoint:{target}")
        else:
            out |= {f"{kind}:{target}", f"{'fentry' if kind in ('fentry', 'fexit') else 'kprobe'}:{target}"}
    return out


def _kver() -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", os.uname().release)[:2])


def _check(need: tuple[str, str], cache: dict) -> str | None:
    if need not in cache:
        kind, target = need
        if kind == "tp":
            cache[need] = bpfprobe.try_tracepoint(*target.split(":", 1))
        elif kind == "raw":
            cache[need] = bpfprobe.try_raw_tracepoint(*target.split(":", 1))
        elif kind == "btf_member":
            cache[need] = bpfprobe.btf_member(*target.split("."))[1]
        elif kind == "kver":
            want = tuple(int(x) for x in target.split("."))
            cache[need] = None if _kver() >= want else f"needs kernel {target}+ (its raw arguments)"
        elif kind == "arch":
            m = platform.machine()
            cache[need] = None if m in RAW_SYSCALL_ARCH else f"syscall numbers and registers not known for {m}"
        elif kind in ("kprobe", "kretprobe"):
            cache[need] = bpfprobe.try_kprobe(target, ret=kind == "kretprobe")
        else:
            cache[need] = bpfprobe.try_fentry(target, ret=kind == "fexit")
    return cache[need]


def plan_probes(force_missing: set[str] | frozenset[str] | tuple = (),
                syscall_sample: int = SYSCALL_SAMPLE_EVERY) -> dict:
    """Per figure, the best probe that really attaches here, or None and why. Without root every
    figure is None ("needs root"); as root, tracefs must be mounted (`netobs.hostprep.prepare()`),
    else CapabilityError.

    Entries: {"probe": "tracepoint:sock:sock_send_length", "tier": "tracepoint", "note": str,
    "skipped": [{"probe", "reason"}, ...]} or {"probe": None, "tier": None, "reason": str,
    "skipped": [...]}. `force_missing` names probes to treat as absent: a full probe name
    ("kretprobe:tcp_sendmsg"), a tracepoint ("sock:sock_send_length"), a kernel function
    ("tcp_sendmsg") or a whole tier ("kprobe", "fentry").
    `syscall_sample`: time 1 in this many send/recv syscalls per thread (1: every call); the
    four syscall figures' entries then carry "sample_every" and say so in their note.
    """
    if isinstance(syscall_sample, bool) or not isinstance(syscall_sample, int) or syscall_sample < 1:
        raise UsageError(f"syscall_sample must be an integer >= 1, not {syscall_sample!r}")
    plan = _plan_probes(set(force_missing))
    for _, calls, ns in _SYS_KINDS:
        for f, note in ((calls, "every call counted"),
                        (ns, "every call timed" if syscall_sample == 1
                         else f"sampled 1 in {syscall_sample}, scaled (sampled ns x calls / sampled calls)")):
            e = plan[f]
            if e["probe"]:
                e["sample_every"] = syscall_sample
                e["note"] = "; ".join(x for x in (e["note"], note) if x)
    return plan


def _plan_probes(force: set[str]) -> dict:
    if os.geteuid() != 0:
        return {f: {"probe": None, "tier": None, "reason": "kernel tracing needs root", "skipped": []}
                for f in FIGURES}
    hostprep.require_tracefs()
    cache: dict = {}
    plan = _plan(force, cache)
    used = {_syscall_source(_BY_PROBE[(_GROUP_OF[f], e["probe"])]) for f, e in plan.items() if e["probe"]}
    if {"raw", "tp"} <= used:
        # One syscall source for the whole program (both would see every syscall twice):
        # where a figure had to fall back to the regular syscall tracepoints, all do.
        plan = _plan(force | {"raw_syscalls:sys_enter"}, cache)
    return plan


def _syscall_source(p: _Probe) -> str | None:
    kinds = {k for k, t in p.needs if t.startswith(("syscalls:", "raw_syscalls:"))}
    return "raw" if "raw" in kinds else "tp" if "tp" in kinds else None


def _plan(force: set[str], cache: dict) -> dict:
    plan: dict = {}
    for group, (figs, cands, none_why) in _GROUPS.items():
        skipped = []
        chosen = None
        for p in cands:
            hit = _tokens(p) & force
            why = f"forced missing ({', '.join(sorted(hit))})" if hit else None
            for need in p.needs:
                if why:
                    break
                why = _check(need, cache)
            if why is None:
                chosen = p
                break
            skipped.append({"probe": p.probe, "reason": why})
        for f in figs:
            if chosen:
                plan[f] = {"probe": chosen.probe, "tier": chosen.tier, "note": chosen.note,
                           "skipped": list(skipped)}
            else:
                by_reason: dict[str, list[str]] = {}
                for s in skipped:
                    by_reason.setdefault(s["reason"], []).append(s["probe"])
                reason = "; ".join(f"{why} ({', '.join(ps)})" for why, ps in by_reason.items())
                if none_why:
                    reason = f"{none_why}; {reason}" if reason else none_why
                plan[f] = {"probe": None, "tier": None, "reason": reason or "no probe", "skipped": list(skipped)}
    return plan


def _chosen(plan: dict) -> dict[str, _Probe]:
    out = {}
    for f in FIGURES:
        entry = plan.get(f) or {}
        name = entry.get("probe")
        if not name:
            continue
        group = _GROUP_OF[f]
        p = _BY_PROBE.get((group, name))
        if p is None:
            raise UsageError(f"probe plan: unknown probe {name!r} for {f}",
                             fix="use a plan made by netobs.tracer.plan_probes()")
        if out.setdefault(group, p) is not p:
            raise UsageError(f"probe plan: {f} uses {name} but its group uses {out[group].probe}",
                             fix="use a plan made by netobs.tracer.plan_probes()")
    if {_syscall_source(p) for p in out.values()} >= {"raw", "tp"}:
        raise UsageError("probe plan mixes raw_syscalls and syscalls:* tracepoints",
                         fix="use a plan made by netobs.tracer.plan_probes()")
    return out


def _runtime_cflags(cflags: list[str]) -> list[str]:
    """The values some programs need from the running kernel: BTF offsets, syscall numbers."""
    out = []
    if "-DNETOBS_SEND_RAW" in cflags:
        off, why = bpfprobe.btf_member("sock", "sk_protocol")
        if off is None:
            raise CapabilityError("raw sock_send_length needs struct sock's sk_protocol offset", why,
                                  "plan without it: plan_probes(force_missing={'raw_tracepoint:sock:sock_send_length'})")
        out.append(f"-DNETOBS_SK_PROTOCOL_OFF={off}")
    if "-DNETOBS_RAWSYS" in cflags:
        arch = RAW_SYSCALL_ARCH.get(platform.machine())
        if arch is None:
            raise CapabilityError(f"raw syscall tracing: syscall numbers not known for {platform.machine()}",
                                  fix="a plan without raw syscalls, plan_probes(force_missing={'raw_syscalls'}), "
                                      "or add this architecture to RAW_SYSCALL_ARCH")
        out += [f"-DNETOBS_{k}={v}" for k, v in arch.items()]
    return out


# setsockopt/getsockopt(SOL_SOCKET, SO_ZEROCOPY) (asm-generic; Python's socket module lacks it)
SO_ZEROCOPY = 60


def _may_have_zerocopy_socket(pid: int) -> bool:
    """Whether process `pid` has a socket with SO_ZEROCOPY on (each asked with getsockopt on a
    duplicate taken through its pidfd), or may have one: anything that cannot be told counts
    as yes. A role's zero-copy gate opens when one of its processes has one (or later makes a
    setsockopt(SO_ZEROCOPY)); only then are the flags of its send/recv syscalls read."""
    try:
        socks = procfs.socket_fds(pid)
    except OSError:
        return True
    if not socks:
        return False
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return True
    try:
        for fd in socks:
            try:
                local = libc.pidfd_getfd(pidfd, fd)
            except OSError as e:
                if e.errno == errno.EBADF:
                    continue    # closed meanwhile
                return True
            try:
                sock = socket.socket(fileno=local)
            except OSError:
                os.close(local)
                return True
            with sock:
                try:
                    if sock.getsockopt(socket.SOL_SOCKET, SO_ZEROCOPY):
                        return True
                except OSError:
                    return True
    finally:
        os.close(pidfd)
    return False


def _sample_every(plan: dict) -> int:
    """The plan's syscall timing sample (1 in N); 1 (every call) for a plan without one."""
    got = {(plan.get(f) or {}).get("sample_every", 1) for _, c, ns in _SYS_KINDS for f in (c, ns)
           if (plan.get(f) or {}).get("probe")}
    if len(got) > 1:
        raise UsageError(f"probe plan: the syscall figures disagree on sample_every ({sorted(got)})",
                         fix="use a plan made by netobs.tracer.plan_probes()")
    n = got.pop() if got else 1
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UsageError(f"probe plan: sample_every must be an integer >= 1, not {n!r}", fix="use a plan made by netobs.tracer.plan_probes()")
    return n


def _scaled(sampled_ns: int, calls: int, sampled: int) -> int | None:
    """Estimated total time of `calls` calls from `sampled` of them that took `sampled_ns`;
    None when calls were made but none was timed (not measured, never 0)."""
    if sampled == 0:
        return 0 if calls == 0 else None
    if sampled >= calls:
        return sampled_ns        # every call timed: exact
    return round(sampled_ns * calls / sampled)


def _hist(values: list[int]) -> dict[str, int]:
    """log2 slots -> {"lower bound in ns": count} for non-empty slots (slot s: [2^(s-1), 2^s))."""
    return {str(0 if s == 0 else 1 << (s - 1)): v for s, v in enumerate(values) if v}


class Tracer(bpfload.Loaded):
    """Compiled and attached BPF programs; counters read and reset per point.

    A context manager: programs are detached when it closes, on every exit path (an
    exception, Ctrl-C, or the process ending, since BCC's attachments are file descriptors).
    """

    def __init__(self, plan: dict | None = None):
        hostprep.require_prepared()
        self.plan = plan if plan is not None else plan_probes()
        self._bpf = None
        self._gen = 0
        self._slot_conflicts = 0
        self.notes: list[str] = []
        chosen = _chosen(self.plan)
        probes = list(chosen.values())
        if bpfprobe.try_tracepoint("sched", "sched_process_fork") is None:
            probes.append(_INHERIT)
        else:
            self.notes.append("sched:sched_process_fork unavailable: children of the registered "
                              "processes that exist at start_point are counted, later ones are not")
        if {"-DNETOBS_SEND_SYSCALL", "-DNETOBS_ZC_SYSCALL"} & {c for p in probes for c in p.cflags}:
            if bpfprobe.try_tracepoint("io_uring", "io_uring_complete") is None:
                probes.append(_URING)
            else:
                self.notes.append("io_uring:io_uring_complete unavailable: io_uring sends are not in the "
                                  "send figures")
        cflags = sorted({c for p in probes for c in p.cflags})
        cflags += _runtime_cflags(cflags)
        self.syscall_sample = _sample_every(self.plan) if "sys" in chosen else None
        if self.syscall_sample is not None:
            cflags.append(f"-DNETOBS_SYS_SAMPLE={self.syscall_sample}")
        self.cflags = cflags
        # fentry/fexit programs are attached by BCC while it loads the module.
        self._bpf = bpfload.compile(BPF_SOURCE, "the netobs BPF programs", cflags)
        with self.attaching("the netobs BPF programs", "netobs doctor shows which probes attach here"):
            done = set()
            for p in probes:
                for kind, target, prog in p.attach:
                    if (kind, target) in done:
                        continue
                    done.add((kind, target))
                    if kind == "tp":
                        self._bpf.attach_tracepoint(tp=target.encode(), fn_name=prog.encode())
                    elif kind == "raw":
                        self._bpf.attach_raw_tracepoint(tp=target.split(":", 1)[1].encode(), fn_name=prog.encode())
                    elif kind == "kprobe":
                        self._bpf.attach_kprobe(event=target.encode(), fn_name=prog.encode())
                    elif kind == "kretprobe":
                        self._bpf.attach_kretprobe(event=target.encode(), fn_name=prog.encode())
            self._pc = self._bpf.get_table(b"netobs_pc")
            self._cfg = self._bpf.get_table(b"netobs_cfg")
            self._procs = self._bpf.get_table(b"netobs_procs")
            self._has_hist = "sys" in chosen

    # -- per point ----------------------------------------------------------------------------
    def start_point(self, pids: dict[str, int]) -> None:
        """Count only these processes (role -> pid) and their descendants, from zero."""
        if self._bpf is None:
            raise UsageError("tracer is closed")
        bad = set(pids) - set(ROLES)
        if bad:
            raise UsageError(f"unknown tracer roles {sorted(bad)}", fix=f"use {', '.join(ROLES)}")
        # Generation 0 stops all counting; the new one makes every entry of earlier points
        # stale at once (no map to clear).
        self._set_gen(0)
        self._pc.clear()
        self._gen = self._gen % 0xFFFFFFFF + 1
        slots = _LAYOUT["NETOBS_PID_SLOTS"]
        held: dict[int, int] = {}
        self._slot_conflicts = 0
        tree = procfs.children()
        members: dict[str, list[int]] = {}
        for role, pid in pids.items():
            # Children forked before the fork probe saw their parent registered.
            members[role] = [pid] + procfs.descendants(pid, tree)
            for p in members[role]:
                slot = p & (slots - 1)
                if held.setdefault(slot, p) != p:
                    self._slot_conflicts += 1     # reported as lost events
                    continue
                leaf = self._procs.Leaf()
                leaf.tgid, leaf.role, leaf.gen = p, ROLES.index(role), self._gen
                self._procs[self._procs.Key(slot)] = leaf
        # Zero-copy gates (see bpf/netobs_trace.c, netobs_cfg): open for a role with a
        # SO_ZEROCOPY socket now. Checked again once counting runs, for a setsockopt made
        # between the first look and the new generation (the BPF programs ignore it).
        gates = {r: any(map(_may_have_zerocopy_socket, ps)) for r, ps in members.items()}
        for r, role in enumerate(ROLES):
            self._cfg[self._cfg.Key(_LAYOUT["NETOBS_CFG_ZC"] + r)] = self._cfg.Leaf(int(gates.get(role, False)))
        self._set_gen(self._gen)
        for role, ps in members.items():
            if not gates[role] and any(map(_may_have_zerocopy_socket, ps)):
                self._cfg[self._cfg.Key(_LAYOUT["NETOBS_CFG_ZC"] + ROLES.index(role))] = self._cfg.Leaf(1)

    def _set_gen(self, gen: int) -> None:
        self._cfg[self._cfg.Key(0)] = self._cfg.Leaf(gen)

    def stop_point(self) -> dict:
        """The point's figures per role, and stop counting. Missing figures are None."""
        if self._bpf is None:
            raise UsageError("tracer is closed")
        self._set_gen(0)
        nfig = _LAYOUT["NETOBS_NFIG"]
        per_cpu = self._pc.getvalue(self._pc.Key(0))
        sums = [sum(v.counts[i] for v in per_cpu) for i in range(_LAYOUT["NETOBS_NCOUNTERS"])]
        hist = [sum(v.hist[i] for v in per_cpu) for i in range(_LAYOUT["NETOBS_NHIST"])]
        missing = {f: e.get("reason") or "no probe" for f, e in self.plan.items()
                   if f in _FIG_INDEX and not e.get("probe")}
        sampled = [sum(v.sampled[i] for v in per_cpu) for i in range(_LAYOUT["NETOBS_NSAMPLED"])]
        # the plan in the one shape it has everywhere (manifest, doctor, `netobs run --json`)
        out: dict = {"plan": {f: self.plan.get(f) for f in FIGURES},
                     "lost_events": sums[_LAYOUT["NETOBS_LOST_SLOT"]] + self._slot_conflicts, "histograms": {}, "missing": missing}
        if self.syscall_sample is not None:
            out["sampling"] = {"syscall_time": {
                "every": self.syscall_sample,
                "figures": [ns for _, _, ns in _SYS_KINDS],
                "method": "1 in `every` send/recv syscalls per thread timed (deterministic countdown); "
                          "time = sampled ns x calls / sampled calls; histograms count the sampled calls",
                "sampled": {}, "sampled_ns": {}}}
        slots = _LAYOUT["NETOBS_HIST_SLOTS"]
        for r, role in enumerate(ROLES):
            out[role] = {f: (None if f in missing else sums[r * nfig + i]) for f, i in _FIG_INDEX.items()}
            if self.syscall_sample is not None:
                st = out["sampling"]["syscall_time"]
                st["sampled"][role], st["sampled_ns"][role] = {}, {}
                for k, (kind, calls, ns) in enumerate(_SYS_KINDS):
                    n, t = sampled[r * 2 + k], out[role][ns]
                    st["sampled"][role][kind], st["sampled_ns"][role][kind] = n, t
                    if t is not None and out[role][calls] is not None:
                        out[role][ns] = _scaled(t, out[role][calls], n)
            hists = {}
            for k, name in enumerate(HISTOGRAMS):
                if not self._has_hist:
                    hists[name] = None
                    continue
                base = (r * 2 + k) * slots
                hists[name] = _hist(hist[base:base + slots])
            out["histograms"][role] = hists
        return out


def doctor_facts() -> dict:
    """What tracing can do here, never raising: probe tiers, and per figure the probe that would
    serve it or why none can. The doctor runs the setup step first (`netobs.hostprep`'s own
    doctor_facts); this only looks.

    Shape shared by the doctor's parts: {"ok", "checks": [{name, ok, detail}], "error"?, ...}.
    """
    facts: dict = {"ok": False, "checks": []}
    checks = facts["checks"]
    if os.geteuid() != 0:
        facts["error"] = "kernel tracing needs root"
        facts["plan"] = plan_probes()
        return facts
    try:
        plan = plan_probes()
    except CapabilityError as e:
        facts["error"] = e.message
        facts["plan"] = None
        return facts
    kp = bpfprobe.kprobes_supported()
    checks.append({"name": "kprobes", "ok": kp is None, "detail": kp or "available"})
    fe = bpfprobe.try_fentry("tcp_sendmsg")
    checks.append({"name": "fentry/fexit", "ok": fe is None, "detail": fe or "available"})
    inherit = bpfprobe.try_tracepoint("sched", "sched_process_fork")
    facts["inherit"] = inherit
    checks.append({"name": "children followed (sched_process_fork)", "ok": inherit is None,
                   "detail": inherit or "yes"})
    facts["plan"] = plan
    for f in FIGURES:
        e = plan[f]
        checks.append({"name": f"figure {f}", "ok": e["probe"] is not None,
                       "detail": e["probe"] or f"missing: {e['reason']}"})
    facts["ok"] = any(e["probe"] for e in plan.values())
    return facts
