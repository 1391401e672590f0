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
