"""Unit tests: parameter validation, the matrix order, the results store and `netobs import`."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from netobs.errors import UsageError
from netobs.figures import STUDY_COLUMNS, columns_for, event_column
from netobs.importer import import_study_csv
from netobs.params import parse_size
from netobs.spec import RunSpec, SweepSpec, stored_sweep
from netobs.store import ResultsDir, read_rows

EVENTS = ["cpu-cycles", "L1-dcache-load-misses", "LLC-load-misses", "context-switches", "task-clock"]


@pytest.mark.parametrize("kwargs, needle", [
    ({"msg_size": 7}, "message size 7"),
    ({"msg_size": (64 << 20) + 1}, "out of range"),
    ({"threads": 0}, "thread count 0"),
    ({"threads": 257}, "thread count 257"),
    ({"duration": 0}, "duration"),
    ({"duration": 3601}, "duration"),
    ({"strategy": "four_copy"}, "unknown strategy"),
    ({"warmup": -1}, "warm-up"),
    ({"threads": "2"}, "thread count '2' is not a whole number"),
    ({"mtu": 10}, "MTU 10 is out of range"),
    ({"events": ["cycles;rm"]}, "bad perf event name"),
])
def test_runspec_rejects_bad_parameters(kwargs, needle):
    args = {"strategy": "one_copy", "msg_size": 1024, "threads": 1, **kwargs}
    with pytest.raises(UsageError, match=needle) as exc:
        RunSpec(**args)
    assert exc.value.fix and exc.value.exit_code == 2


def test_parse_size():
    assert parse_size("65536") == 65536
    assert parse_size("64K") == 65536
    assert parse_size("1M") == 1 << 20
    with pytest.raises(ValueError):
        parse_size("lots")


def test_sweep_orders_cover_the_matrix_exactly_once():
    for order in ("sequential", "interleaved", "random"):
        sweep = SweepSpec(sizes=(1024, 4096), threads=(1, 2), repeats=2, order=order, duration=0.5)
        keys = [p.key for p in sweep.points()]
        assert len(keys) == len(set(keys)) == 3 * 2 * 2 * 2
        assert {p.duration for p in sweep.points()} == {0.5}   # the shared parameters reach every point
    inter = SweepSpec(sizes=(1024,), threads=(1,), repeats=2, order="interleaved").points()
    assert [p.strategy for p in inter] == ["two_copy", "one_copy", "zero_copy"] * 2
    r1 = [p.point_id for p in SweepSpec(order="random", seed=3).points()]
    assert r1 == [p.point_id for p in SweepSpec(order="random", seed=3).points()]
    with pytest.raises(UsageError, match="duplicate"):
        SweepSpec(sizes=(1024, 1024))
    with pytest.raises(UsageError, match="no strategies given; try --strategies"):
        SweepSpec(strategies=())


def test_sweep_dict_form_round_trips_and_reads_older_matrices():
    sweep = SweepSpec(strategies=("one_copy", "zero_copy"), sizes=(4096,), threads=(2,), repeats=3,
                      duration=1.0, perf=False, recv="fields", mtu=1500, fields=(1, 8), nodelay=(False, True))
    matrix = json.loads(json.dumps(sweep.to_dict()))
    assert matrix["strategies"] == ["one_copy", "zero_copy"] and "impls" not in matrix
    assert matrix["fields"] == [1, 8] and matrix["nodelay"] == [False, True] and "recv_copy" not in matrix
    assert stored_sweep({"matrix": matrix}) == sweep
    # a matrix as netobs wrote it before issue 12: "impls", no verify, no events (the
    # manifest's perf_events had them)
    old = {"impls": ["one_copy", "two_copy"], "sizes": [4096, 65536], "threads": [1], "repeats": 1,
           "order": "sequential", "seed": 0, "duration": 0.4, "warmup": 0.1, "topology": "netns",
           "subnet": "10.0.0.0/24", "mtu": None, "recv_copy": False, "perf": True, "perf_server": False,
           "trace": False}
    again = stored_sweep({"matrix": old, "perf_events": ["task-clock", "context-switches"]})
    assert again == SweepSpec(strategies=("one_copy", "two_copy"), sizes=(4096, 65536), threads=(1,),
                              duration=0.4, warmup=0.1, events=("task-clock", "context-switches"))
    no_perf = stored_sweep({"matrix": {**old, "perf": False}, "perf_events": []})
    assert no_perf.perf is False and no_perf.perf_events == []
    # a matrix from before issue 15's shapes: recv_copy was --recv fields, fields and nodelay
    # one value for every point
    shaped = {**old, "recv_copy": True, "recv": "copy", "fields": 3, "nodelay": True}
    read = stored_sweep({"matrix": shaped, "perf_events": []})
    assert (read.recv, read.fields, read.nodelay) == ("fields", (3,), (True,))
    assert stored_sweep({"matrix": {**old, "fields": 8, "nodelay": False}}).recv == "copy"
    assert [p.point_id for p in read.points()] == ["one_copy-4096-1-f3-nd-rxfields-r0", "one_copy-65536-1-f3-nd-rxfields-r0",
                                                   "two_copy-4096-1-f3-nd-rxfields-r0", "two_copy-65536-1-f3-nd-rxfields-r0"]


def _result(strategy="one_copy", size=1024, threads=1, repeat=0, **extra):
    return {"strategy": strategy, "msg_size": size, "threads": threads, "repeat": repeat, "status": "ok",
            "throughput_gbps": 1.5, "latency_us": {"mean": 3.0, "p50": 2.0}, "bytes_sent": 1000, "window_s": 1.0,
            "perf": {"events": {"cpu-cycles": {"value": None, "status": "not supported", "reason": "not supported"},
                                "context-switches": {"value": 12.0, "status": "counted", "running_pct": 100.0}}},
            **extra}


def test_server_perf_counts_have_columns_of_their_own(tmp_path):
    store = ResultsDir.create(tmp_path / "r", {"source": "test"}, EVENTS, server_events=EVENTS)
    server = {"counted": "whole process life",
              "events": {"context-switches": {"value": 40.0, "status": "counted", "running_pct": 100.0}}}
    store.add_point(_result(server_perf=server))
    header = (tmp_path / "r" / "runs.csv").read_text().splitlines()[0].split(",")
    assert header == columns_for(EVENTS, EVENTS) and "server_perf_context_switches" in header
    row = read_rows(tmp_path / "r")[0]
    assert row["server_perf_context_switches"] == "40.0" and row["perf_context_switches"] == "12.0"
    assert row["server_perf_cpu_cycles"] == "" and row["server_perf_cpu_cycles_status"] == "not counted"
    again = ResultsDir.open_for_resume(tmp_path / "r")
    assert again.server_events == EVENTS and again.columns == header
    # without --perf-server: no server columns at all
    assert not [c for c in columns_for(EVENTS) if c.startswith("server_perf")]
    # a directory from before these columns: its matrix says whether the server was counted
    old = ResultsDir.create(tmp_path / "old", {"source": "test", "matrix": {"perf_server": True}}, EVENTS)
    manifest = json.loads((tmp_path / "old" / "manifest.json").read_text())
    del manifest["perf_server_events"]
    (tmp_path / "old" / "manifest.json").write_text(json.dumps(manifest))
    assert old.server_events == [] and ResultsDir.open_for_resume(tmp_path / "old").server_events == EVENTS


def test_store_columns_atomic_rows_and_missing_is_empty(tmp_path):
    store = ResultsDir.create(tmp_path / "r", {"source": "test"}, EVENTS)
    store.add_point(_result())
    store.add_point(_result(strategy="zero_copy", zerocopy={"completions": 5, "copied": 5}))
    header = (tmp_path / "r" / "runs.csv").read_text().splitlines()[0].split(",")
    assert header[:9] == STUDY_COLUMNS
    assert header == columns_for(EVENTS)
    rows = read_rows(tmp_path / "r")
    assert len(rows) == 2
    assert rows[0]["cpu_cycles"] == ""           # not supported: empty, never 0
    assert rows[0][event_column("cpu-cycles") + "_status"] == "not supported"
    assert rows[0]["context_switches"] == "12.0"
    assert rows[1]["zc_copied"] == "5"
    assert not list((tmp_path / "r").glob(".*tmp*"))  # no temporary files left behind


def test_store_replaces_failed_row_and_refuses_overwrite(tmp_path):
    store = ResultsDir.create(tmp_path / "r", {"source": "test"}, EVENTS)
    store.add_point({"strategy": "one_copy", "msg_size": 1024, "threads": 1, "repeat": 0, "status": "failed", "error": "boom"})
    assert store.done_keys() == set()
    store.add_point(_result())
    assert len(store.rows) == 1 and store.done_keys() == {("one_copy", 1024, 1, 0, 8, 0, "split", 0, 0, "copy")}
    with pytest.raises(UsageError, match="not empty"):
        ResultsDir.create(tmp_path / "r", {"source": "test"}, EVENTS)
    again = ResultsDir.create(tmp_path / "r", {"source": "test"}, EVENTS, force=True)
    moved = Path(again.manifest["replaced_directory_moved_to"])
    assert (moved / "runs.csv").exists() and len(read_rows(moved)) == 1  # moved aside, not lost


STUDY_CSV = """implementation,msg_size,threads,throughput_gbps,latency_us,cpu_cycles,l1_cache_misses,llc_cache_misses,context_switches
two_copy,1024,1,2.5,3.2,1000000,2000,100,50
one_copy,1024,1,2.7,3.0,900000,1500,90,48
zero_copy,1024,1,1.2,6.0,0,0,0,60
"""


def test_import_accepts_common_spellings(tmp_path):
    src = tmp_path / "study.csv"
    text = STUDY_CSV.replace("two_copy,", "Two-Copy,").replace("one_copy,", "one copy,").replace("zero_copy,", "MSG_ZEROCOPY,")
    src.write_text(text.replace("implementation,msg_size", " Implementation , msg_size"))
    import_study_csv(str(src), str(tmp_path / "out"), duration=10)
    assert [r["implementation"] for r in read_rows(tmp_path / "out")] == ["two_copy", "one_copy", "zero_copy"]


def test_import_round_trip(tmp_path):
    src = tmp_path / "study.csv"
    src.write_text(STUDY_CSV)
    store, notes = import_study_csv(str(src), str(tmp_path / "out"), duration=10)
    rows = read_rows(tmp_path / "out")
    assert [r["implementation"] for r in rows] == ["two_copy", "one_copy", "zero_copy"]
    assert float(rows[0]["throughput_gbps"]) == 2.5 and float(rows[0]["cpu_cycles"]) == 1e6
    assert float(rows[0]["bytes_sent"]) == pytest.approx(2.5e9 / 8 * 10)
    assert rows[2]["cpu_cycles"] == "" and rows[2]["context_switches"] == "60.0"  # impossible 0 -> missing
    assert any("impossible" in n for n in notes)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["source"] == "import" and manifest["host"]["kernel"] == "unknown"


@pytest.mark.parametrize("mutate, needle", [
    (lambda t: t.replace(",context_switches", ""), "missing column context_switches"),
    (lambda t: t.replace("2.7,3.0", "fast,3.0"), "row 3, column throughput_gbps: 'fast' is not a number"),
    (lambda t: t.replace("2.7,3.0", "-2.7,3.0"), "row 3, column throughput_gbps: -2.7 is negative"),
    (lambda t: t.replace("one_copy,1024", "two_copy,1024"), "row 3: duplicate point two_copy/1024/1"),
    (lambda t: t.replace("zero_copy,1024", "three_copy,1024"), "unknown strategy"),
    (lambda t: t.splitlines()[0] + "\n", "no rows"),
])
def test_import_rejects_bad_files_and_writes_nothing(tmp_path, mutate, needle):
    src = tmp_path / "study.csv"
    src.write_text(mutate(STUDY_CSV))
    with pytest.raises(UsageError, match=needle):
        import_study_csv(str(src), str(tmp_path / "out"), duration=10)
    assert not (tmp_path / "out").exists()


@pytest.mark.integration
def test_import_cli_error_is_one_line_exit_2(tmp_path):
    src = tmp_path / "study.csv"
    src.write_text(STUDY_CSV.replace("2.7,3.0", "fast,3.0"))
    proc = subprocess.run([sys.executable, "-m", "netobs", "import", str(src), "--duration", "10", "-o", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("netobs: error: row 3, column throughput_gbps")
    assert "Traceback" not in proc.stderr
