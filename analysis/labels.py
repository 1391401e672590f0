"""What the answers, charts and report call a column: one place, built from the declarations.

A stored column's label and unit come from `netobs.figures` (the one table of what a point
records); a derived column's from `analysis.load.DERIVED`. `short` is the compact name used
in lists of several figures and in chart panels; the derived ones name their unit in words.
"""
from __future__ import annotations

from netobs import figures

from .load import DERIVED

SHORT = {
    "l1_misses_per_kib": "L1 misses per KiB",
    "llc_misses_per_kib": "LLC misses per KiB",
    "cpu_s_per_gb": "CPU-s per GB",
    "offcpu_share": "off-CPU share",
    "syscall_ns_per_byte": "send-syscall ns per byte",
}


def label(column: str) -> str:
    """The column's full label: "LLC load misses per KiB", "client CPU time"."""
    if column in DERIVED:
        return DERIVED[column][0]
    return figures.label(column) or column.replace("_", " ")


def unit(column: str) -> str:
    if column in DERIVED:
        return DERIVED[column][1]
    return figures.unit(column)


def short(column: str) -> str:
    """The compact name: "L1 misses per KiB", "CPU-s per GB" (the full label where none is declared)."""
    return SHORT.get(column) or label(column)


def axis(column: str) -> str:
    """A chart axis or panel title: the short name, with the unit where the name does not say it."""
    name = short(column)
    return name if column in DERIVED or not unit(column) else f"{name} ({unit(column)})"
