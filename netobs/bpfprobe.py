"""Would this probe attach here? Feature detection for the tracer's probe plan, no compiler needed.

`try_tracepoint`, `try_raw_tracepoint`, `try_kprobe`, `try_fentry` answer by really loading a
two-instruction program and attaching it (then closing it at once): a kernel can advertise a
feature it refuses (BCC's `support_kfunc()` is True on kernels that refuse fentry with EPERM).
`btf_member` reads a struct member's offset from the running kernel's own BTF. They use libbcc
and libbpf through ctypes; each returns None when the answer is yes, else why not.

Nothing here changes the host: tracefs must already be mounted (`netobs.hostprep.prepare()`).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
import re

from netobs import procfs
from netobs.hostprep import tracefs_path

# r0 = 0; exit
_NOP_PROG = bytes.fromhex("b700000000000000" "9500000000000000")
BPF_PROG_TYPE_KPROBE = 2
BPF_PROG_TYPE_TRACEPOINT = 5
BPF_PROG_TYPE_RAW_TRACEPOINT = 17
BPF_PROG_TYPE_TRACING = 26
BPF_TRACE_FENTRY = 24
BPF_TRACE_FEXIT = 25
BTF_KIND_STRUCT = 4
BTF_KIND_FUNC = 12


class _ProgLoadOpts(ctypes.Structure):
    # libbpf's struct bpf_prog_load_opts up to attach_btf_obj_fd; `sz` tells libbpf where it ends.
    _fields_ = [("sz", ctypes.c_size_t), ("attempts", ctypes.c_int),
                ("expected_attach_type", ctypes.c_uint32), ("prog_btf_fd", ctypes.c_uint32),
                ("prog_flags", ctypes.c_uint32), ("prog_ifindex", ctypes.c_uint32),
                ("kern_version", ctypes.c_uint32), ("attach_btf_id", ctypes.c_uint32),
                ("attach_prog_fd", ctypes.c_uint32), ("attach_btf_obj_fd", ctypes.c_uint32)]


class _BtfType(ctypes.Structure):
    _fields_ = [("name_off", ctypes.c_uint32), ("info", ctypes.c_uint32), ("size", ctypes.c_uint32)]


class _BtfMember(ctypes.Structure):
    _fields_ = [("name_off", ctypes.c_uint32), ("type", ctypes.c_uint32), ("offset", ctypes.c_uint32)]


@functools.lru_cache(maxsize=1)
def libbcc():
    from bcc.libbcc import lib  # the loader BCC itself uses
    lib.bcc_prog_load.restype = ctypes.c_int
    lib.bcc_prog_load.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int,
                                  ctypes.c_char_p, ctypes.c_uint, ctypes.c_int, ctypes.c_char_p,
                                  ctypes.c_uint]
    return lib


@functools.lru_cache(maxsize=1)
def libbpf():
    lib = ctypes.CDLL(ctypes.util.find_library("bpf") or "libbpf.so.1", use_errno=True)
    lib.libbpf_find_vmlinux_btf_id.restype = ctypes.c_int
    lib.libbpf_find_vmlinux_btf_id.argtypes = [ctypes.c_char_p, ctypes.c_int]
    lib.bpf_prog_load.restype = ctypes.c_int
    lib.bpf_prog_load.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p,
                                  ctypes.c_size_t, ctypes.POINTER(_ProgLoadOpts)]
    lib.bpf_raw_tracepoint_open.restype = ctypes.c_int
    lib.bpf_raw_tracepoint_open.argtypes = [ctypes.c_char_p, ctypes.c_int]
    lib.btf__load_vmlinux_btf.restype = ctypes.c_void_p
    lib.btf__load_vmlinux_btf.argtypes = []
    lib.btf__find_by_name_kind.restype = ctypes.c_int
    lib.btf__find_by_name_kind.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32]
    lib.btf__type_by_id.restype = ctypes.c_void_p
    lib.btf__type_by_id.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.btf__name_by_offset.restype = ctypes.c_char_p
    lib.btf__name_by_offset.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.btf__resolve_size.restype = ctypes.c_long
    lib.btf__resolve_size.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.libbpf_get_error.restype = ctypes.c_long
    lib.libbpf_get_error.argtypes = [ctypes.c_void_p]
    lib.libbpf_set_print.restype = ctypes.c_void_p
    lib.libbpf_set_print.argtypes = [ctypes.c_void_p]
    return lib


def _kern_version() -> int:
    nums = [int(x) for x in re.findall(r"\d+", os.uname().release)[:3]] + [0, 0, 0]
    return (nums[0] << 16) + (nums[1] << 8) + min(nums[2], 255)


def _load_nop(prog_type: int) -> int:
    lib = libbcc()
    buf = ctypes.create_string_buffer(_NOP_PROG, len(_NOP_PROG))
    fd = lib.bcc_prog_load(prog_type, b"netobs_probe", buf, len(_NOP_PROG), b"GPL",
                           _kern_version(), 0, None, 0)
    if fd < 0:
        err = ctypes.get_errno() or -fd
        raise OSError(err, os.strerror(err))
    return fd


def _errname(e: OSError) -> str:
    return f"{errno.errorcode.get(e.errno, e.errno)} ({e.strerror})"


def _neg_errno(ret: int) -> str:
    """libbpf's -errno return value as "EPERM (Operation not permitted)"."""
    return _errname(OSError(-ret, os.strerror(-ret)))


def _tracepoint_missing(category: str, event: str) -> str | None:
    path = tracefs_path()
    if path is None:
        return "tracefs is not mounted"
    if not os.path.isfile(os.path.join(path, "events", category, event, "id")):
        return f"tracepoint {category}:{event} does not exist on this kernel"
    return None


# ---- tracepoints ---------------------------------------------------------------------------

def try_tracepoint(category: str, event: str, attach: bool = False) -> str | None:
    """None when a BPF program can attach to tracepoint category:event here, else why not.

    Each event is checked for existence; a real attach is tried once per process (on the
    first event asked, or on this one with `attach`): enabling a tracepoint costs about a
    tenth of a second in a VM, and tracepoints, unlike fentry, do not advertise what they refuse.
    """
    why = _tracepoint_missing(category, event)
    if why:
        return why
    if attach:
        return _attach_tracepoint(category, event)
    return _tracepoints_attach(category, event)


_tp_tier: dict = {}


def _tracepoints_attach(category: str, event: str) -> str | None:
    if "result" not in _tp_tier:
        why = _attach_tracepoint(category, event)
        _tp_tier["result"] = None if why is None else f"tracepoint programs do not attach here ({why})"
    return _tp_tier["result"]


def _attach_tracepoint(category: str, event: str) -> str | None:
    try:
        fd = _load_nop(BPF_PROG_TYPE_TRACEPOINT)
    except OSError as e:
        return f"loading a tracepoint program failed: {_errname(e)}"
    try:
        lib = libbcc()
        pfd = lib.bpf_attach_tracepoint(fd, category.encode(), event.encode())
        if pfd < 0:
            return f"attaching to {category}:{event} failed"
        lib.bpf_close_perf_event_fd(pfd)
        return None
    finally:
        os.close(fd)


def try_raw_tracepoint(category: str, event: str) -> str | None:
    """None when a raw tracepoint program attaches to category:event here, else why not."""
    why = _tracepoint_missing(category, event)
    if why:
        return why
    try:
        fd = _load_nop(BPF_PROG_TYPE_RAW_TRACEPOINT)
    except OSError as e:
        return f"loading a raw tracepoint program failed: {_errname(e)}"
    try:
        link = libbpf().bpf_raw_tracepoint_open(event.encode(), fd)
        if link < 0:
            return f"attaching a raw tracepoint program to {event} failed: {_neg_errno(link)}"
        os.close(link)
        return None
    except OSError as e:
        return f"libbpf unavailable: {e}"
    finally:
        os.close(fd)


# ---- kprobes -------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def kallsyms() -> frozenset[str]:
    """The kernel's function names (read once: /proc/kallsyms is large)."""
    return procfs.kernel_functions()


def kprobes_supported() -> str | None:
    """None when the kernel offers kprobes to BPF, else why not."""
    path = tracefs_path()
    if os.path.isdir("/sys/bus/event_source/devices/kprobe"):
        return None
    if path and os.path.exists(os.path.join(path, "kprobe_events")):
        return None
    return "kernel has no kprobes (no kprobe PMU, no kprobe_events; CONFIG_KPROBES off)"


@functools.lru_cache(maxsize=None)
def try_kprobe(function: str, ret: bool = False) -> str | None:
    """None when a kprobe (kretprobe if `ret`) attaches to `function` here, else why not."""
    why = kprobes_supported()
    if why:
        return why
    if function not in kallsyms():
        return f"{function} is not in /proc/kallsyms (renamed, inlined or absent)"
    try:
        fd = _load_nop(BPF_PROG_TYPE_KPROBE)
    except OSError as e:
        return f"loading a kprobe program failed: {_errname(e)}"
    try:
        lib = libbcc()
        ev = f"netobs_try_{os.getpid()}_{'r' if ret else 'p'}_{function}".encode()
        pfd = lib.bpf_attach_kprobe(fd, 1 if ret else 0, ev, function.encode(), 0, 0)
        if pfd < 0:
            return f"attaching a {'kretprobe' if ret else 'kprobe'} to {function} failed"
        lib.bpf_close_perf_event_fd(pfd)
        lib.bpf_detach_kprobe(ev)
        return None
    finally:
        os.close(fd)


# ---- fentry/fexit and BTF ------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _support_kfunc() -> bool:
    import warnings
    from bcc import BPF  # BCC's own test (it scans kallsyms: do it once)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # BCC passes itself a str
        return bool(BPF.support_kfunc())


@functools.lru_cache(maxsize=1)
def _vmlinux_btf():
    """libbpf's parsed vmlinux BTF (kept for the process: parsing it takes a quarter second)."""
    lib = libbpf()
    old_print = lib.libbpf_set_print(None)
    try:
        btf = lib.btf__load_vmlinux_btf()
    finally:
        lib.libbpf_set_print(old_print)
    if not btf or lib.libbpf_get_error(btf):
        return None
    return btf


@functools.lru_cache(maxsize=None)
def try_fentry(function: str, ret: bool = False) -> str | None:
    """None when an fentry (fexit if `ret`) program attaches to `function` here, else why not."""
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        return "kernel has no BTF (/sys/kernel/btf/vmlinux), so no fentry/fexit"
    try:
        if not _support_kfunc():
            return "kernel lacks BPF trampolines (fentry/fexit), or BCC cannot use them on this arch"
        lib = libbpf()
    except (ImportError, OSError) as e:
        return f"libbpf unavailable: {e}"
    attach = BPF_TRACE_FEXIT if ret else BPF_TRACE_FENTRY
    btf = _vmlinux_btf()
    if not btf:
        return "the kernel's BTF could not be parsed"
    btf_id = lib.btf__find_by_name_kind(btf, function.encode(), BTF_KIND_FUNC)
    if btf_id < 0:
        return f"{function} is not in the kernel's BTF (renamed, inlined or absent)"
    opts = _ProgLoadOpts(sz=ctypes.sizeof(_ProgLoadOpts), expected_attach_type=attach, attach_btf_id=btf_id)
    insns = ctypes.create_string_buffer(_NOP_PROG, len(_NOP_PROG))
    fd = lib.bpf_prog_load(BPF_PROG_TYPE_TRACING, b"netobs_probe", b"GPL", insns,
                           len(_NOP_PROG) // 8, ctypes.byref(opts))
    if fd < 0:
        return f"the kernel refused an {'fexit' if ret else 'fentry'} program: {_neg_errno(fd)}"
    try:
        link = lib.bpf_raw_tracepoint_open(None, fd)
        if link < 0:
            return f"attaching {'fexit' if ret else 'fentry'} to {function} failed: {_neg_errno(link)}"
        os.close(link)
        return None
    finally:
        os.close(fd)


def btf_member(struct: str, member: str) -> tuple[int | None, str | None]:
    """(byte offset, None) of a direct, non-bitfield member of a kernel struct, from the running
    kernel's own BTF (never from the possibly mismatched headers), or (None, why not); the
    member must be 2 bytes wide (what the BPF program reads)."""
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        return None, "kernel has no BTF (/sys/kernel/btf/vmlinux)"
    try:
        lib = libbpf()
        btf = _vmlinux_btf()
    except (ImportError, OSError) as e:
        return None, f"libbpf unavailable: {e}"
    if not btf:
        return None, "the kernel's BTF could not be parsed"
    tid = lib.btf__find_by_name_kind(btf, struct.encode(), BTF_KIND_STRUCT)
    if tid < 0:
        return None, f"struct {struct} is not in the kernel's BTF"
    addr = lib.btf__type_by_id(btf, tid)
    t = _BtfType.from_address(addr)
    vlen, kflag = t.info & 0xFFFF, t.info >> 31
    members = (_BtfMember * vlen).from_address(addr + ctypes.sizeof(_BtfType))
    for m in members:
        if lib.btf__name_by_offset(btf, m.name_off) != member.encode():
            continue
        bits, width = (m.offset & 0xFFFFFF, m.offset >> 24) if kflag else (m.offset, 0)
        if width or bits % 8:
            return None, f"{struct}.{member} is a bitfield in this kernel's BTF"
        if lib.btf__resolve_size(btf, m.type) != 2:
            return None, f"{struct}.{member} is not 2 bytes wide in this kernel's BTF"
        return bits // 8, None
    return None, f"{struct} has no member {member} in the kernel's BTF"


# ---- perf events for stack sampling -------------------------------------------------------
# (type, config) of the sampling events the profiler tries, best first (linux/perf_event.h)
PERF_TYPE_HARDWARE, PERF_TYPE_SOFTWARE = 0, 1
PERF_COUNT_HW_CPU_CYCLES, PERF_COUNT_SW_CPU_CLOCK = 0, 0
SAMPLING_EVENTS = {"cycles": (PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES),
                   "cpu-clock": (PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_CLOCK)}


def try_perf_event(name: str, hz: int = 999) -> str | None:
    """None when sampling event `name` ("cycles", "cpu-clock") opens here at `hz`, else why
    not (opened disabled on CPU 0 and closed at once)."""
    from netobs import libc

    type_, config = SAMPLING_EVENTS[name]
    try:
        fd = libc.perf_event_open(type_, config, hz)
    except OSError as e:
        hint = {errno.ENOENT: "the CPU's PMU has no such event (usual in VMs)",
                errno.EOPNOTSUPP: "sampling is not supported for it here",
                errno.EACCES: "not permitted (root, or kernel.perf_event_paranoid)",
                errno.EPERM: "not permitted (root, or kernel.perf_event_paranoid)",
                errno.EINVAL: "the kernel refused its attributes (frequency above kernel.perf_event_max_sample_rate?)"}
        why = f"{errno.errorcode.get(e.errno, e.errno)} ({os.strerror(e.errno)})"
        return f"perf_event_open({name}): {why}" + (f": {hint[e.errno]}" if e.errno in hint else "")
    os.close(fd)
    return None
