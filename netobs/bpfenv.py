"""Prepare this host for BCC, and try probes without a compiler.

`prepare()` makes tracefs available (mounting it when needed), finds kernel headers BCC can
compile against (creating Debian's build/source links when the running kernel has none, and
saying so: headers of another version are a *fallback*), and checks that BCC imports. It
raises `CapabilityError` with a fix when that is impossible.

`try_tracepoint`, `try_kprobe`, `try_fentry` answer "would this probe attach here?" by really
loading a two-instruction program and attaching it (then closing it at once): a kernel can
advertise a feature it refuses (BCC's `support_kfunc()` is True on kernels that refuse
fentry with EPERM). They use libbcc and libbpf through ctypes, so no clang run is needed.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import glob
import os
import re

from netobs.errors import CapabilityError

TRACEFS_PATHS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
MODULES_DIR = "/lib/modules"
SRC_DIR = "/usr/src"
SETUP_FIX = "sudo make setup (or: apt-get install linux-headers-amd64 python3-bpfcc)"

_state: dict | None = None


# ---- tracefs -------------------------------------------------------------------------------

def _libc():
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _mount(source: str, target: str, fstype: str) -> None:
    if _libc().mount(source.encode(), target.encode(), fstype.encode(), 0, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


def tracefs_path() -> str | None:
    """The mounted tracefs (its events/ directory is present), or None."""
    for path in TRACEFS_PATHS:
        if os.path.isdir(os.path.join(path, "events")):
            return path
    return None


def ensure_tracefs() -> tuple[str, bool]:
    """(path, mounted_by_us). Mounts tracefs at /sys/kernel/tracing, else debugfs."""
    path = tracefs_path()
    if path:
        return path, False
    errors = []
    try:
        _mount("nodev", TRACEFS_PATHS[0], "tracefs")
    except OSError as e:
        errors.append(f"tracefs on {TRACEFS_PATHS[0]}: {e.strerror}")
    if not tracefs_path():
        try:
            _mount("nodev", "/sys/kernel/debug", "debugfs")
        except OSError as e:
            errors.append(f"debugfs on /sys/kernel/debug: {e.strerror}")
    path = tracefs_path()
    if not path:
        raise CapabilityError("tracefs is not available", "; ".join(errors) or "no events/ directory",
                              "mount -t tracefs nodev /sys/kernel/tracing (kernel needs CONFIG_TRACING)")
    return path, True


# ---- kernel headers ------------------------------------------------------------------------

def _has_headers(build: str) -> bool:
    """BCC can compile against `build` (directly, or with its Debian `source` sibling)."""
    if not os.path.isdir(os.path.join(build, "include")):
        return False
    for root in (build, os.path.join(os.path.dirname(build.rstrip("/")), "source")):
        if os.path.isfile(os.path.join(root, "include", "linux", "kconfig.h")):
            return True
    return False


def _headers_release(build: str) -> str | None:
    try:
        with open(os.path.join(build, "include", "generated", "utsrelease.h")) as f:
            m = re.search(r'UTS_RELEASE\s+"([^"]+)"', f.read())
        return m.group(1) if m else None
    except OSError:
        return None


def _version_key(name: str) -> tuple:
    return tuple(int(x) if x.isdigit() else x for x in re.split(r"[.-]", name))


def _debian_pairs(flavour: str) -> list[tuple[str, str, str]]:
    """Installed Debian header pairs (version, arch dir, common dir), newest first."""
    pairs = []
    for arch_dir in glob.glob(os.path.join(SRC_DIR, f"linux-headers-*-{flavour}")):
        version = os.path.basename(arch_dir)[len("linux-headers-"):-len(flavour) - 1]
        common = os.path.join(SRC_DIR, f"linux-headers-{version}-common")
        if os.path.isdir(os.path.join(arch_dir, "include")) and os.path.isdir(os.path.join(common, "include")):
            pairs.append((version, arch_dir, common))
    return sorted(pairs, key=lambda p: _version_key(p[0]), reverse=True)


def _flavour(release: str) -> str:
    m = re.search(r"-(amd64|arm64|armmp|686-pae|686|cloud-amd64|cloud-arm64|rt-amd64|rt-arm64)$", release)
    if m:
        return m.group(1)
    return {"x86_64": "amd64", "aarch64": "arm64", "i686": "686"}.get(os.uname().machine, "amd64")


def ensure_headers() -> dict:
    """Headers for BCC: the running kernel's, else the newest installed Debian pair linked in.

    Returns {"path", "release", "kernel", "fallback", "created": [links made]}.
    """
    kernel = os.uname().release
    kdir = os.path.join(MODULES_DIR, kernel)
    build = os.path.join(kdir, "build")
    created: list[str] = []
    if not _has_headers(build):
        # A real directory we did not make is the user's; only dangling links are replaced.
        for name in ("build", "source"):
            p = os.path.join(kdir, name)
            if os.path.exists(p) and not os.path.islink(p):
                raise CapabilityError("kernel headers unusable", f"{p} exists but holds no headers", SETUP_FIX)
        pairs = _debian_pairs(_flavour(kernel))
        exact = [p for p in pairs if f"{p[0]}-{_flavour(kernel)}" == kernel]
        if not (exact or pairs):
            raise CapabilityError("no kernel headers for BCC",
                                  f"{build} is missing and no linux-headers-*-{_flavour(kernel)} is installed",
                                  SETUP_FIX)
        _, arch_dir, common = (exact or pairs)[0]
        os.makedirs(kdir, exist_ok=True)
        for name, target in (("build", arch_dir), ("source", common)):
            link = os.path.join(kdir, name)
            if os.path.islink(link):
                os.unlink(link)
            os.symlink(target, link)
            created.append(f"{link} -> {target}")
        if not _has_headers(build):
            raise CapabilityError("kernel headers unusable", f"linked {arch_dir} but BCC still finds no headers",
                                  SETUP_FIX)
    release = _headers_release(build)
    return {"path": os.path.realpath(build), "release": release, "kernel": kernel,
            "fallback": release != kernel, "created": created}


# ---- BCC ---------------------------------------------------------------------------------

def bcc_version() -> str | None:
    try:
        import bcc  # noqa: F401
    except ImportError:
        return None
    try:
        from importlib.metadata import version
        return version("bcc")
    except Exception:  # Debian's python3-bpfcc has no dist-info
        pass
    try:
        with open("/usr/share/doc/python3-bpfcc/changelog.Debian.gz", "rb") as f:
            import gzip
            head = gzip.decompress(f.read()).decode(errors="replace").splitlines()[0]
        m = re.search(r"\(([^)]+)\)", head)
        return m.group(1) if m else "unknown"
    except OSError:
        return "unknown"


def prepare() -> dict:
    """Make the host ready for BCC (idempotent, cached); raises CapabilityError otherwise."""
    global _state
    if _state is not None:
        return _state
    if os.geteuid() != 0:
        raise CapabilityError("kernel tracing needs root", f"running as uid {os.geteuid()}",
                              "sudo netobs ... (or drop --trace)")
    tracefs, mounted = ensure_tracefs()
    headers = ensure_headers()
    version = bcc_version()
    if version is None:
        raise CapabilityError("BCC's Python module is not importable", "import bcc failed", SETUP_FIX)
    _state = {"tracefs": tracefs, "tracefs_mounted_by_netobs": mounted, "headers": headers, "bcc": version}
    return _state


# ---- trying probes without a compiler -----------------------------------------------------

# r0 = 0; exit
_NOP_PROG = bytes.fromhex("b700000000000000" "9500000000000000")
BPF_PROG_TYPE_KPROBE = 2
BPF_PROG_TYPE_TRACEPOINT = 5
BPF_PROG_TYPE_TRACING = 26
BPF_TRACE_FENTRY = 24
BPF_TRACE_FEXIT = 25
BTF_KIND_FUNC = 12


class _ProgLoadOpts(ctypes.Structure):
    # libbpf's struct bpf_prog_load_opts up to attach_btf_obj_fd; `sz` tells libbpf where it ends.
    _fields_ = [("sz", ctypes.c_size_t), ("attempts", ctypes.c_int),
                ("expected_attach_type", ctypes.c_uint32), ("prog_btf_fd", ctypes.c_uint32),
                ("prog_flags", ctypes.c_uint32), ("prog_ifindex", ctypes.c_uint32),
                ("kern_version", ctypes.c_uint32), ("attach_btf_id", ctypes.c_uint32),
                ("attach_prog_fd", ctypes.c_uint32), ("attach_btf_obj_fd", ctypes.c_uint32)]


@functools.lru_cache(maxsize=1)
def _libbcc():
    from bcc.libbcc import lib  # the loader BCC itself uses
    lib.bcc_prog_load.restype = ctypes.c_int
    lib.bcc_prog_load.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int,
                                  ctypes.c_char_p, ctypes.c_uint, ctypes.c_int, ctypes.c_char_p,
                                  ctypes.c_uint]
    return lib


@functools.lru_cache(maxsize=1)
def _libbpf():
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
    lib.libbpf_get_error.restype = ctypes.c_long
    lib.libbpf_get_error.argtypes = [ctypes.c_void_p]
    lib.libbpf_set_print.restype = ctypes.c_void_p
    lib.libbpf_set_print.argtypes = [ctypes.c_void_p]
    return lib


def _kern_version() -> int:
    nums = [int(x) for x in re.findall(r"\d+", os.uname().release)[:3]] + [0, 0, 0]
    return (nums[0] << 16) + (nums[1] << 8) + min(nums[2], 255)


def _load_nop(prog_type: int) -> int:
    lib = _libbcc()
    buf = ctypes.create_string_buffer(_NOP_PROG, len(_NOP_PROG))
    fd = lib.bcc_prog_load(prog_type, b"netobs_probe", buf, len(_NOP_PROG), b"GPL",
                           _kern_version(), 0, None, 0)
    if fd < 0:
        err = ctypes.get_errno() or -fd
        raise OSError(err, os.strerror(err))
    return fd


def _errname(e: OSError) -> str:
    return f"{errno.errorcode.get(e.errno, e.errno)} ({e.strerror})"


def try_tracepoint(category: str, event: str, attach: bool = False) -> str | None:
    """None when a BPF program can attach to tracepoint category:event here, else why not.

    Each event is checked for existence; a real attach is tried once per process (on the
    first event asked, or on this one with `attach`): enabling a tracepoint costs about a
    tenth of a second in a VM, and tracepoints, unlike fentry, do not advertise what they refuse.
    """
    path = tracefs_path()
    if path is None:
        return "tracefs is not mounted"
    if not os.path.isfile(os.path.join(path, "events", category, event, "id")):
        return f"tracepoint {category}:{event} does not exist on this kernel"
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
        lib = _libbcc()
        pfd = lib.bpf_attach_tracepoint(fd, category.encode(), event.encode())
        if pfd < 0:
            return f"attaching to {category}:{event} failed"
        lib.bpf_close_perf_event_fd(pfd)
        return None
    finally:
        os.close(fd)


@functools.lru_cache(maxsize=1)
def kallsyms() -> frozenset[str]:
    names = set()
    try:
        with open("/proc/kallsyms") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[1] in "tTwW":
                    names.add(parts[2])
    except OSError:
        pass
    return frozenset(names)


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
        lib = _libbcc()
        ev = f"netobs_try_{os.getpid()}_{'r' if ret else 'p'}_{function}".encode()
        pfd = lib.bpf_attach_kprobe(fd, 1 if ret else 0, ev, function.encode(), 0, 0)
        if pfd < 0:
            return f"attaching a {'kretprobe' if ret else 'kprobe'} to {function} failed"
        lib.bpf_close_perf_event_fd(pfd)
        lib.bpf_detach_kprobe(ev)
        return None
    finally:
        os.close(fd)


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
    lib = _libbpf()
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
        lib = _libbpf()
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
        e = OSError(-fd, os.strerror(-fd))
        return f"the kernel refused an {'fexit' if ret else 'fentry'} program: {_errname(e)}"
    try:
        link = lib.bpf_raw_tracepoint_open(None, fd)
        if link < 0:
            e = OSError(-link, os.strerror(-link))
            return f"attaching {'fexit' if ret else 'fentry'} to {function} failed: {_errname(e)}"
        os.close(link)
        return None
    finally:
        os.close(fd)
