"""The results directory: runs.csv, manifest.json and each point's raw files.

Layout is the contract in docs/DESIGN.md (schema version 1); the columns are declared in
netobs.figures. Every write goes through netobs.files.atomic_write, so a crash never leaves a
torn row or manifest, and each point is stored the moment it finishes.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from netobs import __version__
from netobs.errors import UsageError
from netobs import figures
from netobs.figures import (EVENT_BY_COLUMN, LOST_EVENTS, ROLES, SERVER_PREFIX, TRACE_NAMES, event_column, point_id,
                            trace_column)
from netobs.files import atomic_write, write_json

SCHEMA_VERSION = 1



def _at(result: dict, path: tuple[str, ...]):
    """The value at `path` in a point result (None where any step is missing)."""
    value = result
    for step in path:
        if not isinstance(value, dict):
            return None
        value = value.get(step)
    return value


def _perf_cells(row: dict, counts: dict, events: list[str], prefix: str = "") -> None:
    for ev in events:
        stem = prefix + event_column(ev)
        rec = counts.get(ev) or {}
        row[stem] = rec.get("value")
        row[f"{stem}_status"] = rec.get("status") or ("" if not counts else "not counted")
        row[f"{stem}_running_pct"] = rec.get("running_pct")


def _cell(value) -> str:
    """CSV cell: None/NaN -> empty (missing, never 0); floats without noise."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


# what a point result may leave out, and what it then means
_DEFAULTS = {"repeat": 0, "status": "ok"}


def flatten(result: dict, events: list[str], server_events: list[str] = ()) -> dict:
    """A point result (DESIGN.md's shape) -> one runs.csv row (column -> value or None), by
    the paths netobs.figures declares."""
    row = {}
    for fig in figures.STUDY_FIGURES + figures.WORKER_FIGURES:
        if fig.path:
            value = _at(result, fig.path)
            row[fig.column] = _DEFAULTS.get(fig.column) if value is None else value
    perf_events = ((result.get("perf") or {}).get("events")) or {}
    _perf_cells(row, perf_events, events)
    _perf_cells(row, ((result.get("server_perf") or {}).get("events")) or {}, server_events, SERVER_PREFIX)
    for column, ev in EVENT_BY_COLUMN.items():
        row[column] = (perf_events.get(ev) or {}).get("value")
    trace = result.get("trace") or {}
    for role in ROLES:
        counts = trace.get(role) or {}
        for name in TRACE_NAMES:
            row[trace_column(role, name)] = counts.get(name)
    row[LOST_EVENTS.column] = _at(result, LOST_EVENTS.path)
    for family, figs in figures.ROLE_FAMILIES:
        for role in ROLES:
            for fig in figs:
                row[figures.role_column(family, role, fig.column)] = _at(result, figures.role_path(fig, role))
    return row


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _int_cell(row: dict, column: str, default: int) -> int:
    """A whole-number cell; empty or absent (a row of a store from before the column): `default`."""
    cell = row.get(column)
    return default if cell is None or str(cell).strip() == "" else int(float(cell))


def row_key(row: dict) -> tuple:
    """A runs.csv row's point identity, as `RunSpec.key` has it (figures.POINT_KEY): rows of
    stores written before the message shape was a column have the study's shape, before the
    placement was one the default placement's name."""
    return (str(row["implementation"]), int(float(row["msg_size"])), int(float(row["threads"])),
            _int_cell(row, "repeat", 0), *(_int_cell(row, c, figures.STUDY_SHAPE[c]) for c in figures.SHAPE_KEY),
            str(row.get("placement") or "").strip() or figures.PLACEMENT_DEFAULT)



class PointFiles:
    """One point's directory (points/<id>/ of a results directory, or `netobs run --keep DIR`):
    the store's. Its files are named here (the point's result, each role's worker report and
    stderr) or handed over by their owner as plain names (an observer's: `write`), never as
    paths; an observer that needs a file while the point runs (perf's output) asks `at`."""

    RESULT = "result.json"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).resolve()
        self.path.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def report(role: str) -> str:
        """The role's worker report (its JSON stats)."""
        return f"{role}.json"

    @staticmethod
    def stderr(role: str) -> str:
        """The role's worker's own messages."""
        return f"{role}.stderr"

    def at(self, name: str) -> Path:
        """Where the file `name` of this point lives (a plain name: no directory in it)."""
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"not a plain file name: {name!r}")
        return self.path / name

    def write(self, name: str, text: str) -> Path:
        path = self.at(name)
        atomic_write(path, text)
        return path

    def write_json(self, name: str, obj) -> Path:
        path = self.at(name)
        write_json(path, obj)
        return path

    def read(self, name: str) -> str:
        path = self.at(name)
        return path.read_text(errors="replace") if path.exists() else ""

    def texts(self) -> dict[str, str]:
        """Every plain file here by name (what a remote end hands back to the local store)."""
        return {p.name: p.read_text(errors="replace") for p in sorted(self.path.iterdir()) if p.is_file()}


class ResultsDir:
    """A results directory being written by a sweep (or by `netobs import`)."""

    def __init__(self, path: Path, columns: list[str], manifest: dict, rows: list[dict]):
        self.path = path
        self.columns = columns
        self.manifest = manifest
        self._rows = rows

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, manifest: dict, events: list[str], force: bool = False,
               fix: str = "--resume to complete it, --force to move it aside, or another -o path",
               server_events: list[str] = ()) -> "ResultsDir":
        """A new results directory. An existing non-empty one is never overwritten: without
        `force` this is an error; with it the old directory is moved aside, not deleted.
        `server_events`: the server's perf events (--perf-server), columns of their own."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise UsageError(f"{path} exists and is not a directory", fix="another -o path")
        if path.is_dir() and any(path.iterdir()):
            if not force:
                raise UsageError(f"results directory {path} is not empty", fix=fix)
            aside = path.with_name(f"{path.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
            path.rename(aside)
            manifest = {**manifest, "replaced_directory_moved_to": str(aside)}
        path.mkdir(parents=True, exist_ok=True)
        (path / "points").mkdir(exist_ok=True)
        # provenance every results directory carries; the caller's fields come after it
        manifest = {"schema_version": SCHEMA_VERSION, "netobs_version": __version__, "command": sys.argv,
                    "started": now_iso(), **manifest, "perf_events": list(events),
                    "perf_server_events": list(server_events)}
        store = cls(path, figures.columns_for(events, server_events), manifest, [])
        store.write_manifest()
        store._write_csv()
        return store

    @classmethod
    def open_for_resume(cls, path: str | os.PathLike) -> "ResultsDir":
        path = Path(path)
        manifest = read_manifest(path)
        rows = read_rows(path)
        events = manifest.get("perf_events") or []
        server_events = manifest.get("perf_server_events")
        if server_events is None:   # a directory from before server columns: its matrix says
            server_events = events if (manifest.get("matrix") or {}).get("perf_server") else []
            manifest["perf_server_events"] = server_events
        return cls(path, figures.columns_for(events, server_events), manifest, rows)

    # -- writing -------------------------------------------------------------------------
    @property
    def events(self) -> list[str]:
        return list(self.manifest.get("perf_events") or [])

    @property
    def server_events(self) -> list[str]:
        return list(self.manifest.get("perf_server_events") or [])

    def done_keys(self) -> set[tuple]:
        """Points already stored with status ok (failed ones are run again on --resume)."""
        return {row_key(r) for r in self._rows if r.get("status") == "ok"}

    def point_dir(self, point_id: str) -> Path:
        d = self.path / "points" / point_id
        if d.exists():  # a point that never finished (crash, Ctrl-C): its files are not a result
            shutil.rmtree(d)
        d.mkdir(parents=True)
        return d

    def point(self, point_id: str) -> PointFiles:
        """A fresh directory for the point (`point_dir`), as the point's files."""
        return PointFiles(self.point_dir(point_id))

    def add_point(self, result: dict) -> None:
        """Store one finished point (ok or failed) at once; replaces an earlier failed row."""
        self.add_points([result])

    def add_points(self, results: list[dict]) -> None:
        """Store several points with one rewrite of runs.csv (an import)."""
        for result in results:
            row = flatten(result, self.events, self.server_events)
            key = row_key(row)
            self._rows = [r for r in self._rows if row_key(r) != key]
            self._rows.append({c: _cell(row.get(c)) for c in self.columns})
        self._write_csv()

    def write_manifest(self) -> None:
        write_json(self.path / "manifest.json", self.manifest)

    def update_manifest(self, **fields) -> None:
        self.manifest.update(fields)
        self.write_manifest()

    def _write_csv(self) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self._rows)
        atomic_write(self.path / "runs.csv", buf.getvalue())

    @property
    def rows(self) -> list[dict]:
        return list(self._rows)


def read_manifest(path: Path) -> dict:
    """The manifest of a results directory, checked: present, a JSON object, our schema."""
    path = Path(path)
    file = path / "manifest.json"
    make = "`netobs sweep -o DIR` or `netobs import study.csv --duration S -o DIR`"
    restore = "restoring manifest.json from the run, or re-running the sweep/import into a new directory"
    if not file.is_file():
        raise UsageError(f"{path} is not a netobs results directory", "no manifest.json in it", make)
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"cannot read {file}", str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                         restore) from None
    if not isinstance(manifest, dict):
        raise UsageError(f"cannot read {file}", "it is not a JSON object", restore)
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise UsageError(f"{file} has schema_version {version!r}; this netobs reads version {SCHEMA_VERSION}",
                         fix="the netobs version that wrote it, or re-importing/re-running into a new directory")
    return manifest


@dataclass(frozen=True)
class TornRow:
    line: int           # its line in runs.csv
    point: str          # the point, as far as its cells say
    how: str            # what is wrong with it


def parse_runs(text: str) -> tuple[list[str], list[list[str]], list[TornRow]]:
    """runs.csv's text -> (header, whole rows, torn rows). A torn row has fewer or more cells
    than the header, or is a last row without its newline: netobs writes the file whole and
    newline-terminated, so such a row was cut, even where the cut fell inside its last cell."""
    records = list(csv.reader(io.StringIO(text)))
    if not records:
        return [], [], []
    header = [c.strip() for c in records[0]]
    rows, torn = [], []
    for number, record in enumerate(records[1:], start=2):
        if not any(cell.strip() for cell in record):
            continue
        cut = number == len(records) and not text.endswith("\n")
        if len(record) == len(header) and not cut:
            rows.append(record)
            continue
        how = (f"is cut off after {len(record)} of {len(header)} cells" if cut and len(record) < len(header)
               else "is cut off in its last cell (the file ends without a newline)" if cut
               else f"has {len(record)} cells where the header has {len(header)}")
        torn.append(TornRow(number, _row_point(dict(zip(header, record))), how))
    return header, rows, torn


def _row_point(row: dict) -> str:
    try:
        return point_id(*row_key(row))
    except (KeyError, TypeError, ValueError):
        return "point unknown"


def read_rows(path: Path) -> list[dict]:
    """runs.csv's whole rows (a point whose row is torn is not stored: `--resume` measures it
    again)."""
    file = Path(path) / "runs.csv"
    if not file.is_file():
        return []
    header, rows, _ = parse_runs(file.read_text(encoding="utf-8"))
    return [dict(zip(header, row)) for row in rows]
