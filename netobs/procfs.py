"""Reading /proc: process stat fields, command lines, the process tree, "Key: value" files,
socket descriptors, TCP listeners and kernel symbols. The one place netobs parses /proc.

A process that is gone (or whose files cannot be read) is None / empty, never an error:
processes end while they are looked at.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

PROC = "/proc"
TCP_LISTEN = "0A"   # the `st` column of /proc/net/tcp for a listening socket


@dataclass(frozen=True)
class Stat:
    """The fields of /proc/PID/stat that netobs uses (proc(5) numbers them from 1)."""

    pid: int
    comm: str          # 2: the command name, as the kernel truncated it (may hold spaces and ')')
    state: str         # 3: R, S, D, Z (zombie), X (dead), ...
    ppid: int          # 4
    starttime: int     # 22: clock ticks after boot; with the pid, it names one process for good


def parse_stat(raw: bytes) -> Stat:
    """One /proc/PID/stat line. comm is in parentheses and may itself contain spaces and
    parentheses, so the fields after it are split after its last ')'."""
    open_at, close_at = raw.index(b"("), raw.rindex(b")")
    rest = raw[close_at + 2:].split()
    return Stat(pid=int(raw[:open_at]), comm=raw[open_at + 1:close_at].decode(errors="replace"),
                state=rest[0].decode(), ppid=int(rest[1]), starttime=int(rest[19]))


def stat(pid: int) -> Stat | None:
    try:
        with open(f"{PROC}/{pid}/stat", "rb") as f:
            return parse_stat(f.read())
    except OSError:  # gone (ENOENT, ESRCH)
        return None


def starttime(pid: int) -> int | None:
    st = stat(pid)
    return None if st is None else st.starttime


def is_gone(pid: int) -> bool:
    """True once `pid` has exited: absent, a zombie or dead."""
    st = stat(pid)
    return st is None or st.state in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"{PROC}/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def pids() -> list[int]:
    """Every process now running (a snapshot)."""
    return [int(name) for name in os.listdir(PROC) if name.isdigit()]


def children() -> dict[int, list[int]]:
    """parent pid -> its children's pids, from every process's stat."""
    out: dict[int, list[int]] = {}
    for pid in pids():
        st = stat(pid)
        if st is not None:
            out.setdefault(st.ppid, []).append(pid)
    return out


def descendants(pid: int, tree: dict[int, list[int]] | None = None) -> list[int]:
    """Children, grandchildren, ... of `pid` (from `tree`, or the process tree now)."""
    tree = children() if tree is None else tree
    out, todo = [], list(tree.get(pid, ()))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(tree.get(p, ()))
    return out


def parse_fields(text: str) -> dict[str, str]:
    """A "Key: value" file (/proc/PID/status, /proc/meminfo, /proc/cpuinfo): the first value
    of each key, stripped (cpuinfo repeats its keys once per CPU)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out.setdefault(key.strip(), value.strip())
    return out


def _fields(path: str) -> dict[str, str]:
    try:
        with open(path) as f:
            return parse_fields(f.read())
    except OSError:
        return {}


def status(pid: int | str = "self") -> dict[str, str]:
    """/proc/PID/status ("CapEff" -> "000001ffffffffff", ...); {} if unreadable."""
    return _fields(f"{PROC}/{pid}/status")


def cap_effective(pid: int | str = "self") -> int:
    """The effective capability bits of `pid` (0 when they cannot be read)."""
    try:
        return int(status(pid).get("CapEff", ""), 16)
    except ValueError:
        return 0


def meminfo() -> dict[str, str]:
    return _fields(f"{PROC}/meminfo")


def cpuinfo() -> dict[str, str]:
    """The first CPU's entries of /proc/cpuinfo."""
    return _fields(f"{PROC}/cpuinfo")


def socket_fds(pid: int) -> list[int]:
    """The descriptors of `pid` that are sockets. Raises OSError when its descriptors cannot be
    listed (gone, or not ours to see); a descriptor closed meanwhile is left out."""
    out = []
    for fd in os.listdir(f"{PROC}/{pid}/fd"):
        try:
            if os.readlink(f"{PROC}/{pid}/fd/{fd}").startswith("socket:"):
                out.append(int(fd))
        except OSError:
            continue
    return out


def tcp_listening(port: int) -> bool:
    """Whether a TCP socket (IPv4 or IPv6) in this namespace listens on `port`. Reading the
    socket tables connects to nothing, so a one-connection server keeps its connection."""
    want = f":{port:04X}"
    for path in (f"{PROC}/net/tcp", f"{PROC}/net/tcp6"):
        try:
            with open(path) as f:
                next(f)  # the header
                for line in f:
                    cols = line.split()
                    if cols[1].endswith(want) and cols[3] == TCP_LISTEN:
                        return True
        except OSError:
            continue
    return False


def boot_id() -> str | None:
    """This kernel's boot id (/proc/sys/kernel/random/boot_id): two processes that read the same
    one run on the same kernel, whatever namespaces or host names they see."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip() or None
    except OSError:
        return None


def parse_kallsyms(lines) -> frozenset[str]:
    """The function names (text symbols, weak ones included) of /proc/kallsyms lines
    ("ffffffff81000000 T _stext", "... t tcp_sendmsg_locked\t[module]")."""
    names = set()
    for line in lines:
        parts = line.split()
        if len(parts) >= 3 and parts[1] in ("t", "T", "w", "W"):
            names.add(parts[2])
    return frozenset(names)


def kernel_functions() -> frozenset[str]:
    """The running kernel's function names (empty when /proc/kallsyms cannot be read)."""
    try:
        with open(f"{PROC}/kallsyms") as f:
            return parse_kallsyms(f)
    except OSError:
        return frozenset()


def maps(pid: int) -> bytes | None:
    """/proc/PID/maps as it is now (what is mapped where), None once the process is gone."""
    try:
        with open(f"{PROC}/{pid}/maps", "rb") as f:
            return f.read()
    except OSError:
        return None


def tgid(pid: int) -> int | None:
    """The process (thread group) a task id belongs to; None once it is gone."""
    return _int_or_none(_fields(f"{PROC}/{pid}/status").get("Tgid"))


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
