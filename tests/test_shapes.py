"""Message shapes (issue 15): a sweep over `--fields 1,8` / `--nodelay off,on` makes a point per
shape, names each, resumes by it, and the analysis keeps the shapes apart (the questions are
answered shape by shape, charts and comparisons carry "one_copy f=1" as a series of its own);
stores from before shapes (no fields/nodelay columns) read as the study's shape."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import GOLDEN, fixture_answers, fixture_results

from netobs.figures import point_id
from netobs.spec import SweepSpec
from netobs.store import ResultsDir, read_rows, row_key

sys.path.insert(0, str(Path(__file__).parent))
from synth import edit_manifest, write_results  # noqa: E402



def test_a_point_names_only_a_shape_other_than_the_studys():
    assert point_id("one_copy", 65536, 1, 0) == "one_copy-65536-1-r0"
    assert point_id("one_copy", 65536, 1, 0, 8, False) == "one_copy-65536-1-r0"
    assert point_id("one_copy", 65536, 1, 0, 1) == "one_copy-65536-1-f1-r0"
    assert point_id("one_copy", 65536, 1, 2, 8, True) == "one_copy-65536-1-nd-r2"
    assert point_id("one_copy", 65536, 1, 0, 1, 1) == "one_copy-65536-1-f1-nd-r0"


def test_a_sweep_of_shapes_makes_a_point_per_shape_interleaved():
    sweep = SweepSpec(strategies=("two_copy", "one_copy"), sizes=(4096,), threads=(1, 2), fields=(1, 8),
                      nodelay=(False, True), order="interleaved", duration=0.5)
    points = sweep.points()
    assert len(points) == len({p.key for p in points}) == 2 * 2 * 2 * 2
    # per (size, threads): the strategies and shapes back to back
    assert [p.point_id for p in points[:8]] == [
        "two_copy-4096-1-f1-r0", "two_copy-4096-1-f1-nd-r0", "two_copy-4096-1-r0", "two_copy-4096-1-nd-r0",
        "one_copy-4096-1-f1-r0", "one_copy-4096-1-f1-nd-r0", "one_copy-4096-1-r0", "one_copy-4096-1-nd-r0"]
    assert {(p.fields, p.nodelay) for p in points} == {(1, False), (1, True), (8, False), (8, True)}
    assert {p.duration for p in points} == {0.5}
    seq = SweepSpec(strategies=("one_copy",), sizes=(1024, 4096), threads=(1,), fields=(1, 8)).points()
    assert [p.point_id for p in seq] == ["one_copy-1024-1-f1-r0", "one_copy-4096-1-f1-r0",
                                         "one_copy-1024-1-r0", "one_copy-4096-1-r0"]
    # one shape: the points and their ids as before shapes were swept
    one = SweepSpec(sizes=(1024,), threads=(1, 2), repeats=2, order="interleaved").points()
    assert [p.point_id for p in one[:4]] == ["two_copy-1024-1-r0", "one_copy-1024-1-r0", "zero_copy-1024-1-r0",
                                             "two_copy-1024-1-r1"]


def _result(strategy, size, threads, fields=8, nodelay=False, status="ok"):
    return {"strategy": strategy, "msg_size": size, "threads": threads, "repeat": 0, "status": status,
            "throughput_gbps": 1.0, "bytes_sent": 1000, "window_s": 1.0,
            "params": {"fields": fields, "nodelay": nodelay}}


def test_resume_skips_the_stored_shapes_only(tmp_path):
    sweep = SweepSpec(strategies=("one_copy",), sizes=(4096,), threads=(1,), fields=(1, 8), nodelay=(False, True))
    store = ResultsDir.create(tmp_path / "r", {"matrix": sweep.to_dict()}, [])
    store.add_point(_result("one_copy", 4096, 1, fields=1))
    store.add_point(_result("one_copy", 4096, 1, fields=8, nodelay=True, status="failed"))
    store.add_point(_result("one_copy", 4096, 1, fields=8))
    assert len(store.rows) == 3   # a failed point of one shape never replaces another shape's row
    done = ResultsDir.open_for_resume(tmp_path / "r").done_keys()
    todo = [p.point_id for p in sweep.points() if p.key not in done]
    assert todo == ["one_copy-4096-1-f1-nd-r0", "one_copy-4096-1-nd-r0"]
    store.add_point(_result("one_copy", 4096, 1, fields=8, nodelay=True))   # replaces its failed row
    assert sorted(r["status"] for r in read_rows(tmp_path / "r")) == ["ok"] * 3


def test_rows_of_a_store_from_before_shapes_have_the_studys_shape(tmp_path):
    row = {"implementation": "one_copy", "msg_size": "65536", "threads": "1", "repeat": "0"}
    assert row_key(row) == ("one_copy", 65536, 1, 0, 8, 0, "split", 0, 0, "copy")
    assert row_key({**row, "fields": "", "nodelay": ""}) == ("one_copy", 65536, 1, 0, 8, 0, "split", 0, 0, "copy")
    assert row_key({**row, "fields": "1", "nodelay": "1"}) == ("one_copy", 65536, 1, 0, 1, 1, "split", 0, 0, "copy")
    assert row_key({**row, "placement": "same"})[6] == "same"
    copy = shutil.copytree(GOLDEN / "sweep-netns", tmp_path / "sweep")   # opening takes the writer's lock
    done = ResultsDir.open_for_resume(copy).done_keys()
    assert ("one_copy", 65536, 1, 0, 8, 0, "split", 0, 0, "copy") in done and all(k[4:6] == (8, 0) for k in done)


def two_shapes(path: Path, faster: float = 1.4) -> Path:
    """A synthetic sweep of fields 8 (the study's columns as older stores wrote them: empty) and
    fields 1, whose throughput is `faster` times higher; both shapes in one matrix."""
    write_results(path / "a", repeats=3, seed=1)
    write_results(path / "b", repeats=3, seed=2, gbps_factor={(i, s, t): faster for i in ("two_copy", "one_copy",
                  "zero_copy") for s in (1024, 4096, 16384, 65536) for t in (1, 2, 4, 8)})
    with open(path / "a" / "runs.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        columns, rows = list(reader.fieldnames), list(reader)
    with open(path / "b" / "runs.csv", newline="") as fh:
        rows += [{**r, "fields": "1", "nodelay": "0"} for r in csv.DictReader(fh)]
    with open(path / "a" / "runs.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return edit_manifest(path / "a", lambda m: m["matrix"].update(fields=[8, 1], nodelay=[False]))


def test_the_loader_and_the_answers_keep_shapes_apart(tmp_path):
    from netobs.analysis.load import load_results
    from netobs.analysis.questions import answer_all

    r = load_results(two_shapes(tmp_path))
    assert r.notes == []                       # every planned point of both shapes has its row
    assert len(r.runs) == 2 * 48 * 3 and r.shapes() == [(8, 0), (1, 0)]
    assert r.max_repeats() == r.min_repeats() == 3   # not 6: shapes are not repeats of each other
    f1 = r.of_shape((1, 0))
    assert len(f1.runs) == 48 * 3 and set(f1.runs["fields"]) == {1}
    ratio = (f1.runs["throughput_gbps"].median() / r.of_shape((8, 0)).runs["throughput_gbps"].median())
    assert 1.3 < ratio < 1.5
    answers = answer_all(r)
    assert len(answers) == 12 and len({a.key for a in answers}) == 12
    assert [a.shape for a in answers[:2]] == ["f=8", "f=1"] and answers[1].title.endswith("(f=1)")
    assert answers[1].key == "zerocopy@f=1" and answers[1].to_dict()["shape"] == "f=1"
    # each shape's answer is the answer of its points alone
    alone = answer_all(f1)
    assert alone[0].facts_dict() == answers[1].facts_dict()
    # one shape: no shape in the answers
    study = fixture_answers(GOLDEN / "synth-base")
    assert all(a.shape == "" and "shape" not in a.to_dict() for a in study)


def test_charts_and_comparisons_carry_a_shape_as_its_own_series(tmp_path):
    from netobs.analysis import compare
    from netobs.analysis.charts import CHARTS
    from netobs.analysis.load import by_series, load_results

    r = load_results(two_shapes(tmp_path))
    labelled = by_series(r.runs)
    assert set(labelled["implementation"]) == {"two_copy", "one_copy", "zero_copy",
                                               "two_copy f=1", "one_copy f=1", "zero_copy f=1"}
    assert set(labelled["strategy"]) == {"two_copy", "one_copy", "zero_copy"}
    study = fixture_results(GOLDEN / "synth-base").runs
    assert by_series(study) is study
    spec = json.dumps(CHARTS["throughput"](r.runs).to_dict())
    assert '"one_copy f=1"' in spec and '"one_copy"' in spec
    c = compare.compare(r, r)
    assert c.grid["compared"] == 2 * 48 and c.grid["same"]
    assert set(c.points["implementation"]) == set(labelled["implementation"])


@pytest.mark.root
def test_a_sweep_of_two_field_counts_is_stored_and_explained(root, tmp_path):
    out = tmp_path / "res"
    proc = subprocess.run([sys.executable, "-m", "netobs", "sweep", "--strategies", "one_copy", "--sizes", "4096",
                           "--threads", "1", "--fields", "1,8", "--duration", "0.3", "--warmup", "0.1", "--no-perf",
                           "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    rows = read_rows(out)
    assert sorted((r["fields"], r["status"]) for r in rows) == [("1", "ok"), ("8", "ok")]
    assert {p.name for p in (out / "points").iterdir()} == {"one_copy-4096-1-f1-r0", "one_copy-4096-1-r0"}
    assert json.loads((out / "manifest.json").read_text())["matrix"]["fields"] == [1, 8]
    resumed = subprocess.run([sys.executable, "-m", "netobs", "sweep", "-o", str(out), "--resume"],
                             capture_output=True, text=True, timeout=60)
    assert resumed.returncode == 0 and "2 already stored" in resumed.stdout, resumed.stderr
    text = subprocess.run([sys.executable, "-m", "netobs", "explain", str(out)], capture_output=True, text=True,
                          timeout=120)
    assert text.returncode == 0, text.stderr
    assert "(f=1)" in text.stdout and "(f=8)" in text.stdout
    data = json.loads(subprocess.run([sys.executable, "-m", "netobs", "explain", str(out), "--json"],
                                     capture_output=True, text=True, timeout=120).stdout)
    assert {a["shape"] for a in data["answers"]} == {"f=1", "f=8"}
