"""The results store and the figure table it is built from (no root)."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO

from netobs import figures
from netobs.analysis.load import load_results
from netobs.files import atomic_write
from netobs.store import _cell, flatten, read_rows

ROOT = REPO
GOLDEN = ROOT / "tests" / "fixtures" / "golden"
SWEEP = GOLDEN / "sweep-netns"   # a real `netobs sweep --trace` made by the code before the figure table


# ---- atomic writes ------------------------------------------------------------------------
WRITER = """
import sys
from netobs.files import atomic_write
atomic_write(sys.argv[1], b"new " * (64 << 20))   # 256 MiB: long enough to be killed in the middle
"""


@pytest.mark.integration
def test_a_write_killed_in_the_middle_leaves_the_old_file_whole(tmp_path):
    target = tmp_path / "runs.csv"
    target.write_bytes(b"old contents\n")
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        tmp = None
        while time.monotonic() < deadline:   # wait until the new data is half on disk
            tmps = list(tmp_path.glob(".runs.csv.tmp-*"))
            if tmps and tmps[0].stat().st_size > 16 << 20:
                tmp = tmps[0]
                break
            assert proc.poll() is None, "the writer ended before it could be interrupted"
            time.sleep(0.005)
        assert tmp is not None, "the writer never got going"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert target.read_bytes() == b"old contents\n"   # a plain write would have left it cut
    assert tmp.stat().st_size < 256 << 20             # it really was interrupted mid-write


def test_a_failed_write_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "manifest.json"
    target.write_text("{}\n")

    with pytest.raises(TypeError):
        atomic_write(target, 12345)   # not str/bytes: fails inside the write
    assert target.read_text() == "{}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


# ---- the figure table ---------------------------------------------------------------------
def test_flatten_gives_the_rows_the_sweep_stored():
    """Every stored row of a real sweep is what flatten() makes of its point's result.json."""
    manifest = json.loads((SWEEP / "manifest.json").read_text())
    events = manifest["perf_events"]
    # the sweep predates later figures (profiles, ...): its header is today's without them,
    # in today's order
    rows = read_rows(SWEEP)
    columns = [c for c in figures.columns_for(events) if c in rows[0]]
    assert list(rows[0]) == columns
    for row in rows:
        pid = figures.point_id(row["implementation"], row["msg_size"], row["threads"], row["repeat"])
        result = json.loads((SWEEP / "points" / pid / "result.json").read_text())
        result["strategy"] = result.pop("impl")   # what that code's results called the strategy
        flat = flatten(result, events)
        assert {c: _cell(flat.get(c)) for c in columns} == row, pid


def test_the_c_header_indexes_trace_figures_in_the_table_order():
    header = (ROOT / "bpf" / "netobs_trace.h").read_text()
    index = {m.group(1).lower(): int(m.group(2)) for m in re.finditer(r"#define NETOBS_FIG_(\w+) (\d+)", header)}
    assert list(index) == list(figures.TRACE_NAMES)
    assert list(index.values()) == list(range(len(figures.TRACE_NAMES)))
    assert int(re.search(r"#define NETOBS_NFIG (\d+)", header).group(1)) == len(figures.TRACE_NAMES)
    roles = {m.group(1).lower(): int(m.group(2)) for m in re.finditer(r"#define NETOBS_ROLE_(\w+) (\d+)", header)}
    assert roles == {r: i for i, r in enumerate(figures.ROLES)}


def test_design_md_lists_the_columns_of_the_table():
    assert figures.markdown() in (ROOT / "docs" / "DESIGN.md").read_text()


def test_every_stored_column_has_a_label():
    columns = figures.columns_for([])
    assert [c for c in columns if not figures.label(c)] == []
    assert len(set(columns)) == len(columns)


def test_a_new_figure_in_the_table_reaches_the_header_and_the_row(monkeypatch):
    extra = figures.Figure("zc_pool_waits", "zero-copy pool waits", "", ("zerocopy", "pool_waits"))
    monkeypatch.setattr(figures, "WORKER_FIGURES", figures.WORKER_FIGURES + (extra,))
    assert figures.columns_for([])[len(figures.STUDY_COLUMNS) + len(figures.WORKER_FIGURES) - 1] == "zc_pool_waits"
    assert flatten({"zerocopy": {"pool_waits": 7}}, [])["zc_pool_waits"] == 7
    assert figures.label("zc_pool_waits") == "zero-copy pool waits"


# ---- a results directory checked before it is answered -----------------------------------
def _copy(tmp_path) -> Path:
    d = tmp_path / "r"
    shutil.copytree(SWEEP, d)
    return d


def test_a_torn_last_row_is_named_and_left_out(tmp_path):
    d = _copy(tmp_path)
    text = (d / "runs.csv").read_text()
    last = text.rstrip("\n").rsplit("\n", 1)[1]
    (d / "runs.csv").write_text(text.rstrip("\n")[: -len(last) // 2])   # cut mid-row, as a full disk would
    r = load_results(d)
    name = figures.point_id(*last.split(",")[:3], last.split(",")[len(figures.STUDY_COLUMNS)])
    assert len(r.runs) == 23
    torn = [n for n in r.notes if "cut off" in n]
    assert len(torn) == 1 and "line 25" in torn[0] and name in torn[0]
    assert r.notes == torn    # named once, not again as a point with files but no row


def test_a_row_cut_inside_its_last_cell_is_named_and_measured_again(tmp_path):
    from netobs.store import ResultsDir

    d = _copy(tmp_path)
    text = (d / "runs.csv").read_text()
    (d / "runs.csv").write_text(text[:-2])   # the newline and one digit of the last cell
    r = load_results(d)
    assert len(r.runs) == 23
    assert len(r.notes) == 1 and "line 25 (zero_copy-65536-2-r1) is cut off in its last cell" in r.notes[0]
    assert ("zero_copy", 65536, 2, 1, 8, 0) not in ResultsDir.open_for_resume(d).done_keys()


def test_rows_and_points_that_disagree_are_named(tmp_path):
    d = _copy(tmp_path)
    rows = (d / "runs.csv").read_text().splitlines()
    gone = rows.pop(3)
    (d / "runs.csv").write_text("\n".join(rows) + "\n")
    shutil.rmtree(d / "points" / "one_copy-4096-1-r0")
    r = load_results(d)
    gone_id = figures.point_id(*gone.split(",")[:3], gone.split(",")[len(figures.STUDY_COLUMNS)])
    assert len(r.runs) == 23
    assert any(gone_id in n and "no row in runs.csv" in n for n in r.notes)
    assert any(gone_id in n and "planned point(s) have no row" in n for n in r.notes)
    assert any("one_copy-4096-1-r0" in n and "no points/<point>/result.json" in n for n in r.notes)


def test_a_whole_directory_gets_no_notes():
    assert load_results(SWEEP).notes == []


def test_resume_measures_a_point_whose_row_is_torn_again(tmp_path):
    from netobs.store import ResultsDir

    d = _copy(tmp_path)
    text = (d / "runs.csv").read_text()
    (d / "runs.csv").write_text(text[: len(text) - 300])   # the last row loses its tail
    done = ResultsDir.open_for_resume(d).done_keys()
    assert len(done) == 23 and ("zero_copy", 65536, 2, 1, 8, 0) not in done
