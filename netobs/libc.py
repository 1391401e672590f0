"""The C library, loaded once, and the few system calls netobs makes that Python's `os` lacks.

Each wrapper returns what the call returns or raises `OSError` with the call's errno (its
`strerror` names the call: "setns(CLONE_NEWNET): Invalid argument").

The library is the process's own (dlopen(NULL): the libc the interpreter is linked with, no
`ldconfig` run to find it) and every function is looked up here, at import: a wrapper called
in a forked child before exec (a `preexec_fn` entering a namespace) then looks nothing up.
"""
from __future__ import annotations

import ctypes
import os

CLONE_NEWNET = 0x40000000
# pidfd_getfd(2) has the same number on every architecture but alpha (Linux 5.6+); glibc
# before 2.36 has no wrapper for it.
NR_PIDFD_GETFD = 438

LIBC = ctypes.CDLL(None, use_errno=True)

_setns = LIBC.setns
_setns.argtypes, _setns.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
_unshare = LIBC.unshare
_unshare.argtypes, _unshare.restype = [ctypes.c_int], ctypes.c_int
_mount = LIBC.mount
_mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_mount.restype = ctypes.c_int
_syscall = LIBC.syscall
_syscall.restype = ctypes.c_long


def _checked(ret: int, call: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{call}: {os.strerror(err)}")
    return ret


def _ns_name(nstype: int) -> str:
    return "CLONE_NEWNET" if nstype == CLONE_NEWNET else hex(nstype)


def setns(fd: int, nstype: int = CLONE_NEWNET) -> None:
    """Move the calling thread into the namespace open as `fd` (setns(2))."""
    _checked(_setns(fd, nstype), f"setns({_ns_name(nstype)})")


def unshare(flags: int = CLONE_NEWNET) -> None:
    """Give the calling thread new namespaces of the kinds in `flags` (unshare(2))."""
    _checked(_unshare(flags), f"unshare({_ns_name(flags)})")


def mount(source: str, target: str, fstype: str, flags: int = 0) -> None:
    """mount(2) without filesystem options: `mount -t fstype source target`."""
    _checked(_mount(source.encode(), target.encode(), fstype.encode(), flags, None), f"mount({fstype} on {target})")


def pidfd_getfd(pidfd: int, fd: int) -> int:
    """A duplicate, in this process, of descriptor `fd` of the process behind `pidfd`."""
    return _checked(_syscall(ctypes.c_long(NR_PIDFD_GETFD), ctypes.c_int(pidfd), ctypes.c_int(fd),
                             ctypes.c_uint(0)), "pidfd_getfd")


# perf_event_open(2): x86-64's number (the only architecture netobs builds its workers for)
NR_PERF_EVENT_OPEN = 298
PERF_ATTR_SIZE_VER5 = 112


class PerfEventAttr(ctypes.Structure):
    """struct perf_event_attr up to PERF_ATTR_SIZE_VER5 (what a sampling event needs)."""
    _fields_ = [("type", ctypes.c_uint32), ("size", ctypes.c_uint32), ("config", ctypes.c_uint64),
                ("sample_period_or_freq", ctypes.c_uint64), ("sample_type", ctypes.c_uint64),
                ("read_format", ctypes.c_uint64), ("flags", ctypes.c_uint64),
                ("wakeup_events", ctypes.c_uint32), ("bp_type", ctypes.c_uint32),
                ("config1", ctypes.c_uint64), ("config2", ctypes.c_uint64),
                ("branch_sample_type", ctypes.c_uint64), ("sample_regs_user", ctypes.c_uint64),
                ("sample_stack_user", ctypes.c_uint32), ("clockid", ctypes.c_int32),
                ("sample_regs_intr", ctypes.c_uint64), ("aux_watermark", ctypes.c_uint32),
                ("sample_max_stack", ctypes.c_uint16), ("reserved", ctypes.c_uint16)]


PERF_FLAG_DISABLED = 1 << 0
PERF_FLAG_FREQ = 1 << 10


def perf_event_open(type_: int, config: int, freq: int, cpu: int = 0, pid: int = -1) -> int:
    """A disabled sampling perf event at `freq` Hz on `cpu` (perf_event_open(2)); its fd."""
    attr = PerfEventAttr(type=type_, size=PERF_ATTR_SIZE_VER5, config=config, sample_period_or_freq=freq,
                         flags=PERF_FLAG_DISABLED | PERF_FLAG_FREQ)
    ret = _syscall(ctypes.c_long(NR_PERF_EVENT_OPEN), ctypes.byref(attr), ctypes.c_int(pid), ctypes.c_int(cpu),
                   ctypes.c_int(-1), ctypes.c_ulong(0))
    return _checked(ret, f"perf_event_open(type {type_}, config {config})")
