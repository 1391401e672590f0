"""Issue 28 without root: one writer per results directory, storage faults, inputs refused
before any setup, damaged or foreign results named and left out (each case the probe found
gets a test of its own). The root half (real sweeps, a tmpfs that fills, SIGKILL) is
tests/test_nothing_lost_root.py."""
from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netobs.cli import main
from netobs.errors import NetobsError
from netobs.files import atomic_write, create_new
from netobs.params import MAX_MSG
from netobs.store import LOCK_NAME, ResultsDir, StoreError, read_rows

sys.path.insert(0, str(Path(__file__).parent))
import synth  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ["cpu-cycles", "context-switches"]
STUDY_HEADER = ("implementation,msg_size,threads,throughput_gbps,latency_us,cpu_cycles,l1_cache_misses,"
                "llc_cache_misses,context_switches\n")


def _result(strategy="one_copy", size=1024, threads=1, repeat=0, status="ok", gbps=1.5):
    return {"strategy": strategy, "msg_size": size, "threads": threads, "repeat": repeat, "status": status,
            "throughput_gbps": gbps, "bytes_sent": 1000, "window_s": 1.0,
            **({"error": "boom"} if status != "ok" else {})}


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("netobs: error: ") and "Traceback" not in err, err
    return lines[0]


# ---- one writer per results directory -------------------------------------------------------
HOLDER = """
import sys, time
from netobs.store import ResultsDir
store = ResultsDir.create(sys.argv[1], {"source": "netobs", "matrix": {}}, [])
print("holding", flush=True)
time.sleep(60)
"""


@pytest.fixture
def held(tmp_path):
    """A results directory another process is writing (it holds the lock)."""
    out = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "holding"
        yield out, proc
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.integration
def test_a_second_writer_is_refused_at_once_naming_the_holder(held):
    out, proc = held
    started = time.monotonic()
    with pytest.raises(NetobsError) as err:
        ResultsDir.open_for_resume(out)
    assert time.monotonic() - started < 2   # at once, not after waiting for the lock
    assert f"PID {proc.pid}" in err.value.message and "being written by another netobs" in err.value.message
    with pytest.raises(NetobsError, match=f"PID {proc.pid}"):
        ResultsDir.create(out, {"source": "import"}, [], force=True)   # not moved aside under its writer
    assert (out / "manifest.json").is_file() and not list(out.parent.glob("r.old-*"))


@pytest.mark.integration
def test_import_into_a_directory_being_written_is_refused(held, tmp_path, capsys):
    out, proc = held
    src = tmp_path / "study.csv"
    src.write_text(STUDY_HEADER + "two_copy,1024,1,2.0,3.0,100,10,1,5\n")
    code, _, err = cli(capsys, "import", str(src), "--duration", "1", "-o", str(out), "--force")
    assert code == 1 and f"PID {proc.pid}" in one_line_error(err)


@pytest.mark.integration
def test_the_lock_goes_with_its_holder(held):
    out, proc = held
    proc.kill()
    proc.wait()
    store = ResultsDir.open_for_resume(out)   # the kernel dropped the dead holder's lock
    store.close()


def test_rows_are_appended_never_rewritten(tmp_path):
    store = ResultsDir.create(tmp_path / "r", {"source": "test"}, EVENTS)
    store.add_point(_result(status="failed"))
    before = (tmp_path / "r" / "runs.csv").read_bytes()
    store.add_point(_result())                           # the failed point measured again
    store.add_point(_result(strategy="two_copy"))
    after = (tmp_path / "r" / "runs.csv").read_bytes()
    assert after.startswith(before) and after.count(b"\n") == before.count(b"\n") + 2
    assert [r["status"] for r in read_rows(tmp_path / "r")] == ["ok", "ok"]   # readers see the later row
    from netobs.analysis.load import load_results
    assert not [n for n in load_results(tmp_path / "r").notes if "duplicate" in n]
    store.close()


def test_a_row_the_disk_refuses_leaves_runs_csv_as_it_was(tmp_path, monkeypatch):
    store = ResultsDir.create(tmp_path / "r", {"source": "test"}, EVENTS)
    store.add_point(_result())
    before = (tmp_path / "r" / "runs.csv").read_bytes()
    real_write = os.write

    def half_then_full(fd, data):
        if len(data) > 20:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(StoreError) as err:
        store.add_point(_result(strategy="two_copy"))
    monkeypatch.undo()
    assert "No space left on device" in err.value.message and "--resume" in err.value.message
    assert (tmp_path / "r" / "runs.csv").read_bytes() == before   # no torn row
    store.close()


def test_a_point_whose_result_json_is_whole_is_stored_without_measuring_it_again(tmp_path):
    store = ResultsDir.create(tmp_path / "r", {"source": "netobs"}, [])
    store.add_point(_result())
    kept = store.point_dir("two_copy-1024-1-r0")
    atomic_write(kept / "result.json", json.dumps(_result(strategy="two_copy", gbps=2.5)))
    cut = store.point_dir("zero_copy-1024-1-r0")
    (cut / "result.json").write_text('{"strategy": "zero_copy", "msg_si')   # not whole: measured again
    store.close()
    again = ResultsDir.open_for_resume(tmp_path / "r")
    assert again.recover_points() == ["two_copy-1024-1-r0"]
    assert ("two_copy", 1024, 1, 0, 8, 0, "split", 0, 0, "copy") in again.done_keys()
    assert ("zero_copy", 1024, 1, 0, 8, 0, "split", 0, 0, "copy") not in again.done_keys()
    assert [r["throughput_gbps"] for r in read_rows(tmp_path / "r")] == ["1.5", "2.5"]
    assert again.recover_points() == []   # once
    again.close()


def test_a_storage_fault_writes_the_manifest_into_the_kept_room(tmp_path):
    store = ResultsDir.create(tmp_path / "r", {"source": "netobs", "state": "running"}, [])
    assert (tmp_path / "r" / ".netobs.reserve").stat().st_size > 0
    fault = StoreError("cannot write r/runs.csv", "No space left on device", "freeing space")
    assert store.record_fault(fault) is None
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["state"] == "failed" and "No space left" in manifest["error"]
    store.close()
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [LOCK_NAME, "manifest.json", "points", "runs.csv"]


def test_files_of_a_run_are_never_created_through_a_planted_link(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "client.stderr").symlink_to(victim)
    with pytest.raises(FileExistsError):
        create_new(tmp_path / "client.stderr")
    (tmp_path / "result.json").symlink_to(victim)
    atomic_write(tmp_path / "result.json", "{}")   # the link is replaced, not written through
    assert victim.read_text() == "precious\n" and not (tmp_path / "result.json").is_symlink()


# ---- refused before any setup ---------------------------------------------------------------
def test_resume_of_a_directory_with_no_sweep_is_refused(tmp_path, capsys):
    code, _, err = cli(capsys, "sweep", "--topology", "loopback", "--no-perf", "--resume", "-o", str(tmp_path / "typo"))
    assert code == 2 and "nothing to resume" in one_line_error(err)
    assert not (tmp_path / "typo").exists()   # no new full sweep started there


def test_resume_of_an_import_is_refused(tmp_path, capsys):
    d = synth.write_imported(tmp_path / "imp", synth.study_rows())
    code, _, err = cli(capsys, "sweep", "--topology", "loopback", "--no-perf", "--resume", "-o", str(d))
    assert code == 2 and "not a sweep" in one_line_error(err)


def test_keep_into_a_non_empty_directory_is_refused(tmp_path, capsys):
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "client.stderr").symlink_to(tmp_path / "victim")
    code, _, err = cli(capsys, "run", "--topology", "loopback", "--no-perf", "--strategy", "two_copy", "--keep", str(keep))
    assert code == 2 and "is not empty" in one_line_error(err)


@pytest.mark.parametrize("command", [
    ["run", "--topology", "loopback", "--no-perf", "--strategy", "two_copy", "--fields", "64", "--msg-size", "8"],
    ["sweep", "--topology", "loopback", "--no-perf", "--fields", "64", "--sizes", "8,1024"],
])
def test_fields_against_the_message_size_are_refused_before_any_setup(tmp_path, capsys, command):
    code, _, err = cli(capsys, *command, *(["-o", str(tmp_path / "r")] if command[0] == "sweep" else []))
    assert code == 2 and "8-byte message cannot have 64 fields" in one_line_error(err)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("host", ["a;b", "a$(id)", "a|b", "a`id`", "a&b", "a b", "-oProxyCommand=x", "a@b@c"])
def test_an_ssh_host_with_shell_metacharacters_is_refused(capsys, host):
    code, _, err = cli(capsys, "run", "--remote", host, "--strategy", "two_copy")
    assert code == 2 and "bad remote host" in one_line_error(err)


@pytest.mark.parametrize("flag", ["--fail-on-regression", "--threshold"])
def test_negative_thresholds_are_refused_before_reading(tmp_path, capsys, flag):
    code, _, err = cli(capsys, "compare", str(tmp_path / "nowhere"), str(tmp_path / "nowhere"), flag, "-5")
    assert code == 2 and f"{flag} -5 is not a percentage" in one_line_error(err)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return synth.write_results(tmp_path_factory.mktemp("r") / "r", repeats=1, sizes=(1024, 4096), threads=(1,))


def test_a_report_path_that_names_a_directory_is_refused(results, tmp_path, capsys):
    code, _, err = cli(capsys, "report", str(results), "-o", str(tmp_path / "empty.html") + "/")
    assert code == 2 and "names a directory" in one_line_error(err)
    assert not (tmp_path / "empty.html").exists()


def test_a_report_path_without_its_directory_is_refused(results, tmp_path, capsys):
    code, _, err = cli(capsys, "report", str(results), "-o", str(tmp_path / "nonexistent" / "dir" / "x.html"))
    assert code == 2 and "does not exist" in one_line_error(err)
    assert not (tmp_path / "nonexistent").exists()


def test_an_unwritable_report_path_is_said_before_the_work(results, capsys, monkeypatch):
    from netobs.analysis import report
    monkeypatch.setattr(report, "write_report", lambda *a: pytest.fail("the report was built"))
    code, _, err = cli(capsys, "report", str(results), "-o", "/proc/x.html")
    assert code == 2 and "cannot write the report" in one_line_error(err)


def test_a_report_the_disk_refuses_is_one_line(results, tmp_path, capsys, monkeypatch):
    from netobs.analysis import report

    def full(path, data, mode=None):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    monkeypatch.setattr(report, "atomic_write", full)
    code, _, err = cli(capsys, "report", str(results), "-o", str(tmp_path / "x.html"))
    assert code == 1 and "No space left on device" in one_line_error(err)


def test_results_under_proc_are_one_line(tmp_path, capsys):
    src = tmp_path / "study.csv"
    src.write_text(STUDY_HEADER + "two_copy,1024,1,2.0,3.0,100,10,1,5\n")
    code, _, err = cli(capsys, "import", str(src), "--duration", "1", "-o", "/proc/netobs-results")
    assert code == 1 and "/proc/netobs-results" in one_line_error(err)


# ---- damaged or foreign results: named, left out ---------------------------------------------
def _damage(results: Path, tmp_path: Path, column: str, value: str) -> Path:
    import shutil
    d = Path(shutil.copytree(results, tmp_path / "d"))
    lines = (d / "runs.csv").read_text().splitlines(keepends=True)
    header = lines[0].strip().split(",")
    cells = lines[1].rstrip("\n").split(",")
    cells[header.index(column)] = value
    lines[1] = ",".join(cells) + "\n"
    (d / "runs.csv").write_text("".join(lines))
    return d


BAD_ROWS = [
    ("msg_size", "inf", "msg_size inf, not a whole number"),
    ("msg_size", "1e300", "msg_size 1e+300, outside netobs's limits"),
    ("threads", "-5", "threads -5, outside netobs's limits"),
    ("threads", "1.7", "threads 1.7, not a whole number"),
    ("implementation", "../../../etc", "not a strategy name"),
    ("placement", "../../../etc", "placement '../../../etc', not one of"),
    ("throughput_gbps", "inf", "non-finite throughput_gbps"),
    ("latency_us", "fast", "latency_us 'fast', not a number"),
]


@pytest.mark.parametrize("column,value,why", BAD_ROWS)
def test_a_bad_row_is_named_with_its_line_and_left_out(results, tmp_path, column, value, why):
    d = _damage(results, tmp_path, column, value)
    from netobs.analysis.load import load_results
    r = load_results(d)
    assert len(r.runs) == len(load_results(results).runs) - 1
    assert any(n.startswith("runs.csv line 2") and why in n and "left out" in n for n in r.notes), r.notes
    assert not (r.runs["msg_size"] < 0).any()


@pytest.fixture(scope="module")
def bad_rows(tmp_path_factory):
    """24 points, the first 8 rows each damaged one way of BAD_ROWS (line k+2: the k-th)."""
    good = synth.write_results(tmp_path_factory.mktemp("g") / "r", repeats=1, threads=(1, 2))
    import shutil
    d = Path(shutil.copytree(good, tmp_path_factory.mktemp("bad") / "d"))
    lines = (d / "runs.csv").read_text().splitlines(keepends=True)
    header = lines[0].strip().split(",")
    for k, (column, value, _) in enumerate(BAD_ROWS):
        cells = lines[k + 1].rstrip("\n").split(",")
        cells[header.index(column)] = value
        lines[k + 1] = ",".join(cells) + "\n"
    (d / "runs.csv").write_text("".join(lines))
    return good, d


@pytest.mark.parametrize("reader", ["explain", "compare", "report"])
def test_every_reader_leaves_bad_rows_out_and_goes_on(bad_rows, tmp_path, capsys, reader):
    """Each way of BAD_ROWS at once (one reader run, not one per way): named, left out, the rest read."""
    good, d = bad_rows
    from netobs.analysis.load import load_results
    r = load_results(d)
    assert len(r.runs) == len(load_results(good).runs) - len(BAD_ROWS)
    for k, (_, _, why) in enumerate(BAD_ROWS):
        assert any(n.startswith(f"runs.csv line {k + 2}") and why in n and "left out" in n for n in r.notes), (why, r.notes)
    args = {"explain": ["explain", str(d)], "compare": ["compare", str(good), str(d)],
            "report": ["report", str(d), "-o", str(tmp_path / "x.html")]}[reader]
    code, out, err = cli(capsys, *args)
    assert code == 0 and "Traceback" not in err, err
    assert "-9223372036854775808" not in out


def test_a_bad_strategy_name_never_reaches_a_path(results, tmp_path, capsys):
    d = _damage(results, tmp_path, "implementation", "../../x")
    (tmp_path / "x-1024-1-r0").mkdir()
    (tmp_path / "x-1024-1-r0" / "client.on_cpu.folded").write_text("outside;secret 1\n")
    code, _, err = cli(capsys, "report", str(d), "-o", str(tmp_path / "x.html"))
    assert code == 0 and "secret" not in (tmp_path / "x.html").read_text()


def test_zero_copy_sharing_no_point_with_the_others_is_answered(tmp_path, capsys):
    src = tmp_path / "study.csv"
    src.write_text(STUDY_HEADER + "two_copy,1024,1,2.0,3.0,100,10,1,5\none_copy,1024,1,2.1,3.0,100,10,1,5\n"
                                  "zero_copy,4096,2,2.5,3.0,100,10,1,5\n")
    assert cli(capsys, "import", str(src), "--duration", "10", "-o", str(tmp_path / "r"))[0] == 0
    code, out, err = cli(capsys, "explain", str(tmp_path / "r"))
    assert code == 0 and "no message size and thread count" in out.replace("\n", " "), err


def test_import_refuses_a_message_size_past_the_limit(tmp_path, capsys):
    src = tmp_path / "study.csv"
    src.write_text(STUDY_HEADER + "two_copy,1e12,1,2.0,3.0,100,10,1,5\n")
    code, _, err = cli(capsys, "import", str(src), "--duration", "1", "-o", str(tmp_path / "r"))
    line = one_line_error(err)
    assert code == 2 and "row 2, column msg_size" in line and str(MAX_MSG) in line
    assert not (tmp_path / "r").exists()


def test_import_names_a_thousands_separator_that_shifts_the_columns(tmp_path, capsys):
    src = tmp_path / "study.csv"
    src.write_text(STUDY_HEADER + "two_copy,1024,1,1,234.5,3.0,100,10,1,5\n")
    code, _, err = cli(capsys, "import", str(src), "--duration", "1", "-o", str(tmp_path / "r"))
    line = one_line_error(err)
    assert code == 2 and "row 2" in line and "10 cells where the header has 9" in line and "unknown strategy" not in line


def test_import_reads_a_bom_and_crlf(tmp_path, capsys):
    src = tmp_path / "study.csv"
    src.write_bytes(("\ufeff" + STUDY_HEADER + "two_copy,1024,1,2.0,3.0,100,10,1,5\n").replace("\n", "\r\n")
                    .encode("utf-8"))
    code, out, err = cli(capsys, "import", str(src), "--duration", "1", "-o", str(tmp_path / "r"))
    assert code == 0, err
