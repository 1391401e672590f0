"""netobs refine on the real kernel (issue 26): a sweep with one repeat per point, refined with a
budget: repeats are added, the untested verdicts become tested, no round's plan exceeds the
budget left; a refine interrupted (SIGINT) and run again finishes; the refined directory still
reads with explain, report and compare. Run under `flock /tmp/netobs-root.lock`."""
from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import NETOBS
from netobs.analysis.load import load_results
from netobs.analysis.questions import crossover
from netobs.store import read_manifest

pytestmark = pytest.mark.root
BUDGET_S = 40.0


def netobs(*args, timeout=180):
    return subprocess.run(NETOBS + [str(a) for a in args], capture_output=True, text=True, timeout=timeout)


def _rows(out: Path) -> int:
    return len(load_results(out).runs)


def test_refine_adds_repeats_within_budget_survives_sigint_and_still_reads(root, tmp_path):
    out = tmp_path / "res"
    base = netobs("sweep", "--strategies", "one_copy,two_copy", "--sizes", "4096,65536", "--threads", "1",
                  "--duration", "0.3", "--warmup", "0.1", "--no-perf", "-o", out)
    assert base.returncode == 0, base.stderr
    before = crossover.compute(load_results(out), "one_copy")
    assert before.tested is False and _rows(out) == 4

    # interrupted in its first round, after a point of it was stored
    proc = subprocess.Popen(NETOBS + ["refine", str(out), "--budget", f"{BUDGET_S:g}s"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "runs.csv").read_text().count("\n") >= 6:
            break
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    rounds = read_manifest(out)["refinement"]
    assert rounds and rounds[-1]["interrupted"] is True and rounds[-1]["rule"]["name"] == "bonferroni-over-looks"
    assert _rows(out) >= 5

    # run again: it plans from what is stored and finishes
    again = netobs("refine", out, "--budget", f"{BUDGET_S:g}s", "--json")
    assert again.returncode == 0, again.stderr
    res = json.loads(again.stdout)
    assert res["rounds"] and res["stop"] in ("nothing_open", "budget")
    for r in res["rounds"]:
        assert r["total_s"] <= r["budget_left_s"] + 1e-6
        assert r["done"] == len(r["planned"]) and r["failed"] == 0
    assert res["rounds"][0]["budget_left_s"] == BUDGET_S
    runs = load_results(out).runs
    assert runs.groupby(["implementation", "msg_size", "threads"]).size().min() >= 2   # repeats added
    after = crossover.compute(load_results(out), "one_copy")
    assert after.tested is True
    assert any(c["question"] == "one-copy-crossover" for c in res["changed"])
    manifest = read_manifest(out)
    assert len(manifest["refinement"]) == len(rounds) + len(res["rounds"])

    # a refined directory is a directory like any other
    ex = netobs("explain", out)
    assert ex.returncode == 0, ex.stderr
    rep = netobs("report", out, "-o", tmp_path / "r.html")
    assert rep.returncode == 0 and (tmp_path / "r.html").stat().st_size > 0, rep.stderr
    cmp_ = netobs("compare", out, out)
    assert cmp_.returncode == 0, cmp_.stderr
