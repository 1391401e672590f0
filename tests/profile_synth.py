"""Synthetic results directories WITH profiles (issue 13), in the format netobs.profiler writes.

`write_profile_results(path, ...)` writes what `netobs sweep --profile` would: synth.py's
runs.csv and manifest (its model, unchanged), plus the prof_*/wait_* columns, each point's
points/<id>/result.json with result["profile"], and its folded stacks (profile-<role>.folded,
offcpu-<role>.folded). Planted truths the tests know: two_copy's client spends USER_COPY of
its samples in user_copy, one_copy none; zero_copy pins pages (zc_pin); every server copies
on receive (kernel_copy); each on-CPU file also holds NOISE one-sample frames (to be trimmed).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from netobs.figures import PROFILE_CLASSES, WAIT_REASONS, point_id, role_column

from synth import write_results

ROLES = ("client", "server")
HZ = 999
NOISE = 40
USER_COPY = 0.30

_SYSCALL = ["entry_SYSCALL_64_[k]", "do_syscall_64_[k]"]
_SEND = _SYSCALL + ["__sys_sendmsg_[k]", "tcp_sendmsg_[k]", "tcp_sendmsg_locked_[k]"]
_RECV = _SYSCALL + ["__sys_recvfrom_[k]", "tcp_recvmsg_[k]", "tcp_recvmsg_locked_[k]"]
# class -> (user frames, kernel frames) of a typical stack of it, per role
STACKS = {
    "client": {
        "user_copy": (["netobs_worker", "worker_loop", "serialize", "__memmove_avx_unaligned_erms"], []),
        "user_other": (["netobs_worker", "worker_loop", "fill_message"], []),
        "kernel_copy": (["netobs_worker", "worker_loop", "__libc_sendmsg"],
                        _SEND + ["_copy_from_iter_[k]", "rep_movs_alternative_[k]"]),
        "zc_pin": (["netobs_worker", "worker_loop", "__libc_sendmsg"],
                   _SEND + ["skb_zerocopy_iter_stream_[k]", "__zerocopy_sg_from_iter_[k]",
                            "iov_iter_get_pages2_[k]"]),
        "zc_notify": (["netobs_worker", "worker_loop", "__libc_recvmsg"],
                      _SYSCALL + ["__sys_recvmsg_[k]", "inet_recv_error_[k]", "ip_recv_error_[k]"]),
        "tcp_tx": (["netobs_worker", "worker_loop", "__libc_sendmsg"], _SEND + ["tcp_push_[k]", "ip_output_[k]"]),
        "softirq_rx": (["netobs_worker", "worker_loop", "__libc_sendmsg"],
                       _SEND + ["__local_bh_enable_ip_[k]", "handle_softirqs_[k]", "net_rx_action_[k]",
                                "tcp_v4_rcv_[k]"]),
        "syscall": (["netobs_worker", "worker_loop", "__libc_sendmsg"], _SYSCALL + ["syscall_exit_to_user_mode_[k]"]),
        "sched": (["netobs_worker", "worker_loop", "__libc_sendmsg"], _SEND + ["schedule_[k]", "__schedule_[k]"]),
        "other": (["netobs_worker"], ["asm_exc_page_fault_[k]", "mystery_function_[k]"]),
    },
    "server": {
        "kernel_copy": (["netobs_worker", "serve", "__libc_recv"],
                        _RECV + ["skb_copy_datagram_iter_[k]", "_copy_to_iter_[k]", "rep_movs_alternative_[k]"]),
        "tcp_rx": (["netobs_worker", "serve", "__libc_recv"], _RECV + ["tcp_rcv_established_[k]"]),
        "skb_mem": (["netobs_worker", "serve", "__libc_recv"], _RECV + ["__kfree_skb_[k]", "kfree_skb_partial_[k]"]),
        "user_other": (["netobs_worker", "serve"], []),
        "other": (["netobs_worker"], ["mystery_function_[k]"]),
    },
}
WAIT_STACKS = {
    "wait_data": ["__libc_recv", "tcp_recvmsg_[k]", "sk_wait_data_[k]", "schedule_[k]"],
    "sndbuf_full": ["__libc_sendmsg", "tcp_sendmsg_locked_[k]", "sk_stream_wait_memory_[k]", "schedule_[k]"],
    "errqueue_poll": ["poll", "do_sys_poll_[k]", "schedule_hrtimeout_range_[k]", "schedule_[k]"],
    "preempted": ["worker_loop", "asm_sysvec_apic_timer_interrupt_[k]", "preempt_schedule_irq_[k]"],
    "sleep": ["nanosleep", "hrtimer_nanosleep_[k]", "schedule_[k]"],
    "lock": ["pthread_join", "futex_wait_[k]", "schedule_[k]"],
}


def class_shares(impl: str, role: str, size: int) -> dict[str, float]:
    """The planted shares of one point's samples per class (every class present, sum 1)."""
    if role == "server":
        w = {"kernel_copy": 0.45, "tcp_rx": 0.25, "skb_mem": 0.15, "user_other": 0.10, "other": 0.05}
    else:
        w = {"kernel_copy": 0.30, "tcp_tx": 0.20, "softirq_rx": 0.15, "syscall": 0.08, "sched": 0.05,
             "user_other": 0.07, "other": 0.05}
        if impl == "two_copy":
            w["user_copy"] = USER_COPY
        elif impl == "zero_copy":
            w.pop("kernel_copy")
            w.update(zc_pin=0.20, zc_notify=0.10 if size < 65536 else 0.04)
    total = sum(w.values())
    return {c: w.get(c, 0.0) / total for c in PROFILE_CLASSES}


def wait_seconds(impl: str, role: str, threads: int) -> dict[str, float]:
    if role == "server":
        w = {"wait_data": 0.6 * threads, "preempted": 0.05}
    else:
        w = {"sndbuf_full": 0.3 * threads, "preempted": 0.1, "sleep": 0.9}
        if impl == "zero_copy":
            w["errqueue_poll"] = 0.5 * threads
    return {r: w.get(r, 0.0) for r in WAIT_REASONS}


def _folded(role: str, shares: dict[str, float], samples: int, noise: int) -> list[str]:
    lines = []
    for klass, share in shares.items():
        n = round(share * samples)
        if n <= 0 or klass not in STACKS[role]:
            continue
        user, kernel = STACKS[role][klass]
        lines.append(";".join([role, f"[{klass}]"] + user + kernel) + f" {n}")
    for i in range(noise):   # narrow frames, one sample each, under the kernel_copy-or-user_other path
        lines.append(f"{role};[other];netobs_worker;noise_{i:02d}_[k] 1")
    return lines


def _offcpu(role: str, seconds: dict[str, float]) -> list[str]:
    return [";".join([role, f"[{r}]", "netobs_worker"] + WAIT_STACKS[r]) + f" {round(s * 1e6)}"
            for r, s in seconds.items() if s > 0 and r in WAIT_STACKS]


def write_profile_results(path, *, impls=("two_copy", "one_copy", "zero_copy"), sizes=(4096, 65536),
                          threads=(1, 2), repeats=1, no_files=(), no_offcpu=(), server_missing=False,
                          noise=NOISE, samples=2000, **kw) -> Path:
    """A results directory with profiles: synth.write_results(path, ...) plus the profile.

    no_files:  point ids whose folded files are not written (their columns are);
    no_offcpu: point ids without off-CPU folded files;
    server_missing: the server's sampling could not attach (its on-CPU columns empty, the
               reason in result.json)."""
    path = write_results(path, impls=impls, sizes=sizes, threads=threads, repeats=repeats, **kw)
    with open(path / "runs.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        columns, rows = list(reader.fieldnames or []), list(reader)
    plan = {"on_cpu": {"event": "cpu-clock", "hz": HZ, "stacks": ["kernel", "user"],
                       "tried": [{"event": "cycles", "ok": False, "reason": "no PMU in this VM"},
                                 {"event": "cpu-clock", "ok": True}]},
            "off_cpu": {"probe": "tracepoint sched:sched_switch"}}
    for row in rows:
        if row.get("status") != "ok":
            continue
        impl, size, t = row["implementation"], int(row["msg_size"]), int(row["threads"])
        pid = point_id(impl, size, t, int(row["repeat"]))
        pdir = path / "points" / pid
        pdir.mkdir(parents=True, exist_ok=True)
        profile = {"plan": plan, "files": {}}
        for role in ROLES:
            gb = float(row["bytes_sent_total"] if role == "client" else row["bytes_received"]) / 1e9
            shares = class_shares(impl, role, size)
            n = samples * t
            cpu_s = n / HZ
            secs = wait_seconds(impl, role, t)
            off = {"switches": 1000 * t, "seconds": sum(secs.values()), "reasons": secs, "unknown": []}
            if role == "server" and server_missing:
                on = {"samples": None, "missing": "perf_event_open(cpu-clock) refused: EACCES (simulated)"}
            else:
                on = {"samples": n, "event": "cpu-clock", "hz": HZ, "cpu_s": cpu_s, "classes": shares,
                      "cpu_s_per_gb": {c: s * cpu_s / gb for c, s in shares.items()},
                      "context": {"task": 0.85, "softirq": 0.15 if role == "client" else 0.0, "irq": 0.0},
                      "skid": {"share": 0.02, "functions": {"__local_bh_enable_ip": 3}},
                      "unknown": [["mystery_function", 5]]}
                for c, s in shares.items():
                    row[role_column("prof", role, c)] = repr(s)
                    row[role_column("prof", role, f"{c}_cpu_s_per_gb")] = repr(s * cpu_s / gb)
                figs = {"samples": str(n), "event": "cpu-clock", "hz": str(HZ), "cpu_s": repr(cpu_s), "skid": "0.02",
                        "softirq": repr(on["context"]["softirq"]), "irq": "0.0"}
                row.update({role_column("prof", role, k): v for k, v in figs.items()})
            # the working threads: all but the harness (its sleep); 95% of the samples are theirs
            work = {r: (0.0 if r == "sleep" else v) for r, v in secs.items()}
            work_on = 0.95 * cpu_s if on.get("samples") else None
            if work_on is not None:
                thread_s = work_on + sum(work.values())
                working = {"on_cpu_s": work_on, "off_cpu_s": sum(work.values()), "thread_s": thread_s,
                           "utilisation": work_on / thread_s, "preempted_share": work["preempted"] / thread_s,
                           "reasons": work}
                for k in ("on_cpu_s", "off_cpu_s", "thread_s", "utilisation", "preempted_share"):
                    row[role_column("work", role, k)] = repr(working[k])
                for r, v in work.items():
                    row[role_column("work", role, f"{r}_s")] = repr(v)
            else:
                working = {"on_cpu_s": None, "missing": on.get("missing")}
            row[role_column("wait", role, "switches")] = str(off["switches"])
            row[role_column("wait", role, "total_s")] = repr(off["seconds"])
            for r, s in secs.items():
                row[role_column("wait", role, f"{r}_s")] = repr(s)
            profile[role] = {"on_cpu": on, "off_cpu": off, "working": working}
            if pid in no_files:
                continue
            files = {}
            if on.get("samples"):
                files["on_cpu"] = f"profile-{role}.folded"
                (pdir / files["on_cpu"]).write_text("\n".join(_folded(role, shares, n, noise)) + "\n")
            if pid not in no_offcpu:
                files["off_cpu"] = f"offcpu-{role}.folded"
                (pdir / files["off_cpu"]).write_text("\n".join(_offcpu(role, secs)) + "\n")
            profile["files"][role] = files
        result = {"implementation": impl, "msg_size": size, "threads": t, "repeat": int(row["repeat"]),
                  "status": "ok", "profile": profile}
        (pdir / "result.json").write_text(json.dumps(result, indent=1))
    for c in (c for r in rows for c in r if c not in columns):   # every column declared already
        raise AssertionError(f"profile column {c} is not in runs.csv's header")
    with open(path / "runs.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["command"] = ["netobs", "sweep", "--trace", "--profile"]
    (path / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return path
