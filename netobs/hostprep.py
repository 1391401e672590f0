"""Get this host ready for BCC tracing: the one setup step, run where setup happens.

`prepare()` makes tracefs available (mounting it when needed), finds kernel headers BCC can
compile against (creating Debian's build/source links when the running kernel has none, and
saying so: headers of another version are a *fallback*), and checks that BCC imports. It
raises `CapabilityError` with a fix when that is impossible.

It changes the host (a mount, two symlinks), so it is called where netobs sets up, never as a
side effect: by `netobs doctor` and at the start of `netobs run --trace` / `netobs sweep
--trace` (and the bench's tracing section). `netobs.tracer` only checks that it was done.
"""
from __future__ import annotations

import glob
import os
import re

from netobs import hostinfo, libc
from netobs.errors import CapabilityError

TRACEFS_PATHS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
MODULES_DIR = "/lib/modules"
SRC_DIR = "/usr/src"
SETUP_FIX = "make setup as root (or: apt-get install linux-headers-amd64 python3-bpfcc)"
# What to do when tracing finds the host not prepared.
PREPARE_FIX = "netobs doctor (as root: it mounts tracefs and links kernel headers), or netobs.hostprep.prepare()"

_state: dict | None = None


# ---- tracefs -------------------------------------------------------------------------------

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
        libc.mount("nodev", TRACEFS_PATHS[0], "tracefs")
    except OSError as e:
        errors.append(e.strerror)
    if not tracefs_path():
        try:
            libc.mount("nodev", "/sys/kernel/debug", "debugfs")
        except OSError as e:
            errors.append(e.strerror)
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


# ---- the setup call ------------------------------------------------------------------------

def prepare() -> dict:
    """Make the host ready for BCC (idempotent, once per process); raises CapabilityError.

    Returns {"tracefs", "tracefs_mounted_by_netobs", "headers": ensure_headers(), "bcc"}.
    """
    global _state
    if _state is not None:
        return _state
    if os.geteuid() != 0:
        raise CapabilityError("kernel tracing needs root", f"running as uid {os.geteuid()}",
                              "netobs ... as root (or drop --trace)")
    tracefs, mounted = ensure_tracefs()
    headers = ensure_headers()
    version = hostinfo.bcc_version()
    if version is None:
        raise CapabilityError("BCC's Python module is not importable", "import bcc failed", SETUP_FIX)
    _state = {"tracefs": tracefs, "tracefs_mounted_by_netobs": mounted, "headers": headers, "bcc": version}
    return _state


def require_tracefs() -> str:
    """The mounted tracefs, or CapabilityError saying to run the setup step first."""
    path = tracefs_path()
    if path is None:
        raise CapabilityError("kernel tracing is not set up", "tracefs is not mounted", PREPARE_FIX)
    return path


def require_prepared() -> None:
    """What compiling and attaching BPF programs needs, checked without changing anything:
    root, tracefs, kernel headers. CapabilityError naming the setup step otherwise."""
    if os.geteuid() != 0:
        raise CapabilityError("kernel tracing needs root", f"running as uid {os.geteuid()}",
                              "netobs ... as root (or drop --trace)")
    require_tracefs()
    build = os.path.join(MODULES_DIR, os.uname().release, "build")
    if not _has_headers(build):
        raise CapabilityError("kernel tracing is not set up", f"no kernel headers BCC can use at {build}", PREPARE_FIX)


def doctor_facts() -> dict:
    """The setup step as `netobs doctor` runs it: prepare(), then what it found or why it failed.

    Shape shared by the doctor's parts: {"ok", "checks": [{name, ok, detail}], "error"?, ...}.
    """
    root = os.geteuid() == 0
    facts: dict = {"ok": False, "root": root, "checks": []}
    checks = facts["checks"]
    checks.append({"name": "root", "ok": root, "detail": "yes" if root else "BPF tracing needs root"})
    try:
        env = prepare()
    except CapabilityError as e:
        env = {"tracefs": tracefs_path(), "bcc": hostinfo.bcc_version()}
        facts["error"] = e.message
    facts["env"] = env
    checks.append({"name": "BCC", "ok": env.get("bcc") is not None,
                   "detail": f"python3-bpfcc {env['bcc']}" if env.get("bcc") else "not importable; try " + SETUP_FIX})
    checks.append({"name": "tracefs", "ok": env.get("tracefs") is not None,
                   "detail": (env.get("tracefs") or "not mounted")
                   + (" (mounted by netobs)" if env.get("tracefs_mounted_by_netobs") else "")})
    h = env.get("headers")
    if h:
        detail = h["path"] + (f" — fallback: headers of {h['release']} for kernel {h['kernel']} "
                              "(tracepoint arguments only; no struct is read through them)" if h["fallback"] else "")
        if h["created"]:
            detail += "; linked " + ", ".join(h["created"])
        checks.append({"name": "kernel headers", "ok": True, "detail": detail})
    else:
        checks.append({"name": "kernel headers", "ok": False, "detail": facts.get("error") or "unknown"})
    facts["ok"] = "error" not in facts
    return facts
