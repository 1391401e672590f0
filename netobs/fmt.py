"""Numbers as netobs prints them: the one formatter module for every text the tool writes
(answers, tables, charts, the report, the CLI's summaries).

A missing value (None or NaN) is never printed as 0: prose says "n/a", tables a dash.
"""
from __future__ import annotations

import json

NA = "n/a"
DASH = "—"
KIB, MIB = 1 << 10, 1 << 20


def missing(x) -> bool:
    """None, NaN or pandas' NA: a value that was not measured."""
    if x is None:
        return True
    try:
        return bool(x != x)
    except (TypeError, ValueError):  # pandas.NA refuses to be a bool
        return True


def num(x, digits: int = 3) -> str:
    """A measured number in prose: thousands separated from 1000 up, else `digits` significant."""
    if missing(x):
        return NA
    x = float(x)
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def pct(x) -> str:
    """A signed percentage change: +12.3%."""
    return NA if missing(x) else f"{x:+.1f}%"


def share(x, digits: int = 0) -> str:
    """A fraction as a percentage: 0.25 -> 25%."""
    return NA if missing(x) else f"{x:.{digits}%}"


def times(x) -> str:
    """A ratio: x1.23."""
    return NA if missing(x) else f"x{x:.2f}"


def p_value(p) -> str:
    """A test's p-value: p=0.012, or p<0.001."""
    if missing(p):
        return NA
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def size(nbytes: int) -> str:
    """A message size: 1024 -> 1 KiB, 1536 -> 1536 B."""
    nbytes = int(nbytes)
    if nbytes >= MIB and nbytes % MIB == 0:
        return f"{nbytes // MIB} MiB"
    if nbytes >= KIB and nbytes % KIB == 0:
        return f"{nbytes // KIB} KiB"
    return f"{nbytes} B"


def fixed(x, unit: str = "", digits: int = 2) -> str:
    """A value with a fixed number of decimals and its unit (`netobs run`'s summary)."""
    if x is None:
        return DASH
    if isinstance(x, float):
        return f"{x:,.{digits}f}{unit}"
    return f"{x:,}{unit}"


def gib(n_bytes) -> str | None:
    """A memory size in GiB (None when unknown)."""
    return None if missing(n_bytes) else f"{n_bytes / 2**30:.1f} GiB"


def cell(column: str | None, value, na: str = DASH) -> str:
    """One table cell. The column's name says what the number is: `*_pct` a change,
    `p_*`/`p_value` a p-value, `score` a multiple of the noise; other numbers by size."""
    if isinstance(value, (list, tuple)):
        return ", ".join(cell(None, v, na) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    if missing(value):
        return na
    if hasattr(value, "item"):  # a numpy scalar
        value = value.item()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        column = column or ""
        if isinstance(value, float) and column.endswith("_pct"):
            return pct(value)
        if isinstance(value, float) and (column.startswith("p_") or column == "p_value"):
            return "<0.001" if value < 0.001 else f"{value:.3f}"
        if isinstance(value, float) and column == "score":
            return f"{value:.1f}x"
        if float(value).is_integer() and abs(value) < 1e15:
            return f"{int(value):,}" if abs(value) >= 100_000 else str(int(value))
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)
