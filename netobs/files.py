"""Writing files so that a crash never leaves a torn one, nor follows a planted link.

`atomic_write` writes a temporary file beside the target (an exclusive name, created with
O_EXCL: never an existing file or a symlink someone planted), makes it durable (fsync), and
renames it over the target: a reader sees the old file or the new one, never part of one.
Every file netobs writes that another step reads back (runs.csv's header, manifest.json, each
point's files, run-state files, reports) goes through here. `create_new` opens a file that
must not exist yet (a worker's stderr in a point directory), never through a symlink.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from netobs.jsonsafe import jsonable


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_DEFAULT_MODE = 0o666 & ~_umask()


def atomic_write(path: str | os.PathLike, data: str | bytes, mode: int | None = None) -> None:
    """Write a whole file or nothing. The file gets the usual permissions (umask) unless
    `mode` is given, so a report written by root stays readable by its user."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent)
    tmp = Path(name)
    try:
        with open(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _DEFAULT_MODE if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def create_new(path: str | os.PathLike, mode: int = 0o644):
    """A new file opened for writing (binary): FileExistsError where anything, a symlink
    included, is already at `path`; the link is never followed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    return open(fd, "wb")


def dumps(obj, **dump_kw) -> str:
    """`obj` as indented, valid JSON: through the one sanitiser (NaN -> null), anything else
    unknown (a Path) as its text."""
    dump_kw.setdefault("indent", 2)
    return json.dumps(jsonable(obj), allow_nan=False, default=str, **dump_kw)


def write_json(path: str | os.PathLike, obj, **dump_kw) -> None:
    """`obj` as JSON (one trailing newline), atomically."""
    atomic_write(path, dumps(obj, **dump_kw) + "\n")
