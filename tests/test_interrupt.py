"""Signals as exceptions: a Ctrl-C whose exception is swallowed where it was raised still ends the run."""
from __future__ import annotations

import gc
import os
import signal

import pytest

from netobs.errors import Interrupted
from netobs.interrupt import raise_if_interrupted, signals_as_interrupt


class _SignalsInDel:
    """Python ignores (prints) an exception raised in __del__, as it does in an at-fork hook:
    where a signal handled there would be lost."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):   # bytecodes for the handler to run in
            pass


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")   # the swallowed one
def test_a_signal_swallowed_where_it_was_raised_is_raised_again():
    with signals_as_interrupt():
        obj = _SignalsInDel()
        del obj          # the handler raises inside __del__; Python ignores it and goes on here
        gc.collect()
        with pytest.raises(Interrupted) as exc:
            raise_if_interrupted()
        assert exc.value.signum == signal.SIGINT


def test_nothing_is_raised_without_a_signal():
    with signals_as_interrupt():
        raise_if_interrupted()
