"""Signals as exceptions, so `with` blocks unwind and their cleanup runs.

`signals_as_interrupt()` turns SIGINT and SIGTERM into `netobs.errors.Interrupted` raised in
the main thread. Its exit code is 130 for both signals (the netobs contract for
"interrupted"); the signal itself is on the exception as `.signum`.

`deferred_signals()` protects a critical section (setting up or tearing down a topology):
a SIGINT/SIGTERM arriving inside it is held and re-delivered, to whatever handler was there
before, as soon as the section ends, so cleanup is never cut in half.

Both handlers act only in the process that installed them: a process forked from it (pyroute2
forks short-lived helpers to open sockets in a namespace) gets the default action, so a helper
told to stop never runs its parent's code.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

from netobs.errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _not_ours(signum: int, owner: int) -> bool:
    """In a process forked from the owner (pyroute2 forks helpers) act as if no handler were set."""
    if os.getpid() == owner:
        return False
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    return True


# Signals the interrupt handler took, newest last. Python may run a handler inside code that
# ignores its exception (an at-fork hook such as logging's _releaseLock, pyroute2 and
# subprocess fork in every point): the Interrupted is then printed and lost. Code that runs
# long (a point, a sweep) calls raise_if_interrupted() at its steps, so a lost one still ends it.
_received: list[int] = []


def _interrupt_handler(owner: int):
    def handler(signum: int, _frame: object) -> None:
        if not _not_ours(signum, owner):
            _received.append(signum)
            _raise_interrupted(signum)
    return handler


def raise_if_interrupted() -> None:
    """Raise Interrupted if a signal arrived inside signals_as_interrupt() and its exception
    was swallowed where it was raised."""
    if _received:
        _raise_interrupted(_received[-1])


def _raise_interrupted(signum: int) -> None:
    exc = Interrupted("interrupted", f"received {signal.Signals(signum).name}")
    exc.signum = signum
    raise exc


@contextlib.contextmanager
def signals_as_interrupt(signals: tuple[int, ...] = SIGNALS, only_if_default: bool = False) -> Iterator[None]:
    """Within the block, `signals` raise `Interrupted` in the main thread; handlers restored after.

    With `only_if_default`, a signal whose handler is not the default one (Python's
    KeyboardInterrupt handler for SIGINT, SIG_DFL otherwise) is left to its current handler.
    Outside the main thread this does nothing (Python delivers signals to the main thread).
    """
    if not _in_main_thread():
        yield
        return
    previous: dict[int, object] = {}
    try:
        for sig in signals:
            current = signal.getsignal(sig)
            if only_if_default and current not in (signal.SIG_DFL, signal.default_int_handler):
                continue
            previous[sig] = signal.signal(sig, _interrupt_handler(os.getpid()))
        _received.clear()
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def deferred_signals(signals: tuple[int, ...] = SIGNALS) -> Iterator[None]:
    """Hold `signals` for the duration of the block; re-deliver the first one afterwards."""
    if not _in_main_thread():
        yield
        return
    pending: list[int] = []
    owner = os.getpid()

    def hold(signum: int, _frame: object) -> None:
        if not _not_ours(signum, owner):
            pending.append(signum)

    previous = {}
    for sig in signals:
        if signal.getsignal(sig) is None:  # a handler installed outside Python: leave it be
            continue
        previous[sig] = signal.signal(sig, hold)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if pending:
            signal.raise_signal(pending[0])
