"""Network sysctls: read, write, and find out whether one is per-namespace or host-wide.

A thread's network namespace decides which values `/proc/sys/net` shows and changes, so a
sysctl is read or written inside a namespace by a short-lived thread that joins it
(`netobs.libc.setns`); the rest of the process never leaves its own namespace.

Which namespace owns a sysctl is found out, not assumed: the kernel shows a host-wide
`net.*` sysctl in a child namespace read-only (kernel >= 6.x) or not at all (older), and a
per-namespace one writable. The topology additionally confirms "per-namespace" after its real
write (the host's value must not have moved).

netobs only ever raises limits: a wanted value is a minimum, and a sysctl already at or above
it is left alone.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from netobs import libc

MIB = 1 << 20

# The study's socket-buffer maxima (16 MiB), the option memory zero-copy notifications are
# charged to (sk_omem_alloc, limited by optmem_max: too small and sendmsg(MSG_ZEROCOPY) fails
# with ENOBUFS sooner), and TCP's own autotuning maxima (the last field of tcp_[rw]mem).
DEFAULT_SYSCTLS: dict[str, int | str] = {
    "net.core.wmem_max": 16 * MIB,
    "net.core.rmem_max": 16 * MIB,
    "net.core.optmem_max": 1 * MIB,
    "net.ipv4.tcp_wmem": 16 * MIB,
    "net.ipv4.tcp_rmem": 16 * MIB,
}


def enter_netns(nsfd: int) -> None:
    """Move the calling thread into the network namespace `nsfd` (safe in a forked child:
    netobs.libc looks nothing up when called)."""
    libc.setns(nsfd, libc.CLONE_NEWNET)


def path(name: str) -> str:
    if not name.startswith("net.") or ".." in name or "/" in name:
        raise ValueError(f"not a network sysctl: {name!r}")
    return "/proc/sys/" + name.replace(".", "/")


def normalize(value: Any) -> str:
    return " ".join(str(value).split())


def read(name: str) -> str:
    """The value in the calling thread's namespace, whitespace-normalised ("4096 16384 4194304")."""
    with open(path(name)) as f:
        return normalize(f.read())


def write(name: str, value: Any) -> None:
    with open(path(name), "w") as f:
        f.write(normalize(value) + "\n")


def writable_here(name: str) -> bool | None:
    """In the calling thread's namespace: True writable, False read-only, None absent."""
    try:
        mode = os.stat(path(name)).st_mode
    except FileNotFoundError:
        return None
    return bool(mode & 0o222)


def target(current: str, want: int | str) -> str | None:
    """The value to write so that `current` meets `want`, or None if it already does.

    An int is a minimum for a single-valued sysctl, or for the last field (the maximum) of a
    multi-valued one like tcp_wmem; a string is an exact value.
    """
    if isinstance(want, str):
        want = normalize(want)
        return None if want == current else want
    fields = current.split()
    if int(fields[-1]) >= int(want):
        return None
    return " ".join(fields[:-1] + [str(int(want))])


def _in_thread(enter: Callable[[], None], fn: Callable[..., Any], args: tuple, name: str) -> Any:
    """Run `fn(*args)` in a thread that first runs `enter` (which changes that thread's network
    namespace, never the caller's); return or raise its result in the caller's thread."""
    out: dict[str, Any] = {}

    def body() -> None:
        try:
            enter()
            out["value"] = fn(*args)
        except BaseException as exc:  # handed to the caller's thread
            out["error"] = exc

    t = threading.Thread(target=body, name=name, daemon=True)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out.get("value")


def in_netns(nsfd: int, fn: Callable[..., Any], *args: Any) -> Any:
    """Run `fn(*args)` in a thread that has joined the namespace `nsfd`."""
    return _in_thread(lambda: enter_netns(nsfd), fn, args, "netobs-netns")


def in_fresh_netns(fn: Callable[..., Any], *args: Any) -> Any:
    """Run `fn(*args)` in a thread inside a brand-new, unnamed namespace (gone when it ends)."""
    return _in_thread(lambda: libc.unshare(libc.CLONE_NEWNET), fn, args, "netobs-probe")


def scope_by_visibility(writable_in_child: bool | None) -> tuple[str, str]:
    """("netns"|"global", how it was decided) from what a child namespace sees."""
    if writable_in_child is None:
        return "global", "absent in a child namespace"
    if not writable_in_child:
        return "global", "read-only in a child namespace"
    return "netns", "writable in a child namespace"


def probe_scopes(names: list[str]) -> dict[str, tuple[str, str]]:
    """Scope of each sysctl, seen from a throwaway namespace; nothing is written."""
    seen = in_fresh_netns(lambda: {n: writable_here(n) for n in names})
    return {n: scope_by_visibility(seen[n]) for n in names}
