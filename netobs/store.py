"""The results directory: runs.csv, manifest.json and each point's raw files.

Layout and columns are the contract in docs/DESIGN.md (schema version 1). Every write is
atomic (temporary file + rename), so a crash never leaves a torn row or manifest, and each
point is stored the moment it finishes.
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
from pathlib import Path

from netobs import __version__
from netobs.errors import UsageError

SCHEMA_VERSION = 1

STUDY_COLUMNS = [
    "implementation", "msg_size", "threads", "throughput_gbps", "latency_us",
    "cpu_cycles", "l1_cache_misses", "llc_cache_misses", "context_switches",
]
# study column -> the perf event (as netobs asks for it) that fills it
STUDY_EVENTS = {
    "cpu_cycles": "cpu-cycles",
    "l1_cache_misses": "L1-dcache-load-misses",
    "llc_cache_misses": "LLC-load-misses",
    "context_switches": "context-switches",
}
EXTENDED_COLUMNS = [
    "repeat", "status", "error", "topology", "duration_s", "warmup_s", "window_s",
    "bytes_sent", "bytes_sent_total", "bytes_received", "messages", "goodput_gbps",
    "latency_p50_us", "latency_p99_us", "latency_p999_us", "latency_max_us",
    "cpu_user_s", "cpu_sys_s", "server_cpu_user_s", "server_cpu_sys_s",
    "zc_completions", "zc_copied", "zc_notifications", "zc_enobufs",
]
TRACE_FIGURES = [
    "sendmsg_calls", "sendmsg_bytes", "zc_sends", "zc_send_bytes", "rx_copy_calls", "rx_copy_bytes",
    "errqueue_reads", "zc_callbacks", "zc_deferred_copies", "send_syscalls", "send_syscall_ns",
    "recv_syscalls", "recv_syscall_ns", "offcpu_switches", "offcpu_ns", "mem_pressure_events",
]
TRACE_ROLES = ("client", "server")
TRACE_COLUMNS = [f"trace_{r}_{f}" for r in TRACE_ROLES for f in TRACE_FIGURES] + ["trace_lost_events"]
POINT_KEY = ("implementation", "msg_size", "threads", "repeat")


def event_column(event: str) -> str:
    """perf event name -> its runs.csv column stem: 'L1-dcache-load-misses' -> 'perf_l1_dcache_load_misses'."""
    return "perf_" + "".join(c if c.isalnum() else "_" for c in event.lower()).strip("_")


def perf_columns(events: list[str], prefix: str = "") -> list[str]:
    cols = []
    for ev in events:
        stem = prefix + event_column(ev)
        cols += [stem, f"{stem}_status", f"{stem}_running_pct"]
    return cols


# the server's counts (--perf-server), over its whole life: `server_perf_<e>`, ...
SERVER_PREFIX = "server_"


def columns_for(events: list[str], server_events: list[str] = ()) -> list[str]:
    return (STUDY_COLUMNS + EXTENDED_COLUMNS + perf_columns(events) + perf_columns(server_events, SERVER_PREFIX)
            + TRACE_COLUMNS)


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


def flatten(result: dict, events: list[str], server_events: list[str] = ()) -> dict:
    """A point result (DESIGN.md's shape) -> one runs.csv row (column -> value or None)."""
    lat = result.get("latency_us") or {}
    cpu = result.get("cpu") or {}
    scpu = result.get("server_cpu") or {}
    zc = result.get("zerocopy") or {}
    perf_events = ((result.get("perf") or {}).get("events")) or {}
    trace = result.get("trace") or {}
    row = {
        "implementation": result.get("impl"), "msg_size": result.get("msg_size"),
        "threads": result.get("threads"), "throughput_gbps": result.get("throughput_gbps"),
        "latency_us": lat.get("mean"),
        "repeat": result.get("repeat", 0), "status": result.get("status", "ok"), "error": result.get("error"),
        "topology": result.get("topology"), "duration_s": result.get("duration_s"),
        "warmup_s": result.get("warmup_s"), "window_s": result.get("window_s"),
        "bytes_sent": result.get("bytes_sent"), "bytes_sent_total": result.get("bytes_sent_total"),
        "bytes_received": result.get("bytes_received"), "messages": result.get("messages"),
        "goodput_gbps": result.get("goodput_gbps"),
        "latency_p50_us": lat.get("p50"), "latency_p99_us": lat.get("p99"),
        "latency_p999_us": lat.get("p999"), "latency_max_us": lat.get("max"),
        "cpu_user_s": cpu.get("user_s"), "cpu_sys_s": cpu.get("sys_s"),
        "server_cpu_user_s": scpu.get("user_s"), "server_cpu_sys_s": scpu.get("sys_s"),
        "zc_completions": zc.get("completions"), "zc_copied": zc.get("copied"),
        "zc_notifications": zc.get("notifications"), "zc_enobufs": zc.get("enobufs"),
    }
    _perf_cells(row, perf_events, events)
    _perf_cells(row, ((result.get("server_perf") or {}).get("events")) or {}, server_events, SERVER_PREFIX)
    for study_col, ev in STUDY_EVENTS.items():
        row[study_col] = (perf_events.get(ev) or {}).get("value")
    for role in TRACE_ROLES:
        figures = trace.get(role) or {}
        for fig in TRACE_FIGURES:
            row[f"trace_{role}_{fig}"] = figures.get(fig)
    row["trace_lost_events"] = trace.get("lost_events")
    return row


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write a whole file or nothing: a temporary file beside it, then a rename. The file gets
    the usual permissions (umask), so a report written by root is readable by its user."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: Path, obj) -> None:
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def _key(row: dict) -> tuple:
    return (str(row["implementation"]), int(float(row["msg_size"])), int(float(row["threads"])),
            int(float(row.get("repeat") or 0)))


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
        store = cls(path, columns_for(events, server_events), manifest, [])
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
        return cls(path, columns_for(events, server_events), manifest, rows)

    # -- writing -------------------------------------------------------------------------
    @property
    def events(self) -> list[str]:
        return list(self.manifest.get("perf_events") or [])

    @property
    def server_events(self) -> list[str]:
        return list(self.manifest.get("perf_server_events") or [])

    def done_keys(self) -> set[tuple]:
        """Points already stored with status ok (failed ones are run again on --resume)."""
        return {_key(r) for r in self._rows if r.get("status") == "ok"}

    def point_dir(self, point_id: str) -> Path:
        d = self.path / "points" / point_id
        if d.exists():  # a point that never finished (crash, Ctrl-C): its files are not a result
            shutil.rmtree(d)
        d.mkdir(parents=True)
        return d

    def add_point(self, result: dict) -> None:
        """Store one finished point (ok or failed) at once; replaces an earlier failed row."""
        self.add_points([result])

    def add_points(self, results: list[dict]) -> None:
        """Store several points with one rewrite of runs.csv (an import)."""
        for result in results:
            row = flatten(result, self.events, self.server_events)
            key = _key(row)
            self._rows = [r for r in self._rows if _key(r) != key]
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


def read_rows(path: Path) -> list[dict]:
    file = Path(path) / "runs.csv"
    if not file.is_file():
        return []
    with open(file, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))
