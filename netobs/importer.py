"""`netobs import`: a CSV in the study's column format -> a results directory.

The file is validated whole before anything is written: one error names the row and the
column. Host facts the CSV cannot carry are marked unknown. A hardware counter of exactly 0 for
a run that moved data is physically impossible (it is what `${CYCLES:-0}` makes of perf's
"<not supported>"), so it is stored as missing with that reason, never as a measured 0.

One row per point (strategy, msg_size, threads); a file measured with repeats adds a `repeat`
column (0, 1, ...) and holds one row per point and repeat.
"""
from __future__ import annotations

import csv
import math
import re
from collections import Counter
from pathlib import Path

import pandas as pd

from netobs.errors import UsageError
from netobs.params import PARAMS
from netobs import strategies
from netobs.figures import EVENT_BY_COLUMN, STUDY_COLUMNS
from netobs.store import ResultsDir, now_iso

# Spellings seen for the strategies, compared without case, spaces or punctuation
# ("Two-Copy", "two copy", "2_copy" -> "twocopy"/"2copy").
IMPL_ALIASES = {
    "two_copy": {"twocopy", "2copy", "copy2", "memcpy", "send"},
    "one_copy": {"onecopy", "1copy", "copy1", "sendmsg", "iovec", "scattergather"},
    "zero_copy": {"zerocopy", "0copy", "copy0", "msgzerocopy"},
}
_ALIAS = {alias: impl for impl, aliases in IMPL_ALIASES.items() for alias in aliases}


def _impl_of(text: str) -> str | None:
    return _ALIAS.get(re.sub(r"[^a-z0-9]", "", text.lower()))
INT_COLUMNS = ("msg_size", "threads")
REQUIRED_NUMERIC = ("msg_size", "threads", "throughput_gbps", "latency_us")
HARDWARE_COLUMNS = ("cpu_cycles", "l1_cache_misses", "llc_cache_misses")
REPEAT = "repeat"   # the optional column beyond the study's: several rows of one point


def _repeat(text: str, line: int) -> int:
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if text == "" or value < 0 or value != int(value):
        raise UsageError(f"row {line}, column repeat: '{text}' is not a repeat number",
                         fix="0, 1, 2, ... numbering the rows of one point")
    return int(value)


def _number(text: str, line: int, column: str) -> float | None:
    text = text.strip()
    if text == "" or text.lower() in ("nan", "na", "n/a", "<not supported>", "<not counted>"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"row {line}, column {column}: '{text}' is not a number",
                         fix="fixing that cell (leave a counter empty if it was not measured)") from None
    if math.isinf(value):
        raise UsageError(f"row {line}, column {column}: '{text}' is not a finite number", fix="fixing that cell")
    if value < 0:
        raise UsageError(f"row {line}, column {column}: {text} is negative", fix="fixing that cell")
    return value


def _check_cells(path: Path) -> None:
    """Every row has the header's number of cells: an unquoted `1,234.5` would otherwise
    shift the row's cells into the wrong columns."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        records = csv.reader(fh)
        header = next(records, None)
        if header is None:
            return
        for number, record in enumerate(records, start=2):
            if record and any(c.strip() for c in record) and len(record) != len(header):
                raise UsageError(f"row {number} of {path} has {len(record)} cells where the header has {len(header)}",
                                 "a number written with a thousands separator (1,234.5) or a stray comma",
                                 "writing numbers without separators (1234.5), or quoting such cells")


def _in_limits(value: float, line: int, column: str) -> int:
    """A whole-number cell checked against the parameter table's limits for it."""
    param = PARAMS.by_name[_PARAM_OF[column]]
    if value != int(value):
        raise UsageError(f"row {line}, column {column}: '{value:g}' is not a whole number", fix="fixing that cell")
    try:
        return param.check(int(value))
    except UsageError as exc:
        raise UsageError(f"row {line}, column {column}: {exc.what}",
                         fix=f"fixing that cell: netobs measures {param.kind.span()}") from None


_PARAM_OF = {"msg_size": "msg_size", "threads": "threads"}


def parse_study_csv(path: Path, duration: float) -> tuple[list[dict], list[str]]:
    """Validate the whole file; return point results (DESIGN's shape) and notes."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True, encoding="utf-8-sig")
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist", fix="the path of a CSV in the study's format") from None
    except (IsADirectoryError, PermissionError) as exc:
        raise UsageError(f"cannot read {path}", cause=exc.strerror, fix="the path of a readable CSV file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"{path} is not a readable CSV", cause=str(exc).splitlines()[0],
                         fix="saving it as UTF-8, comma-separated text with a header row") from None
    df.columns = [c.strip().lower() for c in df.columns]
    missing = [c for c in STUDY_COLUMNS if c not in df.columns]
    if missing:
        raise UsageError(f"{path}: missing column {', '.join(missing)}",
                         fix="a header with the study's columns: " + ",".join(STUDY_COLUMNS))
    try:
        _check_cells(path)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"{path} is not a readable CSV", cause=str(exc).splitlines()[0],
                         fix="saving it as UTF-8, comma-separated text with a header row") from None
    if df.empty:
        raise UsageError(f"{path} has a header but no rows", fix="a CSV with at least one measured point")
    notes = []
    has_repeat = REPEAT in df.columns
    extra = [c for c in df.columns if c not in STUDY_COLUMNS and c != REPEAT]
    if extra:
        notes.append(f"ignored columns not in the study's format: {', '.join(extra)}")

    results, seen, zero_counters = [], {}, {}
    for i, rec in enumerate(df.to_dict("records")):
        line = i + 2  # the header is line 1
        impl_text = rec["implementation"].strip()
        impl = _impl_of(impl_text)
        if impl is None:
            raise UsageError(f"row {line}, column implementation: unknown strategy '{impl_text}'",
                             fix="one of two_copy, one_copy, zero_copy")
        vals = {c: _number(rec[c], line, c) for c in STUDY_COLUMNS[1:]}
        for c in REQUIRED_NUMERIC:
            if vals[c] is None:
                raise UsageError(f"row {line}, column {c}: empty", fix="a measured value in every row")
        for c in INT_COLUMNS:
            vals[c] = _in_limits(vals[c], line, c)
        repeat = _repeat(rec[REPEAT], line) if has_repeat else 0
        key = (impl, vals["msg_size"], vals["threads"], repeat)
        if key in seen:
            if has_repeat:
                raise UsageError(f"row {line}: duplicate point {impl}/{key[1]}/{key[2]} repeat {repeat} "
                                 f"(first at row {seen[key]})", fix="one row per point and repeat")
            raise UsageError(f"row {line}: duplicate point {impl}/{key[1]}/{key[2]} (first at row {seen[key]})",
                             fix="one row per implementation, msg_size and threads, or a `repeat` column "
                                 "(0, 1, ...) numbering the rows of a point measured several times")
        seen[key] = line
        bytes_sent = vals["throughput_gbps"] * 1e9 / 8 * duration
        events = {}
        for col, event in EVENT_BY_COLUMN.items():
            v = vals[col]
            if v == 0 and col in HARDWARE_COLUMNS and bytes_sent > 0:
                zero_counters.setdefault(col, []).append(line)
                events[event] = {"value": None, "unit": "", "status": "not counted", "running_pct": None,
                                 "reason": "0 in the imported file is impossible for a run that moved data "
                                           "(likely an unsupported counter written as 0)"}
            elif v is None:
                events[event] = {"value": None, "unit": "", "status": "not counted", "running_pct": None,
                                 "reason": "empty in the imported file"}
            else:
                events[event] = {"value": v, "unit": "", "status": "counted", "running_pct": None, "reason": None}
        results.append({
            "strategy": impl, "msg_size": key[1], "threads": key[2], "repeat": repeat, "status": "ok",
            "topology": "unknown", "duration_s": duration, "warmup_s": None, "window_s": duration,
            "throughput_gbps": vals["throughput_gbps"], "bytes_sent": bytes_sent,
            "messages": round(bytes_sent / key[1]), "latency_us": {"mean": vals["latency_us"]},
            "perf": {"events": events},
        })
    for col, lines in zero_counters.items():
        notes.append(f"{col} is 0 in {len(lines)} row(s) (e.g. row {lines[0]}): impossible for a run that moved "
                     "data, so stored as missing, not as a measured 0")
    return results, notes


def import_study_csv(csv_path: str, out: str, duration: float, force: bool = False) -> tuple[ResultsDir, list[str]]:
    duration = PARAMS.by_name["duration"].check(duration)   # the same range as a sweep's windows
    path = Path(csv_path)
    results, notes = parse_study_csv(path, duration)  # everything validated before writing
    unsupported = {}
    for r in results:
        for ev, rec in r["perf"]["events"].items():
            if rec["status"] != "counted":
                unsupported.setdefault(ev, rec["reason"])
    manifest = {
        "source": "import",
        "imported_from": str(path.resolve()),
        "notes": notes,
        "host": {"kernel": "unknown", "cpu_model": "unknown", "cores": None, "memory_bytes": None,
                 "virtualized": None, "note": "host facts are unknown for imported results"},
        "tools": {"perf": "unknown", "bcc": None},
        "topology": {"kind": "unknown"},
        "perf": {"unsupported": unsupported},
        "probe_plan": None,
        "matrix": {
            "strategies": strategies.ordered(r["strategy"] for r in results),
            "sizes": sorted({r["msg_size"] for r in results}),
            "threads": sorted({r["threads"] for r in results}),
            "repeats": max(Counter((r["strategy"], r["msg_size"], r["threads"]) for r in results).values()),
            "duration": duration, "warmup": None, "order": "unknown",
        },
    }
    store = ResultsDir.create(out, manifest, list(EVENT_BY_COLUMN.values()), force=force,
                              fix="--force to move it aside, or another -o path")
    try:
        store.add_points(results)
        store.update_manifest(finished=now_iso())
    finally:
        store.close()
    return store, notes
