"""netobs's own BPF programs (bpf/*.c, installed as the package data `netobs.bpf`) compiled with
BCC, and the object that owns them: one compile step with one error, one close for every exit.

    class Tracer(bpfload.Loaded):
        def __init__(self):
            self._bpf = bpfload.compile("netobs_trace.c", "the netobs tracer", cflags)

A `Loaded` is a context manager; closing it (idempotent; also on garbage collection, and BCC's
attachments are file descriptors, so the process ending detaches them too) detaches and
unloads every program after `_unloading()` let go of what reads them.
"""
from __future__ import annotations

import contextlib
import os
from importlib import resources

from netobs.errors import CapabilityError


def source_dir():
    """The directory of netobs's BPF sources, as a context manager (a path on disk)."""
    return resources.as_file(resources.files("netobs.bpf"))


def compile(source: str, what: str, cflags=()):
    """`bcc.BPF` of one of netobs's sources (its headers beside it); CapabilityError if BCC refuses."""
    from bcc import BPF

    with source_dir() as bpf_dir:
        try:
            return BPF(src_file=os.path.join(str(bpf_dir), source).encode(), cflags=[f"-I{bpf_dir}", *cflags])
        except Exception as e:
            raise CapabilityError(f"compiling {what} failed", str(e),
                                  "netobs doctor (headers and probes); make setup") from e


class Loaded:
    """Owns loaded BPF programs (`self._bpf`, a bcc.BPF or None)."""

    _bpf = None

    @contextlib.contextmanager
    def attaching(self, what: str, fix: str):
        """Around attaching the programs and opening their maps: on any failure everything is
        unloaded, and an error becomes CapabilityError("attaching <what> failed", cause, fix)."""
        try:
            yield
        except BaseException as e:
            self.close()
            if isinstance(e, Exception):
                raise CapabilityError(f"attaching {what} failed", str(e), fix) from e
            raise

    def _unloading(self) -> None:
        """What a subclass lets go just before its programs are unloaded (threads, symbol caches)."""

    @property
    def closed(self) -> bool:
        return self._bpf is None

    def close(self) -> None:
        """Detach and unload everything (idempotent)."""
        if self._bpf is None:
            return
        self._unloading()
        b, self._bpf = self._bpf, None
        b.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
