"""netobs.procfs: /proc parsed once, right, including the awkward cases (no root needed)."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from netobs import procfs

# A real /proc/PID/stat line (52 fields) whose comm holds spaces and parentheses, even a ") ".
TRICKY = (b"4242 (we) ird (na) me) S 17 4242 4242 0 -1 4194560 255 0 0 0 3 1 0 0 20 0 1 0 "
          b"987654 12345678 512 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n")


def test_stat_fields_after_a_comm_with_spaces_and_parentheses():
    st = procfs.parse_stat(TRICKY)
    assert st == procfs.Stat(pid=4242, comm="we) ird (na) me", state="S", ppid=17, starttime=987654)


@pytest.mark.integration
def test_stat_of_this_process_and_of_one_that_is_gone():
    me = procfs.stat(os.getpid())
    assert me.pid == os.getpid() and me.ppid == os.getppid() and me.state in "RS"
    assert procfs.starttime(os.getpid()) == me.starttime
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    assert procfs.stat(child.pid) is None and procfs.starttime(child.pid) is None and procfs.is_gone(child.pid)


def _until(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.mark.integration
def test_a_zombie_is_gone_and_its_renamed_comm_is_read_back():
    # the child names itself "a (b) c", exits, and stays a zombie until it is waited for
    code = "import ctypes; ctypes.CDLL(None).prctl(15, b'a (b) c', 0, 0, 0)"
    child = subprocess.Popen([sys.executable, "-c", code + "; import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        _until(lambda: procfs.stat(child.pid).comm == "a (b) c")
        assert not procfs.is_gone(child.pid)
        tree = procfs.children()
        assert child.pid in tree[os.getpid()] and child.pid in procfs.descendants(os.getpid(), tree)
        assert procfs.cmdline(child.pid)[:2] == [sys.executable, "-c"]
        child.stdin.close()
        _until(lambda: procfs.stat(child.pid).state == "Z")
        assert procfs.is_gone(child.pid)
    finally:
        child.wait()


def test_descendants_walk_the_whole_tree():
    tree = {1: [2, 3], 2: [4], 4: [5], 3: []}
    assert sorted(procfs.descendants(1, tree)) == [2, 3, 4, 5]
    assert procfs.descendants(5, tree) == []


def test_key_value_files_keep_the_first_value_of_each_key():
    text = "processor\t: 0\nmodel name\t: CPU A\nflags\t\t: fpu hypervisor\n\nprocessor\t: 1\nmodel name\t: CPU B\n"
    assert procfs.parse_fields(text) == {"processor": "0", "model name": "CPU A", "flags": "fpu hypervisor"}
    assert procfs.parse_fields("MemTotal:       2030464 kB\n")["MemTotal"] == "2030464 kB"


def test_status_and_capabilities_of_this_process():
    st = procfs.status()
    assert int(st["Pid"]) == os.getpid() and int(st["PPid"]) == os.getppid()
    assert procfs.cap_effective() == int(st["CapEff"], 16)
    assert procfs.status(2 ** 22 + 1) == {} and procfs.cap_effective(2 ** 22 + 1) == 0  # above pid_max: none


def test_socket_fds_and_tcp_listeners():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        assert s.fileno() in procfs.socket_fds(os.getpid())
        assert not procfs.tcp_listening(port)
        s.listen()
        assert procfs.tcp_listening(port)
    assert not procfs.tcp_listening(port)


def test_kernel_function_names_from_kallsyms():
    lines = ["ffffffff81000000 T _stext\n", "0000000000000000 t tcp_sendmsg_locked\n",
             "0000000000000000 W weak_fn\n", "0000000000000000 D some_data\n", "0000000000000000 b bss\n",
             "0000000000000000 t veth_xmit\t[veth]\n", "garbage\n"]
    assert procfs.parse_kallsyms(lines) == {"_stext", "tcp_sendmsg_locked", "weak_fn", "veth_xmit"}
