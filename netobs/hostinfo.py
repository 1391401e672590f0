"""Host facts that every result carries (kernel, CPU, cores, memory, tool versions)."""
from __future__ import annotations

import os
import platform
import socket
import sys
from pathlib import Path

from netobs import __version__


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def cpu_model() -> str | None:
    text = _read("/proc/cpuinfo") or ""
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or None


def hypervisor() -> bool:
    text = _read("/proc/cpuinfo") or ""
    return any(line.startswith("flags") and " hypervisor" in line for line in text.splitlines())


def memory_bytes() -> int | None:
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None


def bcc_version() -> str | None:
    try:
        import bcc  # Debian's python3-bpfcc
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
