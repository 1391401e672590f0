"""Integration (root) for issue 28: real sweeps on one directory, a tmpfs that fills in the
middle of a sweep, `run --keep` beside a planted link, and a run killed with SIGKILL."""
from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

NETOBS = [sys.executable, "-m", "netobs"]
pytestmark = pytest.mark.root
QUICK = ["--strategies", "one_copy,two_copy", "--sizes", "4096,65536", "--threads", "1", "--duration", "0.4",
         "--warmup", "0.1", "--no-perf"]


def netobs(*args, timeout=180):
    return subprocess.run(NETOBS + list(args), capture_output=True, text=True, timeout=timeout)


def rows(out: Path) -> list[dict]:
    with open(out / "runs.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _wait_rows(out: Path, n: int, proc, timeout=90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if (out / "runs.csv").exists() and len(rows(out)) >= n:
                return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"no {n} rows in {timeout} s")


def _sweep_while(out: Path, act) -> tuple[int, str]:
    """A QUICK sweep into `out`; once its first row is stored, `act(proc)` (while it runs); its
    exit status and stderr (killed if it outlives the test)."""
    proc = subprocess.Popen(NETOBS + ["sweep", *QUICK, "-o", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait_rows(out, 1, proc)
        act(proc)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, stderr


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("netobs: error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_a_second_sweep_and_a_resume_on_a_running_sweeps_directory_are_refused(root, tmp_path):
    out = tmp_path / "res"

    def second_writers(first):
        for second in (["sweep", *QUICK, "-o", str(out)], ["sweep", "-o", str(out), "--resume"],
                       ["sweep", *QUICK, "-o", str(out), "--force"]):
            started = time.monotonic()
            proc = netobs(*second, timeout=30)
            assert time.monotonic() - started < 20 and proc.returncode == 1, proc.stderr
            line = _one_error_line(proc.stderr)
            assert f"PID {first.pid}" in line and "sweep" in line

    code, stderr = _sweep_while(out, second_writers)
    assert code == 0, stderr
    data = rows(out)
    assert len(data) == 4 and all(r["status"] == "ok" for r in data)
    assert len({(r["implementation"], r["msg_size"]) for r in data}) == 4
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["state"] == "complete" and "resumed" not in manifest
    assert sorted(p.name for p in (out / "points").iterdir()) == sorted(
        f"{r['implementation']}-{r['msg_size']}-1-r0" for r in data)


@pytest.fixture
def small_tmpfs(root, tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_sweep_into_a_filesystem_that_fills_ends_in_one_line_and_resume_keeps_every_point(small_tmpfs):
    out = small_tmpfs / "res"
    filler = small_tmpfs / "filler"

    def fill(_proc):
        with open(filler, "wb") as fh:   # the disk fills while the second point runs
            with contextlib.suppress(OSError):
                while True:
                    fh.write(b"\0" * 65536)

    code, stderr = _sweep_while(out, fill)
    assert code == 1, stderr
    line = _one_error_line(stderr)
    assert "No space left on device" in line and "--resume" in line
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["state"] == "failed" and "No space left" in manifest["error"]
    kept = rows(out)
    assert kept and all(r["status"] == "ok" for r in kept)
    whole = {d.name for d in (out / "points").iterdir() if (d / "result.json").is_file()}
    filler.unlink()
    resumed = netobs("sweep", "-o", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    after = rows(out)
    assert after[: len(kept)] == kept          # the finished points untouched
    names = [f"{r['implementation']}-{r['msg_size']}-1-r0" for r in after]
    assert len(names) == len(set(names)) == 4 and all(r["status"] == "ok" for r in after)
    recovered = json.loads((out / "manifest.json").read_text())["summary"]["recovered_from_points"]
    stored = {f"{r['implementation']}-{r['msg_size']}-1-r0" for r in kept}
    assert set(recovered) == whole - stored     # a whole result.json was stored, not measured again
    assert "already stored" in resumed.stderr + resumed.stdout


def test_an_output_directory_removed_mid_sweep_ends_in_one_line(root, tmp_path):
    """The mid-sweep fault a user can cause besides a full disk (a read-only remount is refused by
    the kernel while the sweep holds its lock file open for writing: "mount point is busy")."""
    import shutil

    out = tmp_path / "res"
    code, stderr = _sweep_while(out, lambda _proc: shutil.rmtree(out))
    assert code == 1, stderr
    line = _one_error_line(stderr)
    assert "No such file or directory" in line and "removed or replaced" in line, line
    assert not out.exists()          # nothing recreated it


def test_run_keep_beside_a_planted_link_leaves_the_target_untouched(root, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "client.stderr").symlink_to(victim)
    proc = netobs("run", "--strategy", "one_copy", "--msg-size", "4096", "--duration", "0.2", "--warmup", "0",
                  "--no-perf", "--keep", str(keep))
    assert proc.returncode == 2 and "not empty" in _one_error_line(proc.stderr)
    assert victim.read_text() == "precious\n"
    fresh = tmp_path / "fresh"
    proc = netobs("run", "--strategy", "one_copy", "--msg-size", "4096", "--duration", "0.2", "--warmup", "0",
                  "--no-perf", "--keep", str(fresh))
    assert proc.returncode == 0, proc.stderr
    assert "a new directory" in proc.stderr and (fresh / "client.stderr").is_file()


def _netobs_tempdirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("netobs-run-*")}


def test_after_sigkill_the_next_start_says_what_it_cleaned_and_no_temp_dir_stays(root):
    before = _netobs_tempdirs()
    proc = subprocess.Popen(NETOBS + ["run", "--strategy", "one_copy", "--msg-size", "4096", "--duration", "20",
                                      "--warmup", "0", "--no-perf"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (_netobs_tempdirs() - before):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        mine = _netobs_tempdirs() - before
        assert mine, "the run made no temporary directory"
        time.sleep(0.5)   # into the point
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    clean = netobs("doctor", "--clean", "--json", timeout=60)
    assert clean.returncode == 0, clean.stderr
    removed = json.loads(clean.stdout)["removed"]
    assert any(r.startswith("namespace ") and str(proc.pid) in r for r in removed), removed
    assert any(r.startswith("temporary directory") and next(iter(mine)) in r for r in removed), removed
    assert not (_netobs_tempdirs() & mine)
    again = netobs("doctor", "--clean", timeout=60)
    assert again.returncode == 0 and "nothing to clean" in again.stdout


def test_the_next_start_after_sigkill_reports_what_it_cleaned(root, tmp_path):
    before = _netobs_tempdirs()
    proc = subprocess.Popen(NETOBS + ["run", "--strategy", "one_copy", "--msg-size", "4096", "--duration", "20",
                                      "--warmup", "0", "--no-perf"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (_netobs_tempdirs() - before):
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    out = tmp_path / "res"
    sweep = netobs("sweep", "--strategies", "one_copy", "--sizes", "4096", "--threads", "1", "--duration", "0.2",
                   "--warmup", "0", "--no-perf", "-o", str(out))
    assert sweep.returncode == 0, sweep.stderr
    line = next(x for x in sweep.stderr.splitlines() if x.startswith("cleaned up after an earlier netobs run"))
    assert "namespace" in line and str(proc.pid) in line and "temporary directory" in line
    assert not (_netobs_tempdirs() - before)
