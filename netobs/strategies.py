"""The copy strategies, declared once: name, the C worker's code, what it does, and the order
every table and chart lists them in (the study's). Imported results may name strategies
netobs does not have; they sort after these, alphabetically.

To add a strategy: a row here, its C code in native/netobs_workers.h (NOB_<NAME>) and its
send loop in native/netobs_workers.c; everything else (CLI choices, validation, C config,
copies per byte in the analysis, chart colours, sort order) is derived from this table.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Strategy:
    name: str
    code: int          # NOB_<NAME> in native/netobs_workers.h
    user_copies: int   # passes over every byte in user space before the send (by construction)
    zero_copy: bool    # asks the kernel not to copy (MSG_ZEROCOPY: completions to drain)
    color: str         # its colour in every chart


STRATEGIES: tuple[Strategy, ...] = (
    # memcpy the 8 fields into one buffer, then send()
    Strategy("two_copy", 0, user_copies=1, zero_copy=False, color="#4c78a8"),
    # sendmsg() with an 8-entry iovec
    Strategy("one_copy", 1, user_copies=0, zero_copy=False, color="#f58518"),
    # SO_ZEROCOPY + sendmsg(MSG_ZEROCOPY), completions drained from MSG_ERRQUEUE
    Strategy("zero_copy", 2, user_copies=0, zero_copy=True, color="#54a24b"),
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
