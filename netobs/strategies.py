"""The copy strategies, declared once: name, the C worker's code, what it does, and the order
every table and chart lists them in (the study's three first). Imported results may name
strategies netobs does not have; they sort after these, alphabetically.

`STUDY` are the study's three (a sweep's default); the others are opt-in
(`--strategies io_uring_zc,...`, or `--strategies all`).

To add a strategy: a row here, its C code in native/netobs_workers.h (NOB_<NAME>), its line in
SENDERS in native/netobs_workers.c and its ops in its family's native/send_<family>.c
(DESIGN.md, "How to add"); everything else (CLI choices, validation, C config, copies per
byte in the analysis, chart colours, sort order) is derived from this table.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Strategy:
    name: str
    code: int          # NOB_<NAME> in native/netobs_workers.h
    user_copies: int   # passes over every byte in user space before the send (by construction)
    zero_copy: bool    # asks the kernel not to copy, with completions (MSG_ZEROCOPY, SENDMSG_ZC notifications)
    color: str         # its colour in every chart
    page_refs: bool = False     # the socket takes page references with no completion (sendfile, splice)
    baseline: str | None = None  # the copy sender it is compared with (the zerocopy question)
    how: str = ""               # what it does, one line (doctor, docs)


STRATEGIES: tuple[Strategy, ...] = (
    # memcpy the 8 fields into one buffer, then send()
    Strategy("two_copy", 0, user_copies=1, zero_copy=False, color="#0072b2",
             how="memcpy the fields into one buffer, then send()"),
    # sendmsg() with an 8-entry iovec
    Strategy("one_copy", 1, user_copies=0, zero_copy=False, color="#e69f00",
             how="sendmsg() with an iovec over the fields"),
    # SO_ZEROCOPY + sendmsg(MSG_ZEROCOPY), completions drained from MSG_ERRQUEUE
    Strategy("zero_copy", 2, user_copies=0, zero_copy=True, color="#009e73", baseline="one_copy",
             how="SO_ZEROCOPY + sendmsg(MSG_ZEROCOPY), completions from MSG_ERRQUEUE"),
    # the same iovec as io_uring IORING_OP_SENDMSG: io_uring_zc's copy baseline
    Strategy("io_uring", 3, user_copies=0, zero_copy=False, color="#d55e00",
             how="io_uring IORING_OP_SENDMSG with the iovec (linked batches of --uring-depth)"),
    # IORING_OP_SENDMSG_ZC; a buffer is reused only after its notification CQE
    Strategy("io_uring_zc", 4, user_copies=0, zero_copy=True, color="#56b4e9", baseline="io_uring",
             how="io_uring IORING_OP_SENDMSG_ZC, buffers reused after their notification CQE"),
    # the fields written once per buffer into a memfd, sent with sendfile(): page references
    Strategy("sendfile", 5, user_copies=0, zero_copy=False, color="#cc79a7", page_refs=True,
             baseline="one_copy", how="fields written once into a memfd, sendfile() from it"),
    # vmsplice() the fields into a pipe, splice() it to the socket: page references
    Strategy("splice", 6, user_copies=0, zero_copy=False, color="#5d5d5d", page_refs=True,
             baseline="one_copy", how="vmsplice() the fields into a pipe, splice() to the socket"),
)
NAMES: tuple[str, ...] = tuple(s.name for s in STRATEGIES)
STUDY: tuple[str, ...] = ("two_copy", "one_copy", "zero_copy")   # the study's (a sweep's default)
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
