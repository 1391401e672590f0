"""The TCP MIB counters of a network namespace (/proc/net/netstat and /proc/net/snmp), read
inside that namespace, and their change over a point.

    before = netstat.read(nsfd)          # nsfd: an open /run/netns/NAME, or None for ours
    ...                                  # the point runs
    after = netstat.read(nsfd)
    netstat.delta(before, after)         # {"Tcp.RetransSegs": 3, "TcpExt.TCPRcvQDrop": None, ...}
    netstat.missing(before, after)       # {"TcpExt.TCPRcvQDrop": "this kernel (4.19.0) has no ..."}

Both files hold pairs of lines, "Group: Name1 Name2 ..." then "Group: value1 value2 ...";
a counter is named "Group.Name" as the kernel spells both (Tcp.OutSegs, TcpExt.PruneCalled).

/proc/net shows the namespace of the reading *thread* (/proc/thread-self/net; /proc/self/net
follows the process's main thread), so another namespace is read by a short-lived thread
that joins it (`netobs.sysctl.in_netns`) and ends; the caller's thread never moves. No
process is spawned per read.

Missing is not zero: a counter this kernel lacks, or a file that could not be read, is None
with its reason; so is a counter that went backwards between two readings (reset or wrapped).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from netobs import sysctl

PROC_NET = "/proc/thread-self/net"
FILES = ("netstat", "snmp")


@dataclass(frozen=True)
class Counter:
    name: str     # "Group.Name", as the kernel spells both
    unit: str     # what one count is
    help: str     # what it means (for DESIGN.md and the runs.csv column list)


# The counters netobs records, in runs.csv column order. To add one: a row here (the runs.csv
# columns netstat_<role>_<column_stem(name)> follow).
COUNTERS: tuple[Counter, ...] = (
    Counter("Tcp.OutSegs", "segments", "TCP segments sent, pure ACKs included (a TSO/GSO packet counts as its MSS-sized segments)"),
    Counter("Tcp.InSegs", "packets", "TCP packets received as the stack saw them (a GRO/TSO aggregate counts once; errored ones included)"),
    Counter("Tcp.RetransSegs", "segments", "TCP segments retransmitted"),
    Counter("Tcp.InErrs", "segments", "TCP segments received with an error (bad checksum, bad header)"),
    Counter("TcpExt.TCPOrigDataSent", "segments", "segments sent carrying new data (not retransmissions)"),
    Counter("TcpExt.TCPAutoCorking", "sends", "small sends held back to be merged with later data (autocorking)"),
    Counter("TcpExt.PruneCalled", "times", "receive queue over its memory limit: pruning (collapsing) started"),
    Counter("TcpExt.TCPRcvCollapsed", "skbs", "receive-queue skbs collapsed into compact ones (data copied again) to save memory"),
    Counter("TcpExt.RcvPruned", "times", "pruning freed too little: received data dropped (receive buffer overrun)"),
    Counter("TcpExt.OfoPruned", "times", "out-of-order queue thrown away to save memory"),
    Counter("TcpExt.TCPRcvQDrop", "segments", "segments dropped: receive memory could not be charged to the socket"),
    Counter("TcpExt.TCPBacklogDrop", "segments", "segments dropped: socket backlog full while the receiver held the socket"),
    Counter("TcpExt.TCPZeroWindowDrop", "segments", "segments dropped: they arrived while the receive window was zero"),
    Counter("TcpExt.TCPOFOQueue", "segments", "segments that arrived out of order and were queued"),
    Counter("TcpExt.TCPOFODrop", "segments", "out-of-order segments dropped (no receive memory)"),
    Counter("TcpExt.TCPRcvCoalesce", "segments", "received segments merged into the previous skb of the receive queue"),
    Counter("TcpExt.TCPWantZeroWindowAdv", "times", "receiver computed a zero window (buffer full; may not have been sent)"),
    Counter("TcpExt.TCPToZeroWindowAdv", "times", "advertised receive window went from open to zero"),
    Counter("TcpExt.TCPFromZeroWindowAdv", "times", "advertised receive window reopened from zero"),
    Counter("TcpExt.TCPMemoryPressures", "times", "TCP entered memory pressure (net.ipv4.tcp_mem)"),
    Counter("TcpExt.TCPMemoryPressuresChrono", "ms", "time TCP spent under memory pressure"),
    Counter("TcpExt.TCPWqueueTooBig", "times", "a send was refused: the write queue had too many skbs"),
)
NAMES: tuple[str, ...] = tuple(c.name for c in COUNTERS)
BY_NAME: dict[str, Counter] = {c.name: c for c in COUNTERS}
FILE_OF_GROUP = {"Tcp": "snmp", "TcpExt": "netstat"}  # where a recorded group lives


def column_stem(name: str) -> str:
    """"Tcp.RetransSegs" -> "tcp_retranssegs" (runs.csv: netstat_<role>_<stem>)."""
    return name.lower().replace(".", "_")


def parse(text: str) -> dict[str, int]:
    """Every counter of a /proc/net/netstat or /proc/net/snmp text: {"Group.Name": int}.
    Raises ValueError when a names line and its values line do not pair up."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) % 2:
        raise ValueError(f"{len(lines)} lines: names and values lines do not pair up")
    out: dict[str, int] = {}
    for names_line, values_line in zip(lines[0::2], lines[1::2]):
        group, sep, names = names_line.partition(":")
        vgroup, vsep, values = values_line.partition(":")
        if not (sep and vsep) or group != vgroup:
            raise ValueError(f"names line {group!r} is followed by values line {vgroup!r}")
        names_, values_ = names.split(), values.split()
        if len(names_) != len(values_):
            raise ValueError(f"{group}: {len(names_)} names but {len(values_)} values")
        for name, value in zip(names_, values_):
            out[f"{group}.{name}"] = int(value)
    return out


def snapshot(texts: dict[str, str | OSError]) -> dict[str, dict]:
    """The recorded counters from the files' texts ({"netstat": text, "snmp": text}; a file
    that could not be read is its OSError): {"counters": {name: int}, "missing": {name: reason}}."""
    counters: dict[str, int] = {}
    failed: dict[str, str] = {}
    for fname in FILES:
        text = texts.get(fname)
        if text is None or isinstance(text, OSError):
            failed[fname] = f"cannot read /proc/net/{fname}: {getattr(text, 'strerror', None) or 'not read'}"
            continue
        try:
            counters.update(parse(text))
        except ValueError as exc:
            failed[fname] = f"cannot parse /proc/net/{fname}: {exc}"
    out = {name: counters[name] for name in NAMES if name in counters}
    missing = {}
    for name in NAMES:
        if name in out:
            continue
        fname = FILE_OF_GROUP.get(name.split(".")[0], "netstat")
        missing[name] = failed.get(fname) or f"this kernel ({os.uname().release}) has no {name} in /proc/net/{fname}"
    return {"counters": out, "missing": missing}


def _read_texts(proc_net: str) -> dict[str, str | OSError]:
    out: dict[str, str | OSError] = {}
    for fname in FILES:
        try:
            with open(f"{proc_net}/{fname}") as f:
                out[fname] = f.read()
        except OSError as exc:
            out[fname] = exc
    return out


def read(nsfd: int | None = None, proc_net: str = PROC_NET) -> dict[str, dict]:
    """A snapshot (see `snapshot`) of the namespace open as `nsfd` (a descriptor of
    /run/netns/NAME), read by a thread that joins it; `nsfd=None`: the caller's namespace.
    Raises OSError when the thread cannot join the namespace."""
    if nsfd is None:
        texts = _read_texts(proc_net)
    else:
        texts = sysctl.in_netns(nsfd, _read_texts, proc_net)
    return snapshot(texts)


def _compare(before: dict, after: dict) -> tuple[dict[str, int | None], dict[str, str]]:
    values: dict[str, int | None] = {}
    reasons: dict[str, str] = {}
    b, a = before.get("counters", {}), after.get("counters", {})
    for name in NAMES:
        if name not in b or name not in a:
            values[name] = None
            reasons[name] = (after.get("missing", {}).get(name) or before.get("missing", {}).get(name)
                             or f"{name} was not read {'before' if name not in b else 'after'} the point")
        elif a[name] < b[name]:
            values[name] = None
            reasons[name] = f"{name} went backwards ({b[name]} -> {a[name]}): the counter was reset or wrapped"
        else:
            values[name] = a[name] - b[name]
    return values, reasons


def delta(before: dict, after: dict) -> dict[str, int | None]:
    """{name: after - before} for every recorded counter; None where either reading lacks it
    or it went backwards (`missing` says why)."""
    return _compare(before, after)[0]


def missing(before: dict, after: dict) -> dict[str, str]:
    """{name: why its delta is None} for the counters `delta` gives no number for."""
    return _compare(before, after)[1]
