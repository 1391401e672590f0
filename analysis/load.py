"""Load a results directory into tidy tables and derive the per-byte columns.

Reads only the directory (runs.csv + manifest.json), never live state, so results from
another machine, or made by `netobs import`, are analysed exactly like a local sweep's.

Every counter is normalised per byte moved before anything compares strategies: a
fixed-duration run moves a different amount of data per strategy, so raw counts never
compare. A value that was not measured stays NaN through every derivation (never 0).
"""
from __future__ import annotations

import csv
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from netobs import strategies
from netobs.errors import UsageError
from netobs.figures import (
    EVENT_BY_COLUMN,
    PLACEMENT_DEFAULT,
    ROLE_COLUMNS,
    SHAPE_KEY,
    STUDY_COLUMNS,
    STUDY_SHAPE,
    TRACE_COLUMNS,
    WORKER_COLUMNS,
    event_column,
    is_text,
    point_id,
    shape_label,
)
from netobs.params import IDENTITY, PARAMS, ident_value
from netobs.store import iter_runs_numbered, read_manifest

# A configuration within one message shape (what the questions compare; they are answered
# shape by shape, `Results.shapes` / `Results.of_shape`), the message shape (fields per
# message, TCP_NODELAY), a configuration across shapes, and a point (netobs.figures.POINT_KEY).
KEY = ["implementation", "msg_size", "threads"]
SHAPE = list(SHAPE_KEY)
# the CPU placement asked for (--placement): repeats of one configuration share it; a row without
# it (a store from before issue 27, an import) reads as the default's name (its point id), and
# analysis.noise tells from the manifest whether the placement was really controlled
PLACE = "placement"
# the other settings of a point's identity (netobs.params.IDENTITY beyond the message shape): the
# placement, the socket buffers (--sndbuf, --rcvbuf), the receive mode (--recv); the answers take
# each combination apart (`Results.settings`), as they take message shapes apart
SETTINGS = [p.name for p in IDENTITY if p.name not in SHAPE]
CONFIG = KEY + SHAPE + SETTINGS
POINT_KEY = CONFIG + ["repeat"]
IDENT_DEFAULTS = {p.name: ident_value(p, p.default) for p in IDENTITY}
MISSING_TOKENS = {"", "nan", "na", "n/a", "null", "none", "<not supported>", "<not counted>"}
KIB, MIB = 1024.0, 1024.0 * 1024.0

# derived column -> (label, unit). The names are DESIGN.md's contract (charts and report use them).
DERIVED = {
    "gbytes": ("data sent", "GB"),
    "cycles_per_byte": ("CPU cycles per byte", "cycles/B"),
    "l1_misses_per_kib": ("L1d load misses per KiB", "misses/KiB"),
    "llc_misses_per_kib": ("LLC load misses per KiB", "misses/KiB"),
    "cs_per_mib": ("context switches per MiB", "switches/MiB"),
    "cpu_s_per_gb": ("client CPU seconds per GB", "s/GB"),
    "server_cpu_s_per_gb": ("server CPU seconds per GB", "s/GB"),
    "zc_copied_fraction": ("zero-copy completions copied by the kernel", "fraction"),
    "send_copy_per_byte": ("kernel copies per byte on send (traced)", "copies/B"),
    "rx_copy_per_byte": ("kernel copies per byte on receive (traced)", "copies/B"),
    "user_copy_per_byte": ("user-space copies per byte (by construction)", "copies/B"),
    "deferred_copy_per_byte": ("kernel copies per byte of zero-copy pages on delivery (completion codes)", "copies/B"),
    "copies_per_byte": ("copies per byte (user by construction + kernel traced or from completion codes)", "copies/B"),
    "syscall_ns_per_byte": ("send-syscall time per byte (traced)", "ns/B"),
    "offcpu_share": ("client off-CPU share (traced)", "fraction"),
    # additions beyond DESIGN's list (same conventions)
    "errqueue_reads_per_send": ("error-queue reads per sendmsg (traced)", "reads/send"),
    "zc_notifications_per_msg": ("zero-copy notifications per message", "notifications/msg"),
    "zc_deferred_copies_per_send": ("deferred zero-copy copies per zero-copy send (traced)", "copies/send"),
    # the network stack's own counters (every point; the link's and the client namespace's TCP MIB)
    "tx_avg_packet_b": ("average packet the client's link sent", "B/packet"),
    "tx_packets_per_mib": ("packets the client's link sent per MiB", "packets/MiB"),
    "segments_per_mib": ("TCP segments the client sent per MiB (Tcp.OutSegs)", "segments/MiB"),
    "retrans_per_mib": ("TCP segments retransmitted per MiB (Tcp.RetransSegs)", "segments/MiB"),
}



@dataclass
class Results:
    """One results directory, loaded.

    runs:     ok points, one row per (implementation, msg_size, threads, fields, nodelay,
              repeat), with the stored columns and DERIVED columns;
    failed:   failed points (status != ok) with their error;
    manifest: manifest.json as a dict;
    notes:    what loading had to assume (derived bytes, assigned repeats).
    """

    path: Path
    manifest: dict
    runs: pd.DataFrame
    failed: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    def __post_init__(self):
        # a point's identity columns a frame lacks (one built by hand, of a store from before
        # them) have their defaults, as the loader gives a stored row without them
        for name in ("runs", "failed"):
            df = getattr(self, name)
            lacking = [c for c in SHAPE + SETTINGS if c not in df]
            if lacking and len(df.columns):
                setattr(self, name, df.assign(**{c: IDENT_DEFAULTS[c] for c in lacking}))

    @property
    def source(self) -> str:
        return str(self.manifest.get("source") or "netobs")

    @property
    def imported(self) -> bool:
        return self.source == "import"

    @property
    def host_cores(self) -> int | None:
        """The host's CPU count from the manifest, or None where unknown (imports)."""
        host = self.manifest.get("host") or {}
        for key in ("cores", "cpus", "online_cpus", "logical_cpus"):
            value = host.get(key)
            try:
                n = int(value)
            except (TypeError, ValueError):
                continue
            if n > 0:
                return n
        return None

    @property
    def topology(self) -> str:
        topo = self.manifest.get("topology")
        kind = topo.get("kind") if isinstance(topo, dict) else topo
        if kind and kind != "unknown":
            return str(kind)
        values = self.runs["topology"].dropna().unique() if "topology" in self.runs else []
        values = [v for v in values if v and v != "unknown"]
        return str(values[0]) if len(values) == 1 else "unknown"

    @property
    def receiver_local(self) -> bool | None:
        """Whether the receiver ran on the sender's kernel, as the run recorded it (the
        topology's facts: `receiver_shares_kernel`). A results directory from before netobs
        recorded it: its kind's declaration (netobs.params.TOPOLOGY_KINDS), and where that
        leaves it to the run (a remote), the two hosts' boot ids (a remote without one counts
        as another host). None where the topology is unknown (an import)."""
        topo = self.manifest.get("topology")
        if isinstance(topo, dict) and isinstance(topo.get("receiver_shares_kernel"), bool):
            return topo["receiver_shares_kernel"]
        from netobs.params import KIND_BY_NAME

        kind = KIND_BY_NAME.get(self.topology)
        if kind is None:
            return None
        if kind.shares_kernel is not None:
            return kind.shares_kernel
        here, there = (self.manifest.get("host") or {}).get("boot_id"), (self.manifest.get("remote") or {}).get("boot_id")
        return bool(here and there and here == there)

    @property
    def impls(self) -> list[str]:
        return self.memo("impls", lambda: strategies.ordered(self.runs["implementation"].unique()))

    def memo(self, key, compute):
        """`compute()` once per key for these runs (the answers ask for the same medians per
        configuration at every point they judge: without this, explain is quadratic in points)."""
        cache = self.__dict__.setdefault("_memo", {})
        hit = cache.get(key)
        if hit is None or hit[0] is not self.runs:
            hit = cache[key] = (self.runs, compute())
        return hit[1]

    def max_repeats(self) -> int:
        return int(self.runs.groupby(CONFIG).size().max()) if len(self.runs) else 0

    def min_repeats(self) -> int:
        return int(self.runs.groupby(CONFIG).size().min()) if len(self.runs) else 0

    def shapes(self) -> list[tuple[int, int]]:
        """The message shapes (fields, nodelay) of the ok points, the study's (8, 0) first."""
        found = {(int(f), int(n)) for f, n in self.runs[SHAPE].drop_duplicates().itertuples(index=False)}
        study = tuple(STUDY_SHAPE[c] for c in SHAPE)
        return sorted(found, key=lambda s: (s != study, s))

    def settings(self) -> list[dict]:
        """The combinations of SETTINGS of the ok points (placement, socket buffers, receive
        mode), the defaults first."""
        found = [dict(zip(SETTINGS, k)) for k in self.runs[SETTINGS].drop_duplicates().itertuples(index=False)]
        return sorted(found, key=lambda d: [(v != IDENT_DEFAULTS[c], str(v)) for c, v in d.items()])

    def of_settings(self, settings: dict) -> "Results":
        """These results with only the points of one combination of settings (notes kept)."""
        def pick(df: pd.DataFrame) -> pd.DataFrame:
            if df.empty:
                return df
            mine = np.logical_and.reduce([df[c] == v for c, v in settings.items()])
            return df[mine].reset_index(drop=True)
        return Results(path=self.path, manifest=self.manifest, runs=pick(self.runs), failed=pick(self.failed),
                       notes=list(self.notes))

    def placements(self) -> list[str]:
        """The placements of the ok points (--placement), the default first."""
        return sorted(set(self.runs[PLACE]), key=lambda p: (p != PLACEMENT_DEFAULT, p))

    def of_placement(self, placement: str) -> "Results":
        """These results with only the points of one placement (the loader's notes kept)."""
        def pick(df: pd.DataFrame) -> pd.DataFrame:
            return df if df.empty else df[df[PLACE] == placement].reset_index(drop=True)
        return Results(path=self.path, manifest=self.manifest, runs=pick(self.runs), failed=pick(self.failed),
                       notes=list(self.notes))

    def of_shape(self, shape: tuple[int, int]) -> "Results":
        """These results with only the points of one message shape (the loader's notes kept)."""
        def pick(df: pd.DataFrame) -> pd.DataFrame:
            if df.empty:
                return df
            mine = np.logical_and.reduce([df[c] == v for c, v in zip(SHAPE, shape)])
            return df[mine].reset_index(drop=True)
        return Results(path=self.path, manifest=self.manifest, runs=pick(self.runs), failed=pick(self.failed),
                       notes=list(self.notes))

    def measured(self, column: str) -> bool:
        """True when at least one ok point has a value in `column`."""
        return self.memo(("measured", column), lambda: bool(column in self.runs and self.runs[column].notna().any()))

    def missing_reason(self, column: str, impl: str | None = None) -> str | None:
        """Why a stored column has no value (None when every ok point, of `impl` if given, has one).

        Looks at the manifest's perf.unsupported, the per-point perf_<event>_status and the
        probe plan.
        """
        if column not in self.runs:
            return "not in runs.csv"
        rows = self.runs if impl is None else self.runs[self.runs["implementation"] == impl]
        if rows.empty:
            return None
        values = rows[column]
        if len(values) and values.notna().all():
            return None
        event = EVENT_BY_COLUMN.get(column)
        reasons = []
        if event:
            unsupported = ((self.manifest.get("perf") or {}).get("unsupported")) or {}
            if unsupported.get(event):
                reasons.append(f"{event}: {unsupported[event]}")
            status_col = event_column(event) + "_status"
            if status_col in rows:
                statuses = rows.loc[values.isna(), status_col].dropna().unique()
                statuses = [s for s in statuses if s and s != "counted"]
                if statuses and not reasons:
                    reasons.append(f"{event}: perf said '{', '.join(map(str, statuses))}'")
            if not reasons:
                reasons.append(f"{event}: not counted (no reason recorded)")
        elif column.startswith("trace_"):
            plan = self.manifest.get("probe_plan") or {}
            figure = column.split("_", 2)[-1]
            entry = plan.get(figure) if isinstance(plan, dict) else None
            if isinstance(entry, dict) and entry.get("reason"):
                reasons.append(f"{figure}: {entry['reason']}")
            elif not plan:
                reasons.append("no kernel tracing in these results")
            else:
                reasons.append(f"{figure}: not traced")
        elif self.imported:
            reasons.append("the study's CSV format has no such column (`netobs import --help` lists its columns)")
        else:
            reasons.append("not recorded")
        n_missing = int(values.isna().sum())
        where = "" if n_missing == len(values) else f" ({n_missing} of {len(values)} points)"
        return "; ".join(reasons) + where


def _fail(what: str, cause: str | None = None, fix: str | None = None) -> UsageError:
    return UsageError(what, cause, fix or "`netobs sweep -o DIR` or `netobs import study.csv --duration S -o DIR` "
                                          "to make a results directory, then `netobs explain DIR`")


# A strategy name as a results directory may hold it (another netobs's names too): a word, so
# that a point's name (and its directory under points/) never leaves points/.
STRATEGY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+-]{0,63}")
# The point's own columns and the parameter each is checked against (limits and kind).
CHECKED = {"msg_size": "msg_size", "threads": "threads", "repeat": "repeat", "fields": "fields",
           "sndbuf": "sndbuf", "rcvbuf": "rcvbuf"}
# the words among the identity's columns (a point's name): only the table's choices
WORDS = [p.name for p in IDENTITY if hasattr(p.kind, "names")]
NAMED_BAD_ROWS = 8   # bad rows named one by one; the rest counted
# the columns load_results checks or changes before it knows which rows are points, and in what order
STEP_COLUMNS = {*POINT_KEY, *(p.name for p in IDENTITY), "status", "error", "throughput_gbps", "window_s",
                "duration_s", "bytes_sent"}
# the columns the reader checks or fills row by row (kept as plain arrays even where no row has a value)
CHECKED_HERE = {"implementation", *CHECKED, "nodelay", *WORDS, *SHAPE, *SETTINGS,
                "bytes_sent", "window_s", "duration_s", "throughput_gbps"}   # (the last: filled in by load_results)


def _bad_values(cols: dict[str, np.ndarray], why: dict[int, str]) -> None:
    """Per row: why its values cannot be a point netobs measured, checked against the parameter
    table's kinds and limits (sizes, threads, repeats, fields, nodelay), the strategy name's form
    and finite numbers in every measured column; added to `why` (row -> reason) for the rows it
    does not name yet (the first reason found is a row's). One pass over each column's array per
    check (a check of words looks at each distinct word once)."""

    def mark(bad: np.ndarray, text) -> None:
        rows = [i for i in np.flatnonzero(bad).tolist() if i not in why]
        if rows:
            why.update(zip(rows, text(rows) if callable(text) else [text] * len(rows)))

    def words(values: np.ndarray, good) -> np.ndarray:
        """Per row: whether a given value is not `good` (each distinct value judged once)."""
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        judged = np.array([not good(u) for u in uniques] + [False], dtype=bool)
        return judged[codes]   # (code -1, no value: the trailing False)

    name = cols["implementation"]
    mark(pd.isna(name), "has no strategy")
    mark(words(name, lambda n: bool(STRATEGY_NAME.fullmatch(str(n)))),
         lambda rows: [f"has strategy {str(name[i])[:40]!r}, not a strategy name" for i in rows])
    with np.errstate(invalid="ignore"):
        for column, pname in CHECKED.items():
            if column not in cols:
                continue
            param, value = PARAMS.by_name[pname], cols[column]
            given = ~pd.isna(value)
            if column in ("msg_size", "threads"):
                mark(~given, f"has no {param.label}")
            if value.dtype != float:   # (a column of words: no cell is a number)
                value = pd.to_numeric(pd.Series(value), errors="coerce").to_numpy(dtype=float)
            filled = np.where(given, value, 0.0)
            whole = given & np.isfinite(filled) & (np.remainder(filled, 1) == 0)
            mark(given & ~whole, lambda rows, c=column, v=value: [f"has {c} {v[i]:g}, not a whole number" for i in rows])
            lo, hi = param.kind.lo, param.kind.hi
            outside = np.zeros(len(value), dtype=bool)
            if lo is not None:
                outside |= value < lo
            if hi is not None:
                outside |= value > hi
            outside &= whole
            if param.kind.off is not None:   # the value outside the limits that means something (0: the kernel's default)
                outside &= value != param.kind.off[0]
            mark(outside, lambda rows, c=column, v=value, p=param:
                 [f"has {c} {v[i]:.15g}, outside netobs's limits ({p.kind.span()})" for i in rows])
    if "nodelay" in cols:
        nodelay = cols["nodelay"]
        mark(words(nodelay, lambda v: v in (0.0, 1.0)), "has nodelay other than 0 or 1")
    for word in WORDS:   # a word that names points (and their directories): only the table's choices
        if word not in cols:
            continue
        choices = PARAMS.by_name[word].kind.names
        place = cols[word]
        mark(words(place, lambda v, choices=choices: v in choices),
             lambda rows, w=word, place=place, choices=choices:
             [f"has {w} {str(place[i])[:40]!r}, not one of {', '.join(choices)}" for i in rows])
    for column, value in cols.items():
        if value.dtype == float:   # (not an unmeasured column: no value at all)
            mark(np.isinf(value), f"has a non-finite {column}")


def _convert(header: list[str], rows: list[list[str]], texts: list[dict], why: dict[int, str], first: int) -> list:
    """One chunk of whole rows -> per column its values (a float array, or an object array of
    words; None where every cell of the chunk is empty). A cell that is not a number where one
    belongs is named in `why` (its row counted from `first`). `texts`: per column, the words met
    so far (each word kept once, however many rows hold it)."""
    cells = np.array(rows, dtype=object).reshape(len(rows), len(header))
    out = []
    for j, col in enumerate(header):
        raw = cells[:, j]
        if not raw.any():   # every cell "": what the lines below make of it, at once
            out.append(None)
            continue
        seen = texts[j] if is_text(col) else {}   # (numbers are seldom met twice)
        text = np.array([seen[t] if t in seen else seen.setdefault(t, t.strip()) for t in raw.tolist()], dtype=object)
        if col in WORDS:   # (placement "none" is a word)
            empty = text == ""
        else:
            empty = np.fromiter((t.lower() in MISSING_TOKENS for t in text.tolist()), dtype=bool, count=len(text))
        given = text.copy()
        given[empty] = np.nan   # (as pandas' text columns have it)
        if is_text(col):
            out.append(given)
            continue
        num = np.asarray(pd.to_numeric(given, errors="coerce"), dtype=float)
        bad = np.isnan(num) & ~empty
        for i in np.flatnonzero(bad).tolist():
            why.setdefault(first + i, f"has {col} {text[i][:40]!r}, not a number")
        out.append(num)
    return out


def _read_runs(path: Path, notes: list[str], torn: set[str]) -> dict[str, np.ndarray]:
    """runs.csv's good rows, column by column (in file order; the columns of netobs's format that
    the file lacks added, empty or with their defaults)."""
    file = path / "runs.csv"
    if not file.is_file():
        raise _fail(f"{path} has no runs.csv", "the results directory is empty or incomplete")
    try:
        text = file.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as exc:
        raise _fail(f"cannot read {file}", str(exc).splitlines()[0]) from None
    # read a chunk of rows at a time and keep each column's values, never every cell as text
    # (the cells of a large runs.csv are many times its size in memory)
    header, parts, lines, cut, why = [], [], [], [], {}
    try:
        for header, rows, numbers in iter_runs_numbered(text, cut):
            if not header:
                break
            if not parts:
                _check_header(file, header)
                parts, texts = [[] for _ in header], [{} for _ in header]
            for j, values in enumerate(_convert(header, rows, texts, why, len(lines)) if rows else ()):
                parts[j].append((len(rows), values))
            lines += numbers
    except csv.Error:   # (a field larger than csv allows): no row can be trusted
        header = []
    del text
    if not header:
        raise _fail(f"{file} is empty", "no header and no points")
    for row in cut:
        torn.add(row.point)
        notes.append(f"runs.csv line {row.line} ({row.point}) {row.how}: left out; "
                     "re-run it with `netobs sweep --resume -o DIR` or restore runs.csv")
    if not lines:
        raise _fail(f"{file} has no points", "the sweep stored nothing yet",
                    "waiting for the sweep (or `netobs sweep --resume -o DIR`), then `netobs explain DIR`")
    n = len(lines)
    cols: dict[str, np.ndarray] = {}   # built apart and joined once (no fragmented frame)
    for col, chunks in zip(header, parts):
        if all(values is None for _, values in chunks):
            cols[col] = (np.full(n, np.nan, dtype=object) if is_text(col) else
                         _unmeasured(n) if col not in CHECKED_HERE else np.full(n, np.nan))
            continue
        kind = object if is_text(col) else float   # (a chunk of empty cells: NaN, as the cells convert)
        cols[col] = np.concatenate([np.full(k, np.nan, dtype=kind) if values is None else values for k, values in chunks])
    del parts
    for col in STUDY_COLUMNS + WORKER_COLUMNS + TRACE_COLUMNS + ROLE_COLUMNS:
        if col not in cols:
            cols[col] = (np.full(n, None, dtype=object) if is_text(col) else
                         _unmeasured(n) if col not in CHECKED_HERE else np.full(n, np.nan))
    _bad_values(cols, why)
    if why:
        bad = np.zeros(n, dtype=bool)
        bad[list(why)] = True
        badrows = np.flatnonzero(bad).tolist()
        if bad.all():
            raise _fail(f"{file} has no row netobs can analyse", f"line {lines[0]} {why[0]} (and every other row is bad "
                        "too)" if n > 1 else f"line {lines[0]} {why[0]}", "restoring runs.csv or re-running the sweep")
        _name_bad_rows(notes, [lines[i] for i in badrows], [why[i] for i in badrows],
                       [_point_name(cols, i) for i in badrows[:NAMED_BAD_ROWS]])
        keep = ~bad
        for c in cols:   # (one column at a time: never the table twice)
            cols[c] = cols[c][keep]
        n = int(keep.sum())
    # the message shape: a row of a store from before it was a column (or an import) has the study's
    # the identity's other columns (placement, buffers, receive mode): absent in an older store, the defaults
    for col in SHAPE + SETTINGS:
        default = IDENT_DEFAULTS[col]
        if col not in cols:
            cols[col] = np.full(n, default if isinstance(default, str) else float(default),
                                dtype=object if isinstance(default, str) else float)
        else:
            missing = pd.isna(cols[col])
            if missing.any():
                cols[col] = cols[col].copy()
                cols[col][missing] = default if isinstance(default, str) else float(default)
    return {c: _unmeasured(n) if v.dtype == float and c not in CHECKED_HERE and np.isnan(v).all() else v
            for c, v in cols.items()}


def _table(columns: list[str], cols: dict[str, np.ndarray], rows: pd.DataFrame, move: bool) -> pd.DataFrame:
    """The table of `rows` (a frame of some columns, indexed by row number in `cols`), in their
    order: `columns`, each from `rows` where it has it, else from `cols`. Built a kind of column
    at a time into one block; with `move`, each column of `cols` is dropped as it is copied (so
    that the table is never in memory twice)."""
    at = rows.index.to_numpy()
    kinds: dict = {}
    for c in columns:
        kinds.setdefault((rows[c] if c in rows.columns else cols[c]).dtype, []).append(c)
    parts = []
    for kind, names in kinds.items():
        if not isinstance(kind, np.dtype):   # (pandas' own kinds, such as its words of `status`: as they are)
            parts.append(rows[names].reset_index(drop=True))
            continue
        block = np.empty((len(names), len(at)), dtype=kind)
        for i, c in enumerate(names):
            if c in rows.columns:
                block[i] = rows[c].to_numpy()
            else:
                block[i] = cols[c][at]
                if move:
                    del cols[c]
        parts.append(pd.DataFrame(block.T, columns=names, dtype=kind, copy=False))   # (words stay objects)
    return pd.concat(parts, axis=1)[columns]   # (copy on write: the blocks are not copied)


def _unmeasured(n: int) -> np.ndarray:
    """A column of `n` rows none of which has a value (most of runs.csv's columns in a sweep
    without --trace or --profile), in a quarter of the memory: NaN is NaN in float16, and
    anything computed with a measured (float64) column is float64. (Stored as float64 these
    columns were most of the loaded table, and of every copy of it; pandas' sparse arrays, which
    would hold them in none, cannot be grouped.)"""
    return np.full(n, np.nan, dtype=np.float16)


def _check_header(file: Path, header: list[str]) -> None:
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:
        raise _fail(f"{file} names column(s) {', '.join(twice)} twice",
                    "it is not in netobs's runs.csv format (each column once)")
    missing = [c for c in STUDY_COLUMNS if c not in header]
    if missing:
        raise _fail(f"{file} is missing column(s) {', '.join(missing)}",
                    "it is not in netobs's runs.csv format (schema 1: the study's columns first)")


def _point_name(cols: dict[str, np.ndarray], i: int) -> str:
    """The point a row names, where its own cells are good (else "point unknown")."""
    name = str(cols["implementation"][i])
    key = {c: cols[c][i] for c in ("msg_size", "threads", "repeat")}
    key["repeat"] = 0.0 if key["repeat"] != key["repeat"] else key["repeat"]
    try:
        if not STRATEGY_NAME.fullmatch(name):
            return "point unknown"
        return point_id(name, *(PARAMS.by_name[CHECKED[c]].check(int(v)) for c, v in key.items()))
    except (ValueError, TypeError, OverflowError, UsageError):
        return "point unknown"


def _name_bad_rows(notes: list[str], lines: list[int], whys: list[str], points: list[str]) -> None:
    """Rows whose values are not a point netobs could have measured: named (line, point and
    what is wrong), left out, as torn rows are."""
    fix = "restore runs.csv or re-run the point with `netobs sweep --resume -o DIR`"
    for line, why, point in zip(lines, whys, points):
        shown = "" if point == "point unknown" else f" ({point})"
        notes.append(f"runs.csv line {line}{shown} {why}: left out; {fix}")
    if len(lines) > NAMED_BAD_ROWS:
        notes.append(f"{len(lines) - NAMED_BAD_ROWS} more runs.csv row(s) with bad values (lines "
                     f"{', '.join(map(str, lines[NAMED_BAD_ROWS:NAMED_BAD_ROWS + 5]))}"
                     f"{' ...' if len(lines) > NAMED_BAD_ROWS + 5 else ''}): left out")


def _bytes_and_repeats(df: pd.DataFrame, manifest: dict, notes: list[str]) -> pd.DataFrame:
    # repeat: imports may leave it empty; number rows of one configuration in file order
    if df["repeat"].isna().any():
        order = df.groupby(CONFIG, sort=False).cumcount().astype(float)
        df["repeat"] = df["repeat"].fillna(order)
        notes.append("repeat numbers were missing for some rows; numbered in file order per configuration")
    # window: the measured window; imports store the duration as the window
    window = df["window_s"].fillna(df["duration_s"])
    measured = df["throughput_gbps"].notna()
    if (df["window_s"].isna() & df["duration_s"].notna() & measured).any():
        notes.append("window_s missing: the run duration is used as the measured window")
    df["window_s"] = window
    # bytes: measured where stored; else throughput x window (what `netobs import` does)
    derived = df["bytes_sent"].isna() & df["throughput_gbps"].notna() & df["window_s"].notna()
    df.loc[derived, "bytes_sent"] = df.loc[derived, "throughput_gbps"] * 1e9 / 8 * df.loc[derived, "window_s"]
    df["bytes_source"] = np.where(derived, "throughput x duration", np.where(df["bytes_sent"].notna(), "measured", None))
    if derived.any():
        notes.append(f"bytes sent derived from throughput x duration for {int(derived.sum())} point(s)")
    if str(manifest.get("source")) == "import":
        df["bytes_source"] = df["bytes_source"].where(df["bytes_sent"].isna(), "throughput x duration")
    return df


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num/den, NaN where either is missing or den is not positive (never a fake 0 or inf)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / np.where(den > 0, den, np.nan)


def derive(df: pd.DataFrame) -> pd.DataFrame:
    """Add DESIGN's derived columns (per byte; NaN where an input is missing). Computed on the
    columns' arrays (one numpy operation each), then added at once."""
    def col(name: str) -> np.ndarray:
        return df[name].to_numpy(dtype=float, na_value=np.nan)

    b, bt = col("bytes_sent"), col("bytes_sent_total")
    out = {}
    out["gbytes"] = b / 1e9
    out["cycles_per_byte"] = _ratio(col("cpu_cycles"), b)
    out["l1_misses_per_kib"] = _ratio(col("l1_cache_misses"), b / KIB)
    out["llc_misses_per_kib"] = _ratio(col("llc_cache_misses"), b / KIB)
    out["cs_per_mib"] = _ratio(col("context_switches"), b / MIB)
    out["cpu_s_per_gb"] = _ratio(col("cpu_user_s") + col("cpu_sys_s"), b / 1e9)
    # the server's CPU covers its connections' whole life (warm-up included): per byte received
    out["server_cpu_s_per_gb"] = _ratio(col("server_cpu_user_s") + col("server_cpu_sys_s"), col("bytes_received") / 1e9)
    out["zc_copied_fraction"] = _ratio(col("zc_copied"), col("zc_completions"))
    out["send_copy_per_byte"] = _ratio(col("trace_client_sendmsg_bytes") - col("trace_client_zc_send_bytes"), bt)
    out["rx_copy_per_byte"] = _ratio(col("trace_server_rx_copy_bytes"), bt)
    names = df["implementation"].to_numpy(dtype=object)
    known = {n: strategies.BY_NAME.get(n) for n in dict.fromkeys(names.tolist())}   # None: a name netobs does not have
    out["user_copy_per_byte"] = np.array([float(s.user_copies) if s else 0.0 for s in map(known.get, names.tolist())],
                                         dtype=float)
    # zero-copy pages the kernel copied anyway (SO_EE_CODE_ZEROCOPY_COPIED on the completion):
    # the share of zero-copy sends it copied is a copy per byte of theirs, even where no probe
    # can see skb_copy_ubufs itself
    zero_copy = np.array([bool(s and s.zero_copy) for s in map(known.get, names.tolist())], dtype=bool)
    out["deferred_copy_per_byte"] = np.where(zero_copy, _ratio(col("zc_copied"), col("zc_completions")), 0.0)
    out["copies_per_byte"] = (out["user_copy_per_byte"] + out["send_copy_per_byte"]
                              + out["deferred_copy_per_byte"] + out["rx_copy_per_byte"])
    out["syscall_ns_per_byte"] = _ratio(col("trace_client_send_syscall_ns"), bt)
    out["offcpu_share"] = _ratio(col("trace_client_offcpu_ns"), col("threads") * (col("warmup_s") + col("window_s")) * 1e9)
    out["errqueue_reads_per_send"] = _ratio(col("trace_client_errqueue_reads"), col("trace_client_sendmsg_calls"))
    # notifications are counted over the whole run (warm-up too): per message of the same span
    out["zc_notifications_per_msg"] = _ratio(col("zc_notifications"), bt / col("msg_size"))
    client, server = col("trace_client_zc_deferred_copies"), col("trace_server_zc_deferred_copies")
    deferred = np.where(np.isnan(client) & np.isnan(server), np.nan,
                        np.where(np.isnan(client), 0.0, client) + np.where(np.isnan(server), 0.0, server))
    out["zc_deferred_copies_per_send"] = _ratio(deferred, col("trace_client_zc_sends"))
    # link and MIB counters cover the whole point (warm-up included): per byte of the same span
    out["tx_avg_packet_b"] = _ratio(col("link_client_tx_bytes"), col("link_client_tx_packets"))
    out["tx_packets_per_mib"] = _ratio(col("link_client_tx_packets"), bt / MIB)
    out["segments_per_mib"] = _ratio(col("netstat_client_tcp_outsegs"), bt / MIB)
    out["retrans_per_mib"] = _ratio(col("netstat_client_tcp_retranssegs"), bt / MIB)
    return df.assign(**out)   # (copy on write: `df` keeps its columns, and none is copied)


def load_results(path) -> Results:
    """Read a results directory; raise UsageError naming the file and the fix when it is unusable."""
    path = Path(path)
    if not path.exists():
        raise _fail(f"results directory {path} does not exist")
    if not path.is_dir():
        raise _fail(f"{path} is not a directory", "explain reads a results directory (runs.csv + manifest.json)")
    manifest = read_manifest(path)
    notes: list[str] = []
    torn: set[str] = set()
    cols = _read_runs(path, notes, torn)
    # what the checks below read or change (the rest of the table joins once the rows are known)
    df = pd.DataFrame({c: pd.Series(cols[c], dtype=object, copy=False) if cols[c].dtype == object else cols[c]
                       for c in cols if c in STEP_COLUMNS})
    if df["implementation"].isna().any() or df["msg_size"].isna().any() or df["threads"].isna().any():
        i = int(np.flatnonzero((df["implementation"].isna() | df["msg_size"].isna() | df["threads"].isna())
                               .to_numpy())[0])
        raise _fail(f"{path / 'runs.csv'}, row {i + 2}: implementation, msg_size or threads is empty",
                    "the file is damaged", "restoring runs.csv or re-running the sweep")
    df["msg_size"] = df["msg_size"].astype(int)
    df["threads"] = df["threads"].astype(int)
    for col in SHAPE + [c for c in SETTINGS if not isinstance(IDENT_DEFAULTS[c], str)]:
        df[col] = df[col].astype(int)
    status = df["status"].fillna("").str.lower()
    unknown_status = status.eq("")
    status = status.where(~unknown_status, np.where(df["throughput_gbps"].notna(), "ok", "failed"))
    df["status"] = status
    df.loc[unknown_status & (status == "failed") & df["error"].isna(), "error"] = "no throughput recorded"
    df = _bytes_and_repeats(df, manifest, notes)
    df["repeat"] = df["repeat"].astype(int)
    dup = df.duplicated(POINT_KEY, keep="last")
    if dup.any():   # a failed row followed by the point's row from --resume is the store's way: no note
        if (dup & df["status"].eq("ok")).any():
            notes.append(f"{int(dup.sum())} duplicate point row(s) in runs.csv; the last of each is used")
        df = df[~dup]
    notes += check_points(path, manifest, df, already_named=torn)
    ok = df["status"].eq("ok") & df["throughput_gbps"].notna()
    failed = df[~ok].copy()
    failed.loc[failed["error"].isna(), "error"] = "status ok but no throughput recorded"
    # the whole tables, rows in their order, then derived (row by row: the same figures)
    columns = list(cols) + [c for c in df.columns if c not in cols]
    failed = _table(columns, cols, failed.sort_values(POINT_KEY, key=strategies.sort_key), move=False)
    runs = derive(_table(columns, cols, df[ok].sort_values(POINT_KEY, key=strategies.sort_key), move=True))
    del df, cols
    if runs.empty:
        raise _fail(f"{path / 'runs.csv'} has no successful points ({len(failed)} failed)",
                    f"first error: {failed['error'].iloc[0]}" if len(failed) else None,
                    "`netobs doctor` to see what this host can run, then re-run the sweep")
    return Results(path=path, manifest=manifest, runs=runs, failed=failed, notes=notes)


def series_label(implementation: str, fields, nodelay) -> str:
    """How a chart or comparison names a strategy in one message shape: the strategy alone in
    the study's shape (8 fields, no TCP_NODELAY), else with the shape: "one_copy f=1"."""
    study = int(fields) == STUDY_SHAPE["fields"] and int(nodelay) == STUDY_SHAPE["nodelay"]
    return str(implementation) if study else f"{implementation} {shape_label(fields, nodelay)}"


def by_series(runs: pd.DataFrame) -> pd.DataFrame:
    """`runs` with each strategy in a message shape other than the study's as a series of its
    own: `implementation` becomes its series label ("one_copy f=1"; netobs's strategy stays in
    `strategy`), so a chart or comparison that groups by strategy keeps the shapes apart. Runs
    all of the study's shape come back as they are."""
    if runs.empty or not set(SHAPE) <= set(runs.columns):
        return runs
    shape = runs[SHAPE].fillna({c: STUDY_SHAPE[c] for c in SHAPE})
    if (shape == pd.Series(STUDY_SHAPE)[SHAPE]).all(axis=None):
        return runs
    out = runs.copy()
    out["strategy"] = runs["implementation"]
    out["implementation"] = [series_label(i, f, n) for i, f, n in
                             zip(runs["implementation"], shape["fields"], shape["nodelay"])]
    return out


def _names(ids) -> str:
    ids = sorted(ids)
    shown = ", ".join(ids[:6])
    return shown + (f" and {len(ids) - 6} more" if len(ids) > 6 else "")


def check_points(path: Path, manifest: dict, df: pd.DataFrame, already_named=()) -> list[str]:
    """What runs.csv, points/ and the manifest's matrix disagree on, point by point: a point
    whose files are under points/ but has no row, an ok row without its points/ files, and
    points of the matrix with no row (so a reader is never shown fewer points without a word).
    `already_named`: points a note has named already (a torn row), not named again."""
    notes = []
    ident = [p.name for p in IDENTITY]
    rows = {point_id(r[0], r[1], r[2], r[3], *r[4:-1]): r[-1]
            for r in df[["implementation", "msg_size", "threads", "repeat", *ident, "status"]].itertuples(index=False)}
    rows.update({name: "torn" for name in already_named})
    points = path / "points"
    if str(manifest.get("source")) != "import" and points.is_dir():
        stored = {d.name for d in points.iterdir() if (d / "result.json").is_file()}
        no_row = stored - set(rows)
        if no_row:
            notes.append(f"{len(no_row)} point(s) have results under points/ but no row in runs.csv: "
                         f"{_names(no_row)}; they are not analysed (restore runs.csv, or re-run them with --resume)")
        no_files = {p for p, status in rows.items() if status == "ok"} - stored
        if no_files:
            notes.append(f"{len(no_files)} ok row(s) of runs.csv have no points/<point>/result.json: "
                         f"{_names(no_files)} (their raw files are lost; the rows are analysed)")
    matrix = manifest.get("matrix") or {}
    names = matrix.get("strategies") or matrix.get("impls")
    # an import's "matrix" lists what its rows hold (any grid), not a plan
    if str(manifest.get("source")) != "import" and names and matrix.get("sizes") and matrix.get("threads"):
        # each identity parameter's values: a list (an axis), one value (fields before issue 15, the
        # receive mode), or absent (a store from before it): its default
        values = []
        for p in IDENTITY:
            v = matrix.get(p.name, p.default)
            values.append(v if isinstance(v, list) else [v])
        planned = {point_id(i, s, t, r, *v) for i in names for s in matrix["sizes"] for t in matrix["threads"]
                   for r in range(int(matrix.get("repeats") or 1)) for v in itertools.product(*values)}
        absent = planned - set(rows)
        if absent:
            state = manifest.get("state")
            why = ("the sweep did not finish" if state in ("running", "interrupted")
                   else "their rows are missing from runs.csv")
            notes.append(f"{len(absent)} of {len(planned)} planned point(s) have no row: {_names(absent)} "
                         f"({why}; `netobs sweep --resume -o DIR` measures them)")
    return notes
