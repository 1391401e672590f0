"""The results directory: runs.csv, manifest.json and each point's raw files.

Layout is the contract in docs/DESIGN.md (schema version 1); the columns are declared in
netobs.figures. One writer per directory (`DirLock`); the manifest goes through
netobs.files.atomic_write and each point's row is appended the moment it finishes (a write cut
short is undone), so a crash never leaves a torn row or manifest. A write the disk refuses is
a `StoreError`: one line, and the points stored before it stay.
"""
from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
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
from netobs.errors import NetobsError, UsageError
from netobs import figures
from netobs.figures import (EVENT_BY_COLUMN, LOST_EVENTS, ROLES, SERVER_PREFIX, TRACE_NAMES, event_column, point_id,
                            trace_column)
from netobs.files import atomic_write, create_new, write_json
from netobs.params import IDENTITY, ident_value

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
    """A runs.csv row's point identity, as `RunSpec.key` has it (netobs.params.POINT_KEY): a row
    of a store written before one of the identity parameters was a column (the message shape,
    the placement, the socket buffers, the receive mode) has its default."""
    return (str(row["implementation"]), int(float(row["msg_size"])), int(float(row["threads"])),
            _int_cell(row, "repeat", 0), *(ident_value(p, row.get(p.name)) for p in IDENTITY))



LOCK_NAME = ".netobs.lock"         # the one writer's lock (flock), naming its holder
RESERVE_NAME = ".netobs.reserve"   # room kept for the last manifest when the disk fills
RESERVE_BYTES = 256 << 10
OWN_FILES = (LOCK_NAME, RESERVE_NAME)   # a directory holding only these is empty of results
# errnos that mean the directory cannot take more (not that a point failed)
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT,
                  errno.ENOTDIR, errno.EIO, errno.ESTALE}


class PointFiles:
    """One point's directory (points/<id>/ of a results directory, or `netobs run --keep DIR`):
    the store's. Its files are named here (the point's result, each role's worker report and
    stderr, perf's output and fifos) or handed over by their owner as plain names (an observer's:
    `write`), never as paths; an observer that needs a file while the point runs (perf's output
    and fifos) asks `at` for the name given here."""

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

    # perf stat's files of a role: its raw output (kept), its control and ack fifos (removed
    # when the point ends); the client's stem is the study's `perf`
    _PERF_STEM = {"client": "perf", "server": "perf-server"}

    @classmethod
    def perf_output(cls, role: str, fmt: str) -> str:
        """perf stat's raw output for the role: `-j` (fmt "json") as .jsonl, `-x,` as .csv."""
        return f"{cls._PERF_STEM[role]}-stat.{'jsonl' if fmt == 'json' else 'csv'}"

    @classmethod
    def perf_fifo(cls, role: str, end: str) -> str:
        """perf's `--control fifo:` ends for the role: "ctl" (enable/disable in), "ack" (acks out)."""
        if end not in ("ctl", "ack"):
            raise ValueError(f"not a perf fifo: {end!r}")
        return f"{cls._PERF_STEM[role]}-{end}.fifo"

    def at(self, name: str) -> Path:
        """Where the file `name` of this point lives (a plain name: no directory in it)."""
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"not a plain file name: {name!r}")
        return self.path / name

    def create(self, name: str):
        """The file `name`, new, open for writing (binary): never through a link planted in a
        kept directory, never over an earlier file (FileExistsError)."""
        return create_new(self.at(name))

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


class StoreError(NetobsError):
    """The results directory cannot be written (disk full, read-only, removed): every point
    stored before stays."""


def storage_error(path: Path, exc: OSError, what: str = "cannot write") -> StoreError:
    """An OSError met writing the results directory `path` -> the one line the user sees."""
    code = exc.errno
    file = exc.filename or path
    resume = f"then `netobs sweep --resume -o {path}` (every stored point is kept)"
    if code in (errno.ENOSPC, errno.EDQUOT):
        fix = f"freeing space on that filesystem, {resume}"
    elif code in (errno.EROFS, errno.EACCES, errno.EPERM):
        fix = f"making {path} writable again, {resume}"
    elif code in (errno.ENOENT, errno.ENOTDIR, errno.ESTALE):
        fix = f"another -o path: {path} was removed or replaced while netobs wrote to it"
    else:
        fix = f"checking the filesystem of {path}, {resume}"
    return StoreError(f"{what} {file}", exc.strerror or str(exc), fix)


def store_health(path: Path, margin: int = 64 << 10) -> StoreError | None:
    """Whether the results directory can still take a point (after a point failed: a full
    disk or a removed directory makes perf and the workers fail in ways of their own)."""
    path = Path(path)
    try:
        st = os.statvfs(path)
    except OSError as exc:
        return storage_error(path, exc)
    if st.f_flag & os.ST_RDONLY:
        return storage_error(path, OSError(errno.EROFS, os.strerror(errno.EROFS), str(path)))
    if st.f_bavail * st.f_frsize < margin and os.geteuid() != 0 or st.f_bfree * st.f_frsize < margin:
        return storage_error(path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)))
    if not os.access(path, os.W_OK):
        return storage_error(path, OSError(errno.EACCES, os.strerror(errno.EACCES), str(path)))
    return None


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace") or "{}")
        return f"PID {info.get('pid')}: {' '.join(map(str, info.get('command') or [])) or 'command unknown'}"
    except (OSError, ValueError, AttributeError):
        return "holder unknown"


class DirLock:
    """The one writer of a results directory: an exclusive `flock` on DIR/.netobs.lock, held
    for the writer's whole life (the kernel drops it when the process dies, SIGKILL too). The
    file names the holder (PID and command) for the one refused."""

    def __init__(self, path: Path, fd: int, ident: tuple[int, int]):
        self.path, self.fd, self.ident = path, fd, ident

    @classmethod
    def take(cls, directory: Path) -> "DirLock":
        """The lock, or NetobsError naming its holder. Within one process it is taken again
        freely (the one writer opening its directory twice)."""
        file = directory / LOCK_NAME
        try:
            fd = os.open(file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UsageError(f"{file} is a symlink", "netobs never follows one in a results directory",
                                 "removing it, or another -o path") from None
            raise storage_error(directory, exc, "cannot lock") from None
        st = os.fstat(fd)
        ident = (st.st_dev, st.st_ino)
        if ident in _HELD:
            os.close(fd)
            _HELD[ident][1] += 1
            return cls(directory, _HELD[ident][0], ident)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = _holder(fd)
            os.close(fd)
            raise NetobsError(f"results directory {directory} is being written by another netobs ({who})",
                              "one writer per results directory",
                              "waiting for it to end (`netobs sweep --resume` then finishes it), or another -o path"
                              ) from None
        try:
            info = json.dumps({"pid": os.getpid(), "command": sys.argv, "since": now_iso()}).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, info + b"\n", 0)
        except OSError:
            pass   # the lock holds without its label (a full disk): the refused is told "holder unknown"
        _HELD[ident] = [fd, 1]
        return cls(directory, fd, ident)

    def release(self) -> None:
        if self.fd < 0:
            return
        held = _HELD.get(self.ident)
        self.fd = -1
        if held is None:
            return
        held[1] -= 1
        if held[1] == 0:
            del _HELD[self.ident]
            os.close(held[0])   # closing drops the lock


_HELD: dict[tuple[int, int], list] = {}   # this process's locks: (dev, inode) -> [fd, times taken]


def _is_empty(path: Path) -> bool:
    return not any(p.name not in OWN_FILES for p in path.iterdir())


class ResultsDir:
    """A results directory being written by a sweep (or by `netobs import`), under its lock.

    runs.csv is written whole once (its header, on create) and then only appended to, a row per
    point, by the lock's holder: no process rewrites rows another wrote."""

    def __init__(self, path: Path, columns: list[str], manifest: dict, rows: list[dict], lock: DirLock | None = None):
        self.path = path
        self.columns = columns
        self.manifest = manifest
        self._rows = rows
        self.lock = lock
        self.fault: StoreError | None = None
        self._appending = True

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, manifest: dict, events: list[str], force: bool = False,
               fix: str = "--resume to complete it, --force to move it aside, or another -o path",
               server_events: list[str] = ()) -> "ResultsDir":
        """A new results directory. An existing non-empty one is never overwritten: without
        `force` this is an error; with it the old directory is moved aside, not deleted.
        `server_events`: the server's perf events (--perf-server), columns of their own."""
        path = Path(path)
        try:
            return cls._create(path, manifest, events, force, fix, server_events)
        except OSError as exc:
            raise storage_error(path, exc, "cannot create results in") from None

    @classmethod
    def _create(cls, path, manifest, events, force, fix, server_events) -> "ResultsDir":
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            raise UsageError(f"{path} exists and is not a directory", fix="another -o path")
        manifest = dict(manifest)
        if path.is_dir():
            lock = DirLock.take(path)   # a directory another netobs writes is never touched
            if not _is_empty(path):
                if not force:
                    lock.release()
                    raise UsageError(f"results directory {path} is not empty", fix=fix)
                aside = path.with_name(f"{path.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
                path.rename(aside)
                lock.release()
                manifest["replaced_directory_moved_to"] = str(aside)
                path.mkdir()
                lock = DirLock.take(path)
        else:
            path.mkdir(parents=True)
            lock = DirLock.take(path)
        (path / "points").mkdir(exist_ok=True)
        # provenance every results directory carries; the caller's fields come after it
        manifest = {"schema_version": SCHEMA_VERSION, "netobs_version": __version__, "command": sys.argv,
                    "started": now_iso(), **manifest, "perf_events": list(events),
                    "perf_server_events": list(server_events)}
        store = cls(path, figures.columns_for(events, server_events), manifest, [], lock)
        store._reserve()
        store.write_manifest()
        atomic_write(path / "runs.csv", _csv_text(store.columns, []))
        return store

    @classmethod
    def open_for_resume(cls, path: str | os.PathLike) -> "ResultsDir":
        path = Path(path)
        lock = DirLock.take(path)
        try:
            manifest = read_manifest(path)
            rows = read_rows(path)
            events = manifest.get("perf_events") or []
            server_events = manifest.get("perf_server_events")
            if server_events is None:   # a directory from before server columns: its matrix says
                server_events = events if (manifest.get("matrix") or {}).get("perf_server") else []
                manifest["perf_server_events"] = server_events
            store = cls(path, figures.columns_for(events, server_events), manifest, rows, lock)
            store._reserve()
            store._appending = False   # runs.csv is made ready for rows at the first one
        except OSError as exc:
            lock.release()
            raise storage_error(path, exc) from None
        except BaseException:
            lock.release()
            raise
        return store

    def close(self) -> None:
        """Give up the directory: the reserve removed, the lock released."""
        with contextlib.suppress(OSError):
            (self.path / RESERVE_NAME).unlink(missing_ok=True)
        if self.lock is not None:
            self.lock.release()

    def _reserve(self) -> None:
        """Room for the last manifest: a file the fault path deletes before it writes."""
        with contextlib.suppress(OSError):
            fd = os.open(self.path / RESERVE_NAME, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                os.posix_fallocate(fd, 0, RESERVE_BYTES)
            finally:
                os.close(fd)

    def _reopen_csv(self) -> None:
        """Before appending: a tail a killed writer cut (no newline) is dropped (its point was
        never stored and is measured again), and a header of an older netobs without today's
        columns is rewritten once from the rows on disk (under the lock: no other writer)."""
        file = self.path / "runs.csv"
        if not file.is_file():
            atomic_write(file, _csv_text(self.columns, self._rows))
            return
        with open(file, "rb+") as fh:
            data = fh.read()
            if data and not data.endswith(b"\n"):
                fh.truncate(data.rfind(b"\n") + 1)
                fh.flush()
                os.fsync(fh.fileno())
                data = data[:data.rfind(b"\n") + 1]
        header = next(csv.reader(io.StringIO(data.decode("utf-8", "replace"))), [])
        if [c.strip() for c in header] != self.columns:
            atomic_write(file, _csv_text(self.columns, self._rows))

    # -- writing -------------------------------------------------------------------------
    @property
    def events(self) -> list[str]:
        return list(self.manifest.get("perf_events") or [])

    @property
    def server_events(self) -> list[str]:
        return list(self.manifest.get("perf_server_events") or [])

    def done_keys(self) -> set[tuple]:
        """Points already stored with status ok (failed ones are run again on --resume)."""
        keys = set()
        for r in self._rows:
            if r.get("status") == "ok":
                with contextlib.suppress(KeyError, TypeError, ValueError, OverflowError):
                    keys.add(row_key(r))
        return keys

    def point_dir(self, point_id: str) -> Path:
        d = self.path / "points" / point_id
        try:
            if d.is_symlink():
                d.unlink()
            elif d.exists():  # a point that never finished (crash, Ctrl-C): its files are not a result
                shutil.rmtree(d)
            d.mkdir(parents=True)
        except OSError as exc:
            raise storage_error(self.path, exc) from None
        return d

    def point(self, point_id: str) -> PointFiles:
        """A fresh directory for the point (`point_dir`), as the point's files."""
        return PointFiles(self.point_dir(point_id))

    def recover_points(self, wanted: set[tuple] | None = None) -> list[str]:
        """Points whose points/<id>/result.json is whole and ok but whose row never reached
        runs.csv (the disk filled, the process was killed between the two): stored now, not
        measured again. `wanted`: only points of these keys (the sweep's). Returns their ids."""
        points = self.path / "points"
        if not points.is_dir():
            return []
        done, found = self.done_keys(), []
        for d in sorted(points.iterdir()):
            file = d / "result.json"
            if d.is_symlink() or file.is_symlink() or not file.is_file():
                continue
            try:
                result = json.loads(file.read_text(encoding="utf-8"))
                row = flatten(result, self.events, self.server_events)
                key = row_key({c: _cell(v) for c, v in row.items()})
            except (OSError, ValueError, KeyError, TypeError, AttributeError, OverflowError):
                continue
            if (not isinstance(result, dict) or result.get("status") != "ok" or point_id(*key) != d.name
                    or key in done or (wanted is not None and key not in wanted)):
                continue
            found.append(result)
            done.add(key)
        self.add_points(found)
        return sorted(point_id(*row_key({c: _cell(v) for c, v in flatten(r, self.events, self.server_events).items()}))
                      for r in found)

    def add_point(self, result: dict) -> None:
        """Store one finished point (ok or failed) at once: its row appended to runs.csv (a
        later row of a point replaces an earlier failed one for readers)."""
        self.add_points([result])

    def add_points(self, results: list[dict]) -> None:
        """Append the rows of several points in one write (an import)."""
        if not results:
            return
        rows = []
        for result in results:
            row = flatten(result, self.events, self.server_events)
            rows.append({c: _cell(row.get(c)) for c in self.columns})
        self._append(rows)
        self._rows += rows

    def _append(self, rows: list[dict]) -> None:
        if not self._appending:
            try:
                self._reopen_csv()
            except OSError as exc:
                raise storage_error(self.path, exc) from None
            self._appending = True
        buf = io.StringIO()
        csv.DictWriter(buf, fieldnames=self.columns, lineterminator="\n", extrasaction="ignore").writerows(rows)
        data = buf.getvalue().encode("utf-8")
        file = self.path / "runs.csv"
        try:
            fd = os.open(file, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise storage_error(self.path, exc) from None
        try:
            start = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError as exc:
                with contextlib.suppress(OSError):   # never a torn row: the file as it was
                    os.ftruncate(fd, start)
                raise storage_error(self.path, exc) from None
        finally:
            os.close(fd)

    def write_manifest(self) -> None:
        try:
            write_json(self.path / "manifest.json", self.manifest)
        except OSError as exc:
            raise storage_error(self.path, exc) from None

    def update_manifest(self, **fields) -> None:
        self.manifest.update(fields)
        self.write_manifest()

    def add_refinement(self, entry: dict) -> None:
        """Record one `netobs refine` round (its rule, plan and outcome) in the manifest's
        `refinement` list; a round already recorded under the same `id` is replaced (its
        outcome written after its plan)."""
        rounds = [r for r in (self.manifest.get("refinement") or []) if r.get("id") != entry.get("id")]
        self.update_manifest(refinement=rounds + [entry])

    def record_fault(self, fault: StoreError, **fields) -> str | None:
        """After a storage fault: the manifest says what happened, written into the room the
        reserve kept. Returns why it could not be written (None when it was)."""
        self.fault = fault
        with contextlib.suppress(OSError):
            (self.path / RESERVE_NAME).unlink(missing_ok=True)
        try:
            self.update_manifest(state="failed", error=fault.message, **fields)
        except StoreError as again:
            return again.cause or again.message
        return None

    @property
    def rows(self) -> list[dict]:
        """The stored points as readers see them: the last row of each."""
        return latest_rows(self._rows)


def _csv_text(columns: list[str], rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


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
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise UsageError(f"{file} has schema_version {version!r}; this netobs reads version {SCHEMA_VERSION}",
                         fix="the netobs version that wrote it, or re-importing/re-running into a new directory")
    wrong = _shape_errors(manifest)
    if wrong:
        raise UsageError(f"cannot read {file}", f"{wrong[0]}" + (f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""),
                         restore)
    return manifest


# The manifest's entries netobs writes and its readers rely on, by JSON type (None: not recorded).
_OBJECT, _LIST, _TEXT, _NUMBER = (dict,), (list,), (str,), (int, float)
MANIFEST_SHAPE = {
    "host": _OBJECT, "tools": _OBJECT, "perf": _OBJECT, "matrix": _OBJECT, "remote": _OBJECT, "summary": _OBJECT,
    "tracing_setup": _OBJECT, "observer_cost": _OBJECT, "profile_plan": _OBJECT, "profile": _OBJECT,
    "probe_plan": _OBJECT, "topology": _OBJECT + _TEXT,
    "perf_events": _LIST, "perf_server_events": _LIST, "command": _LIST, "resumed": _LIST, "notes": _LIST,
    "refinement": _LIST,
    "source": _TEXT, "state": _TEXT, "started": _TEXT, "finished": _TEXT, "netobs_version": _TEXT, "error": _TEXT,
}
MATRIX_SHAPE = {"strategies": _LIST, "impls": _LIST, "sizes": _LIST, "threads": _LIST, "repeats": (int,),
                "fields": _LIST + (int,), "nodelay": _LIST + (bool, int), "duration": _NUMBER, "warmup": _NUMBER}
_JSON_NAMES = {dict: "an object", list: "a list", str: "text", int: "a number", float: "a number", bool: "true/false"}


def _shape_errors(manifest: dict) -> list[str]:
    """What in the manifest is not of the type netobs writes there (named, for one line)."""
    def wrong(where: str, value, types) -> str | None:
        if value is None or (isinstance(value, types) and not (isinstance(value, bool) and bool not in types)):
            return None
        return f"{where} is {_JSON_NAMES.get(type(value), type(value).__name__)}, not {_JSON_NAMES[types[0]]}"

    errors = [e for key, types in MANIFEST_SHAPE.items() if (e := wrong(key, manifest.get(key), types))]
    matrix = manifest.get("matrix")
    if isinstance(matrix, dict):
        errors += [e for key, types in MATRIX_SHAPE.items() if (e := wrong(f"matrix.{key}", matrix.get(key), types))]
        for key, kinds in (("strategies", _TEXT), ("impls", _TEXT), ("sizes", (int,)), ("threads", (int,))):
            items = matrix.get(key)
            if isinstance(items, list) and not all(isinstance(v, kinds) and not isinstance(v, bool) for v in items):
                errors.append(f"matrix.{key} holds a value that is not {_JSON_NAMES[kinds[0]]}")
    for key in ("perf_events", "perf_server_events"):
        items = manifest.get(key)
        if isinstance(items, list) and not all(isinstance(v, str) for v in items):
            errors.append(f"{key} holds a value that is not text")
    return errors


@dataclass(frozen=True)
class TornRow:
    line: int           # its line in runs.csv
    point: str          # the point, as far as its cells say
    how: str            # what is wrong with it


def parse_runs(text: str) -> tuple[list[str], list[list[str]], list[TornRow]]:
    """runs.csv's text -> (header, whole rows, torn rows). A torn row has fewer or more cells
    than the header, or is a last row without its newline: netobs writes each row whole and
    newline-terminated, so such a row was cut, even where the cut fell inside its last cell."""
    header, rows, _, torn = parse_runs_numbered(text)
    return header, rows, torn


def parse_runs_numbered(text: str) -> tuple[list[str], list[list[str]], list[int], list[TornRow]]:
    """As parse_runs, with the line of each whole row (for naming a row whose values are bad)."""
    header, rows, numbers, torn = [], [], [], []
    try:
        for header, chunk, lines in iter_runs_numbered(text, torn):
            rows += chunk
            numbers += lines
    except csv.Error:   # (a field larger than csv allows): no row can be trusted
        return [], [], [], []
    return header, rows, numbers, torn


RUNS_CHUNK_CELLS = 1 << 17   # cells handed over at a time (a reader converts them, then drops them)


def iter_runs_numbered(text: str, torn: list, cells: int = RUNS_CHUNK_CELLS):
    """parse_runs_numbered a chunk at a time, so that a reader never holds every cell of a large
    runs.csv as text: yields (header, whole rows, their lines) per about `cells` cells (once, with
    no rows, where the file has a header only; never where it is empty) and appends each torn row
    to `torn` as it is met. A csv.Error (a field larger than csv allows) propagates: the caller
    trusts no row then, as parse_runs_numbered does."""
    text = text.removeprefix("\ufeff")
    ends_whole = text.endswith(("\n", "\r"))
    records = csv.reader(_lines(text.replace("\0", "")))
    first = next(records, None)
    if first is None:
        return
    header = [c.strip() for c in first]
    rows, numbers = [], []
    size = max(1, cells // max(1, len(header)))
    ahead = next(records, None)
    number = 1
    yielded = False
    while ahead is not None:
        record, ahead = ahead, next(records, None)
        number += 1
        if not any(cell.strip() for cell in record):
            continue
        cut = ahead is None and not ends_whole
        if len(record) == len(header) and not cut:
            rows.append(record)
            numbers.append(number)
            if len(rows) >= size:
                yield header, rows, numbers
                yielded, rows, numbers = True, [], []
            continue
        how = (f"is cut off after {len(record)} of {len(header)} cells" if cut and len(record) < len(header)
               else "is cut off in its last cell (the file ends without a newline)" if cut
               else f"has {len(record)} cells where the header has {len(header)}")
        torn.append(TornRow(number, _row_point(dict(zip(header, record))), how))
    if rows or not yielded:
        yield header, rows, numbers


def _lines(text: str):
    """The lines of `text` as io.StringIO gives them (split after each \\n only), without its copy
    of the text (four bytes a character)."""
    start, n = 0, len(text)
    while start < n:
        end = text.find("\n", start) + 1 or n
        yield text[start:end]
        start = end


def _row_point(row: dict) -> str:
    try:
        return point_id(*row_key(row))
    except (KeyError, TypeError, ValueError, OverflowError):
        return "point unknown"


def read_rows(path: Path) -> list[dict]:
    """runs.csv's whole rows (a point whose row is torn is not stored: `--resume` measures it
    again)."""
    file = Path(path) / "runs.csv"
    if not file.is_file():
        return []
    header, rows, _ = parse_runs(file.read_text(encoding="utf-8", errors="replace"))
    return latest_rows([dict(zip(header, row)) for row in rows])


def latest_rows(rows: list[dict]) -> list[dict]:
    """The last row of each point (a point measured again on --resume has a later row that
    replaces its failed one), in the order of their last rows; a row whose point cannot be
    read is kept as it is (the loader names it)."""
    last: dict = {}
    for i, row in enumerate(rows):
        try:
            key = row_key(row)
        except (KeyError, TypeError, ValueError, OverflowError):
            key = ("unreadable", i)
        last.pop(key, None)
        last[key] = row
    return list(last.values())
