"""cffi out-of-line API build of the copy workers: `netobs._workers`, from every .c in native/.

Run by the package build (setup.py `cffi_modules`), never by hand. The cdef is the part of
netobs_workers.h between its CDEF markers, so the structs are declared in one place.
"""
from __future__ import annotations

import glob
import os
import re

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = os.path.join(HERE, "netobs_workers.h")


def cdef_text(header: str = HEADER) -> str:
    with open(header, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"/\* CDEF BEGIN \*/(.*)/\* CDEF END \*/", text, re.S)
    if not m:
        raise RuntimeError(f"{header}: CDEF markers not found")
    # cffi's cdef understands `#define NAME <int>` but no other preprocessor lines.
    lines = [ln for ln in m.group(1).splitlines()
             if not ln.lstrip().startswith("#") or re.match(r"\s*#define\s+\w+\s+-?\d+\s*(/\*.*\*/\s*)?$", ln)]
    return "\n".join(lines)


ffibuilder = FFI()
ffibuilder.cdef(cdef_text())
# Paths relative to the project root, where the package build runs.
_rel = os.path.relpath(HERE, os.getcwd()) if os.path.isabs(HERE) else HERE
ffibuilder.set_source(
    "netobs._workers",
    '#include "netobs_workers.h"',
    # every .c of native/: the driver, the server, the shared helpers and one file per sender family
    sources=sorted(os.path.join(_rel, os.path.basename(p)) for p in glob.glob(os.path.join(HERE, "*.c"))),
    include_dirs=[_rel],
    extra_compile_args=["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-pthread"],
    libraries=["uring"],   # liburing-dev (Debian): io_uring and io_uring_zc
    extra_link_args=["-pthread"],
    depends=sorted(os.path.join(_rel, os.path.basename(p)) for p in glob.glob(os.path.join(HERE, "*.h"))),
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
