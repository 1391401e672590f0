"""Kernel tracing (BCC): known workloads traced exactly, only the point's processes counted,
the probe plan's fallbacks, and no BPF program of netobs left loaded afterwards.

Root tests compile the BPF program once per module (the `tracer` fixture).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import need, need_workers

from netobs import strategies

HERE = Path(__file__).resolve().parent
DRIVER = [sys.executable, str(HERE / "trace_driver.py")]
COUNT, SIZE = 23, 4096
TOTAL = COUNT * SIZE


# ---- without root ------------------------------------------------------------------------------

def test_every_figure_has_candidates_best_first():
    from netobs import tracer
    assert {f for figs, _, _ in tracer._GROUPS.values() for f in figs} == set(tracer.FIGURES)
    # every group's candidates are ordered best first: fentry, then kprobe, then tracepoints
    # (raw or regular: a more exact tracepoint, e.g. TCP sends only, comes before a cheaper
    # but coarser one); a tracepoint's raw probe comes before its regular one
    tp_rank = tracer.TIERS.index("raw_tracepoint")
    for figs, cands, _ in tracer._GROUPS.values():
        ranks = [min(tracer.TIERS.index(p.tier), tp_rank) for p in cands]
        assert ranks == sorted(ranks), figs
        for i, p in enumerate(cands):
            if p.tier == "tracepoint":
                hooks = {t for k, t in p.needs if k == "tp"}
                later_raw = [q for q in cands[i + 1:] if q.tier == "raw_tracepoint"
                             and {t for k, t in q.needs if k == "raw"} == hooks]
                assert not later_raw, (figs, p.probe)


def test_plan_without_root_says_why(monkeypatch):
    from netobs import tracer
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    plan = tracer.plan_probes()
    assert set(plan) == set(tracer.FIGURES)
    assert all(e["probe"] is None and "root" in e["reason"] for e in plan.values())


def test_tracer_and_plan_do_not_prepare_the_host(monkeypatch):
    """Without tracefs (simulated), plan_probes and Tracer say to run the setup step; they
    never mount it themselves, nor link headers."""
    from netobs import hostprep, libc, tracer
    from netobs.errors import CapabilityError

    def refuse(*a, **k):
        pytest.fail("host preparation happened as a side effect")

    for mod, name in ((libc, "mount"), (hostprep, "prepare"), (hostprep, "ensure_tracefs"),
                      (hostprep, "ensure_headers")):
        monkeypatch.setattr(mod, name, refuse)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(hostprep, "tracefs_path", lambda: None)
    for make in (tracer.plan_probes, lambda: tracer.Tracer({f: {"probe": None} for f in tracer.FIGURES})):
        with pytest.raises(CapabilityError) as e:
            make()
        assert "tracefs is not mounted" in e.value.message and "netobs doctor" in e.value.message


def test_histogram_buckets():
    from netobs.tracer import _hist
    assert _hist([0, 2, 0, 5] + [0] * 60) == {"1": 2, "4": 5}


def test_sampled_syscall_time_is_scaled_to_all_calls():
    from netobs.tracer import _scaled
    assert _scaled(300, 24, 3) == 2400          # 3 of 24 calls timed: x8
    assert _scaled(300, 23, 3) == 2300
    assert _scaled(500, 5, 5) == 500            # every call timed: exact
    assert _scaled(0, 0, 0) == 0                # no calls: no time
    assert _scaled(0, 4, 0) is None             # calls but none timed: not measured, never 0


def test_plan_records_the_syscall_sampling(monkeypatch):
    from netobs import tracer
    from netobs.errors import UsageError
    entry = {"probe": "raw_tracepoint:x", "tier": "raw_tracepoint", "note": "", "skipped": []}
    monkeypatch.setattr(tracer, "_plan_probes", lambda force: {f: dict(entry) for f in tracer.FIGURES})
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    plan = tracer.plan_probes(syscall_sample=8)
    assert plan["send_syscall_ns"]["sample_every"] == plan["recv_syscalls"]["sample_every"] == 8
    assert "sampled 1 in 8, scaled" in plan["send_syscall_ns"]["note"]
    assert "sampled 1 in 8, scaled" in plan["recv_syscall_ns"]["note"]
    assert "every call counted" in plan["send_syscalls"]["note"]
    assert "sample_every" not in plan["sendmsg_bytes"]
    assert tracer._sample_every(plan) == 8
    exact = tracer.plan_probes(syscall_sample=1)
    assert "every call timed" in exact["send_syscall_ns"]["note"] and tracer._sample_every(exact) == 1
    # a plan from before sampling times every call
    assert tracer._sample_every({f: dict(entry) for f in tracer.FIGURES}) == 1
    plan["recv_syscall_ns"]["sample_every"] = 4
    with pytest.raises(UsageError, match="disagree"):
        tracer._sample_every(plan)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(UsageError):
            tracer.plan_probes(syscall_sample=bad)


# ---- as root ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tracer(prepared):
    from netobs import tracer as tr
    with tr.Tracer() as t:
        yield t


@pytest.mark.root
def test_a_tracer_on_a_prepared_host_changes_nothing(prepared, monkeypatch):
    from netobs import hostprep, libc, tracer as tr

    def refuse(*a, **k):
        pytest.fail("host preparation happened as a side effect")

    for mod, name in ((libc, "mount"), (hostprep, "prepare"), (hostprep, "ensure_tracefs"),
                      (hostprep, "ensure_headers")):
        monkeypatch.setattr(mod, name, refuse)
    links = {p: os.readlink(p) for p in Path("/lib/modules", os.uname().release).glob("*") if p.is_symlink()}
    with tr.Tracer(tr.plan_probes()) as t:
        assert t.plan["sendmsg_bytes"]["probe"]
    assert {p: os.readlink(p) for p in Path("/lib/modules", os.uname().release).glob("*") if p.is_symlink()} == links


def _bpftool(kind: str) -> list[dict]:
    out = subprocess.run(["bpftool", kind, "show", "-j"], capture_output=True, text=True, check=True).stdout
    return json.loads(out or "[]")


def _netobs_objects() -> set[tuple[str, int]]:
    progs = {("prog", p["id"]) for p in _bpftool("prog") if p.get("name", "").startswith("netobs_")}
    maps = {("map", m["id"]) for m in _bpftool("map") if m.get("name", "").startswith("netobs_")}
    return progs | maps


class Pair:
    """A driver server and sender; the sender waits for `go()` so it can be registered first."""

    def __init__(self, mode: str, count: int = COUNT, size: int = SIZE, connect_first: bool = False):
        self.server = subprocess.Popen(DRIVER + ["serve"], stdout=subprocess.PIPE, text=True)
        line = self.server.stdout.readline()
        assert line.startswith("port "), line
        port = int(line.split()[1])
        self.client = subprocess.Popen(DRIVER + ["send", "--port", str(port), "--count", str(count),
                                                 "--size", str(size), "--mode", mode, "--go"]
                                       + (["--connect-first"] if connect_first else []),
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if connect_first:   # wait until its socket exists (then it connects and waits)
            deadline = time.monotonic() + 10
            while not _has_socket(self.client.pid) and time.monotonic() < deadline:
                time.sleep(0.01)

    @property
    def pids(self) -> dict[str, int]:
        return {"client": self.client.pid, "server": self.server.pid}

    def go(self) -> None:
        self.client.stdin.write("go\n")
        self.client.stdin.close()
        self.client.stdin = None

    def wait(self) -> tuple[dict, dict]:
        c_out, _ = self.client.communicate(timeout=30)
        s_out, _ = self.server.communicate(timeout=30)
        assert self.client.returncode == 0 and self.server.returncode == 0
        return json.loads(c_out.splitlines()[-1]), json.loads(s_out.splitlines()[-1])


def _check_exact(trace: dict, sent: dict, recv: dict, zerocopy: bool, recv_in_flight: bool = False) -> None:
    """recv_in_flight: the server may already be blocked in recv() at registration (that call's
    entry is then not seen, so it is not counted as a syscall; its copy is)."""
    c, s = trace["client"], trace["server"]
    assert sent["bytes"] == recv["bytes"] == TOTAL
    assert c["sendmsg_bytes"] == TOTAL, trace
    assert c["sendmsg_calls"] == sent["send_calls"]
    assert s["rx_copy_bytes"] == TOTAL, trace
    assert s["sendmsg_bytes"] == 0 and c["rx_copy_bytes"] == 0
    assert c["send_syscalls"] == sent["send_calls"]
    assert recv["recv_calls"] - recv_in_flight <= s["recv_syscalls"] <= recv["recv_calls"]
    _check_syscall_time(trace, [("client", "send"), ("server", "recv")])
    # whether the receiver had to wait depends on timing; off-CPU time and switches agree
    assert (s["offcpu_switches"] == 0) == (s["offcpu_ns"] == 0)
    assert trace["lost_events"] == 0
    if zerocopy:
        assert c["zc_sends"] == sent["zc_sends"] == sent["send_calls"]
        assert c["zc_send_bytes"] == TOTAL
        assert c["errqueue_reads"] == sent["errqueue_reads"] >= 1
    else:
        assert c["zc_sends"] == 0 and c["zc_send_bytes"] == 0 and c["errqueue_reads"] == 0


def _check_syscall_time(trace: dict, sides, single_thread: bool = True) -> None:
    """Syscall time is sampled: 1 in `every` calls per thread timed, the histogram holds
    exactly the timed calls, and the figure is their time scaled to all calls."""
    st = trace["sampling"]["syscall_time"]
    every = st["every"]
    for role, kind in sides:
        calls, ns = trace[role][f"{kind}_syscalls"], trace[role][f"{kind}_syscall_ns"]
        n, n_ns = st["sampled"][role][kind], st["sampled_ns"][role][kind]
        assert calls > 0
        # a deterministic countdown per thread: its 1st, every+1th, ... calls are timed
        if single_thread:
            assert n == -(-calls // every), (role, kind, calls, n, every)
        else:
            assert -(-calls // every) <= n <= calls
        assert sum(trace["histograms"][role][f"{kind}_syscall_ns_log2"].values()) == n
        assert n_ns > 0 and ns > 0
        assert ns == (n_ns if n == calls else round(n_ns * calls / n))


def _has_socket(pid: int) -> bool:
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd).startswith("socket:"):
                return True
        except OSError:
            continue    # closed while we looked
    return False


@pytest.mark.root
@pytest.mark.parametrize("mode,connect_first", [("send", False), ("sendmsg", False), ("zerocopy", False),
                                                ("zerocopy", True)])
def test_known_workload_is_traced_exactly(tracer, mode, connect_first):
    """connect_first: the sender's SO_ZEROCOPY socket exists before it is registered (its sends'
    flags are read from the start); otherwise it enables SO_ZEROCOPY while traced."""
    for f in ("sendmsg_bytes", "rx_copy_bytes", "zc_sends", "errqueue_reads", "send_syscalls", "offcpu_ns"):
        need(tracer.plan[f]["probe"] is not None, f"a probe for {f}: {tracer.plan[f].get('reason')}")
    pair = Pair(mode, connect_first=connect_first)
    tracer.start_point(pair.pids)
    pair.go()
    sent, recv = pair.wait()
    trace = tracer.stop_point()
    _check_exact(trace, sent, recv, zerocopy=mode == "zerocopy", recv_in_flight=connect_first)
    assert trace["plan"]["sendmsg_bytes"] == tracer.plan["sendmsg_bytes"]   # one shape: the plan's own entries
    for f, why in trace["missing"].items():
        assert trace["client"][f] is None and trace["server"][f] is None and why


OFFCPU_CHILD = """
import socket, sys
a, b = socket.socketpair()
sys.stdin.readline()
a.send(b"x"); b.recv(1)            # a socket syscall: this thread is now traced
b.settimeout(0.3)
try:
    b.recv(1)                      # nothing comes: 0.3 s off the CPU
except socket.timeout:
    pass
"""


@pytest.mark.root
def test_every_call_timed_with_a_sample_of_one(prepared):
    """syscall_sample=1: every send/recv syscall timed, so the time is exact by construction."""
    from netobs import tracer as tr
    plan = tr.plan_probes(syscall_sample=1)
    need(plan["send_syscall_ns"]["probe"] is not None, "a probe for syscall time")
    with tr.Tracer(plan) as t:
        assert "-DNETOBS_SYS_SAMPLE=1" in t.cflags
        pair = Pair("zerocopy")
        t.start_point(pair.pids)
        pair.go()
        sent, recv = pair.wait()
        trace = t.stop_point()
    _check_exact(trace, sent, recv, zerocopy=True)
    st = trace["sampling"]["syscall_time"]
    assert st["every"] == 1
    for role, kind in (("client", "send"), ("client", "recv"), ("server", "recv")):
        calls = trace[role][f"{kind}_syscalls"]
        assert calls > 0 and st["sampled"][role][kind] == calls
        assert trace[role][f"{kind}_syscall_ns"] == st["sampled_ns"][role][kind]
        assert sum(trace["histograms"][role][f"{kind}_syscall_ns_log2"].values()) == calls


@pytest.mark.root
def test_off_cpu_time_of_a_waiting_thread(tracer):
    need(tracer.plan["offcpu_ns"]["probe"] is not None, "a probe for off-CPU time")
    child = subprocess.Popen([sys.executable, "-c", OFFCPU_CHILD], stdin=subprocess.PIPE, text=True)
    tracer.start_point({"client": child.pid})
    child.communicate("go\n", timeout=30)
    c = tracer.stop_point()["client"]
    assert c["offcpu_switches"] >= 1
    assert 0.2e9 <= c["offcpu_ns"] <= 2e9


@pytest.mark.root
def test_only_the_points_processes_are_counted(tracer):
    need(tracer.plan["sendmsg_bytes"]["probe"] is not None, "a send probe")
    point, noise = Pair("sendmsg"), Pair("send", count=200, size=8192)
    tracer.start_point(point.pids)
    noise.go()
    point.go()
    sent, recv = point.wait()
    noise.wait()
    _check_exact(tracer.stop_point(), sent, recv, zerocopy=False)


@pytest.mark.root
def test_children_of_a_registered_process_are_counted(tracer):
    """The client runs as a child of `perf stat`: registering the parent counts its children
    (here a shell that forks the sender after registration)."""
    server = subprocess.Popen(DRIVER + ["serve"], stdout=subprocess.PIPE, text=True)
    port = int(server.stdout.readline().split()[1])
    shell = subprocess.Popen(["/bin/sh", "-c", 'read go; "$@"; true', "sh", *DRIVER, "send",
                              "--port", str(port), "--mode", "send"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    tracer.start_point({"client": shell.pid, "server": server.pid})
    shell.stdin.write("go\n")
    shell.stdin.close()
    shell.stdin = None
    sent = json.loads(shell.communicate(timeout=30)[0].splitlines()[-1])
    recv = json.loads(server.communicate(timeout=30)[0].splitlines()[-1])
    _check_exact(tracer.stop_point(), sent, recv, zerocopy=False)


@pytest.mark.root
def test_plan_falls_back_when_a_probe_is_missing(prepared):
    from netobs import tracer as tr
    best = tr.plan_probes()
    need(best["sendmsg_bytes"]["probe"] is not None, "a send probe")
    # below the function probes, the send figures and error-queue reads come from the syscall
    # programs (raw where they attach, else the regular syscall tracepoints) ...
    raw = tr.plan_probes(force_missing={"fentry", "kprobe"})
    assert raw["sendmsg_calls"]["probe"] == "raw_tracepoint:raw_syscalls:sys_exit(sendto,sendmsg)"
    assert raw["errqueue_reads"]["probe"] == "raw_tracepoint:raw_syscalls:sys_enter(recvfrom,recvmsg flags)"
    plan = tr.plan_probes(force_missing={"fentry", "kprobe", "raw_syscalls:sys_enter"})
    assert plan["sendmsg_calls"]["probe"] == "tracepoint:syscalls:sys_exit_{sendto,sendmsg}"
    assert plan["errqueue_reads"]["probe"] == "tracepoint:syscalls:sys_enter_recvmsg"
    skipped = {s["probe"]: s["reason"] for s in plan["sendmsg_bytes"]["skipped"]}
    assert "forced missing" in skipped["raw_tracepoint:raw_syscalls:sys_exit(sendto,sendmsg)"]
    assert "forced missing" in skipped["kretprobe:tcp_sendmsg"]
    # ... and without those, from the socket tracepoints, raw first
    no_sys = {"fentry", "kprobe", "raw_tracepoint:raw_syscalls:sys_exit(sendto,sendmsg)",
              "raw_tracepoint:raw_syscalls:sys_enter(recvfrom,recvmsg flags)",
              "tracepoint:syscalls:sys_exit_{sendto,sendmsg}", "tracepoint:syscalls:sys_enter_recvmsg"}
    sock = tr.plan_probes(force_missing=no_sys)
    assert sock["sendmsg_bytes"]["probe"] == "raw_tracepoint:sock:sock_send_length"
    assert sock["errqueue_reads"]["probe"] == "raw_tracepoint:sock:sock_recv_length"
    sock_tp = tr.plan_probes(force_missing=no_sys | {"raw_tracepoint"})
    assert sock_tp["sendmsg_bytes"]["probe"] == "tracepoint:sock:sock_send_length"
    assert sock_tp["errqueue_reads"]["probe"] == "tracepoint:sock:sock_recv_length"
    # a figure with no probe left is missing with the reason, never 0
    plan2 = tr.plan_probes(force_missing={"skb:skb_copy_datagram_iovec", "skb_copy_datagram_iter",
                                          "skb_copy_datagram_iovec"})
    assert plan2["rx_copy_bytes"]["probe"] is None and "forced missing" in plan2["rx_copy_bytes"]["reason"]
    # a raw tracepoint missing: its regular tracepoint serves
    plan4 = tr.plan_probes(force_missing={"raw_tracepoint:skb:skb_copy_datagram_iovec"})
    assert plan4["rx_copy_bytes"]["probe"] == "tracepoint:skb:skb_copy_datagram_iovec"
    # one syscall source per plan: where one figure falls back to syscalls:*, all do
    mixed = tr.plan_probes(force_missing={"raw_tracepoint:raw_syscalls:sys_enter(sendto,sendmsg flags)"})
    assert mixed["zc_sends"]["probe"] == "tracepoint:syscalls:sys_enter_sendmsg"
    assert mixed["send_syscalls"]["probe"].startswith("tracepoint:syscalls:")
    assert mixed["offcpu_ns"]["probe"] == "tracepoint:sched:sched_switch"
    # and the fallback plans trace the known workload exactly, too
    for p in (raw, plan, sock, sock_tp):
        p["rx_copy_calls"] = p["rx_copy_bytes"] = plan2["rx_copy_bytes"]
    for p in (raw, plan, sock, sock_tp):
        with tr.Tracer(p) as t:
            for mode in ("sendmsg", "zerocopy"):
                pair = Pair(mode)
                t.start_point(pair.pids)
                pair.go()
                sent, recv = pair.wait()
                trace = t.stop_point()
                assert trace["client"]["sendmsg_bytes"] == TOTAL and trace["client"]["sendmsg_calls"] == sent["send_calls"]
                assert trace["server"]["rx_copy_bytes"] is None and "rx_copy_bytes" in trace["missing"]
                assert trace["client"]["errqueue_reads"] == sent["errqueue_reads"]


def _gone_within(ours: set, seconds: float) -> set:
    """Those of `ours` still loaded after waiting up to `seconds` (the kernel frees lazily)."""
    deadline = time.monotonic() + seconds
    left = ours & _netobs_objects()
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = ours & _netobs_objects()
    return left


HOLDER = textwrap.dedent("""
    import os, sys, time
    from netobs import hostprep
    from netobs.tracer import Tracer
    hostprep.prepare()
    t = Tracer()
    t.start_point({"client": os.getpid()})
    print("ready", flush=True)
    if sys.argv[1] == "close":
        t.stop_point()
        t.close()
        print("closed", flush=True)
        sys.stdin.readline()       # stay alive: the programs must be gone before we exit
    else:
        while True:                # until SIGINT
            time.sleep(0.05)
""")


@pytest.mark.root
@pytest.mark.parametrize("how", ["close", "sigint"])
def test_no_bpf_program_remains_loaded(prepared, how):
    before = _netobs_objects()
    child = subprocess.Popen([sys.executable, "-c", HOLDER, how], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=str(HERE.parent))
    try:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        ours = _netobs_objects() - before
        assert any(kind == "prog" for kind, _ in ours), "the tracer's programs were not visible"
        if how == "close":
            assert child.stdout.readline().strip() == "closed"
            assert not _gone_within(ours, 5), f"still loaded after close(): {sorted(ours & _netobs_objects())}"
            child.stdin.write("\n")
            child.stdin.close()
            assert child.wait(timeout=30) == 0
        else:
            child.send_signal(signal.SIGINT)
            child.wait(timeout=30)
            assert child.returncode != 0   # KeyboardInterrupt
        assert not _gone_within(ours, 5), "netobs BPF objects left loaded"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


# ---- with the real copy workers ------------------------------------------------------------------

def _worker_point(tracer, impl: str, server_args=(), client_args=(), count: int = COUNT, size: int = SIZE):
    """One known workload of the C workers, traced: (client stats, server stats, trace)."""
    from netobs.runner import WORKER as worker
    rfd, wfd = os.pipe()
    server = subprocess.Popen(worker + ["serve", "--connections", "1", "--msg-size", str(size),
                                        "--timeout", "30", "--ready-fd", str(wfd), *server_args],
                              pass_fds=(wfd,), stdout=subprocess.PIPE, text=True)
    os.close(wfd)
    with os.fdopen(rfd) as ready:
        port = int(ready.readline().split()[1])
    # the shell execs the worker after `go`, so the registered pid is the worker's
    client = subprocess.Popen(["/bin/sh", "-c", 'read go; exec "$@"', "sh", *worker, "send", "--port", str(port),
                               "--strategy", impl, "--msg-size", str(size), "--threads", "1", "--count", str(count),
                               *client_args],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    tracer.start_point({"client": client.pid, "server": server.pid})
    client.stdin.write("go\n")
    client.stdin.close()
    client.stdin = None
    c_out, _ = client.communicate(timeout=60)
    s_out, _ = server.communicate(timeout=60)
    trace = tracer.stop_point()
    assert client.returncode == 0 and server.returncode == 0
    return json.loads(c_out), json.loads(s_out), trace


# sends that take the user's pages (or a file's) instead of copying them: all their bytes are
# the zero-copy sends' (MSG_ZEROCOPY, io_uring SENDMSG_ZC, sendfile/splice page references)
_NO_SEND_COPY = {"zero_copy", "io_uring_zc", "sendfile", "splice"}


def _check_worker_trace(impl: str, c: dict, s: dict, trace: dict, total: int, count: int, exact_syscalls=True):
    assert c["bytes_sent_total"] == s["bytes_received"] == total
    tc, ts = trace["client"], trace["server"]
    assert tc["sendmsg_bytes"] == total, trace
    assert trace["lost_events"] == 0
    if tc["zc_send_bytes"] is not None:
        assert tc["zc_send_bytes"] == (total if impl in _NO_SEND_COPY else 0), trace
    if impl in ("io_uring", "io_uring_zc"):
        # one CQE per message (MSG_WAITALL); io_uring_enter calls are its send syscalls (raw tier)
        assert tc["sendmsg_calls"] == count
        assert tc["send_syscalls"] >= (c["io_uring"]["submits"] if exact_syscalls else 0)
    elif exact_syscalls:
        assert tc["send_syscalls"] >= count and tc["sendmsg_calls"] == tc["send_syscalls"]
    if impl == "zero_copy":
        assert tc["zc_sends"] >= count
        assert tc["errqueue_reads"] == c["zerocopy"]["notifications"] >= 1
    elif impl == "io_uring_zc" and tc["zc_sends"] is not None:
        assert tc["zc_sends"] == count and tc["errqueue_reads"] == 0
    elif tc["errqueue_reads"] is not None:
        assert tc["errqueue_reads"] == 0
    return tc, ts


@pytest.mark.root
@pytest.mark.parametrize("impl", strategies.NAMES)
def test_known_workload_with_the_copy_workers(tracer, impl):
    need_workers()
    c, s, trace = _worker_point(tracer, impl, client_args=["--verify"], server_args=["--verify"])
    assert s["verify_errors"] == 0 and s["verify_messages"] == COUNT
    tc, ts = _check_worker_trace(impl, c, s, trace, TOTAL, COUNT)
    assert ts["rx_copy_bytes"] == TOTAL, trace
    if impl not in ("io_uring", "io_uring_zc"):
        _check_syscall_time(trace, [("client", "send"), ("server", "recv")], single_thread=False)


@pytest.mark.root
def test_receive_modes_in_the_trace(tracer):
    """--recv trunc: no receive copy at all; --recv zerocopy: only what it did not map is copied."""
    need_workers()
    size, count = 65536, 200
    c, s, trace = _worker_point(tracer, "one_copy", server_args=["--recv", "trunc"], count=count, size=size)
    assert s["recv"] == "trunc" and s["bytes_received"] == count * size
    assert trace["server"]["rx_copy_bytes"] == 0 and trace["server"]["recv_syscalls"] > 0
    c, s, trace = _worker_point(tracer, "sendfile", server_args=["--recv", "zerocopy", "--verify"],
                                client_args=["--verify"], count=count, size=size)
    z = s["rx_zerocopy"]
    assert z["mapped_bytes"] > 0 and z["mapped_bytes"] + z["copied_bytes"] == count * size
    assert trace["server"]["rx_copy_bytes"] == z["copied_bytes"], (z, trace["server"])
    assert s["verify_errors"] == 0


@pytest.mark.root
def test_new_senders_on_the_fallback_probes(prepared):
    """Where the send figures come from the regular syscall tracepoints or the socket
    tracepoints, io_uring's and sendfile/splice's bytes are still all counted."""
    need_workers()
    from netobs import tracer as tr
    regular = tr.plan_probes(force_missing={"fentry", "kprobe", "raw_syscalls:sys_enter"})
    assert regular["sendmsg_bytes"]["probe"] == "tracepoint:syscalls:sys_exit_{sendto,sendmsg}"
    sock = tr.plan_probes(force_missing={"fentry", "kprobe", "raw_tracepoint:raw_syscalls:sys_exit(sendto,sendmsg)",
                                         "raw_tracepoint:raw_syscalls:sys_enter(recvfrom,recvmsg flags)",
                                         "tracepoint:syscalls:sys_exit_{sendto,sendmsg}",
                                         "tracepoint:syscalls:sys_enter_recvmsg"})
    assert sock["sendmsg_bytes"]["probe"] == "raw_tracepoint:sock:sock_send_length"
    for plan in (regular, sock):
        with tr.Tracer(plan) as t:
            for impl in ("io_uring", "io_uring_zc", "sendfile", "splice"):
                c, s, trace = _worker_point(t, impl)
                _check_worker_trace(impl, c, s, trace, TOTAL, COUNT, exact_syscalls=False)


@pytest.mark.root
def test_tracing_overhead_bench_runs(prepared):
    need_workers()
    from netobs.bench.tracing import tracing_overhead
    (r,) = tracing_overhead(runs=1, sizes=(65536,), duration=0.3, warmup=0.1, topologies=("netns",))
    assert r["topology"] == "netns" and r["msg_size"] == 65536 and len(r["traced_gbps"]) == len(r["untraced_gbps"]) == 1
    assert r["traced_bytes_match"] and r["lost_events"] == 0
    assert r["ratio"] > 0 and r["goal_pct"] == 3.0
    assert r["throughput"]["values"] == [r["traced_gbps"][0] / r["untraced_gbps"][0]]
    assert r["verdict"] == "cannot tell" and r["observer_outside_window"]    # one pair: no interval
    from netobs.tracer import SYSCALL_SAMPLE_EVERY
    if r["probe_plan"]["send_syscall_ns"]:
        assert r["syscall_sample"] == SYSCALL_SAMPLE_EVERY


ZC_HOLDER = """
import socket, sys
s = socket.socket()
if sys.argv[1] == "zc":
    s.setsockopt(socket.SOL_SOCKET, 60, 1)          # SO_ZEROCOPY
print("ready", flush=True)
sys.stdin.readline()
"""


@pytest.mark.root
@pytest.mark.parametrize("kind,expected", [("plain", False), ("zc", True)])
def test_a_zerocopy_socket_is_found_in_another_process(root, kind, expected):
    """The zero-copy gate's seed: getsockopt(SO_ZEROCOPY) on each socket of the process."""
    from netobs.tracer import _may_have_zerocopy_socket
    holder = subprocess.Popen([sys.executable, "-c", ZC_HOLDER, kind], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "ready\n"
        assert _may_have_zerocopy_socket(holder.pid) is expected
    finally:
        holder.communicate("\n", timeout=10)
    assert _may_have_zerocopy_socket(holder.pid) is True    # gone: cannot be told, so maybe


@pytest.mark.root
def test_send_syscall_cost_is_measured_on_this_process(prepared):
    # no tracer fixture: its programs, attached between points, would be in the untraced time
    need_workers()
    from netobs.bench.tracing import send_syscall_cost
    c = send_syscall_cost(rounds=1, calls=2000, trials=3)
    assert c["traced_calls"] == c["expected_calls"] == 6000
    assert 0 < c["untraced_ns"] < c["traced_ns"] and c["added_ns"] == c["traced_ns"] - c["untraced_ns"]


# ---- host preparation (hostprep), on a fake /lib/modules and /usr/src --------------------------

def _fake_headers(src: Path, version: str, flavour: str = "amd64") -> None:
    arch = src / f"linux-headers-{version}-{flavour}"
    (arch / "include" / "generated").mkdir(parents=True)
    (arch / "include" / "generated" / "utsrelease.h").write_text(f'#define UTS_RELEASE "{version}-{flavour}"\n')
    (src / f"linux-headers-{version}-common" / "include" / "linux").mkdir(parents=True)
    (src / f"linux-headers-{version}-common" / "include" / "linux" / "kconfig.h").write_text("")


def test_headers_fallback_links_the_newest_debian_pair(tmp_path, monkeypatch):
    from netobs import hostprep
    src, mods = tmp_path / "src", tmp_path / "modules"
    for v in ("6.1.0-9", "6.1.0-56", "5.10.0-30"):
        _fake_headers(src, v)
    monkeypatch.setattr(hostprep, "SRC_DIR", str(src))
    monkeypatch.setattr(hostprep, "MODULES_DIR", str(mods))
    monkeypatch.setattr(os, "uname", lambda: os.uname_result(("Linux", "h", "6.18.4-custom", "#1", "x86_64")))
    h = hostprep.ensure_headers()
    assert h["fallback"] and h["release"] == "6.1.0-56-amd64" and len(h["created"]) == 2
    assert os.readlink(mods / "6.18.4-custom" / "build") == str(src / "linux-headers-6.1.0-56-amd64")
    assert os.readlink(mods / "6.18.4-custom" / "source") == str(src / "linux-headers-6.1.0-56-common")
    again = hostprep.ensure_headers()           # idempotent: the links are used, nothing new made
    assert again["created"] == [] and again["fallback"]


def test_headers_missing_is_a_capability_error_with_a_fix(tmp_path, monkeypatch):
    from netobs import hostprep
    from netobs.errors import CapabilityError
    monkeypatch.setattr(hostprep, "SRC_DIR", str(tmp_path / "src"))
    monkeypatch.setattr(hostprep, "MODULES_DIR", str(tmp_path / "modules"))
    with pytest.raises(CapabilityError) as e:
        hostprep.ensure_headers()
    assert "linux-headers" in e.value.message and "make setup" in e.value.message


def test_prepare_needs_root(monkeypatch):
    from netobs import hostprep
    from netobs.errors import CapabilityError
    monkeypatch.setattr(hostprep, "_state", None)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(CapabilityError, match="root"):
        hostprep.prepare()


@pytest.mark.root
def test_kprobe_tier_compiles_for_other_kernels(prepared):
    """This kernel has no kprobes, so the kprobe variants never attach here; their C must
    still build (BCC compiles every program of the module; kprobes load only on attach)."""
    from bcc import BPF

    from netobs import bpfload, tracer as tr

    flags = sorted({c for _, probes, _ in tr._GROUPS.values() for p in probes for c in p.cflags
                    if c.endswith("_KPROBE")})
    assert {"-DNETOBS_SEND_KPROBE", "-DNETOBS_RX_KPROBE", "-DNETOBS_ZCCB_KPROBE", "-DNETOBS_ZCDEF_KPROBE"} <= set(flags)
    with bpfload.source_dir() as bpf_dir:
        b = BPF(src_file=str(bpf_dir / "netobs_trace.c").encode(), cflags=[f"-I{bpf_dir}", *flags])
    try:
        for name in (b"netobs_send_kr", b"netobs_rx_kp", b"netobs_zccb_kp", b"netobs_zcdef_kp"):
            assert b.dump_func(name), name  # compiled to BPF bytecode, nothing loaded
    finally:
        b.cleanup()
