"""Profiles: the cost-class table, the sampling plan's fallback, and (as root) known workloads
profiled on the real kernel with the C copy workers."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import NETOBS, need_workers
from netobs import costclass
from netobs.figures import PROFILE_CLASSES, WAIT_REASONS

HERE = Path(__file__).resolve().parent


# ---- the data file --------------------------------------------------------------------------

def test_the_table_has_one_fallback_per_space_and_help_for_every_entry():
    t = costclass.table()
    assert [c.name for c in t.classes if c.fallback] == ["user_other", "other"]
    assert all(r.help for r in t.classes + t.reasons)
    assert t.class_names == PROFILE_CLASSES and t.reason_names == WAIT_REASONS
    for name in ("user_copy", "kernel_copy", "zc_pin", "zc_notify", "deferred_copy", "tcp_tx", "tcp_rx",
                 "softirq_rx", "skb_mem", "syscall", "sched", "observer"):
        assert name in t.class_names
    for name in ("sndbuf_full", "wait_data", "errqueue_poll", "lock", "preempted"):
        assert name in t.reason_names


@pytest.mark.parametrize("text,error", [
    ('[[on_cpu.class]]\nname = "a"\nfallback = true\n', "fallback class is needed for user"),
    ('[[on_cpu.class]]\nname = "Bad Name"\n', "lower_case name"),
    ('[[on_cpu.class]]\nname = "a"\nspace = "moon"\n', "space must be"),
    ('[[on_cpu.class]]\nname = "a"\nmatch = "all"\n', "match must be"),
])
def test_a_malformed_table_says_what_is_wrong(text, error):
    with pytest.raises(ValueError, match=error):
        costclass.parse(text)


SEND_SOFTIRQ = ["_raw_spin_unlock_irqrestore", "sock_def_readable", "tcp_data_queue", "tcp_rcv_established",
                "tcp_v4_do_rcv", "tcp_v4_rcv", "ip_local_deliver_finish", "__netif_receive_skb_one_core",
                "process_backlog", "__napi_poll", "net_rx_action", "handle_softirqs", "do_softirq",
                "__local_bh_enable_ip", "__dev_queue_xmit", "ip_finish_output2", "__ip_queue_xmit",
                "__tcp_transmit_skb", "tcp_write_xmit", "tcp_sendmsg_locked", "tcp_sendmsg", "do_syscall_64"]


@pytest.mark.parametrize("kernel,user,klass,context,skid", [
    (["rep_movs_alternative", "_copy_from_iter", "tcp_sendmsg_locked", "tcp_sendmsg", "do_syscall_64"], [],
     "kernel_copy", "task", False),
    # a renamed helper of another kernel version is matched too
    (["copy_user_enhanced_fast_string", "_copy_to_iter", "__skb_datagram_iter", "tcp_recvmsg"], [],
     "kernel_copy", "task", False),
    (SEND_SOFTIRQ, [], "softirq_rx", "softirq", True),       # the sender pays for the receive path
    (["memcpy_orig", "skb_copy_ubufs", "__netif_receive_skb_core.constprop.0", "process_backlog"], [],
     "deferred_copy", "task", False),
    (["internal_get_user_pages_fast", "iov_iter_get_pages2", "__zerocopy_sg_from_iter", "tcp_sendmsg_locked"], [],
     "zc_pin", "task", False),
    (["__msg_zerocopy_callback", "skb_release_data", "tcp_ack"], [], "zc_notify", "task", False),
    (["kmem_cache_alloc_node_noprof", "__alloc_skb", "tcp_stream_alloc_skb", "tcp_sendmsg_locked"], [],
     "skb_mem", "task", False),
    ([], ["__memmove_avx_unaligned_erms", "client_thread"], "user_copy", "task", False),
    ([], ["client_thread", "start_thread"], "user_other", "task", False),
    ([], ["__recv", "conn_thread"], "syscall", "task", True),   # delivered on the syscall's return
    (["syscall_exit_to_user_mode", "do_syscall_64"], [], "syscall", "task", False),
    (["some_new_function", "do_syscall_64"], [], "other", "task", False),   # syscall: the leaf only
    (["bpf_prog_3a5b_netobs_sys_in", "bpf_trace_run2", "__x64_sys_sendto"], [], "observer", "task", False),
    (["tcp_sendmsg_locked.isra.0"], [], "tcp_tx", "task", False),           # a GCC clone's base name
    (["native_apic_msr_eoi", "__sysvec_apic_timer_interrupt", "asm_sysvec_apic_timer_interrupt"], [],
     "other", "irq", False),
])
def test_classes(kernel, user, klass, context, skid):
    s = costclass.classify(kernel, user)
    assert (s.klass, s.context, s.skid) == (klass, context, skid)
    assert (s.unknown is not None) == (klass in ("other", "user_other"))


def test_an_unknown_sample_names_its_innermost_non_skid_function():
    s = costclass.classify(["_raw_spin_unlock_irqrestore", "brand_new_fn", "kthread"], [])
    assert (s.klass, s.unknown, s.skid) == ("other", "brand_new_fn", True)


@pytest.mark.parametrize("kernel,runnable,role,reason", [
    (["__schedule", "schedule", "schedule_timeout", "wait_woken", "sk_stream_wait_memory", "tcp_sendmsg_locked"],
     False, "client", "sndbuf_full"),
    (["__schedule", "schedule", "schedule_timeout", "wait_woken", "sk_wait_data", "tcp_recvmsg_locked"],
     False, "server", "wait_data"),
    (["__schedule", "schedule", "schedule_hrtimeout_range", "do_poll.constprop.0", "do_sys_poll"], False, "client",
     "errqueue_poll"),
    (["__schedule", "schedule", "schedule_hrtimeout_range", "do_poll.constprop.0", "do_sys_poll"], False, "server",
     "poll"),
    (["__schedule", "schedule", "futex_wait_queue", "futex_wait", "do_futex"], False, "client", "lock"),
    (["__schedule", "schedule", "__lock_sock", "lock_sock_nested", "tcp_recvmsg"], False, "server", "lock"),
    (["__schedule", "schedule", "sk_wait_data"], True, "server", "preempted"),
    (["__schedule", "schedule", "do_nanosleep", "hrtimer_nanosleep"], False, "client", "sleep"),
    (["__schedule", "schedule", "worker_thread"], False, "client", "other"),
])
def test_wait_reasons(kernel, runnable, role, reason):
    assert costclass.wait_reason(kernel, runnable, role)[0] == reason


def test_sampling_falls_back_from_cycles_to_cpu_clock(monkeypatch):
    from netobs import bpfprobe, profiler
    monkeypatch.setattr(bpfprobe, "try_perf_event", lambda ev, hz=999: None)   # a host where both open
    monkeypatch.setattr(bpfprobe, "try_tracepoint", lambda c, e, attach=False: None)
    assert profiler.plan_sampling()["on_cpu"]["event"] == "cycles"
    plan = profiler.plan_sampling(refuse={"cycles": "refused (simulated)"})
    assert plan["on_cpu"]["event"] == "cpu-clock"
    assert plan["on_cpu"]["tried"] == [{"event": "cycles", "ok": False, "reason": "refused (simulated)"},
                                       {"event": "cpu-clock", "ok": True}]
    none = profiler.plan_sampling(refuse={"cycles": "no PMU", "cpu-clock": "no hrtimer"})
    assert none["on_cpu"]["event"] is None and none["on_cpu"]["reason"] == "no PMU; no hrtimer"


# ---- user symbols, from caches in a child process ---------------------------------------------

@pytest.mark.integration
def test_the_symbolizer_resolves_a_living_process_and_survives_losing_its_child():
    import ctypes
    import os

    from netobs.symbolizer import Symbolizer
    addr = ctypes.cast(ctypes.CDLL(None).getpid, ctypes.c_void_p).value
    with Symbolizer() as sym:
        assert sym.look(os.getpid())
        (name, module), = sym.resolve(os.getpid(), [addr])
        assert "getpid" in name and "libc" in module, (name, module)
        assert sym.resolve(os.getpid() + 10**6, [addr]) == [(None, None)]      # never looked at
        os.kill(sym._proc.pid, signal.SIGKILL)                                  # the child lost
        sym._proc.wait()
        assert sym.resolve(os.getpid(), [addr]) == [(None, None)] and sym.restarts == 1
        assert sym.look(os.getpid()) and "getpid" in sym.resolve(os.getpid(), [addr])[0][0]
        sym.forget()
        assert sym.resolve(os.getpid(), [addr]) == [(None, None)]


# ---- as root, on the real kernel ------------------------------------------------------------

@pytest.fixture(scope="module")
def loopback(prepared):
    need_workers()
    from netobs import profiler, topology
    with topology.open_topology("loopback") as topo, profiler.Profiler() as prof:
        yield topo, prof


@pytest.fixture(scope="module", params=["loopback", "netns"])
def profiled(request, loopback, tmp_path_factory):
    """One short point per strategy (64 KiB, 1 thread, perf stat around the client), profiled,
    on each topology."""
    import contextlib

    from netobs import topology
    from netobs.runner import open_rig, run_point
    from netobs.spec import RunSpec
    from netobs.store import PointFiles
    _, prof = loopback
    out = {}
    with topology.open_topology(request.param) as topo:
        for strategy in ("two_copy", "one_copy", "zero_copy"):
            spec = RunSpec(strategy=strategy, msg_size=65536, threads=1, duration=0.6, warmup=0.1, profile=True,
                           topology=request.param)
            d = tmp_path_factory.mktemp(strategy)
            with contextlib.ExitStack() as stack:
                out[strategy] = (run_point(spec, open_rig(stack, spec, topo, {"profile": prof}), PointFiles(d)), d)
    return out


def _on(result, role="client"):
    return result["profile"][role]["on_cpu"]


@pytest.mark.root
def test_profile_shape_and_plan(profiled):
    r, d = profiled["one_copy"]
    prof = r["profile"]
    first = prof["plan"]["on_cpu"]["tried"][0]
    assert first["event"] == "cycles"
    # a PMU: cycles; none (a VM): the cpu-clock fallback (planted elsewhere: test_sampling_falls_back_...)
    event = "cycles" if first["ok"] else "cpu-clock"
    assert prof["plan"]["on_cpu"]["event"] == event
    for role in ("client", "server"):
        on, off = prof[role]["on_cpu"], prof[role]["off_cpu"]
        assert on["samples"] > 50 and on["event"] == event and on["hz"] == 999
        assert set(on["classes"]) == set(PROFILE_CLASSES)
        assert sum(on["classes"].values()) == pytest.approx(1.0)
        assert sum(on["context"].values()) == pytest.approx(1.0)
        assert on["cpu_s"] == pytest.approx(on["samples"] / 999)
        assert set(off["reasons"]) == set(WAIT_REASONS) and off["switches"] > 0
        assert sum(off["reasons"].values()) == pytest.approx(off["seconds"])
        # the folded files hold every sample, in the format flamegraph.pl reads
        lines = (d / prof["files"][role]["on_cpu"]).read_text().splitlines()
        assert sum(int(ln.rsplit(" ", 1)[1]) for ln in lines) == on["samples"]
        assert all(ln.split(";")[0] == role and ln.split(";")[1].strip("[]") in PROFILE_CLASSES for ln in lines)
        assert (d / prof["files"][role]["off_cpu"]).exists()
    # perf stat wraps the client: perf itself is followed, not counted
    assert [p["comm"] for p in _on(r)["processes"].values()] == ["python"]
    assert prof["lost"] == {"on_cpu": 0, "off_cpu": 0}
    assert prof["user_leaf_resolved"] > 0.95      # user frames resolved from maps seen while alive


@pytest.mark.root
def test_known_workloads_show_their_copies(profiled):
    two, one, zero = (profiled[s][0] for s in ("two_copy", "one_copy", "zero_copy"))
    assert all(r["profile"]["user_leaf_resolved"] > 0.95 for r in (two, one, zero))
    # two_copy serialises every message with memcpy; one_copy hands the kernel the 8 fields
    assert _on(two)["classes"]["user_copy"] > 0.03
    assert _on(one)["classes"]["user_copy"] < 0.01
    assert _on(two)["classes"]["user_copy"] > 10 * _on(one)["classes"]["user_copy"]
    # zero_copy pins pages, and on loopback the kernel copies them after all
    assert _on(zero)["classes"]["zc_pin"] > 0.01 and _on(one)["classes"]["zc_pin"] == 0
    assert _on(zero)["classes"]["deferred_copy"] > 0.01 and _on(one)["classes"]["deferred_copy"] == 0
    # one_copy's send copy is the kernel's; the server's receive copy is the kernel's too
    assert _on(one)["classes"]["kernel_copy"] > 0.05
    assert _on(one, "server")["classes"]["kernel_copy"] > 0.02   # (much of it skids to the return to user space)
    # the receiver sleeps in recv between messages
    assert one["profile"]["server"]["off_cpu"]["reasons"]["wait_data"] > 0


NOT_READING = textwrap.dedent("""
    import socket, struct, sys, time
    lsn = socket.socket(); lsn.bind(("127.0.0.1", 0)); lsn.listen(1)
    snd = socket.create_connection(lsn.getsockname()); rcv, _ = lsn.accept()   # rcv is never read
    # a blocking send that sleeps in the kernel when the buffer is full (settimeout would poll)
    snd.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 0, 200000))
    print("ready", flush=True)
    sys.stdin.readline()
    end, buf = time.monotonic() + 0.8, b"x" * 65536
    while time.monotonic() < end:
        try:
            snd.send(buf)
        except BlockingIOError:
            pass
""")

BUSY = "import time\nend = time.monotonic() + 3\nwhile time.monotonic() < end: pass\n"


@pytest.mark.root
def test_a_full_send_buffer_and_only_the_points_processes(loopback):
    _, prof = loopback
    sender = subprocess.Popen([sys.executable, "-c", NOT_READING], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    busy = subprocess.Popen([sys.executable, "-c", BUSY])     # on the CPU all along, not in the point
    try:
        assert sender.stdout.readline().strip() == "ready"
        prof.start_point({"client": sender.pid})
        sender.stdin.write("\n")
        sender.stdin.flush()
        assert sender.wait(timeout=30) == 0
        r = prof.stop_point(None, {"client": None})
    finally:
        for p in (sender, busy):
            if p.poll() is None:
                p.kill()
            p.wait()
    assert r["client"]["off_cpu"]["reasons"]["sndbuf_full"] > 0.3
    assert set(r["client"]["on_cpu"]["processes"]) == {str(sender.pid)}
    assert r["server"]["on_cpu"]["samples"] == 0
    assert r["client"]["on_cpu"]["cpu_s_per_gb"]["tcp_tx"] is None     # nothing moved was given: no per-GB


@pytest.mark.root
def test_without_any_sampling_event_the_off_cpu_profile_still_works(prepared):
    need_workers()
    from netobs import profiler
    with profiler.Profiler(refuse={"cycles": "refused (simulated)", "cpu-clock": "refused (simulated)"}) as prof:
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
        prof.start_point({"client": p.pid})
        p.wait()
        r = prof.stop_point(None)
    assert r["client"]["on_cpu"] == {"samples": None, "missing": "refused (simulated); refused (simulated)"}
    assert r["client"]["off_cpu"]["reasons"]["sleep"] > 0.2


def _netobs_bpf() -> set[int]:
    out = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True, check=True).stdout
    return {p["id"] for p in json.loads(out or "[]") if p.get("name", "").startswith("netobs_prof")}


@pytest.mark.root
def test_nothing_stays_loaded_after_a_run_ctrl_c_included(prepared, tmp_path):
    need_workers()
    before = _netobs_bpf()
    done = subprocess.run(NETOBS + ["run", "--strategy", "one_copy", "--msg-size", "4K", "--duration", "0.3",
                                    "--warmup", "0.1", "--topology", "loopback", "--profile", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["profile"]["client"]["on_cpu"]["samples"] > 0
    assert _netobs_bpf() == before
    proc = subprocess.Popen(NETOBS + ["run", "--strategy", "one_copy", "--msg-size", "4K", "--duration", "20",
                                      "--topology", "loopback", "--profile"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (_netobs_bpf() - before) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.1)
        assert _netobs_bpf() - before, "the profiler's programs were never seen loaded"
        time.sleep(1.0)                      # into the point
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
        assert proc.returncode == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _netobs_bpf() == before


@pytest.mark.root
def test_profiling_overhead_bench_runs(prepared):
    need_workers()
    from netobs.bench.__main__ import format_tracing
    from netobs.bench.tracing import tracing_overhead
    (r,) = tracing_overhead(runs=1, sizes=(65536,), duration=0.3, warmup=0.1, topologies=("loopback",),
                            observer="profile")
    assert r["observer"] == "profile" and r["goal_pct"] == 2.0 and r["lost_events"] == 0
    assert len(r["traced_gbps"]) == len(r["untraced_gbps"]) == 1 and r["ratio"] > 0
    plan = r["sampling_plan"]["on_cpu"]
    assert plan["event"] == ("cycles" if plan["tried"][0]["ok"] else "cpu-clock") and r["traced_bytes_match"] is None
    assert "profiling overhead" in format_tracing([r], observer="profile")
