"""Topology: namespaces + veth set up and always torn down; sysctls restored; leftovers cleaned.

Root tests make real namespaces. Each checks, after the topology's life, that its own
namespaces, links, children and host sysctls are gone/restored (other engineers' netobs runs
may exist on the same host at the same time, so the checks name this test's own objects).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, need_workers

from netobs import procfs, sysctl, undolog
from netobs.errors import Interrupted, UsageError
from netobs.interrupt import deferred_signals, signals_as_interrupt
from netobs.topology import (
    DEFAULT_SYSCTLS, NETNS_DIR, NS_RE, VETH_RE, cleanup_leftovers, doctor_facts, open_topology,
)
ROOT_DIR = REPO
DRIVER = Path(__file__).resolve().parent / "topology_driver.py"
GLOBAL_KNOBS = ("net.core.wmem_max", "net.core.rmem_max")

# A tiny receiver: "ready" once listening, then counts bytes from one connection and prints them.
SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5001)); s.listen(1)
print("ready", flush=True)
c, _ = s.accept(); n = 0
while True:
    d = c.recv(1 << 16)
    if not d:
        break
    n += len(d)
print(n, flush=True)
"""
CLIENT = """
import socket, sys
s = socket.create_connection((sys.argv[1], 5001), timeout=10)
s.sendall(b"x" * int(sys.argv[2])); s.close()
"""


# ----------------------------------------------------------------------------- helpers

class HostSysctls(dict):
    """The host's values of the sysctls netobs tunes, and which of them another netobs
    process (another engineer's run on this shared host) held raised at that moment."""

    def __init__(self):
        super().__init__({n: sysctl.read(n) for n in DEFAULT_SYSCTLS})
        self.held_by_others = held_by_other_processes()


def held_by_other_processes() -> set[str]:
    return {n for s in undolog.read_all() if s["alive"] and s["pid"] != os.getpid()
            for n, e in s.get("globals", {}).items() if not e.get("probe")}


host_sysctls = HostSysctls


def assert_sysctls_restored(before: HostSysctls) -> None:
    """Host sysctls equal their previous values, except any that another live netobs process
    held at the start or holds now (it restores them itself when it ends)."""
    skip = before.held_by_others | held_by_other_processes()
    now = HostSysctls()
    for name, value in before.items():
        if name not in skip:
            assert now[name] == value, f"{name}: {now[name]} != {value} before"


def assert_gone(facts: dict, child_pids: list[int]) -> None:
    names = list((facts.get("namespaces") or {}).values())
    for name in names:
        assert not os.path.exists(f"{NETNS_DIR}/{name}"), f"namespace {name} left behind"
    root_links = os.listdir("/sys/class/net")
    for link in (facts.get("links") or {}).values():
        assert link not in root_links or link == "lo", f"link {link} left behind"
    for pid in child_pids:
        assert procfs.is_gone(pid), f"child {pid} still alive"
    assert not undolog.path_for(facts["run_id"]).exists(), "undo-log entry left behind"


def netns_of(pid: int) -> int:
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def start_server(topo, role="server"):
    srv = topo.spawn(role, [sys.executable, "-c", SERVER, topo.server_addr], stdout=subprocess.PIPE, text=True)
    assert srv.stdout.readline().strip() == "ready"  # readiness from the server, not a sleep
    return srv


def send(topo, nbytes: int) -> subprocess.Popen:
    return topo.spawn("client", [sys.executable, "-c", CLIENT, topo.server_addr, str(nbytes)])


def transfer(topo, nbytes: int) -> int:
    srv = start_server(topo)
    cli = send(topo, nbytes)
    assert cli.wait(timeout=10) == 0
    out = srv.communicate(timeout=10)[0]
    assert srv.returncode == 0
    return int(out.strip())


def start_driver(kind: str = "netns", *extra: str) -> tuple[subprocess.Popen, dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT_DIR) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, str(DRIVER), kind, "30", *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    if not line.startswith("ready "):
        proc.kill()
        pytest.fail(f"driver did not get ready: {line!r} {proc.stderr.read()}")
    return proc, json.loads(line[len("ready "):])


def kill_only(pids) -> None:
    """Test hygiene: SIGKILL exactly these PIDs if they are still there."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# ----------------------------------------------------------------------------- unit (no root)

def test_target_only_raises():
    assert sysctl.target("4194304", 16 << 20) == str(16 << 20)
    assert sysctl.target("33554432", 16 << 20) is None
    assert sysctl.target("4096 16384 4194304", 16 << 20) == "4096 16384 16777216"
    assert sysctl.target("4096 131072 33554432", 16 << 20) is None
    assert sysctl.target("1 2 3", "4 5 6") == "4 5 6"
    with pytest.raises(ValueError):
        sysctl.path("kernel.panic")


def test_name_patterns_fit_ifnamsiz():
    assert NS_RE.match("nob4194304-abcdef-s") and not NS_RE.match("notnetobs-test")
    assert VETH_RE.match("nobabcdef-c") and len("nobabcdef-c") <= 15


def test_bad_parameters_are_usage_errors():
    with pytest.raises(UsageError):
        open_topology("bridge")
    with pytest.raises(UsageError):
        open_topology("netns", subnet="10.0.0.1/24")
    with pytest.raises(UsageError):
        open_topology("netns", subnet="10.0.0.0/32")
    with pytest.raises(UsageError):
        open_topology("netns", mtu=10)
    with pytest.raises(UsageError):
        open_topology("netns", sysctls={"kernel.panic": 1})


@pytest.mark.integration
def test_undo_log_entries_name_their_owner_and_survive_only_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(undolog, "STATE_DIR", tmp_path)
    mine = undolog.new_state("1-abcdef", "netns")
    assert mine["starttime"] == procfs.starttime(os.getpid()) and mine["cmdline"] == procfs.cmdline(os.getpid())
    undolog.write(mine)
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    undolog.write(dict(mine, run="2-abcdef", pid=dead.pid))
    (tmp_path / "3-abcdef.json").write_text('{"run": "3-abc')     # cut mid-write by a crash
    assert [(s["run"], s["alive"]) for s in undolog.read_all()] == [("1-abcdef", True), ("2-abcdef", False)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1-abcdef.json", "2-abcdef.json", "3-abcdef.json"]
    undolog.remove("2-abcdef")
    assert [s["run"] for s in undolog.read_all()] == ["1-abcdef"]


def test_signals_as_interrupt_raises_and_restores():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as info:
        with signals_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
    assert info.value.signum == signal.SIGTERM and info.value.exit_code == 130
    assert signal.getsignal(signal.SIGTERM) == before


def test_deferred_signals_hold_until_the_end():
    steps = []
    with pytest.raises(Interrupted):
        with signals_as_interrupt():
            with deferred_signals():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
                steps.append("finished")  # not cut short
    assert steps == ["finished"]


# ----------------------------------------------------------------------------- root

@pytest.mark.root
def test_lifecycle_leaves_nothing(root):
    before = host_sysctls()
    with open_topology() as topo:
        facts = topo.facts()
        assert (topo.server_addr, topo.client_addr) == ("10.0.0.1", "10.0.0.2")
        for role, name in facts["namespaces"].items():
            assert os.path.exists(f"{NETNS_DIR}/{name}")
        kids = {role: topo.spawn(role, [sys.executable, "-c", "import time; time.sleep(60)"]) for role in ("server", "client")}
        for role, proc in kids.items():
            assert netns_of(proc.pid) == os.stat(f"{NETNS_DIR}/{facts['namespaces'][role]}").st_ino
        assert undolog.path_for(facts["run_id"]).exists()
        for name in GLOBAL_KNOBS:
            assert int(sysctl.read(name)) >= 16 << 20
    assert_gone(facts, [p.pid for p in kids.values()])
    assert all(p.returncode is not None for p in kids.values())
    assert_sysctls_restored(before)
    s = topo.facts()["sysctls"]["net.core.wmem_max"]
    assert s["scope"] == "global"
    if not (before.held_by_others or held_by_other_processes()):
        assert s["before"] == before["net.core.wmem_max"]


@pytest.mark.root
def test_exception_inside_cleans_up(root):
    before = host_sysctls()
    with pytest.raises(RuntimeError):
        with open_topology(subnet="192.168.77.0/24", mtu=9000) as topo:
            facts = topo.facts()
            assert facts["mtu"] == 9000 and topo.client_addr == "192.168.77.2"
            pid = topo.spawn("client", [sys.executable, "-c", "import time; time.sleep(60)"]).pid
            raise RuntimeError("boom")
    assert_gone(facts, [pid])
    assert_sysctls_restored(before)


@pytest.mark.root
def test_sysctl_scopes_found_out(root):
    """Written inside the run's namespaces; the host's value did not move => per-namespace."""
    before = host_sysctls()
    with open_topology() as topo:
        s = topo.facts()["sysctls"]
        assert sysctl.read("net.core.optmem_max") == before["net.core.optmem_max"] or before.held_by_others
    assert s["net.core.wmem_max"]["scope"] == s["net.core.rmem_max"]["scope"] == "global"
    for name in ("net.core.optmem_max", "net.ipv4.tcp_wmem", "net.ipv4.tcp_rmem"):
        assert s[name]["scope"] == "netns", s[name]
        if name not in before.held_by_others:
            assert s[name]["host_value"] == before[name]
    assert s["net.core.optmem_max"]["verified"] and int(s["net.core.optmem_max"]["after"]) >= 1 << 20
    json.dumps(s)


@pytest.mark.root
@pytest.mark.parametrize("sig,extra", [(signal.SIGINT, ()), (signal.SIGTERM, ()), (signal.SIGTERM, ("bare",))],
                         ids=["SIGINT", "SIGTERM", "SIGTERM-no-caller-handler"])
def test_signal_mid_life_cleans_up(root, sig, extra):
    before = host_sysctls()
    proc, facts = start_driver("netns", *extra)
    kids = list(facts["child_pids"].values())
    try:
        for name in facts["namespaces"].values():
            assert os.path.exists(f"{NETNS_DIR}/{name}")
        proc.send_signal(sig)
        rc = proc.wait(timeout=10)
        assert rc == 130, proc.stderr.read()  # interrupted: 130 for SIGINT and SIGTERM alike
        assert_gone(facts, kids)
        assert_sysctls_restored(before)
    finally:
        if proc.poll() is None:
            kill_only([proc.pid])
            proc.wait()
        kill_only(p for p in kids if not procfs.is_gone(p))
        cleanup_leftovers()


@pytest.mark.root
def test_sigkilled_run_is_cleaned_by_next_start(root):
    before = host_sysctls()
    proc, facts = start_driver()
    kids = list(facts["child_pids"].values())
    unrelated = "notnetobs-test"
    from pyroute2 import netns
    netns.create(unrelated)
    try:
        proc.kill()
        proc.wait(timeout=5)
        # what a SIGKILL leaves: namespaces, children, the state file, raised host sysctls
        for name in facts["namespaces"].values():
            assert os.path.exists(f"{NETNS_DIR}/{name}")
        assert not any(procfs.is_gone(p) for p in kids)
        assert undolog.path_for(facts["run_id"]).exists()
        removed = cleanup_leftovers()
        for name in facts["namespaces"].values():
            assert f"namespace {name}" in removed
        assert all(f"process {p}" in removed for p in kids)
        assert_gone(facts, kids)
        assert_sysctls_restored(before)
        assert os.path.exists(f"{NETNS_DIR}/{unrelated}"), "an unrelated namespace was touched"
    finally:
        kill_only(p for p in kids if not procfs.is_gone(p))
        netns.remove(unrelated)
        cleanup_leftovers()


SNMP_RETRANS = ("import sys; t = [l.split() for l in open('/proc/net/snmp') if l.startswith('Tcp:')]; "
                 "print(t[1][t[0].index('RetransSegs')])")


def retransmitted_segments(topo) -> int:
    """TCP segments the client's namespace sent again (its own /proc/net/snmp)."""
    proc = topo.spawn("client", [sys.executable, "-c", SNMP_RETRANS], stdout=subprocess.PIPE, text=True)
    return int(proc.communicate(timeout=10)[0])


@pytest.mark.root
def test_traffic_crosses_the_veth(root):
    n = 20_000_000
    with open_topology() as topo:
        start = topo.link_stats()
        assert transfer(topo, n) == n
        end = topo.link_stats()
        retrans = retransmitted_segments(topo)
    moved = {role: {k: end[role][k] - start[role][k] for k in end[role]} for role in end}
    # every byte went out of the client's end and into the server's; TCP/IP/Ethernet headers
    # (~66 B per ~64 KiB GSO segment, ACKs the other way) stay far below 2 %. A loaded host can
    # make TCP send segments again: those cross the veth twice, so they are allowed for.
    for sent in (moved["client"]["tx_bytes"], moved["server"]["rx_bytes"]):
        assert n <= sent <= n * 1.02 + retrans * 1514, (moved, retrans)
    assert abs(moved["client"]["tx_bytes"] - moved["server"]["rx_bytes"]) <= 1500  # one stray frame at most


@pytest.mark.root
def test_two_runs_in_two_processes(root):
    """Two netobs processes at once: both come up; the first to end leaves the raised host
    sysctls to the second, which restores them."""
    before = host_sysctls()
    (p1, f1), (p2, f2) = start_driver(), start_driver()
    kids = list(f1["child_pids"].values()) + list(f2["child_pids"].values())
    try:
        assert f1["namespaces"] != f2["namespaces"] and f1["server_addr"] == f2["server_addr"]
        p1.send_signal(signal.SIGINT)
        assert p1.wait(timeout=10) == 130
        for name in GLOBAL_KNOBS:
            assert int(sysctl.read(name)) >= 16 << 20, "restored while another run still needs it"
        p2.send_signal(signal.SIGINT)
        assert p2.wait(timeout=10) == 130
        assert_gone(f1, kids)
        assert_gone(f2, kids)
        assert_sysctls_restored(before)
    finally:
        for p in (p1, p2):
            if p.poll() is None:
                kill_only([p.pid])
                p.wait()
        kill_only(p for p in kids if not procfs.is_gone(p))
        cleanup_leftovers()


@pytest.mark.root
def test_overlapping_loopback_and_netns_runs_restore_host(root):
    """Loopback runs raise per-namespace sysctls on the host while netns runs verify theirs;
    overlapping, neither may mistake the other's change for its own, nor leave one raised."""
    before = host_sysctls()
    env = {**os.environ, "PYTHONPATH": str(ROOT_DIR) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    loop = subprocess.Popen([sys.executable, "-c", "import time\nfrom netobs.topology import open_topology\n"
                             "for _ in range(25):\n    with open_topology('loopback'): time.sleep(0.01)"], env=env)
    try:
        while loop.poll() is None:
            with open_topology() as topo:
                s = topo.facts()["sysctls"]
            assert all(s[n]["scope"] == "netns" for n in ("net.core.optmem_max", "net.ipv4.tcp_wmem")), s
        assert loop.returncode == 0
    finally:
        if loop.poll() is None:
            kill_only([loop.pid])
            loop.wait()
    assert_sysctls_restored(before)


@pytest.mark.root
def test_worker_bytes_match_veth_counters(root):
    """The C copy workers (when built) across the veth: counters agree with their byte counts."""
    need_workers()
    from netobs.runner import WORKER as worker
    with open_topology() as topo:
        rfd, wfd = os.pipe()
        srv = topo.spawn("server", worker + ["serve", "--bind", topo.server_addr, "--port", "5201",
                                             "--connections", "1", "--timeout", "10", "--ready-fd", str(wfd)],
                         stdout=subprocess.PIPE, text=True, pass_fds=(wfd,))
        os.close(wfd)
        with os.fdopen(rfd) as ready:
            assert ready.readline().startswith("ready")
        start = topo.link_stats()
        cli = topo.spawn("client", worker + ["send", "--host", topo.server_addr, "--port", "5201",
                                             "--strategy", "one_copy", "--msg-size", "65536", "--threads", "1",
                                             "--count", "300"], stdout=subprocess.PIPE, text=True)
        sent = json.loads(cli.communicate(timeout=10)[0])
        got = json.loads(srv.communicate(timeout=10)[0])
        assert cli.returncode == 0 and srv.returncode == 0
        end = topo.link_stats()
        retrans = retransmitted_segments(topo)
    n = 300 * 65536
    wire = end["client"]["tx_bytes"] - start["client"]["tx_bytes"]
    assert n <= wire <= n * 1.02 + retrans * 1514, (wire, retrans, sent, got)


@pytest.mark.root
def test_two_topologies_at_once(root):
    before = host_sysctls()
    a = open_topology()
    try:
        with open_topology() as b:
            assert a.facts()["namespaces"] != b.facts()["namespaces"]
            assert a.server_addr == b.server_addr  # same addresses, separate namespaces
            srv_a, srv_b = start_server(a), start_server(b)
            cli_a, cli_b = send(a, 3_000_000), send(b, 5_000_000)  # both at the same time
            assert cli_a.wait(timeout=10) == 0 and cli_b.wait(timeout=10) == 0
            assert int(srv_a.communicate(timeout=10)[0]) == 3_000_000
            assert int(srv_b.communicate(timeout=10)[0]) == 5_000_000
            fb = b.facts()
            a.close()  # out of order: b still needs the raised buffer maxima
            for name in GLOBAL_KNOBS:
                assert int(sysctl.read(name)) >= 16 << 20
        assert_gone(fb, [])
        assert_sysctls_restored(before)
    finally:
        a.close()
    assert_gone(a.facts(), [])


@pytest.mark.root
def test_ipv6_subnet(root):
    with open_topology(subnet="fd00:6e6f:6273::/64", sysctls={}) as topo:
        assert (topo.server_addr, topo.client_addr) == ("fd00:6e6f:6273::1", "fd00:6e6f:6273::2")
        assert transfer(topo, 1_000_000) == 1_000_000
        facts = topo.facts()
    assert_gone(facts, [])


@pytest.mark.root
def test_loopback(root):
    before = host_sysctls()
    with open_topology("loopback") as topo:
        assert topo.server_addr == topo.client_addr == "127.0.0.1"
        start = topo.link_stats()
        assert transfer(topo, 2_000_000) == 2_000_000
        end = topo.link_stats()
        assert end["server"]["rx_bytes"] - start["server"]["rx_bytes"] >= 2_000_000
        facts = topo.facts()
    assert facts["kind"] == "loopback" and facts["namespaces"] is None
    assert_sysctls_restored(before)


@pytest.mark.root
def test_doctor_changes_nothing(root):
    before = host_sysctls()
    d = doctor_facts()
    assert d["netns_veth"]["ok"], d
    assert d["sysctls"]["net.core.wmem_max"]["scope"] == "global"
    assert d["sysctls"]["net.core.optmem_max"]["scope"] == "netns"
    assert d["ok"] and {c["name"] for c in d["checks"]} >= {"namespaces + veth", "net.core.wmem_max"}
    assert_sysctls_restored(before)
    json.dumps(d)


@pytest.mark.root
def test_stateless_leftover_judged_by_owner_pid(root):
    """A netobs-named namespace without a state file: removed if its owner PID is gone, kept if
    the owner is a live Python process (a run that is still starting)."""
    from pyroute2 import netns
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead_name, live_name = f"nob{gone.pid}-0a0b0c-s", f"nob{os.getpid()}-0d0e0f-s"
    for name in (dead_name, live_name):
        netns.create(name)
    try:
        removed = cleanup_leftovers()
        assert f"namespace {dead_name}" in removed and not os.path.exists(f"{NETNS_DIR}/{dead_name}")
        assert os.path.exists(f"{NETNS_DIR}/{live_name}")
    finally:
        for name in (dead_name, live_name):
            if os.path.exists(f"{NETNS_DIR}/{name}"):
                netns.remove(name)
