"""The copy strategies, declared once: name, the C worker's code, what it does, and the order
every table and chart lists them in (the study's). Imported results may name strategies
netobs does not have; they sort after these, alphabetically.

To add a strategy: a row here, its C code in native/netobs_workers.h (NOB_<NAME>) and its
send loop in native/netobs_workers.c; everything else (CLI choices, validation, C config,
chart colours, sort order) is derived from this table.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Strategy:
    name: str
    code: int          # NOB_<NAME> in native/netobs_workers.h
    sends: str         # how it sends (README's table)
    copies: str        # copies on the send side
    zero_copy: bool    # asks the kernel not to copy (completions to drain)


STRATEGIES: tuple[Strategy, ...] = (
    Strategy("two_copy", 0, "memcpy the 8 fields into one buffer, then send()", "user->user + user->kernel", False),
    Strategy("one_copy", 1, "sendmsg() with an 8-entry iovec", "user->kernel", False),
    Strategy("zero_copy", 2, "SO_ZEROCOPY + sendmsg(MSG_ZEROCOPY), completions from MSG_ERRQUEUE",
             "none, if the kernel can keep the pages pinned", True),
)
NAMES: tuple[str, ...] = tuple(s.name for s in STRATEGIES)
BY_NAME = {s.name: s for s in STRATEGIES}
BASELINE = "two_copy"   # what the study compares the others with


def rank(name: str) -> tuple[int, str]:
    """Sort key of one strategy name: netobs's order first, unknown names after, by name."""
    return (NAMES.index(name), "") if name in BY_NAME else (len(NAMES), str(name))


def ordered(names) -> list[str]:
    """The distinct names in netobs's order (unknown ones after, alphabetically)."""
    return sorted(set(names), key=rank)


STRATEGY_COLUMNS = ("implementation", "strategy")   # the study's column name, and netobs's


def sort_key(col):
    """For pandas `sort_values(key=...)` over several columns: the strategy column (by name)
    becomes ranks in netobs's order; any other column sorts as it is."""
    if col.name not in STRATEGY_COLUMNS:
        return col
    order = {n: i for i, n in enumerate(ordered(col.unique()))}
    return col.map(order)
