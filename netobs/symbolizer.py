"""User-space symbols of the profiled processes, from BCC's symbol caches held in a child process.

    with Symbolizer() as sym:
        sym.look(tgid)                        # while it lives: a cache of its maps as they are now
        sym.resolve(tgid, addrs)              # [(name or None, module or None), ...]
        sym.forget()                          # every cache let go (a new point)

Why a process of their own: Debian 12's BCC (0.26) can close a random file descriptor of the
process that builds a symbol cache. Every cache adds a `/tmp/perf-PID.map` module whose
`ProcSyms::ModulePath` leaves its descriptor uninitialised and closes it when freed (bcc pull
request 5193, fixed in 0.33). In the sweep's process that descriptor was once a BPF
attachment: the sweep failed at the end, unable to detach its tracepoints. Here the caches live
in a child that holds nothing else. Its channel sits at high descriptor numbers and is checked
after each cache is made. A child that lost it ends, and the next call starts another. That
child's caches are lost with it: their frames resolve as `[unknown]`, which the profile's
`user_leaf_resolved` counts, and `restarts` says how often it happened.
"""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading

from netobs import procfs

CHANNEL_FD_MIN = 512     # the child's channel above the descriptors a process of its size uses


class Symbolizer:
    def __init__(self):
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self.restarts = 0

    # -- the parent's side ----------------------------------------------------------------
    def _start(self) -> None:
        self._proc = subprocess.Popen([sys.executable, "-m", "netobs.symbolizer"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def _ask(self, msg: dict) -> dict | None:
        """One request and its answer; None where the child ended (a new one is started for the
        next request: this one's caches are gone)."""
        with self._lock:
            if self._proc is None:
                self._start()
            try:
                self._proc.stdin.write(json.dumps(msg).encode() + b"\n")
                self._proc.stdin.flush()
                line = self._proc.stdout.readline()
            except (BrokenPipeError, OSError, ValueError):
                line = b""
            if line:
                return json.loads(line)
            self._stop_child()
            self.restarts += 1
            return None

    def look(self, tgid: int) -> bool:
        """Take a cache of `tgid`'s maps where they changed since the last look; whether the
        child holds one for it now."""
        answer = self._ask({"op": "look", "tgid": int(tgid)})
        return bool(answer and answer["held"])

    def resolve(self, tgid: int, addrs: list[int]) -> list[tuple[str | None, str | None]]:
        answer = self._ask({"op": "resolve", "tgid": int(tgid), "addrs": [int(a) for a in addrs]})
        if answer is None:
            return [(None, None)] * len(addrs)
        return [tuple(f) for f in answer["frames"]]

    def forget(self) -> None:
        if self._proc is not None:
            self._ask({"op": "forget"})

    def _stop_child(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for f in (proc.stdin, proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        with self._lock:
            self._stop_child()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---- the child's side -------------------------------------------------------------------------
class _Caches:
    """The child's caches: tgid -> (bcc SymbolCache, the maps it was made from)."""

    def __init__(self):
        self.held: dict[int, tuple[object, bytes]] = {}

    def look(self, tgid: int) -> bool:
        from bcc import SymbolCache

        text = procfs.maps(tgid)
        old = self.held.get(tgid)
        if not text or (old is not None and old[1] == text):   # gone (keep what was seen) or unchanged
            return old is not None
        cache = SymbolCache(tgid)
        if not procfs.maps(tgid):    # it ended while the cache was made: keep the old one
            self._free(tgid, cache)
            return old is not None
        if old is not None:
            self._free(tgid, old[0])
        self.held[tgid] = (cache, text)
        return True

    def resolve(self, tgid: int, addrs: list[int]) -> list[list]:
        held = self.held.get(tgid)
        out = []
        for a in addrs:
            name = module = None
            if held is not None:
                name, _off, module = held[0].resolve(a, True)
            out.append([name.decode(errors="replace") if name else None,
                        module.decode(errors="replace") if module else None])
        return out

    def forget(self) -> None:
        for tgid, (cache, _) in self.held.items():
            self._free(tgid, cache)
        self.held.clear()

    @staticmethod
    def _free(tgid: int, cache) -> None:
        from bcc.libbcc import lib
        lib.bcc_free_symcache(cache.cache, tgid)


def _identity(fd: int) -> tuple[int, int] | None:
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _serve() -> int:
    rfd = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, CHANNEL_FD_MIN)
    wfd = fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, CHANNEL_FD_MIN)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    channel = {rfd: _identity(rfd), wfd: _identity(wfd)}
    caches = _Caches()
    with os.fdopen(rfd, "rb", closefd=False) as rd, os.fdopen(wfd, "wb", closefd=False) as wr:
        for line in rd:
            msg = json.loads(line)
            op = msg["op"]
            if op == "look":
                answer = {"held": caches.look(msg["tgid"])}
            elif op == "resolve":
                answer = {"frames": caches.resolve(msg["tgid"], msg["addrs"])}
            elif op == "forget":
                caches.forget()
                answer = {}
            else:
                return 2
            if any(_identity(fd) != ident for fd, ident in channel.items()):
                return 3     # BCC closed (and something reopened) a descriptor of the channel
            wr.write(json.dumps(answer).encode() + b"\n")
            wr.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_serve())
