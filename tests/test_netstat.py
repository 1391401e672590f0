"""TCP MIB counters: parsing /proc/net/{netstat,snmp}, missing counters, wraps, and reading
them inside each namespace of a topology (root)."""
from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from netobs import netstat, sysctl
from netobs.topology import NETNS_DIR, open_topology

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "netstat"
NETSTAT = (FIXTURES / "netstat-6.18.txt").read_text()
SNMP = (FIXTURES / "snmp-6.18.txt").read_text()
TEXTS = {"netstat": NETSTAT, "snmp": SNMP}


def drop_columns(text: str, group: str, names: set[str]) -> str:
    """`text` as a kernel without the counters `names` of `group` would print it."""
    lines = text.splitlines()
    out = []
    for head, values in zip(lines[0::2], lines[1::2]):
        g, _, ns = head.partition(":")
        _, _, vs = values.partition(":")
        keep = [(n, v) for n, v in zip(ns.split(), vs.split()) if g != group or n not in names]
        out += [f"{g}: " + " ".join(n for n, _ in keep), f"{g}: " + " ".join(v for _, v in keep)]
    return "\n".join(out) + "\n"


def bump(snap: dict, **changes: int) -> dict:
    """A later snapshot: counter "Group_Name" (underscore for the dot) moved by the amount."""
    counters = dict(snap["counters"])
    for key, by in changes.items():
        counters[key.replace("_", ".", 1)] += by
    return {"counters": counters, "missing": dict(snap["missing"])}


# ----------------------------------------------------------------------------- unit (no root)

def test_parse_real_text_pairs_every_name_with_its_value():
    ns, snmp = netstat.parse(NETSTAT), netstat.parse(SNMP)
    heads = {line.split(":")[0]: line.split()[1:] for line in NETSTAT.splitlines()[0::2]}
    assert len([k for k in ns if k.startswith("TcpExt.")]) == len(heads["TcpExt"])
    assert set(k.split(".")[0] for k in ns) == {"TcpExt", "IpExt", "MPTcpExt"}
    assert snmp["Tcp.RtoMin"] == 200 and snmp["Tcp.MaxConn"] == -1   # a signed field
    assert snmp["Tcp.InSegs"] == 5607 and snmp["Tcp.OutSegs"] == 2917 and snmp["Udp.InDatagrams"] == 44
    assert ns["TcpExt.TCPRcvCoalesce"] == 4308 and ns["TcpExt.TCPToZeroWindowAdv"] == 332
    assert ns["TcpExt.TCPAODroppedIcmps"] == 0                        # the last column
    assert ns["IpExt.InOctets"] == 243402338


def test_parse_refuses_text_whose_lines_do_not_pair():
    with pytest.raises(ValueError):
        netstat.parse("Tcp: A B\nTcp: 1\n")
    with pytest.raises(ValueError):
        netstat.parse("Tcp: A B\nUdp: 1 2\n")
    with pytest.raises(ValueError):
        netstat.parse("Tcp: A B\n")
    assert netstat.parse("") == {}


def test_counters_declared_once_with_meanings_and_columns():
    assert len(set(netstat.NAMES)) == len(netstat.NAMES)
    stems = [netstat.column_stem(n) for n in netstat.NAMES]
    assert len(set(stems)) == len(stems)
    assert netstat.column_stem("Tcp.RetransSegs") == "tcp_retranssegs"
    assert netstat.column_stem("TcpExt.TCPRcvQDrop") == "tcpext_tcprcvqdrop"
    for c in netstat.COUNTERS:
        assert c.help and c.unit and c.name.split(".")[0] in netstat.FILE_OF_GROUP
    for name in ("Tcp.OutSegs", "Tcp.InSegs", "Tcp.RetransSegs", "TcpExt.PruneCalled", "TcpExt.RcvPruned",
                 "TcpExt.TCPRcvCollapsed", "TcpExt.OfoPruned", "TcpExt.TCPBacklogDrop", "TcpExt.TCPRcvQDrop",
                 "TcpExt.TCPOFOQueue", "TcpExt.TCPToZeroWindowAdv", "TcpExt.TCPWantZeroWindowAdv",
                 "TcpExt.TCPFromZeroWindowAdv", "TcpExt.TCPMemoryPressures", "TcpExt.TCPAutoCorking",
                 "TcpExt.TCPOrigDataSent"):
        assert name in netstat.BY_NAME


def test_snapshot_of_this_kernel_has_every_counter():
    snap = netstat.snapshot(TEXTS)
    assert snap["missing"] == {} and list(snap["counters"]) == list(netstat.NAMES)
    assert snap["counters"]["Tcp.OutSegs"] == 2917 and snap["counters"]["TcpExt.TCPWantZeroWindowAdv"] == 164


def test_delta_counts_the_change_and_zero_is_zero():
    before = netstat.snapshot(TEXTS)
    after = bump(before, Tcp_OutSegs=1000, TcpExt_TCPRcvCollapsed=7)
    d = netstat.delta(before, after)
    assert list(d) == list(netstat.NAMES)
    assert d["Tcp.OutSegs"] == 1000 and d["TcpExt.TCPRcvCollapsed"] == 7 and d["Tcp.RetransSegs"] == 0
    assert netstat.missing(before, after) == {}


def test_counter_the_kernel_lacks_is_none_with_its_reason():
    old = {"netstat": drop_columns(NETSTAT, "TcpExt", {"TCPRcvQDrop", "TCPZeroWindowDrop"}), "snmp": SNMP}
    before, after = netstat.snapshot(old), netstat.snapshot(old)
    assert set(before["missing"]) == {"TcpExt.TCPRcvQDrop", "TcpExt.TCPZeroWindowDrop"}
    d, why = netstat.delta(before, after), netstat.missing(before, after)
    assert d["TcpExt.TCPRcvQDrop"] is None and d["TcpExt.TCPZeroWindowDrop"] is None   # not 0
    assert d["TcpExt.PruneCalled"] == 0
    assert set(why) == {"TcpExt.TCPRcvQDrop", "TcpExt.TCPZeroWindowDrop"}
    assert "has no TcpExt.TCPRcvQDrop in /proc/net/netstat" in why["TcpExt.TCPRcvQDrop"]


def test_unreadable_or_garbled_file_makes_its_counters_missing():
    snap = netstat.snapshot({"netstat": NETSTAT, "snmp": PermissionError(13, "Permission denied")})
    tcp = {n for n in netstat.NAMES if n.startswith("Tcp.")}
    assert set(snap["missing"]) == tcp and "TcpExt.PruneCalled" in snap["counters"]
    assert snap["missing"]["Tcp.OutSegs"] == "cannot read /proc/net/snmp: Permission denied"
    snap = netstat.snapshot({"netstat": "TcpExt: A B\nTcpExt: 1\n", "snmp": SNMP})
    assert set(snap["missing"]) == set(netstat.NAMES) - tcp
    assert snap["missing"]["TcpExt.OfoPruned"].startswith("cannot parse /proc/net/netstat")


def test_counter_that_went_backwards_is_none():
    before = netstat.snapshot(TEXTS)
    after = bump(before, Tcp_InSegs=-5, Tcp_OutSegs=3)
    d, why = netstat.delta(before, after), netstat.missing(before, after)
    assert d["Tcp.InSegs"] is None and d["Tcp.OutSegs"] == 3
    assert list(why) == ["Tcp.InSegs"] and "went backwards (5607 -> 5602)" in why["Tcp.InSegs"]


def test_missing_after_only_is_none_too():
    before = netstat.snapshot(TEXTS)
    after = netstat.snapshot({"netstat": NETSTAT, "snmp": OSError(2, "No such file or directory")})
    d = netstat.delta(before, after)
    assert d["Tcp.OutSegs"] is None and d["TcpExt.PruneCalled"] == 0
    assert "cannot read /proc/net/snmp" in netstat.missing(before, after)["Tcp.OutSegs"]


def test_read_in_own_namespace_from_given_files(tmp_path):
    (tmp_path / "netstat").write_text(NETSTAT)
    (tmp_path / "snmp").write_text(SNMP)
    assert netstat.read(proc_net=str(tmp_path)) == netstat.snapshot(TEXTS)
    live = netstat.read()   # this kernel, this namespace: each counter a number or missing
    assert sorted([*live["counters"], *live["missing"]]) == sorted(netstat.NAMES)
    assert all(isinstance(v, int) for v in live["counters"].values())


def test_loopback_topology_counts_its_own_namespace():
    with open_topology("loopback", sysctls={}) as topo:
        before = topo.netstat()
        assert before["client"] == before["server"] and before["client"] is not before["server"]
        _transfer(None, None, "127.0.0.1", 256 << 10)
        after = topo.netstat()
    d = netstat.delta(before["client"], after["client"])
    assert d["Tcp.OutSegs"] > 0 and d["Tcp.InSegs"] > 0 and d["TcpExt.TCPOrigDataSent"] > 0


# ----------------------------------------------------------------------------- helpers

def _socket_in(nsfd: int | None, family: int = socket.AF_INET) -> socket.socket:
    """A TCP socket of the namespace `nsfd` (a socket stays in the namespace it was made in,
    whichever thread uses it later)."""
    if nsfd is None:
        return socket.socket(family, socket.SOCK_STREAM)
    return sysctl.in_netns(nsfd, socket.socket, family, socket.SOCK_STREAM)


def _transfer(server_fd: int | None, client_fd: int | None, addr: str, nbytes: int) -> int:
    """Send `nbytes` from a socket of the client's namespace to one of the server's; the
    bytes received. Bounded: 5 s timeouts, one connection."""
    lst = _socket_in(server_fd)
    lst.settimeout(5)
    lst.bind((addr, 0))
    lst.listen(1)
    got = []

    def receive() -> None:
        conn, _ = lst.accept()
        conn.settimeout(5)
        n = 0
        while chunk := conn.recv(1 << 16):
            n += len(chunk)
        got.append(n)
        conn.close()

    t = threading.Thread(target=receive, daemon=True)
    t.start()
    cli = _socket_in(client_fd)
    cli.settimeout(5)
    try:
        cli.connect(lst.getsockname())
        cli.sendall(b"x" * nbytes)
    finally:
        cli.close()
        t.join(10)
        lst.close()
    assert got, "the receiver got no connection"
    return got[0]


# ----------------------------------------------------------------------------- root

@pytest.mark.root
def test_netns_counters_are_each_namespaces_own(root):
    my_ns = os.readlink("/proc/thread-self/ns/net")
    with open_topology("netns", sysctls={}) as topo:
        names = topo.facts()["namespaces"]
        fds = {role: os.open(f"{NETNS_DIR}/{names[role]}", os.O_RDONLY | os.O_CLOEXEC) for role in names}
        try:
            t0 = topo.netstat()
            assert t0["client"]["missing"] == {} and t0["server"]["missing"] == {}
            assert _transfer(fds["server"], fds["client"], topo.server_addr, 4 << 20) == 4 << 20
            t1 = topo.netstat()
            # traffic inside the server's namespace only (its lo): the client's sees none of it
            assert _transfer(fds["server"], fds["server"], "127.0.0.1", 1 << 20) == 1 << 20
            t2 = topo.netstat()
        finally:
            for fd in fds.values():
                os.close(fd)
        assert os.readlink("/proc/thread-self/ns/net") == my_ns   # the caller's thread never moved
    cli, srv = (netstat.delta(t0[r], t1[r]) for r in ("client", "server"))
    assert cli["Tcp.OutSegs"] > 0 and cli["TcpExt.TCPOrigDataSent"] > 0
    assert srv["Tcp.InSegs"] > 0
    # a fresh namespace: every segment the client sent, the server received (and nothing else)
    # fresh namespaces, nothing else in them: every segment the server sent, the client got.
    # (InSegs counts what the receiver's stack saw: one per TSO/GRO aggregate, OutSegs one
    # per MSS-sized segment; on 6.18 over veth 4 MiB were 2902 OutSegs and 76 InSegs)
    assert cli["Tcp.InSegs"] == srv["Tcp.OutSegs"] and srv["Tcp.InSegs"] <= cli["Tcp.OutSegs"]
    cli2, srv2 = (netstat.delta(t1[r], t2[r]) for r in ("client", "server"))
    assert cli2["Tcp.OutSegs"] == 0 and cli2["Tcp.InSegs"] == 0
    assert srv2["Tcp.OutSegs"] > 0 and srv2["Tcp.InSegs"] > 0
