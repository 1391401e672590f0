"""Host facts that every result carries (kernel, CPU, cores, memory, tool versions)."""
from __future__ import annotations

import os
import platform
import socket
import sys

from netobs import __version__, procfs


def cpu_model() -> str | None:
    return procfs.cpuinfo().get("model name") or platform.processor() or None


def hypervisor() -> bool:
    return "hypervisor" in procfs.cpuinfo().get("flags", "").split()


def memory_bytes() -> int | None:
    total = procfs.meminfo().get("MemTotal")   # "2030464 kB"
    return int(total.split()[0]) * 1024 if total else None


def bcc_version() -> str | None:
    """BCC's Python module's version (Debian's python3-bpfcc), or None if it does not import."""
    try:
        import bcc
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return None
    return getattr(bcc, "__version__", "unknown")


def host_facts() -> dict:
    """Everything about this host that a reader of the results needs to interpret them."""
    from netobs import perf  # local: perf imports are cheap but keep hostinfo import-light

    return {
        "hostname": socket.gethostname(),
        "kernel": platform.release(),
        "kernel_version": platform.version(),
        "boot_id": procfs.boot_id(),   # the same on a "remote" that is a namespace of this kernel
        "arch": platform.machine(),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "memory_bytes": memory_bytes(),
        "virtualized": hypervisor(),
        "python": sys.version.split()[0],
        "netobs_version": __version__,
        "perf_version": perf.perf_version(),
        "bcc_version": bcc_version(),
    }
