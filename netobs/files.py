"""Writing files so that a crash never leaves a torn one: the one atomic writer.

`atomic_write` writes a temporary file beside the target, makes it durable (fsync), and
renames it over the target: a reader sees the old file or the new one, never part of one.
Every file netobs writes that another step reads back (runs.csv, manifest.json, each
point's files, run-state files, reports) goes through here.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from netobs.jsonsafe import jsonable


def atomic_write(path: str | os.PathLike, data: str | bytes, mode: int | None = None) -> None:
    """Write a whole file or nothing. The file gets the usual permissions (umask) unless
    `mode` is given, so a report written by root stays readable by its user."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def dumps(obj, **dump_kw) -> str:
    """`obj` as indented, valid JSON: through the one sanitiser (NaN -> null), anything else
    unknown (a Path) as its text."""
    dump_kw.setdefault("indent", 2)
    return json.dumps(jsonable(obj), allow_nan=False, default=str, **dump_kw)


def write_json(path: str | os.PathLike, obj, **dump_kw) -> None:
    """`obj` as JSON (one trailing newline), atomically."""
    atomic_write(path, dumps(obj, **dump_kw) + "\n")
